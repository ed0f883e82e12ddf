//! The paths around the fast path: `resize` churning under waiters, reclaimed checkouts
//! returned late across a shrink, `min_idle` after a failing factory recovers, deadlines
//! of zero and very large, partitions removed under churn, blocking callers beside a
//! current-thread runtime nobody drives, wakers that panic as capacity is handed on, and
//! a chaos run of all of these against the fast path.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::future::IntoFuture;

use riptide_pool::{Pool, PoolError, Priority};

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
        assert_eq!(
            late.load(Ordering::SeqCst),
            0,
            "callers waited past their deadline"
        );
        common::assert_consistent(&pool);
        let s = pool.stats();
        assert_eq!(s.size, census.live.load(Ordering::SeqCst), "{s:?}");
        assert!(s.size <= 3, "{s:?}");
        assert!(census.max_live.load(Ordering::SeqCst) <= 8);
        // The final size is usable in full, and not more.
        let held: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(
                    pool.acquire()
                        .timeout(Duration::from_secs(2))
                        .await
                        .unwrap(),
                );
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
                v.push(
                    pool.acquire()
                        .timeout(Duration::from_secs(3))
                        .await
                        .unwrap(),
                );
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
    let waiter =
        std::thread::spawn(move || p.acquire().timeout(Duration::MAX).blocking().map(drop));
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
        let r = p
            .acquire()
            .timeout(Duration::from_millis(400))
            .await
            .map(drop);
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
    let a = other
        .block_on(pool.acquire().timeout(Duration::from_secs(2)).into_future())
        .unwrap();
    let b = other
        .block_on(pool.acquire().timeout(Duration::from_secs(2)).into_future())
        .unwrap();
    drop((a, b));
    common::assert_consistent(&pool);
}

/// Live objects of a partitioned pool, per key and in all.
#[derive(Default)]
struct KeyCensus {
    live: [AtomicUsize; 8],
    all: AtomicUsize,
    max_all: AtomicUsize,
    max_key: AtomicUsize,
    drop_ms: AtomicUsize,
    panic_every: AtomicUsize,
    drops: AtomicUsize,
}

struct KConn(u8, Arc<KeyCensus>);
impl std::fmt::Debug for KConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KConn({})", self.0)
    }
}
impl riptide_pool::Poolable for KConn {}
impl Drop for KConn {
    fn drop(&mut self) {
        let c = &self.1;
        let ms = c.drop_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }
        c.live[self.0 as usize].fetch_sub(1, Ordering::SeqCst);
        c.all.fetch_sub(1, Ordering::SeqCst);
        let n = c.drops.fetch_add(1, Ordering::SeqCst);
        let every = c.panic_every.load(Ordering::SeqCst);
        if every > 0 && n % every == 0 && !std::thread::panicking() {
            panic!("a Drop that panics");
        }
    }
}

fn keyed(
    c: &Arc<KeyCensus>,
    max: usize,
    per_key: usize,
    remove_after: Option<Duration>,
) -> riptide_pool::PartitionedPool<u8, KConn> {
    let fc = c.clone();
    let mut b = riptide_pool::PartitionedPool::<u8, KConn>::builder(move |k: u8| {
        let c = fc.clone();
        async move {
            let l = c.live[k as usize].fetch_add(1, Ordering::SeqCst) + 1;
            c.max_key.fetch_max(l, Ordering::SeqCst);
            let a = c.all.fetch_add(1, Ordering::SeqCst) + 1;
            c.max_all.fetch_max(a, Ordering::SeqCst);
            Ok::<_, std::io::Error>(KConn(k, c))
        }
    })
    .max_size(max)
    .partition_max_size(per_key);
    if let Some(d) = remove_after {
        b = b.remove_idle_partitions_after(d);
    }
    b.build().unwrap()
}

