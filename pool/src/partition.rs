//! [`PartitionedPool`]: one pool per key (tenant, user, service) under one global cap.
//!
//! Each partition is an ordinary [`Pool`] — the same lock-free core, waiters, lifecycle
//! and stats — built from the keyed factory with the key captured. What partitions add is
//! a **gate**: a global capacity counter every partition reserves from as well as from its
//! own cap.
//! - A key never holds more than its `partition_max_size` objects (its pool's cap).
//! - All keys together never hold more than `max_size` (the gate's CAS).
//! - A key at its own cap waits for its own objects; it cannot take another key's.
//! - When the global cap is reached and another key has idle objects, the oldest of them
//!   is destroyed to make room (as commons-pool2's keyed pool does).
//! - If none is idle, the caller queues in its partition, and every other partition's
//!   checked-out objects are marked, so the next one returned anywhere is destroyed and
//!   its capacity offered to the waiting key. No key waits while others sit idle.
//!
//! The key → partition map is a read-copy-update cell (`arc_swap::ArcSwap<HashMap>`, a
//! mutex under the model checkers, which check this protocol too): a lookup is one lock-free
//! load plus a hash lookup (no lock on the hot path). Creating a partition copies the map
//! (read-copy-update); partitions are created rarely compared to lookups, which is the
//! trade-off this structure is for.

use crate::sync::{fence, AtomicBool, AtomicUsize, Ordering, Rcu};
use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::hash::{BuildHasher, Hash};
use std::panic::Location;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::PoolBuilder;
use crate::error::{BoxError, ConfigError, PoolError};
use crate::shared::{Gate, SharedRef};
use crate::{Acquire, Pool, PoolStats, Pooled, Priority};

/// Limits for one key, overriding the builder's defaults (`.partition(key, limits)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLimits {
    /// Most objects this key may hold.
    pub max_size: usize,
    /// Idle objects kept ready for this key.
    pub min_idle: usize,
    /// Priority levels added to this key's acquisitions (saturating at `Critical`).
    pub priority_boost: u8,
}

/// How [`PartitionedPool::get_routed`] picks a partition for key-less work.
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
/// partition while that partition has capacity; when it is full the hint is re-routed by
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

type KeyedFactory<K, T> =
    Arc<dyn Fn(K) -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync>;
type Knobs<T> = Arc<dyn Fn(PoolBuilder<T>) -> PoolBuilder<T> + Send + Sync>;

/// Builds a [`PartitionedPool`]; from [`PartitionedPool::builder`].
#[must_use]
pub struct PartitionedPoolBuilder<K, T: Send + 'static> {
    factory: KeyedFactory<K, T>,
    partition_max_size: usize,
    max_size: usize,
    overrides: HashMap<K, PartitionLimits>,
    knobs: Vec<Knobs<T>>,
    routing: RoutingStrategy,
    affinity: Option<AffinityRules>,
    partition_idle_removal: Option<Duration>,
}

/// A pool per key under one global cap. Cheap to clone (one `Arc`).
///
/// ```
/// use riptide_pool::{PartitionedPool, Poolable};
///
/// struct Conn { tenant: String }
/// impl Poolable for Conn {}
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PartitionedPool::builder(|tenant: String| async move {
///     Ok::<_, std::io::Error>(Conn { tenant })
/// })
/// .partition_max_size(4) // per tenant
/// .max_size(16)          // all tenants together
/// .build()?;
/// let c = pool.get(&"acme".to_string()).await?;
/// assert_eq!(c.tenant, "acme");
/// assert_eq!(pool.stats(&"acme".to_string()).unwrap().in_use, 1);
/// assert!(pool.stats(&"globex".to_string()).is_none());
/// # Ok(()) }
/// ```
pub struct PartitionedPool<K, T: Send + 'static> {
    inner: Arc<Inner<K, T>>,
}

impl<K: std::fmt::Debug, T: Send + 'static> std::fmt::Debug for PartitionedPool<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.inner.map.load();
        f.debug_struct("PartitionedPool")
            .field("partitions", &map.keys().collect::<Vec<_>>())
            .field("global_max_size", &self.inner.gate.max)
            .field("global_size", &self.inner.gate.used.load(Ordering::Relaxed))
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl<K: std::fmt::Debug, T: Send + 'static> std::fmt::Debug for PartitionedPoolBuilder<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionedPoolBuilder")
            .field("partition_max_size", &self.partition_max_size)
            .field("max_size", &self.max_size)
            .field("overrides", &self.overrides)
            .field("routing", &self.routing)
            .field("affinity", &self.affinity)
            .finish_non_exhaustive()
    }
}

