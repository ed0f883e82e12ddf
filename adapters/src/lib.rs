//! Pooled resources for real work, built on [`riptide_pool`]. Each is a cargo feature:
//!
//! - **`native`** (default): [`native::NativeExtractorPool`], pools of scraper CSS and regex
//!   extractors that keep their compiled selectors and regexes warm, and
//!   [`native::NativeExtractorPool::extract_doc`] for title / text / links.
//! - **`wasm`**: `wasm::WasmExtractorPool`, pooled wasmtime component instances running
//!   the bundled guest (`adapters/guest`) with epoch deadlines, memory limits, a circuit
//!   breaker and the native extractor as fallback.
//! - **`postgres`**: `postgres::PgFactory`, pools of tokio-postgres connections with a
//!   per-connection statement cache, recycling methods that never hand out a dirty session,
//!   TLS through rustls, per-tenant partitions, and `postgres::embedded`, a throw-away
//!   server for tests and the pgbench example.
//!
//! The extractors are ordinary [`riptide_pool::Poolable`] types made with
//! `#[derive(Poolable)]`: [`native::NativeExtractor`] shows how to pool your own.
//!
//! ```
//! use riptide_adapters::native::{NativeExtractorPool, NativePoolConfig, NativeExtractorType};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let html = "<html><head><title>Hi</title></head><body><h1>One</h1><p>In 2024.</p></body></html>";
//! let pool = NativeExtractorPool::new(NativePoolConfig::from_env()?)?;
//! let mut css = pool.checkout(NativeExtractorType::Css).await?;
//! assert_eq!(css.extract(html, "h1, h2")?, ["One"]);
//! let mut re = pool.checkout(NativeExtractorType::Regex).await?;
//! assert_eq!(re.extract(html, r"\b(19|20)\d{2}\b")?, ["2024"]);
//! let doc = pool.extract_doc(html, "https://example.com/")?;
//! assert_eq!(doc.title.as_deref(), Some("Hi"));
//! # Ok(()) }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run())
//! # .map_err(|e| e.to_string())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[path = "doc_core.rs"]
mod doc_core;
mod error;
#[cfg(any(feature = "native", feature = "postgres"))]
mod lru;

pub mod corpus;

#[cfg(feature = "native")]
#[cfg_attr(docsrs, doc(cfg(feature = "native")))]
pub mod native;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "wasm")]
#[cfg_attr(docsrs, doc(cfg(feature = "wasm")))]
pub mod wasm;

pub use doc_core::{ExtractedDoc, ExtractionMode, Heading};
pub use error::{ConfigError, ExtractError};

/// docs/adapters.md, whose examples are compiled as doctests.
#[cfg(all(doctest, feature = "wasm", feature = "postgres"))]
#[doc = include_str!("../../docs/adapters.md")]
#[derive(Debug)]
pub struct AdaptersGuide;

/// The PostgreSQL section of docs/adapters.md, doctested with `postgres` alone (with `wasm`
/// on, `AdaptersGuide` covers the whole file).
#[cfg(all(doctest, feature = "postgres", not(feature = "wasm")))]
#[doc = include_str!(concat!(env!("OUT_DIR"), "/postgres_guide.md"))]
pub struct PostgresGuide;

/// Document-level helpers shared by the native extractor and the WASM guest (the guest
/// compiles the very same source file).
pub mod doc {
    pub use crate::doc_core::{
        collapse, document_headings, extract_doc, headings, skipped, visible_text, DocError,
        Heading,
    };
}
