//! Upkeep: object expiry, and the maintenance pass (idle eviction, lifetime retirement,
//! leak scans, reclaiming forgotten checkouts, `min_idle`). The pass runs in the
//! background (a task on the build runtime, or the upkeep thread, holding the pool only
//! weakly: [`WeakPool`]), never on a caller's checkout.

use std::time::Duration;

use crate::breaker::Admit;
use crate::shared::slots::CheckoutRecord;
use crate::shared::{Handle, Shared, SharedRef};
use crate::stats::{DestroyReason, PoolEvent};
use crate::sync::Ordering;
use crate::waiters::{Decision, Waiter};
use crate::Priority;

/// How long a scarce pool must go without anyone finding it empty before maintenance
/// switches it back to calm mode (`shared/idle.rs`): a pool that keeps running short then
/// pays the switch's barrier and pass over the slots at most about once a second.
const CALM_MS: u64 = 1_000;

/// The lifetime of an object in a pool without `max_lifetime`: far beyond any reading of
/// the pool's clock (which counts from the process's start), so its expiry check never
/// fires, yet `expires_ms - lifetime` still gives its creation time.
pub(crate) const NO_LIFETIME_MS: u64 = 1 << 62;

/// A 64-bit mixing function (splitmix64's finaliser): consecutive ids give unrelated
/// jitters.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl<T: Send + 'static> Shared<T> {
    /// How long object `id` lives: `max_lifetime` minus a jitter of up to 5 % (at most
    /// 30 s), so a pool created at once does not expire at once. The jitter is a hash of
    /// the id and the pool's seed, so the slot keeps only the expiry and the creation
    /// time is `expires_ms - lifetime_ms(id)` (`meta`). Without a `max_lifetime`, it is
    /// [`NO_LIFETIME_MS`].
    pub(crate) fn lifetime_ms(&self, id: u64) -> u64 {
        let Some(life) = self.config().max_lifetime else {
            return NO_LIFETIME_MS;
        };
        let life_ms = u64::try_from(life.as_millis())
            .unwrap_or(u64::MAX)
            .min(NO_LIFETIME_MS);
        let max_jitter = (life_ms / 20).min(30_000);
        life_ms - mix(id ^ self.jitter_seed()) % (max_jitter + 1)
    }

    /// How often maintenance runs: a quarter of the shortest time limit, 5 ms … 1 s.
    pub(crate) fn maint_interval(&self) -> Duration {
        let c = self.config();
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
    /// build runtime, or the upkeep thread (`rt/upkeep.rs`). Passes never overlap, and a pass
    /// that unwinds (a panic in user code it ran) leaves the next one free to run.
    pub(crate) fn maintain(&self) {
        let Some(_pass) = self.begin_pass() else {
            return;
        };
        let now = self.exact_ms();
        if !self.is_closed() {
            self.maybe_become_calm(now, CALM_MS);
            self.evict_stale(now);
            self.scan_checkouts(now);
            self.replenish();
        }
        #[cfg(all(feature = "metrics", not(riptide_model)))]
        crate::metrics::publish(self);
    }

    /// Destroys idle objects past their lifetime, and idle objects above `min_idle` idle
    /// longer than `idle_timeout`, each dropped away from the pass (`destroy_aside`).
    fn evict_stale(&self, now: u64) {
        let idle_ms = self
            .config()
            .idle_timeout
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut idle = self.scan().0;
        for i in 0..self.slot_count() {
            let slot = self.slot(i);
            if !slot.is_idle() {
                continue;
            }
            let expired = slot.expired_at(now);
            let stale = idle > self.config().min_idle
                && idle_ms.is_some_and(|t| now.saturating_sub(slot.idle_since()) >= t);
            if !(expired || stale) {
                continue;
            }
            if let Some(claimed) = self.claim_if_idle(i) {
                claimed.disarm();
                let reason = if expired {
                    DestroyReason::MaxLifetime
                } else {
                    DestroyReason::IdleTimeout
                };
                // Dropped away from the pass: a slow `Drop` must not stall the runtime
                // worker or the upkeep thread (which every pool built outside a runtime
                // shares) that runs it.
                self.destroy_aside(i, reason);
                idle -= 1;
            }
        }
    }

    /// Leak detection: a checkout held past `leak_threshold` is reported once; with
    /// `reclaim_leaked`, one held past that has its capacity given back.
    fn scan_checkouts(&self, now: u64) {
        let leak_ms = self
            .config()
            .leak_threshold
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let reclaim_ms = self
            .config()
            .reclaim_leaked
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if leak_ms.is_none() && reclaim_ms.is_none() {
            return;
        }
        for i in 0..self.slot_count() {
            let slot = self.slot(i);
            let Some(CheckoutRecord {
                state,
                since,
                uses,
                location,
            }) = slot.checkout_record()
            else {
                continue;
            };
            let held = now.saturating_sub(since);
            if leak_ms.is_some_and(|t| held >= t) && slot.report_once(uses) {
                self.counters()
                    .leaks_detected
                    .fetch_add(1, Ordering::Relaxed);
                let id = slot.id();
                if let Some(location) = location {
                    let held_for = Duration::from_millis(held);
                    #[cfg(not(riptide_model))]
                    crate::rt::trace::quietly(|| {
                        tracing::warn!(
                            pool = %self.config().name,
                            id,
                            held_ms = held,
                            %location,
                            "pooled object held longer than leak_threshold (suspected leak)"
                        )
                    });
                    self.emit(|| PoolEvent::LeakSuspected {
                        id,
                        held_for,
                        location,
                    });
                }
            }
            if reclaim_ms.is_some_and(|t| held >= t) && !self.is_reclaimed(i, state) {
                self.reclaim(i, uses, since);
            }
        }
    }

    /// Tops up `min_idle` at once (at build).
    pub(crate) fn maintain_now(&self) {
        self.replenish();
    }

    /// Starts creates until `min_idle` objects are idle (within capacity). While the
    /// breaker is half-open, one fill is the trial (as a caller's create would be): with
    /// nobody calling, the breaker would otherwise stay half-open and `min_idle` unmet
    /// forever after the factory recovered.
    fn replenish(&self) {
        let want = self.config().min_idle;
        if want == 0 {
            return;
        }
        let (idle, busy, _) = self.scan();
        // Creates already in flight (reserved, not yet objects) count towards the target.
        let in_flight = self.size().saturating_sub(idle + busy);
        if idle + in_flight >= want {
            return;
        }
        let admit = self.breaker_admit();
        let fills = match admit {
            Admit::Call => want - (idle + in_flight),
            Admit::Trial => 1,
            Admit::Reject => return,
        };
        for _ in 0..fills {
            if !self.try_reserve_free() {
                self.breaker_abandon(admit);
                break;
            }
            self.spawn_fill(admit);
        }
    }

    /// Creates one object straight into the pool (capacity already reserved); `admit`:
    /// what the breaker said (a half-open trial reports back as one).
    pub(crate) fn spawn_fill(&self, admit: Admit) {
        // A cell nobody waits on: pre-cancelled, so `finish_create` releases the object
        // into the pool (or to a waiter) instead of handing it over.
        let cell = Waiter::new(Priority::Normal, self.now(), Duration::MAX, false);
        let _ = cell.decide(Decision::Cancelled);
        self.spawn_create(cell, admit);
    }
}

