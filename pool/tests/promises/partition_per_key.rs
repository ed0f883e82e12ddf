//! One key of a partitioned pool used as a `Pool` is: `try_get` never waits, creates or
//! evicts; `get_blocking` serves threads without a runtime; `warm_up` fills a key from free
//! capacity only.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{PartitionedPool, PoolError, Poolable};

struct Unit;
impl Poolable for Unit {}

fn counted(made: &Arc<AtomicUsize>, per_key: usize, global: usize) -> PartitionedPool<u32, Unit> {
    let made = made.clone();
    PartitionedPool::builder(move |_k: u32| {
        let made = made.clone();
        async move {
            made.fetch_add(1, SeqCst);
            Ok::<_, std::io::Error>(Unit)
        }
    })
    .partition_max_size(per_key)
    .max_size(global)
    .build()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_get_never_waits_creates_or_evicts() {
    let made = Arc::new(AtomicUsize::new(0));
    let pp = counted(&made, 2, 2);
    assert!(
        matches!(pp.try_get(&1), Err(PoolError::Exhausted)),
        "no partition yet"
    );
    drop(pp.get(&1).await.unwrap());
    let g = pp.try_get(&1).unwrap();
    assert!(
        matches!(pp.try_get(&1), Err(PoolError::Exhausted)),
        "one object, held"
    );
    drop(g);
    // Key 2 holds the rest of the global cap, idle: key 1's `try_get` takes none of it.
    drop(pp.get(&2).await.unwrap());
    let g = pp.try_get(&1).unwrap();
    assert!(matches!(pp.try_get(&1), Err(PoolError::Exhausted)));
    assert_eq!(made.load(SeqCst), 2, "try_get created");
    let s2 = pp.stats(&2).unwrap();
    assert_eq!((s2.idle, s2.destroyed), (1, 0), "try_get evicted: {s2:?}");
    drop(g);
    pp.close();
    assert!(matches!(pp.try_get(&1), Err(PoolError::Closed)));
    assert!(matches!(pp.try_get(&3), Err(PoolError::Closed)));
}

#[test]
fn get_blocking_serves_threads_without_a_runtime() {
    let made = Arc::new(AtomicUsize::new(0));
    let pp = counted(&made, 1, 4);
    let threads: Vec<_> = (0..4u32)
        .map(|k| {
            let pp = pp.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    drop(pp.get_blocking(&(k % 2)).unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(made.load(SeqCst) <= 2, "one object per key");
    // A key at its cap: the blocking caller waits up to its timeout, then `Timeout`.
    let held = pp.get_blocking(&0).unwrap();
    let t0 = Instant::now();
    let r = pp
        .acquire(&0)
        .timeout(Duration::from_millis(100))
        .blocking();
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop(held);
    pp.get_blocking(&0).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_fills_a_key_from_free_capacity_only() {
    let made = Arc::new(AtomicUsize::new(0));
    let pp = counted(&made, 4, 5);
    assert_eq!(pp.warm_up(&1, 3).await.unwrap(), 3);
    assert_eq!(pp.stats(&1).unwrap().idle, 3);
    assert_eq!(pp.warm_up(&1, 3).await.unwrap(), 0, "already warm");
    // Two units of the global cap are left: key 2 gets them, and key 1 keeps its three.
    assert_eq!(pp.warm_up(&2, 4).await.unwrap(), 2);
    let s1 = pp.stats(&1).unwrap();
    assert_eq!((s1.idle, s1.destroyed), (3, 0), "{s1:?}");
    assert_eq!(pp.global_size(), 5);
    // The warmed objects serve without creating.
    let before = made.load(SeqCst);
    drop(pp.try_get(&2).unwrap());
    assert_eq!(made.load(SeqCst), before);
    pp.close();
    assert!(matches!(pp.warm_up(&1, 1).await, Err(PoolError::Closed)));
}
