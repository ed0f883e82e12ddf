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
    /// A pointer that outlives the call, for a reference handed out by a guard (`Deref`);
    /// the loom build sees the access when the pointer is taken.
    pub(crate) fn escape(&self) -> *mut T {
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
