//! # RipTide Pool
//!
//! A lock-free, generic resource pool for Rust: database connections, WebAssembly
//! instances, compiled extractors, buffers — anything expensive to make and cheap to reuse.
//!
//! - **Fast path without locks**: checking out an idle object is one CAS on its slot;
//!   returning it when nobody waits is a plain store (on Linux an asymmetric
//!   `membarrier(2)` barrier, registered once per process, keeps a concurrently
//!   registering waiter from being missed; elsewhere, under seccomp rules that refuse it,
//!   or with the `RIPTIDE_POOL_NO_MEMBARRIER` environment variable set, the return pays a
//!   `fence(SeqCst)` instead). Capacity is reserved by CAS, so `max_size` is never
//!   exceeded, even with concurrent creates.
//! - **Fair, prioritised waiting**: four [`Priority`] levels, FIFO within a level, direct
//!   hand-off from a returning guard to the best waiter, and aging: a waiter older than
//!   `starvation_threshold` is served as `Critical`, so low priority is delayed by a bound,
//!   never forever. A newcomer never takes an object ahead of queued callers.
//! - **Cancellation safe**: drop an acquisition future at any point — even just after it
//!   was handed an object — and nothing is lost; a create whose caller gave up still puts
//!   its object into the pool.
//! - **Observable**: [`Pool::stats`] (exact `pending_acquisitions`, wait-time percentiles
//!   from a lock-free histogram), [`Pool::health`], [`Pool::events`].
//!
//! ```
//! use riptide_pool::{Pool, Poolable, Priority};
//! use std::time::Duration;
//!
//! #[derive(Debug)]
//! struct Conn { id: u32, scratch: String }
//! impl Poolable for Conn {
//!     fn reset(&mut self) { self.scratch.clear() }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let next = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let pool: Pool<Conn> = Pool::builder(move || {
//!     let next = next.clone();
//!     async move {
//!         let id = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         Ok::<_, std::io::Error>(Conn { id, scratch: String::new() })
//!     }
//! })
//! .max_size(4)
//! .acquire_timeout(Duration::from_secs(1))
//! .build()?;
//!
//! let mut c = pool.get().await?;
//! c.scratch.push_str("SELECT 1");
//! drop(c);
//! let c = pool.acquire().priority(Priority::High).timeout(Duration::from_millis(50)).await?;
//! assert!(c.scratch.is_empty());
//! assert_eq!(pool.stats().in_use, 1);
//! # Ok(()) }
//! ```
//!
//! How it works: each object lives in a slot whose atomic state word is claimed by one
//! CAS; a caller that finds nothing idle queues a waiter cell, and a returning guard hands
//! its object (or, when it destroys one, the capacity to make one) straight to the best
//! waiter. Deadlines run on the pool's own timer thread, creates on their own task, and
//! eviction, leak scans and `min_idle` in the background. The repository's
//! `docs/architecture.md` tells the design and `docs/verification.md` how it is checked
//! (loom, shuttle, Miri, model-based and stress tests).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations)]
#![warn(clippy::missing_errors_doc, clippy::missing_panics_doc)]

#[cfg(all(doctest, not(riptide_model)))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod acquire;
pub mod breaker;
mod checkout;
mod config;
mod create;
mod deadlock;
mod defer;
mod error;
mod guard;
mod histogram;
pub mod hooks;
mod maintenance;
#[cfg(all(feature = "metrics", not(riptide_model)))]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod partition;
mod pool;
mod recent;
mod rt;
mod settings;
mod shared;
mod stats;
mod sync;
mod traits;
mod waiters;

pub use acquire::{Acquire, AcquireFuture};
pub use config::PoolBuilder;
pub use deadlock::DeadlockDetection;
pub use error::{BoxError, ConfigError, PoolError};
pub use guard::Pooled;
pub use partition::{
    AffinityRules, PartitionAcquire, PartitionAcquireFuture, PartitionLimits, PartitionedPool,
    PartitionedPoolBuilder, RoutingStrategy,
};
pub use pool::Pool;
pub use settings::{parse_duration, PoolConfig};
pub use stats::{
    CheckedOut, CircuitState, DestroyReason, DrainError, HealthLevel, HealthStatus, ObjectMeta,
    PoolEvent, PoolStats,
};
pub use sync::barrier::{release_barrier, set_release_barrier, ReleaseBarrier};
pub use traits::{Factory, Poolable};
pub use waiters::Priority;

