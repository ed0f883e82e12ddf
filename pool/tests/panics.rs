//! A panic in every piece of user code the pool runs — the factory, `post_create`,
//! `validate`, the recycle hooks, `reset`, `is_healthy`, `on_release`, `on_detach`, and an
//! object's `Drop` — on every path that runs it. Whatever panics, no capacity is lost:
//! afterwards the pool still serves `max_size` objects and every counter adds up.
//!
//! Where a panic goes: the factory's and `post_create`'s become `PoolError::Create`
//! ("the factory panicked: ..."); a panicking checkout check (`validate`, recycle hooks)
//! destroys the object and the caller gets another; `reset`, `is_healthy`, `on_release`
//! and `on_detach` run in the caller's own call (dropping the guard, detaching), so their
//! panic reaches that caller; an object's `Drop` panic is caught and logged by the pool.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use riptide_pool::{
    DestroyReason, Factory, PartitionedPool, Pool, PoolError, PoolEvent, Poolable, Pooled,
};

/// Where to panic. Shared by the factory, the hooks and the objects.
#[derive(Default)]
struct Flags {
    create: AtomicBool,
    post_create: AtomicBool,
    validate: AtomicBool,
    validate_fails: AtomicBool,
    pre_recycle: AtomicBool,
    post_recycle: AtomicBool,
    reset: AtomicBool,
    is_healthy: AtomicBool,
    on_release: AtomicBool,
    on_detach: AtomicBool,
    drop: AtomicBool,
    live: AtomicUsize,
}

fn on(f: &AtomicBool) -> bool {
    f.load(Ordering::SeqCst)
}

/// Panics with a message the quiet hook below recognises.
fn boom(what: &str) -> ! {
    panic!("{what} panicked (on purpose)")
}

struct Obj {
    f: Arc<Flags>,
    healthy: bool,
}

impl Poolable for Obj {
    fn reset(&mut self) {
        if on(&self.f.reset) {
            boom("reset");
        }
    }
    fn is_healthy(&self) -> bool {
        if on(&self.f.is_healthy) {
            boom("is_healthy");
        }
        self.healthy
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.f.live.fetch_sub(1, Ordering::SeqCst);
        if on(&self.f.drop) && !std::thread::panicking() {
            boom("drop");
        }
    }
}

struct Fac(Arc<Flags>);

impl Factory<Obj> for Fac {
    type Error = std::io::Error;
    fn create(&self) -> impl Future<Output = Result<Obj, std::io::Error>> + Send {
        let f = self.0.clone();
        async move {
            if on(&f.create) {
                boom("create");
            }
            f.live.fetch_add(1, Ordering::SeqCst);
            Ok(Obj { f, healthy: true })
        }
    }
    fn validate(&self, _: &mut Obj) -> impl Future<Output = bool> + Send {
        let f = self.0.clone();
        async move {
            if on(&f.validate) {
                boom("validate");
            }
            !on(&f.validate_fails)
        }
    }
}

fn quiet() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains("(on purpose)") {
                prev(info);
            }
        }));
    });
}

const MAX: usize = 2;

fn builder(f: &Arc<Flags>) -> riptide_pool::PoolBuilder<Obj> {
    quiet();
    Pool::builder(Fac(f.clone()))
        .max_size(MAX)
        .validation_interval(Duration::ZERO)
        .acquire_timeout(Duration::from_secs(2))
        .post_create(|o: &mut Obj, _: riptide_pool::ObjectMeta| {
            Box::pin(async move {
                if on(&o.f.post_create) {
                    boom("post_create");
                }
                Ok(())
            })
        })
        .pre_recycle(|o: &mut Obj, _: riptide_pool::ObjectMeta| {
            Box::pin(async move {
                if on(&o.f.pre_recycle) {
                    boom("pre_recycle");
                }
                Ok(())
            })
        })
        .post_recycle(|o: &mut Obj, _: riptide_pool::ObjectMeta| {
            Box::pin(async move {
                if on(&o.f.post_recycle) {
                    boom("post_recycle");
                }
                Ok(())
            })
        })
        .on_release(|o: &mut Obj, _: riptide_pool::ObjectMeta| {
            if on(&o.f.on_release) {
                boom("on_release");
            }
            Ok(())
        })
        .on_detach(|o: &mut Obj, _: riptide_pool::ObjectMeta| {
            if on(&o.f.on_detach) {
                boom("on_detach");
            }
            Ok(())
        })
}

