//! A key whose factory fails, in a partitioned pool: its circuit breaker stops it
//! whatever happens to its partition, it costs the other keys nothing, and routing
//! passes it over; and no knob lifts a key above its limit.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{
    CircuitState, PartitionLimits, PartitionedPool, PartitionedPoolBuilder, PoolError, Poolable,
    Pooled, RoutingStrategy,
};

struct Unit;
impl Poolable for Unit {}

/// Keys 0 and 2 work; key 1's backend is down (its factory calls are counted), and each
/// key's breaker opens at its first failure.
fn failing_key_1(calls: &Arc<AtomicUsize>) -> PartitionedPoolBuilder<u32, Unit> {
    let calls = calls.clone();
    PartitionedPool::builder(move |k: u32| {
        let calls = calls.clone();
        async move {
            if k == 1 {
                calls.fetch_add(1, SeqCst);
                return Err(std::io::Error::other("key 1's backend is down"));
            }
            Ok(Unit)
        }
    })
    .configure(|b| b.circuit_breaker(1, Duration::from_secs(60)))
}

async fn take(pp: &PartitionedPool<u32, Unit>, key: u32, n: usize) -> Vec<Pooled<Unit>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(pp.get(&key).await.unwrap());
    }
    v
}

/// A caller turned away by its key's open breaker creates nothing, so it evicts nothing:
/// no `get` of key 1 may cost key 0 an idle object (the gate must not make room before
/// the breaker is asked), and a caller blocked on the global cap fails at once rather
/// than waiting out its deadline and having key 0's returns destroyed for a create its
/// breaker would refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_breaker_in_one_key_costs_the_other_keys_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let pp = failing_key_1(&calls)
        .max_size(4)
        .partition_max_size(4)
        .build()
        .unwrap();
    assert!(matches!(pp.get(&1).await, Err(PoolError::Create(_))));
    assert_eq!(pp.circuit_state(), CircuitState::Open);
    // Key 0 holds the whole global cap, idle.
    drop(take(&pp, 0, 4).await);
    for _ in 0..5 {
        let r = pp.get(&1).await.map(drop);
        assert!(matches!(r, Err(PoolError::CircuitOpen { .. })), "{r:?}");
    }
    let s0 = pp.stats(&0).unwrap();
    assert_eq!((s0.destroyed, s0.idle), (0, 4), "{s0:?}");
    // Key 0 holds the whole cap in use: key 1's caller fails at once, not at its deadline.
    let held = take(&pp, 0, 4).await;
    let t0 = Instant::now();
    let r = pp
        .acquire(&1)
        .timeout(Duration::from_secs(2))
        .await
        .map(drop);
    assert!(matches!(r, Err(PoolError::CircuitOpen { .. })), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    // Nothing of key 1's is waiting, so key 0's returns stay with key 0.
    drop(held);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s0 = pp.stats(&0).unwrap();
    assert_eq!((s0.destroyed, s0.idle), (0, 4), "{s0:?}");
    assert_eq!(
        calls.load(SeqCst),
        1,
        "the factory is not called while open"
    );
    assert_eq!(pp.global_size(), 4);
}

/// Removing idle partitions keeps a partition whose breaker has counted a failure: its
/// successor would start with a new breaker, so the next caller would run the failing
/// factory during the cool-down, and removal every 20 ms would keep a breaker of 3
/// failures from ever opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_idle_partitions_keeps_a_failing_keys_breaker() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let pp = PartitionedPool::builder(move |_k: u32| {
        let c = c.clone();
        async move {
            c.fetch_add(1, SeqCst);
            Err::<Unit, _>(std::io::Error::other("down"))
        }
    })
    .max_size(4)
    .partition_max_size(4)
    .configure(|b| b.circuit_breaker(3, Duration::from_secs(60)))
    .build()
    .unwrap();
    // Failures counted before removal still count after it.
    for _ in 0..3 {
        assert!(matches!(pp.get(&7).await, Err(PoolError::Create(_))));
        assert_eq!(
            pp.remove_idle_partitions(),
            0,
            "a partition with failures kept"
        );
    }
    assert_eq!(pp.circuit_state(), CircuitState::Open);
    assert_eq!(pp.remove_idle_partitions(), 0);
    assert!(matches!(
        pp.get(&7).await,
        Err(PoolError::CircuitOpen { .. })
    ));
    assert_eq!(calls.load(SeqCst), 3);
    // A key that never failed is still removed when it holds nothing.
    let ok = PartitionedPool::builder(|_k: u32| async { Ok::<_, std::io::Error>(Unit) })
        .build()
        .unwrap();
    drop(ok.get(&1).await.unwrap());
    let r = ok.acquire(&2).timeout(Duration::ZERO).await.map(drop);
    assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
    assert_eq!(ok.remove_idle_partitions(), 1, "key 2 holds nothing");
    assert!(ok.stats(&2).is_none());
    ok.stats(&1).unwrap();
}

