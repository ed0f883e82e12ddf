//! Misuse of `#[derive(Poolable)]` is a compile error pointing at the offending token.
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p riptide-pool-derive`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
