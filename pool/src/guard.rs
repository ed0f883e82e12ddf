//! [`Pooled`]: the guard a checkout returns.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::time::Duration;

use crate::defer::OnDrop;
use crate::error::BoxError;
use crate::shared::{Held, Release};
use crate::stats::DestroyReason;

/// A checked-out object. Derefs to `T`; on drop it runs the reset and the health check
/// ([`Poolable::reset`](crate::Poolable::reset) and
/// [`is_healthy`](crate::Poolable::is_healthy), or the builder's closures) and returns the
/// object to the pool (or destroys it when unhealthy, used up, past its lifetime, or the
/// pool is closed).
///
/// The guard holds no reference count: the object it owns keeps the pool's shared state
/// alive, even after every `Pool` handle is dropped (the object is then destroyed on
/// return). Returning it when nobody waits costs no locked instruction (a store and, on
/// Linux, a compiler fence; see the crate docs).
pub struct Pooled<T: Send + 'static> {
    held: Held<T>,
}

impl<T: Send + 'static> Pooled<T> {
    /// Wraps owned slot `held` after `Shared::checkout` recorded the checkout.
    pub(crate) fn new(held: Held<T>) -> Self {
        Pooled { held }
    }

    /// What the pool knows about this object: id, age, how long this checkout has lasted,
    /// use count.
    #[must_use]
    pub fn metadata(this: &Self) -> crate::ObjectMeta {
        this.held.shared().meta(this.held.slot())
    }

    /// The object's id, unique within its pool (as in `PoolEvent`s).
    #[must_use]
    pub fn id(this: &Self) -> u64 {
        this.held.cell().id()
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
    ///
    /// # Errors
    /// The guard and the hook's error when the `on_detach` hook refuses.
    pub fn try_detach(this: Self) -> Result<T, (Self, BoxError)> {
        let shared = this.held.shared();
        if let Some(hook) = &shared.hooks().on_detach {
            let meta = shared.meta(this.held.slot());
            // SAFETY: the guard owns the slot, which holds its object.
            if let Err(e) = unsafe { this.held.cell().with_obj_mut(|obj| hook(obj, meta)) } {
                return Err((this, e));
            }
        }
        let this = ManuallyDrop::new(this);
        let (obj, owed) = this.held.shared().detach(this.held.slot());
        let (n, panic) = owed.count();
        // SAFETY: the guard's last use: `this` is never dropped (ManuallyDrop).
        unsafe { this.held.settle(n) };
        if let Some(p) = panic.filter(|_| !std::thread::panicking()) {
            // A waker's panic (capacity handed to a waiter) reaches the caller, as it
            // would have without the detour; the object goes with the unwind.
            drop(obj);
            std::panic::resume_unwind(p);
        }
        Ok(obj)
    }

    /// Destroys the object instead of returning it (e.g. a connection in a bad state).
    pub fn discard(this: Self) {
        let this = ManuallyDrop::new(this);
        // SAFETY: the guard's last use: `this` is never dropped (ManuallyDrop).
        unsafe { this.destroy_last(DestroyReason::Discarded) };
    }

    /// Whether the object may still be handed out: the pool is open and the object within
    /// its lifetime. Asked when a future settled at its creation is polled, which may be
    /// long after.
    #[inline(always)]
    pub(crate) fn still_good(this: &Self) -> bool {
        let s = this.held.shared();
        // The pool's state word is read as `try_claim` reads it.
        !s.is_closed() && !this.held.cell().expired_at(s.coarse_ms())
    }

    /// Takes back an object that was never handed out (see [`still_good`](Self::still_good)):
    /// it is destroyed away from the caller, without its reset. While the pool is open
    /// (its lifetime was over), returns a handle to the pool and the line that asked for
    /// the object, for the acquisition to start over; `None` once the pool is closed.
    pub(crate) fn take_back(
        this: Self,
    ) -> Option<(crate::Pool<T>, &'static std::panic::Location<'static>)> {
        let this = ManuallyDrop::new(this);
        let (shared, slot) = (this.held.shared(), this.held.slot());
        let location = this.held.cell().location().unwrap_or_else(Location::caller);
        // No handle left: the last one's drop closes the pool, if it has not yet.
        let pool = (!shared.is_closed())
            .then(|| crate::Pool::upgrade(shared))
            .flatten();
        let reason = if pool.is_some() {
            DestroyReason::MaxLifetime
        } else {
            DestroyReason::Closed
        };
        // A reference of our own: the object's, given up as it is destroyed, may be the
        // last one.
        let keep = crate::shared::SharedRef::to(shared);
        keep.get().destroy_aside(slot, reason);
        pool.map(|p| (p, location))
    }

    /// Begins the checkout of a guard made by `Pool::guard_unhanded` as it is handed
    /// over: counted, then stamped (the stamp last, as `Shared::checkout` does).
    #[inline(always)]
    pub(crate) fn hand_over(this: &Self) {
        let cell = this.held.cell();
        cell.count_use();
        cell.stamp_checkout(this.held.shared().coarse_ms());
    }

    /// Gives back an object that was never handed out: its future, settled when it was
    /// made, is dropped unpolled. The object is untouched, so it goes back without its
    /// reset, health check or `on_release`, and it was never counted as checked out (not
    /// in `acquired`, not against `max_uses`). Past its lifetime it is destroyed; a waiter,
    /// `close` or a shrink take it as they would a returned one.
    pub(crate) fn give_back_unused(this: Self) {
        let this = ManuallyDrop::new(this);
        let (shared, cell, slot) = (this.held.shared(), this.held.cell(), this.held.slot());
        let now = shared.coarse_ms();
        let owed = if cell.expired_at(now) {
            shared.destroy(slot, DestroyReason::MaxLifetime)
        } else {
            cell.stamp_returned(now);
            shared.release_slot(cell, slot)
        };
        let (n, panic) = owed.count();
        // SAFETY: the guard's last use: `this` is never dropped (ManuallyDrop).
        unsafe { this.held.settle(n) };
        crate::shared::resume(panic);
    }

    /// Destroys the object and gives up the guard's reference.
    ///
    /// # Safety
    /// The guard's last use: it is never touched or dropped afterwards (`ManuallyDrop`,
    /// or it is being dropped).
    unsafe fn destroy_last(&self, reason: DestroyReason) {
        let (n, panic) = self.held.shared().destroy(self.held.slot(), reason).count();
        // SAFETY: the caller's promise: this is the guard's last use.
        unsafe { self.held.settle(n) };
        crate::shared::resume(panic);
    }

    /// Destroys the object if dropped armed: around user code (`reset`, `is_healthy`,
    /// `on_release`) whose panic must not cost capacity. The panic goes on to the caller.
    fn destroy_on_unwind(&self) -> OnDrop<impl FnOnce() + '_> {
        OnDrop::new(move || {
            // SAFETY: the guard's last use: the guard is being dropped while this unwinds.
            unsafe { self.destroy_last(DestroyReason::Panicked) };
        })
    }
}

