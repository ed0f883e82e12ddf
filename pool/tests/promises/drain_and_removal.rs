//! `drain` returns Ok only when every object is gone (reclaimed checkouts and objects
//! dropped away from the caller included), and a removed partition's counters reach the
//! totals exactly once, whoever still holds the partition.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{PartitionedPool, Pool, Poolable, Pooled};

use super::discards::{Census, Connect};

struct Plain;
impl Poolable for Plain {}

/// A reclaimed checkout (`reclaim_leaked`) no longer counts in `size`; when its guard
/// finally comes back into a draining pool, its object is destroyed. `drain` must not
/// report Ok while that object's slow `Drop` is still running.
#[test]
fn drain_waits_for_a_reclaimed_checkouts_slow_drop() {
    let rt = crate::common::runtime(true);
    let c = Arc::new(Census::default());
    rt.block_on(async {
        let pool = Pool::builder(Connect(c.clone()))
            .max_size(1)
            .reclaim_leaked(Duration::from_millis(20))
            .build()
            .unwrap();
        let g = pool.get().await.unwrap();
        // Reclaimed: the capacity came back while the guard is still out.
        crate::common::until(|| pool.stats().size == 0).await;
        assert_eq!(pool.checked_out().len(), 1);
        c.drop_ms.store(400, Ordering::SeqCst);
        let back = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(g);
        });
        let start = Instant::now();
        pool.drain(Duration::from_secs(5)).await.unwrap();
        let (live, took) = (c.live.load(Ordering::SeqCst), start.elapsed());
        back.join().unwrap();
        assert_eq!(
            live, 0,
            "drain returned Ok after {took:?} with the reclaimed object still alive"
        );
    });
}

/// The same for a partitioned pool.
#[test]
fn partitioned_drain_waits_for_a_reclaimed_checkouts_slow_drop() {
    let rt = crate::common::runtime(true);
    let c = Arc::new(Census::default());
    rt.block_on(async {
        let f = Connect(c.clone());
        let pp = PartitionedPool::custom(move |_: u32| {
            let f = f.clone();
            async move { riptide_pool::Factory::create(&f).await }
        })
        .partition_max_size(1)
        .max_size(2)
        .configure(|b| b.reclaim_leaked(Duration::from_millis(20)))
        .build()
        .unwrap();
        let g = pp.get(&1).await.unwrap();
        crate::common::until(|| pp.totals().size == 0).await;
        assert_eq!(pp.checked_out().len(), 1);
        c.drop_ms.store(400, Ordering::SeqCst);
        let back = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(g);
        });
        let start = Instant::now();
        pp.drain(Duration::from_secs(5)).await.unwrap();
        let (live, took) = (c.live.load(Ordering::SeqCst), start.elapsed());
        back.join().unwrap();
        assert_eq!(
            live, 0,
            "drain returned Ok after {took:?} with the reclaimed object still alive"
        );
    });
}

/// A removed partition's counters are in the totals from its removal on, even while an
/// acquisition made before the removal (not yet polled) still holds the partition: the
/// totals must not stall at the highest reported while other keys keep counting.
#[tokio::test]
async fn a_removed_partitions_counts_are_in_the_totals_while_a_future_holds_it() {
    let pp = PartitionedPool::builder(|_: u32| async { Ok::<_, std::io::Error>(Plain) })
        .partition_max_size(1)
        .max_size(4)
        .build()
        .unwrap();
    for _ in 0..5 {
        drop(pp.get(&1).await.unwrap());
    }
    let g = pp.get(&1).await.unwrap();
    // Made before the removal, polled after it.
    let held = pp.get(&1);
    let _ = Pooled::detach(g);
    let before = pp.totals();
    assert_eq!((before.created, before.acquired), (1, 6));
    assert_eq!(pp.remove_idle_partitions(), 1);
    for _ in 0..3 {
        drop(pp.get(&2).await.unwrap());
    }
    let t = pp.totals();
    drop(held);
    let after = pp.totals();
    assert_eq!(
        (t.created, t.acquired),
        (2, 9),
        "totals while the future holds the removed partition (after it went: {}, {})",
        after.created,
        after.acquired
    );
}

