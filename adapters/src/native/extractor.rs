//! The pooled extractor: an ordinary `#[derive(Poolable)]` type. This is the pattern for
//! pooling your own expensive-to-build resource: keep what is costly to make (compiled
//! selectors and regexes) across uses, clear per-use state in `reset`, and say in
//! `is_healthy` when an object should not be reused.

use super::Counters;
use crate::lru::Lru;
use crate::ExtractError;
use regex::{Regex, RegexBuilder};
use riptide_pool::Poolable;
use scraper::{Html, Selector};
use std::sync::Arc;

/// Which extractor a checkout asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NativeExtractorType {
    /// CSS selectors (scraper): `extract` returns the text of each matching element.
    Css,
    /// Regular expressions (regex): `extract` returns each match.
    Regex,
}

impl NativeExtractorType {
    pub(crate) fn index(self) -> usize {
        match self {
            NativeExtractorType::Css => 0,
            NativeExtractorType::Regex => 1,
        }
    }
}

/// A scratch buffer grown past this (by one huge match) is not kept in the pool: with
/// health checks on, the extractor is destroyed and replaced; with them off, the buffer is
/// dropped on return.
pub const SCRATCH_KEEP: usize = 1 << 20;

/// A CSS or regex extractor with its caches of compiled queries and its scratch buffer.
/// Get one from [`NativeExtractorPool::checkout`](super::NativeExtractorPool::checkout).
///
/// It is an ordinary `#[derive(Poolable)]` type, and the pattern for pooling your own
/// expensive-to-build resource: keep what is costly to make across uses (here compiled
/// selectors and regexes, in a bounded [`Lru`]), clear per-use state on return, and say
/// when an object should not be reused:
///
/// ```text
/// #[derive(Poolable)]
/// #[poolable(reset = NativeExtractor::after_use, health = NativeExtractor::healthy)]
/// pub struct NativeExtractor {
///     selectors: Lru<Selector>,                   // kept across checkouts
///     regexes: Lru<Regex>,
///     #[poolable(reset = clear)]
///     scratch: String,                            // emptied on return, allocation kept
///     #[poolable(reset = default)]
///     this_checkout: u64,                         // zeroed on return
///     // ...
/// }
/// ```
///
/// `healthy` retires an extractor whose scratch buffer one huge match grew past
/// [`SCRATCH_KEEP`], so that memory is not pinned in the pool.
#[derive(Poolable)]
#[poolable(reset = NativeExtractor::after_use, health = NativeExtractor::healthy)]
pub struct NativeExtractor {
    kind: NativeExtractorType,
    selectors: Lru<Selector>,
    regexes: Lru<Regex>,
    /// Text of the current match, reused across matches and uses.
    #[poolable(reset = clear)]
    scratch: String,
    /// Extractions since this checkout began.
    #[poolable(reset = default)]
    this_checkout: u64,
    /// Extractions over the extractor's life.
    lifetime: u64,
    max_document_bytes: usize,
    max_regex_bytes: usize,
    health_checks: bool,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for NativeExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeExtractor")
            .field("kind", &self.kind)
            .field("cached_selectors", &self.selectors.len())
            .field("cached_regexes", &self.regexes.len())
            .field("lifetime_extractions", &self.lifetime)
            .finish()
    }
}

impl NativeExtractor {
    pub(crate) fn new(
        kind: NativeExtractorType,
        config: &super::NativePoolConfig,
        counters: Arc<Counters>,
    ) -> Self {
        NativeExtractor {
            kind,
            selectors: Lru::new(config.cache_capacity),
            regexes: Lru::new(config.cache_capacity),
            scratch: String::new(),
            this_checkout: 0,
            lifetime: 0,
            max_document_bytes: config.max_document_bytes,
            max_regex_bytes: config.max_regex_bytes,
            health_checks: config.health_checks,
            counters,
        }
    }

