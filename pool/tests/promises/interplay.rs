//! The paths around the fast path racing hand-offs and creates: resize, close, drain,
//! blocking callers, rejection loops, the breaker and cancellation; `close` failing a
//! caller in its checkout step at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{self, until, Census};
use riptide_pool::{Pool, PoolError, Priority};

const MARGIN: Duration = Duration::from_millis(1500);

fn census() -> Arc<Census> {
    Arc::new(Census::default())
}

/// Every unit of capacity is still there: `n` objects can be checked out at once.
async fn all_capacity_back(pool: &Pool<common::Obj>, n: usize) {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(
            pool.acquire()
                .timeout(Duration::from_secs(5))
                .await
                .expect("capacity lost"),
        );
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_storm_with_queued_waiters_keeps_capacity_and_cap() {
    for round in 0..30 {
        let c = census();
        let pool = common::builder(&c, Duration::from_micros(200))
            .max_size(4)
            .acquire_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for t in 0..12 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0..20 {
                    let start = Instant::now();
                    let to = Duration::from_millis(if (t + k) % 3 == 0 { 5 } else { 2000 });
                    let r = p
                        .acquire()
                        .priority([Priority::Low, Priority::High][k % 2])
                        .timeout(to)
                        .await;
                    assert!(start.elapsed() <= to + MARGIN, "outlived deadline");
                    match r {
                        Ok(g) => {
                            if k % 5 == 0 {
                                tokio::task::yield_now().await;
                            }
                            drop(g);
                        }
                        Err(PoolError::Timeout) => {}
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            }));
        }
        let p = pool.clone();
        let resizer = tokio::spawn(async move {
            for k in 0..40usize {
                p.resize(1 + (k * 7 + round) % 6);
                tokio::task::yield_now().await;
            }
            p.resize(4);
        });
        for t in tasks {
            t.await.unwrap();
        }
        resizer.await.unwrap();
        assert!(c.max_live.load(Ordering::SeqCst) <= 6);
        until(|| pool.stats().pending_acquisitions == 0 && pool.stats().in_use == 0).await;
        until(|| pool.stats().size <= 4).await;
        all_capacity_back(&pool, 4).await;
        until(|| {
            let s = pool.stats();
            s.size == s.idle + s.in_use && s.created - s.destroyed == s.size as u64
        })
        .await;
        assert_eq!(c.live.load(Ordering::SeqCst), pool.stats().size);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_racing_handoffs_and_creates_fails_everyone_and_drains() {
    for round in 0..200u64 {
        let c = census();
        let pool = common::builder(&c, Duration::from_micros(100 * (round % 4)))
            .max_size(3)
            .acquire_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let start = Instant::now();
                    match p.get().await {
                        Ok(g) => {
                            tokio::task::yield_now().await;
                            drop(g);
                        }
                        Err(PoolError::Closed) => return,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                    assert!(start.elapsed() < Duration::from_secs(3) + MARGIN);
                }
            }));
        }
        for _ in 0..(round % 7) {
            tokio::task::yield_now().await;
        }
        let d = pool.drain(Duration::from_secs(5)).await;
        assert!(d.is_ok(), "{d:?}");
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("a waiter not failed by close")
                .unwrap();
        }
        until(|| c.live.load(Ordering::SeqCst) == 0).await;
        let s = pool.stats();
        assert_eq!(s.size, 0, "{s:?}");
        assert_eq!(s.created, s.destroyed, "{s:?}");
    }
}

