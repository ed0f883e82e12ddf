//! A pgbench-like TPC-B mix on a pool of PostgreSQL connections.
//!
//! ```text
//! cargo run --release -p riptide-adapters --features postgres --example pgbench
//! cargo run --release -p riptide-adapters --features postgres --example pgbench -- --tasks 256 --pool 16 --seconds 20
//! cargo run --release -p riptide-adapters --features postgres --example pgbench -- --compare
//! ```
//!
//! With `DATABASE_URL` set it uses that server (creating and dropping its own
//! `riptide_pgbench_*` tables); without, it starts the embedded throw-away server
//! (`riptide_adapters::postgres::embedded`, the machine's PostgreSQL binaries), so it runs
//! on a fresh machine with no set-up.
//!
//! Each transaction is pgbench's built-in TPC-B-like script (update an account, read it
//! back, update a teller and a branch, insert a history row, commit) with cached prepared
//! statements; its latency counts from `get()` to commit. `--compare` runs the same mix,
//! on the same server, through RipTide, deadpool-postgres and bb8-postgres at 8, 64 and 256
//! tasks on pools of 8 and 16 (rounds interleaved, medians reported), then a `SELECT 1`
//! round trip and the statement cache against a prepare per call on a planning-heavy query.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use riptide_adapters::postgres::embedded::EmbeddedPostgres;
use riptide_adapters::postgres::tokio_postgres::{self, Client, NoTls, Statement, Transaction};
use riptide_adapters::postgres::{PgConn, PgFactory, StatementCacheMode};
use riptide_pool::Pool;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    tasks: usize,
    pool: usize,
    seconds: f64,
    scale: u32,
    compare: bool,
    /// `--compare` sections: tpcb, select1, cache.
    sections: Vec<String>,
    sizes: Vec<usize>,
    task_counts: Vec<usize>,
    libs: Vec<&'static str>,
    rounds: usize,
    cell_seconds: f64,
}

