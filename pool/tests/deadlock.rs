//! Deadlock detection (nested acquisitions) and where a waiter stands: queue positions and
//! the per-priority waiting figures of `PoolStats`.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{builder, Census};
use riptide_pool::{
    DeadlockDetection, PartitionedPool, Pool, PoolError, PoolEvent, Poolable, Priority,
};
use tokio::sync::broadcast::Receiver;

/// Far longer than any test here should take: a waiter that reaches it failed the test.
const LONG: Duration = Duration::from_secs(60);

fn pool(n: usize, mode: DeadlockDetection, timeout: Duration) -> (Pool<common::Obj>, Arc<Census>) {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(n)
        .acquire_timeout(timeout)
        .deadlock_detection(mode)
        .build()
        .unwrap();
    (pool, census)
}

/// The nested-wait events received so far: (line held at, line waiting at).
fn nested(rx: &mut Receiver<PoolEvent>) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let PoolEvent::NestedAcquire {
            held_at,
            waiting_at,
        } = e
        {
            got.push((held_at.line(), waiting_at.line()));
        }
    }
    got
}

/// The two-level helper deadlock: N tasks each hold one of N objects, then each calls a
/// helper that takes a second one from the same pool. Returns each task's second result
/// and how long the slowest took.
async fn helper_deadlock(pool: &Pool<common::Obj>, n: usize) -> (Vec<PoolError>, Duration) {
    async fn helper(pool: &Pool<common::Obj>) -> Result<(), PoolError> {
        let _second = pool.get().await?;
        Ok(())
    }
    let start = Instant::now();
    let all_hold = Arc::new(tokio::sync::Barrier::new(n));
    let all_done = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (pool, all_hold, all_done) = (pool.clone(), all_hold.clone(), all_done.clone());
            tokio::spawn(async move {
                let first = pool.get().await.unwrap();
                all_hold.wait().await;
                let r = helper(&pool).await;
                // Hold on until every task is done, so a task that gives up does not
                // serve another with its first object.
                all_done.wait().await;
                drop(first);
                r
            })
        })
        .collect();
    let mut errors = Vec::new();
    for t in tasks {
        errors.push(t.await.unwrap().expect_err("nobody can be served"));
    }
    (errors, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_reports_the_helper_deadlock_once_and_waits_on() {
    let n = 4;
    let (pool, _c) = pool(n, DeadlockDetection::Warn, Duration::from_millis(400));
    let mut rx = pool.events();
    let (errors, _) = helper_deadlock(&pool, n).await;
    assert!(
        errors.iter().all(|e| matches!(e, PoolError::Timeout)),
        "Warn keeps waiting: {errors:?}"
    );
    // Every task held at the same line and waited at the same line: one pair, one report.
    let got = nested(&mut rx);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_ne!(got[0].0, got[0].1);
    // Again: the pair was reported already.
    let _ = helper_deadlock(&pool, n).await;
    assert!(nested(&mut rx).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_fails_the_helper_deadlock_fast() {
    let n = 4;
    let (pool, census) = pool(n, DeadlockDetection::Error, LONG);
    let mut rx = pool.events();
    let (errors, took) = helper_deadlock(&pool, n).await;
    assert!(
        errors.iter().all(|e| matches!(e, PoolError::WouldDeadlock)),
        "{errors:?}"
    );
    assert!(
        took < LONG / 2,
        "failed at once, not at the timeout: {took:?}"
    );
    assert_eq!(nested(&mut rx).len(), 1, "Error reports too");
    // Nothing was lost: every object came back.
    let s = pool.stats();
    assert_eq!(
        (s.in_use, s.idle, s.pending_acquisitions),
        (0, n, 0),
        "{s:?}"
    );
    assert_eq!(census.made.load(std::sync::atomic::Ordering::SeqCst), n);
    assert!(PoolError::WouldDeadlock.to_string().contains("deadlock"));
}

/// The report comes before the error: a caller failed with `WouldDeadlock` finds the
/// `NestedAcquire` event already sent (the README's example checks it right after the
/// error). Repeated on two workers, where the failed caller resumes on another thread
/// while the timer thread is still reporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nested_report_is_sent_before_the_caller_is_failed() {
    for round in 0..200 {
        let (pool, _census) = pool(1, DeadlockDetection::Error, LONG);
        let mut rx = pool.events();
        let own = pool.get().await.unwrap();
        let r = pool.get().await;
        assert!(matches!(r, Err(PoolError::WouldDeadlock)), "{r:?}");
        assert_eq!(
            nested(&mut rx).len(),
            1,
            "round {round}: the report came after"
        );
        drop(own);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_wait_that_can_be_served_is_reported_and_served() {
    for mode in [DeadlockDetection::Warn, DeadlockDetection::Error] {
        let (pool, _c) = pool(2, mode, LONG);
        let mut rx = pool.events();
        // Another task takes the second object and gives it back a little later.
        let (taken, was_taken) = tokio::sync::oneshot::channel();
        let p = pool.clone();
        let giver = tokio::spawn(async move {
            let other = p.get().await.unwrap();
            taken.send(()).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(other);
        });
        was_taken.await.unwrap();
        let first = pool.get().await.unwrap();
        let second = pool
            .get()
            .await
            .expect("served once the other holder returns");
        giver.await.unwrap();
        assert_eq!(nested(&mut rx).len(), 1, "{mode:?}");
        drop((first, second));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_reports_nothing_and_holders_are_not_misattributed() {
    let (pool, _c) = pool(1, DeadlockDetection::Off, Duration::from_millis(100));
    let mut rx = pool.events();
    let held = pool.get().await.unwrap();
    assert!(matches!(pool.get().await, Err(PoolError::Timeout)));
    assert!(nested(&mut rx).is_empty());
    drop(held);

    // With detection on, a caller that holds nothing is not a nested waiter, even while
    // another task holds every object.
    let (pool, _c) = pool_for_other_task(DeadlockDetection::Error).await;
    let mut rx = pool.events();
    let r = pool.acquire().timeout(Duration::from_millis(100)).await;
    assert!(matches!(r, Err(PoolError::Timeout)), "{r:?}");
    assert!(nested(&mut rx).is_empty());
}

/// A pool of one whose only object is held by another task (which keeps it).
async fn pool_for_other_task(mode: DeadlockDetection) -> (Pool<common::Obj>, Arc<Census>) {
    let (pool, census) = pool(1, mode, LONG);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let p = pool.clone();
    tokio::spawn(async move {
        let g = p.get().await.unwrap();
        tx.send(()).unwrap();
        // Keep it for the rest of the test.
        tokio::time::sleep(LONG).await;
        drop(g);
    });
    rx.await.unwrap();
    (pool, census)
}

#[test]
fn blocking_threads_deadlock_is_reported_and_failed() {
    let n = 3;
    for mode in [DeadlockDetection::Warn, DeadlockDetection::Error] {
        let timeout = match mode {
            DeadlockDetection::Error => LONG,
            _ => Duration::from_millis(300),
        };
        let (pool, _c) = pool(n, mode, timeout);
        let mut rx = pool.events();
        let (all_hold, all_done) = (Arc::new(Barrier::new(n)), Arc::new(Barrier::new(n)));
        let start = Instant::now();
        let threads: Vec<_> = (0..n)
            .map(|_| {
                let (pool, all_hold, all_done) = (pool.clone(), all_hold.clone(), all_done.clone());
                std::thread::spawn(move || {
                    let first = pool.get_blocking().unwrap();
                    all_hold.wait();
                    let r = pool.get_blocking().map(drop);
                    all_done.wait();
                    drop(first);
                    r
                })
            })
            .collect();
        let errors: Vec<_> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap_err())
            .collect();
        match mode {
            DeadlockDetection::Error => {
                assert!(
                    errors.iter().all(|e| matches!(e, PoolError::WouldDeadlock)),
                    "{errors:?}"
                );
                assert!(start.elapsed() < LONG / 2);
            }
            _ => assert!(errors.iter().all(|e| matches!(e, PoolError::Timeout))),
        }
        assert_eq!(nested(&mut rx).len(), 1, "{mode:?}");
        assert_eq!(pool.stats().in_use, 0);
    }
}

#[derive(Debug)]
struct Conn;
impl Poolable for Conn {}

fn partitioned(mode: DeadlockDetection, timeout: Duration) -> PartitionedPool<u32, Conn> {
    PartitionedPool::builder(|_key: u32| async { Ok::<_, std::io::Error>(Conn) })
        .partition_max_size(2)
        .max_size(8)
        .acquire_timeout(timeout)
        .deadlock_detection(mode)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_nested_across_keys_and_deadlocked_within_one() {
    // Holding key 1 while waiting on key 2 (whose objects another task holds) is a nested
    // wait of the partitioned pool: reported, and served when key 2's holder returns.
    let pp = partitioned(DeadlockDetection::Error, LONG);
    let (taken, was_taken) = tokio::sync::oneshot::channel();
    let p = pp.clone();
    let giver = tokio::spawn(async move {
        let (a, b) = (p.get(&2).await.unwrap(), p.get(&2).await.unwrap());
        taken.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop((a, b));
    });
    was_taken.await.unwrap();
    // The wait is on key 2: its partition reports it.
    let mut rx = pp.events(&2).unwrap();
    let mine = pp.get(&1).await.unwrap();
    let served = pp
        .get(&2)
        .await
        .expect("served when key 2's holder returns");
    giver.await.unwrap();
    assert_eq!(nested(&mut rx).len(), 1);
    drop((mine, served));

    // Two tasks each hold one of key 3's two objects and each wait for another: a certain
    // deadlock within the partition, failed at once.
    let start = Instant::now();
    let all_hold = Arc::new(tokio::sync::Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (pp, all_hold) = (pp.clone(), all_hold.clone());
            tokio::spawn(async move {
                let _first = pp.get(&3).await.unwrap();
                all_hold.wait().await;
                pp.get(&3).await.map(drop)
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert!(matches!(r, Err(PoolError::WouldDeadlock)), "{r:?}");
    }
    assert!(start.elapsed() < LONG / 2);
}

#[tokio::test(flavor = "current_thread")]
async fn queue_positions_follow_priority_then_age() {
    let (pool, _c) = pool(1, DeadlockDetection::Warn, LONG);
    let held = pool.get().await.unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // Not polled yet: not queued.
    let mut low = pool.acquire().priority(Priority::Low).into_future();
    assert_eq!(low.queue_position(), None);
    let mut normal = pool.get();
    let mut high = pool.acquire().priority(Priority::High).into_future();
    let mut normal2 = pool.get();
    for f in [&mut low, &mut normal, &mut high, &mut normal2] {
        assert!(std::pin::Pin::new(f).poll(&mut cx).is_pending());
    }
    let pos = |fs: [&riptide_pool::AcquireFuture<common::Obj>; 4]| {
        fs.map(riptide_pool::AcquireFuture::queue_position)
    };
    assert_eq!(
        pos([&high, &normal, &normal2, &low]),
        [Some(0), Some(1), Some(2), Some(3)]
    );
    let s = pool.stats();
    assert_eq!(s.waiting_by_priority, [1, 2, 1, 0]);
    assert_eq!(s.waiting_at(Priority::Normal), 2);
    assert_eq!(s.pending_acquisitions, 4);
    // The first one in, low, has waited longest.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(pool.stats().oldest_wait >= Duration::from_millis(25));

    // A cancelled waiter leaves its place; the ones behind move up.
    drop(normal);
    assert_eq!(
        [&high, &normal2, &low].map(riptide_pool::AcquireFuture::queue_position),
        [Some(0), Some(1), Some(2)]
    );
    // The returned object goes to the first in line, which is then no longer queued.
    drop(held);
    assert_eq!(high.queue_position(), None);
    assert_eq!(normal2.queue_position(), Some(0));
    let g = std::pin::Pin::new(&mut high).poll(&mut cx);
    assert!(g.is_ready());
    drop(g);
    drop((normal2, low));
    let s = pool.stats();
    assert_eq!(
        (s.waiting_by_priority, s.oldest_wait),
        ([0; 4], Duration::ZERO)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn aging_moves_an_old_waiter_ahead() {
    let census = Arc::new(Census::default());
    let pool = builder(&census, Duration::ZERO)
        .max_size(1)
        .acquire_timeout(LONG)
        .starvation_threshold(Duration::from_millis(50))
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut low = pool.acquire().priority(Priority::Low).into_future();
    assert!(std::pin::Pin::new(&mut low).poll(&mut cx).is_pending());
    tokio::time::sleep(Duration::from_millis(80)).await;
    let mut high = pool.acquire().priority(Priority::High).into_future();
    assert!(std::pin::Pin::new(&mut high).poll(&mut cx).is_pending());
    // `low` has waited past the threshold: it counts as Critical, and it is older.
    assert_eq!(low.queue_position(), Some(0));
    assert_eq!(high.queue_position(), Some(1));
    // Stats count them as they asked.
    assert_eq!(pool.stats().waiting_by_priority, [1, 0, 1, 0]);
    drop((high, low, held));
}

#[tokio::test(flavor = "current_thread")]
async fn partition_futures_tell_their_position() {
    let pp = partitioned(DeadlockDetection::Warn, LONG);
    let (a, b) = (pp.get(&1).await.unwrap(), pp.get(&1).await.unwrap());
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut first = pp.get(&1);
    let mut second = pp.acquire(&1).priority(Priority::Low).into_future();
    assert_eq!(first.queue_position(), None, "not polled yet");
    assert!(std::pin::Pin::new(&mut first).poll(&mut cx).is_pending());
    assert!(std::pin::Pin::new(&mut second).poll(&mut cx).is_pending());
    assert_eq!(first.queue_position(), Some(0));
    assert_eq!(second.queue_position(), Some(1));
    assert_eq!(pp.stats(&1).unwrap().waiting_by_priority, [1, 1, 0, 0]);
    drop((a, b, first, second));
}

use std::future::{Future, IntoFuture};
