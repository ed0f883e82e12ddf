//! Acquisition: [`Acquire`] (priority, timeout) and the future it turns into.

use std::future::{Future, IntoFuture};
use std::mem::ManuallyDrop;
use std::ops::ControlFlow::{self, Break, Continue};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::PoolError;
use crate::exec;
use crate::lifecycle::Breaker;
use crate::shared::{Reg, Shared};
use crate::stats::DestroyReason;
use crate::sync::Arc;
use crate::trace;
use crate::traits::BoxFuture;
use crate::waiters::{Waiter, CIRCUIT_OPEN, CLOSED, FAILED, HANDED, PERMIT, TIMED_OUT};
use crate::{Pool, Pooled};

/// Priority of a waiting caller. Higher is served first; within a level, first come first
/// served; a waiter older than `starvation_threshold` is served as `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Background work.
    Low = 0,
    /// The default.
    #[default]
    Normal = 1,
    /// Latency-sensitive work.
    High = 2,
    /// Served first (aged waiters join this level).
    Critical = 3,
}

/// An acquisition being configured: from [`Pool::acquire`]. Await it (`IntoFuture`) or
/// call [`blocking`](Acquire::blocking).
#[must_use = "an Acquire does nothing until awaited or `.blocking()` is called"]
pub struct Acquire<'a, T: Send + 'static> {
    pub(crate) pool: &'a Pool<T>,
    pub(crate) priority: Priority,
    pub(crate) timeout: Option<Duration>,
    pub(crate) location: &'static Location<'static>,
}

impl<T: Send + 'static> std::fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("priority", &self.priority)
            .field("timeout", &self.timeout)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> std::fmt::Debug for AcquireFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.state {
            State::Start { .. } => "start",
            State::Ready(_) => "ready",
            State::Failed(_) => "failed",
            State::Queued(_) => "queued",
            State::Slow(_) => "creating or checking",
            State::Done => "done",
        };
        f.debug_struct("AcquireFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Acquire<'_, T> {
    /// Priority in the wait queue (default `Normal`).
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Overrides the pool's `acquire_timeout` for this call. `Duration::ZERO` means "do
    /// not wait": an idle object or `PoolError::Timeout` at once, never a queue or a create
    /// (unlike `try_get`, an idle object due for validation is validated).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// Acquires from a thread without an async runtime, waiting up to the timeout.
    ///
    /// # Panics
    /// On a tokio runtime worker thread (blocking there can deadlock the runtime): use
    /// `.await` there, or call this inside `tokio::task::spawn_blocking`.
    pub fn blocking(self) -> Result<Pooled<T>, PoolError> {
        let shared = self.pool.shared();
        #[cfg(not(riptide_model))]
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            exec::assert_not_worker(&h);
        }
        let first = shared.try_claim()?;
        if let Some(i) = first.filter(|&i| !shared.needs_recycle(i)) {
            return Ok(self.pool.guard(i, self.location));
        }
        let d = self.timeout.unwrap_or(shared.config.acquire_timeout);
        if d.is_zero() && first.is_none() {
            // "Do not wait": nothing idle, so no queueing and no create.
            return Err(self.pool.timed_out());
        }
        let slow = acquire_full(
            self.pool,
            self.priority,
            self.location,
            Span {
                since: shared.now(),
                timeout: d,
            },
            Mode::Blocking,
            first.map_or(First::Nothing, First::Claimed),
        );
        match exec::block_on_timeout(rt(self.pool), d, slow) {
            Some(r) => r,
            None => Err(self.pool.timed_out()),
        }
    }
}

#[cfg(not(riptide_model))]
fn rt<T: Send + 'static>(pool: &Pool<T>) -> Option<&exec::Runtime> {
    pool.shared().runtime.as_ref()
}

#[cfg(riptide_model)]
fn rt<T: Send + 'static>(_pool: &Pool<T>) -> Option<&exec::Runtime> {
    None
}

