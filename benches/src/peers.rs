//! Every pool under test behind one of two enums, so each case is written once. Each pool
//! holds a trivial resource (a `u64`): what is measured is the pool.
//!
//! | pool | async | bounded (waits when empty) | fail-fast `try_get` |
//! | --- | --- | --- | --- |
//! | riptide | yes | yes | yes |
//! | deadpool 0.13 | yes | yes | `timeout_get(wait: 0)` |
//! | bb8 0.9 | yes | yes | — |
//! | mobc 0.9 | yes | yes | — |
//! | r2d2 0.8 | no | yes | `try_get` |
//! | object-pool 0.6 | no | no (pull allocates) | `try_pull` |
//! | lockfree-object-pool 0.1 | no | no (pull allocates) | — |
//! | opool 0.2 | no | no (get allocates) | `try_get` |

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use riptide_pool::{Pool, Poolable};

/// The pooled resource for RipTide: a `u64` with nothing to reset.
#[derive(Debug, Default)]
pub struct Res(pub u64);
impl Poolable for Res {}

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

/// bb8's manager for a trivial resource.
pub struct Bb8Manager;
impl bb8::ManageConnection for Bb8Manager {
    type Connection = u64;
    type Error = Infallible;
    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn is_valid(&self, _: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// mobc's manager for a trivial resource.
pub struct MobcManager;
#[mobc::async_trait]
impl mobc::Manager for MobcManager {
    type Connection = u64;
    type Error = Infallible;
    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(0)
    }
    async fn check(&self, conn: u64) -> Result<u64, Infallible> {
        Ok(conn)
    }
}

/// r2d2's error type (it wants `std::error::Error`).
#[derive(Debug)]
pub struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}
impl std::error::Error for Never {}

/// r2d2's manager for a trivial resource.
pub struct R2d2Manager;
impl r2d2::ManageConnection for R2d2Manager {
    type Connection = u64;
    type Error = Never;
    fn connect(&self) -> Result<u64, Never> {
        Ok(0)
    }
    fn is_valid(&self, _: &mut u64) -> Result<(), Never> {
        Ok(())
    }
    fn has_broken(&self, _: &mut u64) -> bool {
        false
    }
}

/// opool's allocator for a trivial resource.
pub struct OpoolAlloc;
impl opool::PoolAllocator<u64> for OpoolAlloc {
    fn allocate(&self) -> u64 {
        0
    }
}

/// An async pool under test.
#[derive(Clone)]
pub enum AsyncPool {
    /// This project.
    Riptide(Pool<Res>),
    /// deadpool 0.13 (managed).
    Deadpool(deadpool::managed::Pool<DeadpoolManager>),
    /// deadpool 0.13 whose waits have a deadline, as every RipTide wait has: the same
    /// 30 s as the others' `acquire_timeout` (`timeout_get`; deadpool waits without one by
    /// default).
    DeadpoolWait(DeadpoolWait),
    /// bb8 0.9.
    Bb8(bb8::Pool<Bb8Manager>),
    /// mobc 0.9.
    Mobc(mobc::Pool<MobcManager>),
}

/// The async pools, in table order.
pub const ASYNC_POOLS: [&str; 4] = ["riptide", "deadpool", "bb8", "mobc"];

impl AsyncPool {
    /// Builds pool `name` with `size` objects, all created up front (inside a runtime).
    pub async fn build(name: &str, size: usize) -> AsyncPool {
        let timeout = Duration::from_secs(30);
        let pool = match name {
            "riptide" | "riptide (detection off)" => AsyncPool::Riptide(
                Pool::builder(|| async { Ok::<_, Infallible>(Res(0)) })
                    .max_size(size)
                    .acquire_timeout(timeout)
                    .deadlock_detection(if name == "riptide" {
                        riptide_pool::DeadlockDetection::Warn
                    } else {
                        riptide_pool::DeadlockDetection::Off
                    })
                    .build()
                    .unwrap(),
            ),
            "deadpool" => AsyncPool::Deadpool(
                deadpool::managed::Pool::builder(DeadpoolManager)
                    .max_size(size)
                    .runtime(deadpool::Runtime::Tokio1) // needed for its wait timeouts
                    .build()
                    .unwrap(),
            ),
            "deadpool (30 s wait)" => AsyncPool::DeadpoolWait(DeadpoolWait(
                deadpool::managed::Pool::builder(DeadpoolManager)
                    .max_size(size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .unwrap(),
                deadpool::managed::Timeouts {
                    wait: Some(timeout),
                    ..Default::default()
                },
            )),
            "bb8" => AsyncPool::Bb8(
                bb8::Pool::builder()
                    .max_size(size as u32)
                    .connection_timeout(timeout)
                    .build(Bb8Manager)
                    .await
                    .unwrap(),
            ),
            "mobc" => AsyncPool::Mobc(
                mobc::Pool::builder()
                    .max_open(size as u64)
                    .get_timeout(Some(timeout))
                    .build(MobcManager),
            ),
            other => panic!("unknown async pool {other}"),
        };
        // Create every object now, so the cases measure checkout, not creation.
        let mut held = Vec::new();
        for _ in 0..size {
            held.push(pool.checkout(None).await.expect("warm up"));
        }
        drop(held);
        pool
    }

    /// The pool's name.
    pub fn name(&self) -> &'static str {
        match self {
            AsyncPool::Riptide(_) => "riptide",
            AsyncPool::Deadpool(_) => "deadpool",
            AsyncPool::DeadpoolWait(_) => "deadpool (30 s wait)",
            AsyncPool::Bb8(_) => "bb8",
            AsyncPool::Mobc(_) => "mobc",
        }
    }

