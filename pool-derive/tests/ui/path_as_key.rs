use riptide_pool::Poolable;

#[derive(Poolable)]
struct S {
    #[poolable(foo::bar = 1)]
    buf: Vec<u8>,
}

fn main() {}