#[test]
fn blocking_and_async_callers_with_resizes_all_keep_their_deadlines() {
    let rt = common::runtime(true);
    let c = census();
    let pool = rt.block_on(async {
        common::builder(&c, Duration::from_micros(300))
            .max_size(2)
            .acquire_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    });
    let served = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..4 {
        let p = pool.clone();
        let served = served.clone();
        threads.push(std::thread::spawn(move || {
            for k in 0..300 {
                let to = Duration::from_millis(if k % 4 == 0 { 1 } else { 500 });
                let start = Instant::now();
                match p.acquire().timeout(to).blocking() {
                    Ok(g) => {
                        served.fetch_add(1, Ordering::Relaxed);
                        if (t + k) % 3 == 0 {
                            std::thread::yield_now();
                        }
                        drop(g);
                    }
                    Err(PoolError::Timeout) => {}
                    Err(e) => panic!("{e:?}"),
                }
                assert!(
                    start.elapsed() <= to + MARGIN,
                    "blocking outlived its deadline"
                );
            }
        }));
    }
    rt.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..4 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move {
                for k in 0..300 {
                    let to = Duration::from_millis(if k % 5 == 0 { 1 } else { 500 });
                    let start = Instant::now();
                    match p.acquire().timeout(to).await {
                        Ok(g) => {
                            if (t + k) % 2 == 0 {
                                tokio::task::yield_now().await;
                            }
                            drop(g)
                        }
                        Err(PoolError::Timeout) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    assert!(
                        start.elapsed() <= to + MARGIN,
                        "async outlived its deadline"
                    );
                }
            }));
        }
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..200usize {
                p.resize(1 + k % 3);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            p.resize(2);
        }));
        for t in tasks {
            t.await.unwrap();
        }
    });
    for t in threads {
        t.join().unwrap();
    }
    rt.block_on(async {
        until(|| pool.stats().in_use == 0 && pool.stats().pending_acquisitions == 0).await;
        all_capacity_back(&pool, 2).await;
    });
    assert!(c.max_live.load(Ordering::SeqCst) <= 3);
}

/// Every checkout is the object's last (max_uses = 1): capacity must flow to the waiters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uses_one_with_queued_waiters_serves_everyone() {
    let c = census();
    let pool = common::builder(&c, Duration::from_micros(100))
        .max_size(2)
        .max_uses(1)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..100 {
                let g = p.get().await.expect("served");
                tokio::task::yield_now().await;
                drop(g);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(c.max_live.load(Ordering::SeqCst) <= 2);
    until(|| pool.stats().in_use == 0).await;
    all_capacity_back(&pool, 2).await;
}

/// validate rejects half the objects and max_lifetime is tiny: the rejection loop must not
/// lose capacity nor let a caller outlive its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_loops_while_waiters_queue() {
    let c = census();
    let flip = Arc::new(AtomicUsize::new(0));
    let cc = c.clone();
    let f2 = flip.clone();
    struct F {
        c: Arc<Census>,
        flip: Arc<AtomicUsize>,
    }
    impl riptide_pool::Factory<common::Obj> for F {
        type Error = std::io::Error;
        fn create(
            &self,
        ) -> impl std::future::Future<Output = Result<common::Obj, Self::Error>> + Send {
            let c = self.c.clone();
            async move { Ok(common::make(&c)) }
        }
        fn validate(&self, _o: &mut common::Obj) -> impl std::future::Future<Output = bool> + Send {
            let n = self.flip.fetch_add(1, Ordering::Relaxed);
            async move {
                if n % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                n % 2 == 0
            }
        }
    }
    let pool = Pool::builder(F { c: cc, flip: f2 })
        .max_size(3)
        .validation_interval(Duration::ZERO)
        .max_lifetime(Duration::from_millis(3))
        .acquire_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..10 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..150 {
                let to = Duration::from_millis(if (t + k) % 4 == 0 { 2 } else { 2000 });
                let start = Instant::now();
                match p.acquire().timeout(to).await {
                    Ok(g) => {
                        tokio::task::yield_now().await;
                        drop(g);
                    }
                    Err(PoolError::Timeout) => {}
                    Err(e) => panic!("{e:?}"),
                }
                assert!(start.elapsed() <= to + MARGIN, "outlived deadline");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(c.max_live.load(Ordering::SeqCst) <= 3);
    until(|| pool.stats().in_use == 0).await;
    all_capacity_back(&pool, 3).await;
    let _ = flip;
}

