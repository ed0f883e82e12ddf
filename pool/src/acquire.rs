//! Acquisition: [`Acquire`] (priority, timeout) and the future it turns into.

use std::future::{Future, IntoFuture};
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::PoolError;
use crate::exec;
use crate::shared::Reg;
use crate::sync::{Arc, Ordering};
use crate::traits::BoxFuture;
use crate::waiters::{Waiter, CLOSED, FAILED, HANDED, PERMIT, WAITING};
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
        #[cfg(not(loom))]
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            exec::assert_not_worker(&h);
        }
        if let Some(i) = shared.try_claim()? {
            return Ok(self.pool.guard(i, self.location));
        }
        let d = self.timeout.unwrap_or(shared.config.acquire_timeout);
        let slow = slow_path(self.pool.clone(), self.priority, self.location);
        match exec::block_on_timeout(rt(self.pool), d, slow) {
            Some(r) => r,
            None => Err(self.pool.timed_out()),
        }
    }
}

#[cfg(not(loom))]
fn rt<T: Poolable>(pool: &Pool<T>) -> Option<&exec::Runtime> {
    pool.shared().runtime.as_ref()
}

#[cfg(loom)]
fn rt<T: Poolable>(_pool: &Pool<T>) -> Option<&exec::Runtime> {
    None
}

impl<'a, T: Poolable> IntoFuture for Acquire<'a, T> {
    type Output = Result<Pooled<T>, PoolError>;
    type IntoFuture = AcquireFuture<T>;

    fn into_future(self) -> AcquireFuture<T> {
        AcquireFuture {
            state: State::Start {
                pool: self.pool.clone(),
                priority: self.priority,
                timeout: self.timeout,
                location: self.location,
            },
        }
    }
}

/// The future of an acquisition: `Send + 'static`, so it can be spawned. It tries the
/// lock-free fast path on first poll and allocates only if it has to wait or create.
/// Dropping it at any point loses nothing.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture<T: Poolable> {
    state: State<T>,
}

enum State<T: Poolable> {
    Start {
        pool: Pool<T>,
        priority: Priority,
        timeout: Option<Duration>,
        location: &'static Location<'static>,
    },
    Slow(BoxFuture<'static, Result<Pooled<T>, PoolError>>),
    Done,
}

impl<T: Poolable> Future for AcquireFuture<T> {
    type Output = Result<Pooled<T>, PoolError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !matches!(self.state, State::Start { .. }) {
            // Already waiting (or done): fall through.
        } else if let State::Start { pool, priority, timeout, location } =
            std::mem::replace(&mut self.state, State::Done)
        {
            match pool.shared().try_claim() {
                Err(e) => return Poll::Ready(Err(e)),
                Ok(Some(i)) => return Poll::Ready(Ok(pool.guard(i, location))),
                Ok(None) => {
                    let d = timeout.unwrap_or(pool.shared().config.acquire_timeout);
                    self.state = State::Slow(Box::pin(async move {
                        let slow = slow_path(pool.clone(), priority, location);
                        match exec::timeout(rt(&pool), d, slow).await {
                            Some(r) => r,
                            None => Err(pool.timed_out()),
                        }
                    }));
                }
            }
        }
        match &mut self.state {
            State::Slow(f) => {
                let r = f.as_mut().poll(cx);
                if r.is_ready() {
                    self.state = State::Done;
                }
                r
            }
            State::Done => panic!("AcquireFuture polled after completion"),
            State::Start { .. } => unreachable!(),
        }
    }
}

/// The waiting path: register (sweep / reserve / queue), then wait for a hand-off, a
/// permit (then create), or close. Records the wait time on success.
async fn slow_path<T: Poolable>(
    pool: Pool<T>,
    priority: Priority,
    location: &'static Location<'static>,
) -> Result<Pooled<T>, PoolError> {
    let shared = pool.shared();
    #[cfg(not(loom))]
    let start = std::time::Instant::now();
    // Nobody queued: the pool may just need another object.
    let reg = if shared.waiting() == 0 && shared.try_reserve() {
        Reg::Permit
    } else {
        shared.register(priority)?
    };
    let slot = match reg {
        Reg::Got(i) => i,
        Reg::Permit => create(&pool, priority).await?,
        Reg::Queued(w) => match Wait::new(&pool, w).await {
            s if s >= HANDED => s - HANDED,
            PERMIT => create(&pool, priority).await?,
            _ => return Err(PoolError::Closed),
        },
    };
    #[cfg(not(loom))]
    shared.wait_hist.record(start.elapsed());
    Ok(pool.guard(slot, location))
}

/// Creates an object with a capacity reservation the caller holds. The factory runs as
/// its own task; if this future is dropped the object still lands in the pool.
pub(crate) async fn create<T: Poolable>(pool: &Pool<T>, priority: Priority) -> Result<usize, PoolError> {
    let shared = pool.shared();
    let cell = Waiter::new(priority, shared.now(), false);
    let wait = Wait::new(pool, cell.clone());
    let task_pool = pool.clone();
    let task_cell = cell.clone();
    let fut_pool = pool.clone();
    exec::spawn_bounded(
        rt(pool),
        shared.config.create_timeout,
        async move { fut_pool.shared().factory.create().await },
        move |r| {
            let r = r.unwrap_or_else(|| {
                Err("the factory did not finish within create_timeout (or panicked)".into())
            });
            task_pool.shared().finish_create(r, &task_cell);
        },
    );
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
struct Wait<T: Poolable> {
    pool: Pool<T>,
    cell: Arc<Waiter>,
    done: bool,
}

impl<T: Poolable> Wait<T> {
    fn new(pool: &Pool<T>, cell: Arc<Waiter>) -> Self {
        Wait {
            pool: pool.clone(),
            cell,
            done: false,
        }
    }
}

impl<T: Poolable> Future for Wait<T> {
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

impl<T: Poolable> Drop for Wait<T> {
    fn drop(&mut self) {
        if !self.done {
            self.pool.shared().cancel(&self.cell);
        }
    }
}
