//! Helpers shared by the endpoint and browser tests: serving an admin on a loopback port,
//! and typed mirrors of the admin's JSON answers (the admin's own types only serialize).
//! The core's figures inside them are read back as the core's types (`PoolStats`,
//! `HealthStatus`, `HealthLevel`, `CircuitState`: `Deserialize` under its `serde`
//! feature), so a field the core adds is checked here without a second copy.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use riptide_admin::Admin;
use riptide_pool::{CircuitState, HealthLevel, HealthStatus, PoolStats};
use serde::Deserialize;

/// An admin served on `127.0.0.1:<free port>` until dropped.
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Served {
    pub async fn start(admin: &Admin) -> Served {
        let server = admin.bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = server.local_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async move {
                    let _ = rx.await;
                })
                .await
                .expect("admin server");
        });
        Served {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("server task");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub name: String,
    pub kind: String,
    pub stats: PoolStats,
    pub health: HealthStatus,
    pub circuit_state: Option<CircuitState>,
    pub closed: Option<bool>,
    pub partitions: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pools {
    pub pools: Vec<Summary>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolHealth {
    pub name: String,
    pub health: HealthStatus,
    pub circuit_state: Option<CircuitState>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    pub status: String,
    pub unhealthy: Vec<String>,
    pub pools: Option<Vec<PoolHealth>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedOutEntry {
    pub id: u64,
    pub held_for: Duration,
    pub location: String,
    #[serde(default)]
    pub partition: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckedOut {
    pub pool: String,
    pub count: usize,
    pub checked_out: Vec<CheckedOutEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionEntry {
    pub key: String,
    pub stats: PoolStats,
    pub level: HealthLevel,
    pub utilization: f64,
    pub share: f64,
    pub in_use_share: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    pub pool: String,
    pub partitioned: bool,
    pub count: usize,
    pub offset: usize,
    pub totals: PoolStats,
    pub partitions: Vec<PartitionEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub t: u64,
    pub utilization: f64,
    pub in_use: u32,
    pub idle: u32,
    pub size: u32,
    pub max_size: u32,
    pub waiting: u32,
    pub wait_p99_ms: f64,
    pub creates: u64,
    pub destroys: u64,
    pub timeouts: u64,
    pub checkouts: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HourBucket {
    pub hour: u64,
    pub samples: u32,
    pub utilization_avg: f64,
    pub utilization_max: f64,
    pub waiting_avg: f64,
    pub waiting_max: u32,
    pub wait_p99_ms_max: f64,
    pub creates: u64,
    pub destroys: u64,
    pub timeouts: u64,
    pub checkouts: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    pub pool: String,
    pub interval_secs: u64,
    pub samples: Vec<Sample>,
    pub hourly: Vec<HourBucket>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteOutcome {
    pub pool: String,
    pub action: String,
    pub previous_max_size: Option<usize>,
    pub max_size: Option<usize>,
    pub closed: Option<bool>,
    pub drained: Option<bool>,
    pub in_use: Option<usize>,
    pub still_out: Option<Vec<CheckedOutEntry>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: String,
}
