//! Waiters and the priority wait queue.
//!
//! A waiter is a small shared cell: one atomic state word and an `AtomicWaker`. It leaves
//! `WAITING` exactly once, by CAS: whoever wins (a releaser handing an object, a capacity
//! release handing a permit, `close`, a creator finishing, or the waiter cancelling
//! itself) decides what happened; a loser knows the cell is taken.
//!
//! The queue (`queue.rs`) is four FIFO deques (one per priority) behind the pool's short
//! `Mutex`, taken only on the waiting path, never across an `.await`. A queued cell is
//! decided only under that lock, and its waker sits in its queue entry (I9,
//! `shared/handoff.rs`); the cell's own `AtomicWaker` serves a creating caller, whose
//! cell the factory's task decides without the lock.

use std::time::Duration;

use crate::error::BoxError;
use crate::sync::{Arc, AtomicU64, AtomicUsize, AtomicWaker, Mutex, Ordering};

/// Priority of a waiting caller. Higher is served first; within a level, first come first
/// served; a waiter older than `starvation_threshold` is served as `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Background work.
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Latency-sensitive work.
    High = 2,
    /// Served first (aged waiters join this level).
    Critical = 3,
}

impl Priority {
    /// `self` raised by `levels` (saturating at `Critical`).
    pub(crate) fn boosted(self, levels: u8) -> Priority {
        match (self as u8).saturating_add(levels).min(3) {
            0 => Priority::Low,
            1 => Priority::Normal,
            2 => Priority::High,
            _ => Priority::Critical,
        }
    }
}

/// How a waiter's wait ended: decided once, by whoever wins the cell's CAS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The object in this slot now belongs to the waiter.
    Handed(usize),
    /// Capacity was reserved for the waiter: it must create an object (or give it back).
    Permit,
    /// Its create failed; the error is in the cell's `error`.
    Failed,
    /// The waiter left (its future was dropped) before anything was decided.
    Cancelled,
    /// Its deadline passed while it was queued (the pool's deadline sweep).
    TimedOut,
    /// The circuit breaker opened while it waited.
    CircuitOpen,
    /// The pool was closed while it waited.
    PoolClosed,
    /// Every object is held by a waiting caller, this one included (deadlock detection).
    WouldDeadlock,
}

/// The cell's word: 0 while waiting, else the encoded decision (`Handed(i)` is `8 + i`).
const WAITING: usize = 0;
const HANDED: usize = 8;

impl Decision {
    fn encode(self) -> usize {
        match self {
            Decision::PoolClosed => 1,
            Decision::Permit => 2,
            Decision::Failed => 3,
            Decision::Cancelled => 4,
            Decision::TimedOut => 5,
            Decision::CircuitOpen => 6,
            Decision::WouldDeadlock => 7,
            Decision::Handed(i) => HANDED + i,
        }
    }

    fn decode(w: usize) -> Option<Decision> {
        Some(match w {
            WAITING => return None,
            1 => Decision::PoolClosed,
            2 => Decision::Permit,
            3 => Decision::Failed,
            4 => Decision::Cancelled,
            5 => Decision::TimedOut,
            6 => Decision::CircuitOpen,
            7 => Decision::WouldDeadlock,
            w if w >= HANDED => Decision::Handed(w - HANDED),
            w => unreachable!("waiter word {w}"),
        })
    }
}

/// `Waiter::nested` values.
const UNCHECKED: usize = 0;
const NOT_NESTED: usize = 1;
const NESTED: usize = 2;

/// A waiting caller's cell, shared by the caller and whoever decides it.
pub(crate) struct Waiter {
    state: AtomicUsize,
    waker: AtomicWaker,
    pub priority: Priority,
    /// When it started waiting, as time since the pool's epoch (aging).
    pub since: Duration,
    /// When it gives up, as time since the pool's epoch (`Duration::MAX`: never).
    pub deadline: Duration,
    /// Whether it sits in the queue (a creator's own cell does not).
    pub queued: bool,
    /// The waiting caller's holder id while deadlock detection is on (`crate::deadlock`),
    /// else 0: the task (or thread) that last polled the waiting future, which may have
    /// been moved to another task since it queued. Written and read under the queue lock
    /// (Relaxed).
    holder: AtomicU64,
    /// Where the caller waits (the nested-wait report names it).
    pub waiting_at: Option<&'static std::panic::Location<'static>>,
    /// What the nested-wait check found (`shared/nested.rs`): `UNCHECKED`, `NOT_NESTED`
    /// or `NESTED`. Written and read under the queue lock (Relaxed).
    nested: AtomicUsize,
    /// A failed create's error, written before the cell is decided `Failed`.
    pub error: Mutex<Option<BoxError>>,
}

