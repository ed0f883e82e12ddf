//! `#[derive(Poolable)]` for [`riptide-pool`](https://docs.rs/riptide-pool): generates the
//! `riptide_pool::Poolable` impl from `#[poolable(...)]` attributes. Use it through
//! `riptide_pool::Poolable` (feature `derive`, on by default).
//!
//! | where | attribute | effect |
//! | --- | --- | --- |
//! | field | `#[poolable(reset = clear)]` | `reset` calls `self.field.clear()` (any method name) |
//! | field | `#[poolable(reset = default)]` | `reset` sets the field to `Default::default()` |
//! | field | `#[poolable(reset_with = path::to_fn)]` | `reset` calls `path::to_fn(&mut self.field)` |
//! | field | `#[poolable(skip)]` | field untouched (the default for unmarked fields) |
//! | struct | `#[poolable(reset = path)]` | after the field resets, calls `path(&mut self)` |
//! | struct | `#[poolable(health = path)]` | `is_healthy` calls `path(&self) -> bool` |
//! | struct | `#[poolable(max_uses = 1000)]` | sets `MAX_USES` |
//! | struct | `#[poolable(max_lifetime_secs = 300)]` | sets `MAX_LIFETIME` |
//!
//! Field resets run in declaration order, then the struct-level `reset`, once per return.
//! Generics and where-clauses are carried through; the impl adds `where Self: Send +
//! 'static`. The generated code names `::riptide_pool`, so the crate using the derive must
//! depend on `riptide-pool` under that name.
//!
//! The generated code works in a crate of any edition, binds no local names (so none of
//! the crate's constants can clash with it), and trips none of the allow-by-default lints a
//! crate may deny. In a 2015-edition crate, for instance:
//!
//! ```edition2015
//! extern crate riptide_pool;
//! use riptide_pool::Poolable;
//!
//! #[derive(Poolable)]
//! #[poolable(health = Conn::ok, max_uses = 100)]
//! struct Conn {
//!     #[poolable(reset = default)]
//!     scratch: Vec<u8>,
//! }
//! impl Conn {
//!     fn ok(&self) -> bool {
//!         self.scratch.capacity() < 1 << 20
//!     }
//! }
//!
//! let mut c = Conn { scratch: vec![1, 2] };
//! c.reset();
//! assert!(c.scratch.is_empty() && c.is_healthy());
//! ```
//!
//! Misuse (an unknown or duplicate key, a wrong literal, `max_uses = 0`, an enum, ...) is a
//! compile error with its span on the offending token; every misuse in the struct and its
//! fields is reported, not only the first. The derive then still emits an empty
//! `Poolable` impl, so the misuse is the only error: uses of the type in a pool do not add
//! "`Poolable` is not implemented" errors of their own.
//!
//! The layout follows thiserror's: `ast` (what the input is), `attr` (the attributes),
//! `valid` (misuse the parser cannot see), `expand` (the impl), `fallback` (the error plus
//! the empty impl).

mod ast;
mod attr;
mod expand;
mod fallback;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `riptide_pool::Poolable`; see the crate documentation for the attributes.
#[proc_macro_derive(Poolable, attributes(poolable))]
pub fn derive_poolable(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
