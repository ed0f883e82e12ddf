//! Waiters and the priority wait queue.
//!
//! A waiter is a small shared cell: one atomic state word and an `AtomicWaker`. It leaves
//! `WAITING` exactly once, by CAS: whoever wins (a releaser handing an object, a capacity
//! release handing a permit, `close`, a creator finishing, or the waiter cancelling
//! itself) decides what happened; a loser knows the cell is taken.
//!
//! The queue is four FIFO deques (one per priority) behind the pool's short `Mutex`, taken
//! only on the waiting path, never across an `.await`.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::BoxError;
use crate::sync::{Arc, AtomicUsize, AtomicWaker, Mutex, Ordering};
use crate::Priority;

pub(crate) const WAITING: usize = 0;
pub(crate) const CLOSED: usize = 1;
/// Capacity was reserved for this waiter: it must create an object (or give it back).
pub(crate) const PERMIT: usize = 2;
/// Its create failed; the error is in `error`.
pub(crate) const FAILED: usize = 3;
pub(crate) const CANCELLED: usize = 4;
/// Its deadline passed while queued (expired by the pool's deadline sweeper).
pub(crate) const TIMED_OUT: usize = 5;
/// The circuit breaker opened while it waited.
pub(crate) const CIRCUIT_OPEN: usize = 6;
/// `HANDED + i`: the object in slot `i` now belongs to this waiter.
pub(crate) const HANDED: usize = 8;

pub(crate) struct Waiter {
    pub state: AtomicUsize,
    pub waker: AtomicWaker,
    pub priority: Priority,
    /// When it started waiting, as time since the pool's epoch (aging).
    pub since: Duration,
    /// When it gives up, as time since the pool's epoch (`Duration::MAX`: never).
    pub deadline: Duration,
    /// Whether it sits in the queue (a creator's own cell does not).
    pub queued: bool,
    pub error: Mutex<Option<BoxError>>,
}

impl Waiter {
    pub(crate) fn new(
        priority: Priority,
        since: Duration,
        deadline: Duration,
        queued: bool,
    ) -> Arc<Self> {
        Arc::new(Waiter {
            state: AtomicUsize::new(WAITING),
            waker: AtomicWaker::new(),
            priority,
            since,
            deadline,
            queued,
            error: Mutex::new(None),
        })
    }

