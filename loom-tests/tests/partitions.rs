//! loom models of the cross-partition protocol of `PartitionedPool`: the global gate, the
//! eviction of another key's idle object, the hand-over of capacity from a key that
//! returns an object to a key blocked on the global cap, and the removal of an idle
//! partition racing an acquisition. Run with the other models:
//!
//! ```text
//! RUSTFLAGS="--cfg riptide_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p riptide-loom-tests --release --target-dir target/loom --test partitions
//! ```
//!
//! A wait that is never served is a deadlock, which loom reports: every model here waits
//! without a deadline.
#![cfg(riptide_loom)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use loom::future::block_on;
use loom::thread;
use riptide_pool::{PartitionedPool, Poolable};

#[path = "scenarios/two_callers.rs"]
mod two_callers;

/// Objects alive per key, and the most each key ever had at once (std atomics: checked
/// after the threads are joined).
#[derive(Default)]
struct Census {
    live: [AtomicUsize; 2],
    peak: [AtomicUsize; 2],
    global_peak: AtomicUsize,
}

impl Census {
    fn total(&self) -> usize {
        self.live[0].load(SeqCst) + self.live[1].load(SeqCst)
    }
}

struct Obj {
    key: usize,
    census: std::sync::Arc<Census>,
}
impl Poolable for Obj {}
impl Drop for Obj {
    fn drop(&mut self) {
        self.census.live[self.key].fetch_sub(1, SeqCst);
    }
}

/// Two keys, each capped at `per_key`, under a global cap of `global`.
fn pool(per_key: usize, global: usize, c: &std::sync::Arc<Census>) -> PartitionedPool<usize, Obj> {
    let c = c.clone();
    PartitionedPool::builder(move |key: usize| {
        let census = c.clone();
        async move {
            let n = census.live[key].fetch_add(1, SeqCst) + 1;
            census.peak[key].fetch_max(n, SeqCst);
            census.global_peak.fetch_max(census.total(), SeqCst);
            Ok::<_, std::io::Error>(Obj { key, census })
        }
    })
    .partition_max_size(per_key)
    .max_size(global)
    // Deadlock detection is a report path (tests/deadlock.rs covers it); under the model
    // checkers every thread has one holder id, and its read-only scan multiplies the
    // interleavings without checking anything.
    .deadlock_detection(riptide_pool::DeadlockDetection::Off)
    .build()
    .unwrap()
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    model_bounded(2, f);
}

/// `model` with at most `preemptions` preemptions per execution (or
/// `LOOM_MAX_PREEMPTIONS`, if lower): for models with more threads, whose state space
/// grows too fast for the suite's bound.
fn model_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(
        b.preemption_bound
            .map_or(preemptions, |e| e.min(preemptions)),
    );
    // Eviction retries and the create threads make these models longer than the core's.
    b.max_branches = 20_000;
    b.check(f);
}

/// Key 1 waits on the global cap while key 0 holds the only unit; key 0's return must
/// destroy its object and hand the unit to key 1 (no lost wake-up, no cap exceeded).
#[test]
fn a_key_blocked_on_the_global_cap_is_served_by_another_keys_return() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let pp = pool(1, 1, &c);
        let a = block_on(pp.get(&0)).unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        let pp2 = pp.clone();
        let t = thread::spawn(move || {
            let b = block_on(pp2.get(&1)).expect("served once key 0 returns");
            assert_eq!(b.key, 1);
        });
        drop(a);
        t.join().unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        assert!(c.global_peak.load(SeqCst) <= 1, "the global cap held");
        assert_eq!(pp.global_size(), 1);
        assert_eq!(pp.stats(&0).unwrap().size, 0, "key 0's object made room");
    });
}