/// Partitions removed and made again under callers that acquire, detach (so the
/// partition is empty and removable at once) and time out: the totals never go down
/// while it runs, and once it is quiet they count every checkout, create and timeout
/// exactly once, every create and destroy once (a removed partition's counters added at removal and what it counted
/// afterwards at its last holder's drop: neither twice nor lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churned_partitions_count_every_checkout_once_and_totals_never_go_down() {
    use std::sync::atomic::AtomicBool;
    let pp = PartitionedPool::builder(|_: u32| async { Ok::<_, std::io::Error>(Plain) })
        .partition_max_size(1)
        .max_size(2)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let remover = crate::common::remove_partitions_until(&pp, &stop);
    let reader = {
        let (pp, stop) = (pp.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut last = pp.totals();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = pp.totals();
                for (name, a, b) in [
                    ("created", last.created, t.created),
                    ("destroyed", last.destroyed, t.destroyed),
                    ("acquired", last.acquired, t.acquired),
                    ("timeouts", last.timeouts, t.timeouts),
                ] {
                    assert!(b >= a, "{name} went down: {a} -> {b}");
                }
                last = t;
                reads += 1;
            }
            reads
        })
    };
    let tasks: Vec<_> = (0..4u32)
        .map(|t| {
            let pp = pp.clone();
            tokio::spawn(async move {
                let (mut got, mut timeouts) = (0u64, 0u64);
                for i in 0..300u32 {
                    let wait = Duration::from_millis(u64::from(i % 3));
                    match pp.acquire(&(t % 2 * 10 + i % 3)).timeout(wait).await {
                        Ok(g) => {
                            got += 1;
                            if i % 2 == 0 {
                                tokio::task::yield_now().await;
                            }
                            let _ = Pooled::detach(g);
                        }
                        Err(riptide_pool::PoolError::Timeout) => timeouts += 1,
                        Err(riptide_pool::PoolError::Closed) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
                (got, timeouts)
            })
        })
        .collect();
    let (mut got, mut timeouts) = (0, 0);
    for t in tasks {
        let (g, to) = t.await.unwrap();
        got += g;
        timeouts += to;
    }
    stop.store(true, Ordering::SeqCst);
    remover.join().unwrap();
    let reads = reader.join().unwrap();
    assert!(reads > 0 && got > 0);
    // A create whose caller timed out goes on; its object lands idle and is evicted for
    // another key, or, landing after the last caller, stays idle: created may exceed the
    // checkouts, never fall short of them. Wait for such creates to land.
    crate::common::until(|| {
        let t = pp.totals();
        t.size == t.idle
    })
    .await;
    let t = pp.totals();
    assert_eq!(
        (t.acquired, t.timeouts, t.in_use),
        (got, timeouts, 0),
        "callers got {got} objects and {timeouts} timeouts: {t:?}"
    );
    assert!(
        t.created >= got && t.destroyed + t.size as u64 == t.created,
        "callers got {got} objects: {t:?}"
    );
}

/// `drain` racing a `close` (which drops the idle objects on its own thread) and a
/// shrinking `resize`, with slow `Drop`s: whichever closes first, `drain` reports Ok only
/// once every object is gone, and the counters then add up.
#[test]
fn drain_racing_close_and_resize_returns_only_when_every_object_is_gone() {
    let rt = crate::common::runtime(true);
    for round in 0..4u64 {
        let c = Arc::new(Census::default());
        let pool = super::discards::pool(&c, 4);
        rt.block_on(async {
            let held = crate::common::take_n(&pool, 4).await;
            drop(held);
        });
        assert_eq!(pool.stats().idle, 4);
        c.drop_ms.store(60, Ordering::SeqCst);
        let (p1, p2) = (pool.clone(), pool.clone());
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(round % 2));
            p1.close();
        });
        let resizer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(round / 2));
            p2.resize(1);
        });
        let r = rt.block_on(pool.drain(Duration::from_secs(10)));
        let live = c.live.load(Ordering::SeqCst);
        closer.join().unwrap();
        resizer.join().unwrap();
        r.unwrap();
        assert_eq!(
            live, 0,
            "round {round}: drain returned Ok with {live} alive"
        );
        let s = pool.stats();
        assert_eq!((s.size, s.created, s.destroyed), (0, 4, 4), "{s:?}");
    }
}

/// An idle object maintenance evicts is dropped aside and keeps its capacity, local and
/// global, until its `Drop` ends: meanwhile its partition is not removed (it is not
/// empty), and another key waiting on the global cap gets its object only afterwards.
#[test]
fn a_partition_is_not_removed_while_its_evicted_object_is_still_dropping() {
    use std::sync::atomic::AtomicBool;
    let rt = crate::common::runtime(true);
    let c = Arc::new(Census::default());
    let f = Connect(c.clone());
    let pp = rt.block_on(async {
        let pp = PartitionedPool::builder(move |_: u32| {
            let f = f.clone();
            async move { riptide_pool::Factory::create(&f).await }
        })
        .partition_max_size(1)
        .max_size(1)
        .idle_timeout(Duration::from_millis(30))
        .build()
        .unwrap();
        drop(pp.get(&1).await.unwrap());
        pp
    });
    c.drop_ms.store(300, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let remover = crate::common::remove_partitions_until(&pp, &stop);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.dropping.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "never evicted");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (pp2, c2) = (pp.clone(), c.clone());
    let other = rt.spawn(async move {
        pp2.acquire(&2)
            .timeout(Duration::from_secs(3))
            .await
            .map(|_g| c2.live.load(Ordering::SeqCst))
    });
    let mut checks = 0;
    while c.dropped.load(Ordering::SeqCst) == 0 {
        let (present, global) = (pp.stats(&1).is_some(), pp.global_size());
        if c.dropped.load(Ordering::SeqCst) == 0 {
            assert!(present, "partition 1 removed while its object was dropping");
            assert_eq!(
                global, 1,
                "its global unit given back while it was dropping"
            );
            checks += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let live_when_served = rt.block_on(other).unwrap().unwrap();
    stop.store(true, Ordering::SeqCst);
    remover.join().unwrap();
    assert!(checks > 10, "{checks}");
    assert_eq!(live_when_served, 1);
    assert_eq!(c.max_live.load(Ordering::SeqCst), 1);
}
