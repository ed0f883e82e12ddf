//! Pooling types the user does not own, without a wrapper: the std collections and
//! tokio's sockets the crate implements `Poolable` for, and any other type through
//! `Pool::custom` with its reset and health check given as closures.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riptide_pool::{DestroyReason, PartitionedPool, Pool, PoolEvent, Poolable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn std_collections_are_emptied_on_return_and_keep_their_allocation() {
    let pool: Pool<Vec<u8>> =
        Pool::builder(|| async { Ok::<_, std::io::Error>(Vec::with_capacity(64)) })
            .max_size(1)
            .build()
            .unwrap();
    let mut v = pool.get().await.unwrap();
    v.extend_from_slice(b"hello");
    drop(v);
    let v = pool.get().await.unwrap();
    assert!(v.is_empty());
    assert!(v.capacity() >= 64, "the allocation is kept");
    drop(v);

    let s: Pool<String> = Pool::builder(|| async { Ok::<_, std::io::Error>(String::new()) })
        .build()
        .unwrap();
    let mut g = s.get().await.unwrap();
    g.push('x');
    drop(g);
    assert!(s.try_get().unwrap().is_empty());

    let m: Pool<HashMap<u32, u32>> =
        Pool::builder(|| async { Ok::<_, std::io::Error>(HashMap::new()) })
            .build()
            .unwrap();
    m.get().await.unwrap().insert(1, 2);
    assert!(m.try_get().unwrap().is_empty());

    let q: Pool<VecDeque<u8>> =
        Pool::builder(|| async { Ok::<_, std::io::Error>(VecDeque::new()) })
            .build()
            .unwrap();
    q.get().await.unwrap().push_back(1);
    assert!(q.try_get().unwrap().is_empty());
}

#[cfg(feature = "bytes")]
#[test]
fn bytes_mut_is_emptied_on_return() {
    let mut b = bytes::BytesMut::with_capacity(16);
    b.extend_from_slice(b"abc");
    b.reset();
    assert!(b.is_empty());
}

/// A pool of real TCP connections to a local echo server.
async fn echo_pool() -> (Pool<TcpStream>, Arc<AtomicUsize>, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) if &buf[..n] == b"bye" => return, // the server hangs up
                        Ok(n) => {
                            if sock.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let pool = Pool::builder(move || TcpStream::connect(addr))
        .max_size(2)
        .build()
        .unwrap();
    (pool, accepted, addr)
}

#[tokio::test]
async fn a_tcp_stream_is_reused_while_quiet_and_destroyed_when_it_is_not() {
    let (pool, accepted, _) = echo_pool().await;
    let mut events = pool.events();
    // A full request/response: quiet on return, reused.
    let mut c = pool.get().await.unwrap();
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).await.unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the quiet connection was reused"
    );
    drop(c);

    // A reply left unread: it must not reach the next user.
    let mut c = pool.get().await.unwrap();
    c.write_all(b"ping").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the echo arrives
    drop(c);
    let destroyed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let PoolEvent::Destroyed { reason, .. } = events.recv().await.unwrap() {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(destroyed, DestroyReason::Unhealthy);

    // The peer hung up: not handed out again.
    let mut c = pool.get().await.unwrap();
    c.write_all(b"bye").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the close arrives
    drop(c);
    assert_eq!(pool.stats().idle, 0, "a closed connection is not kept");
    let mut c = pool.get().await.unwrap(); // a fresh connection
    c.write_all(b"ok").await.unwrap();
    let mut buf = [0u8; 2];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ok");
}

#[cfg(unix)]
#[tokio::test]
async fn a_unix_stream_with_unread_data_is_destroyed() {
    let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
    assert!(a.is_healthy());
    b.write_all(b"x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!a.is_healthy(), "unread data");
    drop(b);
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    drop(b);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!a.is_healthy(), "the peer closed");
}

/// A type from another crate with no `Poolable` impl.
struct Foreign {
    items: Vec<u32>,
    broken: bool,
}

#[tokio::test]
async fn any_type_is_pooled_with_closures() {
    let resets = Arc::new(AtomicUsize::new(0));
    let r = resets.clone();
    let pool: Pool<Foreign> = Pool::custom(|| async {
        Ok::<_, std::io::Error>(Foreign {
            items: Vec::new(),
            broken: false,
        })
    })
    .reset(move |f| {
        r.fetch_add(1, Ordering::SeqCst);
        f.items.clear();
    })
    .is_healthy(|f| !f.broken)
    .max_size(1)
    .build()
    .unwrap();
    let mut g = pool.get().await.unwrap();
    g.items.push(1);
    drop(g);
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    let mut g = pool.try_get().unwrap();
    assert!(g.items.is_empty());
    g.broken = true;
    drop(g);
    assert_eq!(pool.stats().size, 0, "the unhealthy object was destroyed");

    // Without closures: no reset, always healthy.
    let plain: Pool<Foreign> = Pool::custom(|| async {
        Ok::<_, std::io::Error>(Foreign {
            items: Vec::new(),
            broken: false,
        })
    })
    .build()
    .unwrap();
    plain.get().await.unwrap().items.push(9);
    assert_eq!(plain.try_get().unwrap().items, [9]);
}

#[tokio::test]
async fn closures_override_a_poolable_impl() {
    // `Vec`'s own reset clears it; this pool keeps the contents instead.
    let pool: Pool<Vec<u8>> = Pool::builder(|| async { Ok::<_, std::io::Error>(Vec::new()) })
        .reset(|v| v.truncate(1))
        .build()
        .unwrap();
    pool.get().await.unwrap().extend_from_slice(b"abc");
    assert_eq!(*pool.try_get().unwrap(), b"a");
}

#[tokio::test]
async fn partitions_pool_foreign_types_too() {
    let pp = PartitionedPool::custom(|k: u8| async move {
        Ok::<_, std::io::Error>(Foreign {
            items: vec![u32::from(k)],
            broken: false,
        })
    })
    .configure(|b| b.reset(|f: &mut Foreign| f.items.truncate(1)))
    .build()
    .unwrap();
    let mut g = pp.get(&3).await.unwrap();
    g.items.push(4);
    drop(g);
    assert_eq!(pp.get(&3).await.unwrap().items, [3]);
}
