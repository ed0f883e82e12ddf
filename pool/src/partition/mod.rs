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
//!   is destroyed to make room (as commons-pool2's keyed pool does). It is dropped on a
//!   blocking thread, so its `Drop` never holds the caller: the caller waits in its queue,
//!   within its deadline, for the unit to come back.
//! - If none is idle, the caller queues in its partition, and every other partition's
//!   checked-out objects are marked, so the next one returned anywhere is destroyed and
//!   its capacity offered to the waiting key. No key waits while others sit idle.
//!
//! The rules that keep the last point true under races, cited where they are kept: a
//! partition joins the gate before callers can find it (`create_part`); every change that
//! leaves callers waiting for global capacity alone tells the gate (G1,
//! `Shared::tell_gate_if_blocked`); a unit a blocked partition refused for a moment is
//! offered again (G2, `GlobalGate::offer_free`); while evictions are in flight, their
//! units serve the blocked partitions, and the last one to end tells the gate of any
//! still blocked (G3, `GlobalGate::blocked`, `eviction_done`). `docs/architecture.md`
//! ("Partitions") tells them whole.
//!
//! The key → partition map is a read-copy-update cell (`arc_swap::ArcSwap<HashMap>`, a
//! mutex under the model checkers, which check this protocol too): a lookup is one lock-free
//! load plus a hash lookup (no lock on the hot path). Creating a partition copies the map
//! (read-copy-update); partitions are created rarely compared to lookups, which is the
//! trade-off this structure is for.

mod acquire;
mod builder;
mod gate;
mod per_key;
mod routing;
mod views;

use std::future::IntoFuture;
use std::hash::Hash;
use std::sync::Arc;

pub use acquire::{PartitionAcquire, PartitionAcquireFuture};
pub use builder::{PartitionLimits, PartitionedPoolBuilder};
pub use routing::{AffinityRules, RoutingStrategy};

use crate::acquire::AcquireOptions;
use crate::error::PoolError;
use crate::shared::{Gate, SharedRef};
use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, Rcu};
use crate::Pool;
use builder::{KeyedFactory, Knobs};
use gate::GlobalGate;

/// The hash maps of a partitioned pool, with the facade's hasher (fixed under the model
/// checkers: `sync::MapHasher`).
pub(super) type Hasher = crate::sync::MapHasher;
pub(super) type HashMap<K, V> = std::collections::HashMap<K, V, Hasher>;

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

impl<K, T: Send + 'static> PartitionedPool<K, T> {
    /// The pool of `key`'s partition, if it has one (the model checkers' hooks).
    #[cfg(riptide_model)]
    pub(crate) fn pool_of(&self, key: &K) -> Option<Pool<T>>
    where
        K: Eq + Hash,
    {
        self.inner.map.load().get(key).map(|p| p.pool.clone())
    }

    /// Every partition's pool (the model checkers' hooks).
    #[cfg(riptide_model)]
    pub(crate) fn pools(&self) -> Vec<Pool<T>> {
        self.inner
            .map
            .load()
            .values()
            .map(|p| p.pool.clone())
            .collect()
    }
}

impl<K, T: Send + 'static> Clone for PartitionedPool<K, T> {
    fn clone(&self) -> Self {
        PartitionedPool {
            inner: self.inner.clone(),
        }
    }
}

/// Remembered hints: hint → (its partition's key, when remembered).
type Hints<K> = HashMap<u64, (K, u64)>;

struct Part<T: Send + 'static> {
    pool: Pool<T>,
    boost: u8,
    configured: bool,
    /// Set when the partition is removed, with its counters then (added there at once):
    /// what it counts afterwards is added when the last holder lets go, so a caller still
    /// holding it (one whose timeout was decided, about to count it) loses no count, and
    /// one that holds it for long (a future made before the removal, not yet polled) keeps
    /// none of its counts out of the totals meanwhile.
    gone: std::sync::OnceLock<(Arc<views::GoneCounters>, crate::PoolStats)>,
}

impl<T: Send + 'static> Drop for Part<T> {
    fn drop(&mut self) {
        if let Some((gone, then)) = self.gone.get() {
            gone.add_since(&self.pool.stats(), then);
        }
    }
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
    /// The sequence numbers of remembered hints (`affinity`).
    rr_hints: crate::sync::AtomicU64,
    /// Per hint: its partition's key and when it was remembered (a sequence number), so
    /// the oldest half can be forgotten when the table is full.
    affinity: Option<(AffinityRules, Mutex<Hints<K>>)>,
    hasher: Hasher,
    /// The counters of removed partitions, so the totals' counters never go down.
    gone: Arc<views::GoneCounters>,
    /// The runtime current at `build()`, which partitions are built in while it lives.
    runtime: std::sync::OnceLock<crate::rt::BuildRuntime>,
}

impl<K, T: Send + 'static> Drop for Inner<K, T> {
    fn drop(&mut self) {
        // The gate holds references to every partition's shared state, and each holds the
        // gate: break the cycle so they are freed.
        self.gate.parts.update(|_| Arc::new(Vec::new()));
    }
}

