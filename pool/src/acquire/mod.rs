//! Acquisition: the future ([`AcquireFuture`]) and its one driver; the options it is
//! made from ([`Acquire`], `.priority`, `.timeout`, `.blocking()`) are in `options.rs`,
//! the state it keeps between steps in `state.rs`. The whole path, top to bottom:
//!
//! 1. **Made** (`get()`, or `.await` on an `Acquire`): the fast claim (`fast.rs`). An idle
//!    object needing no checkout step becomes the output at once; a closed pool, the error.
//!    Nothing else happens until the first poll, which hands that output over only if the
//!    pool is still open and the object within its lifetime; otherwise the object is
//!    destroyed, and the caller gets `Closed` or starts again (step 2) with its options.
//! 2. **Start** (first poll): the fast claim again. A claimed object goes to step 5. With a
//!    zero timeout nothing more is tried. Otherwise the caller *joins*
//!    (`Shared::reserve_or_register`): an idle object the registration sweep found (step
//!    5), a reservation (step 4), or a place in the queue (step 3).
//! 3. **Queued**: waits for its cell's decision, woken through the waker its queue entry
//!    holds (I9); its deadline is the pool's sweep (I8). An object (step 5), a
//!    reservation (step 4), or why the wait ended.
//! 4. **Creating**: asks the breaker, then waits for the factory's task, bounded by the
//!    deadline. The fresh object needs no checkout step: it is the output.
//! 5. **An object**: past its lifetime, it is destroyed and the caller starts again (step 2);
//!    due a checkout step (recycle hooks, `validate`), step 6; else it is the output.
//!    An object the caller discards is dropped away from it (`Shared::destroy_aside`):
//!    a slow `Drop` never holds the caller past its deadline.
//! 6. **Checking**: the checkout step, bounded by the deadline. Rejected (or panicked): the
//!    caller starts again, without an error, and the object is then destroyed (aside), so
//!    its unit goes to the best caller with this one queued among them. Past the
//!    deadline, the caller gets `Timeout`, and once `close` runs, `Closed` at once (the
//!    step's cell is tracked like a create's); the step then finishes in the background
//!    (`checkout::finish_left`).
//!
//! Dropping the future at any step loses nothing (I5): a queued or creating cell is
//! cancelled (a late object goes into the pool), a checkout step finishes in the
//! background. `blocking()` drives the same future on the calling thread.

use std::future::{Future, IntoFuture};
use std::mem::ManuallyDrop;
use std::ops::ControlFlow::{Break, Continue};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::breaker::Admit;
use crate::checkout::{finish_left, recycle, CheckStep, Checked};
use crate::error::PoolError;
use crate::rt::trace;
use crate::shared::{Reg, WaitAsk};
use crate::stats::DestroyReason;
use crate::waiters::{Decision, Waiter};

use crate::Pooled;

mod options;
mod state;

use state::{Ctx, Settled, Slow, State, Step, UNSET};

pub(crate) use options::option_setters;
pub use options::Acquire;
pub(crate) use options::AcquireOptions;

impl<T: Send + 'static> IntoFuture for Acquire<'_, T> {
    type Output = Result<Pooled<T>, PoolError>;
    type IntoFuture = AcquireFuture<T>;

    /// Runs the lock-free fast path at once: an idle object that needs no checkout step
    /// becomes the future's output, held by its guard (so the future needs no pool handle
    /// of its own: that saves a reference-count increment and decrement per checkout).
    /// Otherwise the future keeps a pool handle and does the rest at its first poll.
    /// A future dropped unpolled returns its object like a dropped guard; one first polled
    /// after `close`, or after its object's lifetime, never hands that object out.
    #[inline]
    fn into_future(self) -> AcquireFuture<T> {
        let shared = self.pool.shared();
        let state = match shared.try_claim() {
            Err(e) => State::Failed(e.into()),
            Ok(Some(i)) if !shared.needs_recycle(i) => State::Ready(Settled::new(
                self.pool.guard_unhanded(i, self.opts.location),
                &self.opts,
            )),
            claimed => {
                if let Ok(Some(i)) = claimed {
                    // Due a checkout step, which runs in the first poll: give it back for
                    // now (we hold a handle, so this is never the last reference).
                    shared.release(i).never();
                }
                State::Slow {
                    ctx: Ctx {
                        pool: self.pool.clone(),
                        opts: self.opts,
                        since_ns: UNSET,
                    },
                    step: Slow::Start,
                }
            }
        };
        AcquireFuture {
            state: ManuallyDrop::new(state),
        }
    }
}

