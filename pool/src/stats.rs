//! Observability types: [`PoolStats`], [`HealthStatus`], [`PoolEvent`].

use std::time::Duration;

/// A snapshot of a pool's counters, from [`Pool::stats`](crate::Pool::stats).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PoolStats {
    /// The current `max_size`.
    pub max_size: usize,
    /// Objects alive or being created (`idle + in_use`, plus creates in flight, plus
    /// discarded objects whose `Drop` is still running on a blocking thread: these already
    /// count in `destroyed`).
    pub size: usize,
    /// Objects idle in the pool.
    pub idle: usize,
    /// Objects checked out (or being handed to a waiter); a suspected leak whose capacity
    /// `reclaim_leaked` took back is no longer counted (nor in `size`).
    pub in_use: usize,
    /// Callers waiting for an object right now.
    pub pending_acquisitions: usize,
    /// Objects created since the pool was built.
    pub created: u64,
    /// Objects destroyed since the pool was built.
    pub destroyed: u64,
    /// Successful checkouts since the pool was built. Never lower than in an earlier
    /// `stats()`; a checkout whose object is destroyed while this is read may be counted
    /// a moment later.
    pub acquired: u64,
    /// Acquisitions that ended in `PoolError::Timeout`.
    pub timeouts: u64,
    /// Checkouts reported as suspected leaks.
    pub leaks_detected: u64,
    /// Median time a checkout waited (zero for checkouts served at once).
    pub wait_p50: Duration,
    /// 95th percentile wait.
    pub wait_p95: Duration,
    /// 99th percentile wait.
    pub wait_p99: Duration,
    /// Median time objects are held (sampled: every 16th checkout of each object,
    /// millisecond resolution).
    pub usage_p50: Duration,
    /// 95th percentile hold time.
    pub usage_p95: Duration,
    /// 99th percentile hold time.
    pub usage_p99: Duration,
    /// Median time a create took (factory + `post_create`).
    pub create_p50: Duration,
    /// 95th percentile create time.
    pub create_p95: Duration,
    /// 99th percentile create time.
    pub create_p99: Duration,
    /// Callers waiting right now at each priority, as they asked for it (aging does not
    /// move them), indexed by `Priority as usize`: `[Low, Normal, High, Critical]`. See
    /// [`waiting_at`](Self::waiting_at).
    pub waiting_by_priority: [usize; 4],
    /// How long the longest-waiting caller has been waiting (zero when nobody waits).
    pub oldest_wait: Duration,
}

impl PoolStats {
    /// Callers waiting right now at priority `p`.
    #[must_use]
    pub fn waiting_at(&self, p: crate::Priority) -> usize {
        self.waiting_by_priority[p as usize]
    }
}

impl HealthStatus {
    /// The health a pool's load alone gives it: utilization and callers waiting, by the
    /// thresholds documented on [`HealthLevel`], with no create errors counted
    /// (`error_rate` 0). `closed` makes it `Critical`. For a pool type whose failures are
    /// judged elsewhere, or not at all; [`Pool::health`](crate::Pool::health) also counts
    /// the breaker and the last minute's create errors.
    ///
    /// ```
    /// use riptide_pool::{HealthLevel, HealthStatus, PoolStats};
    ///
    /// let mut st = PoolStats::default();
    /// st.max_size = 10;
    /// st.in_use = 9;
    /// let h = HealthStatus::from_load(&st, false);
    /// assert_eq!(h.level, HealthLevel::Degraded); // 90 % in use
    /// assert_eq!(HealthStatus::from_load(&st, true).level, HealthLevel::Critical);
    /// ```
    #[must_use]
    pub fn from_load(st: &PoolStats, closed: bool) -> HealthStatus {
        let floor = if closed {
            HealthLevel::Critical
        } else {
            HealthLevel::Healthy
        };
        Self::weigh(st, floor, 0.0)
    }

    /// The health of a pool with stats `st`: closed, its breaker not closed, and
    /// `(create attempts, create errors)` of the last minute. The thresholds are documented on
    /// [`HealthLevel`].
    pub(crate) fn of(
        st: &PoolStats,
        closed: bool,
        breaker_open: bool,
        outcomes: (u64, u64),
    ) -> HealthStatus {
        let error_rate = error_rate(outcomes);
        let floor = if closed {
            HealthLevel::Critical
        } else {
            failure_level(breaker_open, error_rate)
        };
        Self::weigh(st, floor, error_rate)
    }

