//! `cargo run --release -p riptide-benches --bin memory`: heap bytes of overhead per pooled
//! object for every pool (1,000 and 16,384 trivial objects), measured with a counting
//! global allocator. `compare` runs this binary for its memory table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use riptide_benches::peers::{AsyncPool, SyncPool};
use riptide_benches::*;

/// Counts live heap bytes, to measure each pool's overhead per object.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: defers to `System`, only counting sizes on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    memory_table();
}

/// Heap bytes per pooled object beyond the object, with 1,000 and with 16,384 objects
/// pooled: the first includes a share of each pool's fixed cost, the second is close to
/// the cost of one more object.
fn memory_table() {
    const SIZES: [usize; 2] = [1_000, 16_384];
    let rt = multi_thread(2);
    // Start process-wide machinery (RipTide's clock thread, runtime internals) first.
    rt.block_on(AsyncPool::build("riptide", 1));
    println!();
    println!("Memory: heap bytes per pooled object beyond the object (8-byte objects):");
    println!();
    println!("| pool | 1,000 pooled | 16,384 pooled |");
    println!("| --- | ---: | ---: |");
    let measure = |name: &str, f: &mut dyn FnMut(usize) -> Box<dyn std::any::Any>| {
        let per = SIZES.map(|n| {
            let before = LIVE.load(Ordering::SeqCst);
            let keep = f(n);
            let after = LIVE.load(Ordering::SeqCst);
            drop(keep);
            // Let what the pool's tasks and threads free settle before the next reading.
            std::thread::sleep(Duration::from_millis(50));
            (after - before) as f64 / n as f64 - 8.0
        });
        println!("| {name} | {:.1} | {:.1} |", per[0], per[1]);
    };
    for name in ASYNC_POOLS {
        measure(name, &mut |n| {
            Box::new(rt.block_on(AsyncPool::build(name, n)))
        });
    }
    for name in ["r2d2", "object-pool", "lockfree-object-pool", "opool"] {
        measure(name, &mut |n| {
            let p = SyncPool::build(name, n);
            if let SyncPool::R2d2(r) = &p {
                while r.state().idle_connections < n as u32 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Box::new(p)
        });
    }
}