fn args() -> Result<Args, BoxError> {
    let mut a = Args {
        tasks: 64,
        pool: 16,
        seconds: 10.0,
        scale: 10,
        compare: false,
        sections: vec!["tpcb".into(), "select1".into(), "cache".into()],
        sizes: vec![8, 16],
        task_counts: vec![8, 64, 256],
        libs: vec!["riptide", "deadpool", "bb8"],
        rounds: 3,
        cell_seconds: 3.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--tasks" => a.tasks = v()?.parse()?,
            "--pool" => a.pool = v()?.parse()?,
            "--seconds" => a.seconds = v()?.parse()?,
            "--scale" => a.scale = v()?.parse()?,
            "--rounds" => a.rounds = v()?.parse()?,
            "--cell-seconds" => a.cell_seconds = v()?.parse()?,
            "--compare" => a.compare = true,
            "--only" => a.sections = v()?.split(',').map(str::to_owned).collect(),
            "--pools" => a.sizes = list(&v()?)?,
            "--task-counts" => a.task_counts = list(&v()?)?,
            "--libs" => {
                a.libs = v()?
                    .split(',')
                    .map(|l| match l.trim() {
                        "riptide" => Ok("riptide"),
                        "deadpool" => Ok("deadpool"),
                        "bb8" => Ok("bb8"),
                        other => Err(format!("unknown library {other} (riptide, deadpool, bb8)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!(
                    "pgbench [--tasks N] [--pool N] [--seconds S] [--scale N] \
                     [--compare [--rounds N] [--cell-seconds S] [--only tpcb,select1,cache] \
                     [--pools 8,16] [--task-counts 8,64,256] [--libs riptide,deadpool,bb8]]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.sizes.contains(&0) || a.task_counts.contains(&0) {
        return Err("--pools and --task-counts take positive numbers".into());
    }
    if a.tasks == 0 || a.pool == 0 || a.scale == 0 || a.rounds == 0 {
        return Err("--tasks, --pool, --scale and --rounds must be at least 1".into());
    }
    if !(a.seconds > 0.0 && a.cell_seconds > 0.0) {
        return Err("--seconds and --cell-seconds must be positive".into());
    }
    Ok(a)
}

fn list(v: &str) -> Result<Vec<usize>, BoxError> {
    v.split(',')
        .map(|x| x.trim().parse::<usize>().map_err(Into::into))
        .collect()
}

const ACCOUNTS_PER_BRANCH: i32 = 100_000;
const TELLERS_PER_BRANCH: i32 = 10;

const UPD_ACCOUNT: &str =
    "UPDATE riptide_pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2";
const SEL_ACCOUNT: &str = "SELECT abalance FROM riptide_pgbench_accounts WHERE aid = $1";
const UPD_TELLER: &str =
    "UPDATE riptide_pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2";
const UPD_BRANCH: &str =
    "UPDATE riptide_pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2";
const INS_HISTORY: &str = "INSERT INTO riptide_pgbench_history (tid, bid, aid, delta, mtime) \
                           VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)";
const SQL: [&str; 5] = [
    UPD_ACCOUNT,
    SEL_ACCOUNT,
    UPD_TELLER,
    UPD_BRANCH,
    INS_HISTORY,
];

/// A query whose planning costs far more than its execution: an eight-way join the
/// planner searches exhaustively, answered from primary-key lookups.
const PLAN_HEAVY: &str = "SELECT a.abalance + t1.tbalance + t2.tbalance + t3.tbalance + b1.bbalance + b2.bbalance \
     + b3.bbalance + h.cnt FROM riptide_pgbench_accounts a \
     JOIN riptide_pgbench_branches b1 ON b1.bid = a.bid \
     JOIN riptide_pgbench_tellers t1 ON t1.bid = b1.bid AND t1.tid = (b1.bid - 1) * 10 + 1 \
     JOIN riptide_pgbench_branches b2 ON b2.bid = t1.bid \
     JOIN riptide_pgbench_tellers t2 ON t2.bid = b2.bid AND t2.tid = (b2.bid - 1) * 10 + 2 \
     JOIN riptide_pgbench_branches b3 ON b3.bid = t2.bid \
     JOIN riptide_pgbench_tellers t3 ON t3.bid = b3.bid AND t3.tid = (b3.bid - 1) * 10 + 3 \
     CROSS JOIN LATERAL (SELECT count(*) AS cnt FROM riptide_pgbench_branches x WHERE x.bid = b3.bid) h \
     WHERE a.aid = $1";

/// A small fast random generator per task (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i32) -> i32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as i32
    }
}

#[derive(Clone, Copy)]
struct Scale(i32);

struct Params {
    aid: i32,
    bid: i32,
    tid: i32,
    delta: i32,
}

impl Scale {
    fn draw(self, rng: &mut Rng) -> Params {
        Params {
            aid: 1 + rng.below(ACCOUNTS_PER_BRANCH * self.0),
            bid: 1 + rng.below(self.0),
            tid: 1 + rng.below(TELLERS_PER_BRANCH * self.0),
            delta: rng.below(10_001) - 5000,
        }
    }
}

/// The TPC-B-like script inside an open transaction.
async fn tpcb(tx: &Transaction<'_>, st: &[Statement], p: &Params) -> Result<(), BoxError> {
    tx.execute(&st[0], &[&p.delta, &p.aid]).await?;
    let row = tx.query_one(&st[1], &[&p.aid]).await?;
    let _balance: i32 = row.get(0);
    tx.execute(&st[2], &[&p.delta, &p.tid]).await?;
    tx.execute(&st[3], &[&p.delta, &p.bid]).await?;
    tx.execute(&st[4], &[&p.tid, &p.bid, &p.aid, &p.delta])
        .await?;
    Ok(())
}

async fn init(client: &Client, scale: i32) -> Result<(), BoxError> {
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS riptide_pgbench_accounts, riptide_pgbench_branches, \
               riptide_pgbench_tellers, riptide_pgbench_history;
             CREATE TABLE riptide_pgbench_branches (bid int PRIMARY KEY, bbalance int NOT NULL, filler char(88));
             CREATE TABLE riptide_pgbench_tellers (tid int PRIMARY KEY, bid int NOT NULL, tbalance int NOT NULL, filler char(84));
             CREATE TABLE riptide_pgbench_accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84));
             CREATE TABLE riptide_pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));
             INSERT INTO riptide_pgbench_branches SELECT b, 0 FROM generate_series(1, {scale}) b;
             INSERT INTO riptide_pgbench_tellers SELECT t, (t - 1) / {tpb} + 1, 0 FROM generate_series(1, {tellers}) t;
             INSERT INTO riptide_pgbench_accounts SELECT a, (a - 1) / {apb} + 1, 0 FROM generate_series(1, {accounts}) a;",
            tpb = TELLERS_PER_BRANCH,
            apb = ACCOUNTS_PER_BRANCH,
            tellers = TELLERS_PER_BRANCH * scale,
            accounts = ACCOUNTS_PER_BRANCH * scale,
        ))
        .await?;
    client
        .batch_execute(
            "VACUUM ANALYZE riptide_pgbench_branches, riptide_pgbench_tellers, \
             riptide_pgbench_accounts, riptide_pgbench_history",
        )
        .await?;
    Ok(())
}

