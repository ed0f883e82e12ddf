//! Readable durations (`"30s"`, `"250ms"`, `"off"`), from the environment and, with the
//! `serde` feature, from configuration files.

use std::time::Duration;

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
    if s.is_empty() {
        return Err("is empty: write a number with a unit, like 30s");
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or("needs a unit, like 30s or 250ms")?;
    let (num, unit) = s.split_at(split);
    // What follows the digits is a unit only if the number ended there: a sign, an
    // exponent, a digit separator or a radix prefix (`-1s`, `1e3s`, `1_000ms`, `0x10s`)
    // is a number this parser does not read, not "an unknown unit".
    if s.starts_with('-') {
        return Err("is negative");
    }
    if num.is_empty() || unit.contains(|c: char| c.is_ascii_digit()) {
        return Err(NOT_A_NUMBER);
    }
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
pub(super) fn parse_limit(s: &str) -> Result<Option<Duration>, &'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "disabled" => Ok(None),
        _ => parse_duration(s).map(Some),
    }
}

#[cfg(feature = "serde")]
pub(in crate::settings) mod serde_duration {
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

    pub(in crate::settings) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<Raw>::deserialize(d)?.map(to_duration).transpose()
    }

    pub(in crate::settings) fn serialize<S: Serializer>(
        v: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&super::duration_text(*d)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(feature = "serde")]
pub(in crate::settings) mod serde_limit {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::serde_duration::{to_duration, Raw};

    pub(in crate::settings) fn deserialize<'de, D: Deserializer<'de>>(
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

    pub(in crate::settings) fn serialize<S: Serializer>(
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
