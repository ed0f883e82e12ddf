//! Every reference to the shared state, and every `unsafe` that rests on its lifetime, in
//! one place (as triomphe keeps all of its reference counting in `arc.rs`).
//!
//! The allocation is a `Box<Shared<T>>` turned into a raw pointer once ([`Handle::new`]) and
//! freed once, when its reference count reaches zero ([`unref`]). References are held by:
//! - the [`Handle`] inside every `Pool` (one, shared by its clones through an `Arc`): its
//!   drop **closes** the pool, then gives the reference up;
//! - every live object (taken by `install`, handed to whoever destroys or detaches it as
//!   an [`Owed`]): so a guard needs no count of its own ([`Held`]), and the memory outlives
//!   the last handle while objects are still out;
//! - every [`SharedRef`]: a create in flight, a partition in its gate's list, an armed
//!   deadline sweep. It keeps the memory, never the pool open.
//!
//! The fast release's last reads happen after its object may already be someone else's
//! (invariant I7 in handoff.rs): it announces the pool in its thread's hazard record, and
//! [`unref`] waits for announcements to end before freeing.

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::shared::slots::Slot;
use crate::sync::{AtomicUsize, Ordering};

use super::Shared;

/// References to the allocation a caller now owes, after settling a slot: `destroy` and
/// `detach` hand the object's reference to the caller, who gives it up once done with the
/// pool.
///
/// A caller that holds a reference of its own (a `Pool` handle, a [`SharedRef`]) gives them
/// up with [`never`](Owed::never), which cannot be the last; a guard with [`Held::settle`],
/// after its last use of `&Shared` (freeing inside a `&self` method would free memory a
/// live reference points to).
#[must_use = "owed references must be given up"]
pub(crate) struct Owed<'a>(usize, &'a AtomicUsize, Option<Panic>);

/// A panic caught while settling a slot (a waker that panicked when the freed capacity
/// was handed on), resumed once the references it would otherwise have leaked are given
/// up.
pub(crate) type Panic = Box<dyn std::any::Any + Send + 'static>;

impl<'a> Owed<'a> {
    pub(super) fn new(n: usize, refs: &'a AtomicUsize) -> Self {
        Owed(n, refs, None)
    }

    /// Nothing owed.
    pub(super) fn none(refs: &'a AtomicUsize) -> Self {
        Owed(0, refs, None)
    }

    /// The same, with a panic to resume once they are given up.
    pub(super) fn with_panic(mut self, panic: Option<Panic>) -> Self {
        self.2 = panic;
        self
    }

    /// For callers that hold a reference of their own: gives the owed ones back (never the
    /// last, so never a free), then resumes a panic caught while settling, if any.
    pub(crate) fn never(self) {
        if self.0 > 0 {
            // Release: our uses of the pool happen-before whoever frees it.
            let before = self.1.fetch_sub(self.0, Ordering::Release);
            debug_assert!(
                before > self.0,
                "a caller holding a reference gave up the last one"
            );
        }
        resume(self.2);
    }

    /// How many are owed, and a panic to resume once they are given up (for a guard to
    /// settle after its last use, then [`resume`]).
    pub(crate) fn count(self) -> (usize, Option<Panic>) {
        (self.0, self.2)
    }
}

/// Resumes a panic caught while settling a slot, unless this thread is already unwinding
/// (a destroy run by a guard's drop while a `reset` panic unwinds): a second panic there
/// would abort the process, so that one is dropped.
pub(crate) fn resume(panic: Option<Panic>) {
    if let Some(p) = panic {
        if !std::thread::panicking() {
            std::panic::resume_unwind(p);
        }
    }
}

