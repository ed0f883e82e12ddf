//! Pooled wasmtime component instances running the bundled extractor guest
//! (`adapters/guest`, built from source for `wasm32-wasip2` by this crate's build script).
//!
//! - One `Engine` + `Component` + `Linker` + `InstancePre` per pool, shared by every call.
//! - A **fresh `Store` per call** by default: nothing a call leaves in guest memory reaches the
//!   next one. [`WasmPoolConfig::reuse_calls`] `> 1` keeps a warm instance for up to that many
//!   calls instead (faster, but state persists within those calls).
//! - Concurrency is bounded by the `riptide-pool` pool of [`WasmInstance`]s
//!   (`max_instances`).
//! - **Deadlines by epochs**: a ticker thread advances the engine's epoch every
//!   `epoch_tick`; at each tick the running call checks its deadline and traps past it
//!   (`epoch_timeouts`). **Memory** is capped per store (`grow_failures`, `peak_memory_pages`).
//! - On a trap, a timeout, a guest failure or an open **circuit breaker**, extraction falls
//!   back to the native extractor (`fallbacks`), unless `fallback` is off, in which case the
//!   caller gets the typed error. At most `max_fallbacks` fallbacks run at once; a call
//!   that cannot have a turn within `acquire_timeout` gets the typed error too
//!   (`fallbacks_shed`).
//! - Optional **health checks** ([`WasmPoolConfig::health_check_interval`]): a background
//!   probe calls the guest on an instance from the pool and reports to the breaker, so a
//!   broken guest opens it, and a recovered one closes it, without a caller's request.

mod runtime;

/// Re-exported so that `use riptide_adapters::wasm::{WasmExtractorPool, WasmPoolConfig,
/// ExtractionMode}` works, as in the API contract.
pub use crate::{ExtractedDoc, ExtractionMode};
pub use riptide_pool::CircuitState;

/// The `source` of the [`PoolEvent::Custom`] events this adapter sends.
pub const EVENT_SOURCE: &str = "riptide_adapters::wasm";
pub use runtime::Startup;

use crate::error::{env_parse, env_positive, ConfigError};
use crate::ExtractError;
use riptide_pool::breaker::{Admit, CircuitBreaker, Transition};
use riptide_pool::{Pool, PoolEvent, PoolStats, Poolable, Pooled, Priority};
use runtime::{CallError, CallReport, GuestRefusal, Runtime, Warm};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How a call runs without blocking the async runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallMode {
    /// wasmtime's async support: the call runs on the caller's task (on a fiber) and
    /// yields to the executor at every epoch tick. The default: no thread hop.
    #[default]
    Async,
    /// Synchronous calls on tokio's blocking pool (`spawn_blocking`).
    Blocking,
}

/// A diagnostic export of the guest, for tests and health probes: they run through the
/// same instance pool, deadline and limits as `extract`, without fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Diagnostic {
    /// Increments a counter in a guest global and returns it: 1 on a fresh store.
    Bump,
    /// Computes for `n` rounds (`u64::MAX`: forever, until the deadline stops it).
    Spin(u64),
    /// Allocates and touches `n` bytes of guest memory; returns 0 if the allocation failed.
    Allocate(u64),
}

