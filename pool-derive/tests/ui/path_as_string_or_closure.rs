use std::collections::HashMap;

use riptide_pool::Poolable;

fn wipe(v: &mut Vec<u8>) {
    v.clear()
}

// A path written as a string (as serde's attributes take it) or a closure: one error each,
// saying what to write, however many commas the closure's parameters hold.
#[derive(Poolable)]
#[poolable(health = move |s: &S, _meta: u8| true, max_uses = 10)]
struct S {
    #[poolable(reset_with = "wipe")]
    buf: Vec<u8>,
    #[poolable(reset_with = |m: &mut HashMap<u8, u8>| m.clear())]
    map: HashMap<u8, u8>,
}

fn main() {}
