use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(max_uses = -0)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
