//! A create whose runtime stops driving it: a caller inside a current-thread runtime starts
//! a create, gives up, and the runtime stays alive but is never driven again (a
//! per-thread runtime kept for the odd `block_on`). `create_timeout` still ends the
//! create for the pool: its capacity comes back, and a half-open breaker's trial fails
//! and lets the next trial through. Before the watchdog, the pool's only unit was held
//! for as long as the runtime idled ("still held the only unit after 800 ms"), and the
//! breaker stayed half-open with every caller refused.

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riptide_pool::{CircuitState, Factory, Pool, PoolError, Poolable};

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

/// An object whose `validate` runs in a step that is left behind.
struct Checked {
    id: usize,
    state: Arc<Checks>,
}
impl Poolable for Checked {}
impl Drop for Checked {
    fn drop(&mut self) {
        self.state.dropped.lock().unwrap().push(self.id);
    }
}

#[derive(Default)]
struct Checks {
    made: AtomicUsize,
    /// `validate` waits for `go` while set.
    hold: AtomicBool,
    go: tokio::sync::Notify,
    dropped: Mutex<Vec<usize>>,
    /// What a `validate` saw when it went on: its object's id, and whether that object
    /// had been dropped meanwhile.
    resumed: Mutex<Vec<(usize, bool)>>,
}

struct CheckedFactory(Arc<Checks>);
impl Factory<Checked> for CheckedFactory {
    type Error = std::io::Error;
    async fn create(&self) -> Result<Checked, std::io::Error> {
        Ok(Checked {
            id: self.0.made.fetch_add(1, SeqCst) + 1,
            state: self.0.clone(),
        })
    }
    async fn validate(&self, obj: &mut Checked) -> bool {
        if self.0.hold.load(SeqCst) {
            self.0.go.notified().await;
            let gone = self.0.dropped.lock().unwrap().contains(&obj.id);
            self.0.resumed.lock().unwrap().push((obj.id, gone));
        }
        true
    }
}

/// A checkout step (`validate`) left behind by its caller on a runtime that then idles
/// holds the object it checks until that runtime drives it again: unlike a create, the
/// step's future points into the object's slot, so no watchdog may settle it. A first
/// watchdog did (for every background run): the object was destroyed under the step,
/// its slot reused, and the step resumed on another caller's object.
#[test]
fn a_checkout_step_left_on_an_idle_runtime_keeps_its_object() {
    let checks = Arc::new(Checks::default());
    let rt = common::current_thread();
    let pool = rt.block_on(async {
        Pool::builder(CheckedFactory(checks.clone()))
            .max_size(1)
            .validation_interval(Duration::ZERO)
            .create_timeout(Duration::from_millis(200))
            .build()
            .unwrap()
    });
    rt.block_on(async { drop(pool.get().await.unwrap()) });
    checks.hold.store(true, SeqCst);
    let r = rt.block_on(async { pool.acquire().timeout(Duration::from_millis(50)).await });
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
    // Past the step's limit and any grace: its object is still there, and still counted.
    std::thread::sleep(Duration::from_millis(500));
    assert!(checks.dropped.lock().unwrap().is_empty());
    assert_eq!(pool.stats().size, 1);
    // The runtime runs again: the step goes on with its own object, alive.
    checks.hold.store(false, SeqCst);
    checks.go.notify_one();
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    assert_eq!(*checks.resumed.lock().unwrap(), vec![(1, false)]);
    // And the pool serves again (the step's limit has passed: its object is destroyed).
    let g = rt.block_on(async { pool.acquire().timeout(Duration::from_secs(2)).await });
    assert!(g.is_ok(), "{:?}", g.map(drop));
}

/// A create stranded halfway (its object made, its handshake awaited) on a current-thread
/// runtime that then idles: the watchdog drops the stranded future, and the object in it,
/// before it gives the capacity back, so `max_size` holds while another thread's caller
/// is served.
#[test]
fn a_stranded_create_is_dropped_before_its_capacity_is_given_back() {
    let census = Arc::new(common::Census::default());
    let app_rt = common::current_thread();
    let c2 = census.clone();
    let pool = app_rt.block_on(async move {
        Pool::builder(move || {
            let c = c2.clone();
            async move {
                let conn = common::make(&c); // connected
                tokio::time::sleep(Duration::from_millis(20)).await; // the handshake
                Ok::<_, std::io::Error>(conn)
            }
        })
        .max_size(1)
        .create_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
    });
    // A request that gives up at 5 ms, mid-create; then the app's runtime idles.
    let r = app_rt.block_on(
        pool.acquire()
            .timeout(Duration::from_millis(5))
            .into_future(),
    );
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.map(drop));
    assert_eq!(census.live.load(SeqCst), 1, "the create made its object");
    let p = pool.clone();
    let other = std::thread::spawn(move || {
        let r = p.acquire().timeout(Duration::from_secs(2)).blocking();
        let ok = r.is_ok();
        std::thread::sleep(Duration::from_millis(50));
        drop(r);
        ok
    });
    let served = other.join().unwrap();
    let max_alive = census.max_live.load(SeqCst);
    drop(app_rt);
    assert!(
        served,
        "the other thread's caller was not served: {:?}",
        pool.stats()
    );
    assert!(
        max_alive <= 1,
        "max_size 1, {max_alive} objects alive at once; {:?}",
        pool.stats()
    );
}
