//! loom models of the riptide-pool core, run against the real crate compiled with
//! `--cfg riptide_loom` (its sync facade then hands out loom's atomics, locks and cells):
//!
//! ```text
//! RUSTFLAGS="--cfg riptide_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p riptide-loom-tests --release --target-dir target/loom
//! ```
//!
//! Each model states the invariant it checks. Timeouts are modelled two ways: by dropping
//! a future at an arbitrary point (what a timeout does to it), and through the pool's real
//! deadline sweeper driven by a logical clock.
#![cfg(riptide_loom)]

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::future::block_on;
use loom::sync::Arc;
use loom::thread;
use riptide_pool::{Pool, PoolError, Poolable, Pooled, Priority};

/// Counts live objects (std atomics: loom runs one model thread at a time, and these are
/// only read after joins, for assertions).
#[derive(Default)]
struct Census {
    live: AtomicUsize,
    made: AtomicUsize,
    fail_first: AtomicUsize,
}

struct Obj {
    census: std::sync::Arc<Census>,
    /// Set while a model's holder uses the object: a second holder at once trips it.
    held: std::sync::atomic::AtomicBool,
}

impl Obj {
    /// Marks the object held for the duration of `f`, asserting nobody else holds it.
    fn hold(&self, f: impl FnOnce()) {
        assert!(!self.held.swap(true, SeqCst), "one object, two holders");
        f();
        self.held.store(false, SeqCst);
    }
}

impl Poolable for Obj {}

impl Drop for Obj {
    fn drop(&mut self) {
        self.census.live.fetch_sub(1, SeqCst);
    }
}

fn pool(max: usize, census: &std::sync::Arc<Census>) -> Pool<Obj> {
    let c = census.clone();
    Pool::builder(move || {
        let c = c.clone();
        async move {
            if c.fail_first.load(SeqCst) > 0 {
                c.fail_first.fetch_sub(1, SeqCst);
                return Err("backend down");
            }
            c.made.fetch_add(1, SeqCst);
            c.live.fetch_add(1, SeqCst);
            Ok::<_, &'static str>(Obj {
                census: c,
                held: Default::default(),
            })
        }
    })
    .max_size(max)
    // Deadlock detection is a report path (tests/deadlock.rs covers it); under the model
    // checkers every thread has one holder id, and its read-only scan multiplies the
    // interleavings without checking anything.
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
    .build()
    .unwrap()
}

/// A pool with `n` idle objects made up front (outside the threads under test).
fn warm(max: usize, n: usize, census: &std::sync::Arc<Census>) -> Pool<Obj> {
    let p = pool(max, census);
    let held: Vec<_> = (0..n).map(|_| block_on(p.get()).unwrap()).collect();
    drop(held);
    riptide_pool::model::join_creates(&p);
    p
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

fn quiescent(p: &Pool<Obj>, c: &Census) {
    let s = p.stats();
    assert_eq!(s.pending_acquisitions, 0, "{s:?}");
    assert_eq!(s.size, s.idle + s.in_use, "{s:?}");
    assert_eq!(s.created - s.destroyed, s.size as u64, "{s:?}");
    assert_eq!(c.live.load(SeqCst), s.size, "objects lost or leaked: {s:?}");
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    // A model's whole path (warming the pool, the threads, the checks, dropping every
    // slot's atomics) can pass loom's default of 1,000 branches without any spinning.
    b.max_branches = b.max_branches.max(10_000);
    b.check(f);
}

/// Invariant: two callers racing to create on an empty pool of one never make more than
/// one object (capacity is reserved by CAS), and both are served (hand-off, no hang).
#[test]
fn capacity_cas_never_exceeds_max_size() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = pool(1, &c);
        let p2 = p.clone();
        let t = thread::spawn(move || drop(block_on(p2.get()).unwrap()));
        drop(block_on(p.get()).unwrap());
        t.join().unwrap();
        assert_eq!(c.made.load(SeqCst), 1);
        quiescent(&p, &c);
    });
}

/// Invariant: a release racing a waiter's registration never loses the wake-up — the
/// waiter either finds the object in its registration look or is handed it (a lost
/// wake-up would leave the waiter parked forever: loom reports the deadlock). The pool
/// starts calm, so the registration also makes the switch to scarce mode.
#[test]
fn release_vs_registration_no_lost_wakeup() {
    model(|| release_races_a_registration(false));
}

