//! Lifecycle and reliability: validation, lifetime, idle eviction, min idle, create
//! timeout, maintenance, leak detection, circuit breaker, hooks, drain, health, histograms,
//! metrics, serde. Real time with short durations (the pool's coarse clock ticks every 2 ms).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_consistent, builder, until, Census};
use riptide_pool::{
    DestroyReason, Factory, HealthLevel, Pool, PoolError, PoolEvent, Poolable, Pooled,
};

fn census() -> Arc<Census> {
    Arc::new(Census::default())
}

const NO_DELAY: Duration = Duration::ZERO;

/// A factory whose `validate` fails while `bad` is set, counting validations.
struct Validating {
    census: Arc<Census>,
    bad: Arc<AtomicBool>,
    validations: Arc<AtomicUsize>,
}

impl Factory<common::Obj> for Validating {
    type Error = std::io::Error;
    fn create(&self) -> impl Future<Output = Result<common::Obj, std::io::Error>> + Send {
        let c = self.census.clone();
        async move { Ok(common::make(&c)) }
    }
    fn validate(&self, _obj: &mut common::Obj) -> impl Future<Output = bool> + Send {
        self.validations.fetch_add(1, Ordering::SeqCst);
        let ok = !self.bad.load(Ordering::SeqCst);
        async move { ok }
    }
}

fn validating(c: &Arc<Census>) -> (Validating, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let bad = Arc::new(AtomicBool::new(false));
    let n = Arc::new(AtomicUsize::new(0));
    (
        Validating {
            census: c.clone(),
            bad: bad.clone(),
            validations: n.clone(),
        },
        bad,
        n,
    )
}

#[tokio::test]
async fn validate_runs_only_after_the_idle_interval_and_failures_are_invisible() {
    let c = census();
    let (f, bad, validations) = validating(&c);
    let pool = Pool::builder(f)
        .max_size(2)
        .validation_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap()); // fresh: not validated
    drop(pool.get().await.unwrap()); // idle ~0 ms: not validated
    assert_eq!(validations.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    drop(pool.get().await.unwrap()); // idle 400 ms: validated
    assert_eq!(validations.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    bad.store(true, Ordering::SeqCst);
    let g = pool
        .get()
        .await
        .expect("a failed validation is not the caller's error");
    assert_eq!(
        g.id, 1,
        "the stale object was destroyed and a fresh one made"
    );
    assert_eq!(
        validations.load(Ordering::SeqCst),
        2,
        "the fresh one is not validated"
    );
    drop(g);
    let s = pool.stats();
    assert_eq!((s.created, s.destroyed), (2, 1));
    assert_consistent(&pool);
}

#[tokio::test]
async fn validation_interval_zero_validates_every_reuse() {
    let c = census();
    let (f, _bad, validations) = validating(&c);
    let pool = Pool::builder(f)
        .validation_interval(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..4 {
        drop(pool.get().await.unwrap());
    }
    assert_eq!(
        validations.load(Ordering::SeqCst),
        3,
        "every reuse, not the first checkout"
    );
}

#[tokio::test]
async fn an_object_past_its_lifetime_is_never_handed_out() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_lifetime(Duration::from_millis(40))
        .idle_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let first = pool.get().await.unwrap().id;
    tokio::time::sleep(Duration::from_millis(70)).await;
    let g = pool.get().await.unwrap();
    assert_ne!(g.id, first, "expired object replaced");
    drop(g);
    assert!(pool.stats().destroyed >= 1);
}

#[test]
fn lifetime_is_enforced_without_a_runtime_or_maintenance() {
    let c = census();
    let pool = builder(&c, Duration::ZERO) // never touches tokio: usable without a runtime
        .max_lifetime(Duration::from_millis(30))
        .build()
        .unwrap();
    drop(pool.get_blocking().unwrap());
    std::thread::sleep(Duration::from_millis(60));
    assert!(
        matches!(pool.try_get(), Err(PoolError::Exhausted)),
        "expired, not handed out"
    );
    // Dropped on a blocking thread of the pool's own runtime, soon after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while c.live.load(Ordering::SeqCst) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired object lives on"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[tokio::test]
async fn max_lifetime_and_max_uses_default_from_the_poolable_consts() {
    #[derive(Debug)]
    struct Short;
    impl Poolable for Short {
        const MAX_LIFETIME: Option<Duration> = Some(Duration::from_millis(400));
        const MAX_USES: Option<u64> = Some(2);
    }
    let made = Arc::new(AtomicUsize::new(0));
    let m = made.clone();
    let pool = Pool::builder(move || {
        m.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::io::Error>(Short) }
    })
    .build()
    .unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap()); // second use: retired
    drop(pool.get().await.unwrap());
    assert_eq!(made.load(Ordering::SeqCst), 2, "MAX_USES from the type");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(made.load(Ordering::SeqCst), 3, "MAX_LIFETIME from the type");
}