fn flags() -> Arc<Flags> {
    Arc::new(Flags::default())
}

fn disarm(f: &Flags) {
    for b in [
        &f.create,
        &f.post_create,
        &f.validate,
        &f.validate_fails,
        &f.pre_recycle,
        &f.post_recycle,
        &f.reset,
        &f.is_healthy,
        &f.on_release,
        &f.on_detach,
        &f.drop,
    ] {
        b.store(false, Ordering::SeqCst);
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(5), "never: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// No capacity was lost: with every panic disarmed, the pool serves `MAX` objects at once,
/// and objects alive are exactly the pool's size.
async fn intact(pool: &Pool<Obj>, f: &Flags) {
    disarm(f);
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(pool.get().await.expect("capacity lost to a panic"));
    }
    drop(held);
    until("counters settle", || {
        let s = pool.stats();
        s.in_use == 0 && s.size == s.idle
    })
    .await;
    let s = pool.stats();
    assert_eq!(s.pending_acquisitions, 0, "{s:?}");
    assert_eq!(s.created - s.destroyed, s.size as u64, "{s:?}");
    assert_eq!(f.live.load(Ordering::SeqCst), s.size, "{s:?}");
}

fn is_panic_create(r: &Result<Pooled<Obj>, PoolError>, what: &str) -> bool {
    matches!(r, Err(PoolError::Create(e)) if e.to_string().contains("panicked") && e.to_string().contains(what))
}

// ------------------------------------------------------------------ making objects

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_factory_is_a_create_error_on_every_path() {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    f.create.store(true, Ordering::SeqCst);
    let r = pool.get().await;
    assert!(is_panic_create(&r, "create"), "{:?}", r.map(|_| ()));
    let p = pool.clone();
    let r = tokio::task::spawn_blocking(move || p.get_blocking())
        .await
        .unwrap();
    assert!(is_panic_create(&r, "create"), "{:?}", r.map(|_| ()));
    let w = pool.warm_up(1).await;
    assert!(
        matches!(&w, Err(PoolError::Create(e)) if e.to_string().contains("panicked")),
        "{w:?}"
    );
    intact(&pool, &f).await;
}

#[tokio::test]
async fn a_panicking_factory_in_background_replenishment_is_reported() {
    let f = flags();
    f.create.store(true, Ordering::SeqCst);
    let pool = builder(&f)
        .min_idle(1)
        .idle_timeout(Duration::from_millis(40)) // maintenance every 10 ms
        .no_circuit_breaker()
        .build()
        .unwrap();
    let mut events = pool.events();
    let t0 = Instant::now();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .expect("a CreateFailed event")
            .unwrap();
        if let PoolEvent::CreateFailed { error } = ev {
            assert!(error.contains("panicked"), "{error}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
    intact(&pool, &f).await;
}

#[tokio::test]
async fn a_panicking_post_create_is_a_create_error() {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    f.post_create.store(true, Ordering::SeqCst);
    let r = pool.get().await;
    assert!(is_panic_create(&r, "post_create"), "{:?}", r.map(|_| ()));
    assert_eq!(
        f.live.load(Ordering::SeqCst),
        0,
        "the half-made object was dropped"
    );
    intact(&pool, &f).await;
}

// ------------------------------------------------------------------ checking out

async fn checkout_check_panics(flag: fn(&Flags) -> &AtomicBool, blocking: bool) {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    let mut events = pool.events();
    drop(pool.get().await.unwrap()); // one idle object, due for the checks
    flag(&f).store(true, Ordering::SeqCst);
    let p = pool.clone();
    let flagged = f.clone();
    let g = if blocking {
        tokio::task::spawn_blocking(move || {
            let g = p.get_blocking();
            disarm(&flagged);
            g
        })
        .await
        .unwrap()
    } else {
        // The new object's own checks do not run (it is fresh); the panicking one was
        // destroyed and replaced.
        let g = p.get().await;
        disarm(&flagged);
        g
    };
    let g = g.expect("the caller gets another object");
    drop(g);
    let mut panicked = false;
    while let Ok(ev) = events.try_recv() {
        panicked |= matches!(
            ev,
            PoolEvent::Destroyed {
                reason: DestroyReason::Panicked,
                ..
            }
        );
    }
    assert!(panicked, "the object whose check panicked was destroyed");
    intact(&pool, &f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_validate_destroys_the_object_and_serves_another() {
    checkout_check_panics(|f| &f.validate, false).await;
    checkout_check_panics(|f| &f.validate, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_recycle_hook_destroys_the_object_and_serves_another() {
    checkout_check_panics(|f| &f.pre_recycle, false).await;
    checkout_check_panics(|f| &f.post_recycle, true).await;
}

// ------------------------------------------------------------------ returning

async fn return_panics(flag: fn(&Flags) -> &AtomicBool) {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    let g = pool.get().await.unwrap();
    flag(&f).store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(g)));
    assert!(
        r.is_err(),
        "the panic reaches the caller that dropped the guard"
    );
    disarm(&f);
    assert_eq!(
        pool.stats().size,
        0,
        "the object was destroyed, its capacity freed"
    );
    intact(&pool, &f).await;
}

#[tokio::test]
async fn a_panicking_reset_is_healthy_or_on_release_frees_the_capacity() {
    return_panics(|f| &f.reset).await;
    return_panics(|f| &f.is_healthy).await;
    return_panics(|f| &f.on_release).await;
}

#[tokio::test]
async fn a_panicking_on_detach_keeps_the_object_in_the_pool() {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    let g = pool.get().await.unwrap();
    f.on_detach.store(true, Ordering::SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Pooled::try_detach(g)));
    assert!(r.is_err());
    disarm(&f);
    assert_eq!(pool.stats().idle, 1, "the guard returned it as it unwound");
    intact(&pool, &f).await;
}

// ------------------------------------------------------------------ destroying

/// Objects whose `Drop` panics, destroyed by `path`: nothing is stranded.
async fn drop_panics(
    tweak: impl FnOnce(riptide_pool::PoolBuilder<Obj>) -> riptide_pool::PoolBuilder<Obj>,
    path: impl AsyncFnOnce(&Pool<Obj>, &Arc<Flags>),
) {
    let f = flags();
    let pool = tweak(builder(&f)).build().unwrap();
    path(&pool, &f).await;
    intact(&pool, &f).await;
}

async fn fill(pool: &Pool<Obj>) -> Vec<Pooled<Obj>> {
    let mut v = Vec::new();
    for _ in 0..MAX {
        v.push(pool.get().await.unwrap());
    }
    v
}

#[tokio::test]
async fn a_panicking_drop_on_an_unhealthy_return_or_discard() {
    drop_panics(
        |b| b,
        async |pool, f| {
            let mut v = fill(pool).await;
            f.drop.store(true, Ordering::SeqCst);
            v[0].healthy = false;
            drop(v.remove(0));
            Pooled::discard(v.remove(0));
            assert_eq!(pool.stats().size, 0);
        },
    )
    .await;
}

#[tokio::test]
async fn a_panicking_drop_when_resize_shrinks() {
    // An idle object goes at once.
    drop_panics(
        |b| b,
        async |pool, f| {
            let mut v = fill(pool).await;
            drop(v.pop()); // one idle, one out
            f.drop.store(true, Ordering::SeqCst);
            pool.resize(1);
            assert_eq!(pool.stats().size, 1);
            pool.resize(MAX);
        },
    )
    .await;
    // Objects out go as they return, while the pool is above its size.
    drop_panics(
        |b| b,
        async |pool, f| {
            let v = fill(pool).await;
            f.drop.store(true, Ordering::SeqCst);
            pool.resize(1);
            drop(v);
            assert_eq!(pool.stats().size, 1);
            assert_eq!(pool.stats().destroyed, 1);
            pool.resize(MAX);
        },
    )
    .await;
}

#[tokio::test]
async fn a_panicking_drop_on_close_and_after() {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    let mut v = fill(&pool).await;
    drop(v.pop());
    f.drop.store(true, Ordering::SeqCst);
    pool.close();
    drop(v);
    disarm(&f);
    assert_eq!(pool.stats().size, 0);
    assert_eq!(f.live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_panicking_drop_in_maintenance_idle_eviction_and_lifetime() {
    drop_panics(
        |b| b.idle_timeout(Duration::from_millis(30)),
        async |pool, f| {
            drop(fill(pool).await);
            f.drop.store(true, Ordering::SeqCst);
            until("idle objects evicted", || {
                f.live.load(Ordering::SeqCst) == 0
            })
            .await;
        },
    )
    .await;
    drop_panics(
        |b| b.max_lifetime(Duration::from_millis(40)),
        async |pool, f| {
            drop(fill(pool).await);
            f.drop.store(true, Ordering::SeqCst);
            until("old objects retired", || f.live.load(Ordering::SeqCst) == 0).await;
        },
    )
    .await;
}

#[tokio::test]
async fn a_panicking_drop_when_validation_rejects() {
    drop_panics(
        |b| b,
        async |pool, f| {
            drop(pool.get().await.unwrap());
            f.drop.store(true, Ordering::SeqCst);
            f.validate_fails.store(true, Ordering::SeqCst);
            let g = pool
                .get()
                .await
                .expect("a fresh object replaces the rejected one");
            drop(g);
        },
    )
    .await;
}

#[tokio::test]
async fn a_panicking_drop_when_the_last_handle_goes() {
    let f = flags();
    let pool = builder(&f).build().unwrap();
    drop(fill(&pool).await);
    f.drop.store(true, Ordering::SeqCst);
    drop(pool);
    assert_eq!(
        f.live.load(Ordering::SeqCst),
        0,
        "every idle object destroyed"
    );
}

#[tokio::test]
async fn a_panicking_drop_when_a_partition_evicts_for_another() {
    quiet();
    let f = flags();
    let fl = f.clone();
    let pp = PartitionedPool::builder(move |_k: u8| {
        let f = fl.clone();
        async move {
            f.live.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Obj { f, healthy: true })
        }
    })
    .partition_max_size(2)
    .max_size(2)
    .build()
    .unwrap();
    let a = (pp.get(&0).await.unwrap(), pp.get(&0).await.unwrap());
    drop(a); // key 0 holds the whole global cap, idle
    f.drop.store(true, Ordering::SeqCst);
    let b = (pp.get(&1).await.unwrap(), pp.get(&1).await.unwrap()); // evicts both
    disarm(&f);
    assert_eq!(pp.stats(&0).unwrap().size, 0);
    assert_eq!(pp.global_size(), 2);
    drop(b);
    assert_eq!(f.live.load(Ordering::SeqCst), 2);
}

// ------------------------------------------------------------------ a waiter's waker

/// A waker that panics when cloned, woken or dropped, while its flags say so.
#[derive(Default)]
struct WakerFlags {
    clone: AtomicBool,
    wake: AtomicBool,
    drop: AtomicBool,
    /// Wakes attempted, panicking or not.
    woken: AtomicUsize,
}

fn panicking_waker(f: &Arc<WakerFlags>) -> std::task::Waker {
    use std::task::{RawWaker, RawWakerVTable, Waker};
    const VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);
    fn flags(p: *const ()) -> &'static WakerFlags {
        // SAFETY: `p` came from `Arc::into_raw` and its count is held by this waker.
        unsafe { &*p.cast::<WakerFlags>() }
    }
    fn clone(p: *const ()) -> RawWaker {
        if on(&flags(p).clone) {
            boom("a waker's clone");
        }
        // SAFETY: as in `flags`; the clone holds a count of its own.
        unsafe { Arc::increment_strong_count(p.cast::<WakerFlags>()) };
        RawWaker::new(p, &VTABLE)
    }
    fn wake(p: *const ()) {
        wake_by_ref(p);
        drop_waker(p);
    }
    fn wake_by_ref(p: *const ()) {
        flags(p).woken.fetch_add(1, Ordering::SeqCst);
        if on(&flags(p).wake) {
            boom("a waker's wake");
        }
    }
    fn drop_waker(p: *const ()) {
        // SAFETY: as in `flags`; this gives back this waker's count.
        let f = unsafe { Arc::from_raw(p.cast::<WakerFlags>()) };
        if on(&f.drop) {
            boom("a waker's drop");
        }
    }
    let p = Arc::into_raw(f.clone()).cast::<()>();
    // SAFETY: the vtable's functions keep the contract above.
    unsafe { Waker::from_raw(RawWaker::new(p, &VTABLE)) }
}

/// A waiter's waker that panics when the returning caller wakes it (in `wake`, or as the
/// wake consumes it), or when the waiter gives up and its cell lets go of it: the panic
/// reaches whoever ran it, and nothing is lost or handed out twice.
#[tokio::test]
async fn a_panicking_waker_loses_nothing() {
    use std::future::IntoFuture;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Poll, Waker};

    let f = flags();
    let pool = builder(&f).build().unwrap();
    for case in ["wake", "drop in wake", "drop on cancel"] {
        let mut held = fill(&pool).await;
        let w = Arc::new(WakerFlags::default());
        let waker = panicking_waker(&w);
        let mut fut = Box::pin(pool.acquire().into_future());
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        if case == "drop on cancel" {
            w.drop.store(true, Ordering::SeqCst);
            let r = catch_unwind(AssertUnwindSafe(|| drop(fut)));
            assert!(r.is_err(), "{case}: the waker's drop did not run");
        } else {
            let flag = if case == "wake" { &w.wake } else { &w.drop };
            flag.store(true, Ordering::SeqCst);
            let returned = held.pop().unwrap();
            let r = catch_unwind(AssertUnwindSafe(|| drop(returned)));
            assert!(r.is_err(), "{case}: the waker did not run in the return");
            flag.store(false, Ordering::SeqCst);
            // The object went to the waiter all the same.
            match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(g) => held.push(g.expect("served")),
                Poll::Pending => panic!("{case}: the waiter was not served"),
            }
            drop(fut);
        }
        w.drop.store(false, Ordering::SeqCst);
        drop(held);
        intact(&pool, &f).await;
    }
}

/// A creating caller's waker that panics when its create settles (the object handed
/// over, the pool closed meanwhile, the factory failed): the create still settles all it
/// owes, so the caller's next poll sees the outcome, nothing is lost, and once the last
/// handle is gone the pool's memory (and with it the factory) is freed.
#[tokio::test]
async fn a_panicking_waker_of_a_creating_caller_loses_nothing() {
    for case in ["handed", "closed", "failed"] {
        creating_caller_with_a_panicking_waker(case).await;
    }
}

/// The same, with a tracing subscriber that also panics on the error the pool logs about
/// the waker (and, for the failed create, on the warning about the failure).
#[test]
fn a_panicking_waker_and_subscriber_of_a_creating_caller_lose_nothing() {
    for case in ["handed", "closed", "failed"] {
        with_panicking_events(|| creating_caller_with_a_panicking_waker(case));
    }
}

async fn creating_caller_with_a_panicking_waker(case: &str) {
    use std::task::{Context, Poll, Waker};

    struct Unit;
    impl Poolable for Unit {}
    quiet();
    {
        let token = Arc::new(());
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let fail = Arc::new(AtomicBool::new(case == "failed"));
        let (t, g, fl) = (token.clone(), gate.clone(), fail.clone());
        let pool = Pool::builder(move || {
            let _freed_with_the_pool = &t;
            let (g, fl) = (g.clone(), fl.clone());
            async move {
                g.acquire().await.unwrap().forget();
                if fl.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("refused"))
                } else {
                    Ok(Unit)
                }
            }
        })
        .max_size(1)
        .build()
        .unwrap();
        let w = Arc::new(WakerFlags::default());
        let waker = panicking_waker(&w);
        let mut fut = Box::pin(pool.get());
        assert!(fut
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        w.wake.store(true, Ordering::SeqCst);
        if case == "closed" {
            // `close` fails the creating caller at once: its waker's panic reaches the
            // closing caller, after the pool is closed.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.close()));
            assert!(r.is_err(), "close did not wake the creating caller");
            assert!(pool.is_closed());
        }
        gate.add_permits(1);
        until(case, || w.woken.load(Ordering::SeqCst) > 0).await;
        let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
            panic!("{case}: the caller was not settled");
        };
        match (case, r) {
            ("handed", Ok(g)) => drop(g),
            ("closed", Err(PoolError::Closed)) | ("failed", Err(PoolError::Create(_))) => {}
            (_, r) => panic!("{case}: {:?}", r.map(|_| ())),
        }
        if case != "closed" {
            // The capacity (the object, or the failed create's reservation) is back.
            fail.store(false, Ordering::SeqCst);
            gate.add_permits(1);
            let g = tokio::time::timeout(Duration::from_secs(10), pool.get()).await;
            assert!(matches!(g, Ok(Ok(_))), "{case}: capacity lost");
        }
        drop(fut);
        drop(pool);
        until(case, || Arc::strong_count(&token) == 1).await;
    }
}