/// Configuration of a [`WasmExtractorPool`]. `Default` gives the table's values;
/// [`from_env`](Self::from_env) applies the environment on top.
///
/// | field | default | environment |
/// | --- | --- | --- |
/// | `max_instances` | 2 × available cores | `RIPTIDE_WASM_INSTANCES_PER_WORKER` × cores |
/// | `initial_pool_size` | 1 | `RIPTIDE_WASM_INITIAL_POOL_SIZE` |
/// | `timeout` | 5 s | `RIPTIDE_WASM_TIMEOUT_SECS` (may be fractional) |
/// | `memory_limit_bytes` | 128 MiB | `RIPTIDE_WASM_MEMORY_LIMIT_MB` |
/// | `reuse_calls` | 1 (fresh store per call) | — |
/// | `call_mode` | `Async` | — |
/// | `fallback` | on | — |
/// | `max_fallbacks` | `max_instances` | — |
/// | `pooling_allocator` | on | — |
/// | `epoch_tick` | 1 ms | — |
/// | `breaker_failures` | 5 | `CB_FAILURE_THRESHOLD` |
/// | `breaker_successes` | 1 | `CB_SUCCESS_THRESHOLD` |
/// | `breaker_cool_down` | 10 s | `CB_TIMEOUT_MS` (milliseconds) |
/// | `health_check_interval` | off | `HEALTH_CHECK_INTERVAL_MS` (milliseconds) |
/// | `max_document_bytes` | 16 MiB | — |
/// | `cache_dir` | none | — |
/// | `acquire_timeout` | 30 s | — |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WasmPoolConfig {
    /// Most instances (and so concurrent calls); at most
    /// [`MAX_INSTANCES`](Self::MAX_INSTANCES).
    pub max_instances: usize,
    /// Instances created up front and kept (the pool's `min_idle`); with `reuse_calls > 1`
    /// they are instantiated, so the first calls find a warm instance.
    pub initial_pool_size: usize,
    /// Each call's deadline; past it the guest is interrupted at the next epoch tick.
    pub timeout: Duration,
    /// Linear memory one store may grow to.
    pub memory_limit_bytes: usize,
    /// Calls one instance serves before it is replaced. 1 = a fresh store for every call
    /// (no state leaks between calls); N > 1 keeps the instance warm for N calls.
    pub reuse_calls: u32,
    /// How calls run without blocking the executor.
    pub call_mode: CallMode,
    /// On guest failure, timeout or open breaker, run the native extractor instead of
    /// returning the error (within `max_fallbacks`).
    pub fallback: bool,
    /// Most native fallback extractions running at once (`None`: as many as
    /// `max_instances`; at most [`MAX_INSTANCES`](Self::MAX_INSTANCES)), so an open breaker under load costs no more threads and memory
    /// than the guest would have. A call that falls back while that many run waits for
    /// one to end, up to `acquire_timeout`; past it, it gets the error that sent it to the
    /// fallback (counted in [`WasmStats::fallbacks_shed`]).
    pub max_fallbacks: Option<usize>,
    /// wasmtime's pooling instance allocator, sized to `max_instances` when the pool is
    /// built: with it on, growing the instance pool past `max_instances` (`pool().resize`)
    /// adds instances that cannot be created (each such call fails as a guest failure,
    /// answered by the fallback when it is on). Build with a larger `max_instances` (or
    /// with this off) to grow later.
    pub pooling_allocator: bool,
    /// How often the epoch advances: the resolution of `timeout`.
    pub epoch_tick: Duration,
    /// Consecutive guest failures that open the breaker (at least 1).
    pub breaker_failures: u32,
    /// Consecutive successful trial calls, once the cool-down has passed, that close the
    /// breaker again (at least 1); a failed trial opens it for another cool-down.
    pub breaker_successes: u32,
    /// How long the breaker stays open before trial calls are let through.
    pub breaker_cool_down: Duration,
    /// With `Some(d)`, a background task calls the guest's `bump` export every `d` on an
    /// instance from the pool (at low priority, never waiting longer than `d`, and not while
    /// the breaker is open and cooling down), and reports the outcome to the breaker like any
    /// call: failing probes open it, and once the cool-down has passed probes are its trial
    /// calls, so a recovered guest is put back in service without risking a caller's request.
    /// Counted in [`WasmStats::health_checks`] and [`WasmStats::health_check_failures`]. The
    /// task needs the tokio runtime `new` runs on (with time enabled) and ends with the pool.
    pub health_check_interval: Option<Duration>,
    /// Larger documents are [`ExtractError::TooLarge`] without calling the guest (at most
    /// 64 MiB, the guest's own limit).
    pub max_document_bytes: usize,
    /// Where to keep the compiled component between runs (keyed by the engine's
    /// compatibility hash and the guest's bytes). Only point this at a directory nobody
    /// else writes to: a compiled artifact is native code.
    pub cache_dir: Option<PathBuf>,
    /// How long a call waits for a free instance.
    pub acquire_timeout: Duration,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for WasmPoolConfig {
    fn default() -> Self {
        WasmPoolConfig {
            max_instances: 2 * cores(),
            initial_pool_size: 1,
            timeout: Duration::from_secs(5),
            memory_limit_bytes: 128 << 20,
            reuse_calls: 1,
            call_mode: CallMode::Async,
            fallback: true,
            max_fallbacks: None,
            pooling_allocator: true,
            epoch_tick: Duration::from_millis(1),
            breaker_failures: 5,
            breaker_successes: 1,
            breaker_cool_down: Duration::from_secs(10),
            health_check_interval: None,
            max_document_bytes: 16 << 20,
            cache_dir: None,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

impl WasmPoolConfig {
    /// The largest `max_instances` [`validate`](Self::validate) accepts. The pooling
    /// allocator reserves address space for two memories per instance, each a 4 GiB
    /// reservation plus guard pages (about 8.7 GB an instance): this many fit in a 47-bit
    /// address space with room to spare.
    pub const MAX_INSTANCES: usize = 8_192;

    /// The largest `memory_limit_bytes` [`validate`](Self::validate) accepts: a 32-bit
    /// WebAssembly memory's 4 GiB.
    pub const MAX_MEMORY_LIMIT_BYTES: usize = 4 << 30;

    /// The defaults, with `RIPTIDE_WASM_INSTANCES_PER_WORKER`,
    /// `RIPTIDE_WASM_INITIAL_POOL_SIZE`, `RIPTIDE_WASM_TIMEOUT_SECS`,
    /// `RIPTIDE_WASM_MEMORY_LIMIT_MB`, and the breaker and health variables
    /// `CB_FAILURE_THRESHOLD`, `CB_SUCCESS_THRESHOLD`, `CB_TIMEOUT_MS` and
    /// `HEALTH_CHECK_INTERVAL_MS` applied where set (see the table on [`WasmPoolConfig`]).
    ///
    /// # Errors
    ///
    /// A value that does not parse, or is zero or negative, is a [`ConfigError::Env`] naming
    /// the variable; fields that do not fit together are a [`ConfigError::Invalid`]
    /// ([`validate`](Self::validate)).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(n) = env_positive::<usize>("RIPTIDE_WASM_INSTANCES_PER_WORKER")? {
            // Past `usize`, the product is over the bound `validate` enforces anyway.
            c.max_instances = n.saturating_mul(cores());
        }
        if let Some(n) = env_parse::<usize>("RIPTIDE_WASM_INITIAL_POOL_SIZE")? {
            c.initial_pool_size = n;
        }
        if let Some(s) = env_positive::<f64>("RIPTIDE_WASM_TIMEOUT_SECS")? {
            c.timeout = Duration::try_from_secs_f64(s).map_err(|e| ConfigError::Env {
                var: "RIPTIDE_WASM_TIMEOUT_SECS",
                value: s.to_string(),
                reason: e.to_string(),
            })?;
        }
        if let Some(mb) = env_positive::<usize>("RIPTIDE_WASM_MEMORY_LIMIT_MB")? {
            // Checked: a shift would drop the high bits and wrap to a small limit.
            c.memory_limit_bytes = mb.checked_mul(1 << 20).ok_or_else(|| ConfigError::Env {
                var: "RIPTIDE_WASM_MEMORY_LIMIT_MB",
                value: mb.to_string(),
                reason: "too large to count in bytes".into(),
            })?;
        }
        if let Some(n) = env_positive::<u32>("CB_FAILURE_THRESHOLD")? {
            c.breaker_failures = n;
        }
        if let Some(n) = env_positive::<u32>("CB_SUCCESS_THRESHOLD")? {
            c.breaker_successes = n;
        }
        if let Some(ms) = env_positive::<u64>("CB_TIMEOUT_MS")? {
            c.breaker_cool_down = Duration::from_millis(ms);
        }
        if let Some(ms) = env_positive::<u64>("HEALTH_CHECK_INTERVAL_MS")? {
            c.health_check_interval = Some(Duration::from_millis(ms));
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks that the fields make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason| Err(ConfigError::Invalid { field, reason });
        if self.max_instances == 0 {
            return bad("max_instances", "must be at least 1");
        }
        if self.max_instances > Self::MAX_INSTANCES {
            return bad(
                "max_instances",
                "must be at most 8,192 (the pooling allocator reserves about 8.7 GB of \
                 address space for each)",
            );
        }
        if self.initial_pool_size > self.max_instances {
            return bad("initial_pool_size", "must not exceed max_instances");
        }
        if self.timeout.is_zero() {
            return bad("timeout", "must be greater than zero");
        }
        if self.epoch_tick.is_zero() || self.epoch_tick > self.timeout {
            return bad(
                "epoch_tick",
                "must be greater than zero and at most `timeout`",
            );
        }
        if self.memory_limit_bytes < 2 << 20 {
            return bad(
                "memory_limit_bytes",
                "must be at least 2 MiB (the guest's own image)",
            );
        }
        if self.memory_limit_bytes > Self::MAX_MEMORY_LIMIT_BYTES {
            return bad(
                "memory_limit_bytes",
                "must be at most 4 GiB (a 32-bit WebAssembly memory's size)",
            );
        }
        if self.reuse_calls == 0 {
            return bad(
                "reuse_calls",
                "must be at least 1 (1 = a fresh store per call)",
            );
        }
        if self.max_document_bytes == 0 || self.max_document_bytes > runtime::GUEST_MAX_BYTES {
            return bad(
                "max_document_bytes",
                "must be between 1 byte and 64 MiB (the guest's own limit)",
            );
        }
        match self.max_fallbacks {
            Some(0) if self.fallback => {
                return bad(
                    "max_fallbacks",
                    "must be at least 1 (turn `fallback` off for no fallback)",
                );
            }
            Some(n) if n > Self::MAX_INSTANCES => {
                return bad(
                    "max_fallbacks",
                    "must be at most 8,192 (MAX_INSTANCES: no more than the guest could run)",
                );
            }
            _ => {}
        }
        if self.breaker_failures == 0 {
            return bad("breaker_failures", "must be at least 1");
        }
        if self.breaker_successes == 0 {
            return bad("breaker_successes", "must be at least 1");
        }
        if self.breaker_cool_down.is_zero() {
            return bad("breaker_cool_down", "must be greater than zero");
        }
        if self.health_check_interval.is_some_and(|d| d.is_zero()) {
            return bad(
                "health_check_interval",
                "must be greater than zero (`None` turns the checks off)",
            );
        }
        Ok(())
    }
}

/// A pooled slot for one guest instance: empty in fresh-store mode (the pool then only
/// bounds concurrency), or a warm instance in reuse mode.
#[derive(Poolable)]
pub struct WasmInstance {
    warm: Option<Warm>,
}

impl std::fmt::Debug for WasmInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmInstance")
            .field("warm_calls", &self.warm.as_ref().map(|w| w.calls))
            .finish()
    }
}

