//! The PostgreSQL adapter against a real server: the embedded one from
//! `riptide_adapters::postgres::embedded` (one shared by most tests of this binary; the
//! tests that stop the server start their own). Without PostgreSQL binaries the tests skip
//! with a loud message, except under CI (`CI` set), where they fail.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use riptide_adapters::postgres::embedded::{EmbeddedError, EmbeddedPostgres};
use riptide_adapters::postgres::{
    tokio_postgres, PgConn, PgFactory, RecyclingMethod, StatementCacheMode,
};
use riptide_adapters::ConfigError;
use riptide_pool::{Pool, PoolError, Pooled};

fn unavailable(e: EmbeddedError) -> Option<EmbeddedPostgres> {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    if ci || !matches!(e, EmbeddedError::NotInstalled(_)) {
        panic!("the PostgreSQL tests need a server: {e}");
    }
    eprintln!("\n!!!!! SKIPPING the PostgreSQL tests: {e} !!!!!\n");
    None
}

static SHARED: OnceLock<Option<EmbeddedPostgres>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(Some(pg)) = SHARED.get() {
        pg.stop_and_remove();
    }
}

/// The server shared by this binary's tests. It is started from a thread that lives as long
/// as the process (so the parent-death signal stops it if the process is killed), and
/// stopped and removed at exit.
fn shared() -> Option<&'static EmbeddedPostgres> {
    SHARED
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(EmbeddedPostgres::start());
                loop {
                    std::thread::park();
                }
            });
            match rx.recv().expect("the server thread answers") {
                Ok(pg) => {
                    // SAFETY: `stop_shared` is an `extern "C" fn()` that never unwinds
                    // (`stop_and_remove` catches every error) and touches only the static.
                    unsafe { libc::atexit(stop_shared) };
                    Some(pg)
                }
                Err(e) => unavailable(e),
            }
        })
        .as_ref()
}

/// A server of the test's own (for the tests that stop it).
fn own() -> Option<EmbeddedPostgres> {
    match EmbeddedPostgres::start() {
        Ok(pg) => Some(pg),
        Err(e) => unavailable(e),
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn admin(pg: &EmbeddedPostgres) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&pg.connection_string(), tokio_postgres::NoTls)
        .await
        .expect("admin connection");
    tokio::spawn(conn);
    c
}

/// One value through the simple query protocol (which prepares nothing and opens no
/// named portal, so it does not count itself in `pg_prepared_statements`/`pg_cursors`).
async fn simple(c: &PgConn, sql: &str) -> String {
    c.simple_query(sql)
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a row")
}

async fn backend_pid(c: &PgConn) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn state_of(admin: &tokio_postgres::Client, pid: i32) -> String {
    admin
        .query_one("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .get(0)
}

async fn count_app(admin: &tokio_postgres::Client, app: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0)
}