#[tokio::test]
async fn idle_objects_above_min_idle_are_evicted_after_idle_timeout() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_size(4)
        .min_idle(1)
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let held: Vec<_> = common::take_n(&pool, 4).await;
    drop(held);
    assert_eq!(pool.stats().idle, 4);
    until(|| pool.stats().idle == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.stats().idle, 1, "min_idle is kept");
    assert_consistent(&pool);
}

#[tokio::test]
async fn min_idle_is_replenished_in_the_background() {
    let c = census();
    let pool = builder(&c, Duration::from_millis(5))
        .max_size(5)
        .min_idle(3)
        .build()
        .unwrap();
    until(|| pool.stats().idle == 3).await;
    let g = pool.get().await.unwrap();
    Pooled::discard(g);
    until(|| pool.stats().idle == 3).await;
    assert!(pool.stats().size <= 5);
}

#[test]
fn without_a_runtime_maintenance_runs_in_the_background() {
    let c = census();
    let pool = builder(&c, Duration::ZERO) // never touches tokio: usable without a runtime
        .max_size(3)
        .idle_timeout(Duration::from_millis(30))
        .build()
        .unwrap();
    let held = [
        pool.get_blocking().unwrap(),
        pool.get_blocking().unwrap(),
        pool.get_blocking().unwrap(),
    ];
    drop(held);
    // The upkeep thread evicts them with nobody checking out.
    let t0 = std::time::Instant::now();
    while pool.stats().destroyed < 3 {
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", pool.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test]
async fn create_timeout_fails_a_slow_factory() {
    let c = census();
    let pool = builder(&c, Duration::from_millis(300))
        .create_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let t0 = std::time::Instant::now();
    let e = pool.get().await.unwrap_err();
    assert!(matches!(e, PoolError::Create(_)), "{e:?}");
    assert!(e.to_string().contains("create_timeout"), "{e}");
    assert!(t0.elapsed() < Duration::from_millis(250));
    assert_eq!(pool.stats().size, 0);
}

#[tokio::test]
async fn the_maintenance_task_ends_with_the_last_handle() {
    let rt = tokio::runtime::Handle::current();
    let before = rt.metrics().num_alive_tasks();
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .idle_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    assert_eq!(
        rt.metrics().num_alive_tasks(),
        before + 1,
        "the maintenance task runs"
    );
    drop(pool);
    until(|| rt.metrics().num_alive_tasks() == before).await;
    assert_eq!(c.live.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_leak_is_reported_once_with_the_line_that_took_it() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .leak_threshold(Duration::from_millis(30))
        .build()
        .unwrap();
    let mut events = pool.events();
    let (g, line) = (pool.get().await.unwrap(), line!());
    let ev = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let PoolEvent::LeakSuspected {
                id,
                held_for,
                location,
            } = events.recv().await.unwrap()
            {
                return (id, held_for, location);
            }
        }
    })
    .await
    .expect("reported");
    assert_eq!(ev.0, Pooled::id(&g));
    assert!(ev.1 >= Duration::from_millis(30));
    assert_eq!((ev.2.file(), ev.2.line()), (file!(), line));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pool.stats().leaks_detected, 1, "once per checkout");
    drop(g);
    // A new checkout held too long is a new report.
    let g2 = pool.get().await.unwrap();
    until(|| pool.stats().leaks_detected == 2).await;
    drop(g2);
}

