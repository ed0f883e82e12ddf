//! The WASM adapter's figures (docs/benchmarks.md): cold start, per-call latency fresh vs
//! reuse (pooling allocator on/off, async vs blocking calls), and throughput with 1, 2 and 8
//! concurrent callers, on pages of The Rust Programming Language.
//!
//! ```text
//! cargo run --release -p riptide-adapters --features wasm --example wasm_figures [-- --quick]
//! ```
//!
//! Every figure is a median over rounds measured in this one process.

use riptide_adapters::corpus::{book_pages, file_url};
use riptide_adapters::doc::extract_doc;
use riptide_adapters::wasm::{CallMode, Diagnostic, WasmExtractorPool, WasmPoolConfig};
use riptide_adapters::ExtractionMode;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn base() -> WasmPoolConfig {
    let mut c = WasmPoolConfig::default();
    c.initial_pool_size = 0;
    c.max_instances = 8;
    c
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 3 } else { 7 };
    let calls = if quick { 100 } else { 400 };
    let pages: Arc<Vec<(String, String)>> = Arc::new(
        book_pages(40)
            .into_iter()
            .map(|(p, h)| (file_url(&p), h))
            .collect(),
    );
    let avg_kb = pages.iter().map(|(_, h)| h.len()).sum::<usize>() / pages.len() / 1024;
    println!(
        "WASM adapter figures; {} pages of the book (mean {avg_kb} KiB); medians of {rounds} rounds\n",
        pages.len()
    );

    // 1. Cold start.
    let cache = std::env::temp_dir().join(format!("riptide-wasm-figures-{}", std::process::id()));
    let (mut engine, mut compile, mut load) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let p = WasmExtractorPool::new(base()).await?;
        engine.push(p.stats().startup.engine);
        compile.push(p.stats().startup.component);
    }
    let mut c = base();
    c.cache_dir = Some(cache.clone());
    drop(WasmExtractorPool::new(c.clone()).await?); // writes the cache
    for _ in 0..rounds {
        let p = WasmExtractorPool::new(c.clone()).await?;
        assert!(p.stats().startup.from_cache);
        load.push(p.stats().startup.component);
    }
    let _ = std::fs::remove_dir_all(&cache);
    println!("| cold start | median |\n| --- | ---: |");
    println!("| `Engine::new` | {} |", ms(median(engine)));
    println!(
        "| `Component::new` (compile the guest) | {} |",
        ms(median(compile))
    );
    println!(
        "| `Component::deserialize_file` (cached, precompiled) | {} |\n",
        ms(median(load))
    );

    // 2. Per-call latency, sequential. Every configuration runs once per round, in turn,
    // so slow phases of a shared machine hit them all alike.
    println!("| per call, one caller | pooling allocator | call mode | tiny call (`bump`) | extract a page (Article) |");
    println!("| --- | --- | --- | ---: | ---: |");
    let mut configs = Vec::new();
    for (reuse, label) in [(1, "fresh store"), (100, "reused instance (≤ 100 calls)")] {
        for pooling in [true, false] {
            for mode in [CallMode::Async, CallMode::Blocking] {
                let mut c = base();
                c.reuse_calls = reuse;
                c.pooling_allocator = pooling;
                c.call_mode = mode;
                let pool = WasmExtractorPool::new(c).await?;
                configs.push((label, pooling, mode, pool, vec![], vec![]));
            }
        }
    }
    let mut native = vec![];
    for _ in 0..rounds {
        for (_, _, _, pool, tiny, page) in configs.iter_mut() {
            let t = Instant::now();
            for _ in 0..calls {
                pool.diagnostic(Diagnostic::Bump).await?;
            }
            tiny.push(t.elapsed() / calls);
            let t = Instant::now();
            for i in 0..calls as usize / 4 {
                let (url, html) = &pages[i % pages.len()];
                pool.extract(html, url, ExtractionMode::Article).await?;
            }
            page.push(t.elapsed() / (calls / 4));
        }
        let t = Instant::now();
        for i in 0..calls as usize / 4 {
            let (url, html) = &pages[i % pages.len()];
            std::hint::black_box(extract_doc(html, url, ExtractionMode::Article)?);
        }
        native.push(t.elapsed() / (calls / 4));
    }
    for (label, pooling, mode, pool, tiny, page) in configs {
        assert_eq!(pool.stats().fallbacks, 0);
        println!(
            "| {label} | {} | {mode:?} | {} | {} |",
            if pooling { "on" } else { "off" },
            us(median(tiny)),
            us(median(page)),
        );
    }
    println!(
        "| native `extract_doc` (no wasm), for reference | — | — | — | {} |\n",
        us(median(native))
    );

    // 3. Throughput, fresh store per call (the default), 2 tokio workers.
    println!("| throughput, fresh store, 2 workers | callers | pages/s | vs native |");
    println!("| --- | ---: | ---: | ---: |");
    let pool = WasmExtractorPool::new(base()).await?;
    for callers in [1usize, 2, 8] {
        let per_caller = (calls as usize / 2).div_ceil(callers);
        let (mut wasm, mut nat) = (vec![], vec![]);
        for _ in 0..rounds {
            for native_only in [false, true] {
                let t = Instant::now();
                let hs: Vec<_> = (0..callers)
                    .map(|k| {
                        let (pool, pages) = (pool.clone(), pages.clone());
                        tokio::spawn(async move {
                            for i in 0..per_caller {
                                let (url, html) = &pages[(i + k * 7) % pages.len()];
                                if native_only {
                                    extract_doc(html, url, ExtractionMode::Article).unwrap();
                                } else {
                                    pool.extract(html, url, ExtractionMode::Article)
                                        .await
                                        .unwrap();
                                }
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.await?;
                }
                let rate = Duration::from_secs_f64(
                    t.elapsed().as_secs_f64() / (per_caller * callers) as f64,
                );
                if native_only { &mut nat } else { &mut wasm }.push(rate);
            }
        }
        let (w, n) = (median(wasm), median(nat));
        println!(
            "| wasm | {callers} | {:.0} | {:.2}× |",
            1.0 / w.as_secs_f64(),
            n.as_secs_f64() / w.as_secs_f64()
        );
    }
    let s = pool.stats();
    println!(
        "\nthroughput pool: {} guest calls, mean {:?}, {} fallbacks, {} instances max",
        s.guest_calls, s.mean_guest_call, s.fallbacks, s.pool.max_size
    );
    Ok(())
}
