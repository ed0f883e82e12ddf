use riptide_pool::Poolable;

// Every misuse is reported, the struct's and each field's, not only the first.
#[derive(Poolable)]
#[poolable(max_uses = 0, max_lifetime_secs = 0)]
struct S {
    #[poolable(reset = clear, skip)]
    a: Vec<u8>,
    #[poolable(resett = clear)]
    b: Vec<u8>,
}

fn main() {}
