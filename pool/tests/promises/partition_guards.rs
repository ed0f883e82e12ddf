//! Guards in partitions: panics in reset/Drop, refused and accepted detaches, user panics
//! while holding, all give the global unit back exactly once; deadlines of keys blocked on
//! the global cap hold while partitions are removed under them, and every timeout they get
//! is in the totals.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use riptide_pool::{PartitionedPool, Poolable, Pooled};

static PANIC_RESET: AtomicBool = AtomicBool::new(false);
static PANIC_DROP: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);

struct Obj(u32);
impl Poolable for Obj {
    fn reset(&mut self) {
        if PANIC_RESET.load(Ordering::SeqCst) {
            panic!("reset boom");
        }
    }
}
impl Drop for Obj {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
        if PANIC_DROP.load(Ordering::SeqCst) && !std::thread::panicking() {
            panic!("drop boom");
        }
    }
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(5), "{what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn panics_in_reset_and_drop_give_the_global_unit_back() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pp = rt.block_on(async {
        PartitionedPool::builder(|k: u32| async move {
            LIVE.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Obj(k))
        })
        .partition_max_size(1)
        .max_size(1)
        .acquire_timeout(Duration::from_secs(5))
        .configure(|b| {
            b.on_detach(|o: &mut Obj, _| {
                if o.0 == 7 {
                    Err("seven stays".into())
                } else {
                    Ok(())
                }
            })
        })
        .build()
        .unwrap()
    });
    for i in 0..300u32 {
        let key = i % 9;
        let g = rt
            .block_on(pp.get(&key))
            .unwrap_or_else(|e| panic!("{i}: {e}"));
        assert_eq!(g.0, key);
        match i % 5 {
            0 => {
                PANIC_RESET.store(true, Ordering::SeqCst);
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(g)));
                PANIC_RESET.store(false, Ordering::SeqCst);
                assert!(r.is_err());
            }
            1 => {
                PANIC_DROP.store(true, Ordering::SeqCst);
                Pooled::discard(g);
                PANIC_DROP.store(false, Ordering::SeqCst);
            }
            2 => match Pooled::try_detach(g) {
                Ok(o) => drop(o),
                Err((g, _)) => {
                    assert_eq!(key, 7);
                    drop(g)
                }
            },
            3 => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _g = g;
                    panic!("user panic while holding");
                }));
                assert!(r.is_err());
            }
            _ => drop(g),
        }
        wait("unit back", || pp.totals().in_use == 0);
        assert!(pp.global_size() <= 1, "{i}");
    }
    wait("settled", || pp.global_size() == pp.totals().size);
    assert_eq!(LIVE.load(Ordering::SeqCst), pp.totals().size);
    let t = pp.totals();
    assert_eq!(t.acquired, 300);
    assert_eq!(t.created - t.destroyed, t.size as u64, "{t:?}");
}

struct Plain;
impl Poolable for Plain {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_hold_for_keys_blocked_on_the_global_cap_while_partitions_churn() {
    let pp = PartitionedPool::builder(|_: u32| async move { Ok::<_, std::io::Error>(Plain) })
        .partition_max_size(2)
        .max_size(2)
        .build()
        .unwrap();
    let held = [pp.get(&100).await.unwrap(), pp.get(&100).await.unwrap()];
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let remover = crate::common::remove_partitions_until(&pp, &stop);
    let tasks: Vec<_> = (0..20u32)
        .map(|i| {
            let pp = pp.clone();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = pp
                    .acquire(&(i % 4))
                    .timeout(Duration::from_millis(100))
                    .await;
                (r.map(|_| ()), t0.elapsed())
            })
        })
        .collect();
    let mut timeouts = 0;
    for t in tasks {
        let (r, took) = t.await.unwrap();
        assert!(matches!(r, Err(riptide_pool::PoolError::Timeout)), "{r:?}");
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(3), "deadline overrun: {took:?}");
        timeouts += 1;
    }
    stop.store(true, Ordering::Relaxed);
    remover.join().unwrap();
    let t = pp.totals();
    assert_eq!(t.timeouts, timeouts, "{t:?}");
    assert_eq!(t.pending_acquisitions, 0);
    drop(held);
}

/// Callers timing out in partitions that are removed under them (the global cap is full,
/// so each partition holds nothing and its queue empties as each timeout is decided): every
/// timeout a caller gets is in the totals, none lost with a removed partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_timeouts_are_never_lost_to_a_removal() {
    let pp = PartitionedPool::builder(|_: u32| async { Ok::<_, std::io::Error>(Plain) })
        .partition_max_size(1)
        .max_size(1)
        .build()
        .unwrap();
    let held = pp.get(&100).await.unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let remover = crate::common::remove_partitions_until(&pp, &stop);
    let tasks: Vec<_> = (0..4u32)
        .map(|t| {
            let pp = pp.clone();
            tokio::spawn(async move {
                let mut timeouts = 0u64;
                for i in 0..300u32 {
                    let wait = Duration::from_millis(u64::from(i % 2));
                    match pp.acquire(&(t * 1000 + i % 3)).timeout(wait).await {
                        Err(riptide_pool::PoolError::Timeout) => timeouts += 1,
                        Err(riptide_pool::PoolError::Closed) => {}
                        r => panic!("{:?}", r.map(drop)),
                    }
                }
                timeouts
            })
        })
        .collect();
    let mut timeouts = 0;
    for t in tasks {
        timeouts += t.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    remover.join().unwrap();
    assert!(timeouts > 0);
    let t = pp.totals();
    assert_eq!(
        t.timeouts, timeouts,
        "callers got {timeouts} timeouts, the totals count {}",
        t.timeouts
    );
    drop(held);
}
