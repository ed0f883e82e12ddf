//! Reliability around the fast path: deadlines that survive the runtimes that come and
//! go, capacity that survives panics in user code, lifetimes enforced under contention,
//! leak reports that only name real holders, partitions removed while in use, and upkeep
//! for pools built outside a runtime. Each test names the promise it guards.

mod common;

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    assert_consistent, builder, current_thread, start_a_create_on_a_dying_runtime, until, within,
    Census,
};
use riptide_pool::{PartitionedPool, Pool, PoolError, PoolEvent, Poolable};

fn census() -> Arc<Census> {
    Arc::new(Census::default())
}

const NO_DELAY: Duration = Duration::ZERO;

/// A blocking waiter (no deadline of its own in the queue) beside async waiters must not
/// break the deadline of later async waiters.
#[test]
fn blocking_waiters_do_not_break_async_deadlines() {
    within(Duration::from_secs(20), || {
        let c = census();
        let rt = current_thread();
        let pool = rt.block_on(async { builder(&c, NO_DELAY).max_size(1).build().unwrap() });
        let held = rt.block_on(pool.get()).unwrap();
        // An async waiter starts deadline enforcement.
        let first = rt.block_on(
            pool.acquire()
                .timeout(Duration::from_millis(50))
                .into_future(),
        );
        assert!(matches!(first, Err(PoolError::Timeout)));
        // A blocking waiter queues behind it, then an async one with a short deadline.
        let p = pool.clone();
        let blocking =
            std::thread::spawn(move || p.acquire().timeout(Duration::from_millis(1500)).blocking());
        std::thread::sleep(Duration::from_millis(50));
        let a = rt.block_on(
            pool.acquire()
                .timeout(Duration::from_millis(60))
                .into_future(),
        );
        assert!(matches!(a, Err(PoolError::Timeout)), "{a:?}");
        // Only the blocking waiter is left: the enforcement must survive it, and serve
        // the next async waiter's deadline too.
        std::thread::sleep(Duration::from_millis(100));
        let t0 = Instant::now();
        let b = rt.block_on(
            pool.acquire()
                .timeout(Duration::from_millis(80))
                .into_future(),
        );
        assert!(matches!(b, Err(PoolError::Timeout)), "{b:?}");
        assert!(
            t0.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
        assert!(matches!(blocking.join().unwrap(), Err(PoolError::Timeout)));
        drop(held);
        assert_consistent(&pool);
    });
}

/// A pool shared by several runtimes (a `static` pool used by many `#[tokio::test]`s):
/// deadlines keep working after the runtime that first waited on it is gone.
#[test]
fn deadlines_survive_the_runtime_that_first_waited() {
    within(Duration::from_secs(20), || {
        let c = census();
        let pool = builder(&c, NO_DELAY).max_size(1).build().unwrap();
        let held = pool.get_blocking().unwrap();
        {
            let rt1 = current_thread();
            let p = pool.clone();
            // A waiter with a long deadline is queued on runtime 1 ...
            rt1.spawn(async move {
                let _ = p.acquire().timeout(Duration::from_secs(30)).await;
            });
            rt1.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
            // ... which then shuts down.
        }
        let rt2 = current_thread();
        let t0 = Instant::now();
        let r = rt2.block_on(
            pool.acquire()
                .timeout(Duration::from_millis(100))
                .into_future(),
        );
        assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        drop(held);
        assert_consistent(&pool);
    });
}

/// Growing a pool whose forgotten checkouts were reclaimed: creates find room for every
/// object the new size allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_after_reclaimed_leaks_creates_every_object() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_size(8)
        .reclaim_leaked(Duration::from_millis(30))
        .build()
        .unwrap();
    for g in common::take_n(&pool, 8).await {
        std::mem::forget(g);
    }
    until(|| pool.stats().size == 0).await; // all 8 reclaimed
    pool.resize(16);
    let got = tokio::time::timeout(Duration::from_secs(5), common::take_n(&pool, 16))
        .await
        .expect("creates must find free slots after a grow");
    assert_eq!(got.len(), 16);
    assert_eq!(pool.stats().size, 16);
}

