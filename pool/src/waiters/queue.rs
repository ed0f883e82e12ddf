//! The priority wait queue: four FIFO deques of queued callers (one per priority) behind
//! the pool's short `Mutex`, with aging, deadlines, positions and the census the stats
//! read.
//!
//! Each entry holds the caller's cell and the waker to wake when it is decided. A queued
//! cell is decided only under the lock, by whoever takes its entry out in the same
//! critical section (I9, `shared/handoff.rs`): so every cell in the queue is waiting,
//! and the waker taken out with a decision is the one to wake, after the lock is
//! released. No waker is dropped or woken under the lock: each method that takes
//! entries out hands their wakers to the caller.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Duration;

use super::{Decision, Priority, Waiter};
use crate::sync::Arc;

/// The deadline sweep armed on the pool's timer: when it fires (time since the pool's
/// epoch), and the timer entry to disarm (none under a model checker, where the models run
/// the sweep themselves).
pub(crate) struct Armed {
    pub at: Duration,
    pub key: Option<crate::rt::TimerKey>,
}

/// A queued caller: its cell, and the waker of the task waiting on it.
struct Entry {
    cell: Arc<Waiter>,
    waker: Waker,
}

#[derive(Default)]
pub(crate) struct WaitQueue {
    levels: [VecDeque<Entry>; 4],
    /// The armed deadline sweep, if any: at or before the earliest queued deadline.
    pub sweeper: Option<Armed>,
    /// Whether the nested-wait check is armed on the pool's timer (`shared/nested.rs`).
    pub nested_check: bool,
    /// The cells of callers waiting outside the queue (for their own create, decided by
    /// the create's task, or in their checkout step), so that `close` fails those callers
    /// at once too (`Shared::track_unqueued`); each is taken out when its create or step
    /// settles or its caller gives up (`Shared::untrack_unqueued`), and never dropped
    /// under the lock.
    pub unqueued: Vec<Arc<Waiter>>,
}

