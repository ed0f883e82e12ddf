//! The real-HTML corpus the tests, benches and examples read: the HTML documentation every
//! Rust toolchain ships with its `rust-docs` component
//! (`$(rustc --print sysroot)/share/doc/rust/html`, ~48 000 pages of mdBook and rustdoc
//! output nobody in this project wrote).
//!
//! A toolchain installed with rustup's minimal profile lacks that component: the first call
//! to [`rust_docs`] then installs it with `rustup component add rust-docs` (the way the
//! `wasm` feature's build script installs the `wasm32-wasip2` target), so
//! `cargo test --workspace --all-features` needs no manual step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The toolchain's HTML documentation directory.
///
/// If the running toolchain's `rust-docs` component is missing and the toolchain is managed
/// by rustup, installs it first (`rustup component add rust-docs --toolchain <it>`, about
/// 20 MB), saying so on stderr. Runs at most once per process.
///
/// # Errors
///
/// A message naming what failed and how to fix it: `rustc` cannot be run, the toolchain is
/// not rustup's (install its HTML docs another way), or `rustup` itself fails.
pub fn rust_docs() -> Result<PathBuf, String> {
    static DOCS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DOCS.get_or_init(find_or_install).clone()
}

/// Where the docs are (or would be) for `sysroot`; they count as present when both the
/// book and `std` are there.
fn docs_dir(sysroot: &Path) -> (PathBuf, bool) {
    let dir = sysroot.join("share/doc/rust/html");
    let present = dir.join("book").is_dir() && dir.join("std").is_dir();
    (dir, present)
}

fn find_or_install() -> Result<PathBuf, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running `{rustc} --print sysroot`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{rustc} --print sysroot` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    // Straight to stderr, past the test harness's capture, so a test run shows it too.
    ensure_docs(&sysroot, "rustup", |m| {
        let _ = writeln!(std::io::stderr(), "riptide-adapters: {m}");
    })
}

/// The docs of the toolchain at `sysroot`, installed with `rustup` (the program to run) if
/// missing; `say` gets the message announcing the installation.
fn ensure_docs(sysroot: &Path, rustup: &str, say: impl FnOnce(&str)) -> Result<PathBuf, String> {
    let (dir, present) = docs_dir(sysroot);
    if present {
        return Ok(dir);
    }
    // A rustup toolchain lives in `<RUSTUP_HOME>/toolchains/<name>`.
    let toolchain = sysroot
        .parent()
        .filter(|p| p.file_name().is_some_and(|n| n == "toolchains"))
        .and(sysroot.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            format!(
                "the Rust HTML docs are not at {} and this toolchain ({}) is not managed by \
                 rustup: install its HTML documentation (the `rust-docs` component) there",
                dir.display(),
                sysroot.display()
            )
        })?;
    say(&format!(
        "the HTML corpus (the toolchain's own docs) is missing from {}; installing it with \
         `{rustup} component add rust-docs --toolchain {toolchain}`",
        dir.display()
    ));
    let out = Command::new(rustup)
        .args(["component", "add", "rust-docs", "--toolchain", &toolchain])
        .output()
        .map_err(|e| {
            format!(
                "the Rust HTML docs are not at {} and `{rustup}` could not be run ({e}): \
                 install rustup, or the `rust-docs` component of toolchain {toolchain}",
                dir.display()
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "`{rustup} component add rust-docs --toolchain {toolchain}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    match docs_dir(sysroot) {
        (dir, true) => Ok(dir),
        (dir, false) => Err(format!(
            "`{rustup} component add rust-docs` succeeded but the docs are still not at {}",
            dir.display()
        )),
    }
}

/// The `.html` files directly in `dir`, sorted by name (a stable sample across runs).
pub fn html_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    v.sort();
    Ok(v)
}

/// Up to `n` pages of The Rust Programming Language (`book/ch*.html`), in name order.
/// For tests and benches: panics with [`rust_docs`]'s message if the docs cannot be had.
#[must_use]
pub fn book_pages(n: usize) -> Vec<(PathBuf, String)> {
    let dir = rust_docs().unwrap_or_else(|e| panic!("{e}")).join("book");
    html_files(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("ch"))
        })
        .take(n)
        .map(|p| {
            let html = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            (p, html)
        })
        .collect()
}

/// A `file://` URL for a local path (for `extract_doc`'s link resolution).
#[must_use]
pub fn file_url(p: &Path) -> String {
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    url::Url::from_file_path(&abs)
        .map(String::from)
        .unwrap_or_else(|_| format!("file://{}", abs.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sysroot `<tmp>/<parent>/<name>` under a fresh temporary directory, removed on drop.
    struct FakeSysroot(PathBuf, PathBuf);

    impl FakeSysroot {
        fn new(parent: &str, name: &str) -> Self {
            let root = std::env::temp_dir().join(format!(
                "riptide-corpus-{}-{parent}-{name}",
                std::process::id()
            ));
            let sysroot = root.join(parent).join(name);
            std::fs::create_dir_all(&sysroot).unwrap();
            FakeSysroot(root, sysroot)
        }
    }

    impl Drop for FakeSysroot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn present_docs_are_found_without_rustup() {
        let fake = FakeSysroot::new("toolchains", "present");
        let html = fake.1.join("share/doc/rust/html");
        for d in ["book", "std"] {
            std::fs::create_dir_all(html.join(d)).unwrap();
        }
        let said = |m: &str| panic!("nothing to install, yet: {m}");
        assert_eq!(
            ensure_docs(&fake.1, "riptide-no-such-rustup", said),
            Ok(html)
        );
    }

    #[test]
    fn missing_docs_say_why_they_cannot_be_installed() {
        let not_rustup = FakeSysroot::new("opt", "rust");
        let e = ensure_docs(&not_rustup.1, "rustup", |_| {}).unwrap_err();
        assert!(e.contains("not managed by rustup"), "{e}");

        let no_rustup = FakeSysroot::new("toolchains", "stable-x86_64-unknown-linux-gnu");
        let mut said = String::new();
        let e = ensure_docs(&no_rustup.1, "riptide-no-such-rustup", |m| {
            said = m.to_owned()
        })
        .unwrap_err();
        assert!(
            said.contains("installing it with `riptide-no-such-rustup component add rust-docs"),
            "{said}"
        );
        assert!(
            e.contains("`riptide-no-such-rustup` could not be run")
                && e.contains("toolchain stable-x86_64-unknown-linux-gnu"),
            "{e}"
        );
    }
}
