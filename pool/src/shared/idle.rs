//! The idle stack and the pool's two modes (handoff.rs tells the protocol; I3 and I4 are
//! kept here).
//!
//! A pool with objects to spare is **calm**: idle objects stay where they were returned
//! (`IDLE` in their slot, found from the claimer's per-thread hint) and a return is a
//! plain store. A pool that runs short is **scarce** (the state word's `SCARCE` bit): every
//! idle object is on a lock-free stack of slot indices, so a claim, a waiter's look for an
//! idle object and the discovery that there is none are O(1), and a return pushes with a
//! CAS. The switch into scarce mode (the first claim that finds nothing, or the first
//! waiter) runs the heavy barrier once and moves every idle object onto the stack; the
//! switch back, after a second in which nobody found the pool empty, is done by
//! maintenance and costs nothing but a store and the stack's pops.
//!
//! **The stack.** A Treiber stack whose links live in the slots' own state words: a
//! stacked slot's state is `STACKED | (next + 1) << LINK_SHIFT`, written only by its
//! pusher before the push publishes it (nobody else writes a `STACKED` state: every other
//! writer of a slot's state CASes from `IDLE`, `BUSY` or `EMPTY`). The head is
//! `tag << 32 | (top + 1)`; every successful CAS bumps the tag, so a popper that read a
//! link, lost the CPU while the slot was popped and pushed again, and then tries its CAS,
//! fails (ABA). Slots are never freed while the pool lives, so reading a stale link is
//! safe.

use crate::shared::slots::{Slots, BUSY, IDLE, RECLAIMED, STACKED, STATE_MASK};
use crate::sync::{AtomicU64, AtomicUsize, CachePadded, MutexGuard, Ordering};
use crate::waiters::WaitQueue;

use super::fast::Release;
use super::Shared;

/// Where a stacked slot's link (the next slot's index + 1, 0 at the bottom) starts.
const LINK_SHIFT: u32 = 8;
/// The head's index half: `top + 1`, 0 when empty.
const INDEX: u64 = 0xffff_ffff;
/// One step of the head's ABA tag.
const TAG: u64 = 1 << 32;

/// A stack of idle slot indices (see the module docs).
pub(crate) struct IdleStack {
    head: CachePadded<AtomicU64>,
}

impl IdleStack {
    pub(crate) fn new() -> Self {
        IdleStack {
            head: CachePadded(AtomicU64::new(0)),
        }
    }

    /// Whether the stack looked empty. Relaxed: a hint for the caller's fast decision; the
    /// paths that must not miss a push order their read with the barrier pair (I4).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed) & INDEX == 0
    }

    /// Pushes slot `i`, whose state is `expect`; false (nothing done) if the state is not
    /// `expect` (a reclaim marked the checkout: the caller takes the slow path). The
    /// caller owns the slot (`BUSY`) or is claiming it from `IDLE`.
    pub(crate) fn push<T>(&self, slots: &Slots<T>, i: usize, expect: usize) -> bool {
        let s = &slots.get(i).state;
        let mut h = self.head.load(Ordering::Relaxed);
        // A CAS, not a store: a reclaim may mark a BUSY slot at any moment, and a mark a
        // store overwrote would be lost. Acquire when claiming from IDLE (as `claim_idle`,
        // I1); the owner's own writes need no ordering here: the head's CAS publishes them.
        if s.compare_exchange(expect, link(h), Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        loop {
            // AcqRel: Release publishes the object and the link to the popper that
            // Acquires this head (I1); the pair's other half is the caller's barrier.
            match self.head.compare_exchange_weak(
                h,
                (h & !INDEX).wrapping_add(TAG) | (i as u64 + 1),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(x) => {
                    h = x;
                    // Still ours: nobody else writes a STACKED state, and it is not
                    // published until the CAS above succeeds.
                    s.store(link(h), Ordering::Relaxed);
                }
            }
        }
    }

    /// Pops a slot and makes the caller its owner (`BUSY`).
    pub(crate) fn pop<T>(&self, slots: &Slots<T>) -> Option<usize> {
        // Acquire: pairs with the push that wrote this head, so the link read below is
        // that push's (or a later one's, and then the tag makes the CAS fail).
        let mut h = self.head.load(Ordering::Acquire);
        loop {
            let top = (h & INDEX) as usize;
            if top == 0 {
                return None;
            }
            let slot = slots.get(top - 1);
            let next = (slot.state.load(Ordering::Relaxed) >> LINK_SHIFT) as u64;
            // Acquire: the pusher's writes to the object happen-before ours (I1).
            match self.head.compare_exchange_weak(
                h,
                (h & !INDEX).wrapping_add(TAG) | (next & INDEX),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // Ours alone now (see the module docs): a plain store.
                    slot.state.store(BUSY, Ordering::Relaxed);
                    return Some(top - 1);
                }
                Err(x) => h = x,
            }
        }
    }
}

