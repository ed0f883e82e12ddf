//! Pooled PostgreSQL connections on `tokio-postgres` 0.7 (feature `postgres`).
//!
//! [`PgFactory`] reads a connection string (or takes a `tokio_postgres::Config`), and
//! [`PgFactory::into_pool_builder`] hands back the core's [`PoolBuilder`], so every knob of
//! the core (sizes, timeouts, lifetime, idle, validation, leak detection, breaker,
//! priorities, events, stats) applies. A pooled [`PgConn`] derefs to
//! `tokio_postgres::Client` and owns the task that drives its connection; the task ends
//! with it.
//!
//! ```no_run
//! use riptide_adapters::postgres::{PgFactory, PgConn, RecyclingMethod, StatementCacheMode};
//! use riptide_pool::Pool;
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let pool: Pool<PgConn> = PgFactory::new("host=127.0.0.1 port=5432 user=app dbname=app")?
//!     .statement_cache(StatementCacheMode::Named)
//!     .statement_cache_capacity(128)
//!     .recycling(RecyclingMethod::Fast)
//!     .application_name("orders-api")
//!     .into_pool_builder()
//!     .max_size(16)
//!     .acquire_timeout(Duration::from_secs(2))
//!     .build()?;
//!
//! let mut conn = pool.get().await?;
//! let stmt = conn.prepare_cached("SELECT $1::int4").await?;
//! let row = conn.query_one(&stmt, &[&7i32]).await?;
//! assert_eq!(row.get::<_, i32>(0), 7);
//! let tx = conn.transaction().await?;
//! tx.execute("CREATE TEMP TABLE t (x int)", &[]).await?;
//! drop(tx); // never committed: rolled back before the next user sees the connection
//! let cs = conn.cache_stats();
//! println!("hits {} misses {} evictions {} len {}", cs.hits, cs.misses, cs.evictions, cs.len);
//! # Ok(()) }
//! ```
//!
//! ## Statement cache
//!
//! Each connection keeps a least-recently-used cache of `capacity` entries (default 128; a
//! hit refreshes the entry; 0 turns caching off). [`StatementCacheMode`]:
//! - `Named` (default): named server-side statements, parsed and planned once per
//!   connection. An evicted statement is closed on the server (when the last handle to it is
//!   dropped). Statements stay on the server across returns to the pool.
//! - `Unnamed`: nothing named is ever left on the server past a checkout, which is what
//!   PgBouncer's transaction pooling needs (a statement prepared on one server connection
//!   is missing on the next). One exception inside a checkout: tokio-postgres looks up a
//!   user-defined type (enum, composite, domain) with named statements of its own; a
//!   connection that made them is replaced at return, and through PgBouncer a second new
//!   user-defined type in one checkout may fail (`prepared statement "sN" does not
//!   exist`). The cache keeps each query's parameter types (learned once, inside a
//!   transaction so PgBouncer keeps one server connection for it), and
//!   [`PgConn::query_cached`] / [`PgConn::execute_cached`] send parse, bind and execute in
//!   one message cycle. [`PgConn::prepare_cached`] prepares a fresh statement each call
//!   (closed when dropped; through PgBouncer, use it only inside a transaction).
//! - `Off`: every `prepare_cached` prepares anew; the statement is closed when dropped.
//!
//! A simple query starting with `DEALLOCATE` or `DISCARD ALL` empties the cache; a cached
//! statement the server no longer has (dropped some other way) is re-prepared once by the
//! `*_cached` helpers when no transaction is open.
//!
//! ## Recycling, and dirty sessions
//!
//! The connection's stream is watched as it passes (the protocol's own framing: each
//! request cycle ends with `ReadyForQuery`, which carries the transaction status), so a
//! returned connection is judged without a round trip:
//! - a request still unanswered on the wire (a query future dropped mid-flight) or a closed
//!   connection: destroyed;
//! - inside a transaction block (a dropped `Transaction`, a manual `BEGIN` left open, a
//!   transaction broken by an error): a `ROLLBACK` is sent at once, ahead of anything the
//!   next user sends; the next `get()` confirms the session is idle before handing it out;
//! - a [`PgConn::prepare_cached`] (or a `*_cached` query) dropped after the server parsed
//!   its statement, before the `Statement` that would close it was built: a
//!   `DEALLOCATE ALL` is sent (the cache empties with it), or, in `Unnamed` mode or where
//!   tokio-postgres holds type-lookup statements of its own, the connection is destroyed.
//!
//! [`RecyclingMethod`] adds, per pool: `Fast` (nothing more), `Verified` (a `Sync` round
//! trip at every checkout), `Clean` (session state reset at every return: settings, temp
//! tables, advisory locks, listeners, cursors, `SET ROLE`/`SET SESSION AUTHORIZATION` —
//! everything `DISCARD ALL` does except `DEALLOCATE ALL` and `DISCARD PLANS`, so the
//! statement cache stays valid; `application_name` and other start-up parameters are
//! kept), `Custom(sql)` (your SQL at every checkout; if it deallocates statements, the
//! cache is cleared). In a [`Pool`] (not a partitioned one, whose keyed builder has no
//! `validate`), objects idle longer than the core's `validation_interval` are also pinged
//! before use, whatever the method.
//!
//! The checkout checks run as the core's `pre_recycle` hook, installed by
//! [`PgFactory::into_pool_builder`]: setting your own `pre_recycle` replaces it (use
//! `post_recycle` for your own checkout code). `try_get` skips checkout hooks, so what it
//! hands out has only the return-time treatment (which already orders the `ROLLBACK` and
//! the `Clean` reset ahead of the new user's statements).
//!
//! ## When the server goes away
//!
//! A failed connect is `PoolError::Create` carrying the server's (or the socket's) message;
//! after the core's breaker threshold (default 5 consecutive failures) callers get
//! `PoolError::CircuitOpen` at once until a trial connect succeeds. Connections broken
//! under their users fail their next query, are seen closed on return and destroyed; the
//! pool creates fresh ones as callers need them.

