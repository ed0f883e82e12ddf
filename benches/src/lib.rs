//! Benchmark cases shared by the criterion benches (`benches/core.rs`) and the `compare`
//! binary. Every case takes a pool from [`peers`] and returns elapsed wall time (and,
//! where it matters, per-operation waits) for the caller to turn into figures.

pub mod fifo;
pub mod native;
pub mod peers;
pub mod scale;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peers::{AsyncPool, Get, SyncPool};
use riptide_pool::{Pool, Poolable, Priority};

pub use peers::{Res, ASYNC_POOLS, SYNC_POOLS};

/// A current-thread runtime (uncontended async cases).
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A multi-thread runtime with `workers` workers (contended cases).
pub fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Uncontended sync checkout + return, one thread.
pub fn sync_uncontended(pool: &SyncPool, iters: u64) -> Duration {
    let t = Instant::now();
    pool.cycles(iters);
    t.elapsed()
}

/// A floor for the sync case: what two locked instructions on one word cost here (a CAS
/// to claim, a CAS to release), the least a pool pays whose release must be an atomic
/// read-modify-write. No pool, no object, no bookkeeping.
pub fn floor_cas_cas(iters: u64) -> Duration {
    let word = std::sync::atomic::AtomicUsize::new(1);
    let t = Instant::now();
    for _ in 0..iters {
        let _ =
            std::hint::black_box(word.compare_exchange(1, 2, Ordering::Acquire, Ordering::Relaxed));
        let _ =
            std::hint::black_box(word.compare_exchange(2, 1, Ordering::Release, Ordering::Relaxed));
    }
    t.elapsed()
}

/// The design card's "one CAS + one release store" cycle, with no bookkeeping: the floor
/// under RipTide's cycle, whose release is such a store plus a compiler fence and a read
/// of the pool's state word (`docs/architecture.md`, "The release store").
pub fn floor_cas_store(iters: u64) -> Duration {
    let word = std::sync::atomic::AtomicUsize::new(1);
    let t = Instant::now();
    for _ in 0..iters {
        let _ =
            std::hint::black_box(word.compare_exchange(1, 2, Ordering::Acquire, Ordering::Relaxed));
        word.store(1, Ordering::Release);
    }
    t.elapsed()
}

/// Uncontended async `get().await` + drop on `rt` (a current-thread runtime).
pub fn async_uncontended(rt: &tokio::runtime::Runtime, pool: &AsyncPool, iters: u64) -> Duration {
    rt.block_on(async {
        with_async_pool!(pool, |p| {
            let t = Instant::now();
            for _ in 0..iters {
                let g = p.get_one().await;
                std::hint::black_box(&g);
            }
            t.elapsed()
        })
    })
}

/// `tasks` tasks share the pool on `rt`, each doing `per_task` checkouts held across one
/// `yield_now` (a short hold). Returns the total time and, if `record`, every wait.
pub fn contended(
    rt: &tokio::runtime::Runtime,
    pool: &AsyncPool,
    tasks: usize,
    per_task: u64,
    record: bool,
) -> (Duration, Vec<Duration>) {
    rt.block_on(async {
        let t = Instant::now();
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut waits = Vec::with_capacity(if record { per_task as usize } else { 0 });
                    with_async_pool!(&pool, |p| {
                        for _ in 0..per_task {
                            let t0 = record.then(Instant::now);
                            let g = p.get_one().await;
                            if let Some(t0) = t0 {
                                waits.push(t0.elapsed());
                            }
                            tokio::task::yield_now().await;
                            drop(g);
                        }
                    });
                    waits
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            all.extend(h.await.unwrap());
        }
        (t.elapsed(), all)
    })
}

/// `threads` OS threads share the pool, `per_thread` checkouts each.
pub fn sync_contended(pool: &SyncPool, threads: usize, per_thread: u64) -> Duration {
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| pool.cycles_shared(per_thread));
        }
    });
    t.elapsed()
}

/// The fail path: every object is held, and `iters` non-waiting checkouts find nothing.
/// `None` for pools without a non-waiting checkout.
pub fn try_get_empty(pool: &SyncPool, size: usize, iters: u64) -> Option<Duration> {
    let mut held = Vec::new();
    for _ in 0..size {
        // Hold everything: a second handle of the same kind keeps the guards alive.
        held.push(hold_one(pool));
    }
    let t = Instant::now();
    for _ in 0..iters {
        if pool.try_cycle()? {
            panic!("{}: found an object in an exhausted pool", pool.name());
        }
    }
    let d = t.elapsed();
    drop(held);
    Some(d)
}

