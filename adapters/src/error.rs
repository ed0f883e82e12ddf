//! The adapters' errors.

use std::time::Duration;

/// Why an extraction failed. Every variant names the problem; after any of them the
/// extractor that reported it goes back to its pool healthy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The CSS selector does not parse.
    #[error("invalid CSS selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The selector as given.
        selector: String,
        /// What the parser said.
        reason: String,
    },
    /// The regular expression does not compile.
    #[error("invalid regex {pattern:?}: {reason}")]
    InvalidRegex {
        /// The pattern as given.
        pattern: String,
        /// What the compiler said.
        reason: String,
    },
    /// The document is larger than the configured limit.
    #[error("document of {size} bytes is over the {limit}-byte limit")]
    TooLarge {
        /// The document's size in bytes.
        size: usize,
        /// The configured limit (`max_document_bytes`).
        limit: usize,
    },
    /// The document nests elements deeper than a query can match on: a CSS selector with
    /// `:has(...)`, whose matching recurses once per level of nesting.
    #[error(
        "document nests {depth} elements deep, over the {limit} a `:has` selector is matched on"
    )]
    TooDeep {
        /// The document's deepest nesting of elements.
        depth: usize,
        /// The deepest nesting a `:has` selector is matched on.
        limit: usize,
    },
    /// The document is not UTF-8.
    #[error("document is not UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The page URL does not parse as an absolute URL.
    #[error("invalid page URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// No extractor could be checked out.
    #[error("extractor pool: {0}")]
    Pool(#[from] riptide_pool::PoolError),
    /// The WASM guest ran past its deadline and was stopped (no fallback configured, or
    /// the fallback was shed: `max_fallbacks` busy for all of `acquire_timeout`).
    #[error("the wasm guest ran past its {0:?} deadline and was stopped")]
    Timeout(Duration),
    /// The WASM guest trapped, ran out of memory, or returned an error (no fallback
    /// configured, or the fallback was shed: `max_fallbacks` busy for all of
    /// `acquire_timeout`).
    #[error("the wasm guest failed: {0}")]
    Guest(String),
    /// The WASM circuit breaker is open (no fallback configured, or the fallback was shed:
    /// `max_fallbacks` busy for all of `acquire_timeout`).
    #[error("the wasm circuit breaker is open")]
    CircuitOpen,
}

impl From<crate::doc_core::DocError> for ExtractError {
    fn from(e: crate::doc_core::DocError) -> Self {
        match e {
            crate::doc_core::DocError::InvalidUrl { url, reason } => {
                ExtractError::InvalidUrl { url, reason }
            }
        }
    }
}

/// A configuration that makes no sense, found by `from_env()` or `new()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An environment variable is set to a value that does not parse or is out of range.
    #[error("environment variable {var}={value:?}: {reason}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field of the config is out of range.
    #[error("config field `{field}`: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The underlying pool rejected its configuration.
    #[error(transparent)]
    Pool(#[from] riptide_pool::ConfigError),
    /// A PostgreSQL connection string or TLS setting that does not parse or cannot work
    /// (the message names the key).
    #[error("postgres: {0}")]
    Postgres(String),
    /// The WASM engine or component could not be set up.
    #[error("wasm setup: {0}")]
    Wasm(String),
}

/// Reads an environment variable into `T`; unset is `None`, unparsable is an error.
pub(crate) fn env_parse<T: std::str::FromStr>(var: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(ConfigError::Env {
            var,
            value: v.to_string_lossy().into_owned(),
            reason: "not valid Unicode".into(),
        }),
        Ok(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ConfigError::Env {
                var,
                value: v.clone(),
                reason: e.to_string(),
            }),
    }
}

/// [`env_parse`] for a value that must be greater than zero (a zero, negative or NaN value
/// is a [`ConfigError::Env`] naming the variable).
pub(crate) fn env_positive<T>(var: &'static str) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    match env_parse::<T>(var)? {
        Some(v) if v.partial_cmp(&T::default()) != Some(std::cmp::Ordering::Greater) => {
            Err(ConfigError::Env {
                var,
                value: v.to_string(),
                reason: "must be greater than zero".into(),
            })
        }
        v => Ok(v),
    }
}
