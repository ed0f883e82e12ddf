//! [`PoolConfig`]: a pool's knobs as data, from a configuration file (`serde`, feature
//! `serde`) or from the environment ([`PoolConfig::from_env`]), applied to a builder with
//! [`PoolBuilder::config`](crate::PoolBuilder::config).
//!
//! Durations are written the readable way: `"30s"`, `"250ms"`, `"1.5s"`, `"10m"`, `"1h"`
//! (units `ns`, `us`, `ms`, `s`, `m`/`min`, `h`); in a file a bare integer is milliseconds.
//! The limits that can be switched off (`idle_timeout`, `max_lifetime`, `leak_threshold`,
//! `reclaim_leaked`) also take `"off"`.
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
    pub max_size: Option<usize>,
    /// `min_idle`.
    pub min_idle: Option<usize>,
    /// `acquire_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration"))]
    pub acquire_timeout: Option<Duration>,
    /// `create_timeout`.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration"))]
    pub create_timeout: Option<Duration>,
    /// `idle_timeout` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "serde_limit"))]
    pub idle_timeout: Option<Option<Duration>>,
    /// `max_lifetime` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "serde_limit"))]
    pub max_lifetime: Option<Option<Duration>>,
    /// `max_uses`.
    pub max_uses: Option<u64>,
    /// `leak_threshold` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "serde_limit"))]
    pub leak_threshold: Option<Option<Duration>>,
    /// `reclaim_leaked` (`Some(None)`: off).
    #[cfg_attr(feature = "serde", serde(with = "serde_limit"))]
    pub reclaim_leaked: Option<Option<Duration>>,
    /// `validation_interval`.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration"))]
    pub validation_interval: Option<Duration>,
    /// `starvation_threshold`.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration"))]
    pub starvation_threshold: Option<Duration>,
    /// The circuit breaker's consecutive failures (`Some(0)`: no breaker).
    pub circuit_failures: Option<u32>,
    /// The circuit breaker's cool-down.
    #[cfg_attr(feature = "serde", serde(with = "serde_duration"))]
    pub circuit_cool_down: Option<Duration>,
    /// The pool's name (the `pool` label of its metrics).
    pub name: Option<String>,
    /// `deadlock_detection`: `off`, `warn` or `error`.
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
    /// (`PREFIX_MAX_SIZ`, `PREFIX_MAXSIZE`, `prefix_max_size`) is an error too, naming the
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

/// The first of `names` under `prefix` that is not a knob's variable but nearly is one
/// (see `from_env`), as the error that names the knob it resembles.
fn misspelt(prefix: &str, names: impl IntoIterator<Item = String>) -> Option<ConfigError> {
    let prefix = prefix.trim_end_matches('_').to_uppercase();
    if prefix.is_empty() {
        // Every variable of the process would be "under" an empty prefix.
        return None;
    }
    let lead = format!("{prefix}_");
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort(); // the same error whatever order the environment lists them in
    names.into_iter().find_map(|var| {
        let upper = var.to_uppercase();
        let suffix = upper.strip_prefix(&lead)?;
        if var.starts_with(&lead) && VARS.contains(&suffix) {
            return None; // the knob itself
        }
        if VARS
            .iter()
            .any(|knob| suffix.ends_with(&format!("_{knob}")))
        {
            // Another pool's knob under a longer prefix (`PREFIX_2_MAX_SIZE`,
            // `PREFIX_REPLICA_NAME`): not a misspelling of ours.
            return None;
        }
        let swapped = suffix
            .replace("MIN", "\0")
            .replace("MAX", "MIN")
            .replace('\0', "MAX");
        if swapped != suffix && VARS.contains(&swapped.as_str()) {
            // The other end of a limit (`MAX_IDLE`, `MIN_SIZE`): a setting the user meant,
            // not a typo; "did you mean" the opposite limit would mislead.
            return None;
        }
        let squashed: String = suffix.chars().filter(char::is_ascii_alphanumeric).collect();
        let near = VARS.iter().find(|knob| {
            let knob_squashed = knob.replace('_', "");
            // Short names need a closer match: `NAME` is one letter from `NAMES`,
            // two from `MODE`.
            let reach = if knob_squashed.len() <= 5 { 1 } else { 2 };
            squashed == knob_squashed || edit_distance(suffix, knob) <= reach
        })?;
        Some(ConfigError::Env {
            var,
            reason: format!("is not a pool setting; did you mean {lead}{near}?"),
        })
    })
}

/// The Levenshtein distance between two short ASCII-ish names, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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