#[tokio::test]
async fn a_forgotten_guard_is_reported_and_its_capacity_reclaimed() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_size(1)
        .leak_threshold(Duration::from_millis(20))
        .reclaim_leaked(Duration::from_millis(40))
        .build()
        .unwrap();
    std::mem::forget(pool.get().await.unwrap());
    let out = pool.checked_out();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].location.file(), file!());
    // Without reclaiming, this would time out forever: the only object never returns.
    let g = pool
        .acquire()
        .timeout(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(g.id, 1);
    assert!(pool.stats().leaks_detected >= 1);
    assert_eq!(
        pool.stats().size,
        1,
        "capacity came back, the cap still holds"
    );
    // The forgotten checkout stays out for good; the pool's fast paths keep working.
    drop(g);
    let again = pool
        .try_get()
        .expect("an idle object while a reclaimed one is out");
    assert_eq!(again.id, 1);
    drop(again);
    let s = pool.stats();
    assert_eq!(s.idle, 1);
    // The counts add up: the reclaimed checkout counts in neither `size` nor `in_use`,
    // and utilisation never reads above the cap.
    assert_eq!((s.size, s.in_use), (1, 0), "{s:?}");
    let g = pool.try_get().unwrap();
    let s = pool.stats();
    assert_eq!((s.size, s.idle, s.in_use), (1, 0, 1), "{s:?}");
    assert!(pool.health().utilization <= 1.0, "{:?}", pool.health());
    drop(g);
}

#[tokio::test]
async fn a_guard_returning_after_its_capacity_was_reclaimed_is_destroyed() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .max_size(1)
        .reclaim_leaked(Duration::from_millis(20))
        .build()
        .unwrap();
    let slow = pool.get().await.unwrap();
    let other = pool
        .acquire()
        .timeout(Duration::from_secs(5))
        .await
        .unwrap();
    drop(slow); // came back after all
    assert_eq!(
        c.live.load(Ordering::SeqCst),
        1,
        "destroyed: its capacity was given away"
    );
    drop(other);
    assert_consistent(&pool);
}

fn flaky_pool(
    fail: &Arc<AtomicBool>,
    calls: &Arc<AtomicUsize>,
    delay: Duration,
) -> riptide_pool::PoolBuilder<common::Obj> {
    let c = census();
    let (fail, calls) = (fail.clone(), calls.clone());
    Pool::builder(move || {
        let (fail, calls, c) = (fail.clone(), calls.clone(), c.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            if fail.load(Ordering::SeqCst) {
                Err(std::io::Error::other("down"))
            } else {
                Ok(common::make(&c))
            }
        }
    })
}

#[tokio::test]
async fn the_circuit_breaker_opens_fails_fast_and_closes_after_a_good_trial() {
    let fail = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = flaky_pool(&fail, &calls, NO_DELAY)
        .circuit_breaker(3, Duration::from_millis(400))
        .build()
        .unwrap();
    let mut events = pool.events();
    for _ in 0..3 {
        assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    }
    // Every failure is an event, then the breaker opens.
    for _ in 0..3 {
        match events.recv().await.unwrap() {
            PoolEvent::CreateFailed { error } => assert_eq!(error, "down"),
            e => panic!("{e:?}"),
        }
    }
    assert!(matches!(
        events.recv().await.unwrap(),
        PoolEvent::CircuitOpened
    ));
    let t0 = std::time::Instant::now();
    let open = pool.get().await.unwrap_err();
    assert!(matches!(open, PoolError::CircuitOpen { .. }), "{open:?}");
    // The cause is kept: the last create error is the source.
    let src = std::error::Error::source(&open).expect("the last create error");
    assert_eq!(src.to_string(), "down");
    assert!(open.to_string().contains("last error: down"), "{open}");
    assert!(t0.elapsed() < Duration::from_millis(200), "fast");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the factory is not called while open"
    );
    assert_eq!(pool.health().level, HealthLevel::Critical);
    tokio::time::sleep(Duration::from_millis(450)).await;
    fail.store(false, Ordering::SeqCst);
    let g = pool.get().await.expect("the half-open trial succeeds");
    assert!(matches!(
        events.recv().await.unwrap(),
        PoolEvent::CircuitClosed
    ));
    drop(g);
    assert!(pool.get().await.is_ok());
}

