//! Clients that stall: a request head sent slowly or never finished, a write whose body
//! never comes. None of them holds a connection for long, blocks other clients, or holds
//! the server's shutdown.

mod common;

use std::time::{Duration, Instant};

use common::Served;
use riptide_admin::Admin;
use riptide_pool::{Pool, Poolable};
use tokio::net::TcpStream;

struct Conn;
impl Poolable for Conn {}

fn pool() -> Pool<Conn> {
    Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) })
        .max_size(2)
        .build()
        .unwrap()
}

/// `write_all` without tokio's io-util feature.
async fn send(s: &TcpStream, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads until EOF (or an error) into `out`.
async fn read_all(s: &TcpStream, out: &mut Vec<u8>) {
    let mut b = [0u8; 4096];
    loop {
        if s.readable().await.is_err() {
            return;
        }
        match s.try_read(&mut b) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// A client that opened a connection and sent `first`, then nothing more.
async fn stalled(addr: std::net::SocketAddr, first: &[u8]) -> TcpStream {
    let s = TcpStream::connect(addr).await.unwrap();
    send(&s, first).await.unwrap();
    s
}

/// Shutdown is asked for while clients are stalled halfway through a request head, and
/// in a write's body (token given, so the body is read): the server stops within its
/// grace period (10 s), and answers other clients meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_do_not_hold_the_shutdown() {
    let db = pool();
    let admin = Admin::new().pool("db", &db).token(Some(TOKEN.to_owned()));
    let served = Served::start(&admin).await;
    let addr = served.addr;
    let _three = stalled(addr, b"GET").await;
    let _half = stalled(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await;
    let _body = stalled(
        addr,
        b"POST /pools/db/resize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Others are served meanwhile.
    let r = reqwest::get(served.url("/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(14), served.stop())
        .await
        .expect("shutdown held by a stalled client");
    assert!(t0.elapsed() < Duration::from_secs(14));
}

/// A request head dribbled out past 10 s is not served: the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_head_is_cut_off() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db)).await;
    let slow = stalled(served.addr, b"GET /health HTTP/1.1\r\nHost: x\r\n").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let _ = send(&slow, b"Connection: close\r\n\r\n").await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), read_all(&slow, &mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        !out.contains("200 OK"),
        "a head sent over 12 s was served:\n{out}"
    );
    // The server still answers.
    let r = reqwest::get(served.url("/health")).await.unwrap();
    assert_eq!(r.status(), 200);
    served.stop().await;
}

/// A write whose body never finishes gets 408 after 10 s (the token checked first), and
/// an oversized body 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_bodies_are_bounded_in_time_and_size() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db).token(Some(TOKEN.to_owned()))).await;
    let head = "POST /pools/db/resize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
                Content-Type: application/json\r\nConnection: close\r\n";
    let slow = stalled(
        served.addr,
        format!("{head}Content-Length: 100\r\n\r\n{{").as_bytes(),
    )
    .await;
    let t0 = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), read_all(&slow, &mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert!(t0.elapsed() < Duration::from_secs(14));
    let big = format!("{{\"max_size\": 3, \"x\": \"{}\"}}", "a".repeat(100_000));
    let r = reqwest::Client::new()
        .post(served.url("/pools/db/resize"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(db.stats().max_size, 2, "nothing changed");
    served.stop().await;
}

/// A malformed chunked body is a bad request (400), not "too large" (413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_is_a_bad_request() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db).token(Some(TOKEN.to_owned()))).await;
    let s = stalled(
        served.addr,
        b"POST /pools/db/resize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
          Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    )
    .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), read_all(&s, &mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert_eq!(db.stats().max_size, 2, "nothing changed");
    served.stop().await;
}

/// One GET /health by a well-behaved client, answered 200 within `limit`: how long it took.
async fn probe(served: &Served, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let client = reqwest::Client::builder().timeout(limit).build().unwrap();
    match client.get(served.url("/health")).send().await {
        Ok(r) if r.status() == 200 => Some(t0.elapsed()),
        _ => None,
    }
}

/// Clients that pipeline requests for the dashboard page and never read the answers, one
/// for every connection the server serves at once: the server's writes to them stall.
/// Each stalled connection is cut after 10 s without progress, and a newcomer makes the
/// oldest one close at once: others are served all along, and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_do_not_lock_others_out() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db)).await;
    let pipelined = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(500);
    let mut hold = Vec::new();
    for _ in 0..256 {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let s = sock.connect(served.addr).await.unwrap();
        send(&s, pipelined.as_bytes()).await.unwrap();
        hold.push(s);
    }
    let now = probe(&served, Duration::from_secs(3)).await;
    assert!(
        now.is_some(),
        "a probe behind 256 stalled readers went unanswered"
    );
    // Past the write timeout: the stalled connections are gone; probes still pass.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let later = probe(&served, Duration::from_secs(3)).await;
    assert!(later.is_some(), "a probe 12 s later went unanswered");
    let mut cut = 0;
    for s in &hold {
        let mut out = Vec::new();
        if tokio::time::timeout(Duration::from_millis(20), read_all(s, &mut out))
            .await
            .is_ok()
        {
            cut += 1;
        }
    }
    assert!(
        cut >= 250,
        "only {cut} of 256 stalled connections were closed"
    );
    drop(hold);
    tokio::time::timeout(Duration::from_secs(15), served.stop())
        .await
        .expect("shutdown");
}

/// A client holding as many silent sockets as the server serves at once (never a byte
/// sent) does not delay a well-behaved client: the newcomer is served at once, and the
/// oldest silent connection is closed to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_do_not_delay_others() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db)).await;
    let mut silent = Vec::new();
    for _ in 0..256 {
        silent.push(TcpStream::connect(served.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(probe(&served, Duration::from_secs(3)).await);
    }
    assert!(
        seen.iter()
            .all(|p| p.is_some_and(|d| d < Duration::from_secs(2))),
        "health probes behind 256 silent sockets: {seen:?}"
    );
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), read_all(&silent[0], &mut out))
        .await
        .expect("the oldest silent connection was not closed");
    drop(silent);
    tokio::time::timeout(Duration::from_secs(15), served.stop())
        .await
        .expect("shutdown");
}

/// On a runtime built without timers, `bind` is a typed error naming what to enable (the
/// server's limits run on tokio's timer), not a server that resets every request.
#[test]
fn a_runtime_without_timers_is_refused_at_bind() {
    let db = pool();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let r = rt.block_on(Admin::new().pool("db", &db).bind("127.0.0.1:0"));
    let err = r.expect_err("bound on a runtime without timers");
    assert!(matches!(err, riptide_admin::AdminError::NoTimer), "{err:?}");
    assert!(err.to_string().contains("enable_all"), "{err}");
}

/// An operator's drain (token given, 15 s timeout) is in flight when 256 anonymous
/// silent sockets connect: its connection, the oldest, is asked to close, but only after
/// its response: the drain completes when the object comes back at 12 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_do_not_cut_a_request_in_flight() {
    let db = pool();
    let held = db.get().await.unwrap();
    let served = Served::start(&Admin::new().pool("db", &db).token(Some(TOKEN.to_owned()))).await;
    let op = start_drain(served.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut silent = Vec::new();
    for _ in 0..256 {
        silent.push(TcpStream::connect(served.addr).await.unwrap());
    }
    // The object comes back after 12 s: the drain completes within its 15 s.
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        drop(held);
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), read_all(&op, &mut out)).await;
    releaser.await.unwrap();
    let out = String::from_utf8_lossy(&out);
    drop(silent);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "the operator's drain got no answer: {out:?}"
    );
    served.stop().await;
}

