//! The plain cell and waker that the `std` and shuttle backends share (shuttle runs one
//! model thread at a time and does not check cells).

/// An `UnsafeCell` with loom's calling convention: every access goes through `with` /
/// `with_mut`, so the loom build sees each one.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(v: T) -> Self {
        Self(core::cell::UnsafeCell::new(v))
    }
    /// Reads through a pointer to the contents; the caller upholds the aliasing rules.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    /// Writes through a pointer to the contents; the caller upholds the aliasing rules.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
    /// Exclusive access held across calls (an `.await`, say) until the returned handle
    /// drops: the loom build tracks the whole span as one write access.
    pub(crate) fn hold_mut(&self) -> HeldMut<T> {
        HeldMut(self.0.get())
    }
}

/// Exclusive access to an [`UnsafeCell`]'s contents for as long as it lives (`hold_mut`).
#[derive(Debug)]
pub(crate) struct HeldMut<T>(*mut T);
// SAFETY: the handle stands for exclusive access to a `T`, as a `&mut T` does: sending it
// sends that access, which is sound for `T: Send`.
unsafe impl<T: Send> Send for HeldMut<T> {}
impl<T> HeldMut<T> {
    /// The pointer to the contents; the holder upholds the aliasing rules.
    pub(crate) fn ptr(&self) -> *mut T {
        self.0
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