    /// Moves the cell from `WAITING` to `to`; false if someone else decided first.
    /// AcqRel: on success, Release publishes what the winner wrote before (the object in
    /// a handed slot, the error); the waiter's Acquire load of the state pairs with it.
    pub(crate) fn decide(&self, to: usize) -> bool {
        self.state
            .compare_exchange(WAITING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The cell's decision, or `Pending` with the task's waker registered. Acquire pairs
    /// with the decider's AcqRel CAS: what it wrote before (the handed object, the error)
    /// is visible to the caller.
    pub(crate) fn poll_decision(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<usize> {
        let mut s = self.state.load(Ordering::Acquire);
        if s == WAITING {
            self.waker.register(cx.waker());
            // Re-check after registering: a decision in between woke the old waker.
            s = self.state.load(Ordering::Acquire);
            if s == WAITING {
                return std::task::Poll::Pending;
            }
        }
        std::task::Poll::Ready(s)
    }

    pub(crate) fn decide_and_wake(&self, to: usize) -> bool {
        let won = self.decide(to);
        if won {
            self.waker.wake();
        }
        won
    }
}

/// The deadline sweep armed on the pool's timer: when it fires (time since the pool's
/// epoch), and the timer entry to disarm (none under a model checker, where the models run
/// the sweep themselves).
pub(crate) struct Armed {
    pub at: Duration,
    #[cfg(not(riptide_model))]
    pub key: Option<crate::timer::Key>,
}

#[derive(Default)]
pub(crate) struct WaitQueue {
    levels: [VecDeque<Arc<Waiter>>; 4],
    /// The armed deadline sweep, if any: at or before the earliest queued deadline.
    pub sweeper: Option<Armed>,
}

impl WaitQueue {
    pub(crate) fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(VecDeque::is_empty)
    }

    pub(crate) fn push(&mut self, w: Arc<Waiter>) {
        self.levels[w.priority as usize].push_back(w);
    }

    pub(crate) fn remove(&mut self, w: &Arc<Waiter>) -> bool {
        let q = &mut self.levels[w.priority as usize];
        match q.iter().position(|x| Arc::ptr_eq(x, w)) {
            Some(i) => {
                q.remove(i);
                true
            }
            None => false,
        }
    }

    /// Removes every waiter whose deadline is at or before `now` and decides it
    /// `TIMED_OUT` (those that lost the race to a hand-off or cancel are just removed);
    /// returns the ones to wake and the earliest deadline left (`Duration::MAX`, "no
    /// deadline", never counts).
    pub(crate) fn expire(&mut self, now: Duration) -> (Vec<Arc<Waiter>>, Option<Duration>) {
        let mut expired = Vec::new();
        let mut next: Option<Duration> = None;
        for q in &mut self.levels {
            q.retain(|w| {
                if w.state.load(Ordering::Acquire) != WAITING {
                    return false;
                }
                if w.deadline <= now {
                    if w.decide(TIMED_OUT) {
                        expired.push(w.clone());
                    }
                    return false;
                }
                if w.deadline != Duration::MAX {
                    next = Some(next.map_or(w.deadline, |n| n.min(w.deadline)));
                }
                true
            });
        }
        (expired, next)
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Arc<Waiter>> + '_ {
        self.levels.iter_mut().flat_map(|q| q.drain(..))
    }

    /// Removes and returns the waiter to serve next, skipping cells that already left
    /// `WAITING` (cancelled ones not yet removed by their owner).
    ///
    /// Order: effective priority, then age. A waiter that has waited at least `aging`
    /// counts as `Critical`; among equals the one waiting longest wins. Each level is FIFO,
    /// so its front is its oldest waiter and only fronts compete. The clock (`now`) is read
    /// only when two or more levels have waiters: within one level aging cannot change the
    /// order.
    pub(crate) fn pop_best(
        &mut self,
        now: impl FnOnce() -> Duration,
        aging: Duration,
    ) -> Option<Arc<Waiter>> {
        let mut now = Some(now);
        let mut clock = None;
        loop {
            for q in self.levels.iter_mut() {
                while q
                    .front()
                    .is_some_and(|w| w.state.load(Ordering::Acquire) != WAITING)
                {
                    q.pop_front();
                }
            }
            let fronts = self.levels.iter().filter(|q| !q.is_empty()).count();
            let lvl = if fronts <= 1 {
                self.levels.iter().position(|q| !q.is_empty())?
            } else {
                let t = *clock.get_or_insert_with(|| (now.take().expect("read once"))());
                let mut best: Option<(usize, Priority, Duration)> = None;
                for (lvl, q) in self.levels.iter().enumerate() {
                    let Some(w) = q.front() else { continue };
                    let eff = if t.saturating_sub(w.since) >= aging {
                        Priority::Critical
                    } else {
                        w.priority
                    };
                    let better = match best {
                        None => true,
                        Some((_, bp, bs)) => eff > bp || (eff == bp && w.since < bs),
                    };
                    if better {
                        best = Some((lvl, eff, w.since));
                    }
                }
                best?.0
            };
            let w = self.levels[lvl].pop_front().expect("front exists");
            if w.state.load(Ordering::Acquire) == WAITING {
                return Some(w);
            }
        }
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::*;

    fn w(p: Priority, ms: u64) -> Arc<Waiter> {
        Waiter::new(p, Duration::from_millis(ms), Duration::MAX, true)
    }

    #[test]
    fn priority_then_fifo() {
        let mut q = WaitQueue::default();
        let (a, b, c, d) = (
            w(Priority::Low, 0),
            w(Priority::High, 1),
            w(Priority::High, 2),
            w(Priority::Normal, 3),
        );
        for x in [&a, &b, &c, &d] {
            q.push(x.clone());
        }
        let now = Duration::from_millis(10);
        let aging = Duration::from_secs(1);
        let order: Vec<_> = std::iter::from_fn(|| q.pop_best(|| now, aging)).collect();
        let want = [&b, &c, &d, &a];
        assert_eq!(order.len(), 4);
        for (got, want) in order.iter().zip(want) {
            assert!(Arc::ptr_eq(got, want));
        }
    }

    #[test]
    fn aged_low_waiter_beats_newer_critical() {
        let mut q = WaitQueue::default();
        let low = w(Priority::Low, 0);
        let crit = w(Priority::Critical, 150);
        q.push(crit.clone());
        q.push(low.clone());
        // At 100 ms the low waiter is younger than the threshold: critical first.
        let got = q.pop_best(|| Duration::from_millis(160), Duration::from_millis(200));
        assert!(Arc::ptr_eq(&got.unwrap(), &crit));
        q.push(crit.clone());
        // At 250 ms the low waiter is 250 ms old: it is served as Critical, and it is older.
        let got = q.pop_best(|| Duration::from_millis(250), Duration::from_millis(200));
        assert!(Arc::ptr_eq(&got.unwrap(), &low));
    }

    #[test]
    fn expire_times_out_only_past_deadlines() {
        let mut q = WaitQueue::default();
        let a = Waiter::new(
            Priority::Low,
            Duration::ZERO,
            Duration::from_millis(10),
            true,
        );
        let b = Waiter::new(
            Priority::High,
            Duration::ZERO,
            Duration::from_millis(30),
            true,
        );
        q.push(a.clone());
        q.push(b.clone());
        let (gone, next) = q.expire(Duration::from_millis(20));
        assert_eq!(gone.len(), 1);
        assert!(Arc::ptr_eq(&gone[0], &a));
        assert_eq!(a.state.load(Ordering::Relaxed), TIMED_OUT);
        assert_eq!(next, Some(Duration::from_millis(30)));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn cancelled_cells_are_skipped() {
        let mut q = WaitQueue::default();
        let a = w(Priority::Normal, 0);
        let b = w(Priority::Normal, 1);
        q.push(a.clone());
        q.push(b.clone());
        assert!(a.decide(CANCELLED));
        let got = q
            .pop_best(|| Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        assert!(Arc::ptr_eq(&got, &b));
        assert!(q.is_empty());
    }
}