    /// `floor` (what failures and closing make of the pool), raised by what its load makes
    /// of it: utilization and callers waiting. The score counts all three.
    pub(crate) fn weigh(st: &PoolStats, floor: HealthLevel, error_rate: f64) -> HealthStatus {
        let utilization = st.in_use as f64 / st.max_size.max(1) as f64;
        let waiting = st.pending_acquisitions > 0;
        let load = if waiting && utilization >= 1.0 {
            HealthLevel::Unhealthy
        } else if utilization >= 0.9 || waiting {
            HealthLevel::Degraded
        } else {
            HealthLevel::Healthy
        };
        let score = 100.0
            - 40.0 * utilization.min(1.0)
            - 40.0 * error_rate
            - if waiting { 20.0 } else { 0.0 };
        HealthStatus {
            level: floor.max(load),
            utilization,
            error_rate,
            score: score.clamp(0.0, 100.0).round() as u8,
        }
    }
}

/// Create errors over attempts (0 without attempts).
pub(crate) fn error_rate((attempts, errors): (u64, u64)) -> f64 {
    if attempts == 0 {
        0.0
    } else {
        errors as f64 / attempts as f64
    }
}

/// What a factory's failures make of a pool: `Critical` with its breaker not closed or
/// half its creates failing, `Unhealthy` from 20 %, `Degraded` from 5 %.
pub(crate) fn failure_level(breaker_open: bool, error_rate: f64) -> HealthLevel {
    if breaker_open || error_rate >= 0.5 {
        HealthLevel::Critical
    } else if error_rate >= 0.2 {
        HealthLevel::Unhealthy
    } else if error_rate >= 0.05 {
        HealthLevel::Degraded
    } else {
        HealthLevel::Healthy
    }
}

/// A checked-out object, from [`Pool::checked_out`](crate::Pool::checked_out).
#[derive(Debug, Clone)]
pub struct CheckedOut {
    /// The object's id.
    pub id: u64,
    /// How long it has been held (coarse clock).
    pub held_for: Duration,
    /// The line that took it.
    pub location: &'static std::panic::Location<'static>,
}

/// `Pool::drain` timed out with objects still checked out.
#[derive(Debug, Clone)]
pub struct DrainError {
    /// What is still out, and where it was taken.
    pub still_out: Vec<CheckedOut>,
}

impl std::fmt::Display for DrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} pooled object(s) still checked out:",
            self.still_out.len()
        )?;
        for c in &self.still_out {
            write!(
                f,
                " [id {} held {:?} taken at {}]",
                c.id, c.held_for, c.location
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for DrainError {}

/// How healthy a pool is; see [`HealthStatus`].
///
/// Thresholds ([`Pool::health`](crate::Pool::health)), first match from the top:
/// - `Critical`: the pool is closed, or the circuit breaker is open, or the create error
///   rate is ≥ 50 %.
/// - `Unhealthy`: callers are waiting and utilization is 100 %, or error rate ≥ 20 %.
/// - `Degraded`: utilization ≥ 0.9, or callers are waiting, or error rate ≥ 5 %.
/// - `Healthy`: otherwise.
///
/// A partitioned pool judges failures partition by partition: one failing tenant makes it
/// `Degraded`, and it fails as much as its healthiest partition (every partition
/// `Critical` makes it `Critical`;
/// [`PartitionedPool::health`](crate::PartitionedPool::health)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum HealthLevel {
    /// Working normally.
    Healthy,
    /// Busy or seeing some errors; still serving.
    Degraded,
    /// Saturated or failing often.
    Unhealthy,
    /// Not serving.
    Critical,
}

/// A health summary from [`Pool::health`](crate::Pool::health).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct HealthStatus {
    /// The level, by the thresholds on [`HealthLevel`].
    pub level: HealthLevel,
    /// `in_use / max_size`.
    pub utilization: f64,
    /// Failed creates / create attempts over the last minute (30 to 60 s of history; 0
    /// when nothing was created then), so a pool recovers its level once its factory
    /// works again.
    pub error_rate: f64,
    /// 0..=100, higher is better: 100 − 40·utilization − 40·error_rate − 20·(waiters?).
    pub score: u8,
}

