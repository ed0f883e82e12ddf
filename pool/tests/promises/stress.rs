//! A stress run with what `tests/stress.rs` leaves out — max_uses, a validate that
//! yields and fails, short idle_timeout / max_lifetime with min_idle, retain / clear_idle /
//! warm_up racing the callers — at a fixed max_size, checking that the object limit is
//! never exceeded, no object is handed to two callers, no deadline is overrun, and every
//! counter adds up at the end.
use crate::common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{until, Census, Obj};
use rand::{Rng, SeedableRng};
use riptide_pool::{Factory, Pool, PoolError, Pooled, Priority};

struct F {
    census: Arc<Census>,
}

impl Factory<Obj> for F {
    type Error = std::io::Error;
    async fn create(&self) -> Result<Obj, std::io::Error> {
        let d = rand::rng().random_range(0..400);
        if d > 300 {
            tokio::time::sleep(Duration::from_micros(d)).await;
        }
        if rand::rng().random_bool(0.02) {
            return Err(std::io::Error::other("flaky"));
        }
        Ok(common::make(&self.census))
    }
    async fn validate(&self, _obj: &mut Obj) -> bool {
        let x: u32 = rand::rng().random_range(0..100);
        if x < 30 {
            tokio::task::yield_now().await;
        }
        if x < 3 {
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
        x >= 8
    }
}

const MAX: usize = 5;
const MARGIN: Duration = Duration::from_millis(750);

async fn worker(
    pool: Pool<Obj>,
    holders: Arc<Mutex<HashSet<usize>>>,
    stop: Arc<AtomicBool>,
    seed: u64,
    ops: Arc<AtomicUsize>,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let prio = [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ][rng.random_range(0..4)];
        let timeout = Duration::from_micros(rng.random_range(0..4_000));
        let t0 = Instant::now();
        let r = if rng.random_bool(0.15) {
            pool.try_get()
        } else {
            pool.acquire().priority(prio).timeout(timeout).await
        };
        let took = t0.elapsed();
        assert!(
            took <= timeout + MARGIN,
            "a {timeout:?} acquisition took {took:?}"
        );
        match r {
            Ok(mut g) => {
                assert!(
                    holders.lock().unwrap().insert(g.id),
                    "object {} handed twice",
                    g.id
                );
                if rng.random_bool(0.5) {
                    tokio::task::yield_now().await;
                }
                if rng.random_bool(0.05) {
                    tokio::time::sleep(Duration::from_micros(rng.random_range(10..800))).await;
                }
                holders.lock().unwrap().remove(&g.id);
                match rng.random_range(0..40) {
                    0 => Pooled::discard(g),
                    1 => g.healthy = false,
                    _ => drop(g),
                }
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(
                PoolError::Timeout
                | PoolError::Exhausted
                | PoolError::Create(_)
                | PoolError::CircuitOpen { .. },
            ) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
}

async fn run(seed: u64) {
    let census = Arc::new(Census::default());
    let pool = Pool::builder(F {
        census: census.clone(),
    })
    .max_size(MAX)
    .min_idle(2)
    .max_uses(3)
    .validation_interval(Duration::ZERO)
    .idle_timeout(Duration::from_millis(3))
    .max_lifetime(Duration::from_millis(25))
    .starvation_threshold(Duration::from_millis(2))
    .no_circuit_breaker()
    .build()
    .unwrap();
    let holders = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicUsize::new(0));
    let mut tasks: Vec<_> = (0..24)
        .map(|i| {
            tokio::spawn(worker(
                pool.clone(),
                holders.clone(),
                stop.clone(),
                seed * 1000 + i,
                ops.clone(),
            ))
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..10))).await;
        assert!(
            census.max_live.load(Ordering::SeqCst) <= MAX,
            "more than {MAX} objects alive at once"
        );
        match rng.random_range(0..6) {
            0 => {
                let k = rng.random_range(0..tasks.len());
                tasks[k].abort();
                tasks[k] = tokio::spawn(worker(
                    pool.clone(),
                    holders.clone(),
                    stop.clone(),
                    rng.random(),
                    ops.clone(),
                ));
            }
            1 => {
                pool.retain(|o, _| o.id % 2 == 0);
            }
            2 => {
                pool.clear_idle();
            }
            3 => {
                let p = pool.clone();
                let n = rng.random_range(1..=MAX);
                let h = tokio::spawn(async move {
                    let _ = p.warm_up(n).await;
                });
                if rng.random_bool(0.5) {
                    tokio::task::yield_now().await;
                    h.abort();
                }
            }
            _ => {}
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    assert!(
        ops.load(Ordering::Relaxed) > 100,
        "ran: {}",
        ops.load(Ordering::Relaxed)
    );
    until(|| {
        let s = pool.stats();
        s.in_use == 0 && s.size == s.idle
    })
    .await;
    let s = pool.stats();
    assert_eq!(s.pending_acquisitions, 0, "{s:?}");
    assert_eq!(s.created - s.destroyed, s.size as u64, "{s:?}");
    assert_eq!(census.live.load(Ordering::SeqCst), s.size, "{s:?}");
    assert!(
        census.max_live.load(Ordering::SeqCst) <= MAX,
        "more than {MAX} objects alive at once: {}",
        census.max_live.load(Ordering::SeqCst)
    );
    drop(pool);
    until(|| census.live.load(Ordering::SeqCst) == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn stress_lifecycle_knobs_and_idle_maintenance() {
    for seed in 1..=3 {
        run(seed).await;
    }
}
