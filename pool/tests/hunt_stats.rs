//! Defect hunt: stats counters are monotone.
mod common;

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