/// Keys churning through a partitioned pool whose idle partitions are removed every
/// 10 ms, with slow `Drop`s that sometimes panic: the global cap and the per-key cap hold
/// for live objects, nobody waits past the deadline, and once quiet `global_size()` is
/// what the live objects say, and the whole cap can be used again.
#[test]
fn partitions_removed_under_churn_keep_caps_and_units() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let c = Arc::new(KeyCensus::default());
        c.drop_ms.store(2, Ordering::SeqCst);
        c.panic_every.store(7, Ordering::SeqCst);
        let pp = keyed(&c, 4, 2, Some(Duration::from_millis(10)));
        let late = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for t in 0..12u64 {
            let pp = pp.clone();
            let late = late.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..60u64 {
                    let key = ((t * 7 + n * 3) % 6) as u8;
                    let d = Duration::from_millis(250);
                    let start = Instant::now();
                    match pp.acquire(&key).timeout(d).await {
                        Ok(g) => {
                            if n % 4 == 0 {
                                tokio::time::sleep(Duration::from_millis(3)).await;
                            }
                            if n % 9 == 0 {
                                riptide_pool::Pooled::discard(g);
                            } else {
                                drop(g);
                            }
                        }
                        Err(PoolError::Timeout) => {
                            if start.elapsed() > d + MARGIN {
                                late.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => panic!("{e:?}"),
                    }
                    if n % 5 == 0 {
                        tokio::time::sleep(Duration::from_millis(12)).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(
            late.load(Ordering::SeqCst),
            0,
            "callers waited past their deadline"
        );
        assert!(
            c.max_all.load(Ordering::SeqCst) <= 4,
            "global cap exceeded: {}",
            c.max_all.load(Ordering::SeqCst)
        );
        assert!(
            c.max_key.load(Ordering::SeqCst) <= 2,
            "per-key cap exceeded: {}",
            c.max_key.load(Ordering::SeqCst)
        );
        let start = Instant::now();
        while pp.global_size() != c.all.load(Ordering::SeqCst)
            && start.elapsed() < Duration::from_secs(5)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            pp.global_size(),
            c.all.load(Ordering::SeqCst),
            "{:?}",
            pp.totals()
        );
        let s = pp.totals();
        assert!(s.destroyed <= s.created, "{s:?}");
        // The whole cap is usable: 2 keys x 2.
        let mut held = Vec::new();
        for key in [0u8, 0, 5, 5] {
            held.push(
                pp.acquire(&key)
                    .timeout(Duration::from_secs(3))
                    .await
                    .unwrap(),
            );
        }
        assert!(matches!(
            pp.acquire(&3).timeout(Duration::from_millis(100)).await,
            Err(PoolError::Timeout)
        ));
        drop(held);
        c.panic_every.store(0, Ordering::SeqCst);
        pp.drain(Duration::from_secs(5)).await.unwrap();
        assert_eq!(c.all.load(Ordering::SeqCst), 0);
        assert_eq!(pp.global_size(), 0);
    });
}

/// A blocking acquisition of `p` within `timeout`, its object dropped at once: what it
/// returned and how long it took.
fn timed_blocking(p: &Pool<common::Obj>, timeout: Duration) -> (Result<(), PoolError>, Duration) {
    let t = Instant::now();
    let r = p.acquire().timeout(timeout).blocking().map(drop);
    (r, t.elapsed())
}

/// The README's advice for blocking on a runtime is `spawn_blocking`. On a current-thread
/// runtime whose owner is not driving it right now (it waits on a channel, or on a
/// thread), a `get_blocking` there that must create: the create cannot be trusted to that
/// runtime (it runs tasks only while its owner drives it), so it must run elsewhere, and
/// the caller gets its object, not a `Timeout` with capacity to spare.
#[test]
fn get_blocking_in_spawn_blocking_of_an_undriven_current_thread_runtime_creates() {
    let census = Arc::new(Census::default());
    let rt = common::current_thread();
    let pool = rt.block_on(async {
        common::builder(&census, Duration::ZERO)
            .max_size(2)
            .build()
            .unwrap()
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pool.clone();
    let _join = rt.spawn_blocking(move || {
        let (r, took) = timed_blocking(&p, Duration::from_millis(1500));
        let _ = tx.send((r, took));
    });
    // The owner does not drive the runtime meanwhile: it waits on the channel.
    let (r, took) = rx
        .recv_timeout(Duration::from_millis(1500) + MARGIN * 2)
        .expect("get_blocking did not return");
    assert!(r.is_ok(), "{r:?} after {took:?}, stats {:?}", pool.stats());
}

/// The same from a plain thread that entered the current-thread runtime's handle.
#[test]
fn get_blocking_in_an_entered_undriven_current_thread_runtime_creates() {
    let census = Arc::new(Census::default());
    let rt = common::current_thread();
    let pool = common::builder(&census, Duration::ZERO)
        .max_size(2)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let p = pool.clone();
    let t = std::thread::spawn(move || {
        let _in = h.enter();
        timed_blocking(&p, Duration::from_millis(1500))
    });
    let (r, took) = t.join().unwrap();
    assert!(r.is_ok(), "{r:?} after {took:?}, stats {:?}", pool.stats());
    drop(rt);
}

/// `close` while `warm_up` waits on a slow factory: `warm_up` ends with `Closed` at once,
/// and the object made after the close is destroyed when it lands.
#[test]
fn warm_up_interrupted_by_close() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::from_millis(400))
            .max_size(4)
            .build()
            .unwrap();
        let p = pool.clone();
        let w = tokio::spawn(async move {
            let t = Instant::now();
            (p.warm_up(3).await, t.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        pool.close();
        let (r, took) = w.await.unwrap();
        assert!(matches!(r, Err(PoolError::Closed)), "{r:?}");
        assert!(took < Duration::from_millis(100) + MARGIN, "{took:?}");
        common::until(|| pool.stats().size == 0).await;
        common::until(|| census.live.load(Ordering::SeqCst) == 0).await;
        let s = pool.stats();
        assert_eq!(s.created, s.destroyed, "{s:?}");
    });
}

/// `drain` while a caller's create is still running: it waits for the object to land
/// and be destroyed (every object gone), within its timeout.
#[test]
fn drain_waits_for_a_create_in_flight() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::from_millis(300))
            .max_size(2)
            .build()
            .unwrap();
        let p = pool.clone();
        let caller = tokio::spawn(async move { p.get().await.map(drop) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.stats().size, 1);
        pool.drain(Duration::from_secs(3)).await.unwrap();
        assert_eq!(
            census.live.load(Ordering::SeqCst),
            0,
            "drain returned with an object alive"
        );
        assert_eq!(pool.stats().size, 0);
        let r = caller.await.unwrap();
        assert!(matches!(r, Err(PoolError::Closed)), "{r:?}");
    });
}

