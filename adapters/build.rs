//! With the `wasm` feature, builds the guest component (`adapters/guest`) for
//! `wasm32-wasip2` and hands its path to the crate, which embeds it with `include_bytes!`.
//!
//! The guest is built from source on every machine: the target is installed with rustup if
//! it is missing, and the guest has its own workspace, lock file and target dir
//! (`<target>/wasm-guest`), so the main build's flags (clippy's wrapper, `--cfg riptide_loom`, ...)
//! never reach it. `RIPTIDE_GUEST_WASM=<file>` skips the build and embeds that file instead.
//! On docs.rs (`DOCS_RS` set) an empty file is embedded: that build has no network and runs
//! nothing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// With `postgres`, the PostgreSQL section of `docs/adapters.md` is copied out so the crate
/// can doctest it on its own (with `wasm` on, the whole guide is doctested).
fn postgres_guide(manifest: &Path) {
    if env::var_os("CARGO_FEATURE_POSTGRES").is_none() {
        return;
    }
    let guide = manifest.join("../docs/adapters.md");
    println!("cargo:rerun-if-changed={}", guide.display());
    let text = std::fs::read_to_string(&guide).unwrap_or_default();
    let section = text
        .split_once("\n## PostgreSQL")
        .map(|(_, rest)| {
            let end = rest.find("\n## ").unwrap_or(rest.len());
            format!("## PostgreSQL{}", &rest[..end])
        })
        .unwrap_or_default();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("postgres_guide.md");
    std::fs::write(&out, section).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    for p in [
        "guest/src",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "wit",
        "src/doc_core.rs",
    ] {
        println!("cargo:rerun-if-changed={}", manifest.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=RIPTIDE_GUEST_WASM");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    postgres_guide(&manifest);
    if env::var_os("CARGO_FEATURE_WASM").is_none() {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("guest.wasm");
    // docs.rs documents every feature in a sandbox without network or rustup, and running
    // the guest is not needed to document the crate: an empty file stands in for it there.
    if env::var_os("DOCS_RS").is_some() {
        std::fs::write(&out, b"").unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
        return;
    }
    let built = match env::var_os("RIPTIDE_GUEST_WASM") {
        Some(p) => PathBuf::from(p),
        None => build_guest(&manifest),
    };
    std::fs::copy(&built, &out).unwrap_or_else(|e| {
        panic!(
            "copying the guest {} to {}: {e}",
            built.display(),
            out.display()
        )
    });
}

/// A command with the outer build's cargo/rustc settings removed.
fn clean(cmd: &str) -> Command {
    let mut c = Command::new(cmd);
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy();
        let keep = k == "CARGO_HOME"
            || k.starts_with("CARGO_HTTP")
            || k.starts_with("CARGO_NET")
            || k.starts_with("CARGO_REGISTRIES");
        if (k.starts_with("CARGO") && !keep)
            || k.starts_with("RUSTC")
            || k.starts_with("RUSTFLAGS")
            || k.starts_with("RUSTDOC")
            || k.starts_with("__CARGO")
            || [
                "TARGET",
                "HOST",
                "OUT_DIR",
                "OPT_LEVEL",
                "PROFILE",
                "DEBUG",
                "NUM_JOBS",
            ]
            .contains(&k.as_ref())
        {
            c.env_remove(k.as_ref());
        }
    }
    c
}

fn run(mut c: Command, what: &str) -> String {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {c:?}: {e}"));
    if !o.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ensure_target() {
    let mut c = clean("rustc");
    c.args(["--print", "target-libdir", "--target", TARGET]);
    let libdir = run(c, "rustc --print target-libdir");
    let installed = Path::new(libdir.trim())
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed by the wasm guest)");
    let mut c = clean("rustup");
    c.args(["target", "add", TARGET]);
    if let Ok(tc) = env::var("RUSTUP_TOOLCHAIN") {
        c.args(["--toolchain", &tc]);
    }
    run(
        c,
        "rustup target add (the `wasm` feature builds its guest for wasm32-wasip2)",
    );
}

fn build_guest(manifest: &Path) -> PathBuf {
    ensure_target();
    // OUT_DIR is <target-dir>/[<triple>/]<profile>/build/<pkg>-<hash>/out.
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = out
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out.ancestors().nth(4).unwrap().to_path_buf())
        .join("wasm-guest");
    let mut c = clean("cargo");
    c.arg("build")
        .arg("--release")
        .arg("--locked")
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(manifest.join("guest/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    run(c, "building the wasm guest (adapters/guest)");
    target_dir
        .join(TARGET)
        .join("release/riptide_extractor_guest.wasm")
}
