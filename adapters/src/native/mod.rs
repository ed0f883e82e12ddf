//! The native extractor pool: scraper CSS and regex extractors, pooled by `riptide-pool`.
//!
//! Compiling a query is what costs (four `Regex::new` ≈ 650 µs here against ≈ 3 µs to match
//! with a compiled one), so each pooled [`NativeExtractor`] keeps a bounded LRU of compiled
//! selectors and regexes and a scratch buffer; `reset` clears per-use state and keeps the
//! caches. One pool per [`NativeExtractorType`], sized by [`NativePoolConfig`].

mod extractor;

pub use crate::lru::Lru;
pub use extractor::{NativeExtractor, NativeExtractorType, SCRATCH_KEEP};

use crate::error::{env_parse, env_positive, ConfigError};
use crate::{ExtractError, ExtractedDoc, ExtractionMode, Heading};
use riptide_pool::{Pool, PoolStats, Pooled};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How [`NativeExtractorPool`] sizes and limits its pools. `Default` gives the values in the
/// table; [`from_env`](Self::from_env) starts from them and applies the environment.
///
/// | field | default | environment |
/// | --- | --- | --- |
/// | `min_pool_size` | 2 | `NATIVE_POOL_SIZE` |
/// | `max_pool_size` | 16 | `NATIVE_MAX_INSTANCES` |
/// | `idle_timeout` | 300 s | `NATIVE_IDLE_TIMEOUT_MS` (milliseconds) |
/// | `health_checks` | on | — |
/// | `cache_capacity` | 256 compiled queries per extractor | — |
/// | `max_document_bytes` | 16 MiB | — |
/// | `max_regex_bytes` | 1 MiB per compiled regex | — |
/// | `acquire_timeout` | 30 s | — |
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NativePoolConfig {
    /// Extractors of each kind kept warm (the pool's `min_idle`).
    pub min_pool_size: usize,
    /// Most extractors of each kind (the pool's `max_size`).
    pub max_pool_size: usize,
    /// An idle extractor beyond `min_pool_size` is dropped after this long.
    pub idle_timeout: Duration,
    /// Check each returned extractor (`is_healthy`): one whose scratch buffer grew past
    /// [`SCRATCH_KEEP`] (a huge match) is destroyed and replaced
    /// instead of pinning that memory. Off: the buffer is dropped on return instead.
    pub health_checks: bool,
    /// Compiled selectors (and, separately, regexes) each extractor keeps.
    pub cache_capacity: usize,
    /// Larger documents are [`ExtractError::TooLarge`].
    pub max_document_bytes: usize,
    /// Most memory one compiled regex may take: its program, and apart from it the cache
    /// of its lazy DFA. A pattern whose program is larger (`\w{200}` is about 13 MiB: the
    /// Unicode classes are big) is [`ExtractError::InvalidRegex`], saying so. It does not
    /// bound all a cached regex pins: the `regex` crate also builds a reverse program, and
    /// keeps a lazy-DFA cache for each thread that has run the regex (pooled extractors
    /// move between threads), so the memory grows with those threads: `\w{20}`, the
    /// largest `\w{k}` under the 1 MiB default, pins about 2.5 MiB once used on one
    /// thread and about 1.4 MiB more for each further thread. Keep `cache_capacity` and
    /// the number of threads in mind for patterns with large Unicode classes.
    pub max_regex_bytes: usize,
    /// How long `checkout` waits for a free extractor.
    pub acquire_timeout: Duration,
}