    /// Checks one object out (waiting up to `timeout`, or the pool's default); the guard
    /// returns it when dropped. `None` when the wait timed out.
    pub async fn checkout(&self, timeout: Option<Duration>) -> Option<Guard> {
        match (self, timeout) {
            (AsyncPool::Riptide(p), None) => p.get().await.ok().map(Guard::Riptide),
            (AsyncPool::Riptide(p), Some(t)) => {
                p.acquire().timeout(t).await.ok().map(Guard::Riptide)
            }
            (AsyncPool::Deadpool(p), t) => {
                let to = deadpool::managed::Timeouts {
                    wait: t,
                    ..Default::default()
                };
                p.timeout_get(&to).await.ok().map(Guard::Deadpool)
            }
            (AsyncPool::DeadpoolWait(p), t) => {
                let to = deadpool::managed::Timeouts {
                    wait: t.or(p.1.wait),
                    ..Default::default()
                };
                p.0.timeout_get(&to).await.ok().map(Guard::Deadpool)
            }
            (AsyncPool::Bb8(p), None) => p.get_owned().await.ok().map(Guard::Bb8),
            (AsyncPool::Bb8(p), Some(t)) => tokio::time::timeout(t, p.get_owned())
                .await
                .ok()
                .and_then(Result::ok)
                .map(Guard::Bb8),
            (AsyncPool::Mobc(p), None) => p.get().await.ok().map(Guard::Mobc),
            (AsyncPool::Mobc(p), Some(t)) => p.get_timeout(t).await.ok().map(Guard::Mobc),
        }
    }
}

/// Expands `$body` once per async pool with `$p` bound to the concrete pool, so timing
/// loops dispatch once, outside the loop, and never build a `Guard` enum.
#[macro_export]
macro_rules! with_async_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            $crate::peers::AsyncPool::Riptide($p) => $body,
            $crate::peers::AsyncPool::Deadpool($p) => $body,
            $crate::peers::AsyncPool::DeadpoolWait($p) => $body,
            $crate::peers::AsyncPool::Bb8($p) => $body,
            $crate::peers::AsyncPool::Mobc($p) => $body,
        }
    };
}

/// Uniform `get().await` over the peers' own guard types (used inside `with_async_pool!`).
pub trait Get {
    /// The pool's own guard.
    type Guard: Send;
    /// Waits for an object (the pool's default timeout). Awaited only by the timing loops
    /// of [`async_uncontended`](crate::async_uncontended) and
    /// [`contended`](crate::contended).
    fn get_one(&self) -> impl std::future::Future<Output = Self::Guard> + Send;
    /// The same checkout as [`get_one`](Get::get_one), as a function of its own, for every
    /// other caller (the scale case polls it by hand). The compiler inlines an async fn's
    /// body partly by how many callers it has, so more callers of `get_one` can take it out
    /// of line in the timing loops and slow them for the harness's sake
    /// (`docs/benchmarks.md`, "Where the async gap is").
    fn get_elsewhere(&self) -> impl std::future::Future<Output = Self::Guard> + Send;
}

/// Implements [`Get`] for pool type `$pool` with guard `$guard`: both methods check out
/// with `$get` (`$p` is the pool).
macro_rules! impl_get {
    ($pool:ty, $guard:ty, |$p:ident| $get:expr) => {
        impl Get for $pool {
            type Guard = $guard;
            async fn get_one(&self) -> Self::Guard {
                let $p = self;
                $get
            }
            async fn get_elsewhere(&self) -> Self::Guard {
                let $p = self;
                $get
            }
        }
    };
}

impl_get!(Pool<Res>, riptide_pool::Pooled<Res>, |p| p
    .get()
    .await
    .expect("riptide get"));

