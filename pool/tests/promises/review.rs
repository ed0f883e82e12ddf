//! Hostile review of the recent changes: promises still broken at HEAD.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, Census};
use riptide_pool::{
    AffinityRules, DeadlockDetection, PartitionedPool, PoolError, Poolable, RoutingStrategy,
};

struct Conn;
impl Poolable for Conn {}

/// `AffinityRules::max_hints`: "Hints remembered at most". With `max_hints: 0` no hint
/// may be remembered: two routed calls with the same hint, round robin over two
/// partitions, go to the two partitions in turn. (The table evicts only when it is full
/// and then inserts, so it always keeps the newest hint.)
#[tokio::test]
async fn max_hints_zero_remembers_no_hint() {
    let pp = PartitionedPool::builder(|_k: u8| async { Ok::<_, std::io::Error>(Conn) })
        .partition_max_size(10)
        .max_size(100)
        .routing(RoutingStrategy::RoundRobin)
        .affinity(AffinityRules { max_hints: 0 })
        .build()
        .unwrap();
    drop(pp.get(&0).await.unwrap());
    drop(pp.get(&1).await.unwrap());
    let (a, g) = pp.get_routed_with(&7u32).await.unwrap();
    drop(g);
    let (b, g) = pp.get_routed_with(&7u32).await.unwrap();
    drop(g);
    assert_ne!(
        a, b,
        "hint 7 stuck to partition {a} although max_hints is 0"
    );
}

/// A checkout the fast path made as its future was created, and that the maker keeps
/// (not moved to another task) while it waits for a second object of a one-object pool:
/// a certain deadlock (only the waiting task can ever poll, and so return, the first).
/// Before 1452477 it was attributed to the maker and the wait failed at once with
/// `WouldDeadlock` (and a `NestedAcquire` report); now it is attributed to nobody until
/// polled, and the wait runs into its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "regression of 1452477 with no fix yet: run with --ignored"]
async fn a_fast_path_future_kept_by_its_maker_is_still_a_nested_wait() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(1)
        .deadlock_detection(DeadlockDetection::Error)
        .build()
        .unwrap();
    pool.warm_up(1).await.unwrap();
    let p = pool.clone();
    let r = tokio::spawn(async move {
        let first = p.get(); // holds the only object, polled later by this task
        let r = p.acquire().timeout(Duration::from_secs(2)).await.map(drop);
        drop(first);
        r
    })
    .await
    .unwrap();
    assert!(matches!(r, Err(PoolError::WouldDeadlock)), "{r:?}");
}

/// The case 1452477 fixed for a future settled when made, for a future that queued
/// first: task A holds the only object, polls a second acquisition once (it queues,
/// its cell recording A as the waiting holder), then hands that future to task B, which
/// holds nothing, and returns its object 100 ms later. The waiter is B: nobody is
/// deadlocked. Detection still takes A (the registering task) for the waiter, finds A
/// holding the object, and fails B's wait with `WouldDeadlock` (and a false
/// `NestedAcquire`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_future_moved_to_another_task_waits_as_that_task() {
    use std::future::{Future, IntoFuture};
    use std::pin::Pin;
    use std::task::Poll;
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(1)
        .deadlock_detection(DeadlockDetection::Error)
        .build()
        .unwrap();
    pool.warm_up(1).await.unwrap();
    let p = pool.clone();
    let r = tokio::spawn(async move {
        let held = p.get().await.unwrap();
        let mut fut = p.acquire().timeout(Duration::from_secs(5)).into_future();
        let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut fut).poll(cx))).await;
        assert!(first.is_pending(), "the pool's only object is held");
        let waiter = tokio::spawn(async move { fut.await.map(drop) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(held);
        waiter.await.unwrap()
    })
    .await
    .unwrap();
    assert!(r.is_ok(), "the waiter (holding nothing) was failed: {r:?}");
}