/// Latencies in microseconds, sorted; percentiles by nearest rank.
struct Lat(Vec<u32>);

impl Lat {
    fn new(mut v: Vec<u32>) -> Self {
        v.sort_unstable();
        Lat(v)
    }
    fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let i = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        Duration::from_micros(u64::from(self.0[i.clamp(1, self.0.len()) - 1]))
    }
}

fn us(d: Duration) -> u32 {
    d.as_micros().min(u128::from(u32::MAX)) as u32
}

/// One measured run: `tasks` tasks each looping `op` (which returns its wait and total
/// time) for `secs` seconds after a warm-up.
struct RunResult {
    tps: f64,
    lat: Lat,
    wait: Lat,
    errors: u64,
    /// This process's CPU time (all threads; the server is another process) per operation
    /// completed in the window: what the client side costs, pool and driver included.
    cpu_us: f64,
}

/// CPU time used by this process so far (user + system, all threads).
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

async fn run_load<F, Fut>(
    tasks: usize,
    warmup: Duration,
    secs: Duration,
    progress: Option<&ProgressBar>,
    op: F,
) -> RunResult
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(Duration, Duration), BoxError>> + Send + 'static,
{
    // One boxed future per operation (the same for every pool): the load loop below is
    // compiled once instead of once per pool and case.
    let op: Op = Arc::new(move |seed| Box::pin(op(seed)));
    run_load_dyn(tasks, warmup, secs, progress, op).await
}

type Op = Arc<
    dyn Fn(
            u64,
        )
            -> std::pin::Pin<Box<dyn Future<Output = Result<(Duration, Duration), BoxError>> + Send>>
        + Send
        + Sync,
>;

async fn run_load_dyn(
    tasks: usize,
    warmup: Duration,
    secs: Duration,
    progress: Option<&ProgressBar>,
    op: Op,
) -> RunResult {
    let measuring = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (op, measuring, ended, stop, done, errors) = (
            op.clone(),
            measuring.clone(),
            ended.clone(),
            stop.clone(),
            done.clone(),
            errors.clone(),
        );
        handles.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut wait = Vec::new();
            let mut seed =
                0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            while !stop.load(Ordering::Relaxed) {
                seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                // Every operation that overlaps the window is recorded, even one that
                // started before it or ends after it: a caller the pool starves shows up
                // with its whole wait.
                let before_end = !ended.load(Ordering::Relaxed);
                match op(seed).await {
                    Ok((w, total)) => {
                        if before_end
                            && (measuring.load(Ordering::Relaxed) || ended.load(Ordering::Relaxed))
                        {
                            lat.push(us(total));
                            wait.push(us(w));
                        }
                        if measuring.load(Ordering::Relaxed) {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("transaction failed: {e}");
                        }
                    }
                }
            }
            (lat, wait)
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    while t0.elapsed() < secs {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(pb) = progress {
            let n = done.load(Ordering::Relaxed);
            pb.set_position(t0.elapsed().as_millis().min(secs.as_millis()) as u64);
            pb.set_message(format!(
                "{n} transactions, {:.0} TPS",
                n as f64 / t0.elapsed().as_secs_f64()
            ));
        }
    }
    ended.store(true, Ordering::Relaxed);
    let cpu = process_cpu().saturating_sub(cpu0);
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    let mut wait = Vec::new();
    for h in handles {
        let (l, w) = h.await.expect("load task");
        lat.extend(l);
        wait.extend(w);
    }
    RunResult {
        tps: done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        lat: Lat::new(lat),
        wait: Lat::new(wait),
        errors: errors.load(Ordering::Relaxed),
        cpu_us: cpu.as_secs_f64() * 1e6 / done.load(Ordering::Relaxed).max(1) as f64,
    }
}

