//! Randomized stress: many tasks with random priorities, holds, timeouts, aborts, discards,
//! unhealthy returns, failing and slow creates and resizes; afterwards every counter must
//! add up and no object may be lost or duplicated.
//!
//! Runs a short round by default; `RIPTIDE_STRESS_SECS=300 cargo test --release -p
//! riptide-pool --test stress` runs for minutes.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_consistent, until, Census};
use rand::{Rng, SeedableRng};
use riptide_pool::{Pool, PoolError, Pooled, Priority};

fn secs() -> f64 {
    std::env::var("RIPTIDE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.5)
}

/// The timeout watchdog: an acquisition that outlives its deadline by more than this is a
/// failure (a lost wake-up or a dead timer), not a slow test. Generous, for a loaded
/// 2-core CI machine; a caller that waits forever fails it by any margin.
const WATCHDOG_MARGIN: Duration = Duration::from_millis(750);

/// Fails if an acquisition bounded by `timeout` took longer than `timeout` + the margin.
fn watchdog(started: Instant, timeout: Duration) {
    let took = started.elapsed();
    assert!(
        took <= timeout + WATCHDOG_MARGIN,
        "an acquisition with a {timeout:?} timeout took {took:?}: it outlived its deadline"
    );
}

/// Objects currently held by some task: an id seen twice means an object handed twice.
type Holders = Arc<Mutex<HashSet<usize>>>;

async fn worker(
    pool: Pool<common::Obj>,
    holders: Holders,
    stop: Arc<AtomicBool>,
    seed: u64,
    ops: Arc<AtomicUsize>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let prio = [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ][rng.random_range(0..4)];
        let timeout = Duration::from_micros(rng.random_range(50..5_000));
        let r = if rng.random_bool(0.2) {
            pool.try_get()
        } else {
            let t0 = Instant::now();
            let r = pool.acquire().priority(prio).timeout(timeout).await;
            watchdog(t0, timeout);
            r
        };
        match r {
            Ok(mut g) => {
                assert!(
                    holders.lock().unwrap().insert(g.id),
                    "object {} handed twice",
                    g.id
                );
                g.dirty = true;
                if rng.random_bool(0.5) {
                    tokio::task::yield_now().await;
                }
                if rng.random_bool(0.1) {
                    tokio::time::sleep(Duration::from_micros(rng.random_range(10..500))).await;
                }
                holders.lock().unwrap().remove(&g.id);
                match rng.random_range(0..40) {
                    0 => Pooled::discard(g),
                    1 => g.healthy = false,
                    2 => drop(Pooled::detach(g)),
                    _ => drop(g),
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(PoolError::Timeout | PoolError::Exhausted | PoolError::Create(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
}

async fn run(close_midway: bool) {
    let census = Arc::new(Census::default());
    let c = census.clone();
    let pool = Pool::builder(move || {
        let c = c.clone();
        async move {
            let delay = rand::rng().random_range(0..300);
            if delay > 250 {
                tokio::time::sleep(Duration::from_micros(delay)).await;
            }
            if rand::rng().random_bool(0.03) {
                return Err(std::io::Error::other("flaky backend"));
            }
            Ok(common::make(&c))
        }
    })
    .max_size(6)
    .starvation_threshold(Duration::from_millis(2))
    .build()
    .unwrap();

    let holders: Holders = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<_> = (0..48)
        .map(|i| {
            tokio::spawn(worker(
                pool.clone(),
                holders.clone(),
                stop.clone(),
                i,
                ops.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs_f64(secs());
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut closed = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..20))).await;
        // Abort and replace random tasks mid-flight (cancellation at arbitrary points).
        let k = rng.random_range(0..tasks.len());
        tasks[k].abort();
        tasks[k] = tokio::spawn(worker(
            pool.clone(),
            holders.clone(),
            stop.clone(),
            rng.random(),
            ops.clone(),
        ));
        if rng.random_bool(0.05) {
            pool.resize(rng.random_range(1..10));
        }
        if close_midway && !closed && rng.random_bool(0.05) {
            pool.close();
            closed = true;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    assert!(ops.load(Ordering::Relaxed) > 100, "the stress ran");
    // Creates spawned by cancelled callers may still be finishing.
    until(|| {
        let s = pool.stats();
        s.size == s.idle + s.in_use && s.in_use == 0
    })
    .await;
    assert_consistent(&pool);
    let s = pool.stats();
    assert_eq!(
        census.live.load(Ordering::SeqCst),
        s.size,
        "objects alive outside the pool: lost or leaked ({s:?})"
    );
    if closed {
        assert_eq!(s.size, 0);
    }
    drop(pool);
    assert_eq!(census.live.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_counters_add_up() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_with_close_at_a_random_moment() {
    run(true).await;
}

/// Threads using `get_blocking` and `try_get` against async tasks on the same pool.
#[test]
fn stress_blocking_and_async_together() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let census = Arc::new(Census::default());
    let pool = rt.block_on(async {
        common::builder(&census, Duration::ZERO)
            .max_size(3)
            .acquire_timeout(Duration::from_millis(2))
            .build()
            .unwrap()
    });
    let holders: Holders = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            rt.spawn(worker(
                pool.clone(),
                holders.clone(),
                stop.clone(),
                i,
                ops.clone(),
            ))
        })
        .collect();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (pool, holders, stop) = (pool.clone(), holders.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let r = pool.get_blocking();
                    watchdog(t0, Duration::from_millis(2));
                    if let Ok(g) = r {
                        assert!(holders.lock().unwrap().insert(g.id));
                        holders.lock().unwrap().remove(&g.id);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs().min(2.0)));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
        until(|| pool.stats().in_use == 0).await;
    });
    assert_consistent(&pool);
    assert_eq!(census.live.load(Ordering::SeqCst), pool.stats().size);
}
