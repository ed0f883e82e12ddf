//! The paths that run `unsafe` code, written to run under Miri as well as natively:
//! slot segments and growth, guard deref, moving objects in and out of slots, orphaned
//! guards freeing the shared state, and threads racing on the fast path. No tokio timers
//! (Miri), so creation goes through the no-runtime path (`get_blocking`).
//!
//! `MIRIFLAGS="-Zmiri-strict-provenance -Zmiri-disable-isolation" cargo +nightly miri test
//! -p riptide-pool --lib --test unsafe_paths`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use riptide_pool::{Pool, Poolable, Pooled};

struct Obj {
    data: Vec<u64>,
    live: Arc<AtomicUsize>,
}

impl Poolable for Obj {
    fn reset(&mut self) {
        self.data.clear();
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

fn pool(max: usize) -> (Pool<Obj>, Arc<AtomicUsize>) {
    pool_with(max, None)
}

/// A pool of `max` objects living at most `lifetime`.
fn pool_with(max: usize, lifetime: Option<std::time::Duration>) -> (Pool<Obj>, Arc<AtomicUsize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let b = Pool::builder(move || {
        let l = l.clone();
        async move {
            l.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Obj {
                data: Vec::with_capacity(4),
                live: l,
            })
        }
    })
    .max_size(max);
    // Without one, the default lifetime.
    let b = match lifetime {
        Some(d) => b.max_lifetime(d),
        None => b,
    };
    (b.build().unwrap(), live)
}

#[test]
fn checkout_write_return_reuse() {
    let (pool, live) = pool(2);
    let mut a = pool.get_blocking().unwrap();
    a.data.extend([1, 2, 3]);
    drop(a);
    let b = pool.try_get().unwrap();
    assert!(b.data.is_empty() && b.data.capacity() >= 4);
    let obj = Pooled::detach(b);
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(obj);
    let c = pool.get_blocking().unwrap();
    Pooled::discard(c);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn growing_past_the_first_segment_keeps_guards_valid() {
    let (pool, live) = pool(2);
    let mut first = pool.get_blocking().unwrap();
    first.data.push(7);
    pool.resize(20);
    let mut many: Vec<_> = (0..19).map(|_| pool.get_blocking().unwrap()).collect();
    for (i, g) in many.iter_mut().enumerate() {
        g.data.push(i as u64);
    }
    assert_eq!(first.data, [7]);
    drop(many);
    drop(first);
    assert_eq!(live.load(Ordering::SeqCst), 20);
    pool.resize(3);
    assert_eq!(live.load(Ordering::SeqCst), 3);
    drop(pool);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn guards_outliving_every_handle_free_everything() {
    let (pool, live) = pool(3);
    let a = pool.get_blocking().unwrap();
    let b = pool.get_blocking().unwrap();
    let d = pool.get_blocking().unwrap();
    let c = Pooled::detach(d);
    drop(pool);
    drop(a);
    let t = std::thread::spawn(move || drop(b));
    t.join().unwrap();
    assert_eq!(live.load(Ordering::SeqCst), 1);
    drop(c);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn threads_race_on_the_fast_path() {
    let (pool, live) = pool(2);
    drop((pool.get_blocking().unwrap(), pool.get_blocking().unwrap()));
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    if let Ok(mut g) = pool.try_get() {
                        g.data.push(i);
                        assert_eq!(g.data, [i]);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(live.load(Ordering::SeqCst), 2);
    assert_eq!(pool.stats().idle, 2);
}

#[test]
fn last_handle_drop_races_a_guard_return() {
    // The guard's fast release reads the pool after its IDLE store; the hazard record
    // keeps the last owner from freeing the memory under that read.
    for _ in 0..12 {
        let (pool, live) = pool(2);
        drop((pool.get_blocking().unwrap(), pool.get_blocking().unwrap()));
        let a = pool.get_blocking().unwrap();
        let b = pool.get_blocking().unwrap();
        let t1 = std::thread::spawn(move || drop(a));
        let t2 = std::thread::spawn(move || drop(pool));
        drop(b);
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn last_handle_drop_races_the_only_guard_return() {
    // One object: the handle's drop destroys it the moment the guard's release store
    // makes it idle, and frees the pool right after; the releaser still reads the pool's
    // state word. Without the hazard record's wait this is a use-after-free that Miri
    // reports (with `-Zmiri-preemption-rate=0.3` it shows within a few seeds).
    for _ in 0..12 {
        let (pool, live) = pool(1);
        // A fresh object's first return takes the slow path once (new slots are born
        // marked); warm it so the race is with the fast release.
        drop(pool.get_blocking().unwrap());
        let a = pool.get_blocking().unwrap();
        let t = std::thread::spawn(move || drop(a));
        drop(pool);
        t.join().unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}

/// The acquisition future drops its state by hand (`ManuallyDrop`): settled at creation and
/// awaited, settled and dropped unpolled, and lazy then dropped, each frees exactly once.
#[test]
fn acquire_future_state_is_dropped_once() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let (pool, live) = pool(1);
    drop(pool.get_blocking().unwrap()); // one idle object
    let mut cx = Context::from_waker(Waker::noop());
    // Settled at creation, polled to completion.
    let mut f = pool.get();
    let g = match std::pin::Pin::new(&mut f).poll(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("an idle object was there"),
    };
    drop(f);
    // Lazy (nothing idle) and dropped unpolled: holds a pool handle, which it releases.
    let lazy = pool.get();
    drop(lazy);
    drop(g);
    // Settled at creation and dropped unpolled: the guard inside returns the object.
    let f = pool.get();
    drop(f);
    assert!(pool.try_get().is_ok());
    drop(pool);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// A future settled at creation and first polled once its pool is closed, or once every
/// `Pool` handle is gone (the object's reference may then be the allocation's last), or
/// once its object's lifetime is over: the object is taken back and freed exactly once,
/// and the shared state with the last reference.
#[test]
fn a_settled_future_polled_too_late_takes_its_object_back() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    let poll = |f: &mut riptide_pool::AcquireFuture<Obj>, cx: &mut Context<'_>| {
        match std::pin::Pin::new(f).poll(cx) {
            Poll::Ready(r) => r.map(|g| g.data.capacity()),
            Poll::Pending => panic!("nothing to wait for"),
        }
    };
    let ((p1, live1), (p2, live2), (p3, live3)) = (
        pool(1),
        pool(1),
        pool_with(1, Some(std::time::Duration::from_millis(5))),
    );
    // Closed between creation and poll.
    drop(p1.get_blocking().unwrap());
    let mut f = p1.get();
    p1.close();
    assert!(matches!(
        poll(&mut f, &mut cx),
        Err(riptide_pool::PoolError::Closed)
    ));
    drop(f);
    drop(p1);
    // Every handle dropped between creation and poll: the future's object is all that
    // keeps the shared state.
    drop(p2.get_blocking().unwrap());
    let mut f = p2.get();
    drop(p2);
    assert!(matches!(
        poll(&mut f, &mut cx),
        Err(riptide_pool::PoolError::Closed)
    ));
    drop(f);
    // Its lifetime over: taken back, and the acquisition starts over with a new object.
    drop(p3.get_blocking().unwrap());
    let mut f = p3.get();
    std::thread::sleep(std::time::Duration::from_millis(30));
    // It creates anew (on a thread of its own, outside any runtime): poll until done.
    let got = loop {
        match std::pin::Pin::new(&mut f).poll(&mut cx) {
            Poll::Ready(r) => break r.map(|g| g.data.capacity()),
            Poll::Pending => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    };
    assert!(got.is_ok());
    drop(f);
    drop(p3);
    for l in [live1, live2, live3] {
        // Destroyed aside: on a thread of its own here, which may still be at it.
        let t0 = std::time::Instant::now();
        while l.load(Ordering::SeqCst) != 0 && t0.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(l.load(Ordering::SeqCst), 0);
    }
}

/// A future settled at creation and dropped unpolled gives its object back untouched:
/// into the pool while a handle lives, and, once every `Pool` handle is gone (the
/// object's reference may then be the allocation's last), destroyed with the shared
/// state freed exactly once. Past its lifetime, destroyed at once.
#[test]
fn a_settled_future_dropped_unpolled_gives_its_object_back() {
    let ((p1, live1), (p2, live2), (p3, live3)) = (
        pool(1),
        pool(1),
        pool_with(1, Some(std::time::Duration::from_millis(5))),
    );
    // Back into the pool, then taken again.
    drop(p1.get_blocking().unwrap());
    drop(p1.get());
    assert_eq!(p1.get_blocking().unwrap().data.capacity(), 4);
    drop(p1);
    // Every handle dropped first: the future's object is all that keeps the shared state.
    drop(p2.get_blocking().unwrap());
    let f = p2.get();
    drop(p2);
    drop(f);
    // Its lifetime over while the future waited.
    drop(p3.get_blocking().unwrap());
    let f = p3.get();
    std::thread::sleep(std::time::Duration::from_millis(30));
    drop(f);
    assert_eq!(live3.load(Ordering::SeqCst), 0, "destroyed at once");
    drop(p3);
    for l in [live1, live2] {
        assert_eq!(l.load(Ordering::SeqCst), 0);
    }
}