/// The future of an acquisition: `Send + 'static`, so it can be spawned. It runs the
/// lock-free fast path when it is created and the rest when polled (see the module
/// docs).
///
/// # Cancel safety
/// Dropping it at any point, polled or not, loses nothing: an object it was handed goes
/// back to the pool or the next waiter, a create it started still puts its object into the
/// pool, and its place in the queue is given up.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture<T: Send + 'static> {
    /// Dropped by hand (see `Drop`): a settled future skips the out-of-line drop glue.
    state: ManuallyDrop<State<T>>,
}

impl<T: Send + 'static> Drop for AcquireFuture<T> {
    /// Only the check for a settled future (every `.await` that completed) is inlined, so
    /// the drop glue at each `.await` stays small enough to be inlined with it; giving
    /// back what an unsettled future holds is out of line.
    #[inline]
    fn drop(&mut self) {
        if !matches!(*self.state, State::Done) {
            self.give_back();
        }
    }
}

impl<T: Send + 'static> AcquireFuture<T> {
    /// `drop` of a future that did not complete: gives back what its state holds.
    #[cold]
    #[inline(never)]
    fn give_back(&mut self) {
        // SAFETY: the only place `state` is dropped, once (`drop` calls this at most
        // once, and `state` is not used afterwards).
        let state = unsafe { ManuallyDrop::take(&mut self.state) };
        let (ctx, step) = match state {
            State::Slow { ctx, step } => (ctx, step),
            // Settled when it was made and never polled: its object goes back untouched.
            State::Ready(Settled { guard, .. }) => return Pooled::give_back_unused(guard),
            State::Failed(_) | State::Done => return,
        };
        match step {
            // The caller gave up while waiting (timeout, `select!`, abort): cancel the
            // cell, or give back what it was handed (I5).
            Slow::Queued { cell, .. } | Slow::Creating { cell, .. } => ctx.give_up(cell),
            // Stopped halfway through a hook or `validate`: the step finishes in the
            // background and settles the object.
            Slow::Checking { slot, check, .. } => {
                ctx.give_up(check.cell().clone());
                finish_left(ctx.shared(), slot as usize, check);
            }
            Slow::Start => {}
        }
    }
}

// Nothing in the future is ever pinned in place: the checkout step is boxed, and a ready
// guard is moved out whole. (Without this, `Pooled<T>`'s `PhantomData<T>` would make the
// future `!Unpin` for `!Unpin` objects.)
impl<T: Send + 'static> Unpin for AcquireFuture<T> {}

impl<T: Send + 'static> Future for AcquireFuture<T> {
    type Output = Result<Pooled<T>, PoolError>;

    /// Inlined so that a future settled at creation (the fast path) is taken apart in
    /// registers at the `.await`, not stored and reloaded; everything else is out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Ready(Settled { guard: g, .. }) = &*this.state {
            // Claimed when the future was made, which may be long before this poll.
            if !Pooled::still_good(g) {
                return this.start_over(cx);
            }
            // Handed over now: the checkout begins (counted and stamped) here.
            Pooled::hand_over(g);
            // Moved out field by field rather than by `mem::replace`, which would copy the
            // whole state (sized for the slow steps) to take a guard two words long.
            // SAFETY: the guard is read out once and the state is overwritten at once with
            // `Done` (which has nothing to drop), so the guard is owned once and never
            // dropped in place.
            let g = unsafe { std::ptr::read(g) };
            // SAFETY: as above; `write` does not drop the `Ready` it overwrites.
            unsafe { std::ptr::write(&mut *this.state, State::Done) };
            return Poll::Ready(Ok(g));
        }
        this.drive(cx)
    }
}