/// Parses a readable duration: a number (decimals allowed) and a unit, `ns`, `us`/`µs`
/// (the micro sign or the Greek letter mu), `ms`, `s`, `m`/`min` or `h`. The number is
/// read exactly, in whole nanoseconds (a fraction below one nanosecond is dropped):
/// `1234567890123ms` is that many milliseconds, not the nearest `f64`.
///
/// # Errors
/// What is wrong, as a phrase that follows the value ("needs a unit, like 30s").
pub fn parse_duration(s: &str) -> Result<Duration, &'static str> {
    const NOT_A_NUMBER: &str = "is not a number with a unit, like 30s";
    const OUT_OF_RANGE: &str = "is out of range";
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or("needs a unit, like 30s or 250ms")?;
    let (num, unit) = s.split_at(split);
    let unit_ns: u128 = match unit.trim() {
        "ns" => 1,
        // U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU look alike; both are typed.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" | "secs" => 1_000_000_000,
        "m" | "min" | "mins" => 60_000_000_000,
        "h" | "hr" | "hours" => 3_600_000_000_000,
        _ => return Err("has an unknown unit (use ns, us, ms, s, m or h)"),
    };
    // `num` is digits and dots only: at most one dot, and a digit on some side of it.
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(NOT_A_NUMBER);
    }
    let int: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| OUT_OF_RANGE)?
    };
    // 20 fractional digits are finer than a nanosecond of any unit (an hour is 3.6e12 ns),
    // and 10^20 * 3.6e12 fits in a u128.
    let frac = &frac[..frac.len().min(20)];
    let frac_ns = if frac.is_empty() {
        0
    } else {
        let digits: u128 = frac.parse().map_err(|_| NOT_A_NUMBER)?;
        digits * unit_ns / 10u128.pow(frac.len() as u32)
    };
    let total = int
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(frac_ns))
        .ok_or(OUT_OF_RANGE)?;
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| OUT_OF_RANGE)?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// A duration as [`parse_duration`] reads it back exactly: whole milliseconds as `"250ms"`,
/// anything finer in nanoseconds (`"1500000ns"`).
#[cfg(feature = "serde")]
fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// A duration, or `off` (also `none`, `disabled`) for a limit switched off.
fn parse_limit(s: &str) -> Result<Option<Duration>, &'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "disabled" => Ok(None),
        _ => parse_duration(s).map(Some),
    }
}

