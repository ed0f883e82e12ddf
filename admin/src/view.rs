//! [`PoolView`]: what the admin needs from a pool, as one object-safe trait.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::time::Duration;

use riptide_pool::{
    CheckedOut, CircuitState, DrainError, HealthStatus, PartitionedPool, Pool, PoolStats, Poolable,
};
use serde::Serialize;

/// A boxed, `Send` future (what [`PoolView::drain`] returns, so the trait stays
/// object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What kind of pool a [`PoolView`] is; shown as `"kind"` in the JSON.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// A single pool ([`riptide_pool::Pool`]).
    Pool,
    /// A pool per key under a global cap ([`riptide_pool::PartitionedPool`]).
    Partitioned,
}

/// A write the pool type does not offer (answered `501 Not Implemented`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("this pool type does not support the operation")
    }
}

impl std::error::Error for Unsupported {}

/// The admin's view of one pool: read its figures, and the three writes.
///
/// Implemented here for [`Pool<T>`] and [`PartitionedPool<K, T>`]; implement it for a type
/// of your own (a wrapper around a pool, a pool from another crate) and register it with
/// [`Admin::pool`](crate::Admin::pool). Methods returning `Option` answer `None` when the
/// pool type cannot tell; the endpoint then says so (`null` in JSON, `501` for a list).
pub trait PoolView: Send + Sync + 'static {
    /// Single or partitioned.
    fn kind(&self) -> PoolKind {
        PoolKind::Pool
    }
    /// The counters (for a partitioned pool: the totals, `max_size` = the global cap).
    fn stats(&self) -> PoolStats;
    /// Health by the thresholds documented on [`HealthLevel`](riptide_pool::HealthLevel).
    fn health(&self) -> HealthStatus;
    /// The factory's circuit breaker, if the pool type exposes one.
    fn circuit_state(&self) -> Option<CircuitState>;
    /// Whether the pool was closed, if the pool type can tell.
    fn is_closed(&self) -> Option<bool>;
    /// Every partition's key (rendered as text) and stats; `None` for an unpartitioned pool.
    fn partitions(&self) -> Option<Vec<(String, PoolStats)>> {
        None
    }
    /// [`partitions`](Self::partitions), each with its partition's own health. The default
    /// judges each from its stats alone ([`health_from_stats`]: no breaker, no error rate).
    fn partitions_with_health(&self) -> Option<Vec<(String, PoolStats, HealthStatus)>> {
        self.partitions().map(|all| {
            all.into_iter()
                .map(|(k, s)| {
                    let h = health_from_stats(&s, false);
                    (k, s, h)
                })
                .collect()
        })
    }
    /// The checkouts held right now with the line that took each; `None` if the pool type
    /// cannot list them.
    fn checked_out(&self) -> Option<Vec<CheckedOut>>;
    /// [`checked_out`](Self::checked_out), each with the key (as text) of the partition
    /// that holds it, for a partitioned pool. The default gives every checkout no key.
    fn checked_out_by_partition(&self) -> Option<Vec<(Option<String>, CheckedOut)>> {
        self.checked_out()
            .map(|all| all.into_iter().map(|c| (None, c)).collect())
    }
    /// Sets `max_size`.
    fn resize(&self, max_size: usize) -> Result<(), Unsupported>;
    /// Closes the pool (idempotent).
    fn close(&self);
    /// Closes the pool and waits up to `timeout` for every checkout to come back.
    fn drain(&self, timeout: Duration) -> BoxFuture<'_, Result<(), DrainError>>;
}

impl<T: Poolable> PoolView for Pool<T> {
    fn stats(&self) -> PoolStats {
        Pool::stats(self)
    }
    fn health(&self) -> HealthStatus {
        Pool::health(self)
    }
    fn circuit_state(&self) -> Option<CircuitState> {
        Some(Pool::circuit_state(self))
    }
    fn is_closed(&self) -> Option<bool> {
        Some(Pool::is_closed(self))
    }
    fn checked_out(&self) -> Option<Vec<CheckedOut>> {
        Some(Pool::checked_out(self))
    }
    fn resize(&self, max_size: usize) -> Result<(), Unsupported> {
        Pool::resize(self, max_size);
        Ok(())
    }
    fn close(&self) {
        Pool::close(self);
    }
    fn drain(&self, timeout: Duration) -> BoxFuture<'_, Result<(), DrainError>> {
        Box::pin(Pool::drain(self, timeout))
    }
}

