//! The slot array: one slot per live object, never moved, grown in segments.
//!
//! Segment 0 holds `BASE` slots, segment `k ≥ 1` holds `BASE << (k - 1)`, so index `i` is
//! found with one `leading_zeros` and the array can grow without moving an object that a
//! guard points into. A pool starts with segment 0 and adds segments as creates need
//! them, so a large `max_size` costs nothing until the pool grows into it. Segments are
//! only ever added (under the array's own growth lock) and freed when the pool is freed.

use std::mem::MaybeUninit;
use std::panic::Location;
use std::ptr;

use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, HeldMut, Mutex, Ordering, UnsafeCell};

/// Slot state word. The low two bits are the state, `RECLAIMED` is a flag, and a stacked
/// slot keeps its link to the next one above `idle.rs`'s `LINK_SHIFT`.
///
/// - `EMPTY`: no object. `IDLE`: an object nobody holds, where it was returned (a calm
///   pool). `STACKED`: an object nobody holds, on the idle stack (a scarce pool; only a
///   pop takes it). `BUSY`: an object owned by one party (a guard, a waiter it was handed
///   to, a creator, or a destroyer).
/// - `RECLAIMED` (on `BUSY`): the maintenance task gave this checkout's capacity back
///   (`reclaim_leaked`): if the guard ever returns, the object is destroyed without freeing
///   capacity again. Also recorded in `Slot::reported` (`RECLAIM_MARK`), which a racing
///   release's plain store cannot overwrite. The fast release only acts on exactly `BUSY`,
///   so a marked slot's release takes the slow path.
pub(crate) const EMPTY: usize = 0;
pub(crate) const IDLE: usize = 1;
pub(crate) const BUSY: usize = 2;
pub(crate) const STACKED: usize = 3;
pub(crate) const STATE_MASK: usize = 0b11;
pub(crate) const RECLAIMED: usize = 0b1_0000;
/// In `Slot::stamp_ms`: the stamp is when the object was made or returned (nobody holds
/// it: idle, being handed to a waiter, or being validated for the next holder). Without
/// it, the stamp is when the checkout holding the object began.
pub(crate) const STAMP_IDLE: u64 = 1 << 63;
/// In `Slot::stamp_ms`: claimed by a future not yet polled, which hands the object over
/// (and begins its checkout) at its first poll.
pub(crate) const STAMP_CLAIMED: u64 = 1 << 62;
/// In `Slot::reported`: with the checkout's `uses`, "this checkout was reclaimed".
pub(crate) const RECLAIM_MARK: u64 = 1 << 63;

#[cfg(not(riptide_model))]
const BASE: usize = 8;
/// Under the model checkers segment 0 is one slot, so the models cover the index
/// arithmetic across segments, and one that starts a pool with fewer slots
/// (`model::first_slots`) reaches the growth path with its second object.
#[cfg(riptide_model)]
const BASE: usize = 1;
/// The slots a new pool allocates (segment 0 natively); the rest come as creates need them.
pub(crate) const FIRST_SEGMENT: usize = 8;
const SEGMENTS: usize = 24;
/// The most slots a pool can have.
pub(crate) const MAX_SLOTS: usize = BASE << (SEGMENTS - 1);

pub(crate) struct Slot<T> {
    pub(super) state: AtomicUsize,
    pub(super) value: UnsafeCell<MaybeUninit<T>>,
    /// Metadata below is written only by the slot's owner (a `BUSY` holder) and read
    /// racily by `stats()`: `Relaxed` suffices, nothing is published through it.
    pub(super) id: AtomicU64,
    /// Checkouts of the current object.
    pub(super) uses: AtomicU64,
    /// Where the current holder took it (`#[track_caller]`).
    pub(super) location: AtomicPtr<Location<'static>>,
    /// Coarse-clock ms from which on the object is retired: its creation time plus
    /// `Shared::lifetime_ms(id)`, from which `ObjectMeta::age` is derived.
    pub(super) expires_ms: AtomicU64,
    /// Coarse-clock ms of the checkout that holds the object (leak scans, usage), or, with
    /// `STAMP_IDLE`, of its creation or last return (idle eviction, `validation_interval`).
    /// Read through the methods below.
    pub(super) stamp_ms: AtomicU64,
    /// The `uses` value of the checkout already reported as a suspected leak (0: none),
    /// with `RECLAIM_MARK` set once that checkout's capacity was reclaimed.
    pub(super) reported: AtomicU64,
    /// Who took the current checkout (`rt::caller`; 0: not recorded), written at
    /// checkout when deadlock detection is on and read by its checks.
    pub(super) holder: AtomicU64,
}