/// A one-object pool (already scarce if `scarce`): its object is returned while another
/// thread waits for it; the waiter is served and the object ends up idle.
fn release_races_a_registration(scarce: bool) {
    let c = std::sync::Arc::new(Census::default());
    let p = warm(1, 1, &c);
    if scarce {
        riptide_pool::model::make_scarce(&p);
    }
    let g = p.try_get().unwrap();
    let p2 = p.clone();
    let t = thread::spawn(move || drop(block_on(p2.get()).unwrap()));
    drop(g);
    t.join().unwrap();
    quiescent(&p, &c);
    assert_eq!(p.stats().idle, 1);
}

/// Invariant: a waiter cancelled (future dropped) while a release hands it the object
/// loses nothing and is never handed it twice: the object ends up idle, exactly once.
#[test]
fn handoff_vs_cancellation() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let p2 = p.clone();
        let t = thread::spawn(move || {
            let mut f = p2.get();
            if let Poll::Ready(r) = poll_once(&mut f) {
                drop(r.unwrap());
            }
            drop(f); // cancelled at whatever point the release reached
        });
        drop(g);
        t.join().unwrap();
        quiescent(&p, &c);
        assert!(p.try_get().is_ok(), "the object came back");
    });
}

/// Invariant: a queued waiter polled again with another task's waker (I9) while a release
/// hands it the object is woken through the new waker: `block_on` polls with its own
/// waker, not the no-op one the waiter registered with, and hangs on a lost wake-up.
#[test]
fn a_new_waker_races_the_handoff() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let mut f = p.get();
        assert!(poll_once(&mut f).is_pending()); // queued, woken through a no-op waker
        let releaser = thread::spawn(move || drop(g));
        drop(block_on(f).unwrap());
        releaser.join().unwrap();
        quiescent(&p, &c);
        assert_eq!(p.stats().idle, 1);
    });
}

/// Invariant: the deadline sweeper timing a waiter out races a release's hand-off; exactly
/// one wins: the waiter gets the object or `Timeout`, and the object is never lost.
#[test]
fn timeout_races_handoff() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let mut f = p.acquire().timeout(Duration::from_millis(1)).into_future();
        assert!(poll_once(&mut f).is_pending()); // queued with a deadline
        riptide_pool::model::advance(&p, Duration::from_millis(2));
        let p2 = p.clone();
        let sweeper = thread::spawn(move || riptide_pool::model::sweep(&p2));
        drop(g);
        sweeper.join().unwrap();
        match block_on(f) {
            Ok(g) => drop(g),
            Err(PoolError::Timeout) => assert_eq!(p.stats().timeouts, 1),
            Err(e) => panic!("{e:?}"),
        }
        quiescent(&p, &c);
        assert_eq!(p.stats().idle, 1);
    });
}

/// Invariant: `close()` racing an acquire and a release: the waiter gets the object or
/// `Closed` (never hangs), and every object is destroyed once everything is returned.
#[test]
fn close_races_acquire_and_release() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let p2 = p.clone();
        let waiter = thread::spawn(move || match block_on(p2.get()) {
            Ok(g) => drop(g),
            Err(PoolError::Closed) => {}
            Err(e) => panic!("{e:?}"),
        });
        let p3 = p.clone();
        let closer = thread::spawn(move || p3.close());
        drop(g);
        waiter.join().unwrap();
        closer.join().unwrap();
        assert_eq!(c.live.load(SeqCst), 0, "returned after close: destroyed");
        assert_eq!(p.stats().pending_acquisitions, 0);
    });
}

/// Invariant: with a Low and a High waiter both queued, a release serves High first, and
/// then Low (both registered before the release; they wait on their own threads).
#[test]
fn priority_scan_order_two_levels() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let order = Arc::new(loom::sync::Mutex::new(Vec::new()));
        let mut low = p.acquire().priority(Priority::Low).into_future();
        let mut high = p.acquire().priority(Priority::High).into_future();
        assert!(poll_once(&mut low).is_pending());
        assert!(poll_once(&mut high).is_pending());
        let spawn = |f: riptide_pool::AcquireFuture<Obj>, prio: Priority| {
            let order = order.clone();
            thread::spawn(move || {
                let g = block_on(f).unwrap();
                order.lock().unwrap().push(prio);
                drop(g);
            })
        };
        let low = spawn(low, Priority::Low);
        let high = spawn(high, Priority::High);
        drop(g);
        low.join().unwrap();
        high.join().unwrap();
        assert_eq!(*order.lock().unwrap(), [Priority::High, Priority::Low]);
        quiescent(&p, &c);
    });
}