/// The state of a pool's circuit breaker on its factory, from
/// [`Pool::circuit_state`](crate::Pool::circuit_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CircuitState {
    /// Creates run normally (also when the pool has no breaker).
    Closed,
    /// The factory kept failing: creates fail fast with `PoolError::CircuitOpen` until the
    /// cool-down has passed.
    Open,
    /// The cool-down passed and one trial create is running; its outcome closes or
    /// re-opens the breaker.
    HalfOpen,
}

/// What a pool knows about one object: given to hooks, to [`Pool::retain`], and by
/// [`Pooled::metadata`](crate::Pooled::metadata) (as deadpool's `Metrics` and sqlx's
/// `PoolConnectionMetadata`). Times come from the pool's millisecond clock.
///
/// [`Pool::retain`]: crate::Pool::retain
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's id, unique within its pool (as in `PoolEvent`s).
    pub id: u64,
    /// Time since it was created.
    pub age: Duration,
    /// Time since it was last returned (zero while a caller holds it).
    pub idle_for: Duration,
    /// Time since the current checkout began (zero while nobody holds it).
    pub held_for: Duration,
    /// Checkouts so far, the current one included.
    pub uses: u64,
}

/// Why an object was destroyed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestroyReason {
    /// `Poolable::is_healthy` returned false on return.
    Unhealthy,
    /// Reached `max_uses` checkouts.
    MaxUses,
    /// Older than `max_lifetime`.
    MaxLifetime,
    /// Idle longer than `idle_timeout`.
    IdleTimeout,
    /// `Pooled::discard` was called.
    Discarded,
    /// The pool was closed or dropped.
    Closed,
    /// `resize` shrank the pool below its size.
    Resized,
    /// User code on its way through the pool panicked: `Poolable::reset` or
    /// `is_healthy`, the `on_release` hook, `Factory::validate` or a recycle hook.
    Panicked,
    /// A hook (`on_release`, `pre_recycle`, `post_recycle`) rejected it.
    Rejected,
    /// `Factory::validate` returned false at checkout.
    ValidationFailed,
    /// It came back after `reclaim_leaked` had given its capacity back.
    Reclaimed,
    /// A partitioned pool evicted it to make room for another key under the global cap.
    Evicted,
    /// `Pool::retain` or `Pool::clear_idle` removed it.
    Removed,
}

/// Something that happened in a pool; subscribe with [`Pool::events`](crate::Pool::events).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum PoolEvent {
    /// An object was created.
    Created {
        /// The object's id (unique within the pool).
        id: u64,
    },
    /// An object was destroyed.
    Destroyed {
        /// The object's id.
        id: u64,
        /// Why.
        reason: DestroyReason,
    },
    /// An object has been held longer than `leak_threshold`.
    LeakSuspected {
        /// The object's id.
        id: u64,
        /// How long it has been held.
        held_for: Duration,
        /// The line that took it.
        location: &'static std::panic::Location<'static>,
    },
    /// The circuit breaker opened.
    CircuitOpened,
    /// The circuit breaker closed.
    CircuitClosed,
    /// A caller found the pool at capacity and started waiting.
    Exhausted {
        /// Callers waiting, including this one.
        waiting: usize,
    },
    /// A create failed: every failure, whether a caller waited for it or not (`min_idle`
    /// replenishment, `warm_up`), so a wrong password is visible before anyone asks.
    CreateFailed {
        /// The error's text (with its sources).
        error: String,
    },
    /// A caller waiting for an object already holds one of the same pool (see
    /// `deadlock_detection`): the line that took the one it holds, and the line now
    /// waiting. Sent once per pair of lines.
    NestedAcquire {
        /// Where the held checkout was taken.
        held_at: &'static std::panic::Location<'static>,
        /// Where the caller now waits.
        waiting_at: &'static std::panic::Location<'static>,
    },
    /// Something a layer on top of the pool reports in the pool's stream
    /// ([`Pool::emit_custom`](crate::Pool::emit_custom)); e.g. the WASM adapter's guest
    /// breaker.
    Custom {
        /// Who sent it, e.g. `"riptide_adapters::wasm"`.
        source: &'static str,
        /// What happened, e.g. `"guest_breaker_opened"`.
        name: &'static str,
        /// Free text.
        detail: String,
    },
}
