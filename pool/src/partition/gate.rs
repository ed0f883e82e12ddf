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
}

impl<T: Send + 'static> GlobalGate<T> {
    fn take_free(&self) -> bool {
        crate::sync::increment_below(&self.used, self.max)
    }
}

impl<T: Send + 'static> Gate for GlobalGate<T> {
    fn acquire(&self, from: usize) -> bool {
        // A few rounds: an eviction frees a unit that a blocked partition may take first.
        for _ in 0..8 {
            if self.take_free() {
                return true;
            }
            let parts = self.parts.load();
            let oldest = parts
                .iter()
                .filter(|(id, _)| *id != from)
                .filter_map(|(_, p)| p.get().oldest_idle().map(|(stamp, i)| (stamp, i, p)))
                .min_by_key(|(stamp, ..)| *stamp);
            match oldest {
                Some((_, i, p)) => {
                    p.get().evict_idle(i);
                }
                None => return false,
            }
        }
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
        for (id, p) in self.parts.load().iter() {
            if *id != from {
                p.get().yield_capacity();
            }
        }
        // A unit freed while we registered (see `release`).
        fence(Ordering::SeqCst);
        self.offer_free(None);
    }
}

impl<T: Send + 'static> GlobalGate<T> {
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