/// Under steady contention an object is never idle, yet it must still retire at
/// `max_lifetime`: no checkout ever sees an object past its lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_is_enforced_under_steady_contention() {
    struct Aged {
        born: Instant,
    }
    impl Poolable for Aged {}
    let life = Duration::from_millis(150);
    let pool = Pool::builder(|| async {
        Ok::<_, std::io::Error>(Aged {
            born: Instant::now(),
        })
    })
    .max_size(1)
    .max_lifetime(life)
    .build()
    .unwrap();
    let oldest = Arc::new(Mutex::new(Duration::ZERO));
    let stop = Instant::now() + Duration::from_millis(800);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let (pool, oldest) = (pool.clone(), oldest.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                let g = pool.get().await.unwrap();
                let age = g.born.elapsed();
                {
                    let mut o = oldest.lock().unwrap();
                    *o = (*o).max(age);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(g);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let oldest = *oldest.lock().unwrap();
    // The coarse clock and the scheduler add a little: allow 60 ms over.
    assert!(
        oldest <= life + Duration::from_millis(60),
        "an object {oldest:?} old was handed out (max_lifetime {life:?})"
    );
}

/// Removing idle partitions while an acquisition already holds its partition must not let
/// a key exceed `partition_max_size`.
#[tokio::test]
async fn removing_a_partition_in_use_never_lets_a_key_exceed_its_cap() {
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    struct C(Arc<AtomicUsize>);
    impl Poolable for C {}
    impl Drop for C {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let (l, p) = (live.clone(), peak.clone());
    let pp = PartitionedPool::builder(move |_k: u32| {
        let (l, p) = (l.clone(), p.clone());
        async move {
            let n = l.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(n, Ordering::SeqCst);
            Ok::<_, std::io::Error>(C(l))
        }
    })
    .partition_max_size(2)
    .max_size(10)
    .acquire_timeout(Duration::from_millis(200))
    .build()
    .unwrap();
    // The future looks its partition up when it is made; then the partition is removed.
    let early = pp.get(&7);
    assert_eq!(pp.remove_idle_partitions(), 1);
    let a = pp.get(&7).await.unwrap();
    let b = pp.get(&7).await.unwrap();
    // The early future must not add a third object for key 7.
    let early = early.await;
    let s = pp.stats(&7).unwrap();
    assert!(
        peak.load(Ordering::SeqCst) <= 2,
        "key 7 held {} objects (cap 2); early = {:?}, stats {s:?}",
        peak.load(Ordering::SeqCst),
        early.as_ref().map(|_| ())
    );
    drop((a, b, early));
}

/// A closed partitioned pool serves no key, old or new.
#[tokio::test]
async fn a_closed_partitioned_pool_serves_no_key() {
    struct C;
    impl Poolable for C {}
    let pp = PartitionedPool::builder(|_k: u32| async { Ok::<_, std::io::Error>(C) })
        .build()
        .unwrap();
    drop(pp.get(&1).await.unwrap());
    pp.close();
    assert!(matches!(pp.get(&1).await, Err(PoolError::Closed)));
    assert!(matches!(pp.get(&2).await, Err(PoolError::Closed)));
}

/// Dropping the last handle closes the pool at once, even while a cancelled waiter's
/// deadline is far away: idle objects (real connections) do not linger.
#[tokio::test]
async fn dropping_the_last_handle_closes_at_once_after_a_cancelled_wait() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_size(1)
        .acquire_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    // A waiter with a 30 s deadline queues, then gives up.
    let r = tokio::time::timeout(Duration::from_millis(30), pool.get()).await;
    assert!(r.is_err());
    drop(held);
    assert_eq!(c.live.load(Ordering::SeqCst), 1);
    drop(pool);
    until(|| c.live.load(Ordering::SeqCst) == 0).await;
}

/// An object whose `Drop` panics, destroyed by a bulk path (resize, close, eviction):
/// every other object is still destroyed and no capacity is lost.
mod panicking_drop {
    use super::*;

    pub struct Bomb {
        pub armed: Arc<AtomicBool>,
        pub live: Arc<AtomicUsize>,
    }
    impl Poolable for Bomb {}
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
            if self.armed.load(Ordering::SeqCst) && !std::thread::panicking() {
                panic!("Bomb::drop");
            }
        }
    }

    pub fn pool(
        armed: &Arc<AtomicBool>,
        live: &Arc<AtomicUsize>,
        b: impl FnOnce(riptide_pool::PoolBuilder<Bomb>) -> riptide_pool::PoolBuilder<Bomb>,
    ) -> Pool<Bomb> {
        let (a, l) = (armed.clone(), live.clone());
        b(Pool::builder(move || {
            let (a, l) = (a.clone(), l.clone());
            async move {
                l.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Bomb { armed: a, live: l })
            }
        }))
        .build()
        .unwrap()
    }

    #[tokio::test]
    async fn on_resize() {
        let (armed, live) = Default::default();
        let pool = pool(&armed, &live, |b| b.max_size(4));
        drop(common::take_n(&pool, 4).await);
        armed.store(true, Ordering::SeqCst);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.resize(1)));
        let _ = r; // whether the panic reaches the caller is a policy; capacity is not
        armed.store(false, Ordering::SeqCst);
        assert_eq!(
            live.load(Ordering::SeqCst),
            1,
            "every excess object destroyed"
        );
        assert_eq!(pool.stats().size, 1);
        pool.resize(4);
        let all = tokio::time::timeout(Duration::from_secs(2), common::take_n(&pool, 4))
            .await
            .expect("no capacity lost to the panic");
        drop(all);
        assert_consistent(&pool);
    }

    #[tokio::test]
    async fn on_close() {
        let (armed, live) = Default::default();
        let pool = pool(&armed, &live, |b| b.max_size(4));
        drop(common::take_n(&pool, 4).await);
        armed.store(true, Ordering::SeqCst);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.close()));
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "every idle object destroyed"
        );
        assert_eq!(pool.stats().size, 0);
    }

    #[tokio::test]
    async fn on_idle_eviction_maintenance_keeps_running() {
        let (armed, live) = Default::default();
        let pool = pool(&armed, &live, |b| {
            b.max_size(4).idle_timeout(Duration::from_millis(40))
        });
        drop(common::take_n(&pool, 4).await);
        armed.store(true, Ordering::SeqCst);
        // The object's drop counts itself gone before it panics; the pool gives its
        // capacity back once the drop has unwound, a moment later.
        until(|| live.load(Ordering::SeqCst) == 0 && pool.stats().size == 0).await;
        armed.store(false, Ordering::SeqCst);
        // Maintenance still runs: a new idle object is evicted too.
        drop(pool.get().await.unwrap());
        until(|| live.load(Ordering::SeqCst) == 0).await;
    }

    #[tokio::test]
    async fn on_discard_and_unhealthy_return() {
        let (armed, live) = Default::default();
        let pool = pool(&armed, &live, |b| b.max_size(2));
        let g = pool.get().await.unwrap();
        armed.store(true, Ordering::SeqCst);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            riptide_pool::Pooled::discard(g)
        }));
        armed.store(false, Ordering::SeqCst);
        assert_eq!(pool.stats().size, 0);
        drop(common::take_n(&pool, 2).await);
        assert_consistent(&pool);
    }
}