/// Invariant: `pending_acquisitions` returns to 0 on every exit path: success, a cancel
/// before any hand-off, and a cancel after one.
#[test]
fn pending_counter_returns_to_zero() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let p2 = p.clone();
        let canceller = thread::spawn(move || {
            let mut f = p2.get();
            let _ = poll_once(&mut f);
            drop(f);
        });
        let p3 = p.clone();
        let waiter = thread::spawn(move || drop(block_on(p3.get()).unwrap()));
        drop(g);
        canceller.join().unwrap();
        waiter.join().unwrap();
        quiescent(&p, &c);
    });
}

/// Invariant: a failed create gives its reservation back, so a concurrent caller can
/// still create; the failing caller gets `Create`, nobody hangs, nothing exceeds the cap.
#[test]
fn failed_create_returns_its_reservation() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        c.fail_first.store(1, SeqCst);
        let p = pool(1, &c);
        let p2 = p.clone();
        let t = thread::spawn(move || block_on(p2.get()).map(drop).map_err(|e| e.to_string()));
        let mine = block_on(p.get()).map(drop).map_err(|e| e.to_string());
        let theirs = t.join().unwrap();
        let failures = [&mine, &theirs].iter().filter(|r| r.is_err()).count();
        assert_eq!(
            failures, 1,
            "exactly the caller whose create failed: {mine:?} {theirs:?}"
        );
        assert!(c.made.load(SeqCst) <= 1);
        quiescent(&p, &c);
    });
}

/// Invariant: `detach`/`discard` free capacity for a concurrent waiter, which then creates
/// (it is handed a permit, not left to time out).
#[test]
fn detach_and_discard_vs_acquire() {
    for detach in [true, false] {
        model(move || {
            let c = std::sync::Arc::new(Census::default());
            let p = warm(1, 1, &c);
            let g = p.try_get().unwrap();
            let p2 = p.clone();
            let t = thread::spawn(move || drop(block_on(p2.get()).unwrap()));
            if detach {
                drop(Pooled::detach(g));
            } else {
                Pooled::discard(g);
            }
            t.join().unwrap();
            quiescent(&p, &c);
            assert_eq!(c.made.load(SeqCst), 2);
        });
    }
}

/// Invariant: one waiter cancelling while another waits and an object is released never
/// strands the one that stays (the lost wake-up that hangs qp and bb8#122).
#[test]
fn cancelled_waiter_does_not_strand_the_other() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let p2 = p.clone();
        let stays = thread::spawn(move || drop(block_on(p2.get()).unwrap()));
        let p3 = p.clone();
        let leaves = thread::spawn(move || {
            let mut f = p3.acquire().priority(Priority::High).into_future();
            let _ = poll_once(&mut f);
            drop(f);
        });
        drop(g);
        leaves.join().unwrap();
        stays.join().unwrap();
        quiescent(&p, &c);
    });
}

/// Invariant: the last `Pool` handle dropped while a guard is returned concurrently: the
/// object is destroyed exactly once and the shared state is freed after both (loom checks
/// the accesses; the census checks the object).
#[test]
fn orphaned_guard_vs_last_handle_drop() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(2, 2, &c);
        let g = p.try_get().unwrap();
        let t = thread::spawn(move || drop(p));
        drop(g);
        t.join().unwrap();
        assert_eq!(c.live.load(SeqCst), 0);
    });
}

/// Invariant: the fast paths alone (try_get / return on two threads) never hand one object
/// to two holders.
#[test]
fn fast_path_exclusive_ownership() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let holders = std::sync::Arc::new(AtomicUsize::new(0));
        let run = |p: Pool<Obj>, h: std::sync::Arc<AtomicUsize>| {
            move || {
                if let Ok(g) = p.try_get() {
                    assert_eq!(h.fetch_add(1, SeqCst), 0, "two holders at once");
                    h.fetch_sub(1, SeqCst);
                    drop(g);
                }
            }
        };
        let t = thread::spawn(run(p.clone(), holders.clone()));
        run(p.clone(), holders)();
        t.join().unwrap();
        quiescent(&p, &c);
        assert_eq!(p.stats().idle, 1);
    });
}