/// A waker that panics when the pool clones it, as the caller queues or as a queued
/// caller is polled again by another task: the panic reaches the polling caller, and the
/// pool is left as it was (not queued, or still queued with the waker it had).
#[tokio::test]
async fn a_panicking_waker_clone_loses_nothing() {
    use std::future::IntoFuture;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::task::{Context, Poll, Waker};

    let f = flags();
    let pool = builder(&f).build().unwrap();
    let w = Arc::new(WakerFlags::default());
    let waker = panicking_waker(&w);
    w.clone.store(true, Ordering::SeqCst);
    for case in ["queuing", "polled again"] {
        let mut held = fill(&pool).await;
        let mut fut = Box::pin(pool.acquire().into_future());
        if case == "polled again" {
            let noop = &mut Context::from_waker(Waker::noop());
            assert!(fut.as_mut().poll(noop).is_pending());
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = fut.as_mut().poll(&mut Context::from_waker(&waker));
        }));
        assert!(r.is_err(), "{case}: the waker was not cloned");
        let queued = usize::from(case == "polled again");
        assert_eq!(pool.stats().pending_acquisitions, queued, "{case}");
        drop(held.pop());
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(g) => held.push(g.expect("served")),
            Poll::Pending => panic!("{case}: the waiter was not served"),
        }
        drop(fut);
        drop(held);
        intact(&pool, &f).await;
    }
    w.clone.store(false, Ordering::SeqCst);
}

