//! Lifecycle: object expiry, the maintenance pass (idle eviction, retirement, leak scans,
//! reclaiming, `min_idle`), and the circuit breaker on the factory.

use std::time::Duration;

use crate::shared::{Owed, Shared, SharedRef};
use crate::slots::{BUSY, IDLE, RECLAIMED, STATE_MASK, WANTED};
use crate::stats::{DestroyReason, PoolEvent};
use crate::sync::Ordering;
use crate::waiters::{Waiter, CANCELLED};
use crate::Priority;

/// Breaker word: `state` in the low 2 bits, consecutive failures in the next 16, and the
/// coarse-clock ms when it opened above that.
const CLOSED: u64 = 0;
const OPEN: u64 = 1;
/// Open, cool-down over, one trial create in flight.
const TRIAL: u64 = 2;

fn breaker_word(state: u64, failures: u64, opened_ms: u64) -> u64 {
    state | (failures.min(0xffff) << 2) | (opened_ms << 18)
}

/// What the breaker said about a create.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Breaker {
    /// Go ahead (closed, or this is the half-open trial).
    Allow,
    /// Open: fail fast.
    Open,
}

impl<T: Send + 'static> Shared<T> {
    /// The coarse clock, in ms (the logical clock under a model checker).
    #[inline]
    pub(crate) fn coarse_ms(&self) -> u64 {
        #[cfg(not(riptide_model))]
        return crate::clock::now_ms();
        #[cfg(riptide_model)]
        return u64::try_from(self.now().as_millis()).unwrap_or(u64::MAX);
    }

    /// A fresh clock reading for slow paths (it also pushes the coarse clock forward).
    pub(crate) fn exact_ms(&self) -> u64 {
        #[cfg(not(riptide_model))]
        return crate::clock::refresh();
        #[cfg(riptide_model)]
        return self.coarse_ms();
    }

    /// When an object created now must be retired: `max_lifetime` minus a random jitter
    /// of up to 5 % (at most 30 s), so a pool created at once does not expire at once.
    pub(crate) fn expiry_for_new(&self, now_ms: u64) -> u64 {
        let Some(life) = self.config.max_lifetime else {
            return u64::MAX;
        };
        let life_ms = u64::try_from(life.as_millis()).unwrap_or(u64::MAX);
        let max_jitter = (life_ms / 20).min(30_000);
        let jitter = if max_jitter == 0 {
            0
        } else {
            self.random() % (max_jitter + 1)
        };
        now_ms.saturating_add(life_ms - jitter)
    }

    /// A cheap pseudo-random number (xorshift on a per-pool state; jitter only).
    fn random(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        x
    }

    /// How often maintenance runs: a quarter of the shortest time limit, 5 ms … 1 s.
    #[cfg_attr(riptide_model, allow(dead_code))] // models run maintenance by hand
    pub(crate) fn maint_interval(&self) -> Duration {
        let c = &self.config;
        [
            c.idle_timeout,
            c.max_lifetime,
            c.leak_threshold,
            c.reclaim_leaked,
        ]
        .into_iter()
        .flatten()
        .min()
        .map_or(Duration::from_secs(1), |d| d / 4)
        .clamp(Duration::from_millis(5), Duration::from_secs(1))
    }

    /// One maintenance pass. Runs from the pool's background upkeep: its task on the
    /// build runtime, or the upkeep thread (`upkeep.rs`). Passes never overlap, and a pass
    /// that unwinds (a panic in user code it ran) leaves the next one free to run.
    pub(crate) fn maintain(&self) {
        if self
            .maint_busy
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        struct Done<'a>(&'a crate::sync::AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                // Release: the next pass (any thread) sees this one's effects.
                self.0.store(0, Ordering::Release);
            }
        }
        let _done = Done(&self.maint_busy);
        let now = self.exact_ms();
        if !self.is_closed() {
            self.evict_stale(now);
            self.scan_checkouts(now);
            self.replenish();
        }
        #[cfg(all(feature = "metrics", not(riptide_model)))]
        crate::metrics::publish(self);
    }

    /// Destroys idle objects past their lifetime, and idle objects above `min_idle` idle
    /// longer than `idle_timeout`.
    fn evict_stale(&self, now: u64) {
        let idle_ms = self
            .config
            .idle_timeout
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut idle = self.scan().0;
        for i in 0..self.slots.cap() {
            let slot = self.slots.get(i);
            if slot.state.load(Ordering::Relaxed) != IDLE {
                continue;
            }
            let expired = slot.expires_ms.load(Ordering::Relaxed) <= now;
            let stale = idle > self.config.min_idle
                && idle_ms.is_some_and(|t| now.saturating_sub(slot.idle_since()) >= t);
            if !(expired || stale) {
                continue;
            }
            // Acquire: as in `claim_idle` — we now own the object.
            if slot
                .state
                .compare_exchange(IDLE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let reason = if expired {
                    DestroyReason::MaxLifetime
                } else {
                    DestroyReason::IdleTimeout
                };
                self.destroy(i, reason).never();
                idle -= 1;
            }
        }
    }

    /// Leak detection: a checkout held past `leak_threshold` is reported once; with
    /// `reclaim_leaked`, one held past that has its capacity given back.
    fn scan_checkouts(&self, now: u64) {
        let leak_ms = self
            .config
            .leak_threshold
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let reclaim_ms = self
            .config
            .reclaim_leaked
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if leak_ms.is_none() && reclaim_ms.is_none() {
            return;
        }
        for i in 0..self.slots.cap() {
            let slot = self.slots.get(i);
            let st = slot.state.load(Ordering::Relaxed);
            if st & STATE_MASK != BUSY {
                continue;
            }
            // A checkout is known by its start stamp: read it (none while nobody holds the
            // object: being validated or handed over is not being held), then the use
            // count and location it was written after, then the stamp again. The same
            // stamp twice is the same checkout throughout: a later checkout is stamped
            // later, and a report needs a stamp at least `leak_threshold` old.
            let Some(since) = slot.held_since() else {
                continue;
            };
            let uses = slot.uses.load(Ordering::Relaxed);
            let loc = slot.location.load(Ordering::Relaxed);
            // Acquire: orders the two loads above before the re-read (seqlock reader).
            crate::sync::fence(Ordering::Acquire);
            if uses == 0 || slot.stamp_ms.load(Ordering::Relaxed) != since {
                continue;
            }
            let held = now.saturating_sub(since);
            if leak_ms.is_some_and(|t| held >= t) && slot.reported.load(Ordering::Relaxed) < uses {
                slot.reported.store(uses, Ordering::Relaxed);
                self.counters.leaks_detected.fetch_add(1, Ordering::Relaxed);
                let id = slot.id.load(Ordering::Relaxed);
                // SAFETY: locations are `&'static Location` stored by `checkout`.
                let location = unsafe { loc.as_ref() };
                if let Some(location) = location {
                    let held_for = Duration::from_millis(held);
                    #[cfg(not(riptide_model))]
                    tracing::warn!(
                        pool = %self.config.name,
                        id,
                        held_ms = held,
                        %location,
                        "pooled object held longer than leak_threshold (suspected leak)"
                    );
                    self.emit(|| PoolEvent::LeakSuspected {
                        id,
                        held_for,
                        location,
                    });
                }
            }
            if reclaim_ms.is_some_and(|t| held >= t) && !self.is_reclaimed(i, st) {
                self.reclaim(i, uses);
            }
        }
    }

    /// Gives back the capacity of checkout `uses` of slot `i` (still held, maybe forever).
    fn reclaim(&self, i: usize, uses: u64) {
        let slot = self.slots.get(i);
        let q = self.lock_queue();
        let st = slot.state.load(Ordering::Relaxed);
        // The checkout must be the same one, still out.
        if st & STATE_MASK != BUSY
            || self.is_reclaimed(i, st)
            || slot.uses.load(Ordering::Relaxed) != uses
        {
            return;
        }
        // The record first, then the heavy barrier, then the mark: a fast release that
        // stores IDLE over the mark reads the record after its light barrier (the pair
        // orders the two) and takes the slow path, which sees the record under this lock.
        let before = slot.reported.load(Ordering::Relaxed);
        slot.reported
            .store(uses | crate::slots::RECLAIM_MARK, Ordering::Relaxed);
        self.announce(&q, false);
        // A CAS, not a store: its owner may be releasing or destroying it right now
        // (`take_out` moves the slot to EMPTY), and a store would resurrect the slot.
        if slot
            .state
            .compare_exchange(
                st,
                st | RECLAIMED | WANTED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            // It came back meanwhile: nothing to reclaim. A release that saw the record
            // waits for this lock, and then sees it gone.
            slot.reported.store(before, Ordering::Relaxed);
            return;
        }
        let reclaimed = self.reclaimed.fetch_add(1, Ordering::Relaxed) + 1;
        // The slot stays occupied: make room so creates always find an empty one.
        self.slots
            .grow(self.max_size.load(Ordering::Relaxed) + reclaimed);
        drop(q);
        self.unreserve();
    }

    /// Tops up `min_idle` at once (at build).
    pub(crate) fn maintain_now(&self) {
        self.replenish();
    }

    /// Starts creates until `min_idle` objects are idle (within capacity).
    fn replenish(&self) {
        let want = self.config.min_idle;
        if want == 0 || self.breaker_state() != CLOSED {
            return;
        }
        let (idle, busy, _) = self.scan();
        // Creates already in flight (reserved, not yet objects) count towards the target.
        let in_flight = self
            .size
            .load(Ordering::Relaxed)
            .saturating_sub(idle + busy);
        for _ in (idle + in_flight)..want {
            if !self.try_reserve() {
                break;
            }
            self.spawn_fill();
        }
    }

    /// Creates one object straight into the pool (capacity already reserved).
    pub(crate) fn spawn_fill(&self) {
        // A cell nobody waits on: pre-cancelled, so `finish_create` releases the object
        // into the pool (or to a waiter) instead of handing it over.
        let cell = Waiter::new(Priority::Normal, self.now(), Duration::MAX, false);
        let _ = cell.decide(CANCELLED);
        self.spawn_create(cell);
    }

    /// Runs the factory (and `post_create`) as its own task, bounded by `create_timeout`,
    /// and settles the result through `cell` (`finish_create`). The task holds the shared
    /// state, not the pool, so dropping the last `Pool` still closes it at once; if the
    /// task panics or its runtime drops it, the create counts as failed.
    pub(crate) fn spawn_create(&self, cell: crate::sync::Arc<Waiter>) {
        let task_ref = SharedRef::new(self.self_ptr());
        let fut_ref = SharedRef::new(self.self_ptr());
        #[allow(clippy::let_unit_value)] // a join handle under a model checker
        let limit = self.config.create_timeout;
        #[allow(clippy::let_unit_value)] // a join handle under a model checker
        let _spawned = crate::exec::spawn_bounded(
            self.runtime_handle(),
            limit,
            crate::trace::instrument(crate::trace::create(&self.config.name), async move {
                fut_ref.get().create_with_hooks().await
            }),
            move |ran| {
                use crate::exec::Ran;
                // A runtime that shut down is not the factory failing: the breaker does
                // not count it.
                let counts = !matches!(ran, Ran::Dropped);
                let r = match ran {
                    Ran::Done(r) => r,
                    Ran::TimedOut => Err(format!(
                        "the factory did not finish within create_timeout ({limit:?})"
                    )
                    .into()),
                    Ran::Panicked(msg) => Err(format!("the factory panicked: {msg}").into()),
                    Ran::Dropped => {
                        Err("the runtime running the create shut down before it finished".into())
                    }
                };
                let owed = task_ref.get().finish_create(r, &cell, counts);
                task_ref.settle(owed);
            },
        );
        #[cfg(riptide_model)]
        self.model_tasks.lock().push(_spawned);
    }

    /// `Factory::create`, then the `post_create` hook (a rejection fails the create); the
    /// object comes with the id it will have in the pool.
    pub(crate) async fn create_with_hooks(&self) -> Result<(T, u64), crate::BoxError> {
        let start = self.now();
        let mut obj = self.factory.create().await?;
        let id = self.new_id();
        if let Some(hook) = &self.hooks.post_create {
            let meta = crate::ObjectMeta {
                id,
                age: Duration::ZERO,
                idle_for: Duration::ZERO,
                held_for: Duration::ZERO,
                uses: 0,
            };
            hook(&mut obj, meta)
                .await
                .map_err(|e| format!("post_create rejected the object: {e}"))?;
        }
        self.create_hist.record(self.now().saturating_sub(start));
        Ok((obj, id))
    }

    // ------------------------------------------------------------- circuit breaker

    fn breaker_state(&self) -> u64 {
        self.breaker.load(Ordering::Relaxed) & 0b11
    }

    /// The breaker's state, for [`Pool::circuit_state`](crate::Pool::circuit_state).
    pub(crate) fn circuit_state(&self) -> crate::CircuitState {
        match self.breaker_state() {
            CLOSED => crate::CircuitState::Closed,
            TRIAL => crate::CircuitState::HalfOpen,
            _ => crate::CircuitState::Open,
        }
    }

    /// Whether the breaker is open (or half-open with a trial in flight).
    pub(crate) fn breaker_open(&self) -> bool {
        self.config.circuit.is_some() && self.breaker_state() != CLOSED
    }

    /// Asks the breaker before a create. Closed: allow. Open past its cool-down: this
    /// caller becomes the single trial (CAS `OPEN → TRIAL`). Otherwise: fail fast.
    pub(crate) fn breaker_check(&self) -> Breaker {
        let Some((_, cool)) = self.config.circuit else {
            return Breaker::Allow;
        };
        let cool_ms = u64::try_from(cool.as_millis()).unwrap_or(u64::MAX);
        let w = self.breaker.load(Ordering::Relaxed);
        match w & 0b11 {
            CLOSED => Breaker::Allow,
            OPEN if self.exact_ms().saturating_sub(w >> 18) >= cool_ms => {
                let trial = (w & !0b11) | TRIAL;
                // Relaxed: the word carries no data; the CAS picks exactly one trial.
                match self
                    .breaker
                    .compare_exchange(w, trial, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => Breaker::Allow,
                    Err(_) => Breaker::Open,
                }
            }
            _ => Breaker::Open,
        }
    }

    /// Records a create's outcome: a success closes the breaker; `threshold` consecutive
    /// failures (or a failed trial) open it and fail every queued waiter.
    pub(crate) fn breaker_record(&self, ok: bool) {
        let Some((threshold, _)) = self.config.circuit else {
            return;
        };
        let mut w = self.breaker.load(Ordering::Relaxed);
        loop {
            let (state, failures) = (w & 0b11, (w >> 2) & 0xffff);
            let next = if ok {
                breaker_word(CLOSED, 0, 0)
            } else if state == TRIAL || (state == CLOSED && failures + 1 >= u64::from(threshold)) {
                breaker_word(OPEN, failures + 1, self.exact_ms())
            } else {
                breaker_word(state, failures + 1, w >> 18)
            };
            if next == w {
                return;
            }
            match self
                .breaker
                .compare_exchange_weak(w, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let was_open = state != CLOSED;
                    let now_open = next & 0b11 == OPEN;
                    if now_open && state != OPEN {
                        self.emit(|| PoolEvent::CircuitOpened);
                        #[cfg(not(riptide_model))]
                        tracing::warn!(pool = %self.config.name, "factory failing: circuit breaker open");
                        self.fail_waiters_circuit_open();
                    } else if ok && was_open {
                        self.emit(|| PoolEvent::CircuitClosed);
                    }
                    return;
                }
                Err(x) => w = x,
            }
        }
    }

    /// Gives a destroyed object's slot back: `destroy` for objects whose capacity is
    /// still counted, the reclaimed-slot variant otherwise.
    pub(crate) fn after_take_out(&self, reclaimed: bool) {
        if reclaimed {
            self.reclaimed.fetch_sub(1, Ordering::Relaxed);
        } else {
            self.unreserve();
        }
    }
}

