//! [`OnDrop`]: the one drop guard the crate uses for "do this unless disarmed" — destroy an
//! object whose reset panicked, give a claimed slot back if a predicate panics, settle a
//! create whose task was dropped, free a maintenance pass that unwound.

use std::mem::ManuallyDrop;

/// Runs its closure when dropped (also while a panic unwinds), unless disarmed.
pub(crate) struct OnDrop<F: FnOnce()>(ManuallyDrop<F>);

impl<F: FnOnce()> OnDrop<F> {
    pub(crate) fn new(f: F) -> Self {
        OnDrop(ManuallyDrop::new(f))
    }

    /// Forgets the closure without running it.
    pub(crate) fn disarm(self) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped (ManuallyDrop), so the closure is dropped here
        // once and never run.
        unsafe { ManuallyDrop::drop(&mut this.0) };
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs at most once and `disarm` never lets it run: the closure is
        // taken exactly once.
        let f = unsafe { ManuallyDrop::take(&mut self.0) };
        f();
    }
}

#[cfg(test)]
mod tests {
    use super::OnDrop;
    use std::cell::Cell;

    #[test]
    fn runs_on_drop_and_on_unwind_but_not_when_disarmed() {
        let n = Cell::new(0);
        drop(OnDrop::new(|| n.set(n.get() + 1)));
        assert_eq!(n.get(), 1);
        OnDrop::new(|| n.set(n.get() + 10)).disarm();
        assert_eq!(n.get(), 1);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = OnDrop::new(|| n.set(n.get() + 100));
            panic!("unwind");
        }));
        assert!(r.is_err());
        assert_eq!(n.get(), 101);
    }
}
