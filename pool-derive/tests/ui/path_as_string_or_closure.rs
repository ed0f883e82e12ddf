use riptide_pool::Poolable;

fn wipe(v: &mut Vec<u8>) {
    v.clear()
}

// A path written as a string (as serde's attributes take it) or a closure: one error each,
// saying what to write.
#[derive(Poolable)]
#[poolable(health = |_: &S| true)]
struct S {
    #[poolable(reset_with = "wipe")]
    buf: Vec<u8>,
}

fn main() {}
