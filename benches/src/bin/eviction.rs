//! `cargo run --release -p riptide-benches --bin eviction`: what a `PartitionedPool`
//! caller pays when its checkout must evict another key's idle object at the global cap
//! (`max_size(1)`, two keys taking turns, so every checkout evicts the other key's object
//! and creates one), against a checkout of the key's own idle object in the same run.
//! The evicted object is dropped on a blocking thread; the caller waits for its unit.

use std::time::Instant;

use riptide_pool::{PartitionedPool, Poolable};

struct Obj;
impl Poolable for Obj {}

/// Checkouts per round, and rounds (the figure is the median of the rounds' medians).
const N: usize = 2000;
const ROUNDS: usize = 9;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let pp = PartitionedPool::builder(|_k: u8| async { Ok::<_, std::io::Error>(Obj) })
            .max_size(1)
            .partition_max_size(1)
            .build()
            .expect("a valid configuration");
        drop(pp.get(&0).await.expect("key 0"));
        let mut evicting = Vec::new();
        let mut own = Vec::new();
        for _ in 0..ROUNDS {
            let mut t = Vec::with_capacity(N);
            for i in 0..N {
                // The key whose object is not the idle one: each checkout evicts.
                let key = (i % 2) as u8 ^ 1;
                let start = Instant::now();
                let g = pp.get(&key).await.expect("served");
                t.push(start.elapsed());
                drop(g);
            }
            evicting.push(median(&mut t));
            // The key that checked out last holds the idle object now.
            let key = ((N - 1) % 2) as u8 ^ 1;
            let mut t = Vec::with_capacity(N);
            for _ in 0..N {
                let start = Instant::now();
                let g = pp.get(&key).await.expect("served");
                t.push(start.elapsed());
                drop(g);
            }
            own.push(median(&mut t));
        }
        let (e, o) = (median(&mut evicting), median(&mut own));
        println!("| case | ns per checkout (median of {ROUNDS} rounds' medians) |");
        println!("| --- | ---: |");
        println!(
            "| a checkout that evicts another key's idle object | {} |",
            e.as_nanos()
        );
        println!(
            "| a checkout of the key's own idle object | {} |",
            o.as_nanos()
        );
    });
}

fn median(t: &mut [std::time::Duration]) -> std::time::Duration {
    t.sort_unstable();
    t[t.len() / 2]
}
