//! Criterion: the native extractor adapter, pooled against an extractor per call, on real
//! pages. `cargo bench -p riptide-benches --bench native`.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion};
use riptide_adapters::native::NativeExtractorType;
use riptide_benches::current_thread;
use riptide_benches::native::{pages, per_call, pool, pooled};

fn native(c: &mut Criterion) {
    let rt = current_thread();
    let pages = pages(20);
    let pool = pool();
    for (kind, group) in [
        (NativeExtractorType::Regex, "native_regex_4_patterns"),
        (NativeExtractorType::Css, "native_css_2_selectors"),
    ] {
        let mut g = c.benchmark_group(group);
        g.sample_size(20);
        g.bench_function("pooled", |b| {
            b.iter_custom(|n| pooled(&rt, &pool, kind, &pages, n))
        });
        g.bench_function("per_call", |b| b.iter_custom(|n| per_call(kind, &pages, n)));
        g.finish();
    }
}

criterion_group!(benches, native);
criterion_main!(benches);
