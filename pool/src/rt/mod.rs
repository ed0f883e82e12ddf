//! The runtime facade: what the pool needs from its surroundings — a clock, timers,
//! background work (creates, upkeep), blocking waits, the events channel and traces —
//! behind one small API ([`Env`], one per pool), with a model-checker variant
//! (`env_model.rs`: a logical clock, joinable create threads, no timers), so the protocol
//! code has no `cfg`s.

#[cfg(not(riptide_model))]
pub(crate) mod block;
pub(crate) mod caller;
#[cfg(not(riptide_model))]
pub(crate) mod clock;
pub(crate) mod exec;
#[cfg(not(riptide_model))]
pub(crate) mod runtime;
#[cfg(not(riptide_model))]
pub(crate) mod timer;
pub(crate) mod trace;
#[cfg(not(riptide_model))]
pub(crate) mod upkeep;

#[cfg(not(riptide_model))]
#[path = "env_native.rs"]
mod env;
#[cfg(riptide_model)]
#[path = "env_model.rs"]
mod env;

pub(crate) use caller::caller;
#[cfg(riptide_model)]
pub(crate) use env::drop_aside_on_threads;
pub(crate) use env::{BuildRuntime, Deadline, Disarmed, Env, TimerKey};

/// Keeps `pool` on the process's upkeep thread, first pass after `first` (no background
/// upkeep under the model checkers).
pub(crate) fn keep_in_background(pool: Box<dyn Upkeep>, first: std::time::Duration) {
    #[cfg(not(riptide_model))]
    upkeep::register(pool, first);
    #[cfg(riptide_model)]
    let _ = (pool, first);
}

/// Runs `poll` (one poll of user code that may need tokio: a checkout step's `validate`
/// and recycle hooks) inside a tokio runtime: the one current here, else the pool's own
/// (`runtime::create_runtime`), whose worker drives its timers and reactor. So a step
/// polled where no runtime is current (a blocking caller with no runtime left, an async
/// caller on another executor) still finds them. Not under Miri (it wants every thread
/// finished when a test ends), nor if that runtime cannot be built.
pub(crate) fn in_a_runtime<R>(poll: impl FnOnce() -> R) -> R {
    #[cfg(not(riptide_model))]
    if !cfg!(miri) && tokio::runtime::Handle::try_current().is_err() {
        if let Some(own) = runtime::create_runtime() {
            let _entered = own.handle().enter();
            return poll();
        }
    }
    poll()
}

/// A pool kept by background upkeep (its maintenance task, or the upkeep thread).
#[cfg_attr(riptide_model, allow(dead_code))] // the models run upkeep by hand
pub(crate) trait Upkeep: Send + 'static {
    /// Runs one pass if the pool still exists and is open; returns when the next is due
    /// (`None`: the upkeep ends).
    fn tick(&self) -> Option<std::time::Duration>;
    /// Whether the pool still exists and is open (without running a pass).
    fn alive(&self) -> bool;
    /// Another hold on the same pool (as weak as this one).
    fn another(&self) -> Box<dyn Upkeep>;
}
