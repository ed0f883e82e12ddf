//! `PartitionedPool` under hostile use: capacity freed by detach/discard, churn in one
//! key not starving a waiter of another, close with waiters everywhere, counters across
//! removals, min_idle knobs under the global cap.
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{PartitionedPool, PoolError, Poolable, Pooled};

struct Conn {
    key: u32,
    live: Arc<AtomicUsize>,
}
impl Poolable for Conn {}
impl Drop for Conn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Census {
    live: Arc<AtomicUsize>,
    peak: AtomicUsize,
    made: AtomicU64,
}

fn pool(
    c: &Arc<Census>,
    part: usize,
    global: usize,
) -> riptide_pool::PartitionedPoolBuilder<u32, Conn> {
    let c = c.clone();
    PartitionedPool::builder(move |key: u32| {
        let c = c.clone();
        async move {
            let n = c.live.fetch_add(1, Ordering::SeqCst) + 1;
            c.peak.fetch_max(n, Ordering::SeqCst);
            c.made.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Conn {
                key,
                live: c.live.clone(),
            })
        }
    })
    .partition_max_size(part)
    .max_size(global)
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not reached in 5 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detach_and_discard_free_global_capacity_at_once() {
    let c = Arc::new(Census::default());
    let pp = pool(&c, 1, 1)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in 0..200u32 {
        let g = pp.get(&(i % 3)).await.unwrap();
        assert_eq!(pp.global_size(), 1);
        if i % 2 == 0 {
            let obj = Pooled::detach(g);
            assert_eq!(pp.global_size(), 0, "round {i}: detach keeps the unit");
            drop(obj);
        } else {
            Pooled::discard(g);
            assert_eq!(pp.global_size(), 0, "round {i}: discard keeps the unit");
        }
    }
    let t = pp.totals();
    assert_eq!(t.acquired, 200);
    assert_eq!(t.created, 200);
}

/// Key 0 churns at its cap (= the global cap) with many callers; one caller of key 1
/// must still be served well within its deadline, every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_in_one_key_does_not_starve_another() {
    let c = Arc::new(Census::default());
    let pp = pool(&c, 2, 2)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let churn: Vec<_> = (0..6)
        .map(|_| {
            let (pp, stop) = (pp.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let g = pp.get(&0).await.unwrap();
                    tokio::task::yield_now().await;
                    drop(g);
                }
            })
        })
        .collect();
    for round in 0..100 {
        let g = pp
            .get(&1)
            .await
            .unwrap_or_else(|e| panic!("round {round}: key 1 starved: {e}"));
        assert_eq!(g.key, 1);
        drop(g);
    }
    stop.store(true, Ordering::Relaxed);
    for t in churn {
        t.await.unwrap();
    }
    assert!(c.peak.load(Ordering::SeqCst) <= 2);
}

/// `close` with callers queued in several partitions (some blocked on their own cap,
/// some on the global cap): every one gets `Closed` promptly; once the guards are back,
/// nothing is alive and the gate is at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_every_waiter_and_gives_everything_back() {
    for round in 0..100 {
        let c = Arc::new(Census::default());
        let pp = pool(&c, 2, 3)
            .acquire_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let held = vec![
            pp.get(&0).await.unwrap(),
            pp.get(&0).await.unwrap(),
            pp.get(&1).await.unwrap(),
        ];
        let waiters: Vec<_> = (0..8u32)
            .map(|i| {
                let pp = pp.clone();
                tokio::spawn(async move { pp.get(&(i % 4)).await.map(|_| ()) })
            })
            .collect();
        until("queued", || pp.totals().pending_acquisitions == 8).await;
        if round % 2 == 0 {
            pp.remove_idle_partitions();
        }
        pp.close();
        for w in waiters {
            let r = tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .unwrap_or_else(|_| panic!("round {round}: a waiter hung after close"))
                .unwrap();
            assert!(matches!(r, Err(PoolError::Closed)), "round {round}: {r:?}");
        }
        drop(held);
        until("all gone", || {
            pp.global_size() == 0 && c.live.load(Ordering::SeqCst) == 0
        })
        .await;
        assert!(matches!(pp.get(&9).await, Err(PoolError::Closed)));
    }
}

