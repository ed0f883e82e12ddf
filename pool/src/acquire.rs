//! Acquisition: [`Acquire`] (priority, timeout) and the future it turns into.

use std::future::{Future, IntoFuture};
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::PoolError;
use crate::exec;
use crate::lifecycle::Breaker;
use crate::shared::{Reg, Shared};
use crate::stats::DestroyReason;
use crate::sync::{Arc, Ordering};
use crate::traits::BoxFuture;
use crate::waiters::{Waiter, CIRCUIT_OPEN, CLOSED, FAILED, HANDED, PERMIT, TIMED_OUT, WAITING};
use crate::{Pool, Poolable, Pooled};

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
pub struct Acquire<'a, T: Poolable> {
    pub(crate) pool: &'a Pool<T>,
    pub(crate) priority: Priority,
    pub(crate) timeout: Option<Duration>,
    pub(crate) location: &'static Location<'static>,
}

impl<T: Poolable> Acquire<'_, T> {
    /// Priority in the wait queue (default `Normal`).
    pub fn priority(mut self, p: Priority) -> Self {
        self.priority = p;
        self
    }

    /// Overrides the pool's `acquire_timeout` for this call.
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
        #[cfg(not(model))]
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            exec::assert_not_worker(&h);
        }
        let first = shared.try_claim()?;
        if let Some(i) = first.filter(|&i| !shared.needs_recycle(i)) {
            return Ok(self.pool.guard(i, self.location));
        }
        let d = self.timeout.unwrap_or(shared.config.acquire_timeout);
        let slow = acquire_full(
            self.pool,
            self.priority,
            self.location,
            d,
            Mode::Blocking,
            first,
        );
        match exec::block_on_timeout(rt(self.pool), d, slow) {
            Some(r) => r,
            None => Err(self.pool.timed_out()),
        }
    }
}

#[cfg(not(model))]
fn rt<T: Poolable>(pool: &Pool<T>) -> Option<&exec::Runtime> {
    pool.shared().runtime.as_ref()
}

#[cfg(model)]
fn rt<T: Poolable>(_pool: &Pool<T>) -> Option<&exec::Runtime> {
    None
}

impl<'a, T: Poolable> IntoFuture for Acquire<'a, T> {
    type Output = Result<Pooled<T>, PoolError>;
    type IntoFuture = AcquireFuture<T>;

    /// Runs the lock-free fast path at once: an idle object that needs no recycle step
    /// becomes the future's output, held by its guard (so the future needs no pool handle
    /// of its own: that saves a reference-count increment and decrement per checkout).
    /// Otherwise the future keeps a pool handle and does everything at its first poll.
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
/// again on first poll, and allocates only if it has to wait or create. Dropping it at any
/// point, polled or not, loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture<T: Poolable> {
    /// Dropped by hand (see `Drop`): a settled future skips the out-of-line drop glue.
    state: ManuallyDrop<State<T>>,
}