// ---- the three pools -------------------------------------------------------------------

fn riptide_pool(
    url: &(impl Target + ?Sized),
    size: usize,
    mode: StatementCacheMode,
) -> Result<Pool<PgConn>, BoxError> {
    Ok(riptide_factory(url, mode)?
        .into_pool_builder()
        .max_size(size)
        .acquire_timeout(Duration::from_secs(60))
        .build()?)
}

/// Connection settings for the comparison: every pool gets the same `tokio_postgres::Config`.
struct PlainUrl(tokio_postgres::Config);

/// Where a pool connects: the user's string (pgbench) or the comparison's plain config.
trait Target {
    fn config(&self) -> Result<tokio_postgres::Config, BoxError>;
    fn factory(&self) -> Result<PgFactory, BoxError>;
}

impl Target for str {
    fn config(&self) -> Result<tokio_postgres::Config, BoxError> {
        Ok(self.parse()?)
    }
    fn factory(&self) -> Result<PgFactory, BoxError> {
        Ok(PgFactory::new(self)?)
    }
}

impl Target for PlainUrl {
    fn config(&self) -> Result<tokio_postgres::Config, BoxError> {
        Ok(self.0.clone())
    }
    fn factory(&self) -> Result<PgFactory, BoxError> {
        Ok(PgFactory::from_config(self.0.clone())?)
    }
}

fn riptide_factory(
    url: &(impl Target + ?Sized),
    mode: StatementCacheMode,
) -> Result<PgFactory, BoxError> {
    Ok(url
        .factory()?
        .statement_cache(mode)
        .application_name("riptide-pgbench"))
}

async fn riptide_tx(
    pool: &Pool<PgConn>,
    scale: Scale,
    seed: u64,
) -> Result<(Duration, Duration), BoxError> {
    let t0 = Instant::now();
    let mut c = pool.get().await?;
    let waited = t0.elapsed();
    let mut st = Vec::with_capacity(5);
    for q in SQL {
        st.push(c.prepare_cached(q).await?);
    }
    let p = scale.draw(&mut Rng(seed | 1));
    let tx = c.transaction().await?;
    tpcb(&tx, &st, &p).await?;
    tx.commit().await?;
    drop(c);
    Ok((waited, t0.elapsed()))
}

fn deadpool_pool(
    url: &(impl Target + ?Sized),
    size: usize,
) -> Result<deadpool_postgres::Pool, BoxError> {
    let cfg = url.config()?;
    let mgr = deadpool_postgres::Manager::from_config(
        cfg,
        NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    Ok(deadpool_postgres::Pool::builder(mgr)
        .max_size(size)
        .build()?)
}

async fn deadpool_tx(
    pool: &deadpool_postgres::Pool,
    scale: Scale,
    seed: u64,
) -> Result<(Duration, Duration), BoxError> {
    let t0 = Instant::now();
    let mut c = pool.get().await?;
    let waited = t0.elapsed();
    let mut st = Vec::with_capacity(5);
    for q in SQL {
        st.push(c.prepare_cached(q).await?);
    }
    let p = scale.draw(&mut Rng(seed | 1));
    let tx = c.transaction().await?;
    tpcb(&tx, &st, &p).await?;
    tx.commit().await?;
    drop(c);
    Ok((waited, t0.elapsed()))
}

/// bb8-postgres has no statement cache: this manager keeps one per connection (what a bb8
/// user writes), so all three pools run the same statements the same way.
struct Bb8Manager(bb8_postgres::PostgresConnectionManager<NoTls>);

struct Bb8Conn {
    client: Client,
    cache: HashMap<&'static str, Statement>,
}

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Bb8Conn;
    type Error = tokio_postgres::Error;
    async fn connect(&self) -> Result<Bb8Conn, tokio_postgres::Error> {
        Ok(Bb8Conn {
            client: self.0.connect().await?,
            cache: HashMap::new(),
        })
    }
    async fn is_valid(&self, conn: &mut Bb8Conn) -> Result<(), tokio_postgres::Error> {
        self.0.is_valid(&mut conn.client).await
    }
    fn has_broken(&self, conn: &mut Bb8Conn) -> bool {
        conn.client.is_closed()
    }
}