    /// An extractor outside any pool, configured like the pool's would be: for a one-off
    /// use, or to measure what pooling saves (`riptide-benches`' native case).
    #[must_use]
    pub fn standalone(kind: NativeExtractorType, config: &super::NativePoolConfig) -> Self {
        Self::new(kind, config, Arc::default())
    }

    /// What this extractor does.
    #[must_use]
    pub fn kind(&self) -> NativeExtractorType {
        self.kind
    }

    /// Compiled queries held in its cache.
    #[must_use]
    pub fn cached_queries(&self) -> usize {
        self.selectors.len() + self.regexes.len()
    }

    /// Extractions this extractor has done over its life (kept across checkouts).
    #[must_use]
    pub fn lifetime_extractions(&self) -> u64 {
        self.lifetime
    }

    /// Extractions since this checkout began (`reset` zeroes it).
    #[must_use]
    pub fn extractions_this_checkout(&self) -> u64 {
        self.this_checkout
    }

    /// Runs `query` on `html`. A CSS extractor returns the text of each matching element
    /// (whitespace collapsed, trimmed); a regex extractor returns each match of the whole
    /// pattern. The compiled query is cached, so a repeated query is never recompiled.
    pub fn extract(&mut self, html: &str, query: &str) -> Result<Vec<String>, ExtractError> {
        let r = self.run(html, query);
        self.this_checkout += 1;
        self.lifetime += 1;
        self.counters.extraction(self.kind, r.is_ok());
        r
    }

    /// [`extract`](Self::extract) on raw bytes: a document that is not UTF-8 is
    /// [`ExtractError::NotUtf8`].
    pub fn extract_bytes(&mut self, html: &[u8], query: &str) -> Result<Vec<String>, ExtractError> {
        match std::str::from_utf8(html) {
            Ok(s) => self.extract(s, query),
            Err(e) => {
                // Counted as every other failed call is.
                self.this_checkout += 1;
                self.lifetime += 1;
                self.counters.extraction(self.kind, false);
                Err(ExtractError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                })
            }
        }
    }

    fn run(&mut self, html: &str, query: &str) -> Result<Vec<String>, ExtractError> {
        if html.len() > self.max_document_bytes {
            return Err(ExtractError::TooLarge {
                size: html.len(),
                limit: self.max_document_bytes,
            });
        }
        match self.kind {
            NativeExtractorType::Css => {
                let (selector, hit) = self.selectors.get_or_try_insert(query, |q| {
                    Selector::parse(q).map_err(|e| ExtractError::InvalidSelector {
                        selector: q.to_owned(),
                        reason: e.to_string(),
                    })
                })?;
                self.counters.cache(hit);
                let doc = Html::parse_document(html);
                let mut out = Vec::new();
                for el in doc.select(selector) {
                    self.scratch.clear();
                    el.text().for_each(|t| self.scratch.push_str(t));
                    out.push(crate::doc::collapse(&self.scratch));
                }
                Ok(out)
            }
            NativeExtractorType::Regex => {
                let limit = self.max_regex_bytes;
                let (re, hit) = self.regexes.get_or_try_insert(query, |q| {
                    RegexBuilder::new(q)
                        .size_limit(limit)
                        .dfa_size_limit(limit)
                        .build()
                        .map_err(|e| ExtractError::InvalidRegex {
                            pattern: q.to_owned(),
                            reason: e.to_string(),
                        })
                })?;
                self.counters.cache(hit);
                Ok(re.find_iter(html).map(|m| m.as_str().to_owned()).collect())
            }
        }
    }

    fn after_use(&mut self) {
        if !self.health_checks && self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = String::new();
        }
    }

    /// With health checks on, an extractor whose scratch buffer ballooned is retired (the
    /// pool destroys it and makes a fresh one when needed), so one huge document does not
    /// pin its memory in the pool.
    fn healthy(&self) -> bool {
        !self.health_checks || self.scratch.capacity() <= SCRATCH_KEEP
    }
}
