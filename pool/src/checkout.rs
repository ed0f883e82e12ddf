//! The checkout step: what runs on a reused object before a caller gets it, and what
//! becomes of a step whose caller stopped waiting for it.

use std::future::Future;
use std::time::Duration;

use crate::rt::exec::Ran;
use crate::shared::{Shared, SharedRef};
use crate::stats::DestroyReason;
use crate::sync::Arc;
use crate::waiters::Waiter;

/// How long a checkout step may run on once its caller stopped waiting (at most
/// `create_timeout`): enough for a round trip to a live server, short enough that a hung
/// `validate` on a dead connection does not hold its capacity for long.
pub(crate) const LEFTOVER_STEP: Duration = Duration::from_secs(1);

/// The checkout step on owned, reused slot `i`: `pre_recycle`, `Factory::validate` (if
/// idle at least `validation_interval`), `post_recycle`. `Err`: why it was rejected. A
/// panicking check is a failed check: the object is destroyed and the caller gets another;
/// the panic is reported, never passed to an unrelated caller.
pub(crate) async fn recycle<T: Send + 'static>(
    shared: &Shared<T>,
    i: usize,
) -> Result<(), DestroyReason> {
    let slot = shared.slot(i);
    let idle_ms = shared.coarse_ms().saturating_sub(slot.idle_since());
    let due = u128::from(idle_ms) >= shared.config().validation_interval.as_millis();
    let meta = shared.meta(i);
    // Held until we return, across the checks' `.await`s.
    let access = slot.hold_obj();
    // SAFETY: we own slot `i` (claimed, not yet handed to a guard), which holds an
    // object, so this is the only reference to it until we return.
    let obj = unsafe { &mut *access.ptr().cast::<T>() };
    let hooks = shared.hooks();
    let verdict = crate::rt::exec::CatchUnwind::new(async {
        if let Some(h) = &hooks.pre_recycle {
            if h(obj, meta).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        if due && !shared.factory().validate(obj).await {
            return Some(DestroyReason::ValidationFailed);
        }
        if let Some(h) = &hooks.post_recycle {
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
        Err(msg) => {
            crate::rt::trace::quietly(|| {
                tracing::error!(
                    pool = %shared.config().name,
                    panic = msg,
                    "riptide_pool: a checkout check (validate or a recycle hook) panicked"
                )
            });
            Err(DestroyReason::Panicked)
        }
    }
}

/// Finishes in the background the checkout step `check` on owned slot `i`, whose caller
/// stopped waiting (its deadline passed, or its future was dropped), so a short timeout
/// does not cost a healthy object. The step gets [`LEFTOVER_STEP`] more (at most
/// `create_timeout`); if it passes, the object is returned as a caller's guard returns it
/// (`reset` / `is_healthy`, `on_release`, the lifetime and `max_uses` checks, a waiter
/// first); if it fails, panics, runs out of time or its runtime drops it, the object is
/// destroyed. The task holds the shared state, never the pool open; the object counts in
/// `size` (so `drain` waits for it), not in `checked_out()` (no caller holds it).
pub(crate) fn finish_left<T: Send + 'static>(
    shared: &Shared<T>,
    i: usize,
    check: impl Future<Output = Result<(), DestroyReason>> + Send + 'static,
) {
    let task_ref = SharedRef::to(shared);
    let limit = shared.config().create_timeout.min(LEFTOVER_STEP);
    // Not watched: the step holds the object in its slot until its future is dropped.
    shared
        .env()
        .spawn_bounded(limit, false, check, move |ran, _| {
            let shared = task_ref.get();
            let reason = match ran {
                Ran::Done(Ok(())) => {
                    // The return path of a guard, with no checkout recorded (no caller held
                    // it). User code there may panic: the guard's own unwind guard destroys
                    // the object, and the panic is logged here (there is no caller to get it).
                    let guard = crate::Pooled::new(task_ref.held(i));
                    if let Err(p) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(guard)))
                    {
                        crate::rt::trace::quietly(|| {
                            tracing::error!(
                                pool = %shared.config().name,
                                panic = crate::error::panic_message(&*p),
                                "riptide_pool: returning an object after its checkout step panicked"
                            )
                        });
                    }
                    return;
                }
                Ran::Done(Err(reason)) => reason,
                Ran::Panicked(_) => DestroyReason::Panicked,
                Ran::TimedOut | Ran::Dropped => DestroyReason::ValidationFailed,
            };
            shared.destroy(i, reason).never();
        });
}

/// A caller's checkout step, boxed in its future: the step itself, and the cell that
/// `close` decides to fail the caller at once (tracked like a create's, `Shared::track_unqueued`),
/// kept in the same allocation so the acquisition future does not grow.
pub(crate) type CheckStep = std::pin::Pin<Box<dyn Check>>;

/// A checkout step that carries its caller's close cell.
pub(crate) trait Check: Future<Output = Result<(), DestroyReason>> + Send {
    /// The cell `close` decides.
    fn cell(&self) -> &Arc<Waiter>;
}

pin_project_lite::pin_project! {
    /// The checkout step `fut`, with its caller's close cell.
    pub(crate) struct Checked<F> {
        pub(crate) cell: Arc<Waiter>,
        #[pin]
        pub(crate) fut: F,
    }
}

impl<F: Future> Future for Checked<F> {
    type Output = F::Output;
    /// Polls the step inside a tokio runtime, the pool's own if none is current here
    /// (`rt::in_a_runtime`): a `validate` that awaits tokio's timer or a socket works
    /// wherever its caller waits.
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let fut = self.project().fut;
        crate::rt::in_a_runtime(|| fut.poll(cx))
    }
}

impl<F: Future<Output = Result<(), DestroyReason>> + Send> Check for Checked<F> {
    fn cell(&self) -> &Arc<Waiter> {
        &self.cell
    }
}
