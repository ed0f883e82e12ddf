//! Whole-pool and per-key views of a partitioned pool: stats, totals, health, the
//! breaker, checkouts, drain and events.

use std::hash::Hash;

use super::PartitionedPool;
use crate::sync::{AtomicU64, Ordering};
use crate::PoolStats;

/// The monotone counters of [`PoolStats`], in the order `GoneCounters` keeps them.
fn counters(s: &mut PoolStats) -> [&mut u64; 5] {
    [
        &mut s.created,
        &mut s.destroyed,
        &mut s.acquired,
        &mut s.timeouts,
        &mut s.leaks_detected,
    ]
}

/// What removed partitions had counted, and the highest totals reported, so that the
/// totals' counters (`created`, `destroyed`, `acquired`, `timeouts`, `leaks_detected`)
/// never go down as partitions come and go.
///
/// A removal adds its partitions' counters after they left the map (Release); `totals`
/// reads them before it loads the map (Acquire). A total that sees a partition's
/// addition so sees the map without it, and never counts it twice; one that reads
/// during a removal may miss it for a moment, which the highest reported total hides.
#[derive(Default)]
pub(super) struct GoneCounters {
    gone: [AtomicU64; 5],
    reported: [AtomicU64; 5],
}

impl GoneCounters {
    /// Adds a removed partition's final counters.
    pub(super) fn add(&self, s: &PoolStats) {
        let mut s = *s;
        for (sum, n) in self.gone.iter().zip(counters(&mut s)) {
            sum.fetch_add(*n, Ordering::Release);
        }
    }

    /// Adds what a removed partition counted after `then` (its counters at removal, which
    /// were added then) up to `now` (its final counters, when its last holder let go).
    pub(super) fn add_since(&self, now: &PoolStats, then: &PoolStats) {
        let (mut now, mut then) = (*now, *then);
        for ((sum, n), t) in self
            .gone
            .iter()
            .zip(counters(&mut now))
            .zip(counters(&mut then))
        {
            sum.fetch_add(n.saturating_sub(*t), Ordering::Release);
        }
    }

    /// The removed partitions' counters (read before the map, see above).
    fn load(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.gone[i].load(Ordering::Acquire))
    }

    /// Raises `t`'s counters to the highest reported so far, and records them.
    fn report(&self, t: &mut PoolStats) {
        for (seen, n) in self.reported.iter().zip(counters(t)) {
            // Relaxed: a maximum over reports, nothing is published through it.
            *n = (*n).max(seen.fetch_max(*n, Ordering::Relaxed));
        }
    }
}