/// `n` clients that each sent the first byte of a request head, then nothing more.
async fn one_byte_heads(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        socks.push(stalled(addr, b"G").await);
    }
    socks
}

/// 600 sockets (more than the 256 connections served at once and as many closing) that
/// each sent one byte of a request head and then nothing: a health probe is still
/// answered at once, not after their 10 s head timeout, and the oldest of them were
/// closed to make room. (Client and server ends together need about 1,300 file
/// descriptors in this process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_twelve_one_byte_sockets_do_not_lock_out_a_probe() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db)).await;
    let partial = one_byte_heads(served.addr, 600).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let first = probe(&served, Duration::from_secs(15)).await;
    let waited = t0.elapsed();
    assert!(
        first.is_some_and(|d| d < Duration::from_secs(3)),
        "a health probe behind 600 one-byte heads: {first:?} (waited {waited:?})"
    );
    for _ in 0..3 {
        let p = probe(&served, Duration::from_secs(3)).await;
        assert!(
            p.is_some_and(|d| d < Duration::from_secs(2)),
            "a later probe: {p:?}"
        );
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(1), read_all(&partial[0], &mut out))
        .await
        .expect("the oldest one-byte head was not closed");
    drop(partial);
    tokio::time::timeout(Duration::from_secs(15), served.stop())
        .await
        .expect("shutdown");
}

