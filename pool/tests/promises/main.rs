//! Promises a demanding user relies on, each guarded by a test that failed before its
//! fix: no idle object lost to a panicking `retain`, counters that never go down, deadlock
//! detection that names the right holder, routed checkouts that name the caller's line,
//! affinity hints forgotten oldest first, partitions that share the global cap fairly and
//! give every unit back, slow `Drop`s of discarded objects that hold no caller past its
//! deadline; and a stress run of the paths around the fast path (`max_uses`, failing
//! `validate`, lifetimes, `retain`/`clear_idle`/`warm_up`).

#[path = "../common/mod.rs"]
mod common;

mod affinity;
mod around_the_fast_path;
mod config;
mod deadlock;
mod discards;
mod drain_and_removal;
mod eviction_aside;
mod interplay;
mod partition;
mod partition_breaker;
mod partition_capacity;
mod partition_guards;
mod partition_per_key;
mod retain;
mod routed;
mod slow_drop;
mod stats;
mod stranded;
mod stress;
