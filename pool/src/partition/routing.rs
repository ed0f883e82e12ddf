//! Routing key-less work to a partition ([`RoutingStrategy`]), and sticky affinity for a
//! hint ([`AffinityRules`]).

use std::hash::{BuildHasher, Hash};

use super::PartitionedPool;
use crate::error::PoolError;
use crate::sync::Ordering;
use crate::Pooled;

/// How [`PartitionedPool::get_routed`] picks a partition for key-less work. Whatever the
/// strategy, a partition whose circuit breaker is turning creates away is passed over
/// while another partition exists to take the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoutingStrategy {
    /// Each partition in turn.
    #[default]
    RoundRobin,
    /// The partition with the lowest `in_use / max_size` (ties: fewest waiting).
    LeastLoaded,
    /// A pseudo-random partition.
    Random,
}

/// Sticky routing for [`PartitionedPool::get_routed_with`]: the same hint goes to the same
/// partition while that partition has capacity (and its breaker lets creates through);
/// when it is full the hint is re-routed by
/// the strategy and remembered there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffinityRules {
    /// Hints remembered at most (the oldest half is forgotten when full).
    pub max_hints: usize,
}

impl Default for AffinityRules {
    fn default() -> Self {
        AffinityRules { max_hints: 10_000 }
    }
}

impl<K, T> PartitionedPool<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Key-less work: picks a partition by the builder's [`RoutingStrategy`] among the
    /// partitions that exist (created or configured); returns its key with the object.
    ///
    /// # Errors
    /// [`PoolError::Exhausted`] when no partition exists to route to, [`PoolError::Closed`]
    /// when the pool is closed; otherwise as [`get`](Self::get).
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`get`](Self::get): dropping the future loses no object or capacity.
    ///
    /// The partition is picked when this is called, and the checkout records the
    /// caller's line (`#[track_caller]`, as [`get`](Self::get)) for leak reports.
    #[track_caller]
    pub fn get_routed(
        &self,
    ) -> impl std::future::Future<Output = Result<(K, Pooled<T>), PoolError>> + Send + 'static {
        // A `match`, not a closure: a closure would not pass the caller's line on.
        let routed = match self.route(None) {
            Ok(key) => Ok((key.clone(), self.get(&key))),
            Err(e) => Err(e),
        };
        async move {
            let (key, fut) = routed?;
            Ok((key, fut.await?))
        }
    }

    /// Like [`get_routed`](Self::get_routed) with a hint (a user id, a session): with
    /// [`AffinityRules`], the same hint goes to the same partition while it has capacity.
    ///
    /// # Errors
    /// As [`get_routed`](Self::get_routed).
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`get`](Self::get).
    #[track_caller]
    pub fn get_routed_with<H: Hash>(
        &self,
        hint: &H,
    ) -> impl std::future::Future<Output = Result<(K, Pooled<T>), PoolError>> + Send + 'static {
        let routed = match self.route(Some(self.inner.hasher.hash_one(hint))) {
            Ok(key) => Ok((key.clone(), self.get(&key))),
            Err(e) => Err(e),
        };
        async move {
            let (key, fut) = routed?;
            Ok((key, fut.await?))
        }
    }

    fn route(&self, hint: Option<u64>) -> Result<K, PoolError> {
        let inner = &self.inner;
        // Closed first: a closed pool may have no partition left to route to.
        if self.is_closed() {
            return Err(PoolError::Closed);
        }
        for k in inner.overrides.keys() {
            self.part(k)?;
        }
        let map = inner.map.load();
        let mut keys: Vec<&K> = map.keys().collect();
        if keys.is_empty() {
            return Err(PoolError::Exhausted);
        }
        // A partition whose breaker turns creates away is passed over while another can
        // take the work (it would look least loaded: nothing it makes is in use).
        let failing = |k: &&K| map[*k].pool.shared().breaker_rejects();
        if keys.iter().any(|k| !failing(k)) {
            keys.retain(|k| !failing(k));
        }
        // A stable order (by hash) so round-robin cycles through every key.
        keys.sort_by_key(|k| inner.hasher.hash_one(k));
        let has_room = |k: &K| {
            map.get(k).is_some_and(|p| {
                let s = p.pool.stats();
                s.in_use < s.max_size && !p.pool.shared().breaker_rejects()
            })
        };
        if let (Some(hint), Some((_, sticky))) = (hint, &inner.affinity) {
            if let Some((k, _)) = sticky.lock().get(&hint) {
                if has_room(k) {
                    return Ok(k.clone());
                }
            }
        }
        let pick = match inner.routing {
            RoutingStrategy::RoundRobin => {
                keys[inner.rr.fetch_add(1, Ordering::Relaxed) % keys.len()]
            }
            RoutingStrategy::Random => {
                let x = inner
                    .hasher
                    .hash_one(inner.rr.fetch_add(1, Ordering::Relaxed));
                keys[(x % keys.len() as u64) as usize]
            }
            RoutingStrategy::LeastLoaded => keys
                .iter()
                .min_by(|a, b| {
                    let load = |k: &K| {
                        let s = map[k].pool.stats();
                        (
                            s.in_use as f64 / s.max_size.max(1) as f64,
                            s.pending_acquisitions,
                        )
                    };
                    let (la, wa) = load(a);
                    let (lb, wb) = load(b);
                    la.total_cmp(&lb).then(wa.cmp(&wb))
                })
                .copied()
                .expect("non-empty"),
        };
        // `max_hints: 0` remembers nothing.
        let remember = inner
            .affinity
            .as_ref()
            .filter(|(rules, _)| rules.max_hints > 0);
        if let (Some(hint), Some((rules, sticky))) = (hint, remember) {
            let mut m = sticky.lock();
            if m.len() >= rules.max_hints && !m.contains_key(&hint) {
                // The oldest half goes: those remembered first (a hash map's own order
                // is arbitrary).
                let drop_n = (m.len() / 2).max(1);
                let mut by_age: Vec<(u64, u64)> =
                    m.iter().map(|(h, (_, seq))| (*seq, *h)).collect();
                by_age.sort_unstable();
                for (_, g) in by_age.into_iter().take(drop_n) {
                    m.remove(&g);
                }
            }
            let seq = inner.rr_hints.fetch_add(1, Ordering::Relaxed);
            m.insert(hint, (pick.clone(), seq));
        }
        Ok(pick.clone())
    }
}
