//! What the derive emits on misuse: the error, plus an empty `Poolable` impl for the type
//! (with its generics and where-clause), so that one misuse is one error. Without the
//! impl, every place the type is pooled (`Pool<T>`, `Pool::builder`) would add its own
//! "`Poolable` is not implemented" error and bury the real one.

use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::expand::impl_header;

pub(crate) fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    let header = impl_header(&input.ident, &input.generics);
    quote! {
        #error
        #header {}
    }
}
