//! Feature `metrics`: every `PoolStats` figure through the `metrics` facade, so any
//! exporter (Prometheus, StatsD, …) works. Names and their HikariCP / Go `DBStats`
//! equivalents: `docs/metrics.md`. Each series carries the label `pool` (the builder's
//! `name`). Published on every maintenance pass and by `Pool::publish_metrics`.

use metrics::{counter, gauge};

use crate::shared::Shared;

pub(crate) fn publish<T: Send + 'static>(shared: &Shared<T>) {
    let s = shared.stats();
    let pool = shared.config().name.clone();
    let g = |name: &'static str, v: f64| gauge!(name, "pool" => pool.clone()).set(v);
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
    for (priority, n) in ["low", "normal", "high", "critical"]
        .into_iter()
        .zip(s.waiting_by_priority)
    {
        gauge!("riptide_pool_waiting", "pool" => pool.clone(), "priority" => priority)
            .set(n as f64);
    }
    let c = |name: &'static str, v: u64| counter!(name, "pool" => pool.clone()).absolute(v);
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
        gauge!(name, "pool" => pool.clone(), "quantile" => q).set(v.as_secs_f64());
    }
}
