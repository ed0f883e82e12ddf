//! `cargo run --release -p riptide-admin --example dashboard [-- OPTIONS]`
//!
//! Serves the admin of a demo under a changing synthetic load (`riptide_admin::demo`: a
//! pool `db` with bursts, a leak and a failing factory that trips its breaker, and a
//! partitioned pool `tenants`) and prints the URL. Open it in a browser.
//!
//! Options: `--addr HOST:PORT` (default 127.0.0.1:9187), `--pools N` extra small pools,
//! `--tenants N` (default 12), `--token T` (enables the write endpoints), `--seconds N`
//! (stop after N seconds; default: until Ctrl-C).

use std::time::Duration;

use riptide_admin::demo::{Demo, DemoOptions};
use riptide_admin::Admin;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn number(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match arg(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} wants a number, got {v:?}")),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = arg(&args, "--addr").unwrap_or_else(|| Admin::DEFAULT_ADDR.to_string());
    let opts = DemoOptions {
        extra_pools: number(&args, "--pools", 0)?,
        tenants: number(&args, "--tenants", 12)?,
        token: arg(&args, "--token"),
    };
    let seconds = arg(&args, "--seconds")
        .map(|s| s.parse::<u64>())
        .transpose()
        .map_err(|_| "--seconds wants a number")?;

    let demo = Demo::start(opts)?;
    let server = demo.admin().bind(addr.as_str()).await?;
    println!("RipTide admin dashboard: http://{}/", server.local_addr());
    println!(
        "  JSON: /pools /health/pool /metrics; the load cycles every 60 s \
         (burst at 20 s, factory outage at 30 s)"
    );
    let stop = async move {
        match seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    server.run_until(stop).await?;
    drop(demo);
    Ok(())
}