impl<'a, T: Send + 'static> IntoFuture for Acquire<'a, T> {
    type Output = Result<Pooled<T>, PoolError>;
    type IntoFuture = AcquireFuture<T>;

    /// Runs the lock-free fast path at once: an idle object that needs no recycle step
    /// becomes the future's output, held by its guard (so the future needs no pool handle
    /// of its own: that saves a reference-count increment and decrement per checkout).
    /// Otherwise the future keeps a pool handle and does the rest at its first poll
    /// (registers and waits in place, or runs the boxed full path).
    /// A future dropped unpolled returns its object like a dropped guard.
    #[inline]
    fn into_future(self) -> AcquireFuture<T> {
        let shared = self.pool.shared();
        let state = match shared.try_claim() {
            Err(e) => State::Failed(e.into()),
            Ok(Some(i)) if !shared.needs_recycle(i) => {
                State::Ready(self.pool.guard(i, self.location))
            }
            claimed => {
                if let Ok(Some(i)) = claimed {
                    // Needs validation or hooks: those run in the first poll's full path.
                    // Give it back for now (we hold a handle, so this is never the last
                    // reference).
                    shared.release(i).never();
                }
                State::Start {
                    pool: self.pool.clone(),
                    priority: self.priority,
                    timeout: self.timeout,
                    location: self.location,
                }
            }
        };
        AcquireFuture {
            state: ManuallyDrop::new(state),
        }
    }
}

/// The future of an acquisition: `Send + 'static`, so it can be spawned. It tries the
/// lock-free fast path when it is created (`get()`, or `.await` on an [`Acquire`]) and
/// again on first poll. Waiting for a hand-off allocates only a small waiter cell; a
/// create or a checkout step (hooks, validation) runs as one boxed future. Dropping it at
/// any point, polled or not, loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture<T: Send + 'static> {
    /// Dropped by hand (see `Drop`): a settled future skips the out-of-line drop glue.
    state: ManuallyDrop<State<T>>,
}

impl<T: Send + 'static> Drop for AcquireFuture<T> {
    #[inline]
    fn drop(&mut self) {
        if !matches!(*self.state, State::Done) {
            // SAFETY: the only place `state` is dropped, once; it is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.state) }
        }
    }
}

// Nothing in the future is ever pinned in place: the waiting future is boxed, and a ready
// guard is moved out whole. (Without this, `Pooled<T>`'s `PhantomData<T>` would make the
// future `!Unpin` for `!Unpin` objects.)
impl<T: Send + 'static> Unpin for AcquireFuture<T> {}

enum State<T: Send + 'static> {
    Start {
        pool: Pool<T>,
        priority: Priority,
        timeout: Option<Duration>,
        location: &'static Location<'static>,
    },
    /// Settled when the future was created (the fast path, or closed).
    Ready(Pooled<T>),
    /// The pool was closed when the future was created.
    Failed(PoolError),
    /// In the wait queue, waiting for a hand-off: the common wait, polled in place (no
    /// allocation but the waiter cell).
    Queued(Queued<T>),
    /// Everything else (creates, checkout hooks, validation): the whole acquisition as a
    /// boxed future.
    Slow(BoxFuture<'static, Result<Pooled<T>, PoolError>>),
    Done,
}

/// A queued waiter owned by the future. Dropped before its cell's decision was taken (the
/// caller gave up: timeout, `select!`, abort), it cancels the cell, or gives back what the
/// cell was handed.
struct Queued<T: Send + 'static> {
    pool: Pool<T>,
    cell: Arc<Waiter>,
    location: &'static Location<'static>,
    /// Open while the caller waits.
    trace: trace::Span,
    /// The decision was taken by the future: nothing to cancel.
    taken: bool,
}

impl<T: Send + 'static> Drop for Queued<T> {
    fn drop(&mut self) {
        if !self.taken {
            self.pool.shared().cancel(&self.cell);
        }
    }
}

