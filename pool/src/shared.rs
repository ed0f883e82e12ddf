//! The pool's shared state and its protocol; `docs/architecture.md` tells it in prose.
//!
//! Ownership rule: an object belongs to exactly one party at a time. `IDLE` objects belong
//! to the pool; a `BUSY` slot belongs to whoever moved it there (a CAS on the slot), or to
//! the waiter it was handed to (a CAS on the waiter's cell). Only the owner touches the
//! object or the slot's metadata, and only the owner moves the slot out of `BUSY`.
//!
//! Locks: the fast path takes no lock: claiming an idle slot is one CAS, releasing a slot
//! nobody waits for is a store, the light barrier and a read of the state word
//! (`try_release_fast`). Everything that involves waiters, capacity given back, closing
//! or resizing runs under `queue`, a short `Mutex` that never spans an `.await` and never
//! runs user code (objects are dropped after it is released).

use std::mem::ManuallyDrop;
use std::panic::Location;
use std::ptr::{self, NonNull};
use std::time::Duration;

use crate::config::Config;
use crate::error::{BoxError, PoolError};
use crate::histogram::Histogram;
use crate::hooks::Hooks;
use crate::slots::{Slot, Slots, BUSY, EMPTY, IDLE, RECLAIMED, STATE_MASK, WANTED};
use crate::stats::{DestroyReason, PoolEvent, PoolStats};
use crate::sync::{
    hint, Arc, AtomicPtr, AtomicU64, AtomicUsize, CachePadded, Mutex, MutexGuard, Ordering,
};
use crate::traits::DynFactory;
use crate::waiters::{WaitQueue, Waiter, CLOSED, FAILED, HANDED, PERMIT};
use crate::Priority;

/// Bit 0 of `Shared::word`: the pool is closed.
const CLOSED_BIT: usize = 1;
/// Bit 1 of `Shared::word`: returns must look at the slow path even with nobody queued —
/// the pool is above `max_size` (shrinking), or another partition waits for global
/// capacity. Recomputed by every `publish`. (A reclaimed checkout is caught by its slot's
/// record instead, so a guard that never returns does not slow every release.)
const DIVERT_BIT: usize = 2;
/// `Shared::word >> WAITERS_SHIFT` is the number of queued waiters.
/// `Shared::size` of a retired partition (`retire_if_unused`): above any `max_size`, so no
/// reservation ever succeeds again.
const RETIRED: usize = usize::MAX / 2;
const WAITERS_SHIFT: u32 = 2;

/// Monotonic counters: statistics only, nothing is published through them (`Relaxed`).
#[derive(Default)]
pub(crate) struct Counters {
    pub created: AtomicU64,
    pub destroyed: AtomicU64,
    pub timeouts: AtomicU64,
    pub create_attempts: AtomicU64,
    pub create_errors: AtomicU64,
    /// Checkouts of objects that are gone (a live slot's count is in the slot).
    pub retired_uses: AtomicU64,
    pub leaks_detected: AtomicU64,
}

/// References to the allocation the caller now owes, after settling a slot: every live
/// object holds one (taken by `install`), so `destroy`/`detach` hand the object's to the
/// caller, who gives it up once done with the pool. This is what keeps the pool's memory
/// alive under a guard after the last `Pool` handle is gone.
///
/// The caller gives them up after its last use of `&Shared`: a guard through
/// [`Shared::unref`] and the `Box::into_raw` pointer (freeing inside a `&self` method would
/// free memory a live reference points to); a caller that holds a reference of its own
/// (a `Pool` handle, a `SharedRef`) with [`Owed::never`], which cannot be the last.
#[must_use = "owed references must be given up"]
pub(crate) struct Owed<'a>(pub usize, pub &'a AtomicUsize);

impl Owed<'_> {
    /// For callers that hold a reference of their own: gives the owed ones back (never the
    /// last, so never a free).
    pub(crate) fn never(self) {
        if self.0 > 0 {
            // Release: our uses of the pool happen-before whoever frees it.
            let before = self.1.fetch_sub(self.0, Ordering::Release);
            debug_assert!(
                before > self.0,
                "a caller holding a reference gave up the last one"
            );
        }
    }
}

/// A counted reference to the shared state that is not a `Pool` handle: it keeps the
/// allocation alive without keeping the pool open. A create in flight holds one, so
/// dropping the last `Pool` closes the pool at once (the late object is then destroyed).
pub(crate) struct SharedRef<T: Send + 'static>(NonNull<Shared<T>>);

// SAFETY: a counted pointer to `Shared<T>`, which is `Send + Sync` (see `Shared`).
unsafe impl<T: Send + 'static> Send for SharedRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send + 'static> Sync for SharedRef<T> {}

impl<T: Send + 'static> SharedRef<T> {
    /// `ptr` is the `Box::into_raw` pointer, and the caller holds a reference already.
    pub(crate) fn new(ptr: NonNull<Shared<T>>) -> Self {
        // SAFETY: the caller's reference keeps the allocation alive.
        let refs = unsafe { &ptr.as_ref().refs };
        // Relaxed, as `Arc::clone`: the caller's own reference already orders everything.
        refs.fetch_add(1, Ordering::Relaxed);
        SharedRef(ptr)
    }

    pub(crate) fn get(&self) -> &Shared<T> {
        // SAFETY: our reference keeps the allocation alive.
        unsafe { self.0.as_ref() }
    }

    /// Gives up owed references (ours still keeps the allocation alive).
    pub(crate) fn settle(&self, owed: Owed<'_>) {
        owed.never();
    }
}

impl<T: Send + 'static> Drop for SharedRef<T> {
    fn drop(&mut self) {
        // SAFETY: we own one reference; `self.0` came from `Box::into_raw`.
        unsafe { Shared::unref(self.0) };
    }
}

/// The global capacity shared by the partitions of a `PartitionedPool` (`partition.rs`).
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
}

/// The state word (see `Shared::word`) and, on the same cache line, which light barrier
/// the fast release runs (`sync::barrier`, read once when the pool is built).
pub(crate) struct StateWord {
    word: AtomicUsize,
    asymmetric: bool,
}

impl std::ops::Deref for StateWord {
    type Target = AtomicUsize;
    fn deref(&self) -> &AtomicUsize {
        &self.word
    }
}

/// A disarmed timer entry's action: dropped after the queue lock is released (it may hold
/// a `SharedRef`).
#[cfg(not(riptide_model))]
type Disarmed = crate::timer::Action;
#[cfg(riptide_model)]
struct Disarmed;

/// A fast release's announcement (see `sync::hazard`).
#[cfg(not(riptide_model))]
type Hazard = &'static crate::sync::hazard::Record;
#[cfg(riptide_model)]
type Hazard = ();

/// What [`Shared::try_release_fast`] did.
pub(crate) enum Release {
    /// The object is back in the pool (or already someone else's): hands off.
    Done,
    /// The caller still owns the slot: call [`Shared::release_slow`].
    Slow,
}

/// What registering as a waiter produced.
pub(crate) enum Reg {
    /// An idle object, found by the registration sweep.
    Got(usize),
    /// Capacity was reserved: create an object.
    Permit,
    /// Queued: wait on the cell.
    Queued(Arc<Waiter>),
}

