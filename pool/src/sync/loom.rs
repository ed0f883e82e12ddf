//! The loom backend of the sync facade (`--cfg riptide_loom`): loom's atomics, locks,
//! cells, `Arc`, threads and `AtomicWaker`, so loom sees every step of the protocol.

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
pub(crate) type Mutex<T> = super::PoisonFree<loom::sync::Mutex<T>>;
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
super::poison_free!(loom::sync::Mutex, loom::sync::MutexGuard);

pub(crate) use loom::future::block_on;

/// loom's `UnsafeCell`: loom checks each `with` / `with_mut` access against the others.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);
impl<T> UnsafeCell<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(loom::cell::UnsafeCell::new(v))
    }
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }
    /// Exclusive access held across calls until the returned handle drops: loom tracks
    /// the whole span as one write access (`MutPtr`), so any other access meanwhile,
    /// whichever thread makes it, is a failure.
    pub(crate) fn hold_mut(&self) -> HeldMut<T> {
        HeldMut(self.0.get_mut())
    }
}

/// Exclusive access to an [`UnsafeCell`]'s contents for as long as it lives (`hold_mut`).
#[derive(Debug)]
pub(crate) struct HeldMut<T>(loom::cell::MutPtr<T>);
// SAFETY: the handle stands for exclusive access to a `T`, as a `&mut T` does: sending it
// sends that access, which is sound for `T: Send`.
unsafe impl<T: Send> Send for HeldMut<T> {}
impl<T> HeldMut<T> {
    /// The pointer to the contents; the holder upholds the aliasing rules.
    pub(crate) fn ptr(&self) -> *mut T {
        self.0.with(|p| p)
    }
}
