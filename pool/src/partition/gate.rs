//! The global gate of a `PartitionedPool`: a capacity counter every partition reserves
//! from as well as from its own cap, and the partitions to evict from and offer freed
//! capacity to.

use crate::shared::{Gate, SharedRef};
use crate::sync::{fence, AtomicUsize, Ordering, Rcu};

/// The global cap: a counter every partition reserves from, and the partitions to evict
/// from and offer freed capacity to.
pub(super) struct GlobalGate<T: Send + 'static> {
    pub(super) max: usize,
    pub(super) used: AtomicUsize,
    pub(super) parts: Rcu<Vec<(usize, SharedRef<T>)>>,
    /// Evictions for the gate whose objects are still being dropped (aside): their units
    /// are on their way back. While any is, a blocked partition waits for them rather
    /// than make the other partitions give up every idle object (G3).
    pub(super) evicting: AtomicUsize,
}

impl<T: Send + 'static> GlobalGate<T> {
    fn take_free(&self) -> bool {
        crate::sync::increment_below(&self.used, self.max)
    }
}

impl<T: Send + 'static> Gate for GlobalGate<T> {
    fn acquire(&self, from: usize) -> bool {
        // At the cap, one eviction per caller: the oldest idle object of another
        // partition. It is dropped aside, so its unit comes back once its `Drop` is over
        // (`release`, which offers it to the blocked partitions: this caller's, once it
        // queues). A few tries: the oldest may be taken before we claim it.
        for _ in 0..8 {
            if self.take_free() {
                return true;
            }
            match oldest_idle(&self.parts.load(), from) {
                Some((i, p)) => {
                    if p.get().evict_idle(i) {
                        break;
                    }
                }
                None => break,
            }
        }
        // A unit given back meanwhile, or (under the models, which drop inline) the one
        // just evicted.
        self.take_free()
    }

    fn try_acquire_free(&self) -> bool {
        self.take_free()
    }

    fn release(&self, from: usize) {
        self.used.fetch_sub(1, Ordering::Relaxed);
        // Dekker with `blocked`: we free a unit then look for blocked partitions; a
        // partition publishes its waiter then looks for free units. The fences make at
        // least one side see the other, so a freed unit never sits beside a waiter.
        fence(Ordering::SeqCst);
        self.offer_free(Some(from));
    }

    fn held_locations(
        &self,
        want: &std::collections::HashSet<u64>,
        found: &mut std::collections::HashMap<u64, &'static std::panic::Location<'static>>,
    ) {
        for (_, p) in self.parts.load().iter() {
            p.get().held_locations(want, found);
        }
    }

    fn others_blocked(&self, from: usize) -> bool {
        self.parts
            .load()
            .iter()
            .any(|(id, p)| *id != from && p.get().blocked_on_gate())
    }

    fn blocked(&self, from: usize) {
        self.make_room(from);
        // A unit freed while we registered (see `release`).
        fence(Ordering::SeqCst);
        self.offer_free(None);
    }

    fn evictions_begin(&self, n: usize) {
        // Before any of them ends (their drops start after this), so the count never
        // goes below zero. Relaxed: `make_room` and `eviction_done` order their reads
        // with fences, and a `make_room` that misses this count evicts one more object
        // than needed, no worse.
        self.evicting.fetch_add(n, Ordering::Relaxed);
    }

    fn eviction_done(&self) {
        // Its unit was given back and offered already (`release`). A partition still
        // blocked may have counted on it (G3): make room for it again.
        self.evicting.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        for (id, p) in self.parts.load().iter() {
            if p.get().blocked_on_gate() {
                self.blocked(*id);
            }
        }
    }
}

impl<T: Send + 'static> GlobalGate<T> {
    /// **G3**: keeps one eviction in flight for each caller that waits for global
    /// capacity alone, while another partition than `from` has idle objects (the oldest
    /// goes first); with none idle, the partitions other than `from` yield (their
    /// returns are destroyed and their units come here). An evicted object is dropped
    /// aside and its unit offered once it is gone, so counting the evictions in flight
    /// keeps one caller from costing every idle object.
    ///
    /// Dekker with `eviction_done`: a blocked caller queued, fenced
    /// (`tell_gate_if_blocked`) and reads the count here; an ending eviction lowers the
    /// count, fences and reads who is blocked. At least one of them sees the other, so
    /// a blocked caller is never left counting on an eviction that is over.
    fn make_room(&self, from: usize) {
        // A few tries: the oldest idle object may be taken before we claim it.
        for _ in 0..8 {
            let parts = self.parts.load();
            let demand: usize = parts.iter().map(|(_, p)| p.get().gate_demand()).sum();
            if self.evicting.load(Ordering::SeqCst) >= demand {
                return;
            }
            let Some((i, p)) = oldest_idle(&parts, from) else {
                break;
            };
            p.get().evict_idle(i);
        }
        // Nothing idle elsewhere, or nothing we could claim (an object in the middle of
        // a hand-over looks idle for a moment): the others yield, so their next returns
        // come here.
        for (id, p) in self.parts.load().iter() {
            if *id != from {
                p.get().yield_capacity();
            }
        }
    }

    /// Offers free units, one each, to partitions whose callers wait only for one.
    ///
    /// **G2**: a partition that looked blocked can refuse the unit because its local cap
    /// is full for a moment: another caller holds a local reservation while it asks the
    /// gate. That caller either gets a global unit (the partition is then not blocked) or
    /// gives the reservation back and tells the gate (G1). The unit we took goes back to
    /// the gate, and we look again, after a fence: a Dekker pair with that caller (it
    /// lowers `size`, fences, reads `used`; we lower `used`, fence, read `size`), so one
    /// of us sees the other and offers the unit. We look again only after a refusal, and
    /// a refusal needs the partition to have looked blocked, so this ends as soon as
    /// nothing is refused.
    ///
    /// `last`: the partition that freed the unit, offered it only after every other one
    /// (a key that gave a unit up for others must not take it straight back).
    fn offer_free(&self, last: Option<usize>) {
        loop {
            let mut refused = false;
            let parts = self.parts.load();
            let others = parts.iter().filter(|(id, _)| Some(*id) != last);
            let giver = parts.iter().filter(|(id, _)| Some(*id) == last);
            for (_, p) in others.chain(giver) {
                let p = p.get();
                if p.blocked_on_gate() && self.take_free() && !p.offer_permit() {
                    self.used.fetch_sub(1, Ordering::Relaxed);
                    refused = true;
                }
            }
            if !refused {
                return;
            }
            fence(Ordering::SeqCst);
        }
    }
}

/// The oldest idle object of a partition other than `from`: its slot and partition.
fn oldest_idle<T: Send + 'static>(
    parts: &[(usize, SharedRef<T>)],
    from: usize,
) -> Option<(usize, &SharedRef<T>)> {
    parts
        .iter()
        .filter(|(id, _)| *id != from)
        .filter_map(|(_, p)| p.get().oldest_idle().map(|(stamp, i)| (stamp, i, p)))
        .min_by_key(|(stamp, ..)| *stamp)
        .map(|(_, i, p)| (i, p))
}