/// Invariant: a checkout step owns its object for the whole step. Two callers race for
/// one reused object whose `pre_recycle` hook writes it: the step holds one tracked
/// write access from start to end (`hold_mut`), and each guard's `DerefMut` is a write
/// access, so loom fails the model if either could touch the object while the other's
/// step or guard has it.
#[test]
fn a_checkout_step_owns_its_object() {
    type Hook<'a> = Pin<Box<dyn Future<Output = Result<(), riptide_pool::BoxError>> + Send + 'a>>;
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = one_infallible(&c)
            .pre_recycle(|o: &mut Obj, _: riptide_pool::ObjectMeta| -> Hook<'_> {
                Box::pin(async move {
                    o.hold(|| ());
                    Ok(())
                })
            })
            .build()
            .unwrap();
        drop(block_on(p.get()).unwrap());
        riptide_pool::model::join_creates(&p);
        let run = |p: Pool<Obj>| {
            move || {
                let mut g = block_on(p.get()).unwrap();
                let o: &mut Obj = &mut g;
                o.hold(|| ());
            }
        };
        let t = thread::spawn(run(p.clone()));
        run(p.clone())();
        t.join().unwrap();
        quiescent(&p, &c);
        assert_eq!(c.made.load(SeqCst), 1, "the object was never replaced");
    });
}

/// Invariant: resize racing a waiter: growing hands the waiter a permit (it creates at
/// once) and the new cap is never exceeded.
#[test]
fn resize_grow_serves_a_waiter() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        let g = p.try_get().unwrap();
        let p2 = p.clone();
        let t = thread::spawn(move || drop(block_on(p2.get()).unwrap()));
        p.resize(2);
        t.join().unwrap();
        drop(g);
        assert!(c.made.load(SeqCst) <= 2);
        quiescent(&p, &c);
    });
}

/// Invariant: the idle stack of a scarce pool (claims pop, returns push, one CAS on its
/// tagged head each) never hands one object to two holders and loses none. One thread
/// checks out twice in a row; the other takes both objects and returns the first, the
/// pop-pop-push that turns a stale head into a double hand-out without the head's tag.
#[test]
fn idle_stack_never_shares_or_loses_an_object() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(2, 2, &c);
        riptide_pool::model::make_scarce(&p);
        let p2 = p.clone();
        let t = thread::spawn(move || {
            for _ in 0..2 {
                if let Ok(g) = p2.try_get() {
                    g.hold(thread::yield_now);
                }
            }
        });
        let a = p.try_get();
        let b = p.try_get();
        drop(a);
        if let Ok(b) = b {
            b.hold(thread::yield_now);
        }
        t.join().unwrap();
        quiescent(&p, &c);
        assert_eq!(p.stats().idle, 2);
        // The stack still holds exactly the two objects, each once.
        let x = p.try_get().unwrap();
        let y = p.try_get().unwrap();
        x.hold(|| y.hold(|| {}));
        assert!(p.try_get().is_err(), "an object stacked twice");
        drop((x, y));
        assert_eq!(c.made.load(SeqCst), 2);
    });
}

/// Invariant: in a scarce pool, a return (a push, then a read of the state word) racing a
/// waiter's registration (the count in the word, a fence, then a pop) never loses the
/// wake-up: either the waiter pops the object or the return sees it queued and hands
/// the object over.
#[test]
fn scarce_release_vs_registration_no_lost_wakeup() {
    model(|| release_races_a_registration(true));
}

/// Invariant: switching a scarce pool back to calm mode while an object is being returned
/// strands nothing: afterwards the object is found by the next checkout without creating,
/// whichever side of the switch its return fell on.
#[test]
fn the_switch_back_to_calm_races_a_return() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = warm(1, 1, &c);
        riptide_pool::model::make_scarce(&p);
        let g = p.try_get().unwrap();
        let p2 = p.clone();
        let t = thread::spawn(move || riptide_pool::model::make_calm(&p2));
        drop(g);
        t.join().unwrap();
        drop(p.try_get().expect("the returned object is found"));
        assert_eq!(c.made.load(SeqCst), 1);
        quiescent(&p, &c);
    });
}

/// Loom needs `Infallible` in scope for some factories; keeps the import honest.
#[allow(dead_code)]
/// Invariant: reclaiming a long-held checkout while its guard returns through the fast
/// release (a plain store that may overwrite the reclaim's mark) either reclaims it (the
/// object is destroyed on return, its capacity given back once) or finds it returned;
/// never an idle object whose capacity was already given away.
#[test]
fn reclaim_races_the_fast_release() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let p = reclaiming(&c);
        // Warm: a fresh slot's first return takes the slow path once.
        drop(block_on(p.get()).unwrap());
        riptide_pool::model::join_creates(&p);
        let g = p.try_get().unwrap();
        riptide_pool::model::advance(&p, Duration::from_millis(20));
        let p2 = p.clone();
        let maint = thread::spawn(move || riptide_pool::model::maintain(&p2));
        drop(g);
        maint.join().unwrap();
        quiescent(&p, &c);
    });
}

