//! Every route of the admin, served on a loopback port and called with a real HTTP client:
//! status codes, typed JSON shapes, the token rules of the writes, bad input, the
//! Prometheus text as a parser reads it, and several admins in one process.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use riptide_admin::{Admin, AdminError, METRIC_NAMES};
use riptide_pool::{
    CircuitState, HealthLevel, PartitionedPool, Pool, PoolStats, Poolable, Priority,
};

struct Conn;
impl Poolable for Conn {}

fn pool(max: usize) -> Pool<Conn> {
    Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) })
        .max_size(max)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn partitioned() -> PartitionedPool<String, Conn> {
    PartitionedPool::builder(|_k: String| async { Ok::<_, std::io::Error>(Conn) })
        .partition_max_size(4)
        .max_size(10)
        .build()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = c.get(url).send().await.unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn read_endpoints() {
    let db = pool(4);
    let tenants = partitioned();
    let (g1, l1) = (db.get().await.unwrap(), line!());
    tokio::time::sleep(Duration::from_millis(30)).await;
    let g2 = db.get().await.unwrap();
    let acme = "acme".to_string();
    let globex = "globex".to_string();
    let held = vec![
        tenants.get(&acme).await.unwrap(),
        tenants.get(&acme).await.unwrap(),
        tenants.get(&globex).await.unwrap(),
    ];
    let admin = Admin::new()
        .pool("db", &db)
        .partitioned("tenants", &tenants);
    let s = Served::start(&admin).await;
    let c = reqwest::Client::new();

    // The page: self-contained, nothing loaded from elsewhere.
    let r = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let page = r.text().await.unwrap();
    assert!(page.contains("<script>") && page.contains("setInterval(poll, 1000)"));
    for remote in ["src=\"http", "href=\"http", "@import", "url(http", "//cdn"] {
        assert!(!page.contains(remote), "the page must not load {remote}…");
    }

    // /pools
    let (st, body) = get(&c, s.url("/pools")).await;
    assert_eq!(st, 200);
    let pools: Pools = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = pools.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["db", "tenants"]);
    let (d, t) = (&pools.pools[0], &pools.pools[1]);
    assert_eq!((d.kind.as_str(), t.kind.as_str()), ("pool", "partitioned"));
    assert_eq!(d.stats.in_use, 2);
    assert_eq!(d.stats.max_size, 4);
    assert_eq!(d.health.utilization, 0.5);
    assert_eq!(d.circuit_state, Some(CircuitState::Closed));
    assert_eq!(d.closed, Some(false));
    assert_eq!(d.partitions, None);
    assert_eq!(t.stats.in_use, 3);
    assert_eq!(
        t.stats.max_size, 10,
        "a partitioned pool's max_size is the global cap"
    );
    assert_eq!(t.circuit_state, Some(CircuitState::Closed));
    assert_eq!(t.closed, Some(false));

    assert_eq!(t.partitions, Some(2));

    // Field names are the core's: the same keys as PoolStats / HealthStatus serialize to.
    let raw: serde_json::Value = serde_json::from_str(&body).unwrap();
    let want_stats = keys(&serde_json::to_value(PoolStats::default()).unwrap());
    let want_health = keys(&serde_json::to_value(db.health()).unwrap());
    for p in raw["pools"].as_array().unwrap() {
        assert_eq!(keys(&p["stats"]), want_stats);
        assert_eq!(keys(&p["health"]), want_health);
    }

    // /pools/{name}
    let (st, body) = get(&c, s.url("/pools/db")).await;
    assert_eq!(st, 200);
    let one: Summary = serde_json::from_str(&body).unwrap();
    assert_eq!(one.name, "db");
    assert_eq!(one.stats.in_use, 2);
    assert_eq!(one.health.level, HealthLevel::Healthy);
    assert_eq!(one.stats.wait_p99, db.stats().wait_p99);
    for path in [
        "/pools/nope",
        "/pools/nope/checked-out",
        "/pools/nope/partitions",
        "/pools/nope/history",
        "/pools/nope/export.csv",
    ] {
        let (st, body) = get(&c, s.url(path)).await;
        assert_eq!(st, 404, "{path}");
        let e: ErrorBody = serde_json::from_str(&body).unwrap();
        assert!(e.error.contains("nope"), "{path}: {}", e.error);
    }
    assert_eq!(get(&c, s.url("/no-such-route")).await.0, 404);

    // checked-out: oldest first, with the line that took each
    let (st, body) = get(&c, s.url("/pools/db/checked-out")).await;
    assert_eq!(st, 200);
    let co: CheckedOut = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (co.pool.as_str(), co.count, co.checked_out.len()),
        ("db", 2, 2)
    );
    assert!(co.checked_out[0].held_for >= co.checked_out[1].held_for);
    assert!(
        co.checked_out[0]
            .location
            .contains(&format!("endpoints.rs:{l1}:")),
        "{:?}",
        co.checked_out[0]
    );
    let co: CheckedOut =
        serde_json::from_str(&get(&c, s.url("/pools/db/checked-out?limit=1")).await.1).unwrap();
    assert_eq!((co.count, co.checked_out.len()), (2, 1));
    assert_eq!(get(&c, s.url("/pools/db/checked-out?limit=x")).await.0, 400);
    let (st, body) = get(&c, s.url("/pools/tenants/checked-out")).await;
    assert_eq!(
        st, 200,
        "a partitioned pool lists every partition's checkouts"
    );
    let co: CheckedOut = serde_json::from_str(&body).unwrap();
    assert_eq!(co.count, 3, "{body}");

    // partitions
    let (st, body) = get(&c, s.url("/pools/tenants/partitions")).await;
    assert_eq!(st, 200);
    let p: Partitions = serde_json::from_str(&body).unwrap();
    assert!(p.partitioned);
    assert_eq!((p.count, p.offset, p.totals.in_use), (2, 0, 3));
    let keys_in_order: Vec<&str> = p.partitions.iter().map(|x| x.key.as_str()).collect();
    assert_eq!(keys_in_order, ["acme", "globex"], "largest share first");
    let a = &p.partitions[0];
    assert_eq!(a.stats.in_use, 2);
    assert!(
        (a.share - 0.2).abs() < 1e-9,
        "2 of the global 10: {}",
        a.share
    );
    assert!((a.in_use_share - 2.0 / 3.0).abs() < 1e-9);
    assert!((a.utilization - 0.5).abs() < 1e-9);
    assert_eq!(a.level, HealthLevel::Healthy);
    let p: Partitions = serde_json::from_str(
        &get(&c, s.url("/pools/tenants/partitions?offset=1&limit=1"))
            .await
            .1,
    )
    .unwrap();
    assert_eq!((p.count, p.offset, p.partitions.len()), (2, 1, 1));
    assert_eq!(p.partitions[0].key, "globex");
    let p: Partitions = serde_json::from_str(
        &get(&c, s.url("/pools/tenants/partitions?q=GLO&sort=key"))
            .await
            .1,
    )
    .unwrap();
    assert_eq!(p.count, 1);
    assert_eq!(
        get(&c, s.url("/pools/tenants/partitions?sort=bogus"))
            .await
            .0,
        400
    );
    assert_eq!(
        get(&c, s.url("/pools/tenants/partitions?offset=-1"))
            .await
            .0,
        400
    );
    let p: Partitions =
        serde_json::from_str(&get(&c, s.url("/pools/db/partitions")).await.1).unwrap();
    assert!(!p.partitioned);
    assert_eq!((p.count, p.partitions.len()), (0, 0));
    assert_eq!(p.totals.in_use, 2);

    // history: the sampler started with the router and samples once a second
    tokio::time::sleep(Duration::from_millis(2300)).await;
    drop(g2);
    let (st, body) = get(&c, s.url("/pools/db/history")).await;
    assert_eq!(st, 200);
    let h: History = serde_json::from_str(&body).unwrap();
    assert_eq!((h.pool.as_str(), h.interval_secs), ("db", 1));
    assert!(h.samples.len() >= 2, "{} samples", h.samples.len());
    assert!(h.samples.windows(2).all(|w| w[0].t < w[1].t));
    let first = &h.samples[0];
    assert_eq!((first.in_use, first.max_size), (2, 4));
    assert!((first.utilization - 0.5).abs() < 1e-9);
    assert!(!h.hourly.is_empty());
    let last = h.hourly.last().unwrap();
    assert_eq!(last.hour % 3600, 0);
    // The current hour's bucket counts exactly the samples taken since the hour began
    // (read under the same lock as the samples; the run may cross an hour boundary).
    let this_hour = h.samples.iter().filter(|x| x.t / 1000 >= last.hour).count();
    assert!(this_hour >= 1);
    assert_eq!(last.samples as usize, this_hour);
    let one: History =
        serde_json::from_str(&get(&c, s.url("/pools/db/history?seconds=1")).await.1).unwrap();
    assert_eq!(one.samples.len(), 1);
    assert_eq!(
        get(&c, s.url("/pools/db/history?seconds=many")).await.0,
        400
    );

    // export.csv: the same samples
    let r = c.get(s.url("/pools/db/export.csv")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("db-history.csv"));
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 12);
    assert_eq!(header[0], "t_unix_ms");
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() >= h.samples.len());
    for row in &rows {
        assert_eq!(row.len(), 12);
        for cell in row {
            cell.parse::<f64>().unwrap();
        }
    }

    // health
    let (st, body) = get(&c, s.url("/health")).await;
    assert_eq!(st, 200);
    let hr: HealthReport = serde_json::from_str(&body).unwrap();
    assert_eq!((hr.status.as_str(), hr.unhealthy.len()), ("ok", 0));
    assert!(hr.pools.is_none());
    let (st, body) = get(&c, s.url("/health/pool")).await;
    assert_eq!(st, 200);
    let hr: HealthReport = serde_json::from_str(&body).unwrap();
    let ph = hr.pools.unwrap();
    assert_eq!(ph.len(), 2);
    assert_eq!(ph[0].name, "db");
    assert_eq!(ph[0].circuit_state, Some(CircuitState::Closed));

    // wrong methods
    assert_eq!(c.post(s.url("/pools")).send().await.unwrap().status(), 405);
    assert_eq!(get(&c, s.url("/pools/db/resize")).await.0, 405);

    drop((g1, held));
    s.stop().await;
}

