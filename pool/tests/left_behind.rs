//! What the pool does with work its caller left behind: a checkout step whose caller
//! stopped waiting (finished in the background, `checkout::finish_left`) and a create a
//! dying runtime dropped unstarted (moved on, `rt/exec.rs`): nothing is lost or parked,
//! the stats add up, and the shared state is freed, whatever user code, runtimes and
//! handles do meanwhile.

mod common;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{assert_consistent, runtime, start_a_create_on_a_dying_runtime, until, Census};
use riptide_pool::{Pool, PoolError};

/// A future that is ready after `d`, woken by a std thread (needs no runtime); it wakes
/// the waker of its latest poll.
struct Delay {
    at: Instant,
    waker: Option<Arc<std::sync::Mutex<std::task::Waker>>>,
}
fn delay(d: Duration) -> Delay {
    Delay {
        at: Instant::now() + d,
        waker: None,
    }
}
impl Future for Delay {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        match &self.waker {
            Some(w) => *w.lock().unwrap() = cx.waker().clone(),
            None => {
                let w = Arc::new(std::sync::Mutex::new(cx.waker().clone()));
                self.waker = Some(w.clone());
                let at = self.at;
                std::thread::spawn(move || {
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
                    w.lock().unwrap().wake_by_ref();
                });
            }
        }
        Poll::Pending
    }
}

const PASS: usize = 0;
const YIELD_PASS: usize = 1;
const SLOW_PASS: usize = 2; // 200 ms, then pass
const HANG: usize = 3;
const YIELD_PANIC: usize = 4;

struct Fac {
    c: Arc<Census>,
    mode: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}
impl Drop for Fac {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}
impl riptide_pool::Factory<common::Obj> for Fac {
    type Error = std::io::Error;
    fn create(&self) -> impl Future<Output = Result<common::Obj, std::io::Error>> + Send {
        let c = self.c.clone();
        async move { Ok(common::make(&c)) }
    }
    async fn validate(&self, _: &mut common::Obj) -> bool {
        match self.mode.load(Ordering::SeqCst) {
            PASS => {}
            YIELD_PASS => delay(Duration::from_millis(5)).await,
            SLOW_PASS => delay(Duration::from_millis(200)).await,
            HANG => std::future::pending::<()>().await,
            _ => {
                delay(Duration::from_millis(5)).await;
                panic!("validate panicked in the background")
            }
        }
        true
    }
}

