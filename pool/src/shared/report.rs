//! What the pool reports of itself: its stats, a queued caller's position, and who holds
//! a slot. Read-only scans; nothing here changes the pool's state.

use std::panic::Location;
use std::time::Duration;

use super::{idle, Shared};
use crate::stats::PoolStats;
use crate::sync::{Arc, Ordering};
use crate::waiters::Waiter;

impl<T: Send + 'static> Shared<T> {
    pub(crate) fn stats(&self) -> PoolStats {
        let (idle, in_use, acquired) = self.scan();
        // Relaxed: a maximum over reports, nothing is published through it.
        let acquired = acquired.max(
            self.counters
                .acquired_seen
                .fetch_max(acquired, Ordering::Relaxed),
        );
        let (waiting_by_priority, oldest) = self.queue.lock().census();
        let oldest_wait = oldest.map_or(Duration::ZERO, |since| self.now().saturating_sub(since));
        let c = &self.counters;
        // `destroyed` before `created`, Acquire (see `take_out`): every object counted
        // destroyed is then counted created, however long this thread is descheduled
        // between the two reads.
        let destroyed = c.destroyed.load(Ordering::Acquire);
        let created = c.created.load(Ordering::Relaxed);
        // Checkouts that never waited are not recorded (no shared write on the fast
        // path): they are the difference between all checkouts and the recorded waits.
        let zeros = acquired.saturating_sub(self.wait_hist.count());
        let [p50, p95, p99] = self.wait_hist.percentiles(zeros, [0.5, 0.95, 0.99]);
        let [u50, u95, u99] = self.usage_hist.percentiles(0, [0.5, 0.95, 0.99]);
        let [c50, c95, c99] = self.create_hist.percentiles(0, [0.5, 0.95, 0.99]);
        PoolStats {
            max_size: self.max_size(),
            size: self.size(),
            idle,
            in_use,
            pending_acquisitions: self.waiting(),
            created,
            destroyed,
            acquired,
            timeouts: c.timeouts.load(Ordering::Relaxed),
            leaks_detected: c.leaks_detected.load(Ordering::Relaxed),
            wait_p50: p50,
            wait_p95: p95,
            wait_p99: p99,
            usage_p50: u50,
            usage_p95: u95,
            usage_p99: u99,
            create_p50: c50,
            create_p95: c95,
            create_p99: c99,
            waiting_by_priority,
            oldest_wait,
        }
    }

    /// How many callers would be served before queued cell `w` right now (`None` unless it
    /// is queued and waiting). Takes the queue lock.
    pub(crate) fn queue_position(&self, w: &Arc<Waiter>) -> Option<usize> {
        if !w.queued {
            return None;
        }
        let q = self.queue.lock();
        q.position(w, self.now(), self.config.starvation_threshold)
    }

    /// Counts idle and in-use slots, and the checkouts of every object, live or gone.
    /// The checkouts may fall short for a moment (an object destroyed during the scan),
    /// never count one twice: the retired total is read first, with Acquire, pairing
    /// with `take_out`'s Release add, which follows its zeroing of the slot's count.
    pub(crate) fn scan(&self) -> (usize, usize, u64) {
        let retired = self.counters.retired_uses.load(Ordering::Acquire);
        let (mut idle, mut busy, mut uses) = (0, 0, retired);
        for i in 0..self.slot_count() {
            let s = self.slots.get(i);
            let (i, b) = idle::count(&s.state);
            idle += i;
            busy += b;
            uses += s.uses.load(Ordering::Relaxed);
        }
        (idle, busy, uses)
    }

    /// Create attempts and failures of the last minute (the health's error rate).
    pub(crate) fn create_outcomes(&self) -> (u64, u64) {
        self.counters.recent_creates.recent(self.coarse_ms())
    }

    /// When the checkout holding slot `i` began and where its caller took it, if a caller
    /// holds it.
    pub(crate) fn holder(&self, i: usize) -> Option<(u64, &'static Location<'static>)> {
        let r = self.slots.get(i).checkout_record()?;
        r.location.map(|l| (r.since, l))
    }
}