fn pool_of(
    pg: &EmbeddedPostgres,
    f: impl FnOnce(PgFactory) -> PgFactory,
    max: usize,
) -> Pool<PgConn> {
    f(PgFactory::new(pg.connection_string()).unwrap())
        .into_pool_builder()
        .max_size(max)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_cache_is_a_true_lru_and_closes_evicted_statements() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f.statement_cache_capacity(2), 1);
    let c = pool.get().await.unwrap();
    let prepared = "SELECT count(*) FROM pg_prepared_statements";
    assert_eq!(simple(&c, prepared).await, "0");
    let a = c.prepare_cached("SELECT 1::int4").await.unwrap();
    c.prepare_cached("SELECT 2::int4").await.unwrap();
    let again = c.prepare_cached("SELECT 1::int4").await.unwrap(); // a hit refreshes "1"
    assert_eq!(a.params(), again.params());
    drop((a, again));
    c.prepare_cached("SELECT 3::int4").await.unwrap(); // evicts "2", the least recent
    let s = c.cache_stats();
    assert_eq!((s.hits, s.misses, s.evictions, s.len), (1, 3, 1, 2));
    assert_eq!(
        simple(&c, prepared).await,
        "2",
        "the evicted statement was closed on the server"
    );
    let names = simple(
        &c,
        "SELECT string_agg(statement, ',' ORDER BY statement) FROM pg_prepared_statements",
    )
    .await;
    assert_eq!(names, "SELECT 1::int4,SELECT 3::int4");
    let row = c
        .query_one_cached("SELECT $1::int4 + 1", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    drop(c);
    // Named statements stay across returns.
    let c = pool.get().await.unwrap();
    c.prepare_cached("SELECT 3::int4").await.unwrap();
    assert_eq!(c.cache_stats().hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_and_off_leave_no_statement_on_the_server() {
    let Some(pg) = shared() else { return };
    for mode in [StatementCacheMode::Unnamed, StatementCacheMode::Off] {
        let pool = pool_of(pg, |f| f.statement_cache(mode), 1);
        let c = pool.get().await.unwrap();
        for i in 0..5i32 {
            let rows = c.query_cached("SELECT $1::int4 * 2", &[&i]).await.unwrap();
            assert_eq!(rows[0].get::<_, i32>(0), i * 2);
            assert_eq!(c.execute_cached("SELECT $1::int4", &[&i]).await.unwrap(), 1);
        }
        let st = c.prepare_cached("SELECT 7").await.unwrap();
        drop(st);
        let n = simple(&c, "SELECT count(*) FROM pg_prepared_statements").await;
        assert_eq!(n, "0", "{mode:?} left statements on the server");
        let s = c.cache_stats();
        if mode == StatementCacheMode::Unnamed {
            assert_eq!((s.misses, s.len), (3, 2), "{s:?}"); // two queries described once + one prepare
            assert_eq!(s.hits, 8);
        } else {
            assert_eq!((s.hits, s.len), (0, 0), "{s:?}");
        }
    }
}

async fn setup_table(pg: &EmbeddedPostgres, name: &str) {
    pg.psql(&format!("CREATE TABLE {name} (id int primary key, v text)"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_never_reaches_the_next_user() {
    let Some(pg) = shared() else { return };
    let t = unique("dropped_tx");
    setup_table(pg, &t).await;
    let adm = admin(pg).await;
    let pool = pool_of(pg, |f| f, 1);
    // 1. A `Transaction` dropped without commit.
    let mut c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    let tx = c.transaction().await.unwrap();
    tx.execute(&*format!("INSERT INTO {t} VALUES (1, 'x')"), &[])
        .await
        .unwrap();
    drop(tx);
    drop(c);
    // 2. A manual BEGIN left open.
    let c = pool.get().await.unwrap();
    assert_eq!(Pooled::id(&c), id, "the connection is kept, not replaced");
    c.batch_execute(&format!("BEGIN; INSERT INTO {t} VALUES (2, 'y')"))
        .await
        .unwrap();
    drop(c);
    // 3. A transaction broken by an error.
    let c = pool.get().await.unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    assert!(c.batch_execute("SELECT 1/0").await.is_err());
    drop(c);
    // 4. The same through try_get (no checkout hook): the ROLLBACK sent at return is
    // ordered before anything the next user sends.
    let c = pool.get().await.unwrap();
    c.batch_execute(&format!("BEGIN; INSERT INTO {t} VALUES (3, 'z')"))
        .await
        .unwrap();
    drop(c);
    let c = pool.try_get().unwrap();
    let n: i64 = c
        .query_one(&*format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "no uncommitted row is visible");
    let pid = backend_pid(&c).await;
    assert_eq!(state_of(&adm, pid).await, "idle", "no transaction is open");
    assert_eq!(Pooled::id(&c), id);
    drop(c);
    let c = pool.get().await.unwrap();
    let pid = backend_pid(&c).await;
    assert_eq!(state_of(&adm, pid).await, "idle");
    // Work after all that commits normally.
    c.execute(&*format!("INSERT INTO {t} VALUES (4, 'w')"), &[])
        .await
        .unwrap();
    drop(c);
    let n: i64 = adm
        .query_one(&*format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_still_queued_at_return_is_rolled_back_before_the_next_get() {
    let Some(pg) = shared() else { return };
    let t = unique("queued_begin");
    setup_table(pg, &t).await;
    let pool = pool_of(pg, |f| f, 1);
    for round in 0..20 {
        let c = pool.get().await.unwrap();
        // Polled once (the request is queued in the client), then dropped before the
        // driver task has written it.
        let _ = tokio::time::timeout(Duration::ZERO, c.batch_execute("BEGIN")).await;
        drop(c);
        let c = pool.get().await.unwrap();
        c.execute(&*format!("INSERT INTO {t} VALUES ({round}, 'r')"), &[])
            .await
            .unwrap();
        drop(c);
    }
    let adm = admin(pg).await;
    let n: i64 = adm
        .query_one(&*format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n, 20,
        "every insert was committed, none swallowed by a stray BEGIN"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_cancelled_mid_flight_costs_its_connection() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f, 1);
    let metrics_before = pool.stats().destroyed;
    let c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    let pid = backend_pid(&c).await;
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        c.query("SELECT pg_sleep(30)", &[]),
    )
    .await;
    assert!(r.is_err(), "the query was cancelled by the timeout");
    drop(c);
    let t0 = Instant::now();
    let c = pool.get().await.unwrap();
    assert_ne!(Pooled::id(&c), id, "a fresh connection");
    assert_ne!(backend_pid(&c).await, pid);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the next user did not wait behind the cancelled query"
    );
    assert_eq!(pool.stats().destroyed, metrics_before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_resets_session_state_and_keeps_the_cache() {
    let Some(pg) = shared() else { return };
    let app = unique("clean_app");
    let pool = pool_of(
        pg,
        |f| f.recycling(RecyclingMethod::Clean).application_name(&app),
        1,
    );
    let c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    let st = c.prepare_cached("SELECT $1::int4 * 3").await.unwrap();
    drop(st);
    c.batch_execute(
        "SET work_mem = '7MB'; SET application_name = 'changed'; \
         CREATE TEMP TABLE scratch (x int); SELECT pg_advisory_lock(4242); LISTEN riptide_chan; \
         DECLARE cur CURSOR WITH HOLD FOR SELECT 1; BEGIN; SELECT 1",
    )
    .await
    .unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    assert_eq!(Pooled::id(&c), id, "the same connection, cleaned");
    let one = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap() }
    };
    assert_eq!(one("SHOW work_mem").await.get::<_, String>(0), "4MB");
    assert_eq!(one("SHOW application_name").await.get::<_, String>(0), app);
    let n: i64 =
        one("SELECT count(*) FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't'")
            .await
            .get(0);
    assert_eq!(n, 0, "temp table dropped");
    let n: i64 =
        one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            .await
            .get(0);
    assert_eq!(n, 0, "advisory locks released");
    let n: i64 = one("SELECT count(*) FROM pg_listening_channels()")
        .await
        .get(0);
    assert_eq!(n, 0, "listeners removed");
    assert_eq!(
        simple(&c, "SELECT count(*) FROM pg_cursors").await,
        "0",
        "cursors closed"
    );
    let st = c.prepare_cached("SELECT $1::int4 * 3").await.unwrap();
    assert_eq!(c.cache_stats().hits, 1, "the cache survived the clean");
    assert_eq!(
        c.query_one(&st, &[&5i32]).await.unwrap().get::<_, i32>(0),
        15
    );
    let adm = admin(pg).await;
    assert_eq!(
        count_app(&adm, &app).await,
        1,
        "application_name kept for pg_stat_activity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_and_custom_recycling() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f.recycling(RecyclingMethod::Verified), 1);
    for _ in 0..3 {
        let c = pool.get().await.unwrap();
        c.query_cached("SELECT 1", &[]).await.unwrap();
    }
    assert_eq!(pool.stats().created, 1);
    let pool = pool_of(
        pg,
        |f| f.recycling(RecyclingMethod::Custom("DISCARD ALL".into())),
        1,
    );
    let c = pool.get().await.unwrap();
    c.query_cached("SELECT 2", &[]).await.unwrap();
    assert_eq!(c.cache_stats().len, 1);
    drop(c);
    let c = pool.get().await.unwrap();
    assert_eq!(
        c.cache_stats().len,
        0,
        "a reset that deallocates clears the cache"
    );
    let r = c.query_cached("SELECT 2", &[]).await.unwrap();
    assert_eq!(r.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_follows_statements_dropped_behind_its_back() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f, 1);
    let c = pool.get().await.unwrap();
    let st = c.prepare_cached("SELECT $1::int4 + 100").await.unwrap();
    drop(st);
    // Seen on the wire: the cache is emptied.
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    assert_eq!(c.cache_stats().len, 0);
    let st = c.prepare_cached("SELECT $1::int4 + 100").await.unwrap();
    assert_eq!(
        c.query_one(&st, &[&1i32]).await.unwrap().get::<_, i32>(0),
        101
    );
    drop(st);
    // Not seen (inside a multi-statement string): the helpers re-prepare once.
    c.batch_execute("SELECT 1; DEALLOCATE ALL").await.unwrap();
    let r = c
        .query_one_cached("SELECT $1::int4 + 100", &[&2i32])
        .await
        .unwrap();
    assert_eq!(r.get::<_, i32>(0), 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_can_be_cancelled_and_the_connection_stays() {
    let Some(pg) = shared() else { return };
    // Over plain TCP and over TLS (the cancel request negotiates TLS as its connection
    // did: under `require`, a plain one fails its handshake and never reaches the server).
    let tls = pg
        .connection_string()
        .replace("sslmode=disable", "sslmode=require");
    assert_ne!(
        tls,
        pg.connection_string(),
        "the test string names its sslmode"
    );
    for conn in [pg.connection_string(), tls] {
        let pool = PgFactory::new(conn.clone())
            .unwrap()
            .into_pool_builder()
            .max_size(1)
            .acquire_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let c = pool.get().await.unwrap();
        let id = Pooled::id(&c);
        let t0 = Instant::now();
        let (r, cancel) = tokio::join!(c.query("SELECT pg_sleep(30)", &[]), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel_query().await
        });
        cancel.unwrap_or_else(|e| panic!("{conn}: {e}"));
        let e = r.unwrap_err();
        assert_eq!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{conn}: {e:?}"
        );
        assert!(t0.elapsed() < Duration::from_secs(20));
        drop(c);
        let c = pool.get().await.unwrap();
        assert_eq!(
            Pooled::id(&c),
            id,
            "{conn}: a cancelled query does not cost the connection"
        );
        c.query_one("SELECT 1", &[]).await.unwrap();
    }
}

/// A statement from `prepare_cached`, used through the client's own `query_one`, whose
/// result type changed under it (a column added): the server refuses it ("cached plan
/// must not change result type") at every use, so the cache lets it go at that first
/// failure and the next `prepare_cached` prepares it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_whose_result_type_changed_is_prepared_again() {
    let Some(pg) = shared() else { return };
    let t = unique("replanned");
    let admin = admin(pg).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, v text); INSERT INTO {t} VALUES (1, 'a')"
        ))
        .await
        .unwrap();
    let pool = pool_of(pg, |f| f, 1);
    let q = format!("SELECT * FROM {t} WHERE id = $1");
    {
        let c = pool.get().await.unwrap();
        let st = c.prepare_cached(&q).await.unwrap();
        c.query_one(&st, &[&1i32]).await.unwrap();
    }
    admin
        .batch_execute(&format!("ALTER TABLE {t} ADD COLUMN extra int"))
        .await
        .unwrap();
    let mut failures = Vec::new();
    for _ in 0..4 {
        let c = pool.get().await.unwrap();
        let st = c.prepare_cached(&q).await.unwrap();
        match c.query_one(&st, &[&1i32]).await {
            Ok(row) => assert_eq!(row.len(), 3, "the new column is there"),
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(failures.len() <= 1, "{failures:?}");
}

/// A column's type changed under a cached statement (`ALTER COLUMN ... TYPE`): a
/// parameter of the new type does not fit the cached parameter types, so the `*_cached`
/// helpers describe the statement again, once, rather than fail at every use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_helpers_follow_a_parameter_type_changed_by_a_migration() {
    let Some(pg) = shared() else { return };
    let admin = admin(pg).await;
    for mode in [StatementCacheMode::Named, StatementCacheMode::Unnamed] {
        let t = unique("retyped");
        admin
            .batch_execute(&format!(
                "CREATE TABLE {t} (id int, v text); INSERT INTO {t} VALUES (1, 'a')"
            ))
            .await
            .unwrap();
        let pool = pool_of(pg, |f| f.statement_cache(mode), 1);
        let q = format!("SELECT v FROM {t} WHERE id = $1");
        let c = pool.get().await.unwrap();
        let v: String = c.query_one_cached(&q, &[&1i32]).await.unwrap().get(0);
        assert_eq!(v, "a");
        admin
            .batch_execute(&format!("ALTER TABLE {t} ALTER COLUMN id TYPE text"))
            .await
            .unwrap();
        for _ in 0..2 {
            let v: String = c
                .query_one_cached(&q, &[&"1"])
                .await
                .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
                .get(0);
            assert_eq!(v, "a", "{mode:?}");
            assert_eq!(
                c.query_cached(&q, &[&"1"]).await.unwrap().len(),
                1,
                "{mode:?}"
            );
            assert_eq!(
                c.execute_cached(&format!("UPDATE {t} SET v = 'a' WHERE id = $1"), &[&"1"])
                    .await
                    .unwrap(),
                1,
                "{mode:?}"
            );
        }
        // A parameter that fits no type is still the caller's error.
        let e = c.query_one_cached(&q, &[&1.5f64]).await.unwrap_err();
        assert!(e.to_string().contains("serializing"), "{mode:?}: {e}");
    }
}

/// `RecyclingMethod::Custom` prepares every session, a new connection's first user's
/// included; SQL that fails is a clear create error, not a new connection per checkout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_recycling_sql_runs_on_new_connections_and_fails_their_create() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(
        pg,
        |f| f.recycling(RecyclingMethod::Custom("SET work_mem = '9MB'".into())),
        2,
    );
    for _ in 0..3 {
        let c = pool.get().await.unwrap();
        assert_eq!(simple(&c, "SHOW work_mem").await, "9MB");
        c.batch_execute("SET work_mem = '1MB'").await.unwrap();
    }
    let f = PgFactory::new(pg.connection_string())
        .unwrap()
        .recycling(RecyclingMethod::Custom("SELECT 1/0".into()));
    let m = f.metrics();
    let pool = f
        .into_pool_builder()
        .max_size(2)
        .acquire_timeout(Duration::from_secs(5))
        .circuit_breaker(100, Duration::from_secs(1))
        .build()
        .unwrap();
    for _ in 0..3 {
        match pool.get().await {
            Err(PoolError::Create(e)) => {
                assert!(e.to_string().contains("division by zero"), "{e}")
            }
            other => panic!("want a create error naming the SQL's failure: {other:?}"),
        }
    }
    assert_eq!(
        m.snapshot().connections_opened,
        3,
        "one per caller, each closed"
    );
    assert_eq!(pool.stats().size, 0);
}

/// A TCP proxy between the pool and the server whose connections can be made to go
/// silent (bytes no longer carried, sockets kept open: a network path that drops
/// everything, with no reset).
struct Proxy {
    port: u16,
    accepted: Arc<AtomicU64>,
    silent_below: Arc<AtomicU64>,
}

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let silent_below = Arc::new(AtomicU64::new(0));
        let (acc, below) = (accepted.clone(), silent_below.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = l.accept().await {
                let n = acc.fetch_add(1, Ordering::SeqCst);
                let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                    continue;
                };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                tokio::spawn(Self::carry(dr, uw, n, below.clone()));
                tokio::spawn(Self::carry(ur, dw, n, below.clone()));
            }
        });
        Proxy {
            port,
            accepted,
            silent_below,
        }
    }

    async fn carry(
        mut r: tokio::net::tcp::OwnedReadHalf,
        mut w: tokio::net::tcp::OwnedWriteHalf,
        n: u64,
        silent_below: Arc<AtomicU64>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16384];
        loop {
            let got = match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(got) => got,
            };
            if n < silent_below.load(Ordering::SeqCst) {
                // Silent: both sockets kept, nothing carried.
                return std::future::pending().await;
            }
            if w.write_all(&buf[..got]).await.is_err() {
                return;
            }
        }
    }

    /// Every connection carried so far goes silent; new ones still pass.
    fn silence_existing(&self) {
        self.silent_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn connection_string(&self, pg: &EmbeddedPostgres) -> String {
        pg.connection_string().replace(
            &format!("port={}", pg.port()),
            &format!("port={}", self.port),
        )
    }
}

