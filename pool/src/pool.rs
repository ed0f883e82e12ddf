//! [`Pool`]: the handle users hold.

use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::acquire::{Acquire, AcquireFuture};
use crate::config::{Config, PoolBuilder};
use crate::error::PoolError;
use crate::hooks::Hooks;
use crate::shared::{Handle, Shared};
use crate::stats::CheckedOut;
#[cfg(not(riptide_model))]
use crate::stats::DrainError;
use crate::stats::{HealthStatus, PoolStats};
use crate::traits::{DynFactory, Factory};
use crate::Pooled;

/// A pool of `T`. Cheap to clone (one `Arc`); `Send + Sync`.
///
/// ```
/// use riptide_pool::{Pool, Poolable};
///
/// struct Buf(Vec<u8>);
/// impl Poolable for Buf {
///     fn reset(&mut self) { self.0.clear() }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(Buf(Vec::with_capacity(4096))) })
///     .max_size(4)
///     .build()?;
/// let mut b = pool.get().await?;
/// b.0.extend_from_slice(b"hello");
/// drop(b); // reset, then idle again
/// assert_eq!(pool.try_get()?.0.len(), 0);
/// # Ok(()) }
/// ```
pub struct Pool<T: Send + 'static> {
    handle: Arc<Handle<T>>,
}

