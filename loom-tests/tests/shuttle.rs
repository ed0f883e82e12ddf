//! shuttle: large randomized schedules of the real crate (built with `--cfg riptide_shuttle`),
//! where loom's exhaustive search would explode — 6+ threads, every priority, waiters
//! cancelled at arbitrary points, deadlines passing (a logical clock and the pool's real
//! sweeper), and `close` at a random moment. shuttle treats atomics as sequentially
//! consistent, so ordering bugs are loom's job; this hunts protocol bugs in big schedules.
//!
//! ```text
//! RUSTFLAGS="--cfg riptide_shuttle" cargo test -p riptide-loom-tests --release \
//!     --target-dir target/shuttle --test shuttle
//! ```
#![cfg(riptide_shuttle)]

use std::collections::HashSet;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use riptide_pool::{Pool, PoolError, Poolable, Priority};
use shuttle::future::block_on;
use shuttle::thread;

#[path = "scenarios/two_callers.rs"]
mod two_callers;

struct Obj {
    id: usize,
    live: Arc<AtomicUsize>,
}
impl Poolable for Obj {}
impl Drop for Obj {
    fn drop(&mut self) {
        self.live.fetch_sub(1, SeqCst);
    }
}

fn pool(max: usize, live: &Arc<AtomicUsize>, made: &Arc<AtomicUsize>) -> Pool<Obj> {
    let (l, m) = (live.clone(), made.clone());
    Pool::builder(move || {
        let (l, m) = (l.clone(), m.clone());
        async move {
            l.fetch_add(1, SeqCst);
            Ok::<_, std::io::Error>(Obj {
                id: m.fetch_add(1, SeqCst),
                live: l,
            })
        }
    })
    .max_size(max)
    // Deadlock detection is a report path (tests/deadlock.rs covers it); under the model
    // checkers every thread has one holder id, and its read-only scan multiplies the
    // interleavings without checking anything.
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
    .starvation_threshold(Duration::from_millis(10))
    .build()
    .unwrap()
}

fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
}

const PRIOS: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Critical,
];

fn scenario(close_at: Option<usize>) {
    let live = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let p = pool(2, &live, &made);
    let holders = Arc::new(Mutex::new(HashSet::new()));
    let mut threads = Vec::new();
    for t in 0..6 {
        let (p, holders) = (p.clone(), holders.clone());
        threads.push(thread::spawn(move || {
            for round in 0..3 {
                let prio = PRIOS[(t + round) % 4];
                let mut f = p
                    .acquire()
                    .priority(prio)
                    .timeout(Duration::from_millis(25))
                    .into_future();
                if (t + round) % 3 == 0 {
                    // Cancel at an arbitrary point: after one poll, maybe after a hand-off.
                    let first = poll_once(&mut f);
                    thread::yield_now();
                    if let Poll::Ready(Ok(g)) = first {
                        drop(g);
                    }
                    drop(f);
                    continue;
                }
                match block_on(f) {
                    Ok(g) => {
                        assert!(
                            holders.lock().unwrap().insert(g.id),
                            "object {} handed twice",
                            g.id
                        );
                        thread::yield_now();
                        holders.lock().unwrap().remove(&g.id);
                        drop(g);
                    }
                    Err(PoolError::Timeout | PoolError::Closed) => {}
                    Err(e) => panic!("{e:?}"),
                }
            }
        }));
    }
    // Time passes: deadlines expire through the pool's real sweeper pass.
    let clock = {
        let p = p.clone();
        thread::spawn(move || {
            for _ in 0..3 {
                thread::yield_now();
                riptide_pool::model::advance(&p, Duration::from_millis(10));
                riptide_pool::model::sweep(&p);
            }
        })
    };
    if let Some(n) = close_at {
        for _ in 0..n {
            thread::yield_now();
        }
        p.close();
    }
    for t in threads {
        t.join().unwrap();
    }
    clock.join().unwrap();
    riptide_pool::model::join_creates(&p);
    let s = p.stats();
    assert_eq!(s.pending_acquisitions, 0, "{s:?}");
    assert_eq!(s.size, s.idle + s.in_use, "{s:?}");
    assert_eq!(s.in_use, 0, "{s:?}");
    assert_eq!(s.created - s.destroyed, s.size as u64, "{s:?}");
    assert!(s.size <= 2 && made.load(SeqCst) <= 2 + s.destroyed as usize);
    assert_eq!(live.load(SeqCst), s.size, "objects lost or leaked: {s:?}");
    drop(p);
    assert_eq!(live.load(SeqCst), 0);
}

