//! Test resources: objects that count themselves, factories that can fail or be slow.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use riptide_pool::{Pool, Poolable};

/// Live objects and totals, shared between a factory and the test.
#[derive(Default, Debug)]
pub struct Census {
    pub live: AtomicUsize,
    pub made: AtomicUsize,
    pub max_live: AtomicUsize,
    pub resets: AtomicUsize,
    pub fail: AtomicBool,
}

#[derive(Debug)]
pub struct Obj {
    pub id: usize,
    pub dirty: bool,
    pub healthy: bool,
    census: Arc<Census>,
}

impl Poolable for Obj {
    fn reset(&mut self) {
        self.dirty = false;
        self.census.resets.fetch_add(1, Ordering::SeqCst);
    }
    fn is_healthy(&self) -> bool {
        self.healthy
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.census.live.fetch_sub(1, Ordering::SeqCst);
    }
}

pub fn make(census: &Arc<Census>) -> Obj {
    let live = census.live.fetch_add(1, Ordering::SeqCst) + 1;
    census.max_live.fetch_max(live, Ordering::SeqCst);
    Obj {
        id: census.made.fetch_add(1, Ordering::SeqCst),
        dirty: false,
        healthy: true,
        census: census.clone(),
    }
}

/// A pool builder whose factory takes `delay` and fails while `census.fail` is set.
pub fn builder(census: &Arc<Census>, delay: Duration) -> riptide_pool::PoolBuilder<Obj> {
    let c = census.clone();
    Pool::builder(move || {
        let c = c.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if c.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("backend down"));
            }
            Ok(make(&c))
        }
    })
}

/// Polls until `cond` holds (up to 5 s): for states reached through other tasks.
pub async fn until(mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition not reached in 5 s");
}

/// Checks out `n` objects (waiting as needed) and keeps them.
pub async fn take_n<T: Poolable>(pool: &Pool<T>, n: usize) -> Vec<riptide_pool::Pooled<T>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(pool.get().await.unwrap());
    }
    v
}

/// Every counter adds up for a quiescent pool. An object an acquisition discarded is
/// dropped in the background and counts in `size` until it is gone, so this waits (up to
/// 5 s) for such drops to end before it asserts.
pub fn assert_consistent<T: Poolable>(pool: &Pool<T>) {
    let adds_up = |s: &riptide_pool::PoolStats| {
        s.size == s.idle + s.in_use && s.created - s.destroyed == s.size as u64
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !adds_up(&pool.stats()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    let s = pool.stats();
    assert_eq!(s.pending_acquisitions, 0, "{s:?}");
    assert_eq!(s.size, s.idle + s.in_use, "{s:?}");
    assert_eq!(s.created - s.destroyed, s.size as u64, "{s:?}");
    assert!(s.size <= s.max_size, "{s:?}");
}

/// A dispatcher for a subscriber that a test scopes to its own threads and asserts on.
///
/// tracing-core 0.1 caches each callsite's interest for the whole process, computed by the
/// first thread to reach it; while only one dispatcher is registered, it asks that thread's
/// own default. A sibling test's thread without a subscriber, first to reach a pool
/// callsite, would cache "never" and this test's subscriber would miss the event
/// (tokio-rs/tracing#3611). With a second dispatcher registered for the process's whole
/// life, registration asks every registered dispatcher, this one included.
pub fn capturing(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> tracing::Dispatch {
    static SECOND: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
    tracing::Dispatch::new(subscriber)
}

/// Runs `f` on a runtime with one worker thread, with `layer` as the tracing subscriber
/// of this thread and of the worker (where the pool's creates and maintenance run).
pub fn with_layer<L, F>(layer: L, f: impl FnOnce() -> F) -> F::Output
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
    F: std::future::Future,
{
    use tracing_subscriber::layer::SubscriberExt;
    let dispatch = capturing(tracing_subscriber::registry().with(layer));
    let worker = dispatch.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            // For the worker's whole life (it ends with the runtime).
            std::mem::forget(tracing::dispatcher::set_default(&worker));
        })
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || rt.block_on(f()))
}

/// Runs `f` on a fresh thread and fails the test if it does not finish within `limit`: a
/// caller that waits past its deadline is a failure here, not a slow test.
pub fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        panic!("did not finish within {limit:?}: a caller outlived its deadline")
    })
}

/// A current-thread tokio runtime with timers and I/O.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A tokio runtime with timers and I/O: multi-thread with two workers if `multi`, else
/// current-thread.
pub fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    } else {
        current_thread()
    }
}

/// A blocking caller on a plain thread of its own: takes an object within `timeout` and
/// returns it at once.
pub fn get_on_a_thread<T: Poolable>(
    pool: &Pool<T>,
    timeout: Duration,
) -> Result<(), riptide_pool::PoolError> {
    let p = pool.clone();
    std::thread::spawn(move || p.acquire().timeout(timeout).blocking().map(drop))
        .join()
        .unwrap()
}

/// Starts a create for `pool` on a runtime of its own that shuts down before running it:
/// one poll spawns the create there, then the caller gives up and the runtime is dropped.
pub fn start_a_create_on_a_dying_runtime<T: Poolable>(pool: &Pool<T>) {
    let p = pool.clone();
    std::thread::spawn(move || {
        current_thread().block_on(async {
            let mut get = std::pin::pin!(std::future::IntoFuture::into_future(p.get()));
            std::future::poll_fn(|cx| {
                assert!(std::future::Future::poll(get.as_mut(), cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
        });
    })
    .join()
    .unwrap();
}

/// A thread that removes `pp`'s idle partitions over and over until `stop` is set.
pub fn remove_partitions_until<K, T>(
    pp: &riptide_pool::PartitionedPool<K, T>,
    stop: &Arc<AtomicBool>,
) -> std::thread::JoinHandle<()>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Send + 'static,
{
    let (pp, stop) = (pp.clone(), stop.clone());
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            pp.remove_idle_partitions();
            std::thread::yield_now();
        }
    })
}
