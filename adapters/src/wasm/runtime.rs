//! The shared wasmtime state: one `Engine`, `Component`, `Linker` and pre-instantiated
//! `InstancePre` per pool; the epoch ticker; store limits; and one call, start to finish.

use super::{CallMode, Diagnostic, WasmPoolConfig};
use crate::{ExtractedDoc, ExtractionMode};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// Bindings generated from `adapters/wit/extractor.wit`, twice: one set with blocking
/// calls (run on `spawn_blocking`), one with `async` calls (run on the caller's task,
/// yielding at every epoch tick).
pub(crate) mod bindings {
    pub(crate) mod blocking {
        wasmtime::component::bindgen!({ world: "extractor", path: "wit" });
    }
    pub(crate) mod nonblocking {
        wasmtime::component::bindgen!({
            world: "extractor",
            path: "wit",
            exports: { default: async },
        });
    }
}

use bindings::{blocking, nonblocking};

/// The guest component, built from `adapters/guest` by build.rs.
pub(crate) static GUEST: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guest.wasm"));

/// The largest document the guest accepts (`GUEST_MAX_BYTES` in `adapters/guest`).
pub(crate) const GUEST_MAX_BYTES: usize = 64 << 20;

/// How long instantiating the guest (its start-up code) may run.
const INSTANTIATE_DEADLINE: Duration = Duration::from_secs(10);

/// Per-store state: limits and the deadline the epoch callback checks.
pub(crate) struct Host {
    limiter: Limiter,
    deadline: Instant,
    /// Set when the caller of a call running on another thread (the blocking mode) gave
    /// up: the epoch callback interrupts the guest at the next tick.
    cancel: Option<Arc<AtomicBool>>,
}

/// `timeout` from now; a timeout too long for the clock (`Duration::MAX`: "none") is a
/// century, not a panic.
fn deadline_in(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// Caps linear memory at `max_bytes` and counts what it refused.
struct Limiter {
    max_bytes: usize,
    peak_bytes: usize,
    grow_failures: u64,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.grow_failures += 1;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// How long a pool's start-up took (`WasmStats::startup`): creating the engine, compiling the
/// guest (or loading it from `cache_dir`), and linking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Startup {
    /// `Engine::new`.
    pub engine: Duration,
    /// Compiling the component (`Component::new`), or loading it from the cache.
    pub component: Duration,
    /// Whether the component came from the serialized cache (`cache_dir`).
    pub from_cache: bool,
    /// `Linker` set-up and `instantiate_pre` (type-checking the imports once).
    pub link: Duration,
}

/// Engine, component and pre-instantiated linker, shared by every instance of a pool.
pub(crate) struct Runtime {
    engine: Engine,
    blocking: blocking::ExtractorPre<Host>,
    nonblocking: nonblocking::ExtractorPre<Host>,
    pub(crate) mode: CallMode,
    memory_limit: usize,
    pub(crate) startup: Startup,
}

/// A live instance and its store.
pub(crate) struct Warm {
    store: Store<Host>,
    bindings: Bindings,
    pub(crate) calls: u32,
}

enum Bindings {
    Blocking(blocking::Extractor),
    Async(nonblocking::Extractor),
}

/// What one call did, for the pool's counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CallReport {
    pub(crate) grow_failures: u64,
    pub(crate) peak_bytes: usize,
}

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The epoch deadline passed.
    Timeout,
    /// A trap, or a failure to instantiate.
    Trap(String),
}

impl Runtime {
    pub(crate) fn new(c: &WasmPoolConfig) -> wasmtime::Result<Runtime> {
        let t = Instant::now();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        if c.pooling_allocator {
            // Sized to the real concurrency: `max_instances` live component instances, each
            // with the few core instances, memories and tables a Rust component has. The
            // default would reserve address space for 1000 instances.
            // `validate` bounds `max_instances`, so none of these products overflow.
            let n = u32::try_from(c.max_instances.saturating_add(2)).unwrap_or(u32::MAX / 8);
            let mut p = wasmtime::PoolingAllocationConfig::new();
            p.total_component_instances(n)
                .total_core_instances(n * 8)
                .max_core_instances_per_component(8)
                .total_memories(n * 2)
                .max_memories_per_component(2)
                .total_tables(n * 4)
                .max_tables_per_component(4)
                .total_stacks(n)
                .max_memory_size(c.memory_limit_bytes);
            config.allocation_strategy(p);
        }
        let engine = Engine::new(&config)?;
        let engine_time = t.elapsed();

        let t = Instant::now();
        let (component, from_cache) = load_component(&engine, GUEST, c.cache_dir.as_deref())?;
        let component_time = t.elapsed();

        let t = Instant::now();
        let mut linker = Linker::<Host>::new(&engine);
        // The guest is pure compute; whatever WASI import its std links in traps if called
        // (nothing in the extractor calls one).
        linker.define_unknown_imports_as_traps(&component)?;
        let pre = linker.instantiate_pre(&component)?;
        let blocking = blocking::ExtractorPre::new(pre.clone())?;
        let nonblocking = nonblocking::ExtractorPre::new(pre)?;
        let link = t.elapsed();

        spawn_ticker(&engine, c.epoch_tick);
        Ok(Runtime {
            engine,
            blocking,
            nonblocking,
            mode: c.call_mode,
            memory_limit: c.memory_limit_bytes,
            startup: Startup {
                engine: engine_time,
                component: component_time,
                from_cache,
                link,
            },
        })
    }