mod connect;
pub mod embedded;
mod wire;

use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use riptide_pool::{
    BoxError, Factory, PartitionedPool, PartitionedPoolBuilder, Pool, PoolBuilder, Poolable,
};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

pub use tokio_postgres;

use crate::lru::Lru;
use crate::ConfigError;
use connect::TlsSetup;
use wire::{poll_once, Wire, IDLE};

/// Where a connection's prepared statements live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatementCacheMode {
    /// Named server-side statements, cached per connection (the fastest).
    #[default]
    Named,
    /// Unnamed statements only: nothing stays on the server, so it works through PgBouncer
    /// in transaction pooling mode. Use [`PgConn::query_cached`] and friends.
    Unnamed,
    /// No cache: every `prepare_cached` prepares anew.
    Off,
}

/// What the pool does to a connection between two users.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum RecyclingMethod {
    /// Only the return-time checks (closed? open transaction? request still in flight?).
    #[default]
    Fast,
    /// Plus a round trip (`Sync`) at every checkout.
    Verified,
    /// Plus a reset of all session state at every return, keeping prepared statements and
    /// the start-up parameters (`application_name`).
    Clean,
    /// Plus this SQL at every checkout, a new connection's first included (it runs when
    /// the connection opens). If it fails on a new connection, that create fails
    /// (`PoolError::Create`, counted by the circuit breaker); at a later checkout, the
    /// connection is replaced.
    Custom(String),
}

/// A connection's statement cache counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups served from the cache.
    pub hits: u64,
    /// Lookups that prepared (or described) the statement.
    pub misses: u64,
    /// Entries pushed out by newer ones (their statements closed on the server).
    pub evictions: u64,
    /// Entries held now.
    pub len: usize,
}

/// Totals over every connection a factory made (see [`PgFactory::metrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PgMetricsSnapshot {
    /// Statement-cache hits, all connections.
    pub cache_hits: u64,
    /// Statement-cache misses, all connections.
    pub cache_misses: u64,
    /// Statement-cache evictions, all connections.
    pub cache_evictions: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Returns that found a transaction open and sent `ROLLBACK`.
    pub rollbacks_on_return: u64,
    /// Returns that destroyed the connection (closed, or a request still in flight).
    pub discarded_on_return: u64,
    /// Checkouts whose recycling check failed (the connection was destroyed instead).
    pub recycle_failures: u64,
    /// Checkouts that waited for the previous user's queued work with a round trip.
    pub settle_round_trips: u64,
}

#[derive(Debug, Default)]
struct MetricsInner {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    cache_evictions: AtomicU64,
    connections_opened: AtomicU64,
    rollbacks_on_return: AtomicU64,
    discarded_on_return: AtomicU64,
    recycle_failures: AtomicU64,
    settle_round_trips: AtomicU64,
}

/// Live counters of one factory's connections; cheap to clone.
#[derive(Debug, Clone)]
pub struct PgMetrics(Arc<MetricsInner>);

impl PgMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> PgMetricsSnapshot {
        let m = &self.0;
        PgMetricsSnapshot {
            cache_hits: m.cache_hits.load(Relaxed),
            cache_misses: m.cache_misses.load(Relaxed),
            cache_evictions: m.cache_evictions.load(Relaxed),
            connections_opened: m.connections_opened.load(Relaxed),
            rollbacks_on_return: m.rollbacks_on_return.load(Relaxed),
            discarded_on_return: m.discarded_on_return.load(Relaxed),
            recycle_failures: m.recycle_failures.load(Relaxed),
            settle_round_trips: m.settle_round_trips.load(Relaxed),
        }
    }
}

/// Resets everything `DISCARD ALL` does except `DEALLOCATE ALL` (which would invalidate the
/// statement cache) and `DISCARD PLANS` (statements re-plan by themselves when what they
/// depend on changes).
const CLEAN_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
                         SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// The default [`PgFactory::check_timeout`].
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A failed connect: the server's own message (severity, text, SQLSTATE) when it sent one,
/// else what the socket or TLS layer said. The `tokio_postgres::Error` is its source.
#[derive(Debug)]
pub struct ConnectError {
    message: String,
    source: tokio_postgres::Error,
}

impl ConnectError {
    fn new(e: tokio_postgres::Error) -> Self {
        ConnectError {
            message: pg_message(&e),
            source: e,
        }
    }
}