/// Random schedules: 6 worker threads × 3 rounds, all priorities, cancels, deadlines.
#[test]
fn random_schedules_keep_every_counter_consistent() {
    shuttle::check_random(|| scenario(None), 3000);
}

/// The same with `close` at a different moment in each run.
#[test]
fn random_schedules_with_close() {
    for close_at in [0, 3, 10, 40] {
        shuttle::check_random(move || scenario(Some(close_at)), 500);
    }
}

/// PCT (probabilistic concurrency testing) finds bugs needing a few specific preemptions.
#[test]
fn pct_schedules() {
    shuttle::check_pct(|| scenario(None), 1000, 3);
}

/// Partitions: 3 keys (2 objects each) under a global cap of 3, 5 threads taking and
/// returning objects of rotating keys (evictions, blocked keys served by other keys'
/// returns), one thread removing idle partitions meanwhile. No key ever exceeds its cap,
/// the global cap holds, every acquisition is served (a lost hand-over deadlocks the
/// schedule, which shuttle reports), and every counter adds up.
fn partitions_scenario() {
    use riptide_pool::PartitionedPool;
    struct KeyObj {
        key: usize,
        live: Arc<[AtomicUsize; 3]>,
    }
    impl Poolable for KeyObj {}
    impl Drop for KeyObj {
        fn drop(&mut self) {
            self.live[self.key].fetch_sub(1, SeqCst);
        }
    }
    let live: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let peak = Arc::new(AtomicUsize::new(0));
    let (l, pk) = (live.clone(), peak.clone());
    let pp = PartitionedPool::builder(move |key: usize| {
        let (live, peak) = (l.clone(), pk.clone());
        async move {
            let n = live[key].fetch_add(1, SeqCst) + 1;
            assert!(n <= 2, "key {key} over its cap");
            let total: usize = live.iter().map(|x| x.load(SeqCst)).sum();
            peak.fetch_max(total, SeqCst);
            Ok::<_, std::io::Error>(KeyObj { key, live })
        }
    })
    .partition_max_size(2)
    .max_size(3)
    // Deadlock detection is a report path (tests/deadlock.rs covers it); under the model
    // checkers every thread has one holder id, and its read-only scan multiplies the
    // interleavings without checking anything.
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
    .build()
    .unwrap();
    let mut threads = Vec::new();
    for t in 0..5 {
        let pp = pp.clone();
        threads.push(thread::spawn(move || {
            for round in 0..3 {
                let key = (t + round) % 3;
                let g = block_on(pp.get(&key)).expect("served");
                assert_eq!(g.key, key);
                thread::yield_now();
                drop(g);
            }
        }));
    }
    let remover = {
        let pp = pp.clone();
        thread::spawn(move || {
            for _ in 0..3 {
                thread::yield_now();
                pp.remove_idle_partitions();
            }
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    remover.join().unwrap();
    riptide_pool::model::join_partition_creates(&pp);
    assert!(peak.load(SeqCst) <= 3, "global cap exceeded");
    let mut total = 0;
    for k in 0..3 {
        let held = pp.stats(&k).map_or(0, |s| {
            assert_eq!(s.in_use, 0, "{s:?}");
            assert_eq!(s.size, s.idle, "{s:?}");
            s.size
        });
        assert_eq!(
            live[k].load(SeqCst),
            held,
            "key {k}: objects outside the pool"
        );
        total += held;
    }
    assert_eq!(pp.global_size(), total);
}

#[test]
fn random_schedules_of_partitions() {
    shuttle::check_random(partitions_scenario, 2000);
}

#[test]
fn pct_schedules_of_partitions() {
    shuttle::check_pct(partitions_scenario, 500, 3);
}

/// An object of key `.0`.
struct Of(usize);
impl Poolable for Of {}

/// Partitions of one object each under a global cap of one.
fn one_unit_pool() -> riptide_pool::PartitionedPool<usize, Of> {
    riptide_pool::PartitionedPool::builder(
        |key: usize| async move { Ok::<_, std::io::Error>(Of(key)) },
    )
    .partition_max_size(1)
    .max_size(1)
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
    .build()
    .unwrap()
}

/// A partition created while another key holds the whole global cap: the new key's first
/// caller must be served by the other key's return, whenever the creation interleaves with
/// the holder's release and with the caller's registration (every partition the gate can
/// see is one callers can queue in; a caller queued where the gate cannot see it waits
/// forever, which shuttle reports as a deadlock).
fn new_partition_races_the_gate() {
    let pp = one_unit_pool();
    let holder = {
        let pp = pp.clone();
        thread::spawn(move || {
            let g = block_on(pp.get(&0)).expect("served");
            thread::yield_now();
            drop(g);
        })
    };
    // Two callers of the new key: one creates the partition, the other may find it in the
    // map and queue before its creator has finished.
    let newcomers: Vec<_> = (0..2)
        .map(|_| {
            let pp = pp.clone();
            thread::spawn(move || {
                let g = block_on(pp.get(&1)).expect("served");
                assert_eq!(g.0, 1);
            })
        })
        .collect();
    holder.join().unwrap();
    for t in newcomers {
        t.join().unwrap();
    }
    riptide_pool::model::join_partition_creates(&pp);
    assert!(pp.global_size() <= 1);
}

/// The loom model `two_callers_of_a_key_blocked_on_the_global_cap_are_both_served`, on
/// more schedules.
fn two_callers_blocked_on_the_gate() {
    two_callers::two_callers_of_a_blocked_key(&one_unit_pool());
}

#[test]
fn schedules_of_two_callers_blocked_on_the_gate() {
    shuttle::check_pct(two_callers_blocked_on_the_gate, 3000, 3);
    shuttle::check_random(two_callers_blocked_on_the_gate, 3000);
}

#[test]
fn random_schedules_of_a_new_partition() {
    shuttle::check_random(new_partition_races_the_gate, 2000);
}

#[test]
fn pct_schedules_of_a_new_partition() {
    shuttle::check_pct(new_partition_races_the_gate, 2000, 3);
}

/// Partitions of `n` objects each under a global cap of `n`.
fn n_unit_pool(n: usize) -> riptide_pool::PartitionedPool<usize, Of> {
    riptide_pool::PartitionedPool::builder(
        |key: usize| async move { Ok::<_, std::io::Error>(Of(key)) },
    )
    .partition_max_size(n)
    .max_size(n)
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
    .build()
    .unwrap()
}

/// `callers` callers of a new key at once, at the global cap while key 0's
/// `callers + 1` objects sit idle, cost key 0 one object each, no more: however the
/// evictions' drops (on threads of their own) interleave with the callers' reservations,
/// registrations and telling the gate. A caller in the middle of registering (counted in
/// the state word before it looks for a free unit) is no demand to evict for, and two
/// calls making room for one caller evict once. Run with one caller: with several, a
/// unit on its way to one of them can still cost one object more (docs/architecture.md,
/// "Evictions in flight").
fn each_caller_costs_one_eviction(callers: usize) {
    riptide_pool::model::drop_aside_on_threads(true);
    let pp = n_unit_pool(callers + 1);
    let idle: Vec<_> = (0..=callers)
        .map(|_| block_on(pp.get(&0)).unwrap())
        .collect();
    drop(idle);
    riptide_pool::model::join_partition_creates(&pp);
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            let pp = pp.clone();
            thread::spawn(move || block_on(pp.get(&1)).expect("key 1 served"))
        })
        .collect();
    let held: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    riptide_pool::model::join_partition_creates(&pp);
    riptide_pool::model::drop_aside_on_threads(false);
    let left = pp.stats(&0).unwrap().size;
    assert_eq!(
        left,
        1,
        "{callers} callers of key 1 cost key 0 {} objects",
        callers + 1 - left
    );
    drop(held);
}

#[test]
fn schedules_of_a_caller_evicting() {
    shuttle::check_random(|| each_caller_costs_one_eviction(1), 2000);
    shuttle::check_pct(|| each_caller_costs_one_eviction(1), 2000, 3);
}

/// Replays a failing schedule that a run above printed: save the quoted string to a file
/// and run with `--ignored`, `SHUTTLE_REPLAY=path` and `SHUTTLE_SCENARIO=` one of
/// `partitions` (the default), `pool`, `new-partition`, `two-callers`.
#[test]
#[ignore = "replays a schedule named by SHUTTLE_REPLAY"]
fn replay_a_failing_schedule() {
    let path = std::env::var("SHUTTLE_REPLAY").expect("SHUTTLE_REPLAY=<file with the schedule>");
    let schedule: String = std::fs::read_to_string(path)
        .expect("schedule file")
        .split_whitespace()
        .collect();
    match std::env::var("SHUTTLE_SCENARIO").as_deref() {
        Ok("pool") => shuttle::replay(|| scenario(None), &schedule),
        Ok("new-partition") => shuttle::replay(new_partition_races_the_gate, &schedule),
        Ok("two-callers") => shuttle::replay(two_callers_blocked_on_the_gate, &schedule),
        _ => shuttle::replay(partitions_scenario, &schedule),
    }
}