#[derive(Default)]
struct Counters {
    extractions: AtomicU64,
    succeeded: AtomicU64,
    refused: AtomicU64,
    failures: AtomicU64,
    fallbacks: AtomicU64,
    fallbacks_shed: AtomicU64,
    epoch_timeouts: AtomicU64,
    grow_failures: AtomicU64,
    peak_memory_bytes: AtomicU64,
    instantiations: AtomicU64,
    reused_calls: AtomicU64,
    circuit_rejections: AtomicU64,
    circuit_opened: AtomicU64,
    guest_calls: AtomicU64,
    guest_nanos: AtomicU64,
    health_checks: AtomicU64,
    health_check_failures: AtomicU64,
}

/// A snapshot of a [`WasmExtractorPool`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WasmStats {
    /// `extract` calls.
    pub extractions: u64,
    /// Extractions the guest completed.
    pub succeeded: u64,
    /// Extractions refused for bad input (size, URL): not failures.
    pub refused: u64,
    /// Guest calls that trapped, timed out or could not instantiate (extract and diagnostics).
    pub failures: u64,
    /// Extractions answered by the native extractor instead of the guest.
    pub fallbacks: u64,
    /// Extractions that would have fallen back but found `max_fallbacks` running for all
    /// of `acquire_timeout`: they got the error that sent them there.
    pub fallbacks_shed: u64,
    /// Calls stopped at their epoch deadline.
    pub epoch_timeouts: u64,
    /// Memory growth requests refused by the store limit.
    pub grow_failures: u64,
    /// The largest linear memory any store reached, in 64 KiB pages.
    pub peak_memory_pages: u64,
    /// Instances created (one per call in fresh-store mode).
    pub instantiations: u64,
    /// Calls served by a warm instance (reuse mode).
    pub reused_calls: u64,
    /// Extractions that skipped the guest because the breaker was open.
    pub circuit_rejections: u64,
    /// Times the breaker opened.
    pub circuit_opened: u64,
    /// The breaker now.
    pub circuit: CircuitState,
    /// Health probes that called the guest ([`WasmPoolConfig::health_check_interval`]).
    pub health_checks: u64,
    /// Health probes the guest failed (also counted in `failures`).
    pub health_check_failures: u64,
    /// Guest calls (instantiate + call), and their mean wall time (a true mean: total
    /// time / calls).
    pub guest_calls: u64,
    /// Mean wall time of a guest call, instantiation included.
    pub mean_guest_call: Duration,
    /// The instance pool's own stats (size, in use, waiting, ...).
    pub pool: PoolStats,
    /// What start-up cost.
    pub startup: Startup,
}