/// Aging: a `Low` waiter older than `starvation_threshold` is served before `Critical`
/// callers that came after it.
#[test]
fn aged_low_waiter_beats_later_critical() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(1)
            .starvation_threshold(Duration::from_millis(100))
            .build()
            .unwrap();
        let held = pool.get().await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let spawn = |name: &'static str, prio| {
            let p = pool.clone();
            let order = order.clone();
            tokio::spawn(async move {
                let g = p
                    .acquire()
                    .priority(prio)
                    .timeout(Duration::from_secs(5))
                    .await
                    .unwrap();
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(g);
            })
        };
        let low = spawn("low", riptide_pool::Priority::Low);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let crit = spawn("critical", riptide_pool::Priority::Critical);
        let high = spawn("high", riptide_pool::Priority::High);
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(held);
        for t in [low, crit, high] {
            t.await.unwrap();
        }
        assert_eq!(
            order.lock().unwrap()[0],
            "low",
            "{:?}",
            order.lock().unwrap()
        );
    });
}

/// A waker whose `wake` panics while `armed`.
struct PanicWake(AtomicBool);
impl std::task::Wake for PanicWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        assert!(!self.0.load(Ordering::SeqCst), "a waker's wake panics");
    }
}

/// A waiter whose waker panics when a returning guard's capacity (a discard) or object (a
/// plain return) is handed to it: the panic reaches the returning caller, nothing is
/// lost, and once every handle and future is gone, the pool itself is freed (its factory
/// dropped).
#[test]
fn a_panicking_wake_on_return_frees_the_pool_in_the_end() {
    for discard in [false, true] {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(1)
            .build()
            .unwrap();
        let held = pool.get_blocking().unwrap();
        let probe = Arc::new(PanicWake(AtomicBool::new(true)));
        let waker = std::task::Waker::from(probe.clone());
        let mut fut = pool.acquire().timeout(Duration::from_secs(5)).into_future();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::future::Future::poll(std::pin::Pin::new(&mut fut), &mut cx).is_pending());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            if discard {
                riptide_pool::Pooled::discard(held);
            } else {
                drop(held);
            }
        }));
        assert!(r.is_err(), "the waker was not woken");
        probe.0.store(false, Ordering::SeqCst);
        drop(fut);
        // Nothing lost: the pool serves its one object.
        let g = pool.acquire().timeout(Duration::from_secs(2)).blocking();
        assert!(g.is_ok(), "discard {discard}: {g:?}");
        drop(g);
        common::assert_consistent(&pool);
        drop(pool);
        // The factory holds the census: it goes with the pool's shared state.
        let t = Instant::now();
        while Arc::strong_count(&census) > 1 && t.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            Arc::strong_count(&census),
            1,
            "discard {discard}: the pool's shared state was never freed"
        );
    }
}

