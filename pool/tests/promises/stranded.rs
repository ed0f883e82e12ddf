//! A create whose runtime stops driving it: a caller inside a current-thread runtime starts
//! a create, gives up, and the runtime stays alive but is never driven again (a
//! per-thread runtime kept for the odd `block_on`). `create_timeout` still ends the
//! create for the pool: its capacity comes back, and a half-open breaker's trial fails
//! and lets the next trial through. Before the watchdog, the pool's only unit was held
//! for as long as the runtime idled ("still held the only unit after 800 ms"), and the
//! breaker stayed half-open with every caller refused.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use riptide_pool::{CircuitState, Pool, PoolError, Poolable};

use crate::common;

struct Unit;
impl Poolable for Unit {}

/// A factory that sleeps `delay_ms` on tokio's timer, then fails while `fail` is set.
#[derive(Default)]
struct Backend {
    fail: AtomicBool,
    delay_ms: AtomicU64,
}

fn pool(b: &Arc<Backend>) -> riptide_pool::PoolBuilder<Unit> {
    let b = b.clone();
    Pool::builder(move || {
        let b = b.clone();
        async move {
            let d = b.delay_ms.load(SeqCst);
            if d > 0 {
                tokio::time::sleep(Duration::from_millis(d)).await;
            }
            if b.fail.load(SeqCst) {
                return Err(std::io::Error::other("down"));
            }
            Ok(Unit)
        }
    })
}

/// Starts a create from a current-thread runtime whose caller gives up after 20 ms, then
/// keeps that runtime alive, undriven, until the returned sender is dropped.
fn strand_a_create(
    pool: &Pool<Unit>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let p = pool.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let keeper = std::thread::spawn(move || {
        let rt = common::current_thread();
        let r = rt.block_on(async { p.acquire().timeout(Duration::from_millis(20)).await });
        assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
        let _ = rx.recv();
        drop(rt);
    });
    (tx, keeper)
}

#[test]
fn a_stranded_create_gives_its_capacity_back_after_create_timeout() {
    let backend = Arc::new(Backend::default());
    let rt = common::runtime(true);
    let pool = rt.block_on(async {
        pool(&backend)
            .max_size(1)
            .create_timeout(Duration::from_millis(200))
            .no_circuit_breaker()
            .build()
            .unwrap()
    });
    backend.delay_ms.store(100, SeqCst);
    let (keep, keeper) = strand_a_create(&pool);
    std::thread::sleep(Duration::from_millis(100));
    let r = rt.block_on(async { pool.acquire().timeout(Duration::from_secs(2)).await });
    let stats = pool.stats();
    drop(keep);
    keeper.join().unwrap();
    assert!(r.is_ok(), "{:?}; {stats:?}", r.map(drop));
}

#[test]
fn a_stranded_half_open_trial_lets_the_next_one_through() {
    let backend = Arc::new(Backend::default());
    let rt = common::runtime(true);
    let pool = rt.block_on(async {
        pool(&backend)
            .max_size(2)
            .create_timeout(Duration::from_millis(200))
            .circuit_breaker(1, Duration::from_millis(30))
            .build()
            .unwrap()
    });
    backend.fail.store(true, SeqCst);
    assert!(matches!(rt.block_on(pool.get()), Err(PoolError::Create(_))));
    backend.fail.store(false, SeqCst);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(pool.circuit_state(), CircuitState::HalfOpen);
    backend.delay_ms.store(100, SeqCst);
    let (keep, keeper) = strand_a_create(&pool);
    // The stranded trial times out (200 ms, then the breaker's 30 ms cool-down): the
    // next caller makes the next trial, whose success closes the breaker.
    let mut served = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(50));
        match rt.block_on(async { pool.acquire().timeout(Duration::from_millis(500)).await }) {
            Ok(g) => {
                served = Some(g);
                break;
            }
            Err(PoolError::CircuitOpen { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let state = pool.circuit_state();
    drop(keep);
    keeper.join().unwrap();
    assert!(
        served.is_some(),
        "still refused after 2 s; breaker {state:?}"
    );
    assert_eq!(state, CircuitState::Closed);
}
