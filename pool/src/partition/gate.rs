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
        // Only failed claims count toward giving up (the oldest idle object may be taken
        // before we claim it): each eviction raises `evicting` (or, under the models,
        // which drop inline, serves a blocked caller), so the loop ends once the demand
        // is met, however many callers wait. `MAX_EVICTIONS` only bounds one call's work
        // while other keys keep returning objects.
        const MAX_MISSES: usize = 8;
        const MAX_EVICTIONS: usize = 1024;
        let (mut missed, mut evicted) = (0, 0);
        while missed < MAX_MISSES && evicted < MAX_EVICTIONS {
            // The evictions in flight are read both before and after the callers they
            // cover, and the larger count is taken. Before: an ending eviction hands its
            // unit to a blocked caller (who is then no longer counted) before it stops
            // counting (`eviction_done`), so once its end is seen, so is the caller it
            // served; read only after, a caller counted just before it was served and an
            // eviction seen as over just after would look uncovered. After: a caller
            // that evicted for itself and queued while we counted is covered by its own
            // eviction, begun before it queued. Either way, no object more goes than
            // the callers need.
            let before = self.evicting.load(Ordering::SeqCst);
            let parts = self.parts.load();
            let demand: usize = parts
                .iter()
                .map(|(_, p)| p.get().gate_demand_queued())
                .sum();
            let evicting = before.max(self.evicting.load(Ordering::SeqCst));
            if evicting >= demand {
                return;
            }
            let Some((i, p)) = oldest_idle(&parts, from) else {
                break;
            };
            if p.get().evict_idle(i) {
                evicted += 1;
            } else {
                missed += 1;
            }
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

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use crate::PartitionedPool;

    /// An object whose `Drop` takes 1.5 s while `SLOW` is set, counted alive.
    struct Slow(Arc<AtomicUsize>);

    static SLOW: AtomicBool = AtomicBool::new(true);

    impl Drop for Slow {
        fn drop(&mut self) {
            if SLOW.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1500));
            }
            self.0.fetch_sub(1, SeqCst);
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !cond() {
            assert!(t0.elapsed() < Duration::from_secs(10), "waited for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// More callers than `make_room`'s retry bound, all blocked at once and none of them
    /// covered by an eviction in flight: one call evicts one idle object each, and the
    /// other keys' remaining idle objects stay (successful evictions do not count toward
    /// giving up and making every other key yield).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        miri,
        ignore = "wall-clock waits of seconds, and blocking threads that outlive the test"
    )]
    async fn one_call_makes_room_for_many_blocked_callers_one_object_each() {
        let alive = Arc::new(AtomicUsize::new(0));
        let a = alive.clone();
        let pp = PartitionedPool::<u8, Slow>::custom(move |_k: u8| {
            let a = a.clone();
            async move {
                a.fetch_add(1, SeqCst);
                Ok::<_, std::convert::Infallible>(Slow(a))
            }
        })
        .max_size(40)
        .partition_max_size(40)
        .acquire_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
        // Key 0: 40 idle objects, the whole global cap.
        let mut held = Vec::new();
        for _ in 0..40 {
            held.push(pp.get(&0).await.unwrap());
        }
        drop(held);
        assert_eq!(pp.stats(&0).unwrap().idle, 40);
        // Key 1: 12 callers, each evicting one of key 0's objects (in flight for `DROP`).
        let callers: Vec<_> = (0..12)
            .map(|_| {
                let pp = pp.clone();
                tokio::spawn(async move { pp.get(&1).await.map(drop) })
            })
            .collect();
        let gate = pp.inner.gate.clone();
        wait_for("12 queued callers", || {
            pp.stats(&1).is_some_and(|s| s.pending_acquisitions == 12)
        });
        wait_for("12 evictions in flight", || {
            gate.evicting.load(SeqCst) == 12
        });
        assert_eq!(pp.stats(&0).unwrap().idle, 28);
        // As if none of the 12 were covered (callers queued in a burst, before any of
        // them made room): one call must evict 12, not 8 and then everything.
        let part1 = pp.inner.map.load().get(&1).unwrap().clone();
        let id1 = gate
            .parts
            .load()
            .iter()
            .find(|(_, r)| std::ptr::eq(r.get(), part1.pool.shared()))
            .unwrap()
            .0;
        gate.evicting.fetch_sub(12, SeqCst);
        gate.make_room(id1);
        gate.evicting.fetch_add(12, SeqCst);
        assert_eq!(
            pp.stats(&0).unwrap().idle,
            16,
            "one call evicted other than one object per blocked caller"
        );
        for c in callers {
            c.await.unwrap().unwrap();
        }
        wait_for("the evictions to end", || gate.evicting.load(SeqCst) == 0);
        wait_for("the counters to settle", || {
            alive.load(SeqCst) == pp.global_size()
        });
        assert!(alive.load(SeqCst) <= 40);
        SLOW.store(false, SeqCst);
    }
}