impl<K, T> PartitionedPool<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Stats of `key`'s partition; `None` for a key with no partition: never used, or
    /// its partition was removed as idle (`remove_idle_partitions`; the totals keep its
    /// counters).
    #[must_use]
    pub fn stats(&self, key: &K) -> Option<PoolStats> {
        self.inner.map.load().get(key).map(|p| p.pool.stats())
    }

    /// Health of `key`'s partition on its own, as [`Pool::health`](crate::Pool::health)
    /// judges a pool: its own `max_size`, breaker and create outcomes. `None` for a key
    /// with no partition.
    #[must_use]
    pub fn partition_health(&self, key: &K) -> Option<crate::HealthStatus> {
        self.inner.map.load().get(key).map(|p| p.pool.health())
    }

    /// Every partition's key and stats.
    #[must_use]
    pub fn partitions(&self) -> Vec<(K, PoolStats)> {
        self.inner
            .map
            .load()
            .iter()
            .map(|(k, p)| (k.clone(), p.pool.stats()))
            .collect()
    }

    /// Sums over all partitions (the wait/usage/create percentiles are the worst
    /// partition's); `max_size` is the global cap. The counters (`created`,
    /// `destroyed`, `acquired`, `timeouts`, `leaks_detected`) include what removed
    /// partitions counted, and never go down from one call to the next.
    #[must_use]
    pub fn totals(&self) -> PoolStats {
        let mut t = PoolStats {
            max_size: self.inner.gate.max,
            ..PoolStats::default()
        };
        // Removed partitions count in the counters (read before the map: `GoneCounters`).
        for (sum, n) in counters(&mut t).into_iter().zip(self.inner.gone.load()) {
            *sum = n;
        }
        for (_, s) in self.partitions() {
            t.size += s.size;
            t.idle += s.idle;
            t.in_use += s.in_use;
            t.pending_acquisitions += s.pending_acquisitions;
            t.created += s.created;
            t.destroyed += s.destroyed;
            t.acquired += s.acquired;
            t.timeouts += s.timeouts;
            t.leaks_detected += s.leaks_detected;
            t.wait_p50 = t.wait_p50.max(s.wait_p50);
            t.wait_p95 = t.wait_p95.max(s.wait_p95);
            t.wait_p99 = t.wait_p99.max(s.wait_p99);
            t.usage_p50 = t.usage_p50.max(s.usage_p50);
            t.usage_p95 = t.usage_p95.max(s.usage_p95);
            t.usage_p99 = t.usage_p99.max(s.usage_p99);
            t.create_p50 = t.create_p50.max(s.create_p50);
            t.create_p95 = t.create_p95.max(s.create_p95);
            t.create_p99 = t.create_p99.max(s.create_p99);
            for (sum, n) in t.waiting_by_priority.iter_mut().zip(s.waiting_by_priority) {
                *sum += n;
            }
            t.oldest_wait = t.oldest_wait.max(s.oldest_wait);
        }
        self.inner.gone.report(&mut t);
        t
    }

    /// Health of the whole pool. Its load is judged on the totals, as
    /// [`Pool::health`](crate::Pool::health) judges a pool's (the global cap for
    /// utilization, callers waiting in any partition), and its failures partition by
    /// partition, so that one tenant's failing factory does not take the whole pool out:
    /// - `Critical` when the pool is closed;
    /// - otherwise at least as bad as its healthiest partition's failures (the thresholds of
    ///   [`HealthLevel`](crate::HealthLevel): `Critical` with its breaker not closed or half
    ///   its creates of the last minute failing, `Unhealthy` from 20 %, `Degraded` from
    ///   5 %), so every partition failing makes the pool fail as much;
    /// - at least `Degraded` while any partition's failures reach a level;
    /// - and at least as bad as its load makes it.
    ///
    /// `error_rate` is every partition's create errors over their attempts.
    #[must_use]
    pub fn health(&self) -> crate::HealthStatus {
        use crate::stats::{error_rate, failure_level};
        use crate::HealthLevel::{Critical, Degraded, Healthy};
        let map = self.inner.map.load();
        let (mut attempts, mut errors) = (0, 0);
        let (mut best, mut worst) = (None, Healthy);
        for p in map.values() {
            let (a, e) = p.pool.shared().create_outcomes();
            (attempts, errors) = (attempts + a, errors + e);
            let level = failure_level(
                p.pool.circuit_state() != crate::CircuitState::Closed,
                error_rate((a, e)),
            );
            best = Some(best.map_or(level, |b: crate::HealthLevel| b.min(level)));
            worst = worst.max(level);
        }
        let floor = if self.is_closed() {
            Critical
        } else {
            best.unwrap_or(Healthy)
                .max(if worst > Healthy { Degraded } else { Healthy })
        };
        crate::HealthStatus::weigh(&self.totals(), floor, error_rate((attempts, errors)))
    }

    /// The worst breaker state among the partitions: `Open` if any is open, else
    /// `HalfOpen` if any is, else `Closed`.
    #[must_use]
    pub fn circuit_state(&self) -> crate::CircuitState {
        use crate::CircuitState::{Closed, HalfOpen, Open};
        let rank = |c: &crate::CircuitState| match c {
            Open => 2,
            HalfOpen => 1,
            _ => 0,
        };
        self.inner
            .map
            .load()
            .values()
            .map(|p| p.pool.circuit_state())
            .max_by_key(rank)
            .unwrap_or(Closed)
    }

    /// The objects checked out right now in every partition, with their keys, longest
    /// held first (as [`Pool::checked_out`](crate::Pool::checked_out)).
    #[must_use]
    pub fn checked_out(&self) -> Vec<(K, crate::CheckedOut)> {
        let mut out: Vec<_> = self
            .inner
            .map
            .load()
            .iter()
            .flat_map(|(k, p)| p.pool.checked_out().into_iter().map(|c| (k.clone(), c)))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.1.held_for));
        out
    }

    /// Closes every partition, then waits until every checked-out object has come back
    /// (each is destroyed on return) and every object is gone, up to `timeout`. Idle
    /// objects are dropped away from the caller, as [`Pool::drain`](crate::Pool::drain)
    /// drops them.
    ///
    /// # Errors
    /// [`DrainError`](crate::DrainError) listing what is still out (every partition's)
    /// when `timeout` passes.
    ///
    /// # Cancel safety
    /// The pool is closed at the first poll; dropping the future afterwards only stops the
    /// waiting.
    #[cfg(not(riptide_model))]
    pub fn drain(
        &self,
        timeout: std::time::Duration,
    ) -> impl std::future::Future<Output = Result<(), crate::DrainError>> + Send + 'static {
        let pp = self.clone();
        async move {
            pp.close_with(true);
            // Saturating: `Duration::MAX` waits for as long as it takes.
            let deadline = crate::rt::timer::deadline_after(timeout);
            loop {
                let out: Vec<_> = pp.checked_out().into_iter().map(|(_, c)| c).collect();
                // Every object gone, a reclaimed checkout's included (`holds_nothing`), and
                // its global unit given back: a drop aside lowers its partition's size a
                // moment before it gives the unit to the gate.
                let gone = || {
                    let map = pp.inner.map.load();
                    map.values().all(|p| p.pool.shared().holds_nothing()) && pp.global_size() == 0
                };
                if out.is_empty() && gone() {
                    return Ok(());
                }
                if std::time::Instant::now() >= deadline {
                    return Err(crate::DrainError { still_out: out });
                }
                crate::rt::timer::Sleep::after(std::time::Duration::from_millis(2)).await;
            }
        }
    }

    /// The events of `key`'s partition (as [`Pool::events`](crate::Pool::events)); `None` for a key never
    /// used.
    #[cfg(not(riptide_model))]
    #[must_use]
    pub fn events(&self, key: &K) -> Option<tokio::sync::broadcast::Receiver<crate::PoolEvent>> {
        self.inner.map.load().get(key).map(|p| p.pool.events())
    }

    /// Global capacity in use (objects alive or being created, all keys).
    #[must_use]
    pub fn global_size(&self) -> usize {
        self.inner.gate.used.load(Ordering::Relaxed)
    }
}