/// Keys come and go under a remover; a reader checks that the totals' counters never go
/// down and the caps hold; at the end the totals equal what callers and the factory saw.
#[test]
fn totals_count_every_checkout_and_create_across_removals() {
    let c = Arc::new(Census::default());
    let pp = pool(&c, 2, 3)
        .acquire_timeout(Duration::from_secs(10))
        .idle_timeout(Duration::from_millis(1))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..4)
        .map(|t| {
            let (pp, stop, served) = (pp.clone(), stop.clone(), served.clone());
            let h = rt.handle().clone();
            std::thread::spawn(move || {
                let mut r = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let key = (t + r) % 5;
                    r += 1;
                    let g = h.block_on(pp.get(&key)).unwrap();
                    served.fetch_add(1, Ordering::Relaxed);
                    if r % 7 == 0 {
                        Pooled::discard(g);
                    } else {
                        drop(g);
                    }
                }
            })
        })
        .collect();
    let remover = crate::common::remove_partitions_until(&pp, &stop);
    let mut last = pp.totals();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        let t = pp.totals();
        for (name, a, b) in [
            ("created", last.created, t.created),
            ("destroyed", last.destroyed, t.destroyed),
            ("acquired", last.acquired, t.acquired),
            ("timeouts", last.timeouts, t.timeouts),
        ] {
            assert!(b >= a, "{name} went down: {a} -> {b}");
        }
        assert!(pp.global_size() <= 3);
        last = t;
    }
    stop.store(true, Ordering::Relaxed);
    for t in callers {
        t.join().unwrap();
    }
    remover.join().unwrap();
    assert!(c.peak.load(Ordering::SeqCst) <= 3);
    let t = pp.totals();
    assert_eq!(t.acquired, served.load(Ordering::SeqCst), "{t:?}");
    assert_eq!(t.created, c.made.load(Ordering::SeqCst), "{t:?}");
    rt.block_on(until("settled", || {
        let t = pp.totals();
        t.in_use == 0 && t.created - t.destroyed == t.size as u64
    }));
    assert_eq!(pp.global_size(), pp.totals().size);
    assert_eq!(c.live.load(Ordering::SeqCst), pp.totals().size);
}

/// `min_idle` applied to every partition through `configure`, adding up past the global
/// cap: the cap holds and a caller of a new key is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_idle_knob_beyond_the_global_cap() {
    let c = Arc::new(Census::default());
    let pp = pool(&c, 3, 4)
        .acquire_timeout(Duration::from_secs(5))
        .configure(|b| b.min_idle(2))
        .build()
        .unwrap();
    for i in 0..200u32 {
        let g = pp
            .get(&(i % 5))
            .await
            .unwrap_or_else(|e| panic!("{i}: {e}"));
        assert!(pp.global_size() <= 4);
        drop(g);
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert!(
        c.peak.load(Ordering::SeqCst) <= 4,
        "peak {}",
        c.peak.load(Ordering::SeqCst)
    );
}

/// Leak reports of a partitioned checkout name the caller's line, for `acquire().await`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leak_location_of_a_partition_acquire_with_options() {
    let c = Arc::new(Census::default());
    let pp = pool(&c, 2, 4)
        .configure(|b| b.leak_threshold(Duration::from_millis(20)))
        .build()
        .unwrap();
    let _warm = pp.get(&1).await.unwrap();
    let mut rx = pp.events(&1).unwrap();
    let (g, line) = (
        pp.acquire(&1)
            .priority(riptide_pool::Priority::High)
            .timeout(Duration::from_secs(1))
            .await
            .unwrap(),
        line!(),
    );
    let id = Pooled::id(&g);
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(riptide_pool::PoolEvent::LeakSuspected {
                id: i, location, ..
            }) = rx.recv().await
            {
                if i == id {
                    return location;
                }
            }
        }
    })
    .await
    .expect("no leak report");
    assert_eq!(found.file(), file!());
    assert_eq!(found.line(), line - 5);
    drop(g);
}

/// Three keys, each with its own queue, churn at the global cap: every caller of every
/// key is served within its deadline (no key keeps all units for its own queue).
#[tokio::test(flavor = "current_thread")]
async fn keys_with_queues_of_their_own_all_progress_at_the_global_cap() {
    let c = Arc::new(Census::default());
    let pp = pool(&c, 2, 2)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let served: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let tasks: Vec<_> = (0..9u32)
        .map(|i| {
            let (pp, served) = (pp.clone(), served.clone());
            tokio::spawn(async move {
                for _ in 0..100 {
                    let key = i % 3;
                    let g = pp
                        .get(&key)
                        .await
                        .unwrap_or_else(|e| panic!("key {key} starved: {e}"));
                    served[key as usize].fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                    drop(g);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    for (k, n) in served.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 300, "key {k}");
    }
    assert!(c.peak.load(Ordering::SeqCst) <= 2);
    until("settled", || pp.totals().in_use == 0).await;
    assert_eq!(pp.global_size(), pp.totals().size);
}