/// Keeps the lint quiet about `Owed` being imported only for documentation links.
#[allow(dead_code)]
fn _owed(_: Owed) {}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use std::time::Duration;

    use crate::{Pool, Poolable};

    struct Unit;
    impl Poolable for Unit {}

    #[test]
    fn lifetime_jitter_is_bounded_and_spread() {
        let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(Unit) })
            .max_lifetime(Duration::from_secs(100))
            .build()
            .unwrap();
        let s = pool.shared();
        let exp: Vec<u64> = (0..200).map(|_| s.expiry_for_new(1_000)).collect();
        // 5 % of 100 s = 5 s of jitter at most, never past the lifetime.
        assert!(
            exp.iter().all(|&e| (96_000..=101_000).contains(&e)),
            "{exp:?}"
        );
        let distinct: std::collections::HashSet<_> = exp.iter().collect();
        assert!(
            distinct.len() > 50,
            "spread, not one value: {}",
            distinct.len()
        );
        // A long lifetime's jitter is capped at 30 s.
        let long = Pool::builder(|| async { Ok::<_, std::io::Error>(Unit) })
            .max_lifetime(Duration::from_secs(3600))
            .build()
            .unwrap();
        let e = long.shared().expiry_for_new(0);
        assert!((3_570_000..=3_600_000).contains(&e), "{e}");
    }
}