/// Drops one reference; the last frees the allocation.
///
/// # Safety
/// The caller owns one reference, `this` carries the provenance of the original
/// `Box::into_raw`, no `&Shared` derived from it is used afterwards, and the caller does
/// not use `this` afterwards.
unsafe fn unref<T: Send + 'static>(this: NonNull<Shared<T>>) {
    // SAFETY: the caller's reference keeps the allocation alive for this call.
    let shared = unsafe { this.as_ref() };
    // AcqRel: every holder's last use of the pool happens-before the free (the same
    // argument as `Arc`'s drop).
    if shared.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
        // A fast release may still be reading the state word after its object was
        // destroyed; it announced this pool for exactly that window (I7).
        shared.hazards.wait_clear(this.as_ptr() as usize);
        // SAFETY: no references remain; the pointer came from `Box::into_raw`.
        drop(unsafe { Box::from_raw(this.as_ptr()) });
    }
}

/// The counted pointer inside every `Pool`: dropping the last one closes the pool, then
/// gives up the reference.
pub(crate) struct Handle<T: Send + 'static>(NonNull<Shared<T>>);

// SAFETY: a counted pointer to `Shared<T>`, which is `Send + Sync` for `T: Send + 'static`
// (see `Shared`).
unsafe impl<T: Send + 'static> Send for Handle<T> {}
// SAFETY: as above.
unsafe impl<T: Send + 'static> Sync for Handle<T> {}

impl<T: Send + 'static> Handle<T> {
    /// Moves `shared` to the heap; the handle holds its first reference.
    pub(crate) fn new(shared: Shared<T>) -> Self {
        // SAFETY: `Box::into_raw` never returns null.
        let raw = unsafe { NonNull::new_unchecked(Box::into_raw(Box::new(shared))) };
        // SAFETY: just allocated; nobody else sees it yet.
        unsafe { raw.as_ref() }
            .self_ptr
            .store(raw.as_ptr(), Ordering::Relaxed);
        Handle(raw)
    }

    #[inline]
    pub(crate) fn get(&self) -> &Shared<T> {
        // SAFETY: the handle's reference keeps the allocation alive while `self` lives.
        unsafe { self.0.as_ref() }
    }

    /// A guard's view of owned slot `slot` (see [`Held`]).
    #[inline]
    pub(crate) fn held(&self, slot: usize, cell: &Slot<T>) -> Held<T> {
        Held {
            shared: self.0,
            cell: NonNull::from(cell),
            slot,
            _owns: PhantomData,
        }
    }

    /// Identifies the pool (the allocation's address).
    pub(crate) fn addr(&self) -> *const Shared<T> {
        self.0.as_ptr()
    }
}

impl<T: Send + 'static> Drop for Handle<T> {
    fn drop(&mut self) {
        // Closes the pool: idle objects are destroyed; each one still out keeps the
        // allocation alive through its own reference until it comes back.
        self.get().close();
        // SAFETY: the handle's reference is given up here, once, after its last use; the
        // pointer came from `Box::into_raw` in `new`.
        unsafe { unref(self.0) };
    }
}

/// A counted reference that keeps the allocation alive without keeping the pool open:
/// dropping the last `Pool` still closes it at once.
pub(crate) struct SharedRef<T: Send + 'static>(NonNull<Shared<T>>);

// SAFETY: a counted pointer to `Shared<T>`, which is `Send + Sync` (see `Shared`).
unsafe impl<T: Send + 'static> Send for SharedRef<T> {}
// SAFETY: as above.
unsafe impl<T: Send + 'static> Sync for SharedRef<T> {}

impl<T: Send + 'static> SharedRef<T> {
    /// A new reference to `shared`, which the caller's own reference keeps alive.
    pub(crate) fn to(shared: &Shared<T>) -> Self {
        // Relaxed, as `Arc::clone`: the caller's own reference already orders everything.
        shared.refs.fetch_add(1, Ordering::Relaxed);
        let ptr =
            NonNull::new(shared.self_ptr.load(Ordering::Relaxed)).expect("set by Handle::new");
        SharedRef(ptr)
    }

    pub(crate) fn get(&self) -> &Shared<T> {
        // SAFETY: our reference keeps the allocation alive.
        unsafe { self.0.as_ref() }
    }

    /// A guard's view of owned slot `slot` (claimed, holding an object), which the
    /// object's reference keeps alive from then on, as any guard's (see [`Held`]).
    pub(crate) fn held(&self, slot: usize) -> Held<T> {
        Held {
            shared: self.0,
            cell: NonNull::from(self.get().slot(slot)),
            slot,
            _owns: PhantomData,
        }
    }
}