/// A pool built inside a runtime that was dropped: `get_blocking` still creates objects,
/// the way a pool built outside a runtime does.
#[test]
fn a_dead_build_runtime_falls_back_to_threads() {
    within(Duration::from_secs(20), || {
        let c = census();
        let pool = {
            let rt = current_thread();
            rt.block_on(async { builder(&c, NO_DELAY).max_size(2).build().unwrap() })
        };
        for _ in 0..3 {
            let g = pool
                .acquire()
                .timeout(Duration::from_secs(2))
                .blocking()
                .expect("creates run on a thread once the build runtime is gone");
            drop(g);
        }
        assert_eq!(pool.stats().created, 1);
        assert!(!matches!(
            pool.circuit_state(),
            riptide_pool::CircuitState::Open
        ));
    });
}

/// A leak report names only a caller that really holds the object, for as long as it has
/// held it: not the previous holder while the object is validated for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_false_leak_report_while_an_object_is_validated() {
    struct Slow;
    impl riptide_pool::Factory<common::Obj> for Slow {
        type Error = std::io::Error;
        async fn create(&self) -> Result<common::Obj, std::io::Error> {
            Ok(common::make(&Arc::new(Census::default())))
        }
        async fn validate(&self, _o: &mut common::Obj) -> bool {
            tokio::time::sleep(Duration::from_millis(250)).await;
            true
        }
    }
    let pool = Pool::builder(Slow)
        .max_size(1)
        .validation_interval(Duration::ZERO)
        .leak_threshold(Duration::from_millis(60))
        .build()
        .unwrap();
    let mut events = pool.events();
    let first_line = line!() + 1;
    let g = pool.get().await.unwrap();
    drop(g); // returned at once: never a leak
    tokio::time::sleep(Duration::from_millis(100)).await;
    let g = pool.get().await.unwrap(); // validated for 250 ms before it is ours
    drop(g);
    tokio::time::sleep(Duration::from_millis(100)).await;
    while let Ok(ev) = events.try_recv() {
        if let PoolEvent::LeakSuspected { location, .. } = ev {
            panic!("false leak report naming {location} (the first checkout is line {first_line})");
        }
    }
    assert_eq!(pool.stats().leaks_detected, 0);
}

