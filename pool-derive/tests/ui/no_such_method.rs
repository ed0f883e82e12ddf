use riptide_pool::Poolable;

#[derive(Poolable)]
struct S {
    #[poolable(reset = clear)]
    count: u32,
}

fn main() {}
