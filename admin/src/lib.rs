//! # RipTide Pool admin
//!
//! An admin endpoint for [`riptide_pool`] pools: Prometheus `/metrics`, JSON health and
//! stats, a history of the last hour, writes (resize, close, drain) behind a bearer
//! token, and a live dashboard page at `/`. Register pools by name, then mount
//! [`Admin::router`] in your own axum server or let [`Admin::serve`] listen on an address
//! (loopback by default):
//!
//! ```
//! use riptide_admin::Admin;
//! use riptide_pool::{PartitionedPool, Pool, Poolable};
//!
//! struct Conn;
//! impl Poolable for Conn {}
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) }).build()?;
//! let pp = PartitionedPool::builder(|_tenant: String| async { Ok::<_, std::io::Error>(Conn) })
//!     .build()?;
//! let admin = Admin::new()
//!     .pool("db", &pool)
//!     .partitioned("tenants", &pp)
//!     .token(std::env::var("RIPTIDE_ADMIN_TOKEN").ok()); // writes are off without one
//!
//! // Mount it in the service's own router …
//! let app: axum::Router = axum::Router::new().nest("/admin", admin.router());
//! # drop(app);
//! // … or serve it by itself (`admin.serve(Admin::DEFAULT_ADDR).await?` runs for as long as
//! // it is polled).
//! let server = admin.bind("127.0.0.1:0").await?;
//! println!("dashboard on http://{}/", server.local_addr());
//! server.run_until(async {}).await?; // stops at once here; pass a shutdown signal
//! # Ok(()) }
//! ```
//!
//! Endpoints (`docs/observability.md` shows each answer):
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/` | the dashboard: one self-contained page that polls the JSON every second |
//! | GET | `/metrics` | Prometheus text; every sample labelled `pool="<registered name>"` |
//! | GET | `/health`, `/health/pool` | 200 while every pool is healthy or degraded, else 503 naming the others |
//! | GET | `/pools`, `/pools/{name}` | [`PoolSummary`](api::PoolSummary): stats, health, breaker |
//! | GET | `/pools/{name}/checked-out` | checkouts oldest first, with the line that took each |
//! | GET | `/pools/{name}/partitions` | per-partition stats and shares (`?offset&limit&sort&q`) |
//! | GET | `/pools/{name}/history` | 1 Hz samples of the last hour, hourly pattern of the last day |
//! | GET | `/pools/{name}/export.csv` | the samples as CSV |
//! | POST | `/pools/{name}/resize`, `/close`, `/drain` | writes: need the bearer token |
//!
//! Writes are refused (403) unless a token is configured; with one, a request without
//! `Authorization: Bearer <token>` is 401 and changes nothing. The presented token is
//! compared in time that follows its own length only (neither how much of it matched nor
//! the configured token's length shows). Every write, and every refused one, is logged
//! with `tracing` (target `riptide_admin`).
//!
//! The admin holds a clone of each registered pool (one `Arc`), so a registered pool is
//! not closed by dropping the service's last handle while the admin lives; close it
//! explicitly.

#![warn(missing_docs)]

#[cfg(doctest)]
#[doc = include_str!("../../docs/observability.md")]
struct ObservabilityDoctests;

pub mod api;
pub mod demo;
mod history;
mod http;
mod prom;
mod serve;
mod view;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use riptide_pool::{HealthLevel, HealthStatus, PartitionedPool, PoolStats, Poolable};

pub use history::{HourBucket, Sample, HISTORY_SAMPLES, HOURLY_BUCKETS};
pub use prom::METRIC_NAMES;
pub use view::{health_from_stats, key_text, BoxFuture, PoolKind, PoolView, Unsupported};

use history::History;

/// Registers pools by name and serves their admin endpoints; see the [crate docs](crate).
pub struct Admin {
    pools: Vec<(String, Arc<dyn PoolView>)>,
    token: Option<String>,
    resize_limit: usize,
    partition_metrics: bool,
    shared: OnceLock<Arc<Shared>>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin::new()
    }
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field(
                "pools",
                &self.pools.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("resize_limit", &self.resize_limit)
            .field("partition_metrics", &self.partition_metrics)
            .finish()
    }
}

/// Why an admin could not be served.
#[non_exhaustive]
#[derive(Debug)]
pub enum AdminError {
    /// Two pools were registered under one name (the later one is served).
    DuplicateName(String),
    /// A pool was registered under the empty name (it has no URL).
    EmptyName,
    /// `token(Some(""))`: an empty or blank token (writes stay off).
    EmptyToken,
    /// The token holds a control character (a newline inside it, a NUL), which no
    /// `Authorization` header can carry: no write could ever be accepted.
    UnsendableToken,
    /// `resize_limit(0)`: no resize could ever be accepted.
    ZeroResizeLimit,
    /// The address could not be bound.
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    Serve(std::io::Error),
    /// [`Admin::bind`] ran on a tokio runtime built without timers (only `enable_io`):
    /// the server's limits (request heads, bodies, stalled writes, shutdown) run on
    /// tokio's timer. Build the runtime with `enable_all()` or `enable_time()`. tokio
    /// tells only by panicking, so the check runs the process's panic hook once (and
    /// aborts under `panic = "abort"`).
    NoTimer,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::DuplicateName(n) => {
                write!(f, "two pools are registered under the name {n:?}")
            }
            AdminError::EmptyName => f.write_str("a pool is registered under the empty name"),
            AdminError::EmptyToken => f.write_str("the admin token is empty"),
            AdminError::UnsendableToken => f.write_str(
                "the admin token holds a control character, which no Authorization header \
                 can carry",
            ),
            AdminError::ZeroResizeLimit => f.write_str("resize_limit must be at least 1"),
            AdminError::Bind { addr, source } => {
                write!(f, "cannot listen on {addr}: {source}")
            }
            AdminError::Serve(e) => write!(f, "admin server failed: {e}"),
            AdminError::NoTimer => f.write_str(
                "the admin needs a tokio runtime with timers enabled \
                 (Builder::enable_all or enable_time)",
            ),
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::Bind { source, .. } => Some(source),
            AdminError::Serve(e) => Some(e),
            _ => None,
        }
    }
}

impl Admin {
    /// The address [`serve`](Admin::serve) is usually given: loopback, port 9187.
    pub const DEFAULT_ADDR: &'static str = "127.0.0.1:9187";
    /// The default most `max_size` a resize may ask for (growing allocates slot space up
    /// front, so a typo with extra zeros must not reach the pool).
    pub const DEFAULT_RESIZE_LIMIT: usize = 100_000;

    /// An admin with no pools, no token (writes off), per-partition metrics on.
    pub fn new() -> Self {
        Admin {
            pools: Vec::new(),
            token: None,
            resize_limit: Self::DEFAULT_RESIZE_LIMIT,
            partition_metrics: true,
            shared: OnceLock::new(),
        }
    }

    /// Registers a pool under `name`: any [`Pool<T>`](riptide_pool::Pool), or any type
    /// implementing [`PoolView`] (the admin keeps a clone).
    pub fn pool<P: PoolView + Clone>(self, name: impl Into<String>, pool: &P) -> Self {
        self.view(name, Arc::new(pool.clone()))
    }

    /// Registers a partitioned pool under `name`; its partitions are listed by key, the key
    /// rendered with [`key_text`] (its `Debug` form, a string's quotes removed).
    pub fn partitioned<K, T>(self, name: impl Into<String>, pool: &PartitionedPool<K, T>) -> Self
    where
        K: Clone + Eq + std::hash::Hash + Send + Sync + fmt::Debug + 'static,
        T: Poolable,
    {
        self.view(name, Arc::new(pool.clone()))
    }

    /// Registers a pool through its view.
    pub fn view(mut self, name: impl Into<String>, view: Arc<dyn PoolView>) -> Self {
        self.pools.push((name.into(), view));
        self.shared = OnceLock::new();
        self
    }

    /// The bearer token the write endpoints require; `None` (or an empty token) leaves
    /// them off. Usually `std::env::var("RIPTIDE_ADMIN_TOKEN").ok()`. Whitespace around it
    /// is ignored (a token read from a file keeps its newline; a header cannot carry it),
    /// and the rest is compared byte for byte with what the request sends.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self.shared = OnceLock::new();
        self
    }

    /// The most `max_size` `POST /pools/{name}/resize` accepts (default
    /// [`DEFAULT_RESIZE_LIMIT`](Self::DEFAULT_RESIZE_LIMIT)); larger requests are 422.
    pub fn resize_limit(mut self, max: usize) -> Self {
        self.resize_limit = max;
        self.shared = OnceLock::new();
        self
    }

    /// Whether `/metrics` carries the per-partition series (`riptide_partition_*`, labels
    /// `pool` and `partition`; default on). Turn it off when tenants are many.
    pub fn partition_metrics(mut self, on: bool) -> Self {
        self.partition_metrics = on;
        self.shared = OnceLock::new();
        self
    }

    /// Checks the configuration: unique, non-empty names; a non-blank token a header can
    /// carry (no control character) when one is given; a resize limit of at least 1. [`serve`](Self::serve) and
    /// [`bind`](Self::bind) call this; [`router`](Self::router) cannot fail, so it serves
    /// the later of two pools with one name, treats a blank token as none, and logs both.
    pub fn validate(&self) -> Result<(), AdminError> {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in &self.pools {
            if name.is_empty() {
                return Err(AdminError::EmptyName);
            }
            if !seen.insert(name.as_str()) {
                return Err(AdminError::DuplicateName(name.clone()));
            }
        }
        if self.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(AdminError::EmptyToken);
        }
        // A header value is visible ASCII, spaces, tabs and bytes from 0x80 (the UTF-8 of
        // non-ASCII text); whitespace around the token is trimmed (`Shared::new`).
        if self.token.as_deref().is_some_and(|t| {
            t.trim_ascii()
                .bytes()
                .any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
        }) {
            return Err(AdminError::UnsendableToken);
        }
        if self.resize_limit == 0 {
            return Err(AdminError::ZeroResizeLimit);
        }
        Ok(())
    }

    fn shared(&self) -> Arc<Shared> {
        self.shared
            .get_or_init(|| {
                if let Err(e) = self.validate() {
                    tracing::warn!(target: "riptide_admin", "admin configuration: {e}");
                }
                Arc::new(Shared::new(self))
            })
            .clone()
    }

    /// The admin's routes as an [`axum::Router`], to serve or to
    /// [`nest`](axum::Router::nest) in the service's own router. Starts the once-a-second
    /// sampler on the current tokio runtime (or on the first request, if called outside
    /// one); the sampler stops when every router and this `Admin` are dropped. Calling it
    /// again gives routers that share the history.
    pub fn router(&self) -> axum::Router {
        let shared = self.shared();
        shared.ensure_sampler();
        http::router(shared)
    }

    /// Binds `addr` after [`validate`](Self::validate); run the returned [`Server`].
    ///
    /// # Errors
    /// What [`validate`](Self::validate) finds; [`AdminError::NoTimer`] on a tokio runtime
    /// built without timers; [`AdminError::Bind`] when the address cannot be bound.
    pub async fn bind(
        &self,
        addr: impl tokio::net::ToSocketAddrs + fmt::Debug,
    ) -> Result<Server, AdminError> {
        self.validate()?;
        if !serve::timers_enabled() {
            return Err(AdminError::NoTimer);
        }
        let shown = format!("{addr:?}");
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind {
                addr: shown.clone(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| AdminError::Bind {
            addr: shown,
            source,
        })?;
        if !local.ip().is_loopback() {
            tracing::info!(
                target: "riptide_admin",
                %local,
                writes = self.token.is_some(),
                "admin endpoint listening on a non-loopback address"
            );
        }
        Ok(Server {
            listener,
            local,
            router: self.router(),
        })
    }

    /// Serves the admin on `addr` (e.g. [`DEFAULT_ADDR`](Self::DEFAULT_ADDR)) for as long as
    /// the future is polled (see [`Server::run`]); spawn it beside the service.
    ///
    /// An error (the address taken, say) is also logged at `error` level (target
    /// `riptide_admin`) before it is returned, so a spawned `serve` whose result nobody
    /// reads does not fail silently.
    ///
    /// # Errors
    /// As [`bind`](Self::bind) and [`Server::run`].
    pub async fn serve(
        &self,
        addr: impl tokio::net::ToSocketAddrs + fmt::Debug,
    ) -> Result<(), AdminError> {
        let shown = format!("{addr:?}");
        let r = async { self.bind(addr).await?.run().await }.await;
        if let Err(e) = &r {
            tracing::error!(
                target: "riptide_admin",
                addr = %shown,
                error = %e,
                "the admin endpoint is not serving"
            );
        }
        r
    }
}

/// A bound admin server, from [`Admin::bind`].
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    router: axum::Router,
}

impl Server {
    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves for as long as the future is polled. A client gets 10 s to send a request
    /// head, and a response write that makes no progress for 10 s ends its connection.
    /// 256 connections are served at once: a client connecting past that is served, and
    /// the oldest connection with no request in flight (idle, silent, or partway through a
    /// request head) is closed at once; only when every connection has a request in flight
    /// is the oldest asked to close after its response instead. A failed accept (out of
    /// file descriptors) is logged and retried.
    ///
    /// # Errors
    /// None today: the `Result` leaves room for failures a future version reports.
    pub async fn run(self) -> Result<(), AdminError> {
        serve::serve(self.listener, self.router, std::future::pending()).await;
        Ok(())
    }

    /// Serves as [`run`](Self::run) until `shutdown` completes, then stops accepting and
    /// gives the requests in flight up to 10 s to finish; connections still open then
    /// (a stalled client) are dropped, so shutdown never waits longer.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AdminError> {
        serve::serve(self.listener, self.router, shutdown).await;
        Ok(())
    }
}

/// One registered pool.
pub(crate) struct Entry {
    pub name: String,
    pub view: Arc<dyn PoolView>,
    /// Closed or drained through the admin (for pool types that cannot say they are).
    pub closed_here: AtomicBool,
    pub history: Mutex<History>,
}

impl Entry {
    pub(crate) fn closed(&self) -> Option<bool> {
        let here = self.closed_here.load(Ordering::Relaxed);
        match self.view.is_closed() {
            Some(c) => Some(c || here),
            None => here.then_some(true),
        }
    }

    /// The view's health, `Critical` when the admin closed a pool that cannot say so.
    pub(crate) fn health(&self) -> HealthStatus {
        let mut h = self.view.health();
        if self.closed() == Some(true) {
            h.level = HealthLevel::Critical;
        }
        h
    }

    pub(crate) fn sample(&self, t_ms: u64) -> (PoolStats, HealthStatus) {
        let s = self.view.stats();
        let h = self.health();
        if let Ok(mut hist) = self.history.lock() {
            hist.record(t_ms, &s, &h);
        }
        (s, h)
    }
}

/// What the routers and the sampler share.
pub(crate) struct Shared {
    pub entries: Vec<Entry>,
    pub index: HashMap<String, usize>,
    pub token: Option<String>,
    pub resize_limit: usize,
    pub partition_metrics: bool,
    sampler: AtomicBool,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    fn new(admin: &Admin) -> Self {
        let mut entries: Vec<Entry> = Vec::new();
        let mut index = HashMap::new();
        for (name, view) in &admin.pools {
            let entry = Entry {
                name: name.clone(),
                view: view.clone(),
                closed_here: AtomicBool::new(false),
                history: Mutex::new(History::default()),
            };
            match index.get(name) {
                Some(&i) => entries[i] = entry,
                None => {
                    index.insert(name.clone(), entries.len());
                    entries.push(entry);
                }
            }
        }
        Shared {
            entries,
            index,
            // Trimmed as the header is: a token read from a secret file keeps its
            // trailing newline, which no `Authorization` header can carry.
            token: admin
                .token
                .as_deref()
                .map(str::trim_ascii)
                .filter(|t| !t.trim().is_empty())
                .map(str::to_owned),
            resize_limit: admin.resize_limit.max(1),
            partition_metrics: admin.partition_metrics,
            sampler: AtomicBool::new(false),
        }
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&Entry> {
        self.index.get(name).map(|&i| &self.entries[i])
    }

    /// Starts the sampler once, on the current runtime (a no-op outside one: the next
    /// request, which runs on a runtime, starts it).
    pub(crate) fn ensure_sampler(self: &Arc<Self>) {
        if self.sampler.load(Ordering::Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sampler.swap(true, Ordering::AcqRel) {
            return;
        }
        if !serve::timers_enabled() {
            // The sampler ticks on tokio's timer; without one the history stays empty.
            tracing::error!(
                target: "riptide_admin",
                "the admin runs on a tokio runtime without timers: the dashboard's history \
                 is not sampled (build the runtime with enable_all or enable_time)"
            );
            return;
        }
        let weak = Arc::downgrade(self);
        // Dropped with the task (the admin gone, or the runtime shut down under it): the
        // flag comes down, so the next request, on whatever runtime serves it, starts
        // the sampler again.
        let running = Running(weak.clone());
        rt.spawn(async move {
            let _running = running;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { break };
                let t = unix_ms();
                // Off the runtime: a partitioned pool's figures scan every partition.
                let sampled = http::blocking(move || {
                    for e in &shared.entries {
                        e.sample(t);
                    }
                })
                .await;
                if sampled.is_none() {
                    break;
                }
            }
        });
    }
}

/// The sampler task's mark on its admin: lowers the `sampler` flag when the task ends.
struct Running(std::sync::Weak<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.sampler.store(false, Ordering::Release);
        }
    }
}
