//! The sync facade: every atomic, lock, cell and thread primitive of the core comes from
//! here: from `std` normally, from `loom` under `cfg(riptide_loom)`, from `shuttle` under
//! `cfg(riptide_shuttle)`, so the models in `loom-tests/` check the very code that ships.

#[cfg(not(riptide_model))]
mod imp {
    /// `atomic_waker::AtomicWaker` under the facade's calling convention.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(atomic_waker::AtomicWaker);
    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(atomic_waker::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register(w);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::Arc;

    /// A read-copy-update cell: lock-free reads of an `Arc<T>`, replaced whole by writers
    /// (`arc_swap::ArcSwap`). Under the model checkers, a mutex around the `Arc`: the same
    /// semantics (each read sees one whole version), with every access visible to them.
    pub(crate) struct Rcu<T>(arc_swap::ArcSwap<T>);
    impl<T> Rcu<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(arc_swap::ArcSwap::from_pointee(v))
        }
        /// The current version.
        pub(crate) fn load(&self) -> impl std::ops::Deref<Target = std::sync::Arc<T>> + '_ {
            self.0.load()
        }
        /// Replaces the current version with `f(current)`; `f` may run more than once (a
        /// racing writer makes it start again), so it must not have side effects.
        pub(crate) fn update(&self, f: impl FnMut(&std::sync::Arc<T>) -> std::sync::Arc<T>) {
            self.0.rcu(f);
        }
    }

    /// `std::sync::Mutex` whose `lock` ignores poisoning: no user code runs under our locks.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(std::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// An `UnsafeCell` with the `loom` calling convention.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(v: T) -> Self {
            Self(core::cell::UnsafeCell::new(v))
        }
        /// Raw pointer to the contents; the caller upholds the aliasing rules.
        pub(crate) fn get(&self) -> *mut T {
            self.0.get()
        }
    }
}

#[cfg(riptide_loom)]
mod imp {
    /// `loom::future::AtomicWaker` under the facade's calling convention.
    #[derive(Debug)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);
    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(loom::future::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register_by_ref(w);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread;

    /// `loom::sync::Mutex` with the same poison-free `lock` as the std build.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(loom::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    pub(crate) use loom::future::block_on;

    /// loom's `UnsafeCell`; `get` hands out the raw pointer (loom checks the access
    /// where it is taken: the slot protocol decides who may take it).
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(loom::cell::UnsafeCell::new(v))
        }
        pub(crate) fn get(&self) -> *mut T {
            self.0.with_mut(|p| p)
        }
    }
}

#[cfg(all(riptide_shuttle, not(riptide_loom)))]
mod imp {
    //! shuttle: its scheduler controls atomics, locks and threads. Cells and the waker
    //! stay std (shuttle runs one model thread at a time and does not check cells).
    pub(crate) use shuttle::future::block_on;
    pub(crate) use shuttle::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
    };
    pub(crate) use shuttle::thread;
    pub(crate) use std::sync::Arc;

    /// `shuttle::sync::Mutex` with the facade's poison-free `lock`.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = shuttle::sync::MutexGuard<'a, T>;
    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(shuttle::sync::Mutex::new(v))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    /// A std `UnsafeCell` (shuttle does not model cells).
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(v: T) -> Self {
            Self(core::cell::UnsafeCell::new(v))
        }
        pub(crate) fn get(&self) -> *mut T {
            self.0.get()
        }
    }

    /// `atomic_waker::AtomicWaker` under the facade's calling convention.
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker(atomic_waker::AtomicWaker);
    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(atomic_waker::AtomicWaker::new())
        }
        pub(crate) fn register(&self, w: &std::task::Waker) {
            self.0.register(w);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }
}

pub(crate) use imp::*;

/// The model checkers' [`Rcu`]: a mutex around the current version.
#[cfg(riptide_model)]
pub(crate) struct Rcu<T>(Mutex<std::sync::Arc<T>>);

#[cfg(riptide_model)]
impl<T> Rcu<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(Mutex::new(std::sync::Arc::new(v)))
    }
    pub(crate) fn load(&self) -> std::sync::Arc<std::sync::Arc<T>> {
        std::sync::Arc::new(self.0.lock().clone())
    }
    pub(crate) fn update(&self, mut f: impl FnMut(&std::sync::Arc<T>) -> std::sync::Arc<T>) {
        let mut g = self.0.lock();
        *g = f(&g);
    }
}