async fn bb8_pool(
    url: &(impl Target + ?Sized),
    size: usize,
) -> Result<bb8::Pool<Bb8Manager>, BoxError> {
    let mgr = bb8_postgres::PostgresConnectionManager::new(url.config()?, NoTls);
    Ok(bb8::Pool::builder()
        .max_size(size as u32)
        // Like the others' default recycling: no round trip at checkout.
        .test_on_check_out(false)
        .connection_timeout(Duration::from_secs(60))
        .build(Bb8Manager(mgr))
        .await?)
}

async fn bb8_tx(
    pool: &bb8::Pool<Bb8Manager>,
    scale: Scale,
    seed: u64,
) -> Result<(Duration, Duration), BoxError> {
    let t0 = Instant::now();
    let mut c = pool.get().await.map_err(|e| format!("{e:?}"))?;
    let waited = t0.elapsed();
    let mut st = Vec::with_capacity(5);
    for q in SQL {
        let s = match c.cache.get(q) {
            Some(s) => s.clone(),
            None => {
                let s = c.client.prepare(q).await?;
                c.cache.insert(q, s.clone());
                s
            }
        };
        st.push(s);
    }
    let p = scale.draw(&mut Rng(seed | 1));
    let tx = c.client.transaction().await?;
    tpcb(&tx, &st, &p).await?;
    tx.commit().await?;
    drop(c);
    Ok((waited, t0.elapsed()))
}

// ---- main ------------------------------------------------------------------------------

fn bar(len: u64, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() -> Result<(), BoxError> {
    let a = args()?;
    // The server (when embedded) outlives the runtime and every pool.
    let (url, _server) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => (url, None),
        _ => {
            eprintln!("DATABASE_URL is not set: starting the embedded PostgreSQL server…");
            let pg = EmbeddedPostgres::builder().max_connections(300).start()?;
            eprintln!(
                "embedded server on 127.0.0.1:{} (fsync off; removed at exit)",
                pg.port()
            );
            (pg.connection_string(), Some(pg))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await?;
        tokio::spawn(conn);
        let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
        eprintln!(
            "initialising scale {} ({} accounts) on PostgreSQL {version}…",
            a.scale,
            ACCOUNTS_PER_BRANCH as u64 * u64::from(a.scale)
        );
        init(&client, a.scale as i32).await?;
        let out = if a.compare {
            compare(&url, &a).await
        } else {
            bench(&url, &a).await
        };
        client
            .batch_execute(
                "DROP TABLE IF EXISTS riptide_pgbench_accounts, riptide_pgbench_branches, \
                 riptide_pgbench_tellers, riptide_pgbench_history",
            )
            .await?;
        out
    })
}