impl<T> Slot<T> {
    fn new() -> Self {
        Slot {
            state: AtomicUsize::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
            id: AtomicU64::new(0),
            uses: AtomicU64::new(0),
            location: AtomicPtr::new(ptr::null_mut()),
            expires_ms: AtomicU64::new(u64::MAX),
            stamp_ms: AtomicU64::new(STAMP_IDLE),
            reported: AtomicU64::new(0),
            holder: AtomicU64::new(0),
        }
    }

    /// Counts a checkout of the object (owner only; Relaxed: see above).
    #[inline(always)]
    pub(crate) fn count_use(&self) {
        self.uses
            .store(self.uses.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Whether the object is past its lifetime at coarse-clock `now_ms`. Relaxed: the
    /// owner's own field (see above), written before the slot was published to whoever
    /// reads it now (a claim's Acquire, or the installer itself).
    #[inline(always)]
    pub(crate) fn expired_at(&self, now_ms: u64) -> bool {
        self.expires_ms.load(Ordering::Relaxed) <= now_ms
    }

    /// Stamps a checkout that begins now (owner only). Release: a leak scan that reads
    /// this stamp with Acquire also sees the checkout's `uses` and `location`, written
    /// before it.
    #[inline]
    pub(crate) fn stamp_checkout(&self, now_ms: u64) {
        self.stamp_ms.store(now_ms, Ordering::Release);
    }

    /// Stamps a claim by a future not yet polled (owner only; `STAMP_CLAIMED`). Release,
    /// as `stamp_checkout`, for the deadlock check's holder.
    #[inline]
    pub(crate) fn stamp_claimed(&self, now_ms: u64) {
        self.stamp_ms
            .store(now_ms | STAMP_CLAIMED, Ordering::Release);
    }

    /// Stamps the object as made or returned now (owner only): nobody holds it.
    #[inline]
    pub(crate) fn stamp_returned(&self, now_ms: u64) {
        self.stamp_ms.store(now_ms | STAMP_IDLE, Ordering::Relaxed);
    }

    /// When the object was made or last returned (meaningful while nobody holds it).
    #[inline]
    pub(crate) fn idle_since(&self) -> u64 {
        self.stamp_ms.load(Ordering::Relaxed) & !STAMP_IDLE
    }

    /// When the checkout holding the object began; `None` while no caller holds it (it
    /// is idle, made, being handed over or being validated, or claimed by a future not
    /// yet polled). Acquire: see `stamp_checkout`.
    #[inline]
    pub(crate) fn held_since(&self) -> Option<u64> {
        let s = self.stamp_ms.load(Ordering::Acquire);
        (s & (STAMP_IDLE | STAMP_CLAIMED) == 0).then_some(s)
    }

    /// [`held_since`](Self::held_since), or when a future not yet polled claimed it:
    /// whether a caller has the object, for the deadlock check (a future's maker holds
    /// its claim, though no checkout has begun).
    #[inline]
    pub(crate) fn claimed_since(&self) -> Option<u64> {
        let s = self.stamp_ms.load(Ordering::Acquire);
        (s & STAMP_IDLE == 0).then_some(s & !STAMP_CLAIMED)
    }

    /// The current object's id (racy outside its owner; Relaxed: see above).
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// Checkouts of the current object so far (owner only; Relaxed: see above).
    #[inline]
    pub(crate) fn uses(&self) -> u64 {
        self.uses.load(Ordering::Relaxed)
    }

    /// Where the current holder took the object (owner only; Relaxed: see above).
    #[inline]
    pub(crate) fn location(&self) -> Option<&'static Location<'static>> {
        // SAFETY: the only pointers stored are null and `&'static Location`s (`checkout`).
        unsafe { self.location.load(Ordering::Relaxed).as_ref() }
    }

    /// Whether the slot's object sits idle where it was returned (a calm pool's idle
    /// object; a stacked one is not: only a pop takes it). Relaxed: a hint, confirmed by
    /// the claim's CAS.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.state.load(Ordering::Relaxed) == IDLE
    }

    /// The checkout a caller holds the object by, read from outside it (leak scans, a
    /// drain's report): `None` unless a caller holds it.
    ///
    /// A checkout is known by its start stamp. The read is a seqlock's: the stamp (none
    /// while nobody holds the object: being validated or handed over is not being held),
    /// then the use count and location written before it, then the stamp again. The same
    /// stamp twice is the same checkout throughout: a later checkout is stamped later.
    pub(crate) fn checkout_record(&self) -> Option<CheckoutRecord> {
        let state = self.state.load(Ordering::Relaxed);
        if state & STATE_MASK != BUSY {
            return None;
        }
        let since = self.held_since()?;
        let uses = self.uses.load(Ordering::Relaxed);
        let location = self.location.load(Ordering::Relaxed);
        // Acquire: orders the two loads above before the re-read (seqlock reader).
        crate::sync::fence(Ordering::Acquire);
        if uses == 0 || self.stamp_ms.load(Ordering::Relaxed) != since {
            return None;
        }
        Some(CheckoutRecord {
            state,
            since,
            uses,
            // SAFETY: as in `location`.
            location: unsafe { location.as_ref() },
        })
    }

    /// Marks checkout number `uses` as reported as a suspected leak; `false` if it was
    /// already (one report per checkout). Only the maintenance pass writes the record
    /// outside a reclaim, and passes never overlap (Relaxed: nothing is published).
    pub(crate) fn report_once(&self, uses: u64) -> bool {
        if self.reported.load(Ordering::Relaxed) >= uses {
            return false;
        }
        self.reported.store(uses, Ordering::Relaxed);
        true
    }

    /// Exclusive access to the object held across calls (a checkout step holds it across
    /// its `.await`s), which the loom build tracks as one access until the handle drops.
    /// Only the slot's owner may dereference its pointer (`HeldMut::ptr`, cast to `T`), and
    /// only while the slot holds an object.
    #[inline]
    pub(crate) fn hold_obj(&self) -> HeldMut<MaybeUninit<T>> {
        self.value.hold_mut()
    }

    /// Runs `f` on the object.
    ///
    /// # Safety
    /// The caller owns the slot (`BUSY`, by its own CAS or a hand-over) and the slot holds
    /// an object.
    #[inline]
    pub(crate) unsafe fn with_obj_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: the caller owns the slot and it holds an initialised object, so this is
        // the only reference to it for the call.
        self.value.with_mut(|p| f(unsafe { &mut *p.cast::<T>() }))
    }

