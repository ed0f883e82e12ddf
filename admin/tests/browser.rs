//! The dashboard in a real browser: the demo is served on a loopback port and headless
//! Chromium loads the page, runs its polling script, and dumps the DOM; the test checks
//! that every pool's name and its utilization as `/pools/{name}` reports it are on the
//! page, and saves screenshots (into `CARGO_TARGET_TMPDIR`).
//!
//! Needs the distribution's `chromium` (`.ci/run` installs it). Without it the test fails
//! in CI (`CI=true`) and is skipped, saying so, elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use riptide_admin::demo::{Demo, DemoOptions};
use scraper::{Html, Selector};

fn chromium() -> Option<PathBuf> {
    let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
    if let Some(p) = candidates.iter().map(PathBuf::from).find(|p| p.exists()) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.exists())
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile; returns stdout.
fn run_chromium(bin: &Path, url: &str, extra: &[String]) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap().expect("chromium output")
}

fn dump_dom(bin: &Path, url: &str) -> String {
    let html = run_chromium(
        bin,
        url,
        &[
            "--window-size=1400,1200".into(),
            // Virtual time: the page's first polls run, with the real fetches.
            "--virtual-time-budget=3000".into(),
            "--dump-dom".into(),
        ],
    );
    assert!(html.contains("</html>"), "no DOM dumped:\n{html}");
    html
}

fn screenshot(bin: &Path, url: &str, file: &str, height: u32) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    let _ = std::fs::remove_file(&path);
    run_chromium(
        bin,
        url,
        &[
            format!("--window-size=1400,{height}"),
            "--virtual-time-budget=3000".into(),
            format!("--screenshot={}", path.display()),
        ],
    );
    let png = std::fs::read(&path).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(png.len() > 20_000, "a real picture, {} bytes", png.len());
    path
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

async fn pools(c: &reqwest::Client, s: &Served) -> Pools {
    c.get(s.url("/pools"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Freezes the demo and waits until its figures stop moving.
async fn settle(demo: &Demo, c: &reqwest::Client, s: &Served) {
    demo.freeze();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let now: Vec<(String, usize, usize, usize)> = pools(c, s)
            .await
            .pools
            .into_iter()
            .map(|p| {
                let st = p.stats;
                (p.name, st.in_use, st.max_size, st.pending_acquisitions)
            })
            .collect();
        if now == last && now.iter().all(|p| p.3 == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not settle: {now:?}"
        );
        last = now;
    }
}

/// Checks the page shows every pool's name and the utilization `/pools/{name}` reports.
async fn check_names_and_utilization(
    bin: &Path,
    c: &reqwest::Client,
    s: &Served,
    url: &str,
) -> Html {
    let listed = pools(c, s).await;
    let b = bin.to_path_buf();
    let u = url.to_string();
    let html = tokio::task::spawn_blocking(move || dump_dom(&b, &u))
        .await
        .unwrap();
    let dom = Html::parse_document(&html);
    let row_sel = sel("tr.pool-row");
    let rows: Vec<_> = dom.select(&row_sel).collect();
    assert_eq!(rows.len(), listed.pools.len(), "one row per pool");
    for p in &listed.pools {
        let row = rows
            .iter()
            .find(|r| r.value().attr("data-pool") == Some(p.name.as_str()))
            .unwrap_or_else(|| panic!("no row for {}", p.name));
        let name: String = row
            .select(&sel(".pool-name"))
            .next()
            .unwrap()
            .text()
            .collect();
        assert_eq!(name, p.name);
        let util = row.select(&sel(".util-pct")).next().unwrap();
        let shown: f64 = util.value().attr("data-util").unwrap().parse().unwrap();
        let text: String = util.text().collect();
        let one: Summary = c
            .get(s.url(&format!("/pools/{}", p.name)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            (shown - one.health.utilization).abs() < 1e-9,
            "{}: page {shown}, /pools/{} {}",
            p.name,
            p.name,
            one.health.utilization
        );
        let pct: f64 = text.trim_end_matches('%').parse().unwrap();
        assert!(
            (pct - one.health.utilization * 100.0).abs() <= 0.051,
            "{}: shown {text:?} for {}",
            p.name,
            one.health.utilization
        );
    }
    let status: String = dom.select(&sel("#status")).next().unwrap().text().collect();
    assert!(status.starts_with("live"), "status {status:?}");
    dom
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some(bin) = chromium() else {
        assert!(
            !in_ci(),
            "chromium is missing: CI must install it (.ci/run does)"
        );
        eprintln!("SKIPPED: no chromium on this machine (apt-get install chromium)");
        return;
    };
    let c = reqwest::Client::new();

    // The demo as `--example dashboard` serves it: `db` and `tenants` under load.
    let demo = Demo::start(DemoOptions::default()).unwrap();
    let s = Served::start(demo.admin()).await;
    let url = s.url("/");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let shot = {
        let (b, u) = (bin.clone(), url.clone());
        tokio::task::spawn_blocking(move || screenshot(&b, &u, "dashboard.png", 1300))
            .await
            .unwrap()
    };
    eprintln!("screenshot: {}", shot.display());
    settle(&demo, &c, &s).await;
    let dom = check_names_and_utilization(&bin, &c, &s, &url).await;
    // Two pools: both open, with their details.
    let parts: Vec<String> = dom
        .select(&sel("tr.partition-row td.partition-key"))
        .map(|e| e.text().collect())
        .collect();
    assert!(
        parts.iter().any(|k| k.starts_with("tenant-")),
        "partitions table: {parts:?}"
    );
    let chart = sel("tr.detail-row[data-pool=\"db\"] polyline");
    assert!(dom.select(&chart).count() >= 4, "the chart's four series");
    let locs: Vec<String> = dom
        .select(&sel("tr.checkout-row td.loc"))
        .map(|e| e.text().collect())
        .collect();
    if demo.db().stats().in_use > 0 {
        assert!(
            locs.iter().any(|l| l.contains("demo.rs:")),
            "checkouts with their lines: {locs:?}"
        );
    }
    s.stop().await;
    drop(demo);

    // 50 pools and 200 partitions: every pool listed (collapsed), partitions paged.
    let demo = Demo::start(DemoOptions {
        extra_pools: 48,
        tenants: 200,
        token: None,
    })
    .unwrap();
    let s = Served::start(demo.admin()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while demo.tenants().partitions().len() < 200 {
        assert!(Instant::now() < deadline, "the demo's 200 tenants");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let url = s.url("/#expand=tenants");
    let shot = {
        let (b, u) = (bin.clone(), url.clone());
        tokio::task::spawn_blocking(move || screenshot(&b, &u, "dashboard-50-pools.png", 2600))
            .await
            .unwrap()
    };
    eprintln!("screenshot: {}", shot.display());
    settle(&demo, &c, &s).await;
    let dom = check_names_and_utilization(&bin, &c, &s, &url).await;
    assert_eq!(dom.select(&sel("tr.pool-row")).count(), 50);
    assert_eq!(
        dom.select(&sel("tr.detail-row")).count(),
        1,
        "only the pool named in the link is open"
    );
    assert_eq!(
        dom.select(&sel("tr.partition-row")).count(),
        20,
        "a page of 20"
    );
    let range: String = dom
        .select(&sel(".part-range"))
        .next()
        .unwrap()
        .text()
        .collect();
    assert_eq!(range, "1–20 of 200");
    s.stop().await;
}
