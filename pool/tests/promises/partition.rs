//! Partitions under the global cap: an object landing idle in one partition makes room
//! for a caller blocked on the cap in another.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riptide_pool::{PartitionedPool, Poolable, Pooled};

struct Conn {
    _key: u8,
    live: Arc<AtomicUsize>,
}
impl Poolable for Conn {}
impl Drop for Conn {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Key 3's factory takes 150 ms; the others are instant.
fn pool(live: &Arc<AtomicUsize>, part: usize, global: usize) -> PartitionedPool<u8, Conn> {
    let live = live.clone();
    PartitionedPool::builder(move |key: u8| {
        let live = live.clone();
        async move {
            if key == 3 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            live.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::io::Error>(Conn { _key: key, live })
        }
    })
    .partition_max_size(part)
    .max_size(global)
    .build()
    .unwrap()
}

/// "No tenant waits while others sit idle": key 1 waits for global capacity; then an
/// object lands idle in key 3's partition (a create whose caller gave up). Key 1 must get
/// that capacity, not wait until its deadline while key 3's object sits idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_landing_idle_elsewhere_makes_room_for_a_blocked_key() {
    let live = Arc::new(AtomicUsize::new(0));
    let pp = pool(&live, 2, 2);
    // Key 3's caller gives up; its create (150 ms) goes on and will land idle.
    let r = pp.acquire(&3).timeout(Duration::from_millis(10)).await;
    assert!(r.is_err());
    // Key 2 holds the other unit: the global cap is reached.
    let _held = pp.get(&2).await.unwrap();
    assert_eq!(pp.global_size(), 2);
    // Key 1 waits for global capacity.
    let t0 = Instant::now();
    let r = pp.acquire(&1).timeout(Duration::from_millis(1500)).await;
    let waited = t0.elapsed();
    let s3 = pp.stats(&3).unwrap();
    assert!(
        r.is_ok(),
        "key 1 timed out after {waited:?} while key 3 sat idle: key 3 {s3:?}, global {}",
        pp.global_size()
    );
}

/// After the blocked key gave up, returns elsewhere are kept again (nobody needs the
/// room): a healthy object is not destroyed for a caller that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returns_are_kept_once_the_blocked_key_gave_up() {
    let live = Arc::new(AtomicUsize::new(0));
    let pp = pool(&live, 2, 2);
    let a = pp.get(&2).await.unwrap();
    let b = pp.get(&2).await.unwrap();
    let r = pp.acquire(&1).timeout(Duration::from_millis(30)).await;
    assert!(r.is_err(), "key 1 must time out: nothing returned yet");
    drop(a);
    drop(b);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let s2 = pp.stats(&2).unwrap();
    assert_eq!(
        (s2.idle, s2.destroyed),
        (2, 0),
        "key 2's objects were destroyed for a caller that had given up: {s2:?}"
    );
    let _ = Pooled::<Conn>::id;
}