/// `timeout(ZERO)` is "do not wait": on a pool with room and nothing idle it neither
/// creates nor queues, and in a partitioned pool at the global cap it does not evict
/// another key's idle object for a caller that then gets `Timeout`.
#[test]
fn zero_timeout_neither_creates_nor_evicts() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(2)
            .build()
            .unwrap();
        let r = pool.acquire().timeout(Duration::ZERO).await;
        assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = pool.stats();
        assert_eq!((s.created, s.size), (0, 0), "{s:?}");

        let c = Arc::new(KeyCensus::default());
        let pp = keyed(&c, 2, 2, None);
        let a = pp.get(&1).await.unwrap();
        let b = pp.get(&1).await.unwrap();
        drop((a, b));
        let r = pp.acquire(&2).timeout(Duration::ZERO).await;
        assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            pp.stats(&1).map(|s| s.idle),
            Some(2),
            "{:?}",
            pp.partitions()
        );
        assert_eq!(c.all.load(Ordering::SeqCst), 2);
    });
}

/// Shrinking under a queued waiter: a detach or discard of the excess frees no capacity
/// for the waiter (it would put the pool above its new size); the next return within the
/// new size serves it.
#[test]
fn shrink_then_detach_does_not_overfill() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(3)
            .build()
            .unwrap();
        let mut held = common::take_n(&pool, 3).await;
        let p = pool.clone();
        let waiter = tokio::spawn(async move {
            p.acquire().timeout(Duration::from_secs(5)).await.map(|g| {
                let id = g.id;
                drop(g);
                id
            })
        });
        common::until(|| pool.stats().pending_acquisitions == 1).await;
        pool.resize(1);
        let detached = riptide_pool::Pooled::detach(held.pop().unwrap());
        riptide_pool::Pooled::discard(held.pop().unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !waiter.is_finished(),
            "served above the new size: {:?}",
            pool.stats()
        );
        // Objects the pool counts: one held.
        assert_eq!(pool.stats().size, 1, "{:?}", pool.stats());
        let last = held.pop().unwrap();
        let last_id = last.id;
        drop(last);
        assert_eq!(waiter.await.unwrap().unwrap(), last_id);
        drop(detached);
        common::assert_consistent(&pool);
        assert_eq!(census.live.load(Ordering::SeqCst), pool.stats().size);
        assert!(pool.stats().size <= 1);
    });
}

