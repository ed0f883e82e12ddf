//! [`PoolBuilder`]: every knob, its default, and the checks `build()` makes.

use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{BoxError, ConfigError};
use crate::hooks::Hooks;
use crate::traits::BoxFuture;
use crate::traits::{DynFactory, Factory, Poolable, Recycle};
use crate::{DeadlockDetection, ObjectMeta, Pool};

/// The validated configuration a pool runs with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub max_size: usize,
    pub min_idle: usize,
    pub acquire_timeout: Duration,
    pub create_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
    pub max_uses: Option<u64>,
    pub leak_threshold: Option<Duration>,
    pub validation_interval: Duration,
    pub starvation_threshold: Duration,
    /// Consecutive create failures that open the breaker, and its cool-down.
    pub circuit: Option<(u32, Duration, u32)>,
    /// Give the capacity of a checkout held this long back to the pool.
    pub reclaim_leaked: Option<Duration>,
    /// The pool's name: the `pool` label of its metrics, and in log lines.
    pub name: String,
    /// What to do about a nested wait.
    pub deadlock: DeadlockDetection,
}

/// Builds a [`Pool`]; get one from [`Pool::builder`].
///
/// | knob | default | effect |
/// | --- | --- | --- |
/// | `max_size` | 10 | objects alive at most (idle + in use + being created) |
/// | `min_idle` | 0 | idle objects kept ready by maintenance |
/// | `acquire_timeout` | 30 s | how long a caller waits (never "forever") |
/// | `create_timeout` | 30 s | how long one `Factory::create` may take |
/// | `idle_timeout` | 10 min | idle objects above `min_idle` idle longer are destroyed |
/// | `max_lifetime` | `T::MAX_LIFETIME`, else 30 min | objects are retired this old (minus up to 5 % jitter, ≤ 30 s); never handed out past it |
/// | `max_uses` | `T::MAX_USES` | objects are retired after this many checkouts |
/// | `leak_threshold` | off | checkouts held longer are reported once (event, `tracing::warn!`, `leaks_detected`) |
/// | `reclaim_leaked` | off | checkouts held longer have their capacity given back |
/// | `validation_interval` | 500 ms | `Factory::validate` runs on checkout of objects idle longer; `ZERO` = always |
/// | `starvation_threshold` | 200 ms | waiters older than this are served as `Critical` |
/// | `circuit_breaker` | 5 failures, 1 s | fail fast while the factory keeps failing |
/// | `deadlock_detection` | `Warn` | report (or, with `Error`, fail) a caller that waits while holding a checkout of the same pool |
///
/// Time-based limits use a coarse millisecond clock (ticked every 2 ms by one thread per
/// process), so they act within a few milliseconds of the configured value.
#[must_use]
pub struct PoolBuilder<T: Send + 'static> {
    factory: Box<dyn DynFactory<T>>,
    config: Config,
    hooks: Hooks<T>,
    gate: Option<(std::sync::Arc<dyn crate::shared::Gate>, usize)>,
    /// `circuit_breaker_successes`, kept apart so that setting it never turns a breaker
    /// back on that `no_circuit_breaker` turned off, in whatever order they are called.
    breaker_successes: u32,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> std::fmt::Debug for PoolBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> PoolBuilder<T> {
    /// A builder for a [`Poolable`] type: its `reset`, `is_healthy` and limits.
    pub(crate) fn new<F: Factory<T>>(factory: F) -> Self
    where
        T: Poolable,
    {
        Self::custom(factory).poolable_defaults()
    }

    /// Takes `reset`, `is_healthy`, `MAX_USES` and `MAX_LIFETIME` from the `Poolable` impl.
    pub(crate) fn poolable_defaults(mut self) -> Self
    where
        T: Poolable,
    {
        self.hooks.recycle = Recycle::poolable();
        self.config.max_lifetime = T::MAX_LIFETIME.or(self.config.max_lifetime);
        self.config.max_uses = T::MAX_USES;
        self
    }

    /// A builder for any type: no reset and always healthy unless closures are given.
    pub(crate) fn custom<F: Factory<T>>(factory: F) -> Self {
        PoolBuilder {
            factory: Box::new(factory),
            config: Config {
                max_size: 10,
                min_idle: 0,
                acquire_timeout: Duration::from_secs(30),
                create_timeout: Duration::from_secs(30),
                idle_timeout: Some(Duration::from_secs(600)),
                max_lifetime: Some(Duration::from_secs(1800)),
                max_uses: None,
                leak_threshold: None,
                validation_interval: Duration::from_millis(500),
                starvation_threshold: Duration::from_millis(200),
                circuit: Some((5, Duration::from_secs(1), 1)),
                reclaim_leaked: None,
                name: "riptide".to_owned(),
                deadlock: DeadlockDetection::Warn,
            },
            hooks: Hooks::default(),
            gate: None,
            breaker_successes: 1,
            _t: PhantomData,
        }
    }

    /// Runs when a guard is dropped, before the object is idle again (in place of
    /// [`Poolable::reset`] for a type that has one). For types you do not own:
    /// `Pool::custom(factory).reset(|v: &mut Vec<u8>| v.clear())`.
    pub fn reset(mut self, f: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.hooks.recycle.set_reset(Box::new(f));
        self
    }

    /// Checked after the reset when a guard is dropped; `false` destroys the object (in
    /// place of [`Poolable::is_healthy`] for a type that has one).
    pub fn is_healthy(mut self, f: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.hooks.recycle.set_healthy(Box::new(f));
        self
    }

    /// Most objects alive at once (idle + in use + being created). Default 10; must be > 0.
    pub fn max_size(mut self, n: usize) -> Self {
        self.config.max_size = n;
        self
    }
    /// Idle objects to keep ready. Default 0; must be ≤ `max_size`.
    pub fn min_idle(mut self, n: usize) -> Self {
        self.config.min_idle = n;
        self
    }
    /// How long `get` waits before `PoolError::Timeout`. Default 30 s; must be > 0.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.config.acquire_timeout = d;
        self
    }
    /// How long one `Factory::create` may take before it counts as failed. Default 30 s; must be > 0.
    pub fn create_timeout(mut self, d: Duration) -> Self {
        self.config.create_timeout = d;
        self
    }
    /// Idle objects above `min_idle` idle longer than this are destroyed. Default 10 min;
    /// `None` turns it off; at least 1 ms (the pool's clock counts milliseconds).
    pub fn idle_timeout(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.idle_timeout = d.into();
        self
    }
    /// Objects older than this are retired. Default `T::MAX_LIFETIME`, else 30 min; `None`
    /// turns it off (also when `T::MAX_LIFETIME` is set); at least 1 ms.
    pub fn max_lifetime(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = d.into();
        self
    }
    /// Objects are destroyed on return once checked out this many times. Default `T::MAX_USES`.
    pub fn max_uses(mut self, n: u64) -> Self {
        self.config.max_uses = Some(n);
        self
    }
    /// Report objects held longer than this (off by default; `None` turns it off); at
    /// least 1 ms.
    pub fn leak_threshold(mut self, d: impl Into<Option<Duration>>) -> Self {
        self.config.leak_threshold = d.into();
        self
    }
    /// `Factory::validate` runs only on objects idle longer than this; `ZERO` = always,
    /// else at least 1 ms.
    pub fn validation_interval(mut self, d: Duration) -> Self {
        self.config.validation_interval = d;
        self
    }
    /// Waiters older than this are served as `Priority::Critical`. Default 200 ms.
    pub fn starvation_threshold(mut self, d: Duration) -> Self {
        self.config.starvation_threshold = d;
        self
    }
    /// What to do about a caller that must wait while it already holds a checkout of this
    /// pool (see [`DeadlockDetection`]). Default `Warn`; `Off` also spares the fast path
    /// its one store per checkout.
    pub fn deadlock_detection(mut self, mode: DeadlockDetection) -> Self {
        self.config.deadlock = mode;
        self
    }

    /// Circuit breaker on the factory: after `failures` consecutive create failures it
    /// opens — callers that would create get `PoolError::CircuitOpen` at once and queued
    /// waiters are failed — then after `cool_down` one trial create is let through; its
    /// success closes it (see [`circuit_breaker_successes`](Self::circuit_breaker_successes)).
    /// Default: 5 failures, 1 s.
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.config.circuit = Some((failures, cool_down, self.breaker_successes));
        self
    }
    /// Half-open trial creates that must succeed in a row to close the breaker (default
    /// 1). Each trial is one create; callers meanwhile fail fast. It configures the
    /// breaker and never turns one on: after
    /// [`no_circuit_breaker`](Self::no_circuit_breaker) it only applies to a later
    /// [`circuit_breaker`](Self::circuit_breaker).
    pub fn circuit_breaker_successes(mut self, successes: u32) -> Self {
        self.breaker_successes = successes;
        if let Some(c) = &mut self.config.circuit {
            c.2 = successes;
        }
        self
    }
    /// Turns the circuit breaker off: every create is attempted.
    pub fn no_circuit_breaker(mut self) -> Self {
        self.config.circuit = None;
        self
    }
    /// Opt-in: a checkout held longer than `after` (e.g. a `mem::forget`-ed guard) has its
    /// capacity given back, so the pool does not shrink forever; if the guard does return,
    /// its object is destroyed. Runs in maintenance. At least 1 ms, and not shorter than
    /// [`leak_threshold`](Self::leak_threshold) when both are set (a checkout is reported
    /// before it loses its capacity).
    pub fn reclaim_leaked(mut self, after: impl Into<Option<Duration>>) -> Self {
        self.config.reclaim_leaked = after.into();
        self
    }

    /// Applies every knob `config` sets (from a file or the environment: see
    /// [`PoolConfig`](crate::PoolConfig)); the others keep their current values.
    /// `circuit_failures = 0` turns the breaker off.
    pub fn config(mut self, config: &crate::PoolConfig) -> Self {
        let successes = self.breaker_successes;
        let c = &mut self.config;
        let cfg = config;
        if let Some(v) = cfg.max_size {
            c.max_size = v;
        }
        if let Some(v) = cfg.min_idle {
            c.min_idle = v;
        }
        if let Some(v) = cfg.acquire_timeout {
            c.acquire_timeout = v;
        }
        if let Some(v) = cfg.create_timeout {
            c.create_timeout = v;
        }
        if let Some(v) = cfg.idle_timeout {
            c.idle_timeout = v;
        }
        if let Some(v) = cfg.max_lifetime {
            c.max_lifetime = v;
        }
        if let Some(v) = cfg.max_uses {
            c.max_uses = Some(v);
        }
        if let Some(v) = cfg.leak_threshold {
            c.leak_threshold = v;
        }
        if let Some(v) = cfg.reclaim_leaked {
            c.reclaim_leaked = v;
        }
        if let Some(v) = cfg.validation_interval {
            c.validation_interval = v;
        }
        if let Some(v) = cfg.starvation_threshold {
            c.starvation_threshold = v;
        }
        match (cfg.circuit_failures, cfg.circuit_cool_down) {
            (Some(0), _) => c.circuit = None,
            (None, None) => {}
            (n, d) => {
                let (n0, d0) = c
                    .circuit
                    .map_or((5, Duration::from_secs(1)), |c| (c.0, c.1));
                c.circuit = Some((n.unwrap_or(n0), d.unwrap_or(d0), successes));
            }
        }
        if let Some(v) = &cfg.name {
            c.name.clone_from(v);
        }
        if let Some(v) = cfg.deadlock_detection {
            c.deadlock = v;
        }
        self
    }
    /// Names the pool (the `pool` label of its metrics). Default `"riptide"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }
    /// Async hook after each create; a rejection fails the create. See [`crate::hooks`].
    pub fn post_create<F>(mut self, f: F) -> Self
    where
        F: for<'a> Fn(&'a mut T, ObjectMeta) -> BoxFuture<'a, Result<(), BoxError>>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.post_create = Some(Box::new(f));
        self
    }
    /// Async hook on checkout of a reused object, before validation. See [`crate::hooks`].
    pub fn pre_recycle<F>(mut self, f: F) -> Self
    where
        F: for<'a> Fn(&'a mut T, ObjectMeta) -> BoxFuture<'a, Result<(), BoxError>>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.pre_recycle = Some(Box::new(f));
        self
    }
    /// Async hook on checkout of a reused object, after validation. See [`crate::hooks`].
    pub fn post_recycle<F>(mut self, f: F) -> Self
    where
        F: for<'a> Fn(&'a mut T, ObjectMeta) -> BoxFuture<'a, Result<(), BoxError>>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.post_recycle = Some(Box::new(f));
        self
    }
    /// Sync hook when a guard is dropped (after `reset`); a rejection destroys the object.
    pub fn on_release<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut T, ObjectMeta) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.hooks.on_release = Some(Box::new(f));
        self
    }
    /// Sync hook when an object is detached; a rejection keeps it in the pool.
    pub fn on_detach<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut T, ObjectMeta) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.hooks.on_detach = Some(Box::new(f));
        self
    }

    /// Makes the pool partition `id` under a global cap (`PartitionedPool`).
    pub(crate) fn gate(mut self, gate: std::sync::Arc<dyn crate::shared::Gate>, id: usize) -> Self {
        self.gate = Some((gate, id));
        self
    }

    /// Checks the configuration and builds the pool.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the field: `max_size == 0`, `min_idle > max_size`,
    /// a zero `acquire_timeout` or `create_timeout`, `max_uses == 0`.
    pub fn build(self) -> Result<Pool<T>, ConfigError> {
        self.check()?;
        Ok(Pool::from_parts(
            self.factory,
            self.config,
            self.hooks,
            self.gate,
        ))
    }

    /// The checks of [`build`](Self::build), without building (a partitioned pool runs
    /// them for its partitions' settings at its own `build`).
    /// The configuration set so far (not checked yet).
    pub(crate) fn settings(&self) -> &Config {
        &self.config
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let c = &self.config;
        if c.max_size == 0 {
            return Err(ConfigError::invalid("max_size", "must be at least 1"));
        }
        if c.min_idle > c.max_size {
            return Err(ConfigError::invalid("min_idle", "must not exceed max_size"));
        }
        if c.acquire_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "acquire_timeout",
                "must be greater than zero",
            ));
        }
        if c.create_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "create_timeout",
                "must be greater than zero",
            ));
        }
        if c.max_uses == Some(0) {
            return Err(ConfigError::invalid("max_uses", "must be at least 1"));
        }
        if let Some((0, ..)) = c.circuit {
            return Err(ConfigError::invalid(
                "circuit_breaker",
                "needs at least 1 failure to open",
            ));
        }
        if self.breaker_successes == 0 {
            return Err(ConfigError::invalid(
                "circuit_breaker_successes",
                "must be at least 1",
            ));
        }
        // The pool's clock counts whole milliseconds: a limit below one would act as zero.
        for (field, limit) in [
            ("idle_timeout", c.idle_timeout),
            ("max_lifetime", c.max_lifetime),
            ("leak_threshold", c.leak_threshold),
            ("reclaim_leaked", c.reclaim_leaked),
        ] {
            if limit.is_some_and(|d| d < Duration::from_millis(1)) {
                return Err(ConfigError::invalid(
                    field,
                    "must be at least 1ms (the pool's clock counts milliseconds)",
                ));
            }
        }
        let v = c.validation_interval;
        if !v.is_zero() && v < Duration::from_millis(1) {
            return Err(ConfigError::invalid(
                "validation_interval",
                "must be zero (validate every checkout) or at least 1ms",
            ));
        }
        if let (Some(reclaim), Some(report)) = (c.reclaim_leaked, c.leak_threshold) {
            if reclaim < report {
                return Err(ConfigError::invalid(
                    "reclaim_leaked",
                    "must not be shorter than leak_threshold: a checkout would lose its \
                     capacity before it is reported as a leak",
                ));
            }
        }
        if c.max_size > crate::shared::slots::MAX_SLOTS {
            return Err(ConfigError::invalid(
                "max_size",
                "is larger than the pool can address",
            ));
        }
        Ok(())
    }
}
