//! The acquisition future's state: what a slow acquisition carries from step to step
//! (`Ctx`), where it stands (`State`, `Slow`), and the guard of a future settled when it
//! was created (`Settled`), and how the future shows it (`Debug`). The driver that moves
//! between the steps is in `mod.rs`.

use std::ops::ControlFlow;
use std::time::Duration;

use crate::error::PoolError;
use crate::rt::{trace, Deadline};
use crate::shared::Shared;
use crate::sync::Arc;
use crate::waiters::Waiter;
use crate::{Pool, Pooled};

use super::{AcquireFuture, AcquireOptions};

/// `Ctx::since_ns` before the first poll.
pub(super) const UNSET: u64 = u64::MAX;

/// What every step of a slow acquisition carries.
pub(super) struct Ctx<T: Send + 'static> {
    pub(super) pool: Pool<T>,
    pub(super) opts: AcquireOptions,
    /// When the acquisition started, in ns since the pool's epoch (aging, the deadline,
    /// the wait histogram), read at the first poll; [`UNSET`] before. A plain `u64`
    /// rather than an `Option<Duration>`: the future is moved by every fast acquisition.
    pub(super) since_ns: u64,
}

impl<T: Send + 'static> Ctx<T> {
    pub(super) fn shared(&self) -> &Shared<T> {
        self.pool.shared()
    }

    pub(super) fn since(&self) -> Duration {
        debug_assert_ne!(self.since_ns, UNSET, "set at the first poll");
        Duration::from_nanos(self.since_ns)
    }

    /// How long the acquisition has waited so far, on the fine clock it started on.
    pub(super) fn waited(&self) -> Duration {
        self.shared().now_fine().saturating_sub(self.since())
    }

    pub(super) fn timeout(&self) -> Duration {
        self.opts
            .timeout
            .unwrap_or(self.shared().config().acquire_timeout)
    }

    /// When the acquisition gives up (time since the pool's epoch).
    pub(super) fn deadline(&self) -> Duration {
        self.since().saturating_add(self.timeout())
    }

    /// Gives up a wait on `cell`: cancels it, or gives back what it was handed (I5), and
    /// lets the cell go.
    pub(super) fn give_up(&self, cell: Arc<Waiter>) {
        self.shared().cancel(&cell);
        if !cell.queued {
            // A create's or a checkout step's cell: `close` no longer needs to fail it.
            self.shared().untrack_unqueued(&cell);
        }
        Waiter::retire(cell);
    }
}

pub(super) enum State<T: Send + 'static> {
    /// Settled when the future was created (the fast path).
    Ready(Settled<T>),
    /// The pool was closed when the future was created.
    Failed(PoolError),
    /// Any step of a slow acquisition. The context stays in place from step to step;
    /// only `step` is rewritten.
    Slow {
        ctx: Ctx<T>,
        step: Slow,
    },
    Done,
}

/// The guard of a future settled when it was created, a word into the payload, and the
/// acquisition's options packed into that word (for an acquisition that must start over:
/// the pool closed, or the object's lifetime ran out, before the first poll).
///
/// `State`'s tag takes the future's first word, so the extra word places the guard at
/// offset 16 (a unit test checks it): the `.await` that takes the guard out then reads it
/// in pieces that line up with the 16-byte stores that moved the future into the caller's
/// state. A load read across two such stores has to wait for both to retire instead of
/// taking their data directly.
#[repr(C)]
pub(super) struct Settled<T: Send + 'static> {
    pub(super) opts: Packed,
    pub(super) guard: Pooled<T>,
}

impl<T: Send + 'static> Settled<T> {
    #[inline]
    pub(super) fn new(guard: Pooled<T>, opts: &AcquireOptions) -> Self {
        Settled {
            opts: Packed::new(opts),
            guard,
        }
    }
}

/// An acquisition's priority and timeout in one word: the priority in the low two bits,
/// above them the timeout in ns plus one (0: none), at most about 146 years.
#[derive(Clone, Copy)]
pub(super) struct Packed(u64);

impl Packed {
    const MAX_NS: u64 = (1 << 62) - 2;

    #[inline]
    pub(super) fn new(o: &AcquireOptions) -> Packed {
        let t = o.timeout.map_or(0, |d| {
            u64::try_from(d.as_nanos()).map_or(Self::MAX_NS, |n| n.min(Self::MAX_NS)) + 1
        });
        Packed(t << 2 | o.priority as u64)
    }

    /// The options, with `location` (not packed: the slot keeps it).
    pub(super) fn unpack(self, location: &'static std::panic::Location<'static>) -> AcquireOptions {
        use crate::Priority::{Critical, High, Low, Normal};
        AcquireOptions {
            priority: [Low, Normal, High, Critical][(self.0 & 3) as usize],
            timeout: (self.0 >> 2).checked_sub(1).map(Duration::from_nanos),
            location,
        }
    }
}

/// Where a slow acquisition stands.
pub(super) enum Slow {
    /// Not yet polled, or starting again after a rejected object (and, for a moment,
    /// the step a finished one is replaced with while its outcome is taken up).
    Start,
    /// In the wait queue (the common wait; its cell is the thread's spare when it has one).
    Queued {
        cell: Arc<Waiter>,
        /// Open while the caller waits.
        trace: trace::WaitSpan,
    },
    /// Waiting for the factory's task, with a reservation.
    Creating {
        cell: Arc<Waiter>,
        deadline: Deadline,
    },
    /// Running the checkout step on claimed slot `slot` (a `u32`, as every slot index is
    /// below `MAX_SLOTS`: it shares a word with the tag, which keeps the future small).
    Checking {
        slot: u32,
        check: crate::checkout::CheckStep,
        deadline: Deadline,
    },
}

impl Slow {
    /// Takes the cell out of a queued or creating step, leaving `Start`.
    pub(super) fn take_cell(&mut self) -> Arc<Waiter> {
        match std::mem::replace(self, Slow::Start) {
            Slow::Queued { cell, .. } | Slow::Creating { cell, .. } => cell,
            _ => unreachable!("a step without a cell"),
        }
    }
}

/// One step of the driver: the next step, or the result.
pub(super) type Step<T> = ControlFlow<Result<Pooled<T>, PoolError>, Slow>;

/// Shows the step an acquisition is at (`ready`, `queued`, `creating`, ...).
impl<T: Send + 'static> std::fmt::Debug for AcquireFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.state {
            State::Ready(_) => "ready",
            State::Failed(_) => "failed",
            State::Slow { step, .. } => match step {
                Slow::Start => "start",
                Slow::Queued { .. } => "queued",
                Slow::Creating { .. } => "creating",
                Slow::Checking { .. } => "checking",
            },
            State::Done => "done",
        };
        f.debug_struct("AcquireFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
