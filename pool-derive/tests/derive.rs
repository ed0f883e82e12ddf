//! Every `#[poolable]` attribute, and the pool honouring what the derive sets.
#![deny(warnings)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use riptide_pool::{Pool, Poolable};

thread_local!(static LOG: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) });
fn log(s: &'static str) {
    LOG.with(|l| l.borrow_mut().push(s));
}
fn take_log() -> Vec<&'static str> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

mod helpers {
    pub fn zero(n: &mut u64) {
        super::log("zero");
        *n = 0;
    }
}

#[derive(Poolable, Debug)]
#[poolable(reset = Parser::after_fields, health = Parser::healthy)]
#[poolable(max_uses = 3, max_lifetime_secs = 300)]
struct Parser {
    #[poolable(reset = clear)]
    buf: Vec<u8>,
    #[poolable(reset = default)]
    depth: usize,
    #[poolable(reset_with = helpers::zero)]
    tokens: u64,
    #[poolable(skip)]
    compiled: HashMap<String, usize>,
    name: String,
    broken: bool,
}

impl Parser {
    fn after_fields(&mut self) {
        log("struct");
        assert!(
            self.buf.is_empty() && self.depth == 0 && self.tokens == 0,
            "fields first"
        );
    }
    fn healthy(&self) -> bool {
        !self.broken
    }
}

fn parser() -> Parser {
    Parser {
        buf: Vec::with_capacity(64),
        depth: 0,
        tokens: 0,
        compiled: HashMap::new(),
        name: "p".into(),
        broken: false,
    }
}

#[test]
fn field_resets_then_struct_reset_once() {
    let mut p = parser();
    p.buf.extend_from_slice(b"abc");
    p.depth = 7;
    p.tokens = 9;
    p.compiled.insert("re".into(), 1);
    p.name = "kept".into();
    take_log();
    p.reset();
    assert_eq!(
        take_log(),
        ["zero", "struct"],
        "declaration order, struct hook last, once"
    );
    assert!(p.buf.is_empty());
    assert!(
        p.buf.capacity() >= 64,
        "`reset = clear` keeps the allocation"
    );
    assert_eq!((p.depth, p.tokens), (0, 0));
    assert_eq!(p.compiled.len(), 1, "skip leaves the field alone");
    assert_eq!(p.name, "kept", "unmarked fields are untouched");
}

#[test]
fn health_and_constants() {
    let mut p = parser();
    assert!(p.is_healthy());
    p.broken = true;
    assert!(!p.is_healthy());
    assert_eq!(Parser::MAX_USES, Some(3));
    assert_eq!(Parser::MAX_LIFETIME, Some(Duration::from_secs(300)));
}

#[derive(Poolable)]
struct Tuple(
    #[poolable(reset = clear)] String,
    #[poolable(reset = default)] u8,
    u8,
);

#[derive(Poolable)]
struct Unit;

#[test]
fn tuple_and_unit_structs() {
    let mut t = Tuple("x".into(), 5, 6);
    t.reset();
    assert_eq!((t.0.as_str(), t.1, t.2), ("", 0, 6));
    let mut u = Unit;
    u.reset();
    assert!(u.is_healthy());
    assert_eq!(Unit::MAX_USES, None);
    assert_eq!(Unit::MAX_LIFETIME, None);
}

/// Generics and a where-clause, with no `Send + 'static` written by the user.
#[derive(Poolable)]
struct Cache<K, V>
where
    K: std::hash::Hash + Eq,
    V: Debug,
{
    #[poolable(reset = clear)]
    map: HashMap<K, V>,
}

#[test]
fn generics_and_where_clauses_are_carried_through() {
    fn is_poolable<T: Poolable>() {}
    is_poolable::<Cache<String, u32>>();
    let mut c = Cache {
        map: HashMap::from([(1u8, "a")]),
    };
    c.reset();
    assert!(c.map.is_empty());
}

#[tokio::test]
async fn the_pool_honours_max_uses_and_health_from_the_derive() {
    let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(parser()) })
        .max_size(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let mut p = pool.get().await.unwrap();
        p.buf.push(1);
    }
    let s = pool.stats();
    assert_eq!(
        (s.created, s.destroyed),
        (1, 1),
        "retired after MAX_USES = 3 checkouts"
    );
    let mut p = pool.get().await.unwrap();
    assert!(p.buf.is_empty());
    p.broken = true;
    drop(p);
    assert_eq!(
        pool.stats().destroyed,
        2,
        "unhealthy (health = path) is destroyed"
    );
}

/// The derive written inside a `macro_rules!` macro, with the attributes' paths and the
/// whole struct passed in: every kind of reset still compiles and runs (the generated
/// `self` keeps the derive's own hygiene, whatever the spans of the user's tokens).
mod in_a_macro {
    use riptide_pool::Poolable;

    macro_rules! one_field {
        ($name:ident, $field:ident, $method:ident) => {
            #[derive(Poolable)]
            pub struct $name {
                #[poolable(reset = $method)]
                pub $field: Vec<u8>,
            }
        };
    }
    one_field!(Buf, buf, clear);

    macro_rules! whole {
        ($($item:tt)*) => {
            #[derive(Poolable)]
            $($item)*
        };
    }
    whole! {
        #[poolable(reset = after)]
        pub struct All {
            #[poolable(reset = clear)]
            pub buf: Vec<u8>,
            #[poolable(reset = default)]
            pub n: u32,
            #[poolable(reset_with = zero)]
            pub m: u64,
            pub resets: u32,
        }
    }
    fn after(a: &mut All) {
        a.resets += 1;
    }
    fn zero(m: &mut u64) {
        *m = 0;
    }

    #[test]
    fn resets_run() {
        let mut b = Buf { buf: vec![1] };
        b.reset();
        assert!(b.buf.is_empty());
        let mut a = All {
            buf: vec![1],
            n: 3,
            m: 4,
            resets: 0,
        };
        a.reset();
        assert_eq!((a.buf.len(), a.n, a.m, a.resets), (0, 0, 0, 1));
    }
}
