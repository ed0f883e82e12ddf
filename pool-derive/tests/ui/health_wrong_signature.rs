use riptide_pool::Poolable;

fn health(_: &S) -> u8 {
    1
}

#[derive(Poolable)]
#[poolable(health = health)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
