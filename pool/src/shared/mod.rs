//! The pool's shared state: one allocation per pool, behind every `Pool` handle, guard and
//! background task.
//!
//! The parts, one file each:
//! - `refs.rs`: reference counting and every `unsafe` that rests on the allocation's
//!   lifetime;
//! - `word.rs`: the state word the lock-free paths read;
//! - `fast.rs`: the lock-free claim and release;
//! - `idle.rs`: the idle stack and the pool's two modes, calm and scarce;
//! - `handoff.rs`: **the protocol** — slow release, registration, hand-off, deadlines,
//!   cancellation — told whole in its first lines, with the invariants the other files
//!   cite as I1…I9;
//! - `settle.rs`: settling a create (the object to its caller or the pool, a failure to
//!   the caller and the breaker);
//! - `capacity.rs`: reservations, the partitions' global gate, eviction, retirement;
//! - `objects.rs`: objects into and out of slots (install, destroy, detach, metadata);
//! - `nested.rs`: deadlock detection (nested waits, the certain deadlock);
//! - `report.rs`: what the pool reports of itself (stats, queue positions, holders);
//! - this file: the struct, `close` and `resize`.
//!
//! Ownership rule (I1): an object belongs to exactly one party at a time. Only its owner
//! touches it or its slot's metadata, and only its owner moves the slot out of `BUSY`.

mod capacity;
mod fast;
mod handoff;
mod idle;
mod nested;
mod objects;
mod refs;
mod report;
mod settle;
pub(crate) mod slots;
mod word;

use std::time::Duration;

pub(crate) use capacity::Gate;
pub(crate) use fast::Release;
pub(crate) use handoff::{Reg, WaitAsk};
pub(crate) use refs::{resume, Handle, Held, Owed, SharedRef};

use crate::breaker::CircuitBreaker;
use crate::config::Config;
use crate::histogram::Histogram;
use crate::hooks::Hooks;
use crate::rt::Env;
use crate::shared::slots::{Slot, Slots, EMPTY, STATE_MASK};
use crate::stats::{DestroyReason, PoolEvent};
use crate::sync::hazard::Announcer;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, CachePadded, Mutex, Ordering};
use crate::traits::DynFactory;
use crate::waiters::WaitQueue;
use word::StateWord;

/// `Shared::size` of a retired partition (`retire_if_unused`): above any `max_size`, so no
/// reservation ever succeeds again.
const RETIRED: usize = usize::MAX / 2;

/// Monotonic counters: statistics only, nothing is published through them (`Relaxed`).
#[derive(Default)]
pub(crate) struct Counters {
    pub created: AtomicU64,
    pub destroyed: AtomicU64,
    pub timeouts: AtomicU64,
    /// Checkouts of objects that are gone (a live slot's count is in the slot). Added
    /// with Release after the slot's count was zeroed, read with Acquire before the
    /// slots (`scan`): a scan then never counts the same checkouts twice, only, for a
    /// moment, misses some.
    pub retired_uses: AtomicU64,
    /// The highest `acquired` a `stats()` has reported: what a scan missed for a moment
    /// never shows as the counter going down.
    pub acquired_seen: AtomicU64,
    pub leaks_detected: AtomicU64,
    /// Create outcomes of the last minute (the health's error rate).
    pub recent_creates: crate::recent::RecentOutcomes,
}

