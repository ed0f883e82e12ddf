//! The objects an acquisition discards (dropped aside, `Shared::destroy_aside`):
//! the drop must neither depend on a runtime's blocking pool having a free thread (a
//! blocking caller may be that thread) nor fall back onto the caller when the runtime shut
//! down; a panicking `Drop` there costs nothing; live objects never exceed the cap under
//! lifetime churn, partitions included; the counters add up once it is quiet.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{Factory, PartitionedPool, Pool, PoolError, Poolable};

use crate::common;

/// What a caller's deadline may be overrun by on a loaded machine.
pub(super) const MARGIN: Duration = Duration::from_millis(900);

#[derive(Default)]
pub(super) struct Census {
    pub(super) live: AtomicUsize,
    pub(super) max_live: AtomicUsize,
    pub(super) made: AtomicUsize,
    /// Drops begun.
    pub(super) dropping: AtomicUsize,
    pub(super) dropped: AtomicUsize,
    /// Drops that found no tokio runtime (maintenance's aside).
    pub(super) outside_a_runtime: AtomicUsize,
    /// Drops on the pool's own runtime's threads.
    pub(super) on_the_pools_runtime: AtomicUsize,
    /// How many of the next `validate` calls reject.
    pub(super) rejects: AtomicUsize,
    /// Each `Drop` sleeps this many ms.
    pub(super) drop_ms: AtomicUsize,
    /// Each `Drop` panics (after counting itself gone).
    pub(super) panic_in_drop: AtomicBool,
    /// Each `Drop` spawns a task on the current runtime; how many ran.
    pub(super) spawned_ran: Arc<AtomicUsize>,
}

/// An object whose `Drop` reports where it ran and may be slow or panic.
pub(super) struct Conn(Arc<Census>);

impl Poolable for Conn {}

impl Drop for Conn {
    fn drop(&mut self) {
        let c = &self.0;
        c.dropping.fetch_add(1, Ordering::SeqCst);
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let ran = c.spawned_ran.clone();
                drop(h.spawn(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                }));
            }
            // Maintenance destroys where it runs, by design: not a discard.
            Err(_) if std::thread::current().name() == Some("riptide-pool-upkeep") => {}
            Err(_) => {
                c.outside_a_runtime.fetch_add(1, Ordering::SeqCst);
            }
        }
        if std::thread::current().name() == Some("riptide-pool-create") {
            c.on_the_pools_runtime.fetch_add(1, Ordering::SeqCst);
        }
        let ms = c.drop_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }
        c.live.fetch_sub(1, Ordering::SeqCst);
        c.dropped.fetch_add(1, Ordering::SeqCst);
        if c.panic_in_drop.load(Ordering::SeqCst) {
            panic!("a Drop that panics");
        }
    }
}

/// Makes `Conn`s; `validate` rejects while `Census::rejects` lasts.
#[derive(Clone)]
pub(super) struct Connect(pub(super) Arc<Census>);

impl Factory<Conn> for Connect {
    type Error = std::io::Error;
    async fn create(&self) -> Result<Conn, std::io::Error> {
        let live = self.0.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max_live.fetch_max(live, Ordering::SeqCst);
        self.0.made.fetch_add(1, Ordering::SeqCst);
        Ok(Conn(self.0.clone()))
    }
    async fn validate(&self, _obj: &mut Conn) -> bool {
        // Takes one reject if any is left.
        self.0
            .rejects
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
    }
}

/// A census whose objects each take `drop_ms` to drop.
pub(super) fn census(drop_ms: usize) -> Arc<Census> {
    let c = Census::default();
    c.drop_ms.store(drop_ms, Ordering::SeqCst);
    Arc::new(c)
}

/// A partitioned pool of `Conn`s: `max_size` in all, `per_key` for each key.
pub(super) fn partitioned(
    c: &Arc<Census>,
    max_size: usize,
    per_key: usize,
) -> riptide_pool::PartitionedPool<u8, Conn> {
    let factory_census = c.clone();
    riptide_pool::PartitionedPool::<u8, Conn>::builder(move |_key: u8| {
        let f = Connect(factory_census.clone());
        async move { f.create().await }
    })
    .max_size(max_size)
    .partition_max_size(per_key)
    .build()
    .unwrap()
}

