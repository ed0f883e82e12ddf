//! Making objects: the factory run as a background task bounded by `create_timeout`, its
//! outcome settled through the waiter cell of whoever reserved the capacity
//! (`shared/settle.rs`), the circuit breaker asked before and told after, and every
//! failure reported.

use std::time::Duration;

use crate::breaker::{Admit, Transition};
use crate::error::{BoxError, PoolError};
use crate::rt::exec::{Ran, RanOn};
use crate::shared::{Shared, SharedRef};
use crate::stats::PoolEvent;
use crate::sync::Arc;
use crate::waiters::{Decision, Waiter};
use crate::{CircuitState, ObjectMeta};

impl<T: Send + 'static> Shared<T> {
    /// Runs the factory (and `post_create`) as its own task, bounded by `create_timeout`,
    /// and settles the result through `cell` (`finish_create`). The task holds the shared
    /// state, not the pool, so dropping the last `Pool` still closes it at once; if the
    /// task panics or its runtime drops it, the create counts as failed. `admit`: what the
    /// breaker said (a half-open trial reports back as one).
    pub(crate) fn spawn_create(&self, cell: Arc<Waiter>, admit: Admit) {
        let task_ref = SharedRef::to(self);
        let fut_ref = task_ref.clone();
        let limit = self.config().create_timeout;
        let span = crate::rt::trace::create(&self.config().name);
        // Watched: the create's future owns all it touches (its late object is dropped).
        self.env().spawn_bounded(
            limit,
            true,
            crate::rt::trace::instrument(
                span,
                async move { fut_ref.get().create_with_hooks().await },
            ),
            move |ran, on| {
                // A runtime that shut down is not the factory failing, nor is a failure on
                // the thread a run moves to when its runtimes dropped it unstarted (a
                // factory needing a tokio reactor fails there): the breaker counts neither.
                let counts = match ran {
                    Ran::Dropped => false,
                    Ran::Done(Ok(_)) => true,
                    _ => on == RanOn::Planned,
                };
                let r = match ran {
                    Ran::Done(r) => r,
                    Ran::TimedOut => Err(format!(
                        "the factory did not finish within create_timeout ({limit:?})"
                    )
                    .into()),
                    Ran::Panicked(msg) => Err(format!("the factory panicked: {msg}").into()),
                    Ran::Dropped => {
                        Err("the runtime running the create shut down before it finished".into())
                    }
                };
                task_ref.get().finish_create(r, &cell, counts, admit);
            },
        );
    }

    /// `Factory::create`, then the `post_create` hook (a rejection fails the create); the
    /// object comes with the id it will have in the pool.
    pub(crate) async fn create_with_hooks(&self) -> Result<(T, u64), BoxError> {
        let start = self.now();
        let mut obj = self.factory().create().await?;
        let id = self.new_id();
        if let Some(hook) = &self.hooks().post_create {
            let meta = ObjectMeta {
                id,
                age: Duration::ZERO,
                idle_for: Duration::ZERO,
                held_for: Duration::ZERO,
                uses: 0,
            };
            hook(&mut obj, meta)
                .await
                .map_err(|e| format!("post_create rejected the object: {e}"))?;
        }
        self.record_create(self.now().saturating_sub(start));
        Ok((obj, id))
    }

    /// Every failed create, whether a caller waits for it or not (`min_idle`, warm-up):
    /// kept as the breaker's last error, sent as `PoolEvent::CreateFailed`, and logged
    /// (`tracing::warn!`, at most once a second per pool, with the count left out).
    pub(crate) fn create_failed(&self, e: &(dyn std::error::Error + 'static)) {
        let last = crate::error::LastCreateError::of(e);
        let text = last.0.clone();
        *self.last_create_error() = Some(std::sync::Arc::new(last));
        if let Some(quiet) = self.env().log_allowed() {
            crate::rt::trace::quietly(|| {
                tracing::warn!(
                    pool = %self.config().name,
                    error = %text,
                    not_logged_since = quiet,
                    "riptide_pool: creating a pooled object failed"
                )
            });
        }
        self.emit(|| PoolEvent::CreateFailed { error: text });
    }

    /// The error for a caller the open breaker turned away.
    pub(crate) fn circuit_open(&self) -> PoolError {
        PoolError::CircuitOpen {
            last_error: self
                .last_create_error()
                .clone()
                .map(|e| e as std::sync::Arc<dyn std::error::Error + Send + Sync>),
        }
    }

    /// The breaker's state (`Closed` when the pool has none).
    pub(crate) fn circuit_state(&self) -> CircuitState {
        self.breaker()
            .map_or(CircuitState::Closed, |b| b.state_at(self.exact_ms()))
    }

    /// Asks the breaker before a create (`Call` when the pool has none).
    pub(crate) fn breaker_admit(&self) -> Admit {
        self.breaker()
            .map_or(Admit::Call, |b| b.admit_at(self.exact_ms()))
    }

    /// Whether the breaker would turn a create away now, without taking a half-open trial.
    pub(crate) fn breaker_rejects(&self) -> bool {
        self.breaker()
            .is_some_and(|b| b.rejects(|| self.exact_ms()))
    }

    /// Tells the breaker that a create admitted as `admit` did not run or did not report
    /// the factory's outcome: a half-open trial is given up, so the next caller tries.
    pub(crate) fn breaker_abandon(&self, admit: Admit) {
        if let Some(b) = self.breaker() {
            b.abandon(admit);
        }
    }

    /// Tells the breaker how a create admitted as `admit` went. Opening fails every
    /// queued waiter: their wakers are returned, to wake once the create is settled.
    /// Events go out after the state changed, with nothing held.
    pub(crate) fn breaker_record(&self, admit: Admit, ok: bool) -> Vec<std::task::Waker> {
        let Some(b) = self.breaker() else {
            return Vec::new();
        };
        match b.record_at(admit, ok, self.exact_ms()) {
            Transition::Opened => {
                self.emit(|| PoolEvent::CircuitOpened);
                crate::rt::trace::quietly(
                    || tracing::warn!(pool = %self.config().name, "factory failing: circuit breaker open"),
                );
                return self.fail_waiters_circuit_open();
            }
            Transition::Closed => self.emit(|| PoolEvent::CircuitClosed),
            Transition::None => {}
        }
        Vec::new()
    }
}

