//! [`Pooled`]: the guard a checkout returns.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use std::time::Duration;

use crate::error::BoxError;
use crate::shared::{DestroyOnUnwind, Release, Shared};
use crate::slots::Slot;
use crate::stats::DestroyReason;
use crate::sync::Ordering;

/// A checked-out object. Derefs to `T`; on drop it runs [`Poolable::reset`] and
/// [`Poolable::is_healthy`] and returns the object to the pool (or destroys it when
/// unhealthy, used up, or the pool is closed).
///
/// The guard holds no reference count: the object it owns keeps the pool's shared state
/// alive, even after every `Pool` handle is dropped (the object is then destroyed on
/// return). Returning it when nobody waits costs no locked instruction (a store and, on
/// Linux, a compiler fence; see the crate docs).
pub struct Pooled<T: Send + 'static> {
    shared: NonNull<Shared<T>>,
    /// The slot (cached: saves the segment lookup on every deref and on return).
    cell: NonNull<Slot<T>>,
    slot: usize,
    _owns: PhantomData<T>,
}

// SAFETY: the guard owns its object exclusively (the slot protocol); sending it sends the
// object (`T: Send`) and a pointer to `Shared`, which is `Sync` for `T: Send`.
unsafe impl<T: Send + 'static> Send for Pooled<T> {}
// SAFETY: `&Pooled<T>` only gives `&T`, so sharing it needs `T: Sync`.
unsafe impl<T: Send + 'static + Sync> Sync for Pooled<T> {}

impl<T: Send + 'static> Pooled<T> {
    /// Wraps owned slot `slot` after `Shared::checkout` recorded the checkout. `shared` is
    /// the pointer `Box::into_raw` returned (its provenance allows freeing; see `Owed`).
    pub(crate) fn new(shared: NonNull<Shared<T>>, slot: usize, cell: &Slot<T>) -> Self {
        Pooled {
            shared,
            cell: NonNull::from(cell),
            slot,
            _owns: PhantomData,
        }
    }

    fn shared(&self) -> &Shared<T> {
        // SAFETY: while this guard's slot is BUSY the allocation is alive: its object
        // holds a reference (see `Owed`) that only the object's destruction gives up.
        unsafe { self.shared.as_ref() }
    }

    /// What the pool knows about this object: id, age, how long this checkout has lasted,
    /// use count.
    #[must_use]
    pub fn metadata(this: &Self) -> crate::ObjectMeta {
        this.shared().meta(this.slot)
    }

    /// The object's id, unique within its pool (as in `PoolEvent`s).
    #[must_use]
    pub fn id(this: &Self) -> u64 {
        this.cell().id.load(crate::sync::Ordering::Relaxed)
    }

    fn cell(&self) -> &Slot<T> {
        // SAFETY: slots live as long as the shared state (see `shared`).
        unsafe { self.cell.as_ref() }
    }

    fn obj(&self) -> *mut T {
        self.cell().obj()
    }

    /// Takes the object out of the pool for good; its capacity is freed at once.
    ///
    /// # Panics
    /// If an `on_detach` hook rejects it (the object then stays in the pool); use
    /// [`try_detach`](Pooled::try_detach) to handle that.
    #[must_use]
    pub fn detach(this: Self) -> T {
        match Self::try_detach(this) {
            Ok(obj) => obj,
            Err((_guard, e)) => panic!(
                "riptide_pool: the on_detach hook refused to let this object leave the pool \
                 ({e}); use Pooled::try_detach to handle a refusal"
            ),
        }
    }

    /// [`detach`](Pooled::detach), unless an `on_detach` hook rejects it: then the guard
    /// comes back with the hook's error (the object stays pooled when it is dropped).
    pub fn try_detach(this: Self) -> Result<T, (Self, BoxError)> {
        // SAFETY: a copy of the guard's pointer; the allocation lives while the guard does.
        let shared = unsafe { this.shared.as_ref() };
        if let Some(hook) = &shared.hooks.on_detach {
            let meta = shared.meta(this.slot);
            // SAFETY: the guard owns the object; nothing else references it now.
            if let Err(e) = hook(unsafe { &mut *this.obj() }, meta) {
                return Err((this, e));
            }
        }
        let this = ManuallyDrop::new(this);
        let (obj, owed) = this.shared().detach(this.slot);
        this.settle(owed.0);
        Ok(obj)
    }

    /// Destroys the object instead of returning it (e.g. a connection in a bad state).
    pub fn discard(this: Self) {
        let this = ManuallyDrop::new(this);
        let owed = this.shared().destroy(this.slot, DestroyReason::Discarded);
        this.settle(owed.0);
    }

    /// Gives up the `n` references returning the slot left us owing (see `Owed`; the
    /// count only: a reference passed in would be protected while we may free). Call after
    /// the last use of `self.shared()`.
    #[inline]
    fn settle(&self, n: usize) {
        for _ in 0..n {
            // SAFETY: the references are ours, `self.shared` came from `Box::into_raw`, and
            // no `&Shared` is used after this.
            unsafe { Shared::unref(self.shared) };
        }
    }
}

