//! The two lines that add the admin to a service (the README shows them): register the
//! pools, spawn the server. Run with `cargo run -p riptide-admin --example service`, then
//! open <http://127.0.0.1:9187/>; it stops after 30 seconds.

use std::time::Duration;

use riptide_pool::{Pool, Poolable};

struct Conn;
impl Poolable for Conn {}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) })
        .max_size(8)
        .build()?;

    let admin = riptide_admin::Admin::new().pool("db", &pool);
    tokio::spawn(async move { admin.serve("127.0.0.1:9187").await });

    // The service's own work.
    for _ in 0..30 {
        let _conn = pool.get().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
