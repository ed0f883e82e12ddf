use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(max_lifetime_secs = "300")]
struct S {
    buf: Vec<u8>,
}

fn main() {}
