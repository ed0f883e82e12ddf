//! Parsing `#[poolable(...)]` on the struct and on fields.

use syn::meta::ParseNestedMeta;
use syn::{Attribute, Error, Ident, Lit, LitInt, Path, PathArguments, Result};

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

/// The misuses found so far, combined into one error that reports each.
#[derive(Default)]
pub(crate) struct Errors(Option<Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Parses every `#[poolable(...)]` in `attrs`, each entry with `entry`. A misuse in an
/// entry is noted in `errors` and the parse goes on with the next entry (its remaining
/// tokens, up to the next comma, are skipped), so that every misuse is reported.
fn each_entry(
    attrs: &[Attribute],
    errors: &mut Errors,
    mut entry: impl FnMut(&ParseNestedMeta) -> Result<()>,
) {
    for attr in poolable_attrs(attrs) {
        let parsed = attr.parse_nested_meta(|meta| {
            if let Err(e) = entry(&meta) {
                errors.push(e);
                while !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    meta.input.parse::<proc_macro2::TokenTree>()?;
                }
            }
            Ok(())
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
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
    let k = key(meta);
    if v.peek(syn::LitStr) {
        let s: syn::LitStr = v.parse()?;
        return Err(Error::new_spanned(
            &s,
            format!(
                "`{k}` takes a path, not a string: write `{k} = {}`",
                s.value()
            ),
        ));
    }
    if v.peek(syn::Token![|]) || v.peek(syn::Token![||]) || v.peek(syn::Token![move]) {
        let e = v.error(format!(
            "`{k}` takes a path to a function, not a closure: write the closure as a `fn` \
             and name it, `{k} = path::to_fn`"
        ));
        // Past the parameters, whose commas are not the list's: the parse goes on after
        // the closure (`each_entry` skips its body to the next comma).
        let _ = v.parse::<Option<syn::Token![move]>>();
        if v.parse::<syn::Token![|]>().is_ok() {
            while !v.is_empty() && !v.peek(syn::Token![|]) {
                v.parse::<proc_macro2::TokenTree>()?;
            }
            let _ = v.parse::<syn::Token![|]>();
        } else {
            let _ = v.parse::<syn::Token![||]>();
        }
        return Err(e);
    }
    let p: Path = v.parse()?;
    no_call(meta, v, &quote::quote!(#p).to_string().replace(' ', ""))?;
    turbofish(meta, &p)?;
    Ok(p)
}

/// A path to a function with generic arguments written as in a type (`wipe<u8>`): the
/// derive calls it, and in a call the arguments take `::<>` (`wipe::<u8>`).
fn turbofish(meta: &ParseNestedMeta, p: &Path) -> Result<()> {
    let bare = |a: &PathArguments| matches!(a, PathArguments::AngleBracketed(g) if g.colon2_token.is_none());
    let Some(seg) = p.segments.iter().find(|s| bare(&s.arguments)) else {
        return Ok(());
    };
    let mut fixed = p.clone();
    for s in &mut fixed.segments {
        if let PathArguments::AngleBracketed(g) = &mut s.arguments {
            g.colon2_token.get_or_insert_with(Default::default);
        }
    }
    let k = key(meta);
    Err(Error::new_spanned(
        &seg.arguments,
        format!(
            "write `{k} = {}`: the derive calls this function, and generic arguments in a \
             call take `::<>`",
            quote::quote!(#fixed).to_string().replace(' ', "")
        ),
    ))
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

/// The struct's attributes; each misuse is noted in `errors` (the keys it concerns are
/// left unset).
pub(crate) fn struct_attrs(attrs: &[Attribute], errors: &mut Errors) -> StructAttrs {
    let mut out = StructAttrs::default();
    each_entry(attrs, errors, |meta| match key(meta).as_str() {
        "reset" => set_once(&mut out.reset, meta, duplicate, |m| {
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
        "health" => set_once(&mut out.health, meta, duplicate, path),
        "max_uses" => set_once(&mut out.max_uses, meta, duplicate, |m| int(m, "1000")),
        "max_lifetime_secs" => set_once(&mut out.max_lifetime_secs, meta, duplicate, |m| {
            int(m, "300")
        }),
        k => Err(meta.error(format!(
            "unknown `poolable` struct attribute `{k}`; expected one of {STRUCT_KEYS}"
        ))),
    });
    out
}

/// A field's attributes; each misuse is noted in `errors` (the field is then skipped).
pub(crate) fn field_attrs(attrs: &[Attribute], errors: &mut Errors) -> FieldAttrs {
    let mut reset: Option<FieldReset> = None;
    let second = |k: &str| format!("a field takes one of {FIELD_KEYS}; `{k}` is a second one");
    each_entry(attrs, errors, |meta| match key(meta).as_str() {
        "reset" => set_once(&mut reset, meta, second, |m| {
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
        "reset_with" => set_once(&mut reset, meta, second, |m| path(m).map(FieldReset::With)),
        "skip" => set_once(&mut reset, meta, second, |m| {
            if !m.input.is_empty() && !m.input.peek(syn::Token![,]) {
                return Err(m.error("`skip` takes no value"));
            }
            Ok(FieldReset::Skip)
        }),
        k => Err(meta.error(format!(
            "unknown `poolable` field attribute `{k}`; expected one of {FIELD_KEYS}"
        ))),
    });
    FieldAttrs {
        reset: reset.unwrap_or(FieldReset::Skip),
    }
}
