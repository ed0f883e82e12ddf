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
        let mut errors = attr::Errors::default();
        let attrs = attr::struct_attrs(&input.attrs, &mut errors);
        if let Err(e) = crate::valid::check(&attrs) {
            errors.push(e);
        }
        let fields = match &data.fields {
            Fields::Named(f) => f.named.iter().collect::<Vec<_>>(),
            Fields::Unnamed(f) => f.unnamed.iter().collect(),
            Fields::Unit => Vec::new(),
        };
        let parsed = fields
            .into_iter()
            .enumerate()
            .map(|(i, f)| Field {
                member: match &f.ident {
                    Some(id) => Member::Named(id.clone()),
                    None => Member::Unnamed(i.into()),
                },
                attrs: attr::field_attrs(&f.attrs, &mut errors),
            })
            .collect();
        errors.finish()?;
        let fields = parsed;
        Ok(Input {
            ident: &input.ident,
            generics: &input.generics,
            attrs,
            fields,
        })
    }
}