/// A pool built outside any runtime reaps idle objects in the background, with nobody
/// checking out (r2d2's behaviour).
#[test]
fn a_runtime_less_pool_is_maintained_in_the_background() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_size(3)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let held: Vec<_> = (0..3).map(|_| pool.get_blocking().unwrap()).collect();
    drop(held);
    assert_eq!(c.live.load(Ordering::SeqCst), 3);
    let t0 = Instant::now();
    while c.live.load(Ordering::SeqCst) > 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "idle objects were never reaped without a checkout"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(pool.stats().idle, 0);
}

/// A runtime without the time driver: `get()` works while nothing waits, and a wait is
/// still bounded by its deadline.
#[test]
fn a_runtime_without_timers_works() {
    within(Duration::from_secs(20), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let c = census();
        rt.block_on(async {
            let pool = builder(&c, NO_DELAY).max_size(1).build().unwrap();
            let g = pool.get().await.unwrap();
            let r = pool.acquire().timeout(Duration::from_millis(50)).await;
            assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
            drop(g);
            drop(pool.get().await.unwrap());
        });
    });
}

/// A zero per-call timeout means "do not wait": no queueing, no create.
#[tokio::test]
async fn a_zero_timeout_does_not_wait_or_create() {
    let c = census();
    let pool = builder(&c, NO_DELAY).max_size(2).build().unwrap();
    let r = pool.acquire().timeout(Duration::ZERO).await;
    assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
    assert_eq!(pool.stats().created, 0, "nothing was created");
    let g = pool.get().await.unwrap();
    drop(g);
    let g = pool
        .acquire()
        .timeout(Duration::ZERO)
        .await
        .expect("an idle object");
    let p = pool.clone();
    let r = tokio::task::spawn_blocking(move || {
        p.acquire().timeout(Duration::ZERO).blocking().map(drop)
    })
    .await
    .unwrap();
    assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
    assert_eq!(pool.stats().pending_acquisitions, 0);
    drop(g);
}