    /// Moves `obj` into the slot.
    ///
    /// # Safety
    /// The caller owns the slot and the slot is empty (its old object, if any, was taken).
    #[inline]
    pub(crate) unsafe fn put(&self, obj: T) {
        // SAFETY: the caller owns the empty slot: nothing else reads or writes it.
        self.value.with_mut(|p| unsafe { p.cast::<T>().write(obj) });
    }

    /// Moves the object out; the slot is then empty.
    ///
    /// # Safety
    /// The caller owns the slot, the slot holds an object, and nobody reads it again
    /// before a new one is put in.
    #[inline]
    pub(crate) unsafe fn take(&self) -> T {
        // SAFETY: the caller owns the initialised slot and treats it as empty afterwards.
        self.value.with(|p| unsafe { ptr::read(p.cast::<T>()) })
    }
}

/// A checkout seen from outside its holder ([`Slot::checkout_record`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckoutRecord {
    /// The slot's state word when read (`BUSY`, maybe with flags).
    pub(crate) state: usize,
    /// Coarse-clock ms the checkout began.
    pub(crate) since: u64,
    /// Which checkout of the object it is.
    pub(crate) uses: u64,
    /// Where its holder took it.
    pub(crate) location: Option<&'static Location<'static>>,
}

pub(crate) struct Slots<T> {
    segs: [AtomicPtr<Slot<T>>; SEGMENTS],
    /// Slots allocated so far; indices below it are valid. Grows only, under `growing`.
    cap: AtomicUsize,
    /// Serialises growth (taken only to add a segment: a few times in a pool's life).
    growing: Mutex<()>,
    /// One past the highest slot that ever held an object (creates fill the lowest empty
    /// slot first): the fast path's scan stops here instead of at `cap`.
    used: AtomicUsize,
}

/// The slots a new array starts with.
#[cfg(not(riptide_model))]
fn first_slots() -> usize {
    FIRST_SEGMENT
}

#[cfg(riptide_model)]
std::thread_local! {
    /// Per OS thread: a model's threads all run on the thread that checks it.
    static FIRST_SLOTS: std::cell::Cell<usize> = const { std::cell::Cell::new(FIRST_SEGMENT) };
}

#[cfg(riptide_model)]
fn first_slots() -> usize {
    FIRST_SLOTS.with(std::cell::Cell::get)
}

