//! Settling a create: the object a factory made goes to the caller that reserved the
//! capacity for it, or into the pool if that caller left; a failure frees the capacity,
//! tells the caller, and moves the circuit breaker, which may fail every queued caller.
//! It keeps I2 and I5 of the hand-off protocol (`handoff.rs`).

use std::task::Waker;

use crate::error::BoxError;
use crate::stats::DestroyReason;
use crate::waiters::{Decision, Waiter};

use super::{Owed, Shared};

impl<T: Send + 'static> Shared<T> {
    /// Fails every queued waiter with `CircuitOpen` (the breaker just opened); returns
    /// their wakers, to wake once the caller has settled what it holds.
    pub(crate) fn fail_waiters_circuit_open(&self) -> Vec<Waker> {
        let mut q = self.queue.lock();
        let failed = q.decide_all(Decision::CircuitOpen);
        self.publish(&q);
        failed
    }

    /// Settles a create for a caller holding a reservation: the object goes to `cell` if it
    /// still waits, else into the pool (I5); a failure frees the reservation (I2) and is
    /// left in `cell`.
    ///
    /// The creator holds a [`SharedRef`], not a handle, so the pool may have been closed
    /// meanwhile (the object is then destroyed, and the reference it held is given back
    /// here, which is never the last while the creator's own is held).
    ///
    /// User code runs here in three places: the factory error's `Display`
    /// (`create_failed`), the tracing subscriber (always quietly: `rt::trace::quietly`),
    /// and the wakers of the callers this create decides (its own and those an opening
    /// breaker fails). The first runs inside `catch_unwind`, the wakers only once the
    /// create has settled what it owes; their panics are logged then.
    ///
    /// `counts`: whether the outcome is the factory's (a runtime shutting down under the
    /// create is not, and does not move the breaker or the error rate); `admit`: what the
    /// breaker said before the create.
    pub(crate) fn finish_create(
        &self,
        result: Result<(T, u64), BoxError>,
        cell: &Waiter,
        counts: bool,
        admit: crate::breaker::Admit,
    ) {
        // No longer `close`'s to fail: from here, this create decides its caller.
        self.untrack_unqueued(cell);
        // Before the breaker may open: the waiters it fails carry this error.
        let reported = match &result {
            Err(e) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.create_failed(&**e);
            })),
            Ok(_) => Ok(()),
        };
        // The waiters an opening breaker fails are woken once this create is settled.
        let failed = if counts {
            self.counters
                .recent_creates
                .record(self.coarse_ms(), result.is_err());
            self.breaker_record(admit, result.is_ok())
        } else {
            // Not the factory's outcome: a half-open trial it was is given up, so the next
            // caller tries (else the breaker would refuse everyone from now on).
            self.breaker_abandon(admit);
            Vec::new()
        };
        // The caller's cell is decided here and woken below, with the others.
        let (owed, decided) = match result {
            Ok((obj, id)) => {
                let i = self.install(obj, id);
                if self.is_closed() {
                    let owed = self.destroy(i, DestroyReason::Closed);
                    (owed, cell.decide(Decision::PoolClosed))
                } else if cell.decide(Decision::Handed(i)) {
                    (Owed::none(&self.refs), true)
                } else {
                    // The caller left (timeout, cancel): the object is not lost. Passed
                    // on to a queued caller, it wakes that caller, whose waker's panic
                    // reaches the create's task with nothing owed.
                    (self.release(i), false)
                }
            }
            Err(e) => {
                self.unreserve();
                *cell.error.lock() = Some(e);
                (Owed::none(&self.refs), cell.decide(Decision::Failed))
            }
        };
        owed.never();
        // Other tasks' wakers: a panic among them is theirs, not this create's.
        let mut wakes = crate::waiters::Wakes::default();
        if decided {
            wakes.wake(|| cell.wake());
        }
        for w in failed {
            wakes.wake(|| w.wake());
        }
        if wakes.panicked() {
            crate::rt::trace::quietly(
                || tracing::error!(pool = %self.config().name, "a waiter's waker panicked as a create settled"),
            );
        }
        if reported.is_err() {
            crate::rt::trace::quietly(|| {
                tracing::error!(
                    pool = %self.config().name,
                    "formatting a failed create's error panicked (its Display)"
                )
            });
        }
    }
}
