//! A canary for a loom limitation the pool works around (`riptide_pool`'s
//! `sync::store_over_marks`): loom 0.7 lets a failed `compare_exchange` read a value older
//! than the thread's own preceding store when another thread's CAS raced with that store.
//! C++ coherence forbids it: the racing CAS read the initial value, so its write comes
//! right after it in modification order and the plain store after that; the thread's own
//! later load and CAS must then read its store. If this test starts failing, loom has fixed
//! the quirk and the `swap` under `cfg(riptide_loom)` can become the plain store it stands for.
#![cfg(riptide_loom)]

use loom::sync::atomic::{AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

#[test]
fn loom_lets_a_failed_cas_read_before_the_threads_own_store() {
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen2 = seen.clone();
    loom::model(move || {
        let x = Arc::new(AtomicUsize::new(2));
        let x2 = x.clone();
        let t = thread::spawn(move || x2.compare_exchange(2, 6, Relaxed, Relaxed).is_ok());
        x.store(1, Release);
        let own = x.load(Relaxed);
        let cas = x.compare_exchange(1, 2, Acquire, Relaxed);
        let marked = t.join().unwrap();
        if marked && own == 1 && cas == Err(6) {
            seen2.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    assert!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        "loom no longer shows the store-vs-CAS quirk: make `store_over_marks` a plain store under loom too"
    );
}