/// What a `tokio_postgres::Error` says: the server's own message (severity, text,
/// SQLSTATE) when it sent one, else the error and its sources (its `Display` alone says
/// only "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => {
            let mut m = e.to_string();
            let mut cur = std::error::Error::source(e);
            while let Some(c) = cur {
                let text = c.to_string();
                if !m.contains(&text) {
                    m.push_str(": ");
                    m.push_str(&text);
                }
                cur = c.source();
            }
            m
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres connect: {}", self.message)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[derive(Debug)]
struct Settings {
    config: tokio_postgres::Config,
    tls: TlsSetup,
    mode: StatementCacheMode,
    capacity: usize,
    recycling: RecyclingMethod,
    /// How long a checkout's round trip may take (see [`PgFactory::check_timeout`]).
    check_timeout: std::time::Duration,
    metrics: Arc<MetricsInner>,
    invalid: Option<String>,
}

/// What [`PgFactory::new`] accepts: a connection string (`&str`, `String`) or a
/// `tokio_postgres::Config`.
pub trait ConnectionSettings: sealed::Sealed {
    #[doc(hidden)]
    fn into_settings(self) -> SettingsSource;
}

#[doc(hidden)]
#[derive(Debug)]
pub enum SettingsSource {
    Str(String),
    Config(Box<tokio_postgres::Config>),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for &str {}
    impl Sealed for String {}
    impl Sealed for &String {}
    impl Sealed for tokio_postgres::Config {}
    impl Sealed for &tokio_postgres::Config {}
}

impl ConnectionSettings for &str {
    fn into_settings(self) -> SettingsSource {
        SettingsSource::Str(self.to_owned())
    }
}
impl ConnectionSettings for String {
    fn into_settings(self) -> SettingsSource {
        SettingsSource::Str(self)
    }
}
impl ConnectionSettings for &String {
    fn into_settings(self) -> SettingsSource {
        SettingsSource::Str(self.clone())
    }
}
impl ConnectionSettings for tokio_postgres::Config {
    fn into_settings(self) -> SettingsSource {
        SettingsSource::Config(Box::new(self))
    }
}
impl ConnectionSettings for &tokio_postgres::Config {
    fn into_settings(self) -> SettingsSource {
        SettingsSource::Config(Box::new(self.clone()))
    }
}

/// Makes pooled PostgreSQL connections; configure it, then [`into_pool_builder`](Self::into_pool_builder).
#[derive(Debug)]
pub struct PgFactory {
    s: Settings,
}

impl PgFactory {
    /// From a libpq-style connection string, key/value (`host=… port=… user=… dbname=…`)
    /// or URL (`postgresql://user:pass@host:port/db?…`). TLS follows `sslmode` as libpq does
    /// (`disable`, `prefer` (default), `require`, `verify-ca`, `verify-full`; the last two
    /// need `sslrootcert`). A string that does not parse, or a TLS setting that cannot
    /// work, is a [`ConfigError::Postgres`] naming the problem.
    ///
    /// A `tokio_postgres::Config` is accepted here too (as [`from_config`](Self::from_config)).
    pub fn new(settings: impl ConnectionSettings) -> Result<PgFactory, ConfigError> {
        match settings.into_settings() {
            SettingsSource::Str(s) => Self::from_str_settings(&s),
            SettingsSource::Config(c) => Self::from_config(*c),
        }
    }

    fn from_str_settings(conn_str: &str) -> Result<PgFactory, ConfigError> {
        let (rest, keys) = connect::split_tls_keys(conn_str)?;
        let mut config: tokio_postgres::Config =
            rest.parse().map_err(|e: tokio_postgres::Error| {
                ConfigError::Postgres(format!("connection string: {e}"))
            })?;
        let (mode, tls) = connect::tls_setup(&keys)?;
        config.ssl_mode(mode);
        Self::from_parts(config, tls)
    }

    /// From a `tokio_postgres::Config`. Its `ssl_mode` decides TLS: `Disable` is plain,
    /// `Prefer` and `Require` encrypt without checking the certificate; use
    /// [`tls`](Self::tls) to verify the server.
    pub fn from_config(config: tokio_postgres::Config) -> Result<PgFactory, ConfigError> {
        use tokio_postgres::config::SslMode;
        let keys = connect::TlsKeys {
            sslmode: Some(match config.get_ssl_mode() {
                SslMode::Disable => connect::Ssl::Disable,
                SslMode::Require => connect::Ssl::Require,
                _ => connect::Ssl::Prefer,
            }),
            sslrootcert: None,
        };
        let (_, tls) = connect::tls_setup(&keys)?;
        Self::from_parts(config, tls)
    }

