//! Every admin write, accepted or refused, is logged with `tracing`, and so is a `serve`
//! that cannot serve. In a test binary of
//! its own: `tracing` caches per-callsite interest process-wide, so a thread-local
//! subscriber only sees every event when no other test thread hits the same callsites.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Served;
use riptide_admin::Admin;
use riptide_pool::{Pool, Poolable};

struct Conn;
impl Poolable for Conn {}

async fn post(c: &reqwest::Client, url: String, token: Option<&str>, body: &str) {
    let mut r = c.post(url).body(body.to_string());
    if let Some(t) = token {
        r = r.header("authorization", t);
    }
    r.send().await.unwrap();
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber for this thread writing into the returned buffer, until the guard drops.
fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let log = Captured::default();
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

// A current-thread runtime: the server's tasks run on this thread, under this subscriber.
#[tokio::test(flavor = "current_thread")]
async fn every_write_is_logged() {
    let (log, _guard) = capture();

    let db = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) })
        .max_size(4)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let admin = Admin::new().pool("db", &db).token(Some("t".into()));
    let s = Served::start(&admin).await;
    let c = reqwest::Client::new();
    post(&c, s.url("/pools/db/resize"), None, r#"{"max_size": 5}"#).await;
    post(
        &c,
        s.url("/pools/db/resize"),
        Some("Bearer t"),
        r#"{"max_size": 0}"#,
    )
    .await;
    post(
        &c,
        s.url("/pools/db/resize"),
        Some("Bearer t"),
        r#"{"max_size": 6}"#,
    )
    .await;
    post(&c, s.url("/pools/db/close"), Some("Bearer t"), "").await;
    post(&c, s.url("/pools/nope/close"), Some("Bearer t"), "").await;
    post(&c, s.url("/pools/db/drain"), Some("Bearer t"), "").await;
    s.stop().await;

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    for want in [
        "admin write refused: missing or wrong bearer token",
        "admin write refused: bad input",
        "admin write: pool resized",
        "from=4 to=6",
        "admin write: pool closed",
        "admin write refused: no such pool",
        "admin write: drain finished",
        "pool=db",
    ] {
        assert!(text.contains(want), "log lacks {want:?}:\n{text}");
    }
    assert!(!text.contains("Bearer t"), "the token is never logged");
}

/// `serve` spawned as the README shows it, on a port already taken: its result goes to a
/// `JoinHandle` nobody reads, so the error must reach the log.
#[tokio::test(flavor = "current_thread")]
async fn a_spawned_serve_that_cannot_bind_says_so_in_the_log() {
    let (log, _guard) = capture();

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) })
        .build()
        .unwrap();
    let admin = Admin::new().pool("db", &db);
    let task = tokio::spawn(async move { admin.serve(addr).await });
    assert!(task.await.unwrap().is_err());
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    assert!(
        text.contains("the admin endpoint is not serving") && text.contains(&port),
        "log: {text:?}"
    );
}
