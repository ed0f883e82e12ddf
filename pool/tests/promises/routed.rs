//! Routed checkouts name the caller's line (leak reports, `checked_out`).
use std::time::Duration;

use riptide_pool::{PartitionedPool, PoolEvent, Poolable};

struct Conn;
impl Poolable for Conn {}

/// A leak report (and `checked_out`) names the line that took the object: for
/// `get_routed` as for `get`, that is the user's line, not one inside the crate.
#[tokio::test]
async fn a_routed_checkout_names_the_callers_line() {
    let pp = PartitionedPool::builder(|_k: u8| async { Ok::<_, std::io::Error>(Conn) })
        .partition_max_size(2)
        .max_size(4)
        .configure(|b| b.leak_threshold(Duration::from_millis(20)))
        .build()
        .unwrap();
    drop(pp.get(&1).await.unwrap()); // a partition to route to
    let mut rx = pp.events(&1).unwrap();
    let line = line!() + 1;
    let (_k, held) = pp.get_routed().await.unwrap();
    let out = pp.checked_out();
    assert_eq!(out.len(), 1);
    let at = out[0].1.location;
    // Wait for the leak report too.
    let leak = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            if let Ok(PoolEvent::LeakSuspected { location, .. }) = rx.recv().await {
                return location;
            }
        }
    })
    .await
    .expect("a leak report");
    drop(held);
    assert_eq!(
        (at.file(), at.line()),
        (file!(), line),
        "checked_out names {at}"
    );
    assert_eq!(
        (leak.file(), leak.line()),
        (file!(), line),
        "the leak report names {leak}"
    );
}
