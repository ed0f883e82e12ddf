use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(max_use = 10)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