#[tokio::test]
async fn a_failed_trial_reopens_the_breaker() {
    let fail = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = flaky_pool(&fail, &calls, NO_DELAY)
        .circuit_breaker(1, Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Create(_))));
    assert!(matches!(
        pool.get().await,
        Err(PoolError::CircuitOpen { .. })
    ));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        matches!(pool.get().await, Err(PoolError::Create(_))),
        "the trial"
    );
    assert!(
        matches!(pool.get().await, Err(PoolError::CircuitOpen { .. })),
        "open again"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn waiters_queued_when_the_breaker_opens_are_failed_not_left_to_time_out() {
    let fail = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = flaky_pool(&fail, &calls, Duration::from_millis(40))
        .max_size(2)
        .circuit_breaker(1, Duration::from_secs(60))
        .acquire_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    fail.store(true, Ordering::SeqCst);
    let creator = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    until(|| pool.stats().size == 2).await;
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get().await.map(drop) })
        })
        .collect();
    until(|| pool.stats().pending_acquisitions == 2).await;
    assert!(matches!(creator.await.unwrap(), Err(PoolError::Create(_))));
    for w in waiters {
        let r = tokio::time::timeout(Duration::from_secs(2), w)
            .await
            .expect("not left waiting");
        assert!(matches!(r.unwrap(), Err(PoolError::CircuitOpen { .. })));
    }
    assert_eq!(pool.stats().pending_acquisitions, 0);
    drop(held);
}

type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), riptide_pool::BoxError>> + Send + 'a>>;

#[tokio::test]
async fn hooks_run_at_their_points_and_can_reject() {
    let c = census();
    let log = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reject_release = Arc::new(AtomicBool::new(false));
    let reject_recycle = Arc::new(AtomicBool::new(false));
    let (l1, l2, l3, l4, l5) = (
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
    );
    let (rr, rc) = (reject_release.clone(), reject_recycle.clone());
    let pool = builder(&c, NO_DELAY)
        .max_size(2)
        .post_create(
            move |o: &mut common::Obj, _: riptide_pool::ObjectMeta| -> HookFuture<'_> {
                let l = l1.clone();
                Box::pin(async move {
                    l.lock().unwrap().push(format!("post_create {}", o.id));
                    Ok(())
                })
            },
        )
        .pre_recycle(
            move |o: &mut common::Obj, _: riptide_pool::ObjectMeta| -> HookFuture<'_> {
                let (l, rc) = (l2.clone(), rc.clone());
                Box::pin(async move {
                    l.lock().unwrap().push(format!("pre_recycle {}", o.id));
                    if rc.load(Ordering::SeqCst) {
                        return Err("stale".into());
                    }
                    Ok(())
                })
            },
        )
        .post_recycle(
            move |o: &mut common::Obj, _: riptide_pool::ObjectMeta| -> HookFuture<'_> {
                let l = l3.clone();
                Box::pin(async move {
                    l.lock().unwrap().push(format!("post_recycle {}", o.id));
                    Ok(())
                })
            },
        )
        .on_release(move |o: &mut common::Obj, _: riptide_pool::ObjectMeta| {
            l4.lock().unwrap().push(format!("on_release {}", o.id));
            if rr.load(Ordering::SeqCst) {
                Err("broken".into())
            } else {
                Ok(())
            }
        })
        .on_detach(move |o: &mut common::Obj, _: riptide_pool::ObjectMeta| {
            l5.lock().unwrap().push(format!("on_detach {}", o.id));
            Err("pinned to the pool".into())
        })
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap());
    assert_eq!(
        *log.lock().unwrap(),
        [
            "post_create 0",
            "on_release 0",
            "pre_recycle 0",
            "post_recycle 0",
            "on_release 0"
        ]
    );
    log.lock().unwrap().clear();
    reject_recycle.store(true, Ordering::SeqCst);
    let g = pool.get().await.expect("a rejected recycle is invisible");
    assert_eq!(
        g.id, 1,
        "fresh object after the rejection (fresh ones skip recycle hooks)"
    );
    reject_recycle.store(false, Ordering::SeqCst);
    reject_release.store(true, Ordering::SeqCst);
    drop(g);
    assert_eq!(pool.stats().idle, 0, "rejected on release: destroyed");
    reject_release.store(false, Ordering::SeqCst);
    let g = pool.get().await.unwrap();
    let g = match Pooled::try_detach(g) {
        Ok(_) => panic!("on_detach rejects"),
        Err((g, e)) => {
            assert!(e.to_string().contains("pinned"));
            g
        }
    };
    drop(g);
    assert_eq!(pool.stats().idle, 1, "stays in the pool");
    // The rejected object is dropped in the background; the counters add up once it is.
    assert_consistent(&pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_handed_to_a_queued_waiter_goes_through_the_checkout_hooks() {
    let c = census();
    let checked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = checked.clone();
    let pool = builder(&c, NO_DELAY)
        .max_size(1)
        .pre_recycle(
            move |o: &mut common::Obj, _: riptide_pool::ObjectMeta| -> HookFuture<'_> {
                seen.fetch_add(1, Ordering::SeqCst);
                // Reject the first object: the waiter must get a new one, without an error.
                let stale = o.id == 0;
                Box::pin(async move {
                    if stale {
                        return Err("stale".into());
                    }
                    Ok(())
                })
            },
        )
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|g| g.id) }
    });
    until(|| pool.stats().pending_acquisitions == 1).await;
    drop(held); // handed to the waiter, whose checkout runs the hook
    assert_eq!(waiter.await.unwrap().unwrap(), 1);
    assert_eq!(
        checked.load(Ordering::SeqCst),
        1,
        "the hook saw the handed object"
    );
    let s = pool.stats();
    assert_eq!((s.created, s.destroyed, s.pending_acquisitions), (2, 1, 0));
}