/// A tracing layer that panics on every event from the pool at `WARN` or above.
struct PanicOnEvent;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PanicOnEvent {
    fn on_event(&self, ev: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        if *ev.metadata().level() <= tracing::Level::WARN
            && ev.metadata().target().starts_with("riptide_pool")
        {
            boom("a subscriber's on_event");
        }
    }
}

/// Runs `f` on a current-thread runtime (so the pool's creates run on this thread too)
/// with [`PanicOnEvent`] as the subscriber.
fn with_panicking_events<F: Future<Output = ()>>(f: impl FnOnce() -> F) {
    quiet();
    common::with_layer(PanicOnEvent, f);
}

/// A subscriber that panics on the warning about a failed create (which goes out before
/// the create is settled): the caller still gets the factory's error, and the failed
/// create's reservation is given back.
#[test]
fn a_panicking_subscriber_on_a_failed_create_loses_nothing() {
    struct Unit;
    impl Poolable for Unit {}
    with_panicking_events(|| async {
        let fail = Arc::new(AtomicBool::new(true));
        let fl = fail.clone();
        let pool = Pool::builder(move || {
            let fl = fl.clone();
            async move {
                if fl.load(Ordering::SeqCst) {
                    Err(std::io::Error::other("refused"))
                } else {
                    Ok(Unit)
                }
            }
        })
        .max_size(1)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
        let r = pool.get().await;
        assert!(
            matches!(r, Err(PoolError::Create(_))),
            "{:?}",
            r.map(|_| ())
        );
        fail.store(false, Ordering::SeqCst);
        let r = pool.get().await;
        assert!(r.is_ok(), "capacity lost: {:?}", r.map(|_| ()));
    });
}