#[tokio::test]
async fn health_is_503_naming_the_unhealthy_pools() {
    let busy = pool(2);
    let full = pool(1);
    let closed = pool(2);
    let _b = busy.get().await.unwrap();
    let _b2 = busy.get().await.unwrap(); // utilization 1.0, nobody waiting: Degraded
    let _f = full.get().await.unwrap();
    // A caller waiting on a full pool: Unhealthy.
    let waiter = {
        let full = full.clone();
        tokio::spawn(async move { full.get().await.map(drop) })
    };
    while full.stats().pending_acquisitions == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    closed.close(); // Critical
    let admin = Admin::new()
        .pool("busy", &busy)
        .pool("full", &full)
        .pool("closed", &closed);
    let s = Served::start(&admin).await;
    let c = reqwest::Client::new();
    for path in ["/health", "/health/pool"] {
        let (st, body) = get(&c, s.url(path)).await;
        assert_eq!(st, 503, "{path}");
        let hr: HealthReport = serde_json::from_str(&body).unwrap();
        assert_eq!(hr.status, "unhealthy");
        assert_eq!(hr.unhealthy, ["full", "closed"]);
    }
    let hr: HealthReport = serde_json::from_str(&get(&c, s.url("/health/pool")).await.1).unwrap();
    let levels: Vec<HealthLevel> = hr
        .pools
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.health.level)
        .collect();
    assert_eq!(
        levels,
        [
            HealthLevel::Degraded,
            HealthLevel::Unhealthy,
            HealthLevel::Critical
        ]
    );

    // Degraded alone is still 200.
    let only_busy = Served::start(&Admin::new().pool("busy", &busy)).await;
    assert_eq!(get(&c, only_busy.url("/health")).await.0, 200);
    drop(_f);
    waiter.await.unwrap().unwrap();
    only_busy.stop().await;
    s.stop().await;
}