/// A pool's state.
pub(crate) struct Shared<T: Send + 'static> {
    slots: Slots<T>,
    /// Idle objects of a scarce pool (`idle.rs`). Own cache line.
    idle: idle::IdleStack,
    /// Coarse-clock ms when a caller last found the pool empty (scarce mode lasts while
    /// this is recent).
    scarce_ms: AtomicU64,
    queue: CachePadded<Mutex<WaitQueue>>,
    /// Read lock-free by the fast paths; written under `queue` (`word.rs`). Own cache line.
    word: CachePadded<StateWord>,
    /// Objects alive plus creates in flight (reserved capacity). Never exceeds `max_size`
    /// except transiently after `resize` shrinks it (I2).
    size: CachePadded<AtomicUsize>,
    max_size: AtomicUsize,
    /// References to this allocation (`refs.rs`). Own cache line: every waiting
    /// acquisition clones and drops a pool handle, and the read-mostly fields the fast
    /// paths read (slot segments, limits, hooks) must not share its line.
    refs: CachePadded<AtomicUsize>,
    /// This allocation's address, for `SharedRef`s (set once by `Handle::new`).
    self_ptr: AtomicPtr<Shared<T>>,
    /// The `Pool` handles' own allocation, for an acquisition that must start over
    /// without one (set once by `Pool::from_parts`).
    owner: std::sync::OnceLock<std::sync::Weak<Handle<T>>>,
    /// Fast releases' announcements (I7).
    hazards: Announcer,
    next_id: AtomicU64,
    counters: Counters,
    wait_hist: Histogram,
    /// How long objects are held (sampled: every 16th return of each object) and how long
    /// creates take.
    usage_hist: Histogram,
    create_hist: Histogram,
    config: Config,
    /// `max_uses` resolved (`u64::MAX` = unlimited), read on every return.
    max_uses: u64,
    /// `validation_interval` in ms, and whether checkout hooks exist: read on every async
    /// checkout, so precomputed.
    validation_ms: u64,
    checkout_hooks: bool,
    /// `config.deadlock != Off`, beside the other fields the checkout reads.
    detect_deadlocks: bool,
    factory: Box<dyn DynFactory<T>>,
    hooks: Hooks<T>,
    /// Set while a maintenance pass runs: keeps passes apart.
    maint_busy: AtomicUsize,
    /// Set (under `queue`) when a partitioned pool retired this partition.
    retired: AtomicBool,
    /// The last create error (`PoolError::CircuitOpen`'s source). A std mutex also under
    /// the model checkers: it guards error data only and orders nothing.
    last_create_error: std::sync::Mutex<Option<std::sync::Arc<crate::error::LastCreateError>>>,
    /// The circuit breaker on the factory, if any.
    breaker: Option<CircuitBreaker>,
    /// Random per pool: spreads the objects' `max_lifetime` jitter (`lifetime_ms`).
    jitter_seed: u64,
    /// Checkouts whose capacity was given back by `reclaim_leaked` and that are still out.
    reclaimed: AtomicUsize,
    /// The global cap of a partitioned pool, and this partition's id in it.
    gate: Option<(std::sync::Arc<dyn Gate>, usize)>,
    /// The clock, timers, runtime and events (`rt`).
    env: Env,
    /// Pairs of locations (held at, waiting at) already reported as nested waits. A std
    /// mutex also under the model checkers: it guards report data only.
    nested_seen: std::sync::Mutex<std::collections::HashSet<(usize, usize)>>,
}

// SAFETY: objects move between threads (they are `Send`), and each is only ever accessed by
// its single owner (I1), so sharing `Shared` needs only `T: Send`. All other fields are
// `Sync`.
unsafe impl<T: Send + 'static> Sync for Shared<T> {}
// SAFETY: as above; dropping the pool drops remaining objects on whatever thread that is.
unsafe impl<T: Send + 'static> Send for Shared<T> {}