/// Invariant: the slot array grows while it is in use. A pool that starts with one slot
/// (`first_slots(1)`) gets its second object in a segment added by that object's create,
/// while the first object is checked out, returned, and counted by `stats()` on another
/// thread: the new segment is published whole (its slots initialised before a reader
/// finds it), no object is installed twice or lost, and both callers are served.
#[test]
fn the_slot_array_grows_under_concurrent_use() {
    model(|| {
        riptide_pool::model::first_slots(1);
        let c = std::sync::Arc::new(Census::default());
        let p = pool(2, &c);
        let g = block_on(p.get()).unwrap();
        riptide_pool::model::join_creates(&p);
        let p2 = p.clone();
        let t = thread::spawn(move || {
            let g = block_on(p2.get()).unwrap();
            g.hold(thread::yield_now);
        });
        let s = p.stats();
        assert!(s.size <= 2 && s.idle + s.in_use <= s.size, "{s:?}");
        g.hold(thread::yield_now);
        drop(g);
        t.join().unwrap();
        riptide_pool::model::join_creates(&p);
        quiescent(&p, &c);
        assert!(c.made.load(SeqCst) <= 2);
        // Both slots are usable: two objects out at once, each once.
        let x = p.try_get().unwrap();
        let y = block_on(p.get()).unwrap();
        x.hold(|| y.hold(|| {}));
        drop((x, y));
        riptide_pool::model::join_creates(&p);
        quiescent(&p, &c);
        riptide_pool::model::first_slots(8);
    });
}

/// The builder of a pool of one object with an infallible factory (no failed create to
/// model) and no deadlock detection.
fn one_infallible(c: &std::sync::Arc<Census>) -> riptide_pool::PoolBuilder<Obj> {
    let c = c.clone();
    Pool::builder(move || {
        let c = c.clone();
        async move {
            c.made.fetch_add(1, SeqCst);
            c.live.fetch_add(1, SeqCst);
            Ok::<_, Infallible>(Obj {
                census: c,
                held: Default::default(),
            })
        }
    })
    .max_size(1)
    // Deadlock detection is a report path (tests/deadlock.rs covers it); under the model
    // checkers every thread has one holder id, and its read-only scan multiplies the
    // interleavings without checking anything.
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
}

/// A pool of one object whose checkouts held 10 ms are reclaimed.
fn reclaiming(c: &std::sync::Arc<Census>) -> Pool<Obj> {
    one_infallible(c)
        .reclaim_leaked(Duration::from_millis(10))
        .build()
        .unwrap()
}

fn _infallible(_: Infallible) {}

/// Invariant: a reclaim racing the fast release while a third thread claims: the
/// releaser's plain store overwrites the reclaim's mark, and the claimer may take the
/// object before the releaser takes it back. The object then lives on, so the reclaim is
/// undone and its capacity counted again (before, `size` stayed one short: an idle
/// object the pool did not count, its bound exceeded by one from then on). A scarce pool
/// as well: there a taken-back reclaimed object went onto the idle stack.
#[test]
fn reclaim_races_a_release_and_a_claim() {
    reclaim_release_claim(false);
}

/// `reclaim_races_a_release_and_a_claim` in a scarce pool.
#[test]
fn reclaim_races_a_scarce_release_and_a_claim() {
    reclaim_release_claim(true);
}

fn reclaim_release_claim(scarce: bool) {
    model(move || {
        let c = std::sync::Arc::new(Census::default());
        let p = reclaiming(&c);
        drop(block_on(p.get()).unwrap());
        riptide_pool::model::join_creates(&p);
        let g = p.try_get().unwrap();
        if scarce {
            riptide_pool::model::make_scarce(&p);
        }
        riptide_pool::model::advance(&p, Duration::from_millis(20));
        let p2 = p.clone();
        let maint = thread::spawn(move || riptide_pool::model::maintain(&p2));
        let p3 = p.clone();
        let claimer = thread::spawn(move || {
            if let Ok(g) = p3.try_get() {
                g.hold(|| {});
            }
        });
        drop(g);
        maint.join().unwrap();
        claimer.join().unwrap();
        quiescent(&p, &c);
        assert!(p.stats().size <= 1, "{:?}", p.stats());
    });
}