#[tokio::test]
async fn post_create_rejection_fails_the_create() {
    let c = census();
    let pool = builder(&c, NO_DELAY)
        .post_create(
            |_: &mut common::Obj, _: riptide_pool::ObjectMeta| -> HookFuture<'_> {
                Box::pin(async { Err("no auth".into()) })
            },
        )
        .build()
        .unwrap();
    let e = pool.get().await.unwrap_err();
    assert!(e.to_string().contains("post_create"), "{e}");
    until(|| c.live.load(Ordering::SeqCst) == 0 && pool.stats().size == 0).await;
}

#[tokio::test]
async fn drain_waits_for_returns_and_reports_what_is_still_out() {
    let c = census();
    let pool = builder(&c, NO_DELAY).build().unwrap();
    let g = pool.get().await.unwrap();
    let returner = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(g);
    });
    pool.drain(Duration::from_secs(5)).await.unwrap();
    returner.await.unwrap();
    assert_eq!(c.live.load(Ordering::SeqCst), 0);

    let pool = builder(&c, NO_DELAY).build().unwrap();
    let (kept, line) = (pool.get().await.unwrap(), line!());
    let err = pool.drain(Duration::from_millis(30)).await.unwrap_err();
    assert_eq!(err.still_out.len(), 1);
    assert_eq!(err.still_out[0].location.line(), line);
    assert!(err.to_string().contains("still checked out"));
    drop(kept);
}

#[tokio::test]
async fn health_reports_error_rate() {
    let fail = Arc::new(AtomicBool::new(true));
    let calls = Arc::new(AtomicUsize::new(0));
    let pool = flaky_pool(&fail, &calls, NO_DELAY)
        .no_circuit_breaker()
        .build()
        .unwrap();
    let _ = pool.get().await;
    fail.store(false, Ordering::SeqCst);
    let g = pool.get().await.unwrap();
    let h = pool.health();
    assert!((h.error_rate - 0.5).abs() < 1e-9, "{h:?}");
    assert_eq!(h.level, HealthLevel::Critical);
    assert!(h.score < 100);
    drop(g);
}

#[tokio::test]
async fn usage_and_create_histograms() {
    let c = census();
    let pool = builder(&c, Duration::from_millis(15))
        .max_size(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let g = pool.get().await.unwrap();
        tokio::time::sleep(Duration::from_millis(25)).await;
        drop(g);
    }
    let s = pool.stats();
    assert!(s.create_p50 >= Duration::from_millis(12), "{s:?}");
    assert!(s.usage_p50 >= Duration::from_millis(15), "{s:?}");
}

