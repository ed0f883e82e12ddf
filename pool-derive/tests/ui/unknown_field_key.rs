use riptide_pool::Poolable;

#[derive(Poolable)]
struct S {
    #[poolable(rest = clear)]
    buf: Vec<u8>,
}

fn main() {}