/// Holds one object of `pool` until the returned box is dropped.
fn hold_one(pool: &SyncPool) -> Box<dyn std::any::Any> {
    match pool {
        SyncPool::Riptide(p) | SyncPool::RiptideNoDetection(p) => Box::new(p.try_get().unwrap()),
        SyncPool::RiptideClosures(p) => Box::new(p.try_get().unwrap()),
        SyncPool::R2d2(p) => Box::new(p.get().unwrap()),
        SyncPool::ObjectPool(p) => Box::new(p.clone().try_pull_owned().unwrap()),
        SyncPool::Opool(p) => Box::new(p.clone().try_get_rc().unwrap()),
        SyncPool::Lockfree(p) => Box::new(p.pull_owned()),
    }
}

/// deadpool's fail path (`timeout_get` with a zero wait) on an exhausted pool.
pub fn deadpool_try_get_empty(rt: &tokio::runtime::Runtime, size: usize, iters: u64) -> Duration {
    rt.block_on(async {
        let AsyncPool::Deadpool(p) = AsyncPool::build("deadpool", size).await else {
            unreachable!()
        };
        let held: Vec<_> = futures_n(&p, size).await;
        let to = deadpool::managed::Timeouts {
            wait: Some(Duration::ZERO),
            ..Default::default()
        };
        let t = Instant::now();
        for _ in 0..iters {
            let e = p.timeout_get(&to).await.err().expect("exhausted");
            assert!(
                matches!(e, deadpool::managed::PoolError::Timeout(_)),
                "{e:?}"
            );
        }
        let d = t.elapsed();
        drop(held);
        d
    })
}

async fn futures_n(
    p: &deadpool::managed::Pool<peers::DeadpoolManager>,
    n: usize,
) -> Vec<deadpool::managed::Object<peers::DeadpoolManager>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(p.get().await.unwrap());
    }
    v
}

/// Priority mix (RipTide only: no peer has priorities): `tasks` tasks at the four
/// priorities share `size` objects; returns every wait, per priority (Low..Critical).
pub fn priority_mix(
    rt: &tokio::runtime::Runtime,
    size: usize,
    tasks: usize,
    per_task: u64,
) -> [Vec<Duration>; 4] {
    rt.block_on(async {
        let pool = Pool::builder(|| async { Ok::<_, std::convert::Infallible>(Res(0)) })
            .max_size(size)
            .build()
            .unwrap();
        pool.warm_up(size).await.unwrap();
        let prios = [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ];
        let hs: Vec<_> = (0..tasks)
            .map(|i| {
                let pool = pool.clone();
                let prio = prios[i % 4];
                tokio::spawn(async move {
                    let mut waits = Vec::new();
                    for _ in 0..per_task {
                        let t0 = Instant::now();
                        let g = pool.acquire().priority(prio).await.unwrap();
                        waits.push(t0.elapsed());
                        tokio::task::yield_now().await;
                        drop(g);
                    }
                    (prio, waits)
                })
            })
            .collect();
        let mut out: [Vec<Duration>; 4] = Default::default();
        for h in hs {
            let (p, w) = h.await.unwrap();
            out[p as usize].extend(w);
        }
        out
    })
}

/// An expensive resource: a compiled 4-pattern `RegexSet` (~0.4 ms to build).
pub struct Matcher(pub regex::RegexSet);
impl Poolable for Matcher {}

const PATTERNS: [&str; 4] = [
    r"\b(19|20)\d{2}\b",
    r"[\w.+-]+@[\w-]+\.[\w.]+",
    r"https?://\S+",
    r"\$\d+(\.\d\d)?",
];
const HAYSTACK: &str =
    "Contact sales@example.com before 2024 or see https://example.com/pricing for $19.99 plans.";

/// Builds the expensive resource.
pub fn new_matcher() -> Matcher {
    Matcher(regex::RegexSet::new(PATTERNS).unwrap())
}

/// Pooled: `iters` matches with a compiled set checked out of a RipTide pool.
pub fn regex_pooled(pool: &Pool<Matcher>, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let m = pool.try_get().or_else(|_| pool.get_blocking()).unwrap();
        std::hint::black_box(m.0.matches(HAYSTACK).matched_any());
    }
    t.elapsed()
}

/// Unpooled: `iters` matches, compiling the set each time.
pub fn regex_unpooled(iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let m = new_matcher();
        std::hint::black_box(m.0.matches(HAYSTACK).matched_any());
    }
    t.elapsed()
}

/// What a cancellation storm left behind.
#[derive(Debug, Clone, Copy, Default)]
pub struct StormReport {
    /// Checkouts completed during the storm.
    pub ops: u64,
    /// Tasks aborted mid-flight.
    pub aborted: u64,
    /// Tasks still running 2 s after the stop signal (they are aborted then).
    pub hangs: u64,
    /// Objects that could not be checked out again afterwards (lost by the pool).
    pub lost: u64,
}

