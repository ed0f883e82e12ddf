//! Parsing `#[poolable(...)]` on the struct and on fields.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Error, Ident, Lit, LitInt, Path, Result};

/// What `reset` does for one field.
pub(crate) enum FieldReset {
    /// `reset = method`: `self.field.method()`.
    Method(Ident),
    /// `reset = default`: `self.field = Default::default()`.
    Default(Ident),
    /// `reset_with = path`: `path(&mut self.field)`.
    With(Path),
    /// `skip` or nothing.
    Skip,
}

pub(crate) struct FieldAttrs {
    pub reset: FieldReset,
}

#[derive(Default)]
pub(crate) struct StructAttrs {
    pub reset: Option<Path>,
    pub health: Option<Path>,
    pub max_uses: Option<LitInt>,
    pub max_lifetime_secs: Option<LitInt>,
}

const FIELD_KEYS: &str = "`reset = method`, `reset = default`, `reset_with = path`, `skip`";
const STRUCT_KEYS: &str =
    "`reset = path`, `health = path`, `max_uses = N`, `max_lifetime_secs = N`";

fn poolable_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("poolable"))
}

/// The key of `meta` as written, for messages.
fn key(meta: &ParseNestedMeta) -> String {
    meta.path
        .get_ident()
        .map_or_else(|| "?".to_owned(), ToString::to_string)
}

/// `= <value>` after a key, with a message that says what the key takes when it is missing.
fn value<'a>(meta: &'a ParseNestedMeta, what: &str) -> Result<syn::parse::ParseStream<'a>> {
    meta.value().map_err(|_| {
        let k = key(meta);
        let hint = if what == "clear" {
            format!("`{k} = clear` (a method of the field to call) or `{k} = default`")
        } else {
            format!("`{k} = {what}`")
        };
        meta.error(format!("`{k}` needs a value: {hint}"))
    })
}

fn duplicate(meta: &ParseNestedMeta) -> Error {
    meta.error(format!("duplicate `{}` in `#[poolable]`", key(meta)))
}

fn int(meta: &ParseNestedMeta, example: &str) -> Result<LitInt> {
    let lit: Lit = value(meta, example)?.parse()?;
    match lit {
        Lit::Int(i) => Ok(i),
        other => Err(Error::new_spanned(
            other,
            format!(
                "`{}` takes an integer literal, e.g. `{} = {example}`",
                key(meta),
                key(meta)
            ),
        )),
    }
}

pub(crate) fn struct_attrs(attrs: &[Attribute]) -> Result<StructAttrs> {
    let mut out = StructAttrs::default();
    for attr in poolable_attrs(attrs) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("reset") {
                if out.reset.is_some() {
                    return Err(duplicate(&meta));
                }
                out.reset = Some(value(&meta, "path::to_fn")?.parse()?);
            } else if meta.path.is_ident("health") {
                if out.health.is_some() {
                    return Err(duplicate(&meta));
                }
                out.health = Some(value(&meta, "path::to_fn")?.parse()?);
            } else if meta.path.is_ident("max_uses") {
                if out.max_uses.is_some() {
                    return Err(duplicate(&meta));
                }
                out.max_uses = Some(int(&meta, "1000")?);
            } else if meta.path.is_ident("max_lifetime_secs") {
                if out.max_lifetime_secs.is_some() {
                    return Err(duplicate(&meta));
                }
                out.max_lifetime_secs = Some(int(&meta, "300")?);
            } else {
                return Err(meta.error(format!(
                    "unknown `poolable` struct attribute `{}`; expected one of {STRUCT_KEYS}",
                    key(&meta)
                )));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

pub(crate) fn field_attrs(attrs: &[Attribute]) -> Result<FieldAttrs> {
    let mut reset: Option<FieldReset> = None;
    for attr in poolable_attrs(attrs) {
        attr.parse_nested_meta(|meta| {
            let this = if meta.path.is_ident("reset") {
                let method: Ident = value(&meta, "clear")?.parse()?;
                if method == "default" {
                    FieldReset::Default(method)
                } else {
                    FieldReset::Method(method)
                }
            } else if meta.path.is_ident("reset_with") {
                FieldReset::With(value(&meta, "path::to_fn")?.parse()?)
            } else if meta.path.is_ident("skip") {
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    return Err(meta.error("`skip` takes no value"));
                }
                FieldReset::Skip
            } else {
                return Err(meta.error(format!(
                    "unknown `poolable` field attribute `{}`; expected one of {FIELD_KEYS}",
                    key(&meta)
                )));
            };
            if reset.is_some() {
                return Err(meta.error(format!(
                    "a field takes one of {FIELD_KEYS}; `{}` is a second one",
                    key(&meta)
                )));
            }
            reset = Some(this);
            Ok(())
        })?;
    }
    Ok(FieldAttrs {
        reset: reset.unwrap_or(FieldReset::Skip),
    })
}