/// An idle connection whose network path went silent, checked at checkout (`Verified`,
/// or the core's `validation_interval` ping): the round trip gives up after
/// `check_timeout`, the connection is replaced, and the caller is served by a new one,
/// well within its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_costs_its_checkout_the_check_timeout_not_the_deadline() {
    let Some(pg) = shared() else { return };
    for verified in [true, false] {
        let proxy = Proxy::start(pg.port()).await;
        let f = PgFactory::new(proxy.connection_string(pg))
            .unwrap()
            .check_timeout(Duration::from_millis(500));
        let f = if verified {
            f.recycling(RecyclingMethod::Verified)
        } else {
            f
        };
        let pool = f
            .into_pool_builder()
            .max_size(2)
            .validation_interval(Duration::ZERO)
            .acquire_timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        {
            let c = pool.get().await.unwrap();
            c.query_one("SELECT 1", &[]).await.unwrap();
        }
        // What the return left (nothing) has settled: the checkout's round trip is its
        // method's own, not the wait for the previous user's work.
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.silence_existing();
        let t0 = Instant::now();
        let c = pool
            .get()
            .await
            .unwrap_or_else(|e| panic!("verified={verified}: {e}"));
        let took = t0.elapsed();
        c.query_one("SELECT 1", &[]).await.unwrap();
        assert!(
            took < Duration::from_secs(10),
            "verified={verified}: served after {took:?}"
        );
        assert_eq!(pool.stats().destroyed, 1, "verified={verified}");
    }
}