impl<T: Send + 'static> Future for AcquireFuture<T> {
    type Output = Result<Pooled<T>, PoolError>;

    /// Inlined so that a future settled at creation (the fast path) is taken apart in
    /// registers at the `.await`, not stored and reloaded; everything else is out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let State::Ready(_) = *this.state {
            if let State::Ready(g) = std::mem::replace(&mut *this.state, State::Done) {
                return Poll::Ready(Ok(g));
            }
        }
        this.poll_slow(cx)
    }
}

impl<T: Send + 'static> AcquireFuture<T> {
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<Pooled<T>, PoolError>> {
        loop {
            let next = match &mut *self.state {
                State::Slow(f) => {
                    let r = f.as_mut().poll(cx);
                    if r.is_ready() {
                        *self.state = State::Done;
                    }
                    return r;
                }
                State::Queued(q) => {
                    let Poll::Ready(s) = q.cell.poll_decision(cx) else {
                        return Poll::Pending;
                    };
                    q.taken = true;
                    let State::Queued(q) = std::mem::replace(&mut *self.state, State::Done) else {
                        unreachable!()
                    };
                    match Self::decided(q, s) {
                        Continue(state) => state,
                        Break(r) => return Poll::Ready(r),
                    }
                }
                State::Start { .. } => {
                    let State::Start {
                        pool,
                        priority,
                        timeout,
                        location,
                    } = std::mem::replace(&mut *self.state, State::Done)
                    else {
                        unreachable!()
                    };
                    match Self::start(pool, priority, timeout, location) {
                        Continue(state) => state,
                        Break(r) => return Poll::Ready(r),
                    }
                }
                State::Failed(_) => {
                    let State::Failed(e) = std::mem::replace(&mut *self.state, State::Done) else {
                        unreachable!()
                    };
                    return Poll::Ready(Err(e));
                }
                State::Done => panic!("AcquireFuture polled after completion"),
                State::Ready(_) => unreachable!("taken by poll"),
            };
            *self.state = next;
        }
    }

    /// The first poll of an unsettled future: the fast path again, then registration. A
    /// queued caller waits in place ([`State::Queued`]); anything that needs a create or a
    /// checkout step continues as the boxed full acquisition.
    fn start(
        pool: Pool<T>,
        priority: Priority,
        timeout: Option<Duration>,
        location: &'static Location<'static>,
    ) -> Step<T> {
        let shared = pool.shared();
        let claimed = match shared.try_claim() {
            Err(e) => return Break(Err(e.into())),
            Ok(Some(i)) if !shared.needs_recycle(i) => return Break(Ok(pool.guard(i, location))),
            Ok(claimed) => claimed,
        };
        let span = Span {
            since: shared.now(),
            timeout: timeout.unwrap_or(shared.config.acquire_timeout),
        };
        if let Some(i) = claimed {
            // Claimed, with a checkout step due.
            return Continue(Self::full(
                pool,
                priority,
                location,
                span,
                First::Claimed(i),
            ));
        }
        if span.timeout.is_zero() {
            // "Do not wait": nothing idle, so no queueing and no create.
            return Break(Err(pool.timed_out()));
        }
        match join(&pool, priority, span.since, span.deadline()) {
            Err(e) => Break(Err(e)),
            Ok(Joined::Holds(first)) => Self::proceed(pool, priority, location, span, first),
            Ok(Joined::Queued(cell)) => {
                let trace = trace::acquire(&pool.shared().config.name, priority);
                Continue(State::Queued(Queued {
                    pool,
                    cell,
                    location,
                    trace,
                    taken: false,
                }))
            }
        }
    }

    /// The queued caller's cell was decided `s` (the future took the decision).
    fn decided(q: Queued<T>, s: usize) -> Step<T> {
        let span = Span {
            since: q.cell.since,
            timeout: q.cell.deadline.saturating_sub(q.cell.since),
        };
        match outcome(&q.pool, s) {
            Err(e) => Break(Err(e)),
            Ok(first) => {
                trace::served(&q.trace, q.pool.shared().now().saturating_sub(span.since));
                Self::proceed(q.pool.clone(), q.cell.priority, q.location, span, first)
            }
        }
    }

    /// Goes on from what a waiting caller now holds: a slot with no checkout step due
    /// becomes the guard at once; a slot needing one, or a reservation, continues as the
    /// boxed full acquisition.
    fn proceed(
        pool: Pool<T>,
        priority: Priority,
        location: &'static Location<'static>,
        span: Span,
        first: First,
    ) -> Step<T> {
        if let First::Claimed(i) = first {
            let shared = pool.shared();
            if shared.expired(i) {
                // Handed over or found just as its lifetime ran out: never hand it out.
                shared.destroy(i, DestroyReason::MaxLifetime).never();
                return Continue(Self::full(pool, priority, location, span, First::Nothing));
            }
            if !shared.needs_recycle(i) {
                return Break(Ok(Self::checked_out(&pool, i, span.since, location)));
            }
        }
        Continue(Self::full(pool, priority, location, span, first))
    }

    /// Hands owned slot `i` (no checkout step due) to the caller: the wait time is
    /// recorded and the slot becomes a guard.
    fn checked_out(
        pool: &Pool<T>,
        i: usize,
        since: Duration,
        location: &'static Location<'static>,
    ) -> Pooled<T> {
        let shared = pool.shared();
        shared.wait_hist.record(shared.now().saturating_sub(since));
        pool.guard(i, location)
    }

    /// The boxed full acquisition, starting from `first`. Polled by the caller's loop at
    /// once, so a claimed slot or a reservation is owned by a live future from here on.
    fn full(
        pool: Pool<T>,
        priority: Priority,
        location: &'static Location<'static>,
        span: Span,
        first: First,
    ) -> State<T> {
        let trace = trace::acquire(&pool.shared().config.name, priority);
        State::Slow(Box::pin(trace::instrument(trace, async move {
            acquire_full(&pool, priority, location, span, Mode::Async, first).await
        })))
    }
}

