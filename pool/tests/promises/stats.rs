//! The stats' counters never go down, whatever happens to objects and partitions.
use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{builder, Census};

/// `acquired` counts successful checkouts since build: it may never go down, whatever
/// happens to objects meanwhile. Objects here are retired after every use (`max_uses(1)`),
/// so every return destroys one, while another thread reads `stats()` in a loop.
#[test]
fn acquired_never_goes_down_while_objects_are_retired() {
    let census = Arc::new(Census::default());
    let rt = common::runtime(true);
    let pool = rt.block_on(async {
        builder(&census, Duration::ZERO)
            .max_size(4)
            .max_uses(1)
            .build()
            .unwrap()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (p, stop) = (pool.clone(), stop.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let g = p.get_blocking().unwrap();
                drop(g);
            }
        }));
    }
    let t0 = Instant::now();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut bad = None;
    let mut reads = 0u64;
    while t0.elapsed() < Duration::from_secs(3) && bad.is_none() {
        let s = pool.stats();
        reads += 1;
        let now = (s.acquired, s.created, s.destroyed, s.timeouts);
        if now.0 < last.0 || now.1 < last.1 || now.2 < last.2 || now.3 < last.3 {
            bad = Some((last, now, s));
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    if let Some((before, after, s)) = bad {
        panic!("a counter went down after {reads} reads: (acquired, created, destroyed, timeouts) {before:?} -> {after:?}; {s:?}");
    }
    let s = pool.stats();
    assert_eq!(s.acquired, s.created, "each object was used once: {s:?}");
}

/// A partitioned pool's totals keep counting what removed partitions did: the counters
/// (exported as Prometheus counters by the admin) never go down as idle partitions are
/// removed, while keys come and go on other threads.
#[test]
fn partition_totals_never_go_down_as_partitions_are_removed() {
    let rt = common::runtime(true);
    let census = Arc::new(Census::default());
    let c = census.clone();
    let pp = rt.block_on(async {
        riptide_pool::PartitionedPool::builder(move |_key: u32| {
            let c = c.clone();
            async move { Ok::<_, std::io::Error>(common::make(&c)) }
        })
        .max_size(8)
        .configure(|b| b.max_uses(1))
        .build()
        .unwrap()
    });
    // One checkout on key 0, whose object is retired on return: the partition is empty.
    drop(rt.block_on(pp.get(&0)).unwrap());
    let before = pp.totals();
    assert_eq!((before.created, before.acquired), (1, 1), "{before:?}");
    assert_eq!(pp.remove_idle_partitions(), 1);
    let after = pp.totals();
    assert_eq!(
        (after.created, after.destroyed, after.acquired),
        (before.created, before.destroyed, before.acquired),
        "a removed partition's counts left the totals: {after:?}"
    );

    // Keys coming and going on two threads, a remover, and a reader.
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..2u32 {
        let (pp, stop, rt) = (pp.clone(), stop.clone(), rt.handle().clone());
        threads.push(std::thread::spawn(move || {
            let mut k = t;
            while !stop.load(Ordering::Relaxed) {
                drop(rt.block_on(pp.get(&(k % 16))).unwrap());
                k += 2;
            }
        }));
    }
    {
        let (pp, stop) = (pp.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                pp.remove_idle_partitions();
                std::thread::yield_now();
            }
        }));
    }
    let t0 = Instant::now();
    let mut last = pp.totals();
    let mut bad = None;
    while t0.elapsed() < Duration::from_secs(2) && bad.is_none() {
        let now = pp.totals();
        let went_down = now.created < last.created
            || now.destroyed < last.destroyed
            || now.acquired < last.acquired
            || now.timeouts < last.timeouts;
        if went_down {
            bad = Some((last, now));
        }
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    if let Some((before, after)) = bad {
        panic!("a total went down: {before:?} -> {after:?}");
    }
    pp.remove_idle_partitions();
    let end = pp.totals();
    assert_eq!(
        end.acquired, end.created,
        "every object served once: {end:?}"
    );
    assert_eq!(end.destroyed, end.created, "every object retired: {end:?}");
}