impl_get!(
    deadpool::managed::Pool<DeadpoolManager>,
    deadpool::managed::Object<DeadpoolManager>,
    |p| p.get().await.expect("deadpool get")
);

/// A deadpool pool and the timeouts its checkouts use.
#[derive(Clone)]
pub struct DeadpoolWait(
    pub deadpool::managed::Pool<DeadpoolManager>,
    pub deadpool::managed::Timeouts,
);

impl_get!(
    DeadpoolWait,
    deadpool::managed::Object<DeadpoolManager>,
    |p| p.0.timeout_get(&p.1).await.expect("deadpool get")
);

impl_get!(
    bb8::Pool<Bb8Manager>,
    bb8::PooledConnection<'static, Bb8Manager>,
    |p| p.get_owned().await.expect("bb8 get")
);

impl_get!(
    mobc::Pool<MobcManager>,
    mobc::Connection<MobcManager>,
    |p| p.get().await.expect("mobc get")
);

/// A checked-out object of any async pool; dropping it returns it.
pub enum Guard {
    /// riptide.
    Riptide(riptide_pool::Pooled<Res>),
    /// deadpool.
    Deadpool(deadpool::managed::Object<DeadpoolManager>),
    /// bb8.
    Bb8(bb8::PooledConnection<'static, Bb8Manager>),
    /// mobc.
    Mobc(mobc::Connection<MobcManager>),
}

/// A sync pool under test.
#[derive(Clone)]
pub enum SyncPool {
    /// This project (`try_get` / `get_blocking`).
    Riptide(Pool<Res>),
    /// This project, a type without a `Poolable` impl: reset and health check given as
    /// closures (`Pool::custom`).
    RiptideClosures(Pool<u64>),
    /// This project with deadlock detection off (the default, `Warn`, records each
    /// checkout's holder).
    RiptideNoDetection(Pool<Res>),
    /// r2d2 0.8.
    R2d2(r2d2::Pool<R2d2Manager>),
    /// object-pool 0.6.
    ObjectPool(Arc<object_pool::Pool<u64>>),
    /// lockfree-object-pool 0.1 (`LinearObjectPool`).
    Lockfree(Arc<lockfree_object_pool::LinearObjectPool<u64>>),
    /// opool 0.2.
    Opool(Arc<opool::Pool<OpoolAlloc, u64>>),
}

/// The sync pools, in table order.
pub const SYNC_POOLS: [&str; 7] = [
    "riptide",
    "riptide (closures)",
    "riptide (detection off)",
    "r2d2",
    "object-pool",
    "lockfree-object-pool",
    "opool",
];

impl SyncPool {
    /// Builds pool `name` with `size` objects made up front.
    pub fn build(name: &str, size: usize) -> SyncPool {
        match name {
            "riptide" | "riptide (detection off)" => {
                let detection = if name == "riptide" {
                    riptide_pool::DeadlockDetection::Warn
                } else {
                    riptide_pool::DeadlockDetection::Off
                };
                let p = Pool::builder(|| async { Ok::<_, Infallible>(Res(0)) })
                    .max_size(size)
                    .deadlock_detection(detection)
                    .build()
                    .unwrap();
                let held: Vec<_> = (0..size).map(|_| p.get_blocking().unwrap()).collect();
                drop(held);
                if name == "riptide" {
                    SyncPool::Riptide(p)
                } else {
                    SyncPool::RiptideNoDetection(p)
                }
            }
            "riptide (closures)" => {
                let p = Pool::custom(|| async { Ok::<_, Infallible>(0u64) })
                    .reset(|v| *v = 0)
                    .is_healthy(|v| *v < u64::MAX)
                    .max_size(size)
                    .build()
                    .unwrap();
                let held: Vec<_> = (0..size).map(|_| p.get_blocking().unwrap()).collect();
                drop(held);
                SyncPool::RiptideClosures(p)
            }
            "r2d2" => SyncPool::R2d2(
                r2d2::Pool::builder()
                    .max_size(size as u32)
                    .min_idle(Some(size as u32))
                    .build(R2d2Manager)
                    .unwrap(),
            ),
            "object-pool" => SyncPool::ObjectPool(Arc::new(object_pool::Pool::new(size, || 0u64))),
            "lockfree-object-pool" => {
                let p = Arc::new(lockfree_object_pool::LinearObjectPool::<u64>::new(
                    || 0,
                    |v| *v = 0,
                ));
                let held: Vec<_> = (0..size).map(|_| p.pull()).collect();
                drop(held);
                SyncPool::Lockfree(p)
            }
            "opool" => SyncPool::Opool(Arc::new(opool::Pool::new_prefilled(size, OpoolAlloc))),
            other => panic!("unknown sync pool {other}"),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &'static str {
        match self {
            SyncPool::Riptide(_) => "riptide",
            SyncPool::RiptideClosures(_) => "riptide (closures)",
            SyncPool::RiptideNoDetection(_) => "riptide (detection off)",
            SyncPool::R2d2(_) => "r2d2",
            SyncPool::ObjectPool(_) => "object-pool",
            SyncPool::Lockfree(_) => "lockfree-object-pool",
            SyncPool::Opool(_) => "opool",
        }
    }

    /// `n` checkouts + returns, waiting (bounded pools) or allocating (unbounded ones) when
    /// nothing is idle. The pool is matched once; each pool's loop is its own small
    /// function, so every pool's code is optimised alike.
    pub fn cycles(&self, n: u64) {
        match self {
            SyncPool::Riptide(p) => loops::riptide(p, n, false),
            SyncPool::RiptideClosures(p) => loops::riptide_closures(p, n, false),
            SyncPool::RiptideNoDetection(p) => loops::riptide(p, n, false),
            SyncPool::R2d2(p) => loops::r2d2(p, n),
            SyncPool::ObjectPool(p) => loops::object_pool(p, n),
            SyncPool::Lockfree(p) => loops::lockfree(p, n),
            SyncPool::Opool(p) => loops::opool(p, n),
        }
    }

    /// [`cycles`](Self::cycles) where several threads share the pool: RipTide waits
    /// through `get_blocking` (the others' calls already wait or allocate).
    pub fn cycles_shared(&self, n: u64) {
        match self {
            SyncPool::Riptide(p) => loops::riptide(p, n, true),
            SyncPool::RiptideClosures(p) => loops::riptide_closures(p, n, true),
            SyncPool::RiptideNoDetection(p) => loops::riptide(p, n, true),
            other => other.cycles(n),
        }
    }

    /// A checkout that must not wait nor allocate; false when nothing was idle. `None`
    /// when the pool has no such call.
    #[inline]
    pub fn try_cycle(&self) -> Option<bool> {
        Some(match self {
            SyncPool::Riptide(p) => p.try_get().is_ok(),
            SyncPool::RiptideClosures(p) => p.try_get().is_ok(),
            SyncPool::RiptideNoDetection(p) => p.try_get().is_ok(),
            SyncPool::R2d2(p) => p.try_get().is_some(),
            SyncPool::ObjectPool(p) => p.try_pull().is_some(),
            SyncPool::Opool(p) => p.try_get().is_some(),
            SyncPool::Lockfree(_) => return None,
        })
    }
}

/// One checkout-and-return loop per sync pool.
mod loops {
    use super::*;