    /// A fresh store with limits and the deadline callback, armed with the instantiation
    /// deadline (a call re-arms it with its own).
    fn store(&self) -> Store<Host> {
        let mut store = Store::new(
            &self.engine,
            Host {
                limiter: Limiter {
                    max_bytes: self.memory_limit,
                    peak_bytes: 0,
                    grow_failures: 0,
                },
                deadline: Instant::now() + INSTANTIATE_DEADLINE,
                cancel: None,
            },
        );
        store.limiter(|h| &mut h.limiter);
        let yields = self.mode == CallMode::Async;
        // Called at every epoch tick while guest code runs: trap past the deadline,
        // otherwise run one more tick (and, on the async path, give the worker back first).
        store.epoch_deadline_callback(move |cx| {
            let h = cx.data();
            let cancelled = h.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
            Ok(if cancelled || Instant::now() >= h.deadline {
                UpdateDeadline::Interrupt
            } else if yields {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        store.set_epoch_deadline(1);
        store
    }

    /// A fresh store with the guest instantiated in it.
    pub(crate) async fn instantiate(&self) -> Result<Warm, CallError> {
        if self.mode == CallMode::Blocking {
            return self.instantiate_blocking();
        }
        let mut store = self.store();
        let bindings = self
            .nonblocking
            .instantiate_async(&mut store)
            .await
            .map(Bindings::Async)
            .map_err(classify)?;
        Ok(Warm::new(store, bindings))
    }

    /// [`instantiate`](Self::instantiate) for a blocking pool (no executor needed).
    pub(crate) fn instantiate_blocking(&self) -> Result<Warm, CallError> {
        debug_assert_eq!(self.mode, CallMode::Blocking);
        let mut store = self.store();
        let bindings = self
            .blocking
            .instantiate(&mut store)
            .map(Bindings::Blocking)
            .map_err(classify)?;
        Ok(Warm::new(store, bindings))
    }
}

impl Warm {
    fn new(store: Store<Host>, bindings: Bindings) -> Self {
        Warm {
            store,
            bindings,
            calls: 0,
        }
    }

    fn arm(&mut self, timeout: Duration) {
        self.calls += 1;
        let h = self.store.data_mut();
        h.deadline = deadline_in(timeout);
        h.limiter.grow_failures = 0;
        self.store.set_epoch_deadline(1);
    }

    /// Watches `flag` during the calls that follow (`None`: stop watching): once it is set,
    /// the guest is interrupted at the next epoch tick.
    pub(crate) fn watch_cancel(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.store.data_mut().cancel = flag;
    }

    pub(crate) fn report(&self) -> CallReport {
        let l = &self.store.data().limiter;
        CallReport {
            grow_failures: l.grow_failures,
            peak_bytes: l.peak_bytes,
        }
    }

    /// Runs `extract` in this instance (blocking path: call from a blocking thread).
    pub(crate) fn extract_blocking(
        &mut self,
        html: &str,
        url: &str,
        mode: ExtractionMode,
        timeout: Duration,
    ) -> Result<GuestResult, CallError> {
        self.arm(timeout);
        let Bindings::Blocking(b) = &self.bindings else {
            unreachable!("a blocking pool makes blocking instances")
        };
        let mode = to_blocking_mode(mode);
        b.call_extract(&mut self.store, html, url, mode)
            .map(|r| r.map(doc_from_blocking).map_err(err_from_blocking))
            .map_err(classify)
    }

    /// Runs `extract` in this instance on the caller's task, yielding at each epoch tick.
    pub(crate) async fn extract_async(
        &mut self,
        html: &str,
        url: &str,
        mode: ExtractionMode,
        timeout: Duration,
    ) -> Result<GuestResult, CallError> {
        self.arm(timeout);
        let Bindings::Async(b) = &self.bindings else {
            unreachable!("an async pool makes async instances")
        };
        let mode = to_async_mode(mode);
        b.call_extract(&mut self.store, html, url, mode)
            .await
            .map(|r| r.map(doc_from_async).map_err(err_from_async))
            .map_err(classify)
    }

    /// Runs a diagnostic export (blocking path).
    pub(crate) fn diagnostic_blocking(
        &mut self,
        d: Diagnostic,
        timeout: Duration,
    ) -> Result<u64, CallError> {
        self.arm(timeout);
        let Bindings::Blocking(b) = &self.bindings else {
            unreachable!("a blocking pool makes blocking instances")
        };
        let g = b.riptide_extractor_diagnostics();
        match d {
            Diagnostic::Bump => g.call_bump(&mut self.store),
            Diagnostic::Spin(n) => g.call_spin(&mut self.store, n),
            Diagnostic::Allocate(n) => g.call_allocate(&mut self.store, n),
        }
        .map_err(classify)
    }

    /// Runs a diagnostic export (async path).
    pub(crate) async fn diagnostic_async(
        &mut self,
        d: Diagnostic,
        timeout: Duration,
    ) -> Result<u64, CallError> {
        self.arm(timeout);
        let Bindings::Async(b) = &self.bindings else {
            unreachable!("an async pool makes async instances")
        };
        let g = b.riptide_extractor_diagnostics();
        match d {
            Diagnostic::Bump => g.call_bump(&mut self.store).await,
            Diagnostic::Spin(n) => g.call_spin(&mut self.store, n).await,
            Diagnostic::Allocate(n) => g.call_allocate(&mut self.store, n).await,
        }
        .map_err(classify)
    }
}

/// The guest's own answer: a document, or its reason for refusing.
pub(crate) type GuestResult = Result<ExtractedDoc, GuestRefusal>;

/// Why the guest refused (not a failure of the guest: the input was bad).
#[derive(Debug)]
pub(crate) enum GuestRefusal {
    InvalidUrl(String),
    TooLarge(u64),
}

fn classify(e: wasmtime::Error) -> CallError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout,
        _ => CallError::Trap(format!("{e:#}")),
    }
}

/// The two binding sets have distinct but identical types; one macro converts both.
macro_rules! conversions {
    ($m:ident, $to_mode:ident, $doc:ident, $err:ident) => {
        fn $to_mode(m: ExtractionMode) -> $m::riptide::extractor::types::ExtractionMode {
            use $m::riptide::extractor::types::ExtractionMode as M;
            match m {
                ExtractionMode::Article => M::Article,
                ExtractionMode::Full => M::Full,
                ExtractionMode::Metadata => M::Metadata,
            }
        }

        fn $doc(d: $m::riptide::extractor::types::ExtractedDoc) -> ExtractedDoc {
            ExtractedDoc {
                url: d.url,
                title: d.title,
                text: d.text,
                links: d.links,
            }
        }

        fn $err(e: $m::riptide::extractor::types::ExtractionError) -> GuestRefusal {
            use $m::riptide::extractor::types::ExtractionError as E;
            match e {
                E::InvalidUrl(r) => GuestRefusal::InvalidUrl(r),
                E::TooLarge(n) => GuestRefusal::TooLarge(n),
            }
        }
    };
}

conversions!(
    blocking,
    to_blocking_mode,
    doc_from_blocking,
    err_from_blocking
);
conversions!(nonblocking, to_async_mode, doc_from_async, err_from_async);

/// One thread per engine advances its epoch every `tick`; it ends when the engine is dropped.
fn spawn_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("riptide-wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        });
}

/// Compiles the guest, or loads it from `cache_dir` if an earlier run serialized it for an
/// engine with the same settings (`Engine::precompile_compatibility_hash`).
fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<(Component, bool)> {
    use std::hash::{Hash, Hasher};
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, wasm)?, false));
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    wasm.hash(&mut h);
    let path = dir.join(format!("riptide-guest-{:016x}.cwasm", h.finish()));
    if path.is_file() {
        // SAFETY: `deserialize_file` requires bytes produced by `serialize` for a
        // compatible engine. The file's name carries the hash of this engine's compatibility
        // settings and of the guest, and it was written by `store_component` (to a unique
        // temporary name, then renamed, so a reader never sees half a file). wasmtime also checks its
        // own header and refuses an incompatible artifact with an error. The remaining
        // trust assumption — nobody else writes into `cache_dir` — is documented on the field.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok((c, true)),
            Err(e) => tracing::warn!("ignoring the cached component {}: {e:#}", path.display()),
        }
    }
    let c = Component::new(engine, wasm)?;
    // Writing the cache is an optimisation: a failure is logged, never an error.
    if let Err(e) = store_component(&c, dir, &path) {
        tracing::warn!(
            "could not cache the compiled component in {}: {e:#}",
            dir.display()
        );
    }
    Ok((c, false))
}

/// Serializes `c` to `path`: written under a name unique to this process and call, then
/// renamed, so concurrent writers (several pools starting at once) never see or clobber
/// half a file; the last rename wins, and every candidate is complete.
fn store_component(c: &Component, dir: &Path, path: &Path) -> wasmtime::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let bytes = c.serialize()?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        // Relaxed: only uniqueness matters.
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}
