//! Emits `cfg(riptide_model)` when the crate is built for a model checker (`--cfg
//! riptide_loom` or `--cfg riptide_shuttle`): the pool then runs without tokio, with a
//! logical clock and joinable create threads. The names are the crate's own, so a
//! downstream project's `--cfg loom` never changes this crate. The sync facade
//! (`src/sync/`) picks the checker's primitives.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(riptide_model)");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_CFG_RIPTIDE_LOOM").is_some()
        || std::env::var_os("CARGO_CFG_RIPTIDE_SHUTTLE").is_some()
    {
        println!("cargo:rustc-cfg=riptide_model");
    }
}