/// A caller running its checkout step (a slow `pre_recycle`) when `close` runs does not
/// get the object once the step passes: it gets `Closed`, and the object is destroyed.
#[tokio::test]
async fn close_during_the_checkout_step_fails_the_caller() {
    let c = Arc::new(Census::default());
    let pool = builder(&c, Duration::ZERO)
        .max_size(2)
        .pre_recycle(|_, _| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(())
            })
        })
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    let p = pool.clone();
    let checking = tokio::spawn(async move { p.get().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    pool.close();
    let r = checking.await.unwrap();
    assert!(matches!(r, Err(PoolError::Closed)), "{r:?}");
    until(|| c.live.load(Ordering::SeqCst) == 0).await;
    assert_consistent(&pool);
}

/// A half-open trial create that never finishes because its runtime shuts down is not the
/// factory's outcome, and gives the trial up: once the factory is healthy, the next caller
/// tries and the breaker closes (it must not stay half-open, refusing everyone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_create_lost_to_a_runtime_shutdown_lets_the_next_caller_try() {
    let c = Arc::new(Census::default());
    c.fail.store(true, Ordering::SeqCst);
    let delay = Arc::new(AtomicUsize::new(0));
    let (c2, d2) = (c.clone(), delay.clone());
    let pool = Pool::builder(move || {
        let (c, d) = (c2.clone(), d2.clone());
        async move {
            let ms = d.load(Ordering::SeqCst) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if c.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("backend down"));
            }
            Ok(common::make(&c))
        }
    })
    .max_size(2)
    .circuit_breaker(1, Duration::from_millis(30))
    .acquire_timeout(Duration::from_secs(1))
    .build()
    .unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(pool.circuit_state(), riptide_pool::CircuitState::HalfOpen);
    // The trial: created on a runtime that shuts down under it.
    c.fail.store(false, Ordering::SeqCst);
    delay.store(300, Ordering::SeqCst);
    let p = pool.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_millis(50), p.get()).await;
        });
    })
    .join()
    .unwrap();
    delay.store(0, Ordering::SeqCst);
    let r = pool.get().await;
    assert!(
        r.is_ok(),
        "{:?}, breaker {:?}",
        r.map(drop),
        pool.circuit_state()
    );
    assert_eq!(pool.circuit_state(), riptide_pool::CircuitState::Closed);
}

/// Partitions whose `min_idle` add up past the global cap: the background top-up takes
/// only free global capacity, so an idle pool settles instead of each partition evicting
/// the other's idle objects to fill its own, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_topping_up_min_idle_do_not_evict_each_other() {
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let limits = riptide_pool::PartitionLimits {
        max_size: 2,
        min_idle: 2,
        priority_boost: 0,
    };
    let pp: PartitionedPool<usize, Poolable2> = PartitionedPool::builder(move |_key: usize| {
        m.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, std::io::Error>(Poolable2) }
    })
    .partition_max_size(2)
    .max_size(2)
    .idle_timeout(Duration::from_millis(40))
    .partition(0, limits)
    .partition(1, limits)
    .build()
    .unwrap();
    // Maintenance runs every 10 ms here (a quarter of the idle timeout).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let settled = made.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = made.load(Ordering::SeqCst) - settled;
    assert!(more == 0, "{more} creates with no traffic at all");
    assert_eq!(pp.global_size(), 2);
}

struct Poolable2;
impl Poolable for Poolable2 {}