/// Chaos around the fast path: blocking callers on plain threads and async callers on a
/// second runtime, a factory that fails in bursts (the breaker opening and half-opening),
/// `resize`, `retain` and `clear_idle` from outside, `min_idle` and short lifetimes, and
/// the build runtime shut down halfway. Nobody waits past the deadline, live objects
/// never exceed the largest size set, and once quiet the figures match the live objects.
#[test]
fn chaos_around_the_fast_path() {
    let census = Arc::new(Census::default());
    let build_rt = common::runtime(true);
    let pool = build_rt.block_on(async {
        common::builder(&census, Duration::ZERO)
            .max_size(4)
            .min_idle(1)
            .max_lifetime(Duration::from_millis(300))
            .idle_timeout(Duration::from_millis(200))
            .circuit_breaker(3, Duration::from_millis(50))
            .build()
            .unwrap()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let late = Arc::new(AtomicUsize::new(0));
    let other = common::runtime(true);
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let (pool, stop, late) = (pool.clone(), stop.clone(), late.clone());
        threads.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let d = Duration::from_millis(150 + 50 * (t % 3));
                let start = Instant::now();
                match pool.acquire().timeout(d).blocking() {
                    Ok(g) => {
                        if n % 7 == 0 {
                            riptide_pool::Pooled::discard(g);
                        } else {
                            drop(g);
                        }
                    }
                    Err(_) => {
                        if start.elapsed() > d + MARGIN {
                            late.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                n += 1;
            }
        }));
    }
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (pool, stop, late) = (pool.clone(), stop.clone(), late.clone());
        tasks.push(other.spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let d = Duration::from_millis(200);
                let start = Instant::now();
                let prio = [
                    riptide_pool::Priority::Low,
                    riptide_pool::Priority::Normal,
                    riptide_pool::Priority::High,
                ][(n % 3) as usize];
                match pool.acquire().priority(prio).timeout(d).await {
                    Ok(g) => {
                        if n % 5 == 0 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        drop(g);
                    }
                    Err(_) => {
                        if start.elapsed() > d + MARGIN {
                            late.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                n += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    let sizes = [4usize, 1, 6, 2, 3];
    let mut build_rt = Some(build_rt);
    for k in 0..120 {
        std::thread::sleep(Duration::from_millis(15));
        match k % 6 {
            0 => pool.resize(sizes[(k / 6) % sizes.len()]),
            1 => census.fail.store(k % 24 < 8, Ordering::SeqCst),
            2 => {
                pool.retain(|o, _| o.id % 2 == 0);
            }
            3 => {
                pool.clear_idle();
            }
            _ => {}
        }
        if k == 60 {
            build_rt
                .take()
                .unwrap()
                .shutdown_timeout(Duration::from_millis(10));
        }
    }
    census.fail.store(false, Ordering::SeqCst);
    pool.resize(3);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    for t in tasks {
        other.block_on(t).unwrap();
    }
    assert_eq!(
        late.load(Ordering::SeqCst),
        0,
        "callers waited past their deadline"
    );
    assert!(
        census.max_live.load(Ordering::SeqCst) <= 6,
        "{}",
        census.max_live.load(Ordering::SeqCst)
    );
    let t = Instant::now();
    loop {
        let s = pool.stats();
        let live = census.live.load(Ordering::SeqCst);
        if (s.size == live && s.size == s.idle + s.in_use) || t.elapsed() > Duration::from_secs(5) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = pool.stats();
    assert_eq!(s.size, census.live.load(Ordering::SeqCst), "{s:?}");
    assert_eq!(s.size, s.idle + s.in_use, "{s:?}");
    assert_eq!(s.pending_acquisitions, 0, "{s:?}");
    assert!(
        s.destroyed <= s.created && s.created - s.destroyed == s.size as u64,
        "{s:?}"
    );
    assert!(s.size <= 3, "{s:?}");
    // The whole size is usable.
    let held: Vec<_> = (0..3)
        .map(|_| {
            pool.acquire()
                .timeout(Duration::from_secs(3))
                .blocking()
                .unwrap()
        })
        .collect();
    drop(held);
}

/// A factory whose `validate` awaits a tokio timer (as a ping awaits a socket).
struct Pinging(Arc<Census>);
impl riptide_pool::Factory<common::Obj> for Pinging {
    type Error = std::io::Error;
    async fn create(&self) -> Result<common::Obj, std::io::Error> {
        Ok(common::make(&self.0))
    }
    async fn validate(&self, _obj: &mut common::Obj) -> bool {
        tokio::time::sleep(Duration::from_millis(1)).await;
        true
    }
}

/// `get_blocking` from a plain thread on a pool built in a current-thread runtime whose
/// owner is not driving it: an idle object due for validation, whose `validate` awaits a
/// tokio timer, is validated and handed out (not a `Timeout` with an idle object there).
#[test]
fn get_blocking_validates_off_an_undriven_current_thread_runtime() {
    let census = Arc::new(Census::default());
    let rt = common::current_thread();
    let pool = rt.block_on(async {
        let pool = Pool::builder(Pinging(census.clone()))
            .max_size(1)
            .validation_interval(Duration::ZERO)
            .build()
            .unwrap();
        pool.warm_up(1).await.unwrap();
        pool
    });
    let p = pool.clone();
    let t = std::thread::spawn(move || timed_blocking(&p, Duration::from_millis(1000)));
    let (r, took) = t.join().unwrap();
    assert!(r.is_ok(), "{r:?} after {took:?}, stats {:?}", pool.stats());
    drop(rt);
}

/// A caller whose handed object is rejected by its checkout step queues again with the
/// start of its wait, and goes back to its place by age: `queue_position()` and the order
/// of service agree (aging included), and it is not served behind younger callers of its
/// own level.
#[test]
fn a_caller_queued_again_after_a_rejected_object_keeps_its_age() {
    use riptide_pool::Priority;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    let census = Arc::new(Census::default());
    let reject = Arc::new(AtomicBool::new(false));
    let rt = common::runtime(true);
    let (r2, c2) = (reject.clone(), census.clone());
    let pool = rt.block_on(async move {
        Pool::builder(move || {
            let c = c2.clone();
            async move { Ok::<_, std::io::Error>(common::make(&c)) }
        })
        .max_size(1)
        .starvation_threshold(Duration::from_millis(1))
        .pre_recycle(move |_o: &mut common::Obj, _| {
            let r = r2.clone();
            Box::pin(async move {
                if r.swap(false, Ordering::SeqCst) {
                    Err("rejected".into())
                } else {
                    Ok(())
                }
            })
        })
        .build()
        .unwrap()
    });
    let held = rt.block_on(pool.get()).unwrap();
    let pending = |f: &mut riptide_pool::AcquireFuture<common::Obj>| {
        Pin::new(f)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    };
    let wait = |p: Priority| {
        pool.acquire()
            .priority(p)
            .timeout(Duration::from_secs(10))
            .into_future()
    };
    // B (Normal) queues first, then C (Low), then A (Normal); all age past 1 ms.
    let mut b = wait(Priority::Normal);
    assert!(pending(&mut b));
    std::thread::sleep(Duration::from_millis(10));
    let mut c = wait(Priority::Low);
    assert!(pending(&mut c));
    std::thread::sleep(Duration::from_millis(10));
    let mut a = wait(Priority::Normal);
    assert!(pending(&mut a));
    std::thread::sleep(Duration::from_millis(10));
    // The object goes to B, the oldest; its checkout step rejects it once, so B queues
    // again (its wait began first).
    reject.store(true, Ordering::SeqCst);
    drop(held);
    assert!(pending(&mut b));
    let pos = [b.queue_position(), c.queue_position(), a.queue_position()];
    let mut futs = vec![('b', b), ('c', c), ('a', a)];
    let mut order = Vec::new();
    let t0 = Instant::now();
    while !futs.is_empty() && t0.elapsed() < Duration::from_secs(5) {
        let mut i = 0;
        while i < futs.len() {
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(r) = Pin::new(&mut futs[i].1).poll(&mut cx) {
                order.push(futs.remove(i).0);
                drop(r.unwrap()); // returned at once: the next caller is served
                continue;
            }
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(order.len(), 3, "served {order:?}");
    let served_before = |who| order.iter().position(|&x| x == who);
    // B's drop aside may have ended, and freed the unit B then got, before the positions
    // were read: B no longer waits in the queue then (`None`) and is served first, and
    // the others' positions count from the queue without it.
    let mut want = vec![served_before('b'), served_before('c'), served_before('a')];
    if pos[0].is_none() && want[0] == Some(0) {
        want = vec![None, want[1].map(|p| p - 1), want[2].map(|p| p - 1)];
    }
    assert_eq!(
        pos.to_vec(),
        want,
        "queue_position() (b, c, a) against the order served: {order:?}"
    );
    assert!(
        served_before('b') < served_before('a'),
        "the caller queued again was served behind a younger one of its level: {order:?}"
    );
}

/// A future claims an idle object when it is made, and may be polled much later: a
/// pool closed in between fails it with `Closed` (the object is destroyed, never handed
/// out), as it fails every waiter. Through `get()`, `acquire()` and a partition's `get`.
#[test]
fn a_future_made_before_close_fails_with_closed() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(2)
            .build()
            .unwrap();
        pool.warm_up(2).await.unwrap();
        // (Read before: `acquired` never goes down once reported.)
        let acquired = pool.stats().acquired;
        let get = pool.get();
        let acquire = pool.acquire().timeout(Duration::from_secs(1)).into_future();
        pool.close();
        assert!(matches!(get.await, Err(PoolError::Closed)));
        assert!(matches!(acquire.await, Err(PoolError::Closed)));
        common::until(|| census.live.load(Ordering::SeqCst) == 0).await;
        let s = pool.stats();
        assert_eq!((s.size, s.in_use, s.destroyed), (0, 0, 2), "{s:?}");
        assert_eq!(s.acquired, acquired, "no checkout succeeded: {s:?}");

        let pp = riptide_pool::PartitionedPool::builder(|k: u8| async move {
            Ok::<_, std::io::Error>(vec![k])
        })
        .build()
        .unwrap();
        drop(pp.get(&1).await.unwrap());
        let get = pp.get(&1);
        pp.close();
        assert!(matches!(get.await, Err(PoolError::Closed)));
        // Destroyed aside: its global unit comes back a moment later.
        common::until(|| pp.global_size() == 0).await;
    });
}

/// A future settled when it was made and dropped unpolled hands nothing out: its object
/// goes back untouched (no reset), to the pool or to a caller waiting, and the checkout
/// counted at its creation is taken back, so it counts in neither `acquired` nor
/// `max_uses`.
#[test]
fn a_future_dropped_unpolled_counts_no_checkout() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(1)
            .max_uses(3)
            .build()
            .unwrap();
        pool.warm_up(1).await.unwrap();
        let before = pool.stats();
        for _ in 0..5 {
            drop(pool.get());
            // Stats read while it holds its claim: it counts nowhere, then or after.
            let f = pool.acquire().priority(Priority::High).into_future();
            assert_eq!(pool.stats().acquired, before.acquired);
            drop(f);
        }
        let s = pool.stats();
        assert_eq!(
            (s.acquired, s.destroyed, s.idle),
            (before.acquired, 0, 1),
            "{s:?}"
        );
        assert_eq!(
            census.resets.load(Ordering::SeqCst),
            0,
            "untouched: no reset"
        );

        // Handed to the caller waiting meanwhile.
        let held = pool.get();
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.get().await.map(drop) }
        });
        common::until(|| pool.stats().pending_acquisitions == 1).await;
        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(pool.stats().acquired, before.acquired + 1);

        // `max_uses` counts the real checkouts only: the third retires the object.
        drop(pool.get().await.unwrap());
        assert_eq!(pool.stats().destroyed, 0);
        drop(pool.get().await.unwrap());
        let s = pool.stats();
        assert_eq!((s.acquired, s.destroyed), (before.acquired + 3, 1), "{s:?}");
    });
}