/// A pool of `Conn`s that validates every reuse.
pub(super) fn pool(c: &Arc<Census>, max_size: usize) -> Pool<Conn> {
    Pool::builder(Connect(c.clone()))
        .max_size(max_size)
        .validation_interval(Duration::ZERO)
        .build()
        .unwrap()
}

/// Waits (on this thread, up to `limit`) until `cond` holds.
pub(super) fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not reached in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The README's advice for a blocking caller on a runtime is `spawn_blocking`. With the
/// runtime's blocking pool full (here one thread, the caller itself), the rejected
/// object's drop must not wait for a blocking thread the caller occupies: the capacity
/// it frees is the caller's only way to an object.
#[test]
fn a_blocking_caller_in_a_full_blocking_pool_gets_the_capacity_its_discard_frees() {
    let c = Arc::new(Census::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(async {
        let pool = pool(&c, 1);
        drop(pool.get().await.unwrap());
        pool
    });
    c.rejects.store(1, Ordering::SeqCst);
    let p = pool.clone();
    let (took, r) = rt
        .block_on(async {
            tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                let r = p
                    .acquire()
                    .timeout(Duration::from_secs(3))
                    .blocking()
                    .map(drop);
                (start.elapsed(), r)
            })
            .await
        })
        .unwrap();
    assert!(
        r.is_ok(),
        "the caller got {r:?} after {took:?}: its discard's drop waited for the blocking \
         thread the caller itself held"
    );
    assert_eq!(c.max_live.load(Ordering::SeqCst), 1);
    wait_for(Duration::from_secs(5), "quiet", || {
        pool.stats().size == 1 && c.live.load(Ordering::SeqCst) == 1
    });
    common::assert_consistent(&pool);
}

/// A blocking caller still running on a runtime that shut down (`shutdown_background`
/// leaves its blocking threads running): the runtime refuses the drop, and the drop must
/// not then run on the caller, holding it past its deadline.
#[test]
fn a_discard_on_a_runtime_that_shut_down_does_not_hold_the_caller_past_its_deadline() {
    let c = Arc::new(Census::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(async {
        let pool = pool(&c, 1);
        drop(pool.get().await.unwrap());
        pool
    });
    c.rejects.store(1, Ordering::SeqCst);
    c.drop_ms.store(2000, Ordering::SeqCst);
    let go = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let (p, g) = (pool.clone(), go.clone());
    rt.spawn_blocking(move || {
        while !g.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        let r = p
            .acquire()
            .timeout(Duration::from_millis(300))
            .blocking()
            .map(drop);
        let _ = tx.send((start.elapsed(), r));
    });
    rt.shutdown_background();
    go.store(true, Ordering::SeqCst);
    let (took, r) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the caller never returned");
    assert!(
        took < Duration::from_millis(300) + MARGIN,
        "a 300 ms acquisition took {took:?} ({r:?}): the discarded object's 2 s Drop ran on \
         the caller"
    );
    wait_for(Duration::from_secs(10), "the discard dropped", || {
        c.dropped.load(Ordering::SeqCst) >= 1
    });
}

/// A panicking `Drop` of a discarded object: the panic stays in the pool's log, the
/// capacity comes back, and the caller gets a fresh object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_objects_panicking_drop_costs_no_capacity() {
    let c = Arc::new(Census::default());
    let pool = pool(&c, 1);
    drop(pool.get().await.unwrap());
    c.panic_in_drop.store(true, Ordering::SeqCst);
    for round in 0..5 {
        c.rejects.store(1, Ordering::SeqCst);
        let g = pool
            .acquire()
            .timeout(Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        drop(g);
    }
    assert_eq!(c.max_live.load(Ordering::SeqCst), 1);
    assert_eq!(c.made.load(Ordering::SeqCst), 6);
    common::until(|| pool.stats().size == 1).await;
    common::assert_consistent(&pool);
    c.panic_in_drop.store(false, Ordering::SeqCst);
}

/// Every discard's `Drop` finds a runtime, from an async caller on either flavour and from
/// plain threads (no runtime at all: the pool's own), and the task it spawns runs.
#[test]
fn a_discarded_objects_drop_finds_a_runtime_from_every_kind_of_caller() {
    let c = Arc::new(Census::default());
    for multi in [false, true] {
        let rt = common::runtime(multi);
        rt.block_on(async {
            let pool = pool(&c, 1);
            drop(pool.get().await.unwrap());
            c.rejects.store(1, Ordering::SeqCst);
            drop(pool.get().await.unwrap());
            common::until(|| c.spawned_ran.load(Ordering::SeqCst) >= 1).await;
            c.spawned_ran.store(0, Ordering::SeqCst);
        });
    }
    // Built outside any runtime, used from a plain thread: get_blocking, then try_get with
    // an expired object.
    let pool = Pool::builder(Connect(c.clone()))
        .max_size(1)
        .validation_interval(Duration::ZERO)
        .build()
        .unwrap();
    drop(pool.get_blocking().unwrap());
    c.rejects.store(1, Ordering::SeqCst);
    common::within(Duration::from_secs(10), {
        let p = pool.clone();
        move || drop(p.get_blocking().unwrap())
    });
    wait_for(
        Duration::from_secs(5),
        "the task spawned by Drop ran",
        || c.spawned_ran.load(Ordering::SeqCst) >= 1,
    );
    assert_eq!(
        c.outside_a_runtime.load(Ordering::SeqCst),
        0,
        "a Drop ran outside any runtime (get_blocking)"
    );
    let expiring = Pool::builder(Connect(c.clone()))
        .max_size(2)
        .max_lifetime(Duration::from_millis(50))
        .build()
        .unwrap();
    let (a, b) = (
        expiring.get_blocking().unwrap(),
        expiring.get_blocking().unwrap(),
    );
    // Maintenance destroys one of them (its 1 s `Drop` keeps the pass busy), so
    // `try_get` finds the other.
    c.drop_ms.store(1000, Ordering::SeqCst);
    drop((a, b));
    let before = c.dropped.load(Ordering::SeqCst);
    let own_before = c.on_the_pools_runtime.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(400));
    let _ = expiring.try_get().map(drop);
    let _ = expiring.try_get().map(drop);
    let _ = expiring.try_get().map(drop);
    wait_for(
        Duration::from_secs(5),
        "the expired objects dropped",
        || c.dropped.load(Ordering::SeqCst) >= before + 2,
    );
    c.drop_ms.store(0, Ordering::SeqCst);
    assert!(
        c.on_the_pools_runtime.load(Ordering::SeqCst) > own_before,
        "try_get discarded nothing (maintenance got both): the check proved nothing"
    );
    assert_eq!(
        c.outside_a_runtime.load(Ordering::SeqCst),
        0,
        "a Drop ran outside any runtime (try_get)"
    );
}