/// Increments `a` by CAS if it is below `max`; false (unchanged) otherwise. Relaxed: for
/// counters whose bound is kept by the CAS's atomicity alone (capacity), nothing else is
/// published through them.
pub(crate) fn increment_below(a: &AtomicUsize, max: usize) -> bool {
    let mut cur = a.load(Ordering::Relaxed);
    while cur < max {
        match a.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(c) => cur = c,
        }
    }
    false
}

/// The fast release's store of `v` into a slot state that markers may CAS concurrently: a
/// plain `Release` store. Under loom it is a `swap` (same ordering, same overwrite): loom
/// 0.7 lets a thread's failed CAS read a value that precedes that thread's own earlier
/// store when another thread's CAS raced with the store, which C++ coherence forbids
/// (`loom-tests/tests/loom_quirk.rs` shows it). As an RMW the store is totally ordered
/// with the markers' CASes in loom too; the protocol is unchanged (the mark is still
/// overwritten, and the word check still has to catch it).
#[inline]
pub(crate) fn store_over_marks(a: &AtomicUsize, v: usize) {
    #[cfg(not(riptide_loom))]
    a.store(v, Ordering::Release);
    #[cfg(riptide_loom)]
    let _ = a.swap(v, Ordering::Release);
}

/// Aligns a hot field to its own 128-byte block (two cache lines: adjacent-line
/// prefetching pairs lines on x86), so writers of one field do not slow readers of another.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Atomics for pure statistics (the wait-time histogram's buckets): always `std`, also
/// under loom. They publish nothing and order nothing, so there is nothing for loom to
/// find in them, and their hundreds of loads per `stats()` would only exhaust its branch
/// budget. Everything that takes part in a protocol uses the modelled types above.
pub(crate) mod stat {
    pub(crate) use std::sync::atomic::AtomicU64;
}

/// Where a thread last found an idle object: the next acquire by that thread starts its
/// scan there, so a thread that keeps taking and returning one object touches one slot.
#[cfg(not(riptide_model))]
pub(crate) mod hint {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    thread_local!(static HINT: Cell<usize> = const { Cell::new(0) });
    thread_local!(static INDEX: Cell<usize> = const { Cell::new(usize::MAX) });
    static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

    /// A small per-thread number (0, 1, 2, … in order of first use): spreads statistics
    /// over stripes. Relaxed: only uniqueness-ish matters, nothing is published.
    #[inline]
    pub(crate) fn thread_index() -> usize {
        INDEX.with(|i| {
            let v = i.get();
            if v != usize::MAX {
                return v;
            }
            let v = NEXT_INDEX.fetch_add(1, Ordering::Relaxed);
            i.set(v);
            v
        })
    }
    #[inline]
    pub(crate) fn get() -> usize {
        HINT.with(Cell::get)
    }
    #[inline]
    pub(crate) fn set(i: usize) {
        HINT.with(|h| h.set(i))
    }
}

/// Under a model checker the hint is constant: state that survives between iterations
/// would make executions non-deterministic.
#[cfg(riptide_model)]
pub(crate) mod hint {
    pub(crate) fn get() -> usize {
        0
    }
    pub(crate) fn set(_: usize) {}
    pub(crate) fn thread_index() -> usize {
        0
    }
}

