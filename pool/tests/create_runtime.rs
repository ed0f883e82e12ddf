//! Creates a current-thread build runtime cannot be trusted to run (started outside it,
//! or dropped unstarted as it shuts down) run on the pool's own runtime: a factory that
//! awaits tokio's timers or sockets works there, and a build runtime that is idle or
//! shutting down neither stalls it nor counts against the factory.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{builder, current_thread, get_on_a_thread, runtime, within, Census};
use riptide_pool::{CircuitState, PartitionedPool, Pool, PoolError};

/// A pool built in a runtime of flavor `multi`, with a factory that sleeps 500 ms on
/// tokio's timer and a breaker that opens on the first failure. A blocking caller on a
/// plain thread starts a create; the runtime is shut down 100 ms into that create.
/// Returns the caller's result, the breaker state and the health's error rate.
fn runtime_dies_under_a_create(multi: bool) -> (Result<(), PoolError>, CircuitState, f64) {
    let c = Arc::new(Census::default());
    let rt = runtime(multi);
    let pool: Pool<common::Obj> = rt.block_on(async {
        builder(&c, Duration::from_millis(500))
            .max_size(2)
            .create_timeout(Duration::from_secs(3))
            .circuit_breaker(1, Duration::from_secs(60))
            .build()
            .unwrap()
    });
    let p = pool.clone();
    let caller = std::thread::spawn(move || {
        p.acquire()
            .timeout(Duration::from_secs(5))
            .blocking()
            .map(drop)
    });
    // The owner drives its runtime while the create sleeps, then shuts it down.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    drop(rt);
    let r = caller.join().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    (r, pool.circuit_state(), pool.health().error_rate)
}

/// A multi-thread build runtime shutting down under a create: the breaker and the error
/// rate do not count it.
#[test]
fn multi_thread_build_runtime_dying_under_a_create_is_not_counted() {
    let (_, state, rate) = within(Duration::from_secs(20), || {
        runtime_dies_under_a_create(true)
    });
    assert_eq!(state, CircuitState::Closed);
    assert_eq!(rate, 0.0);
}

/// The same with a current-thread build runtime: the blocking caller's create runs on the
/// pool's own runtime, so the build runtime's shutdown does not touch it: the caller gets
/// its object and nothing counts as a failure.
#[test]
fn current_thread_build_runtime_dying_under_a_create_is_not_counted() {
    let (r, state, rate) = within(Duration::from_secs(20), || {
        runtime_dies_under_a_create(false)
    });
    assert!(r.is_ok(), "{r:?}, breaker {state:?}, error rate {rate}");
    assert_eq!(
        state,
        CircuitState::Closed,
        "the runtime's shutdown opened the breaker"
    );
    assert_eq!(
        rate, 0.0,
        "the runtime's shutdown counts as a failed create"
    );
}

/// Blocking callers on other threads while the current-thread build runtime is idle (kept,
/// never driven again), with a factory that awaits tokio's timer (as a tokio connection
/// awaits its reactor): the create runs where a worker drives that timer.
#[test]
fn blocking_callers_with_a_tokio_factory_and_an_idle_current_thread_build_runtime() {
    let (r, state) = within(Duration::from_secs(20), || {
        let c = Arc::new(Census::default());
        let rt = current_thread();
        let pool: Pool<common::Obj> = rt.block_on(async {
            builder(&c, Duration::from_millis(5))
                .max_size(2)
                .create_timeout(Duration::from_secs(1))
                .circuit_breaker(1, Duration::from_secs(60))
                .build()
                .unwrap()
        });
        let r = get_on_a_thread(&pool, Duration::from_secs(3));
        let state = pool.circuit_state();
        drop(rt);
        (r, state)
    });
    assert!(r.is_ok(), "a 5 ms create never finished: {r:?}");
    assert_eq!(state, CircuitState::Closed);
}

/// A pool whose factory needs a driven tokio runtime: it awaits tokio's timer and opens
/// a TCP listener on its reactor (as a database driver would), with a breaker that opens
/// on the first failure.
fn tokio_factory_pool() -> Pool<tokio::net::TcpListener> {
    Pool::custom(|| async {
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::net::TcpListener::bind("127.0.0.1:0").await
    })
    .max_size(4)
    .create_timeout(Duration::from_secs(2))
    .circuit_breaker(1, Duration::from_secs(60))
    .build()
    .unwrap()
}

