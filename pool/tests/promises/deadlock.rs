//! Deadlock detection names the right holder: no false nested wait or `WouldDeadlock`
//! for a new thread that holds nothing, or for a waiting future moved to another task; and
//! a certain nested wait is still found.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, Census};
use riptide_pool::{DeadlockDetection, PoolError, PoolEvent};

/// A thread that took a checkout, handed the guard on and ended is not every later
/// thread: a new thread that holds nothing and waits for the object is not a nested
/// waiter (a new thread may reuse the thread-local storage of one that ended).
#[test]
fn a_new_thread_is_not_the_holder_a_finished_thread_was() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(1)
        .deadlock_detection(DeadlockDetection::Error)
        .build()
        .unwrap();
    let mut rx = pool.events();
    // Thread A takes the object and hands the guard to this thread, then ends.
    let p = pool.clone();
    let guard = std::thread::spawn(move || p.get_blocking().unwrap())
        .join()
        .unwrap();
    // Thread C, the first thread started after A ended, holds nothing and waits for the
    // object, which this thread returns 300 ms later.
    let p = pool.clone();
    let c = std::thread::spawn(move || {
        p.acquire()
            .timeout(Duration::from_secs(5))
            .blocking()
            .map(drop)
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(guard);
    let r = c.join().unwrap();
    let nested = std::iter::from_fn(|| rx.try_recv().ok())
        .filter(|e| matches!(e, PoolEvent::NestedAcquire { .. }))
        .count();
    assert!(r.is_ok(), "{r:?} ({nested} NestedAcquire events)");
    assert_eq!(nested, 0, "a false NestedAcquire report");
}

/// A checkout the fast path made as its future was created, and that the maker keeps
/// (not moved to another task) while it waits for a second object of a one-object pool:
/// a certain deadlock (only the waiting task can ever poll, and so return, the first).
/// The checkout counts as the maker's, so the wait fails at once with `WouldDeadlock`
/// (and a `NestedAcquire` report) instead of running into its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

/// A future that queued is checked as the task polling it now: task A holds the only object, polls a second acquisition once (it queues,
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

/// A checkout whose capacity `reclaim_leaked` gave back is not a unit of the pool: its
/// holder waiting while another caller's create is in flight is no certain deadlock
/// (the create's object will come back), so the wait must not fail with `WouldDeadlock`
/// by counting the reclaimed slot as the one unit a waiting holder holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_checkout_is_no_unit_of_a_deadlock() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::from_millis(300))
        .max_size(1)
        .acquire_timeout(Duration::from_secs(3))
        .leak_threshold(Duration::from_millis(40))
        .reclaim_leaked(Duration::from_millis(40))
        .deadlock_detection(DeadlockDetection::Error)
        .build()
        .unwrap();
    let leaked = pool.get().await.unwrap();
    common::until(|| pool.stats().size == 0).await;
    let p2 = pool.clone();
    let other = tokio::spawn(async move {
        let g = p2.get().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(g);
    });
    common::until(|| pool.stats().size == 1).await;
    let r = pool.acquire().timeout(Duration::from_secs(2)).await;
    other.await.unwrap();
    assert!(r.is_ok(), "{:?}", r.map(drop));
    drop(leaked);
}
