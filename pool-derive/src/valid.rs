//! Misuse the parser cannot see on its own, reported with a span on the offending token.

use syn::{Error, LitInt, Result};

use crate::attr::StructAttrs;

/// The struct's integer keys, both reported when both are wrong.
pub(crate) fn check(a: &StructAttrs) -> Result<()> {
    let uses = positive_u64(
        a.max_uses.as_ref(),
        "max_uses",
        "would retire every object before its first use",
    );
    let lifetime = positive_u64(
        a.max_lifetime_secs.as_ref(),
        "max_lifetime_secs",
        "would retire every object at once",
    );
    match (uses, lifetime) {
        (Err(mut a), Err(b)) => {
            a.combine(b);
            Err(a)
        }
        (r, Ok(())) | (Ok(()), r) => r,
    }
}

/// An integer key must fit in a `u64` and be at least 1 (not negative); `zero` says what 0
/// would do.
fn positive_u64(lit: Option<&LitInt>, key: &str, zero: &str) -> Result<()> {
    let Some(n) = lit else { return Ok(()) };
    if !matches!(n.suffix(), "" | "u64") {
        return Err(Error::new(
            n.span(),
            format!(
                "`{key}` is a u64: write `{key} = {}` (no suffix, or `u64`)",
                n.base10_digits()
            ),
        ));
    }
    // syn reads `-1` as one negative literal: a count that is negative is not "too
    // large for a u64". `-0` is 0.
    let digits = n.base10_digits();
    if digits.starts_with('-') && digits[1..].bytes().any(|b| b != b'0') {
        return Err(Error::new(
            n.span(),
            format!(
                "`{key} = {}` is negative; use at least 1, or leave it out for no limit",
                n.base10_digits()
            ),
        ));
    }
    match digits.trim_start_matches('-').parse::<u64>() {
        Ok(0) => Err(Error::new(
            n.span(),
            format!("`{key} = 0` {zero}; use at least 1, or leave it out for no limit"),
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(Error::new(n.span(), format!("`{key}` must fit in a u64"))),
    }
}
