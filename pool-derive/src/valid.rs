//! Misuse the parser cannot see on its own, reported with a span on the offending token.

use syn::{Error, Result};

use crate::ast::Input;

pub(crate) fn check(input: &Input) -> Result<()> {
    if let Some(n) = &input.attrs.max_uses {
        match n.base10_parse::<u64>() {
            Ok(0) => {
                return Err(Error::new(
                    n.span(),
                    "`max_uses = 0` would retire every object before its first use; use at \
                     least 1, or leave it out for no limit",
                ))
            }
            Ok(_) => {}
            Err(_) => return Err(Error::new(n.span(), "`max_uses` must fit in a u64")),
        }
    }
    if let Some(n) = &input.attrs.max_lifetime_secs {
        match n.base10_parse::<u64>() {
            Ok(0) => {
                return Err(Error::new(
                    n.span(),
                    "`max_lifetime_secs = 0` would retire every object at once; use at \
                     least 1, or leave it out for no limit",
                ))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(Error::new(
                    n.span(),
                    "`max_lifetime_secs` must fit in a u64",
                ))
            }
        }
    }
    Ok(())
}