impl Waiter {
    /// A cell that carries no holder id (detection off, or not a queued caller's).
    pub(crate) fn new(
        priority: Priority,
        since: Duration,
        deadline: Duration,
        queued: bool,
    ) -> Arc<Self> {
        Self::make(priority, since, deadline, queued, 0, None)
    }

    /// A queued caller's cell with deadlock detection on: `holder` is its holder id,
    /// `at` where it waits.
    pub(crate) fn detected(
        priority: Priority,
        since: Duration,
        deadline: Duration,
        holder: u64,
        at: &'static std::panic::Location<'static>,
    ) -> Arc<Self> {
        Self::make(priority, since, deadline, true, holder, Some(at))
    }

    fn make(
        priority: Priority,
        since: Duration,
        deadline: Duration,
        queued: bool,
        holder: u64,
        waiting_at: Option<&'static std::panic::Location<'static>>,
    ) -> Arc<Self> {
        if let Some(mut cell) = spare::take() {
            // `take` gives out only cells nobody else can reach (see `retire`), which
            // `retire` left without a waker or an error.
            if let Some(c) = Arc::get_mut(&mut cell) {
                c.state = AtomicUsize::new(WAITING);
                c.nested = AtomicUsize::new(UNCHECKED);
                c.priority = priority;
                c.since = since;
                c.deadline = deadline;
                c.queued = queued;
                c.holder = AtomicU64::new(holder);
                c.waiting_at = waiting_at;
                return cell;
            }
        }
        Arc::new(Waiter {
            state: AtomicUsize::new(WAITING),
            waker: AtomicWaker::new(),
            priority,
            since,
            deadline,
            queued,
            holder: AtomicU64::new(holder),
            waiting_at,
            nested: AtomicUsize::new(UNCHECKED),
            error: Mutex::new(None),
        })
    }

    /// Hands the caller's cell back when its wait is over, so that this thread's next
    /// wait reuses it instead of allocating. Only a cell nobody else holds is kept (a
    /// decider may still hold its clone for a moment: then the cell is simply dropped);
    /// its waker is dropped at once, so a kept cell keeps no task alive.
    pub(crate) fn retire(cell: Arc<Self>) {
        spare::retire(cell, |c| {
            c.waker = AtomicWaker::new();
            c.error = Mutex::new(None);
        });
    }

    /// Whether the nested-wait check has yet to look at this cell.
    pub(crate) fn is_unchecked(&self) -> bool {
        self.holder() != 0 && self.nested.load(Ordering::Relaxed) == UNCHECKED
    }

    /// The waiting caller's holder id (0: detection off). Lock held.
    pub(crate) fn holder(&self) -> u64 {
        self.holder.load(Ordering::Relaxed)
    }

    /// The waiting future is polled by `holder` (never 0): if that is not the caller it
    /// had (it was moved to another task), the cell now waits as `holder`, to be checked
    /// again; returns whether it changed. Only for a cell that carries a holder. Lock held.
    pub(crate) fn rehold(&self, holder: u64) -> bool {
        let was = self.holder();
        if was == 0 || was == holder {
            return false;
        }
        self.holder.store(holder, Ordering::Relaxed);
        self.nested.store(UNCHECKED, Ordering::Relaxed);
        true
    }

    /// Records the nested-wait check's finding. Lock held.
    pub(crate) fn set_nested(&self, nested: bool) {
        let v = if nested { NESTED } else { NOT_NESTED };
        self.nested.store(v, Ordering::Relaxed);
    }

    /// Whether the check found the caller holding a checkout of the pool while it waits.
    pub(crate) fn is_nested(&self) -> bool {
        self.nested.load(Ordering::Relaxed) == NESTED
    }

    /// Whether the cell is still undecided. Acquire: as `decision`.
    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// The decision, if taken. Acquire pairs with the decider's AcqRel CAS: what it wrote
    /// before (the object in a handed slot, the error) is visible to the reader.
    pub(crate) fn decision(&self) -> Option<Decision> {
        Decision::decode(self.state.load(Ordering::Acquire))
    }