pub(crate) struct Shared<T: Send + 'static> {
    pub slots: Slots<T>,
    queue: CachePadded<Mutex<WaitQueue>>,
    /// `queued waiters << WAITERS_SHIFT | DIVERT_BIT | CLOSED_BIT`: written under `queue`,
    /// read lock-free by the fast paths (fairness and close checks on checkout; after the
    /// release store, whether the release must look again). Own cache line.
    word: CachePadded<StateWord>,
    /// Objects alive plus creates in flight (reserved capacity). Never exceeds
    /// `max_size` except transiently after `resize` shrinks it.
    pub size: CachePadded<AtomicUsize>,
    pub max_size: AtomicUsize,
    /// References to this allocation: one for the `Handle`, one per live object, one per
    /// `SharedRef` (creates in flight).
    refs: AtomicUsize,
    next_id: AtomicU64,
    pub counters: Counters,
    pub wait_hist: Histogram,
    pub config: Config,
    /// `max_uses` resolved (`u64::MAX` = unlimited), read on every return.
    max_uses: u64,
    /// `validation_interval` in ms, and whether checkout hooks exist: read on every async
    /// checkout, so precomputed.
    validation_ms: u64,
    checkout_hooks: bool,
    pub factory: Box<dyn DynFactory<T>>,
    pub hooks: Hooks<T>,
    /// This allocation as `Box::into_raw` returned it (set once by `Pool::from_parts`):
    /// what `SharedRef`s are made from.
    self_ptr: AtomicPtr<Shared<T>>,
    /// Set while a maintenance pass runs: keeps passes apart.
    pub maint_busy: AtomicUsize,
    /// Set (under `queue`) when a partitioned pool retired this partition.
    retired: crate::sync::AtomicBool,
    /// The last create error (`PoolError::CircuitOpen`'s source). A std mutex also under
    /// the model checkers: it guards error data only and orders nothing.
    last_create_error: std::sync::Mutex<Option<std::sync::Arc<crate::error::LastCreateError>>>,
    /// Coarse-clock ms of the last logged create failure, and failures not logged since.
    #[cfg(not(riptide_model))]
    create_warned_ms: std::sync::atomic::AtomicU64,
    #[cfg(not(riptide_model))]
    create_unlogged: std::sync::atomic::AtomicU64,
    /// The circuit breaker's state word (see `lifecycle.rs`).
    pub breaker: AtomicU64,
    /// Jitter source for `max_lifetime`.
    pub rng: AtomicU64,
    /// How long objects are held (sampled: every 16th return of each object) and how long
    /// creates take, beside the wait-time histogram.
    pub usage_hist: Histogram,
    pub create_hist: Histogram,
    /// Checkouts whose capacity was given back by `reclaim_leaked` and that are still out.
    pub reclaimed: AtomicUsize,
    /// The global cap of a partitioned pool, and this partition's id in it.
    pub gate: Option<(std::sync::Arc<dyn Gate>, usize)>,
    #[cfg(not(riptide_model))]
    epoch: std::time::Instant,
    /// Under a model checker: a logical clock (ns) the models advance, so deadlines are modelled.
    #[cfg(riptide_model)]
    pub model_clock: AtomicU64,
    /// Under a model checker: create threads, so models can join them.
    #[cfg(riptide_model)]
    pub model_tasks: Mutex<Vec<crate::sync::thread::JoinHandle<()>>>,
    /// Under a model checker: fast releases between their `IDLE` store and their last read
    /// of the pool (the stand-in for `sync::hazard`'s per-thread records).
    #[cfg(riptide_model)]
    releasing: AtomicUsize,
    /// The tokio runtime current at build, while it is alive.
    #[cfg(not(riptide_model))]
    pub runtime: Option<crate::exec::Runtime>,
    /// Created by the first `events()` call: its 1024-entry ring costs ~64 KiB.
    #[cfg(not(riptide_model))]
    events: std::sync::OnceLock<tokio::sync::broadcast::Sender<PoolEvent>>,
    /// Set once `events()` was called: until then no event is built and the broadcast's
    /// own lock (`receiver_count`) is never taken.
    #[cfg(not(riptide_model))]
    subscribed: std::sync::atomic::AtomicBool,
}

