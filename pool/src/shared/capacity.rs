//! Capacity (I2): reserving a unit below `max_size` (and, in a partition, one of the global
//! gate), giving it back to the best waiter or the pool, the gate's hooks into a partition
//! (eviction, yielding, offering a freed unit), and retiring an unused partition.

use crate::shared::slots::{Slot, BUSY, IDLE, RECLAIMED, STATE_MASK};
use crate::sync::{fence, MutexGuard, Ordering};
use crate::waiters::{Decision, WaitQueue};

use super::{Shared, RETIRED};

/// The global capacity shared by the partitions of a `PartitionedPool` (`partition/`).
/// Lock rule: no method is called while the caller holds a partition's queue lock, except
/// `try_acquire_free`, which takes no lock and never evicts.
pub(crate) trait Gate: Send + Sync {
    /// One unit for partition `from`, evicting the oldest idle object of another
    /// partition when the global cap is reached.
    fn acquire(&self, from: usize) -> bool;
    /// One unit if one is free right now (no eviction, no locks).
    fn try_acquire_free(&self) -> bool;
    /// Gives a unit back and offers it to a partition waiting on the global cap.
    fn release(&self, from: usize);
    /// Whether a partition other than `from` has callers waiting only for global capacity.
    fn others_blocked(&self, from: usize) -> bool;
    /// Partition `from` queued a caller for lack of global capacity: make the others'
    /// idle objects go, and mark their checked-out ones so they go when returned.
    fn blocked(&self, from: usize);
    /// `n` objects are being evicted for the gate, each dropped aside; their units come
    /// back as their drops end.
    fn evictions_begin(&self, n: usize);
    /// One of those evictions is over and its unit was given back.
    fn eviction_done(&self);
    /// Where each holder in `want` took a checkout it still holds, in any partition
    /// (deadlock detection), added to `found`.
    fn held_locations(
        &self,
        want: &std::collections::HashSet<u64>,
        found: &mut std::collections::HashMap<u64, &'static std::panic::Location<'static>>,
    );
}