/// Under the model checkers: the slots the arrays made on this thread start with, from
/// now on (at least 1).
#[cfg(riptide_model)]
pub(crate) fn set_first_slots(n: usize) {
    FIRST_SLOTS.with(|c| c.set(n.max(1)));
}

#[inline]
fn locate(i: usize) -> (usize, usize) {
    if i < BASE {
        (0, i)
    } else {
        let k = (usize::BITS - (i / BASE).leading_zeros()) as usize;
        (k, i - (BASE << (k - 1)))
    }
}

fn seg_len(k: usize) -> usize {
    if k == 0 {
        BASE
    } else {
        BASE << (k - 1)
    }
}

impl<T> Slots<T> {
    /// An array of `FIRST_SEGMENT` slots (under the model checkers, as many as the
    /// model asked for: `first_slots`).
    pub(crate) fn new() -> Self {
        let s = Slots {
            segs: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            cap: AtomicUsize::new(0),
            growing: Mutex::new(()),
            used: AtomicUsize::new(0),
        };
        s.grow_exclusive(first_slots());
        s
    }

    /// Slots usable now. `Acquire` pairs with the `Release` in `grow`, so every segment
    /// below the returned bound is visible.
    #[inline]
    pub(crate) fn cap(&self) -> usize {
        self.cap.load(Ordering::Acquire)
    }

    /// Slots that may hold an object (see `used`). Acquire pairs with `note_used`: whoever
    /// made an object in slot `i` idle did so after raising this past `i`, so a caller
    /// that happens-after that sees the slot; a racing one may miss it, which is a
    /// legitimate order of the two operations.
    #[inline]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Records that slot `i` holds an object (install, slow path).
    pub(crate) fn note_used(&self, i: usize) {
        self.used.fetch_max(i + 1, Ordering::Release);
    }

    /// Makes at least `n` slots available (at most `MAX_SLOTS`).
    pub(crate) fn grow(&self, n: usize) {
        if n.min(MAX_SLOTS) <= self.cap() {
            return;
        }
        let _growing = self.growing.lock();
        self.grow_exclusive(n);
    }

    /// `grow` for a caller that serialises growth (`growing` held, or `new`).
    fn grow_exclusive(&self, n: usize) {
        let mut cap = self.cap.load(Ordering::Relaxed);
        while cap < n.min(MAX_SLOTS) {
            let (k, _) = locate(cap);
            let seg: Box<[Slot<T>]> = (0..seg_len(k)).map(|_| Slot::new()).collect();
            // Release: the initialised slots are visible to whoever loads the pointer.
            self.segs[k].store(Box::into_raw(seg).cast::<Slot<T>>(), Ordering::Release);
            cap += seg_len(k);
            // Release: `cap()` readers that see the new bound see the segment too.
            self.cap.store(cap, Ordering::Release);
        }
    }

    /// The slot at `i`; `i` must be below a value `cap()` returned.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &Slot<T> {
        let (k, off) = locate(i);
        // Acquire pairs with the Release store in `grow`.
        let seg = self.segs[k].load(Ordering::Acquire);
        debug_assert!(!seg.is_null() && off < seg_len(k));
        // SAFETY: `i < cap()` (callers' contract), so segment `k` was published with
        // `seg_len(k) > off` initialised slots, and segments live as long as `self`.
        unsafe { &*seg.add(off) }
    }
}

impl<T> Drop for Slots<T> {
    fn drop(&mut self) {
        for (k, seg) in self.segs.iter().enumerate() {
            let p = seg.load(Ordering::Relaxed);
            if p.is_null() {
                continue;
            }
            // SAFETY: `p` came from `Box::into_raw` of a boxed slice of `seg_len(k)` slots
            // in `grow`; we are its last user. Objects still inside were dropped by the
            // pool before this runs (slots only hold `MaybeUninit`).
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, seg_len(k))) });
        }
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_index_once() {
        let mut expect = (0, 0);
        for i in 0..10_000 {
            assert_eq!(locate(i), expect, "index {i}");
            expect.1 += 1;
            if expect.1 == seg_len(expect.0) {
                expect = (expect.0 + 1, 0);
            }
        }
    }

    #[test]
    fn grow_keeps_existing_slots_in_place() {
        let s: Slots<u64> = Slots::new();
        assert_eq!(s.cap(), 8);
        let p = s.get(5) as *const Slot<u64>;
        s.grow(100);
        assert!(s.cap() >= 100);
        assert_eq!(p, s.get(5) as *const Slot<u64>);
        assert_eq!(s.get(99).state.load(Ordering::Relaxed), EMPTY);
    }
}
