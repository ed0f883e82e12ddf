//! The pool's own timer: one process-wide thread that fires deadlines.
//!
//! Every time limit the pool enforces (a queued caller's deadline, `create_timeout`, the
//! time a checkout step may take, the maintenance period) is armed here instead of on a
//! tokio runtime's time driver. So no deadline depends on a task or a runtime that can go
//! away: a pool shared by several runtimes, a runtime built without `enable_time`, or one
//! shut down while callers wait, never leaves a caller waiting past its deadline.
//!
//! The thread only wakes things: a fired entry sets its flag and wakes a waker, or runs a
//! short callback that takes the pool's queue lock (the deadline sweep). Nothing slow or
//! user-provided runs on it. Entries live in an ordered map under one mutex: arming and
//! disarming cost a lock and a tree operation, paid only on slow paths (a caller that has
//! to wait, a create, a checkout step that did not finish at once).
//!
//! [`Sleep`] and [`Timeout`] are runtime-independent futures built on it; a `Sleep` that
//! is dropped before it fires removes its entry, so abandoned timeouts cost no memory.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;

/// What a timer entry does when its time comes.
pub(crate) enum Action {
    /// Marks a [`Sleep`] fired and wakes its task.
    Wake(Arc<SleepState>),
    /// A short callback run on the timer thread, outside the timer's lock.
    Call(Box<dyn FnOnce() + Send>),
}

/// Identifies an armed entry, to disarm it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key(Instant, u64);

struct Entries {
    map: BTreeMap<Key, Action>,
    seq: u64,
    started: bool,
}

struct Timer {
    entries: Mutex<Entries>,
    /// Signalled when an entry earlier than every other one is armed.
    changed: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| Timer {
        entries: Mutex::new(Entries {
            map: BTreeMap::new(),
            seq: 0,
            started: false,
        }),
        changed: Condvar::new(),
    })
}

fn lock() -> std::sync::MutexGuard<'static, Entries> {
    // No user code runs under this lock: a poisoned lock only means a panic elsewhere.
    timer().entries.lock().unwrap_or_else(|e| e.into_inner())
}

/// Arms `action` to run at `at` (at once if `at` has passed).
pub(crate) fn arm(at: Instant, action: Action) -> Key {
    let mut e = lock();
    if !e.started {
        e.started = true;
        std::thread::Builder::new()
            .name("riptide-pool-timer".into())
            .spawn(run)
            .expect("riptide_pool: could not start the timer thread");
    }
    e.seq += 1;
    let key = Key(at, e.seq);
    let earliest = e.map.keys().next().is_none_or(|k| key < *k);
    e.map.insert(key, action);
    drop(e);
    if earliest {
        timer().changed.notify_one();
    }
    key
}

/// Disarms `key`: its action, if it had not fired yet, for the caller to drop (after any
/// lock of its own: an action may hold the last reference to a pool).
pub(crate) fn disarm(key: Key) -> Option<Action> {
    lock().map.remove(&key)
}

/// The timer thread: fires entries as their time comes.
fn run() {
    let t = timer();
    let mut e = lock();
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = e.map.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(e);
            for action in due {
                fire(action);
            }
            e = lock();
            continue;
        }
        e = match e.map.keys().next() {
            Some(k) => {
                let wait = k.0.saturating_duration_since(now);
                t.changed
                    .wait_timeout(e, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
            None => t.changed.wait(e).unwrap_or_else(|p| p.into_inner()),
        };
    }
}

fn fire(action: Action) {
    // Both kinds run user code (a `Wake` wakes a caller's waker; a callback may too):
    // never let one stop every deadline in the process. Report it and go on.
    let run = std::panic::AssertUnwindSafe(|| match action {
        Action::Wake(s) => s.fire(),
        Action::Call(f) => f(),
    });
    if let Err(p) = std::panic::catch_unwind(run) {
        crate::rt::trace::quietly(|| {
            tracing::error!(
                panic = crate::error::panic_message(&*p),
                "riptide_pool: a timer action panicked (a waker, or a pool callback)"
            )
        });
    }
}

