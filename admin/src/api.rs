//! The JSON bodies of the endpoints. Field names of stats and health are those of
//! [`PoolStats`] and [`HealthStatus`] (their own `Serialize`; a `Duration` is
//! `{"secs": …, "nanos": …}`). `docs/observability.md` shows an example of each.

use std::time::Duration;

use riptide_pool::{CircuitState, HealthLevel, HealthStatus, PoolStats};
use serde::{Deserialize, Serialize};

use crate::history::{HourBucket, Sample};
use crate::view::PoolKind;

/// One pool in `GET /pools`, and the body of `GET /pools/{name}`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct PoolSummary {
    /// The name it was registered under.
    pub name: String,
    /// `"pool"` or `"partitioned"`.
    pub kind: PoolKind,
    /// The counters, with the wait percentiles `wait_p50` / `wait_p95` / `wait_p99` (for a
    /// partitioned pool: the totals over its partitions).
    pub stats: PoolStats,
    /// Health; `utilization` is `in_use / max_size`.
    pub health: HealthStatus,
    /// The factory's circuit breaker (`"Closed"`, `"Open"`, `"HalfOpen"`), `null` where the
    /// pool type does not expose one.
    pub circuit_state: Option<CircuitState>,
    /// Whether the pool was closed (`null` where the pool type cannot tell and the admin
    /// did not close it).
    pub closed: Option<bool>,
    /// The number of partitions of a partitioned pool, `null` otherwise.
    pub partitions: Option<usize>,
}

/// `GET /pools`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct PoolsResponse {
    /// Every registered pool, in registration order.
    pub pools: Vec<PoolSummary>,
}

/// One pool's line in `GET /health/pool`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct PoolHealth {
    /// The registered name.
    pub name: String,
    /// Its health.
    pub health: HealthStatus,
    /// Its breaker, where exposed.
    pub circuit_state: Option<CircuitState>,
}

/// `GET /health` and `GET /health/pool` (the latter with `pools`).
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `"ok"` (every pool healthy or degraded: HTTP 200) or `"unhealthy"` (HTTP 503).
    pub status: &'static str,
    /// The pools that are unhealthy or critical.
    pub unhealthy: Vec<String>,
    /// Every pool's health (`/health/pool` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pools: Option<Vec<PoolHealth>>,
}

/// One checkout in `GET /pools/{name}/checked-out`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct CheckedOutEntry {
    /// The object's id.
    pub id: u64,
    /// How long it has been held.
    pub held_for: Duration,
    /// The line that took it (`file:line:column`).
    pub location: String,
    /// In a partitioned pool, the key of the partition that holds it (rendered as text;
    /// ids are numbered per partition). Absent for a single pool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
}

/// `GET /pools/{name}/checked-out`: oldest first.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct CheckedOutResponse {
    /// The registered name.
    pub pool: String,
    /// How many are checked out (also when `?limit=` cut the list).
    pub count: usize,
    /// The checkouts, oldest first.
    pub checked_out: Vec<CheckedOutEntry>,
}

/// One partition in `GET /pools/{name}/partitions`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct PartitionEntry {
    /// The key, as text.
    pub key: String,
    /// The partition's counters.
    pub stats: PoolStats,
    /// Health from the partition's counters (thresholds of [`HealthLevel`]).
    pub level: HealthLevel,
    /// `in_use / max_size` of the partition.
    pub utilization: f64,
    /// The partition's share of the global cap: `size / totals.max_size`.
    pub share: f64,
    /// The partition's share of everything checked out: `in_use / totals.in_use` (0 when
    /// nothing is).
    pub in_use_share: f64,
}

/// `GET /pools/{name}/partitions`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct PartitionsResponse {
    /// The registered name.
    pub pool: String,
    /// Whether the pool is partitioned (an unpartitioned pool answers with no partitions).
    pub partitioned: bool,
    /// Partitions in all (before `offset` / `limit`; after `q`).
    pub count: usize,
    /// The `offset` applied.
    pub offset: usize,
    /// The pool's totals (`max_size` is the global cap).
    pub totals: PoolStats,
    /// The partitions, sorted by `sort`.
    pub partitions: Vec<PartitionEntry>,
}

/// `GET /pools/{name}/history`.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct HistoryResponse {
    /// The registered name.
    pub pool: String,
    /// Seconds between samples (1).
    pub interval_secs: u64,
    /// The samples, oldest first: the last hour, or the last `?seconds=`.
    pub samples: Vec<Sample>,
    /// The usage pattern of the last day: one bucket per hour, oldest first; the last is
    /// the current, partial hour.
    pub hourly: Vec<HourBucket>,
}

/// The body of `POST /pools/{name}/resize`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeRequest {
    /// The new `max_size` (at least 1, at most the admin's resize limit).
    pub max_size: usize,
}

/// The optional body of `POST /pools/{name}/drain`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// How long to wait for checkouts to come back, in milliseconds (default 10 000, at
    /// most 600 000).
    pub timeout_ms: Option<u64>,
}

/// What a write did.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct WriteOutcome {
    /// The registered name.
    pub pool: String,
    /// `"resize"`, `"close"` or `"drain"`.
    pub action: &'static str,
    /// Resize: `max_size` before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_max_size: Option<usize>,
    /// Resize: `max_size` now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<usize>,
    /// Close and drain: the pool is closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    /// Drain: every checkout came back within the timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drained: Option<bool>,
    /// Drain: objects still checked out at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_use: Option<usize>,
    /// Drain that timed out: what is still out (empty where the pool type cannot list it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub still_out: Option<Vec<CheckedOutEntry>>,
}

/// The body of every error answer.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: String,
}
