//! Code generation: the `Poolable` impl, or on misuse the error plus an empty impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Generics, Ident, WhereClause};

use crate::ast::Input;
use crate::attr::FieldReset;
use crate::fallback;

/// The derive's output for `input`: the impl, or [`fallback::expand`] on misuse.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    match Input::from_syn(input) {
        Ok(parsed) => impl_poolable(&parsed),
        Err(error) => fallback::expand(input, error),
    }
}

/// `impl<..> ::riptide_pool::Poolable for Type<..> where .., Self: Send + 'static`, without
/// the body: shared by the real impl and the fallback, so both have the same bounds.
pub(crate) fn impl_header(ident: &Ident, generics: &Generics) -> TokenStream {
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let mut where_clause: WhereClause = where_clause
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(where));
    where_clause
        .predicates
        .push(syn::parse_quote!(Self: ::core::marker::Send + 'static));
    // `Self: 'static` makes every lifetime parameter `'static`, which the (allow by default)
    // `redundant_lifetimes` lint reports on the user's struct.
    let allow =
        (generics.lifetimes().next().is_some()).then(|| quote!(#[allow(redundant_lifetimes)]));
    quote! {
        #[automatically_derived]
        #allow
        impl #impl_generics ::riptide_pool::Poolable for #ident #ty_generics #where_clause
    }
}

/// A span that resolves as the derive's own code does (its edition, its hygiene) but is
/// reported at `user`: the `::core` paths the derive writes would otherwise resolve by the
/// user's edition, and in a 2015 crate `::core` is not in scope.
fn at(user: Span) -> Span {
    Span::call_site().located_at(user)
}

fn impl_poolable(input: &Input) -> TokenStream {
    let header = impl_header(input.ident, input.generics);

    // Field resets in declaration order. Spans point at the attribute's tokens, so a
    // missing method or a function of the wrong type is reported there.
    // `self` keeps the call-site span of `fn reset(&mut self)`: a `self` spanned on a token
    // the user wrote (e.g. through a `macro_rules!`) has another hygiene context.
    let this = quote!(self);
    let field_resets = input.fields.iter().filter_map(|f| {
        let m = &f.member;
        match &f.attrs.reset {
            FieldReset::Method(method) => Some(quote_spanned! {method.span()=>
                #this.#m.#method();
            }),
            FieldReset::Default(kw) => Some(quote_spanned! {at(kw.span())=>
                #this.#m = ::core::default::Default::default();
            }),
            // The argument begins and ends with tokens spanned on the path, so a function
            // of the wrong type is reported there: `&mut self.field` alone mixes the
            // call-site `self` into the argument's span, which rustc then reports on
            // `#[derive(Poolable)]` (and it peels plain parentheses). A one-element tuple
            // read back keeps the call's coercions and binds no name, so no constant of
            // the user's can turn a binding into a pattern.
            FieldReset::With(path) => Some(quote_spanned! {path.span()=>
                #path((&mut #this.#m,).0);
            }),
            FieldReset::Skip => None,
        }
    });
    // The argument spanned on the path, as for `reset_with`: a function of the wrong type
    // is reported on the path.
    let struct_reset = input.attrs.reset.as_ref().map(|path| {
        quote_spanned! {path.span()=>
            #path((&mut *#this,).0);
        }
    });
    let reset = quote! {
        #[inline]
        fn reset(&mut self) {
            #(#field_resets)*
            #struct_reset
        }
    };
    let health = input.attrs.health.as_ref().map(|path| {
        quote_spanned! {at(path.span())=>
            #[inline]
            fn is_healthy(&self) -> ::core::primitive::bool {
                #path(self)
            }
        }
    });
    let max_uses = input.attrs.max_uses.as_ref().map(|n| {
        quote! {
            const MAX_USES: ::core::option::Option<::core::primitive::u64> = ::core::option::Option::Some(#n);
        }
    });
    let max_lifetime = input.attrs.max_lifetime_secs.as_ref().map(|n| {
        quote! {
            const MAX_LIFETIME: ::core::option::Option<::core::time::Duration> =
                ::core::option::Option::Some(::core::time::Duration::from_secs(#n));
        }
    });

    quote! {
        #header {
            #reset
            #health
            #max_uses
            #max_lifetime
        }
    }
}
