//! Background upkeep (the maintenance pass) and where it runs, under a process-wide
//! `metrics` recorder (which is why these tests have a binary of their own).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{builder, Census};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

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