    /// Decides the cell `to`; false if someone else decided first. AcqRel: on success,
    /// Release publishes what the winner wrote before (see `decision`). For a cell that
    /// is not queued (a creating caller's, raced by the factory's task and its owner); a
    /// queued cell is decided by the queue (`decide_queued`).
    pub(crate) fn decide(&self, to: Decision) -> bool {
        self.state
            .compare_exchange(WAITING, to.encode(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Decides a queued cell `to`. Only for the queue (`queue.rs`), whose methods run
    /// under the queue lock, which every decider of a queued cell holds (I9): nothing can
    /// write the word meanwhile, so a store does what `decide`'s CAS does. Release: as
    /// `decide`.
    pub(super) fn decide_queued(&self, to: Decision) {
        debug_assert!(self.queued && self.is_waiting(), "decided twice (I9)");
        self.state.store(to.encode(), Ordering::Release);
    }

    /// The decision, or `Pending` with the task's waker registered in the cell (a creating
    /// caller's cell; a queued one's waker is in its queue entry, I9).
    pub(crate) fn poll_decision(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Decision> {
        if let Some(d) = self.decision() {
            return std::task::Poll::Ready(d);
        }
        self.waker.register(cx.waker());
        // Re-check after registering: a decision in between woke the old waker.
        match self.decision() {
            Some(d) => std::task::Poll::Ready(d),
            None => std::task::Poll::Pending,
        }
    }

    /// Wakes the waiting task (after a decision, once the deciding lock is released).
    pub(crate) fn wake(&self) {
        self.waker.wake();
    }
}

mod queue;
mod spare;
pub(crate) use queue::{Armed, WaitQueue};

/// Wakes every one of `wakers` (callers decided together, once the lock is released),
/// even if some panic: a waker is user code, and one that panics must not leave the
/// callers after it decided but asleep. The first panic is raised again once every waker
/// has run.
pub(crate) fn wake_all(wakers: Vec<std::task::Waker>) {
    let mut wakes = Wakes::default();
    for w in wakers {
        wakes.wake(|| w.wake());
    }
    wakes.finish();
}

/// Runs wake-ups (user code) one after another so that a panic in one skips none of the
/// others; the first panic is kept for [`finish`](Wakes::finish) or
/// [`panicked`](Wakes::panicked).
#[derive(Default)]
pub(crate) struct Wakes(Option<Box<dyn std::any::Any + Send>>);

impl Wakes {
    /// Runs `wake`, keeping its panic if it is the first.
    pub(crate) fn wake(&mut self, wake: impl FnOnce()) {
        if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(wake)) {
            self.0.get_or_insert(p);
        }
    }

    /// Raises the first panic again, if there was one.
    pub(crate) fn finish(self) {
        if let Some(p) = self.0 {
            std::panic::resume_unwind(p);
        }
    }

    /// Whether one panicked (the panic is dropped: for callers that only log it).
    pub(crate) fn panicked(self) -> bool {
        self.0.is_some()
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    use super::{Decision, Priority, Waiter};

    struct Task;
    impl Wake for Task {
        fn wake(self: Arc<Self>) {}
    }

    fn cell(p: Priority) -> Arc<Waiter> {
        Waiter::new(p, Duration::from_millis(7), Duration::from_secs(9), true)
    }

    #[test]
    fn a_retired_cell_is_reused_fresh_and_holds_no_waker() {
        let task = Arc::new(Task);
        let waker = Waker::from(task.clone());
        let first = cell(Priority::High);
        assert!(first
            .poll_decision(&mut Context::from_waker(&waker))
            .is_pending());
        assert!(first.decide(Decision::Handed(3)));
        let at = Arc::as_ptr(&first);
        Waiter::retire(first);
        drop(waker);
        assert_eq!(Arc::strong_count(&task), 1, "a retired cell keeps a waker");

        let second = Waiter::new(
            Priority::Low,
            Duration::from_millis(1),
            Duration::MAX,
            false,
        );
        assert_eq!(Arc::as_ptr(&second), at, "the retired cell was not reused");
        assert_eq!(second.decision(), None);
        assert_eq!(second.priority, Priority::Low);
        assert_eq!(second.since, Duration::from_millis(1));
        assert_eq!(second.deadline, Duration::MAX);
        assert!(!second.queued);
        assert!(second.error.lock().is_none());
    }

    #[test]
    fn a_cell_someone_else_holds_is_not_kept() {
        let first = cell(Priority::Normal);
        let decider = first.clone();
        let at = Arc::as_ptr(&first);
        Waiter::retire(first);
        let second = cell(Priority::Normal);
        assert_ne!(
            Arc::as_ptr(&second),
            at,
            "a shared cell was handed out again"
        );
        assert!(decider.decide(Decision::TimedOut));
        assert_eq!(second.decision(), None);
    }
}
