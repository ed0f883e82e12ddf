//! [`Pool`]: the handle users hold.

use std::future::IntoFuture;
use std::panic::Location;
use std::ptr::NonNull;
use std::time::Duration;

use crate::acquire::{Acquire, AcquireFuture, Priority};
use crate::config::{Config, PoolBuilder};
use crate::error::PoolError;
use crate::hooks::Hooks;
use crate::shared::Shared;
use crate::stats::CheckedOut;
#[cfg(not(riptide_model))]
use crate::stats::DrainError;
use crate::stats::{HealthLevel, HealthStatus, PoolStats};
use crate::sync::{Arc, Ordering};
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

/// Owns one reference to the shared state; the last `Pool` clone dropping it closes the
/// pool (guards still out keep the state alive until they return).
struct Handle<T: Send + 'static> {
    shared: NonNull<Shared<T>>,
}

// SAFETY: `Handle` is a counted pointer to `Shared<T>`, which is `Send + Sync` for
// `T: Send + 'static` (see `Shared`).
unsafe impl<T: Send + 'static> Send for Handle<T> {}
// SAFETY: as above.
unsafe impl<T: Send + 'static> Sync for Handle<T> {}

impl<T: Send + 'static> Drop for Handle<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from `Box::into_raw` in `from_parts`; this gives up the
        // handle's one reference, and the handle is never used again.
        unsafe { Shared::close_and_unref(self.shared) };
    }
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

/// The upkeep thread's hold on a pool: weak, so it never keeps the pool open.
#[cfg(not(riptide_model))]
struct WeakPool<T: Send + 'static>(std::sync::Weak<Handle<T>>);

