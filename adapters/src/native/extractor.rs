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
        // The size first: the limit bounds the work, the UTF-8 check's included.
        let err = if html.len() > self.max_document_bytes {
            ExtractError::TooLarge {
                size: html.len(),
                limit: self.max_document_bytes,
            }
        } else {
            match std::str::from_utf8(html) {
                Ok(s) => return self.extract(s, query),
                Err(e) => ExtractError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                },
            }
        };
        // Counted as every other failed call is.
        self.this_checkout += 1;
        self.lifetime += 1;
        self.counters.extraction(self.kind, false);
        Err(err)
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
                        reason: selector_reason(&e),
                    })
                })?;
                self.counters.cache(hit);
                let doc = Html::parse_document(html);
                let scratch = &mut self.scratch;
                let mut select = || {
                    let mut out = Vec::new();
                    for el in doc.select(selector) {
                        scratch.clear();
                        text_content(el, scratch);
                        out.push(crate::doc::collapse(scratch));
                    }
                    out
                };
                // `:has` matches by recursing once per level of nesting below the element:
                // on a deep page it gets a stack as deep as the page (see `HAS_STACK_*`).
                if !has_relative(query) {
                    return Ok(select());
                }
                let depth = depth_of(&doc);
                if depth > HAS_MAX_DEPTH {
                    return Err(ExtractError::TooDeep {
                        depth,
                        limit: HAS_MAX_DEPTH,
                    });
                }
                if depth <= HAS_SHALLOW {
                    return Ok(select());
                }
                Ok(stacker::grow(
                    HAS_STACK_BASE + depth * HAS_STACK_PER_LEVEL,
                    select,
                ))
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

/// Nesting a `:has` selector matches on the caller's own stack.
const HAS_SHALLOW: usize = 1_000;
/// The deepest document a `:has` selector is matched on (deeper is
/// [`ExtractError::TooDeep`]): its stack would be hundreds of MiB.
const HAS_MAX_DEPTH: usize = 100_000;
/// The stack a `:has` selector gets on a deeper document: this, plus
/// [`HAS_STACK_PER_LEVEL`] per level of nesting (a generous bound on what the matcher's
/// recursion takes per level, debug builds included; the stack is mapped, and only what
/// the recursion touches is used).
const HAS_STACK_BASE: usize = 1 << 20;
/// See [`HAS_STACK_BASE`].
const HAS_STACK_PER_LEVEL: usize = 1 << 10;

/// Whether a selector holds `:has(` (ASCII case-insensitive): the one pseudo-class whose
/// matching walks the element's descendants by recursion.
fn has_relative(query: &str) -> bool {
    query
        .as_bytes()
        .windows(5)
        .any(|w| w.eq_ignore_ascii_case(b":has("))
}

/// The deepest nesting of elements in `doc`, counted without recursion.
fn depth_of(doc: &Html) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for edge in doc.tree.root().traverse() {
        match edge {
            ego_tree::iter::Edge::Open(_) => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ego_tree::iter::Edge::Close(_) => depth -= 1,
        }
    }
    deepest
}

/// The text of `el` as the DOM's `textContent` has it: every text node below it, in
/// order, but not the content of a `<template>` (inert: a document fragment of its own,
/// not the page's text).
fn text_content(el: scraper::ElementRef<'_>, out: &mut String) {
    let is_template = |n: &scraper::Node| n.as_element().is_some_and(|e| e.name() == "template");
    let mut inert = 0usize;
    for edge in el.traverse() {
        match edge {
            ego_tree::iter::Edge::Open(n) if is_template(n.value()) => inert += 1,
            ego_tree::iter::Edge::Close(n) if is_template(n.value()) => inert -= 1,
            ego_tree::iter::Edge::Open(n) if inert == 0 => {
                if let Some(t) = n.value().as_text() {
                    out.push_str(t);
                }
            }
            _ => {}
        }
    }
}

/// What a selector's parse error says. The parser words a few errors that are the
/// selector's own (an empty selector, an unsupported pseudo-class such as `:hover`) as its
/// own fault ("Please report this to the developer"): the kind of error is kept, the
/// preamble dropped.
fn selector_reason(e: &scraper::error::SelectorErrorKind) -> String {
    let text = e.to_string();
    match text.split_once("Please report this to the developer") {
        Some((_, kind)) => format!("not a selector this parser matches ({})", kind.trim()),
        None => text,
    }
}
