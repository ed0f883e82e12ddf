//! Deadlock detection: a caller that must wait on a pool while it holds a checkout of the
//! same pool (of any partition, for a `PartitionedPool`) is a *nested* wait — the classic
//! pool deadlock once every object is held by such a caller.
//!
//! How it stays off the fast path: a checkout records its holder (the tokio task, else the
//! thread) in its slot — one thread-local read and one store, nothing when detection is
//! [`Off`](DeadlockDetection::Off). A caller that must queue only carries its holder id
//! in its cell. Everything else happens on the pool's timer, 2 ms after a caller queued,
//! for every caller still waiting by then: one read-only pass over the busy slots finds
//! which of them hold a checkout (a nested wait, reported), and in
//! [`Error`](DeadlockDetection::Error) mode a check under the lock finds whether every
//! object is now held by a queued caller. A wait served within those 2 ms costs nothing
//! and is not reported.

use std::str::FromStr;

/// What the pool does about a nested wait: a caller that must wait while it already holds
/// a checkout of the same pool. Set with
/// [`PoolBuilder::deadlock_detection`](crate::PoolBuilder::deadlock_detection).
///
/// A checkout is attributed to the tokio task that took it (or, outside a task, the
/// thread): the one that polled the acquisition's future, or, when an idle object was
/// there as the future was made (the fast path claims it then), the one that made the
/// future. A guard handed to another task afterwards still counts as the taker's. So
/// make the future in the task that awaits it: a future made by one task and awaited by
/// another, with the maker then waiting on the pool, reads as a nested wait. A waiting
/// acquisition waits as the task that polls it now (moved to another task while queued,
/// it is checked again as that one).
///
/// Attributing a checkout claimed at creation to the polling task instead would move
/// work into the `.await` of every ready future, a cost on the fast path whether
/// detection is on or off (docs/benchmarks.md gives the figure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum DeadlockDetection {
    /// Nothing is recorded or checked; the fast path pays nothing.
    Off,
    /// A nested wait is reported — a [`PoolEvent::NestedAcquire`](crate::PoolEvent) and a
    /// `tracing::warn!`, once per pair of locations — and the wait goes on.
    #[default]
    Warn,
    /// As `Warn`; and once every object is held and every holder is itself waiting on the
    /// pool (a certain deadlock), every waiting holder gets
    /// [`PoolError::WouldDeadlock`](crate::PoolError::WouldDeadlock) at once instead of
    /// timing out. Waiters that hold nothing keep waiting. For a `PartitionedPool` this is
    /// checked within a partition that has reached its own cap; a wait on the global cap
    /// is reported, not failed.
    Error,
}

impl FromStr for DeadlockDetection {
    type Err = &'static str;

    /// `off`, `warn` or `error` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(DeadlockDetection::Off),
            "warn" => Ok(DeadlockDetection::Warn),
            "error" => Ok(DeadlockDetection::Error),
            _ => Err("is not one of off, warn, error"),
        }
    }
}

/// Read as `from_env` reads it ([`FromStr`]: `off`, `warn` or `error`, any case), so a
/// setting means the same in a file as in the environment.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for DeadlockDetection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|reason| {
            serde::de::Error::custom(format!("deadlock_detection `{text}` {reason}"))
        })
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::*;
    use crate::rt::caller::{caller, THREAD_BIT};

    #[test]
    fn modes_parse_and_tasks_differ_from_threads() {
        assert_eq!("Error".parse(), Ok(DeadlockDetection::Error));
        assert_eq!(" off ".parse(), Ok(DeadlockDetection::Off));
        assert!("sometimes".parse::<DeadlockDetection>().is_err());
        let thread = caller();
        assert_ne!(thread & THREAD_BIT, 0);
        assert_eq!(thread, caller(), "one thread, one id");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (a, b) = rt.block_on(async {
            let a = tokio::spawn(async { caller() }).await.unwrap();
            let b = tokio::spawn(async { caller() }).await.unwrap();
            (a, b)
        });
        assert_eq!(a & THREAD_BIT, 0);
        assert_ne!(a, 0);
        assert_ne!(a, b, "two tasks, two ids");
    }
}
