//! The admin's own HTTP/1 server: the accept loop behind [`Server::run`](crate::Server::run)
//! and [`Server::run_until`](crate::Server::run_until), with limits a slow or hostile
//! client cannot get around:
//!
//! - a request head must arrive within [`HEAD_TIMEOUT`] (slow-header clients are dropped);
//! - a response write that makes no progress for [`WRITE_TIMEOUT`] (a client that does
//!   not read its answers) ends the connection;
//! - at most [`MAX_CONNECTIONS`] connections are served at once. A client connecting
//!   past that is served, and room is made for it: the oldest connection with no request
//!   in flight (idle between requests, silent since it connected, or partway through a
//!   request head) is closed at once. A request is in flight from the moment the server
//!   has read its whole head until its response is written out; requests a client
//!   pipelined behind the one being answered are not, until the server starts on them (an
//!   evicted connection closes with them unanswered, which HTTP/1.1 allows: the client
//!   sends them again on a new connection). Only when every connection has one is
//!   the oldest asked to close instead, after its current response, which finishes within
//!   that request's own limits;
//! - the server runs at most 2 × [`MAX_CONNECTIONS`] connection tasks, served and closing
//!   together. New clients wait in the listen backlog only while all of those are taken,
//!   each finishing a request in flight within that request's own limits (the write
//!   limit is on progress, not on rate: a client reading a large response slowly but
//!   steadily keeps its place that long). Sockets held idle, silent or with part of a
//!   request head never fill the server: they delay a health probe by no more than one
//!   accept;
//! - after the shutdown signal, requests in flight get [`SHUTDOWN_GRACE`] to finish, then
//!   the remaining connections are dropped: a stalled client never holds the shutdown.
//!
//! Request bodies are read by the write handlers themselves, after the token check and
//! under a time limit (`http.rs`). Every limit runs on tokio's timer: the admin needs a
//! runtime with timers enabled, which [`Admin::bind`](crate::Admin::bind) checks.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// How long a client may take to send a request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a response write may make no progress (the client does not read).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish once shutdown was asked for, or once
/// their connection was asked to close to make room.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections served at once (as many again may be closing, each finishing a request).
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// Whether the current tokio runtime has its timer enabled (every limit here needs it).
/// Creating a `Sleep` without one panics, which is the only way tokio tells.
pub(crate) fn timers_enabled() -> bool {
    std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}

/// What the accept loop and one connection's task know of that connection.
///
/// Orderings: each flag and the count is read on its own, as a fact about that word
/// alone; no other data is published through them, so Release stores and Acquire loads
/// (stronger than the Relaxed that would do) need no SeqCst.
#[derive(Default)]
struct ConnState {
    /// Requests that reached the service and whose response body is not finished
    /// (an [`InFlight`] each).
    in_flight: AtomicUsize,
    /// The last write found the socket full: a response is still being written out.
    write_blocked: AtomicBool,
    /// The connection's task has ended, however it ended (a panic included): set by
    /// [`Registered`].
    ended: AtomicBool,
    /// Asks the connection to make room (see [`connection`]).
    close: Notify,
}

impl ConnState {
    /// Whether a request is in flight: from a head read whole until its response is written.
    /// Read by the accept loop it is a hint (the connection may change meanwhile); read by
    /// the connection's own task between two polls of the connection, it is exact.
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0 || self.write_blocked.load(Ordering::Acquire)
    }

    /// Whether the connection's task has ended.
    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
}

/// Held by a connection's task: marks its [`ConnState`] ended when the task ends or is
/// dropped (also while unwinding from a panic), so the accept loop forgets it.
struct Registered(Arc<ConnState>);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.ended.store(true, Ordering::Release);
    }
}

/// Serves `router` on `listener` until `shutdown` completes (see the module docs).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    // Connections not yet asked to make room, oldest first. With the ones asked, they are
    // `conns`: accepting stops at 2 × MAX_CONNECTIONS tasks. Room is made from an idle
    // connection whenever there is one, and an idle connection asked closes at once, so
    // that bound is reached only with MAX_CONNECTIONS closing connections each finishing a
    // request in flight.
    let mut open: VecDeque<Arc<ConnState>> = VecDeque::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {
                // Ended normally, by a panic, or dropped: each marked its state.
                open.retain(|c| !c.has_ended());
            }
            accepted = listener.accept(), if conns.len() < 2 * MAX_CONNECTIONS => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: wait a little rather than spin.
                        // A connection reset before it was accepted needs no wait.
                        if !matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionAborted
                                | std::io::ErrorKind::ConnectionReset
                        ) {
                            tracing::warn!(target: "riptide_admin", error = %e, "admin accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        continue;
                    }
                };
                if open.len() >= MAX_CONNECTIONS {
                    open.retain(|c| !c.has_ended());
                }
                if open.len() >= MAX_CONNECTIONS {
                    // The oldest with no request in flight, else the oldest.
                    let idle = open.iter().position(|c| !c.busy()).unwrap_or(0);
                    if let Some(oldest) = open.remove(idle) {
                        oldest.close.notify_one();
                    }
                }
                let state = Arc::new(ConnState::default());
                open.push_back(state.clone());
                conns.spawn(connection(
                    stream,
                    router.clone(),
                    stop_rx.clone(),
                    Registered(state),
                ));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            target: "riptide_admin",
            left = conns.len(),
            "admin shutdown: connections still open after the grace period are dropped"
        );
    }
    conns.shutdown().await;
}

