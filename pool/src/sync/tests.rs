//! The hazard records' and the barrier choice's own tests.

use super::hazard;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The records ever made (the list only grows).
fn records() -> usize {
    let mut n = 0;
    hazard::for_each_record(|_| n += 1);
    n
}

#[test]
fn wait_clear_waits_for_an_announcement_to_end() {
    let pool = 0x5151_0000usize;
    let entered = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (e, f) = (entered.clone(), finished.clone());
    let t = std::thread::spawn(move || {
        let r = hazard::record().unwrap();
        r.enter(pool);
        e.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        f.store(true, Ordering::SeqCst);
        r.exit();
    });
    while !entered.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    hazard::wait_clear(pool);
    assert!(
        finished.load(Ordering::SeqCst),
        "returned while the pool was announced"
    );
    t.join().unwrap();
    // Another address is never waited for.
    hazard::wait_clear(pool + 64);
}

#[test]
fn records_of_finished_threads_are_reused() {
    for _ in 0..4 {
        std::thread::spawn(|| hazard::record().map(|_| ()))
            .join()
            .unwrap();
    }
    let before = records();
    for _ in 0..32 {
        std::thread::spawn(|| hazard::record().map(|_| ()))
            .join()
            .unwrap();
    }
    // Tests run in parallel threads that may each hold one, but 32 sequential
    // short-lived threads must not add 32 records.
    assert!(records() < before + 8, "{before} -> {}", records());
}

#[test]
fn the_release_barrier_choice_applies_to_pools_built_after_it() {
    use super::barrier::{release_barrier, set_release_barrier, ReleaseBarrier};
    let before = release_barrier();
    set_release_barrier(ReleaseBarrier::Fence);
    assert_eq!(release_barrier(), ReleaseBarrier::Fence);
    assert!(!super::barrier::for_new_pool());
    set_release_barrier(before);
    assert_eq!(release_barrier(), before);
}

#[test]
fn the_fallback_switch_is_honoured() {
    let asym = super::barrier::for_new_pool();
    if std::env::var_os("RIPTIDE_POOL_NO_MEMBARRIER").is_some() {
        // CI's second core run sets it: that run must really use the fences.
        assert!(!asym);
        assert_eq!(
            super::barrier::release_barrier(),
            super::barrier::ReleaseBarrier::Fence
        );
    }
    super::barrier::light(asym);
    super::barrier::heavy(asym);
}
