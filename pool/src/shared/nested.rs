//! Deadlock detection's side of the shared state (`crate::deadlock` tells the design): who
//! holds which checkout, nested waits, and the certain deadlock. Nothing here runs on the
//! fast path (a checkout only stores its holder id: `fast.rs`, `checkout`) nor while a
//! caller registers (its cell only carries its holder id and where it waits): the check
//! runs on the pool's timer, `NESTED_AFTER` after a caller queued, once for every caller
//! still waiting by then.

/// How long a caller waits before the nested-wait check looks at it. A wait served sooner
/// costs the check nothing; a deadlock is found (and, in `Error` mode, failed) this long
/// after the last caller queued.
pub(crate) const NESTED_AFTER: std::time::Duration = std::time::Duration::from_millis(2);

use std::collections::{HashMap, HashSet};
use std::panic::Location;

use super::{Shared, SharedRef};
use crate::shared::slots::{BUSY, EMPTY, STATE_MASK};
use crate::stats::PoolEvent;
use crate::sync::Ordering;
use crate::waiters::{Decision, WaitQueue};
use crate::DeadlockDetection;

impl<T: Send + 'static> Shared<T> {
    /// Whether checkouts record their holder.
    #[inline]
    pub(crate) fn detects_deadlocks(&self) -> bool {
        self.detect_deadlocks
    }

    /// Where each holder in `want` took a checkout of this pool it still holds (the
    /// first found per holder), added to `found`: one read-only pass over the slots that
    /// ever held an object. Relaxed loads: the answer is a report, and the
    /// certain-deadlock check re-reads under the queue lock.
    pub(crate) fn held_locations(
        &self,
        want: &HashSet<u64>,
        found: &mut HashMap<u64, &'static Location<'static>>,
    ) {
        for i in 0..self.slots.used() {
            let s = self.slots.get(i);
            if s.state.load(Ordering::Relaxed) & STATE_MASK != BUSY || s.claimed_since().is_none() {
                continue;
            }
            let holder = s.holder.load(Ordering::Relaxed);
            if !want.contains(&holder) || found.contains_key(&holder) {
                continue;
            }
            // SAFETY: a slot's location is null or a `&'static Location` stored by
            // `checkout`.
            if let Some(at) = unsafe { s.location.load(Ordering::Relaxed).as_ref() } {
                found.insert(holder, at);
            }
        }
    }

    /// The calling task's (or thread's) holder id while detection is on, else 0: what a
    /// queued cell carries for the nested-wait check. One thread-local read.
    pub(crate) fn holder_if_detecting(&self) -> u64 {
        if self.detects_deadlocks() {
            crate::rt::caller()
        } else {
            0
        }
    }

    /// Arms the nested-wait check on the pool's timer, `NESTED_AFTER` from now, unless it
    /// is armed already. Lock held (`q`). The entry holds a [`SharedRef`], which keeps the
    /// memory alive (at most `NESTED_AFTER`), never the pool open.
    pub(super) fn arm_nested_check(&self, q: &mut WaitQueue, at: std::time::Duration) {
        if q.nested_check {
            return;
        }
        let r = SharedRef::to(self);
        // Not armed under Miri (no timer thread there): the next registration tries again.
        q.nested_check = self
            .env
            .arm(
                at,
                Box::new(move || {
                    r.get().check_nested();
                }),
            )
            .is_some();
    }

    /// The nested-wait check (run by the pool's timer, `NESTED_AFTER` after a caller
    /// queued): finds which callers queued for at least `NESTED_AFTER` hold a checkout of
    /// this pool (of any partition) — one pass over the slots for all of them — reports
    /// each nested wait, and in `Error` mode fails the certain deadlock. Callers served
    /// sooner are never looked at, so a wait costs nothing here unless it lasts.
    pub(crate) fn check_nested(&self) {
        let now = self.now();
        let mut q = self.queue.lock();
        q.nested_check = false;
        let mut due = Vec::new();
        let mut next: Option<std::time::Duration> = None;
        for w in q.unchecked() {
            let at = w.since.saturating_add(NESTED_AFTER);
            if at <= now {
                due.push((w.clone(), w.holder()));
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        if let Some(at) = next {
            self.arm_nested_check(&mut q, at);
        }
        drop(q);
        if due.is_empty() {
            return;
        }
        let want: HashSet<u64> = due.iter().map(|(_, h)| *h).collect();
        let mut held = HashMap::new();
        match &self.gate {
            Some((gate, _)) => gate.held_locations(&want, &mut held),
            None => self.held_locations(&want, &mut held),
        }
        let mut q = self.queue.lock();
        let mut reports = Vec::new();
        for (w, h) in &due {
            if w.holder() != *h {
                // Moved to another task meanwhile: checked again as that one.
                continue;
            }
            let at = held.get(h).copied();
            w.set_nested(at.is_some());
            if let (Some(held_at), Some(waiting_at), true) = (at, w.waiting_at, w.is_waiting()) {
                reports.push((held_at, waiting_at));
            }
        }
        let deadlocked = if reports.is_empty() {
            Vec::new()
        } else {
            self.fail_deadlocked(&mut q)
        };
        drop(q);
        // Reported before the failed callers wake: one that sees `WouldDeadlock` finds the
        // event already sent.
        for (held_at, waiting_at) in reports {
            self.report_nested(held_at, waiting_at);
        }
        crate::waiters::wake_all(deadlocked);
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
        crate::rt::trace::quietly(|| {
            tracing::warn!(
                pool = %self.config.name,
                held_at = %held_at,
                waiting_at = %waiting_at,
                "riptide_pool: a caller waits for an object while it holds one from the same pool \
                 (a nested acquisition); once every holder does this, none is ever returned"
            )
        });
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
    /// its own cap waits on the global one, which other partitions can free). A checkout
    /// whose capacity `reclaim_leaked` gave back is not one of the units: it counts
    /// neither in `size` nor here.
    pub(super) fn fail_deadlocked(&self, q: &mut WaitQueue) -> Vec<std::task::Waker> {
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
        for i in 0..self.slots.used() {
            let s = self.slots.get(i);
            let st = s.state.load(Ordering::Relaxed);
            match st & STATE_MASK {
                EMPTY => {}
                // The lock is held, so the reclaim record is final (`is_reclaimed`).
                BUSY if self.is_reclaimed(i, st) => {}
                BUSY if s.claimed_since().is_some()
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

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use std::panic::Location;
    use std::time::Duration;

    use super::NESTED_AFTER;
    use crate::shared::{Reg, WaitAsk};
    use crate::{Pool, PoolEvent, Poolable, Priority};

    struct Obj;
    impl Poolable for Obj {}

    fn queue(p: &Pool<Obj>, holder: u64) -> std::sync::Arc<crate::waiters::Waiter> {
        let s = p.shared();
        let ask = WaitAsk {
            priority: Priority::Normal,
            since: s.now(),
            again: false,
            deadline: Duration::MAX,
            location: Location::caller(),
        };
        match s.register(ask, holder, std::task::Waker::noop(), &mut None) {
            Ok(Reg::Queued(w)) => w,
            _ => panic!("expected to queue"),
        }
    }

    /// Registering only records who waits; the check, once the wait has lasted
    /// `NESTED_AFTER`, finds the holder among the busy slots, leaves the others alone, and
    /// reports the nested wait once.
    #[test]
    fn the_check_runs_after_registration_and_finds_only_holders() {
        let p = Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
            .max_size(1)
            .build()
            .unwrap();
        let mut rx = p.events();
        let held = p.get_blocking().unwrap();
        let s = p.shared();
        let me = crate::rt::caller();
        let nested = queue(&p, me);
        let other = queue(&p, me ^ 0x5555);
        // The pool's timer runs the check once the waits are `NESTED_AFTER` old; running
        // it again here changes nothing.
        std::thread::sleep(NESTED_AFTER * 3);
        s.check_nested();
        assert!(nested.is_nested());
        assert!(!other.is_unchecked() && !other.is_nested());
        let reported = std::iter::from_fn(|| rx.try_recv().ok())
            .filter(|e| matches!(e, PoolEvent::NestedAcquire { .. }))
            .count();
        assert_eq!(reported, 1);
        s.cancel(&nested);
        s.cancel(&other);
        drop(held);
        assert_eq!(p.stats().pending_acquisitions, 0);
    }
}