async fn bench(url: &str, a: &Args) -> Result<(), BoxError> {
    let factory = riptide_factory(url, StatementCacheMode::Named)?;
    let metrics = factory.metrics();
    let pool = factory
        .into_pool_builder()
        .max_size(a.pool)
        .acquire_timeout(Duration::from_secs(60))
        .build()?;
    let scale = Scale(a.scale as i32);
    let secs = Duration::from_secs_f64(a.seconds);
    let pb = bar(
        secs.as_millis() as u64,
        "{spinner} [{elapsed_precise}] [{bar:40}] {msg}",
    );
    let p2 = pool.clone();
    let r = run_load(
        a.tasks,
        Duration::from_millis(500),
        secs,
        Some(&pb),
        move |seed| {
            let p = p2.clone();
            async move { riptide_tx(&p, scale, seed).await }
        },
    )
    .await;
    pb.finish_and_clear();
    println!(
        "pgbench (TPC-B-like), RipTide pool of {} connections, {} tasks, {:.0} s, scale {}",
        a.pool, a.tasks, a.seconds, a.scale
    );
    println!("  transactions per second: {:.0}", r.tps);
    println!(
        "  latency (get() to commit): p50 {} ms, p99 {} ms, p99.9 {} ms",
        ms(r.lat.pct(50.0)),
        ms(r.lat.pct(99.0)),
        ms(r.lat.pct(99.9))
    );
    println!(
        "  wait for a connection: p50 {} ms, p99 {} ms",
        ms(r.wait.pct(50.0)),
        ms(r.wait.pct(99.0))
    );
    println!("  failed transactions: {}", r.errors);
    let s = pool.stats();
    println!(
        "  pool: size {} (max {}), idle {}, in use {}, created {}, destroyed {}, acquired {}, timeouts {}, wait p50/p95/p99 {:?}/{:?}/{:?}",
        s.size, s.max_size, s.idle, s.in_use, s.created, s.destroyed, s.acquired, s.timeouts,
        s.wait_p50, s.wait_p95, s.wait_p99
    );
    let m = metrics.snapshot();
    println!(
        "  connections: opened {}, statement cache hits {} / misses {} / evictions {}, \
         rollbacks at return {}, destroyed at return {}, failed checkout checks {}, \
         checkout round trips {}",
        m.connections_opened,
        m.cache_hits,
        m.cache_misses,
        m.cache_evictions,
        m.rollbacks_on_return,
        m.discarded_on_return,
        m.recycle_failures,
        m.settle_round_trips
    );
    Ok(())
}

struct Cell {
    lib: &'static str,
    pool: usize,
    tasks: usize,
    tps: Vec<f64>,
    p50: Vec<Duration>,
    p99: Vec<Duration>,
    p999: Vec<Duration>,
    wait99: Vec<Duration>,
    cpu: Vec<f64>,
    errors: u64,
}

/// Per round: throughput, p50, p99, client CPU µs per operation.
type Samples = (Vec<f64>, Vec<Duration>, Vec<Duration>, Vec<f64>);

fn median<T: Copy + PartialOrd>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