impl<T: Send + 'static> Shared<T> {
    pub(crate) fn new(
        factory: Box<dyn DynFactory<T>>,
        config: Config,
        hooks: Hooks<T>,
        gate: Option<(std::sync::Arc<dyn Gate>, usize)>,
    ) -> Self {
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(std::ptr::from_ref(&config) as usize);
            h.finish() | 1
        };
        Shared {
            // Slots are allocated as objects need them (`install`): a large `max_size`
            // costs nothing until the pool grows into it.
            slots: Slots::new(),
            idle: idle::IdleStack::new(),
            scarce_ms: AtomicU64::new(0),
            queue: CachePadded(Mutex::new(WaitQueue::default())),
            word: CachePadded(StateWord::new()),
            size: CachePadded(AtomicUsize::new(0)),
            max_size: AtomicUsize::new(config.max_size),
            refs: CachePadded(AtomicUsize::new(1)),
            self_ptr: AtomicPtr::new(std::ptr::null_mut()),
            owner: std::sync::OnceLock::new(),
            hazards: Announcer::new(),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            wait_hist: Histogram::new(),
            usage_hist: Histogram::new(),
            create_hist: Histogram::new(),
            max_uses: config.max_uses.unwrap_or(u64::MAX),
            validation_ms: u64::try_from(config.validation_interval.as_millis())
                .unwrap_or(u64::MAX),
            checkout_hooks: hooks.on_checkout(),
            detect_deadlocks: config.deadlock != crate::DeadlockDetection::Off,
            breaker: config
                .circuit
                .map(|(n, cool, successes)| CircuitBreaker::new(n, successes, cool)),
            config,
            factory,
            hooks,
            maint_busy: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            last_create_error: std::sync::Mutex::new(None),
            jitter_seed: seed,
            reclaimed: AtomicUsize::new(0),
            gate,
            env: Env::new(),
            nested_seen: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    // ---------------------------------------------------------------- accessors

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn hooks(&self) -> &Hooks<T> {
        &self.hooks
    }

    pub(crate) fn factory(&self) -> &dyn DynFactory<T> {
        &*self.factory
    }

    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Slot `i`.
    #[inline]
    pub(crate) fn slot(&self, i: usize) -> &Slot<T> {
        self.slots.get(i)
    }

    /// Slots that may hold an object (indices below are valid): the high-water mark of
    /// installs, not the slots allocated for `max_size`, so a scan over the pool (stats,
    /// maintenance, `retain`) costs what its objects cost, not what its bound allows.
    /// A slot past it is empty, or an object being installed right now (seen next time).
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.used()
    }

    pub(crate) fn max_size(&self) -> usize {
        self.max_size.load(Ordering::Relaxed)
    }

    pub(crate) fn size(&self) -> usize {
        match self.size.load(Ordering::Relaxed) {
            RETIRED => 0,
            n => n,
        }
    }

    pub(crate) fn breaker(&self) -> Option<&CircuitBreaker> {
        self.breaker.as_ref()
    }

    /// The last create error (`PoolError::CircuitOpen`'s source).
    pub(crate) fn last_create_error(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<std::sync::Arc<crate::error::LastCreateError>>> {
        self.last_create_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a maintenance pass: `None` while another runs. The pass ends when the
    /// returned guard drops (also as a panic unwinds).
    pub(crate) fn begin_pass(&self) -> Option<crate::defer::OnDrop<impl FnOnce() + '_>> {
        let busy = &self.maint_busy;
        // Acquire: this pass sees the previous one's effects (its Release below).
        busy.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // Release: the next pass (any thread) sees this one's effects.
        Some(crate::defer::OnDrop::new(move || {
            busy.store(0, Ordering::Release)
        }))
    }

    pub(crate) fn jitter_seed(&self) -> u64 {
        self.jitter_seed
    }

    /// Records how long a checkout waited.
    pub(crate) fn record_wait(&self, d: Duration) {
        self.wait_hist.record(d);
    }

    /// Records how long an object was held (a sample).
    pub(crate) fn record_usage(&self, d: Duration) {
        self.usage_hist.record(d);
    }

    /// Records how long a create took.
    pub(crate) fn record_create(&self, d: Duration) {
        self.create_hist.record(d);
    }

    /// Counts an acquisition that timed out; the error to return.
    pub(crate) fn timed_out(&self) -> crate::PoolError {
        self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
        crate::PoolError::Timeout
    }

    /// Runs an acquisition to its end on the calling thread, for the `blocking()` of
    /// `Acquire` and `PartitionAcquire`: refuses a runtime worker, then waits at most
    /// `timeout` (the pool's `acquire_timeout` when `None`) for the future `start` makes.
    pub(crate) fn block_on_acquire<F>(
        &self,
        timeout: Option<Duration>,
        start: impl FnOnce() -> F,
    ) -> Result<crate::Pooled<T>, crate::PoolError>
    where
        F: std::future::Future<Output = Result<crate::Pooled<T>, crate::PoolError>> + Send,
    {
        self.env.assert_may_block();
        let timeout = timeout.unwrap_or(self.config.acquire_timeout);
        match self.env.block_on_timeout(timeout, start()) {
            Some(r) => r,
            None => Err(self.timed_out()),
        }
    }

    /// Time since the pool was built (aging, deadlines).
    pub(crate) fn now(&self) -> Duration {
        self.env.now()
    }

    /// [`now`](Shared::now) from the fine clock: the start and end of a waiting
    /// acquisition (its wait time, deadline and age).
    #[inline]
    pub(crate) fn now_fine(&self) -> Duration {
        self.env.now_fine()
    }

    /// The coarse clock, in ms.
    #[inline]
    pub(crate) fn coarse_ms(&self) -> u64 {
        self.env.coarse_ms()
    }

    /// A fresh clock reading in ms.
    pub(crate) fn exact_ms(&self) -> u64 {
        self.env.exact_ms()
    }

    /// Sends an event, building it only when someone listens.
    pub(crate) fn emit(&self, event: impl FnOnce() -> PoolEvent) {
        self.env.emit(event);
    }

    // ---------------------------------------------------------------- resize, close

    /// Changes `max_size` (clamped to 1..=MAX_SLOTS). Growing hands permits to waiters;
    /// shrinking destroys idle objects above the new size and marks the rest so they are
    /// destroyed as they come back.
    pub(crate) fn resize(&self, n: usize) {
        let n = n.clamp(1, crate::shared::slots::MAX_SLOTS);
        let mut q = self.queue.lock();
        if self.is_closed() {
            return;
        }
        // No slots are allocated here: creates allocate what they need (`install`).
        self.max_size.store(n, Ordering::Relaxed);
        let mut wake = Vec::new();
        let mut doomed = Vec::new();
        let size = self.size.load(Ordering::Relaxed);
        if size < n {
            // Freed capacity goes to the queued, never to a newcomer (I6).
            while self.try_reserve_locked() {
                match self.hand_to_best(&mut q, crate::waiters::Decision::Permit) {
                    Some(w) => wake.push(w),
                    None => {
                        self.size.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            self.publish(&q);
        } else if size > n {
            // Releases racing with the take must see the divert bit (I4).
            self.announce(&q, true);
            doomed = self.take_idle(&q, size - n);
        }
        drop(q);
        for i in doomed {
            self.destroy(i, DestroyReason::Resized).never();
        }
        // Room made by growing that the gate could not fill (G1).
        self.tell_gate_if_blocked();
        // Last: a waker that panics reaches the caller with the resize done.
        crate::waiters::wake_all(wake);
    }

    /// Closes the pool: queued waiters get `Closed`, idle objects are destroyed, and every
    /// checked-out object is destroyed when it comes back (the word says closed). Returns after the
    /// idle objects are gone. Idempotent.
    pub(crate) fn close(&self) {
        self.close_with(false);
    }

    /// `close`, with the idle objects dropped here, or away from the caller if `aside`
    /// (`destroy_aside`: for `drain`, which must not overrun its own time limit on slow
    /// `Drop`s, and waits for them through `size`).
    pub(crate) fn close_with(&self, aside: bool) {
        let mut q = self.queue.lock();
        if self.is_closed() {
            return;
        }
        let closed = q.decide_all(crate::waiters::Decision::PoolClosed);
        // Callers waiting for their own create fail at once as well; the create goes on,
        // and its object is destroyed when it lands (`finish_create`). The cells are
        // decided here (a CAS, no user code) and woken and let go after the unlock.
        let unqueued: Vec<_> = std::mem::take(&mut q.unqueued)
            .into_iter()
            .map(|c| {
                let won = c.decide(crate::waiters::Decision::PoolClosed);
                (c, won)
            })
            .collect();
        let stale = self.disarm_sweep(&mut q);
        self.word.close();
        // Every release from now on sees the pool closed, or its IDLE store is seen below
        // (I4).
        self.announce(&q, false);
        let doomed = self.take_idle(&q, usize::MAX);
        drop(q);
        drop(stale);
        for i in doomed {
            if aside {
                self.destroy_aside(i, DestroyReason::Closed);
            } else {
                self.destroy(i, DestroyReason::Closed).never();
            }
        }
        // Last: a waker that panics reaches the caller with the pool closed, once every
        // other waiter has been woken.
        let mut wakes = crate::waiters::Wakes::default();
        for w in closed {
            wakes.wake(|| w.wake());
        }
        for (c, _) in unqueued.iter().filter(|(_, won)| *won) {
            wakes.wake(|| c.wake());
        }
        drop(unqueued);
        wakes.finish();
    }

    /// Records the allocation of the `Pool` handles (once, at build).
    pub(crate) fn set_owner(&self, owner: std::sync::Weak<Handle<T>>) {
        let _ = self.owner.set(owner);
    }

    /// A new `Pool` handle's allocation, while a handle exists.
    pub(crate) fn owner(&self) -> Option<std::sync::Arc<Handle<T>>> {
        self.owner.get()?.upgrade()
    }
}

impl<T: Send + 'static> Drop for Shared<T> {
    fn drop(&mut self) {
        // No object can remain (each holds a reference), but be exact: drop whatever a
        // slot still holds.
        for i in 0..self.slots.cap() {
            let s = self.slots.get(i);
            if s.state.load(Ordering::Relaxed) & STATE_MASK != EMPTY {
                // SAFETY: we are the last user; a non-empty slot holds an object.
                objects::drop_object(unsafe { s.take() }, &self.config.name);
            }
        }
    }
}