/// Lifetimes so short that most claims find an expired object, many callers on a
/// multi-thread runtime: never more live objects than `max_size`, nobody hangs, and the
/// counters add up once it is quiet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifetime_churn_never_exceeds_the_cap_with_objects_alive() {
    let c = Arc::new(Census::default());
    c.drop_ms.store(3, Ordering::SeqCst);
    let pool = Pool::builder(Connect(c.clone()))
        .max_size(4)
        .max_lifetime(Duration::from_millis(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..40 {
                match p.acquire().timeout(Duration::from_secs(3)).await {
                    Ok(g) => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        drop(g);
                        ok += 1;
                    }
                    Err(PoolError::Timeout) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
            ok
        }));
    }
    let overall = tokio::time::timeout(Duration::from_secs(60), async {
        let mut ok = 0;
        for t in tasks {
            ok += t.await.unwrap();
        }
        ok
    })
    .await
    .expect("callers hung");
    assert!(overall > 0);
    assert!(
        c.max_live.load(Ordering::SeqCst) <= 4,
        "{} objects alive at once for max_size 4",
        c.max_live.load(Ordering::SeqCst)
    );
    common::assert_consistent(&pool);
    drop(pool);
    common::until(|| c.live.load(Ordering::SeqCst) == 0).await;
}

/// Partitions at the global cap, every claim finding an expired object, partitions removed
/// under it all: never more live objects than the global cap, and every unit comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_removal_racing_discards_keeps_the_global_cap_on_live_objects() {
    let c = Arc::new(Census::default());
    c.drop_ms.store(2, Ordering::SeqCst);
    let fc = c.clone();
    let pp = PartitionedPool::<u8, Conn>::builder(move |_key: u8| {
        let f = Connect(fc.clone());
        async move { f.create().await }
    })
    .max_size(3)
    .partition_max_size(2)
    .max_lifetime(Duration::from_millis(4))
    .build()
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let remover = common::remove_partitions_until(&pp, &stop);
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let pp = pp.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40u8 {
                let key = (t + i) % 4;
                match pp.acquire(&key).timeout(Duration::from_secs(3)).await {
                    Ok(g) => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        drop(g);
                    }
                    Err(PoolError::Timeout | PoolError::Closed) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await
    .expect("callers hung");
    stop.store(true, Ordering::SeqCst);
    remover.join().unwrap();
    assert!(
        c.max_live.load(Ordering::SeqCst) <= 3,
        "{} objects alive at once for a global cap of 3",
        c.max_live.load(Ordering::SeqCst)
    );
    // Every unit of the global cap comes back once the objects are gone.
    pp.drain(Duration::from_secs(10)).await.expect("drained");
    assert_eq!(c.live.load(Ordering::SeqCst), 0);
    assert_eq!(pp.global_size(), 0);
}