/// The state of a stacked slot whose next one is the top of `head`.
fn link(head: u64) -> usize {
    STACKED | ((head & INDEX) as usize) << LINK_SHIFT
}

/// Whether a slot state is a stacked idle object.
#[inline]
pub(crate) fn is_stacked(st: usize) -> bool {
    st & STATE_MASK == STACKED
}

impl<T: Send + 'static> Shared<T> {
    /// The fast release in scarce mode: pushes owned slot `i` (its state `BUSY`, read by
    /// the caller) onto the idle stack, then reads the word (I4). If callers queued or the
    /// pool closed or diverted meanwhile, it takes an idle object back off the stack (its
    /// own or another: any will do) and sends that one the slow way. Called by the fast
    /// release, whose thread already has a hazard record.
    pub(super) fn release_push(&self, i: usize) -> Release {
        // Announced: once pushed, the object may be claimed and destroyed and the pool
        // freed before our last reads (I7). No record (the thread's locals are being
        // destroyed): the slow way, as for the calm release.
        let Some(announced) = self.hazards.enter(std::ptr::from_ref(self) as usize) else {
            return Release::Slow(i);
        };
        if !self.idle.push(&self.slots, i, BUSY) {
            announced.exit();
            return Release::Slow(i);
        }
        // I4: the push (an RMW) then the word; a waiter writes the word, fences, then
        // looks at the stack.
        crate::sync::barrier::after_rmw();
        if self.word.load() & !super::word::SCARCE == 0 {
            announced.exit();
            return Release::Done;
        }
        let back = self.idle.pop(&self.slots);
        // An object popped keeps the pool alive again; with none, someone else took it.
        announced.exit();
        match back {
            Some(j) => Release::Slow(j),
            None => Release::Done,
        }
    }

    /// Makes owned slot `i` idle in the pool's mode: pushed when scarce (the caller holds
    /// the lock, so the mode is stable and nobody is queued), else `IDLE`.
    pub(super) fn make_idle(&self, _q: &MutexGuard<'_, WaitQueue>, i: usize) {
        if self.word.is_scarce() {
            // Cannot fail: the slot is exactly BUSY (owned, marks handled by the caller).
            let pushed = self.idle.push(&self.slots, i, BUSY);
            debug_assert!(pushed);
        } else {
            // Release: pairs with a claimer's Acquire CAS (I1).
            self.slots.get(i).state.store(IDLE, Ordering::Release);
        }
    }

    /// Switches into scarce mode (lock held): sets `SCARCE`, runs the heavy barrier (I4:
    /// every plain release in flight then either sees the bit, takes its object back and
    /// pushes it, or its `IDLE` store is visible below), and moves every idle object onto
    /// the stack. The pool's only O(size) step on the waiting side, once per scarce spell.
    pub(super) fn become_scarce(&self, q: &MutexGuard<'_, WaitQueue>) {
        if self.word.is_scarce() {
            return;
        }
        self.word.set_scarce();
        self.announce(q, false);
        for i in 0..self.slots.used() {
            let s = &self.slots.get(i).state;
            if s.load(Ordering::Relaxed) == IDLE {
                // Fails only if someone claimed it meanwhile.
                let _ = self.idle.push(&self.slots, i, IDLE);
            }
        }
    }

    /// Switches into scarce mode now (the models' and tests' way to reach it directly).
    #[cfg(any(test, riptide_model))]
    pub(crate) fn make_scarce(&self) {
        let q = self.queue.lock();
        if !self.is_closed() {
            self.become_scarce(&q);
        }
    }

    /// Switches back to calm mode if the pool has been scarce with nobody finding it
    /// empty for `calm_ms` (maintenance): clears `SCARCE` and turns stacked objects back
    /// into `IDLE` ones. A release that read the bit before still pushes; calm claims pop
    /// such leftovers when their scan finds nothing.
    pub(crate) fn maybe_become_calm(&self, now_ms: u64, calm_ms: u64) {
        // A calm pool may still hold objects on the stack (returns that read the word
        // before the switch back pushed them): they are made plain idle objects too, so
        // idle eviction sees them.
        let leftovers = !self.word.is_scarce() && !self.idle.is_empty();
        if !leftovers
            && (!self.word.is_scarce()
                || now_ms.saturating_sub(self.scarce_ms.load(Ordering::Relaxed)) < calm_ms)
        {
            return;
        }
        let q = self.queue.lock();
        if !q.is_empty() || self.is_closed() {
            return;
        }
        self.word.clear_scarce();
        while let Some(i) = self.idle.pop(&self.slots) {
            // Release: pairs with a claimer's Acquire CAS (I1).
            self.slots.get(i).state.store(IDLE, Ordering::Release);
        }
        drop(q);
    }

    /// Notes that a caller found the pool empty now (keeps scarce mode on).
    #[inline]
    pub(super) fn note_scarce(&self) {
        let now = self.coarse_ms();
        if self.scarce_ms.load(Ordering::Relaxed) != now {
            self.scarce_ms.store(now, Ordering::Relaxed);
        }
    }

    /// Takes every stacked idle object off the stack (owned by the caller, `BUSY`), up
    /// to `max`.
    pub(crate) fn pop_idle(&self, max: usize) -> Vec<usize> {
        let mut v = Vec::new();
        while v.len() < max {
            match self.idle.pop(&self.slots) {
                Some(i) => v.push(i),
                None => break,
            }
        }
        v
    }
}

