//! The derive input: a struct with its fields and their parsed attributes.

use syn::{Data, DeriveInput, Error, Fields, Generics, Ident, Member, Result};

use crate::attr::{self, FieldAttrs, StructAttrs};

pub(crate) struct Input<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub attrs: StructAttrs,
    pub fields: Vec<Field>,
}

pub(crate) struct Field {
    pub member: Member,
    pub attrs: FieldAttrs,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(input: &'a DeriveInput) -> Result<Self> {
        let data = match &input.data {
            Data::Struct(data) => data,
            Data::Enum(e) => {
                return Err(Error::new_spanned(
                    e.enum_token,
                    "`#[derive(Poolable)]` supports structs only, not enums: a pooled \
                     object's reset must know which fields it has; implement \
                     `riptide_pool::Poolable` by hand for an enum",
                ))
            }
            Data::Union(u) => {
                return Err(Error::new_spanned(
                    u.union_token,
                    "`#[derive(Poolable)]` supports structs only, not unions; implement \
                     `riptide_pool::Poolable` by hand",
                ))
            }
        };
        // Every misuse is reported, not only the first: the struct's attributes and each
        // field's are parsed on, their errors combined.
        let mut errors: Option<Error> = None;
        let mut note = |e: Error| match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        };
        let attrs = attr::struct_attrs(&input.attrs)
            .and_then(|a| crate::valid::check(&a).map(|()| a))
            .unwrap_or_else(|e| {
                note(e);
                StructAttrs::default()
            });
        let fields = match &data.fields {
            Fields::Named(f) => f.named.iter().collect::<Vec<_>>(),
            Fields::Unnamed(f) => f.unnamed.iter().collect(),
            Fields::Unit => Vec::new(),
        };
        let mut parsed = Vec::with_capacity(fields.len());
        for (i, f) in fields.into_iter().enumerate() {
            match attr::field_attrs(&f.attrs) {
                Ok(attrs) => parsed.push(Field {
                    member: match &f.ident {
                        Some(id) => Member::Named(id.clone()),
                        None => Member::Unnamed(i.into()),
                    },
                    attrs,
                }),
                Err(e) => note(e),
            }
        }
        if let Some(e) = errors {
            return Err(e);
        }
        let fields = parsed;
        Ok(Input {
            ident: &input.ident,
            generics: &input.generics,
            attrs,
            fields,
        })
    }
}