/// The last handle dropped while discards are still dropping: they finish, on memory that
/// is still there, and give their capacity back to nobody.
#[test]
fn the_last_handle_dropped_while_discards_drop() {
    let c = Arc::new(Census::default());
    let rt = common::runtime(true);
    rt.block_on(async {
        let pool = pool(&c, 3);
        drop(common::take_n(&pool, 3).await);
        c.drop_ms.store(300, Ordering::SeqCst);
        c.rejects.store(3, Ordering::SeqCst);
        let _ = pool.acquire().timeout(Duration::from_millis(50)).await;
        drop(pool);
    });
    drop(rt);
    wait_for(Duration::from_secs(10), "every object dropped", || {
        c.live.load(Ordering::SeqCst) == 0
    });
}

/// A current-thread runtime whose single blocking thread is busy, dropped right after
/// its caller discarded slow objects: each discard still runs once, and the pool's
/// capacity all comes back.
#[test]
fn a_runtime_dropped_with_discards_queued_still_frees_their_capacity() {
    let c = Arc::new(Census::default());
    let pool = Pool::builder(Connect(c.clone()))
        .max_size(3)
        .validation_interval(Duration::ZERO)
        .build()
        .unwrap();
    drop(
        (0..3)
            .map(|_| pool.get_blocking().unwrap())
            .collect::<Vec<_>>(),
    );
    c.drop_ms.store(100, Ordering::SeqCst);
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        drop(tokio::task::spawn_blocking(|| {
            std::thread::sleep(Duration::from_millis(300))
        }));
        c.rejects.store(3, Ordering::SeqCst);
        let _ = pool.acquire().timeout(Duration::from_millis(100)).await;
    });
    drop(rt);
    wait_for(Duration::from_secs(10), "every discard gone", || {
        c.dropped.load(Ordering::SeqCst) >= 3
    });
    c.drop_ms.store(0, Ordering::SeqCst);
    wait_for(Duration::from_secs(5), "capacity back", || {
        pool.stats().size <= pool.stats().idle + pool.stats().in_use
    });
    common::assert_consistent(&pool);
    let held: Vec<_> = (0..3).map(|_| pool.get_blocking().unwrap()).collect();
    assert!(c.max_live.load(Ordering::SeqCst) <= 3);
    drop(held);
}

/// Counts the pool's error events (a panicking `Drop` is one).
#[derive(Clone, Default)]
struct Errors(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Errors {
    fn on_event(&self, ev: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let m = ev.metadata();
        if m.target().starts_with("riptide_pool") && *m.level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A discarded object's panicking `Drop` is logged where the caller logs (a subscriber
/// scoped to the caller's thread, as the inline drop logged it), not lost on a thread
/// that has none.
#[test]
fn a_discarded_objects_drop_panic_reaches_the_callers_subscriber() {
    use tracing_subscriber::layer::SubscriberExt;
    let errors = Errors::default();
    let seen = errors.0.clone();
    let dispatch = common::capturing(tracing_subscriber::registry().with(errors));
    let c = Arc::new(Census::default());
    tracing::dispatcher::with_default(&dispatch, || {
        common::current_thread().block_on(async {
            let pool = pool(&c, 1);
            drop(pool.get().await.unwrap());
            c.panic_in_drop.store(true, Ordering::SeqCst);
            c.rejects.store(1, Ordering::SeqCst);
            drop(pool.get().await.unwrap());
            common::until(|| c.dropped.load(Ordering::SeqCst) == 1).await;
            common::until(|| pool.stats().size == 1).await;
            c.panic_in_drop.store(false, Ordering::SeqCst);
        });
    });
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "the panicking Drop of the discarded object was not logged to the caller's subscriber"
    );
}
