use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(max_uses = 10, max_uses = 20)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
