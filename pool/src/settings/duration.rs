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
pub(super) fn duration_text(d: Duration) -> String {
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