/// One tenant whose factory keeps failing does not take the service out of rotation: the
/// partitioned pool is `Degraded` (200) while other tenants are served, and `Critical`
/// (503) once every tenant fails.
#[tokio::test]
async fn one_failing_tenant_degrades_health_and_every_tenant_failing_fails_it() {
    let tenants = PartitionedPool::builder(|k: String| async move {
        if k.starts_with("down") {
            Err(std::io::Error::other("tenant database down"))
        } else {
            Ok(Conn)
        }
    })
    .max_size(8)
    .partition_max_size(2)
    .configure(|b| b.circuit_breaker(1, Duration::from_secs(60)))
    .build()
    .unwrap();
    let s = Served::start(&Admin::new().partitioned("tenants", &tenants)).await;
    let c = reqwest::Client::new();
    assert!(tenants.get(&"down-1".to_string()).await.is_err());
    let (st, body) = get(&c, s.url("/health")).await;
    assert_eq!(st, 503, "the only tenant fails: {body}");

    drop(tenants.get(&"up".to_string()).await.unwrap());
    let (st, body) = get(&c, s.url("/health")).await;
    assert_eq!(st, 200, "{body}");
    let t: Summary = serde_json::from_str(&get(&c, s.url("/pools/tenants")).await.1).unwrap();
    assert_eq!(
        (t.health.level, t.circuit_state),
        (HealthLevel::Degraded, Some(CircuitState::Open))
    );
    // Each tenant's row has its own health: the failing one's breaker counts there.
    let p: Partitions =
        serde_json::from_str(&get(&c, s.url("/pools/tenants/partitions")).await.1).unwrap();
    let mut rows: Vec<(String, HealthLevel)> =
        p.partitions.into_iter().map(|r| (r.key, r.level)).collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("down-1".to_string(), HealthLevel::Critical),
            ("up".to_string(), HealthLevel::Healthy)
        ]
    );
    s.stop().await;
}

async fn post(
    c: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut r = c.post(url).body(body.to_string());
    if let Some(t) = token {
        r = r.header("authorization", t);
    }
    let r = r.send().await.unwrap();
    let s = r.status();
    (s, r.text().await.unwrap())
}