// SAFETY: objects move between threads (they are `Send`), and each is only ever accessed by
// its single owner (see the module docs), so sharing `Shared` needs only `T: Send`. All
// other fields are `Sync`.
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
        #[cfg(not(riptide_model))]
        crate::clock::start();
        crate::sync::barrier::init();
        let checkout_hooks = hooks.on_checkout();
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(std::ptr::from_ref(&config) as usize);
            h.finish() | 1
        };
        Shared {
            hooks,
            self_ptr: AtomicPtr::new(ptr::null_mut()),
            maint_busy: AtomicUsize::new(0),
            retired: crate::sync::AtomicBool::new(false),
            last_create_error: std::sync::Mutex::new(None),
            #[cfg(not(riptide_model))]
            create_warned_ms: std::sync::atomic::AtomicU64::new(0),
            #[cfg(not(riptide_model))]
            create_unlogged: std::sync::atomic::AtomicU64::new(0),
            breaker: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
            usage_hist: Histogram::new(),
            create_hist: Histogram::new(),
            reclaimed: AtomicUsize::new(0),
            gate,
            slots: Slots::new(config.max_size),
            queue: CachePadded(Mutex::new(WaitQueue::default())),
            word: CachePadded(StateWord {
                word: AtomicUsize::new(0),
                asymmetric: crate::sync::barrier::asymmetric(),
            }),
            size: CachePadded(AtomicUsize::new(0)),
            max_size: AtomicUsize::new(config.max_size),
            refs: AtomicUsize::new(1),
            next_id: AtomicU64::new(1),
            counters: Counters::default(),
            wait_hist: Histogram::new(),
            max_uses: config.max_uses.unwrap_or(u64::MAX),
            validation_ms: u64::try_from(config.validation_interval.as_millis())
                .unwrap_or(u64::MAX),
            checkout_hooks,
            config,
            factory,
            #[cfg(not(riptide_model))]
            epoch: std::time::Instant::now(),
            #[cfg(riptide_model)]
            model_clock: AtomicU64::new(0),
            #[cfg(riptide_model)]
            model_tasks: Mutex::new(Vec::new()),
            #[cfg(riptide_model)]
            releasing: AtomicUsize::new(0),
            #[cfg(not(riptide_model))]
            runtime: crate::exec::Runtime::capture(),
            #[cfg(not(riptide_model))]
            events: std::sync::OnceLock::new(),
            #[cfg(not(riptide_model))]
            subscribed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Time since the pool was built (aging, deadlines). Under loom, a logical clock.
    pub(crate) fn now(&self) -> Duration {
        #[cfg(not(riptide_model))]
        return self.epoch.elapsed();
        #[cfg(riptide_model)]
        return Duration::from_nanos(self.model_clock.load(Ordering::Relaxed));
    }

    #[cfg(not(riptide_model))]
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<PoolEvent> {
        // Relaxed: a receiver subscribed before this store misses nothing it could have
        // seen (events sent before `subscribe` are not delivered to it anyway).
        let rx = self
            .events
            .get_or_init(|| tokio::sync::broadcast::channel(1024).0)
            .subscribe();
        self.subscribed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        rx
    }

    /// Records the allocation's own pointer; called once, before the pool is shared.
    pub(crate) fn set_self_ptr(&self, p: NonNull<Self>) {
        self.self_ptr.store(p.as_ptr(), Ordering::Relaxed);
    }

    /// The `Box::into_raw` pointer (see `set_self_ptr`).
    pub(crate) fn self_ptr(&self) -> NonNull<Self> {
        NonNull::new(self.self_ptr.load(Ordering::Relaxed)).expect("set by Pool::from_parts")
    }

    /// The runtime captured at build, if any.
    pub(crate) fn runtime_handle(&self) -> Option<&crate::exec::Runtime> {
        #[cfg(not(riptide_model))]
        return self.runtime.as_ref();
        #[cfg(riptide_model)]
        return None;
    }

    pub(crate) fn lock_queue(&self) -> MutexGuard<'_, WaitQueue> {
        self.queue.lock()
    }

    /// Fails every queued waiter with `CircuitOpen` (the breaker just opened).
    pub(crate) fn fail_waiters_circuit_open(&self) {
        let mut q = self.queue.lock();
        let waiters: Vec<_> = q.drain().collect();
        self.publish(&q);
        drop(q);
        for w in waiters {
            w.decide_and_wake(crate::waiters::CIRCUIT_OPEN);
        }
    }

    /// Sends an event, building it only when someone listens.
    pub(crate) fn emit(&self, event: impl FnOnce() -> PoolEvent) {
        #[cfg(not(riptide_model))]
        if let Some(tx) = self
            .subscribed
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| self.events.get())
            .flatten()
            .filter(|tx| tx.receiver_count() > 0)
        {
            let _ = tx.send(event());
        }
        #[cfg(riptide_model)]
        let _ = event;
    }

    // ---------------------------------------------------------------- state word

    /// Relaxed: this is a hint for fairness and close. A caller that happens-after
    /// `close()` sees `CLOSED_BIT` by coherence; a racing one is ordered either way.
    #[inline]
    fn word(&self) -> usize {
        self.word.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.word() & CLOSED_BIT != 0
    }

    pub(crate) fn waiting(&self) -> usize {
        self.word() >> WAITERS_SHIFT
    }

    /// Whether returns must take the slow path with nobody queued (see `DIVERT_BIT`).
    fn must_divert(&self) -> bool {
        self.size.load(Ordering::Relaxed) > self.max_size.load(Ordering::Relaxed)
            || self.others_blocked()
    }

    /// Publishes the queue length and the divert bit; call with the lock held.
    pub(crate) fn publish(&self, q: &WaitQueue) {
        let closed = self.word.load(Ordering::Relaxed) & CLOSED_BIT;
        let divert = if self.must_divert() { DIVERT_BIT } else { 0 };
        self.word.store(
            q.len() << WAITERS_SHIFT | divert | closed,
            Ordering::Relaxed,
        );
    }

    /// Before inspecting or marking slots that releases may be returning right now: makes
    /// the word (already updated under the lock) visible to every release that has not
    /// yet read it, or makes that release's `IDLE` store visible to us (`sync::barrier`).
    /// Sets the divert bit first when `divert` (shrink, reclaim, yield), so a release that
    /// overwrote a mark we are about to set sees that it must look again.
    pub(crate) fn announce(&self, _q: &MutexGuard<'_, WaitQueue>, divert: bool) {
        if divert {
            let w = self.word.load(Ordering::Relaxed);
            self.word.store(w | DIVERT_BIT, Ordering::Relaxed);
        }
        crate::sync::barrier::heavy();
    }

    // ---------------------------------------------------------------- fast path

    /// Claims an idle object if nobody is queued: `Ok(None)` when there is none to take.
    #[inline]
    pub(crate) fn try_claim(&self) -> Result<Option<usize>, Closed> {
        let w = self.word();
        if w & CLOSED_BIT != 0 {
            return Err(Closed);
        }
        if w >> WAITERS_SHIFT != 0 {
            // Callers are queued: taking an object now would jump ahead of them. (The
            // divert bit concerns returns only.)
            return Ok(None);
        }
        let now = self.coarse_ms();
        while let Some(i) = self.claim_idle() {
            // Never hand out an object past its lifetime, even between maintenance passes.
            if self.slots.get(i).expires_ms.load(Ordering::Relaxed) <= now {
                self.destroy(i, DestroyReason::MaxLifetime).never();
                continue;
            }
            return Ok(Some(i));
        }
        Ok(None)
    }

    /// Whether checking out reused slot `i` needs the async path: recycle hooks, or
    /// validation because it sat idle at least `validation_interval`. Read before
    /// `checkout` overwrites the slot's stamp.
    #[inline]
    pub(crate) fn needs_recycle(&self, i: usize) -> bool {
        if self.checkout_hooks {
            return true;
        }
        let idle_since = self.slots.get(i).idle_since();
        self.coarse_ms().saturating_sub(idle_since) >= self.validation_ms
    }

    /// One CAS `IDLE → BUSY` on the first idle slot, scanning from this thread's hint.
    #[inline]
    fn claim_idle(&self) -> Option<usize> {
        let cap = self.slots.used();
        if cap == 0 {
            return None;
        }
        let start = hint::get();
        let mut i = if start < cap { start } else { 0 };
        for _ in 0..cap {
            let s = &self.slots.get(i).state;
            // The plain load keeps the scan from writing to cache lines it cannot claim.
            // Acquire on the CAS pairs with the Release that made the slot idle: the last
            // owner's writes to the object happen-before ours.
            if s.load(Ordering::Relaxed) == IDLE
                && s.compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                if i != start {
                    hint::set(i);
                }
                return Some(i);
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        None
    }

    /// Records a checkout in the slot (owner-only writes) and returns the slot.
    #[inline]
    pub(crate) fn checkout(&self, i: usize, loc: &'static Location<'static>) -> &Slot<T> {
        let s = self.slots.get(i);
        s.uses
            .store(s.uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // Stores only when the value changes (a caller taking the same object from the
        // same line within the same millisecond writes nothing): fewer stores for the
        // next locked instruction to wait for.
        let loc = ptr::from_ref(loc).cast_mut();
        if s.location.load(Ordering::Relaxed) != loc {
            s.location.store(loc, Ordering::Relaxed);
        }
        s.stamp_checkout(self.coarse_ms());
        s
    }

    /// Claims slot `i` if it is idle (CAS `IDLE → BUSY`); the returned guard releases it
    /// again if it is dropped armed (a panic in user code looking at it).
    pub(crate) fn claim_if_idle(&self, i: usize) -> Option<ReleaseOnDrop<'_, T>> {
        let s = &self.slots.get(i).state;
        // Acquire: as in `claim_idle`.
        // `then`, not `then_some`: the guard must exist only for a slot we claimed.
        (s.load(Ordering::Relaxed) == IDLE
            && s.compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok())
        .then(|| ReleaseOnDrop(self, i))
    }

    /// A new object's id (the ids of a pool's objects are unique).
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// What the pool knows about the object in owned slot `i` (see `ObjectMeta`).
    pub(crate) fn meta(&self, i: usize) -> crate::ObjectMeta {
        let s = self.slots.get(i);
        let now = self.coarse_ms();
        let ms = |from: u64| Duration::from_millis(now.saturating_sub(from));
        let (idle_for, held_for) = match s.held_since() {
            Some(since) => (Duration::ZERO, ms(since)),
            None => (ms(s.idle_since()), Duration::ZERO),
        };
        crate::ObjectMeta {
            id: s.id.load(Ordering::Relaxed),
            age: ms(s.created_ms.load(Ordering::Relaxed)),
            idle_for,
            held_for,
            uses: s.uses.load(Ordering::Relaxed),
        }
    }

    /// Whether the object in owned slot `i` is past its lifetime.
    #[inline]
    pub(crate) fn expired(&self, i: usize) -> bool {
        self.slots.get(i).expires_ms.load(Ordering::Relaxed) <= self.coarse_ms()
    }

    /// Whether an object checked out `uses` times must be retired.
    #[inline]
    pub(crate) fn used_up(&self, uses: u64) -> bool {
        uses >= self.max_uses
    }

    /// Gives back owned slot `i`.
    #[inline]
    pub(crate) fn release(&self, i: usize) -> Owed<'_> {
        self.release_slot(self.slots.get(i), i)
    }

    /// The fast release: `Done` when the object is back (idle, or already taken by
    /// someone else); then the caller must not touch `self` again (the pool may be freed
    /// at any moment). `Slow` when the caller still owns the slot and must call
    /// [`release_slow`](Shared::release_slow).
    ///
    /// With nobody queued and no mark on the slot this is a load, a plain `Release` store
    /// of `IDLE`, the light barrier and a load of the state word: no locked instruction.
    /// A marker that raced with the store (its mark was overwritten) changed the word and
    /// ran the heavy barrier before marking, so the word read here shows it; the release
    /// then takes its object back by CAS and goes the slow way (`docs/architecture.md`,
    /// "The release store"). While the store and the word read are in flight this thread
    /// announces the pool in its hazard record, so a concurrent last owner does not free
    /// the memory under them.
    #[inline]
    pub(crate) fn try_release_fast(&self, slot: &Slot<T>) -> Release {
        let s = &slot.state;
        // Relaxed: only the owner (us) and markers holding the lock write a BUSY slot; a
        // mark we miss here is caught by the word check below.
        if s.load(Ordering::Relaxed) != BUSY {
            return Release::Slow;
        }
        let Some(hz) = self.hazard() else {
            return self.release_first(slot);
        };
        // Release: our writes to the object happen-before the next claimer's Acquire CAS.
        crate::sync::store_over_marks(s, IDLE);
        crate::sync::barrier::light(self.word.asymmetric);
        // Relaxed: the barrier pair orders both loads against the markers' updates (the
        // word; a reclaim's record, on the line we just wrote).
        if self.word.load(Ordering::Relaxed) == 0
            && slot.reported.load(Ordering::Relaxed) & crate::slots::RECLAIM_MARK == 0
        {
            self.hazard_exit(hz);
            return Release::Done;
        }
        self.take_back(slot, hz)
    }

    /// The fast release found `word` non-zero after its store (someone is queued, or the
    /// pool is closing, shrinking or yielding) or its checkout reclaimed. Takes the object back if it is
    /// still idle (Acquire: as in `claim_idle`); if it is not, whoever took it owns it
    /// now, and it is no longer ours to settle.
    #[cold]
    #[inline(never)]
    fn take_back(&self, slot: &Slot<T>, hz: Hazard) -> Release {
        let rescued = slot
            .state
            .compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        // After a successful take-back our object keeps the pool alive again.
        self.hazard_exit(hz);
        if rescued {
            Release::Slow
        } else {
            Release::Done
        }
    }

    /// The fast release on a thread without a hazard record yet: makes one; while the
    /// thread's thread-locals are being destroyed (no record can be had), the release goes
    /// the slow way, under the lock, where it sees every queued waiter.
    #[cold]
    #[inline(never)]
    fn release_first(&self, slot: &Slot<T>) -> Release {
        #[cfg(not(riptide_model))]
        if crate::sync::hazard::record().is_some() {
            return self.try_release_fast(slot);
        }
        let _ = slot;
        Release::Slow
    }

    /// This thread's hazard record (see `sync::hazard`), now announcing this pool; `None`
    /// if the thread has none yet.
    #[cfg(not(riptide_model))]
    #[inline]
    fn hazard(&self) -> Option<Hazard> {
        let r = crate::sync::hazard::mine()?;
        r.enter(ptr::from_ref(self) as usize);
        Some(r)
    }

    #[cfg(not(riptide_model))]
    #[inline]
    fn hazard_exit(&self, r: Hazard) {
        r.exit();
    }

    /// Under a model checker the announcement is a counter in the pool itself (global
    /// per-thread records do not fit a model's fresh state per execution); `unref` waits
    /// for it to drop to zero before freeing, as it waits for the records normally.
    #[cfg(riptide_model)]
    fn hazard(&self) -> Option<Hazard> {
        self.releasing.fetch_add(1, Ordering::AcqRel);
        Some(())
    }

    #[cfg(riptide_model)]
    fn hazard_exit(&self, (): Hazard) {
        self.releasing.fetch_sub(1, Ordering::AcqRel);
    }

    /// Gives back owned slot `i` (`slot` is `self.slots.get(i)`): the fast release, else
    /// the slow path. After it returns the caller must not touch `self` again, except to
    /// give up the returned `Owed` as that type says.
    #[inline]
    pub(crate) fn release_slot(&self, slot: &Slot<T>, i: usize) -> Owed<'_> {
        match self.try_release_fast(slot) {
            Release::Done => Owed(0, &self.refs),
            Release::Slow => self.release_slow(i),
        }
    }

    // ---------------------------------------------------------------- slow release

    /// Gives back owned slot `i` under the lock: destroy it (closed, reclaimed, shrinking,
    /// another partition blocked), hand it to the best waiter, or make it idle.
    #[cold]
    pub(crate) fn release_slow(&self, i: usize) -> Owed<'_> {
        let q = self.queue.lock();
        // Stable under the lock: everyone else who writes a BUSY slot holds the lock.
        let st = self.slots.get(i).state.load(Ordering::Relaxed);
        if self.is_reclaimed(i, st) {
            // If a racing fast release overwrote the mark, restore it (we own the slot,
            // and reclaims mark under this lock): `take_out` reads the mark.
            self.slots
                .get(i)
                .state
                .store(st | RECLAIMED, Ordering::Relaxed);
            drop(q);
            self.destroy(i, DestroyReason::Reclaimed)
        } else if self.is_closed() {
            drop(q);
            self.destroy(i, DestroyReason::Closed)
        } else if self.size.load(Ordering::Relaxed) > self.max_size.load(Ordering::Relaxed) {
            drop(q);
            self.destroy(i, DestroyReason::Resized)
        } else if q.is_empty() && self.others_blocked() {
            // Another partition waits for global capacity: this object makes room.
            drop(q);
            self.destroy(i, DestroyReason::Evicted)
        } else {
            self.hand_or_idle(q, i);
            Owed(0, &self.refs)
        }
    }

    /// With the lock held and slot `i` owned: hand it to the best waiter, else make it idle.
    fn hand_or_idle(&self, mut q: MutexGuard<'_, WaitQueue>, i: usize) {
        let s = &self.slots.get(i).state;
        while let Some(w) = q.pop_best(|| self.now(), self.config.starvation_threshold) {
            // Keep the slot marked while others still wait, so its next release comes back
            // here. Set before `decide`, whose Release publishes it to the new owner.
            // In a partition, also while another partition waits for global capacity.
            let mark = if q.is_empty() && !self.others_blocked() {
                0
            } else {
                WANTED
            };
            s.store(BUSY | mark, Ordering::Relaxed);
            if w.decide(HANDED + i) {
                self.publish(&q);
                drop(q);
                w.waker.wake();
                return;
            }
        }
        self.publish(&q);
        // Release: pairs with a claimer's Acquire CAS (the object's state is published).
        s.store(IDLE, Ordering::Release);
    }

    // ---------------------------------------------------------------- capacity

    /// Reserves capacity for one object by CAS below `max_size`; never exceeds it. In a
    /// partition, also one unit of the global cap (evicting another partition's oldest idle
    /// object if needed): call it holding no lock.
    pub(crate) fn try_reserve(&self) -> bool {
        self.reserve(true)
    }

    /// `try_reserve` for callers holding the queue lock: global capacity only if free.
    fn try_reserve_locked(&self) -> bool {
        self.reserve(false)
    }

    fn reserve(&self, may_evict: bool) -> bool {
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
        crate::sync::increment_below(&self.size, self.max_size.load(Ordering::Relaxed))
    }

    /// Gives back one unit of capacity: to the best waiter as a create permit if one is
    /// queued (so it cannot be taken from under it), otherwise to the pool.
    pub(crate) fn unreserve(&self) {
        let mut q = self.queue.lock();
        let shrinking = self.size.load(Ordering::Relaxed) > self.max_size.load(Ordering::Relaxed);
        if !self.is_closed() && !shrinking {
            while let Some(w) = q.pop_best(|| self.now(), self.config.starvation_threshold) {
                if w.decide(PERMIT) {
                    self.publish(&q);
                    drop(q);
                    w.waker.wake();
                    return;
                }
            }
        }
        self.size.fetch_sub(1, Ordering::Relaxed);
        self.publish(&q);
        drop(q);
        if let Some((gate, id)) = &self.gate {
            gate.release(*id);
        }
    }

    /// A unit of global capacity for this partition, from the gate: becomes a permit for
    /// the best waiter if one is queued and the local cap allows, else `false` (the gate
    /// keeps it).
    pub(crate) fn offer_permit(&self) -> bool {
        let mut q = self.queue.lock();
        if self.is_closed() || q.is_empty() || !self.reserve_local() {
            return false;
        }
        while let Some(w) = q.pop_best(|| self.now(), self.config.starvation_threshold) {
            if w.decide(PERMIT) {
                self.publish(&q);
                drop(q);
                w.waker.wake();
                return true;
            }
        }
        self.size.fetch_sub(1, Ordering::Relaxed);
        self.publish(&q);
        false
    }

    /// Whether another partition of our partitioned pool waits for global capacity.
    fn others_blocked(&self) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|(gate, id)| gate.others_blocked(*id))
    }

    /// Whether callers wait here only for global capacity (the local cap has room).
    pub(crate) fn blocked_on_gate(&self) -> bool {
        self.waiting() > 0
            && self.size.load(Ordering::Relaxed) < self.max_size.load(Ordering::Relaxed)
    }

    /// The oldest idle object's (stamp, slot), for eviction by the gate.
    pub(crate) fn oldest_idle(&self) -> Option<(u64, usize)> {
        (0..self.slots.used())
            .filter(|&i| self.slots.get(i).state.load(Ordering::Relaxed) == IDLE)
            .map(|i| (self.slots.get(i).idle_since(), i))
            .min()
    }

    /// Evicts the idle object in slot `i` if it is still idle (its capacity, local and
    /// global, is released). Call holding no lock.
    pub(crate) fn evict_idle(&self, i: usize) -> bool {
        let s = &self.slots.get(i).state;
        // Acquire: as in `claim_idle`.
        if s.compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.destroy(i, DestroyReason::Evicted).never();
            return true;
        }
        false
    }

    /// Another partition waits for global capacity: evict our idle objects and mark our
    /// checked-out ones so they are destroyed (not idled) when returned.
    pub(crate) fn yield_capacity(&self) {
        let q = self.queue.lock();
        // Releases racing with the marks must see the divert bit (`announce`).
        self.announce(&q, true);
        let doomed = self.take_idle_mark_rest(&q, usize::MAX);
        drop(q);
        for i in doomed {
            self.destroy(i, DestroyReason::Evicted).never();
        }
    }

    /// With the queue lock held (`_q`): claims up to `max_take` idle objects (returned, to
    /// be destroyed after unlocking) and marks every other slot `WANTED`, so each
    /// checked-out object comes back through the slow path. Used by `close` and
    /// `yield_capacity` (all idle objects) and by a shrinking `resize` (the excess).
    fn take_idle_mark_rest(&self, _q: &MutexGuard<'_, WaitQueue>, max_take: usize) -> Vec<usize> {
        let mut doomed = Vec::new();
        for i in 0..self.slots.cap() {
            let s = &self.slots.get(i).state;
            let mut st = s.load(Ordering::Relaxed);
            loop {
                let want = if st == IDLE && doomed.len() < max_take {
                    BUSY
                } else if st != IDLE && st & WANTED == 0 {
                    st | WANTED
                } else {
                    break;
                };
                // Acquire: claiming an idle object, as in `claim_idle`.
                match s.compare_exchange(st, want, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        if want == BUSY {
                            doomed.push(i);
                        }
                        break;
                    }
                    Err(x) => st = x,
                }
            }
        }
        doomed
    }

    // ---------------------------------------------------------------- objects in and out

    /// Puts a freshly created object into an empty slot, which the caller then owns.
    pub(crate) fn install(&self, obj: T, id: u64) -> usize {
        let mut scans = 0;
        loop {
            // Free slots exist: occupied slots ≤ size + reclaimed ≤ max_size + reclaimed ≤
            // cap (`resize` and `reclaim` grow the array for that), and `size` includes
            // our reservation. A CAS can lose to a concurrent mark; rescan. Should a scan
            // ever come up empty twice, the array grows rather than spin.
            scans += 1;
            if scans > 2 {
                let _q = self.queue.lock();
                self.slots.grow(self.slots.cap() + 1);
            }
            for i in 0..self.slots.cap() {
                let slot = self.slots.get(i);
                let st = slot.state.load(Ordering::Relaxed);
                // Acquire pairs with the destroyer's Release: its read of the old object
                // happens-before our write of the new one. The WANTED mark is kept.
                if st & STATE_MASK == EMPTY
                    && slot
                        .state
                        .compare_exchange(
                            st,
                            BUSY | (st & WANTED),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    // SAFETY: our CAS made us the slot's only owner, and the slot is empty.
                    unsafe { slot.obj().write(obj) };
                    // The object's reference (see `Owed`). Relaxed, as `Arc::clone`: the
                    // caller's own reference keeps the allocation alive meanwhile.
                    self.refs.fetch_add(1, Ordering::Relaxed);
                    self.slots.note_used(i);
                    slot.id.store(id, Ordering::Relaxed);
                    slot.uses.store(0, Ordering::Relaxed);
                    slot.reported.store(0, Ordering::Relaxed);
                    let now = self.coarse_ms();
                    slot.stamp_returned(now);
                    slot.created_ms.store(now, Ordering::Relaxed);
                    slot.expires_ms
                        .store(self.expiry_for_new(now), Ordering::Relaxed);
                    self.counters.created.fetch_add(1, Ordering::Relaxed);
                    self.emit(|| PoolEvent::Created { id });
                    return i;
                }
            }
            std::hint::spin_loop();
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
                == slot.uses.load(Ordering::Relaxed) | crate::slots::RECLAIM_MARK
    }

    /// Moves the object out of owned slot `i` and frees the slot; returns the object, its
    /// id, and whether its capacity was already reclaimed.
    fn take_out(&self, i: usize) -> (T, u64, bool) {
        let slot = self.slots.get(i);
        // SAFETY: we own slot `i` (BUSY) and it holds an initialised object; the slot is
        // marked EMPTY below, so nobody reads it again before a new object is written.
        let obj = unsafe { ptr::read(slot.obj()) };
        let id = slot.id.load(Ordering::Relaxed);
        let uses = slot.uses.swap(0, Ordering::Relaxed);
        self.counters
            .retired_uses
            .fetch_add(uses, Ordering::Relaxed);
        // Release: our read of the object happens-before a creator's write (its Acquire
        // CAS). The WANTED mark survives.
        let mut st = slot.state.load(Ordering::Relaxed);
        loop {
            match slot.state.compare_exchange_weak(
                st,
                EMPTY | (st & WANTED),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => st = x,
            }
        }
        self.counters.destroyed.fetch_add(1, Ordering::Relaxed);
        // The mark, not the record: a reclaim marks by CAS, so whether it marked before our
        // CAS is exact here (a mark a fast release overwrote was restored under the lock).
        (obj, id, st & RECLAIMED != 0)
    }

    /// Destroys the object in owned slot `i` and frees its capacity.
    /// The object's reference goes to the caller (see `Owed`).
    pub(crate) fn destroy(&self, i: usize, reason: DestroyReason) -> Owed<'_> {
        let (obj, id, reclaimed) = self.take_out(i);
        self.emit(|| PoolEvent::Destroyed { id, reason });
        // The object goes before its capacity does, so a replacement is never created
        // while it still exists (a database's connection limit counts both).
        crate::trace::destroy(&self.config.name, id, reason, || {
            drop_object(obj, &self.config.name)
        });
        self.after_take_out(reclaimed);
        Owed(1, &self.refs)
    }

    /// Takes the object out of owned slot `i` for good (`Pooled::detach`); the object's
    /// reference goes to the caller, as in `destroy`.
    pub(crate) fn detach(&self, i: usize) -> (T, Owed<'_>) {
        let (obj, _, reclaimed) = self.take_out(i);
        self.after_take_out(reclaimed);
        (obj, Owed(1, &self.refs))
    }

    // ---------------------------------------------------------------- waiting path

    /// The waiting path's entry: with nobody queued, a reservation if the pool may grow
    /// (taken before the lock); otherwise `register`. Aging and the deadline count from
    /// `since`, the start of the acquisition.
    pub(crate) fn reserve_or_register(
        &self,
        priority: Priority,
        since: Duration,
        deadline: Duration,
    ) -> Result<Reg, PoolError> {
        if self.waiting() == 0 && self.try_reserve() {
            Ok(Reg::Permit)
        } else {
            self.register(priority, since, deadline)
        }
    }

    /// Registers a caller that found nothing on the fast path. Under the lock: if nobody
    /// is queued yet, sweep the slots — take an idle object if one appeared, else mark
    /// every slot `WANTED` so no release can make an object idle behind our back — then
    /// try to reserve capacity, else queue.
    ///
    /// Invariant kept by every path: while the queue is non-empty, no slot is `IDLE` and
    /// every `BUSY`/`EMPTY` slot is marked (marks are only cleared under the lock when the
    /// queue is empty; fresh slots are born marked). So only the first waiter sweeps.
    ///
    /// `deadline` (time since the epoch) is enforced by the pool's deadline sweeper, one
    /// task per pool that runs only while callers are queued, instead of one timer per
    /// waiting call.
    pub(crate) fn register(
        &self,
        priority: Priority,
        since: Duration,
        deadline: Duration,
    ) -> Result<Reg, PoolError> {
        // Allocate outside the lock.
        let w = Waiter::new(priority, since, deadline, true);
        let mut q = self.queue.lock();
        if self.is_closed() {
            return Err(PoolError::Closed);
        }
        if q.is_empty() {
            // Count ourselves as queued before looking, and make that visible to every
            // release in flight (`announce`): a release either sees the count (and takes
            // the slow path, which needs this lock) or its `IDLE` store is visible to the
            // sweep below. If we end up not queueing, the next `publish` takes it back.
            let word = self.word.load(Ordering::Relaxed);
            self.word
                .store(word + (1 << WAITERS_SHIFT), Ordering::Relaxed);
            self.announce(&q, false);
            for i in 0..self.slots.cap() {
                let s = &self.slots.get(i).state;
                let mut st = s.load(Ordering::Relaxed);
                loop {
                    let (want, ord) = if st == IDLE {
                        // Acquire: as in `claim_idle`.
                        (BUSY, Ordering::Acquire)
                    } else if st & WANTED != 0 {
                        break;
                    } else {
                        // Relaxed: the mark only diverts the owner's release to the slow
                        // path, which takes this lock and so sees our queue entry.
                        (st | WANTED, Ordering::Relaxed)
                    };
                    match s.compare_exchange(st, want, ord, Ordering::Relaxed) {
                        Ok(_) if want == BUSY => {
                            self.publish(&q);
                            return Ok(Reg::Got(i));
                        }
                        Ok(_) => break,
                        Err(x) => st = x,
                    }
                }
            }
            if self.try_reserve_locked() {
                self.publish(&q);
                return Ok(Reg::Permit);
            }
        }
        let first = q.is_empty();
        q.push(w.clone());
        self.publish(&q);
        let waiting = q.len();
        let stale = if q.sweeper.as_ref().is_none_or(|a| deadline < a.at) {
            self.arm_sweep(&mut q, deadline)
        } else {
            None
        };
        drop(q);
        drop(stale);
        if first {
            if let Some((gate, id)) = &self.gate {
                if self.blocked_on_gate() {
                    gate.blocked(*id);
                }
            }
        }
        self.emit(|| PoolEvent::Exhausted { waiting });
        Ok(Reg::Queued(w))
    }

    /// Arms the deadline sweep at `at` (time since the epoch) on the pool's timer, in place
    /// of an armed one (which is disarmed; what it held is returned, to be dropped after
    /// the lock). `Duration::MAX` ("no deadline") arms nothing. Call with the lock held.
    ///
    /// The sweep's timer entry holds a [`SharedRef`], not a `Pool`: it keeps the memory
    /// alive, never the pool open, so dropping the last handle still closes the pool at
    /// once; `close` disarms it.
    fn arm_sweep(&self, q: &mut WaitQueue, at: Duration) -> Option<Disarmed> {
        let stale = self.disarm_sweep(q);
        if at == Duration::MAX {
            return stale;
        }
        // Not under Miri, which wants every thread finished when a test ends: there only
        // blocking waiters, which bound their own wait, can wait.
        #[cfg(not(riptide_model))]
        let key = self
            .epoch
            .checked_add(at)
            .filter(|_| !cfg!(miri))
            .map(|when| {
                let r = SharedRef::new(self.self_ptr());
                crate::timer::arm(
                    when,
                    crate::timer::Action::Call(Box::new(move || {
                        r.get().sweep();
                    })),
                )
            });
        q.sweeper = Some(crate::waiters::Armed {
            at,
            #[cfg(not(riptide_model))]
            key,
        });
        stale
    }

    /// Disarms the deadline sweep, if armed; returns the timer entry's action (holding a
    /// `SharedRef`), to be dropped after the lock.
    fn disarm_sweep(&self, q: &mut WaitQueue) -> Option<Disarmed> {
        let armed = q.sweeper.take()?;
        #[cfg(not(riptide_model))]
        return armed.key.and_then(crate::timer::disarm);
        #[cfg(riptide_model)]
        {
            let _ = armed;
            None
        }
    }

    /// The deadline sweep (run by the pool's timer, or by a model): times out queued
    /// waiters past their deadline and re-arms for the earliest deadline left. A sweep
    /// that fires while an earlier one is armed (it lost a race to disarm) leaves that one
    /// armed.
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
        for w in expired {
            w.waker.wake();
        }
    }

    /// Settles a waiter whose future was dropped before it consumed the result: removes
    /// it, or gives back whatever it was handed (object, permit).
    pub(crate) fn cancel(&self, w: &Arc<Waiter>) {
        if w.decide(crate::waiters::CANCELLED) {
            if w.queued {
                let mut q = self.queue.lock();
                q.remove(w);
                self.publish(&q);
            }
            return;
        }
        self.give_back(w.state.load(Ordering::Acquire)).never();
    }

    /// Returns what a waiter cell was decided to, unused.
    pub(crate) fn give_back(&self, state: usize) -> Owed<'_> {
        match state {
            PERMIT => {
                self.unreserve();
                Owed(0, &self.refs)
            }
            s if s >= HANDED => self.release(s - HANDED),
            _ => Owed(0, &self.refs),
        }
    }

    // ---------------------------------------------------------------- creating

    /// Runs the factory for a caller holding a reservation, and settles the result:
    /// the object goes to `cell` if it still waits, else into the pool; a failure frees the
    /// reservation and is left in `cell`.
    ///
    /// The creator holds a [`SharedRef`], not a handle, so the pool may have been closed
    /// meanwhile (the object is then destroyed): the returned [`Owed`] settles that.
    ///
    /// `counts`: whether the outcome is the factory's (a runtime shutting down under the
    /// create is not, and does not move the breaker or the error rate).
    pub(crate) fn finish_create(
        &self,
        result: Result<(T, u64), BoxError>,
        cell: &Waiter,
        counts: bool,
    ) -> Owed<'_> {
        if let Err(e) = &result {
            // Before the breaker may open: the waiters it fails carry this error.
            self.create_failed(&**e);
        }
        if counts {
            self.counters
                .create_attempts
                .fetch_add(1, Ordering::Relaxed);
            self.breaker_record(result.is_ok());
        }
        match result {
            Ok((obj, id)) => {
                let i = self.install(obj, id);
                if self.is_closed() {
                    let owed = self.destroy(i, DestroyReason::Closed);
                    cell.decide_and_wake(CLOSED);
                    owed
                } else if !cell.decide_and_wake(HANDED + i) {
                    // The caller left (timeout, cancel): the object is not lost.
                    self.release(i)
                } else {
                    Owed(0, &self.refs)
                }
            }
            Err(e) => {
                if counts {
                    self.counters.create_errors.fetch_add(1, Ordering::Relaxed);
                }
                self.unreserve();
                *cell.error.lock() = Some(e);
                cell.decide_and_wake(FAILED);
                Owed(0, &self.refs)
            }
        }
    }

    /// Every failed create, whether a caller waits for it or not (`min_idle`, warm-up):
    /// kept as the breaker's last error, sent as `PoolEvent::CreateFailed`, and logged
    /// (`tracing::warn!`, at most once a second per pool, with the count left out).
    fn create_failed(&self, e: &(dyn std::error::Error + 'static)) {
        let last = crate::error::LastCreateError::of(e);
        let text = last.0.clone();
        *self
            .last_create_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(std::sync::Arc::new(last));
        #[cfg(not(riptide_model))]
        {
            let now = self.exact_ms();
            let last_warn = self.create_warned_ms.load(Ordering::Relaxed);
            // Relaxed: a rate limit; the CAS picks one logger per second.
            if now.saturating_sub(last_warn) >= 1000
                && self
                    .create_warned_ms
                    .compare_exchange(last_warn, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                let quiet = self.create_unlogged.swap(0, Ordering::Relaxed);
                tracing::warn!(
                    pool = %self.config.name,
                    error = %text,
                    not_logged_since = quiet,
                    "riptide_pool: creating a pooled object failed"
                );
            } else {
                self.create_unlogged.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.emit(|| PoolEvent::CreateFailed { error: text });
    }

    /// The error for a caller the open breaker turned away.
    pub(crate) fn circuit_open(&self) -> PoolError {
        PoolError::CircuitOpen {
            last_error: self
                .last_create_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .map(|e| e as std::sync::Arc<dyn std::error::Error + Send + Sync>),
        }
    }

    // ---------------------------------------------------------------- resize, close

    /// Changes `max_size` (clamped to 1..=MAX_SLOTS). Growing hands permits to waiters;
    /// shrinking destroys idle objects above the new size and marks the rest so they are
    /// destroyed as they come back.
    pub(crate) fn resize(&self, n: usize) {
        let n = n.clamp(1, crate::slots::MAX_SLOTS);
        let mut q = self.queue.lock();
        if self.is_closed() {
            return;
        }
        // Reclaimed checkouts still occupy their slots (`reclaim`).
        self.slots
            .grow(n.saturating_add(self.reclaimed.load(Ordering::Relaxed)));
        self.max_size.store(n, Ordering::Relaxed);
        let mut wake = Vec::new();
        let mut doomed = Vec::new();
        let size = self.size.load(Ordering::Relaxed);
        if size < n {
            let now = self.now();
            while self.try_reserve_locked() {
                match q.pop_best(|| now, self.config.starvation_threshold) {
                    Some(w) if w.decide(PERMIT) => wake.push(w),
                    Some(_) => {
                        self.size.fetch_sub(1, Ordering::Relaxed);
                    }
                    None => {
                        self.size.fetch_sub(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            self.publish(&q);
        } else if size > n {
            // Releases racing with the marks must see the divert bit (`announce`).
            self.announce(&q, true);
            doomed = self.take_idle_mark_rest(&q, size - n);
        }
        drop(q);
        for w in wake {
            w.waker.wake();
        }
        for i in doomed {
            self.destroy(i, DestroyReason::Resized).never();
        }
    }

    /// Closes the pool: queued waiters get `Closed`, idle objects are destroyed, and every
    /// checked-out slot is marked so its return destroys the object. Returns after the
    /// idle objects are gone. Idempotent.
    pub(crate) fn close(&self) {
        let mut q = self.queue.lock();
        if self.is_closed() {
            return;
        }
        let waiters: Vec<_> = q.drain().collect();
        let stale = self.disarm_sweep(&mut q);
        self.word.store(CLOSED_BIT, Ordering::Relaxed);
        // Every release from now on sees CLOSED_BIT, or its IDLE store is seen below.
        self.announce(&q, false);
        let doomed = self.take_idle_mark_rest(&q, usize::MAX);
        drop(q);
        drop(stale);
        for w in waiters {
            w.decide_and_wake(CLOSED);
        }
        for i in doomed {
            self.destroy(i, DestroyReason::Closed).never();
        }
    }

    /// Retires a partition that holds nothing: if it has no object, no create in flight,
    /// no reclaimed checkout and nobody queued, its size is moved to a value no
    /// reservation can pass (one CAS from 0, so a concurrent reservation either came first
    /// and the retirement fails, or fails itself) and it is closed. An acquisition that
    /// still holds the retired partition gets `Closed` and looks its key up again.
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
        let stale = self.disarm_sweep(&mut q);
        self.retired.store(true, Ordering::Relaxed);
        self.word.store(CLOSED_BIT, Ordering::Relaxed);
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

    /// Called once, when the last `Pool` handle goes: closes the pool (idle objects are
    /// destroyed; each one still out keeps the allocation alive through its own reference
    /// until it comes back and is destroyed), then drops the handle's reference.
    ///
    /// # Safety
    /// `this` came from `Box::into_raw` in `Pool::from_parts`, and the caller gives up the
    /// handle's reference.
    pub(crate) unsafe fn close_and_unref(this: NonNull<Self>) {
        // SAFETY: the handle's reference keeps the allocation alive until `unref` below.
        unsafe { this.as_ref() }.close();
        // SAFETY: we give up the handle's reference.
        unsafe { Self::unref(this) };
    }

    /// Drops one reference; the last frees the allocation.
    ///
    /// # Safety
    /// The caller owns one reference, `this` carries the provenance of the original
    /// `Box::into_raw`, no `&Shared` derived from it is used afterwards, and the caller does
    /// not use `this` afterwards.
    pub(crate) unsafe fn unref(this: NonNull<Self>) {
        // SAFETY: the caller's reference keeps the allocation alive for this call.
        let refs = unsafe { &this.as_ref().refs };
        // AcqRel: every holder's last use of the pool happens-before the free (the same
        // argument as `Arc`'s drop).
        if refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A fast release may still be reading the state word after its object was
            // destroyed; it announced this pool for exactly that window.
            #[cfg(not(riptide_model))]
            crate::sync::hazard::wait_clear(this.as_ptr() as usize);
            #[cfg(riptide_model)]
            // SAFETY: as above; no reference remains but the announcers'.
            while unsafe { this.as_ref() }.releasing.load(Ordering::Acquire) != 0 {
                crate::sync::thread::yield_now();
            }
            // SAFETY: no references remain; the pointer came from `Box::into_raw`.
            drop(unsafe { Box::from_raw(this.as_ptr()) });
        }
    }

    // ---------------------------------------------------------------- stats

    pub(crate) fn stats(&self) -> PoolStats {
        let (idle, in_use, acquired) = self.scan();
        let c = &self.counters;
        // Checkouts that never waited are not recorded (no shared write on the fast
        // path): they are the difference between all checkouts and the recorded waits.
        let zeros = acquired.saturating_sub(self.wait_hist.count());
        let [p50, p95, p99] = self.wait_hist.percentiles(zeros, [0.5, 0.95, 0.99]);
        let [u50, u95, u99] = self.usage_hist.percentiles(0, [0.5, 0.95, 0.99]);
        let [c50, c95, c99] = self.create_hist.percentiles(0, [0.5, 0.95, 0.99]);
        PoolStats {
            max_size: self.max_size.load(Ordering::Relaxed),
            size: match self.size.load(Ordering::Relaxed) {
                RETIRED => 0,
                n => n,
            },
            idle,
            in_use,
            pending_acquisitions: self.waiting(),
            created: c.created.load(Ordering::Relaxed),
            destroyed: c.destroyed.load(Ordering::Relaxed),
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
        }
    }

    /// Counts idle and in-use slots and the checkouts of live objects.
    pub(crate) fn scan(&self) -> (usize, usize, u64) {
        let (mut idle, mut busy, mut uses) = (0, 0, 0);
        for i in 0..self.slots.cap() {
            let s = self.slots.get(i);
            match s.state.load(Ordering::Relaxed) & STATE_MASK {
                IDLE => idle += 1,
                BUSY => busy += 1,
                _ => {}
            }
            uses += s.uses.load(Ordering::Relaxed);
        }
        (
            idle,
            busy,
            uses + self.counters.retired_uses.load(Ordering::Relaxed),
        )
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
                drop_object(unsafe { ptr::read(s.obj()) }, &self.config.name);
            }
        }
    }
}

/// Drops a pooled object. A panic in its `Drop` is caught and logged: the pool's own
/// bookkeeping goes on (the capacity is freed, the other objects of a bulk destroy —
/// `close`, `resize`, eviction — are destroyed too), and a destroy that runs while a
/// panic unwinds (a panicking `reset`) never becomes a double panic.
fn drop_object<T>(obj: T, pool: &str) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(obj))) {
        #[cfg(not(riptide_model))]
        tracing::error!(
            pool,
            panic = crate::error::panic_message(&*p),
            "riptide_pool: a pooled object's Drop panicked (the object is gone, its capacity freed)"
        );
        #[cfg(riptide_model)]
        let _ = (p, pool);
    }
}