impl<T: Poolable> Drop for AcquireFuture<T> {
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
impl<T: Poolable> Unpin for AcquireFuture<T> {}

enum State<T: Poolable> {
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
    Slow(BoxFuture<'static, Result<Pooled<T>, PoolError>>),
    Done,
}

impl<T: Poolable> Future for AcquireFuture<T> {
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

impl<T: Poolable> AcquireFuture<T> {
    #[inline(never)]
    fn poll_slow(&mut self, cx: &mut Context<'_>) -> Poll<Result<Pooled<T>, PoolError>> {
        if let State::Failed(_) = *self.state {
            if let State::Failed(e) = std::mem::replace(&mut *self.state, State::Done) {
                return Poll::Ready(Err(e));
            }
        }
        if !matches!(*self.state, State::Start { .. }) {
            // Already waiting (or done): fall through.
        } else if let State::Start {
            pool,
            priority,
            timeout,
            location,
        } = std::mem::replace(&mut *self.state, State::Done)
        {
            let first = match pool.shared().try_claim() {
                Err(e) => return Poll::Ready(Err(e.into())),
                Ok(Some(i)) if !pool.shared().needs_recycle(i) => {
                    return Poll::Ready(Ok(pool.guard(i, location)))
                }
                Ok(found) => found,
            };
            let d = timeout.unwrap_or(pool.shared().config.acquire_timeout);
            exec::require_runtime(rt(&pool));
            *self.state = State::Slow(Box::pin(async move {
                acquire_full(&pool, priority, location, d, Mode::Async, first).await
            }));
        }
        match &mut *self.state {
            State::Slow(f) => {
                let r = f.as_mut().poll(cx);
                if r.is_ready() {
                    *self.state = State::Done;
                }
                r
            }
            State::Done => panic!("AcquireFuture polled after completion"),
            State::Start { .. } | State::Ready(_) | State::Failed(_) => unreachable!(),
        }
    }
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
/// `first` is an object the fast path already claimed.
pub(crate) async fn acquire_full<T: Poolable>(
    pool: &Pool<T>,
    priority: Priority,
    location: &'static Location<'static>,
    timeout: Duration,
    mode: Mode,
    first: Option<usize>,
) -> Result<Pooled<T>, PoolError> {
    let shared = pool.shared();
    let since = shared.now();
    let mut first = first.map(|i| ClaimGuard {
        shared,
        slot: Some(i),
    });
    loop {
        let (mut claim, fresh) = match first.take() {
            Some(c) => (c, false),
            None => {
                let (i, fresh) = match shared.try_claim()? {
                    Some(i) => (i, false),
                    None => slow_path(pool, priority, since, timeout, mode).await?,
                };
                (
                    ClaimGuard {
                        shared,
                        slot: Some(i),
                    },
                    fresh,
                )
            }
        };
        let slot = claim.slot.expect("armed");
        // A freshly created object is not validated again.
        if !fresh && shared.needs_recycle(slot) {
            let checked = match mode {
                Mode::Blocking => Some(recycle(shared, slot).await),
                Mode::Async => {
                    let left = (since + timeout).saturating_sub(shared.now());
                    exec::timeout(rt(pool), left, recycle(shared, slot)).await
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
struct ClaimGuard<'a, T: Poolable> {
    shared: &'a Shared<T>,
    slot: Option<usize>,
}

impl<T: Poolable> Drop for ClaimGuard<'_, T> {
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
async fn recycle<T: Poolable>(shared: &Shared<T>, i: usize) -> Result<(), DestroyReason> {
    let slot = shared.slots.get(i);
    let idle_ms = shared
        .coarse_ms()
        .saturating_sub(slot.stamp_ms.load(Ordering::Relaxed));
    let due = u128::from(idle_ms) >= shared.config.validation_interval.as_millis();
    // SAFETY: we own slot `i` (claimed, not yet handed to a guard), so this is the only
    // reference to the object until we return.
    let obj = unsafe { &mut *slot.obj() };
    let verdict = async {
        if let Some(h) = &shared.hooks.pre_recycle {
            if h(obj).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        if due && !shared.factory.validate(obj).await {
            return Some(DestroyReason::ValidationFailed);
        }
        if let Some(h) = &shared.hooks.post_recycle {
            if h(obj).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        None
    }
    .await;
    match verdict {
        None => Ok(()),
        Some(reason) => Err(reason),
    }
}

/// The waiting path: register (sweep / reserve / queue), then wait for a hand-off, a
/// permit (then create), a deadline, or close. Returns the slot and whether it is a
/// freshly created object.
pub(crate) async fn slow_path<T: Poolable>(
    pool: &Pool<T>,
    priority: Priority,
    since: Duration,
    timeout: Duration,
    mode: Mode,
) -> Result<(usize, bool), PoolError> {
    let shared = pool.shared();
    let deadline = if mode == Mode::Async {
        since.saturating_add(timeout)
    } else {
        Duration::MAX // the blocking driver enforces its own deadline
    };
    // Nobody queued: the pool may just need another object.
    let reg = if shared.waiting() == 0 && shared.try_reserve() {
        Reg::Permit
    } else {
        // Aging counts from the start of the acquisition (one clock read fewer).
        shared.register(priority, since, deadline)?
    };
    match reg {
        Reg::Got(i) => Ok((i, false)),
        Reg::Permit => Ok((
            create_until(pool, priority, since, timeout, mode).await?,
            true,
        )),
        Reg::Queued(w, start_sweeper) => {
            if start_sweeper {
                start_deadline_sweeper(pool);
            }
            match Wait::new(shared, w).await {
                s if s >= HANDED => Ok((s - HANDED, false)),
                PERMIT => Ok((
                    create_until(pool, priority, since, timeout, mode).await?,
                    true,
                )),
                TIMED_OUT => Err(pool.timed_out()),
                CIRCUIT_OPEN => Err(PoolError::CircuitOpen),
                _ => Err(PoolError::Closed),
            }
        }
    }
}

/// A create for a caller holding a reservation whose acquisition started at `since`: the
/// breaker is asked first (open: the reservation goes back, `CircuitOpen` at once); an
/// async caller stops waiting at its deadline (the object still lands in the pool).
async fn create_until<T: Poolable>(
    pool: &Pool<T>,
    priority: Priority,
    since: Duration,
    timeout: Duration,
    mode: Mode,
) -> Result<usize, PoolError> {
    if pool.shared().breaker_check() == Breaker::Open {
        pool.shared().unreserve();
        return Err(PoolError::CircuitOpen);
    }
    if mode == Mode::Blocking {
        return create(pool, priority).await;
    }
    let left = (since + timeout).saturating_sub(pool.shared().now());
    match exec::timeout(rt(pool), left, create(pool, priority)).await {
        Some(r) => r,
        None => Err(pool.timed_out()),
    }
}

/// Starts the task that times out queued waiters at their deadlines. It holds the pool
/// only while callers are queued (and they hold it anyway), then ends.
fn start_deadline_sweeper<T: Poolable>(pool: &Pool<T>) {
    #[cfg(not(model))]
    {
        let p = pool.clone();
        let started = exec::spawn_task(rt(pool), async move {
            let s = p.shared();
            while let Some(next) = s.sweep() {
                let at = tokio::time::Instant::from_std(s.epoch() + next);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = s.sweep_notify.notified() => {}
                }
            }
        });
        if !started {
            pool.shared().sweeper_not_started();
        }
    }
    #[cfg(model)]
    let _ = pool;
}

/// Creates an object with a capacity reservation the caller holds. The factory runs as
/// its own task; if this future is dropped the object still lands in the pool.
pub(crate) async fn create<T: Poolable>(
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
struct Wait<'a, T: Poolable> {
    shared: &'a Shared<T>,
    cell: Arc<Waiter>,
    done: bool,
}

impl<'a, T: Poolable> Wait<'a, T> {
    fn new(shared: &'a Shared<T>, cell: Arc<Waiter>) -> Self {
        Wait {
            shared,
            cell,
            done: false,
        }
    }
}

impl<T: Poolable> Future for Wait<'_, T> {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        // Acquire pairs with the decider's AcqRel CAS: the handed object, the error.
        let mut s = self.cell.state.load(Ordering::Acquire);
        if s == WAITING {
            self.cell.waker.register(cx.waker());
            // Re-check after registering: a decision in between woke the old waker.
            s = self.cell.state.load(Ordering::Acquire);
            if s == WAITING {
                return Poll::Pending;
            }
        }
        self.done = true;
        Poll::Ready(s)
    }
}

impl<T: Poolable> Drop for Wait<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel(&self.cell);
        }
    }
}