/// A tracing layer that panics as a waiting acquisition's span opens, once (it disarms).
struct PanicOnWaitSpan(Arc<AtomicBool>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PanicOnWaitSpan {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == "riptide_pool.acquire" && self.0.swap(false, Ordering::SeqCst)
        {
            boom("a subscriber's on_new_span");
        }
    }
}

/// A tracing subscriber is user code too: one that panics as a caller's wait span opens
/// (the caller has just queued) does not reach the caller, which waits on without the
/// span and is served by the next return.
#[test]
fn a_panicking_subscriber_loses_nothing() {
    use std::future::IntoFuture;
    use std::task::{Context, Poll, Waker};

    let armed = Arc::new(AtomicBool::new(true));
    common::with_layer(PanicOnWaitSpan(armed.clone()), || async {
        let f = flags();
        let pool = builder(&f).build().unwrap();
        let mut held = fill(&pool).await;
        let mut fut = Box::pin(pool.acquire().into_future());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(
            !armed.load(Ordering::SeqCst),
            "the wait span was never opened"
        );
        assert_eq!(pool.stats().pending_acquisitions, 1, "queued all the same");
        drop(held.pop());
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(g) => held.push(g.expect("served")),
            Poll::Pending => panic!("the waiter was not served"),
        }
        drop(held);
        intact(&pool, &f).await;
    });
}