impl<K: std::fmt::Debug, T: Send + 'static> std::fmt::Debug for PartitionAcquire<'_, K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionAcquire")
            .field("key", &self.key)
            .field("priority", &self.priority)
            .field("timeout", &self.timeout)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl<K, T: Send + 'static> Clone for PartitionedPool<K, T> {
    fn clone(&self) -> Self {
        PartitionedPool {
            inner: self.inner.clone(),
        }
    }
}

struct Part<T: Send + 'static> {
    pool: Pool<T>,
    boost: u8,
    configured: bool,
}

struct Inner<K, T: Send + 'static> {
    map: Rcu<HashMap<K, Arc<Part<T>>>>,
    /// Set by `close`: no partition is created or served afterwards.
    closed: AtomicBool,
    factory: KeyedFactory<K, T>,
    partition_max_size: usize,
    overrides: HashMap<K, PartitionLimits>,
    knobs: Vec<Knobs<T>>,
    gate: Arc<GlobalGate<T>>,
    next_id: AtomicUsize,
    routing: RoutingStrategy,
    rr: AtomicUsize,
    affinity: Option<(AffinityRules, Mutex<HashMap<u64, K>>)>,
    hasher: std::collections::hash_map::RandomState,
}

impl<K, T: Send + 'static> Drop for Inner<K, T> {
    fn drop(&mut self) {
        // The gate holds references to every partition's shared state, and each holds the
        // gate: break the cycle so they are freed.
        self.gate.parts.update(|_| Arc::new(Vec::new()));
    }
}

/// The global cap: a counter every partition reserves from, and the partitions to evict
/// from and offer freed capacity to.
struct GlobalGate<T: Send + 'static> {
    max: usize,
    used: AtomicUsize,
    parts: Rcu<Vec<(usize, SharedRef<T>)>>,
}

impl<T: Send + 'static> GlobalGate<T> {
    fn take_free(&self) -> bool {
        crate::sync::increment_below(&self.used, self.max)
    }
}

impl<T: Send + 'static> Gate for GlobalGate<T> {
    fn acquire(&self, from: usize) -> bool {
        // A few rounds: an eviction frees a unit that a blocked partition may take first.
        for _ in 0..8 {
            if self.take_free() {
                return true;
            }
            let parts = self.parts.load();
            let oldest = parts
                .iter()
                .filter(|(id, _)| *id != from)
                .filter_map(|(_, p)| p.get().oldest_idle().map(|(stamp, i)| (stamp, i, p)))
                .min_by_key(|(stamp, ..)| *stamp);
            match oldest {
                Some((_, i, p)) => {
                    p.get().evict_idle(i);
                }
                None => return false,
            }
        }
        self.take_free()
    }

    fn try_acquire_free(&self) -> bool {
        self.take_free()
    }

    fn release(&self, _from: usize) {
        self.used.fetch_sub(1, Ordering::Relaxed);
        // Dekker with `blocked`: we free a unit then look for blocked partitions; a
        // partition publishes its waiter then looks for free units. The fences make at
        // least one side see the other, so a freed unit never sits beside a waiter.
        fence(Ordering::SeqCst);
        self.offer_free();
    }

    fn others_blocked(&self, from: usize) -> bool {
        self.parts
            .load()
            .iter()
            .any(|(id, p)| *id != from && p.get().blocked_on_gate())
    }

    fn blocked(&self, from: usize) {
        for (id, p) in self.parts.load().iter() {
            if *id != from {
                p.get().yield_capacity();
            }
        }
        // A unit freed while we registered (see `release`).
        fence(Ordering::SeqCst);
        self.offer_free();
    }
}

