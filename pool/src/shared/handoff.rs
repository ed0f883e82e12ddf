//! The hand-off protocol: how an object, or the capacity to make one, passes from whoever
//! gives it back to whoever waits for it, with no lock on the fast path and no lost
//! wake-up. This is the one place it is told whole; the sites that keep each invariant
//! cite it by name.
//!
//! **The parties.** Every live object has a *slot*: an atomic state word (`EMPTY`, `IDLE`,
//! `BUSY`, `STACKED`, plus the mark `RECLAIMED`) and the object. A caller that finds
//! nothing idle *registers*: it gets a *cell* (`waiters/`), decided exactly once by CAS.
//! Cells wait in four FIFO queues, one per priority, behind the pool's short lock, which is
//! held only on these slow paths, never across an `.await`, and never while user code runs.
//!
//! **The two modes** (`idle.rs`). A *calm* pool keeps its idle objects `IDLE` in their
//! slots; a *scarce* pool (the state word's `SCARCE` bit) keeps every idle object on a
//! lock-free stack of slot indices (`STACKED`). The first claim that finds nothing, or
//! the first waiter, switches a calm pool to scarce; maintenance switches it back after a
//! second in which nobody found it empty.
//!
//! **The paths.**
//! - *Fast claim* (`fast.rs`): if the state word shows nobody queued and the pool open,
//!   one CAS: `IDLE → BUSY` on a slot near the thread's hint (calm), or a pop (scarce).
//! - *Fast release* (`fast.rs`, `idle.rs`): if the slot is exactly `BUSY`, a plain store
//!   of `IDLE`, the light barrier, and a read of the word and the slot's reclaim record.
//!   If the word is not clear, take the object back: in a scarce pool nobody waits on,
//!   push it (then read the word again: a caller that queued meanwhile gets an object
//!   popped back, the slow way); otherwise go the slow way.
//! - *Register* ([`Shared::register`]): under the lock. The first waiter of an empty queue
//!   makes the pool scarce, counts itself in the word, fences, then pops: it takes an idle
//!   object if one appeared; then it tries to reserve capacity, else it queues. Later
//!   waiters just queue.
//! - *Slow release* ([`Shared::release_slow`]): under the lock: destroy the object (the pool
//!   is closed, shrinking, the checkout was reclaimed, another partition is blocked),
//!   or hand it to the best waiter ([`Shared::hand_to_best`]), or make it idle (pushed, in
//!   a scarce pool).
//! - *Capacity given back* (`capacity.rs`, `unreserve`): to the best waiter as a `Permit`
//!   (it creates), else to the pool.
//! - *Deadline* ([`Shared::sweep`]): the pool's timer times queued waiters out, under the
//!   lock, so a time-out and a hand-off are serialised.
//! - *Cancel* ([`Shared::cancel`]): a dropped acquisition decides its cell `Cancelled`
//!   (a queued one under the lock, taking its entry out); if it lost that race, it gives
//!   back what it was handed.
//!
//! **The invariants.**
//! - **I1 — one owner.** An object belongs to exactly one party at a time: the pool
//!   (`IDLE` or `STACKED`), whoever moved its slot to `BUSY` (by CAS on the slot, or by
//!   the pop's CAS on the stack's head), or the waiter whose cell was decided `Handed`.
//!   Only the owner touches the object or its slot's metadata, and only the owner moves
//!   the slot out of `BUSY`. Acquire on every claim pairs with Release on every release,
//!   so the last owner's writes are the next owner's reads.
//! - **I2 — capacity.** `size` counts objects alive plus creates in flight. It grows only by
//!   a CAS below `max_size` (and, in a partition, a unit of the global gate); every unit
//!   is spent exactly once: it becomes an object, or goes back (`unreserve`), or goes to a
//!   waiter as a `Permit`, which in turn does one of those.
//! - **I3 — no idle object behind the queue.** Callers queue only in a scarce pool, and
//!   there no object stays idle unseen by them: an object is `IDLE` only between a calm
//!   release's store and its word check (which sees the switch, or the switch's pass over
//!   the slots sees the store), and a stacked object is either popped by the first
//!   waiter's look or taken back off the stack by the return that pushed it, once that
//!   return reads the queued count in the word.
//! - **I4 — the barrier pair.** Whoever changes the word in a way a release must notice
//!   (the switch to scarce mode, close, shrink, reclaim, a partition yielding) writes the
//!   word, runs the heavy barrier, then looks at the slots; a calm release stores `IDLE`,
//!   runs the light barrier, then reads the word. In a scarce pool the first waiter
//!   writes the word, fences, then pops; a return pushes (an RMW, then
//!   `barrier::after_rmw`) and reads the word. Either way at least one side sees the
//!   other, so no wake-up is lost and no mark is lost unnoticed.
//! - **I5 — one decision.** A cell leaves `WAITING` exactly once, by CAS; the winner's
//!   writes before it (the handed object, the error) are published by it. A decision the
//!   cell's owner never consumed (its future was dropped) is given back: the object is
//!   released, the permit unreserved.
//! - **I6 — no overtaking.** A newcomer never takes an object or capacity while callers are
//!   queued: the fast claim reads the word; registration queues behind; freed capacity and
//!   returned objects go to the best waiter first (highest effective priority, then the
//!   oldest; a waiter older than `starvation_threshold` counts as `Critical`).
//! - **I7 — memory.** Every live object holds a reference to the allocation, so a guard
//!   needs none; a fast release announces the pool in its thread's hazard record for its
//!   last reads, and the last owner waits for announcements before freeing (`refs.rs`).
//! - **I8 — deadlines.** Every queued waiter with a deadline is covered by a sweep armed on
//!   the pool's timer at or before that deadline.
//! - **I9 — a queued cell and its waker.** A queued caller's waker lives in its queue
//!   entry, not in the cell. The cell is decided only under the lock, by whoever takes its
//!   entry out of the queue in the same critical section (a hand-off, the sweep, close,
//!   the breaker, the deadlock check, or its own cancel). So every cell in the queue is
//!   waiting; the decider holds the one waker to wake and wakes it after unlocking; and
//!   a poll that brings another waker swaps it in under the lock
//!   ([`Shared::poll_queued`]), where it either finds the entry (and is woken through the
//!   new waker) or finds it gone (and the decision visible). No waker's code runs under
//!   the lock, and wherever the pool runs it (user code that may panic), what it holds
//!   is already where an unwind gives it back: a batch of decided callers is woken
//!   through `waiters::wake_all`, which wakes the rest if one panics. A creating caller's
//!   cell, decided by the factory's task without the lock, keeps its waker in the cell
//!   instead.
//!
//! loom checks these with both barrier sides as `fence(SeqCst)` (`loom-tests/`).

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::PoolError;
use crate::rt::Disarmed;
use crate::shared::slots::RECLAIMED;
use crate::stats::{DestroyReason, PoolEvent};
use crate::sync::{Arc, Ordering};
use crate::waiters::{Decision, WaitQueue, Waiter};
use crate::Priority;

