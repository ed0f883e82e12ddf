//! The priority wait queue: four FIFO deques of waiter cells (one per priority) behind
//! the pool's short `Mutex`, with aging, deadlines, positions and the census the stats
//! read.

use std::collections::VecDeque;
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

#[derive(Default)]
pub(crate) struct WaitQueue {
    levels: [VecDeque<Arc<Waiter>>; 4],
    /// The armed deadline sweep, if any: at or before the earliest queued deadline.
    pub sweeper: Option<Armed>,
    /// Whether the nested-wait check is armed on the pool's timer (`shared/nested.rs`).
    pub nested_check: bool,
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
        // A cancelled cell is most often the newest (or the only) one of its level.
        let removed = if q.back().is_some_and(|x| Arc::ptr_eq(x, w)) {
            q.pop_back()
        } else {
            q.iter()
                .position(|x| Arc::ptr_eq(x, w))
                .and_then(|i| q.remove(i))
        };
        removed.is_some()
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
                if !w.is_waiting() {
                    return false;
                }
                if w.deadline <= now {
                    if w.decide(Decision::TimedOut) {
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

    /// The holder ids of the waiting cells found holding a checkout (deadlock detection).
    pub(crate) fn waiting_holders(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels
            .iter()
            .flatten()
            .filter(|w| w.is_nested() && w.is_waiting())
            .map(|w| w.holder)
    }

    /// The waiting cells the nested-wait check has not looked at yet.
    pub(crate) fn unchecked(&self) -> impl Iterator<Item = &Arc<Waiter>> + '_ {
        self.levels
            .iter()
            .flatten()
            .filter(|w| w.is_unchecked() && w.is_waiting())
    }

    /// Decides `d` every waiting cell that holds a checkout, and removes it; returns
    /// those decided, to wake once the lock is released.
    pub(crate) fn decide_holders(&mut self, d: Decision) -> Vec<Arc<Waiter>> {
        let mut decided = Vec::new();
        for q in &mut self.levels {
            q.retain(|w| {
                if w.is_nested() && w.decide(d) {
                    decided.push(w.clone());
                    return false;
                }
                true
            });
        }
        decided
    }

    /// How many waiting cells would be served before `me` if it were decided `now`
    /// (effective priority, then age, as `pop_best` serves them); `None` unless `me` is
    /// queued and waiting.
    pub(crate) fn position(
        &self,
        me: &Arc<Waiter>,
        now: Duration,
        aging: Duration,
    ) -> Option<usize> {
        if !me.is_waiting() {
            return None;
        }
        // `pop_best` serves each level in its own (arrival) order and merges the levels'
        // fronts by this key (older waiters age first): ahead of us are the waiting cells
        // before us in our level, and those of other levels whose key is lower.
        let key = |w: &Waiter, lvl: usize| {
            let eff = if now.saturating_sub(w.since) >= aging {
                Priority::Critical
            } else {
                w.priority
            };
            (std::cmp::Reverse(eff), w.since, lvl)
        };
        let (lvl, idx) = self.levels.iter().enumerate().find_map(|(lvl, q)| {
            q.iter()
                .position(|w| Arc::ptr_eq(w, me))
                .map(|idx| (lvl, idx))
        })?;
        let mine = key(me, lvl);
        let ahead = self
            .levels
            .iter()
            .enumerate()
            .flat_map(|(l, q)| q.iter().enumerate().map(move |(i, w)| (l, i, w)))
            .filter(|(l, i, w)| {
                w.is_waiting()
                    && if *l == lvl {
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
        let mut by = [0; 4];
        let mut oldest: Option<Duration> = None;
        for (lvl, q) in self.levels.iter().enumerate() {
            for w in q.iter().filter(|w| w.is_waiting()) {
                by[lvl] += 1;
                oldest = Some(oldest.map_or(w.since, |o| o.min(w.since)));
            }
        }
        (by, oldest)
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
            // One pass: drop decided fronts, count the levels left with a front.
            let (mut fronts, mut last) = (0, 0);
            for (lvl, q) in self.levels.iter_mut().enumerate() {
                while q.front().is_some_and(|w| !w.is_waiting()) {
                    q.pop_front();
                }
                if !q.is_empty() {
                    fronts += 1;
                    last = lvl;
                }
            }
            let lvl = match fronts {
                0 => return None,
                1 => last,
                _ => {
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
                }
            };
            let w = self.levels[lvl].pop_front().expect("front exists");
            if w.is_waiting() {
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
        assert_eq!(a.decision(), Some(Decision::TimedOut));
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
        assert!(a.decide(Decision::Cancelled));
        let got = q
            .pop_best(|| Duration::ZERO, Duration::from_secs(1))
            .unwrap();
        assert!(Arc::ptr_eq(&got, &b));
        assert!(q.is_empty());
    }

    #[test]
    fn remove_takes_out_exactly_the_cell_given() {
        let mut q = WaitQueue::default();
        let cells: Vec<_> = (0..4).map(|ms| w(Priority::Normal, ms)).collect();
        for c in &cells {
            q.push(c.clone());
        }
        let other = w(Priority::Normal, 9);
        assert!(!q.remove(&other), "a cell that was never queued");
        assert!(q.remove(&cells[3]), "the newest");
        assert!(q.remove(&cells[1]), "one in the middle");
        assert!(!q.remove(&cells[1]), "removed twice");
        assert_eq!(q.len(), 2);
        let (now, aging) = (Duration::ZERO, Duration::from_secs(1));
        let rest: Vec<_> = std::iter::from_fn(|| q.pop_best(|| now, aging)).collect();
        assert!(Arc::ptr_eq(&rest[0], &cells[0]) && Arc::ptr_eq(&rest[1], &cells[2]));
    }

    /// Within a level the queue's order is the service order, whatever the start stamps
    /// say (two stamps may come from different clocks), and positions follow it.
    #[test]
    fn positions_within_a_level_follow_arrival() {
        let mut q = WaitQueue::default();
        let (first, second) = (w(Priority::Normal, 10), w(Priority::Normal, 5));
        let high = w(Priority::High, 20);
        q.push(first.clone());
        q.push(second.clone());
        q.push(high.clone());
        let (now, aging) = (Duration::from_millis(30), Duration::from_secs(1));
        let pos = |x: &Arc<Waiter>| q.position(x, now, aging);
        assert_eq!(
            [pos(&high), pos(&first), pos(&second)],
            [Some(0), Some(1), Some(2)]
        );
        let served: Vec<_> = std::iter::from_fn(|| q.pop_best(|| now, aging)).collect();
        assert!(Arc::ptr_eq(&served[1], &first) && Arc::ptr_eq(&served[2], &second));
    }
}
