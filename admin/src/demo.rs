//! A synthetic load to look at: the `dashboard` example serves it, and the browser test
//! loads its page.
//!
//! [`Demo::start`] builds a pool `db` and a partitioned pool `tenants` (plus, on request,
//! many small pools `svc-NN`) and drives them on the current tokio runtime in a 60-second
//! cycle:
//! - 0–20 s steady load; 20–28 s a burst of 40 callers on 16 connections (waiting,
//!   timeouts after 120 ms);
//! - 30–42 s the factory of `db` fails: objects retire (6 s lifetime), creates fail, and
//!   the circuit breaker opens until the outage ends;
//! - all along, a leaky handler keeps a `db` connection for 40 s every 15 s (reported as a
//!   leak after 5 s, shown with its line in the checked-out list);
//! - `tenants` gets Zipf-shaped traffic, and tenant 1 spikes during the burst.
//!
//! Dropping the [`Demo`] stops the load (the pools stay registered in its admin).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{ConfigError, PartitionedPool, Pool, Poolable};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Admin;

/// A stand-in for a connection.
#[derive(Debug)]
pub struct DemoConn {
    /// Which one.
    pub id: u64,
}

impl Poolable for DemoConn {}

/// What to build.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Small extra pools (`svc-00`, `svc-01`, …) under light load of their own.
    pub extra_pools: usize,
    /// Tenants of the partitioned pool (at least 1).
    pub tenants: usize,
    /// The admin's write token.
    pub token: Option<String>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            extra_pools: 0,
            tenants: 12,
            token: None,
        }
    }
}

/// The running demo; see the [module docs](self).
pub struct Demo {
    admin: Admin,
    db: Pool<DemoConn>,
    tenants: PartitionedPool<String, DemoConn>,
    extra: Vec<Pool<DemoConn>>,
    frozen: watch::Sender<bool>,
    _tasks: JoinSet<()>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// A small xorshift generator: the load needs variety, not quality.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..hi` (ms).
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo).max(1))
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Where the 60-second cycle is.
fn phase(start: Instant) -> u64 {
    start.elapsed().as_secs() % 60
}

/// Waits while frozen; returns at once otherwise.
async fn while_frozen(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|f| !*f).await;
}