struct Inner {
    runtime: Arc<Runtime>,
    config: WasmPoolConfig,
    breaker: CircuitBreaker,
    counters: Counters,
    /// One unit per native fallback allowed to run at once (`max_fallbacks`).
    fallback_units: Pool<FallbackUnit>,
    /// Dropped with the last handle, which ends the health-check task.
    _health_stop: tokio::sync::watch::Sender<()>,
}

/// Pooled instances of the extractor guest. Cheap to clone.
#[derive(Clone)]
pub struct WasmExtractorPool {
    inner: Arc<Inner>,
    pool: Pool<WasmInstance>,
}

impl std::fmt::Debug for WasmExtractorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmExtractorPool")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish()
    }
}

/// A permit to run one native fallback (see `WasmPoolConfig::max_fallbacks`).
struct FallbackUnit;
impl Poolable for FallbackUnit {}

/// A breaker admission that must be reported. Dropped unreported — the caller's future
/// was dropped mid-call (or while it waited for an instance), or a panic unwound through
/// it — a half-open trial is given back, so another caller (or probe) may try; otherwise
/// the breaker would stay half-open and reject every caller for good.
struct Admission<'a> {
    breaker: &'a CircuitBreaker,
    admit: Option<Admit>,
}

impl<'a> Admission<'a> {
    fn new(breaker: &'a CircuitBreaker) -> Self {
        Admission {
            breaker,
            admit: Some(breaker.admit()),
        }
    }

    fn rejected(&self) -> bool {
        self.admit == Some(Admit::Reject)
    }

    fn record(mut self, ok: bool) -> Transition {
        match self.admit.take() {
            Some(a) => self.breaker.record(a, ok),
            None => Transition::None,
        }
    }

    fn abandon(mut self) {
        if let Some(a) = self.admit.take() {
            self.breaker.abandon(a);
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some(a) = self.admit.take() {
            self.breaker.abandon(a);
        }
    }
}

/// Sets its flag when dropped armed: the caller of a blocking call gave up.
struct CancelOnDrop(Option<Arc<AtomicBool>>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(f) = &self.0 {
            // Relaxed: a lone flag, read by the epoch callback and after the call.
            f.store(true, Relaxed);
        }
    }
}

/// Why a call produced no answer from the guest.
enum Failure {
    Pool(riptide_pool::PoolError),
    Call(CallError),
}