impl<T: Send + 'static> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.held.obj()
    }
}

impl<T: Send + 'static> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.held.obj_mut()
    }
}

impl<T: Send + 'static> Drop for Pooled<T> {
    /// The common return (healthy, no `on_release` hook, not used up, not sampled for the
    /// usage histogram, not expired, nobody waiting) is inlined: the reset and health
    /// check, a stamp and the fast release (a store; `Shared::try_release_fast`).
    /// Everything else goes through `Pooled::return_slow`.
    #[inline]
    fn drop(&mut self) {
        let shared = self.held.shared();
        let unwind = self.destroy_on_unwind();
        let recycle = &shared.hooks().recycle;
        let cell = self.held.cell();
        // SAFETY: the guard owns the slot, which holds its object.
        let healthy = unsafe { cell.with_obj_mut(|obj| (recycle.run)(recycle, obj)) };
        unwind.disarm();
        // Owner-only slot metadata (Relaxed: see `Slot`).
        let now = shared.coarse_ms();
        let uses = cell.uses();
        if healthy
            && uses & 15 != 1
            && shared.hooks().on_release.is_none()
            && !shared.used_up(uses)
            && !cell.expired_at(now)
        {
            cell.stamp_returned(now);
            match shared.try_release_fast(cell, self.held.slot(), uses) {
                Release::Done => return,
                Release::Slow(j) => {
                    let (n, panic) = shared.release_slow(j).count();
                    // SAFETY: the guard's last use (it is being dropped).
                    unsafe { self.held.settle(n) };
                    crate::shared::resume(panic);
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
    /// rejected, used up or past its lifetime, and a release that must hand over or take
    /// the slow path.
    #[cold]
    #[inline(never)]
    fn return_slow(&mut self, healthy: bool, now: u64, uses: u64) {
        let shared = self.held.shared();
        let slot = self.held.slot();
        let rejected = healthy
            && shared.hooks().on_release.as_ref().is_some_and(|h| {
                let meta = shared.meta(slot);
                let unwind = self.destroy_on_unwind();
                // SAFETY: the guard owns the slot, which holds its object.
                let r = unsafe { self.held.cell().with_obj_mut(|obj| h(obj, meta)) }.is_err();
                unwind.disarm();
                r
            });
        let cell = self.held.cell();
        if uses & 15 == 1 {
            // Only a checkout a caller held is a usage sample: an object returned after its
            // checkout step was left behind (`checkout::finish_left`) was never held.
            if let Some(since) = cell.held_since() {
                shared.record_usage(Duration::from_millis(now.saturating_sub(since)));
            }
        }
        cell.stamp_returned(now);
        let owed = if !healthy {
            shared.destroy(slot, DestroyReason::Unhealthy)
        } else if rejected {
            shared.destroy(slot, DestroyReason::Rejected)
        } else if shared.used_up(uses) {
            shared.destroy(slot, DestroyReason::MaxUses)
        } else if cell.expired_at(now) {
            // Past its lifetime: retired here, so it is never handed to a waiter (under
            // steady contention an object may never be idle).
            shared.destroy(slot, DestroyReason::MaxLifetime)
        } else {
            shared.release_slot(cell, slot)
        };
        let (n, panic) = owed.count();
        // SAFETY: the guard's last use (it is being dropped).
        unsafe { self.held.settle(n) };
        crate::shared::resume(panic);
    }
}

impl<T: Send + 'static + fmt::Debug> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pooled").field(&**self).finish()
    }
}