impl Demo {
    /// Builds the pools and starts the load on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns the load tasks).
    pub fn start(opts: DemoOptions) -> Result<Demo, ConfigError> {
        let start = Instant::now();
        let next_id = Arc::new(AtomicU64::new(1));
        let outage = Arc::new(AtomicBool::new(false));
        let (frozen, _) = watch::channel(false);
        let mut tasks = JoinSet::new();

        let db = {
            let (next_id, outage) = (next_id.clone(), outage.clone());
            Pool::builder(move || {
                let (next_id, outage) = (next_id.clone(), outage.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(3)).await; // "connect"
                    if outage.load(Ordering::Relaxed) {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionRefused,
                            "database unreachable (demo outage)",
                        ));
                    }
                    Ok(DemoConn {
                        id: next_id.fetch_add(1, Ordering::Relaxed),
                    })
                }
            })
            .name("db")
            .max_size(16)
            .min_idle(2)
            .acquire_timeout(Duration::from_millis(120))
            .max_lifetime(Duration::from_secs(6))
            .leak_threshold(Duration::from_secs(5))
            .circuit_breaker(3, Duration::from_secs(3))
            .build()?
        };

        let n_tenants = opts.tenants.max(1);
        let tenants = {
            let next_id = next_id.clone();
            PartitionedPool::builder(move |_tenant: String| {
                let next_id = next_id.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    Ok::<_, std::io::Error>(DemoConn {
                        id: next_id.fetch_add(1, Ordering::Relaxed),
                    })
                }
            })
            .partition_max_size(6)
            .max_size((n_tenants * 2).clamp(24, 400))
            .acquire_timeout(Duration::from_millis(300))
            .build()?
        };

        let mut extra = Vec::new();
        for i in 0..opts.extra_pools {
            let next_id = next_id.clone();
            extra.push(
                Pool::builder(move || {
                    let next_id = next_id.clone();
                    async move {
                        Ok::<_, std::io::Error>(DemoConn {
                            id: next_id.fetch_add(1, Ordering::Relaxed),
                        })
                    }
                })
                .name(format!("svc-{i:02}"))
                .max_size(8)
                .acquire_timeout(Duration::from_millis(200))
                .build()?,
            );
        }

        // The director: how many `db` callers are active, and the outage.
        let active = Arc::new(AtomicUsize::new(6));
        {
            let (active, outage, mut fr) = (active.clone(), outage.clone(), frozen.subscribe());
            tasks.spawn(async move {
                loop {
                    while_frozen(&mut fr).await;
                    let p = phase(start);
                    let n = match p {
                        20..28 => 40,
                        0..20 => 4 + (p as usize % 10) / 2,
                        _ => 6,
                    };
                    active.store(n, Ordering::Relaxed);
                    outage.store((30..42).contains(&p), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            });
        }

        // `db` callers: caller i works while i < active.
        for i in 0..40usize {
            let (db, active, mut fr) = (db.clone(), active.clone(), frozen.subscribe());
            tasks.spawn(async move {
                let mut rng = Rng::new(i as u64 + 1);
                loop {
                    while_frozen(&mut fr).await;
                    if i >= active.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    if let Ok(conn) = db.get().await {
                        // Longer work during the burst: more demand than connections.
                        let burst = (20..28).contains(&phase(start));
                        let hold = if burst {
                            rng.ms(40, 120)
                        } else {
                            rng.ms(10, 60)
                        };
                        tokio::time::sleep(hold).await;
                        while_frozen(&mut fr).await; // frozen: keep holding
                        drop(conn);
                    }
                    tokio::time::sleep(rng.ms(5, 40)).await;
                }
            });
        }

        // The leaky handler: keeps a connection for 40 s every 15 s.
        {
            let (db, mut fr) = (db.clone(), frozen.subscribe());
            tasks.spawn(async move {
                let mut kept = Vec::new();
                loop {
                    while_frozen(&mut fr).await;
                    kept.retain(|(at, _): &(Instant, _)| at.elapsed() < Duration::from_secs(40));
                    if let Ok(conn) = db.get().await {
                        kept.push((Instant::now(), conn));
                    }
                    tokio::time::sleep(Duration::from_secs(15)).await;
                }
            });
        }

        // Tenants: Zipf-shaped picks; tenant 1 spikes during the burst.
        let keys: Arc<Vec<String>> =
            Arc::new((1..=n_tenants).map(|i| format!("tenant-{i:03}")).collect());
        let weights: Arc<Vec<f64>> = {
            let w: Vec<f64> = (1..=n_tenants).map(|i| 1.0 / i as f64).collect();
            let sum: f64 = w.iter().sum();
            let mut acc = 0.0;
            Arc::new(
                w.iter()
                    .map(|x| {
                        acc += x / sum;
                        acc
                    })
                    .collect(),
            )
        };
        // Every tenant has a partition from the start (traffic reaches the tail slowly).
        {
            let (tp, keys) = (tenants.clone(), keys.clone());
            tasks.spawn(async move {
                for k in keys.iter() {
                    let _ = tp.get(k).await;
                }
            });
        }
        let tenant_callers = 16 + n_tenants / 4;
        for i in 0..tenant_callers {
            let (tp, keys, weights, mut fr) = (
                tenants.clone(),
                keys.clone(),
                weights.clone(),
                frozen.subscribe(),
            );
            tasks.spawn(async move {
                let mut rng = Rng::new(1000 + i as u64);
                loop {
                    while_frozen(&mut fr).await;
                    let burst = (20..28).contains(&phase(start));
                    let k = if burst && i % 2 == 0 {
                        0
                    } else {
                        let u = rng.unit();
                        weights.partition_point(|c| *c < u).min(keys.len() - 1)
                    };
                    if let Ok(conn) = tp.get(&keys[k]).await {
                        tokio::time::sleep(rng.ms(10, 80)).await;
                        while_frozen(&mut fr).await;
                        drop(conn);
                    }
                    tokio::time::sleep(rng.ms(5, 30)).await;
                }
            });
        }

        // Extra pools: one caller each, holding a drifting number of objects around a
        // level of its own.
        for (i, p) in extra.iter().enumerate() {
            let (p, mut fr) = (p.clone(), frozen.subscribe());
            tasks.spawn(async move {
                let mut rng = Rng::new(5000 + i as u64);
                let level = (i * 37) % 9;
                let mut held = Vec::new();
                loop {
                    while_frozen(&mut fr).await;
                    let target = (level + (rng.next() % 5) as usize).saturating_sub(2).min(8);
                    while held.len() < target {
                        match p.get().await {
                            Ok(c) => held.push(c),
                            Err(_) => break,
                        }
                    }
                    held.truncate(target);
                    tokio::time::sleep(rng.ms(300, 1500)).await;
                }
            });
        }

        let mut admin = Admin::new()
            .pool("db", &db)
            .partitioned("tenants", &tenants)
            .token(opts.token.clone());
        for (i, p) in extra.iter().enumerate() {
            admin = admin.pool(format!("svc-{i:02}"), p);
        }
        Ok(Demo {
            admin,
            db,
            tenants,
            extra,
            frozen,
            _tasks: tasks,
        })
    }

    /// The admin with every demo pool registered.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The `db` pool.
    pub fn db(&self) -> &Pool<DemoConn> {
        &self.db
    }

    /// The partitioned pool.
    pub fn tenants(&self) -> &PartitionedPool<String, DemoConn> {
        &self.tenants
    }

    /// The extra pools, in order.
    pub fn extra_pools(&self) -> &[Pool<DemoConn>] {
        &self.extra
    }

    /// Holds the load still: callers stop taking new objects and keep what they hold, so
    /// the figures stop moving once acquisitions in flight have ended (≤ 0.3 s).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Lets the load go on after [`freeze`](Self::freeze).
    pub fn resume(&self) {
        self.frozen.send_replace(false);
    }
}