/// One connection: HTTP/1 with keep-alive, closed gracefully once `stop` turns true (and
/// dropped [`SHUTDOWN_GRACE`] after that). Asked to make room (`close` in its state), it
/// is dropped at once when no request is in flight, else closed gracefully. `registered`
/// lives as long as this future, however it ends.
async fn connection(
    stream: tokio::net::TcpStream,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    registered: Registered,
) {
    let state = registered.0.clone();
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(
            TokioIo::new(WriteDeadline::new(stream, state.clone())),
            Counted {
                inner: TowerToHyperService::new(router),
                state: state.clone(),
            },
        );
    let mut conn = std::pin::pin!(conn);
    // Biased, the connection first: a request head that has arrived is read (and its
    // request counted in flight) before a request to make room is looked at. Unbiased,
    // a connection asked to make room before its task first ran (or while its head was
    // arriving) could be dropped with a whole request head unread in its socket.
    let evicted = tokio::select! {
        biased;
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => false,
        () = state.close.notified() => true,
    };
    if evicted {
        // Asked to make room. Between two polls of `conn` the count is exact: with no
        // request in flight (idle, silent, or partway through a head that would otherwise
        // hold it until the head timeout) the connection is dropped here, its socket
        // closed. A request in flight finishes within its own limits (a stalled write, a
        // slow body, a drain's own timeout), unless shutdown comes first.
        if !state.busy() {
            return;
        }
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.wait_for(|s| *s) => {}
        }
    } else {
        conn.as_mut().graceful_shutdown();
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

/// The router as a hyper service that counts its requests in flight in the connection's
/// [`ConnState`]: from the call until the response body is finished or dropped.
struct Counted {
    inner: TowerToHyperService<axum::Router>,
    state: Arc<ConnState>,
}

impl hyper::service::Service<Request<Incoming>> for Counted {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        // Counted from here. The future holds the count, then the response body: dropped
        // unfinished (the connection ended first), either gives it back.
        let in_flight = InFlight::new(&self.state);
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Tracked {
                body,
                in_flight: Some(in_flight),
            }))
        })
    }
}

/// One request in flight on a connection, until dropped.
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn new(state: &Arc<ConnState>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that holds its request's [`InFlight`] until it has given its last
/// frame (or is dropped).
struct Tracked {
    body: axum::body::Body,
    in_flight: Option<InFlight>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) || self.body.is_end_stream() {
            self.in_flight = None;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for
/// [`WRITE_TIMEOUT`]: hyper then ends the connection. While a write waits for the client
/// to read, the connection's [`ConnState`] says so (a response is being written out).
struct WriteDeadline<S> {
    inner: S,
    /// Armed by the first write that found the socket full, disarmed by any progress.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    state: Arc<ConnState>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, state: Arc<ConnState>) -> Self {
        WriteDeadline {
            inner,
            stall: None,
            state,
        }
    }

    /// Maps a write's poll: progress disarms the deadline; no progress arms it (once) and
    /// fails the write when it has passed.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            self.stall = None;
            self.state.write_blocked.store(false, Ordering::Release);
            return r;
        }
        self.state.write_blocked.store(true, Ordering::Release);
        let sleep = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of its response for 10 s",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    /// Sends `req` on `s` whole.
    async fn send(s: &TcpStream, mut req: &[u8]) {
        while !req.is_empty() {
            s.writable().await.unwrap();
            match s.try_write(req) {
                Ok(n) => req = &req[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("write: {e}"),
            }
        }
    }

    /// Reads until `done` holds for what was read, or EOF (or an error): what was read.
    async fn read_until(s: &TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut b = [0u8; 4096];
        while !done(&out) {
            if s.readable().await.is_err() {
                break;
            }
            match s.try_read(&mut b) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        out
    }

    async fn panics() -> &'static str {
        panic!("a handler that panics (this test expects it)")
    }

    /// Connection tasks that end by a panic are forgotten like the others: after more of
    /// them than the server serves at once, the oldest connection (idle between requests)
    /// is still served, not closed to make room for connections that are gone.
    #[tokio::test]
    async fn panicked_connections_do_not_take_up_room() {
        let router = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route("/panic", axum::routing::get(panics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, async {
            let _ = stopped.await;
        }));
        let ok = b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n";
        let answered = |out: &[u8]| out.ends_with(b"\r\n\r\nok");
        let kept = TcpStream::connect(addr).await.unwrap();
        send(&kept, ok).await;
        let first = read_until(&kept, answered).await;
        assert!(answered(&first), "{}", String::from_utf8_lossy(&first));
        for _ in 0..MAX_CONNECTIONS + 10 {
            let s = TcpStream::connect(addr).await.unwrap();
            send(&s, b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n").await;
            let out = read_until(&s, |_| false).await;
            assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        }
        send(&kept, ok).await;
        let again = tokio::time::timeout(Duration::from_secs(5), read_until(&kept, answered))
            .await
            .expect("no answer");
        assert!(
            answered(&again),
            "the oldest connection was closed: {:?}",
            String::from_utf8_lossy(&again)
        );
        let _ = stop.send(());
        server.await.unwrap();
    }
}