impl<T: Send + 'static> Shared<T> {
    /// Records `cell`, the cell of a caller that waits outside the queue (for its own
    /// create, or in its checkout step), so that `close` fails that caller at once; `false`
    /// if the pool is closed (the caller then starts no create or step). [`untrack_unqueued`]
    /// takes it out when the create or step settles or the caller gives up.
    ///
    /// [`untrack_unqueued`]: Self::untrack_unqueued
    pub(crate) fn track_unqueued(&self, cell: &crate::sync::Arc<crate::waiters::Waiter>) -> bool {
        let mut q = self.queue.lock();
        if self.is_closed() {
            return false;
        }
        q.unqueued.push(cell.clone());
        true
    }

    /// Takes `cell` out of the tracked cells, if it is there. Its reference is dropped
    /// after the lock (never the last one anyway: the caller and the create's task or the
    /// step hold theirs), so no waker or error it holds is dropped under the lock.
    pub(crate) fn untrack_unqueued(&self, cell: &crate::waiters::Waiter) {
        let mut q = self.queue.lock();
        let pos = q.unqueued.iter().position(|c| std::ptr::eq(&**c, cell));
        let taken = pos.map(|i| q.unqueued.swap_remove(i));
        drop(q);
        drop(taken);
    }

    /// Reserves capacity for one object by CAS below `max_size`; never exceeds it (I2). In
    /// a partition, also one unit of the global cap if one is free: for a background
    /// top-up (`min_idle`) or a warm-up, which never evict another partition's idle
    /// object (partitions whose `min_idle` add up past the global cap would take objects
    /// from each other forever). A refusal tells the gate: while the reservation held the
    /// local cap, a caller may have queued without room of its own (G1). Call it holding
    /// no lock.
    pub(crate) fn try_reserve_free(&self) -> bool {
        if self.reserve(false) {
            return true;
        }
        self.tell_gate_if_blocked();
        false
    }

    /// `try_reserve_free` for callers holding the queue lock (they tell the gate after it).
    pub(super) fn try_reserve_locked(&self) -> bool {
        self.reserve(false)
    }

    pub(super) fn reserve(&self, may_evict: bool) -> bool {
        if !self.reserve_local() {
            return false;
        }
        if let Some((gate, id)) = &self.gate {
            let ok = if may_evict {
                gate.acquire(*id)
            } else {
                gate.try_acquire_free()
            };
            if !ok {
                self.size.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    /// The local half of a reservation: CAS below `max_size`.
    fn reserve_local(&self) -> bool {
        crate::sync::increment_below(&self.size, self.max_size())
    }

    /// Gives back one unit of capacity: to the best waiter as a create permit if one is
    /// queued (so a newcomer cannot take it, I6), otherwise to the pool.
    ///
    /// In a partition, while another partition's callers wait for global capacity alone,
    /// the unit goes to the gate even if callers queue here: the gate offers it to the
    /// other partitions first, and this one then tells the gate it is blocked itself
    /// (G1), so units alternate between the waiting keys and none starves.
    pub(crate) fn unreserve(&self) {
        let mut q = self.queue.lock();
        let shrinking = self.size.load(Ordering::Relaxed) > self.max_size();
        let yield_to_others = !q.is_empty() && self.others_blocked();
        if !self.is_closed() && !shrinking && !yield_to_others {
            if let Some(w) = self.hand_to_best(&mut q, Decision::Permit) {
                drop(q);
                w.wake();
                return;
            }
        }
        self.size.fetch_sub(1, Ordering::Relaxed);
        self.publish(&q);
        drop(q);
        if let Some((gate, id)) = &self.gate {
            gate.release(*id);
        }
        if yield_to_others {
            // Our callers may now wait for global capacity alone (G1).
            self.tell_gate_if_blocked();
        }
    }

    /// Gives a destroyed object's capacity back: `unreserve` for an object whose capacity
    /// is still counted, only the reclaimed count otherwise.
    pub(crate) fn after_take_out(&self, reclaimed: bool) {
        if reclaimed {
            self.reclaimed.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.unreserve();
        }
    }

    /// Whether no object of this pool is left: none alive or being created (`size`), and
    /// no reclaimed checkout (`reclaim_leaked`) whose object is still out or still being
    /// dropped; such an object no longer counts in `size`, and its slot is empty before
    /// its `Drop` ends (`after_take_out` comes after). For `drain`.
    #[cfg_attr(riptide_model, allow(dead_code))] // `drain` is not modelled
    pub(crate) fn holds_nothing(&self) -> bool {
        self.size() == 0 && self.reclaimed.load(Ordering::Relaxed) == 0
    }

    /// A unit of global capacity for this partition, from the gate: becomes a permit for
    /// the best waiter if one is queued and the local cap allows, else `false` (the gate
    /// keeps it).
    pub(crate) fn offer_permit(&self) -> bool {
        let mut q = self.queue.lock();
        if self.is_closed() || q.is_empty() || !self.reserve_local() {
            return false;
        }
        if let Some(w) = self.hand_to_best(&mut q, Decision::Permit) {
            drop(q);
            w.wake();
            return true;
        }
        self.size.fetch_sub(1, Ordering::Relaxed);
        self.publish(&q);
        false
    }

    /// Whether another partition of our partitioned pool waits for global capacity.
    pub(super) fn others_blocked(&self) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|(gate, id)| gate.others_blocked(*id))
    }

    /// Whether callers wait here only for global capacity (the local cap has room).
    pub(crate) fn blocked_on_gate(&self) -> bool {
        self.gate_demand() > 0
    }

    /// [`gate_demand`](Self::gate_demand), read under the queue lock from the callers
    /// queued: a caller in the middle of registering counts itself in the state word
    /// before it looks for an idle object or a free unit (I4), and would look blocked
    /// for that moment; under the lock it has either queued or taken what it found. For
    /// deciding evictions (G3), where such a moment would cost an object. Call holding
    /// no lock.
    pub(crate) fn gate_demand_queued(&self) -> usize {
        let q = self.queue.lock();
        let room = self
            .max_size()
            .saturating_sub(self.size.load(Ordering::Relaxed));
        q.len().min(room)
    }

    /// How many units of global capacity the callers queued here wait for: one each,
    /// up to the room under the local cap.
    pub(crate) fn gate_demand(&self) -> usize {
        let room = self
            .max_size()
            .saturating_sub(self.size.load(Ordering::Relaxed));
        self.waiting().min(room)
    }

    /// **G1** (partitions): whenever callers here come to wait for global capacity alone,
    /// the gate hears of it ([`Gate::blocked`]: the other partitions' idle objects go,
    /// their returns are destroyed, a free unit is offered here). That state begins when
    /// a caller queues while the local cap has room, or when local room appears while
    /// callers are queued: a reservation that the gate refused is given back (another
    /// caller's, or a resize's). Each of those calls this after its change, holding no
    /// lock, not only the first waiter: a reservation in flight can hide the room from a
    /// waiter that queues meanwhile, and the one giving it back must then tell.
    pub(super) fn tell_gate_if_blocked(&self) {
        if let Some((gate, id)) = &self.gate {
            // SeqCst: a Dekker pair. The queuer counted itself in the word and then reads
            // `size`; the giver-back lowered `size` and then reads the word. With a fence
            // on each side between the write and the read, at least one of them sees the
            // other's write and tells the gate.
            fence(Ordering::SeqCst);
            if self.blocked_on_gate() {
                gate.blocked(*id);
            }
        }
    }

    /// The oldest idle object's (stamp, slot), for eviction by the gate. A stacked one
    /// counts too (`evict_idle` then takes whichever is on top of the stack).
    pub(crate) fn oldest_idle(&self) -> Option<(u64, usize)> {
        (0..self.slots.used())
            .filter(|&i| {
                let st = self.slots.get(i).state.load(Ordering::Relaxed);
                st == IDLE || super::idle::is_stacked(st)
            })
            .map(|i| (self.slots.get(i).idle_since(), i))
            .min()
    }

    /// Evicts the idle object in slot `i` if it is still idle, or, if it was stacked, the
    /// object on top of the idle stack. Its drop runs aside (`evict_aside`): its capacity,
    /// local and global, comes back once it is gone. Call holding no lock.
    pub(crate) fn evict_idle(&self, i: usize) -> bool {
        let claimed = if super::idle::is_stacked(self.slots.get(i).state.load(Ordering::Relaxed)) {
            self.idle.pop(&self.slots)
        } else {
            self.claim_if_idle(i).map(|claimed| {
                claimed.disarm();
                i
            })
        };
        let Some(j) = claimed else {
            return false;
        };
        self.count_evictions(1);
        self.evict_aside(j);
        true
    }

    /// Tells the gate that `n` evictions for it are in flight (before any of them ends).
    fn count_evictions(&self, n: usize) {
        if let Some((gate, _)) = &self.gate {
            gate.evictions_begin(n);
        }
    }

    /// Another partition waits for global capacity: evict our idle objects; our
    /// checked-out ones are destroyed (not idled) when returned, as the divert bit in the
    /// word tells every return while that partition waits.
    pub(crate) fn yield_capacity(&self) {
        let q = self.queue.lock();
        // Releases racing with the take must see the divert bit (I4).
        self.announce(&q, true);
        let doomed = self.take_idle(&q, usize::MAX);
        drop(q);
        // Dropped aside: this runs on a caller that just queued (or on a giver), which
        // must not wait on these objects' `Drop`s.
        self.count_evictions(doomed.len());
        for i in doomed {
            self.evict_aside(i);
        }
    }

    /// With the queue lock held (`_q`), after the heavy barrier: claims up to `max_take`
    /// idle objects, stacked ones first (returned, to be destroyed after unlocking). Every
    /// checked-out object comes back through the slow path by itself: the word the caller
    /// changed before the barrier sends every return there (I4). Used by `close` and
    /// `yield_capacity` (all idle objects) and by a shrinking `resize` (the excess). A
    /// pass over the slots: these are rare.
    pub(super) fn take_idle(&self, _q: &MutexGuard<'_, WaitQueue>, max_take: usize) -> Vec<usize> {
        let mut doomed = self.pop_idle(max_take);
        for i in 0..self.slots.used() {
            if doomed.len() >= max_take {
                break;
            }
            let s = &self.slots.get(i).state;
            // Acquire: claiming an idle object, as in `claim_idle` (I1).
            if s.load(Ordering::Relaxed) == IDLE
                && s.compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                doomed.push(i);
            }
        }
        doomed
    }

    /// Retires a partition that holds nothing: if it has no object, no create in flight,
    /// no reclaimed checkout and nobody queued, its size is moved to a value no
    /// reservation can pass (one CAS from 0, so a concurrent reservation either came first
    /// and the retirement fails, or fails itself) and it is closed. An acquisition that
    /// still holds the retired partition gets `Closed` and looks its key up again.
    ///
    /// A partition whose breaker counted a failure within its last cool-down (or is open,
    /// or has a trial in flight) is kept: its successor would start with a new breaker,
    /// and a key whose factory fails would never be stopped by one. An older streak is
    /// forgotten (`CircuitBreaker::is_stale_at`), so keys that failed once do not
    /// accumulate.
    pub(crate) fn retire_if_unused(&self) -> bool {
        let mut q = self.queue.lock();
        if self.is_closed() || !q.is_empty() || self.reclaimed.load(Ordering::Relaxed) != 0 {
            return false;
        }
        if self
            .size
            .compare_exchange(0, RETIRED, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // After the CAS: no create can be in flight now, so no failure is being counted.
        if self
            .breaker()
            .is_some_and(|b| !b.is_stale_at(self.exact_ms()))
        {
            self.size.store(0, Ordering::Relaxed);
            return false;
        }
        let stale = self.disarm_sweep(&mut q);
        self.retired.store(true, Ordering::Relaxed);
        self.word.close();
        // Nothing to mark: no object exists, and none can be made.
        self.announce(&q, false);
        drop(q);
        drop(stale);
        true
    }

    /// Whether `retire_if_unused` closed this partition (not a `close`). Takes the lock:
    /// whoever saw the pool closed then also sees why.
    pub(crate) fn was_retired(&self) -> bool {
        let _q = self.queue.lock();
        self.retired.load(Ordering::Relaxed)
    }

    /// Undoes the reclaim of checkout `uses` of `slot`, whose object came back and was
    /// taken by someone else before its releaser could take it back (`take_back_reclaimed`):
    /// the object is in use again, so its capacity counts again. That can put `size` over
    /// `max_size` for a while, as a shrink does (the capacity was reused meanwhile): the
    /// published divert bit sends returns the slow way, which destroys objects until the
    /// pool is within its bound. The record loses its mark, so the object's next leak is
    /// reported. Lock held.
    pub(crate) fn undo_reclaim(&self, q: &MutexGuard<'_, WaitQueue>, slot: &Slot<T>, uses: u64) {
        slot.reported.store(uses, Ordering::Relaxed);
        self.reclaimed.fetch_sub(1, Ordering::Relaxed);
        self.size.fetch_add(1, Ordering::Relaxed);
        self.publish(q);
    }

    /// Gives back the capacity of the checkout of slot `i` that began at `since` (its
    /// stamp) and is its object's checkout number `uses` (still held, maybe forever).
    ///
    /// The checkout is known by its stamp: its holder may return the object and another
    /// caller claim it at any moment (neither takes the lock), and a claim that has not
    /// counted its use yet shows the same `uses`. So the stamp is checked with the state
    /// read by Acquire, before the mark and again after it (the mark's CAS can find the
    /// slot `BUSY` again after a return and a claim: then it is another checkout's, and
    /// the mark is taken back). Either Acquire read that sees a later owner's state also
    /// sees the stamp the last holder wrote as it returned the object (its `IDLE` store
    /// is a Release the claim's CAS continues), which is not `since`.
    pub(crate) fn reclaim(&self, i: usize, uses: u64, since: u64) {
        let slot = self.slots.get(i);
        let q = self.queue.lock();
        let st = slot.state.load(Ordering::Acquire);
        let same = || slot.held_since() == Some(since) && slot.uses.load(Ordering::Relaxed) == uses;
        // The checkout must be the same one, still out.
        if st & STATE_MASK != BUSY || self.is_reclaimed(i, st) || !same() {
            return;
        }
        // The record first, then the heavy barrier, then the mark: a fast release that
        // stores IDLE over the mark reads the record after its light barrier (the pair
        // orders the two) and takes the slow path, which sees the record under this lock.
        let before = slot.reported.load(Ordering::Relaxed);
        slot.reported
            .store(uses | crate::shared::slots::RECLAIM_MARK, Ordering::Relaxed);
        self.announce(&q, false); // I4
                                  // A CAS, not a store: its owner may be releasing or destroying it right now
                                  // (`take_out` moves the slot to EMPTY, a scarce return pushes it), and a store
                                  // would resurrect the slot. Acquire: see above.
        if slot
            .state
            .compare_exchange(st, st | RECLAIMED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // It came back meanwhile: nothing to reclaim. A release that saw the record
            // waits for this lock, and then sees it gone.
            slot.reported.store(before, Ordering::Relaxed);
            return;
        }
        if !same() {
            // Another checkout's (returned and claimed since): the mark comes off. If its
            // holder's release overwrote the mark already, its slow path finds the record
            // restored below, under this lock, and nothing reclaimed.
            let _ = slot.state.compare_exchange(
                st | RECLAIMED,
                st,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            slot.reported.store(before, Ordering::Relaxed);
            return;
        }
        // The slot stays occupied: `install` counts it (`reclaimed`) when it allocates
        // slots for the creates this capacity allows.
        self.reclaimed.fetch_add(1, Ordering::Relaxed);
        drop(q);
        self.unreserve();
    }
}