/// Two callers of key 1 queue while key 0 holds the only unit of global capacity: the
/// reservation one of them holds for a moment (then gives back, refused by the gate) can
/// hide the local room from the other as it queues. Whoever sees the other's change must
/// tell the gate (G1), or key 0's return goes idle beside two waiters, which loom reports
/// as a deadlock.
#[test]
fn two_callers_of_a_key_blocked_on_the_global_cap_are_both_served() {
    // Four threads and the create's: one preemption (enough to hold a reservation while
    // the other caller queues) keeps it to minutes.
    model_bounded(1, || {
        let c = std::sync::Arc::new(Census::default());
        two_callers::two_callers_of_a_blocked_key(&pool(1, 1, &c));
        assert!(c.global_peak.load(SeqCst) <= 1, "the global cap held");
        assert!(c.peak[1].load(SeqCst) <= 1, "key 1 never over its cap");
    });
}

/// Key 0 holds the only unit of global capacity; a caller of key 0 queues (polled once
/// here) while a caller of key 1 waits on another thread. Key 0's return makes room for
/// key 1 if key 1 is blocked on the gate, even with key 0's own caller queued (a key with
/// a queue of its own must not keep every unit), and key 0's caller, blocked on the gate
/// in turn, is served by key 1's return. Whatever the order, both are served (loom
/// reports a wait never served) under the cap.
#[test]
fn a_return_in_a_key_with_its_own_waiter_still_makes_room_for_a_blocked_key() {
    // Two callers, two creates and the returns between them: one preemption (enough for
    // key 1 to block on the gate in the middle of key 0's return) keeps it to minutes.
    model_bounded(1, || {
        let c = std::sync::Arc::new(Census::default());
        let pp = pool(1, 1, &c);
        let a = block_on(pp.get(&0)).unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        let pp1 = pp.clone();
        let t = thread::spawn(move || {
            let g = block_on(pp1.get(&1)).expect("key 1 served");
            assert_eq!(g.key, 1);
        });
        let mut mine = std::pin::pin!(pp.get(&0));
        let noop = &mut std::task::Context::from_waker(std::task::Waker::noop());
        assert!(mine.as_mut().poll(noop).is_pending(), "key 0 is at its cap");
        drop(a);
        let g = block_on(mine).expect("key 0 served");
        assert_eq!(g.key, 0);
        drop(g);
        t.join().unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        assert!(c.global_peak.load(SeqCst) <= 1, "the global cap held");
        assert_eq!(c.total(), pp.global_size(), "no object lost or leaked");
    });
}

/// Key 0's idle object fills the global cap, and a caller of key 1 needs room. The
/// object evicted for it is dropped on a thread of its own (as on a blocking thread in a
/// real build), so the caller queues while its eviction is in flight and counts on it
/// (G3: the gate makes no more room while the evictions in flight cover the callers
/// waiting). Whether the drop ends before the caller queues, while it tells the gate, or
/// after, the unit reaches it (the ending eviction and the blocking caller form a Dekker
/// pair), and the new object never lives beside the evicted one (the global cap holds on
/// the objects alive).
#[test]
fn a_caller_waiting_for_an_eviction_in_flight_is_served() {
    model(|| {
        riptide_pool::model::drop_aside_on_threads(true);
        let c = std::sync::Arc::new(Census::default());
        let pp = pool(1, 1, &c);
        drop(block_on(pp.get(&0)).unwrap()); // key 0: one idle object
        riptide_pool::model::join_partition_creates(&pp);
        let g = block_on(pp.get(&1)).expect("key 1 served");
        assert_eq!(g.key, 1);
        assert!(c.global_peak.load(SeqCst) <= 1, "the global cap held");
        drop(g);
        riptide_pool::model::join_partition_creates(&pp);
        riptide_pool::model::drop_aside_on_threads(false);
        assert_eq!(c.total(), pp.global_size(), "no object lost or leaked");
        assert_eq!(pp.stats(&0).unwrap().size, 0, "key 0's object made room");
    });
}

