//! [`PoolConfig`]: a pool's knobs as data, from a configuration file (`serde`, feature
//! `serde`) or from the environment ([`PoolConfig::from_env`]), applied to a builder with
//! [`PoolBuilder::config`](crate::PoolBuilder::config).
//!
//! Durations are written the readable way: `"30s"`, `"250ms"`, `"1.5s"`, `"10m"`, `"1h"`
//! (units `ns`, `us`, `ms`, `s`, `m`/`min`, `h`); in a file a bare integer is milliseconds.
//! The limits that can be switched off (`idle_timeout`, `max_lifetime`, `leak_threshold`,
//! `reclaim_leaked`) also take `"off"`.
//! A value that does not read is an error that names its knob, in a file ("expected a
//! whole number for `max_size`") as in the environment.
//!
//! ```
//! use riptide_pool::{Pool, PoolConfig, Poolable};
//! # struct Conn; impl Poolable for Conn {}
//! // A twelve-factor service: DB_POOL_MAX_SIZE=32, DB_POOL_ACQUIRE_TIMEOUT=2s, ...
//! # std::env::set_var("DB_POOL_MAX_SIZE", "32");
//! # std::env::set_var("DB_POOL_IDLE_TIMEOUT", "off");
//! let cfg = PoolConfig::from_env("DB_POOL")?;
//! assert_eq!(cfg.max_size, Some(32));
//! assert_eq!(cfg.idle_timeout, Some(None));
//! let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) })
//!     .config(&cfg) // only what is set; the rest keeps its default
//!     .build()?;
//! assert_eq!(pool.stats().max_size, 32);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use crate::error::ConfigError;

mod duration;
#[cfg(feature = "serde")]
mod file;
mod misspelt;

pub use duration::parse_duration;
use duration::parse_limit;
use misspelt::misspelt;

/// A pool's knobs as data. `None` leaves a knob at the builder's value; for the limits
/// that can be switched off, `Some(None)` switches it off. See [`PoolBuilder`] for each
/// knob's meaning and default.
///
/// [`PoolBuilder`]: crate::PoolBuilder
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(default, deny_unknown_fields)
)]
pub struct PoolConfig {
    /// `max_size`.
    #[cfg_attr(feature = "serde", serde(with = "file::max_size"))]
    pub max_size: Option<usize>,
    /// `min_idle`.
    #[cfg_attr(feature = "serde", serde(with = "file::min_idle"))]
    pub min_idle: Option<usize>,
    /// `acquire_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "file::acquire_timeout"))]
    pub acquire_timeout: Option<Duration>,
    /// `create_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "file::create_timeout"))]
    pub create_timeout: Option<Duration>,
    /// `idle_timeout` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "file::idle_timeout"))]
    pub idle_timeout: Option<Option<Duration>>,
    /// `max_lifetime` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "file::max_lifetime"))]
    pub max_lifetime: Option<Option<Duration>>,
    /// `max_uses`.
    #[cfg_attr(feature = "serde", serde(with = "file::max_uses"))]
    pub max_uses: Option<u64>,
    /// `leak_threshold` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "file::leak_threshold"))]
    pub leak_threshold: Option<Option<Duration>>,
    /// `reclaim_leaked` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "file::reclaim_leaked"))]
    pub reclaim_leaked: Option<Option<Duration>>,
    /// `validation_interval`.
    #[cfg_attr(feature = "serde", serde(with = "file::validation_interval"))]
    pub validation_interval: Option<Duration>,
    /// `starvation_threshold`.
    #[cfg_attr(feature = "serde", serde(with = "file::starvation_threshold"))]
    pub starvation_threshold: Option<Duration>,
    /// The circuit breaker's consecutive failures (`Some(0)`: no breaker).
    #[cfg_attr(feature = "serde", serde(with = "file::circuit_failures"))]
    pub circuit_failures: Option<u32>,
    /// The circuit breaker's cool-down.
    #[cfg_attr(feature = "serde", serde(with = "file::circuit_cool_down"))]
    pub circuit_cool_down: Option<Duration>,
    /// The pool's name (the `pool` label of its metrics).
    #[cfg_attr(feature = "serde", serde(with = "file::name"))]
    pub name: Option<String>,
    /// `deadlock_detection`: `off`, `warn` or `error`.
    #[cfg_attr(feature = "serde", serde(with = "file::deadlock_detection"))]
    pub deadlock_detection: Option<crate::DeadlockDetection>,
}

/// Each knob's environment variable suffix, and how to read it.
const VARS: [&str; 15] = [
    "MAX_SIZE",
    "MIN_IDLE",
    "ACQUIRE_TIMEOUT",
    "CREATE_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_LIFETIME",
    "MAX_USES",
    "LEAK_THRESHOLD",
    "RECLAIM_LEAKED",
    "VALIDATION_INTERVAL",
    "STARVATION_THRESHOLD",
    "CIRCUIT_FAILURES",
    "CIRCUIT_COOL_DOWN",
    "NAME",
    "DEADLOCK_DETECTION",
];

