//! `cargo run --release -p riptide-admin --example overhead [-- --quick] [-- --only requests|paired|windows]`
//!
//! What serving the admin costs the pool's fast path, in one run: the `compare` binary's
//! fast-path cases measured with no admin, with an admin serving the pool (the 1 Hz
//! sampler, plus a dashboard and a Prometheus scraper each polling once a second), and with
//! the same clients polling 20 times a second (a worst case). Conditions alternate round by
//! round, so drift on a shared machine hits all of them alike; each window lasts 1.2 s so
//! the sampler runs inside every window. Prints the median ns/op per condition and the
//! ratio to "no admin" (1.00 = no cost). Before that: what each request costs, and a paired
//! comparison in one thread of a pool the admin samples against one it does not know.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_admin::Admin;
use riptide_pool::{Pool, Poolable};

struct Obj;
impl Poolable for Obj {}

const WINDOW: Duration = Duration::from_millis(1200);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cond {
    Off,
    On,
    Heavy,
}

impl Cond {
    fn label(self) -> &'static str {
        match self {
            Cond::Off => "no admin",
            Cond::On => "admin: sampler + 1 Hz polling",
            Cond::Heavy => "admin: sampler + 20 Hz polling",
        }
    }
}

fn pool(rt: &tokio::runtime::Runtime) -> Pool<Obj> {
    let _g = rt.enter();
    let p = Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
        .max_size(4)
        .build()
        .expect("pool");
    rt.block_on(p.warm_up(4)).expect("warm up");
    p
}

/// The admin of `pool` served on loopback, with its clients, on `rt`; stops on drop.
struct Running {
    stop: Arc<AtomicBool>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    requests: Arc<AtomicU64>,
    rt: tokio::runtime::Handle,
}

fn start_admin(rt: &tokio::runtime::Handle, pool: &Pool<Obj>, every: Duration) -> Running {
    start_admin_with(rt, Admin::new().pool("bench", pool), &["bench"], every)
}

/// Serves `admin` on loopback with a dashboard (per pool: its history and checkouts) and a
/// Prometheus scraper polling every `every`.
fn start_admin_with(
    rt: &tokio::runtime::Handle,
    admin: Admin,
    names: &[&str],
    every: Duration,
) -> Running {
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let mut tasks = Vec::new();
    tasks.push(rt.spawn(async move {
        let server = admin.bind("127.0.0.1:0").await.expect("bind");
        addr_tx.send(server.local_addr()).expect("addr");
        let _ = server
            .run_until(async move {
                let _ = rx.await;
            })
            .await;
    }));
    let addr = addr_rx.recv().expect("admin address");
    let client = reqwest::Client::new();
    // A dashboard with the pool expanded, and a Prometheus scraper.
    let mut dashboard = vec!["/pools".to_string()];
    for n in names {
        dashboard.push(format!("/pools/{n}/history?seconds=300"));
        dashboard.push(format!("/pools/{n}/checked-out?limit=10"));
    }
    for paths in [dashboard, vec!["/metrics".to_string()]] {
        let (client, stop, requests) = (client.clone(), stop.clone(), requests.clone());
        let urls: Vec<String> = paths.iter().map(|p| format!("http://{addr}{p}")).collect();
        tasks.push(rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for u in &urls {
                    if let Ok(r) = client.get(u).send().await {
                        if r.bytes().await.is_ok() {
                            requests.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    Running {
        stop,
        shutdown: Some(tx),
        tasks,
        requests,
        rt: rt.clone(),
    }
}

impl Running {
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            let _ = self.rt.block_on(t);
        }
        self.requests.load(Ordering::Relaxed)
    }
}

fn admin_for(cond: Cond, rt: &tokio::runtime::Handle, pool: &Pool<Obj>) -> Option<Running> {
    match cond {
        Cond::Off => None,
        Cond::On => Some(start_admin(rt, pool, Duration::from_secs(1))),
        Cond::Heavy => Some(start_admin(rt, pool, Duration::from_millis(50))),
    }
}

/// Sync `try_get` + drop on one thread for one window; ns/op.
fn sync_window(pool: &Pool<Obj>) -> f64 {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < WINDOW {
        for _ in 0..10_000 {
            drop(std::hint::black_box(pool.try_get().expect("idle object")));
        }
        ops += 10_000;
    }
    start.elapsed().as_nanos() as f64 / ops as f64
}

/// `get().await` + drop on a current-thread runtime for one window; ns/op.
fn async_window(rt: &tokio::runtime::Runtime, pool: &Pool<Obj>) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        let mut ops = 0u64;
        while start.elapsed() < WINDOW {
            for _ in 0..10_000 {
                drop(std::hint::black_box(pool.get().await.expect("object")));
            }
            ops += 10_000;
        }
        start.elapsed().as_nanos() as f64 / ops as f64
    })
}

