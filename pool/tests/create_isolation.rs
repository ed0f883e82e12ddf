//! Creates on the pool's own runtime are isolated from each other: each has a thread of
//! its own that only entered the runtime, so a factory may block inside, and one pool's
//! slow backend never delays another pool's creates.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{builder, current_thread, get_on_a_thread, Census};
use riptide_pool::{CircuitState, Pool};

/// A factory that synchronously takes an object from another pool (`get_blocking`), for
/// a blocking caller beside an idle current-thread build runtime: the create's thread
/// only entered the pool's runtime, so the nested blocking wait works.
#[test]
fn a_factory_that_uses_another_pool_blocking_works_for_a_blocking_caller() {
    let c = Arc::new(Census::default());
    // A plain pool built outside any runtime (say, a config-store connection pool).
    let other: Pool<common::Obj> = builder(&c, Duration::ZERO).max_size(1).build().unwrap();
    let rt = current_thread();
    let c2 = c.clone();
    let pool: Pool<common::Obj> = rt.block_on(async move {
        Pool::builder(move || {
            let other = other.clone();
            let c = c2.clone();
            async move {
                let _cfg = other
                    .get_blocking()
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                Ok::<_, std::io::Error>(common::make(&c))
            }
        })
        .max_size(1)
        .create_timeout(Duration::from_secs(2))
        .circuit_breaker(1, Duration::from_secs(60))
        .build()
        .unwrap()
    });
    let r = get_on_a_thread(&pool, Duration::from_secs(3));
    let state = pool.circuit_state();
    drop(rt);
    assert!(r.is_ok(), "blocking caller failed: {r:?}");
    assert_eq!(state, CircuitState::Closed);
}

/// One pool whose backend is slow (an async factory that waits 8 s to connect, well
/// within its create_timeout) with more creates in flight than tokio's blocking-thread
/// limit (512): another pool's instant create is not queued behind them.
#[test]
fn a_slow_backend_in_one_pool_does_not_delay_another_pools_creates() {
    let c = Arc::new(Census::default());
    let rt_a = current_thread();
    let slow: Pool<common::Obj> = rt_a.block_on(async {
        builder(&c, Duration::from_secs(8))
            .max_size(600)
            .create_timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    });
    let rt_b = current_thread();
    let fast: Pool<common::Obj> = rt_b.block_on(async {
        builder(&c, Duration::ZERO)
            .max_size(4)
            .create_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    });
    // 520 blocking callers of the slow pool on plain threads (a thread-per-request server).
    let mut callers = Vec::new();
    for _ in 0..520 {
        let p = slow.clone();
        callers.push(std::thread::spawn(move || {
            let _ = p.acquire().timeout(Duration::from_secs(1)).blocking();
        }));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // The fast pool's factory needs no time at all.
    let t0 = Instant::now();
    let r = get_on_a_thread(&fast, Duration::from_secs(3));
    let took = t0.elapsed();
    for h in callers {
        h.join().unwrap();
    }
    assert!(
        r.is_ok(),
        "an instant create of an unrelated pool failed after {took:?}: {r:?}"
    );
    drop((rt_a, rt_b));
}