/// The asymmetric barrier pair of the fast release (design: `docs/architecture.md`, "The
/// release store"). A release stores `IDLE`, runs [`light`](barrier::light), then reads the
/// pool's state word; whoever changes that word in a way a release must notice (the first
/// waiter, close, shrink, reclaim, a partition yielding) writes it, runs
/// [`heavy`](barrier::heavy), then inspects the slots. Each pair acts as two `SeqCst`
/// fences: at least one side sees the other's write, so no wake-up is lost.
///
/// On Linux with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` the light side is only a
/// compiler fence and the heavy side is the system call, which makes every running thread
/// of the process execute a full barrier (a thread that is not running passed one when it
/// was switched out). Elsewhere, when the call is refused (seccomp, old kernels), under
/// Miri, or with `RIPTIDE_POOL_NO_MEMBARRIER` set, both are `fence(SeqCst)`.
#[cfg(not(riptide_model))]
pub(crate) mod barrier {
    use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};

    /// Set once, before the first pool exists, by [`init`]. Relaxed: every thread that
    /// uses a pool happens-after its creation, hence after `init`; a stale `false` would
    /// only make a light barrier a full fence.
    static ASYMMETRIC: AtomicBool = AtomicBool::new(false);

    /// Registers the process for expedited membarriers (once). Called by every pool
    /// constructor before the pool is shared.
    pub(crate) fn init() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let ok = std::env::var_os("RIPTIDE_POOL_NO_MEMBARRIER").is_none() && sys::register();
            ASYMMETRIC.store(ok, Ordering::Relaxed);
            tracing::debug!(
                membarrier = ok,
                "riptide_pool: fast release uses {}",
                if ok {
                    "a compiler fence (membarrier registered)"
                } else {
                    "fence(SeqCst)"
                }
            );
        });
    }

    /// Whether the light side is a compiler fence only. Pools read it once, at build, and
    /// keep it beside their state word (one cache line fewer on the fast release).
    pub(crate) fn asymmetric() -> bool {
        ASYMMETRIC.load(Ordering::Relaxed)
    }

    /// The fast side, for a caller that read [`asymmetric`] after [`init`]: free with
    /// membarrier, else a full fence.
    #[inline]
    pub(crate) fn light(asymmetric: bool) {
        if asymmetric {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The slow side: a process-wide barrier (microseconds), or a full fence.
    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
        if ASYMMETRIC.load(Ordering::Relaxed) {
            sys::membarrier();
        }
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    mod sys {
        const QUERY: libc::c_long = 0;
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

        fn call(cmd: libc::c_long) -> libc::c_long {
            // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no memory
            // of ours; an unknown command or a refusal only returns -1.
            unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    cmd,
                    0 as libc::c_long,
                    0 as libc::c_long,
                )
            }
        }

        pub(super) fn register() -> bool {
            let supported = call(QUERY);
            supported >= 0
                && supported & PRIVATE_EXPEDITED != 0
                && call(REGISTER_PRIVATE_EXPEDITED) == 0
        }

        pub(super) fn membarrier() {
            // Registered in `init`: the kernel does not refuse it afterwards. If it ever
            // did, the light side's compiler fences would no longer pair with anything and
            // a wake-up could be lost; stop rather than risk that.
            if call(PRIVATE_EXPEDITED) != 0 {
                eprintln!("riptide_pool: membarrier failed after registration; aborting");
                std::process::abort();
            }
        }
    }

    #[cfg(not(all(target_os = "linux", not(miri))))]
    mod sys {
        pub(super) fn register() -> bool {
            false
        }
        pub(super) fn membarrier() {}
    }
}

/// Under a model checker both sides are `SeqCst` fences: the models check the protocol
/// that the asymmetric pair implements.
#[cfg(riptide_model)]
pub(crate) mod barrier {
    use super::Ordering;
    pub(crate) fn init() {}
    pub(crate) fn asymmetric() -> bool {
        false
    }
    pub(crate) fn light(_: bool) {
        fence(Ordering::SeqCst);
    }
    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
    }
    #[cfg(riptide_loom)]
    use loom::sync::atomic::fence;
    #[cfg(all(riptide_shuttle, not(riptide_loom)))]
    use shuttle::sync::atomic::fence;
}

/// Announcements that keep a pool's memory alive across the fast release's last reads.
///
/// A guard holds no reference count (`docs/architecture.md`). After the fast release has
/// stored `IDLE`, the object may be claimed and destroyed and the pool freed at once, yet
/// the release still reads the pool's state word. So for those few instructions the
/// releasing thread announces the pool's address in its own record, and the last owner
/// of a pool waits until no record names it before freeing ([`wait_clear`]).
///
/// Records are per thread, in a global list that only grows (one per thread that ever
/// released, reused after the thread exits); they are never freed, so scanning them is
/// always safe. Announcing is a plain store to a line only this thread writes.
#[cfg(not(riptide_model))]
pub(crate) mod hazard {
    use std::cell::Cell;
    use std::ptr;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

    /// One thread's announcement.
    pub(crate) struct Record {
        /// The pool being released into (its address), or 0.
        pool: AtomicUsize,
        /// Held by a live thread.
        owned: AtomicBool,
        /// The next record; written once before the record is published.
        next: *const Record,
    }

    // SAFETY: `next` is written only before the record is published and never after; the
    // other fields are atomics.
    unsafe impl Sync for Record {}

    static HEAD: AtomicPtr<Record> = AtomicPtr::new(ptr::null_mut());

    thread_local! {
        /// This thread's record, or null. No destructor, so reading it is one
        /// thread-local load (no state check) and it stays readable during teardown.
        static MINE: Cell<*const Record> = const { Cell::new(ptr::null()) };
        /// Gives the record back when the thread exits (and nulls `MINE`).
        static OWNER: Owner = const { Owner };
    }

