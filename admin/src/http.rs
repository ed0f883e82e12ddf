//! The routes and their handlers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use riptide_pool::{CheckedOut, HealthLevel};
use serde::Deserialize;

use crate::api::*;
use crate::prom::{self, PoolFigures};
use crate::{Entry, Shared, HISTORY_SAMPLES};

type St = State<Arc<Shared>>;

/// The dashboard page, compiled in.
const DASHBOARD: &str = include_str!("dashboard.html");
/// What the page may load: nothing but itself and the JSON of this origin.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";
/// Drain's default wait, and the longest a request may ask for.
const DRAIN_DEFAULT: Duration = Duration::from_secs(10);
const DRAIN_MAX_MS: u64 = 600_000;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/health/pool", get(health_pool))
        .route("/pools", get(pools))
        .route("/pools/{name}", get(pool))
        .route("/pools/{name}/checked-out", get(checked_out))
        .route("/pools/{name}/partitions", get(partitions))
        .route("/pools/{name}/history", get(history))
        .route("/pools/{name}/export.csv", get(export_csv))
        .route("/pools/{name}/resize", post(resize))
        .route("/pools/{name}/close", post(close))
        .route("/pools/{name}/drain", post(drain))
        .fallback(not_found)
        .with_state(shared)
}

/// Any other path: 404 with `{"error": ..}`, as every other error is answered.
async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {:?}", uri.path())).into_response()
}

/// An error answer: a status and `{"error": "..."}`.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
    fn unknown_pool(name: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no pool named {name:?}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
    }
}

type ApiResult<T> = Result<T, ApiError>;

fn entry<'a>(s: &'a Shared, name: &str) -> ApiResult<&'a Entry> {
    s.entry(name).ok_or_else(|| ApiError::unknown_pool(name))
}

pub(crate) fn summary(e: &Entry) -> PoolSummary {
    let stats = e.view.stats();
    let health = e.health();
    PoolSummary {
        name: e.name.clone(),
        kind: e.view.kind(),
        stats,
        health,
        circuit_state: e.view.circuit_state(),
        closed: e.closed(),
        partitions: e.view.partitions().map(|p| p.len()),
    }
}

async fn dashboard(State(s): St) -> Response {
    s.ensure_sampler();
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        DASHBOARD,
    )
        .into_response()
}

/// Runs a read that scans every partition (or renders every series) on the blocking
/// pool: with thousands of partitions it takes milliseconds, which on the service's
/// runtime would hold up the tasks sharing its threads, the pool's own callers among them.
async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    blocking(f)
        .await
        .unwrap_or_else(|| panic!("an admin read was cancelled: the runtime is shutting down"))
}