impl<T: Send + 'static> GlobalGate<T> {
    /// Offers free units, one each, to partitions whose callers wait only for one.
    fn offer_free(&self) {
        for (_, p) in self.parts.load().iter() {
            let p = p.get();
            if p.blocked_on_gate() && self.take_free() && !p.offer_permit() {
                self.used.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<K, T> PartitionedPool<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Starts a builder from a keyed factory: `Fn(K) -> impl Future<Output = Result<T, E>>`;
    /// objects are readied on return by their [`Poolable`](crate::Poolable) impl.
    pub fn builder<F, Fut, E>(factory: F) -> PartitionedPoolBuilder<K, T>
    where
        T: crate::Poolable,
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self::custom(factory).configure(PoolBuilder::poolable_defaults)
    }

    /// [`builder`](Self::builder) for any `T: Send + 'static` (see
    /// [`Pool::custom`](crate::Pool::custom)): give the reset and health check with
    /// `.configure(|b| b.reset(..).is_healthy(..))`.
    pub fn custom<F, Fut, E>(factory: F) -> PartitionedPoolBuilder<K, T>
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        PartitionedPoolBuilder {
            factory: Arc::new(move |k| {
                let fut = factory(k);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
            partition_max_size: 10,
            max_size: 100,
            overrides: HashMap::new(),
            knobs: Vec::new(),
            routing: RoutingStrategy::RoundRobin,
            affinity: None,
            partition_idle_removal: None,
        }
    }

    /// The partition for `key`, created on first use.
    fn part(&self, key: &K) -> Result<Arc<Part<T>>, PoolError> {
        if let Some(p) = self.inner.map.load().get(key) {
            return Ok(p.clone());
        }
        if self.is_closed() {
            return Err(PoolError::Closed);
        }
        self.create_part(key)
    }

    /// Whether [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn create_part(&self, key: &K) -> Result<Arc<Part<T>>, PoolError> {
        let inner = &self.inner;
        let limits = inner.overrides.get(key).copied();
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let factory = inner.factory.clone();
        let k = key.clone();
        let mut b = Pool::custom(move || factory(k.clone()))
            .max_size(limits.map_or(inner.partition_max_size, |l| l.max_size))
            .min_idle(limits.map_or(0, |l| l.min_idle));
        for knob in &inner.knobs {
            b = knob(b);
        }
        let gate: Arc<dyn Gate> = inner.gate.clone();
        let pool = b
            .gate(gate, id)
            .build()
            .map_err(|e| PoolError::Create(Box::new(e)))?;
        let part = Arc::new(Part {
            pool,
            boost: limits.map_or(0, |l| l.priority_boost),
            configured: limits.is_some(),
        });
        // Read-copy-update; a racing creator of the same key wins and ours is dropped.
        let mut winner = None;
        inner.map.update(|m| {
            if let Some(p) = m.get(key) {
                winner = Some(p.clone());
                return m.clone();
            }
            winner = None;
            let mut m = HashMap::clone(m);
            m.insert(key.clone(), part.clone());
            Arc::new(m)
        });
        if let Some(p) = winner {
            return Ok(p);
        }
        let raw = part.pool.raw();
        inner.gate.parts.update(|v| {
            let mut v: Vec<_> = v
                .iter()
                .map(|(i, r)| (*i, SharedRef::new(r.get().self_ptr())))
                .collect();
            v.push((id, SharedRef::new(raw)));
            Arc::new(v)
        });
        // A `close` that ran while we built it did not see this partition.
        if self.is_closed() {
            part.pool.close();
        }
        Ok(part)
    }

    /// Checks out an object of `key`'s partition (created on first use), waiting up to the
    /// acquire timeout.
    #[track_caller]
    pub fn get(&self, key: &K) -> PartitionAcquireFuture<T> {
        self.acquire(key).into_future()
    }

    /// An acquisition for `key` with options (priority, timeout).
    #[track_caller]
    pub fn acquire(&self, key: &K) -> PartitionAcquire<'_, K, T> {
        PartitionAcquire {
            pool: self,
            key: key.clone(),
            priority: Priority::Normal,
            timeout: None,
            location: Location::caller(),
        }
    }

    /// Key-less work: picks a partition by the builder's [`RoutingStrategy`] among the
    /// partitions that exist (created or configured); returns its key with the object.
    pub async fn get_routed(&self) -> Result<(K, Pooled<T>), PoolError> {
        let key = self.route(None)?;
        let g = self.get(&key).await?;
        Ok((key, g))
    }

    /// Like [`get_routed`](Self::get_routed) with a hint (a user id, a session): with
    /// [`AffinityRules`], the same hint goes to the same partition while it has capacity.
    pub async fn get_routed_with<H: Hash>(&self, hint: &H) -> Result<(K, Pooled<T>), PoolError> {
        let key = self.route(Some(self.inner.hasher.hash_one(hint)))?;
        let g = self.get(&key).await?;
        Ok((key, g))
    }

    fn route(&self, hint: Option<u64>) -> Result<K, PoolError> {
        let inner = &self.inner;
        for k in inner.overrides.keys() {
            self.part(k)?;
        }
        let map = inner.map.load();
        let mut keys: Vec<&K> = map.keys().collect();
        if keys.is_empty() {
            return Err(PoolError::Exhausted);
        }
        // A stable order (by hash) so round-robin cycles through every key.
        keys.sort_by_key(|k| inner.hasher.hash_one(k));
        let has_room = |k: &K| {
            map.get(k).is_some_and(|p| {
                let s = p.pool.stats();
                s.in_use < s.max_size
            })
        };
        if let (Some(hint), Some((_, sticky))) = (hint, &inner.affinity) {
            if let Some(k) = sticky.lock().unwrap_or_else(|e| e.into_inner()).get(&hint) {
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
        if let (Some(hint), Some((rules, sticky))) = (hint, &inner.affinity) {
            let mut m = sticky.lock().unwrap_or_else(|e| e.into_inner());
            if m.len() >= rules.max_hints {
                let drop_n = m.len() / 2;
                let gone: Vec<u64> = m.keys().take(drop_n).copied().collect();
                for g in gone {
                    m.remove(&g);
                }
            }
            m.insert(hint, pick.clone());
        }
        Ok(pick.clone())
    }

    /// Stats of `key`'s partition; `None` for a key never used.
    #[must_use]
    pub fn stats(&self, key: &K) -> Option<PoolStats> {
        self.inner.map.load().get(key).map(|p| p.pool.stats())
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
    /// partition's); `max_size` is the global cap.
    #[must_use]
    pub fn totals(&self) -> PoolStats {
        let mut t = PoolStats {
            max_size: self.inner.gate.max,
            ..PoolStats::default()
        };
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
        }
        t
    }

    /// Global capacity in use (objects alive or being created, all keys).
    #[must_use]
    pub fn global_size(&self) -> usize {
        self.inner.gate.used.load(Ordering::Relaxed)
    }

    /// Removes partitions that hold no object and have nobody waiting (keys given limits
    /// with `.partition(..)` stay); returns how many went. The maintenance task does this
    /// periodically when `remove_idle_partitions_after` is set.
    ///
    /// Removal is atomic with respect to acquisitions: a partition is retired (no object,
    /// no create in flight, nobody queued, and no reservation possible afterwards) before
    /// it leaves the map, and an acquisition that already held it tries again on the
    /// key's new partition, so a key never exceeds its cap.
    pub fn remove_idle_partitions(&self) -> usize {
        let inner = &self.inner;
        let retired: Vec<Arc<Part<T>>> = inner
            .map
            .load()
            .values()
            .filter(|p| !p.configured && p.pool.shared().retire_if_unused())
            .cloned()
            .collect();
        let removed: Vec<_> = retired.iter().map(|p| p.pool.raw()).collect();
        if !removed.is_empty() {
            inner.map.update(|m| {
                let mut m = HashMap::clone(m);
                m.retain(|_, p| !removed.contains(&p.pool.raw()));
                Arc::new(m)
            });
        }
        if !removed.is_empty() {
            inner.gate.parts.update(|v| {
                Arc::new(
                    v.iter()
                        .filter(|(_, r)| !removed.contains(&r.get().self_ptr()))
                        .map(|(id, r)| (*id, SharedRef::new(r.get().self_ptr())))
                        .collect::<Vec<_>>(),
                )
            });
        }
        removed.len()
    }

    /// loom/shuttle models only: joins every partition's create threads started so far.
    #[cfg(riptide_model)]
    #[doc(hidden)]
    pub fn model_join_creates(&self) {
        for p in self.inner.map.load().values() {
            p.pool.model_join_creates();
        }
    }

    /// Closes every partition: waiters and new calls, for any key, get
    /// `PoolError::Closed`. Idempotent.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        for p in self.inner.map.load().values() {
            p.pool.close();
        }
    }
}

