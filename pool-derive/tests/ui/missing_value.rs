use riptide_pool::Poolable;

#[derive(Poolable)]
struct S {
    #[poolable(reset)]
    buf: Vec<u8>,
}

fn main() {}
