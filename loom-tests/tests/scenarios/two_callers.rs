//! A partition scenario both model checkers run: loom exhaustively at one preemption
//! (`partitions.rs`), shuttle on more and longer schedules (`shuttle.rs`). Included with
//! `#[path]`; the including file brings its checker's `block_on` and `thread` into scope.

use std::future::IntoFuture;
use std::time::Duration;

use riptide_pool::{PartitionedPool, Poolable};

use super::{block_on, thread};

/// On a pool of one object per key under a global cap of one: two callers of key 1 queue
/// while key 0 holds the only unit and a third thread returns it. The reservation one
/// caller holds for a moment (given back when the gate refuses it) can hide the local
/// room from the other as it queues; both must be served (G1, G2), or the schedule
/// deadlocks, which the checker reports.
pub(crate) fn two_callers_of_a_blocked_key<T: Poolable>(pp: &PartitionedPool<usize, T>) {
    // Key 1's partition exists (a call that does not wait creates it, and no object);
    // key 0 holds the only unit.
    let none = block_on(pp.acquire(&1).timeout(Duration::ZERO).into_future());
    assert!(none.is_err());
    let a = block_on(pp.get(&0)).unwrap();
    riptide_pool::model::join_partition_creates(pp);
    let returner = thread::spawn(move || drop(a));
    let pp2 = pp.clone();
    let other = thread::spawn(move || {
        drop(block_on(pp2.get(&1)).expect("served once key 0 returns"));
    });
    drop(block_on(pp.get(&1)).expect("served once key 0 returns"));
    returner.join().unwrap();
    other.join().unwrap();
    riptide_pool::model::join_partition_creates(pp);
}