/// One step of [`AcquireFuture::poll_slow`]: the next state, or the result.
type Step<T> = ControlFlow<Result<Pooled<T>, PoolError>, State<T>>;

/// When an acquisition started (time since the pool's epoch) and how long it may take.
#[derive(Clone, Copy)]
pub(crate) struct Span {
    pub since: Duration,
    pub timeout: Duration,
}

impl Span {
    fn deadline(self) -> Duration {
        self.since.saturating_add(self.timeout)
    }
}

/// What an acquisition already holds when the full path starts. The full path's future
/// must be polled as soon as it is made: its first poll takes charge of the slot (a claim
/// guard) or spends the reservation (the create), before any `.await` can suspend it.
pub(crate) enum First {
    Nothing,
    /// An owned slot, not yet checked out (it may need a checkout step).
    Claimed(usize),
    /// A capacity reservation: create an object.
    Permit,
}

/// Who drives the wait: an async task (deadlines enforced by the pool's sweeper) or a
/// blocking thread (its own `block_on` deadline, plus the sweeper when one runs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Async,
    Blocking,
}

/// A whole acquisition after the fast path: wait or create as needed, then the checkout
/// checks on a reused object (recycle hooks, validation if it sat idle long enough); an
/// object they reject is destroyed and the caller tries again, without seeing an error.
/// `first`: what the caller already holds (see [`First`]); `span`: when the acquisition
/// started (aging, the wait-time histogram) and how long it may take.
pub(crate) async fn acquire_full<T: Send + 'static>(
    pool: &Pool<T>,
    priority: Priority,
    location: &'static Location<'static>,
    span: Span,
    mode: Mode,
    first: First,
) -> Result<Pooled<T>, PoolError> {
    let shared = pool.shared();
    let Span { since, timeout } = span;
    let mut first = first;
    loop {
        let (i, fresh) = match std::mem::replace(&mut first, First::Nothing) {
            First::Claimed(i) if shared.expired(i) => {
                // Handed over or found just as its lifetime ran out: never hand it out.
                shared.destroy(i, DestroyReason::MaxLifetime).never();
                continue;
            }
            First::Claimed(i) => (i, false),
            First::Permit => (
                create_until(pool, priority, since, timeout, mode).await?,
                true,
            ),
            First::Nothing => {
                first = match shared.try_claim()? {
                    Some(i) => First::Claimed(i),
                    None => slow_path(pool, priority, span, mode).await?,
                };
                continue;
            }
        };
        let mut claim = ClaimGuard {
            shared,
            slot: Some(i),
        };
        let slot = claim.slot.expect("armed");
        // A freshly created object is not validated again.
        if !fresh && shared.needs_recycle(slot) {
            let checked = match mode {
                Mode::Blocking => Some(recycle(shared, slot).await),
                Mode::Async => {
                    let left = (since + timeout).saturating_sub(shared.now());
                    exec::timeout(left, recycle(shared, slot)).await
                }
            };
            match checked {
                Some(Ok(())) => {}
                Some(Err(reason)) => {
                    // Rejected: destroy it and try again, without an error to the caller.
                    claim.slot = None;
                    shared.destroy(slot, reason).never();
                    continue;
                }
                // Timed out inside a hook or `validate`: the guard destroys the object
                // (its state is unknown) as it drops.
                None => return Err(pool.timed_out()),
            }
        }
        claim.slot = None;
        shared.wait_hist.record(shared.now().saturating_sub(since));
        return Ok(pool.guard(slot, location));
    }
}

