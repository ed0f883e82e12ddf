use riptide_pool::Poolable;

fn r(_: &mut u8) {}

#[derive(Poolable)]
#[poolable(reset = r)]
struct S {
    v: Vec<u8>,
}

fn main() {}