    fn from_parts(
        mut config: tokio_postgres::Config,
        tls: TlsSetup,
    ) -> Result<PgFactory, ConfigError> {
        if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
            return Err(ConfigError::Postgres(
                "no host in the connection settings".into(),
            ));
        }
        if config.get_user().is_none() {
            return Err(ConfigError::Postgres(
                "no user in the connection settings".into(),
            ));
        }
        // As libpq: one port for every host, or one per host.
        let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
        let ports = config.get_ports().len();
        if ports > 1 && ports != hosts {
            return Err(ConfigError::Postgres(format!(
                "{ports} ports for {hosts} hosts: give one port, or one per host"
            )));
        }
        if config.get_ports().contains(&0) {
            return Err(ConfigError::Postgres("port 0 is not a port".into()));
        }
        // A NUL byte cannot be sent in the start-up message: every connect would fail.
        let texts = [
            ("user", config.get_user().map(str::as_bytes)),
            ("dbname", config.get_dbname().map(str::as_bytes)),
            ("password", config.get_password()),
            ("options", config.get_options().map(str::as_bytes)),
            (
                "application_name",
                config.get_application_name().map(str::as_bytes),
            ),
        ];
        if let Some((key, _)) = texts
            .iter()
            .find(|(_, v)| v.is_some_and(|v| v.contains(&0)))
        {
            return Err(ConfigError::Postgres(format!(
                "`{key}` contains a NUL byte"
            )));
        }
        if config.get_application_name().is_none() {
            config.application_name("riptide");
        }
        Ok(PgFactory {
            s: Settings {
                config,
                tls,
                mode: StatementCacheMode::Named,
                capacity: 128,
                recycling: RecyclingMethod::Fast,
                check_timeout: CHECK_TIMEOUT,
                metrics: Arc::default(),
                invalid: None,
            },
        })
    }

    /// Statement cache mode (default [`StatementCacheMode::Named`]).
    pub fn statement_cache(mut self, mode: StatementCacheMode) -> Self {
        self.s.mode = mode;
        self
    }

    /// Entries per connection's cache (default 128; 0 turns caching off, as
    /// [`StatementCacheMode::Off`]).
    pub fn statement_cache_capacity(mut self, n: usize) -> Self {
        self.s.capacity = n;
        self
    }

    /// Recycling method (default [`RecyclingMethod::Fast`]).
    pub fn recycling(mut self, m: RecyclingMethod) -> Self {
        self.s.recycling = m;
        self
    }

    /// How long a round trip at checkout may take before the connection is taken as dead
    /// and replaced, its caller served by another (default 2 s): `Verified`'s `Sync`, the
    /// core's `validation_interval` ping, and waiting for what the previous user left
    /// running. A connection whose network path went silent (no reset, no answer) then
    /// costs its caller this long, not its whole `acquire_timeout` and an error. Keep it
    /// above the server's slowest answer to `Sync` under load. Zero is refused: every
    /// create then fails with that error.
    pub fn check_timeout(mut self, d: std::time::Duration) -> Self {
        if d.is_zero() {
            self.s.invalid = Some("check_timeout must be above zero".into());
        }
        self.s.check_timeout = d;
        self
    }

    /// The `application_name` each connection announces at start-up (shown in
    /// `pg_stat_activity`; default `riptide`, unless the connection string sets one). A
    /// name with a NUL byte cannot be sent: every create then fails with a message
    /// saying so.
    pub fn application_name(mut self, name: &str) -> Self {
        if name.contains('\0') {
            self.s.invalid = Some(format!("application_name {name:?} contains a NUL byte"));
        } else {
            self.s.config.application_name(name);
        }
        self
    }

    /// TLS with your own rustls configuration (e.g. the system's roots); TLS becomes
    /// required (`sslmode=require`), and the configuration's verifier decides what is
    /// accepted.
    pub fn tls(mut self, config: rustls::ClientConfig) -> Self {
        self.s
            .config
            .ssl_mode(tokio_postgres::config::SslMode::Require);
        self.s.tls = TlsSetup::On(Arc::new(config));
        self
    }

    /// The connection settings (to read, or to change what the string did not say).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.s.config
    }

    /// Live counters over every connection this factory makes.
    pub fn metrics(&self) -> PgMetrics {
        PgMetrics(self.s.metrics.clone())
    }

    /// The core's builder for a [`Pool<PgConn>`], named after the `application_name`, with
    /// the adapter's checkout checks installed as its `pre_recycle` hook.
    pub fn into_pool_builder(self) -> PoolBuilder<PgConn> {
        let name = self
            .s
            .config
            .get_application_name()
            .unwrap_or("riptide")
            .to_owned();
        Pool::builder(PgCreate(Arc::new(self.s)))
            .name(name)
            .pre_recycle(recycle_hook)
    }

    /// A [`PartitionedPool`] of connections per key (tenant): `per_key` adjusts the
    /// connection settings for a key before each of its connections opens (its own
    /// `user`, or `options("-c search_path=tenant_a")`). Start-up settings survive every
    /// recycling method, including `Clean`'s `RESET ALL`. Set the per-key and global caps
    /// on the returned builder; keep the global cap under the server's `max_connections`.
    pub fn into_partitioned_builder<K, F>(self, per_key: F) -> PartitionedPoolBuilder<K, PgConn>
    where
        K: Clone + Eq + Hash + Send + Sync + 'static,
        F: Fn(&K, &mut tokio_postgres::Config) + Send + Sync + 'static,
    {
        let s = Arc::new(self.s);
        let per_key = Arc::new(per_key);
        PartitionedPool::builder(move |key: K| {
            let s = s.clone();
            let per_key = per_key.clone();
            async move {
                let mut config = s.config.clone();
                per_key(&key, &mut config);
                create(&s, &config).await
            }
        })
        .configure(|b| b.pre_recycle(recycle_hook))
    }
}

/// The factory handed to the core (private, so the checkout hook always comes with it).
struct PgCreate(Arc<Settings>);

impl Factory<PgConn> for PgCreate {
    type Error = BoxError;
    fn create(&self) -> impl Future<Output = Result<PgConn, BoxError>> + Send {
        let s = self.0.clone();
        async move { create(&s, &s.config).await }
    }
    async fn validate(&self, conn: &mut PgConn) -> bool {
        conn.ping().await.is_ok()
    }
}

