//! `AffinityRules` forgets the oldest half of its hints when its table is full, and
//! remembers none with `max_hints: 0`.
use riptide_pool::{AffinityRules, PartitionedPool, Poolable, RoutingStrategy};

struct Conn;
impl Poolable for Conn {}

/// `AffinityRules::max_hints`: "Hints remembered at most (the oldest half is forgotten
/// when full)". Eight partitions, room for eight hints: hints 0..8 each land on a
/// partition; hint 8 makes room, and hints 4..8 (the newest half) must still be sticky.
#[tokio::test]
async fn a_full_hint_table_forgets_the_oldest_half() {
    let mut wrong = Vec::new();
    for round in 0..5 {
        let pp = PartitionedPool::builder(|_k: u8| async { Ok::<_, std::io::Error>(Conn) })
            .partition_max_size(100)
            .max_size(1000)
            .routing(RoutingStrategy::RoundRobin)
            .affinity(AffinityRules { max_hints: 8 })
            .build()
            .unwrap();
        for k in 0..8u8 {
            drop(pp.get(&k).await.unwrap());
        }
        let mut first = Vec::new();
        for h in 0..8u32 {
            let (k, _g) = pp.get_routed_with(&h).await.unwrap();
            first.push(k);
        }
        let _ = pp.get_routed_with(&8u32).await.unwrap(); // the table was full
        for h in (4..8u32).rev() {
            let (k, _g) = pp.get_routed_with(&h).await.unwrap();
            if k != first[h as usize] {
                wrong.push((round, h, first[h as usize], k));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "newest hints re-routed after the table filled (round, hint, was, now): {wrong:?}"
    );
}

/// `AffinityRules::max_hints`: "Hints remembered at most". With `max_hints: 0` no hint
/// may be remembered: two routed calls with the same hint, round robin over two
/// partitions, go to the two partitions in turn. (The table evicts only when it is full
/// and then inserts, so it always keeps the newest hint.)
#[tokio::test]
async fn max_hints_zero_remembers_no_hint() {
    let pp = PartitionedPool::builder(|_k: u8| async { Ok::<_, std::io::Error>(Conn) })
        .partition_max_size(10)
        .max_size(100)
        .routing(RoutingStrategy::RoundRobin)
        .affinity(AffinityRules { max_hints: 0 })
        .build()
        .unwrap();
    drop(pp.get(&0).await.unwrap());
    drop(pp.get(&1).await.unwrap());
    let (a, g) = pp.get_routed_with(&7u32).await.unwrap();
    drop(g);
    let (b, g) = pp.get_routed_with(&7u32).await.unwrap();
    drop(g);
    assert_ne!(
        a, b,
        "hint 7 stuck to partition {a} although max_hints is 0"
    );
}