/// The shared part of a [`Sleep`].
pub(crate) struct SleepState {
    fired: AtomicBool,
    waker: AtomicWaker,
}

impl SleepState {
    fn fire(&self) {
        // Release: pairs with the Acquire in `Sleep::poll` (nothing else is published;
        // it orders the flag against the waker hand-over).
        self.fired.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// A future that completes at an instant, on the pool's timer (works on any executor, with
/// or without a tokio time driver).
pub(crate) struct Sleep {
    at: Instant,
    state: Option<(Arc<SleepState>, Key)>,
}

impl Sleep {
    pub(crate) fn until(at: Instant) -> Self {
        Sleep { at, state: None }
    }

    pub(crate) fn after(d: Duration) -> Self {
        Sleep::until(deadline_after(d))
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &self.state {
            None => {
                if Instant::now() >= self.at {
                    return Poll::Ready(());
                }
                let s = Arc::new(SleepState {
                    fired: AtomicBool::new(false),
                    waker: AtomicWaker::new(),
                });
                s.waker.register(cx.waker());
                let key = arm(self.at, Action::Wake(s.clone()));
                self.state = Some((s, key));
                Poll::Pending
            }
            Some((s, _)) => {
                s.waker.register(cx.waker());
                // Acquire: pairs with `fire`; checked after registering so a fire in
                // between is not missed (it woke the previous waker).
                if s.fired.load(Ordering::Acquire) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((s, key)) = self.state.take() {
            if !s.fired.load(Ordering::Relaxed) {
                drop(disarm(key));
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// `fut`, or `None` once `d` has passed. The timer is armed only if `fut` does not
    /// complete at its first poll, so a check that is ready at once costs no timer.
    pub(crate) struct Timeout<F> {
        #[pin]
        fut: F,
        d: Duration,
        sleep: Option<Sleep>,
    }
}

impl<F> Timeout<F> {
    pub(crate) fn new(d: Duration, fut: F) -> Self {
        Timeout {
            fut,
            d,
            sleep: None,
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Option<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Some(v));
        }
        let d = *this.d;
        let sleep = this.sleep.get_or_insert_with(|| Sleep::after(d));
        match Pin::new(sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        crate::rt::block::block_on_deadline(f, None).expect("no deadline")
    }

    #[test]
    #[cfg_attr(miri, ignore = "the timer thread outlives the test")]
    fn sleep_completes_after_its_instant_without_a_runtime() {
        let t0 = Instant::now();
        block_on(Sleep::after(Duration::from_millis(30)));
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    #[cfg_attr(miri, ignore = "the timer thread outlives the test")]
    fn a_dropped_sleep_removes_its_entry() {
        let far = Instant::now() + Duration::from_secs(3600);
        let before = lock().map.len();
        let mut s = Sleep::until(far);
        let w = std::task::Waker::noop();
        assert!(Pin::new(&mut s)
            .poll(&mut Context::from_waker(w))
            .is_pending());
        assert!(lock().map.keys().any(|k| k.0 == far));
        drop(s);
        assert!(!lock().map.keys().any(|k| k.0 == far));
        assert!(lock().map.len() <= before + 1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "the timer thread outlives the test")]
    fn timeout_is_none_past_its_limit_and_some_when_ready() {
        assert_eq!(
            block_on(Timeout::new(Duration::from_millis(1), async { 7 })),
            Some(7)
        );
        let never = std::future::pending::<()>();
        let t0 = Instant::now();
        assert_eq!(
            block_on(Timeout::new(Duration::from_millis(20), never)),
            None
        );
        assert!(t0.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    #[cfg_attr(miri, ignore = "the timer thread outlives the test")]
    fn a_panicking_callback_does_not_stop_the_timer() {
        arm(
            Instant::now(),
            Action::Call(Box::new(|| panic!("callback"))),
        );
        let t0 = Instant::now();
        block_on(Sleep::after(Duration::from_millis(10)));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
