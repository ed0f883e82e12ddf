//! Settings at their extremes: the largest durations a builder, a file or the environment
//! can give are limits that are never reached, not panics.

use std::sync::Arc;
use std::time::Duration;

use riptide_pool::{PartitionedPool, PoolConfig, Poolable};

struct Conn;
impl Poolable for Conn {}

use crate::common::{builder, Census};

/// `drain(Duration::MAX)`, "wait for as long as it takes", drains (here at once: nothing
/// is out) instead of overflowing `Instant + timeout`.
#[tokio::test]
async fn a_drain_without_a_limit_does_not_overflow() {
    let c = Arc::new(Census::default());
    let pool = builder(&c, Duration::ZERO).build().unwrap();
    drop(pool.get().await.unwrap());
    pool.drain(Duration::MAX).await.unwrap();
    assert!(pool.is_closed());

    let pp = PartitionedPool::builder(|_k: u32| async { Ok::<_, std::io::Error>(Conn) })
        .build()
        .unwrap();
    drop(pp.get(&1).await.unwrap());
    pp.drain(Duration::MAX).await.unwrap();
    assert!(pp.is_closed());
}

/// Every duration knob at `Duration::MAX` (from a file: the largest millisecond count)
/// builds, serves and keeps its object.
#[tokio::test]
async fn the_largest_durations_build_and_serve() {
    let cfg: PoolConfig = serde_json::from_str(&format!(
        r#"{{ "acquire_timeout": {m}, "create_timeout": {m}, "idle_timeout": {m},
             "max_lifetime": {m}, "leak_threshold": {m}, "reclaim_leaked": {m},
             "validation_interval": {m}, "starvation_threshold": {m},
             "circuit_cool_down": {m} }}"#,
        m = u64::MAX
    ))
    .unwrap();
    let c = Arc::new(Census::default());
    let pool = builder(&c, Duration::ZERO)
        .config(&cfg)
        .min_idle(1)
        .build()
        .unwrap();
    let g = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await; // a few maintenance passes
    drop(g);
    let g = pool.get().await.unwrap();
    drop(g);
    assert_eq!(pool.stats().destroyed, 0, "no limit of Duration::MAX was reached");
    let pool = builder(&c, Duration::ZERO)
        .acquire_timeout(Duration::MAX)
        .create_timeout(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .leak_threshold(Duration::MAX)
        .reclaim_leaked(Duration::MAX)
        .validation_interval(Duration::MAX)
        .starvation_threshold(Duration::MAX)
        .circuit_breaker(1, Duration::MAX)
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
}