/// Two keys race for the one unit of global capacity while key 0's object sits idle:
/// whoever loses waits and is served when the winner returns.
#[test]
fn racing_keys_share_one_unit_through_eviction() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let pp = pool(1, 1, &c);
        drop(block_on(pp.get(&0)).unwrap()); // key 0: one idle object
        riptide_pool::model::join_partition_creates(&pp);
        let pp2 = pp.clone();
        let t = thread::spawn(move || {
            drop(block_on(pp2.get(&1)).expect("key 1 served"));
        });
        drop(block_on(pp.get(&0)).expect("key 0 served"));
        t.join().unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        assert!(c.global_peak.load(SeqCst) <= 1, "the global cap held");
        assert!(pp.global_size() <= 1);
        let sizes: usize = (0..2).map(|k| pp.stats(&k).map_or(0, |s| s.size)).sum();
        assert_eq!(
            sizes,
            pp.global_size(),
            "the gate counts what the keys hold"
        );
        assert_eq!(c.total(), pp.global_size(), "no object lost or leaked");
    });
}

/// Removing idle partitions while an acquisition for the same key runs: the key never
/// holds more than its cap, and the acquisition is served.
#[test]
fn removing_an_idle_partition_races_an_acquisition() {
    model(|| {
        let c = std::sync::Arc::new(Census::default());
        let pp = pool(1, 2, &c);
        riptide_pool::Pooled::discard(block_on(pp.get(&0)).unwrap()); // exists, empty
        riptide_pool::model::join_partition_creates(&pp);
        let pp2 = pp.clone();
        let t = thread::spawn(move || {
            let g = block_on(pp2.get(&0)).expect("served");
            drop(g);
        });
        let removed = pp.remove_idle_partitions();
        t.join().unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        assert!(removed <= 1);
        assert!(c.peak[0].load(SeqCst) <= 1, "key 0 never over its cap");
        let held = pp.stats(&0).map_or(0, |s| s.size);
        assert_eq!(c.live[0].load(SeqCst), held, "no object outside the map");
        assert_eq!(pp.global_size(), held);
    });
}

/// Key 0 holds the only unit of global capacity; key 1 keeps one object ready
/// (`min_idle`), and its maintenance top-up races a caller of key 1. The top-up's
/// reservation holds key 1's own cap for a moment, then the gate refuses it: the caller
/// that queued meanwhile saw no room of its own and did not tell the gate it is blocked,
/// so whoever gives the reservation back must (G1), or key 0's return goes idle beside
/// the waiter, which loom reports as a deadlock.
#[test]
fn a_min_idle_top_up_refused_by_the_gate_tells_it_of_a_blocked_caller() {
    model_bounded(1, || {
        let c = std::sync::Arc::new(Census::default());
        let per_key = riptide_pool::PartitionLimits {
            max_size: 1,
            min_idle: 1,
            priority_boost: 0,
        };
        let census = c.clone();
        let pp = PartitionedPool::builder(move |key: usize| {
            let census = census.clone();
            async move {
                let n = census.live[key].fetch_add(1, SeqCst) + 1;
                census.peak[key].fetch_max(n, SeqCst);
                census.global_peak.fetch_max(census.total(), SeqCst);
                Ok::<_, std::io::Error>(Obj { key, census })
            }
        })
        .partition_max_size(1)
        .partition(1, per_key)
        .max_size(1)
        .deadlock_detection(riptide_pool::DeadlockDetection::Off)
        .build()
        .unwrap();
        let a = block_on(pp.get(&0)).unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        // Key 1's partition exists (its first top-up, at its build, was refused).
        drop(pp.acquire(&1).timeout(std::time::Duration::ZERO));
        let pp1 = pp.clone();
        let t = thread::spawn(move || {
            let g = block_on(pp1.get(&1)).expect("key 1 served");
            assert_eq!(g.key, 1);
        });
        riptide_pool::model::maintain_partition(&pp, &1);
        drop(a);
        t.join().unwrap();
        riptide_pool::model::join_partition_creates(&pp);
        assert!(c.global_peak.load(SeqCst) <= 1, "the global cap held");
    });
}
