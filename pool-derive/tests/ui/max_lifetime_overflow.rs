use riptide_pool::Poolable;

#[derive(Poolable)]
#[poolable(max_lifetime_secs = 18446744073709551616)]
struct S {
    buf: Vec<u8>,
}

fn main() {}
