//! [`PartitionedPoolBuilder`]: the per-key and global limits, routing, and the knobs
//! applied to every partition's pool.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::gate::GlobalGate;
use super::{AffinityRules, HashMap, Inner, PartitionedPool, RoutingStrategy};
use crate::config::PoolBuilder;
use crate::error::{BoxError, ConfigError};
use crate::sync::Mutex;
use crate::sync::{AtomicBool, AtomicUsize, Rcu};

/// Limits for one key, overriding the builder's defaults (`.partition(key, limits)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLimits {
    /// Most objects this key may hold.
    pub max_size: usize,
    /// Idle objects kept ready for this key, as far as the global cap allows: the keys'
    /// `min_idle`s may add up past it, and each key's top-up then takes free global
    /// capacity only (it never evicts another key's objects to fill its own).
    pub min_idle: usize,
    /// Priority levels added to this key's acquisitions (saturating at `Critical`).
    pub priority_boost: u8,
}

pub(super) type KeyedFactory<K, T> =
    Arc<dyn Fn(K) -> Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send>> + Send + Sync>;
pub(super) type Knobs<T> = Arc<dyn Fn(PoolBuilder<T>) -> PoolBuilder<T> + Send + Sync>;

/// Builds a [`PartitionedPool`]; from [`PartitionedPool::builder`].
#[must_use]
pub struct PartitionedPoolBuilder<K, T: Send + 'static> {
    pub(super) factory: KeyedFactory<K, T>,
    pub(super) partition_max_size: usize,
    pub(super) max_size: usize,
    pub(super) overrides: HashMap<K, PartitionLimits>,
    pub(super) knobs: Vec<Knobs<T>>,
    pub(super) routing: RoutingStrategy,
    pub(super) affinity: Option<AffinityRules>,
    pub(super) partition_idle_removal: Option<Duration>,
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
            overrides: HashMap::default(),
            knobs: Vec::new(),
            routing: RoutingStrategy::RoundRobin,
            affinity: None,
            partition_idle_removal: None,
        }
    }
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
    /// on next use). Runs on the pool's upkeep thread, holding the pool only weakly. At
    /// least 1 ms.
    pub fn remove_idle_partitions_after(mut self, d: Duration) -> Self {
        self.partition_idle_removal = Some(d);
        self
    }
    /// Applies any [`PoolBuilder`] knob to every partition (timeouts, lifetimes, hooks …):
    /// `.configure(|b| b.acquire_timeout(Duration::from_secs(1)))`. A partition's size is
    /// not a knob: it comes from [`partition_max_size`](Self::partition_max_size) or the
    /// key's [`partition`](Self::partition) limits, and `build()` refuses a `max_size`
    /// set here. A `min_idle` set here applies to the keys without limits of their own.
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
    /// Deadlock detection (default `Warn`): a caller waiting on any partition while it
    /// holds a checkout of any partition is a nested wait; `Error` fails the waiting
    /// holders of a partition at its own cap whose objects are all held by them. See
    /// [`DeadlockDetection`](crate::DeadlockDetection).
    pub fn deadlock_detection(self, mode: crate::DeadlockDetection) -> Self {
        self.configure(move |b| b.deadlock_detection(mode))
    }

    /// Checks the configuration and builds the pool.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field: `max_size == 0`,
    /// `partition_max_size == 0`, a per-key `max_size` of 0 or a `min_idle` above it or
    /// above the global `max_size`, a `max_size` set through `configure`, a
    /// `remove_idle_partitions_after` under 1 ms, and whatever a partition's
    /// [`PoolBuilder::build`] would refuse with these limits and knobs (`acquire_timeout`
    /// of zero, ...), checked now rather than when a partition is first used.
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
            if l.min_idle > self.max_size {
                return Err(ConfigError::invalid(
                    "partition",
                    "min_idle must not exceed the global max_size",
                ));
            }
        }
        // A knob that set the size would override every key's limit: refuse it. The
        // knobs run on two sizes; a size no knob sets stays what it was in both.
        let never = || async { Err::<T, BoxError>("a settings check creates nothing".into()) };
        let probe_from = |size: usize| {
            self.knobs
                .iter()
                .fold(PoolBuilder::custom(never).max_size(size), |b, knob| knob(b))
        };
        let probe = probe_from(0);
        if probe.settings().max_size != 0 || probe_from(1).settings().max_size != 1 {
            return Err(ConfigError::invalid(
                "max_size",
                "is set per key by partition_max_size or partition(..), not by configure",
            ));
        }
        if probe.settings().min_idle > self.max_size {
            return Err(ConfigError::invalid(
                "min_idle",
                "must not exceed the global max_size",
            ));
        }
        // The pool's clock counts whole milliseconds: a shorter period would have the
        // upkeep thread run the removal back to back.
        if self
            .partition_idle_removal
            .is_some_and(|d| d < Duration::from_millis(1))
        {
            return Err(ConfigError::invalid(
                "remove_idle_partitions_after",
                "must be at least 1ms (the pool's clock counts milliseconds)",
            ));
        }
        // A partition is built on first use: check every partition's settings (the
        // default limits and each override, with the knobs) now, as `Pool`'s `build` would.
        let limits = std::iter::once(None).chain(self.overrides.values().copied().map(Some));
        for limits in limits {
            let b = partition_builder(
                PoolBuilder::custom(never),
                &self.knobs,
                self.partition_max_size,
                limits,
            );
            b.check()?;
        }
        let inner = Arc::new(Inner {
            map: Rcu::new(HashMap::default()),
            closed: AtomicBool::new(false),
            factory: self.factory,
            partition_max_size: self.partition_max_size,
            overrides: self.overrides,
            knobs: self.knobs,
            gate: Arc::new(GlobalGate {
                max: self.max_size,
                used: AtomicUsize::new(0),
                parts: Rcu::new(Vec::new()),
                evicting: AtomicUsize::new(0),
            }),
            next_id: AtomicUsize::new(0),
            routing: self.routing,
            rr: AtomicUsize::new(0),
            rr_hints: crate::sync::AtomicU64::new(0),
            affinity: self.affinity.map(|r| (r, Mutex::new(HashMap::default()))),
            hasher: Default::default(),
            gone: Default::default(),
            runtime: std::sync::OnceLock::new(),
        });
        // Watched until the partitioned pool is gone or closed.
        let watch = Removal(Arc::downgrade(&inner), Duration::ZERO);
        let _ = inner
            .runtime
            .set(crate::rt::BuildRuntime::capture(Box::new(watch)));
        if let Some(every) = self.partition_idle_removal {
            let weak: std::sync::Weak<Inner<K, T>> = Arc::downgrade(&inner);
            crate::rt::keep_in_background(Box::new(Removal(weak, every)), every);
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

/// The periodic `remove_idle_partitions` of `remove_idle_partitions_after`.
#[cfg_attr(riptide_model, allow(dead_code))] // the models run upkeep by hand
struct Removal<K, T: Send + 'static>(std::sync::Weak<Inner<K, T>>, Duration);

impl<K, T> crate::rt::Upkeep for Removal<K, T>
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

    fn another(&self) -> Box<dyn crate::rt::Upkeep> {
        Box::new(Removal(self.0.clone(), self.1))
    }

    fn alive(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|inner| !PartitionedPool { inner }.is_closed())
    }
}

/// A partition's builder: the knobs first, then the partition's own limits (its key's, or
/// the defaults), so no knob can lift a key above its cap.
pub(super) fn partition_builder<T: Send + 'static>(
    b: PoolBuilder<T>,
    knobs: &[Knobs<T>],
    partition_max_size: usize,
    limits: Option<PartitionLimits>,
) -> PoolBuilder<T> {
    let b = knobs.iter().fold(b, |b, knob| knob(b));
    match limits {
        Some(l) => b.max_size(l.max_size).min_idle(l.min_idle),
        None => b.max_size(partition_max_size),
    }
}