impl<K, T> PartitionedPool<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
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

    /// Takes `part`, retired, out of the map if it is still `key`'s there: helps the
    /// remover, so a caller that held it never spins on it before using the key's new
    /// partition.
    fn forget(&self, key: &K, part: &Arc<Part<T>>) {
        self.inner.map.update(|m| match m.get(key) {
            Some(p) if Arc::ptr_eq(p, part) => {
                let mut m = HashMap::clone(m);
                m.remove(key);
                Arc::new(m)
            }
            _ => m.clone(),
        });
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
        let b = builder::partition_builder(
            Pool::custom(move || factory(k.clone())),
            &inner.knobs,
            inner.partition_max_size,
            limits,
        );
        let gate: Arc<dyn Gate> = inner.gate.clone();
        // Built in the runtime current at the partitioned pool's `build()` while it lives,
        // not in whichever (or no) runtime the key's first caller runs on.
        let pool = {
            let _entered = inner.runtime.get().and_then(crate::rt::BuildRuntime::enter);
            b.gate(gate, id).build()
        }
        .map_err(|e| PoolError::Create(Box::new(e)))?;
        let part = Arc::new(Part {
            pool,
            boost: limits.map_or(0, |l| l.priority_boost),
            configured: limits.is_some(),
            gone: std::sync::OnceLock::new(),
        });
        // The gate first, the map second: a partition callers can find and queue in is
        // always one the gate can see, so a unit freed anywhere is offered to its waiters
        // and the others' returns are diverted for them. In the other order a caller could
        // queue, blocked on the global cap, in a partition the gate does not list yet, and
        // freed units would pass it by.
        inner.gate.parts.update(|v| {
            let mut v: Vec<_> = v.iter().map(|(i, r)| (*i, r.clone())).collect();
            v.push((id, SharedRef::to(part.pool.shared())));
            Arc::new(v)
        });
        // Read-copy-update; a racing creator of the same key wins and ours is dropped
        // (nobody found it, so nobody waits in it), after leaving the gate.
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
            inner.gate.parts.update(|v| {
                Arc::new(
                    v.iter()
                        .filter(|(i, _)| *i != id)
                        .map(|(i, r)| (*i, r.clone()))
                        .collect::<Vec<_>>(),
                )
            });
            return Ok(p);
        }
        // A `close` that ran while we built it did not see this partition.
        if self.is_closed() {
            part.pool.close();
        }
        Ok(part)
    }

    /// Checks out an object of `key`'s partition (created on first use), waiting up to the
    /// acquire timeout.
    ///
    /// # Errors
    /// As [`Pool::get`]; [`PoolError::Closed`] also when the key was removed while the
    /// caller waited and the pool is closed.
    ///
    /// # Cancel safety
    /// Dropping the future at any point loses nothing, as [`Pool::get`]'s; a unit of the
    /// global cap it held is given back.
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
            opts: AcquireOptions::new(),
        }
    }

    /// Removes partitions that hold no object and have nobody waiting (keys given limits
    /// with `.partition(..)` stay); returns how many went. The maintenance task does this
    /// periodically when `remove_idle_partitions_after` is set. A partition whose circuit
    /// breaker is open, has a trial in flight, or counted a failure within its last
    /// cool-down stays too (removing it would reset the breaker); an older failure is
    /// forgotten.
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
        let removed: Vec<_> = retired.iter().map(|p| p.pool.addr()).collect();
        if !removed.is_empty() {
            inner.map.update(|m| {
                let mut m = HashMap::clone(m);
                m.retain(|_, p| !removed.contains(&p.pool.addr()));
                Arc::new(m)
            });
            inner.gate.parts.update(|v| {
                Arc::new(
                    v.iter()
                        .filter(|(_, r)| !removed.contains(&std::ptr::from_ref(r.get())))
                        .map(|(id, r)| (*id, r.clone()))
                        .collect::<Vec<_>>(),
                )
            });
            // After they left the map (see `GoneCounters`): a retired partition holds
            // nothing and serves nobody, so its counters are added now; but a caller that
            // held it may still count a timeout decided there, which is added once the
            // last holder lets go (`Part`'s drop, here if nobody else holds it).
            for p in &retired {
                let then = p.pool.stats();
                inner.gone.add(&then);
                let _ = p.gone.set((inner.gone.clone(), then));
            }
        }
        removed.len()
    }

    /// Closes every partition: waiters and new calls, for any key, get
    /// `PoolError::Closed`. Idempotent.
    pub fn close(&self) {
        self.close_with(false);
    }

    /// `close`, with the idle objects dropped away from the caller if `aside` (for
    /// `drain`).
    pub(crate) fn close_with(&self, aside: bool) {
        self.inner.closed.store(true, Ordering::Release);
        for p in self.inner.map.load().values() {
            if aside {
                p.pool.close_aside();
            } else {
                p.pool.close();
            }
        }
    }
}
