use riptide_pool::Poolable;

#[derive(Poolable)]
struct S {
    #[poolable(reset = clear, skip)]
    buf: Vec<u8>,
}

fn main() {}