/// An operator's drain is in flight when 600 sockets each send one byte of a request
/// head: a probe is answered at once meanwhile, and the drain is not cut: it completes
/// when the object comes back at 12 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_heads_past_the_cap_do_not_cut_a_request_in_flight() {
    let db = pool();
    let held = db.get().await.unwrap();
    let served = Served::start(&Admin::new().pool("db", &db).token(Some(TOKEN.to_owned()))).await;
    let op = start_drain(served.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let partial = one_byte_heads(served.addr, 600).await;
    // Answered at once (503 while the pool drains: any answer will do).
    let t0 = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let answer = client.get(served.url("/health")).send().await;
    let waited = t0.elapsed();
    assert!(
        answer.is_ok() && waited < Duration::from_secs(3),
        "a health probe beside a drain and 600 one-byte heads: {answer:?} after {waited:?}"
    );
    // The object comes back after 12 s: the drain completes within its 15 s.
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        drop(held);
    });
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), read_all(&op, &mut out)).await;
    releaser.await.unwrap();
    let out = String::from_utf8_lossy(&out);
    drop(partial);
    assert!(
        out.starts_with("HTTP/1.1 200"),
        "the operator's drain got no answer: {out:?}"
    );
    served.stop().await;
}

/// A client that reads its answers late (300 dashboard pages asked at once, some 7 MB,
/// more than the socket buffers hold, read a moment later) while 600 sockets each send
/// one byte of a request head: a response is still being written out to it, so its
/// connection is not dropped to make room for them, and every page arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_heads_past_the_cap_do_not_cut_a_response_being_written() {
    let db = pool();
    let served = Served::start(&Admin::new().pool("db", &db)).await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let reader = sock.connect(served.addr).await.unwrap();
    let pages = format!(
        "{}GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(299)
    );
    send(&reader, pages.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let partial = one_byte_heads(served.addr, 600).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), read_all(&reader, &mut out)).await;
    drop(partial);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        (
            out.matches("HTTP/1.1 200").count(),
            out.matches("</html>").count()
        ),
        (300, 300),
        "the pages arrived cut ({} bytes)",
        out.len()
    );
    assert!(out.ends_with("</html>\n"), "the last page arrived cut");
    served.stop().await;
}

/// Every connection served has a request in flight (256 writes waiting for their body),
/// and clients connect while the server is busy elsewhere for a moment: each of the
/// `GET /health` clients had sent its whole request head by the time it was accepted,
/// so each has a request in flight as the docs define it ("from its complete head"),
/// and the old server answered each (an evicted connection that never sent a request
/// was still served its first one). A silent client connecting after each makes room
/// by evicting it before its task first ran. Every probe must still get its answer.
#[test]
fn a_client_whose_head_arrived_before_its_first_poll_is_answered_when_evicted() {
    use std::io::{Read, Write};
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let db = pool();
            let server = Admin::new()
                .pool("db", &db)
                .token(Some(TOKEN.to_owned()))
                .bind("127.0.0.1:0")
                .await
                .unwrap();
            tx.send((server.local_addr(), tokio::runtime::Handle::current()))
                .unwrap();
            server
                .run_until(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let (addr, handle) = rx.recv().unwrap();
    // 256 writes in flight: heads sent, bodies never (each waits up to its 10 s).
    let mut busy = Vec::new();
    for _ in 0..256 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /pools/db/resize HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n\
              Content-Type: application/json\r\nContent-Length: 40\r\n\r\n",
        )
        .unwrap();
        busy.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    // The server's only thread is busy for 300 ms (a slow handler, a GC pause...).
    handle.spawn(async { std::thread::sleep(Duration::from_millis(300)) });
    std::thread::sleep(Duration::from_millis(50));
    let mut probes = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..20 {
        let mut p = std::net::TcpStream::connect(addr).unwrap();
        p.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        probes.push(p);
        silent.push(std::net::TcpStream::connect(addr).unwrap());
    }
    let mut unanswered = 0;
    let mut answers = Vec::new();
    for p in &mut probes {
        let mut out = Vec::new();
        let _ = p.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out).into_owned();
        if !out.starts_with("HTTP/1.1 200") {
            unanswered += 1;
        }
        answers.push(out.lines().next().unwrap_or("").to_owned());
    }
    drop(busy);
    drop(silent);
    let _ = stop_tx.send(());
    server.join().unwrap();
    assert_eq!(
        unanswered, 0,
        "probes whose whole request had arrived were cut unanswered: {answers:?}"
    );
}

/// The operator's token of the tests that drain.
const TOKEN: &str = "s3cret";

/// Starts an operator's drain of pool `db` (token given, 15 s timeout) on a connection of
/// its own, and returns that connection (its response comes when the drain ends).
async fn start_drain(addr: std::net::SocketAddr) -> TcpStream {
    let body = r#"{"timeout_ms":15000}"#;
    let op = TcpStream::connect(addr).await.unwrap();
    send(
        &op,
        format!(
            "POST /pools/db/drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    op
}