/// Routing passes over a partition whose breaker turns creates away (it looks least
/// loaded: nothing it makes is in use); no routed call may fail while key 0 has room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_passes_over_a_key_whose_breaker_is_open() {
    for routing in [
        RoutingStrategy::LeastLoaded,
        RoutingStrategy::RoundRobin,
        RoutingStrategy::Random,
    ] {
        let calls = Arc::new(AtomicUsize::new(0));
        let pp = failing_key_1(&calls)
            .max_size(8)
            .partition_max_size(4)
            .routing(routing)
            .build()
            .unwrap();
        let _busy = pp.get(&0).await.unwrap();
        assert!(pp.get(&1).await.is_err());
        for _ in 0..10 {
            let (k, g) = pp
                .get_routed()
                .await
                .unwrap_or_else(|e| panic!("{routing:?}: {e}"));
            assert_eq!(k, 0, "{routing:?}");
            drop(g);
            let (k, _g) = pp.get_routed_with(&"a user").await.unwrap();
            assert_eq!(k, 0, "{routing:?}");
        }
        assert_eq!(calls.load(SeqCst), 1, "{routing:?}");
    }
}

/// No knob lifts a key above its limit: `configure(|b| b.max_size(8))` must not override
/// every key's limit (a key limited to 1 holding 8), nor may a per-key `min_idle` above
/// the global cap build. Both are `ConfigError`s at `build()`; a `min_idle` set through
/// `configure` applies to the keys without limits of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_knob_lifts_a_key_above_its_limit() {
    let make = |_k: u32| async { Ok::<_, std::io::Error>(Unit) };
    let limits = |max_size, min_idle| PartitionLimits {
        max_size,
        min_idle,
        priority_boost: 0,
    };
    let e = PartitionedPool::builder(make)
        .partition(1, limits(1, 0))
        .configure(|b| b.max_size(8))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "max_size", "{e}");
    let e = PartitionedPool::builder(make)
        .max_size(2)
        .partition(5, limits(8, 6))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "partition", "{e}");
    let e = PartitionedPool::builder(make)
        .max_size(2)
        .configure(|b| b.min_idle(3))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "min_idle", "{e}");

    let pp = PartitionedPool::builder(make)
        .max_size(16)
        .partition_max_size(4)
        .partition(1, limits(1, 0))
        .configure(|b| b.min_idle(2))
        .build()
        .unwrap();
    let one = pp.get(&1).await.unwrap();
    let r = pp.acquire(&1).timeout(Duration::from_millis(50)).await;
    assert!(
        matches!(r, Err(PoolError::Timeout)),
        "a key limited to 1 held 2"
    );
    drop(one);
    assert_eq!(pp.stats(&1).unwrap().max_size, 1);
    assert_eq!(pp.stats(&2).map(|s| s.max_size), None);
    drop(pp.get(&2).await.unwrap());
    assert_eq!(pp.stats(&2).unwrap().max_size, 4);
    // Key 2 has no limits of its own: the knob's `min_idle` keeps two ready.
    // (Three, if the caller's own create raced the fills.)
    crate::common::until(|| pp.stats(&2).unwrap().idle >= 2).await;
    // Key 1's limits say no idle objects are kept.
    assert_eq!(pp.stats(&1).unwrap().idle, 1);
}

/// Keys whose factory failed do not accumulate: a partition that holds nothing is kept
/// while its breaker's latest failure is within a cool-down (or it is open), and removed
/// as idle after that, as any idle partition is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_failed_long_ago_are_removed_as_idle() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let pp = PartitionedPool::builder(move |_k: u32| {
        c.fetch_add(1, SeqCst);
        async { Err::<Unit, _>(std::io::Error::other("down")) }
    })
    .max_size(64)
    .partition_max_size(4)
    .configure(|b| b.circuit_breaker(3, Duration::from_millis(100)))
    .build()
    .unwrap();
    // A burst of keys that fail once each (below the threshold), and one that opens.
    for k in 0..50 {
        assert!(matches!(pp.get(&k).await, Err(PoolError::Create(_))));
    }
    for _ in 0..3 {
        assert!(matches!(pp.get(&99).await, Err(PoolError::Create(_))));
    }
    let opened = Instant::now();
    assert!(matches!(
        pp.get(&99).await,
        Err(PoolError::CircuitOpen { .. })
    ));
    assert_eq!(pp.remove_idle_partitions(), 0, "recent failures: kept");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let removed = pp.remove_idle_partitions();
    assert_eq!(removed, 51, "{:?} after opening", opened.elapsed());
    assert!(pp.stats(&99).is_none() && pp.stats(&0).is_none());
    assert_eq!(calls.load(SeqCst), 53);
}