/// Futures cancelled by short `tokio::time::timeout`s and `select!` at every step, while
/// objects are handed over: nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_everywhere_loses_nothing() {
    let c = census();
    let pool = common::builder(&c, Duration::from_micros(150))
        .max_size(3)
        .validation_interval(Duration::ZERO)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..10u64 {
        let p = pool.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..300u64 {
                match (t + k) % 4 {
                    0 => {
                        let _ = tokio::time::timeout(
                            Duration::from_micros(50 * ((t + k) % 5)),
                            p.get(),
                        )
                        .await;
                    }
                    1 => {
                        tokio::select! {
                            r = p.get() => { drop(r.unwrap()); }
                            _ = tokio::task::yield_now() => {}
                        }
                    }
                    2 => {
                        let mut f = p.get();
                        let _ = futures_poll_once(&mut f).await;
                        drop(f);
                    }
                    _ => {
                        let g = p.get().await.unwrap();
                        tokio::task::yield_now().await;
                        drop(g);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    until(|| pool.stats().in_use == 0 && pool.stats().pending_acquisitions == 0).await;
    assert!(c.max_live.load(Ordering::SeqCst) <= 3);
    all_capacity_back(&pool, 3).await;
    until(|| {
        let s = pool.stats();
        s.size == s.idle && s.created - s.destroyed == s.size as u64
    })
    .await;
}

async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// A failing factory with `min_idle` and the breaker cycling open / half-open, with
/// callers on short deadlines: nobody outlives a deadline, and once the factory heals the
/// pool serves again with all its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_cycles_with_min_idle_and_deadlines() {
    let c = census();
    let delay = Arc::new(AtomicUsize::new(0));
    let cc = c.clone();
    let d2 = delay.clone();
    let pool = Pool::builder(move || {
        let c = cc.clone();
        let d = d2.clone();
        async move {
            let ms = d.load(Ordering::SeqCst) as u64;
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            if c.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("down"));
            }
            Ok(common::make(&c))
        }
    })
    .max_size(3)
    .min_idle(2)
    .circuit_breaker(3, Duration::from_millis(30))
    .create_timeout(Duration::from_millis(400))
    .acquire_timeout(Duration::from_secs(2))
    .build()
    .unwrap();
    c.fail.store(true, Ordering::SeqCst);
    pool.clear_idle();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let p = pool.clone();
        let d = delay.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..60u64 {
                if t == 0 && k % 10 == 5 {
                    d.store(if k % 20 == 5 { 200 } else { 0 }, Ordering::SeqCst);
                }
                let to = Duration::from_millis(20 + 10 * ((t + k) % 5));
                let start = Instant::now();
                let r = p.acquire().timeout(to).await;
                assert!(
                    start.elapsed() <= to + MARGIN,
                    "outlived deadline: {:?} {r:?}",
                    start.elapsed()
                );
                match r {
                    Ok(g) => drop(g),
                    Err(
                        PoolError::Timeout | PoolError::Create(_) | PoolError::CircuitOpen { .. },
                    ) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    delay.store(0, Ordering::SeqCst);
    c.fail.store(false, Ordering::SeqCst);
    // Heals: within 5 s every unit of capacity can be used.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut held = Vec::new();
        for _ in 0..3 {
            match pool.acquire().timeout(Duration::from_millis(200)).await {
                Ok(g) => held.push(g),
                Err(_) => break,
            }
        }
        if held.len() == 3 {
            break;
        }
        drop(held);
        assert!(
            Instant::now() < deadline,
            "capacity lost: {:?}",
            pool.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.max_live.load(Ordering::SeqCst) <= 3);
}

/// `drain` while callers wait for slow creates and hold objects: it reports or returns,
/// and every waiter fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_slow_creates_in_flight() {
    for round in 0..40u64 {
        let c = census();
        let pool = common::builder(&c, Duration::from_millis(5 + round % 10))
            .max_size(4)
            .acquire_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let p = pool.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match p.get().await {
                        Ok(g) => {
                            tokio::time::sleep(Duration::from_millis(3)).await;
                            drop(g);
                        }
                        Err(PoolError::Closed) => return Instant::now(),
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(round % 13)).await;
        let closed_at = Instant::now();
        let d = pool.drain(Duration::from_secs(3)).await;
        assert!(d.is_ok(), "{d:?} {:?}", pool.stats());
        for t in tasks {
            let at = t.await.unwrap();
            // Waiters not holding an object are failed at once; holders first finish
            // their 3 ms hold.
            assert!(at.duration_since(closed_at) < MARGIN);
        }
        until(|| c.live.load(Ordering::SeqCst) == 0).await;
    }
}

/// A pool built with no runtime at all: blocking callers only, with short deadlines,
/// resizes and a slow (thread-sleeping) factory, then close: every deadline is kept and no
/// capacity is lost.
#[test]
fn runtime_less_blocking_callers_with_resizes_and_close() {
    for round in 0..3 {
        let c = census();
        let cc = c.clone();
        let pool = Pool::builder(move || {
            let c = cc.clone();
            async move {
                std::thread::sleep(Duration::from_micros(300));
                Ok::<_, std::io::Error>(common::make(&c))
            }
        })
        .max_size(2)
        .acquire_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
        let mut threads = Vec::new();
        for t in 0..6 {
            let p = pool.clone();
            threads.push(std::thread::spawn(move || {
                for k in 0..200 {
                    let to = Duration::from_millis(if (t + k) % 3 == 0 { 1 } else { 300 });
                    let start = Instant::now();
                    match p.acquire().timeout(to).blocking() {
                        Ok(g) => {
                            if k % 4 == 0 {
                                std::thread::yield_now();
                            }
                            drop(g);
                        }
                        Err(PoolError::Timeout) => {}
                        Err(PoolError::Closed) => return,
                        Err(e) => panic!("{e:?}"),
                    }
                    assert!(
                        start.elapsed() <= to + MARGIN,
                        "outlived deadline {:?}",
                        start.elapsed()
                    );
                }
            }));
        }
        for k in 0..100usize {
            pool.resize(1 + k % 3);
            std::thread::sleep(Duration::from_micros(300));
        }
        pool.resize(2);
        if round == 2 {
            pool.close();
        }
        for t in threads {
            t.join().unwrap();
        }
        if round < 2 {
            let a = pool
                .acquire()
                .timeout(Duration::from_secs(5))
                .blocking()
                .unwrap();
            let b = pool
                .acquire()
                .timeout(Duration::from_secs(5))
                .blocking()
                .unwrap();
            drop((a, b));
        }
        assert!(c.max_live.load(Ordering::SeqCst) <= 3);
    }
}

/// `close` fails a caller running a slow checkout step (a `validate` pinging a dead
/// server) at once, as it does a caller waiting for its own create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_fails_a_caller_in_a_slow_validate_at_once() {
    let c = census();
    struct Slow(Arc<Census>);
    impl riptide_pool::Factory<common::Obj> for Slow {
        type Error = std::io::Error;
        fn create(
            &self,
        ) -> impl std::future::Future<Output = Result<common::Obj, Self::Error>> + Send {
            let c = self.0.clone();
            async move { Ok(common::make(&c)) }
        }
        async fn validate(&self, _o: &mut common::Obj) -> bool {
            tokio::time::sleep(Duration::from_secs(4)).await;
            true
        }
    }
    let pool = Pool::builder(Slow(c.clone()))
        .max_size(1)
        .validation_interval(Duration::ZERO)
        .acquire_timeout(Duration::from_secs(8))
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    let p = pool.clone();
    let checking = tokio::spawn(async move { p.get().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closed_at = Instant::now();
    pool.close();
    let r = checking.await.unwrap();
    let took = closed_at.elapsed();
    assert!(matches!(r, Err(PoolError::Closed)), "{r:?}");
    assert!(
        took < Duration::from_secs(2),
        "failed only after {took:?}, not at close"
    );
    until(|| c.live.load(Ordering::SeqCst) == 0).await;
}

/// Capacity freed by growing goes to the highest priority first, as returned objects do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_serves_the_highest_priority_first() {
    for _ in 0..50 {
        let c = census();
        let pool = common::builder(&c, Duration::ZERO)
            .max_size(1)
            .starvation_threshold(Duration::from_secs(60))
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let held = pool.get().await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        // Each caller holds what it got until told, so the order recorded is the order
        // served, however late a task runs on a loaded machine.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (k, prio) in [Priority::Low, Priority::Normal, Priority::High]
            .into_iter()
            .enumerate()
        {
            let p = pool.clone();
            let o = order.clone();
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                let g = p.acquire().priority(prio).await.unwrap();
                o.lock().unwrap().push(prio);
                while !done.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                drop(g);
            }));
            until(|| pool.stats().pending_acquisitions == k + 1).await;
        }
        pool.resize(2);
        until(|| order.lock().unwrap().len() == 1).await;
        drop(held);
        until(|| order.lock().unwrap().len() == 2).await;
        done.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order, [Priority::High, Priority::Normal, Priority::Low]);
    }
}