/// Runs `f` on tokio's blocking pool and waits for it. A panic in `f` resumes here;
/// `None` if the runtime shut down before `f` ran.
pub(crate) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Some(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

async fn metrics(State(s): St) -> Response {
    s.ensure_sampler();
    let text = off_runtime(move || {
        let figures: Vec<PoolFigures> = s
            .entries
            .iter()
            .map(|e| PoolFigures {
                name: e.name.clone(),
                stats: e.view.stats(),
                health: e.health(),
                circuit: e.view.circuit_state(),
                partitions: e.view.partitions(),
            })
            .collect();
        prom::render(&figures, s.partition_metrics)
    })
    .await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn health_report(s: &Arc<Shared>, detail: bool) -> Response {
    let mut unhealthy = Vec::new();
    let mut pools = Vec::new();
    for e in &s.entries {
        let h = e.health();
        if h.level >= HealthLevel::Unhealthy {
            unhealthy.push(e.name.clone());
        }
        if detail {
            pools.push(PoolHealth {
                name: e.name.clone(),
                health: h,
                circuit_state: e.view.circuit_state(),
            });
        }
    }
    let ok = unhealthy.is_empty();
    let body = HealthReport {
        status: if ok { "ok" } else { "unhealthy" },
        unhealthy,
        pools: detail.then_some(pools),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn health(State(s): St) -> Response {
    s.ensure_sampler();
    off_runtime(move || health_report(&s, false)).await
}

async fn health_pool(State(s): St) -> Response {
    s.ensure_sampler();
    off_runtime(move || health_report(&s, true)).await
}

async fn pools(State(s): St) -> Json<PoolsResponse> {
    s.ensure_sampler();
    let pools = off_runtime(move || s.entries.iter().map(summary).collect()).await;
    Json(PoolsResponse { pools })
}

async fn pool(State(s): St, Path(name): Path<String>) -> ApiResult<Json<PoolSummary>> {
    s.ensure_sampler();
    off_runtime(move || Ok(Json(summary(entry(&s, &name)?)))).await
}

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

fn checked_out_entry(c: &CheckedOut, partition: Option<String>) -> CheckedOutEntry {
    CheckedOutEntry {
        id: c.id,
        held_for: c.held_for,
        location: c.location.to_string(),
        partition,
    }
}

fn oldest_first(mut out: Vec<CheckedOut>) -> Vec<CheckedOut> {
    out.sort_by(|a, b| b.held_for.cmp(&a.held_for).then(a.id.cmp(&b.id)));
    out
}

async fn checked_out(
    State(s): St,
    Path(name): Path<String>,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> ApiResult<Json<CheckedOutResponse>> {
    s.ensure_sampler();
    let e = entry(&s, &name)?;
    let Query(q) = q?;
    let Some(mut out) = e.view.checked_out_by_partition() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("pool {name:?} cannot list its checkouts"),
        ));
    };
    // Oldest first; ties (ids are per partition) by id, then key.
    out.sort_by(|(ka, a), (kb, b)| {
        b.held_for
            .cmp(&a.held_for)
            .then(a.id.cmp(&b.id))
            .then(ka.cmp(kb))
    });
    let count = out.len();
    Ok(Json(CheckedOutResponse {
        pool: e.name.clone(),
        count,
        checked_out: out
            .into_iter()
            .take(q.limit.unwrap_or(usize::MAX))
            .map(|(k, c)| checked_out_entry(&c, k))
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
struct PartitionQuery {
    offset: Option<usize>,
    limit: Option<usize>,
    sort: Option<String>,
    q: Option<String>,
}

async fn partitions(
    State(s): St,
    Path(name): Path<String>,
    q: Result<Query<PartitionQuery>, QueryRejection>,
) -> ApiResult<Json<PartitionsResponse>> {
    s.ensure_sampler();
    let Query(q) = q?;
    off_runtime(move || partitions_page(&s, &name, &q).map(Json)).await
}

fn partitions_page(s: &Shared, name: &str, q: &PartitionQuery) -> ApiResult<PartitionsResponse> {
    let e = entry(s, name)?;
    let sort = q.sort.as_deref().unwrap_or("share");
    if !matches!(sort, "share" | "in_use" | "waiting" | "utilization" | "key") {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown sort {sort:?} (share, in_use, waiting, utilization, key)"),
        ));
    }
    let totals = e.view.stats();
    let Some(parts) = e.view.partitions_with_health() else {
        return Ok(PartitionsResponse {
            pool: e.name.clone(),
            partitioned: false,
            count: 0,
            offset: 0,
            totals,
            partitions: Vec::new(),
        });
    };
    let cap = totals.max_size.max(1) as f64;
    let in_use_all: usize = parts.iter().map(|(_, p, _)| p.in_use).sum();
    let needle = q.q.as_deref().map(str::to_lowercase);
    let mut rows: Vec<PartitionEntry> = parts
        .into_iter()
        .filter(|(k, _, _)| {
            needle
                .as_deref()
                .is_none_or(|n| k.to_lowercase().contains(n))
        })
        .map(|(key, stats, h)| PartitionEntry {
            share: stats.size as f64 / cap,
            in_use_share: if in_use_all == 0 {
                0.0
            } else {
                stats.in_use as f64 / in_use_all as f64
            },
            level: h.level,
            utilization: h.utilization,
            key,
            stats,
        })
        .collect();
    let by = |a: &PartitionEntry, b: &PartitionEntry| -> std::cmp::Ordering {
        match sort {
            "in_use" => b.stats.in_use.cmp(&a.stats.in_use),
            "waiting" => b
                .stats
                .pending_acquisitions
                .cmp(&a.stats.pending_acquisitions),
            "utilization" => b.utilization.total_cmp(&a.utilization),
            "key" => std::cmp::Ordering::Equal,
            _ => b
                .stats
                .size
                .cmp(&a.stats.size)
                .then(b.stats.in_use.cmp(&a.stats.in_use)),
        }
    };
    rows.sort_by(|a, b| by(a, b).then_with(|| a.key.cmp(&b.key)));
    let count = rows.len();
    let offset = q.offset.unwrap_or(0).min(count);
    let partitions = rows
        .into_iter()
        .skip(offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    Ok(PartitionsResponse {
        pool: e.name.clone(),
        partitioned: true,
        count,
        offset,
        totals,
        partitions,
    })
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    seconds: Option<usize>,
}

async fn history(
    State(s): St,
    Path(name): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<HistoryResponse>> {
    s.ensure_sampler();
    let e = entry(&s, &name)?;
    let Query(q) = q?;
    let n = q.seconds.unwrap_or(HISTORY_SAMPLES);
    let (samples, hourly) = match e.history.lock() {
        Ok(h) => (h.last(n), h.hourly()),
        Err(_) => (Vec::new(), Vec::new()),
    };
    Ok(Json(HistoryResponse {
        pool: e.name.clone(),
        interval_secs: 1,
        samples,
        hourly,
    }))
}

/// The CSV header of `export.csv`.
pub(crate) const CSV_HEADER: &str = "t_unix_ms,utilization,in_use,idle,size,max_size,waiting,\
                                     wait_p99_ms,creates,destroys,timeouts,checkouts";

async fn export_csv(State(s): St, Path(name): Path<String>) -> ApiResult<Response> {
    use std::fmt::Write;
    s.ensure_sampler();
    let e = entry(&s, &name)?;
    let samples = match e.history.lock() {
        Ok(h) => h.last(HISTORY_SAMPLES),
        Err(_) => Vec::new(),
    };
    let mut csv = String::with_capacity(64 * (samples.len() + 1));
    csv.push_str(CSV_HEADER);
    csv.push('\n');
    for x in &samples {
        let _ = writeln!(
            csv,
            "{},{:.4},{},{},{},{},{},{:.3},{},{},{},{}",
            x.t,
            x.utilization,
            x.in_use,
            x.idle,
            x.size,
            x.max_size,
            x.waiting,
            x.wait_p99_ms,
            x.creates,
            x.destroys,
            x.timeouts,
            x.checkouts
        );
    }
    let file: String = e
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{file}-history.csv\"");
    let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response();
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

// ---- writes ----

/// Compares a presented token with the configured `secret` without an early exit: the
/// time taken follows the presented token's length only, so it tells neither how much of
/// it matched nor how long the secret is. (Every byte presented is compared with the
/// secret's bytes taken in a cycle; a length that differs is a difference like any other.)
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    if secret.is_empty() {
        // Never configured so (an empty token means none); refuse rather than divide by 0.
        return false;
    }
    let mut diff = u8::from(given.len() != secret.len());
    for (i, &b) in given.iter().enumerate() {
        diff |= b ^ secret[i % secret.len()];
    }
    std::hint::black_box(diff) == 0
}

/// The credentials of `Authorization: Bearer <token>`, as bytes: a token of non-ASCII
/// text arrives as its UTF-8 bytes, which `HeaderValue::to_str` would refuse.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes().trim_ascii();
    let space = v.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = v.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// Refuses a write unless a token is configured and the request carries it.
fn authorize(s: &Shared, headers: &HeaderMap, pool: &str, action: &str) -> ApiResult<()> {
    let Some(token) = &s.token else {
        tracing::warn!(target: "riptide_admin", pool, action, "admin write refused: no token configured");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "write endpoints are off: no admin token is configured",
        ));
    };
    match bearer(headers) {
        Some(given) if same_secret(given, token.as_bytes()) => Ok(()),
        given => {
            tracing::warn!(
                target: "riptide_admin",
                pool,
                action,
                token_sent = given.is_some(),
                "admin write refused: missing or wrong bearer token"
            );
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer <token>` header is required",
            ))
        }
    }
}

/// The largest write body read (the JSON of a write is a few bytes).
const BODY_LIMIT: usize = 64 * 1024;
/// How long a write's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A write's body, read only once the token was checked: at most [`BODY_LIMIT`] bytes
/// (else 413; a malformed body is 400) within [`BODY_TIMEOUT`] (else 408), so a client
/// that never finishes its body holds nothing for long.
async fn read_body(body: Body, pool: &str, action: &str) -> ApiResult<Bytes> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(err)) if too_large(&err) => Err(bad_input(
            pool,
            action,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {BODY_LIMIT} bytes"),
        )),
        Ok(Err(err)) => Err(bad_input(
            pool,
            action,
            StatusCode::BAD_REQUEST,
            format!("the body could not be read: {err}"),
        )),
        Err(_) => Err(bad_input(
            pool,
            action,
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {BODY_TIMEOUT:?}"),
        )),
    }
}

/// Whether a body error is the size limit (and not a malformed or cut-off body).
fn too_large(err: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The pool a write names; an unknown name is logged and answered 404.
fn write_entry<'a>(s: &'a Shared, name: &str, action: &str) -> ApiResult<&'a Entry> {
    entry(s, name).inspect_err(|_| {
        tracing::warn!(target: "riptide_admin", pool = name, action, "admin write refused: no such pool");
    })
}

fn bad_input(pool: &str, action: &str, status: StatusCode, msg: String) -> ApiError {
    tracing::warn!(target: "riptide_admin", pool, action, error = %msg, "admin write refused: bad input");
    ApiError::new(status, msg)
}

async fn resize(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<WriteOutcome>> {
    authorize(&s, &headers, &name, "resize")?;
    let e = write_entry(&s, &name, "resize")?;
    let body = read_body(body, &name, "resize").await?;
    let req: ResizeRequest = json_object(&body).map_err(|err| {
        bad_input(
            &name,
            "resize",
            StatusCode::BAD_REQUEST,
            format!("expected {{\"max_size\": n}}: {err}"),
        )
    })?;
    if req.max_size == 0 {
        return Err(bad_input(
            &name,
            "resize",
            StatusCode::UNPROCESSABLE_ENTITY,
            "max_size must be at least 1".into(),
        ));
    }
    if req.max_size > s.resize_limit {
        return Err(bad_input(
            &name,
            "resize",
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "max_size must be at most {} (the admin's resize limit)",
                s.resize_limit
            ),
        ));
    }
    if e.closed() == Some(true) {
        return Err(bad_input(
            &name,
            "resize",
            StatusCode::CONFLICT,
            "the pool is closed".into(),
        ));
    }
    let before = e.view.stats().max_size;
    if e.view.resize(req.max_size).is_err() {
        return Err(bad_input(
            &name,
            "resize",
            StatusCode::NOT_IMPLEMENTED,
            format!("pool {name:?} cannot be resized (a partitioned pool)"),
        ));
    }
    let after = e.view.stats().max_size;
    tracing::info!(target: "riptide_admin", pool = %name, action = "resize", from = before, to = after, "admin write: pool resized");
    Ok(Json(WriteOutcome {
        pool: e.name.clone(),
        action: "resize",
        previous_max_size: Some(before),
        max_size: Some(after),
        closed: None,
        drained: None,
        in_use: None,
        still_out: None,
    }))
}

/// A write's body as `T`, which must be written as a JSON object: serde's derive would
/// also read a struct from an array, by position (`[8]` as `{"max_size": 8}`).
fn json_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, serde_json::Error> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(serde::de::Error::custom("the body must be a JSON object"));
    }
    serde_json::from_slice(body)
}

/// Close and drain take an optional body; anything in it must be a valid JSON object.
fn no_junk<'a, T: Deserialize<'a> + Default>(
    body: &'a [u8],
    pool: &str,
    action: &str,
) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    json_object(body).map_err(|err| {
        bad_input(
            pool,
            action,
            StatusCode::BAD_REQUEST,
            format!("malformed body: {err}"),
        )
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

async fn close(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<WriteOutcome>> {
    authorize(&s, &headers, &name, "close")?;
    let e = write_entry(&s, &name, "close")?;
    let body = read_body(body, &name, "close").await?;
    let Empty {} = no_junk(&body, &name, "close")?;
    e.view.close();
    e.closed_here.store(true, Ordering::Relaxed);
    tracing::info!(target: "riptide_admin", pool = %name, action = "close", "admin write: pool closed");
    Ok(Json(WriteOutcome {
        pool: e.name.clone(),
        action: "close",
        previous_max_size: None,
        max_size: None,
        closed: Some(true),
        drained: None,
        in_use: None,
        still_out: None,
    }))
}

async fn drain(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<WriteOutcome>> {
    authorize(&s, &headers, &name, "drain")?;
    let e = write_entry(&s, &name, "drain")?;
    let body = read_body(body, &name, "drain").await?;
    let req: DrainRequest = no_junk(&body, &name, "drain")?;
    let timeout = match req.timeout_ms {
        None => DRAIN_DEFAULT,
        Some(ms) if ms <= DRAIN_MAX_MS => Duration::from_millis(ms),
        Some(_) => {
            return Err(bad_input(
                &name,
                "drain",
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("timeout_ms must be at most {DRAIN_MAX_MS}"),
            ))
        }
    };
    tracing::info!(target: "riptide_admin", pool = %name, action = "drain", timeout_ms = timeout.as_millis() as u64, "admin write: draining pool");
    e.closed_here.store(true, Ordering::Relaxed);
    let result = e.view.drain(timeout).await;
    let in_use = e.view.stats().in_use;
    let (drained, still_out) = match result {
        Ok(()) => (true, None),
        Err(err) => (
            false,
            Some(
                oldest_first(err.still_out)
                    .iter()
                    .map(|c| checked_out_entry(c, None))
                    .collect(),
            ),
        ),
    };
    tracing::info!(target: "riptide_admin", pool = %name, action = "drain", drained, in_use, "admin write: drain finished");
    Ok(Json(WriteOutcome {
        pool: e.name.clone(),
        action: "drain",
        previous_max_size: None,
        max_size: None,
        closed: Some(true),
        drained: Some(drained),
        in_use: Some(in_use),
        still_out,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing_and_comparison() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer(&h), None);
        // Non-ASCII credentials are their UTF-8 bytes.
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes("Bearer clé".as_bytes()).unwrap(),
        );
        assert_eq!(bearer(&h), Some("clé".as_bytes()));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    /// The secret's bytes are taken in a cycle, so a presented token that repeats the
    /// secret, or is a prefix of it, matches byte for byte: only the lengths tell them
    /// apart, and they must.
    #[test]
    fn a_repetition_or_a_prefix_of_the_secret_is_not_the_secret() {
        assert!(!same_secret(b"abcabc", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"", b"abc"));
        assert!(!same_secret(b"", b""));
        assert!(!same_secret(b"a", b""));
        assert!(same_secret("clé".as_bytes(), "clé".as_bytes()));
        // A difference in any position, the last one included.
        let secret = b"0123456789abcdef";
        for i in 0..secret.len() {
            let mut given = *secret;
            given[i] ^= 1;
            assert!(!same_secret(&given, secret), "byte {i}");
        }
    }
}
