//! Criterion benches of the core cases against peers: `cargo bench -p riptide-benches`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use riptide_benches::*;

fn sync_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("sync_get_drop");
    let ours = riptide_pool(4);
    g.bench_function("riptide", |b| {
        b.iter_custom(|n| sync_uncontended::riptide(&ours, n))
    });
    let lop = lockfree_object_pool::LinearObjectPool::<u64>::new(|| 0, |v| *v = 0);
    g.bench_function("lockfree-object-pool", |b| {
        b.iter_custom(|n| sync_uncontended::lockfree_object_pool(&lop, n))
    });
    g.finish();
}

fn async_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_get_drop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ours = riptide_pool(4);
    g.bench_function("riptide", |b| {
        b.iter_custom(|n| async_uncontended::riptide(&rt, &ours, n))
    });
    let dp = deadpool_pool(4);
    g.bench_function("deadpool", |b| {
        b.iter_custom(|n| async_uncontended::deadpool(&rt, &dp, n))
    });
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("contended_32_tasks_4_objects");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ours = riptide_pool(4);
    g.bench_function("riptide", |b| {
        b.iter_custom(|n| contended::riptide(&rt, &ours, 32, n.div_ceil(32)))
    });
    let dp = deadpool_pool(4);
    g.bench_function("deadpool", |b| {
        b.iter_custom(|n| contended::deadpool(&rt, &dp, 32, n.div_ceil(32)))
    });
    g.finish();
}

criterion_group!(benches, sync_uncontended, async_uncontended, contended);
criterion_main!(benches);