/// Counts of a slot array's states for `stats()`: (idle, busy). A checkout whose
/// capacity `reclaim_leaked` took back counts as neither: `size` no longer counts it.
pub(super) fn count(state: &AtomicUsize) -> (usize, usize) {
    let s = state.load(Ordering::Relaxed);
    if s & RECLAIMED != 0 {
        return (0, 0);
    }
    match s & STATE_MASK {
        IDLE | STACKED => (1, 0),
        BUSY => (0, 1),
        _ => (0, 0),
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use crate::shared::slots::{IDLE, STACKED, STATE_MASK};
    use crate::sync::Ordering;
    use crate::{Pool, PoolError, Poolable};

    struct Obj;
    impl Poolable for Obj {}

    /// A large `max_size` is a bound, not a cost: what scans the pool (`stats`,
    /// maintenance, `retain`, `checked_out`) looks at the slots that ever held an object,
    /// not at every slot the bound allows.
    #[test]
    fn scans_cover_the_slots_that_held_objects_not_the_bound() {
        let p = Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
            .max_size(1 << 16)
            .build()
            .unwrap();
        assert_eq!(p.shared().slot_count(), 0);
        let held = [p.get_blocking().unwrap(), p.get_blocking().unwrap()];
        assert_eq!(p.shared().slot_count(), 2);
        assert_eq!(p.stats().in_use, 2);
        drop(held);
        assert_eq!(p.stats().idle, 2);
    }

    fn warm(n: usize) -> Pool<Obj> {
        let p = Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
            .max_size(n)
            .build()
            .unwrap();
        let held: Vec<_> = (0..n).map(|_| p.get_blocking().unwrap()).collect();
        drop(held);
        // A pool being filled has room to create: it stays calm.
        assert!(!p.shared().word.is_scarce());
        p
    }

    /// How many slots are in each idle state: (`IDLE`, `STACKED`).
    fn idle_states(p: &Pool<Obj>) -> (usize, usize) {
        let s = p.shared();
        (0..s.slot_count()).fold((0, 0), |(i, k), n| {
            match s.slot(n).state.load(Ordering::Relaxed) & STATE_MASK {
                IDLE => (i + 1, k),
                STACKED => (i, k + 1),
                _ => (i, k),
            }
        })
    }

    /// The one checked-out slot of `p`.
    fn busy_slot(p: &Pool<Obj>) -> usize {
        let s = p.shared();
        let busy: Vec<_> = (0..s.slot_count())
            .filter(|&n| s.slot(n).state.load(Ordering::Relaxed) == crate::shared::slots::BUSY)
            .collect();
        assert_eq!(busy.len(), 1);
        busy[0]
    }

    #[test]
    fn a_pool_that_runs_out_goes_scarce_and_back_to_calm() {
        let p = warm(3);
        assert!(!p.shared().word.is_scarce());
        assert_eq!(idle_states(&p), (3, 0));
        let held: Vec<_> = (0..3).map(|_| p.try_get().unwrap()).collect();
        assert!(matches!(p.try_get(), Err(PoolError::Exhausted)));
        assert!(
            p.shared().word.is_scarce(),
            "finding nothing makes it scarce"
        );
        drop(held);
        assert_eq!(idle_states(&p), (0, 3), "a scarce pool's returns push");
        assert_eq!(p.stats().idle, 3);
        // Not yet quiet for long enough.
        let now = p.shared().coarse_ms();
        p.shared().maybe_become_calm(now, 60_000);
        assert!(p.shared().word.is_scarce());
        p.shared().maybe_become_calm(u64::MAX, 0);
        assert!(!p.shared().word.is_scarce());
        assert_eq!(idle_states(&p), (3, 0));
        let again: Vec<_> = (0..3).map(|_| p.try_get().unwrap()).collect();
        assert_eq!(again.len(), 3);
    }

    #[test]
    fn a_calm_pool_finds_and_unstacks_objects_left_on_the_stack() {
        let p = warm(2);
        let s = p.shared();
        // A return that read the scarce bit just before the switch back pushes its object
        // onto the stack of a calm pool: that is what this sets up.
        std::mem::forget(p.try_get().unwrap());
        let i = busy_slot(&p);
        assert!(s.idle.push(&s.slots, i, crate::shared::slots::BUSY));
        assert_eq!(idle_states(&p), (1, 1));
        // Maintenance turns it back into a plain idle object.
        s.maybe_become_calm(s.coarse_ms(), 60_000);
        assert_eq!(idle_states(&p), (2, 0));
        // And a calm claim that scans past every IDLE slot still pops a stacked one.
        std::mem::forget(p.try_get().unwrap());
        let j = busy_slot(&p);
        assert!(s.idle.push(&s.slots, j, crate::shared::slots::BUSY));
        let b = p.try_get().unwrap();
        let c = p.try_get().unwrap();
        assert!(
            !s.word.is_scarce(),
            "a stacked leftover is found without a switch"
        );
        assert!(matches!(p.try_get(), Err(PoolError::Exhausted)));
        drop((b, c));
        assert_eq!(p.stats().idle, 2);
    }

    #[test]
    fn the_stack_survives_reuse_of_its_slots_in_any_order() {
        let p = warm(8);
        p.shared().make_scarce();
        for round in 0..50usize {
            let mut held: Vec<_> = (0..8).map(|_| p.try_get().unwrap()).collect();
            assert!(p.try_get().is_err());
            // Return in a different order each round.
            held.rotate_left(round % 8);
            if round % 2 == 1 {
                held.reverse();
            }
            drop(held);
            assert_eq!(idle_states(&p), (0, 8));
        }
        let s = p.stats();
        assert_eq!((s.size, s.idle, s.created), (8, 8, 8));
    }
}
