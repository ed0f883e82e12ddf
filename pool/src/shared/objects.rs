//! Objects into and out of slots: installing a created object, destroying or detaching
//! one, and what the pool knows about it.

use std::time::Duration;

use super::{Owed, Shared};
use crate::shared::slots::{BUSY, EMPTY, STATE_MASK};
use crate::stats::{DestroyReason, PoolEvent};
use crate::sync::Ordering;

impl<T: Send + 'static> Shared<T> {
    /// A new object's id (the ids of a pool's objects are unique).
    pub(crate) fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Puts a freshly created object into an empty slot, which the caller then owns.
    pub(crate) fn install(&self, obj: T, id: u64) -> usize {
        // Occupied slots ≤ size + reclaimed (every object holds capacity, or its capacity
        // was reclaimed and counted there), and `size` includes our reservation (I2): with
        // at least that many slots allocated, an empty one exists. Slots are allocated
        // here, as objects need them. The loads are Relaxed: a stale count can only be low
        // when others reserved meanwhile, and the rescan below covers that race.
        let need = self
            .size
            .load(Ordering::Relaxed)
            .saturating_add(self.reclaimed.load(Ordering::Relaxed));
        self.slots.grow(need);
        let mut scans = 0;
        loop {
            // A CAS can lose to another creator; rescan. Should a scan ever come up empty
            // twice (a racing creator took the slot our count left room for), the array
            // grows rather than spin.
            scans += 1;
            if scans > 2 {
                self.slots.grow(self.slots.cap() + 1);
            }
            for i in 0..self.slots.cap() {
                let slot = self.slots.get(i);
                let st = slot.state.load(Ordering::Relaxed);
                // Acquire pairs with the destroyer's Release: its read of the old object
                // happens-before our write of the new one.
                if st & STATE_MASK == EMPTY
                    && slot
                        .state
                        .compare_exchange(st, BUSY, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    // SAFETY: our CAS made us the slot's only owner, and the slot is empty.
                    unsafe { slot.put(obj) };
                    // The object's reference (`refs.rs`). Relaxed, as `Arc::clone`: the
                    // caller's own reference keeps the allocation alive meanwhile.
                    self.refs.fetch_add(1, Ordering::Relaxed);
                    self.slots.note_used(i);
                    slot.id.store(id, Ordering::Relaxed);
                    slot.uses.store(0, Ordering::Relaxed);
                    slot.reported.store(0, Ordering::Relaxed);
                    let now = self.coarse_ms();
                    slot.stamp_returned(now);
                    slot.expires_ms
                        .store(now.saturating_add(self.lifetime_ms(id)), Ordering::Relaxed);
                    self.counters.created.fetch_add(1, Ordering::Relaxed);
                    self.emit(|| PoolEvent::Created { id });
                    return i;
                }
            }
            std::hint::spin_loop();
        }
    }

    /// Moves the object out of owned slot `i` and frees the slot; returns the object, its
    /// id, and whether its capacity was already reclaimed.
    fn take_out(&self, i: usize) -> (T, u64, bool) {
        let slot = self.slots.get(i);
        // SAFETY: we own slot `i` (BUSY) and it holds an initialised object; the slot is
        // marked EMPTY below, so nobody reads it again before a new object is written.
        let obj = unsafe { slot.take() };
        let id = slot.id.load(Ordering::Relaxed);
        // Zeroed before it is added to the retired total (Release), which `scan` reads
        // first (Acquire): a scan that sees the addition sees the zero, so it never
        // counts these checkouts twice.
        let uses = slot.uses.swap(0, Ordering::Relaxed);
        self.counters
            .retired_uses
            .fetch_add(uses, Ordering::Release);
        // Release: our read of the object happens-before a creator's write (its Acquire
        // CAS). A swap, not a store: a reclaim may mark the slot until this moment, and
        // the mark read here says whether it did.
        let st = slot.state.swap(EMPTY, Ordering::Release);
        // Release, paired with `stats`' Acquire load: a snapshot that counts this
        // destruction also counts the object's creation (which happened before it), so
        // `destroyed` never exceeds `created` in one `PoolStats`.
        self.counters.destroyed.fetch_add(1, Ordering::Release);
        // The mark, not the record: a reclaim marks by CAS, so whether it marked before our
        // CAS is exact here (a mark a fast release overwrote was restored under the lock).
        (obj, id, st & crate::shared::slots::RECLAIMED != 0)
    }

    /// Destroys the object in owned slot `i` and frees its capacity; the object's
    /// reference goes to the caller (see `Owed`).
    pub(crate) fn destroy(&self, i: usize, reason: DestroyReason) -> Owed<'_> {
        let (obj, id, reclaimed) = self.take_out_destroyed(i, reason);
        // The object goes before its capacity does, so a replacement is never created
        // while it still exists (a database's connection limit counts both).
        self.drop_traced(obj, id, reason);
        // Giving the capacity back may wake a waiter whose waker panics: the object's
        // reference is still owed (else the pool's memory is never freed), so the panic
        // travels with it and is resumed once it is given up.
        let back = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.after_take_out(reclaimed);
        }));
        Owed::new(1, &self.refs).with_panic(back.err())
    }

    /// `take_out` for a destroy: the slot is free and the `Destroyed` event is out.
    fn take_out_destroyed(&self, i: usize, reason: DestroyReason) -> (T, u64, bool) {
        let (obj, id, reclaimed) = self.take_out(i);
        self.emit(|| PoolEvent::Destroyed { id, reason });
        (obj, id, reclaimed)
    }

    /// Drops a destroyed object inside its trace span; a panic in its `Drop` is logged.
    fn drop_traced(&self, obj: T, id: u64, reason: DestroyReason) {
        crate::rt::trace::destroy(&self.config.name, id, reason, || {
            drop_object(obj, &self.config.name)
        });
    }

    /// Destroys the object in owned slot `i` as `destroy` does, but drops it away from
    /// the caller (`Env::run_aside`): for an acquisition that finds its object rejected
    /// (by `validate` or a hook) or past its lifetime, whose caller must not wait on a
    /// slow `Drop` past its deadline. The slot is free at once; the capacity comes back
    /// once the object is gone, so a replacement never coexists with it, and a caller that
    /// needs that capacity waits for it in the queue, within its deadline.
    #[cold]
    pub(crate) fn destroy_aside(&self, i: usize, reason: DestroyReason) {
        self.drop_aside(i, reason, Aside::Discard);
    }

    /// Evicts the object in owned slot `i` for the partitions' global gate, dropping it
    /// aside as `destroy_aside` does: the caller that needs the room waits for it in its
    /// queue, within its deadline, not on the evicted object's `Drop`. The gate counted
    /// the eviction in flight ([`Gate::evictions_begin`]) and hears once its unit is back
    /// ([`Gate::eviction_done`]).
    ///
    /// [`Gate::evictions_begin`]: super::Gate::evictions_begin
    /// [`Gate::eviction_done`]: super::Gate::eviction_done
    #[cold]
    pub(super) fn evict_aside(&self, i: usize) {
        self.drop_aside(i, DestroyReason::Evicted, Aside::Eviction);
    }

    fn drop_aside(&self, i: usize, reason: DestroyReason, why: Aside) {
        let (obj, id, reclaimed) = self.take_out_destroyed(i, reason);
        // The object's own reference becomes this counted one, which the work gives up
        // once it has freed the capacity.
        let shared = super::SharedRef::to(self);
        Owed::new(1, &self.refs).never();
        self.env().run_aside(move || {
            let s = shared.get();
            s.drop_traced(obj, id, reason);
            // The gate hears that the eviction is over also when giving its unit back
            // unwinds (a waiter's waker that panics): counted in flight forever, it would
            // keep the gate from making room for a blocked caller (G3). Caught and
            // resumed, not a guard: `eviction_done` may wake a waker that panics too.
            let back = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                s.after_take_out(reclaimed);
            }));
            if why == Aside::Eviction {
                if let Some((gate, _)) = &s.gate {
                    gate.eviction_done();
                }
            }
            if let Err(p) = back {
                std::panic::resume_unwind(p);
            }
        });
    }

    /// Takes the object out of owned slot `i` for good (`Pooled::detach`); the object's
    /// reference goes to the caller, as in `destroy`.
    pub(crate) fn detach(&self, i: usize) -> (T, Owed<'_>) {
        let (obj, _, reclaimed) = self.take_out(i);
        // As in `destroy`: a waker's panic is resumed once the reference is given up.
        let back = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.after_take_out(reclaimed);
        }));
        (obj, Owed::new(1, &self.refs).with_panic(back.err()))
    }

    /// What the pool knows about the object in owned slot `i` (see `ObjectMeta`).
    pub(crate) fn meta(&self, i: usize) -> crate::ObjectMeta {
        let s = self.slots.get(i);
        let now = self.coarse_ms();
        let ms = |from: u64| Duration::from_millis(now.saturating_sub(from));
        let (idle_for, held_for) = match s.held_since() {
            Some(since) => (Duration::ZERO, ms(since)),
            None => (ms(s.idle_since()), Duration::ZERO),
        };
        let id = s.id.load(Ordering::Relaxed);
        let created = (s.expires_ms.load(Ordering::Relaxed)).saturating_sub(self.lifetime_ms(id));
        crate::ObjectMeta {
            id,
            age: ms(created),
            idle_for,
            held_for,
            uses: s.uses.load(Ordering::Relaxed),
        }
    }
}

