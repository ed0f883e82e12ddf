//! Deadlock detection's side of the shared state (`crate::deadlock` tells the design): who
//! holds which checkout, nested waits, and the certain deadlock. Nothing here runs on the
//! fast path: a checkout only stores its holder id (`fast.rs`, `checkout`).

use std::collections::HashSet;
use std::panic::Location;

use super::Shared;
use crate::slots::{BUSY, EMPTY, STATE_MASK};
use crate::stats::PoolEvent;
use crate::sync::{Arc, Ordering};
use crate::waiters::{Decision, WaitQueue, Waiter};
use crate::DeadlockDetection;

impl<T: Send + 'static> Shared<T> {
    /// Whether checkouts record their holder.
    #[inline]
    pub(crate) fn detects_deadlocks(&self) -> bool {
        self.detect_deadlocks
    }

    /// Where `holder` took a checkout of this pool that it still holds, if it holds one: a
    /// read-only scan of the slots that ever held an object. Relaxed loads: the answer is a
    /// report, and the certain-deadlock check re-reads under the queue lock.
    pub(crate) fn held_by(&self, holder: u64) -> Option<&'static Location<'static>> {
        (0..self.slots.used()).find_map(|i| {
            let s = self.slots.get(i);
            if s.state.load(Ordering::Relaxed) & STATE_MASK != BUSY
                || s.holder.load(Ordering::Relaxed) != holder
                || s.held_since().is_none()
            {
                return None;
            }
            // SAFETY: a slot's location is null or a `&'static Location` stored by
            // `checkout`.
            unsafe { s.location.load(Ordering::Relaxed).as_ref() }
        })
    }

    /// The calling task's (or thread's) checkout of this pool — of any partition, in a
    /// partitioned pool — if it holds one and detection is on: its holder id and where
    /// it took the checkout.
    pub(crate) fn nested_hold(&self) -> Option<(u64, &'static Location<'static>)> {
        if !self.detects_deadlocks() {
            return None;
        }
        let me = crate::deadlock::caller();
        let at = match &self.gate {
            Some((gate, _)) => gate.held_by(me),
            None => self.held_by(me),
        }?;
        Some((me, at))
    }

    /// Reports a nested wait: a `NestedAcquire` event and a `tracing::warn!`, once per pair
    /// of locations for the pool's lifetime.
    pub(crate) fn report_nested(
        &self,
        held_at: &'static Location<'static>,
        waiting_at: &'static Location<'static>,
    ) {
        let pair = (
            std::ptr::from_ref(held_at) as usize,
            std::ptr::from_ref(waiting_at) as usize,
        );
        if !self
            .nested_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(pair)
        {
            return;
        }
        tracing::warn!(
            pool = %self.config.name,
            held_at = %held_at,
            waiting_at = %waiting_at,
            "riptide_pool: a caller waits for an object while it holds one from the same pool \
             (a nested acquisition); once every holder does this, none is ever returned"
        );
        self.emit(|| PoolEvent::NestedAcquire {
            held_at,
            waiting_at,
        });
    }

    /// In `Error` mode, with the lock held after a holder queued: if every unit of this
    /// pool's capacity is an object checked out by a caller now queued here, nobody can
    /// ever return one, so every queued holder is decided `WouldDeadlock` and removed.
    /// Returns them, to wake once the lock is released.
    ///
    /// Anything in progress rules it out: an idle object, a create in flight, a slot in
    /// someone's hands outside a guard (being handed over, checked or destroyed), a
    /// checkout held by a caller that is not queued, or room to create (a partition below
    /// its own cap waits on the global one, which other partitions can free).
    pub(super) fn fail_deadlocked(&self, q: &mut WaitQueue) -> Vec<Arc<Waiter>> {
        if self.config.deadlock != DeadlockDetection::Error {
            return Vec::new();
        }
        let size = self.size.load(Ordering::Relaxed);
        if size < self.max_size() {
            return Vec::new();
        }
        let waiting: HashSet<u64> = q.waiting_holders().collect();
        if waiting.is_empty() {
            return Vec::new();
        }
        let mut held = 0;
        for i in 0..self.slots.cap() {
            let s = self.slots.get(i);
            match s.state.load(Ordering::Relaxed) & STATE_MASK {
                EMPTY => {}
                BUSY if s.held_since().is_some()
                    && waiting.contains(&s.holder.load(Ordering::Relaxed)) =>
                {
                    held += 1;
                }
                _ => return Vec::new(),
            }
        }
        if held < size {
            return Vec::new();
        }
        let failed = q.decide_holders(Decision::WouldDeadlock);
        self.publish(q);
        failed
    }
}