/// `#[derive(Poolable)]`: generates the [`Poolable`] impl from `#[poolable(...)]`
/// attributes (feature `derive`, on by default). See the `riptide-pool-derive` docs for
/// the attribute table.
///
/// ```
/// use riptide_pool::Poolable;
///
/// #[derive(Poolable, Default)]
/// #[poolable(max_uses = 1000, health = Scratch::ok)]
/// struct Scratch {
///     #[poolable(reset = clear)]
///     buf: Vec<u8>,
///     #[poolable(reset = default)]
///     hits: u32,
///     name: String, // untouched
/// }
/// impl Scratch {
///     fn ok(&self) -> bool { self.buf.capacity() < 1 << 20 }
/// }
///
/// let mut s = Scratch { buf: vec![1, 2], hits: 3, name: "x".into() };
/// s.reset();
/// assert!(s.buf.is_empty() && s.hits == 0 && s.name == "x");
/// assert_eq!(Scratch::MAX_USES, Some(1000));
/// ```
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use riptide_pool_derive::Poolable;

/// Hooks for the crate's own loom and shuttle models (`loom-tests/`), built only under
/// `--cfg riptide_loom` / `--cfg riptide_shuttle`: time, background creates and upkeep
/// are the models' to drive there.
#[cfg(riptide_model)]
#[doc(hidden)]
pub mod model {
    use std::time::Duration;

    use crate::{PartitionedPool, Pool};

    /// Advances the pool's logical clock.
    pub fn advance<T: Send + 'static>(pool: &Pool<T>, d: Duration) {
        pool.shared().env().advance(d);
    }

    /// Joins the create threads started so far.
    pub fn join_creates<T: Send + 'static>(pool: &Pool<T>) {
        pool.shared().env().join_tasks();
    }

    /// [`join_creates`] for every partition.
    pub fn join_partition_creates<K, T: Send + 'static>(pp: &PartitionedPool<K, T>) {
        for p in pp.pools() {
            join_creates(&p);
        }
    }

    /// One maintenance pass (leak scan and reclaim, eviction).
    pub fn maintain<T: Send + 'static>(pool: &Pool<T>) {
        pool.shared().maintain();
    }

    /// [`maintain`] for the partition of `key`, if it has one (`min_idle` top-ups
    /// included).
    pub fn maintain_partition<K, T>(pp: &PartitionedPool<K, T>, key: &K)
    where
        K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
        T: Send + 'static,
    {
        if let Some(p) = pp.pool_of(key) {
            maintain(&p);
        }
    }

    /// Switches the pool into scarce mode: idle objects move onto the idle stack, claims
    /// pop and returns push (as after a caller found the pool empty).
    pub fn make_scarce<T: Send + 'static>(pool: &Pool<T>) {
        pool.shared().make_scarce();
    }

    /// Switches the pool back to calm mode, however recently it ran short (what
    /// maintenance does after a quiet second).
    pub fn make_calm<T: Send + 'static>(pool: &Pool<T>) {
        pool.shared().maybe_become_calm(u64::MAX, 0);
    }

    /// Objects dropped aside (discarded by an acquisition, evicted for another
    /// partition) are dropped on model threads of their own, which [`join_creates`]
    /// joins, rather than where they are discarded: for the models of what happens while
    /// such a drop is in flight. For the calling thread's models, until switched off.
    pub fn drop_aside_on_threads(on: bool) {
        crate::rt::drop_aside_on_threads(on);
    }

    /// The slots of the pools built on this thread from now on start with `n` slots
    /// (default 8), so a model's second object makes the array grow.
    pub fn first_slots(n: usize) {
        crate::shared::slots::set_first_slots(n);
    }

    /// One pass of the deadline sweep (the pool's timer runs it in real builds).
    pub fn sweep<T: Send + 'static>(pool: &Pool<T>) {
        pool.shared().sweep();
    }
}