/// A tracing layer that panics in each kind of callback about the pool's own spans and
/// events (opening, entering, leaving and closing each span; each event) the first time it
/// comes (a span that failed to open is never entered, so later ones must succeed for the
/// rest to be reached), recording what panicked.
#[derive(Default)]
struct PanicOnEverything {
    seen: Mutex<std::collections::HashSet<String>>,
    hits: Arc<Mutex<std::collections::BTreeSet<String>>>,
}

impl PanicOnEverything {
    fn span_hit<S>(
        &self,
        kind: &str,
        id: &tracing::span::Id,
        ctx: &tracing_subscriber::layer::Context<'_, S>,
    ) where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        if let Some(m) = ctx
            .metadata(id)
            .filter(|m| m.target().starts_with("riptide_pool"))
        {
            let what = format!("{kind} {}", m.name());
            self.hit(what.clone(), what);
        }
    }

    fn hit(&self, key: String, label: String) {
        if self.seen.lock().unwrap().insert(key) {
            self.hits.lock().unwrap().insert(label);
            boom("a subscriber's callback");
        }
    }
}

impl<S> tracing_subscriber::Layer<S> for PanicOnEverything
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().target().starts_with("riptide_pool") {
            let what = format!("open {}", attrs.metadata().name());
            self.hit(what.clone(), what);
        }
    }
    fn on_event(&self, ev: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let m = ev.metadata();
        if m.target().starts_with("riptide_pool") {
            let file = m.file().unwrap_or("").rsplit('/').next().unwrap_or("");
            let what = format!("event {} {file}", m.level());
            self.hit(format!("{what}:{}", m.line().unwrap_or(0)), what);
        }
    }
    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.span_hit("enter", id, &ctx);
    }
    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.span_hit("exit", id, &ctx);
    }
    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.span_hit("close", &id, &ctx);
    }
}