async fn create(s: &Arc<Settings>, config: &tokio_postgres::Config) -> Result<PgConn, BoxError> {
    if let Some(why) = &s.invalid {
        return Err(why.clone().into());
    }
    let c = connect::connect(config, &s.tls).await?;
    s.metrics.connections_opened.fetch_add(1, Relaxed);
    let mut conn = PgConn {
        client: c.client,
        wire: c.wire,
        cache: Mutex::new(Cache {
            lru: Lru::new(s.capacity.max(1)),
            deallocations: 0,
            replans: 0,
            hits: 0,
            misses: 0,
            evictions: 0,
        }),
        settings: s.clone(),
        check: None,
        doomed: false,
        abandoned: AtomicBool::new(false),
        peer: c.peer,
        config: config.clone(),
        _closed: c.closed,
    };
    // A new connection's first user gets a session prepared as every later one is: the
    // custom SQL runs here too. If it fails, the create does (a clear error for the
    // caller, counted by the breaker), rather than each checkout replacing its
    // connection in silence.
    if let RecyclingMethod::Custom(sql) = &s.recycling {
        conn.run_custom(sql)
            .await
            .map_err(|e| format!("the custom recycling SQL failed on a new connection: {e}"))?;
    }
    Ok(conn)
}

fn recycle_hook(
    c: &mut PgConn,
    _: riptide_pool::ObjectMeta,
) -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + '_>> {
    Box::pin(async move {
        let r = c.recycle().await;
        if r.is_err() {
            c.settings.metrics.recycle_failures.fetch_add(1, Relaxed);
        }
        r
    })
}

enum Entry {
    Named(Statement),
    Types(Arc<[Type]>),
}

struct Cache {
    lru: Lru<Entry>,
    /// The wire's deallocation count the entries are valid for.
    deallocations: u64,
    /// The wire's count of errors that may mean a result type changed (`Wire::replans`).
    replans: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
}

/// A pooled PostgreSQL connection: derefs to `tokio_postgres::Client`, owns the task that
/// drives its connection (which ends when the `PgConn` is dropped), and keeps a statement
/// cache.
pub struct PgConn {
    client: Client,
    wire: Arc<Wire>,
    cache: Mutex<Cache>,
    settings: Arc<Settings>,
    /// Set at a return that left work behind (a `ROLLBACK` or reset sent, or requests not
    /// yet written): the error count then; the next async checkout confirms the session.
    check: Option<u64>,
    doomed: bool,
    /// A prepare was dropped before it built its `Statement`: the server may hold a
    /// statement that no handle will ever close.
    abandoned: AtomicBool,
    peer: connect::Peer,
    config: tokio_postgres::Config,
    _closed: tokio::sync::oneshot::Sender<()>,
}

impl fmt::Debug for PgConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.client.is_closed())
            .field("cache", &self.cache_stats())
            .finish_non_exhaustive()
    }
}

impl Deref for PgConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl PgConn {
    fn caching(&self) -> bool {
        self.settings.capacity > 0 && self.settings.mode != StatementCacheMode::Off
    }

