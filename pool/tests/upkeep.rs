//! Background upkeep (the maintenance pass) and where it runs, under a process-wide
//! `metrics` recorder (which is why these tests have a binary of their own).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{builder, Census};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use riptide_pool::{Pool, Poolable};

/// Panics on the first gauge of a pool named `flaky`, then notes the threads that publish
/// that pool's figures (a maintenance pass publishes them all).
#[derive(Default)]
struct Recorder {
    flaky: AtomicUsize,
    threads: Mutex<Vec<String>>,
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        if key.name() == "riptide_pool_size"
            && key
                .labels()
                .any(|l| l.key() == "pool" && l.value() == "flaky")
        {
            if self.flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("recorder failure");
            }
            let name = std::thread::current().name().unwrap_or("").to_owned();
            self.threads.lock().unwrap().push(name);
        }
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn recorder() -> &'static Recorder {
    static R: OnceLock<&'static Recorder> = OnceLock::new();
    R.get_or_init(|| {
        let r: &'static Recorder = Box::leak(Box::default());
        metrics::set_global_recorder(r).expect("the only recorder of this binary");
        r
    })
}

/// A maintenance pass that panics (here in the `metrics` recorder) on the multi-thread
/// runtime the pool was built in is logged and retried there: the pool's upkeep stays on
/// that runtime, which is not taken for shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_maintenance_pass_on_the_build_runtime_is_retried_there() {
    let rec = recorder();
    let c = Arc::new(Census::default());
    // Maintenance every 5 ms.
    let pool = builder(&c, Duration::ZERO)
        .name("flaky")
        .idle_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    for _ in 0..300 {
        if !rec.threads.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let threads = rec.threads.lock().unwrap().clone();
    assert!(
        rec.flaky.load(Ordering::SeqCst) > 1,
        "no pass after the panic"
    );
    assert!(
        threads.iter().all(|t| t != "riptide-pool-upkeep"),
        "upkeep moved off the runtime: {threads:?}"
    );
    drop(pool.get().await.unwrap());
}

/// A pool built in a current-thread runtime that stays alive but idle (its owner went on
/// with plain threads) is still maintained: idle objects past `idle_timeout` go.
#[test]
fn an_idle_current_thread_build_runtime_does_not_stall_maintenance() {
    let c = Arc::new(Census::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = rt.block_on(async {
        let pool = builder(&c, Duration::ZERO)
            .max_size(2)
            .idle_timeout(Duration::from_millis(40))
            .build()
            .unwrap();
        pool.warm_up(2).await.unwrap();
        pool
    });
    // The runtime is alive and never driven again.
    assert_eq!(pool.stats().idle, 2);
    let t0 = std::time::Instant::now();
    while pool.stats().size > 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let s = pool.stats();
    assert_eq!((s.size, s.destroyed), (0, 2), "{s:?}");
    assert_eq!(c.live.load(Ordering::SeqCst), 0);
    drop(rt);
}

#[derive(Default)]
struct SlowDrops {
    live: AtomicUsize,
    slow_next_drop: AtomicBool,
    in_slow_drop: AtomicBool,
}

struct SlowObj(Arc<SlowDrops>);
impl Poolable for SlowObj {}
impl Drop for SlowObj {
    fn drop(&mut self) {
        if self.0.slow_next_drop.swap(false, Ordering::SeqCst) {
            self.0.in_slow_drop.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1500));
        }
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(5), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The last handle dropped while the upkeep thread runs a pass (here: evicting an idle
/// object whose `Drop` is slow) closes the pool at once: an object returned right after
/// is destroyed, not kept until the pass ends.
#[test]
fn the_last_handle_closes_at_once_while_a_pass_runs() {
    let st = Arc::new(SlowDrops::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s2 = st.clone();
    let pool: Pool<SlowObj> = rt.block_on(async move {
        Pool::builder(move || {
            let s = s2.clone();
            async move {
                s.live.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(SlowObj(s))
            }
        })
        .max_size(2)
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap()
    });
    rt.block_on(async {
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        drop(a);
        // `b` stays out; `a` idles and is evicted by the next pass, slowly.
        st.slow_next_drop.store(true, Ordering::SeqCst);
        wait_until("the pass is evicting", || {
            st.in_slow_drop.load(Ordering::SeqCst)
        });
        // The last handle goes while the pass runs; the pool is closed "at once" ...
        drop(pool);
        // ... so a guard returned now is destroyed at once.
        drop(b);
        let live_after = st.live.load(Ordering::SeqCst);
        wait_until("everything gone", || st.live.load(Ordering::SeqCst) == 0);
        // `a` is still inside its slow Drop: only `b` may be alive-counted now.
        assert_eq!(
            live_after, 1,
            "the object returned after the last handle went was kept"
        );
    });
}
