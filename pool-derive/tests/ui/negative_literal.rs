use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(max_uses = -1)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
