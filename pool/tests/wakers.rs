//! Which waker a waiting acquisition is woken through, and where the pool runs a waker's
//! code. A future may be polled by one task and then another (moved into a new task,
//! polled through `select!` by a different waker): whatever ends its wait must wake the
//! waker of its latest poll. And a waker is user code: its `clone`, `wake` and `drop` may
//! call back into the pool, so none of them may run while the pool holds its queue lock.

use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use riptide_pool::{Pool, PoolError, Poolable, Pooled};

#[derive(Debug)]
struct Obj;
impl Poolable for Obj {}

fn pool(max: usize) -> Pool<Obj> {
    Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
        .max_size(max)
        .build()
        .unwrap()
}

/// A waker that counts its wake-ups and, when `pool` is set, calls into the pool (which
/// takes the queue lock) from its `clone`, `wake`, `wake_by_ref` and `drop`. It can also
/// run `on_clone` at its next clone, and panic when dropped or woken while `panic_on_drop`
/// or `panic_on_wake` is set.
struct Probe {
    woken: AtomicUsize,
    pool: Option<Pool<Obj>>,
    on_clone: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    panic_on_drop: AtomicBool,
    panic_on_wake: AtomicBool,
}

impl Probe {
    fn new(pool: Option<&Pool<Obj>>) -> Arc<Probe> {
        Arc::new(Probe {
            woken: AtomicUsize::new(0),
            pool: pool.cloned(),
            on_clone: Mutex::new(None),
            panic_on_drop: AtomicBool::new(false),
            panic_on_wake: AtomicBool::new(false),
        })
    }

    fn woken(&self) -> usize {
        self.woken.load(Ordering::SeqCst)
    }

    fn touch(&self) {
        if let Some(p) = &self.pool {
            let _ = p.stats();
        }
    }

    fn waker(self: &Arc<Self>) -> Waker {
        const VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_it);
        fn probe(p: *const ()) -> &'static Probe {
            // SAFETY: `p` came from `Arc::into_raw` and this waker holds its count.
            unsafe { &*p.cast::<Probe>() }
        }
        unsafe fn clone(p: *const ()) -> RawWaker {
            probe(p).touch();
            let hook = probe(p).on_clone.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
            // SAFETY: as in `probe`; the new waker owns the count added here.
            unsafe { Arc::increment_strong_count(p.cast::<Probe>()) };
            RawWaker::new(p, &VTABLE)
        }
        unsafe fn wake(p: *const ()) {
            // SAFETY: as in `probe`; the waker is still alive here.
            unsafe { wake_by_ref(p) };
            // SAFETY: as in `probe`; waking by value lets go of the waker's own count.
            unsafe { drop_it(p) };
        }
        unsafe fn wake_by_ref(p: *const ()) {
            probe(p).touch();
            probe(p).woken.fetch_add(1, Ordering::SeqCst);
            assert!(
                !probe(p).panic_on_wake.load(Ordering::SeqCst),
                "a waker's wake panics"
            );
        }
        unsafe fn drop_it(p: *const ()) {
            probe(p).touch();
            let panics = probe(p).panic_on_drop.load(Ordering::SeqCst);
            // SAFETY: as in `probe`; this waker's count is let go once.
            unsafe { drop(Arc::from_raw(p.cast::<Probe>())) };
            assert!(!panics, "a waker's drop panics");
        }
        let p = Arc::into_raw(self.clone()).cast::<()>();
        // SAFETY: the vtable keeps `RawWaker`'s contract: `p` is a counted `Arc<Probe>`.
        unsafe { Waker::from_raw(RawWaker::new(p, &VTABLE)) }
    }
}

type Acq = riptide_pool::AcquireFuture<Obj>;

fn poll(f: &mut Acq, w: &Waker) -> Poll<Result<Pooled<Obj>, PoolError>> {
    Pin::new(f).poll(&mut Context::from_waker(w))
}

