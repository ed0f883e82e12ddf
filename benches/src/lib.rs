//! Benchmark cases shared by the criterion benches and the `compare` binary.
//!
//! Every pool holds a trivial resource (a `u64`), so what is measured is the pool. Each
//! case function runs `iters` operations and returns the elapsed wall time; callers turn
//! that into ns/op.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{Pool, Poolable};

/// The pooled resource for RipTide: a `u64` with nothing to reset.
#[derive(Debug, Default)]
pub struct Res(pub u64);
impl Poolable for Res {}

/// A RipTide pool of `n` trivial objects, all created up front.
pub fn riptide_pool(n: usize) -> Pool<Res> {
    let pool = Pool::builder(|| async { Ok::<_, Infallible>(Res(0)) })
        .max_size(n)
        .build()
        .expect("valid config");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pool.warm_up(n)).expect("warm up");
    pool
}

/// deadpool's manager for a trivial resource.
pub struct DeadpoolManager;
impl deadpool::managed::Manager for DeadpoolManager {
    type Type = u64;
    type Error = Infallible;
    async fn create(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn recycle(
        &self,
        _: &mut u64,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// A deadpool of `n` trivial objects, all created up front.
pub fn deadpool_pool(n: usize) -> deadpool::managed::Pool<DeadpoolManager> {
    let pool = deadpool::managed::Pool::builder(DeadpoolManager)
        .max_size(n)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let held: Vec<_> = futures_all(&pool, n).await;
        drop(held);
    });
    pool
}

async fn futures_all(
    pool: &deadpool::managed::Pool<DeadpoolManager>,
    n: usize,
) -> Vec<deadpool::managed::Object<DeadpoolManager>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(pool.get().await.unwrap());
    }
    v
}

/// Uncontended sync checkout + return.
pub mod sync_uncontended {
    use super::*;

    /// RipTide `try_get` + drop.
    pub fn riptide(pool: &Pool<Res>, iters: u64) -> Duration {
        let t = Instant::now();
        for _ in 0..iters {
            let g = pool.try_get().unwrap();
            std::hint::black_box(&*g);
        }
        t.elapsed()
    }

    /// lockfree-object-pool `LinearObjectPool::pull` + drop.
    pub fn lockfree_object_pool(
        pool: &lockfree_object_pool::LinearObjectPool<u64>,
        iters: u64,
    ) -> Duration {
        let t = Instant::now();
        for _ in 0..iters {
            let g = pool.pull();
            std::hint::black_box(&*g);
        }
        t.elapsed()
    }
}

/// Uncontended async checkout + return on a current-thread runtime.
pub mod async_uncontended {
    use super::*;

    /// RipTide `get().await` + drop.
    pub fn riptide(rt: &tokio::runtime::Runtime, pool: &Pool<Res>, iters: u64) -> Duration {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                let g = pool.get().await.unwrap();
                std::hint::black_box(&*g);
            }
            t.elapsed()
        })
    }

    /// deadpool `get().await` + drop.
    pub fn deadpool(
        rt: &tokio::runtime::Runtime,
        pool: &deadpool::managed::Pool<DeadpoolManager>,
        iters: u64,
    ) -> Duration {
        rt.block_on(async {
            let t = Instant::now();
            for _ in 0..iters {
                let g = pool.get().await.unwrap();
                std::hint::black_box(&*g);
            }
            t.elapsed()
        })
    }
}

/// `tasks` tasks share the pool on a multi-thread runtime; each checkout is held across
/// one `yield_now` (a short hold). Returns the time for `tasks * per_task` operations.
pub mod contended {
    use super::*;

    /// RipTide, `get().await`.
    pub fn riptide(
        rt: &tokio::runtime::Runtime,
        pool: &Pool<Res>,
        tasks: usize,
        per_task: u64,
    ) -> Duration {
        rt.block_on(async {
            let t = Instant::now();
            let hs: Vec<_> = (0..tasks)
                .map(|_| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            let g = pool.get().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(g);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
            t.elapsed()
        })
    }

    /// deadpool, `get().await`.
    pub fn deadpool(
        rt: &tokio::runtime::Runtime,
        pool: &deadpool::managed::Pool<DeadpoolManager>,
        tasks: usize,
        per_task: u64,
    ) -> Duration {
        rt.block_on(async {
            let t = Instant::now();
            let hs: Vec<_> = (0..tasks)
                .map(|_| {
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        for _ in 0..per_task {
                            let g = pool.get().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(g);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.await.unwrap();
            }
            t.elapsed()
        })
    }
}

/// The scheduling floor of the contended case: the same tasks and runtime, no pool; each
/// operation is the hold's `yield_now` plus one more to stand for the wait's park/wake.
pub fn contended_no_pool(rt: &tokio::runtime::Runtime, tasks: usize, per_task: u64) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        tokio::task::yield_now().await;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        t.elapsed()
    })
}

/// A second floor for the contended case: a bare `tokio::sync::Semaphore` with 4 permits
/// (the fair FIFO primitive deadpool waits on) — acquire, hold across a yield, release; no
/// objects at all. Every pool here pays at least this for its hand-offs.
pub fn contended_semaphore_only(
    rt: &tokio::runtime::Runtime,
    permits: usize,
    tasks: usize,
    per_task: u64,
) -> Duration {
    let sem = Arc::new(tokio::sync::Semaphore::new(permits));
    rt.block_on(async {
        let t = Instant::now();
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                let sem = sem.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        let p = sem.acquire().await.unwrap();
                        tokio::task::yield_now().await;
                        drop(p);
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        t.elapsed()
    })
}

/// Median, min and max of a sample (sorted in place).
pub fn summarize(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// A shared flag type re-exported for the binaries.
pub type Shared<T> = Arc<T>;
