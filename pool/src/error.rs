//! Errors: [`PoolError`] from acquisition, [`ConfigError`] from `build()`.

use std::fmt;

/// A boxed error from a factory.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an acquisition failed.
#[non_exhaustive]
#[derive(Debug)]
pub enum PoolError {
    /// Waited past the acquire timeout.
    Timeout,
    /// `try_get` found no idle object (or callers are already waiting ahead of it).
    Exhausted,
    /// The pool was closed.
    Closed,
    /// The factory failed to create an object (or did not finish within `create_timeout`).
    Create(BoxError),
    /// The factory has been failing; the circuit breaker fails fast. `source()` is the
    /// last create error (its text: the original went to the caller whose create failed).
    CircuitOpen {
        /// The create error that opened the breaker, or the latest one since.
        last_error: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    },
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout => f.write_str("timed out waiting for a pooled object"),
            PoolError::Exhausted => f.write_str("no idle object in the pool"),
            PoolError::Closed => f.write_str("the pool is closed"),
            PoolError::Create(e) => write!(f, "creating a pooled object failed: {e}"),
            PoolError::CircuitOpen { last_error: None } => {
                f.write_str("the factory keeps failing: circuit breaker open")
            }
            PoolError::CircuitOpen {
                last_error: Some(e),
            } => write!(
                f,
                "the factory keeps failing: circuit breaker open (last error: {e})"
            ),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Create(e) => Some(&**e),
            PoolError::CircuitOpen {
                last_error: Some(e),
            } => Some(&**e),
            _ => None,
        }
    }
}

/// A configuration that makes no sense, found by `build()`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A field has a value it cannot take.
    Invalid {
        /// The builder method / field name, e.g. `"max_size"`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        ConfigError::Invalid { field, reason }
    }

    /// The name of the offending field.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Invalid { field, .. } => field,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { field, reason } => {
                write!(f, "invalid pool configuration: `{field}` {reason}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// A failed create, as the circuit breaker keeps it (`PoolError::CircuitOpen`'s source):
/// the error's text and the text of its sources.
#[derive(Debug)]
pub(crate) struct LastCreateError(pub String);

impl LastCreateError {
    pub(crate) fn of(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(x) = src {
            s.push_str(": ");
            s.push_str(&x.to_string());
            src = x.source();
        }
        LastCreateError(s)
    }
}

impl fmt::Display for LastCreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LastCreateError {}

/// The message of a caught panic (`&str` or `String` payloads; anything else is named so).
#[cfg_attr(riptide_model, allow(dead_code))]
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
