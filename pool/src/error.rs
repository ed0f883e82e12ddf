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
    /// The caller holds a checkout of this pool, every object is held, and every holder is
    /// itself waiting on the pool: nobody would ever return one
    /// ([`DeadlockDetection::Error`](crate::DeadlockDetection::Error)).
    WouldDeadlock,
}

impl PoolError {
    /// The factory's own error, if this is a [`PoolError::Create`] carrying an `E`:
    ///
    /// ```
    /// # use riptide_pool::PoolError;
    /// let e = PoolError::Create(Box::new(std::io::Error::other("refused")));
    /// let io: &std::io::Error = e.create_error().expect("an io::Error");
    /// assert_eq!(io.to_string(), "refused");
    /// assert!(e.create_error::<std::fmt::Error>().is_none());
    /// ```
    #[must_use]
    pub fn create_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            PoolError::Create(e) => e.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Takes the factory's own error out of a [`PoolError::Create`] carrying an `E`;
    /// otherwise gives the error back.
    ///
    /// # Errors
    /// `self`, unchanged, when it is not a `Create` carrying an `E`.
    pub fn into_create_error<E: std::error::Error + 'static>(self) -> Result<E, PoolError> {
        match self {
            PoolError::Create(e) => match e.downcast::<E>() {
                Ok(e) => Ok(*e),
                Err(e) => Err(PoolError::Create(e)),
            },
            other => Err(other),
        }
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout => f.write_str("timed out waiting for a pooled object"),
            PoolError::Exhausted => f.write_str("no idle object in the pool"),
            PoolError::Closed => f.write_str("the pool is closed"),
            PoolError::WouldDeadlock => f.write_str(
                "would deadlock: every object is held by a caller that is waiting on the pool \
                 (an acquisition nested inside another checkout of the same pool)",
            ),
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

/// A configuration that makes no sense, found by `build()`, or a setting that does not
/// parse ([`PoolConfig::from_env`](crate::PoolConfig::from_env)).
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
    /// An environment variable's value does not parse.
    Env {
        /// The variable, e.g. `"DB_POOL_ACQUIRE_TIMEOUT"`.
        var: String,
        /// What is wrong with its value.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, reason: &'static str) -> Self {
        ConfigError::Invalid { field, reason }
    }

    /// The name of the offending field (for [`ConfigError::Env`], the variable's knob,
    /// e.g. `"acquire_timeout"` for `DB_POOL_ACQUIRE_TIMEOUT`).
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::Invalid { field, .. } => field,
            ConfigError::Env { var, .. } => crate::settings::knob_of(var),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Invalid { field, reason } => {
                write!(f, "invalid pool configuration: `{field}` {reason}")
            }
            ConfigError::Env { var, reason } => {
                write!(
                    f,
                    "invalid pool configuration: environment variable {var}: {reason}"
                )
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