#[test]
fn malformed_settings_are_typed_errors() {
    for bad in [
        "host=127.0.0.1 port=notaport user=x",
        "host=127.0.0.1 user=x sslmode=sometimes",
        "host=127.0.0.1 user=x sslmode=verify-full",
        "host='127.0.0.1 user=x",
        "user=x",
        "host=127.0.0.1",
        "postgresql://x@127.0.0.1:99999/db",
        "host=127.0.0.1 user=x sslmode=verify-ca sslrootcert=/nonexistent/ca.pem",
        "host=127.0.0.1,127.0.0.2 port=1,2,3 user=x",
        "host=127.0.0.1 user=x port=0",
        "host=127.0.0.1 user=x\0y",
        "host=127.0.0.1 user=x dbname=a\0b",
        "host=127.0.0.1 user=x password=p\0q",
        "host=127.0.0.1 user=x options=-c\0x",
    ] {
        match PgFactory::new(bad) {
            Err(ConfigError::Postgres(msg)) => assert!(!msg.is_empty()),
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
    // A tokio_postgres::Config is taken too, and checked the same way.
    assert!(matches!(
        PgFactory::new(tokio_postgres::Config::new()),
        Err(ConfigError::Postgres(_))
    ));
    let mut cfg = tokio_postgres::Config::new();
    cfg.host("127.0.0.1").user("x");
    assert!(PgFactory::new(&cfg).is_ok());
    // One port for every host, or one per host, as libpq takes them.
    assert!(PgFactory::new("host=127.0.0.1,127.0.0.2 port=5432 user=x").is_ok());
    assert!(PgFactory::new("host=127.0.0.1,127.0.0.2 port=1,2 user=x").is_ok());
    let pool = PgFactory::new("host=127.0.0.1 user=x")
        .unwrap()
        .into_pool_builder()
        .max_size(0)
        .build();
    assert!(pool.is_err(), "the core's checks still apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_create_error_then_the_breaker_opens() {
    let Some(pg) = shared() else { return };
    let pool = PgFactory::new(pg.connection_string_for("riptide", "wrong", "postgres"))
        .unwrap()
        .into_pool_builder()
        .acquire_timeout(Duration::from_secs(2))
        .circuit_breaker(3, Duration::from_secs(30))
        .build()
        .unwrap();
    for _ in 0..3 {
        let t0 = Instant::now();
        match pool.get().await {
            Err(PoolError::Create(e)) => assert!(
                e.to_string().contains("password authentication failed"),
                "the server's message: {e}"
            ),
            other => panic!("expected a create error, got {other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
    assert!(matches!(
        pool.get().await,
        Err(PoolError::CircuitOpen { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_fast_and_opens_the_breaker() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // nothing listens there once the listener is dropped
    let pool = PgFactory::new(format!(
        "host=127.0.0.1 port={port} user=x password=y connect_timeout=2"
    ))
    .unwrap()
    .into_pool_builder()
    .acquire_timeout(Duration::from_millis(500))
    .circuit_breaker(2, Duration::from_secs(30))
    .build()
    .unwrap();
    let mut create = 0;
    let mut open = 0;
    for _ in 0..6 {
        let t0 = Instant::now();
        match pool.get().await {
            Err(PoolError::Create(e)) => {
                assert!(e.to_string().contains(&port.to_string()), "{e}");
                create += 1;
            }
            Err(PoolError::CircuitOpen { .. }) => open += 1,
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "no hang");
    }
    assert_eq!((create, open), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_and_verify_full_through_rustls() {
    let Some(pg) = shared() else { return };
    let ca = pg.ca_cert_path();
    let base = format!(
        "host=127.0.0.1 port={} user=riptide password=riptide dbname=postgres",
        pg.port()
    );
    for extra in [
        format!("sslmode=verify-full sslrootcert={}", ca.display()),
        format!("sslmode=verify-ca sslrootcert={}", ca.display()),
        "sslmode=require".to_owned(),
        "sslmode=prefer".to_owned(),
    ] {
        let pool = PgFactory::new(format!("{base} {extra}"))
            .unwrap()
            .into_pool_builder()
            .build()
            .unwrap();
        let c = pool.get().await.unwrap_or_else(|e| panic!("{extra}: {e}"));
        let ssl: bool = c
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ssl, "{extra}: encrypted");
        // The statement cache and the wire watch work above TLS too.
        c.query_cached("SELECT $1::int4", &[&1i32]).await.unwrap();
        c.batch_execute("BEGIN").await.unwrap();
        drop(c);
        let c = pool.get().await.unwrap();
        c.query_cached("SELECT $1::int4", &[&1i32]).await.unwrap();
        assert_eq!(pool.stats().created, 1);
    }
    // A CA that did not sign the server's certificate.
    let (other, _) = riptide_adapters::postgres::embedded::new_ca("not the server's CA").unwrap();
    let dir = std::env::temp_dir().join(unique("riptide-wrong-ca"));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("ca.pem");
    std::fs::write(&wrong, other.pem()).unwrap();
    let pool = PgFactory::new(format!(
        "{base} sslmode=verify-full sslrootcert={}",
        wrong.display()
    ))
    .unwrap()
    .into_pool_builder()
    .build()
    .unwrap();
    match pool.get().await {
        Err(PoolError::Create(e)) => {
            let msg = format!("{e} / {:?}", e);
            assert!(
                msg.contains("certificate") || msg.contains("Issuer"),
                "{msg}"
            );
        }
        other => panic!("expected a create error, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_mode_through_pgbouncer_transaction_pooling() {
    let Some(pg) = shared() else { return };
    let bouncer = match pg.pgbouncer("transaction", 4) {
        Ok(b) => b,
        Err(e) => {
            unavailable(e);
            return;
        }
    };
    // TLS is never silently dropped: PgBouncer here speaks no TLS.
    let pool = PgFactory::new(
        bouncer
            .connection_string()
            .replace("sslmode=disable", "sslmode=require"),
    )
    .unwrap()
    .into_pool_builder()
    .build()
    .unwrap();
    match pool.get().await {
        Err(PoolError::Create(e)) => assert!(e.to_string().contains("TLS"), "{e}"),
        other => panic!("expected a create error, got {other:?}"),
    }

    let pool = PgFactory::new(bouncer.connection_string())
        .unwrap()
        .statement_cache(StatementCacheMode::Unnamed)
        .into_pool_builder()
        .max_size(32)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..32i32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2000i32 {
                let c = pool.get().await?;
                let sql = if i % 2 == 0 {
                    "SELECT $1::int4 + $2::int4"
                } else {
                    "SELECT $2::int4 + $1::int4 + 0"
                };
                let row = c.query_one_cached(sql, &[&t, &i]).await?;
                assert_eq!(row.get::<_, i32>(0), t + i);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }

    // The contrast: named statements through the same PgBouncer fail (a statement parsed
    // on one server connection is missing on the next), which is why `Unnamed` exists.
    let named = PgFactory::new(bouncer.connection_string())
        .unwrap()
        .into_pool_builder()
        .max_size(32)
        .build()
        .unwrap();
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..32i32 {
        let (named, failures) = (named.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..50i32 {
                let c = named.get().await.unwrap();
                if let Err(e) = c
                    .query_one_cached("SELECT $1::int4 + $2::int4", &[&t, &i])
                    .await
                {
                    let db = e
                        .as_db_error()
                        .map(|d| d.message().to_owned())
                        .unwrap_or_default();
                    assert!(db.contains("prepared statement"), "{e:?}");
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "named statements broke through PgBouncer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_and_capped() {
    let Some(pg) = shared() else { return };
    let a = unique("tenant_a");
    let b = unique("tenant_b");
    for t in [&a, &b] {
        pg.psql(&format!(
            "CREATE ROLE {t} LOGIN PASSWORD 'pw_{t}'; CREATE SCHEMA {t} AUTHORIZATION {t}; \
             CREATE TABLE {t}.items (name text); INSERT INTO {t}.items VALUES ('{t} item'); \
             ALTER TABLE {t}.items OWNER TO {t};"
        ))
        .unwrap();
    }
    let pp = PgFactory::new(pg.connection_string())
        .unwrap()
        .recycling(RecyclingMethod::Clean)
        .into_partitioned_builder(|tenant: &String, cfg: &mut tokio_postgres::Config| {
            cfg.user(tenant);
            cfg.password(format!("pw_{tenant}"));
            cfg.options(format!("-c search_path={tenant}"));
        })
        .partition_max_size(2)
        .max_size(3)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let ca = pp.get(&a).await.unwrap();
    let rows = ca.query("SELECT name FROM items", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), format!("{a} item"));
    let err = ca
        .query(&*format!("SELECT name FROM {b}.items"), &[])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("permission denied")
            || format!("{err:?}").contains("permission denied"),
        "{err:?}"
    );
    // Clean's RESET ALL keeps the start-up search_path.
    drop(ca);
    let cb = pp.get(&b).await.unwrap();
    let rows = cb.query("SELECT name FROM items", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), format!("{b} item"));
    drop(cb);
    let ca = pp.get(&a).await.unwrap();
    let rows = ca.query("SELECT name FROM items", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, String>(0), format!("{a} item"));
    drop(ca);
    // Caps: 8 tasks per tenant; never more than 2 per tenant or 3 in all.
    let peak_a = Arc::new(AtomicU64::new(0));
    let peak_all = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let pp = pp.clone();
        let key = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (peak_a, peak_all) = (peak_a.clone(), peak_all.clone());
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let c = pp.get(&key).await.unwrap();
                c.query_one("SELECT pg_sleep(0.002)", &[]).await.unwrap();
                let sa = pp.stats(&a).map_or(0, |s| s.size) as u64;
                peak_a.fetch_max(sa, Ordering::Relaxed);
                peak_all.fetch_max(pp.global_size() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak_a.load(Ordering::Relaxed) <= 2);
    assert!(peak_all.load(Ordering::Relaxed) <= 3);
    let adm = admin(pg).await;
    let n: i64 = adm
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 OR usename = $2",
            &[&a, &b],
        )
        .await
        .unwrap()
        .get(0);
    assert!(n <= 3, "{n} server connections for the two tenants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_max_size_connections_and_none_after_close() {
    let Some(pg) = shared() else { return };
    let app = unique("cap_app");
    let pool = pool_of(pg, |f| f.application_name(&app), 8);
    let adm = admin(pg).await;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            let mut samples = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(count_app(&adm, &app).await);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (peak, samples, adm)
        })
    };
    let mut tasks = Vec::new();
    for t in 0..256i32 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..8i32 {
                let c = pool.get().await.unwrap();
                let r = c
                    .query_one_cached("SELECT $1::int4 + $2::int4", &[&t, &i])
                    .await
                    .unwrap();
                assert_eq!(r.get::<_, i32>(0), t + i);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (peak, samples, adm) = sampler.await.unwrap();
    assert!(samples > 3, "the sampler ran ({samples} samples)");
    assert!(
        (1..=8).contains(&peak),
        "peak {peak} connections for max_size 8"
    );
    pool.close();
    let t0 = Instant::now();
    loop {
        let n = count_app(&adm, &app).await;
        if n == 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{n} connections left after close()"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_a_checkout_costs_one_error_and_no_capacity() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f, 2);
    let adm = admin(pg).await;
    let c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    let pid = backend_pid(&c).await;
    let killed: bool = adm
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    let mut errors = 0;
    for _ in 0..3 {
        if c.query_one("SELECT 1", &[]).await.is_err() {
            errors += 1;
        }
    }
    assert!(errors >= 1, "the user sees the loss");
    drop(c);
    // Both slots serve again, with live connections.
    let (x, y) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    assert!(Pooled::id(&x) != id && Pooled::id(&y) != id);
    x.query_one("SELECT 1", &[]).await.unwrap();
    y.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(pool.stats().size, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hard_stop_under_load_then_a_restart() {
    let Some(pg) = own() else { return };
    let app = "hard_stop";
    let max = 6;
    let acquire_timeout = Duration::from_millis(800);
    let pool = PgFactory::new(pg.connection_string())
        .unwrap()
        .application_name(app)
        .into_pool_builder()
        .max_size(max)
        .acquire_timeout(acquire_timeout)
        .create_timeout(Duration::from_secs(2))
        .circuit_breaker(3, Duration::from_millis(300))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let errored: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let reused_broken = Arc::new(AtomicU64::new(0));
    let slowest_error = Arc::new(Mutex::new(Duration::ZERO));
    let circuit_open = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..16i32 {
        let pool = pool.clone();
        let (stop, errored, reused_broken, slowest_error, circuit_open, ok) = (
            stop.clone(),
            errored.clone(),
            reused_broken.clone(),
            slowest_error.clone(),
            circuit_open.clone(),
            ok.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match pool.get().await {
                    Ok(c) => {
                        let id = Pooled::id(&c);
                        if errored.lock().unwrap().contains(&id) {
                            reused_broken.fetch_add(1, Ordering::Relaxed);
                        }
                        let r = c.query_one_cached("SELECT $1::int4", &[&t]).await;
                        if r.is_ok() {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errored.lock().unwrap().insert(id);
                        }
                    }
                    Err(e) => {
                        let took = t0.elapsed();
                        {
                            let mut s = slowest_error.lock().unwrap();
                            *s = (*s).max(took);
                        }
                        if matches!(e, PoolError::CircuitOpen { .. }) {
                            circuit_open.fetch_add(1, Ordering::Relaxed);
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    let t0 = Instant::now();
    while ok.load(Ordering::Relaxed) < 50 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "serving before the stop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::task::block_in_place(|| pg.stop_immediate()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        circuit_open.load(Ordering::Relaxed) > 0,
        "the breaker opened while down"
    );
    let served_before = ok.load(Ordering::Relaxed);
    tokio::task::block_in_place(|| pg.restart()).unwrap();
    let restarted = Instant::now();
    while ok.load(Ordering::Relaxed) == served_before {
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "serving again within seconds of the restart"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let back_after = restarted.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        reused_broken.load(Ordering::Relaxed),
        0,
        "a broken connection was handed out again"
    );
    let slowest = *slowest_error.lock().unwrap();
    assert!(
        slowest < acquire_timeout + Duration::from_millis(700),
        "an error took {slowest:?} (acquire_timeout {acquire_timeout:?})"
    );
    let adm = admin(&pg).await;
    let n = count_app(&adm, app).await;
    assert!(n <= max as i64, "{n} connections for max_size {max}");
    eprintln!(
        "hard stop: serving again {back_after:?} after the restart; slowest error {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_keeps_the_connection_and_an_abandoned_copy_never_leaks() {
    use futures_util::SinkExt;
    let Some(pg) = shared() else { return };
    let t = unique("copy_in");
    setup_table(pg, &t).await;
    let adm = admin(pg).await;
    let pool = pool_of(pg, |f| f, 1);
    let c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    {
        let sink = c
            .copy_in::<_, std::io::Cursor<Vec<u8>>>(&*format!("COPY {t} FROM STDIN"))
            .await
            .unwrap();
        let mut sink = std::pin::pin!(sink);
        for i in 0..100 {
            let line = format!("{i}\trow {i}\n");
            sink.send(std::io::Cursor::new(line.into_bytes()))
                .await
                .unwrap();
        }
        assert_eq!(sink.as_mut().finish().await.unwrap(), 100);
    }
    drop(c);
    let c = pool.get().await.unwrap();
    assert_eq!(
        Pooled::id(&c),
        id,
        "a finished COPY leaves the connection reusable"
    );
    // A COPY abandoned half-way: the client sends CopyFail; whatever the pool decides, the
    // next user gets an idle session and none of the abandoned rows.
    {
        let sink = c
            .copy_in::<_, std::io::Cursor<Vec<u8>>>(&*format!("COPY {t} FROM STDIN"))
            .await
            .unwrap();
        let mut sink = std::pin::pin!(sink);
        sink.send(std::io::Cursor::new(b"1000\tabandoned\n".to_vec()))
            .await
            .unwrap();
    }
    drop(c);
    let c = pool.get().await.unwrap();
    let pid = backend_pid(&c).await;
    assert_eq!(state_of(&adm, pid).await, "idle");
    let n: i64 = c
        .query_one(&*format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
}

// ---- Promises the recycling and the statement cache make ----

/// A simple query that merely *starts* with `ROLLBACK` is no quick clean-up: a future
/// dropped while such a batch still runs leaves a query running on the server (here one
/// that opens a transaction). The docs: "a query still running on the server (a future
/// dropped mid-flight): destroyed"; the next user's autocommit work must commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_batch_starting_with_rollback_never_reaches_the_next_user() {
    let Some(pg) = shared() else { return };
    let t = unique("rollback_prefix");
    setup_table(pg, &t).await;
    let pool = pool_of(pg, |f| f, 1);
    let c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    let r = tokio::time::timeout(
        Duration::from_millis(200),
        c.batch_execute("ROLLBACK; BEGIN; SELECT pg_sleep(1)"),
    )
    .await;
    assert!(r.is_err(), "the batch was cancelled by the timeout");
    drop(c);
    let c = pool.get().await.unwrap();
    let same = Pooled::id(&c) == id;
    let n = tokio::time::timeout(
        Duration::from_secs(10),
        c.execute(&*format!("INSERT INTO {t} VALUES (1, 'committed?')"), &[]),
    )
    .await
    .expect("the insert answers")
    .unwrap();
    assert_eq!(n, 1);
    drop(c);
    let adm = admin(pg).await;
    let rows: i64 = adm
        .query_one(&*format!("SELECT count(*) FROM {t}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows, 1,
        "the next user's autocommit INSERT was swallowed by the previous user's BEGIN \
         (connection reused: {same})"
    );
}

/// Creates an enum type of its own and returns its name.
fn enum_type(pg: &EmbeddedPostgres) -> String {
    let ty = unique("hunt_mood");
    pg.psql(&format!("CREATE TYPE {ty} AS ENUM ('sad', 'ok', 'happy')"))
        .unwrap();
    ty
}

/// `Unnamed` and `Off` leave "nothing named on the server", also when a query's column
/// has a user-defined type (tokio-postgres then looks the type up with statements of its
/// own).
#[ignore = "open defect: tokio-postgres' type-lookup statements are named and cached by its client for life (run with --ignored)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_and_off_leave_no_statement_with_user_defined_types() {
    let Some(pg) = shared() else { return };
    for mode in [StatementCacheMode::Unnamed, StatementCacheMode::Off] {
        let ty = enum_type(pg);
        let pool = pool_of(pg, |f| f.statement_cache(mode), 1);
        let c = pool.get().await.unwrap();
        let rows = c
            .query_cached(
                &format!("SELECT 'happy'::{ty} AS m, $1::int4 AS n"),
                &[&1i32],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let n = simple(&c, "SELECT count(*) FROM pg_prepared_statements").await;
        let names = simple(
            &c,
            "SELECT coalesce(string_agg(left(statement, 40), ' | '), '') FROM pg_prepared_statements",
        )
        .await;
        assert_eq!(n, "0", "{mode:?} left statements on the server: {names}");
    }
}

/// `Custom(sql)` that deallocates: "if it deallocates statements, the cache is cleared", so
/// what runs after it works. With a user-defined type, tokio-postgres' own type-lookup
/// statements are deallocated too, and the next lookup fails for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deallocating_custom_recycle_keeps_user_defined_types_working() {
    let Some(pg) = shared() else { return };
    let (a, b) = (enum_type(pg), enum_type(pg));
    let pool = pool_of(
        pg,
        |f| f.recycling(RecyclingMethod::Custom("DISCARD ALL".into())),
        1,
    );
    let c = pool.get().await.unwrap();
    c.query_cached(&format!("SELECT 'ok'::{a}"), &[])
        .await
        .unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    let r = c.query_cached(&format!("SELECT 'ok'::{b}"), &[]).await;
    assert!(
        r.is_ok(),
        "after the recycling DISCARD ALL, a query with another user-defined type fails: {:?}",
        r.err()
            .map(|e| e.as_db_error().map(|d| d.message().to_owned()))
    );
    // The same for a DEALLOCATE ALL the user sends ("empties the cache").
    let (x, y) = (enum_type(pg), enum_type(pg));
    let pool = pool_of(pg, |f| f, 1);
    let c = pool.get().await.unwrap();
    c.query_cached(&format!("SELECT 'ok'::{x}"), &[])
        .await
        .unwrap();
    c.batch_execute("DEALLOCATE ALL").await.unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    let r = c.query_cached(&format!("SELECT 'ok'::{y}"), &[]).await;
    assert!(
        r.is_ok(),
        "a checkout after a DEALLOCATE ALL fails a query with another user-defined type: {:?}",
        r.err()
            .map(|e| e.as_db_error().map(|d| d.message().to_owned()))
    );
}

/// `Unnamed` through PgBouncer in transaction mode with user-defined types: tokio-postgres'
/// type-lookup statement is prepared on one server connection and reused on the next.
#[ignore = "open defect: tokio-postgres' type-lookup statements are named and cached by its client for life (run with --ignored)"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_through_pgbouncer_with_user_defined_types() {
    let Some(pg) = shared() else { return };
    let (a, b) = (enum_type(pg), enum_type(pg));
    let bouncer = match pg.pgbouncer("transaction", 4) {
        Ok(b) => b,
        Err(e) => {
            unavailable(e);
            return;
        }
    };
    let pool = PgFactory::new(bouncer.connection_string())
        .unwrap()
        .statement_cache(StatementCacheMode::Unnamed)
        .into_pool_builder()
        .max_size(1)
        .build()
        .unwrap();
    let c = pool.get().await.unwrap();
    c.query_one_cached(&format!("SELECT 'ok'::{a}, $1::int4"), &[&1i32])
        .await
        .unwrap();
    // Another client holds the server connection that served that transaction.
    let (other, conn) =
        tokio_postgres::connect(&bouncer.connection_string(), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    other.batch_execute("BEGIN; SELECT 1").await.unwrap();
    let r = c
        .query_one_cached(&format!("SELECT 'ok'::{b}, $1::int4"), &[&2i32])
        .await;
    other.batch_execute("COMMIT").await.unwrap();
    assert!(
        r.is_ok(),
        "a query with another user-defined type failed through PgBouncer: {:?}",
        r.err()
            .map(|e| e.as_db_error().map(|d| d.message().to_owned()))
    );
}

/// Fails unless at most `n` of three checkouts' uses failed (`failures`: their messages).
fn failed_at_most<E: std::fmt::Debug>(n: usize, failures: &[E]) {
    assert!(
        failures.len() <= n,
        "{} of 3 checkouts failed: {failures:?}",
        failures.len()
    );
}

// Sessions broken behind the pool's back: killed backends, unseen deallocations,
// statements re-planned by DDL, servers that accept and never answer.

/// A deallocation inside a multi-statement string drops tokio-postgres' own type-lookup
/// statements: the connection must not go back to the pool as healthy, so at most one
/// later query with a new user-defined type fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unseen_deallocate_costs_user_defined_types_one_use_at_most() {
    let Some(pg) = shared() else { return };
    let a = enum_type(pg);
    let pool = pool_of(pg, |f| f, 1);
    let c = pool.get().await.unwrap();
    c.query_cached(&format!("SELECT 'ok'::{a}"), &[])
        .await
        .unwrap();
    c.batch_execute("SELECT 1; DEALLOCATE ALL").await.unwrap();
    drop(c);
    let mut failures = Vec::new();
    for _ in 0..3 {
        let b = enum_type(pg);
        let c = pool.get().await.unwrap();
        if let Err(e) = c.query_cached(&format!("SELECT 'ok'::{b}"), &[]).await {
            failures.push(e.as_db_error().map(|d| d.message().to_owned()));
        }
    }
    failed_at_most(1, &failures);
}

/// `DEALLOCATE ALL` through the extended protocol empties the cache: `prepare_cached`
/// never hands out a statement the server dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deallocate_through_the_extended_protocol_empties_the_cache() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f, 1);
    let c = pool.get().await.unwrap();
    let st = c.prepare_cached("SELECT $1::int4 + 5").await.unwrap();
    drop(st);
    c.execute("DEALLOCATE ALL", &[]).await.unwrap();
    drop(c);
    let mut failures = Vec::new();
    for _ in 0..3 {
        let c = pool.get().await.unwrap();
        let st = c.prepare_cached("SELECT $1::int4 + 5").await.unwrap();
        if let Err(e) = c.query_one(&st, &[&1i32]).await {
            failures.push(format!(
                "{:?}",
                e.as_db_error().map(|d| d.message().to_owned())
            ));
        }
    }
    failed_at_most(0, &failures);
}

/// DDL that changes a cached statement's result type ("cached plan must not change
/// result type"): the `*_cached` helpers re-prepare and retry, so no use fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_that_changes_a_cached_result_type_is_re_prepared() {
    let Some(pg) = shared() else { return };
    let t = unique("pg_ddl");
    setup_table(pg, &t).await;
    pg.psql(&format!("INSERT INTO {t} VALUES (1, 'a')"))
        .unwrap();
    let pool = pool_of(pg, |f| f, 1);
    let q = format!("SELECT * FROM {t} WHERE id = $1");
    let c = pool.get().await.unwrap();
    c.query_cached(&q, &[&1i32]).await.unwrap();
    drop(c);
    pg.psql(&format!("ALTER TABLE {t} ADD COLUMN extra int"))
        .unwrap();
    let mut failures = Vec::new();
    for _ in 0..3 {
        let c = pool.get().await.unwrap();
        if let Err(e) = c.query_cached(&q, &[&1i32]).await {
            failures.push(e.as_db_error().map(|d| d.message().to_owned()));
        }
    }
    failed_at_most(0, &failures);
}

/// Backends of idle pooled connections killed: at most one failed use each (through
/// `try_get`, which runs no checkout step, and `get`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backends_killed_cost_one_use_each_at_most() {
    let Some(pg) = shared() else { return };
    let app = unique("pgkill");
    let pool = pool_of(pg, |f| f.application_name(&app), 2);
    pool.warm_up(2).await.unwrap();
    let adm = admin(pg).await;
    adm.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
    .await
    .unwrap();
    let mut failures = 0;
    for i in 0..4 {
        let c = if i % 2 == 0 {
            pool.try_get().ok()
        } else {
            None
        };
        let c = match c {
            Some(c) => c,
            None => pool.get().await.unwrap(),
        };
        if c.query_one("SELECT 1", &[]).await.is_err() {
            failures += 1;
        }
    }
    assert!(
        failures <= 2,
        "{failures} failed uses after killing 2 backends"
    );
}

/// A server that accepts TCP but never answers (a frozen postmaster, a black-holed
/// proxy): `connect_timeout` bounds the whole connect, so the caller gets
/// `PoolError::Create` (then `CircuitOpen`) rather than waiting out its acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_a_create_error_within_connect_timeout() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            h.lock().unwrap().push(s); // accept and say nothing
        }
    });
    let pool = PgFactory::new(format!(
        "host=127.0.0.1 port={port} user=x password=y connect_timeout=1"
    ))
    .unwrap()
    .into_pool_builder()
    .acquire_timeout(Duration::from_secs(4))
    .build()
    .unwrap();
    let t0 = Instant::now();
    let r = pool.get().await;
    let took = t0.elapsed();
    assert!(
        matches!(r, Err(PoolError::Create(_))),
        "got {:?} after {took:?}",
        r.err()
    );
}

/// Clean: session state a tenant-scoped app sets (custom GUC via set_config, SET ROLE,
/// SET SESSION AUTHORIZATION) does not reach the next user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_resets_role_authorization_and_custom_settings() {
    let Some(pg) = shared() else { return };
    let role = unique("tenant_role");
    pg.psql(&format!("CREATE ROLE {role}")).unwrap();
    let pool = pool_of(pg, |f| f.recycling(RecyclingMethod::Clean), 1);
    let c = pool.get().await.unwrap();
    let who0: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    c.batch_execute(&format!(
        "SELECT set_config('app.tenant', '42', false); SET ROLE {role}"
    ))
    .await
    .unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    let who: String = c
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    let t: Option<String> = c
        .query_one(
            "SELECT nullif(current_setting('app.tenant', true), '')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!((who.as_str(), t), (who0.as_str(), None));
    c.batch_execute(&format!("SET SESSION AUTHORIZATION {role}"))
        .await
        .unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    let who: String = c
        .query_one("SELECT session_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, who0);
}

/// A connection returned with a transaction open (so the next checkout settles it), whose
/// backend is then killed: the next `get()` hands out a fresh connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_killed_while_a_return_is_settling() {
    let Some(pg) = shared() else { return };
    for method in [
        RecyclingMethod::Fast,
        RecyclingMethod::Clean,
        RecyclingMethod::Verified,
    ] {
        let app = unique("pgsettle");
        let pool = pool_of(
            pg,
            |f| f.application_name(&app).recycling(method.clone()),
            1,
        );
        let c = pool.get().await.unwrap();
        c.batch_execute("BEGIN; SELECT 1").await.unwrap();
        let pid = backend_pid(&c).await;
        drop(c);
        let adm = admin(pg).await;
        adm.execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let r = pool.get().await;
        assert!(r.is_ok(), "{method:?}: get after the kill: {:?}", r.err());
        // (its first use may still fail once: the promise allows one failed use)
    }
}

/// Verified: kill the idle backend and check out at once: the checkout ping fails; the
/// caller gets a fresh connection, not an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_checkout_after_a_kill_gets_a_fresh_connection() {
    let Some(pg) = shared() else { return };
    let app = unique("pgver");
    let pool = pool_of(
        pg,
        |f| {
            f.application_name(&app)
                .recycling(RecyclingMethod::Verified)
        },
        1,
    );
    let mut errs = Vec::new();
    for _ in 0..5 {
        let c = pool.get().await.unwrap();
        let pid = backend_pid(&c).await;
        drop(c);
        let adm = admin(pg).await;
        adm.execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        match pool.get().await {
            Ok(c) => {
                if let Err(e) = c.query_one("SELECT 1", &[]).await {
                    errs.push(format!("use: {e}"));
                }
            }
            Err(e) => errs.push(format!("get: {e}")),
        }
    }
    assert!(errs.is_empty(), "{errs:?}");
}

/// One pooled connection, its backend killed while idle: "a backend killed under a
/// connection costs at most one failed use". Repeated to catch the race between the
/// FATAL error reaching the caller and the client noticing the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_costs_at_most_one_failed_use() {
    let Some(pg) = shared() else { return };
    let adm = admin(pg).await;
    let mut report = Vec::new();
    for round in 0..20 {
        let pool = pool_of(pg, |f| f, 1);
        let c = pool.get().await.unwrap();
        let pid = backend_pid(&c).await;
        drop(c);
        adm.execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
        let mut errs = Vec::new();
        for _ in 0..4 {
            let c = pool.get().await.unwrap();
            if let Err(e) = c.query_one("SELECT 1", &[]).await {
                errs.push(format!("{e} closed={}", c.is_closed()));
            }
        }
        if errs.len() > 1 {
            report.push(format!(
                "round {round}: {errs:?} created={}",
                pool.stats().created
            ));
        }
    }
    assert!(report.is_empty(), "{report:#?}");
}

/// Clean keeps its cache consistent with the server: a statement cached under a
/// `SET search_path` that Clean's reset undoes is re-planned against another table on the
/// next checkout, and the `*_cached` helpers re-prepare it rather than fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_re_prepares_a_statement_its_search_path_reset_re_planned() {
    let Some(pg) = shared() else { return };
    let schema = unique("pgs");
    let t = unique("pgt");
    pg.psql(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE public.{t} (x int); INSERT INTO public.{t} VALUES (1); \
         CREATE TABLE {schema}.{t} (x text, y int); INSERT INTO {schema}.{t} VALUES ('a', 2)"
    ))
    .unwrap();
    let pool = pool_of(pg, |f| f.recycling(RecyclingMethod::Clean), 1);
    let q = format!("SELECT * FROM {t}");
    let c = pool.get().await.unwrap();
    c.batch_execute(&format!("SET search_path = {schema}"))
        .await
        .unwrap();
    assert_eq!(c.query_cached(&q, &[]).await.unwrap()[0].len(), 2);
    drop(c);
    let mut failures = Vec::new();
    for _ in 0..3 {
        let c = pool.get().await.unwrap();
        match c.query_cached(&q, &[]).await {
            Ok(rows) => assert_eq!(rows[0].len(), 1, "public.{t} after the reset"),
            Err(e) => failures.push(e.as_db_error().map(|d| d.message().to_owned())),
        }
    }
    failed_at_most(0, &failures);
}

/// Clean after a session made itself read-only (and kept a temp table): the reset runs and
/// the next user gets a writable session, same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_after_read_only_session() {
    let Some(pg) = shared() else { return };
    let t = unique("pgro");
    setup_table(pg, &t).await;
    let pool = pool_of(pg, |f| f.recycling(RecyclingMethod::Clean), 1);
    let c = pool.get().await.unwrap();
    let id = Pooled::id(&c);
    c.batch_execute(
        "CREATE TEMP TABLE pg_ro_tmp (x int); SET default_transaction_read_only = on; \
         SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    )
    .await
    .unwrap();
    drop(c);
    let c = pool.get().await.unwrap();
    let r = c
        .execute(&format!("INSERT INTO {t} VALUES (1, 'x')") as &str, &[])
        .await;
    assert!(r.is_ok(), "{:?}", r.err());
    assert_eq!(Pooled::id(&c), id, "same connection, cleaned");
}

/// A transaction broken by an error, returned at once: the client returns at the
/// `ErrorResponse`, before the `ReadyForQuery` that says the block failed. The next user
/// must never land in the aborted transaction.
async fn failed_transaction_then_next_user(pool: &Pool<PgConn>, rounds: usize) -> Vec<String> {
    let mut bad = Vec::new();
    for round in 0..rounds {
        let c = pool.get().await.unwrap();
        assert!(c.batch_execute("BEGIN; SELECT 1/0").await.is_err());
        drop(c);
        let c = pool.get().await.unwrap();
        if let Err(e) = c.query_one("SELECT 1", &[]).await {
            bad.push(format!(
                "round {round}: {}",
                e.as_db_error()
                    .map_or(e.to_string(), |d| d.message().to_owned())
            ));
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_returned_at_its_error_never_reaches_the_next_user() {
    let Some(pg) = shared() else { return };
    let pool = pool_of(pg, |f| f, 1);
    let bad = failed_transaction_then_next_user(&pool, 200).await;
    assert!(bad.is_empty(), "{} of 200:\n{}", bad.len(), bad.join("\n"));
    let bouncer = pg.pgbouncer("transaction", 2).expect("pgbouncer");
    let pool = PgFactory::new(bouncer.connection_string())
        .unwrap()
        .statement_cache(StatementCacheMode::Unnamed)
        .into_pool_builder()
        .max_size(1)
        .build()
        .unwrap();
    let bad = failed_transaction_then_next_user(&pool, 50).await;
    assert!(
        bad.is_empty(),
        "through PgBouncer, {} of 50:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// A backend killed while its query runs: the user's query fails, and the connection is
/// never handed out again (the `FATAL` marks it as it is read, before the client notices
/// the close).
async fn killed_mid_query_then_next_user() {
    let Some(pg) = shared() else { return };
    let adm = admin(pg).await;
    let mut again = Vec::new();
    for round in 0..20 {
        let app = unique("killmid");
        let pool = pool_of(pg, |f| f.application_name(&app), 1);
        let c = pool.get().await.unwrap();
        let id = Pooled::id(&c);
        let q = c.query_one("SELECT pg_sleep(5)", &[]);
        let kill = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            adm.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap();
        };
        let (r, ()) = tokio::join!(q, kill);
        let e = r.expect_err("the query fails under the kill");
        drop(c);
        let c = pool.get().await.unwrap();
        if Pooled::id(&c) == id {
            let second = c
                .query_one("SELECT 1", &[])
                .await
                .err()
                .map(|e| e.to_string());
            again.push(format!(
                "round {round}: first {e:?}; handed out again: {second:?}"
            ));
        }
    }
    assert!(
        again.is_empty(),
        "{} of 20:\n{}",
        again.len(),
        again.join("\n")
    );
}

#[tokio::test]
async fn a_connection_killed_mid_query_is_never_handed_out_again() {
    killed_mid_query_then_next_user().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_query_is_never_handed_out_again_multi_thread() {
    killed_mid_query_then_next_user().await;
}

/// A `prepare_cached` future dropped after the server answered its `Parse`, but before it
/// was polled again, never built the `Statement` whose drop closes the server's copy: the
/// return must not leave that statement on the session (it would stay for the
/// connection's whole life, one per abandoned call). The connection is kept, except in
/// `Unnamed` mode, which never deallocates a session's statements wholesale and replaces
/// it instead. On a current-thread runtime, so the connection's driver cannot answer before the first
/// poll ends.
#[tokio::test]
async fn a_prepare_abandoned_after_the_server_answered_leaves_no_statement() {
    use std::future::Future;
    use std::task::Poll;
    let Some(pg) = shared() else { return };
    for mode in [
        StatementCacheMode::Named,
        StatementCacheMode::Off,
        StatementCacheMode::Unnamed,
    ] {
        let pool = pool_of(pg, |f| f.statement_cache(mode), 1);
        let c = pool.get().await.unwrap();
        let pid = backend_pid(&c).await;
        let kept = c.prepare_cached("SELECT 1::int4").await.unwrap();
        drop(kept);
        for i in 0..3 {
            let q = format!("SELECT {i}::int4 + 100");
            let mut fut = Box::pin(c.prepare_cached(&q));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = fut.as_mut().poll(cx) {
                    panic!("{mode:?} {i}: ready at the first poll: {r:?}");
                }
                Poll::Ready(())
            })
            .await;
            // The server answers; the abandoned future never reads it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(fut);
        }
        drop(c);
        let replaced = mode == StatementCacheMode::Unnamed;
        if !replaced {
            // At once, with no checkout step to wait for the `DEALLOCATE ALL` to be
            // written: the cache is empty already, so the statement is prepared anew.
            let c = pool.try_get().unwrap();
            let st = c.prepare_cached("SELECT 1::int4").await.unwrap();
            let one: i32 = c.query_one(&st, &[]).await.unwrap().get(0);
            assert_eq!(one, 1, "{mode:?}");
        }
        let c = pool.get().await.unwrap();
        assert_eq!(backend_pid(&c).await != pid, replaced, "{mode:?}");
        let left = simple(
            &c,
            "SELECT coalesce(string_agg(statement, ' | ' ORDER BY statement), '') \
             FROM pg_prepared_statements",
        )
        .await;
        assert!(
            !left.contains("+ 100"),
            "{mode:?}: abandoned statements left: {left}"
        );
        // The cache works on afterwards.
        let st = c.prepare_cached("SELECT $1::int4 + 1").await.unwrap();
        let row = c.query_one(&st, &[&1i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
    }
}