/// Destroys slot `i` if dropped: guards a call into user code (`reset`, `is_healthy`) so a
/// panic there cannot leak the object's capacity.
pub(crate) struct DestroyOnUnwind<T: Send + 'static> {
    /// The allocation, with the provenance of `Box::into_raw` (see [`Owed`]).
    pub shared: NonNull<Shared<T>>,
    pub slot: usize,
}

impl<T: Send + 'static> DestroyOnUnwind<T> {
    pub(crate) fn disarm(self) {
        let _ = ManuallyDrop::new(self);
    }
}

impl<T: Send + 'static> Drop for DestroyOnUnwind<T> {
    fn drop(&mut self) {
        // SAFETY: the slot is owned by the guard being dropped, which keeps the allocation
        // alive (see `Pooled`); the reference is not used after `destroy` returns.
        let n = unsafe { self.shared.as_ref() }
            .destroy(self.slot, DestroyReason::Panicked)
            .0;
        for _ in 0..n {
            // SAFETY: the owed references are ours to give up, `shared` came from
            // `Box::into_raw`, and no reference derived from it is used after this.
            unsafe { Shared::unref(self.shared) };
        }
    }
}

/// A claimed slot that goes back to the pool if dropped armed (see `claim_if_idle`).
pub(crate) struct ReleaseOnDrop<'a, T: Send + 'static>(&'a Shared<T>, usize);

impl<T: Send + 'static> ReleaseOnDrop<'_, T> {
    /// The caller settles the slot itself.
    pub(crate) fn disarm(self) {
        let _ = ManuallyDrop::new(self);
    }
}

impl<T: Send + 'static> Drop for ReleaseOnDrop<'_, T> {
    fn drop(&mut self) {
        // The caller holds a reference of its own (a `Pool`), so this is never the last.
        self.0.release(self.1).never();
    }
}

/// What [`Shared::try_claim`] returns for a closed pool. A zero-sized error keeps
/// `Result<Option<usize>, Closed>` at two words, returned in registers: returning the
/// 32-byte `Result<Option<usize>, PoolError>` through memory cost the async fast path a
/// store-forwarding stall (about 6 ns here) when the caller reloaded it with wider loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl From<Closed> for PoolError {
    #[inline]
    fn from(_: Closed) -> Self {
        PoolError::Closed
    }
}