async fn compare(url: &str, a: &Args) -> Result<(), BoxError> {
    // The peers connect with `NoTls`: every pool runs in plain text, so none pays for TLS
    // the others do not.
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| {
        format!("--compare needs a plain-text DATABASE_URL (sslmode disable/prefer): {e}")
    })?;
    if cfg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err("--compare runs every pool without TLS: use sslmode=disable or prefer".into());
    }
    cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
    let plain = PlainUrl(cfg);
    let url = &plain;
    let scale = Scale(a.scale as i32);
    let libs: &[&'static str] = &a.libs;
    let sizes = if a.sections.iter().any(|x| x == "tpcb") {
        a.sizes.clone()
    } else {
        vec![]
    };
    let task_counts = a.task_counts.clone();
    let cell = Duration::from_secs_f64(a.cell_seconds);
    let warm = Duration::from_millis(300);
    let mut cells: Vec<Cell> = Vec::new();
    for &pool in &sizes {
        for &tasks in &task_counts {
            for lib in libs {
                cells.push(Cell {
                    lib,
                    pool,
                    tasks,
                    tps: vec![],
                    p50: vec![],
                    p99: vec![],
                    p999: vec![],
                    wait99: vec![],
                    cpu: vec![],
                    errors: 0,
                });
            }
        }
    }
    let total = (cells.len() * a.rounds) as u64;
    let pb = bar(
        total,
        "{spinner} [{elapsed_precise}] [{bar:40}] {pos}/{len} {msg}",
    );
    for round in 0..a.rounds {
        for group in cells.chunks_mut(libs.len()) {
            // The three libraries of a cell back to back, in a rotating order.
            for k in 0..group.len() {
                let c = &mut group[(k + round) % libs.len()];
                pb.set_message(format!(
                    "round {} {} pool {} tasks {}",
                    round + 1,
                    c.lib,
                    c.pool,
                    c.tasks
                ));
                let r = match c.lib {
                    "riptide" => {
                        let p = riptide_pool(url, c.pool, StatementCacheMode::Named)?;
                        let p2 = p.clone();
                        let r = run_load(c.tasks, warm, cell, None, move |seed| {
                            let p = p2.clone();
                            async move { riptide_tx(&p, scale, seed).await }
                        })
                        .await;
                        p.close();
                        r
                    }
                    "deadpool" => {
                        let p = deadpool_pool(url, c.pool)?;
                        let p2 = p.clone();
                        let r = run_load(c.tasks, warm, cell, None, move |seed| {
                            let p = p2.clone();
                            async move { deadpool_tx(&p, scale, seed).await }
                        })
                        .await;
                        p.close();
                        r
                    }
                    _ => {
                        let p = bb8_pool(url, c.pool).await?;
                        let p2 = p.clone();
                        run_load(c.tasks, warm, cell, None, move |seed| {
                            let p = p2.clone();
                            async move { bb8_tx(&p, scale, seed).await }
                        })
                        .await
                    }
                };
                c.tps.push(r.tps);
                c.p50.push(r.lat.pct(50.0));
                c.p99.push(r.lat.pct(99.0));
                c.p999.push(r.lat.pct(99.9));
                c.wait99.push(r.wait.pct(99.0));
                c.cpu.push(r.cpu_us);
                c.errors += r.errors;
                pb.inc(1);
                // Let the server's connections from this run go before the next.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    pb.finish_and_clear();
    if !cells.is_empty() {
        print_cells(a, &cells);
    }
    if a.sections.iter().any(|x| x == "select1") {
        select1(url, a, libs, warm, cell).await?;
    }
    if a.sections.iter().any(|x| x == "cache") {
        cache(url, a, scale, warm, cell).await?;
    }
    Ok(())
}

fn print_cells(a: &Args, cells: &[Cell]) {
    println!(
        "TPC-B-like mix, scale {}, {} rounds of {:.0} s per cell (medians), same server and workload",
        a.scale, a.rounds, a.cell_seconds
    );
    println!();
    println!(
        "| pool | tasks | library | TPS | TPS range | p50 ms | p99 ms | p99.9 ms | wait p99 ms | client CPU µs/tx | errors |"
    );
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for c in cells {
        let lo = c.tps.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = c.tps.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {} | {} | {:.0} | {:.0}–{:.0} | {} | {} | {} | {} | {:.0} | {} |",
            c.pool,
            c.tasks,
            c.lib,
            median(&c.tps),
            lo,
            hi,
            ms(median(&c.p50)),
            ms(median(&c.p99)),
            ms(median(&c.p999)),
            ms(median(&c.wait99)),
            median(&c.cpu),
            c.errors
        );
    }
}

async fn select1(
    url: &PlainUrl,
    a: &Args,
    libs: &[&'static str],
    warm: Duration,
    cell: Duration,
) -> Result<(), BoxError> {
    println!();
    println!(
        "`SELECT 1` (get + cached statement + return), medians of {} rounds:",
        a.rounds
    );
    println!();
    println!("| tasks / pool | library | queries/s | p50 ms | p99 ms | client CPU µs/query |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (tasks, size) in [(1usize, 1usize), (64, 16)] {
        let mut sel: HashMap<&str, Samples> = HashMap::new();
        for round in 0..a.rounds {
            for k in 0..libs.len() {
                let lib = libs[(k + round) % libs.len()];
                let r = match lib {
                    "riptide" => {
                        let p = riptide_pool(url, size, StatementCacheMode::Named)?;
                        let p2 = p.clone();
                        run_load(tasks, warm, cell, None, move |_| {
                            let p = p2.clone();
                            async move {
                                let t0 = Instant::now();
                                let c = p.get().await?;
                                let w = t0.elapsed();
                                let st = c.prepare_cached("SELECT 1").await?;
                                c.query_one(&st, &[]).await?;
                                Ok((w, t0.elapsed()))
                            }
                        })
                        .await
                    }
                    "deadpool" => {
                        let p = deadpool_pool(url, size)?;
                        let p2 = p.clone();
                        run_load(tasks, warm, cell, None, move |_| {
                            let p = p2.clone();
                            async move {
                                let t0 = Instant::now();
                                let c = p.get().await?;
                                let w = t0.elapsed();
                                let st = c.prepare_cached("SELECT 1").await?;
                                c.query_one(&st, &[]).await?;
                                Ok((w, t0.elapsed()))
                            }
                        })
                        .await
                    }
                    _ => {
                        let p = bb8_pool(url, size).await?;
                        let p2 = p.clone();
                        run_load(tasks, warm, cell, None, move |_| {
                            let p = p2.clone();
                            async move {
                                let t0 = Instant::now();
                                let mut c = p.get().await.map_err(|e| format!("{e:?}"))?;
                                let w = t0.elapsed();
                                let st = match c.cache.get("SELECT 1") {
                                    Some(s) => s.clone(),
                                    None => {
                                        let s = c.client.prepare("SELECT 1").await?;
                                        c.cache.insert("SELECT 1", s.clone());
                                        s
                                    }
                                };
                                c.client.query_one(&st, &[]).await?;
                                Ok((w, t0.elapsed()))
                            }
                        })
                        .await
                    }
                };
                let e = sel.entry(lib).or_default();
                e.0.push(r.tps);
                e.1.push(r.lat.pct(50.0));
                e.2.push(r.lat.pct(99.0));
                e.3.push(r.cpu_us);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for lib in libs {
            let (t, p50, p99, cpu) = &sel[lib];
            println!(
                "| {tasks} / {size} | {lib} | {:.0} | {} | {} | {:.1} |",
                median(t),
                ms(median(p50)),
                ms(median(p99)),
                median(cpu)
            );
        }
    }
    Ok(())
}

async fn cache(
    url: &PlainUrl,
    a: &Args,
    scale: Scale,
    warm: Duration,
    cell: Duration,
) -> Result<(), BoxError> {
    // The statement cache (Named) against a prepare per call (Off), 8 tasks on a pool of
    // 8: on the planning-heavy query, and on the mix's primary-key lookup.
    println!();
    println!(
        "Statement cache against a prepare per call, 8 tasks, pool of 8, medians of {} rounds:",
        a.rounds
    );
    println!();
    println!("| query | RipTide cache mode | queries/s | p50 ms | p99 ms | cached / per call |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (label, sql) in [
        ("planning-heavy (8-way join)", PLAN_HEAVY),
        ("primary-key lookup", SEL_ACCOUNT),
    ] {
        let mut res: Vec<(StatementCacheMode, Samples)> = vec![
            (StatementCacheMode::Named, Samples::default()),
            (StatementCacheMode::Off, Samples::default()),
        ];
        for round in 0..a.rounds {
            for k in 0..2 {
                let e = &mut res[(k + round) % 2];
                let p = riptide_pool(url, 8, e.0)?;
                let p2 = p.clone();
                let r = run_load(8, warm, cell, None, move |seed| {
                    let p = p2.clone();
                    async move {
                        let t0 = Instant::now();
                        let c = p.get().await?;
                        let w = t0.elapsed();
                        let aid = 1 + Rng(seed | 1).below(ACCOUNTS_PER_BRANCH * scale.0);
                        c.query_one_cached(sql, &[&aid]).await?;
                        Ok((w, t0.elapsed()))
                    }
                })
                .await;
                e.1 .0.push(r.tps);
                e.1 .1.push(r.lat.pct(50.0));
                e.1 .2.push(r.lat.pct(99.0));
                e.1 .3.push(r.cpu_us);
                p.close();
            }
        }
        let ratio = median(&res[0].1 .0) / median(&res[1].1 .0);
        for (mode, (t, p50, p99, _)) in &res {
            let r = if *mode == StatementCacheMode::Named {
                format!("{ratio:.2}x")
            } else {
                String::new()
            };
            println!(
                "| {label} | {mode:?} | {:.0} | {} | {} | {r} |",
                median(t),
                ms(median(p50)),
                ms(median(p99))
            );
        }
    }
    Ok(())
}
