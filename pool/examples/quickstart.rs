//! `cargo run --release --example quickstart`
//!
//! Real work: an echo server on 127.0.0.1 (started here), a pool of TCP connections to
//! it, and 200 concurrent requests at three priorities sharing 8 connections. Prints each
//! priority's latency and the pool's stats: 8 connections made for 200 requests.

use std::time::{Duration, Instant};

use riptide_pool::{Pool, Poolable, Priority};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A pooled connection with a reusable read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    broken: bool,
}

impl Poolable for Conn {
    fn reset(&mut self) {
        self.buf.clear(); // keep the allocation, drop the last response
    }
    fn is_healthy(&self) -> bool {
        !self.broken // a connection that saw an I/O error is not reused
    }
}

impl Conn {
    async fn echo(&mut self, msg: &[u8]) -> std::io::Result<&[u8]> {
        let r = async {
            self.stream.write_all(msg).await?;
            self.buf.resize(msg.len(), 0);
            self.stream.read_exact(&mut self.buf).await?;
            Ok::<_, std::io::Error>(())
        }
        .await;
        self.broken = r.is_err();
        r.map(|()| &self.buf[..])
    }
}

async fn echo_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = echo_server().await?;
    let pool: Pool<Conn> = Pool::builder(move || async move {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(Conn {
            stream,
            buf: Vec::with_capacity(256),
            broken: false,
        })
    })
    .max_size(8)
    .acquire_timeout(Duration::from_secs(5))
    .build()?;
    pool.warm_up(2).await?;

    let t0 = Instant::now();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let pool = pool.clone();
            let prio = [Priority::Low, Priority::Normal, Priority::High][i % 3];
            tokio::spawn(async move {
                let start = Instant::now();
                let mut conn = pool.acquire().priority(prio).await?;
                let msg = format!("request {i:03}");
                let reply = conn.echo(msg.as_bytes()).await?;
                assert_eq!(reply, msg.as_bytes());
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((prio, start.elapsed()))
            })
        })
        .collect();
    let mut by_prio: [(u32, Duration); 3] = Default::default();
    for t in tasks {
        let (prio, took) = t.await?.map_err(|e| e.to_string())?;
        let e = &mut by_prio[prio as usize];
        e.0 += 1;
        e.1 += took;
    }
    println!(
        "200 echo requests over pooled connections in {:?}",
        t0.elapsed()
    );
    for (name, (n, total)) in ["low", "normal", "high"].iter().zip(by_prio) {
        println!("  {name:>6}: {n} requests, mean {:?}", total / n.max(1));
    }
    let s = pool.stats();
    println!(
        "pool: {} connections made for {} checkouts; idle {}, in use {}, waiting {}; wait p50 {:?} p99 {:?}",
        s.created, s.acquired, s.idle, s.in_use, s.pending_acquisitions, s.wait_p50, s.wait_p99
    );
    println!("health: {:?}", pool.health());
    assert!(s.created <= 8);
    Ok(())
}