impl WasmExtractorPool {
    /// Sets up the engine, compiles (or loads) the bundled guest, pre-links it, and builds
    /// the instance pool. Compilation runs on the blocking pool when a runtime is present.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a config that does not [`validate`](WasmPoolConfig::validate),
    /// an engine or component that cannot be set up, or health checks without a tokio
    /// runtime to run on.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes loses nothing but the work: a compilation
    /// already on the blocking pool runs to its end and its result is dropped.
    pub async fn new(config: WasmPoolConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let no_runtime = |_| ConfigError::Invalid {
            field: "health_check_interval",
            reason: "health checks run as a task: build the pool on a tokio runtime",
        };
        let health_runtime = match config.health_check_interval {
            Some(_) => Some(tokio::runtime::Handle::try_current().map_err(no_runtime)?),
            None => None,
        };
        let c = config.clone();
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(h) => h
                .spawn_blocking(move || Runtime::new(&c))
                .await
                .map_err(|e| ConfigError::Wasm(e.to_string()))?,
            Err(_) => Runtime::new(&c),
        }
        .map_err(|e| ConfigError::Wasm(format!("{e:#}")))?;
        let (health_stop, stopped) = tokio::sync::watch::channel(());
        // A pool of `max_fallbacks` units bounds the fallbacks: waits with a deadline on
        // any executor, the unit goes back as the extraction ends, even one whose caller
        // gave up.
        let fallback_units =
            Pool::builder(|| async { Ok::<_, std::convert::Infallible>(FallbackUnit) })
                .name("wasm-fallbacks")
                .max_size(config.max_fallbacks.unwrap_or(config.max_instances).max(1))
                .acquire_timeout(config.acquire_timeout)
                .deadlock_detection(riptide_pool::DeadlockDetection::Off)
                .build()?;
        let inner = Arc::new(Inner {
            fallback_units,
            runtime: Arc::new(runtime),
            breaker: CircuitBreaker::new(
                config.breaker_failures,
                config.breaker_successes,
                config.breaker_cool_down,
            ),
            counters: Counters::default(),
            config,
            _health_stop: health_stop,
        });
        // Weak: the pool (which the health task may hold) must not keep `Inner` alive, or
        // the task would never see the last handle go.
        let factory_inner = Arc::downgrade(&inner);
        let pool = Pool::builder(move || {
            let inner = factory_inner.upgrade();
            async move {
                let inner = inner.ok_or("the WasmExtractorPool was dropped")?;
                // A failed instantiation here gives an empty slot, not a pool error: the call
                // then instantiates itself, where a failure is counted in `failures`,
                // reported to the breaker and answered by the fallback, as documented.
                let warm = if inner.config.reuse_calls > 1 {
                    match inner.instantiate().await {
                        Ok(w) => Some(w),
                        Err(e) => {
                            tracing::warn!("could not warm a wasm instance: {e:?}");
                            None
                        }
                    }
                } else {
                    None
                };
                Ok::<_, String>(WasmInstance { warm })
            }
        })
        .name("wasm-instances")
        .max_size(inner.config.max_instances)
        .min_idle(inner.config.initial_pool_size)
        .acquire_timeout(inner.config.acquire_timeout)
        // The guest-failure breaker lives here; the pool's own breaker is about the
        // factory, which only fails if instantiation does.
        .build()?;
        // In reuse mode, wait for the first instances to be warm; the fresh-store pool's
        // slots are empty, and `min_idle` upkeep makes them.
        if inner.config.reuse_calls > 1 && inner.config.initial_pool_size > 0 {
            let _ = pool.warm_up(inner.config.initial_pool_size).await;
        }
        if let (Some(rt), Some(every)) = (health_runtime, inner.config.health_check_interval) {
            rt.spawn(health_checks(
                Arc::downgrade(&inner),
                pool.clone(),
                every,
                stopped,
            ));
        }
        Ok(WasmExtractorPool { inner, pool })
    }

    /// One health probe: the guest's `bump` on an instance from the pool, reported to the
    /// breaker. Skipped while the breaker is open and cooling down, and when no instance is
    /// free within `wait` (the pool is busy with callers, who exercise the guest anyway).
    async fn health_check(&self, wait: Duration) {
        let inner = &self.inner;
        let admission = Admission::new(&inner.breaker);
        if admission.rejected() {
            return;
        }
        let slot = self
            .pool
            .acquire()
            .priority(Priority::Low)
            .timeout(wait)
            .await;
        let Ok(slot) = slot else {
            admission.abandon();
            return;
        };
        inner.counters.health_checks.fetch_add(1, Relaxed);
        let timeout = inner.config.timeout;
        let d = Diagnostic::Bump;
        let r = match inner.runtime.mode {
            CallMode::Async => {
                self.run_async(slot, async |w| w.diagnostic_async(d, timeout).await)
                    .await
            }
            CallMode::Blocking => {
                self.run_blocking(slot, move |w| w.diagnostic_blocking(d, timeout))
                    .await
            }
        };
        match r {
            Ok(_) => self.breaker_report(admission.record(true)),
            Err(e) => {
                inner.counters.health_check_failures.fetch_add(1, Relaxed);
                tracing::warn!("wasm health check failed: {}", call_err(timeout)(e));
                self.breaker_report(admission.record(false));
            }
        }
    }

    /// Title, text and links of `html` (a page at `url`), extracted by the guest in a fresh
    /// store (or a warm one in reuse mode). On a trap, timeout or open breaker, the native
    /// extractor answers instead (counted in `fallbacks`) unless `fallback` is off.
    ///
    /// # Errors
    ///
    /// [`ExtractError::TooLarge`] or [`ExtractError::InvalidUrl`] for input refused before
    /// the guest or by it; [`ExtractError::Pool`] when no instance could be had within the
    /// pool's `acquire_timeout`; the guest's failure ([`ExtractError::Timeout`],
    /// [`ExtractError::Guest`]) or [`ExtractError::CircuitOpen`] when `fallback` is off or
    /// the fallback was shed (`max_fallbacks` running for all of `acquire_timeout`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes interrupts the guest at its next epoch tick
    /// (in `CallMode::Blocking` the call ends on its blocking thread); that instance's store
    /// is dropped rather than reused, its pool slot goes back, and the breaker counts the
    /// call neither way.
    pub async fn extract(
        &self,
        html: &str,
        url: &str,
        mode: ExtractionMode,
    ) -> Result<ExtractedDoc, ExtractError> {
        let inner = &self.inner;
        let c = &inner.counters;
        c.extractions.fetch_add(1, Relaxed);
        if html.len() > inner.config.max_document_bytes {
            c.refused.fetch_add(1, Relaxed);
            return Err(ExtractError::TooLarge {
                size: html.len(),
                limit: inner.config.max_document_bytes,
            });
        }
        // The page URL is checked here too, before the breaker: bad input is the caller's
        // error whatever the breaker's state (never `CircuitOpen`, never a fallback), and a
        // URL too long to be one never reaches the guest, where copying it in could exhaust
        // its memory and count as the guest failing.
        if let Err(reason) = check_url(url) {
            c.refused.fetch_add(1, Relaxed);
            return Err(ExtractError::InvalidUrl {
                url: url.to_owned(),
                reason,
            });
        }
        let admission = Admission::new(&inner.breaker);
        if admission.rejected() {
            c.circuit_rejections.fetch_add(1, Relaxed);
            return self
                .fall_back(html, url, mode, ExtractError::CircuitOpen)
                .await;
        }
        let timeout = inner.config.timeout;
        let outcome = match inner.runtime.mode {
            CallMode::Async => {
                self.call_async(async |w| w.extract_async(html, url, mode, timeout).await)
                    .await
            }
            CallMode::Blocking => {
                let (html, url) = (html.to_owned(), url.to_owned());
                self.call_blocking(move |w| w.extract_blocking(&html, &url, mode, timeout))
                    .await
            }
        };
        match outcome {
            Ok(Ok(doc)) => {
                self.breaker_report(admission.record(true));
                c.succeeded.fetch_add(1, Relaxed);
                Ok(doc)
            }
            Ok(Err(refusal)) => {
                self.breaker_report(admission.record(true));
                c.refused.fetch_add(1, Relaxed);
                Err(match refusal {
                    GuestRefusal::InvalidUrl(reason) => ExtractError::InvalidUrl {
                        url: url.to_owned(),
                        reason,
                    },
                    GuestRefusal::TooLarge(n) => ExtractError::TooLarge {
                        size: n as usize,
                        limit: runtime::GUEST_MAX_BYTES,
                    },
                })
            }
            Err(Failure::Pool(e)) => {
                admission.abandon();
                Err(ExtractError::Pool(e))
            }
            Err(Failure::Call(e)) => {
                self.breaker_report(admission.record(false));
                self.fall_back(html, url, mode, call_err(timeout)(e)).await
            }
        }
    }

    /// Runs a [`Diagnostic`] export through the pool (deadline, limits and counters apply;
    /// no fallback). For tests and health probes.
    ///
    /// # Errors
    ///
    /// [`ExtractError::Pool`] when no instance could be had, or the guest's failure.
    ///
    /// # Cancel safety
    ///
    /// As [`extract`](Self::extract).
    pub async fn diagnostic(&self, d: Diagnostic) -> Result<u64, ExtractError> {
        let timeout = self.inner.config.timeout;
        let r = match self.inner.runtime.mode {
            CallMode::Async => {
                self.call_async(async |w| w.diagnostic_async(d, timeout).await)
                    .await
            }
            CallMode::Blocking => {
                self.call_blocking(move |w| w.diagnostic_blocking(d, timeout))
                    .await
            }
        };
        r.map_err(|f| match f {
            Failure::Pool(e) => ExtractError::Pool(e),
            Failure::Call(e) => call_err(timeout)(e),
        })
    }

    /// Runs `f` on an instance on this task: the slot's warm instance or a new one, then
    /// [`Inner::settle`]. The instance is a local while `f` runs: if this future is dropped
    /// mid-call, the instance (in an unknown state) goes with it, never back into the pool.
    async fn call_async<R>(
        &self,
        f: impl AsyncFnOnce(&mut Warm) -> Result<R, CallError>,
    ) -> Result<R, Failure> {
        let slot = self.pool.get().await.map_err(Failure::Pool)?;
        self.run_async(slot, f).await.map_err(Failure::Call)
    }

    /// [`call_async`](Self::call_async) on a slot already checked out.
    async fn run_async<R>(
        &self,
        mut slot: Pooled<WasmInstance>,
        f: impl AsyncFnOnce(&mut Warm) -> Result<R, CallError>,
    ) -> Result<R, CallError> {
        let (mut warm, t) = self.take_warm(&mut slot).await?;
        let r = f(&mut warm).await;
        self.inner.settle(&mut slot, warm, t, &r);
        r
    }

    /// [`call_async`](Self::call_async) for a blocking pool: `f` runs on tokio's blocking
    /// threads, with the slot moved there.
    async fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Warm) -> Result<R, CallError> + Send + 'static,
    ) -> Result<R, Failure> {
        let slot = self.pool.get().await.map_err(Failure::Pool)?;
        self.run_blocking(slot, f).await.map_err(Failure::Call)
    }

    /// [`call_blocking`](Self::call_blocking) on a slot already checked out.
    async fn run_blocking<R: Send + 'static>(
        &self,
        slot: Pooled<WasmInstance>,
        f: impl FnOnce(&mut Warm) -> Result<R, CallError> + Send + 'static,
    ) -> Result<R, CallError> {
        let inner = self.inner.clone();
        // The call outlives this future on its blocking thread: if the caller gives up, the
        // guard tells the store to interrupt the guest at the next tick, and the instance is
        // dropped, never put back in the slot (as on the async path).
        let cancel = Arc::new(AtomicBool::new(false));
        let guard = CancelOnDrop(Some(cancel.clone()));
        let call = move || {
            let mut slot = slot;
            let (mut warm, t) = inner.take_warm_blocking(&mut slot)?;
            warm.watch_cancel(Some(cancel.clone()));
            let r = f(&mut warm);
            warm.watch_cancel(None);
            if cancel.load(Relaxed) {
                return r;
            }
            inner.settle(&mut slot, warm, t, &r);
            r
        };
        // On a tokio runtime's blocking pool; a caller on another executor (no runtime
        // current) gets a thread of its own, its result sent back on a channel that any
        // executor can await.
        let r = match tokio::runtime::Handle::try_current() {
            Ok(rt) => rt.spawn_blocking(call).await.map_err(|e| e.to_string()),
            Err(_) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("riptide-wasm-call".into())
                    .spawn(move || {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
                        let _ = tx.send(r.map_err(|p| panic_text(&*p)));
                    })
                    .map_err(|e| {
                        CallError::Trap(format!("no thread for the blocking call: {e}"))
                    })?;
                rx.await
                    .unwrap_or_else(|_| Err("the blocking call's thread ended".into()))
            }
        };
        guard.disarm();
        r.map_err(|e| CallError::Trap(format!("the blocking call panicked: {e}")))?
    }

    async fn take_warm(
        &self,
        slot: &mut Pooled<WasmInstance>,
    ) -> Result<(Warm, Instant), CallError> {
        let t = Instant::now();
        let warm = match self.inner.reuse(slot) {
            Some(w) => w,
            None => self.inner.instantiated(self.inner.instantiate().await)?,
        };
        Ok((warm, t))
    }

    /// The native extractor's answer. It parses the whole document, so on a tokio runtime
    /// it runs on the blocking pool: calls do not block the executor, fallback included.
    async fn fall_back(
        &self,
        html: &str,
        url: &str,
        mode: ExtractionMode,
        why: ExtractError,
    ) -> Result<ExtractedDoc, ExtractError> {
        if !self.inner.config.fallback {
            return Err(why);
        }
        let Ok(unit) = self.inner.fallback_units.get().await else {
            self.inner.counters.fallbacks_shed.fetch_add(1, Relaxed);
            tracing::debug!("wasm extraction cannot fall back (max_fallbacks running): {why}");
            return Err(why);
        };
        self.inner.counters.fallbacks.fetch_add(1, Relaxed);
        tracing::debug!("wasm extraction falls back to native: {why}");
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return crate::doc::extract_doc(html, url, mode).map_err(ExtractError::from);
        };
        let (html, url) = (html.to_owned(), url.to_owned());
        // The unit goes with the work: it is held until the extraction ends, also when the
        // caller stops waiting for it.
        match rt
            .spawn_blocking(move || {
                let _unit = unit;
                crate::doc::extract_doc(&html, &url, mode)
            })
            .await
        {
            Ok(r) => r.map_err(ExtractError::from),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(why),
        }
    }

    fn breaker_report(&self, t: Transition) {
        match t {
            Transition::None => {}
            Transition::Opened => {
                self.inner.counters.circuit_opened.fetch_add(1, Relaxed);
                tracing::warn!("wasm guest failing: circuit breaker open");
                self.pool
                    .emit_custom(EVENT_SOURCE, "guest_breaker_opened", String::new);
            }
            Transition::Closed => {
                self.pool
                    .emit_custom(EVENT_SOURCE, "guest_breaker_closed", String::new);
            }
        }
    }

    /// Subscribes to the instance pool's events, including the guest-failure breaker's, as
    /// [`PoolEvent::Custom`] with source [`EVENT_SOURCE`] and name `guest_breaker_opened` /
    /// `guest_breaker_closed`.
    #[must_use]
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<PoolEvent> {
        self.pool.events()
    }

    /// The instance pool (for `close`, `health`, `stats`, ...; `resize` up to
    /// `max_instances` when the pooling allocator is on, see
    /// [`WasmPoolConfig::pooling_allocator`]).
    #[must_use]
    pub fn pool(&self) -> &Pool<WasmInstance> {
        &self.pool
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &WasmPoolConfig {
        &self.inner.config
    }

    /// A snapshot of the counters, the breaker and the instance pool.
    #[must_use]
    pub fn stats(&self) -> WasmStats {
        let c = &self.inner.counters;
        let calls = c.guest_calls.load(Relaxed);
        WasmStats {
            extractions: c.extractions.load(Relaxed),
            succeeded: c.succeeded.load(Relaxed),
            refused: c.refused.load(Relaxed),
            failures: c.failures.load(Relaxed),
            fallbacks: c.fallbacks.load(Relaxed),
            fallbacks_shed: c.fallbacks_shed.load(Relaxed),
            epoch_timeouts: c.epoch_timeouts.load(Relaxed),
            grow_failures: c.grow_failures.load(Relaxed),
            peak_memory_pages: c.peak_memory_bytes.load(Relaxed).div_ceil(65536),
            instantiations: c.instantiations.load(Relaxed),
            reused_calls: c.reused_calls.load(Relaxed),
            circuit_rejections: c.circuit_rejections.load(Relaxed),
            circuit_opened: c.circuit_opened.load(Relaxed),
            circuit: self.inner.breaker.state(),
            health_checks: c.health_checks.load(Relaxed),
            health_check_failures: c.health_check_failures.load(Relaxed),
            guest_calls: calls,
            mean_guest_call: Duration::from_nanos(
                c.guest_nanos.load(Relaxed).checked_div(calls).unwrap_or(0),
            ),
            pool: self.pool.stats(),
            startup: self.inner.runtime.startup,
        }
    }
}

