//! Who is acquiring, as deadlock detection records it: the current tokio task, else the
//! current thread (under the model checkers, the thread).

/// Holder ids of threads have this bit set; tokio task ids do not.
pub(crate) const THREAD_BIT: u64 = 1 << 63;

/// Who is acquiring: the current tokio task, else the current thread. Never 0 (the slots'
/// "nobody recorded").
#[cfg(not(riptide_model))]
#[inline]
pub(crate) fn caller() -> u64 {
    match tokio::task::try_id() {
        Some(id) => task_key(id),
        None => thread_key(),
    }
}

/// Under the model checkers: the thread.
#[cfg(riptide_model)]
pub(crate) fn caller() -> u64 {
    thread_key()
}

/// A task id as a number: `Id` hashes as its `u64`, which this hasher keeps.
#[cfg(not(riptide_model))]
#[inline]
fn task_key(id: tokio::task::Id) -> u64 {
    use std::hash::{Hash, Hasher};
    struct Keep(u64);
    impl Hasher for Keep {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }
    let mut h = Keep(0);
    id.hash(&mut h);
    (h.0 & !THREAD_BIT).max(1)
}

/// The current thread: a number of its own, drawn from a process-wide counter on first
/// use and never reused (the address of a thread-local would be: a thread started after
/// one that ended often gets the same address, and would be taken for the holder of the
/// checkouts the ended thread took — a false nested wait, and a false `WouldDeadlock`).
#[cfg(not(riptide_model))]
#[inline]
fn thread_key() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local!(static ME: Cell<u64> = const { Cell::new(0) });
    ME.with(|me| {
        let mut id = me.get();
        if id == 0 {
            // Relaxed: only uniqueness matters, and a read-modify-write gives it.
            id = THREAD_BIT | NEXT.fetch_add(1, Ordering::Relaxed);
            me.set(id);
        }
        id
    })
}

#[cfg(riptide_model)]
fn thread_key() -> u64 {
    THREAD_BIT | 1
}