impl Default for NativePoolConfig {
    fn default() -> Self {
        NativePoolConfig {
            min_pool_size: 2,
            max_pool_size: 16,
            idle_timeout: Duration::from_secs(300),
            health_checks: true,
            cache_capacity: 256,
            max_document_bytes: 16 << 20,
            max_regex_bytes: 1 << 20,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

impl NativePoolConfig {
    /// The defaults, overridden by `NATIVE_POOL_SIZE`, `NATIVE_MAX_INSTANCES` and
    /// `NATIVE_IDLE_TIMEOUT_MS` where set. A value that does not parse as a non-negative
    /// integer is a [`ConfigError::Env`] naming the variable; ranges are checked by
    /// [`validate`](Self::validate).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut c = Self::default();
        if let Some(n) = env_parse::<usize>("NATIVE_POOL_SIZE")? {
            c.min_pool_size = n;
        }
        if let Some(n) = env_positive::<usize>("NATIVE_MAX_INSTANCES")? {
            c.max_pool_size = n;
        }
        if let Some(ms) = env_positive::<u64>("NATIVE_IDLE_TIMEOUT_MS")? {
            c.idle_timeout = Duration::from_millis(ms);
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks that the fields make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, reason| Err(ConfigError::Invalid { field, reason });
        if self.max_pool_size == 0 {
            return bad("max_pool_size", "must be at least 1");
        }
        if self.min_pool_size > self.max_pool_size {
            return bad("min_pool_size", "must not exceed max_pool_size");
        }
        if self.cache_capacity == 0 {
            return bad("cache_capacity", "must be at least 1");
        }
        if self.max_document_bytes == 0 {
            return bad("max_document_bytes", "must be at least 1");
        }
        if self.max_regex_bytes < 1024 {
            return bad("max_regex_bytes", "must be at least 1 KiB");
        }
        Ok(())
    }
}

/// Counters shared by a pool's extractors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    extractions: [AtomicU64; 2],
    errors: [AtomicU64; 2],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    docs: AtomicU64,
    doc_errors: AtomicU64,
}

// Relaxed throughout: each counter is an independent tally read for reporting; no other
// memory is published through it.
impl Counters {
    pub(crate) fn extraction(&self, kind: NativeExtractorType, ok: bool) {
        self.extractions[kind.index()].fetch_add(1, Relaxed);
        if !ok {
            self.errors[kind.index()].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn cache(&self, hit: bool) {
        if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        }
        .fetch_add(1, Relaxed);
    }
}

/// A snapshot of a [`NativeExtractorPool`]: pool occupancy per kind, cache effectiveness
/// and outcome counts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NativeMetrics {
    /// CSS extractors checked out now.
    pub css_in_use: usize,
    /// CSS extractors in existence (idle + in use).
    pub css_total: usize,
    /// Regex extractors checked out now.
    pub regex_in_use: usize,
    /// Regex extractors in existence.
    pub regex_total: usize,
    /// Queries served from an extractor's cache.
    pub cache_hits: u64,
    /// Queries compiled (first use on that extractor, or evicted).
    pub cache_misses: u64,
    /// `cache_hits / (cache_hits + cache_misses)`, 0 before any query.
    pub cache_hit_rate: f64,
    /// `extract` calls, both kinds, including failed ones.
    pub extractions: u64,
    /// `extract` calls that returned an error.
    pub errors: u64,
    /// `extract_doc` and `headings` calls, including failed ones.
    pub doc_extractions: u64,
    /// `extract_doc` and `headings` calls that returned an error.
    pub doc_errors: u64,
    /// The CSS pool's full stats.
    pub css: PoolStats,
    /// The regex pool's full stats.
    pub regex: PoolStats,
}

/// Pools of native CSS and regex extractors. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct NativeExtractorPool {
    pools: [Pool<NativeExtractor>; 2],
    counters: Arc<Counters>,
    config: Arc<NativePoolConfig>,
}

impl std::fmt::Debug for NativeExtractorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeExtractorPool")
            .field("config", &self.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl NativeExtractorPool {
    /// Builds one pool per kind. Without a tokio runtime the pools still work; they keep
    /// `min_pool_size` warm once a runtime is running (see `riptide_pool::PoolBuilder`).
    pub fn new(config: NativePoolConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let counters = Arc::new(Counters::default());
        let build = |kind: NativeExtractorType| {
            let (counters, c) = (counters.clone(), config.clone());
            Pool::builder(move || {
                let x = NativeExtractor::new(kind, &c, counters.clone());
                async move { Ok::<_, std::convert::Infallible>(x) }
            })
            .name(match kind {
                NativeExtractorType::Css => "native-css",
                NativeExtractorType::Regex => "native-regex",
            })
            .max_size(config.max_pool_size)
            .min_idle(config.min_pool_size)
            .idle_timeout(config.idle_timeout)
            .acquire_timeout(config.acquire_timeout)
            .build()
        };
        Ok(NativeExtractorPool {
            pools: [
                build(NativeExtractorType::Css)?,
                build(NativeExtractorType::Regex)?,
            ],
            counters,
            config: Arc::new(config),
        })
    }

    /// Checks out an extractor of `kind`: an idle one, a new one, or the next one returned
    /// (up to `acquire_timeout`). It goes back to the pool when the guard drops.
    ///
    /// # Errors
    ///
    /// [`ExtractError::Pool`]: none could be had within `acquire_timeout`, the pool is
    /// closed, or creating one failed.
    ///
    /// # Cancel safety
    ///
    /// As [`riptide_pool::AcquireFuture`]: dropping it before it completes loses no
    /// extractor and leaves no waiter behind.
    pub async fn checkout(
        &self,
        kind: NativeExtractorType,
    ) -> Result<Pooled<NativeExtractor>, ExtractError> {
        Ok(self.pools[kind.index()].get().await?)
    }

    /// Checks out an idle extractor of `kind` without waiting ([`riptide_pool::PoolError::Exhausted`]
    /// if none is idle).
    pub fn try_checkout(
        &self,
        kind: NativeExtractorType,
    ) -> Result<Pooled<NativeExtractor>, ExtractError> {
        Ok(self.pools[kind.index()].try_get()?)
    }

    /// The underlying pool of one kind (for `stats()`, `events()`, `resize`, ...).
    #[must_use]
    pub fn pool(&self, kind: NativeExtractorType) -> &Pool<NativeExtractor> {
        &self.pools[kind.index()]
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &NativePoolConfig {
        &self.config
    }

    /// Title, main content (readability-style) and resolved links of `html`, a page at
    /// `url`. Same as [`extract_doc_with`](Self::extract_doc_with) in
    /// [`ExtractionMode::Article`].
    pub fn extract_doc(&self, html: &str, url: &str) -> Result<ExtractedDoc, ExtractError> {
        self.extract_doc_with(html, url, ExtractionMode::Article)
    }

    /// Title, text and resolved links of `html` (a page at `url`) in `mode`. Runs on the
    /// calling thread (`scraper::Html` is not `Send`); use `spawn_blocking` for very large
    /// documents. Its selectors are compiled once per process.
    pub fn extract_doc_with(
        &self,
        html: &str,
        url: &str,
        mode: ExtractionMode,
    ) -> Result<ExtractedDoc, ExtractError> {
        self.counters.docs.fetch_add(1, Relaxed);
        let r = if html.len() > self.config.max_document_bytes {
            Err(ExtractError::TooLarge {
                size: html.len(),
                limit: self.config.max_document_bytes,
            })
        } else {
            crate::doc::extract_doc(html, url, mode).map_err(ExtractError::from)
        };
        if r.is_err() {
            self.counters.doc_errors.fetch_add(1, Relaxed);
        }
        r
    }

    /// The headings of `html` (`h1`–`h6`, in document order, text collapsed), without
    /// those in hidden elements, page chrome (navigation, menus, popups, sidebars) or
    /// link-dense blocks: on a page of The Rust Programming Language, the chapter's headings,
    /// not the keyboard-shortcuts popup's or the menu bar's. Runs on the calling thread, like
    /// [`extract_doc_with`](Self::extract_doc_with), and counts as a document extraction in
    /// [`metrics`](Self::metrics).
    pub fn headings(&self, html: &str) -> Result<Vec<Heading>, ExtractError> {
        self.counters.docs.fetch_add(1, Relaxed);
        if html.len() > self.config.max_document_bytes {
            self.counters.doc_errors.fetch_add(1, Relaxed);
            return Err(ExtractError::TooLarge {
                size: html.len(),
                limit: self.config.max_document_bytes,
            });
        }
        let doc = scraper::Html::parse_document(html);
        Ok(crate::doc::document_headings(&doc))
    }

    /// [`extract_doc_with`](Self::extract_doc_with) on raw bytes: a document that is not
    /// UTF-8 is [`ExtractError::NotUtf8`].
    pub fn extract_doc_bytes(
        &self,
        html: &[u8],
        url: &str,
        mode: ExtractionMode,
    ) -> Result<ExtractedDoc, ExtractError> {
        // The size first: the limit bounds the work, the UTF-8 check's included.
        let err = if html.len() > self.config.max_document_bytes {
            ExtractError::TooLarge {
                size: html.len(),
                limit: self.config.max_document_bytes,
            }
        } else {
            match std::str::from_utf8(html) {
                Ok(s) => return self.extract_doc_with(s, url, mode),
                Err(e) => ExtractError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                },
            }
        };
        self.counters.docs.fetch_add(1, Relaxed);
        self.counters.doc_errors.fetch_add(1, Relaxed);
        Err(err)
    }

    /// A snapshot of occupancy, cache effectiveness and outcomes.
    #[must_use]
    pub fn metrics(&self) -> NativeMetrics {
        let c = &self.counters;
        let css = self.pools[0].stats();
        let regex = self.pools[1].stats();
        let (hits, misses) = (c.cache_hits.load(Relaxed), c.cache_misses.load(Relaxed));
        NativeMetrics {
            css_in_use: css.in_use,
            css_total: css.size,
            regex_in_use: regex.in_use,
            regex_total: regex.size,
            cache_hits: hits,
            cache_misses: misses,
            cache_hit_rate: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            extractions: c.extractions.iter().map(|a| a.load(Relaxed)).sum(),
            errors: c.errors.iter().map(|a| a.load(Relaxed)).sum(),
            doc_extractions: c.docs.load(Relaxed),
            doc_errors: c.doc_errors.load(Relaxed),
            css,
            regex,
        }
    }
}