use super::{Owed, Shared, SharedRef};

/// A caller asking to wait: what its place in the queue and its deadline come from.
#[derive(Clone, Copy)]
pub(crate) struct WaitAsk {
    pub(crate) priority: Priority,
    /// The start of the acquisition (time since the epoch): aging and the deadline count
    /// from it.
    pub(crate) since: Duration,
    /// The caller queued before in this acquisition (its object was rejected by a
    /// checkout step): it goes back to its place by `since` rather than to the back.
    pub(crate) again: bool,
    /// When it gives up (time since the epoch; `Duration::MAX`: never).
    pub(crate) deadline: Duration,
    /// Where it waits (`#[track_caller]`), for the nested-wait report.
    pub(crate) location: &'static std::panic::Location<'static>,
}

/// What registering as a waiter produced.
pub(crate) enum Reg {
    /// An idle object, found by the first waiter's look at the idle stack.
    Got(usize),
    /// Capacity was reserved: create an object.
    Permit,
    /// Queued: wait on the cell.
    Queued(Arc<Waiter>),
}

impl<T: Send + 'static> Shared<T> {
    /// Gives back owned slot `i` under the lock: destroy it (closed, reclaimed, shrinking,
    /// another partition blocked), hand it to the best waiter, or make it idle.
    #[cold]
    pub(crate) fn release_slow(&self, i: usize) -> Owed<'_> {
        self.release_slow_with(i, false)
    }

    /// [`release_slow`](Self::release_slow); with `aside`, a doomed object is dropped on
    /// another thread ([`destroy_aside`](Self::destroy_aside)) rather than by the caller.
    #[cold]
    pub(crate) fn release_slow_with(&self, i: usize, aside: bool) -> Owed<'_> {
        let mut q = self.queue.lock();
        // Stable under the lock: everyone else who writes a BUSY slot holds the lock.
        let slot = self.slots.get(i);
        let st = slot.state.load(Ordering::Relaxed);
        let doom = if self.is_reclaimed(i, st) {
            // If a racing fast release overwrote the mark, restore it (we own the slot,
            // and reclaims mark under this lock): `take_out` reads the mark.
            slot.state.store(st | RECLAIMED, Ordering::Relaxed);
            Some(DestroyReason::Reclaimed)
        } else if self.is_closed() {
            Some(DestroyReason::Closed)
        } else if self.size.load(Ordering::Relaxed) > self.max_size() {
            Some(DestroyReason::Resized)
        } else if self.others_blocked() {
            // Another partition waits for global capacity: this object makes room, even
            // when callers queue here too (else a key that churns at the global cap with
            // its own queue would keep every unit, and the other key would starve);
            // `unreserve` offers the unit to the other partitions first.
            Some(DestroyReason::Evicted)
        } else {
            None
        };
        if let Some(reason) = doom {
            drop(q);
            if aside {
                self.destroy_aside(i, reason);
                return Owed::none(&self.refs);
            }
            return self.destroy(i, reason);
        }
        // Hand it to the best waiter (the decision's Release publishes the object, I5), or
        // make it idle: pushed in a scarce pool, so nothing idle hides from the next
        // waiter (I3).
        match self.hand_to_best(&mut q, Decision::Handed(i)) {
            Some(w) => {
                drop(q);
                w.wake();
            }
            None => {
                self.publish(&q);
                self.make_idle(&q, i);
            }
        }
        Owed::none(&self.refs)
    }

    /// Decides the best waiter `d` (I6) and takes it out of the queue (I9). With the lock
    /// held; publishes the word on success. Returns the winner's waker, to wake once the
    /// lock is released.
    pub(super) fn hand_to_best(&self, q: &mut WaitQueue, d: Decision) -> Option<Waker> {
        let waker = q.serve_best(d, || self.now(), self.config.starvation_threshold)?;
        self.publish(q);
        Some(waker)
    }

    /// The waiting path's entry: with nobody queued, a reservation if the pool may grow
    /// (taken before the lock); otherwise `register`. A caller that stays queued while it
    /// holds a checkout of this pool is reported as a nested wait (`nested.rs`); `waker`
    /// is the waiting task's (see `register` for `unused`).
    pub(crate) fn reserve_or_register(
        &self,
        ask: WaitAsk,
        waker: &Waker,
        unused: &mut Option<Waker>,
    ) -> Result<Reg, PoolError> {
        // With room under its own cap, a caller is served by a create (in a partition, once
        // the gate has a unit for it), which the breaker may be turning away: then it
        // fails now, as a caller that reserved would in its create step, and no other
        // partition's idle object is evicted, nor their returns diverted, for it. At its
        // own cap it waits for a return, breaker or not, as a `Pool`'s caller does.
        if self.breaker_rejects() && self.size() < self.max_size() {
            return Err(self.circuit_open());
        }
        // A refused reservation tells the gate nothing here: `register` does, once queued.
        if self.waiting() == 0 && self.reserve(true) {
            return Ok(Reg::Permit);
        }
        let holder = self.holder_if_detecting();
        self.register(ask, holder, waker, unused)
    }

    /// Registers a caller that found nothing on the fast path (see the module docs):
    /// the first waiter of an empty queue sweeps, then tries to reserve; otherwise it
    /// queues. Its deadline is enforced by the deadline sweep (I8). `holder` is the
    /// caller's holder id while deadlock detection is on (else 0): a queued caller is then
    /// looked at by the nested-wait check once it has waited `NESTED_AFTER` (`nested.rs`).
    /// A queued caller is woken through `waker` once its cell is decided (I9);
    /// [`Shared::poll_queued`] replaces it.
    ///
    /// The waker is cloned before the lock (its code never runs under it). A clone that
    /// is not queued, because the caller got an object or a reservation instead, is left
    /// in `unused`: dropping it runs the waker's code, which may panic, so the caller
    /// drops it only once what it got is held where an unwind gives it back.
    pub(crate) fn register(
        &self,
        ask: WaitAsk,
        holder: u64,
        waker: &Waker,
        unused: &mut Option<Waker>,
    ) -> Result<Reg, PoolError> {
        let WaitAsk {
            priority,
            since,
            again,
            deadline,
            location,
        } = ask;
        // Allocate, and run the waker's own code, outside the lock.
        let w = if holder == 0 {
            Waiter::new(priority, since, deadline, true)
        } else {
            Waiter::detected(priority, since, deadline, holder, location)
        };
        debug_assert!(unused.is_none(), "the caller drops it after each step");
        *unused = Some(waker.clone());
        let mut q = self.queue.lock();
        if self.is_closed() {
            return Err(PoolError::Closed);
        }
        self.note_scarce();
        if q.is_empty() {
            // Waiters only ever queue in a scarce pool (I3): idle objects are then on the
            // stack, where one look finds them. Switching costs the heavy barrier and a
            // pass over the slots, once per scarce spell.
            self.become_scarce(&q);
            // Count ourselves as queued before looking, and make that visible to every
            // release in flight (I4): a scarce release pushes (an RMW) and then reads the
            // word, so either it sees the count (and hands its object over) or its push is
            // visible to the pop below. If we end up not queueing, the next `publish` takes
            // the count back.
            self.word.add_waiter();
            self.announce_scarce(&q);
            if let Some(i) = self.idle.pop(&self.slots) {
                self.publish(&q);
                return Ok(Reg::Got(i));
            }
            if self.try_reserve_locked() {
                self.publish(&q);
                return Ok(Reg::Permit);
            }
        }
        let waker = unused.take().expect("cloned above");
        if again {
            q.push_by_age(w.clone(), waker);
        } else {
            q.push(w.clone(), waker);
        }
        self.publish(&q);
        let waiting = q.len();
        let stale = if q.sweeper.as_ref().is_none_or(|a| deadline < a.at) {
            self.arm_sweep(&mut q, deadline)
        } else {
            None
        };
        if holder != 0 {
            let at = since.saturating_add(super::nested::NESTED_AFTER);
            self.arm_nested_check(&mut q, at);
        }
        drop(q);
        drop(stale);
        self.tell_gate_if_blocked(); // G1
        self.emit(|| PoolEvent::Exhausted { waiting });
        Ok(Reg::Queued(w))
    }

    /// Arms the deadline sweep at `at` (time since the epoch) on the pool's timer, in place
    /// of an armed one (which is disarmed; what it held is returned, to be dropped after
    /// the lock). `Duration::MAX` ("no deadline") arms nothing. Lock held.
    ///
    /// The timer entry holds a [`SharedRef`], not a `Pool`: it keeps the memory alive,
    /// never the pool open, so dropping the last handle still closes the pool at once;
    /// `close` disarms it.
    fn arm_sweep(&self, q: &mut WaitQueue, at: Duration) -> Option<Disarmed> {
        let stale = self.disarm_sweep(q);
        if at == Duration::MAX {
            return stale;
        }
        let r = SharedRef::to(self);
        let key = self.env.arm(
            at,
            Box::new(move || {
                r.get().sweep();
            }),
        );
        q.sweeper = Some(crate::waiters::Armed { at, key });
        stale
    }

    /// Disarms the deadline sweep, if armed; returns the timer entry's action (holding a
    /// `SharedRef`), to be dropped after the lock.
    pub(super) fn disarm_sweep(&self, q: &mut WaitQueue) -> Option<Disarmed> {
        let armed = q.sweeper.take()?;
        armed.key.and_then(crate::rt::Env::disarm)
    }

    /// The deadline sweep (run by the pool's timer, or by a model): times out queued
    /// waiters past their deadline and re-arms for the earliest deadline left (I8). A
    /// sweep that fires while an earlier one is armed (it lost a race to disarm) leaves
    /// that one armed.
    pub(crate) fn sweep(&self) {
        let now = self.now();
        let mut q = self.queue.lock();
        let (expired, next) = q.expire(now);
        let stale = match (&q.sweeper, next) {
            // The armed sweep is this one (due), or none is armed: re-arm for what is left.
            (None, Some(next)) => self.arm_sweep(&mut q, next),
            (Some(a), next) if a.at <= now => match next {
                Some(next) => self.arm_sweep(&mut q, next),
                None => self.disarm_sweep(&mut q),
            },
            _ => None,
        };
        self.publish(&q);
        drop(q);
        drop(stale);
        crate::waiters::wake_all(expired);
    }

    /// The decision on queued cell `w`, or `Pending` with `cx`'s waker the one its
    /// decider wakes (I9). Registration stored the first poll's waker: this is for the
    /// polls after it.
    pub(crate) fn poll_queued(&self, w: &Waiter, cx: &mut Context<'_>) -> Poll<Decision> {
        if let Some(d) = w.decision() {
            return Poll::Ready(d);
        }
        // Cloned, and the waker not kept dropped, outside the lock; the polling task is
        // found outside it too.
        let waker = cx.waker().clone();
        let poller = (w.holder() != 0).then(crate::rt::caller);
        let mut q = self.queue.lock();
        // Polled by another task than the one it queued in (the future was moved): it
        // waits as that task now, as a checkout counts as its poller's.
        if poller.is_some_and(|p| w.rehold(p)) {
            let at = self.now().saturating_add(super::nested::NESTED_AFTER);
            self.arm_nested_check(&mut q, at);
        }
        let spare = q.rewake(w, waker);
        drop(q);
        drop(spare);
        // Decided before the lock was taken (the entry was gone), or since: either way the
        // decision is visible now.
        match w.decision() {
            Some(d) => Poll::Ready(d),
            None => Poll::Pending,
        }
    }

    /// Settles a waiter whose future was dropped before it consumed the result (I5):
    /// takes it out of the queue, or gives back whatever it was handed (object, permit).
    pub(crate) fn cancel(&self, w: &Arc<Waiter>) {
        if w.queued {
            // Under the lock, with its entry (I9); the waker is dropped after it.
            let mut q = self.queue.lock();
            if let Some(waker) = q.decide_one(w, Decision::Cancelled) {
                self.publish(&q);
                drop(q);
                drop(waker);
                return;
            }
        } else if w.decide(Decision::Cancelled) {
            return;
        }
        // The caller is giving up (its own deadline, a `select!`): an object it was
        // handed that the pool now dooms is dropped aside, never on it.
        match w.decision() {
            Some(Decision::Handed(i)) => self.release_aside(i).never(),
            Some(d) => self.give_back(d).never(),
            None => {}
        }
    }

    /// Returns what a waiter cell was decided to, unused (I5).
    pub(crate) fn give_back(&self, d: Decision) -> Owed<'_> {
        match d {
            Decision::Permit => {
                self.unreserve();
                Owed::none(&self.refs)
            }
            Decision::Handed(i) => self.release(i),
            _ => Owed::none(&self.refs),
        }
    }

    /// Whether the checkout holding owned slot `i` (state `st`) had its capacity given
    /// back by `reclaim_leaked`: the slot's mark says so, or, if a racing fast release
    /// overwrote the mark, the slot's record. The record is only final under the lock (a
    /// reclaim writes it before its CAS and restores it if the CAS fails), so callers
    /// without the lock use the mark alone.
    pub(crate) fn is_reclaimed(&self, i: usize, st: usize) -> bool {
        let slot = self.slots.get(i);
        st & RECLAIMED != 0
            || slot.reported.load(Ordering::Relaxed)
                == slot.uses.load(Ordering::Relaxed) | crate::shared::slots::RECLAIM_MARK
    }
}
