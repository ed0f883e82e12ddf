//! Attacking the derive: lifetimes, const generics, raw identifiers, non_exhaustive,
//! empty attribute lists, trailing-comma where clauses, defaults on generics, a crate that
//! denies lints and names its items as the generated code might.
#![allow(dead_code, missing_docs)]
// A struct with a lifetime gets `Self: 'static` on its impl, which this lint would flag.
#![deny(redundant_lifetimes)]
use riptide_pool::Poolable;

// Constants named as the derive might name a local: a `let` of that name would be a
// constant pattern (and fail to compile), so the generated code binds no names.
#[allow(non_upper_case_globals)]
const __riptide_field: u8 = 0;
#[allow(non_upper_case_globals)]
const __riptide_this: u8 = 0;
#[allow(non_upper_case_globals)]
const field: u8 = 0;
#[allow(non_upper_case_globals)]
const this: u8 = 0;

#[derive(Poolable)]
#[poolable(reset = wipe_all)]
struct NamesInScope {
    #[poolable(reset_with = Vec::clear)]
    v: Vec<u8>,
    // The call's coercions still apply: `&mut String` to `&mut str`.
    #[poolable(reset_with = str::make_ascii_lowercase)]
    s: String,
}
fn wipe_all(s: &mut NamesInScope) {
    s.v.clear();
}

#[derive(Poolable)]
struct Borrowing<'a> {
    #[poolable(reset = clear)]
    v: Vec<&'a str>,
}

#[derive(Poolable)]
struct Buf<const N: usize> {
    #[poolable(reset_with = zero)]
    b: [u8; N],
}
fn zero<const N: usize>(b: &mut [u8; N]) {
    *b = [0; N];
}

#[derive(Poolable)]
#[non_exhaustive]
pub struct NonEx {
    #[poolable(reset = clear)]
    pub r#type: String,
    #[poolable()]
    pub other: u8,
}

#[derive(Poolable)]
struct TrailingWhere<T>
where
    T: Clone,
{
    #[poolable(reset = clear)]
    v: Vec<T>,
}

#[derive(Poolable)]
struct Defaulted<T = u8, const M: usize = 3> {
    #[poolable(reset = default)]
    t: Option<T>,
}

#[derive(Poolable)]
#[poolable(health = Self::ok)]
struct SelfPath {
    #[poolable(reset_with = Vec::clear)]
    v: Vec<u8>,
}
impl SelfPath {
    fn ok(&self) -> bool {
        self.v.is_empty()
    }
}

#[derive(Poolable)]
#[poolable(max_uses = 1_000, max_lifetime_secs = 0x10)]
struct Lits;

#[derive(Poolable)]
#[poolable(max_uses = 18446744073709551615)]
struct MaxU64;

#[test]
fn all_compile_and_behave() {
    let mut b = Borrowing { v: vec!["x"] };
    b.reset();
    assert!(b.v.is_empty());
    let mut x = Buf::<4> { b: [1; 4] };
    x.reset();
    assert_eq!(x.b, [0; 4]);
    let mut n = NonEx {
        r#type: "a".into(),
        other: 7,
    };
    n.reset();
    assert!(n.r#type.is_empty());
    assert_eq!(n.other, 7);
    let mut t = TrailingWhere { v: vec![1] };
    t.reset();
    assert!(t.v.is_empty());
    let mut d: Defaulted = Defaulted { t: Some(1) };
    d.reset();
    assert!(d.t.is_none());
    let mut s = SelfPath { v: vec![1] };
    assert!(!s.is_healthy());
    s.reset();
    assert!(s.is_healthy());
    assert_eq!(Lits::MAX_USES, Some(1000));
    assert_eq!(Lits::MAX_LIFETIME, Some(std::time::Duration::from_secs(16)));
    assert_eq!(MaxU64::MAX_USES, Some(u64::MAX));
    fn p<T: Poolable>() {}
    p::<Borrowing<'static>>();
    let mut names = NamesInScope {
        v: vec![1],
        s: "AB".into(),
    };
    names.reset();
    assert!(names.v.is_empty());
    assert_eq!(names.s, "ab");
    assert_eq!((__riptide_field, __riptide_this, field, this), (0, 0, 0, 0));
}

/// Types named like primitives (legal Rust, e.g. in generated bindings) beside a derive
/// whose impl names `u64` and `bool`.
#[allow(non_camel_case_types)]
mod shadowed_primitives {
    use riptide_pool::Poolable;

    pub struct u64;
    pub struct bool;

    fn ok(_: &Limited) -> ::core::primitive::bool {
        true
    }

    #[derive(Poolable)]
    #[poolable(max_uses = 5, health = ok)]
    pub struct Limited {
        #[poolable(reset = clear)]
        pub v: Vec<u8>,
    }
}

#[test]
fn types_named_like_primitives_do_not_break_the_impl() {
    use shadowed_primitives::Limited;
    assert_eq!(<Limited as Poolable>::MAX_USES, Some(5));
    assert!(Limited { v: vec![] }.is_healthy());
}