/// Background upkeep's hold on a pool: weak, so it never keeps the pool open.
#[cfg_attr(riptide_model, allow(dead_code))] // the models run upkeep by hand
pub(crate) struct WeakPool<T: Send + 'static>(pub(crate) std::sync::Weak<Handle<T>>);

impl<T: Send + 'static> WeakPool<T> {
    /// The shared state while some `Pool` handle is alive and the pool open. The handle
    /// upgraded to get it is dropped before this returns: a pass holds the memory
    /// ([`SharedRef`]), never a handle, so the last user handle dropped during a pass
    /// closes the pool at once, not when the pass ends.
    fn open(&self) -> Option<SharedRef<T>> {
        let shared = SharedRef::to(self.0.upgrade()?.get());
        (!shared.get().is_closed()).then_some(shared)
    }
}

impl<T: Send + 'static> crate::rt::Upkeep for WeakPool<T> {
    fn tick(&self) -> Option<Duration> {
        let shared = self.open()?;
        shared.get().maintain();
        Some(shared.get().maint_interval())
    }

    fn another(&self) -> Box<dyn crate::rt::Upkeep> {
        Box::new(WeakPool(self.0.clone()))
    }

    fn alive(&self) -> bool {
        self.open().is_some()
    }
}

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
        let exp: Vec<u64> = (1..=200).map(|id| s.lifetime_ms(id)).collect();
        // 5 % of 100 s = 5 s of jitter at most, never past the lifetime.
        assert!(
            exp.iter().all(|&e| (95_000..=100_000).contains(&e)),
            "{exp:?}"
        );
        // The same object always gets the same lifetime (its creation time is derived
        // from it).
        assert_eq!(s.lifetime_ms(7), s.lifetime_ms(7));
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
        let e = long.shared().lifetime_ms(1);
        assert!((3_570_000..=3_600_000).contains(&e), "{e}");
        // Without a lifetime, objects never expire by the clock.
        let none = Pool::builder(|| async { Ok::<_, std::io::Error>(Unit) })
            .max_lifetime(None)
            .build()
            .unwrap();
        assert_eq!(none.shared().lifetime_ms(1), super::NO_LIFETIME_MS);
    }
}
