use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(reset = clear_all)]
enum E {
    A(Vec<u8>),
    B,
}

fn main() {}