/// A partitioned pool: its totals, and each key rendered with [`key_text`].
///
/// Health, breaker state (the worst partition's), closed flag, checked-out list (every
/// partition's) and drain come from the partitioned pool itself. A resize answers
/// [`Unsupported`]: the global cap is fixed when the pool is built.
impl<K, T> PoolView for PartitionedPool<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + Debug + 'static,
    T: Poolable,
{
    fn kind(&self) -> PoolKind {
        PoolKind::Partitioned
    }
    fn stats(&self) -> PoolStats {
        self.totals()
    }
    fn health(&self) -> HealthStatus {
        PartitionedPool::health(self)
    }
    fn circuit_state(&self) -> Option<CircuitState> {
        Some(PartitionedPool::circuit_state(self))
    }
    fn is_closed(&self) -> Option<bool> {
        Some(PartitionedPool::is_closed(self))
    }
    fn partitions(&self) -> Option<Vec<(String, PoolStats)>> {
        Some(
            PartitionedPool::partitions(self)
                .into_iter()
                .map(|(k, s)| (key_text(&k), s))
                .collect(),
        )
    }
    /// Each partition's health is its own (`PartitionedPool::partition_health`): its
    /// breaker and create errors count. A partition removed since its stats were read
    /// is judged from them.
    fn partitions_with_health(&self) -> Option<Vec<(String, PoolStats, HealthStatus)>> {
        Some(
            PartitionedPool::partitions(self)
                .into_iter()
                .map(|(k, s)| {
                    let h = self
                        .partition_health(&k)
                        .unwrap_or_else(|| health_from_stats(&s, false));
                    (key_text(&k), s, h)
                })
                .collect(),
        )
    }
    fn checked_out(&self) -> Option<Vec<CheckedOut>> {
        Some(
            PartitionedPool::checked_out(self)
                .into_iter()
                .map(|(_, c)| c)
                .collect(),
        )
    }
    fn checked_out_by_partition(&self) -> Option<Vec<(Option<String>, CheckedOut)>> {
        Some(
            PartitionedPool::checked_out(self)
                .into_iter()
                .map(|(k, c)| (Some(key_text(&k)), c))
                .collect(),
        )
    }
    fn resize(&self, _max_size: usize) -> Result<(), Unsupported> {
        Err(Unsupported)
    }
    fn close(&self) {
        PartitionedPool::close(self);
    }
    fn drain(&self, timeout: Duration) -> BoxFuture<'_, Result<(), DrainError>> {
        Box::pin(PartitionedPool::drain(self, timeout))
    }
}

/// Health from counters alone, by the thresholds documented on [`HealthLevel`](riptide_pool::HealthLevel), with the
/// create error rate taken as 0 (used where a pool type has no `health()` of its own: the
/// default [`PoolView::partitions_with_health`]). `closed` makes it `Critical`. The same
/// judgement as [`HealthStatus::from_load`].
pub fn health_from_stats(s: &PoolStats, closed: bool) -> HealthStatus {
    HealthStatus::from_load(s, closed)
}

/// A partition key as text: its `Debug` form, with a string's or char's quotes and escapes
/// removed (`"acme"` → `acme`, `'x'` → `x`; `42` and `Tenant(7)` stay as they are).
///
/// ```
/// use riptide_admin::key_text;
/// assert_eq!(key_text(&"acme".to_string()), "acme");
/// assert_eq!(key_text(&"say \"hi\"\n"), "say \"hi\"\n");
/// assert_eq!(key_text(&'x'), "x");
/// assert_eq!(key_text(&42u32), "42");
/// assert_eq!(key_text(&("eu", 3)), "(\"eu\", 3)");
/// ```
pub fn key_text<K: Debug + ?Sized>(key: &K) -> String {
    let d = format!("{key:?}");
    for q in ['"', '\''] {
        if d.len() >= 2 && d.starts_with(q) && d.ends_with(q) {
            if let Some(s) = unescape_debug(&d[1..d.len() - 1], q) {
                return s;
            }
        }
    }
    d
}

/// Undoes the escaping `Debug` for `str` and `char` writes between the quotes `quote`;
/// `None` if `s` is not such a body (e.g. it holds an unescaped `quote`: then the `Debug`
/// output was not a plain string and is shown as it is).
fn unescape_debug(s: &str, quote: char) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            c if c == quote => return None,
            '\\' => match it.next()? {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                '0' => out.push('\0'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'u' => {
                    if it.next()? != '{' {
                        return None;
                    }
                    let mut hex = String::new();
                    loop {
                        match it.next()? {
                            '}' => break,
                            h if h.is_ascii_hexdigit() && hex.len() < 6 => hex.push(h),
                            _ => return None,
                        }
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_pool::HealthLevel;

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Tenant(u32);

    #[test]
    fn keys_render_cleanly() {
        assert_eq!(key_text(&String::from("acme")), "acme");
        assert_eq!(key_text("tab\there"), "tab\there");
        assert_eq!(key_text("bell\u{7}"), "bell\u{7}");
        assert_eq!(key_text("zwj\u{200d}x"), "zwj\u{200d}x");
        assert_eq!(key_text("it's"), "it's");
        assert_eq!(key_text(&'\''), "'");
        assert_eq!(key_text(&Tenant(7)), "Tenant(7)");
        assert_eq!(key_text(&-3i64), "-3");
        assert_eq!(key_text(&Some("x")), "Some(\"x\")");
        // A Debug output that merely looks quoted is left alone.
        assert_eq!(unescape_debug("a\"b", '"'), None);
        assert_eq!(key_text(&'"'), "\"");
    }

    #[test]
    fn health_thresholds() {
        let mut s = PoolStats::default();
        s.max_size = 10;
        assert_eq!(health_from_stats(&s, false).level, HealthLevel::Healthy);
        assert_eq!(health_from_stats(&s, true).level, HealthLevel::Critical);
        s.in_use = 9;
        assert_eq!(health_from_stats(&s, false).level, HealthLevel::Degraded);
        s.in_use = 10;
        s.pending_acquisitions = 2;
        let h = health_from_stats(&s, false);
        assert_eq!(h.level, HealthLevel::Unhealthy);
        assert_eq!(h.score, 40);
        assert_eq!(h.utilization, 1.0);
    }
}