    /// Uncontended (`wait == false`): `try_get` (an object is always idle). Contended:
    /// `get_blocking`, which waits (bounded) when the pool is empty, like r2d2's `get`.
    #[inline(never)]
    pub(super) fn riptide(p: &Pool<Res>, n: u64, wait: bool) {
        if wait {
            for _ in 0..n {
                let g = p.get_blocking().unwrap();
                std::hint::black_box(&*g);
            }
        } else {
            for _ in 0..n {
                let g = p.try_get().unwrap();
                std::hint::black_box(&*g);
            }
        }
    }

    /// [`riptide`] for the closure path.
    #[inline(never)]
    pub(super) fn riptide_closures(p: &Pool<u64>, n: u64, wait: bool) {
        if wait {
            for _ in 0..n {
                let g = p.get_blocking().unwrap();
                std::hint::black_box(&*g);
            }
        } else {
            for _ in 0..n {
                let g = p.try_get().unwrap();
                std::hint::black_box(&*g);
            }
        }
    }

    #[inline(never)]
    pub(super) fn r2d2(p: &r2d2::Pool<R2d2Manager>, n: u64) {
        for _ in 0..n {
            let g = p.get().unwrap();
            std::hint::black_box(&*g);
        }
    }

    #[inline(never)]
    pub(super) fn object_pool(p: &object_pool::Pool<u64>, n: u64) {
        for _ in 0..n {
            let g = p.pull(|| 0);
            std::hint::black_box(&*g);
        }
    }

    #[inline(never)]
    pub(super) fn lockfree(p: &lockfree_object_pool::LinearObjectPool<u64>, n: u64) {
        for _ in 0..n {
            let g = p.pull();
            std::hint::black_box(&*g);
        }
    }

    #[inline(never)]
    pub(super) fn opool(p: &opool::Pool<OpoolAlloc, u64>, n: u64) {
        for _ in 0..n {
            let g = p.get();
            std::hint::black_box(&*g);
        }
    }
}
