//! The admin's own HTTP/1 server: the accept loop behind [`Server::run`](crate::Server::run)
//! and [`Server::run_until`](crate::Server::run_until), with limits a slow or hostile
//! client cannot get around:
//!
//! - a request head must arrive within [`HEAD_TIMEOUT`] (slow-header clients are dropped);
//! - at most [`MAX_CONNECTIONS`] connections are served at once (the rest wait in the
//!   listen backlog);
//! - after the shutdown signal, requests in flight get [`SHUTDOWN_GRACE`] to finish, then
//!   the remaining connections are dropped: a stalled client never holds the shutdown.
//!
//! Request bodies are read by the write handlers themselves, after the token check and
//! under a time limit (`http.rs`).

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

/// How long a client may take to send a request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish once shutdown was asked for.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// Serves `router` on `listener` until `shutdown` completes (see the module docs).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept(), if conns.len() < MAX_CONNECTIONS => {
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
                conns.spawn(connection(stream, router.clone(), stop_rx.clone()));
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

/// One connection: HTTP/1 with keep-alive, closed gracefully once `stop` turns true.
async fn connection(
    stream: tokio::net::TcpStream,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
