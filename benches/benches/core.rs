//! Criterion benches of the core cases against every peer: `cargo bench -p riptide-benches`.
//! The `compare` binary runs the same cases in one table, plus tail latency, the
//! cancellation storm (lost objects and hangs, not a timing) and memory.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use riptide_benches::peers::{AsyncPool, SyncPool};
use riptide_benches::*;

fn sync_get_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_get_drop");
    for name in SYNC_POOLS {
        let pool = SyncPool::build(name, 4);
        g.bench_function(name, |b| b.iter_custom(|n| sync_uncontended(&pool, n)));
    }
    g.finish();
}

fn async_get_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_get_drop");
    let rt = current_thread();
    for name in ASYNC_POOLS {
        let pool = rt.block_on(AsyncPool::build(name, 4));
        g.bench_function(name, |b| {
            b.iter_custom(|n| async_uncontended(&rt, &pool, n))
        });
    }
    g.finish();
}

fn contended_async(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_async_4_objects");
    let rt = multi_thread(2);
    for tasks in [4usize, 32, 256] {
        for name in ASYNC_POOLS {
            let pool = rt.block_on(AsyncPool::build(name, 4));
            g.bench_with_input(BenchmarkId::new(name, tasks), &tasks, |b, &tasks| {
                b.iter_custom(|n| contended(&rt, &pool, tasks, n.div_ceil(tasks as u64), false).0)
            });
        }
    }
    g.finish();
}

fn contended_sync(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_sync_4_threads_4_objects");
    for name in SYNC_POOLS {
        let pool = SyncPool::build(name, 4);
        g.bench_function(name, |b| {
            b.iter_custom(|n| sync_contended(&pool, 4, n.div_ceil(4)))
        });
    }
    g.finish();
}

fn try_get_exhausted(c: &mut Criterion) {
    let mut g = c.benchmark_group("try_get_exhausted");
    for name in ["riptide", "r2d2", "object-pool", "opool"] {
        let pool = SyncPool::build(name, 4);
        g.bench_function(name, |b| {
            b.iter_custom(|n| try_get_empty(&pool, 4, n).unwrap())
        });
    }
    g.finish();
}

fn priority_mix_bench(c: &mut Criterion) {
    // RipTide only (no peer has priorities): 32 tasks at the four levels on 4 objects.
    let mut g = c.benchmark_group("priority_mix_32_tasks_4_objects");
    let rt = multi_thread(2);
    g.bench_function("riptide", |b| {
        b.iter_custom(|n| {
            let t = std::time::Instant::now();
            priority_mix(&rt, 4, 32, n.div_ceil(32));
            t.elapsed()
        })
    });
    g.finish();
}

fn expensive_resource(c: &mut Criterion) {
    let mut g = c.benchmark_group("regex_set");
    let pool =
        riptide_pool::Pool::builder(|| async { Ok::<_, std::convert::Infallible>(new_matcher()) })
            .max_size(2)
            .build()
            .unwrap();
    g.bench_function("riptide_pooled", |b| {
        b.iter_custom(|n| regex_pooled(&pool, n))
    });
    g.bench_function("unpooled", |b| b.iter_custom(regex_unpooled));
    g.finish();
}

criterion_group!(
    benches,
    sync_get_drop,
    async_get_drop,
    contended_async,
    contended_sync,
    try_get_exhausted,
    priority_mix_bench,
    expensive_resource
);
criterion_main!(benches);