/// Owns a claimed slot until it becomes a guard. Dropped armed (the acquisition was
/// cancelled or timed out between claim and guard, e.g. inside a recycle hook), it
/// destroys the object: a hook or `validate` may have been stopped halfway.
struct ClaimGuard<'a, T: Send + 'static> {
    shared: &'a Shared<T>,
    slot: Option<usize>,
}

impl<T: Send + 'static> Drop for ClaimGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(i) = self.slot.take() {
            self.shared
                .destroy(i, DestroyReason::ValidationFailed)
                .never();
        }
    }
}

/// The checkout checks on owned, reused slot `i`: `pre_recycle`, `Factory::validate` (if
/// idle at least `validation_interval`), `post_recycle`. `Err`: why it was rejected.
async fn recycle<T: Send + 'static>(shared: &Shared<T>, i: usize) -> Result<(), DestroyReason> {
    let slot = shared.slots.get(i);
    let idle_ms = shared.coarse_ms().saturating_sub(slot.idle_since());
    let due = u128::from(idle_ms) >= shared.config.validation_interval.as_millis();
    // SAFETY: we own slot `i` (claimed, not yet handed to a guard), so this is the only
    // reference to the object until we return.
    let obj = unsafe { &mut *slot.obj() };
    let meta = shared.meta(i);
    let verdict = exec::CatchUnwind::new(async {
        if let Some(h) = &shared.hooks.pre_recycle {
            if h(obj, meta).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        if due && !shared.factory.validate(obj).await {
            return Some(DestroyReason::ValidationFailed);
        }
        if let Some(h) = &shared.hooks.post_recycle {
            if h(obj, meta).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        None
    })
    .await;
    match verdict {
        Ok(None) => Ok(()),
        Ok(Some(reason)) => Err(reason),
        // A panicking check is a failed check: the object is destroyed and the caller
        // gets another; the panic is reported, never passed to an unrelated caller.
        Err(msg) => {
            #[cfg(not(riptide_model))]
            tracing::error!(
                pool = %shared.config.name,
                panic = msg,
                "riptide_pool: a checkout check (validate or a recycle hook) panicked"
            );
            #[cfg(riptide_model)]
            let _ = msg;
            Err(DestroyReason::Panicked)
        }
    }
}

/// The waiting path of the full acquisition: register (sweep / reserve / queue), then
/// wait for a hand-off, a permit, a deadline, or close. Returns what the caller then holds:
/// a slot or a reservation, never `First::Nothing`.
async fn slow_path<T: Send + 'static>(
    pool: &Pool<T>,
    priority: Priority,
    span: Span,
    mode: Mode,
) -> Result<First, PoolError> {
    let _ = mode;
    match join(pool, priority, span.since, span.deadline())? {
        Joined::Holds(first) => Ok(first),
        Joined::Queued(cell) => outcome(pool, Wait::new(pool.shared(), cell).await),
    }
}

