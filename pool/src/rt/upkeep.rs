//! Background upkeep for pools without a live tokio runtime: one process-wide thread runs
//! the maintenance pass (idle eviction, lifetime, leak scans, reclaim, `min_idle`) of every
//! pool built outside a runtime, and of every pool whose build runtime has shut down.
//!
//! The thread holds each pool only by a weak reference: a registration ends when its pool
//! is dropped or closed. The pass may run user code (a tracing subscriber, a metrics
//! recorder), which is why it has a thread of its own and never runs on the timer thread;
//! the objects it evicts are dropped on blocking threads (`Shared::destroy_aside`) and the
//! creates it starts run on their own, so a slow `Drop` or factory delays neither a
//! caller's deadline nor other pools' upkeep.

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::Upkeep;

/// Registered pools with when each is next due, and whether the thread runs.
type Pools = (Vec<(Instant, Box<dyn Upkeep>)>, bool);

struct Registry {
    pools: Mutex<Pools>,
    added: Condvar,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        pools: Mutex::new((Vec::new(), false)),
        added: Condvar::new(),
    })
}

/// Keeps `pool`, with its first pass after `first`. Not under Miri, which wants every
/// thread finished when a test ends: there the pool has no background upkeep.
pub(crate) fn register(pool: Box<dyn Upkeep>, first: Duration) {
    if cfg!(miri) {
        return;
    }
    let r = registry();
    let mut g = r.pools.lock().unwrap_or_else(|e| e.into_inner());
    if !g.1 {
        g.1 = true;
        std::thread::Builder::new()
            .name("riptide-pool-upkeep".into())
            .spawn(run)
            .expect("riptide_pool: could not start the upkeep thread");
    }
    g.0.push((super::timer::deadline_after(first), pool));
    drop(g);
    r.added.notify_one();
}

fn run() {
    let r = registry();
    let mut g = r.pools.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut g.0)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        g.0 = rest;
        if !due.is_empty() {
            drop(g);
            let mut again = Vec::with_capacity(due.len());
            for (_, pool) in due {
                if let Some(d) = tick_caught(&*pool) {
                    again.push((super::timer::deadline_after(d), pool));
                }
            }
            g = r.pools.lock().unwrap_or_else(|e| e.into_inner());
            g.0.extend(again);
            continue;
        }
        let wait = g.0.iter().map(|(at, _)| *at).min();
        g = match wait {
            Some(at) => {
                r.added
                    .wait_timeout(g, at.saturating_duration_since(now))
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => r.added.wait(g).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// One pass of `pool`'s upkeep, when the next is due (`None`: the upkeep ends). A pass that
/// panics (user code it ran: an object's `Drop`, a `metrics` recorder) is logged and the
/// next is due in a second: a panic never ends a pool's upkeep, wherever it runs.
pub(crate) fn tick_caught(pool: &dyn Upkeep) -> Option<Duration> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.tick())) {
        Ok(next) => next,
        Err(p) => {
            crate::rt::trace::quietly(|| {
                tracing::error!(
                    panic = crate::error::panic_message(&*p),
                    "riptide_pool: a maintenance pass panicked; retrying in 1 s"
                )
            });
            Some(Duration::from_secs(1))
        }
    }
}