    /// The cache, emptied first if the session dropped its prepared statements since, or
    /// if a statement may have failed because its result type changed under it ("cached
    /// plan must not change result type": it would fail at every use; its entries are
    /// prepared again).
    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (d, r) = (self.wire.deallocations(), self.wire.replans());
        if c.deallocations != d || c.replans != r {
            c.deallocations = d;
            c.replans = r;
            let stale = c.lru.drain();
            drop(stale);
        }
        c
    }

    /// `Client::prepare`, marking the connection if the future is dropped before it ends:
    /// once the server has parsed the statement, only the `Statement` this future would
    /// build closes it, so an abandoned prepare leaves it on the session. The return then
    /// deallocates it (see `on_return`).
    async fn prepare_marked(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
        struct Abandon<'a>(Option<&'a AtomicBool>);
        impl Drop for Abandon<'_> {
            fn drop(&mut self) {
                if let Some(flag) = self.0 {
                    // Relaxed: read only by `on_return` through `&mut self`, which the
                    // pool's return orders after every use of the shared borrow.
                    flag.store(true, Relaxed);
                }
            }
        }
        let mut mark = Abandon(Some(&self.abandoned));
        let st = self.client.prepare(query).await;
        mark.0 = None;
        st
    }

    /// A prepared statement for `query`: from the cache in `Named` mode (prepared on a
    /// miss, the least recently used entry evicted and closed on the server when full);
    /// prepared anew in `Unnamed` and `Off` modes (closed when dropped).
    ///
    /// # Errors
    ///
    /// The server's or the connection's error, as `Client::prepare`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes leaves nothing behind: a statement the
    /// server had parsed for it is deallocated when the connection goes back to the pool
    /// (or, where that cannot be done safely, the connection is replaced).
    pub async fn prepare_cached(&self, query: &str) -> Result<Statement, tokio_postgres::Error> {
        let m = &self.settings.metrics;
        if self.caching() && self.settings.mode == StatementCacheMode::Named {
            {
                let mut c = self.lock();
                if let Some(Entry::Named(st)) = c.lru.get(query) {
                    let st = st.clone();
                    c.hits += 1;
                    m.cache_hits.fetch_add(1, Relaxed);
                    return Ok(st);
                }
            }
            let st = self.prepare_marked(query).await?;
            let evicted = {
                let mut c = self.lock();
                c.misses += 1;
                let ev = c.lru.insert(query, Entry::Named(st.clone()));
                if ev.as_ref().is_some_and(|(k, _)| &**k != query) {
                    c.evictions += 1;
                    m.cache_evictions.fetch_add(1, Relaxed);
                }
                ev
            };
            m.cache_misses.fetch_add(1, Relaxed);
            drop(evicted); // closes the statement on the server (unless a handle is held)
            return Ok(st);
        }
        self.lock().misses += 1;
        m.cache_misses.fetch_add(1, Relaxed);
        self.prepare_marked(query).await
    }

    /// The parameter types of `query` (`Unnamed` mode), described once per connection
    /// inside a transaction (so PgBouncer keeps one server connection for it).
    async fn param_types(&self, query: &str) -> Result<Arc<[Type]>, tokio_postgres::Error> {
        let m = &self.settings.metrics;
        if self.caching() {
            let mut c = self.lock();
            if let Some(Entry::Types(t)) = c.lru.get(query) {
                let t = t.clone();
                c.hits += 1;
                m.cache_hits.fetch_add(1, Relaxed);
                return Ok(t);
            }
        }
        let in_tx = self.wire.snapshot().status != IDLE;
        if !in_tx {
            self.client.batch_execute("BEGIN").await?;
        }
        let types: Arc<[Type]> = match self.prepare_marked(query).await {
            Ok(st) => st.params().into(),
            Err(e) => {
                if !in_tx {
                    self.client.batch_execute("ROLLBACK").await?;
                }
                return Err(e);
            }
        };
        if !in_tx {
            self.client.batch_execute("COMMIT").await?;
        }
        m.cache_misses.fetch_add(1, Relaxed);
        let evicted = {
            let mut c = self.lock();
            c.misses += 1;
            if self.caching() {
                let ev = c.lru.insert(query, Entry::Types(types.clone()));
                if ev.as_ref().is_some_and(|(k, _)| &**k != query) {
                    c.evictions += 1;
                    m.cache_evictions.fetch_add(1, Relaxed);
                }
                ev
            } else {
                None
            }
        };
        drop(evicted);
        Ok(types)
    }

    /// Runs `query` with `params` through the cache, in whichever way the mode allows:
    /// a cached named statement (`Named`), parse-bind-execute in one cycle with cached
    /// parameter types (`Unnamed`, PgBouncer-safe), or a fresh statement (`Off`). A
    /// parameter that does not fit the types cached for `query` (a column's type changed
    /// since) has them described again, once.
    ///
    /// # Errors
    ///
    /// The server's or the connection's error, as `Client::query`.
    ///
    /// # Cancel safety
    ///
    /// As `tokio-postgres`' own query futures: a query already sent runs to its end on the
    /// server (stop it with [`cancel_query`](Self::cancel_query)) and the connection stays
    /// usable; a statement being prepared for it is handled as in
    /// [`prepare_cached`](Self::prepare_cached).
    pub async fn query_cached(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.twice_if_stale_types(query, || self.query_cached_once(query, params))
            .await
    }

    async fn query_cached_once(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.run_cached(
            query,
            params,
            |typed| async move { self.client.query_typed(query, &typed).await },
            |st| async move { self.client.query(&st, params).await },
        )
        .await
    }

    /// One run of a cached helper. In `Unnamed` mode: `typed` with `params` beside the
    /// parameter types cached for `query`, or, when their counts differ, `plain` on a
    /// fresh statement, so the server reports the mismatch in its own words. Otherwise:
    /// `plain` on the cached statement, prepared once more if the server dropped or
    /// re-planned it ([`stale_statement`](Self::stale_statement)).
    async fn run_cached<'p, R, FT, FP>(
        &self,
        query: &str,
        params: &[&'p (dyn ToSql + Sync)],
        typed: impl FnOnce(Vec<(&'p (dyn ToSql + Sync), Type)>) -> FT,
        plain: impl Fn(Statement) -> FP,
    ) -> Result<R, tokio_postgres::Error>
    where
        FT: Future<Output = Result<R, tokio_postgres::Error>>,
        FP: Future<Output = Result<R, tokio_postgres::Error>>,
    {
        if self.settings.mode == StatementCacheMode::Unnamed {
            let types = self.param_types(query).await?;
            let with_types: Vec<(&(dyn ToSql + Sync), Type)> =
                params.iter().copied().zip(types.iter().cloned()).collect();
            if with_types.len() != params.len() {
                return plain(self.prepare_marked(query).await?).await;
            }
            return typed(with_types).await;
        }
        match plain(self.prepare_cached(query).await?).await {
            Err(e) if self.stale_statement(&e) => plain(self.prepare_cached(query).await?).await,
            r => r,
        }
    }

    /// Runs `run`, and once more if it failed because `query`'s cached parameter types
    /// may be stale ([`stale_types`](Self::stale_types)).
    async fn twice_if_stale_types<R, F: Future<Output = Result<R, tokio_postgres::Error>>>(
        &self,
        query: &str,
        run: impl Fn() -> F,
    ) -> Result<R, tokio_postgres::Error> {
        match run().await {
            Err(e) if self.stale_types(&e, query) => run().await,
            r => r,
        }
    }

    /// A parameter did not fit the type the cache holds for it (`WrongType`, found
    /// before anything was sent): the types may be stale, a column's type changed
    /// (`ALTER COLUMN ... TYPE`) or the name now resolving to another table (a
    /// `search_path` Clean reset). `query`'s entry goes, and the caller tries once more
    /// with the types described anew (the same error then is the caller's own).
    fn stale_types(&self, e: &tokio_postgres::Error, query: &str) -> bool {
        let wrong_type = std::error::Error::source(e)
            .is_some_and(|s| s.is::<tokio_postgres::types::WrongType>());
        if !wrong_type || !self.caching() {
            return false;
        }
        let gone = self.lock().lru.remove(query);
        let stale = gone.is_some();
        drop(gone); // closes a named statement on the server (unless a handle is held)
        stale
    }

    /// A cached statement no longer serves: the server no longer has it (something
    /// deallocated it behind the cache's back), or its result type changed under it
    /// (`ALTER TABLE`, or a `search_path` that Clean reset: "cached plan must not change
    /// result type"). The cache is emptied, and the caller may retry once when no
    /// transaction was open (the failure happened before anything ran).
    fn stale_statement(&self, e: &tokio_postgres::Error) -> bool {
        use tokio_postgres::error::SqlState;
        let gone = e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME);
        // The routine names the check whatever language the server's messages are in.
        let replanned = e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED)
            && e.as_db_error()
                .and_then(|d| d.routine())
                .is_some_and(|r| r == "RevalidateCachedQuery");
        if !gone && !replanned {
            return false;
        }
        self.clear_statement_cache();
        self.settings.mode == StatementCacheMode::Named && self.wire.snapshot().status == IDLE
    }

    /// [`query_cached`](Self::query_cached) for a statement returning exactly one row
    /// (an error otherwise).
    ///
    /// # Errors
    ///
    /// As [`query_cached`](Self::query_cached), and an error when the query returns no row
    /// or more than one.
    ///
    /// # Cancel safety
    ///
    /// As [`query_cached`](Self::query_cached).
    pub async fn query_one_cached(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        self.twice_if_stale_types(query, || self.query_one_cached_once(query, params))
            .await
    }

    async fn query_one_cached_once(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        self.run_cached(
            query,
            params,
            |typed| async move { self.client.query_typed_one(query, &typed).await },
            |st| async move { self.client.query_one(&st, params).await },
        )
        .await
    }

    /// [`query_cached`](Self::query_cached) for a statement whose row count matters:
    /// returns the rows affected.
    ///
    /// # Errors
    ///
    /// As [`query_cached`](Self::query_cached).
    ///
    /// # Cancel safety
    ///
    /// As [`query_cached`](Self::query_cached).
    pub async fn execute_cached(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.twice_if_stale_types(query, || self.execute_cached_once(query, params))
            .await
    }

    async fn execute_cached_once(
        &self,
        query: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        self.run_cached(
            query,
            params,
            |typed| async move { self.client.execute_typed(query, &typed).await },
            |st| async move { self.client.execute(&st, params).await },
        )
        .await
    }

    /// Asks the server to cancel the query this connection is running (from another task
    /// or a `join!` beside the query, which then fails with SQLSTATE 57014 and leaves the
    /// connection usable). The request goes over a short-lived socket to the address this
    /// connection was opened to, as the protocol specifies, with TLS as this connection
    /// negotiated it. Use this rather
    /// than `cancel_token().cancel_query(..)`, which needs socket settings tokio-postgres
    /// records only for the sockets it opens itself.
    ///
    /// # Errors
    ///
    /// The cancel request's socket or TLS handshake failed. A query that ended before the
    /// request arrived is no error: the server ignores a request with nothing to cancel.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future may or may not have delivered the request; the connection
    /// itself is untouched either way.
    pub async fn cancel_query(&self) -> Result<(), BoxError> {
        self.peer.cancel(&self.config, &self.client).await
    }

    /// This connection's statement cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        let c = self.lock();
        CacheStats {
            hits: c.hits,
            misses: c.misses,
            evictions: c.evictions,
            len: c.lru.len(),
        }
    }

    /// Empties the statement cache (its statements are closed on the server as their last
    /// handles are dropped).
    pub fn clear_statement_cache(&self) {
        let drained = self.lock().lru.drain();
        drop(drained);
    }

    /// A `Sync` round trip: the cheapest message the server answers, within
    /// `check_timeout`.
    async fn ping(&self) -> Result<(), BoxError> {
        let limit = self.settings.check_timeout;
        tokio::time::timeout(limit, self.client.check_connection())
            .await
            .map_err(|_| format!("no answer to a round trip within {limit:?} (check_timeout)"))??;
        Ok(())
    }

    /// Sends `sql` as a simple query without waiting for the answer (it is ordered before
    /// anything sent after it). `false` if it could not be sent.
    fn send(&self, sql: &str) -> bool {
        matches!(
            poll_once(self.client.simple_query_raw(sql)),
            Poll::Ready(Ok(_))
        )
    }

    /// Return-time judgement (synchronous, from the wire's state).
    fn on_return(&mut self) {
        let m = &self.settings.metrics;
        let s = self.wire.snapshot();
        // tokio-postgres' type-lookup statements: dropped by a deallocation, or (Unnamed)
        // left on whichever server connection PgBouncer gave the describing transaction.
        // Its client cannot forget them, so the connection cannot be reused safely.
        let typeinfo_broken = self.wire.typeinfo_lost()
            || (self.settings.mode == StatementCacheMode::Unnamed && self.wire.has_typeinfo());
        if self.client.is_closed() || s.unknown || s.heavy > 0 || typeinfo_broken {
            self.doomed = true;
            m.discarded_on_return.fetch_add(1, Relaxed);
            return;
        }
        let mut sent = false;
        // A failed request whose `ReadyForQuery` is still on its way (the client returns
        // at the error) may have left a failed transaction block: roll back anyway (on an
        // idle session the server only warns).
        if s.status != IDLE || s.failing > 0 {
            if !self.send("ROLLBACK") {
                self.doomed = true;
                return;
            }
            m.rollbacks_on_return.fetch_add(1, Relaxed);
            sent = true;
        }
        if *self.abandoned.get_mut() {
            // A prepare dropped after the server parsed its statement (see `prepare`):
            // no handle names it, so only `DEALLOCATE ALL` removes it. The wire sees that
            // go by and the cache empties with it. Not where it would take tokio-postgres'
            // own type-lookup statements too, nor in `Unnamed` mode, whose sessions may be
            // PgBouncer's server connections shared with other clients: the connection is
            // replaced instead.
            *self.abandoned.get_mut() = false;
            if self.settings.mode == StatementCacheMode::Unnamed
                || self.wire.has_typeinfo()
                || !self.send("DEALLOCATE ALL")
            {
                self.doomed = true;
                m.discarded_on_return.fetch_add(1, Relaxed);
                return;
            }
            // Now, not when the wire sees it go: a `try_get` (no checkout step) may
            // prepare before the driver has written it.
            self.clear_statement_cache();
            sent = true;
        }
        if self.settings.recycling == RecyclingMethod::Clean {
            if !self.send(CLEAN_SQL) {
                self.doomed = true;
                return;
            }
            sent = true;
        }
        if sent || !s.settled {
            self.check = Some(s.errors);
        }
    }

    /// Checkout-time work for the pool's recycling method.
    async fn recycle(&mut self) -> Result<(), BoxError> {
        if self.client.is_closed() {
            return Err("connection closed".into());
        }
        if let Some(base) = self.check.take() {
            self.settle(base).await?;
        }
        match &self.settings.recycling {
            RecyclingMethod::Fast | RecyclingMethod::Clean => {}
            RecyclingMethod::Verified => {
                self.ping().await?;
                if self.wire.snapshot().status != IDLE {
                    return Err("session not idle after a round trip".into());
                }
            }
            RecyclingMethod::Custom(sql) => {
                let sql = sql.clone();
                self.run_custom(&sql).await?;
            }
        }
        Ok(())
    }

    /// Runs the custom recycling SQL (at a checkout, and on a new connection), then
    /// requires an idle session and the type-lookup statements kept.
    async fn run_custom(&mut self, sql: &str) -> Result<(), BoxError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| pg_message(&e))?;
        let upper = sql.to_ascii_uppercase();
        let deallocates = upper.contains("DEALLOCATE") || upper.contains("DISCARD ALL");
        if deallocates {
            self.clear_statement_cache();
        }
        if self.wire.typeinfo_lost() || deallocates && self.wire.has_typeinfo() {
            self.doomed = true;
            return Err("the custom recycling SQL deallocated tokio-postgres' \
                        type-lookup statements: the connection is replaced"
                .into());
        }
        if self.wire.snapshot().status != IDLE {
            return Err("the custom recycling SQL left a transaction open".into());
        }
        Ok(())
    }

    /// Waits until what the last return left behind has run, then requires an idle session
    /// and no error from it.
    async fn settle(&mut self, base: u64) -> Result<(), BoxError> {
        let mut s = self.wire.snapshot();
        // The driver task is usually just finishing the poll that answered the previous
        // user: give it a moment before paying a round trip.
        // Done when nothing is unwritten, and what is still in flight is only light work
        // (statement closes) on an idle session.
        let done = |s: &wire::Snapshot| {
            s.settled && s.heavy == 0 && (s.in_flight == 0 || s.status == IDLE)
        };
        for _ in 0..4 {
            if done(&s) {
                break;
            }
            tokio::task::yield_now().await;
            s = self.wire.snapshot();
        }
        if !done(&s) {
            self.settings
                .metrics
                .settle_round_trips
                .fetch_add(1, Relaxed);
            // Behind whatever was queued; a request that keeps the session busy longer
            // than `check_timeout` (one cancelled before it was even written) costs the
            // connection instead.
            self.ping()
                .await
                .map_err(|e| format!("the previous use left the session busy: {e}"))?;
            s = self.wire.snapshot();
        }
        if s.unknown {
            return Err("connection state unknown".into());
        }
        if s.status != IDLE {
            // Something queued before the return opened a transaction after it.
            self.client.batch_execute("ROLLBACK").await?;
            if self.settings.recycling == RecyclingMethod::Clean {
                self.client.batch_execute(CLEAN_SQL).await?;
            }
            s = self.wire.snapshot();
            if s.status != IDLE {
                return Err("session still in a transaction after ROLLBACK".into());
            }
            return Ok(());
        }
        if s.errors != base {
            return Err("the clean-up after the previous use failed".into());
        }
        Ok(())
    }
}

impl Poolable for PgConn {
    fn reset(&mut self) {
        self.on_return();
    }
    fn is_healthy(&self) -> bool {
        !self.doomed && !self.client.is_closed()
    }
}
