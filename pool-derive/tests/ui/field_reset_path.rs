use riptide_pool::Poolable;

#[derive(Poolable)]
struct S {
    #[poolable(reset = Vec::clear)]
    buf: Vec<u8>,
}

fn main() {}