/// What registering left a caller with.
enum Joined {
    /// An idle object the registration sweep found, or a reservation.
    Holds(First),
    /// Queued: wait on the cell.
    Queued(Arc<Waiter>),
}

/// Registers a caller whose acquisition started at `since`; queued, it is timed out at
/// `deadline` by the pool's deadline sweep.
fn join<T: Send + 'static>(
    pool: &Pool<T>,
    priority: Priority,
    since: Duration,
    deadline: Duration,
) -> Result<Joined, PoolError> {
    Ok(
        match pool
            .shared()
            .reserve_or_register(priority, since, deadline)?
        {
            Reg::Got(i) => Joined::Holds(First::Claimed(i)),
            Reg::Permit => Joined::Holds(First::Permit),
            Reg::Queued(cell) => Joined::Queued(cell),
        },
    )
}

/// What a queued caller's cell was decided to (`s`, taken by the caller): a handed slot,
/// a reservation, or why the wait ended.
fn outcome<T: Send + 'static>(pool: &Pool<T>, s: usize) -> Result<First, PoolError> {
    match s {
        s if s >= HANDED => Ok(First::Claimed(s - HANDED)),
        PERMIT => Ok(First::Permit),
        TIMED_OUT => Err(pool.timed_out()),
        CIRCUIT_OPEN => Err(pool.shared().circuit_open()),
        _ => Err(PoolError::Closed),
    }
}

/// A create for a caller holding a reservation whose acquisition started at `since`: the
/// breaker is asked first (open: the reservation goes back, `CircuitOpen` at once); an
/// async caller stops waiting at its deadline (the object still lands in the pool).
async fn create_until<T: Send + 'static>(
    pool: &Pool<T>,
    priority: Priority,
    since: Duration,
    timeout: Duration,
    mode: Mode,
) -> Result<usize, PoolError> {
    if pool.shared().breaker_check() == Breaker::Open {
        pool.shared().unreserve();
        return Err(pool.shared().circuit_open());
    }
    if mode == Mode::Blocking {
        return create(pool, priority).await;
    }
    let left = (since + timeout).saturating_sub(pool.shared().now());
    match exec::timeout(left, create(pool, priority)).await {
        Some(r) => r,
        None => Err(pool.timed_out()),
    }
}

/// Creates an object with a capacity reservation the caller holds. The factory runs as
/// its own task; if this future is dropped the object still lands in the pool.
pub(crate) async fn create<T: Send + 'static>(
    pool: &Pool<T>,
    priority: Priority,
) -> Result<usize, PoolError> {
    let shared = pool.shared();
    let cell = Waiter::new(priority, shared.now(), Duration::MAX, false);
    let wait = Wait::new(shared, cell.clone());
    shared.spawn_create(cell.clone());
    match wait.await {
        s if s >= HANDED => Ok(s - HANDED),
        FAILED => Err(PoolError::Create(
            cell.error
                .lock()
                .take()
                .unwrap_or_else(|| "factory failed".into()),
        )),
        CLOSED => Err(PoolError::Closed),
        s => unreachable!("waiter state {s} after a create"),
    }
}

/// Waits until a waiter cell is decided; if dropped first, settles the cell (cancels it or
/// gives back what it was handed).
struct Wait<'a, T: Send + 'static> {
    shared: &'a Shared<T>,
    cell: Arc<Waiter>,
    done: bool,
}

impl<'a, T: Send + 'static> Wait<'a, T> {
    fn new(shared: &'a Shared<T>, cell: Arc<Waiter>) -> Self {
        Wait {
            shared,
            cell,
            done: false,
        }
    }
}

impl<T: Send + 'static> Future for Wait<'_, T> {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let s = std::task::ready!(self.cell.poll_decision(cx));
        self.done = true;
        Poll::Ready(s)
    }
}

impl<T: Send + 'static> Drop for Wait<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel(&self.cell);
        }
    }
}