/// `close` fails a caller waiting for its own create at once, as it fails queued ones
/// (and a `warm_up` waiting for its create); the create goes on, and its object is
/// destroyed when it lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_a_caller_waiting_for_its_create_at_once() {
    let c = Arc::new(Census::default());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (c2, g2) = (c.clone(), gate.clone());
    let pool = Pool::builder(move || {
        let (c, g) = (c2.clone(), g2.clone());
        async move {
            g.acquire().await.unwrap().forget();
            Ok::<_, std::io::Error>(common::make(&c))
        }
    })
    .max_size(2)
    .acquire_timeout(Duration::from_secs(30))
    .build()
    .unwrap();
    let p = pool.clone();
    let warming = tokio::spawn(async move { p.warm_up(1).await.map(drop) });
    until(|| pool.stats().size == 1).await;
    let p = pool.clone();
    let creating = tokio::spawn(async move { p.get().await.map(drop) });
    let p = pool.clone();
    let queued = tokio::spawn(async move { p.get().await.map(drop) });
    until(|| pool.stats().pending_acquisitions == 1 && pool.stats().size == 2).await;
    let t = Instant::now();
    pool.close();
    for (what, h) in [
        ("warm_up", warming),
        ("creating", creating),
        ("queued", queued),
    ] {
        let r = tokio::time::timeout(Duration::from_secs(5), h).await;
        let r = r.unwrap_or_else(|_| panic!("the {what} caller was not failed at close"));
        assert!(matches!(r.unwrap(), Err(PoolError::Closed)), "{what}");
    }
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    gate.add_permits(2);
    until(|| c.made.load(Ordering::SeqCst) == 2 && c.live.load(Ordering::SeqCst) == 0).await;
    assert_consistent(&pool);
}

/// A caller that gave up waiting for its own create, whose task (here a waker that owns a
/// checkout, as an executor's task owns its future) is then kept alive only by the pool:
/// the pool lets it go outside its lock, so the checkout the task returns as it is dropped
/// (which takes the lock) never deadlocks the next create or `close`.
#[test]
fn a_task_that_gave_up_on_its_create_is_let_go_outside_the_lock() {
    use std::future::{Future, IntoFuture};
    use std::task::{Context, Poll, Wake, Waker};

    struct Task(Mutex<Option<riptide_pool::Pooled<common::Obj>>>);
    impl Wake for Task {
        fn wake(self: Arc<Self>) {}
    }
    within(Duration::from_secs(20), || {
        let c = census();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        for then_close in [false, true] {
            let pool = rt.block_on(async {
                builder(&c, Duration::from_millis(200))
                    .max_size(3)
                    .build()
                    .unwrap()
            });
            let task = Arc::new(Task(Mutex::new(None)));
            let waker = Waker::from(task.clone());
            let mut fut = Box::pin(
                pool.acquire()
                    .timeout(Duration::from_millis(30))
                    .into_future(),
            );
            let mut cx = Context::from_waker(&waker);
            assert!(fut.as_mut().poll(&mut cx).is_pending(), "creating");
            std::thread::sleep(Duration::from_millis(100));
            assert!(matches!(
                fut.as_mut().poll(&mut cx),
                Poll::Ready(Err(PoolError::Timeout))
            ));
            drop((fut, waker));
            // The create lands in the pool; the task then takes an object that goes
            // back through destroy (unhealthy), and only the pool may still hold it.
            std::thread::sleep(Duration::from_millis(300));
            let mut g = pool.try_get().expect("the create landed");
            g.healthy = false;
            *task.0.lock().unwrap() = Some(g);
            drop(task);
            if then_close {
                pool.close();
            } else {
                drop(rt.block_on(pool.get()).expect("the next create"));
            }
            assert_consistent(&pool);
        }
    });
}

/// A factory that needs a tokio reactor (on a bare thread: "no reactor running"), behind a
/// breaker that opens on the first failure.
fn reactor_pool(c: &Arc<Census>) -> Pool<common::Obj> {
    let c = c.clone();
    Pool::builder(move || {
        let c = c.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, std::io::Error>(common::make(&c))
        }
    })
    .max_size(2)
    .circuit_breaker(1, Duration::from_secs(60))
    .build()
    .unwrap()
}