impl<T: Send + 'static> Clone for SharedRef<T> {
    fn clone(&self) -> Self {
        SharedRef::to(self.get())
    }
}

impl<T: Send + 'static> Drop for SharedRef<T> {
    fn drop(&mut self) {
        // SAFETY: we own one reference and give it up here, after our last use; the
        // pointer came from `Box::into_raw`.
        unsafe { unref(self.0) };
    }
}

/// A guard's view of its slot: no count of its own. While the guard owns the slot
/// (`BUSY`), the slot's object holds a reference, which only its destruction gives up — so
/// the allocation is alive for as long as the guard may use it. The slot pointer is
/// cached (it saves the segment lookup on every deref and return).
pub(crate) struct Held<T: Send + 'static> {
    shared: NonNull<Shared<T>>,
    cell: NonNull<Slot<T>>,
    slot: usize,
    _owns: PhantomData<T>,
}

// SAFETY: a guard owns its object exclusively (the slot protocol); sending it sends the
// object (`T: Send`) and a pointer to `Shared`, which is `Sync` for `T: Send`.
unsafe impl<T: Send + 'static> Send for Held<T> {}
// SAFETY: `&Held<T>` only gives `&T` (through `Pooled`), so sharing it needs `T: Sync`.
unsafe impl<T: Send + Sync + 'static> Sync for Held<T> {}

impl<T: Send + 'static> Held<T> {
    /// The shared state, alive while the guard owns its object (see the type docs).
    #[inline]
    pub(crate) fn shared(&self) -> &Shared<T> {
        // SAFETY: the guard owns a live object of this pool, whose reference keeps the
        // allocation alive; `settle` consumes the view before the reference can go.
        unsafe { self.shared.as_ref() }
    }

    /// The guard's slot.
    #[inline]
    pub(crate) fn cell(&self) -> &Slot<T> {
        // SAFETY: slots live as long as the shared state (see `shared`).
        unsafe { self.cell.as_ref() }
    }

    #[inline]
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    /// A reference to the object for as long as `self` is borrowed.
    #[inline]
    pub(crate) fn obj(&self) -> &T {
        // SAFETY: the guard owns the slot, which holds an initialised object; no `&mut`
        // to it exists while `self` is borrowed shared.
        self.cell().value.with(|p| unsafe { &*p.cast::<T>() })
    }

    /// A mutable reference to the object for as long as `self` is borrowed mutably.
    #[inline]
    pub(crate) fn obj_mut(&mut self) -> &mut T {
        // SAFETY: the guard owns the slot, which holds an initialised object, and `&mut
        // self` makes this the only access.
        self.cell()
            .value
            .with_mut(|p| unsafe { &mut *p.cast::<T>() })
    }

    /// Gives up the `owed` references left after the slot was settled. The count only,
    /// taken before: a reference passed in would be protected while we may free.
    ///
    /// # Safety
    /// This is the guard's last use of `self` and of anything borrowed from it: once the
    /// object's reference is given up, the allocation may be freed.
    #[inline]
    pub(crate) unsafe fn settle(&self, owed: usize) {
        for _ in 0..owed {
            // SAFETY: the references are ours (`destroy`/`detach`/a slow release handed
            // them over), the pointer came from `Box::into_raw`, and the caller makes this
            // its last use of `self`.
            unsafe { unref(self.shared) };
        }
    }
}