#[tokio::test]
async fn writes_are_refused_without_a_token() {
    let db = pool(4);
    for admin in [
        Admin::new().pool("db", &db),
        // A blank token counts as none (and `validate` reports it).
        Admin::new().pool("db", &db).token(Some(" ".into())),
    ] {
        // `bind` validates: serve the router by hand for the blank-token case.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = admin.router();
        let task = tokio::spawn(async move { axum::serve(listener, router).await });
        let c = reqwest::Client::new();
        for (path, body) in [
            ("resize", r#"{"max_size": 8}"#),
            ("close", ""),
            ("drain", ""),
        ] {
            for auth in [None, Some("Bearer x"), Some("Bearer  ")] {
                let (st, body) =
                    post(&c, format!("http://{addr}/pools/db/{path}"), auth, body).await;
                assert_eq!(st, 403, "{path} {auth:?}");
                serde_json::from_str::<ErrorBody>(&body).unwrap();
            }
        }
        assert_eq!(db.stats().max_size, 4);
        assert!(!db.is_closed());
        task.abort();
    }
}

#[tokio::test]
async fn writes_with_a_token() {
    let db = pool(4);
    let tenants = partitioned();
    let _t = tenants.get(&"acme".to_string()).await.unwrap();
    let admin = Admin::new()
        .pool("db", &db)
        .partitioned("tenants", &tenants)
        .token(Some("s3cret".into()))
        .resize_limit(1000);
    let s = Served::start(&admin).await;
    let c = reqwest::Client::new();
    let ok = Some("Bearer s3cret");

    // Without the right token: 401, nothing changes.
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret2"),
        Some("Basic s3cret"),
        Some("s3cret"),
    ] {
        for (path, body) in [
            ("resize", r#"{"max_size": 8}"#),
            ("close", ""),
            ("drain", ""),
        ] {
            let r = c
                .post(s.url(&format!("/pools/db/{path}")))
                .body(body)
                .header("authorization", auth.unwrap_or(""))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{path} {auth:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
    }
    assert_eq!(db.stats().max_size, 4);
    assert!(!db.is_closed());

    // Bad input: 4xx, nothing changes.
    for (body, code) in [
        ("{max_size: 8", 400),
        ("", 400),
        (r#"{"max_size": 0}"#, 422),
        (r#"{"max_size": -1}"#, 400),
        (r#"{"max_size": "8"}"#, 400),
        (r#"{"max_size": 8.5}"#, 400),
        (r#"{"maxsize": 8}"#, 400),
        (r#"{"max_size": 8, "extra": 1}"#, 400),
        (r#"{"max_size": 1001}"#, 422),
        (r#"{"max_size": 99999999999999999999999}"#, 400),
    ] {
        let (st, resp) = post(&c, s.url("/pools/db/resize"), ok, body).await;
        assert_eq!(st.as_u16(), code, "{body}: {resp}");
        serde_json::from_str::<ErrorBody>(&resp).unwrap();
    }
    assert_eq!(db.stats().max_size, 4);
    let (st, _) = post(&c, s.url("/pools/db/close"), ok, "not json").await;
    assert_eq!(st, 400);
    let (st, _) = post(&c, s.url("/pools/db/drain"), ok, r#"{"timeout_ms": "x"}"#).await;
    assert_eq!(st, 400);
    let (st, _) = post(
        &c,
        s.url("/pools/db/drain"),
        ok,
        r#"{"timeout_ms": 600001}"#,
    )
    .await;
    assert_eq!(st, 422);
    assert!(!db.is_closed());
    let (st, _) = post(&c, s.url("/pools/nope/resize"), ok, r#"{"max_size": 8}"#).await;
    assert_eq!(st, 404);

    // Resize.
    let (st, body) = post(&c, s.url("/pools/db/resize"), ok, r#"{"max_size": 8}"#).await;
    assert_eq!(st, 200, "{body}");
    let w: WriteOutcome = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (w.action.as_str(), w.previous_max_size, w.max_size),
        ("resize", Some(4), Some(8))
    );
    assert_eq!(db.stats().max_size, 8);
    let (st, _) = post(&c, s.url("/pools/tenants/resize"), ok, r#"{"max_size": 8}"#).await;
    assert_eq!(st, 501, "a partitioned pool has no resize");

    // Drain with a checkout out: closes, times out, names what is still out.
    let (g, line) = (db.get().await.unwrap(), line!());
    let (st, body) = post(&c, s.url("/pools/db/drain"), ok, r#"{"timeout_ms": 50}"#).await;
    assert_eq!(st, 200, "{body}");
    let w: WriteOutcome = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (w.closed, w.drained, w.in_use),
        (Some(true), Some(false), Some(1))
    );
    let out = w.still_out.unwrap();
    assert_eq!(out.len(), 1);
    assert!(out[0].location.contains(&format!("endpoints.rs:{line}:")));
    assert!(db.is_closed());
    drop(g);
    let (st, body) = post(&c, s.url("/pools/db/drain"), ok, "").await;
    assert_eq!(st, 200);
    let w: WriteOutcome = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (w.drained, w.in_use, w.still_out.is_none()),
        (Some(true), Some(0), true)
    );
    let (st, _) = post(&c, s.url("/pools/db/resize"), ok, r#"{"max_size": 9}"#).await;
    assert_eq!(st, 409, "a closed pool is not resized");

    // Close the partitioned pool: the admin remembers it.
    let (st, body) = post(&c, s.url("/pools/tenants/close"), ok, "").await;
    assert_eq!(st, 200);
    let w: WriteOutcome = serde_json::from_str(&body).unwrap();
    assert_eq!((w.action.as_str(), w.closed), ("close", Some(true)));
    let t: Summary = serde_json::from_str(&get(&c, s.url("/pools/tenants")).await.1).unwrap();
    assert_eq!(
        (t.closed, t.health.level),
        (Some(true), HealthLevel::Critical)
    );
    let (st, body) = get(&c, s.url("/health")).await;
    assert_eq!(st, 503);
    let hr: HealthReport = serde_json::from_str(&body).unwrap();
    assert_eq!(hr.unhealthy, ["db", "tenants"]);
    s.stop().await;
}

const METRIC_NAME: fn(&str) -> bool = |s| {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
};
const LABEL_NAME: fn(&str) -> bool = |s| {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
};

/// Parses `/metrics` as a scraper would and checks every sample.
fn parse_metrics(text: &str, registered: &[&str]) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses");
    let sample_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(
        scrape.samples.len(),
        sample_lines,
        "every sample line is understood"
    );
    for smp in &scrape.samples {
        assert!(METRIC_NAME(&smp.metric), "metric name {:?}", smp.metric);
        assert!(
            METRIC_NAMES.contains(&smp.metric.as_str()),
            "{} is not a documented name",
            smp.metric
        );
        for (k, _) in smp.labels.iter() {
            assert!(LABEL_NAME(k), "label name {k:?} of {}", smp.metric);
        }
        let pool = smp
            .labels
            .get("pool")
            .expect("every sample has a pool label");
        assert!(registered.contains(&pool), "pool={pool:?}");
    }
    scrape
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, pool: &str) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get("pool") == Some(pool))
        .unwrap_or_else(|| panic!("{name}{{pool={pool:?}}} missing"));
    match s.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_parse_and_several_admins_coexist() {
    // A global recorder installed by the service for its own metrics changes nothing.
    metrics::set_global_recorder(metrics::NoopRecorder).unwrap();

    let db = pool(4);
    let tenants = partitioned();
    let _g = db.get().await.unwrap();
    let _h = db.get().await.unwrap();
    let _t = tenants.get(&"acme".to_string()).await.unwrap();

    // Two admins over the same pool under different names, a third with another.
    let a = Admin::new()
        .pool("db", &db)
        .partitioned("tenants", &tenants);
    let b = Admin::new().pool("primary", &db);
    let other = pool(3);
    let c3 = Admin::new().pool("cache", &other).partition_metrics(false);
    let (sa, sb, sc) = (
        Served::start(&a).await,
        Served::start(&b).await,
        Served::start(&c3).await,
    );
    let c = reqwest::Client::new();

    let r = c.get(sa.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let scrape = parse_metrics(&text, &["db", "tenants"]);
    for name in [
        "riptide_pool_max_size",
        "riptide_pool_size",
        "riptide_pool_idle",
        "riptide_pool_in_use",
        "riptide_pool_pending_acquisitions",
        "riptide_pool_oldest_wait_seconds",
        "riptide_pool_created_total",
        "riptide_pool_destroyed_total",
        "riptide_pool_acquired_total",
        "riptide_pool_timeouts_total",
        "riptide_pool_leaks_detected_total",
        "riptide_pool_utilization",
        "riptide_pool_health_level",
        "riptide_pool_health_score",
        "riptide_pool_error_rate",
    ] {
        value(&scrape, name, "db");
        value(&scrape, name, "tenants");
    }
    assert_eq!(value(&scrape, "riptide_pool_in_use", "db"), 2.0);
    assert_eq!(value(&scrape, "riptide_pool_in_use", "tenants"), 1.0);
    assert_eq!(value(&scrape, "riptide_pool_max_size", "tenants"), 10.0);
    assert_eq!(value(&scrape, "riptide_pool_utilization", "db"), 0.5);
    assert_eq!(value(&scrape, "riptide_pool_acquired_total", "db"), 2.0);
    assert_eq!(value(&scrape, "riptide_pool_circuit_state", "db"), 0.0);
    assert_eq!(value(&scrape, "riptide_pool_partitions", "tenants"), 1.0);
    let quantiles: HashSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "riptide_pool_wait_seconds" && s.labels.get("pool") == Some("db"))
        .filter_map(|s| s.labels.get("quantile"))
        .collect();
    assert_eq!(quantiles, HashSet::from(["0.5", "0.95", "0.99"]));
    let part = scrape
        .samples
        .iter()
        .find(|s| s.metric == "riptide_partition_in_use")
        .expect("per-partition series");
    assert_eq!(part.labels.get("partition"), Some("acme"));
    assert!(text.contains("# TYPE riptide_pool_created_total counter"));
    assert!(text.contains("# TYPE riptide_pool_in_use gauge"));
    assert!(text.contains("# HELP riptide_pool_in_use"));

    // The second admin names the same pool its own way, and nothing else.
    let tb = c
        .get(sb.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sb_scrape = parse_metrics(&tb, &["primary"]);
    assert_eq!(value(&sb_scrape, "riptide_pool_in_use", "primary"), 2.0);
    let tc = c
        .get(sc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sc_scrape = parse_metrics(&tc, &["cache"]);
    assert_eq!(value(&sc_scrape, "riptide_pool_in_use", "cache"), 0.0);
    assert!(!tc.contains("riptide_partition_"));

    // Scraped again after a change: fresh values.
    drop(_h);
    let text = c
        .get(sa.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        value(
            &parse_metrics(&text, &["db", "tenants"]),
            "riptide_pool_in_use",
            "db"
        ),
        1.0
    );
    for s in [sa, sb, sc] {
        s.stop().await;
    }
}

/// The `riptide_pool_waiting{priority}` samples of `pool`, by priority label.
fn waiting_by_label<'a>(scrape: &'a prometheus_parse::Scrape, pool: &str) -> HashMap<&'a str, f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "riptide_pool_waiting" && s.labels.get("pool") == Some(pool))
        .map(|s| {
            let priority = s.labels.get("priority").expect("a priority label");
            let prometheus_parse::Value::Gauge(v) = s.value else {
                panic!("riptide_pool_waiting is a gauge: {:?}", s.value)
            };
            (priority, v)
        })
        .collect()
}

#[tokio::test]
async fn metrics_carry_the_waiters_per_priority_and_the_oldest_wait() {
    let db = pool(1);
    let held = db.get().await.unwrap();
    let waiter = tokio::spawn({
        let db = db.clone();
        async move {
            db.acquire()
                .priority(Priority::High)
                .timeout(Duration::from_secs(30))
                .await
                .map(drop)
        }
    });
    while db.stats().pending_acquisitions == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(60)).await;

    let s = Served::start(&Admin::new().pool("db", &db)).await;
    let c = reqwest::Client::new();
    let scrape_now = || async {
        let text = get(&c, s.url("/metrics")).await.1;
        (parse_metrics(&text, &["db"]), text)
    };
    let (scrape, text) = scrape_now().await;
    assert_eq!(
        waiting_by_label(&scrape, "db"),
        HashMap::from([
            ("low", 0.0),
            ("normal", 0.0),
            ("high", 1.0),
            ("critical", 0.0)
        ])
    );
    let oldest = value(&scrape, "riptide_pool_oldest_wait_seconds", "db");
    assert!(
        (0.04..30.0).contains(&oldest),
        "the waiter has waited at least 60 ms: {oldest}"
    );
    assert!(text.contains("# TYPE riptide_pool_waiting gauge"));
    assert!(text.contains("# HELP riptide_pool_waiting "));
    assert!(text.contains("# TYPE riptide_pool_oldest_wait_seconds gauge"));
    assert!(text.contains("# HELP riptide_pool_oldest_wait_seconds "));

    // The JSON carries the same figures, read back as the core's own `PoolStats`.
    let one: Summary = serde_json::from_str(&get(&c, s.url("/pools/db")).await.1).unwrap();
    assert_eq!(one.stats.waiting_at(Priority::High), 1);
    assert_eq!(one.stats.waiting_by_priority, [0, 0, 1, 0]);
    assert!(one.stats.oldest_wait >= Duration::from_millis(40));

    // Served: nobody waits, and the oldest wait is back to zero.
    drop(held);
    waiter.await.unwrap().unwrap();
    let (scrape, _) = scrape_now().await;
    assert!(waiting_by_label(&scrape, "db").values().all(|&n| n == 0.0));
    assert_eq!(
        value(&scrape, "riptide_pool_oldest_wait_seconds", "db"),
        0.0
    );
    s.stop().await;
}

#[tokio::test]
async fn label_values_are_escaped() {
    let db = pool(2);
    let name = "we \"ird\\ name\nx";
    let s = Served::start(&Admin::new().pool(name, &db)).await;
    let c = reqwest::Client::new();
    let text = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"riptide_pool_in_use{pool="we \"ird\\ name\nx"} 0"#),
        "{text}"
    );
    let enc = "we%20%22ird%5C%20name%0Ax";
    let one: Summary =
        serde_json::from_str(&get(&c, s.url(&format!("/pools/{enc}"))).await.1).unwrap();
    assert_eq!(one.name, name);
    s.stop().await;
}

/// A label value of the text format read back strictly (`\\`, `\"` and `\n` are the
/// only escapes), as a scraper reads it.
fn unescape_label(v: &str) -> String {
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next() {
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                other => panic!("bad escape \\{other:?} in {v:?}"),
            },
            '"' | '\n' => panic!("unescaped {c:?} in {v:?}"),
            c => out.push(c),
        }
    }
    out
}

/// The value of `label` in every sample of `metric`, unescaped.
fn label_values(text: &str, metric: &str, label: &str) -> Vec<String> {
    let key = format!("{label}=\"");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some(i) = rest.find(&key) else { continue };
        let body = &rest.as_bytes()[i + key.len()..];
        let mut j = 0;
        while j < body.len() && body[j] != b'"' {
            j += if body[j] == b'\\' { 2 } else { 1 };
        }
        out.push(unescape_label(std::str::from_utf8(&body[..j]).unwrap()));
    }
    out.sort();
    out
}

/// Names that differ only in backslashes stay apart (the exporter would otherwise read
/// `\\` as an escape and render `C:\\a` as `C:\a`): every pool and partition label reads
/// back as the name it was registered under.
#[tokio::test]
async fn backslashes_in_names_and_keys_read_back_exactly() {
    let (a, b) = (pool(2), pool(2));
    let (one, two) = (r"C:\a", r"C:\\a");
    let pp = partitioned();
    let keys = [r"\\fs01\share", r#"CORP\"bob"#, r"tail\"];
    let mut held = Vec::new();
    for k in keys {
        held.push(pp.get(&k.to_string()).await.unwrap());
    }
    let admin = Admin::new()
        .pool(one, &a)
        .pool(two, &b)
        .partitioned("tenants", &pp);
    let s = Served::start(&admin).await;
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut names = [one, two, "tenants"];
    names.sort();
    assert_eq!(
        label_values(&text, "riptide_pool_in_use", "pool"),
        names,
        "{text}"
    );
    let mut want = keys.map(String::from);
    want.sort();
    assert_eq!(
        label_values(&text, "riptide_partition_in_use", "partition"),
        want,
        "{text}"
    );
    drop(held);
    s.stop().await;
}

#[tokio::test]
async fn configuration_errors_are_typed() {
    let db = pool(2);
    let dup = Admin::new().pool("x", &db).pool("x", &pool(3));
    assert!(matches!(dup.validate(), Err(AdminError::DuplicateName(n)) if n == "x"));
    assert!(matches!(
        dup.bind("127.0.0.1:0").await,
        Err(AdminError::DuplicateName(_))
    ));
    assert!(matches!(
        Admin::new().pool("", &db).validate(),
        Err(AdminError::EmptyName)
    ));
    assert!(matches!(
        Admin::new().token(Some(String::new())).validate(),
        Err(AdminError::EmptyToken)
    ));
    assert!(matches!(
        Admin::new().resize_limit(0).validate(),
        Err(AdminError::ZeroResizeLimit)
    ));
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    assert!(matches!(
        Admin::new().bind(addr).await,
        Err(AdminError::Bind { .. })
    ));
    Admin::new().pool("db", &db).validate().unwrap();

    // `router()` cannot fail: it serves the later of two pools with one name.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = listener.local_addr().unwrap();
    let router = dup.router();
    let task = tokio::spawn(async move { axum::serve(listener, router).await });
    let p: Pools = reqwest::get(format!("http://{a}/pools"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p.pools.len(), 1);
    assert_eq!(p.pools[0].stats.max_size, 3);
    task.abort();
}

#[tokio::test]
async fn nested_under_a_prefix() {
    let db = pool(2);
    let admin = Admin::new().pool("db", &db);
    let app = axum::Router::new().nest("/admin", admin.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let c = reqwest::Client::new();
    let (st, page) = get(&c, format!("http://{a}/admin")).await;
    assert_eq!(st, 200);
    assert!(page.contains("RipTide Pool"));
    let (st, body) = get(&c, format!("http://{a}/admin/pools/db")).await;
    assert_eq!(st, 200);
    serde_json::from_str::<Summary>(&body).unwrap();
    // An unknown path under the prefix is answered as every error is: JSON.
    let (st, body) = get(&c, format!("http://{a}/admin/pools/db/nope")).await;
    assert_eq!(st, 404);
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("/pools/db/nope"),
        "{body}"
    );
    task.abort();
}

/// A pool type of the user's own, registered through `PoolView`; it notes when the admin
/// lets go of it.
#[derive(Clone)]
struct Wrapped {
    inner: Pool<Conn>,
    dropped: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        self.dropped
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl riptide_admin::PoolView for Wrapped {
    fn stats(&self) -> PoolStats {
        self.inner.stats()
    }
    fn health(&self) -> riptide_pool::HealthStatus {
        self.inner.health()
    }
    fn circuit_state(&self) -> Option<riptide_pool::CircuitState> {
        None
    }
    fn is_closed(&self) -> Option<bool> {
        Some(self.inner.is_closed())
    }
    fn checked_out(&self) -> Option<Vec<riptide_pool::CheckedOut>> {
        Some(self.inner.checked_out())
    }
    fn resize(&self, _max: usize) -> Result<(), riptide_admin::Unsupported> {
        Err(riptide_admin::Unsupported)
    }
    fn close(&self) {
        self.inner.close()
    }
    fn drain(
        &self,
        timeout: Duration,
    ) -> riptide_admin::BoxFuture<'_, Result<(), riptide_pool::DrainError>> {
        Box::pin(self.inner.drain(timeout))
    }
}

#[tokio::test(flavor = "current_thread")]
async fn custom_views_and_the_sampler_ends_with_the_admin() {
    let rt = tokio::runtime::Handle::current();
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = Wrapped {
        inner: pool(3),
        dropped: dropped.clone(),
    };
    let tasks_before = rt.metrics().num_alive_tasks(); // the pool's maintenance
    let _g = w.inner.get().await.unwrap();
    let admin = Admin::new().pool("custom", &w).token(Some("t".into()));
    let s = Served::start(&admin).await;
    let c = reqwest::Client::new();
    let one: Summary = serde_json::from_str(&get(&c, s.url("/pools/custom")).await.1).unwrap();
    assert_eq!((one.kind.as_str(), one.stats.in_use), ("pool", 1));
    assert_eq!(one.circuit_state, None);
    let (st, _) = post(
        &c,
        s.url("/pools/custom/resize"),
        Some("Bearer t"),
        r#"{"max_size": 5}"#,
    )
    .await;
    assert_eq!(st, 501, "the view has no resize");
    assert_eq!(w.inner.stats().max_size, 3);
    assert!(
        rt.metrics().num_alive_tasks() > tasks_before,
        "sampler and server run"
    );

    s.stop().await;
    drop((admin, c));
    // The sampler holds only a weak reference: the view is released at once, and the
    // sampler's task ends at its next tick.
    assert_eq!(dropped.load(std::sync::atomic::Ordering::SeqCst), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while rt.metrics().num_alive_tasks() > tasks_before {
        assert!(
            std::time::Instant::now() < deadline,
            "the sampler task did not end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(w);
}

/// A token that `validate` accepts must be one a client can send. A token read from a
/// secret file keeps its trailing newline, and one may be pasted with a space around it;
/// an HTTP header cannot carry either (its value is trimmed), so the admin compares the
/// token as it compares the header: trimmed. A token of non-ASCII text arrives as its
/// UTF-8 bytes (`curl -H 'Authorization: Bearer clé'`), so it is compared as bytes.
#[tokio::test]
async fn a_token_that_validates_can_be_presented() {
    for (configured, sent) in [
        ("s3cret\n", "s3cret"),
        (" s3cret ", "s3cret"),
        ("\ts3cret\r\n", "s3cret"),
        ("clé-secrète", "clé-secrète"),
    ] {
        let db = pool(4);
        let admin = Admin::new()
            .pool("db", &db)
            .token(Some(configured.to_string()));
        admin.validate().expect("a non-blank token validates");
        let s = Served::start(&admin).await;
        let c = reqwest::Client::new();
        let auth =
            reqwest::header::HeaderValue::from_bytes(format!("Bearer {sent}").as_bytes()).unwrap();
        let r = c
            .post(s.url("/pools/db/resize"))
            .header("authorization", auth)
            .body(r#"{"max_size": 8}"#)
            .send()
            .await
            .unwrap();
        let st = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(st, 200, "token {configured:?} sent as {sent:?}: {body}");
        assert_eq!(db.stats().max_size, 8, "token {configured:?}");
        // A wrong token of the same bytes plus one is still refused.
        let wrong =
            reqwest::header::HeaderValue::from_bytes(format!("Bearer {sent}x").as_bytes()).unwrap();
        let r = c
            .post(s.url("/pools/db/resize"))
            .header("authorization", wrong)
            .body(r#"{"max_size": 9}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "token {configured:?}");
        assert_eq!(db.stats().max_size, 8);
        s.stop().await;
    }
}

/// A write's body is a JSON object (`{"max_size": n}`, `{"timeout_ms": n}`): the same
/// fields as an array (`[8]`, which serde's derive would read positionally) are the
/// wrong type, 400, and change nothing.
#[tokio::test]
async fn write_bodies_must_be_json_objects() {
    let db = pool(4);
    let admin = Admin::new().pool("db", &db).token(Some("t".into()));
    let s = Served::start(&admin).await;
    let c = reqwest::Client::new();
    let ok = Some("Bearer t");
    for (path, body) in [
        ("resize", "[8]"),
        ("resize", " [ 8 ] "),
        ("drain", "[50]"),
        ("drain", "[]"),
        ("close", "[]"),
    ] {
        let (st, resp) = post(&c, s.url(&format!("/pools/db/{path}")), ok, body).await;
        assert_eq!(st, 400, "{path} {body}: {resp}");
        serde_json::from_str::<ErrorBody>(&resp).unwrap();
    }
    assert_eq!(db.stats().max_size, 4);
    assert!(!db.is_closed());
    s.stop().await;
}

/// A token no `Authorization` header can carry (a control character inside it: a
/// newline between two lines of a secret file, a NUL) is a configuration error, not an
/// admin whose writes are refused forever.
#[tokio::test]
async fn a_token_no_header_can_carry_is_refused_by_validate() {
    for t in ["two\nlines", "nul\0byte", "del\u{7f}", "cr\rx"] {
        let admin = Admin::new().token(Some(t.to_string()));
        let e = admin.validate().expect_err(t);
        assert!(e.to_string().contains("token"), "{t:?}: {e}");
        assert!(matches!(e, AdminError::UnsendableToken), "{t:?}");
        assert!(matches!(
            admin.bind("127.0.0.1:0").await,
            Err(AdminError::UnsendableToken)
        ));
    }
    // A tab and non-ASCII text can be sent.
    Admin::new()
        .token(Some("tab\tclé".into()))
        .validate()
        .unwrap();
}

/// The history's sampler runs on the runtime of the first request (or `router()` call).
/// When that runtime shuts down while the admin lives on (built at start-up on a
/// bootstrap runtime, served on another), the next request starts it again.
#[test]
fn the_sampler_outlives_the_runtime_it_started_on() {
    let db = pool(2);
    let admin = Admin::new().pool("db", &db);
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let router = setup.block_on(async { admin.router() });
    drop(setup);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let samples = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let url = format!("http://{addr}/pools/db/history");
        let c = reqwest::Client::new();
        let t0 = std::time::Instant::now();
        loop {
            let v: serde_json::Value = c.get(&url).send().await.unwrap().json().await.unwrap();
            let n = v["samples"].as_array().unwrap().len();
            if n >= 2 || t0.elapsed() > Duration::from_secs(10) {
                break n;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(samples >= 2, "samples after 10 s of serving: {samples}");
}

/// A partitioned pool's checkouts name their partition: ids are numbered per partition,
/// so two tenants' objects taken by the same line are told apart only by the key. A
/// single pool's entries carry no key.
#[tokio::test]
async fn partitioned_checkouts_name_their_partition() {
    let pp = partitioned();
    let db = pool(2);
    let mut held = Vec::new();
    for k in ["acme", "globex"] {
        held.push(pp.get(&k.to_string()).await.unwrap());
    }
    let one = db.get().await.unwrap();
    let s = Served::start(&Admin::new().partitioned("tenants", &pp).pool("db", &db)).await;
    let c = reqwest::Client::new();
    let co: CheckedOut =
        serde_json::from_str(&get(&c, s.url("/pools/tenants/checked-out")).await.1).unwrap();
    let mut seen: Vec<(u64, Option<String>)> = co
        .checked_out
        .iter()
        .map(|e| (e.id, e.partition.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (1, Some("acme".to_string())),
            (1, Some("globex".to_string()))
        ]
    );
    let co: CheckedOut =
        serde_json::from_str(&get(&c, s.url("/pools/db/checked-out")).await.1).unwrap();
    assert_eq!(co.checked_out[0].partition, None);
    drop((held, one));
    s.stop().await;
}

/// A view that notes the thread of every `stats()` and `health()` call.
struct Watched {
    inner: Pool<Conn>,
    threads: Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>,
}

impl riptide_admin::PoolView for Watched {
    fn stats(&self) -> PoolStats {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        self.inner.stats()
    }
    fn health(&self) -> riptide_pool::HealthStatus {
        self.threads
            .lock()
            .unwrap()
            .push(std::thread::current().id());
        self.inner.health()
    }
    fn circuit_state(&self) -> Option<CircuitState> {
        None
    }
    fn is_closed(&self) -> Option<bool> {
        Some(self.inner.is_closed())
    }
    fn partitions(&self) -> Option<Vec<(String, PoolStats)>> {
        Some(vec![("k".into(), self.stats())])
    }
    fn checked_out(&self) -> Option<Vec<riptide_pool::CheckedOut>> {
        None
    }
    fn resize(&self, _max: usize) -> Result<(), riptide_admin::Unsupported> {
        Err(riptide_admin::Unsupported)
    }
    fn close(&self) {}
    fn drain(
        &self,
        _timeout: Duration,
    ) -> riptide_admin::BoxFuture<'_, Result<(), riptide_pool::DrainError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The reads that scan every partition (`/metrics`, `/pools`, a pool, its partitions,
/// `/health`, and the history's sampler) run off the service's runtime: on a current-thread runtime, none
/// of the view's figures is read on the runtime's own thread, where the pool's callers run.
#[tokio::test(flavor = "current_thread")]
async fn partition_scans_run_off_the_runtime() {
    let threads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let view = Watched {
        inner: pool(2),
        threads: threads.clone(),
    };
    let s = Served::start(&Admin::new().view("v", Arc::new(view))).await;
    let c = reqwest::Client::new();
    for path in [
        "/metrics",
        "/pools",
        "/pools/v",
        "/pools/v/partitions",
        "/health",
        "/health/pool",
    ] {
        let (st, _) = get(&c, s.url(path)).await;
        assert_eq!(st, 200, "{path}");
    }
    let here = std::thread::current().id();
    let seen = threads.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        !seen.contains(&here),
        "read on the runtime's thread: {seen:?}"
    );
    s.stop().await;
}