/// A create spawned on a runtime that shuts down before running it moves to the runtime
/// the pool was built in while that one lives: a factory needing a tokio reactor still
/// makes its object, and the breaker hears nothing of the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_dropped_unstarted_by_a_dying_runtime_runs_on_the_build_runtime() {
    let c = Arc::new(Census::default());
    let pool = reactor_pool(&c);
    start_a_create_on_a_dying_runtime(&pool);
    until(|| pool.stats().idle == 1).await;
    let s = pool.stats();
    assert_eq!((s.created, s.size), (1, 1), "{s:?}");
    assert_eq!(pool.circuit_state(), riptide_pool::CircuitState::Closed);
    drop(pool.get().await.unwrap());
    assert_consistent(&pool);
}

/// With no other runtime to go to, such a create runs on the pool's own runtime, which
/// drives a reactor and timers: a factory needing them still makes its object (on a bare
/// thread it would fail), and the breaker hears nothing of the shutdown.
#[test]
fn a_create_with_no_runtime_left_runs_on_the_pools_own_runtime() {
    within(Duration::from_secs(20), || {
        let c = Arc::new(Census::default());
        // Built outside any runtime: no runtime to move the create to.
        let pool = reactor_pool(&c);
        start_a_create_on_a_dying_runtime(&pool);
        let t0 = Instant::now();
        while pool.stats().idle != 1 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let s = pool.stats();
        assert_eq!((s.size, s.created, s.idle), (1, 1, 1), "{s:?}");
        assert_eq!(pool.circuit_state(), riptide_pool::CircuitState::Closed);
        assert_eq!(pool.health().error_rate, 0.0);
        current_thread().block_on(async {
            drop(
                pool.get()
                    .await
                    .expect("the object made on the pool's runtime"),
            );
        });
        assert_consistent(&pool);
    });
}

/// A factory whose `validate` yields once before it passes, or never finishes while
/// `hang` is set.
struct SlowValidate {
    census: Arc<Census>,
    hang: Arc<AtomicBool>,
}

impl riptide_pool::Factory<common::Obj> for SlowValidate {
    type Error = std::io::Error;
    fn create(
        &self,
    ) -> impl std::future::Future<Output = Result<common::Obj, std::io::Error>> + Send {
        let c = self.census.clone();
        async move { Ok(common::make(&c)) }
    }
    async fn validate(&self, _: &mut common::Obj) -> bool {
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        tokio::task::yield_now().await;
        true
    }
}

/// A pool of four warm objects, each validated on every checkout.
async fn slow_validate_pool(
    hang: &Arc<AtomicBool>,
    f: impl FnOnce(riptide_pool::PoolBuilder<common::Obj>) -> riptide_pool::PoolBuilder<common::Obj>,
) -> (Pool<common::Obj>, Arc<Census>) {
    let c = Arc::new(Census::default());
    let factory = SlowValidate {
        census: c.clone(),
        hang: hang.clone(),
    };
    let pool = f(Pool::builder(factory)
        .max_size(4)
        .validation_interval(Duration::ZERO))
    .build()
    .unwrap();
    pool.warm_up(4).await.unwrap();
    (pool, c)
}

/// A caller whose deadline passes (or who goes away) while its checkout step runs does not
/// cost the pool a healthy object: the step finishes in the background and the object goes
/// back to the pool, returned as a guard returns it (`reset`). Here `validate` yields once,
/// so a zero timeout ("do not wait") never sees it finish.
#[tokio::test]
async fn a_checkout_step_cut_short_by_the_caller_keeps_a_healthy_object() {
    let hang = Arc::new(AtomicBool::new(false));
    let (pool, c) = slow_validate_pool(&hang, |b| b).await;
    for _ in 0..8 {
        let r = pool.acquire().timeout(Duration::ZERO).await;
        assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
    }
    until(|| pool.stats().idle == 4).await;
    // Dropped mid-step, too.
    let mut fut = Box::pin(pool.get());
    let waker = std::task::Waker::noop();
    assert!(
        std::future::Future::poll(fut.as_mut(), &mut std::task::Context::from_waker(waker))
            .is_pending()
    );
    drop(fut);
    until(|| pool.stats().idle == 4).await;
    let s = pool.stats();
    assert_eq!((s.size, s.destroyed, s.created), (4, 0, 4), "{s:?}");
    assert_eq!(
        c.resets.load(Ordering::SeqCst),
        5,
        "each returned object was reset"
    );
    // The objects are as good as ever.
    let held = common::take_n(&pool, 4).await;
    drop(held);
    assert_consistent(&pool);
}

