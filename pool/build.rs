//! Emits `cfg(model)` when the crate is built for a model checker (`--cfg loom` or
//! `--cfg shuttle`): the pool then runs without tokio, with a logical clock and joinable
//! create threads. The sync facade (`src/sync.rs`) picks the checker's primitives.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(model)");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_CFG_LOOM").is_some()
        || std::env::var_os("CARGO_CFG_SHUTTLE").is_some()
    {
        println!("cargo:rustc-cfg=model");
    }
}
