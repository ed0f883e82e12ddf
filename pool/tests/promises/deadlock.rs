//! Deadlock detection names the right holder: no false nested wait or `WouldDeadlock`
//! for a future awaited by another task than its maker, or for a new thread.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, Census};
use riptide_pool::{DeadlockDetection, PoolError, PoolEvent};

/// A future made by one task and awaited by another (`tokio::spawn(pool.get())`, or a
/// future built here and moved into a spawned task) is taken by the task that awaits it:
/// when an object is idle, the fast path claims it as the future is *made*, and the
/// checkout is recorded as the maker's. The maker then waits for a second object while
/// holding nothing, and is told `WouldDeadlock` although the other task returns its
/// object 100 ms later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_awaited_by_another_task_is_not_the_makers_checkout() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(1)
        .deadlock_detection(DeadlockDetection::Error)
        .build()
        .unwrap();
    pool.warm_up(1).await.unwrap();
    let mut rx = pool.events();
    // Run in a spawned task so the maker has a task id of its own.
    let p = pool.clone();
    let r = tokio::spawn(async move {
        let fut = p.get(); // made here, awaited by the worker
        let worker = tokio::spawn(async move {
            let g = fut.await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(g);
        });
        // The maker holds nothing: it waits for the worker's object.
        let r = p.acquire().timeout(Duration::from_secs(5)).await;
        worker.await.unwrap();
        r.map(drop)
    })
    .await
    .unwrap();
    let events: Vec<PoolEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
    let nested = events
        .iter()
        .filter(|e| matches!(e, PoolEvent::NestedAcquire { .. }))
        .count();
    assert!(
        !matches!(r, Err(PoolError::WouldDeadlock)),
        "false WouldDeadlock: the waiter holds nothing ({nested} NestedAcquire events)"
    );
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(nested, 0, "a false NestedAcquire report");
}

/// A thread that took a checkout, handed the guard on and ended is not every later
/// thread: a new thread that holds nothing and waits for the object is not a nested
/// waiter. (Thread holders are told apart by the address of a thread-local, which a new
/// thread reuses once the old one is gone.)
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