/// Every place a create can start from, for a pool built in either flavour of runtime
/// that is then kept but never driven again: the factory's timer and socket work, and
/// nothing counts as a failure. The object a blocking caller got keeps working (it
/// accepts a connection): it was made where a worker drives its reactor. Each create is
/// new (every object stays out).
#[test]
fn a_tokio_factory_works_wherever_its_create_starts() {
    within(Duration::from_secs(60), || {
        for multi in [false, true] {
            let setup = runtime(multi);
            let pool = setup.block_on(async { tokio_factory_pool() });
            // A blocking caller on a plain thread.
            let p = pool.clone();
            let blocking = std::thread::spawn(move || p.acquire().blocking())
                .join()
                .unwrap()
                .expect("a blocking caller");
            // An async caller on another runtime of each flavour (its object is bound to
            // that runtime's reactor, so the runtime is kept).
            let mut kept = Vec::new();
            for other in [false, true] {
                let rt = runtime(other);
                let g = rt.block_on(pool.get()).expect("an async caller");
                kept.push((rt, g));
            }
            // `warm_up` from a plain thread, blocking on it by hand (no runtime current).
            let p = pool.clone();
            std::thread::spawn(move || block_by_hand(p.warm_up(4)))
                .join()
                .unwrap()
                .expect("warm_up");
            let s = pool.stats();
            assert_eq!((s.size, s.created), (4, 4), "flavour multi={multi}: {s:?}");
            assert_eq!(pool.circuit_state(), CircuitState::Closed);
            assert_eq!(pool.health().error_rate, 0.0);
            let addr = blocking.local_addr().unwrap();
            runtime(true).block_on(async {
                let (_client, accepted) =
                    tokio::join!(tokio::net::TcpStream::connect(addr), blocking.accept());
                accepted.expect("the listener made for the blocking caller accepts");
            });
            drop(blocking);
            drop(kept);
            drop(setup);
        }
    });
}

/// A pool of TCP listeners whose factory and `validate` both need a driven tokio runtime
/// (its timer and its reactor), validating every checkout, with a breaker that opens on
/// the first failure.
struct TokioFactory;
impl riptide_pool::Factory<tokio::net::TcpListener> for TokioFactory {
    type Error = std::io::Error;
    async fn create(&self) -> Result<tokio::net::TcpListener, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::net::TcpListener::bind("127.0.0.1:0").await
    }
    async fn validate(&self, l: &mut tokio::net::TcpListener) -> bool {
        tokio::time::sleep(Duration::from_millis(1)).await;
        // A connection to it completes only on a driven reactor.
        let addr = l.local_addr().unwrap();
        tokio::net::TcpStream::connect(addr).await.is_ok()
    }
}

/// The same factory and checkout step with no runtime left to run them in: the pool was
/// built in a runtime (of either flavour) that has since been dropped, or outside any
/// runtime. Creates and checkout steps started with no runtime current (by blocking
/// callers on plain threads, and by acquisitions driven by hand, as a non-tokio executor
/// would) still work: they run where a worker drives tokio's timer and reactor (the
/// pool's own runtime), so nothing fails, nothing counts against the factory, and no idle
/// object is thrown away for a `validate` that could not run.
#[test]
fn a_tokio_factory_and_checkout_step_work_with_no_runtime_left() {
    within(Duration::from_secs(60), || {
        for origin in ["multi-thread, dropped", "current-thread, dropped", "none"] {
            let build = || {
                Pool::custom(TokioFactory)
                    .max_size(3)
                    .validation_interval(Duration::ZERO)
                    .acquire_timeout(Duration::from_secs(5))
                    .create_timeout(Duration::from_secs(2))
                    .circuit_breaker(1, Duration::from_secs(60))
                    .build()
                    .unwrap()
            };
            let pool = match origin {
                "none" => build(),
                o => {
                    let rt = runtime(o.starts_with("multi"));
                    let pool = rt.block_on(async { build() });
                    drop(rt);
                    pool
                }
            };
            // Three creates, every object held: one driven by hand, two from a blocking
            // caller.
            let p = pool.clone();
            let by_hand = std::thread::spawn(move || block_by_hand(p.get()))
                .join()
                .unwrap()
                .unwrap_or_else(|e| panic!("{origin}: a create driven by hand: {e}"));
            let p = pool.clone();
            let held = std::thread::spawn(move || {
                let a = p.acquire().blocking()?;
                let b = p.acquire().blocking()?;
                Ok::<_, PoolError>((a.local_addr().unwrap(), b.local_addr().unwrap()))
            })
            .join()
            .unwrap();
            assert!(held.is_ok(), "{origin}: blocking creates: {held:?}");
            drop(by_hand);
            // Every later checkout runs `validate`, blocking or driven by hand.
            for _ in 0..4 {
                let p = pool.clone();
                std::thread::spawn(move || p.acquire().blocking().map(drop))
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{origin}: a blocking checkout: {e}"));
                let p = pool.clone();
                std::thread::spawn(move || block_by_hand(p.get()).map(drop))
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("{origin}: a checkout driven by hand: {e}"));
            }
            let s = pool.stats();
            assert_eq!((s.created, s.destroyed), (3, 0), "{origin}: {s:?}");
            assert_eq!(pool.circuit_state(), CircuitState::Closed, "{origin}");
            assert_eq!(pool.health().error_rate, 0.0, "{origin}");
        }
    });
}

