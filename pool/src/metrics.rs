//! Feature `metrics`: every `PoolStats` figure through the `metrics` facade, so any
//! exporter (Prometheus, StatsD, …) works. Names and their HikariCP / Go `DBStats`
//! equivalents: `docs/metrics.md`. Each series carries the label `pool` (the builder's
//! `name`). Published on every maintenance pass and by `Pool::publish_metrics`.
//!
//! [`record`] is the one place that maps a [`PoolStats`] to series names; the pool's own
//! publisher and `riptide-admin`'s `/metrics` both call it.

use metrics::{counter, gauge};

use crate::shared::Shared;
use crate::PoolStats;

/// The labels of `riptide_pool_waiting`'s `priority`, indexed like
/// [`PoolStats::waiting_by_priority`].
const PRIORITY_LABELS: [&str; 4] = ["low", "normal", "high", "critical"];

pub(crate) fn publish<T: Send + 'static>(shared: &Shared<T>) {
    record(&shared.config().name, &shared.stats());
}

/// Records `stats` through the `metrics` facade's current recorder, every series labelled
/// `pool` = `pool`: the gauges `riptide_pool_max_size`, `_size`, `_idle`, `_in_use`,
/// `_pending_acquisitions`, `_waiting{priority}` and `_oldest_wait_seconds`, the counters
/// `riptide_pool_created_total`, `_destroyed_total`, `_acquired_total`, `_timeouts_total`
/// and `_leaks_detected_total` (set with `absolute`), and the `quantile`-labelled gauges
/// `riptide_pool_wait_seconds`, `_usage_seconds` and `_create_seconds`. The table with
/// their meanings is on [`Pool::publish_metrics`](crate::Pool::publish_metrics).
///
/// [`Pool::publish_metrics`](crate::Pool::publish_metrics) calls it with the pool's own
/// name and stats; an exporter that reads stats itself (under
/// `metrics::with_local_recorder`, say) calls it with any name.
pub fn record(pool: &str, stats: &PoolStats) {
    let s = stats;
    let g = |name: &'static str, v: f64| gauge!(name, "pool" => pool.to_owned()).set(v);
    g("riptide_pool_max_size", s.max_size as f64);
    g("riptide_pool_size", s.size as f64);
    g("riptide_pool_idle", s.idle as f64);
    g("riptide_pool_in_use", s.in_use as f64);
    g(
        "riptide_pool_pending_acquisitions",
        s.pending_acquisitions as f64,
    );
    g(
        "riptide_pool_oldest_wait_seconds",
        s.oldest_wait.as_secs_f64(),
    );
    for (priority, n) in PRIORITY_LABELS.into_iter().zip(s.waiting_by_priority) {
        gauge!("riptide_pool_waiting", "pool" => pool.to_owned(), "priority" => priority)
            .set(n as f64);
    }
    let c = |name: &'static str, v: u64| counter!(name, "pool" => pool.to_owned()).absolute(v);
    c("riptide_pool_created_total", s.created);
    c("riptide_pool_destroyed_total", s.destroyed);
    c("riptide_pool_acquired_total", s.acquired);
    c("riptide_pool_timeouts_total", s.timeouts);
    c("riptide_pool_leaks_detected_total", s.leaks_detected);
    for (name, q, v) in [
        ("riptide_pool_wait_seconds", "0.5", s.wait_p50),
        ("riptide_pool_wait_seconds", "0.95", s.wait_p95),
        ("riptide_pool_wait_seconds", "0.99", s.wait_p99),
        ("riptide_pool_usage_seconds", "0.5", s.usage_p50),
        ("riptide_pool_usage_seconds", "0.95", s.usage_p95),
        ("riptide_pool_usage_seconds", "0.99", s.usage_p99),
        ("riptide_pool_create_seconds", "0.5", s.create_p50),
        ("riptide_pool_create_seconds", "0.95", s.create_p95),
        ("riptide_pool_create_seconds", "0.99", s.create_p99),
    ] {
        gauge!(name, "pool" => pool.to_owned(), "quantile" => q).set(v.as_secs_f64());
    }
}