/// A cancellation storm: 64 tasks on `size` objects acquire with random short timeouts
/// (50–500 µs) and hold briefly, while random tasks are aborted and replaced every
/// 200 µs, for `dur`. Afterwards every object must be obtainable again.
pub fn cancellation_storm(
    rt: &tokio::runtime::Runtime,
    pool: &AsyncPool,
    size: usize,
    dur: Duration,
) -> StormReport {
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let spawn = |seed: u64| {
            let (pool, stop, ops) = (pool.clone(), stop.clone(), ops.clone());
            tokio::spawn(async move {
                let mut x = seed | 1;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let t = Duration::from_micros(50 + x % 450);
                    match pool.checkout(Some(t)).await {
                        Some(g) => {
                            ops.fetch_add(1, Ordering::Relaxed);
                            if x % 3 == 0 {
                                tokio::task::yield_now().await;
                            }
                            drop(g);
                        }
                        // A pool that fails without waiting must not starve the runtime.
                        None => tokio::task::yield_now().await,
                    }
                }
            })
        };
        let mut tasks: Vec<_> = (0..64).map(|i| spawn(i * 7919 + 1)).collect();
        let end = Instant::now() + dur;
        let mut aborted = 0;
        let mut k = 1u64;
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_micros(200)).await;
            k = k
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (k >> 33) as usize % tasks.len();
            tasks[i].abort();
            tasks[i] = spawn(k);
            aborted += 1;
        }
        stop.store(true, Ordering::Relaxed);
        // One deadline for all: tasks still running 2 s after the stop signal are hung.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let mut hangs = 0;
        for t in tasks {
            if tokio::time::timeout_at(deadline, t).await.is_err() {
                hangs += 1;
            }
        }
        let mut held = Vec::new();
        for _ in 0..size {
            if let Some(g) = pool.checkout(Some(Duration::from_secs(1))).await {
                held.push(g);
            }
        }
        StormReport {
            ops: ops.load(Ordering::Relaxed),
            aborted,
            hangs,
            lost: (size - held.len()) as u64,
        }
    })
}

/// Runs `tasks` tasks, each the future `task()` makes, on `rt`; returns the wall time until
/// all have finished. The floors of the contended case share it.
fn time_tasks<F, Fut>(rt: &tokio::runtime::Runtime, tasks: usize, task: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt.block_on(async {
        let t = Instant::now();
        let hs: Vec<_> = (0..tasks).map(|_| tokio::spawn(task())).collect();
        for h in hs {
            h.await.unwrap();
        }
        t.elapsed()
    })
}

/// The scheduling floor of the contended case: the same tasks and runtime, no pool; each
/// operation is `yields` `yield_now`s: 1 is the hold alone (the least any pool pays when
/// nobody has to wait), 2 adds one to stand for a wait's park and wake-up.
pub fn contended_no_pool(
    rt: &tokio::runtime::Runtime,
    tasks: usize,
    per_task: u64,
    yields: usize,
) -> Duration {
    time_tasks(rt, tasks, || async move {
        for _ in 0..per_task {
            for _ in 0..yields {
                tokio::task::yield_now().await;
            }
        }
    })
}

/// A second floor: a bare `tokio::sync::Semaphore` (the fair FIFO primitive deadpool
/// waits on) — acquire, hold across a yield, release; no objects.
pub fn contended_semaphore_only(
    rt: &tokio::runtime::Runtime,
    permits: usize,
    tasks: usize,
    per_task: u64,
) -> Duration {
    let sem = Arc::new(tokio::sync::Semaphore::new(permits));
    time_tasks(rt, tasks, || {
        let sem = sem.clone();
        async move {
            for _ in 0..per_task {
                let p = sem.acquire().await.unwrap();
                tokio::task::yield_now().await;
                drop(p);
            }
        }
    })
}

/// A third floor: the plainest fair hand-off, [`fifo::FifoSemaphore`] (one mutex, a permit
/// count and a FIFO of waiter cells; no objects, priorities, timeouts or statistics) —
/// acquire, hold across a yield, release. What a fair pool's waiting path costs at the
/// least when written with a lock.
pub fn contended_fifo_only(
    rt: &tokio::runtime::Runtime,
    permits: usize,
    tasks: usize,
    per_task: u64,
) -> Duration {
    let sem = Arc::new(fifo::FifoSemaphore::new(permits));
    time_tasks(rt, tasks, || {
        let sem = sem.clone();
        async move {
            for _ in 0..per_task {
                sem.acquire().await;
                tokio::task::yield_now().await;
                sem.release();
            }
        }
    })
}

/// Median, min and max of a sample (sorted in place).
pub fn summarize(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Quantile `q` of durations (sorted in place).
pub fn quantile(v: &mut [Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}