/// Drives `fut` on this thread with no runtime (as a non-tokio executor would).
fn block_by_hand<F: std::future::Future>(fut: F) -> F::Output {
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

struct Unpark(std::thread::Thread);
impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A partitioned pool whose factory sleeps on tokio's timer, built in a multi-thread
/// runtime of its own, with `min_idle` 1 per partition (`min_idle` given).
fn partitioned_in(rt: &tokio::runtime::Runtime, min_idle: usize) -> PartitionedPool<u32, u32> {
    rt.block_on(async {
        PartitionedPool::custom(|key: u32| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, std::io::Error>(key)
        })
        .partition_max_size(3)
        .max_size(6)
        .configure(move |b| b.min_idle(min_idle))
        .build()
        .unwrap()
    })
}

fn blocking_get(pp: &PartitionedPool<u32, u32>, key: u32) -> Result<u32, PoolError> {
    let p = pp.clone();
    std::thread::spawn(move || {
        p.acquire(&key)
            .timeout(Duration::from_secs(2))
            .blocking()
            .map(|g| *g)
    })
    .join()
    .unwrap()
}

/// Each partition is a pool built when its key is first used, on whatever thread that
/// is: it is built in the runtime the partitioned pool was built in (while that lives),
/// so a tokio factory works for a key first used by a blocking caller on a plain thread,
/// or first used on a runtime that is gone since, and `min_idle` fills such a partition.
#[test]
fn partitions_are_built_in_the_runtime_their_pool_was_built_in() {
    let a = runtime(true);
    // A key first used on a plain thread.
    let pp = partitioned_in(&a, 0);
    assert_eq!(blocking_get(&pp, 7).unwrap(), 7);
    // A key first used on a short-lived runtime, then on a plain thread.
    {
        let b = runtime(true);
        let g = b.block_on(pp.get(&9)).unwrap();
        riptide_pool::Pooled::discard(g);
        drop(b);
    }
    assert_eq!(blocking_get(&pp, 9).unwrap(), 9);
    // `min_idle` tops up a partition first used on a plain thread.
    let pp = partitioned_in(&a, 1);
    assert_eq!(blocking_get(&pp, 3).unwrap(), 3);
    a.block_on(common::until(|| pp.stats(&3).is_some_and(|s| s.idle >= 1)));
    assert_eq!(pp.circuit_state(), CircuitState::Closed);
    drop(a);
}

/// The runtime the partitioned pool was built in is gone: partitions are built in the
/// runtime current where their key is first used, as before.
#[test]
fn partitions_outlive_the_runtime_their_pool_was_built_in() {
    let pp = partitioned_in(&runtime(true), 0);
    let b = runtime(true);
    assert_eq!(
        b.block_on(async { pp.get(&4).await.map(|g| *g) }).unwrap(),
        4
    );
    assert_eq!(blocking_get(&pp, 4).unwrap(), 4);
}
