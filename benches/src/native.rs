//! The native extractor adapter on real pages (the toolchain's copy of The Rust Programming
//! Language): a pooled extractor, whose compiled queries stay warm, against building an
//! extractor per call, which compiles its query every time (what code without a pool does).

use riptide_adapters::corpus::book_pages;
use riptide_adapters::native::{
    NativeExtractor, NativeExtractorPool, NativeExtractorType, NativePoolConfig,
};
use std::time::{Duration, Instant};

/// The queries one "op" runs on one page.
pub const CSS_QUERIES: [&str; 2] = ["h1, h2, h3", "main p > code"];
/// Four patterns of the kind a scraper runs: years, e-mail, URLs, Rust items.
pub const REGEX_QUERIES: [&str; 4] = [
    r"\b(19|20)\d{2}\b",
    r"[\w.+-]+@[\w-]+\.[\w.]+",
    r#"https?://[^\s"'<>]+"#,
    r"\b(?:fn|struct|enum|trait|impl)\s+\p{L}[\p{L}\p{N}_]*",
];

/// `n` pages of the book (`rust-docs` is installed on first use if missing; panics with the
/// fix if it cannot be).
pub fn pages(n: usize) -> Vec<String> {
    book_pages(n).into_iter().map(|(_, h)| h).collect()
}

fn queries(kind: NativeExtractorType) -> &'static [&'static str] {
    match kind {
        NativeExtractorType::Css => &CSS_QUERIES,
        NativeExtractorType::Regex => &REGEX_QUERIES,
    }
}

fn run(x: &mut NativeExtractor, page: &str) -> usize {
    let qs = queries(x.kind());
    qs.iter().map(|q| x.extract(page, q).unwrap().len()).sum()
}

/// A pool sized for the single-threaded loop below.
pub fn pool() -> NativeExtractorPool {
    let mut c = NativePoolConfig::default();
    c.min_pool_size = 0;
    c.max_pool_size = 2;
    NativeExtractorPool::new(c).unwrap()
}

/// `iters` ops (one page, every query of `kind`) with an extractor checked out of `pool`.
pub fn pooled(
    rt: &tokio::runtime::Runtime,
    pool: &NativeExtractorPool,
    kind: NativeExtractorType,
    pages: &[String],
    iters: u64,
) -> Duration {
    rt.block_on(async {
        let t = Instant::now();
        for i in 0..iters as usize {
            let mut x = pool.checkout(kind).await.unwrap();
            std::hint::black_box(run(&mut x, &pages[i % pages.len()]));
        }
        t.elapsed()
    })
}

/// `iters` ops with a new extractor each time (every query compiled per call).
pub fn per_call(kind: NativeExtractorType, pages: &[String], iters: u64) -> Duration {
    let config = NativePoolConfig::default();
    let t = Instant::now();
    for i in 0..iters as usize {
        let mut x = NativeExtractor::standalone(kind, &config);
        std::hint::black_box(run(&mut x, &pages[i % pages.len()]));
    }
    t.elapsed()
}