impl WaitQueue {
    pub(crate) fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.levels.iter().all(VecDeque::is_empty)
    }

    fn cells(&self) -> impl Iterator<Item = &Arc<Waiter>> + '_ {
        self.levels.iter().flatten().map(|e| &e.cell)
    }

    /// Queues `cell`, undecided, with the waker of the task that waits on it, at the back
    /// of its level: within a level the queue's order is arrival, which is the order of
    /// service (start stamps may come from different cores' clocks, so they do not decide
    /// between newcomers).
    pub(crate) fn push(&mut self, cell: Arc<Waiter>, waker: Waker) {
        debug_assert!(cell.is_waiting());
        self.levels[cell.priority as usize].push_back(Entry { cell, waker });
    }

    /// [`push`](Self::push) for a caller queueing again in the same acquisition (a
    /// checkout step rejected its object): it goes back among its level by the start of
    /// its wait, behind every caller that started before it.
    pub(crate) fn push_by_age(&mut self, cell: Arc<Waiter>, waker: Waker) {
        debug_assert!(cell.is_waiting());
        let q = &mut self.levels[cell.priority as usize];
        let at = q
            .iter()
            .rposition(|e| e.cell.since <= cell.since)
            .map_or(0, |i| i + 1);
        if at == q.len() {
            q.push_back(Entry { cell, waker });
        } else {
            q.insert(at, Entry { cell, waker });
        }
    }

    /// The entry of `w`, if queued.
    fn find(&mut self, w: &Waiter) -> Option<(&mut VecDeque<Entry>, usize)> {
        let q = &mut self.levels[w.priority as usize];
        let is = |e: &Entry| std::ptr::eq(Arc::as_ptr(&e.cell), w);
        // A cancelled cell is most often the newest (or the only) one of its level.
        let i = match q.back() {
            Some(e) if is(e) => q.len() - 1,
            _ => q.iter().position(is)?,
        };
        Some((q, i))
    }

    /// Decides queued cell `w` `d` and takes it out, returning its waker (to drop or wake
    /// after the lock); `None` if `w` is not queued (someone else decided it).
    pub(crate) fn decide_one(&mut self, w: &Waiter, d: Decision) -> Option<Waker> {
        let (q, i) = self.find(w)?;
        w.decide_queued(d);
        let e = if i + 1 == q.len() {
            q.pop_back()
        } else {
            q.remove(i)
        };
        e.map(|e| e.waker)
    }

    /// Makes `waker` the one woken when queued cell `w` is decided, unless the stored one
    /// wakes the same task or `w` is not queued; returns the waker not kept (the one
    /// replaced, or `waker`), to drop after the lock.
    pub(crate) fn rewake(&mut self, w: &Waiter, waker: Waker) -> Waker {
        match self.find(w) {
            Some((q, i)) if !q[i].waker.will_wake(&waker) => {
                std::mem::replace(&mut q[i].waker, waker)
            }
            _ => waker,
        }
    }

    /// Decides every queued cell whose deadline is at or before `now` `TimedOut` and takes
    /// it out; returns their wakers and the earliest deadline left (`Duration::MAX`, "no
    /// deadline", never counts).
    pub(crate) fn expire(&mut self, now: Duration) -> (Vec<Waker>, Option<Duration>) {
        let mut next: Option<Duration> = None;
        let expired = self.take_where(Decision::TimedOut, |w| {
            if w.deadline <= now {
                return true;
            }
            if w.deadline != Duration::MAX {
                next = Some(next.map_or(w.deadline, |n| n.min(w.deadline)));
            }
            false
        });
        (expired, next)
    }

    /// Decides `d` every queued cell `pick` chooses and takes it out; returns their wakers.
    fn take_where(&mut self, d: Decision, mut pick: impl FnMut(&Waiter) -> bool) -> Vec<Waker> {
        let mut taken = Vec::new();
        for q in &mut self.levels {
            let mut i = 0;
            while i < q.len() {
                if pick(&q[i].cell) {
                    let e = q.remove(i).expect("in bounds");
                    e.cell.decide_queued(d);
                    taken.push(e.waker);
                } else {
                    i += 1;
                }
            }
        }
        taken
    }

    /// Decides every queued cell `d` and empties the queue; returns their wakers.
    pub(crate) fn decide_all(&mut self, d: Decision) -> Vec<Waker> {
        self.take_where(d, |_| true)
    }

    /// The holder ids of the waiting cells found holding a checkout (deadlock detection).
    pub(crate) fn waiting_holders(&self) -> impl Iterator<Item = u64> + '_ {
        self.cells().filter(|w| w.is_nested()).map(|w| w.holder())
    }

    /// The waiting cells the nested-wait check has not looked at yet.
    pub(crate) fn unchecked(&self) -> impl Iterator<Item = &Arc<Waiter>> + '_ {
        self.cells().filter(|w| w.is_unchecked())
    }

    /// Decides `d` every waiting cell that holds a checkout, and takes it out; returns
    /// their wakers, to wake once the lock is released.
    pub(crate) fn decide_holders(&mut self, d: Decision) -> Vec<Waker> {
        self.take_where(d, Waiter::is_nested)
    }

    /// How many waiting cells would be served before `me` if it were decided `now`
    /// (effective priority, then age, as `pop_best` serves them); `None` unless `me` is
    /// queued.
    pub(crate) fn position(
        &self,
        me: &Arc<Waiter>,
        now: Duration,
        aging: Duration,
    ) -> Option<usize> {
        // `pop_best` serves each level in its own (arrival) order and merges the levels'
        // fronts by this key (older waiters age first): ahead of us are the cells before
        // us in our level, and those of other levels whose key is lower.
        let key = |w: &Waiter, lvl: usize| {
            let eff = if now.saturating_sub(w.since) >= aging {
                Priority::Critical
            } else {
                w.priority
            };
            (std::cmp::Reverse(eff), w.since, lvl)
        };
        let lvl = me.priority as usize;
        let idx = self.levels[lvl]
            .iter()
            .position(|e| Arc::ptr_eq(&e.cell, me))?;
        let mine = key(me, lvl);
        let ahead = self
            .levels
            .iter()
            .enumerate()
            .flat_map(|(l, q)| q.iter().enumerate().map(move |(i, e)| (l, i, &e.cell)))
            .filter(|(l, i, w)| {
                if *l == lvl {
                    *i < idx
                } else {
                    key(w, *l) < mine
                }
            })
            .count();
        Some(ahead)
    }

    /// Waiting cells per priority level (as requested, before aging), and when the oldest
    /// of them started waiting.
    pub(crate) fn census(&self) -> ([usize; 4], Option<Duration>) {
        let by = std::array::from_fn(|lvl| self.levels[lvl].len());
        let oldest = self.cells().map(|w| w.since).min();
        (by, oldest)
    }

    /// Takes out the caller to serve next and decides it `d`; returns its waker, to wake
    /// once the lock is released.
    ///
    /// Order: effective priority, then age. A waiter that has waited at least `aging`
    /// counts as `Critical`; among equals the one waiting longest wins. Each level is FIFO,
    /// so its front is its oldest waiter and only fronts compete. The clock (`now`) is read
    /// only when two or more levels have waiters: within one level aging cannot change the
    /// order.
    pub(crate) fn serve_best(
        &mut self,
        d: Decision,
        now: impl FnOnce() -> Duration,
        aging: Duration,
    ) -> Option<Waker> {
        let e = self.pop_best(now, aging)?;
        e.cell.decide_queued(d);
        Some(e.waker)
    }

    fn pop_best(&mut self, now: impl FnOnce() -> Duration, aging: Duration) -> Option<Entry> {
        let (mut fronts, mut last) = (0, 0);
        for (lvl, q) in self.levels.iter().enumerate() {
            if !q.is_empty() {
                fronts += 1;
                last = lvl;
            }
        }
        let lvl = match fronts {
            0 => return None,
            1 => last,
            _ => {
                let t = now();
                let mut best: Option<(usize, Priority, Duration)> = None;
                for (lvl, q) in self.levels.iter().enumerate() {
                    let Some(Entry { cell: w, .. }) = q.front() else {
                        continue;
                    };
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
            }
        };
        self.levels[lvl].pop_front()
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    fn w(p: Priority, ms: u64) -> Arc<Waiter> {
        Waiter::new(p, Duration::from_millis(ms), Duration::MAX, true)
    }

    fn queue(cells: &[&Arc<Waiter>]) -> WaitQueue {
        let mut q = WaitQueue::default();
        for c in cells {
            q.push(Arc::clone(c), Waker::noop().clone());
        }
        q
    }

    /// Serves the queue until it is empty, the k-th caller served decided `Handed(k)`;
    /// returns, in service order, the index of each served cell in `cells`.
    fn serve_all(
        q: &mut WaitQueue,
        now: Duration,
        aging: Duration,
        cells: &[&Arc<Waiter>],
    ) -> Vec<usize> {
        let mut n = 0;
        while q.serve_best(Decision::Handed(n), || now, aging).is_some() {
            n += 1;
        }
        (0..n)
            .map(|k| {
                cells
                    .iter()
                    .position(|c| c.decision() == Some(Decision::Handed(k)))
                    .expect("every served cell was decided")
            })
            .collect()
    }

    /// A task that counts its wake-ups.
    #[derive(Default)]
    struct Task(AtomicUsize);
    impl Wake for Task {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn priority_then_fifo() {
        let (a, b, c, d) = (
            w(Priority::Low, 0),
            w(Priority::High, 1),
            w(Priority::High, 2),
            w(Priority::Normal, 3),
        );
        let cells = [&a, &b, &c, &d];
        let mut q = queue(&cells);
        let order = serve_all(
            &mut q,
            Duration::from_millis(10),
            Duration::from_secs(1),
            &cells,
        );
        assert_eq!(order, [1, 2, 3, 0]);
        assert!(q.is_empty());
    }

    #[test]
    fn aged_low_waiter_beats_newer_critical() {
        let low = w(Priority::Low, 0);
        let crit = w(Priority::Critical, 150);
        let mut q = queue(&[&crit, &low]);
        let aging = Duration::from_millis(200);
        // At 160 ms the low waiter is younger than the threshold: critical first.
        q.serve_best(Decision::Permit, || Duration::from_millis(160), aging);
        assert_eq!(crit.decision(), Some(Decision::Permit));
        let crit2 = w(Priority::Critical, 150);
        q.push(crit2.clone(), Waker::noop().clone());
        // At 250 ms the low waiter is 250 ms old: it is served as Critical, and it is older.
        q.serve_best(Decision::Permit, || Duration::from_millis(250), aging);
        assert_eq!(low.decision(), Some(Decision::Permit));
        assert_eq!(crit2.decision(), None);
    }

    #[test]
    fn expire_times_out_only_past_deadlines() {
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
        let mut q = queue(&[&a, &b]);
        let (gone, next) = q.expire(Duration::from_millis(20));
        assert_eq!(gone.len(), 1);
        assert_eq!(a.decision(), Some(Decision::TimedOut));
        assert_eq!(b.decision(), None);
        assert_eq!(next, Some(Duration::from_millis(30)));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn decide_one_takes_out_exactly_the_cell_given() {
        let cells: Vec<_> = (0..4).map(|ms| w(Priority::Normal, ms)).collect();
        let refs: Vec<_> = cells.iter().collect();
        let mut q = queue(&refs);
        let other = w(Priority::Normal, 9);
        let cancel = |q: &mut WaitQueue, c| q.decide_one(c, Decision::Cancelled).is_some();
        assert!(!cancel(&mut q, &other), "a cell that was never queued");
        assert_eq!(other.decision(), None);
        assert!(cancel(&mut q, &cells[3]), "the newest");
        assert!(cancel(&mut q, &cells[1]), "one in the middle");
        assert!(!cancel(&mut q, &cells[1]), "taken out twice");
        assert_eq!(cells[1].decision(), Some(Decision::Cancelled));
        assert_eq!(q.len(), 2);
        let order = serve_all(&mut q, Duration::ZERO, Duration::from_secs(1), &refs);
        assert_eq!(order, [0, 2]);
    }

    #[test]
    fn decide_all_decides_every_cell_and_empties_the_queue() {
        let (a, b) = (w(Priority::Low, 0), w(Priority::Critical, 1));
        let mut q = queue(&[&a, &b]);
        assert_eq!(q.decide_all(Decision::PoolClosed).len(), 2);
        assert!(q.is_empty());
        assert_eq!(a.decision(), Some(Decision::PoolClosed));
        assert_eq!(b.decision(), Some(Decision::PoolClosed));
    }

    /// The waker served with a decision is the one the caller last registered: another
    /// task's replaces the stored one, which is handed back (to be dropped after the
    /// lock), never dropped in the queue. Which task a waker wakes is told by waking it:
    /// `will_wake` may say two wakers differ even when they wake the same task.
    #[test]
    fn the_served_waker_is_the_last_registered() {
        let (first, second) = (
            std::sync::Arc::new(Task::default()),
            std::sync::Arc::new(Task::default()),
        );
        let woken = || {
            (
                first.0.load(Ordering::SeqCst),
                second.0.load(Ordering::SeqCst),
            )
        };
        let cell = w(Priority::Normal, 0);
        let mut q = WaitQueue::default();
        q.push(cell.clone(), Waker::from(first.clone()));
        // The same task's waker: whichever of the two is handed back wakes that task.
        q.rewake(&cell, Waker::from(first.clone())).wake();
        assert_eq!(woken(), (1, 0));
        // Another task's replaces it: the first task's is handed back.
        q.rewake(&cell, Waker::from(second.clone())).wake();
        assert_eq!(woken(), (2, 0));
        // A cell that is not queued keeps nothing.
        let stray = w(Priority::Normal, 1);
        q.rewake(&stray, Waker::from(first.clone())).wake();
        assert_eq!(woken(), (3, 0));
        q.serve_best(Decision::Permit, || Duration::ZERO, Duration::from_secs(1))
            .expect("queued")
            .wake();
        assert_eq!(woken(), (3, 1));
    }

    /// Within a level the queue's order is the service order, whatever the start stamps
    /// say (two stamps may come from different clocks), and positions follow it.
    #[test]
    fn positions_within_a_level_follow_arrival() {
        let (first, second) = (w(Priority::Normal, 10), w(Priority::Normal, 5));
        let high = w(Priority::High, 20);
        let cells = [&first, &second, &high];
        let mut q = queue(&cells);
        let (now, aging) = (Duration::from_millis(30), Duration::from_secs(1));
        let pos = |q: &WaitQueue, x: &Arc<Waiter>| q.position(x, now, aging);
        assert_eq!(
            [pos(&q, &high), pos(&q, &first), pos(&q, &second)],
            [Some(0), Some(1), Some(2)]
        );
        assert_eq!(serve_all(&mut q, now, aging, &cells), [2, 0, 1]);
    }
}