/// What an object dropped aside was destroyed for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Aside {
    /// An acquisition (or maintenance, or `drain`) discarded it.
    Discard,
    /// The partitions' global gate evicted it: the gate hears when it is gone.
    Eviction,
}

/// Drops a pooled object. A panic in its `Drop` is caught and logged: the pool's own
/// bookkeeping goes on (the capacity is freed, the other objects of a bulk destroy —
/// `close`, `resize`, eviction — are destroyed too), and a destroy that runs while a
/// panic unwinds (a panicking `reset`) never becomes a double panic.
pub(super) fn drop_object<T>(obj: T, pool: &str) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(obj))) {
        crate::rt::trace::quietly(|| {
            tracing::error!(
            pool,
            panic = crate::error::panic_message(&*p),
            "riptide_pool: a pooled object's Drop panicked (the object is gone, its capacity freed)"
        )
        });
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use crate::shared::slots::FIRST_SEGMENT;
    use crate::Pool;

    /// A large `max_size` is a bound, not an allocation: a pool allocates slots as its
    /// creates need them (segments of doubling size), and `resize` allocates none.
    #[test]
    fn slots_are_allocated_as_objects_need_them() {
        let p = Pool::custom(|| async { Ok::<_, std::io::Error>(0_u64) })
            .max_size(1 << 20)
            .build()
            .unwrap();
        assert_eq!(p.shared().slots.cap(), FIRST_SEGMENT);
        let held: Vec<_> = (0..20).map(|_| p.get_blocking().unwrap()).collect();
        let cap = p.shared().slots.cap();
        assert!((20..=32).contains(&cap), "{cap} slots for 20 objects");
        p.resize(1 << 22);
        assert_eq!(p.shared().slots.cap(), cap, "resize allocated slots");
        drop(held);
        let held: Vec<_> = (0..20).map(|_| p.get_blocking().unwrap()).collect();
        assert_eq!(p.shared().slots.cap(), cap, "idle objects are reused");
        assert_eq!(p.stats().created, 20);
        drop(held);
    }
}