/// Polls `f` with `w` until it is ready (its object may still be on its way from the
/// factory's task), for at most five seconds.
fn settle(f: &mut Acq, w: &Waker) -> Result<Pooled<Obj>, PoolError> {
    let t0 = Instant::now();
    loop {
        if let Poll::Ready(r) = poll(f, w) {
            return r;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "never settled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How a wait ends, set off from outside the waiting future.
#[derive(Debug, Clone, Copy)]
enum Ending {
    HandOff,
    Permit,
    Close,
    Timeout,
}

const ENDINGS: [Ending; 4] = [
    Ending::HandOff,
    Ending::Permit,
    Ending::Close,
    Ending::Timeout,
];

/// Queues a future on `p`, a fresh pool of one, while its object is held, polled by task
/// `a`, then by `b` (twice: the second poll brings the same task's waker), then ends its
/// wait; returns what it got.
fn wait_then_end(
    p: &Pool<Obj>,
    ending: Ending,
    a: &Waker,
    b: &Waker,
) -> Result<Pooled<Obj>, PoolError> {
    let held = p.get_blocking().unwrap();
    let mut f = match ending {
        Ending::Timeout => p.acquire().timeout(Duration::from_millis(30)).into_future(),
        _ => p.acquire().into_future(),
    };
    assert!(poll(&mut f, a).is_pending());
    assert!(poll(&mut f, b).is_pending());
    assert!(poll(&mut f, b).is_pending());
    assert_eq!(p.stats().pending_acquisitions, 1);
    match ending {
        Ending::HandOff => drop(held),
        Ending::Permit => Pooled::discard(held),
        Ending::Close => {
            p.close();
            drop(held);
        }
        Ending::Timeout => {}
    }
    let r = settle(&mut f, b);
    assert_eq!(p.stats().pending_acquisitions, 0);
    r
}

/// Every ending wakes the waker of the future's latest poll, once, and never an earlier
/// one.
#[test]
fn the_waker_of_the_latest_poll_is_woken() {
    for ending in ENDINGS {
        let (a, b) = (Probe::new(None), Probe::new(None));
        let r = wait_then_end(&pool(1), ending, &a.waker(), &b.waker());
        match ending {
            Ending::HandOff | Ending::Permit => assert!(r.is_ok(), "{ending:?}: {r:?}"),
            Ending::Close => assert!(matches!(r, Err(PoolError::Closed)), "{r:?}"),
            Ending::Timeout => assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}"),
        }
        assert_eq!(
            a.woken(),
            0,
            "{ending:?}: an earlier poll's waker was woken"
        );
        assert!(
            b.woken() >= 1,
            "{ending:?}: the latest poll's waker was not woken"
        );
    }
}

/// Runs `f` on its own thread; fails if it has not finished within ten seconds (a waker
/// run under the queue lock deadlocks when it calls back into the pool).
fn within_deadline(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: deadlocked"),
    }
}

/// A waker that calls back into the pool from its `clone`, `wake` and `drop`: the pool
/// runs none of them under its queue lock, whether the wait is served, closed, timed out,
/// or given up by dropping the future.
#[test]
fn no_waker_code_runs_under_the_queue_lock() {
    for ending in ENDINGS {
        within_deadline(&format!("{ending:?}"), move || {
            let p = pool(1);
            let (a, b) = (Probe::new(Some(&p)), Probe::new(Some(&p)));
            let r = wait_then_end(&p, ending, &a.waker(), &b.waker());
            assert_eq!(
                r.is_ok(),
                matches!(ending, Ending::HandOff | Ending::Permit)
            );
            assert!(b.woken() >= 1);
        });
    }
    within_deadline("cancel", || {
        let p = pool(1);
        let probe = Probe::new(Some(&p));
        let held = p.get_blocking().unwrap();
        let mut f = p.acquire().into_future();
        assert!(poll(&mut f, &probe.waker()).is_pending());
        drop(f);
        assert_eq!(p.stats().pending_acquisitions, 0);
        drop(held);
        drop(p.get_blocking().unwrap());
    });
}

/// A wait that was handed an object and then dropped before its next poll gives the object
/// to the next waiter, through that waiter's latest waker.
#[test]
fn a_dropped_served_wait_passes_its_object_on() {
    let p = pool(1);
    let held = p.get_blocking().unwrap();
    let (a, b) = (Probe::new(None), Probe::new(None));
    let mut first = p.acquire().into_future();
    let mut second = p.acquire().into_future();
    assert!(poll(&mut first, &a.waker()).is_pending());
    assert!(poll(&mut second, &a.waker()).is_pending());
    assert!(poll(&mut second, &b.waker()).is_pending());
    drop(held);
    until("the first waiter is served", || a.woken() == 1);
    drop(first);
    until("the second waiter is served", || b.woken() == 1);
    assert!(settle(&mut second, &b.waker()).is_ok());
    assert_eq!(a.woken(), 1);
}

/// Registration clones the caller's waker before it takes the queue lock; if the caller
/// then gets an object or a reservation instead of a place in the queue (here the clone
/// itself gives the held object back, or discards it), the clone is not needed, and its
/// drop (user code) may panic. What the caller got is held where the unwind gives it
/// back: nothing is lost.
#[test]
fn a_panicking_drop_of_an_unqueued_waker_loses_nothing() {
    for discard in [false, true] {
        let p = pool(1);
        let held = p.get_blocking().unwrap();
        let probe = Probe::new(None);
        let waker = probe.waker();
        *probe.on_clone.lock().unwrap() = Some(Box::new(move || {
            if discard {
                Pooled::discard(held);
            } else {
                drop(held);
            }
        }));
        probe.panic_on_drop.store(true, Ordering::SeqCst);
        let mut f = p.acquire().into_future();
        let r = catch_unwind(AssertUnwindSafe(|| poll(&mut f, &waker)));
        probe.panic_on_drop.store(false, Ordering::SeqCst);
        assert!(
            r.is_err(),
            "discard {discard}: the unused clone was not dropped"
        );
        drop(f);
        until("the pool settles", || {
            let s = p.stats();
            s.in_use == 0 && s.pending_acquisitions == 0 && s.size == s.idle
        });
        let got = p.acquire().timeout(Duration::from_secs(2)).blocking();
        assert!(got.is_ok(), "discard {discard}: capacity lost: {got:?}");
    }
}

/// `close` wakes every waiter it failed even when the first one's waker panics: the panic
/// reaches the closing caller once all are woken, and no waiter is left asleep.
#[test]
fn a_panicking_wake_does_not_strand_the_waiters_after_it() {
    let p = pool(1);
    let held = p.get_blocking().unwrap();
    let (first, second) = (Probe::new(None), Probe::new(None));
    first.panic_on_wake.store(true, Ordering::SeqCst);
    let (w1, w2) = (first.waker(), second.waker());
    let mut f1 = p.acquire().into_future();
    let mut f2 = p.acquire().into_future();
    assert!(poll(&mut f1, &w1).is_pending());
    assert!(poll(&mut f2, &w2).is_pending());
    let r = catch_unwind(AssertUnwindSafe(|| p.close()));
    first.panic_on_wake.store(false, Ordering::SeqCst);
    assert!(r.is_err(), "the panicking waker was not woken");
    assert_eq!(second.woken(), 1, "the waiter after it was left asleep");
    assert!(matches!(
        poll(&mut f2, &w2),
        Poll::Ready(Err(PoolError::Closed))
    ));
    assert!(matches!(
        poll(&mut f1, &w1),
        Poll::Ready(Err(PoolError::Closed))
    ));
    drop(held);
    assert_eq!(p.stats().size, 0);
}

/// Which of the pool's deadlines a caller waits under, each armed on the pool's timer.
#[derive(Debug, Clone, Copy)]
enum Armed {
    /// Queued: the queue's deadline sweep wakes it.
    Queued,
    /// Creating: its create's time limit wakes it.
    Creating,
    /// In a checkout step (a hook that never ends): the step's time limit wakes it.
    Checking,
}

/// A waker that panics when the pool's timer wakes it costs its own caller only: whichever
/// deadline woke it, the timer goes on keeping every other deadline in the process, on
/// the same pool and on others.
#[test]
fn a_waker_panicking_on_the_timer_keeps_every_other_deadline() {
    for armed in [Armed::Queued, Armed::Creating, Armed::Checking] {
        other_deadlines_are_kept_after(armed);
    }
}

fn other_deadlines_are_kept_after(armed: Armed) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (first, held) = rt.block_on(async {
        match armed {
            Armed::Queued => {
                let p = pool(1);
                let g = p.get().await.unwrap();
                (p, Some(g))
            }
            Armed::Creating => {
                let p = Pool::builder(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Ok::<_, std::io::Error>(Obj)
                })
                .max_size(1)
                .build()
                .unwrap();
                (p, None)
            }
            Armed::Checking => {
                let p = Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
                    .max_size(1)
                    .pre_recycle(|_, _| Box::pin(std::future::pending()))
                    .build()
                    .unwrap();
                assert_eq!(p.warm_up(1).await.unwrap(), 1);
                (p, None)
            }
        }
    });
    let probe = Probe::new(None);
    probe.panic_on_wake.store(true, Ordering::SeqCst);
    let w = probe.waker();
    let mut f = first
        .acquire()
        .timeout(Duration::from_millis(50))
        .into_future();
    assert!(poll(&mut f, &w).is_pending(), "{armed:?}");
    until("the deadline woke the panicking waker", || {
        probe.woken() > 0
    });
    let other = pool(1);
    let other_held = other.get_blocking().unwrap();
    // Callers on a runtime of their own, their waits bounded only by the pool's deadlines
    // (tokio's 5 s timeout guards the test): one behind the panicking waker's caller, one
    // on another pool.
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (which, p) in [("the same pool", &first), ("another pool", &other)] {
        let t = Instant::now();
        let r = rt2.block_on(async {
            let wait = p
                .acquire()
                .timeout(Duration::from_millis(100))
                .into_future();
            tokio::time::timeout(Duration::from_secs(5), wait).await
        });
        let took = t.elapsed();
        assert!(
            matches!(r, Ok(Err(PoolError::Timeout))) && took < Duration::from_secs(2),
            "{armed:?}, {which}: {:?} after {took:?}",
            r.map(|r| r.map(drop))
        );
    }
    drop(f);
    drop((held, other_held));
}
