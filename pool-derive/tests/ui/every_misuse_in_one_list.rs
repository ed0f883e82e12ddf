use riptide_pool::Poolable;

// Each misuse in one `#[poolable(...)]` list, and in the lists after it, is reported.
#[derive(Poolable)]
#[poolable(max_uses = "5", max_lifetime_secs = 1.5)]
#[poolable(bogus = 1)]
struct S {
    #[poolable(reset = clear(), resett = clear)]
    a: Vec<u8>,
}

fn main() {}