#[cfg(feature = "serde")]
mod serde_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// A duration as text (`"30s"`) or a whole number of milliseconds.
    pub(super) enum Raw {
        Ms(u64),
        Text(String),
    }

    /// By hand rather than `#[serde(untagged)]`, whose only error is "data did not match
    /// any variant": a negative or fractional number, or a value of another type, says
    /// that it is a duration and what is wrong with it.
    impl<'de> Deserialize<'de> for Raw {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Raw;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(
                        "a duration: text such as \"30s\" or \"250ms\", or whole milliseconds",
                    )
                }
                fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Raw, E> {
                    Ok(Raw::Ms(v))
                }
                fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Raw, E> {
                    u64::try_from(v)
                        .map(Raw::Ms)
                        .map_err(|_| E::custom(format!("duration `{v}` is negative")))
                }
                fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Raw, E> {
                    Err(E::custom(format!(
                        "duration `{v}` is not a whole number of milliseconds \
                         (write a fraction as text, like \"1.5ms\")"
                    )))
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Raw, E> {
                    Ok(Raw::Text(v.to_owned()))
                }
            }
            d.deserialize_any(V)
        }
    }

    pub(super) fn to_duration<E: serde::de::Error>(raw: Raw) -> Result<Duration, E> {
        match raw {
            Raw::Ms(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(t) => {
                super::parse_duration(&t).map_err(|r| E::custom(format!("duration `{t}` {r}")))
            }
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<Raw>::deserialize(d)?.map(to_duration).transpose()
    }

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&super::duration_text(*d)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(feature = "serde")]
mod serde_limit {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::serde_duration::{to_duration, Raw};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<Duration>>, D::Error> {
        Ok(match Option::<Raw>::deserialize(d)? {
            None => None,
            Some(Raw::Text(t))
                if matches!(
                    t.trim().to_ascii_lowercase().as_str(),
                    "off" | "none" | "disabled"
                ) =>
            {
                Some(None)
            }
            Some(raw) => Some(Some(to_duration(raw)?)),
        })
    }

    pub(super) fn serialize<S: Serializer>(
        v: &Option<Option<Duration>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(Some(d)) => s.serialize_str(&super::duration_text(*d)),
            Some(None) => s.serialize_str("off"),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<PoolConfig, ConfigError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PoolConfig::from_vars("app_pool", m.keys().cloned(), |k| Ok(m.get(k).cloned()))
    }

    #[test]
    fn durations_read_the_readable_way() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        // Microseconds: ASCII, the micro sign and the Greek letter mu.
        for us in ["250us", "250\u{b5}s", "250\u{3bc}s"] {
            assert_eq!(parse_duration(us), Ok(Duration::from_micros(250)), "{us}");
        }
        assert!(parse_duration("30").is_err(), "a unit is required");
        assert!(parse_duration("30 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_limit("off"), Ok(None));
    }

    #[test]
    fn env_variables_set_only_their_knobs() {
        let c = from(&[
            ("APP_POOL_MAX_SIZE", "16"),
            ("APP_POOL_ACQUIRE_TIMEOUT", "2s"),
            ("APP_POOL_MAX_LIFETIME", "off"),
            ("APP_POOL_NAME", "orders"),
        ])
        .unwrap();
        assert_eq!(c.max_size, Some(16));
        assert_eq!(c.acquire_timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.max_lifetime, Some(None));
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.name.as_deref(), Some("orders"));
    }

    #[test]
    fn a_value_that_does_not_parse_names_its_variable() {
        let e = from(&[("APP_POOL_ACQUIRE_TIMEOUT", "5")]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Env { var, .. } if var == "APP_POOL_ACQUIRE_TIMEOUT"),
            "{e:?}"
        );
        assert!(e.to_string().contains("APP_POOL_ACQUIRE_TIMEOUT"), "{e}");
        let e = from(&[("APP_POOL_MAX_SIZE", "many")]).unwrap_err();
        assert!(e.to_string().contains("APP_POOL_MAX_SIZE"), "{e}");
        let e = from(&[("APP_POOL_ACQUIRE_TIMEOUT", "off")]).unwrap_err();
        assert!(e.to_string().contains("unit"), "{e}");
    }

    #[test]
    fn a_misspelt_knob_is_an_error_naming_the_knob() {
        for (typo, knob) in [
            ("APP_POOL_MAX_SIZ", "APP_POOL_MAX_SIZE"),
            ("APP_POOL_MAXSIZE", "APP_POOL_MAX_SIZE"),
            ("APP_POOL_MAX-SIZE", "APP_POOL_MAX_SIZE"),
            ("app_pool_max_size", "APP_POOL_MAX_SIZE"),
            ("APP_POOL_AQUIRE_TIMEOUT", "APP_POOL_ACQUIRE_TIMEOUT"),
            ("APP_POOL_IDLE_TIMOUT", "APP_POOL_IDLE_TIMEOUT"),
            ("APP_POOL_NAMES", "APP_POOL_NAME"),
        ] {
            let e = from(&[(typo, "16"), ("APP_POOL_MIN_IDLE", "2")]).unwrap_err();
            assert!(
                matches!(&e, ConfigError::Env { var, .. } if var == typo),
                "{typo}: {e:?}"
            );
            assert!(
                e.to_string().contains(&format!("did you mean {knob}?")),
                "{e}"
            );
        }
    }

    #[test]
    fn other_variables_under_the_prefix_are_left_alone() {
        let c = from(&[
            ("APP_POOL_URL", "postgres://db"),
            ("APP_POOL_HOST", "db"),
            ("APP_POOL_MODE", "rw"),
            ("APP_POOL_USER", "app"),
            ("APP_POOLS", "3"),
            ("APP_POOL_MAX_SIZE", "4"),
            ("OTHER_MAX_SIZ", "9"),
            ("APP_POOL_2_MAX_SIZE", "8"),
            ("APP_POOL_RO_NAME", "replica"),
            ("APP_POOL_MAX_IDLE", "10"),
            ("APP_POOL_MIN_SIZE", "1"),
        ])
        .unwrap();
        assert_eq!(c.max_size, Some(4));
        // An empty prefix looks at no other variable.
        let c = PoolConfig::from_vars("", ["MAX_SIZ".to_owned()], |_| Ok(None)).unwrap();
        assert_eq!(c, PoolConfig::default());
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("MAX_SIZE", "MAX_SIZE"), 0);
        assert_eq!(edit_distance("MAX_SIZ", "MAX_SIZE"), 1);
        assert_eq!(edit_distance("MIN_SIZE", "MAX_SIZE"), 2);
        assert_eq!(edit_distance("", "NAME"), 4);
        assert_eq!(edit_distance("MODE", "NAME"), 3);
    }
}