/// A queued waiter handed an object (or a permit, by a grow) and dropped before it looks:
/// the object goes to the next waiter, the permit too, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_dropped_after_being_handed_passes_it_on() {
    for round in 0..200 {
        let c = census();
        let pool = common::builder(&c, Duration::ZERO)
            .max_size(1)
            .acquire_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let held = pool.get().await.unwrap();
        let mut first = pool.get();
        assert!(futures_poll_once(&mut first).await.is_none());
        let p = pool.clone();
        let second = tokio::spawn(async move { p.get().await.map(drop) });
        until(|| pool.stats().pending_acquisitions == 2).await;
        let held = if round % 2 == 0 {
            drop(held);
            None
        } else {
            pool.resize(2);
            Some(held)
        };
        until(|| pool.stats().pending_acquisitions == 1).await;
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the handed object or permit was lost")
            .unwrap()
            .unwrap();
        drop(held);
        if round % 2 == 1 {
            pool.resize(1);
        }
        until(|| pool.stats().in_use == 0).await;
        let all = pool.acquire().timeout(Duration::from_secs(5)).await;
        assert!(all.is_ok(), "{:?}", pool.stats());
    }
}

/// Counters never go down, and `size` never passes `max_size` once a resize settled,
/// sampled while callers churn, time out, discard and the pool resizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_never_go_down_under_churn() {
    let c = census();
    let pool = common::builder(&c, Duration::from_micros(100))
        .max_size(3)
        .max_uses(3)
        .acquire_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let p = pool.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k += 1;
                let to = Duration::from_millis(if (t + k) % 3 == 0 { 1 } else { 500 });
                if let Ok(g) = p.acquire().timeout(to).await {
                    if k % 7 == 0 {
                        riptide_pool::Pooled::discard(g);
                    } else {
                        tokio::task::yield_now().await;
                        drop(g);
                    }
                }
                if k % 50 == 0 {
                    p.resize(1 + (k as usize / 50) % 4);
                }
            }
        }));
    }
    let mut last = pool.stats();
    for _ in 0..2000 {
        let s = pool.stats();
        assert!(s.created >= last.created, "{last:?} -> {s:?}");
        assert!(s.destroyed >= last.destroyed, "{last:?} -> {s:?}");
        assert!(s.acquired >= last.acquired, "{last:?} -> {s:?}");
        assert!(s.timeouts >= last.timeouts, "{last:?} -> {s:?}");
        assert!(s.destroyed <= s.created, "{s:?}");
        last = s;
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    pool.resize(3);
    until(|| {
        let s = pool.stats();
        s.pending_acquisitions == 0
            && s.in_use == 0
            && s.size == s.idle
            && s.created - s.destroyed == s.size as u64
            && c.live.load(Ordering::SeqCst) == s.size
    })
    .await;
    assert!(c.max_live.load(Ordering::SeqCst) <= 4);
    all_capacity_back(&pool, 3).await;
}