/// The health-check task: a probe every `every` until the last handle is dropped (its
/// `Inner` goes, and with it the sender `stopped` watches). Between probes it holds only a
/// `Weak` to `Inner`, so it does not keep the adapter alive, and its clone of the instance
/// pool, which it drops as soon as it sees the handles gone.
async fn health_checks(
    inner: Weak<Inner>,
    pool: Pool<WasmInstance>,
    every: Duration,
    mut stopped: tokio::sync::watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        let handle = WasmExtractorPool {
            inner,
            pool: pool.clone(),
        };
        handle.health_check(every).await;
    }
}

fn call_err(timeout: Duration) -> impl Fn(CallError) -> ExtractError {
    move |e| match e {
        CallError::Timeout => ExtractError::Timeout(timeout),
        CallError::Trap(m) => ExtractError::Guest(m),
    }
}

// Counters are independent tallies read for reporting: Relaxed throughout.
impl Inner {
    async fn instantiate(&self) -> Result<Warm, CallError> {
        self.counters.instantiations.fetch_add(1, Relaxed);
        self.runtime.instantiate().await
    }

    fn take_warm_blocking(
        &self,
        slot: &mut Pooled<WasmInstance>,
    ) -> Result<(Warm, Instant), CallError> {
        let t = Instant::now();
        let warm = match self.reuse(slot) {
            Some(w) => w,
            None => {
                self.counters.instantiations.fetch_add(1, Relaxed);
                self.instantiated(self.runtime.instantiate_blocking())?
            }
        };
        Ok((warm, t))
    }