/// An acquisition from a partition with options; await it (`IntoFuture`).
#[must_use = "an acquisition does nothing until awaited"]
pub struct PartitionAcquire<'a, K, T: Send + 'static> {
    pool: &'a PartitionedPool<K, T>,
    key: K,
    priority: Priority,
    timeout: Option<Duration>,
    location: &'static Location<'static>,
}

impl<K, T> PartitionAcquire<'_, K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Priority in the partition's wait queue (the key's `priority_boost` is added).
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Overrides the acquire timeout for this call.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

/// The future of a partition acquisition (`Send + 'static`).
pub type PartitionAcquireFuture<T> =
    Pin<Box<dyn Future<Output = Result<Pooled<T>, PoolError>> + Send>>;

impl<K, T> IntoFuture for PartitionAcquire<'_, K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    type Output = Result<Pooled<T>, PoolError>;
    type IntoFuture = PartitionAcquireFuture<T>;

    /// Looks the key's partition up and runs the fast path at once (as `Pool::get`); the
    /// rest runs when polled. If the partition is removed before the acquisition is
    /// served (`remove_idle_partitions`), it tries again on the key's new partition.
    fn into_future(self) -> Self::IntoFuture {
        let part = match self.pool.part(&self.key) {
            Ok(p) => p,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (priority, timeout, location) = (self.priority, self.timeout, self.location);
        let first = on_part(&part, priority, timeout, location);
        let (pp, key) = (self.pool.clone(), self.key);
        Box::pin(async move {
            let (mut part, mut fut) = (part, first);
            loop {
                match fut.await {
                    Err(PoolError::Closed)
                        if !pp.is_closed() && part.pool.shared().was_retired() =>
                    {
                        // Help the remover take it out of the map (so this never spins
                        // on the retired partition), then use the key's new one.
                        pp.inner.map.update(|m| match m.get(&key) {
                            Some(p) if Arc::ptr_eq(p, &part) => {
                                let mut m = HashMap::clone(m);
                                m.remove(&key);
                                Arc::new(m)
                            }
                            _ => m.clone(),
                        });
                        part = pp.part(&key)?;
                        fut = on_part(&part, priority, timeout, location);
                    }
                    r => return r,
                }
            }
        })
    }
}

/// The periodic `remove_idle_partitions` of `remove_idle_partitions_after`.
#[cfg(not(riptide_model))]
struct Removal<K, T: Send + 'static>(std::sync::Weak<Inner<K, T>>, Duration);

#[cfg(not(riptide_model))]
impl<K, T> crate::upkeep::Upkeep for Removal<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    fn tick(&self) -> Option<Duration> {
        let pp = PartitionedPool {
            inner: self.0.upgrade()?,
        };
        if pp.is_closed() {
            return None;
        }
        pp.remove_idle_partitions();
        Some(self.1)
    }
}

