//! The native adapter's main job: titles and headings of every HTML file under a directory,
//! extracted by many tasks sharing one `NativeExtractorPool`, printed as JSON lines, with a
//! progress bar on stderr and the pool's metrics at the end. The headings are the page's own
//! (`NativeExtractorPool::headings`): page chrome such as mdBook's keyboard-shortcuts popup
//! and menu bar is left out.
//!
//! ```text
//! cargo run --release -p riptide-adapters --example headings -- [DIR] [--tasks N] [--limit N]
//! ```
//!
//! `DIR` defaults to The Rust Programming Language shipped with the toolchain
//! (`$(rustc --print sysroot)/share/doc/rust/html/book`; the `rust-docs` component is
//! installed with rustup first if it is missing).

use indicatif::{ProgressBar, ProgressStyle};
use riptide_adapters::corpus::{file_url, rust_docs};
use riptide_adapters::native::{NativeExtractorPool, NativeExtractorType, NativePoolConfig};
use riptide_adapters::ExtractionMode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "html" || x == "htm") {
            out.push(p);
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut tasks, mut limit) = (None, 32usize, usize::MAX);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--tasks" => tasks = args.next().ok_or("--tasks N")?.parse()?,
            "--limit" => limit = args.next().ok_or("--limit N")?.parse()?,
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = match dir {
        Some(d) => d,
        None => rust_docs()?.join("book"),
    };
    let mut files = Vec::new();
    walk(&dir, &mut files)?;
    files.sort();
    files.truncate(limit);
    let files = Arc::new(files);

    // NATIVE_POOL_SIZE / NATIVE_MAX_INSTANCES / NATIVE_IDLE_TIMEOUT_MS apply.
    let pool = NativeExtractorPool::new(NativePoolConfig::from_env()?)?;
    let bar = ProgressBar::new(files.len() as u64).with_style(ProgressStyle::with_template(
        "{bar:40} {pos}/{len} files, {per_sec}, eta {eta}",
    )?);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks.max(1) {
        let (pool, files, next, bar, failed) = (
            pool.clone(),
            files.clone(),
            next.clone(),
            bar.clone(),
            failed.clone(),
        );
        handles.push(tokio::spawn(async move {
            while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                let line = match tokio::fs::read(path).await {
                    Err(e) => serde_json::json!({ "path": path, "error": e.to_string() }),
                    Ok(bytes) => match one(&pool, path, &bytes).await {
                        Ok(v) => v,
                        Err(e) => serde_json::json!({ "path": path, "error": e.to_string() }),
                    },
                };
                if line.get("error").is_some() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                drop(out);
                bar.inc(1);
            }
        }));
    }
    for h in handles {
        h.await?;
    }
    bar.finish();
    let m = pool.metrics();
    eprintln!(
        "{} files in {:.2?} with {tasks} tasks, {} failed\n\
         regex extractors: {} created (max {}); extractions {}, errors {}, \
         cache hit rate {:.1}%; documents parsed {}\n\
         regex pool: {:?}",
        files.len(),
        started.elapsed(),
        failed.load(Ordering::Relaxed),
        m.regex.created,
        pool.config().max_pool_size,
        m.extractions,
        m.errors,
        m.cache_hit_rate * 100.0,
        m.doc_extractions,
        m.regex,
    );
    Ok(())
}

async fn one(
    pool: &NativeExtractorPool,
    path: &Path,
    bytes: &[u8],
) -> Result<serde_json::Value, riptide_adapters::ExtractError> {
    let doc = pool.extract_doc_bytes(bytes, &file_url(path), ExtractionMode::Metadata)?;
    let html = std::str::from_utf8(bytes).expect("checked by extract_doc_bytes");
    let headings: Vec<String> = pool
        .headings(html)?
        .into_iter()
        .filter(|h| h.level <= 3)
        .map(|h| h.text)
        .collect();
    let mut re = pool.checkout(NativeExtractorType::Regex).await?;
    let years = re.extract(html, r"\b(19|20)\d{2}\b")?.len();
    Ok(serde_json::json!({
        "path": path,
        "title": doc.title,
        "headings": headings,
        "links": doc.links.len(),
        "year_mentions": years,
    }))
}