impl PoolConfig {
    /// Reads `{PREFIX}_{KNOB}` variables (`PREFIX_MAX_SIZE`, `PREFIX_ACQUIRE_TIMEOUT`, …;
    /// the knob names of [`PoolConfig`] in upper case). A variable that is not set leaves
    /// its knob unset; one that does not parse is a [`ConfigError::Env`] naming it.
    ///
    /// A variable under the prefix whose name is a near miss of a knob's
    /// (`PREFIX_MAX_SIZ`, `PREFIX_MAXSIZE`, `prefix_max_size`, `PREFIX_max_size`,
    /// `PREFIX__MAX_SIZE`; names are read in upper case only) is an error too, naming the
    /// knob it resembles: a typo must not leave the knob at its default unnoticed. Other
    /// variables under the prefix (`PREFIX_URL`; a sibling pool's `PREFIX_2_MAX_SIZE`; the
    /// other end of a limit, `PREFIX_MAX_IDLE`) are left to whoever reads them.
    ///
    /// # Errors
    /// [`ConfigError::Env`] for a value that does not parse (a bad number or duration, a
    /// duration without a unit, `off` for a knob that cannot be switched off, or text
    /// that is not Unicode), or for a variable named like a knob but misspelt.
    pub fn from_env(prefix: &str) -> Result<PoolConfig, ConfigError> {
        let names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
        Self::from_vars(prefix, names, |var| match std::env::var(var) {
            Ok(v) => Ok(Some(v)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err("is not valid Unicode"),
        })
    }

    /// [`from_env`](Self::from_env) over any source of variables (tests, a map): `names`
    /// are the variables that are set, `get` reads one.
    fn from_vars(
        prefix: &str,
        names: impl IntoIterator<Item = String>,
        mut get: impl FnMut(&str) -> Result<Option<String>, &'static str>,
    ) -> Result<PoolConfig, ConfigError> {
        if let Some(e) = misspelt(prefix, names) {
            return Err(e);
        }
        let mut c = PoolConfig::default();
        for suffix in VARS {
            let var = if prefix.is_empty() {
                suffix.to_owned()
            } else {
                format!("{}_{suffix}", prefix.trim_end_matches('_').to_uppercase())
            };
            let err = |reason: String| ConfigError::Env {
                var: var.clone(),
                reason,
            };
            let Some(v) = get(&var).map_err(|r| err(r.to_owned()))? else {
                continue;
            };
            let v = v.trim();
            let num = |v: &str| {
                v.parse::<u64>().map_err(|e| match e.kind() {
                    std::num::IntErrorKind::PosOverflow => err(format!("`{v}` is too large")),
                    _ => err(format!("`{v}` is not a whole number")),
                })
            };
            // A size fits in a `usize` or is refused (never truncated on a 32-bit target).
            let size =
                |v: &str| usize::try_from(num(v)?).map_err(|_| err(format!("`{v}` is too large")));
            let dur = |v: &str| parse_duration(v).map_err(|r| err(format!("`{v}` {r}")));
            let limit = |v: &str| parse_limit(v).map_err(|r| err(format!("`{v}` {r}")));
            match suffix {
                "MAX_SIZE" => c.max_size = Some(size(v)?),
                "MIN_IDLE" => c.min_idle = Some(size(v)?),
                "ACQUIRE_TIMEOUT" => c.acquire_timeout = Some(dur(v)?),
                "CREATE_TIMEOUT" => c.create_timeout = Some(dur(v)?),
                "IDLE_TIMEOUT" => c.idle_timeout = Some(limit(v)?),
                "MAX_LIFETIME" => c.max_lifetime = Some(limit(v)?),
                "MAX_USES" => c.max_uses = Some(num(v)?),
                "LEAK_THRESHOLD" => c.leak_threshold = Some(limit(v)?),
                "RECLAIM_LEAKED" => c.reclaim_leaked = Some(limit(v)?),
                "VALIDATION_INTERVAL" => c.validation_interval = Some(dur(v)?),
                "STARVATION_THRESHOLD" => c.starvation_threshold = Some(dur(v)?),
                "CIRCUIT_FAILURES" => {
                    c.circuit_failures = Some(
                        u32::try_from(num(v)?).map_err(|_| err(format!("`{v}` is too large")))?,
                    )
                }
                "CIRCUIT_COOL_DOWN" => c.circuit_cool_down = Some(dur(v)?),
                "NAME" => c.name = Some(v.to_owned()),
                "DEADLOCK_DETECTION" => {
                    c.deadlock_detection = Some(v.parse().map_err(|r| err(format!("`{v}` {r}")))?);
                }
                _ => unreachable!("every suffix is handled"),
            }
        }
        Ok(c)
    }
}

/// The knob an environment variable sets (`"DB_POOL_MAX_SIZE"` → `"max_size"`).
pub(crate) fn knob_of(var: &str) -> &'static str {
    const KNOBS: [&str; 15] = [
        "max_size",
        "min_idle",
        "acquire_timeout",
        "create_timeout",
        "idle_timeout",
        "max_lifetime",
        "max_uses",
        "leak_threshold",
        "reclaim_leaked",
        "validation_interval",
        "starvation_threshold",
        "circuit_failures",
        "circuit_cool_down",
        "name",
        "deadlock_detection",
    ];
    VARS.iter()
        .zip(KNOBS)
        // Longest first: `MAX_SIZE` must not match `..._MIN_IDLE`-like prefixes wrongly.
        .filter(|(suffix, _)| var.ends_with(*suffix))
        .max_by_key(|(suffix, _)| suffix.len())
        .map_or("environment", |(_, k)| k)
}

#[cfg(test)]
mod tests;
