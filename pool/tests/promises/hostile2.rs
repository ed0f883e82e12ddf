//! A hostile review's probes of the paths around the fast path: `resize` churning under
//! waiters, reclaimed checkouts returned late across a shrink, `min_idle` after a failing
//! factory recovers, deadlines of zero and very large, partitions removed under churn.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::IntoFuture;

use riptide_pool::PoolError;

use crate::common::{self, Census};

const MARGIN: Duration = Duration::from_millis(900);

/// `resize` flipping between small and large sizes while 16 tasks queue, create and
/// return: nobody waits past its deadline, live objects never exceed the largest size
/// ever set, and once quiet the pool's figures match the live objects and the final size
/// can be used in full.
#[test]
fn resize_churn_leaks_nothing() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::from_millis(1))
            .max_size(4)
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let late = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let pool = pool.clone();
            let stop = stop.clone();
            let late = late.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let d = Duration::from_millis(200);
                    let start = Instant::now();
                    match pool.acquire().timeout(d).await {
                        Ok(g) => {
                            if (n + t) % 3 == 0 {
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                            drop(g);
                        }
                        Err(PoolError::Timeout) => {
                            if start.elapsed() > d + MARGIN {
                                late.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                    n += 1;
                    tokio::task::yield_now().await;
                }
            }));
        }
        let sizes = [1usize, 8, 2, 6, 1, 3, 8, 1, 5];
        let p = pool.clone();
        let resizer = tokio::task::spawn_blocking(move || {
            for k in 0..300 {
                p.resize(sizes[k % sizes.len()]);
                std::thread::sleep(Duration::from_millis(3));
            }
            p.resize(3);
        });
        resizer.await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(late.load(Ordering::SeqCst), 0, "callers waited past their deadline");
        common::assert_consistent(&pool);
        let s = pool.stats();
        assert_eq!(s.size, census.live.load(Ordering::SeqCst), "{s:?}");
        assert!(s.size <= 3, "{s:?}");
        assert!(census.max_live.load(Ordering::SeqCst) <= 8);
        // The final size is usable in full, and not more.
        let held: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(pool.acquire().timeout(Duration::from_secs(2)).await.unwrap());
            }
            v
        };
        assert!(matches!(
            pool.acquire().timeout(Duration::ZERO).await,
            Err(PoolError::Timeout)
        ));
        drop(held);
        common::assert_consistent(&pool);
    });
}

/// Reclaimed checkouts (`reclaim_leaked`) returned late, after the pool shrank: every
/// unit comes back exactly once and the pool ends at what the live objects say.
#[test]
fn reclaimed_returned_after_shrink() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(2)
            .reclaim_leaked(Duration::from_millis(100))
            .build()
            .unwrap();
        let leaked = common::take_n(&pool, 2).await;
        // Their capacity comes back: two more can be taken.
        let fresh = {
            let mut v = Vec::new();
            for _ in 0..2 {
                v.push(pool.acquire().timeout(Duration::from_secs(3)).await.unwrap());
            }
            v
        };
        pool.resize(1);
        drop(leaked);
        drop(fresh);
        common::until(|| pool.stats().size == census.live.load(Ordering::SeqCst)).await;
        let s = pool.stats();
        assert!(s.size <= 1, "{s:?}");
        assert_eq!(census.live.load(Ordering::SeqCst), s.size, "{s:?}");
        pool.resize(2);
        let two = common::take_n(&pool, 2).await;
        assert!(matches!(
            pool.acquire().timeout(Duration::ZERO).await,
            Err(PoolError::Timeout)
        ));
        drop(two);
        common::assert_consistent(&pool);
        assert_eq!(census.live.load(Ordering::SeqCst), pool.stats().size);
    });
}

/// `min_idle` after the factory failed long enough to open the breaker, then recovered:
/// with nobody calling, maintenance brings the idle objects back.
#[test]
fn min_idle_recovers_after_breaker_opened() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        census.fail.store(true, Ordering::SeqCst);
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(4)
            .min_idle(2)
            .circuit_breaker(2, Duration::from_millis(100))
            .build()
            .unwrap();
        common::until(|| pool.circuit_state() != riptide_pool::CircuitState::Closed).await;
        census.fail.store(false, Ordering::SeqCst);
        let start = Instant::now();
        while pool.stats().idle < 2 && start.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = pool.stats();
        assert!(
            s.idle >= 2,
            "min_idle not restored 5 s after the factory recovered: {s:?}, breaker {:?}",
            pool.circuit_state()
        );
    });
}

/// Deadlines of zero and of `Duration::MAX` through `get_blocking`'s builder, from a plain
/// thread: zero fails at once on an exhausted pool, MAX waits and is served, and `close`
/// ends a MAX wait at once.
#[test]
fn blocking_zero_and_max_deadlines() {
    let census = Arc::new(Census::default());
    let pool = common::builder(&census, Duration::ZERO)
        .max_size(1)
        .build()
        .unwrap();
    let held = pool.get_blocking().unwrap();
    let t = Instant::now();
    assert!(matches!(
        pool.acquire().timeout(Duration::ZERO).blocking(),
        Err(PoolError::Timeout)
    ));
    assert!(t.elapsed() < MARGIN);
    let p = pool.clone();
    let waiter = std::thread::spawn(move || p.acquire().timeout(Duration::MAX).blocking().map(drop));
    std::thread::sleep(Duration::from_millis(100));
    drop(held);
    waiter.join().unwrap().unwrap();
    let held = pool.get_blocking().unwrap();
    let p = pool.clone();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let r = p.acquire().timeout(Duration::MAX).blocking().map(drop);
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    pool.close();
    let (r, took) = waiter.join().unwrap();
    assert!(matches!(r, Err(PoolError::Closed)), "{r:?}");
    assert!(took < Duration::from_millis(100) + MARGIN, "{took:?}");
    drop(held);
    assert_eq!(census.live.load(Ordering::SeqCst), 0);
}

/// A waiter on a runtime that is not the pool's, while the build runtime shuts down: it
/// still gets its answer by its deadline.
#[test]
fn build_runtime_shutdown_while_waiting() {
    let census = Arc::new(Census::default());
    let build_rt = common::runtime(true);
    let pool = build_rt.block_on(async {
        common::builder(&census, Duration::ZERO)
            .max_size(1)
            .build()
            .unwrap()
    });
    let held = pool.get_blocking().unwrap();
    let other = common::runtime(true);
    let p = pool.clone();
    let waiting = other.spawn(async move {
        let t = Instant::now();
        let r = p.acquire().timeout(Duration::from_millis(400)).await.map(drop);
        (r, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    build_rt.shutdown_timeout(Duration::from_millis(10));
    let (r, took) = other.block_on(waiting).unwrap();
    assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
    assert!(took < Duration::from_millis(400) + MARGIN, "{took:?}");
    drop(held);
    // And the pool still serves, creating on the remaining runtime.
    pool.resize(2);
    let a = other.block_on(pool.acquire().timeout(Duration::from_secs(2)).into_future()).unwrap();
    let b = other.block_on(pool.acquire().timeout(Duration::from_secs(2)).into_future()).unwrap();
    drop((a, b));
    common::assert_consistent(&pool);
}