/// A future's claim is no checkout until the future hands the object over at its first
/// poll: while it waits unpolled it is not reported as a leak, and the checkout it then
/// begins is reported once (not again under another count), as is the real checkout
/// after it; the usage histogram counts from the hand-over.
#[test]
fn a_futures_checkout_begins_when_it_hands_the_object_over() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(1)
            .leak_threshold(Duration::from_millis(20))
            .build()
            .unwrap();
        pool.warm_up(1).await.unwrap();
        // Its first checkout (sampled for the usage histogram), 300 ms after the claim.
        let f = pool.get();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = pool.stats();
        assert_eq!((s.leaks_detected, s.acquired, s.in_use), (0, 0, 1), "{s:?}");
        assert!(pool.checked_out().is_empty(), "a claim is not a checkout");
        drop(f.await.unwrap());
        let s = pool.stats();
        assert!(
            s.usage_p99 < Duration::from_millis(200),
            "from the hand-over: {s:?}"
        );

        // A used object: claimed unpolled, then handed over and held: reported once.
        let f = pool.get();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.stats().leaks_detected, 0);
        let g = f.await.unwrap();
        common::until(|| pool.stats().leaks_detected == 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pool.stats().leaks_detected, 1, "one checkout, one report");
        drop(g);
        // The next real checkout held too long is a new report.
        let g = pool.get().await.unwrap();
        common::until(|| pool.stats().leaks_detected == 2).await;
        drop(g);
        assert_eq!(pool.stats().acquired, 3);
    });
}

