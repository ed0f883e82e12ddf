use riptide_pool::Poolable;

fn wipe<T>(v: &mut Vec<T>) {
    v.clear()
}

// A generic function named as in a type: one error, asking for `::<>`.
#[derive(Poolable)]
struct S {
    #[poolable(reset_with = wipe<u8>)]
    buf: Vec<u8>,
}

fn main() {}
