//! The admin's own HTTP/1 server: the accept loop behind [`Server::run`](crate::Server::run)
//! and [`Server::run_until`](crate::Server::run_until), with limits a slow or hostile
//! client cannot get around:
//!
//! - a request head must arrive within [`HEAD_TIMEOUT`] (slow-header clients are dropped);
//! - a response write that makes no progress for [`WRITE_TIMEOUT`] (a client that does
//!   not read its answers) ends the connection;
//! - at most [`MAX_CONNECTIONS`] connections are served at once. A client connecting
//!   past that is served, and the oldest connection is asked to close: at once if it is
//!   between requests (or never sent one), else after its current response, which
//!   finishes within its own limits. At most [`MAX_CONNECTIONS`] more may be closing at
//!   once (past that, new clients wait in the listen backlog): a client holding hundreds
//!   of idle or silent sockets delays a health probe by no more than one accept. A
//!   connection that sent part of a request head is not closed early: it ends at its
//!   head timeout;
//! - after the shutdown signal, requests in flight get [`SHUTDOWN_GRACE`] to finish, then
//!   the remaining connections are dropped: a stalled client never holds the shutdown.
//!
//! Request bodies are read by the write handlers themselves, after the token check and
//! under a time limit (`http.rs`). Every limit runs on tokio's timer: the admin needs a
//! runtime with timers enabled, which [`Admin::bind`](crate::Admin::bind) checks.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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
/// Connections served at once (as many again may be closing).
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// Whether the current tokio runtime has its timer enabled (every limit here needs it).
/// Creating a `Sleep` without one panics, which is the only way tokio tells.
pub(crate) fn timers_enabled() -> bool {
    std::panic::catch_unwind(|| drop(tokio::time::sleep(Duration::ZERO))).is_ok()
}

/// Serves `router` on `listener` until `shutdown` completes (see the module docs).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    // Connections not yet asked to close, oldest first (id, its close signal).
    let mut open: VecDeque<(u64, Arc<Notify>)> = VecDeque::new();
    let mut next_id = 0u64;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Ok(id) = done {
                    open.retain(|(i, _)| *i != id);
                }
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
                    if let Some((_, oldest)) = open.pop_front() {
                        oldest.notify_one();
                    }
                }
                let close = Arc::new(Notify::new());
                let id = next_id;
                next_id += 1;
                open.push_back((id, close.clone()));
                let served = connection(stream, router.clone(), stop_rx.clone(), close);
                conns.spawn(async move {
                    served.await;
                    id
                });
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
/// dropped [`SHUTDOWN_GRACE`] after that) or `close` is signalled.
async fn connection(
    stream: tokio::net::TcpStream,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    close: Arc<Notify>,
) {
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(
            TokioIo::new(WriteDeadline::new(stream)),
            TowerToHyperService::new(router),
        );
    let mut conn = std::pin::pin!(conn);
    let evicted = tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => false,
        () = close.notified() => true,
    };
    conn.as_mut().graceful_shutdown();
    if evicted {
        // Asked to close to make room: an idle connection closes at once; a request in
        // flight finishes within its own limits (a stalled write, a slow body, a drain's
        // own timeout), unless shutdown comes first.
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for
/// [`WRITE_TIMEOUT`]: hyper then ends the connection.
struct WriteDeadline<S> {
    inner: S,
    /// Armed by the first write that found the socket full, disarmed by any progress.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S) -> Self {
        WriteDeadline { inner, stall: None }
    }
}

impl<S> WriteDeadline<S> {
    /// Maps a write's poll: progress disarms the deadline; no progress arms it (once) and
    /// fails the write when it has passed.
    fn watch<T>(
        stall: &mut Option<Pin<Box<tokio::time::Sleep>>>,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if r.is_ready() {
            *stall = None;
            return r;
        }
        let sleep = stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
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
        Self::watch(&mut this.stall, cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        Self::watch(&mut this.stall, cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        Self::watch(&mut this.stall, cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        Self::watch(&mut this.stall, cx, r)
    }
}
