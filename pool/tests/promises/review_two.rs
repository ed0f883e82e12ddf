//! Review probes of the removed-partition totals (`Part`'s drop) and of `drain` with
//! objects dropped away from the caller.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{PartitionedPool, Pool};

use super::discards::{Census, Connect};


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