/// A future made while its object was young and polled after the object's lifetime ran
/// out never hands that object out: it is destroyed (`MaxLifetime`) and the acquisition
/// starts over with its own options: a fresh object, or, when none can be had, its own
/// timeout (not the pool's 30 s).
#[test]
fn a_future_polled_after_its_objects_lifetime_starts_over() {
    let rt = common::runtime(true);
    rt.block_on(async {
        let census = Arc::new(Census::default());
        let pool = common::builder(&census, Duration::ZERO)
            .max_size(1)
            .max_lifetime(Duration::from_millis(100))
            .acquire_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        pool.warm_up(1).await.unwrap();
        let acquired = pool.stats().acquired;
        let fut = pool.get();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let g = fut.await.unwrap();
        assert_eq!(
            pool.stats().acquired,
            acquired + 1,
            "one checkout, counted once"
        );
        assert_eq!(g.id, 1, "a fresh object, not the expired one");
        assert!(riptide_pool::Pooled::metadata(&g).age < Duration::from_millis(100));
        drop(g);

        // Nothing can replace it within the caller's own 50 ms: the factory's second
        // create hangs.
        let creates = Arc::new(AtomicUsize::new(0));
        let c = census.clone();
        let slow = Pool::builder(move || {
            let (c, n) = (c.clone(), creates.fetch_add(1, Ordering::SeqCst));
            async move {
                if n > 0 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok::<_, std::io::Error>(common::make(&c))
            }
        })
        .max_size(1)
        .max_lifetime(Duration::from_millis(100))
        .acquire_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
        slow.warm_up(1).await.unwrap();
        let fut = slow
            .acquire()
            .priority(riptide_pool::Priority::High)
            .timeout(Duration::from_millis(50))
            .into_future();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = Instant::now();
        let r = fut.await;
        assert!(
            matches!(r, Err(PoolError::Timeout)),
            "{:?}",
            r.map(|g| g.id)
        );
        assert!(
            t0.elapsed() < Duration::from_millis(50) + MARGIN,
            "{:?}",
            t0.elapsed()
        );
        let s = slow.stats();
        assert!(s.destroyed >= 1, "the expired object was destroyed: {s:?}");
    });
}