impl<T: Send + 'static> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool {
            handle: self.handle.clone(),
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Send + 'static> Pool<T> {
    /// Starts configuring a pool of objects made by `factory`, readied on return by their
    /// [`Poolable`](crate::Poolable) impl (`reset`, `is_healthy`, `MAX_USES`,
    /// `MAX_LIFETIME`).
    pub fn builder<F: Factory<T>>(factory: F) -> PoolBuilder<T>
    where
        T: crate::Poolable,
    {
        PoolBuilder::new(factory)
    }

    /// Starts configuring a pool of any `T: Send + 'static`, including types you do not
    /// own and that have no [`Poolable`](crate::Poolable) impl: give the reset and the
    /// health check as closures (or none: no reset, always healthy).
    ///
    /// ```
    /// use riptide_pool::Pool;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A type from another crate, pooled without a wrapper.
    /// let pool: Pool<std::collections::LinkedList<u8>> =
    ///     Pool::custom(|| async { Ok::<_, std::io::Error>(std::collections::LinkedList::new()) })
    ///         .reset(|l| l.clear())
    ///         .is_healthy(|l| l.len() < 1024)
    ///         .max_size(4)
    ///         .build()?;
    /// let mut l = pool.get().await?;
    /// l.push_back(7);
    /// drop(l);
    /// assert!(pool.try_get()?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn custom<F: Factory<T>>(factory: F) -> PoolBuilder<T> {
        PoolBuilder::custom(factory)
    }

    pub(crate) fn from_parts(
        factory: Box<dyn DynFactory<T>>,
        config: Config,
        hooks: Hooks<T>,
        gate: Option<(std::sync::Arc<dyn crate::shared::Gate>, usize)>,
    ) -> Self {
        let pool = Pool {
            handle: Arc::new(Handle::new(Shared::new(factory, config, hooks, gate))),
        };
        // Background upkeep (the maintenance pass): a task on the runtime current at
        // `build()`, else the process's upkeep thread (`rt/upkeep.rs`). It holds the pool
        // only weakly, so it ends with the last handle (or at `close`).
        let shared = pool.shared();
        shared.set_owner(Arc::downgrade(&pool.handle));
        shared.env().start_upkeep(
            Box::new(crate::maintenance::WeakPool(Arc::downgrade(&pool.handle))),
            shared.maint_interval(),
        );
        if shared.config().min_idle > 0 {
            shared.maintain_now();
        }
        pool
    }

    /// A handle to the pool of `shared`, while any handle exists (the pool is open).
    pub(crate) fn upgrade(shared: &Shared<T>) -> Option<Pool<T>> {
        shared.owner().map(|handle| Pool { handle })
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared<T> {
        self.handle.get()
    }

    /// Identifies the pool (its shared state's address).
    pub(crate) fn addr(&self) -> *const Shared<T> {
        self.handle.addr()
    }

    /// Owned slot `slot` as the caller's guard, the checkout recorded.
    #[inline]
    pub(crate) fn guard(&self, slot: usize, loc: &'static Location<'static>) -> Pooled<T> {
        let cell = self.shared().checkout(slot, loc);
        Pooled::new(self.handle.held(slot, cell))
    }

    /// [`guard`](Self::guard) whose checkout begins when it is handed over
    /// (`Pooled::hand_over`): a future settled at its creation (`Shared::claim_for`).
    #[inline]
    pub(crate) fn guard_unhanded(&self, slot: usize, loc: &'static Location<'static>) -> Pooled<T> {
        let cell = self.shared().claim_for(slot, loc);
        Pooled::new(self.handle.held(slot, cell))
    }

    /// Checks out an object, waiting up to `acquire_timeout`: an idle one, a new one if
    /// the pool is below `max_size`, or the next one returned.
    ///
    /// Works on any executor (deadlines run on the pool's own timer). The future is
    /// `Send + 'static`. The lock-free fast path runs as the future is created: an idle
    /// object is claimed at once (a future dropped unpolled gives it back); otherwise the
    /// work starts at the first poll. A future first polled after `close` fails with
    /// `Closed`, and one first polled after its object's `max_lifetime` ran out starts
    /// over with a fresh object: neither hands out the object it claimed. The checkout
    /// begins when the object is handed over, at the first poll: until then the claim
    /// counts in neither `acquired` nor `max_uses`, and leak reports, `reclaim_leaked` and
    /// `checked_out` do not see it (a future kept unpolled keeps its object until it is
    /// polled or dropped).
    ///
    /// # Errors
    /// The future's output: [`PoolError::Timeout`] past the deadline,
    /// [`PoolError::Closed`], [`PoolError::Create`] when the create made for this caller
    /// failed, [`PoolError::CircuitOpen`] while the factory's breaker is open.
    ///
    /// # Cancel safety
    /// Dropping the future at any point loses nothing (see [`AcquireFuture`]).
    #[track_caller]
    #[inline]
    pub fn get(&self) -> AcquireFuture<T> {
        self.acquire().into_future()
    }

    /// An idle object now, or `PoolError::Exhausted` (also when callers are queued ahead).
    /// Never waits and never creates.
    ///
    /// # Errors
    /// `Exhausted` when nothing is idle (or callers are queued ahead); `Closed`.
    #[track_caller]
    #[inline]
    pub fn try_get(&self) -> Result<Pooled<T>, PoolError> {
        match self.shared().try_claim()? {
            Some(i) => Ok(self.guard(i, Location::caller())),
            None => Err(PoolError::Exhausted),
        }
    }

    /// [`get`](Pool::get) for threads without a runtime.
    ///
    /// # Errors
    /// As [`get`](Pool::get).
    ///
    /// # Panics
    /// On a tokio runtime worker thread: use `get().await` there, or `spawn_blocking`.
    #[track_caller]
    pub fn get_blocking(&self) -> Result<Pooled<T>, PoolError> {
        self.acquire().blocking()
    }

    /// An acquisition with options: `.priority(..)`, `.timeout(..)`; then `.await` it or
    /// call `.blocking()`.
    #[track_caller]
    #[inline]
    pub fn acquire(&self) -> Acquire<'_, T> {
        Acquire {
            pool: self,
            opts: crate::acquire::AcquireOptions::new(),
        }
    }

    /// Creates objects until `n` are idle (or the pool is full); returns how many it made.
    /// In a partition, it uses free global capacity only (it never evicts another key's
    /// idle object).
    ///
    /// # Errors
    /// The first create error (objects already made stay in the pool), or `Closed` (at
    /// once when the pool is closed meanwhile, as for every waiting caller).
    ///
    /// The future holds its own pool handle: it is `Send + 'static` and can be spawned.
    ///
    /// # Cancel safety
    /// Dropping the future loses nothing: a create in flight still puts its object into
    /// the pool.
    pub fn warm_up(
        &self,
        n: usize,
    ) -> impl Future<Output = Result<usize, PoolError>> + Send + 'static {
        let pool = self.clone();
        async move {
            let shared = pool.shared();
            let want = n.saturating_sub(shared.scan().0);
            let mut made = 0;
            for _ in 0..want {
                if shared.is_closed() {
                    return Err(PoolError::Closed);
                }
                if !shared.try_reserve_free() {
                    break;
                }
                // Same path as a caller's create: if this future is dropped, the object
                // still lands in the pool and the reservation is never leaked.
                let slot = crate::create::create_reserved(&pool).await?;
                shared.release(slot).never();
                made += 1;
            }
            Ok(made)
        }
    }

    /// Keeps only the idle objects `keep` accepts; the others are destroyed now (reason
    /// `Removed`). Objects checked out are not looked at. Returns how many went.
    ///
    /// Use it after a credentials rotation or a failover: drop every idle connection made
    /// before it, and let the pool make new ones.
    ///
    /// ```
    /// # use riptide_pool::{Pool, Poolable};
    /// # use std::time::Duration;
    /// # struct Conn; impl Poolable for Conn {}
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) }).build()?;
    /// pool.warm_up(3).await?;
    /// let removed = pool.retain(|_conn, meta| meta.age < Duration::from_secs(3600));
    /// assert_eq!(removed, 0);
    /// assert_eq!(pool.clear_idle(), 3);
    /// # Ok(()) }
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&T, crate::ObjectMeta) -> bool) -> usize {
        let s = self.shared();
        let mut removed = 0;
        // Stacked idle objects (a scarce pool) first, all taken before any goes back. Every
        // object taken and not yet judged is released again if `keep` panics (the stacked
        // ones as much as the claimed ones: they are idle objects of the pool too).
        let mut owned = std::collections::VecDeque::from(s.pop_idle(usize::MAX));
        for i in 0..s.slot_count() {
            if let Some(claimed) = s.claim_if_idle(i) {
                claimed.disarm();
                owned.push_back(i);
            }
        }
        let owned = std::cell::RefCell::new(owned);
        let _give_back = crate::defer::OnDrop::new(|| {
            let rest: Vec<usize> = owned.borrow_mut().drain(..).collect();
            for i in rest {
                s.release(i).never();
            }
        });
        loop {
            let Some(i) = owned.borrow_mut().pop_front() else {
                break;
            };
            let current = crate::defer::OnDrop::new(|| s.release(i).never());
            let meta = s.meta(i);
            // SAFETY: we own slot `i` (claimed from idle); the object is initialised and
            // nobody else references it until we release or destroy it.
            let verdict = unsafe { s.slot(i).with_obj_mut(|obj| keep(obj, meta)) };
            current.disarm();
            if verdict {
                s.release(i).never();
            } else {
                s.destroy(i, crate::DestroyReason::Removed).never();
                removed += 1;
            }
        }
        removed
    }

    /// Destroys every idle object now (reason `Removed`); returns how many went.
    pub fn clear_idle(&self) -> usize {
        self.retain(|_, _| false)
    }

    /// Changes `max_size` (clamped to at least 1). Never takes objects from users:
    /// growing lets waiters create at once; shrinking destroys idle objects above the new
    /// size now and the excess in use as it comes back.
    pub fn resize(&self, max_size: usize) {
        self.shared().resize(max_size);
    }

    /// Closes the pool: waiters (queued, waiting for their own create, or running a
    /// checkout step) and new calls get `PoolError::Closed` (no acquisition succeeds once
    /// `close` has returned), idle objects are dropped now, and objects returned later, or
    /// made by creates still running, are dropped when they come. Idempotent.
    pub fn close(&self) {
        self.shared().close();
    }

    /// `close`, with the idle objects dropped away from the caller (for `drain`).
    pub(crate) fn close_aside(&self) {
        self.shared().close_with(true);
    }

    /// Closes the pool, then waits until every checked-out object has come back (each is
    /// destroyed on return) and every object is gone, up to `timeout`. On timeout, the
    /// error lists what is still out and where it was taken. `Duration::MAX` waits for as
    /// long as it takes. The idle objects are dropped on a blocking thread (as
    /// acquisitions drop the objects they discard), so a slow `Drop` neither blocks the
    /// executor nor holds `drain` past `timeout`.
    ///
    /// # Errors
    /// [`DrainError`] listing what is still out when `timeout` passes.
    ///
    /// The future holds its own pool handle: it is `Send + 'static` and can be spawned.
    ///
    /// # Cancel safety
    /// The pool is closed at the first poll; dropping the future afterwards only stops the
    /// waiting (objects still out are destroyed as they come back).
    #[cfg(not(riptide_model))]
    pub fn drain(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), DrainError>> + Send + 'static {
        let pool = self.clone();
        async move {
            pool.close_aside();
            // Saturating: `Duration::MAX` waits for as long as it takes.
            let deadline = crate::rt::timer::deadline_after(timeout);
            loop {
                let out = pool.checked_out();
                if out.is_empty() && pool.shared().holds_nothing() {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(DrainError { still_out: out });
                }
                crate::rt::timer::Sleep::after(Duration::from_millis(2)).await;
            }
        }
    }

    /// The objects checked out right now: id, how long held, and the line that took each.
    #[must_use]
    pub fn checked_out(&self) -> Vec<CheckedOut> {
        let s = self.shared();
        let now = s.exact_ms();
        // Only objects a caller holds (not ones being validated or handed over).
        (0..s.slot_count())
            .filter_map(|i| {
                let (since, location) = s.holder(i)?;
                Some(CheckedOut {
                    id: s.slot(i).id(),
                    held_for: Duration::from_millis(now.saturating_sub(since)),
                    location,
                })
            })
            .collect()
    }

    /// Whether [`close`](Pool::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared().is_closed()
    }

    /// A snapshot of the counters. Costs a scan of the slots (no locks).
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        self.shared().stats()
    }

    /// Publishes the current stats through the `metrics` facade now (maintenance also does
    /// this on every pass). Each series carries the label `pool` (the builder's `name`):
    ///
    /// | name | kind | meaning |
    /// | --- | --- | --- |
    /// | `riptide_pool_max_size` | gauge | current `max_size` |
    /// | `riptide_pool_size` | gauge | objects alive + creates in flight |
    /// | `riptide_pool_idle` | gauge | idle objects |
    /// | `riptide_pool_in_use` | gauge | checked-out objects |
    /// | `riptide_pool_pending_acquisitions` | gauge | callers waiting right now |
    /// | `riptide_pool_waiting` | gauge, `priority` = low / normal / high / critical | callers waiting at each priority |
    /// | `riptide_pool_oldest_wait_seconds` | gauge | how long the longest-waiting caller has waited |
    /// | `riptide_pool_created_total` | counter | objects created |
    /// | `riptide_pool_destroyed_total` | counter | objects destroyed or detached |
    /// | `riptide_pool_acquired_total` | counter | successful checkouts |
    /// | `riptide_pool_timeouts_total` | counter | acquisitions that timed out |
    /// | `riptide_pool_leaks_detected_total` | counter | checkouts reported as suspected leaks |
    /// | `riptide_pool_wait_seconds` | gauge, `quantile` = 0.5 / 0.95 / 0.99 | time callers waited |
    /// | `riptide_pool_usage_seconds` | gauge, `quantile` | how long objects are held (every 16th checkout of each object) |
    /// | `riptide_pool_create_seconds` | gauge, `quantile` | how long creates take |
    #[cfg(all(feature = "metrics", not(riptide_model)))]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn publish_metrics(&self) {
        crate::metrics::publish(self.shared());
    }

    /// Health from the live counters; levels are documented on
    /// [`HealthLevel`](crate::HealthLevel).
    #[must_use]
    pub fn health(&self) -> HealthStatus {
        let s = self.shared();
        HealthStatus::of(
            &self.stats(),
            s.is_closed(),
            s.circuit_state() != crate::CircuitState::Closed,
            s.create_outcomes(),
        )
    }

    /// The state of the circuit breaker on the factory (`Closed` when the pool has none).
    #[must_use]
    pub fn circuit_state(&self) -> crate::CircuitState {
        self.shared().circuit_state()
    }

    /// Subscribes to [`PoolEvent`](crate::PoolEvent)s (a tokio broadcast: a slow receiver
    /// sees `Lagged`). Events are only built while someone subscribes.
    #[cfg(not(riptide_model))]
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<crate::PoolEvent> {
        self.shared().env().subscribe()
    }

    /// Sends a [`PoolEvent::Custom`](crate::PoolEvent::Custom) to this pool's
    /// [`events`](Self::events) subscribers (built only when someone subscribes): for
    /// layers that keep state of their own on top of a pool and want it in the same
    /// stream (the WASM adapter reports its guest breaker this way). The pool's own events
    /// cannot be sent from outside.
    pub fn emit_custom(
        &self,
        source: &'static str,
        name: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        self.shared().emit(|| crate::PoolEvent::Custom {
            source,
            name,
            detail: detail(),
        });
    }

    /// The configured acquire timeout.
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        self.shared().config().acquire_timeout
    }
}