impl<T: Send + 'static> AcquireFuture<T> {
    /// How many callers will be served before this one, as things stand now (priorities
    /// and aging counted); `None` unless it waits in the queue (not before its first poll,
    /// nor while it creates an object or checks one). Takes the queue lock briefly.
    #[must_use]
    pub fn queue_position(&self) -> Option<usize> {
        match &*self.state {
            State::Slow {
                ctx,
                step: Slow::Queued { cell, .. },
            } => ctx.shared().queue_position(cell),
            _ => None,
        }
    }

    /// A future settled when it was made, first polled once its pool was closed or its
    /// object's lifetime over: the object is destroyed, never handed out, and the
    /// acquisition fails with `Closed` or starts over with its own options.
    #[cold]
    #[inline(never)]
    fn start_over(&mut self, cx: &mut Context<'_>) -> Poll<Result<Pooled<T>, PoolError>> {
        let State::Ready(Settled { guard, opts }) =
            std::mem::replace(&mut *self.state, State::Done)
        else {
            unreachable!("called on a settled future")
        };
        let Some((pool, location)) = Pooled::take_back(guard) else {
            return Poll::Ready(Err(PoolError::Closed));
        };
        *self.state = State::Slow {
            ctx: Ctx {
                pool,
                opts: opts.unpack(location),
                since_ns: UNSET,
            },
            step: Slow::Start,
        };
        self.drive(cx)
    }

    /// The driver: runs steps until the acquisition must wait or is settled.
    #[inline(never)]
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Pooled<T>, PoolError>> {
        let State::Slow { ctx, step } = &mut *self.state else {
            return Poll::Ready(match std::mem::replace(&mut *self.state, State::Done) {
                State::Failed(e) => Err(e),
                State::Ready(_) => unreachable!("a settled future is taken apart in `poll`"),
                _ => panic!("AcquireFuture polled after completion"),
            });
        };
        // A clone of the waker that registration made but did not queue. Dropping it runs
        // the waker's code, which may panic: it is dropped only once what this step got is
        // in the state (or, settled, in `out`), where an unwind gives it back.
        let mut unused = None;
        let out = loop {
            let next = match step {
                Slow::Start => Self::start(ctx, cx, &mut unused),
                Slow::Queued { cell, trace } => match ctx.shared().poll_queued(cell, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(d) => {
                        trace::served(trace, || ctx.waited());
                        let cell = step.take_cell();
                        // What was decided is taken up before the cell (and the waker in
                        // it) is let go.
                        let next = Self::decided(ctx, d);
                        Waiter::retire(cell);
                        next
                    }
                },
                Slow::Creating { cell, deadline } => match cell.poll_decision(cx) {
                    Poll::Ready(d) => {
                        let next = Self::created(ctx, cell, d);
                        Waiter::retire(step.take_cell());
                        next
                    }
                    Poll::Pending if deadline.poll_passed(cx) => {
                        // The create goes on and its object lands in the pool. The cell
                        // leaves the state first, so nothing is given back twice.
                        ctx.give_up(step.take_cell());
                        Break(Err(ctx.shared().timed_out()))
                    }
                    Poll::Pending => return Poll::Pending,
                },
                Slow::Checking {
                    slot,
                    check,
                    deadline,
                } => match check.as_mut().poll(cx) {
                    Poll::Ready(verdict) => {
                        let slot = *slot as usize;
                        // No longer `close`'s to fail: `checked_out` looks at the pool.
                        ctx.give_up(check.cell().clone());
                        // The checkout step is over: nothing to drop with the object.
                        *step = Slow::Start;
                        match verdict {
                            Ok(()) => Self::checked_out(ctx, slot),
                            Err(reason) => {
                                // Rejected: destroyed, and the caller tries again without
                                // an error. It queues again (keeping its age) before the
                                // object's unit is freed, so that unit goes to the best
                                // caller waiting with this one among them, not to a
                                // younger one queued meanwhile.
                                let next = Self::start(ctx, cx, &mut unused);
                                ctx.shared().destroy_aside(slot, reason);
                                next
                            }
                        }
                    }
                    Poll::Pending
                        if check.cell().poll_decision(cx).is_ready()
                            || deadline.poll_passed(cx) =>
                    {
                        // Closed, or timed out, inside a hook or `validate`: the step
                        // finishes in the background and settles the object (destroyed,
                        // in a closed pool).
                        let Slow::Checking { slot, check, .. } =
                            std::mem::replace(step, Slow::Start)
                        else {
                            unreachable!("matched above")
                        };
                        let closed = check.cell().decision().is_some();
                        ctx.give_up(check.cell().clone());
                        let shared = ctx.shared();
                        finish_left(shared, slot as usize, check);
                        Break(Err(if closed {
                            PoolError::Closed
                        } else {
                            shared.timed_out()
                        }))
                    }
                    Poll::Pending => return Poll::Pending,
                },
            };
            match next {
                // Just queued, with this poll's waker: nothing to poll yet. The span opens
                // once the cell is in the state (a subscriber's code may panic, and the
                // future's drop then takes its place in the queue back).
                Continue(next @ Slow::Queued { .. }) => {
                    *step = next;
                    if let Slow::Queued { trace, .. } = step {
                        *trace = trace::acquire(&ctx.shared().config().name, ctx.opts.priority);
                    }
                    return Poll::Pending;
                }
                Continue(next) => {
                    *step = next;
                    drop(unused.take());
                }
                Break(r) => break r,
            }
        };
        // Settled: what the context held (its pool handle, a cancelled create's cell) is
        // dropped here.
        *self.state = State::Done;
        drop(unused);
        Poll::Ready(out)
    }

    /// Step 2: the fast claim again, then join the waiting path.
    fn start(ctx: &mut Ctx<T>, cx: &Context<'_>, unused: &mut Option<Waker>) -> Step<T> {
        let shared = ctx.pool.shared();
        let claimed = match shared.try_claim() {
            Err(e) => return Break(Err(e.into())),
            Ok(claimed) => claimed,
        };
        let again = ctx.since_ns != UNSET;
        if !again {
            ctx.since_ns = u64::try_from(shared.now_fine().as_nanos()).unwrap_or(UNSET - 1);
        }
        if let Some(i) = claimed {
            return Self::with_object(ctx, i);
        }
        if ctx.timeout().is_zero() {
            // "Do not wait": nothing idle, so no queueing and no create.
            return Break(Err(shared.timed_out()));
        }
        let ask = WaitAsk {
            priority: ctx.opts.priority,
            since: ctx.since(),
            again,
            deadline: ctx.deadline(),
            location: ctx.opts.location,
        };
        match shared.reserve_or_register(ask, cx.waker(), unused) {
            Err(e) => Break(Err(e)),
            Ok(Reg::Got(i)) => Self::with_object(ctx, i),
            Ok(Reg::Permit) => Self::create(ctx),
            Ok(Reg::Queued(cell)) => Continue(Slow::Queued {
                cell,
                trace: trace::WaitSpan::default(),
            }),
        }
    }

    /// Step 3's outcome: the queued caller's cell was decided `d`.
    fn decided(ctx: &Ctx<T>, d: Decision) -> Step<T> {
        let shared = ctx.shared();
        match d {
            Decision::Handed(i) => Self::with_object(ctx, i),
            Decision::Permit => Self::create(ctx),
            Decision::TimedOut => Break(Err(shared.timed_out())),
            Decision::CircuitOpen => Break(Err(shared.circuit_open())),
            Decision::WouldDeadlock => Break(Err(PoolError::WouldDeadlock)),
            Decision::PoolClosed | Decision::Failed | Decision::Cancelled => {
                Break(Err(PoolError::Closed))
            }
        }
    }

    /// Step 4: a caller holding a reservation asks the breaker (open: the reservation goes
    /// back, `CircuitOpen` at once), then starts the factory's task and waits for it.
    fn create(ctx: &Ctx<T>) -> Step<T> {
        let shared = ctx.shared();
        if shared.is_closed() {
            // Reserved just before `close`: no factory runs for a closed pool.
            shared.unreserve();
            return Break(Err(PoolError::Closed));
        }
        let admit = shared.breaker_admit();
        if admit == Admit::Reject {
            shared.unreserve();
            return Break(Err(shared.circuit_open()));
        }
        let cell = Waiter::new(ctx.opts.priority, shared.now(), Duration::MAX, false);
        if !shared.track_unqueued(&cell) {
            // Closed since the check above.
            shared.breaker_abandon(admit);
            shared.unreserve();
            return Break(Err(PoolError::Closed));
        }
        shared.spawn_create(cell.clone(), admit);
        let deadline = shared.env().deadline(ctx.deadline());
        Continue(Slow::Creating { cell, deadline })
    }

    /// Step 4's outcome: the create's cell was decided `d`.
    fn created(ctx: &Ctx<T>, cell: &Waiter, d: Decision) -> Step<T> {
        match d {
            // A fresh object needs no checkout step.
            Decision::Handed(i) => Self::checked_out(ctx, i),
            Decision::Failed => Break(Err(PoolError::Create(
                cell.error
                    .lock()
                    .take()
                    .unwrap_or_else(|| "factory failed".into()),
            ))),
            _ => Break(Err(PoolError::Closed)),
        }
    }

    /// Step 5: the caller owns slot `i`, reused (not fresh).
    fn with_object(ctx: &Ctx<T>, i: usize) -> Step<T> {
        let shared = ctx.shared();
        if shared.expired(i) {
            // Handed over or found just as its lifetime ran out: never hand it out.
            shared.destroy_aside(i, DestroyReason::MaxLifetime);
            return Continue(Slow::Start);
        }
        if !shared.needs_recycle(i) {
            return Self::checked_out(ctx, i);
        }
        // Step 6: the checkout step, 'static (it may finish in the background): it keeps
        // the shared state alive, never the pool open.
        // Its cell is tracked like a create's, so that `close` fails this caller at once
        // rather than when the step ends (a `validate` pinging a dead server takes long).
        let cell = Waiter::new(ctx.opts.priority, shared.now(), Duration::MAX, false);
        if !shared.track_unqueued(&cell) {
            // Closed meanwhile: no checkout step runs for a closed pool.
            shared.destroy_aside(i, DestroyReason::Closed);
            return Break(Err(PoolError::Closed));
        }
        let shared_ref = crate::shared::SharedRef::to(shared);
        let check: CheckStep = Box::pin(Checked {
            cell,
            fut: async move { recycle(shared_ref.get(), i).await },
        });
        let deadline = shared.env().deadline(ctx.deadline());
        const { assert!(crate::shared::slots::MAX_SLOTS <= u32::MAX as usize) };
        Continue(Slow::Checking {
            slot: i as u32,
            check,
            deadline,
        })
    }

    /// Hands owned slot `i` to the caller: the wait is recorded and the slot becomes a
    /// guard. In a pool closed meanwhile (while the caller was being handed the object,
    /// creating it or checking it) the object is destroyed instead: once `close` has
    /// returned, no acquisition succeeds.
    fn checked_out(ctx: &Ctx<T>, i: usize) -> Step<T> {
        let shared = ctx.shared();
        if shared.is_closed() {
            shared.destroy_aside(i, DestroyReason::Closed);
            return Break(Err(PoolError::Closed));
        }
        shared.record_wait(ctx.waited());
        Break(Ok(ctx.pool.guard(i, ctx.opts.location)))
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests;