#[cfg(not(riptide_model))]
impl<T: Send + 'static> crate::upkeep::Upkeep for WeakPool<T> {
    fn tick(&self) -> Option<Duration> {
        let pool = Pool {
            handle: self.0.upgrade()?,
        };
        if pool.is_closed() {
            return None;
        }
        pool.shared().maintain();
        Some(pool.shared().maint_interval())
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
        let shared = Box::new(Shared::new(factory, config, hooks, gate));
        // SAFETY: `Box::into_raw` never returns null.
        let raw = unsafe { NonNull::new_unchecked(Box::into_raw(shared)) };
        // SAFETY: just allocated; nobody else sees it yet.
        unsafe { raw.as_ref() }.set_self_ptr(raw);
        let pool = Pool {
            handle: Arc::new(Handle { shared: raw }),
        };
        #[cfg(not(riptide_model))]
        pool.start_maintenance();
        if pool.shared().config.min_idle > 0 {
            pool.shared().maintain_now();
        }
        pool
    }

    /// Background upkeep (the maintenance pass): a task on the runtime current at
    /// `build()`, or, without one, the process's upkeep thread (`upkeep.rs`). Either holds
    /// only a `Weak`, so it ends with the last `Pool` handle (or at `close`). If the
    /// runtime shuts down while the pool lives on, the task's end hands the pool to the
    /// upkeep thread, and creates move to threads (`exec::Runtime`).
    #[cfg(not(riptide_model))]
    fn start_maintenance(&self) {
        let weak = Arc::downgrade(&self.handle);
        let interval = self.shared().maint_interval();
        let Some(rt) = self.shared().runtime.as_ref() else {
            crate::upkeep::register(Box::new(WeakPool(weak)), interval);
            return;
        };
        rt.spawn_with_liveness(|liveness| async move {
            /// On the task's end: the runtime is marked gone (if it is shutting down) and
            /// a pool still open moves to the upkeep thread.
            struct Handover<T: Send + 'static>(
                Option<std::sync::Weak<Handle<T>>>,
                crate::exec::Liveness,
            );
            impl<T: Send + 'static> Drop for Handover<T> {
                fn drop(&mut self) {
                    // First: from here on, creates run on threads.
                    self.1.mark_gone();
                    let Some(weak) = self.0.take() else { return };
                    let open = weak
                        .upgrade()
                        .is_some_and(|h| !(Pool { handle: h }).is_closed());
                    if open {
                        crate::upkeep::register(Box::new(WeakPool(weak)), Duration::ZERO);
                    }
                }
            }
            let mut handover = Handover(Some(weak), liveness);
            loop {
                crate::timer::Sleep::after(interval).await;
                let Some(pool) = handover.0.as_ref().and_then(std::sync::Weak::upgrade) else {
                    break;
                };
                let pool = Pool { handle: pool };
                if pool.is_closed() {
                    break;
                }
                pool.shared().maintain();
            }
            // Ended normally (the pool is gone or closed): nothing to hand over.
            handover.0 = None;
        });
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared<T> {
        // SAFETY: the handle's reference keeps the allocation alive while `self` lives.
        unsafe { self.handle.shared.as_ref() }
    }

    /// The allocation's pointer as `Box::into_raw` returned it.
    pub(crate) fn raw(&self) -> NonNull<Shared<T>> {
        self.handle.shared
    }

    #[inline]
    pub(crate) fn guard(&self, slot: usize, loc: &'static Location<'static>) -> Pooled<T> {
        let shared = self.shared();
        let cell = shared.checkout(slot, loc);
        Pooled::new(self.handle.shared, slot, cell)
    }

    pub(crate) fn timed_out(&self) -> PoolError {
        self.shared()
            .counters
            .timeouts
            .fetch_add(1, Ordering::Relaxed);
        PoolError::Timeout
    }

    /// Checks out an object, waiting up to `acquire_timeout`: an idle one, a new one if
    /// the pool is below `max_size`, or the next one returned.
    ///
    /// Works on any executor (deadlines run on the pool's own timer). The future is
    /// `Send + 'static`; dropping it at any point loses nothing. The lock-free fast path runs as
    /// the future is created: an idle object is claimed at once (a future dropped unpolled
    /// gives it back); otherwise the work starts at the first poll.
    #[track_caller]
    #[inline]
    pub fn get(&self) -> AcquireFuture<T> {
        self.acquire().into_future()
    }

    /// An idle object now, or `PoolError::Exhausted` (also when callers are queued ahead).
    /// Never waits and never creates.
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
            priority: Priority::Normal,
            timeout: None,
            location: Location::caller(),
        }
    }

    /// Creates objects until `n` are idle (or the pool is full); returns how many it made.
    /// The first create error is returned (objects already made stay in the pool).
    pub async fn warm_up(&self, n: usize) -> Result<usize, PoolError> {
        let shared = self.shared();
        let want = n.saturating_sub(shared.scan().0);
        let mut made = 0;
        for _ in 0..want {
            if shared.is_closed() {
                return Err(PoolError::Closed);
            }
            if !shared.try_reserve() {
                break;
            }
            // Same path as a caller's create: if this future is dropped, the object still
            // lands in the pool and the reservation is never leaked.
            let slot = crate::acquire::create(self, Priority::Normal).await?;
            shared.release(slot).never();
            made += 1;
        }
        Ok(made)
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
        for i in 0..s.slots.cap() {
            let Some(claimed) = s.claim_if_idle(i) else {
                continue;
            };
            // Released again if `keep` panics.
            let meta = s.meta(i);
            // SAFETY: we own slot `i` (claimed from idle); the object is initialised and
            // nobody else references it until we release or destroy it.
            let verdict = keep(unsafe { &*s.slots.get(i).obj() }, meta);
            claimed.disarm();
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

    /// Closes the pool: waiters and new calls get `PoolError::Closed`, idle objects are
    /// dropped now, and objects returned later are dropped. Idempotent.
    pub fn close(&self) {
        self.shared().close();
    }

    /// Closes the pool, then waits until every checked-out object has come back (each is
    /// destroyed on return), up to `timeout`. On timeout, the error lists what is still
    /// out and where it was taken.
    #[cfg(not(riptide_model))]
    pub async fn drain(&self, timeout: Duration) -> Result<(), DrainError> {
        self.close();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let out = self.checked_out();
            if out.is_empty() && self.stats().size == 0 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(DrainError { still_out: out });
            }
            crate::timer::Sleep::after(Duration::from_millis(2)).await;
        }
    }

    /// The objects checked out right now: id, how long held, and the line that took each.
    #[must_use]
    pub fn checked_out(&self) -> Vec<CheckedOut> {
        let s = self.shared();
        let now = s.exact_ms();
        let mut out = Vec::new();
        for i in 0..s.slots.cap() {
            let slot = s.slots.get(i);
            if slot.state.load(Ordering::Relaxed) & crate::slots::STATE_MASK != crate::slots::BUSY {
                continue;
            }
            // Only objects a caller holds (not ones being validated or handed over).
            let Some(since) = slot.held_since() else {
                continue;
            };
            let loc = slot.location.load(Ordering::Relaxed);
            // SAFETY: locations are `&'static Location` stored by `checkout`.
            if let Some(location) = unsafe { loc.as_ref() } {
                out.push(CheckedOut {
                    id: slot.id.load(Ordering::Relaxed),
                    held_for: Duration::from_millis(now.saturating_sub(since)),
                    location,
                });
            }
        }
        out
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
    /// this on every pass). Names: `docs/metrics.md`.
    #[cfg(all(feature = "metrics", not(riptide_model)))]
    pub fn publish_metrics(&self) {
        crate::metrics::publish(self.shared());
    }

    /// Health from the live counters; levels are documented on [`HealthLevel`].
    #[must_use]
    pub fn health(&self) -> HealthStatus {
        let st = self.stats();
        let s = self.shared();
        let attempts = s.counters.create_attempts.load(Ordering::Relaxed);
        let errors = s.counters.create_errors.load(Ordering::Relaxed);
        let error_rate = if attempts == 0 {
            0.0
        } else {
            errors as f64 / attempts as f64
        };
        let utilization = st.in_use as f64 / st.max_size.max(1) as f64;
        let waiting = st.pending_acquisitions > 0;
        let level = if s.is_closed() || s.breaker_open() || error_rate >= 0.5 {
            HealthLevel::Critical
        } else if (waiting && utilization >= 1.0) || error_rate >= 0.2 {
            HealthLevel::Unhealthy
        } else if utilization >= 0.9 || waiting || error_rate >= 0.05 {
            HealthLevel::Degraded
        } else {
            HealthLevel::Healthy
        };
        let score = 100.0
            - 40.0 * utilization.min(1.0)
            - 40.0 * error_rate
            - if waiting { 20.0 } else { 0.0 };
        HealthStatus {
            level,
            utilization,
            error_rate,
            score: score.clamp(0.0, 100.0).round() as u8,
        }
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
        self.shared().subscribe()
    }

    /// Sends `event` to this pool's [`events`](Self::events) subscribers (built only when
    /// someone subscribes). For layers that keep their own state on top of a pool and want
    /// it in the same stream: e.g. `riptide-adapters`' WASM pool reports its guest-failure
    /// circuit breaker as [`PoolEvent::CircuitOpened`](crate::PoolEvent::CircuitOpened) /
    /// [`CircuitClosed`](crate::PoolEvent::CircuitClosed).
    #[cfg(not(riptide_model))]
    pub fn emit_event(&self, event: impl FnOnce() -> crate::PoolEvent) {
        self.shared().emit(event);
    }

    /// loom/shuttle models only: advances the pool's logical clock.
    #[cfg(riptide_model)]
    #[doc(hidden)]
    pub fn model_advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.shared().model_clock.fetch_add(ns, Ordering::Relaxed);
    }

    /// loom/shuttle models only: joins the create threads started so far.
    #[cfg(riptide_model)]
    #[doc(hidden)]
    pub fn model_join_creates(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.shared().model_tasks.lock());
        for t in tasks {
            t.join().expect("create thread");
        }
    }

    /// loom/shuttle models only: one maintenance pass (leak scan and reclaim, eviction).
    #[cfg(riptide_model)]
    #[doc(hidden)]
    pub fn model_maintain(&self) {
        self.shared().maintain();
    }

    /// loom/shuttle models only: one pass of the deadline sweeper (a task in real builds).
    #[cfg(riptide_model)]
    #[doc(hidden)]
    pub fn model_sweep(&self) {
        self.shared().sweep();
    }

    /// The configured acquire timeout.
    #[must_use]
    pub fn acquire_timeout(&self) -> Duration {
        self.shared().config.acquire_timeout
    }
}
