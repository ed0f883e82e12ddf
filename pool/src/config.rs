//! [`PoolBuilder`]: every knob, its default, and the checks `build()` makes.

use std::marker::PhantomData;
use std::time::Duration;

use crate::error::ConfigError;
use crate::traits::{DynFactory, Factory, Poolable};
use crate::Pool;

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
}

/// Builds a [`Pool`]; get one from [`Pool::builder`].
///
/// | knob | default | status |
/// | --- | --- | --- |
/// | `max_size` | 10 | enforced |
/// | `min_idle` | 0 | checked against `max_size`; replenishment comes with the lifecycle work |
/// | `acquire_timeout` | 30 s | enforced (never "forever") |
/// | `create_timeout` | 30 s | enforced |
/// | `idle_timeout` | 10 min | accepted; eviction not yet implemented |
/// | `max_lifetime` | 30 min | accepted; retirement not yet implemented |
/// | `max_uses` | `T::MAX_USES` | enforced on return |
/// | `leak_threshold` | off | accepted; checkout locations are recorded, scans not yet implemented |
/// | `validation_interval` | 500 ms | accepted; `Factory::validate` not yet called |
/// | `starvation_threshold` | 200 ms | enforced (aging of waiters) |
#[must_use]
pub struct PoolBuilder<T: Poolable> {
    factory: Box<dyn DynFactory<T>>,
    config: Config,
    _t: PhantomData<fn() -> T>,
}

impl<T: Poolable> PoolBuilder<T> {
    pub(crate) fn new<F: Factory<T>>(factory: F) -> Self {
        PoolBuilder {
            factory: Box::new(factory),
            config: Config {
                max_size: 10,
                min_idle: 0,
                acquire_timeout: Duration::from_secs(30),
                create_timeout: Duration::from_secs(30),
                idle_timeout: Some(Duration::from_secs(600)),
                max_lifetime: T::MAX_LIFETIME.or(Some(Duration::from_secs(1800))),
                max_uses: T::MAX_USES,
                leak_threshold: None,
                validation_interval: Duration::from_millis(500),
                starvation_threshold: Duration::from_millis(200),
            },
            _t: PhantomData,
        }
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
    /// Idle objects above `min_idle` idle longer than this are destroyed. Default 10 min.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.config.idle_timeout = Some(d);
        self
    }
    /// Objects older than this are retired. Default `T::MAX_LIFETIME`, else 30 min.
    pub fn max_lifetime(mut self, d: Duration) -> Self {
        self.config.max_lifetime = Some(d);
        self
    }
    /// Objects are destroyed on return once checked out this many times. Default `T::MAX_USES`.
    pub fn max_uses(mut self, n: u64) -> Self {
        self.config.max_uses = Some(n);
        self
    }
    /// Report objects held longer than this (off by default).
    pub fn leak_threshold(mut self, d: Duration) -> Self {
        self.config.leak_threshold = Some(d);
        self
    }
    /// `Factory::validate` runs only on objects idle longer than this; `ZERO` = always.
    pub fn validation_interval(mut self, d: Duration) -> Self {
        self.config.validation_interval = d;
        self
    }
    /// Waiters older than this are served as `Priority::Critical`. Default 200 ms.
    pub fn starvation_threshold(mut self, d: Duration) -> Self {
        self.config.starvation_threshold = d;
        self
    }

    /// Checks the configuration and builds the pool.
    ///
    /// Errors name the field: `max_size == 0`, `min_idle > max_size`, a zero
    /// `acquire_timeout` or `create_timeout`, `max_uses == 0`.
    pub fn build(self) -> Result<Pool<T>, ConfigError> {
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
        if c.max_size > crate::slots::MAX_SLOTS {
            return Err(ConfigError::invalid(
                "max_size",
                "is larger than the pool can address",
            ));
        }
        Ok(Pool::from_parts(self.factory, self.config))
    }
}