/// An acquisition on one partition, with its priority boost applied.
fn on_part<T: Send + 'static>(
    part: &Part<T>,
    priority: Priority,
    timeout: Option<Duration>,
    location: &'static Location<'static>,
) -> crate::AcquireFuture<T> {
    let boosted = (priority as u8)
        .saturating_add(part.boost)
        .min(Priority::Critical as u8);
    let priority = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ][boosted as usize];
    Acquire {
        pool: &part.pool,
        priority,
        timeout,
        location,
    }
    .into_future()
}

impl<K, T> PartitionedPoolBuilder<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Most objects one key may hold (default 10).
    pub fn partition_max_size(mut self, n: usize) -> Self {
        self.partition_max_size = n;
        self
    }
    /// Most objects all keys together may hold (default 100).
    pub fn max_size(mut self, n: usize) -> Self {
        self.max_size = n;
        self
    }
    /// Limits for one key, overriding the defaults.
    pub fn partition(mut self, key: K, limits: PartitionLimits) -> Self {
        self.overrides.insert(key, limits);
        self
    }
    /// How `get_routed` picks partitions (default round-robin).
    pub fn routing(mut self, s: RoutingStrategy) -> Self {
        self.routing = s;
        self
    }
    /// Sticky routing for `get_routed_with`.
    pub fn affinity(mut self, rules: AffinityRules) -> Self {
        self.affinity = Some(rules);
        self
    }
    /// Every `d`, remove partitions with no object and nobody waiting (they are recreated
    /// on next use). Runs on the pool's upkeep thread, holding the pool only weakly.
    pub fn remove_idle_partitions_after(mut self, d: Duration) -> Self {
        self.partition_idle_removal = Some(d);
        self
    }
    /// Applies any [`PoolBuilder`] knob to every partition (timeouts, lifetimes, hooks …):
    /// `.configure(|b| b.acquire_timeout(Duration::from_secs(1)))`.
    pub fn configure(
        mut self,
        f: impl Fn(PoolBuilder<T>) -> PoolBuilder<T> + Send + Sync + 'static,
    ) -> Self {
        self.knobs.push(Arc::new(f));
        self
    }
    /// Per-partition acquire timeout (default 30 s).
    pub fn acquire_timeout(self, d: Duration) -> Self {
        self.configure(move |b| b.acquire_timeout(d))
    }
    /// Per-partition idle timeout (default 10 min; `None` turns it off).
    pub fn idle_timeout(self, d: impl Into<Option<Duration>>) -> Self {
        let d = d.into();
        self.configure(move |b| b.idle_timeout(d))
    }
    /// Per-partition max lifetime (default 30 min; `None` turns it off).
    pub fn max_lifetime(self, d: impl Into<Option<Duration>>) -> Self {
        let d = d.into();
        self.configure(move |b| b.max_lifetime(d))
    }

    /// Checks the configuration and builds the pool. Errors name the field:
    /// `max_size == 0`, `partition_max_size == 0`, a per-key `max_size` of 0 or a
    /// `min_idle` above it.
    pub fn build(self) -> Result<PartitionedPool<K, T>, ConfigError> {
        if self.max_size == 0 {
            return Err(ConfigError::invalid("max_size", "must be at least 1"));
        }
        if self.partition_max_size == 0 {
            return Err(ConfigError::invalid(
                "partition_max_size",
                "must be at least 1",
            ));
        }
        for l in self.overrides.values() {
            if l.max_size == 0 {
                return Err(ConfigError::invalid(
                    "partition",
                    "max_size must be at least 1",
                ));
            }
            if l.min_idle > l.max_size {
                return Err(ConfigError::invalid(
                    "partition",
                    "min_idle must not exceed max_size",
                ));
            }
        }
        let inner = Arc::new(Inner {
            map: Rcu::new(HashMap::new()),
            closed: AtomicBool::new(false),
            factory: self.factory,
            partition_max_size: self.partition_max_size,
            overrides: self.overrides,
            knobs: self.knobs,
            gate: Arc::new(GlobalGate {
                max: self.max_size,
                used: AtomicUsize::new(0),
                parts: Rcu::new(Vec::new()),
            }),
            next_id: AtomicUsize::new(0),
            routing: self.routing,
            rr: AtomicUsize::new(0),
            affinity: self.affinity.map(|r| (r, Mutex::new(HashMap::new()))),
            hasher: Default::default(),
        });
        #[cfg(not(riptide_model))]
        if let Some(every) = self.partition_idle_removal {
            let weak: std::sync::Weak<Inner<K, T>> = Arc::downgrade(&inner);
            crate::upkeep::register(Box::new(Removal(weak, every)), every);
        }
        let pp = PartitionedPool { inner };
        // Partitions with their own limits exist from the start (their `min_idle` fills).
        let keys: Vec<K> = pp.inner.overrides.keys().cloned().collect();
        for k in keys {
            pp.part(&k)
                .map_err(|_| ConfigError::invalid("partition", "could not be created"))?;
        }
        Ok(pp)
    }
}
