//! An object the pool discards while a caller acquires (`validate` rejects it, its lifetime
//! ran out) is dropped away from the caller: a slow `Drop` (a connection closing on a dead
//! network) never holds the caller past its deadline. Its capacity comes back once it is
//! gone, never before, so a replacement never lives beside it; and its `Drop` runs inside
//! a tokio runtime, so clean-up it spawns finds one.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{Pool, PoolError};

use super::discards::{partitioned, pool, wait_for, Census, Conn, Connect, MARGIN};
use crate::common::{self, until};

/// How long each `Drop` takes (well over `MARGIN`).
const DROP_FOR: Duration = Duration::from_secs(2);

/// A census whose objects each take `DROP_FOR` to drop.
fn census() -> Arc<Census> {
    super::discards::census(DROP_FOR.as_millis() as usize)
}

/// Puts one idle object in `pool` and has `validate` reject it from now on.
async fn one_idle_to_reject(pool: &Pool<Conn>, census: &Census) {
    drop(pool.get().await.unwrap());
    census.rejects.store(usize::MAX, Ordering::SeqCst);
}

#[tokio::test(flavor = "current_thread")]
async fn a_rejected_object_with_a_slow_drop_does_not_hold_the_caller_past_its_deadline() {
    let c = census();
    let pool = pool(&c, 1);
    one_idle_to_reject(&pool, &c).await;
    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let r = pool.acquire().timeout(deadline).await;
    let took = start.elapsed();
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.err());
    assert!(
        took < deadline + MARGIN,
        "the caller waited {took:?} for a 300 ms deadline"
    );
    // The capacity comes back once the object is gone, and not before: the new object
    // never lives beside the old one.
    c.rejects.store(0, Ordering::SeqCst);
    let g = pool
        .acquire()
        .timeout(DROP_FOR * 3)
        .await
        .expect("capacity came back");
    assert_eq!(c.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(
        c.max_live.load(Ordering::SeqCst),
        1,
        "a replacement met the old object"
    );
    drop(g);
    assert_eq!(
        c.outside_a_runtime.load(Ordering::SeqCst),
        0,
        "the Drop ran outside any runtime"
    );
    common::assert_consistent(&pool);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_gets_a_fresh_object_while_the_rejected_one_is_still_dropping() {
    let c = census();
    let pool = pool(&c, 2);
    one_idle_to_reject(&pool, &c).await;
    let start = Instant::now();
    let g = pool
        .acquire()
        .timeout(Duration::from_secs(5))
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(
        took < MARGIN,
        "the caller waited {took:?} for a slow Drop it had no need of"
    );
    assert!(c.max_live.load(Ordering::SeqCst) <= 2);
    drop(g);
    until(|| c.dropped.load(Ordering::SeqCst) == 1).await;
    until(|| pool.stats().size == 1).await;
    common::assert_consistent(&pool);
}

#[test]
fn a_blocking_caller_is_not_held_by_a_rejected_objects_slow_drop() {
    let c = census();
    let rt = common::runtime(true);
    let pool = rt.block_on(async {
        let pool = pool(&c, 1);
        one_idle_to_reject(&pool, &c).await;
        pool
    });
    let p = pool.clone();
    let (took, r) = common::within(Duration::from_secs(10), move || {
        let start = Instant::now();
        let r = p
            .acquire()
            .timeout(Duration::from_millis(300))
            .blocking()
            .map(drop);
        (start.elapsed(), r)
    });
    assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
    assert!(
        took < Duration::from_millis(300) + MARGIN,
        "waited {took:?}"
    );
    wait_for(
        DROP_FOR * 3,
        "the rejected object was never dropped",
        || c.dropped.load(Ordering::SeqCst) > 0,
    );
    assert_eq!(c.outside_a_runtime.load(Ordering::SeqCst), 0);
}

#[test]
fn an_expired_object_with_a_slow_drop_does_not_slow_try_get() {
    let c = census();
    let rt = common::runtime(true);
    let pool = rt.block_on(async {
        let pool = Pool::builder(Connect(c.clone()))
            .max_size(1)
            .max_lifetime(Duration::from_millis(400))
            .build()
            .unwrap();
        drop(pool.get().await.unwrap());
        pool
    });
    // `try_get` in a tight loop: the first call after the object's lifetime ends (before
    // maintenance, every 100 ms, finds it) claims it and must discard it without waiting.
    let give_up = Instant::now() + Duration::from_secs(3);
    loop {
        let start = Instant::now();
        let r = pool.try_get().map(drop);
        let took = start.elapsed();
        assert!(
            took < MARGIN,
            "try_get took {took:?} (it must never wait): {r:?}"
        );
        if r.is_err() {
            break;
        }
        assert!(Instant::now() < give_up, "the object never expired");
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_for(DROP_FOR * 3, "the expired object was never dropped", || {
        c.dropped.load(Ordering::SeqCst) > 0
    });
    assert_eq!(c.outside_a_runtime.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn drain_is_not_held_past_its_timeout_by_slow_drops_of_idle_objects() {
    let c = census();
    let pool = pool(&c, 3);
    drop(common::take_n(&pool, 3).await);
    let start = Instant::now();
    let r = pool.drain(Duration::from_millis(300)).await;
    let took = start.elapsed();
    assert!(r.is_err(), "three 2 s drops were over in {took:?}");
    assert!(
        took < Duration::from_millis(300) + MARGIN,
        "drain(300 ms) took {took:?}"
    );
    // Waiting long enough, drain sees every object gone.
    pool.drain(DROP_FOR * 5)
        .await
        .expect("every object dropped");
    assert_eq!(c.live.load(Ordering::SeqCst), 0);
    assert_eq!(pool.stats().size, 0);
    assert_eq!(c.outside_a_runtime.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_partitioned_drain_is_not_held_past_its_timeout_by_slow_drops() {
    let c = census();
    let pp = partitioned(&c, 4, 2);
    for key in 0..2u8 {
        drop(pp.get(&key).await.unwrap());
    }
    let start = Instant::now();
    let r = pp.drain(Duration::from_millis(300)).await;
    let took = start.elapsed();
    assert!(r.is_err(), "two 2 s drops were over in {took:?}");
    assert!(
        took < Duration::from_millis(300) + MARGIN,
        "drain(300 ms) took {took:?}"
    );
    pp.drain(DROP_FOR * 5).await.expect("every object dropped");
    assert_eq!(c.live.load(Ordering::SeqCst), 0);
}

#[test]
fn idle_eviction_with_slow_drops_does_not_stall_other_pools_upkeep() {
    // Both pools are built outside any runtime: one process-wide upkeep thread evicts
    // their idle objects.
    let c = census();
    let slow = Pool::builder(Connect(c.clone()))
        .max_size(2)
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    drop((slow.get_blocking().unwrap(), slow.get_blocking().unwrap()));
    wait_for(
        Duration::from_secs(5),
        "the idle objects were never evicted",
        || c.dropping.load(Ordering::SeqCst) > 0,
    );
    // The slow pool's objects are being dropped now; another pool's idle object is due
    // 100 ms after its return.
    let other = Arc::new(common::Census::default());
    let quick = common::builder(&other, Duration::ZERO)
        .idle_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    drop(quick.get_blocking().unwrap());
    let returned = Instant::now();
    while other.live.load(Ordering::SeqCst) != 0 {
        assert!(
            returned.elapsed() < Duration::from_millis(100) + MARGIN * 2,
            "the other pool's idle object was not evicted within {:?}: upkeep stalled",
            returned.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_for(
        DROP_FOR * 3,
        "the evicted objects were never dropped",
        || c.dropped.load(Ordering::SeqCst) >= 2,
    );
    assert_eq!(slow.stats().size, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_key_at_the_global_cap_is_not_held_by_another_keys_slow_drop() {
    let c = census();
    let pp = partitioned(&c, 1, 1);
    drop(pp.get(&0).await.unwrap()); // key 0's idle object fills the global cap
    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let r = pp.acquire(&1).timeout(deadline).await;
    let took = start.elapsed();
    assert!(matches!(r, Err(PoolError::Timeout)), "{:?}", r.err());
    assert!(
        took < deadline + MARGIN,
        "key 1 waited {took:?} for a 300 ms deadline on key 0's evicted object"
    );
    // The unit comes back once the evicted object is gone, not before.
    let start = Instant::now();
    let g = pp
        .acquire(&1)
        .timeout(DROP_FOR * 3)
        .await
        .expect("the evicted object's unit came back");
    assert!(start.elapsed() < DROP_FOR + MARGIN, "{:?}", start.elapsed());
    assert_eq!(c.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(c.max_live.load(Ordering::SeqCst), 1, "two objects met");
    assert_eq!(c.outside_a_runtime.load(Ordering::SeqCst), 0);
    drop(g);
}

#[tokio::test(flavor = "current_thread")]
async fn making_room_at_the_global_cap_evicts_one_idle_object_per_caller() {
    let c = Arc::new(Census::default());
    c.drop_ms.store(200, Ordering::SeqCst);
    let pp = partitioned(&c, 4, 4);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pp.get(&0).await.unwrap());
    }
    drop(held); // four idle objects in key 0, the whole global cap
    assert_eq!(pp.stats(&0).unwrap().idle, 4);
    // Two callers of key 1 need room: two of key 0's objects go, the other two stay
    // while those two are still being dropped.
    let (a, b) = tokio::join!(pp.get(&1), pp.get(&1));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(c.dropped.load(Ordering::SeqCst), 2);
    assert_eq!(
        pp.stats(&0).unwrap().idle,
        2,
        "evicted more than the callers needed"
    );
    assert!(c.max_live.load(Ordering::SeqCst) <= 4);
    drop((a, b));
}

/// A queued caller is handed an object just as the pool shrinks (or closes), and gives up
/// before it polls again (its own `select!` or timeout fired): the object the pool now
/// dooms is dropped aside, not inside the caller's drop of its future.
#[test]
fn a_caller_giving_up_after_a_hand_off_never_runs_the_doomed_objects_drop() {
    struct SlowClose;
    impl riptide_pool::Poolable for SlowClose {}
    impl Drop for SlowClose {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    use std::future::{Future, IntoFuture};
    use std::task::{Context, Waker};
    let mut slow = Vec::new();
    for close in [false, true] {
        let rt = common::runtime(true);
        let pool: Pool<SlowClose> = rt.block_on(async {
            Pool::builder(|| async { Ok::<_, std::io::Error>(SlowClose) })
                .max_size(2)
                .build()
                .unwrap()
        });
        let h1 = rt.block_on(pool.get()).unwrap();
        let h2 = rt.block_on(pool.get()).unwrap();
        let mut fut = pool.acquire().timeout(Duration::from_secs(5)).into_future();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            std::pin::Pin::new(&mut fut).poll(&mut cx).is_pending(),
            "queued"
        );
        drop(h1); // handed to the queued caller
        if close {
            pool.close();
        } else {
            pool.resize(1);
        }
        let t0 = Instant::now();
        drop(fut);
        let took = t0.elapsed();
        if took >= Duration::from_millis(500) {
            slow.push(format!("close {close}: dropping the future took {took:?}"));
        }
        drop(h2);
        let _ = &rt;
    }
    assert!(
        slow.is_empty(),
        "the doomed object's Drop ran on the caller: {slow:?}"
    );
}
