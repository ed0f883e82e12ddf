//! Deadlock detection names the right holder: no false nested wait or `WouldDeadlock`
//! for a new thread that holds nothing.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, Census};
use riptide_pool::{DeadlockDetection, PoolEvent};

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
