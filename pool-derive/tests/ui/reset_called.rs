use riptide_pool::Poolable;

fn check(_: &S) -> bool {
    true
}

// The attribute names what to call; written as a call, each says so.
#[derive(Poolable)]
#[poolable(health = check())]
struct S {
    #[poolable(reset = clear())]
    a: Vec<u8>,
}

fn main() {}
