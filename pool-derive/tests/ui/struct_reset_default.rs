use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(reset = default)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