#[tokio::test]
async fn destroy_reasons_are_reported() {
    let c = census();
    let pool = builder(&c, NO_DELAY).max_uses(1).build().unwrap();
    let mut rx = pool.events();
    drop(pool.get().await.unwrap());
    loop {
        if let PoolEvent::Destroyed { reason, .. } = rx.recv().await.unwrap() {
            assert_eq!(reason, DestroyReason::MaxUses);
            break;
        }
    }
}

#[cfg(feature = "metrics")]
#[tokio::test]
async fn metrics_are_published_with_documented_names() {
    use metrics_util::debugging::DebuggingRecorder;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let c = census();
    let pool = builder(&c, NO_DELAY).name("db").build().unwrap();
    let g = pool.get().await.unwrap();
    metrics::with_local_recorder(&recorder, || pool.publish_metrics());
    drop(g);
    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str| {
        snap.iter()
            .find(|(k, ..)| {
                k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "pool" && l.value() == "db")
            })
            .unwrap_or_else(|| panic!("{name} not published"))
    };
    for name in [
        "riptide_pool_max_size",
        "riptide_pool_size",
        "riptide_pool_idle",
        "riptide_pool_in_use",
        "riptide_pool_pending_acquisitions",
        "riptide_pool_waiting",
        "riptide_pool_oldest_wait_seconds",
        "riptide_pool_created_total",
        "riptide_pool_destroyed_total",
        "riptide_pool_acquired_total",
        "riptide_pool_timeouts_total",
        "riptide_pool_leaks_detected_total",
        "riptide_pool_wait_seconds",
        "riptide_pool_usage_seconds",
        "riptide_pool_create_seconds",
    ] {
        find(name);
    }
    match &find("riptide_pool_in_use").3 {
        metrics_util::debugging::DebugValue::Gauge(v) => assert_eq!(v.into_inner(), 1.0),
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "serde")]
#[tokio::test]
async fn stats_and_health_serialize_and_read_back() {
    let c = census();
    let pool = builder(&c, NO_DELAY).build().unwrap();
    let _g = pool.get().await.unwrap();
    let stats = pool.stats();
    let s = serde_json::to_value(stats).unwrap();
    assert_eq!(s["pending_acquisitions"], 0);
    let h = serde_json::to_value(pool.health()).unwrap();
    assert_eq!(h["level"], "Healthy");
    // A client of a JSON endpoint reads the core's own types back.
    let back: riptide_pool::PoolStats = serde_json::from_value(s).unwrap();
    assert_eq!(back, stats);
    let health: riptide_pool::HealthStatus = serde_json::from_value(h).unwrap();
    assert_eq!(health, pool.health());
    let circuit: riptide_pool::CircuitState =
        serde_json::from_value(serde_json::to_value(pool.circuit_state()).unwrap()).unwrap();
    assert_eq!(circuit, riptide_pool::CircuitState::Closed);
}

/// A subscriber layer that records the names of the spans opened.
struct SpanNames(Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanNames {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(attrs.metadata().name().to_owned());
    }
}

#[test]
fn slow_paths_open_debug_spans_and_the_fast_path_none() {
    let names = Arc::new(std::sync::Mutex::new(Vec::new()));
    common::with_layer(SpanNames(names.clone()), || {
        async {
            let c = census();
            let pool = builder(&c, NO_DELAY).max_size(1).build().unwrap();
            let g = pool.get().await.unwrap(); // a create
            let take = |names: &Arc<std::sync::Mutex<Vec<String>>>| {
                std::mem::take(&mut *names.lock().unwrap())
            };
            let seen = take(&names);
            assert!(seen.iter().any(|n| n == "riptide_pool.create"), "{seen:?}");
            drop(g);
            drop(pool.get().await.unwrap()); // the fast path: no span
            assert_eq!(take(&names), Vec::<String>::new());
            let held = pool.get().await.unwrap();
            let waiter = pool.get(); // has to wait
            let served = tokio::spawn(waiter);
            until(|| pool.stats().pending_acquisitions == 1).await;
            drop(held);
            drop(served.await.unwrap().unwrap());
            let seen = take(&names);
            assert!(seen.iter().any(|n| n == "riptide_pool.acquire"), "{seen:?}");
            let g = pool.get().await.unwrap();
            Pooled::discard(g);
            let seen = take(&names);
            assert!(seen.iter().any(|n| n == "riptide_pool.destroy"), "{seen:?}");
        }
    });
}