struct Kit {
    c: Arc<Census>,
    mode: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

fn kit(
    mode: usize,
    f: impl FnOnce(riptide_pool::PoolBuilder<common::Obj>) -> riptide_pool::PoolBuilder<common::Obj>,
) -> (Pool<common::Obj>, Kit) {
    let k = Kit {
        c: Arc::new(Census::default()),
        mode: Arc::new(AtomicUsize::new(mode)),
        dropped: Arc::new(AtomicBool::new(false)),
    };
    let fac = Fac {
        c: k.c.clone(),
        mode: k.mode.clone(),
        dropped: k.dropped.clone(),
    };
    let pool = f(Pool::builder(fac).validation_interval(Duration::ZERO))
        .build()
        .unwrap();
    (pool, k)
}

async fn cut_short(pool: &Pool<common::Obj>) {
    let r = pool.acquire().timeout(Duration::ZERO).await;
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
}

/// The usage histogram counts only real checkouts: a step cut short is not one.
#[tokio::test]
async fn usage_histogram_is_not_fed_by_steps_left_behind() {
    let (pool, k) = kit(PASS, |b| b.max_size(1));
    let g = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(g); // first return: uses == 1, a 300 ms usage sample
    let s = pool.stats();
    assert!(s.usage_p50 >= Duration::from_millis(250), "{s:?}");
    k.mode.store(YIELD_PASS, Ordering::SeqCst);
    for _ in 0..3 {
        cut_short(&pool).await;
        until(|| pool.stats().idle == 1).await;
    }
    let s = pool.stats();
    assert_eq!(s.acquired, 1, "{s:?}");
    assert!(
        s.usage_p50 >= Duration::from_millis(250),
        "one checkout held 300 ms, yet usage_p50 = {:?}: {s:?}",
        s.usage_p50
    );
}

/// The last Pool handle dropped while a step runs on: the object is destroyed when the
/// step ends and the shared state (with the factory in it) is freed.
#[tokio::test]
async fn last_handle_dropped_mid_step_frees_everything() {
    let (pool, k) = kit(SLOW_PASS, |b| b.max_size(2));
    pool.warm_up(2).await.unwrap();
    cut_short(&pool).await;
    drop(pool);
    until(|| k.c.live.load(Ordering::SeqCst) == 0).await;
    until(|| k.dropped.load(Ordering::SeqCst)).await;
}

/// Same, with the step failing (panicking validate).
#[tokio::test]
async fn last_handle_dropped_mid_step_that_panics_frees_everything() {
    let (pool, k) = kit(YIELD_PANIC, |b| b.max_size(2));
    pool.warm_up(2).await.unwrap();
    cut_short(&pool).await;
    drop(pool);
    until(|| k.c.live.load(Ordering::SeqCst) == 0).await;
    until(|| k.dropped.load(Ordering::SeqCst)).await;
}

/// A panicking validate in the background: destroyed, counted.
#[tokio::test]
async fn panicking_step_in_background_is_destroyed_and_counted() {
    let (pool, k) = kit(PASS, |b| b.max_size(2));
    pool.warm_up(2).await.unwrap();
    k.mode.store(YIELD_PANIC, Ordering::SeqCst);
    cut_short(&pool).await;
    until(|| pool.stats().size == 1).await;
    let s = pool.stats();
    assert_eq!((s.created, s.destroyed, s.idle), (2, 1, 1), "{s:?}");
    assert_eq!(k.c.live.load(Ordering::SeqCst), 1);
    assert_consistent(&pool);
}

/// reset / is_healthy / on_release panicking in the background return.
#[tokio::test]
async fn panicking_return_hooks_in_background() {
    for which in 0..3 {
        let boom = Arc::new(AtomicBool::new(false));
        let (b1, b2, b3) = (boom.clone(), boom.clone(), boom.clone());
        let (pool, k) = kit(PASS, move |b| {
            let b = b.max_size(2);
            match which {
                0 => b.reset(move |_| {
                    if b1.load(Ordering::SeqCst) {
                        panic!("reset")
                    }
                }),
                1 => b.is_healthy(move |_| {
                    if b2.load(Ordering::SeqCst) {
                        panic!("is_healthy")
                    }
                    true
                }),
                _ => b.on_release(move |_, _| {
                    if b3.load(Ordering::SeqCst) {
                        panic!("on_release")
                    }
                    Ok(())
                }),
            }
        });
        pool.warm_up(2).await.unwrap();
        k.mode.store(YIELD_PASS, Ordering::SeqCst);
        boom.store(true, Ordering::SeqCst);
        cut_short(&pool).await;
        until(|| pool.stats().size == 1).await;
        let s = pool.stats();
        assert_eq!(
            (s.created, s.destroyed, s.idle),
            (2, 1, 1),
            "hook {which}: {s:?}"
        );
        assert_eq!(k.c.live.load(Ordering::SeqCst), 1);
        assert_consistent(&pool);
        boom.store(false, Ordering::SeqCst);
        drop(pool);
        until(|| k.dropped.load(Ordering::SeqCst)).await;
    }
}

/// A queued waiter is handed the object the background step returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_waiter_gets_the_object_the_background_step_returns() {
    let (pool, k) = kit(PASS, |b| b.max_size(1));
    pool.warm_up(1).await.unwrap();
    k.mode.store(SLOW_PASS, Ordering::SeqCst);
    let r = pool.acquire().timeout(Duration::from_millis(20)).await;
    assert!(matches!(r, Err(PoolError::Timeout)));
    k.mode.store(PASS, Ordering::SeqCst);
    let t0 = Instant::now();
    let g = pool
        .acquire()
        .timeout(Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    drop(g);
    let s = pool.stats();
    assert_eq!(
        (s.created, s.destroyed, s.size, s.idle),
        (1, 0, 1, 1),
        "{s:?}"
    );
    assert_consistent(&pool);
}

/// The lifetime runs out during the background step: destroyed on return.
#[tokio::test]
async fn lifetime_ending_during_the_background_step() {
    let (pool, k) = kit(PASS, |b| {
        b.max_size(1).max_lifetime(Duration::from_millis(150))
    });
    pool.warm_up(1).await.unwrap();
    k.mode.store(SLOW_PASS, Ordering::SeqCst);
    cut_short(&pool).await;
    until(|| pool.stats().size == 0).await;
    let s = pool.stats();
    assert_eq!((s.created, s.destroyed), (1, 1), "{s:?}");
    assert_eq!(k.c.live.load(Ordering::SeqCst), 0);
}

/// The runtime that runs the step shuts down mid-step (the task started): destroyed,
/// capacity back, everything counted.
#[test]
fn runtime_shutdown_mid_step() {
    let (pool, k) = kit(PASS, |b| b.max_size(2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        pool.warm_up(2).await.unwrap();
        k.mode.store(HANG, Ordering::SeqCst);
        cut_short(&pool).await;
        // Let the background task start.
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    drop(rt);
    let t0 = Instant::now();
    while pool.stats().size != 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = pool.stats();
    assert_eq!((s.size, s.idle, s.destroyed), (1, 1, 1), "{s:?}");
    assert_eq!(k.c.live.load(Ordering::SeqCst), 1);
    assert_consistent(&pool);
    drop(pool);
    let t0 = Instant::now();
    while !k.dropped.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(k.dropped.load(Ordering::SeqCst), "shared state never freed");
}

/// The runtime shuts down before the step's task ever ran: it moves on (thread) and
/// returns the object.
#[test]
fn runtime_shutdown_before_the_step_task_ran() {
    let (pool, k) = kit(PASS, |b| b.max_size(2));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        pool.warm_up(2).await.unwrap();
        k.mode.store(YIELD_PASS, Ordering::SeqCst);
        cut_short(&pool).await;
    });
    drop(rt);
    let t0 = Instant::now();
    while pool.stats().idle != 2 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = pool.stats();
    assert_eq!((s.size, s.idle, s.destroyed), (2, 2, 0), "{s:?}");
    assert_consistent(&pool);
}

/// A blocking caller on a plain thread, pool built outside any runtime.
#[test]
fn blocking_caller_left_step() {
    let (pool, k) = kit(PASS, |b| b.max_size(2));
    let g1 = pool.get_blocking().unwrap();
    let g2 = pool.get_blocking().unwrap();
    drop((g1, g2));
    k.mode.store(SLOW_PASS, Ordering::SeqCst);
    let r = pool.acquire().timeout(Duration::from_millis(20)).blocking();
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
    let t0 = Instant::now();
    while pool.stats().idle != 2 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = pool.stats();
    assert_eq!((s.size, s.idle, s.destroyed), (2, 2, 0), "{s:?}");
    assert_consistent(&pool);
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "not reached in 5 s: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The build runtime itself shuts down with the step's task queued, unstarted: the run
/// bounces off the (same) build runtime and ends on a thread; the object comes back.
#[test]
fn build_runtime_dies_with_a_left_step_queued() {
    for multi in [false, true] {
        let rt = runtime(multi);
        let (pool, k) = rt.block_on(async {
            let (pool, k) = kit(PASS, |b| b.max_size(2));
            pool.warm_up(2).await.unwrap();
            k.mode.store(SLOW_PASS, Ordering::SeqCst);
            cut_short(&pool).await;
            (pool, k)
        });
        drop(rt);
        let t0 = Instant::now();
        while pool.stats().in_use != 0 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let s = pool.stats();
        // A step a worker had started when the runtime went down is destroyed (documented).
        assert!(
            s.size == s.idle && s.size + s.destroyed as usize == 2,
            "multi {multi}: {s:?}"
        );
        assert_eq!(k.c.live.load(Ordering::SeqCst), s.size);
        assert_consistent(&pool);
        drop(pool);
        wait_for("shared freed", || k.dropped.load(Ordering::SeqCst));
    }
}

/// The caller's task is dropped by its (build) runtime's shutdown mid-step: the step
/// moves on and the object is settled; nothing leaks.
#[test]
fn caller_task_dropped_by_shutdown_mid_step() {
    for multi in [false, true] {
        let rt = runtime(multi);
        let (pool, k) = rt.block_on(async {
            let (pool, k) = kit(PASS, |b| b.max_size(2));
            pool.warm_up(2).await.unwrap();
            k.mode.store(SLOW_PASS, Ordering::SeqCst);
            let p = pool.clone();
            tokio::spawn(async move {
                let _ = p.acquire().timeout(Duration::from_secs(10)).await;
            });
            until(|| pool.stats().idle == 1).await;
            (pool, k)
        });
        drop(rt);
        let t0 = Instant::now();
        while pool.stats().in_use != 0 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let s = pool.stats();
        // A step a worker had started when the runtime went down is destroyed (documented).
        assert!(
            s.size == s.idle && s.size + s.destroyed as usize == 2,
            "multi {multi}: {s:?}"
        );
        assert_eq!(k.c.live.load(Ordering::SeqCst), s.size);
        assert_consistent(&pool);
        drop(pool);
        wait_for("shared freed", || k.dropped.load(Ordering::SeqCst));
    }
}

/// The pool is dropped by the caller's task itself (its only handle) while its step is
/// cut short, on a dying runtime.
#[test]
fn only_handle_in_a_task_dropped_by_shutdown_mid_step() {
    for multi in [false, true] {
        let rt = runtime(multi);
        let k = rt.block_on(async {
            let (pool, k) = kit(PASS, |b| b.max_size(2));
            pool.warm_up(2).await.unwrap();
            k.mode.store(HANG, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = pool.acquire().timeout(Duration::from_secs(10)).await;
            });
            tokio::time::sleep(Duration::from_millis(30)).await;
            k
        });
        drop(rt);
        wait_for("live == 0", || k.c.live.load(Ordering::SeqCst) == 0);
        wait_for("shared freed", || k.dropped.load(Ordering::SeqCst));
    }
}

/// A pool built in a current-thread runtime that is kept but no longer driven (setup
/// done, work happens on other runtimes): a create dropped unstarted by a dying runtime is
/// not parked on that runtime (its reservation would never come back), it runs on a thread.
#[test]
fn a_rescued_create_is_not_parked_on_an_undriven_build_runtime() {
    let c = Arc::new(Census::default());
    let setup = runtime(false);
    let pool = setup.block_on(async {
        common::builder(&c, Duration::ZERO)
            .max_size(1)
            .build()
            .unwrap()
    });
    // `setup` stays alive, not driven.
    start_a_create_on_a_dying_runtime(&pool);
    let t0 = Instant::now();
    while pool.stats().idle != 1 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = pool.stats();
    let other = runtime(true);
    let r = other.block_on(
        pool.acquire()
            .timeout(Duration::from_millis(500))
            .into_future(),
    );
    assert!(
        r.is_ok(),
        "a live runtime cannot get an object: {:?}; stats {s:?}",
        r.map(drop)
    );
    drop(setup);
}

/// "Works on any executor": a caller outside tokio (here: a plain thread polling by hand,
/// as a non-tokio executor would) whose future is dropped mid-step, with a current-thread
/// build runtime kept but not driven: the step runs on a thread, within its 1 s bound, and
/// the object comes back.
#[test]
fn a_step_left_by_a_non_tokio_caller_is_not_parked_on_an_undriven_build_runtime() {
    let setup = runtime(false);
    let (pool, k) = setup.block_on(async {
        let (pool, k) = kit(PASS, |b| b.max_size(1));
        pool.warm_up(1).await.unwrap();
        (pool, k)
    });
    k.mode.store(SLOW_PASS, Ordering::SeqCst);
    let p = pool.clone();
    std::thread::spawn(move || {
        let mut fut = Box::pin(p.get().into_future());
        let w = std::task::Waker::noop();
        assert!(fut.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        drop(fut); // the caller gives up mid-step
    })
    .join()
    .unwrap();
    k.mode.store(PASS, Ordering::SeqCst);
    let t0 = Instant::now();
    while pool.stats().in_use != 0 && t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = pool.stats();
    let other = runtime(true);
    let r = other.block_on(
        pool.acquire()
            .timeout(Duration::from_millis(500))
            .into_future(),
    );
    assert!(
        r.is_ok(),
        "3.5 s after the caller left, the only object is still out: {:?}; stats {s:?}",
        r.map(drop)
    );
    drop(setup);
}