/// The whole kind: a tracing subscriber that panics in every callback about everything
/// the pool reports on the caller's thread and the runtime's worker, where its creates and
/// maintenance run (the wait, create and destroy spans; the served
/// event; the warnings about a failed create and a suspected leak; the error about a
/// panicking `Drop`). None of those panics reaches a caller or the pool's bookkeeping:
/// every operation below completes as it would without a subscriber, and no capacity,
/// object or waiter is lost. (What the pool's timer thread reports, such as a nested
/// wait, goes to the global subscriber, which a test sharing its process cannot set.)
#[test]
fn a_subscriber_that_panics_on_everything_loses_nothing() {
    quiet();
    let layer = PanicOnEverything::default();
    let hits = layer.hits.clone();
    common::with_layer(layer, || {
        async {
            let f = flags();
            let pool = builder(&f)
                .leak_threshold(Duration::from_millis(20))
                .build()
                .unwrap();
            // A wait served by a hand-off, and one that times out.
            let held = fill(&pool).await;
            let p = pool.clone();
            let waiter = tokio::spawn(async move { p.get().await.map(drop) });
            tokio::time::sleep(Duration::from_millis(10)).await;
            drop(held);
            waiter.await.expect("no panic").expect("served");
            let held = fill(&pool).await;
            let r = pool.acquire().timeout(Duration::from_millis(20)).await;
            assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
            // Held past `leak_threshold` (a maintenance report), then a nested wait.
            tokio::time::sleep(Duration::from_millis(80)).await;
            let r = pool.acquire().timeout(Duration::from_millis(50)).await;
            assert!(r.is_err());
            drop(held);
            // A checkout that validation rejects, objects whose `Drop` panics as they are
            // discarded or a shrink destroys them: all destroyed inside their span.
            f.validate_fails.store(true, Ordering::SeqCst);
            drop(
                pool.get()
                    .await
                    .expect("a fresh object after the rejection"),
            );
            f.validate_fails.store(false, Ordering::SeqCst);
            let mut v = fill(&pool).await;
            f.drop.store(true, Ordering::SeqCst);
            Pooled::discard(v.remove(0));
            drop(v);
            pool.resize(1);
            f.drop.store(false, Ordering::SeqCst);
            pool.resize(MAX);
            intact(&pool, &f).await;
            pool.close();
            assert_eq!(
                f.live.load(Ordering::SeqCst),
                0,
                "close destroyed everything"
            );

            // A failing factory that opens the circuit breaker.
            let f = flags();
            let pool = builder(&f)
                .circuit_breaker(1, Duration::from_millis(30))
                .build()
                .unwrap();
            f.create.store(true, Ordering::SeqCst);
            let r = pool.get().await;
            assert!(is_panic_create(&r, "create"), "{:?}", r.map(drop));
            f.create.store(false, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(60)).await;
            intact(&pool, &f).await;
        }
    });
    let hits = hits.lock().unwrap();
    for want in [
        "open riptide_pool.acquire",
        "close riptide_pool.acquire",
        "event DEBUG trace.rs",
        "open riptide_pool.create",
        "enter riptide_pool.create",
        "exit riptide_pool.create",
        "close riptide_pool.create",
        "open riptide_pool.destroy",
        "enter riptide_pool.destroy",
        "exit riptide_pool.destroy",
        "close riptide_pool.destroy",
        "event WARN create.rs",
        "event WARN maintenance.rs",
        "event ERROR objects.rs",
    ] {
        assert!(
            hits.contains(want),
            "never called: {want}; called: {hits:?}"
        );
    }
}