    /// The slot's warm instance, if it has one (a reuse).
    fn reuse(&self, slot: &mut Pooled<WasmInstance>) -> Option<Warm> {
        let w = slot.warm.take();
        if w.is_some() {
            self.counters.reused_calls.fetch_add(1, Relaxed);
        }
        w
    }

    /// Counts a failed instantiation as a guest failure.
    fn instantiated(&self, r: Result<Warm, CallError>) -> Result<Warm, CallError> {
        if r.is_err() {
            self.counters.failures.fetch_add(1, Relaxed);
        }
        r
    }

    /// After a call: count it, and keep the instance only if it succeeded and has calls
    /// left (an instance that trapped is poisoned; a fresh-store pool never keeps one).
    fn settle<T>(
        &self,
        slot: &mut Pooled<WasmInstance>,
        warm: Warm,
        started: Instant,
        r: &Result<T, CallError>,
    ) {
        let ok = r.is_ok();
        if let Err(CallError::Timeout) = r {
            self.counters.epoch_timeouts.fetch_add(1, Relaxed);
        }
        let c = &self.counters;
        let CallReport {
            grow_failures,
            peak_bytes,
        } = warm.report();
        c.guest_calls.fetch_add(1, Relaxed);
        c.guest_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
        c.grow_failures.fetch_add(grow_failures, Relaxed);
        c.peak_memory_bytes.fetch_max(peak_bytes as u64, Relaxed);
        if !ok {
            c.failures.fetch_add(1, Relaxed);
        }
        if ok && warm.calls < self.config.reuse_calls {
            slot.warm = Some(warm);
        }
    }
}

/// The longest page URL [`WasmExtractorPool::extract`] takes (64 KiB): far past any real
/// page's, and short enough that copying it into the guest never strains its memory.
pub const MAX_URL_BYTES: usize = 64 << 10;

/// Whether `url` can be a page URL: at most [`MAX_URL_BYTES`] and absolute (what the
/// guest and the native fallback require). `Err`: why not.
fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!(
            "{} bytes long, over the {MAX_URL_BYTES}-byte limit",
            url.len()
        ));
    }
    url::Url::parse(url).map(drop).map_err(|e| e.to_string())
}

/// A caught panic's message.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into())
}
