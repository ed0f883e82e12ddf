// A `reset_with` function of the wrong type is reported on the path, like a `health`
// function of the wrong type (not on `#[derive(Poolable)]`).
use riptide_pool::Poolable;

fn zero(_: &mut u32) {}

#[derive(Poolable)]
struct S {
    #[poolable(reset_with = zero)]
    buf: Vec<u8>,
}

fn main() {}