    struct Owner;

    impl Drop for Owner {
        fn drop(&mut self) {
            let r = MINE.with(|m| m.replace(ptr::null()));
            // SAFETY: records are never freed.
            if let Some(r) = unsafe { r.as_ref() } {
                // Release: our last use of the record happens-before its next owner's.
                r.owned.store(false, Ordering::Release);
            }
        }
    }

    /// This thread's record if it has one already: the fast release's only access.
    #[inline]
    pub(crate) fn mine() -> Option<&'static Record> {
        // SAFETY: records are never freed.
        unsafe { MINE.with(Cell::get).as_ref() }
    }

    /// This thread's record, made on first use; `None` once the thread's thread-locals
    /// are being destroyed (the caller then releases with a CAS, which needs no
    /// announcement).
    #[cold]
    pub(crate) fn record() -> Option<&'static Record> {
        if let Some(r) = mine() {
            return Some(r);
        }
        // Touching `OWNER` registers its destructor; it fails once that has run.
        OWNER.try_with(|_| ()).ok()?;
        let r = acquire();
        MINE.with(|m| m.set(r));
        Some(r)
    }

    /// Takes a record a finished thread gave back, or adds one.
    #[cold]
    fn acquire() -> &'static Record {
        // Acquire: pairs with the Release publishing each record.
        let mut p = HEAD.load(Ordering::Acquire);
        // SAFETY: records are never freed.
        while let Some(r) = unsafe { p.as_ref() } {
            // Acquire: pairs with `Owner::drop`.
            if !r.owned.load(Ordering::Relaxed)
                && r.owned
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return r;
            }
            p = r.next.cast_mut();
        }
        let r = Box::into_raw(Box::new(Record {
            pool: AtomicUsize::new(0),
            owned: AtomicBool::new(true),
            next: ptr::null(),
        }));
        let mut head = HEAD.load(Ordering::Relaxed);
        loop {
            // SAFETY: `r` is ours alone until the CAS below publishes it.
            unsafe { (*r).next = head };
            // Release: the initialised record is visible to whoever loads the new head.
            match HEAD.compare_exchange_weak(head, r, Ordering::Release, Ordering::Relaxed) {
                // SAFETY: published records live for the rest of the process.
                Ok(_) => return unsafe { &*r },
                Err(h) => head = h,
            }
        }
    }

    impl Record {
        /// Announces a release into `pool`. Release, like [`exit`](Record::exit): a freer
        /// that reads any later value of this record synchronises with it, so everything
        /// the earlier announcement covered happens-before the free.
        #[inline]
        pub(crate) fn enter(&self, pool: usize) {
            self.pool.store(pool, Ordering::Release);
        }

        /// Ends the announcement. Release: the reads it covered happen-before a freer's
        /// Acquire load that sees it.
        #[inline]
        pub(crate) fn exit(&self) {
            self.pool.store(0, Ordering::Release);
        }
    }

    /// Calls `f` on every record ever made (tests).
    #[cfg(test)]
    pub(crate) fn for_each_record(mut f: impl FnMut(&Record)) {
        let mut p = HEAD.load(Ordering::Acquire);
        // SAFETY: records are never freed.
        while let Some(r) = unsafe { p.as_ref() } {
            f(r);
            p = r.next.cast_mut();
        }
    }

    /// Waits until no thread announces `pool`. Called by the pool's last owner just before
    /// freeing it, after the last reference went (so no new announcement for it can start:
    /// one starts only while its releaser's object keeps the pool alive).
    pub(crate) fn wait_clear(pool: usize) {
        let mut p = HEAD.load(Ordering::Acquire);
        // SAFETY: records are never freed.
        while let Some(r) = unsafe { p.as_ref() } {
            // Acquire: pairs with `enter`/`exit` (see there).
            while r.pool.load(Ordering::Acquire) == pool {
                std::thread::yield_now();
            }
            p = r.next.cast_mut();
        }
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
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
    fn the_fallback_switch_is_honoured() {
        super::barrier::init();
        if std::env::var_os("RIPTIDE_POOL_NO_MEMBARRIER").is_some() {
            // CI's second core run sets it: that run must really use the fences.
            assert!(!super::barrier::asymmetric());
        }
        super::barrier::light(super::barrier::asymmetric());
        super::barrier::heavy();
    }
}
