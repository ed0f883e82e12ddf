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

/// The key of `meta` as written, for messages (a path such as `a::b` as written, which is
/// never a known key).
fn key(meta: &ParseNestedMeta) -> String {
    meta.path.get_ident().map_or_else(
        || {
            let p = &meta.path;
            quote::quote!(#p).to_string().replace(' ', "")
        },
        ToString::to_string,
    )
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

/// Fills `slot` with what `parse` reads, or fails with `conflict` (spanned on the key) if
/// an earlier key already filled it. Every "at most once" rule goes through here.
fn set_once<T>(
    slot: &mut Option<T>,
    meta: &ParseNestedMeta,
    conflict: impl FnOnce(&str) -> String,
    parse: impl FnOnce(&ParseNestedMeta) -> Result<T>,
) -> Result<()> {
    if slot.is_some() {
        return Err(meta.error(conflict(&key(meta))));
    }
    *slot = Some(parse(meta)?);
    Ok(())
}

fn duplicate(key: &str) -> String {
    format!("duplicate `{key}` in `#[poolable]`")
}

/// `= path::to_fn`.
fn path(meta: &ParseNestedMeta) -> Result<Path> {
    let v = value(meta, "path::to_fn")?;
    let p: Path = v.parse()?;
    no_call(meta, v, &quote::quote!(#p).to_string().replace(' ', ""))?;
    Ok(p)
}

/// A name written as a call (`reset = clear()`): the derive makes the call; the attribute
/// names what to call.
fn no_call(meta: &ParseNestedMeta, v: syn::parse::ParseStream, name: &str) -> Result<()> {
    if v.peek(syn::token::Paren) {
        let k = key(meta);
        return Err(v.error(format!(
            "write `{k} = {name}`, without parentheses: the attribute names what the \
             derive calls"
        )));
    }
    Ok(())
}

/// `= <integer literal>`; any other literal is an error on the literal. `example` is a
/// sensible value for the message. Ranges are checked in `valid`.
fn int(meta: &ParseNestedMeta, example: &str) -> Result<LitInt> {
    let lit: Lit = value(meta, example)?.parse()?;
    match lit {
        Lit::Int(i) => Ok(i),
        other => {
            let k = key(meta);
            Err(Error::new_spanned(
                other,
                format!("`{k}` takes an integer literal, e.g. `{k} = {example}`"),
            ))
        }
    }
}

pub(crate) fn struct_attrs(attrs: &[Attribute]) -> Result<StructAttrs> {
    let mut out = StructAttrs::default();
    for attr in poolable_attrs(attrs) {
        attr.parse_nested_meta(|meta| match key(&meta).as_str() {
            "reset" => set_once(&mut out.reset, &meta, duplicate, |m| {
                let p = path(m)?;
                if p.is_ident("default") {
                    return Err(Error::new_spanned(
                        p,
                        "`reset = default` is for a field; a struct's `reset` names a \
                         function `fn(&mut Self)` run after the field resets",
                    ));
                }
                Ok(p)
            }),
            "health" => set_once(&mut out.health, &meta, duplicate, path),
            "max_uses" => set_once(&mut out.max_uses, &meta, duplicate, |m| int(m, "1000")),
            "max_lifetime_secs" => set_once(&mut out.max_lifetime_secs, &meta, duplicate, |m| {
                int(m, "300")
            }),
            k => Err(meta.error(format!(
                "unknown `poolable` struct attribute `{k}`; expected one of {STRUCT_KEYS}"
            ))),
        })?;
    }
    Ok(out)
}

pub(crate) fn field_attrs(attrs: &[Attribute]) -> Result<FieldAttrs> {
    let mut reset: Option<FieldReset> = None;
    let second = |k: &str| format!("a field takes one of {FIELD_KEYS}; `{k}` is a second one");
    for attr in poolable_attrs(attrs) {
        attr.parse_nested_meta(|meta| match key(&meta).as_str() {
            "reset" => set_once(&mut reset, &meta, second, |m| {
                let v = value(m, "clear")?;
                let method: Ident = if v.peek2(syn::Token![::]) {
                    return Err(v.error(
                        "a field's `reset` names a method of the field (`reset = clear`); \
                         for a function, write `reset_with = path::to_fn`",
                    ));
                } else {
                    v.parse()?
                };
                no_call(m, v, &method.to_string())?;
                Ok(if method == "default" {
                    FieldReset::Default(method)
                } else {
                    FieldReset::Method(method)
                })
            }),
            "reset_with" => set_once(&mut reset, &meta, second, |m| path(m).map(FieldReset::With)),
            "skip" => set_once(&mut reset, &meta, second, |m| {
                if !m.input.is_empty() && !m.input.peek(syn::Token![,]) {
                    return Err(m.error("`skip` takes no value"));
                }
                Ok(FieldReset::Skip)
            }),
            k => Err(meta.error(format!(
                "unknown `poolable` field attribute `{k}`; expected one of {FIELD_KEYS}"
            ))),
        })?;
    }
    Ok(FieldAttrs {
        reset: reset.unwrap_or(FieldReset::Skip),
    })
}