/// A step left running is bounded by a second (not `create_timeout`): a `validate` hung on
/// a dead connection gives its capacity back soon after its caller gave up.
#[tokio::test]
async fn a_hung_checkout_step_left_behind_gives_its_capacity_back_soon() {
    let hang = Arc::new(AtomicBool::new(false));
    let (pool, _c) = slow_validate_pool(&hang, |b| b.create_timeout(Duration::from_secs(60))).await;
    hang.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let r = pool.acquire().timeout(Duration::from_millis(20)).await;
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
    until(|| pool.stats().size == 3).await;
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(4), "capacity held {waited:?}");
    assert_eq!(pool.stats().destroyed, 1);
    assert_consistent(&pool);
}

/// What passes a left step is returned with a guard's full treatment: `on_release` runs
/// (and may reject it); a pool closed meanwhile destroys it, and `drain` waits for it.
#[tokio::test]
async fn a_checkout_step_left_behind_returns_its_object_like_a_guard() {
    let hang = Arc::new(AtomicBool::new(false));
    let released = Arc::new(AtomicUsize::new(0));
    let reject = Arc::new(AtomicBool::new(false));
    let (r2, j2) = (released.clone(), reject.clone());
    let (pool, c) = slow_validate_pool(&hang, move |b| {
        b.on_release(move |_, _| {
            r2.fetch_add(1, Ordering::SeqCst);
            if j2.load(Ordering::SeqCst) {
                return Err("rejected".into());
            }
            Ok(())
        })
    })
    .await;
    let zero = || pool.acquire().timeout(Duration::ZERO);
    assert!(matches!(zero().await, Err(PoolError::Timeout)));
    until(|| pool.stats().idle == 4).await;
    assert_eq!(released.load(Ordering::SeqCst), 1);
    reject.store(true, Ordering::SeqCst);
    assert!(matches!(zero().await, Err(PoolError::Timeout)));
    until(|| pool.stats().size == 3).await;
    assert_eq!(released.load(Ordering::SeqCst), 2);
    reject.store(false, Ordering::SeqCst);
    // Closed while a step runs on: drain waits for it, and it is destroyed.
    assert!(matches!(zero().await, Err(PoolError::Timeout)));
    assert_eq!(pool.stats().size, 3);
    pool.drain(Duration::from_secs(5)).await.unwrap();
    let s = pool.stats();
    assert_eq!((s.size, s.idle), (0, 0), "{s:?}");
    assert_eq!(c.live.load(Ordering::SeqCst), 0);
}

/// A pool built in a current-thread runtime that stays alive but is no longer driven (its
/// owner went on with plain threads): blocking callers from other threads still get
/// objects, since their creates run on threads of their own instead of waiting for that
/// runtime to run them.
#[test]
fn blocking_callers_create_while_the_current_thread_build_runtime_is_idle() {
    within(Duration::from_secs(20), || {
        let c = census();
        let rt = current_thread();
        let pool = rt.block_on(async { builder(&c, NO_DELAY).max_size(2).build().unwrap() });
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let p = pool.clone();
                std::thread::spawn(move || {
                    let g = p.acquire().timeout(Duration::from_secs(5)).blocking()?;
                    std::thread::sleep(Duration::from_millis(20));
                    drop(g);
                    Ok::<_, PoolError>(())
                })
            })
            .collect();
        for t in callers {
            t.join()
                .unwrap()
                .expect("served while the build runtime is idle");
        }
        let s = pool.stats();
        assert!((1..=2).contains(&s.created), "{s:?}");
        assert_consistent(&pool);
        drop(rt);
    });
}
