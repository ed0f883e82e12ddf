//! `retain`'s closure panicking loses no idle object, on a calm or a scarce pool.
use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, Census};

/// A scarce pool (someone found it empty) keeps its idle objects on the stack; `retain`
/// pops them all before looking at any. A `keep` that panics on the first must not lose
/// the others (nor the first): they are idle objects of the pool.
#[tokio::test]
async fn retain_panicking_on_a_scarce_pool_loses_no_idle_object() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(3)
        .build()
        .unwrap();
    // Take all three, then find the pool empty once: scarce mode.
    let held = common::take_n(&pool, 3).await;
    assert!(pool.try_get().is_err());
    drop(held); // pushed on the idle stack
    let s = pool.stats();
    assert_eq!((s.size, s.idle, s.in_use), (3, 3, 0), "{s:?}");

    let p = pool.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.retain(|_, _| panic!("keep panicked (on purpose)"))
    }));
    assert!(r.is_err());

    let s = pool.stats();
    assert_eq!(
        (s.size, s.idle, s.in_use),
        (3, 3, 0),
        "after a panicking retain: {s:?}"
    );
    // Every idle object can still be checked out without waiting.
    let mut got = Vec::new();
    for n in 0..3 {
        got.push(
            pool.try_get()
                .unwrap_or_else(|e| panic!("try_get #{n}: {e:?}; {:?}", pool.stats())),
        );
    }
}

/// The same on a calm pool (objects idle in their slots).
#[tokio::test]
async fn retain_panicking_on_a_calm_pool_loses_no_idle_object() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(3)
        .build()
        .unwrap();
    pool.warm_up(3).await.unwrap();
    let p = pool.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        p.retain(|_, _| panic!("keep panicked (on purpose)"))
    }));
    assert!(r.is_err());
    let s = pool.stats();
    assert_eq!(
        (s.size, s.idle, s.in_use),
        (3, 3, 0),
        "after a panicking retain: {s:?}"
    );
    let mut got = Vec::new();
    for n in 0..3 {
        got.push(
            pool.try_get()
                .unwrap_or_else(|e| panic!("try_get #{n}: {e:?}; {:?}", pool.stats())),
        );
    }
}
