//! Announcements that keep a pool's memory alive across the fast release's last reads.
//!
//! A guard holds no reference count (`docs/architecture.md`). After the fast release has
//! stored `IDLE`, the object may be claimed and destroyed and the pool freed at once, yet
//! the release still reads the pool's state word. So for those few instructions the
//! releasing thread announces the pool's address in its own record, and the last owner
//! of a pool waits until no record names it before freeing ([`wait_clear`]).
//!
//! Records are per thread, in a global list that only grows (one per thread that ever
//! released, reused after the thread exits); they are never freed, so scanning them is
//! always safe. Announcing is a plain store to a line only this thread writes.

#[cfg(not(riptide_model))]
mod imp {
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

#[cfg(not(riptide_model))]
pub(crate) use imp::*;

/// A pool's side of the announcements: the records are per thread, so nothing is kept per
/// pool; under the model checkers a counter in the pool stands in for them (global
/// per-thread records do not fit a model's fresh state per execution).
#[cfg(not(riptide_model))]
#[derive(Debug, Default)]
pub(crate) struct Announcer;

/// A release in progress, announced; `exit` ends it.
#[cfg(not(riptide_model))]
pub(crate) struct Announcement<'a>(&'static Record, std::marker::PhantomData<&'a ()>);

#[cfg(not(riptide_model))]
impl Announcer {
    /// A pool's announcer (nothing to keep natively).
    pub(crate) fn new() -> Self {
        Self
    }

    /// Announces a release into the pool at `addr` by this thread; `None` if the thread has
    /// no record yet (see [`prepare`](Self::prepare)).
    #[inline]
    pub(crate) fn enter(&self, addr: usize) -> Option<Announcement<'_>> {
        let r = mine()?;
        r.enter(addr);
        Some(Announcement(r, std::marker::PhantomData))
    }

    /// Makes this thread's record; false while the thread's thread-locals are being
    /// destroyed (no record can be had).
    #[cold]
    pub(crate) fn prepare(&self) -> bool {
        record().is_some()
    }

    /// Waits until no release announces `addr` (the last owner, before freeing).
    pub(crate) fn wait_clear(&self, addr: usize) {
        wait_clear(addr);
    }
}

#[cfg(not(riptide_model))]
impl Announcement<'_> {
    #[inline]
    pub(crate) fn exit(self) {
        self.0.exit();
    }
}

/// The model checkers' stand-in: a counter of releases in progress, in the pool itself.
#[cfg(riptide_model)]
#[derive(Debug, Default)]
pub(crate) struct Announcer(crate::sync::AtomicUsize);

#[cfg(riptide_model)]
pub(crate) struct Announcement<'a>(&'a crate::sync::AtomicUsize);

#[cfg(riptide_model)]
impl Announcer {
    pub(crate) fn new() -> Self {
        Self(crate::sync::AtomicUsize::new(0))
    }
    pub(crate) fn enter(&self, _addr: usize) -> Option<Announcement<'_>> {
        // AcqRel: as the records' Release stores and the freer's Acquire loads.
        self.0.fetch_add(1, crate::sync::Ordering::AcqRel);
        Some(Announcement(&self.0))
    }
    pub(crate) fn prepare(&self) -> bool {
        true
    }
    pub(crate) fn wait_clear(&self, _addr: usize) {
        while self.0.load(crate::sync::Ordering::Acquire) != 0 {
            crate::sync::thread::yield_now();
        }
    }
}

#[cfg(riptide_model)]
impl Announcement<'_> {
    pub(crate) fn exit(self) {
        self.0.fetch_sub(1, crate::sync::Ordering::AcqRel);
    }
}