/// 32 tasks sharing 4 objects on a 2-worker runtime for one window; ns/op.
fn contended_window(rt: &tokio::runtime::Runtime, pool: &Pool<Obj>) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (pool, done, ops) = (pool.clone(), done.clone(), ops.clone());
            rt.spawn(async move {
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    for _ in 0..100 {
                        let g = pool.get().await.expect("object");
                        tokio::task::yield_now().await; // the hold
                        drop(g);
                    }
                    n += 100;
                }
                ops.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    std::thread::sleep(WINDOW);
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        rt.block_on(t).expect("task");
    }
    start.elapsed().as_nanos() as f64 / ops.load(Ordering::Relaxed) as f64
}

/// What one request costs the process: the median round trip of each endpoint over
/// loopback (client and server on one runtime), in microseconds.
fn request_costs(
    rt: &tokio::runtime::Runtime,
    pool: &Pool<Obj>,
    tenants: usize,
) -> Vec<(String, f64)> {
    let _g = pool.try_get().expect("an object out, to list");
    let pp = {
        let _e = rt.enter();
        riptide_pool::PartitionedPool::builder(|_k: String| async { Ok::<_, std::io::Error>(Obj) })
            .partition_max_size(2)
            .max_size(tenants * 2)
            .build()
            .expect("partitioned pool")
    };
    rt.block_on(async {
        let mut held = Vec::new();
        for i in 0..tenants {
            held.push(pp.get(&format!("tenant-{i:03}")).await.expect("object"));
        }
        let admin = Admin::new().pool("bench", pool).partitioned("tenants", &pp);
        let server = admin.bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let srv = tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::new();
        let mut out = Vec::new();
        for path in [
            "/pools",
            "/pools/bench",
            "/pools/bench/history?seconds=300",
            "/pools/bench/checked-out?limit=10",
            "/metrics",
            "/pools/tenants/partitions?limit=20",
            "/health",
        ] {
            let url = format!("http://{addr}{path}");
            let mut t = Vec::new();
            for i in 0..220 {
                let start = Instant::now();
                let body = client
                    .get(&url)
                    .send()
                    .await
                    .expect("request")
                    .bytes()
                    .await;
                assert!(body.is_ok());
                if i >= 20 {
                    t.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
            out.push((path.to_string(), median(&mut t)));
        }
        let _ = tx.send(());
        let _ = srv.await;
        drop(held);
        out
    })
}

/// Paired: pool `a` is registered with an admin that samples it and is polled 20 times a
/// second for the whole run; pool `b` is not registered. One thread alternates batches of
/// 10 000 checkouts between them, so drift of the machine hits both alike; returns the
/// ns/op of `a` and `b` for one window.
fn paired_sync_window(a: &Pool<Obj>, b: &Pool<Obj>) -> (f64, f64) {
    let (mut ta, mut tb, mut ops) = (Duration::ZERO, Duration::ZERO, 0u64);
    let start = Instant::now();
    while start.elapsed() < WINDOW {
        // a, b, then b, a: neither always goes first.
        let order = if ops % 20_000 == 0 {
            [(a, &mut ta), (b, &mut tb)]
        } else {
            [(b, &mut tb), (a, &mut ta)]
        };
        for (p, t) in order {
            let s = Instant::now();
            for _ in 0..10_000 {
                drop(std::hint::black_box(p.try_get().expect("idle object")));
            }
            *t += s.elapsed();
        }
        ops += 10_000;
    }
    (
        ta.as_nanos() as f64 / ops as f64,
        tb.as_nanos() as f64 / ops as f64,
    )
}

/// As [`paired_sync_window`], with `get().await` on a current-thread runtime.
fn paired_async_window(rt: &tokio::runtime::Runtime, a: &Pool<Obj>, b: &Pool<Obj>) -> (f64, f64) {
    rt.block_on(async {
        let (mut ta, mut tb, mut ops) = (Duration::ZERO, Duration::ZERO, 0u64);
        let start = Instant::now();
        while start.elapsed() < WINDOW {
            let order = if ops % 20_000 == 0 {
                [(a, &mut ta), (b, &mut tb)]
            } else {
                [(b, &mut tb), (a, &mut ta)]
            };
            for (p, t) in order {
                let s = Instant::now();
                for _ in 0..10_000 {
                    drop(std::hint::black_box(p.get().await.expect("object")));
                }
                *t += s.elapsed();
            }
            ops += 10_000;
        }
        (
            ta.as_nanos() as f64 / ops as f64,
            tb.as_nanos() as f64 / ops as f64,
        )
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let want = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let rounds = if quick { 5 } else { 15 };
    let conds = [Cond::Off, Cond::On, Cond::Heavy];
    // Where the admin runs for the sync and async cases: a runtime of its own, as a
    // service's main runtime beside a hot loop.
    let admin_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    type Case<'a> = (&'a str, Box<dyn Fn(Cond) -> (f64, u64) + 'a>);
    let sync_pool = pool(&admin_rt);
    let async_pool = pool(&current);
    let cont_pool = pool(&multi);
    let cases: Vec<Case> = vec![
        (
            "sync try_get + drop, 1 thread",
            Box::new(|c| {
                let a = admin_for(c, admin_rt.handle(), &sync_pool);
                let ns = sync_window(&sync_pool);
                (ns, a.map_or(0, Running::finish))
            }),
        ),
        (
            "async get().await + drop, current-thread",
            Box::new(|c| {
                let a = admin_for(c, admin_rt.handle(), &async_pool);
                let ns = async_window(&current, &async_pool);
                (ns, a.map_or(0, Running::finish))
            }),
        ),
        (
            "contended async: 32 tasks, 4 objects, 2 workers (admin on the same runtime)",
            Box::new(|c| {
                let a = admin_for(c, multi.handle(), &cont_pool);
                let ns = contended_window(&multi, &cont_pool);
                (ns, a.map_or(0, Running::finish))
            }),
        ),
    ];

    let tenants = 200;
    if want("requests") {
        println!(
            "What one admin request costs: median round trip over loopback (client on the same \
         runtime), 200 requests each; `tenants` has {tenants} partitions\n"
        );
        println!("| request | median µs |");
        println!("| --- | ---: |");
        for (path, us) in request_costs(&admin_rt, &sync_pool, tenants) {
            let note = if path.contains("history") {
                " (a new pool: its first samples only)"
            } else {
                ""
            };
            println!("| `GET {path}`{note} | {us:.0} |");
        }
        println!();
    }
    if want("paired") {
        println!(
            "Paired, in one thread: a pool the admin samples and serves (polled 20 times a \
         second throughout) against one it does not know, batches of 10 000 alternating; \
         median ns/op over {rounds} windows of {} ms\n",
            WINDOW.as_millis()
        );
        println!("| case | sampled pool | unsampled pool | ratio |");
        println!("| --- | ---: | ---: | ---: |");
        {
            let (a_sync, b_sync) = (pool(&admin_rt), pool(&admin_rt));
            let (a_async, b_async) = (pool(&current), pool(&current));
            let both = Admin::new().pool("sync", &a_sync).pool("async", &a_async);
            let running = start_admin_with(
                admin_rt.handle(),
                both,
                &["sync", "async"],
                Duration::from_millis(50),
            );
            for (name, paired) in [
                (
                    "sync try_get + drop, 1 thread",
                    &(|| paired_sync_window(&a_sync, &b_sync)) as &dyn Fn() -> (f64, f64),
                ),
                (
                    "async get().await + drop, current-thread",
                    &(|| paired_async_window(&current, &a_async, &b_async)),
                ),
            ] {
                let (mut va, mut vb) = (Vec::new(), Vec::new());
                for _ in 0..rounds {
                    let (x, y) = paired();
                    va.push(x);
                    vb.push(y);
                }
                let (ma, mb) = (median(&mut va), median(&mut vb));
                println!("| {name} | {ma:.1} | {mb:.1} | {:.3} |", ma / mb);
            }
            let reqs = running.finish();
            println!("\n(the admin answered {reqs} requests meanwhile)\n");
        }
    }
    if !want("windows") {
        return;
    }
    println!(
        "riptide-admin overhead: median ns/op over {rounds} rounds of {} ms per condition, \
         conditions alternating\n",
        WINDOW.as_millis()
    );
    println!("| case | condition | median ns/op | min–max | ratio to no admin | admin requests answered |");
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for (name, run) in &cases {
        let mut res: Vec<Vec<f64>> = vec![Vec::new(); conds.len()];
        let mut reqs = vec![0u64; conds.len()];
        for round in 0..rounds {
            for k in 0..conds.len() {
                let i = (k + round) % conds.len(); // rotate the order
                let (ns, r) = run(conds[i]);
                res[i].push(ns);
                reqs[i] += r;
            }
        }
        let base = median(&mut res[0].clone());
        for (i, c) in conds.iter().enumerate() {
            let v = &mut res[i];
            let m = median(v);
            println!(
                "| {name} | {} | {m:.1} | {:.1}–{:.1} | {:.3} | {} |",
                c.label(),
                v[0],
                v[v.len() - 1],
                m / base,
                reqs[i]
            );
        }
    }
}
