//! `/metrics`: the Prometheus text of every registered pool.
//!
//! Each scrape builds a fresh `PrometheusRecorder` (no upkeep task, no global state),
//! records the pools' current figures into it under `metrics::with_local_recorder` (the
//! core's series through `riptide_pool::metrics::record`, the same function the core's
//! own publisher calls, then the admin's health, breaker and partition series), and
//! renders it. Nothing is installed globally, so any number of admins (and a global
//! recorder the service installed for its own metrics) live side by side, and a
//! partition that went away leaves no stale series behind.

use metrics::{describe_counter, describe_gauge, gauge, Unit};
use metrics_exporter_prometheus::PrometheusBuilder;
use riptide_pool::{CircuitState, HealthLevel, HealthStatus, PoolStats};

/// What one pool contributes to a scrape.
pub(crate) struct PoolFigures {
    pub name: String,
    pub stats: PoolStats,
    pub health: HealthStatus,
    pub circuit: Option<CircuitState>,
    pub partitions: Option<Vec<(String, PoolStats)>>,
}

/// The unitless gauges of `docs/metrics.md` (name, help).
const GAUGES: [(&str, &str); 6] = [
    ("riptide_pool_max_size", "current max_size"),
    ("riptide_pool_size", "objects alive + creates in flight"),
    ("riptide_pool_idle", "idle objects"),
    ("riptide_pool_in_use", "checked-out objects"),
    (
        "riptide_pool_pending_acquisitions",
        "callers waiting right now",
    ),
    (
        "riptide_pool_waiting",
        "callers waiting right now at each priority (label priority)",
    ),
];

/// The counters of `docs/metrics.md` (name, help).
const COUNTERS: [(&str, &str); 5] = [
    ("riptide_pool_created_total", "objects created"),
    (
        "riptide_pool_destroyed_total",
        "objects destroyed or detached",
    ),
    ("riptide_pool_acquired_total", "successful checkouts"),
    ("riptide_pool_timeouts_total", "acquisitions that timed out"),
    (
        "riptide_pool_leaks_detected_total",
        "checkouts reported as suspected leaks",
    ),
];

/// Every metric name `/metrics` can contain (for the docs and the tests).
///
/// The first 15 are the core's, the series `riptide_pool::metrics::record` writes; the rest
/// are the admin's own (health, breaker, partitions).
pub const METRIC_NAMES: [&str; 26] = [
    "riptide_pool_max_size",
    "riptide_pool_size",
    "riptide_pool_idle",
    "riptide_pool_in_use",
    "riptide_pool_pending_acquisitions",
    "riptide_pool_waiting",
    "riptide_pool_oldest_wait_seconds",
    "riptide_pool_created_total",
    "riptide_pool_destroyed_total",
    "riptide_pool_acquired_total",
    "riptide_pool_timeouts_total",
    "riptide_pool_leaks_detected_total",
    "riptide_pool_wait_seconds",
    "riptide_pool_usage_seconds",
    "riptide_pool_create_seconds",
    "riptide_pool_utilization",
    "riptide_pool_health_level",
    "riptide_pool_health_score",
    "riptide_pool_error_rate",
    "riptide_pool_circuit_state",
    "riptide_pool_partitions",
    "riptide_partition_max_size",
    "riptide_partition_size",
    "riptide_partition_idle",
    "riptide_partition_in_use",
    "riptide_partition_pending_acquisitions",
];

fn level_value(l: HealthLevel) -> f64 {
    match l {
        HealthLevel::Healthy => 0.0,
        HealthLevel::Degraded => 1.0,
        HealthLevel::Unhealthy => 2.0,
        HealthLevel::Critical => 3.0,
    }
}

fn circuit_value(c: CircuitState) -> f64 {
    match c {
        CircuitState::Closed => 0.0,
        CircuitState::HalfOpen => 1.0,
        CircuitState::Open => 2.0,
    }
}

fn describe_all() {
    for (name, help) in GAUGES {
        describe_gauge!(name, help);
    }
    for (name, help) in COUNTERS {
        describe_counter!(name, help);
    }
    describe_gauge!(
        "riptide_pool_oldest_wait_seconds",
        Unit::Seconds,
        "how long the longest-waiting caller has waited"
    );
    describe_gauge!(
        "riptide_pool_wait_seconds",
        Unit::Seconds,
        "time callers waited for an object (label quantile)"
    );
    describe_gauge!(
        "riptide_pool_usage_seconds",
        Unit::Seconds,
        "how long objects are held, sampled (label quantile)"
    );
    describe_gauge!(
        "riptide_pool_create_seconds",
        Unit::Seconds,
        "how long creates take (label quantile)"
    );
    describe_gauge!("riptide_pool_utilization", "in_use / max_size");
    describe_gauge!(
        "riptide_pool_health_level",
        "0 healthy, 1 degraded, 2 unhealthy, 3 critical"
    );
    describe_gauge!("riptide_pool_health_score", "0..=100, higher is better");
    describe_gauge!(
        "riptide_pool_error_rate",
        "failed creates / create attempts over the last minute"
    );
    describe_gauge!(
        "riptide_pool_circuit_state",
        "factory circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    describe_gauge!(
        "riptide_pool_partitions",
        "partitions of a partitioned pool"
    );
    describe_gauge!("riptide_partition_max_size", "a partition's max_size");
    describe_gauge!(
        "riptide_partition_size",
        "a partition's objects alive + creates in flight"
    );
    describe_gauge!("riptide_partition_idle", "a partition's idle objects");
    describe_gauge!(
        "riptide_partition_in_use",
        "a partition's checked-out objects"
    );
    describe_gauge!(
        "riptide_partition_pending_acquisitions",
        "callers waiting on a partition"
    );
}

/// A label value as the exporter must be given it: its sanitizer escapes `"` and newlines
/// but keeps `\\` and `\"` pairs as already escaped, so a name such as `C:\\a` would
/// lose a backslash (and collide with `C:\a`). Doubling every backslash first makes the
/// rendered value read back as the name.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
}

fn record(p: &PoolFigures, per_partition: bool) {
    let pool = label(&p.name);
    riptide_pool::metrics::record(&pool, &p.stats);
    let g = |name: &'static str, v: f64| gauge!(name, "pool" => pool.clone()).set(v);
    let h = &p.health;
    let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
    g("riptide_pool_utilization", finite(h.utilization));
    g("riptide_pool_health_level", level_value(h.level));
    g("riptide_pool_health_score", f64::from(h.score));
    g("riptide_pool_error_rate", finite(h.error_rate));
    if let Some(c) = p.circuit {
        g("riptide_pool_circuit_state", circuit_value(c));
    }
    if let Some(parts) = &p.partitions {
        g("riptide_pool_partitions", parts.len() as f64);
        if per_partition {
            for (key, ps) in parts {
                let key = label(key);
                let pg = |name: &'static str, v: usize| {
                    gauge!(name, "pool" => pool.clone(), "partition" => key.clone()).set(v as f64)
                };
                pg("riptide_partition_max_size", ps.max_size);
                pg("riptide_partition_size", ps.size);
                pg("riptide_partition_idle", ps.idle);
                pg("riptide_partition_in_use", ps.in_use);
                pg(
                    "riptide_partition_pending_acquisitions",
                    ps.pending_acquisitions,
                );
            }
        }
    }
}

/// Renders `pools` as Prometheus text (format 0.0.4).
pub(crate) fn render(pools: &[PoolFigures], per_partition: bool) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe_all();
        for p in pools {
            record(p, per_partition);
        }
    });
    handle.render()
}
