//! `cargo run --release --example derive_scratch`
//!
//! A custom resource pooled through `#[derive(Poolable)]`: a word counter with reusable
//! state (a hash map and a token buffer that keep their allocations between uses). 64
//! tasks count the words of this repository's Rust sources, sharing 4 counters; the
//! derive's `reset = clear` empties them on return, `health` retires one whose map grew
//! too large, and `max_uses` recycles them.

use std::collections::HashMap;

use riptide_pool::{Pool, Poolable};

#[derive(Poolable, Default)]
#[poolable(health = WordCounter::reasonable, max_uses = 50)]
struct WordCounter {
    #[poolable(reset = clear)]
    counts: HashMap<String, usize>,
    #[poolable(reset = clear)]
    token: String,
    #[poolable(reset = default)]
    words_seen: usize,
}

impl WordCounter {
    fn reasonable(&self) -> bool {
        self.counts.capacity() < 100_000
    }

    fn count(&mut self, text: &str) -> Vec<(String, usize)> {
        for c in text.chars().chain([' ']) {
            if c.is_alphanumeric() || c == '_' {
                self.token.push(c.to_ascii_lowercase());
            } else if !self.token.is_empty() {
                self.words_seen += 1;
                *self
                    .counts
                    .entry(std::mem::take(&mut self.token))
                    .or_default() += 1;
            }
        }
        let mut top: Vec<_> = self.counts.iter().map(|(w, n)| (w.clone(), *n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(3);
        top
    }
}

fn sources() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for dir in [
        "pool/src",
        "pool/tests",
        "pool-derive/src",
        "loom-tests/tests",
        "benches/src",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((
                        format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
                        text,
                    ));
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool: Pool<WordCounter> =
        Pool::builder(|| async { Ok::<_, std::io::Error>(WordCounter::default()) })
            .max_size(4)
            .build()?;
    let files = sources();
    let n = files.len();
    // 64 tasks: each file several times over, so counters are reused many times.
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let pool = pool.clone();
            let (name, text) = files[i % n].clone();
            tokio::spawn(async move {
                let mut counter = pool.get().await?;
                assert_eq!(counter.words_seen, 0, "reset ran on return");
                let top = counter.count(&text);
                Ok::<_, riptide_pool::PoolError>((name, counter.words_seen, top))
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let (name, words, top) = t.await??;
        if i < n {
            println!("{name:32} {words:6} words, top: {top:?}");
        }
    }
    let s = pool.stats();
    println!(
        "\n{} counters made for {} checkouts ({} retired by max_uses/health); waits p50 {:?} p99 {:?}",
        s.created, s.acquired, s.destroyed, s.wait_p50, s.wait_p99
    );
    Ok(())
}
