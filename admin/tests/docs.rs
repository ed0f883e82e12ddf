//! The documentation matches the code: `docs/observability.md` names every endpoint and
//! every metric, its JSON examples are JSON, and the README's admin lines are the ones
//! the `service` example compiles.

use riptide_admin::METRIC_NAMES;

fn read(rel: &str) -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    std::fs::read_to_string(format!("{root}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The fenced blocks of `md` whose info string is `lang`.
fn blocks(md: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) if info.trim() == lang => cur = Some(String::new()),
            (Some(b), Some(_)) => {
                out.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), None) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn observability_doc_lists_every_endpoint_and_metric() {
    let doc = read("docs/observability.md");
    for route in [
        "`/`",
        "`/metrics`",
        "`/health`",
        "`/health/pool`",
        "`/pools`",
        "`/pools/{name}`",
        "`/pools/{name}/checked-out`",
        "`/pools/{name}/partitions`",
        "`/pools/{name}/history`",
        "`/pools/{name}/export.csv`",
        "`/pools/{name}/resize`",
        "`/pools/{name}/close`",
        "`/pools/{name}/drain`",
    ] {
        assert!(doc.contains(route), "docs/observability.md lacks {route}");
    }
    for name in METRIC_NAMES {
        assert!(
            doc.contains(&format!("| `{name}` |")),
            "docs/observability.md lacks a row for {name}"
        );
    }
    let json = blocks(&doc, "json");
    assert!(json.len() >= 8, "{} JSON examples", json.len());
    for b in json {
        serde_json::from_str::<serde_json::Value>(&b)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{b}"));
    }
    // The core's names are documented in metrics.md too.
    let core = read("docs/metrics.md");
    for name in &METRIC_NAMES[..15] {
        assert!(
            core.contains(&format!("`{name}`")),
            "metrics.md lacks {name}"
        );
    }
}

#[test]
fn readme_admin_lines_are_compiled_by_the_service_example() {
    let readme = read("README.md");
    let example = read("admin/examples/service.rs");
    let admin_blocks: Vec<String> = blocks(&readme, "rust,ignore")
        .into_iter()
        .filter(|b| b.contains("riptide_admin"))
        .collect();
    assert_eq!(admin_blocks.len(), 1, "one admin block in the README");
    for line in admin_blocks[0].lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            example.contains(line.trim()),
            "README line not in admin/examples/service.rs: {line}"
        );
    }
    assert!(
        readme.contains("docs/dashboard.png"),
        "the README shows the screenshot"
    );
}