/// Creates an object with a reservation the caller holds, and waits for it (`warm_up`).
///
/// # Cancel safety
/// Dropping the future loses nothing: the create goes on and its object lands in the pool.
pub(crate) async fn create_reserved<T: Send + 'static>(
    pool: &crate::Pool<T>,
) -> Result<usize, PoolError> {
    let shared = pool.shared();
    let admit = shared.breaker_admit();
    if admit == Admit::Reject {
        shared.unreserve();
        return Err(shared.circuit_open());
    }
    let cell = Waiter::new(crate::Priority::Normal, shared.now(), Duration::MAX, false);
    // Tracked as a caller's create is, so `close` fails this wait at once too.
    if !shared.track_unqueued(&cell) {
        shared.breaker_abandon(admit);
        shared.unreserve();
        return Err(PoolError::Closed);
    }
    shared.spawn_create(cell.clone(), admit);
    let wait = WaitCell {
        shared,
        cell: &cell,
        done: false,
    };
    match wait.await {
        Decision::Handed(i) => Ok(i),
        Decision::Failed => Err(PoolError::Create(
            cell.error
                .lock()
                .take()
                .unwrap_or_else(|| "factory failed".into()),
        )),
        _ => Err(PoolError::Closed),
    }
}

/// Waits until a create's cell is decided; if dropped first, cancels it (I5).
struct WaitCell<'a, T: Send + 'static> {
    shared: &'a Shared<T>,
    cell: &'a Arc<Waiter>,
    done: bool,
}

impl<T: Send + 'static> std::future::Future for WaitCell<'_, T> {
    type Output = Decision;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Decision> {
        let d = std::task::ready!(self.cell.poll_decision(cx));
        self.done = true;
        std::task::Poll::Ready(d)
    }
}

impl<T: Send + 'static> Drop for WaitCell<'_, T> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel(self.cell);
            self.shared.untrack_unqueued(self.cell);
        }
    }
}