impl<T: Send + 'static> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard owns the slot, which holds an initialised object.
        unsafe { &*self.obj() }
    }
}

impl<T: Send + 'static> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access.
        unsafe { &mut *self.obj() }
    }
}

impl<T: Send + 'static> Drop for Pooled<T> {
    /// The common return (healthy, no `on_release` hook, not used up, not sampled for the
    /// usage histogram, nobody waiting) is inlined: `reset`, `is_healthy`, a stamp and
    /// the fast release (a store; `Shared::try_release_fast`). Everything else goes
    /// through `Pooled::return_slow`.
    #[inline]
    fn drop(&mut self) {
        let shared = self.shared();
        let unwind = DestroyOnUnwind {
            shared: self.shared,
            slot: self.slot,
        };
        let cell = self.cell();
        // SAFETY: the guard owns the object; no other reference to it exists now.
        let obj = unsafe { &mut *cell.obj() };
        let healthy = (shared.hooks.recycle.run)(&shared.hooks.recycle, obj);
        unwind.disarm();
        // Owner-only slot metadata (Relaxed: see `Slot`).
        let now = shared.coarse_ms();
        let uses = cell.uses.load(Ordering::Relaxed);
        if healthy
            && uses & 15 != 1
            && shared.hooks.on_release.is_none()
            && !shared.used_up(uses)
            && cell.expires_ms.load(Ordering::Relaxed) > now
        {
            cell.stamp_returned(now);
            match shared.try_release_fast(cell) {
                Release::Done => return,
                Release::Slow => {
                    let owed = shared.release_slow(self.slot);
                    self.settle(owed.0);
                    return;
                }
            }
        }
        self.return_slow(healthy, now, uses);
    }
}

impl<T: Send + 'static> Pooled<T> {
    /// The rest of `drop`: the `on_release` hook, the usage sample (every 16th checkout of
    /// each object records how long it was held), destroying an object that is unhealthy,
    /// rejected or used up, and a release that must hand over or take the slow path.
    #[cold]
    #[inline(never)]
    fn return_slow(&mut self, healthy: bool, now: u64, uses: u64) {
        let shared = self.shared();
        let cell = self.cell();
        let rejected = healthy
            && shared.hooks.on_release.as_ref().is_some_and(|h| {
                let unwind = DestroyOnUnwind {
                    shared: self.shared,
                    slot: self.slot,
                };
                let meta = shared.meta(self.slot);
                // SAFETY: the guard owns the object; no other reference to it exists now.
                let r = h(unsafe { &mut *cell.obj() }, meta).is_err();
                unwind.disarm();
                r
            });
        if uses & 15 == 1 {
            let held = now.saturating_sub(cell.held_since().unwrap_or(now));
            shared.usage_hist.record(Duration::from_millis(held));
        }
        cell.stamp_returned(now);
        let owed = if !healthy {
            shared.destroy(self.slot, DestroyReason::Unhealthy)
        } else if rejected {
            shared.destroy(self.slot, DestroyReason::Rejected)
        } else if shared.used_up(uses) {
            shared.destroy(self.slot, DestroyReason::MaxUses)
        } else if cell.expires_ms.load(Ordering::Relaxed) <= now {
            // Past its lifetime: retired here, so it is never handed to a waiter (under
            // steady contention an object may never be idle).
            shared.destroy(self.slot, DestroyReason::MaxLifetime)
        } else {
            shared.release_slot(cell, self.slot)
        };
        self.settle(owed.0);
    }
}

impl<T: Send + 'static + fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&**self).finish()
    }
}
