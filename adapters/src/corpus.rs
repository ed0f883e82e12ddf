//! The real-HTML corpus the tests, benches and examples read: the HTML documentation every
//! Rust toolchain ships with its `rust-docs` component
//! (`$(rustc --print sysroot)/share/doc/rust/html`, ~48 000 pages of mdBook and rustdoc
//! output nobody in this project wrote).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain's HTML documentation directory, or an error telling how to get it.
pub fn rust_docs() -> Result<PathBuf, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("running `{rustc} --print sysroot`: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dir = Path::new(&sysroot).join("share/doc/rust/html");
    if dir.join("book").is_dir() && dir.join("std").is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "the Rust HTML docs are not at {}: install them with \
             `rustup component add rust-docs` (.ci/run does)",
            dir.display()
        ))
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
/// Panics with the fix if the docs are missing: for tests and benches.
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
pub fn file_url(p: &Path) -> String {
    let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    url::Url::from_file_path(&abs)
        .map(String::from)
        .unwrap_or_else(|_| format!("file://{}", abs.display()))
}
