//! The options of an acquisition: [`AcquireOptions`] (priority, timeout, the caller's
//! location), the builder [`Acquire`] that `Pool::acquire` returns, the setters it shares
//! with `PartitionAcquire`, and [`Acquire::blocking`], which drives the same future on the
//! calling thread. Awaiting an `Acquire` (its `IntoFuture`) is step 1 of the path in
//! `mod.rs`.

use std::future::IntoFuture;
use std::panic::Location;
use std::time::Duration;

use crate::error::PoolError;
use crate::waiters::Priority;
use crate::{Pool, Pooled};

/// The options of one acquisition, shared by [`Acquire`] and `PartitionAcquire`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcquireOptions {
    pub priority: Priority,
    pub timeout: Option<Duration>,
    pub location: &'static Location<'static>,
}

impl AcquireOptions {
    #[track_caller]
    pub(crate) fn new() -> Self {
        AcquireOptions {
            priority: Priority::Normal,
            timeout: None,
            location: Location::caller(),
        }
    }
}

/// An acquisition being configured: from [`Pool::acquire`]. Await it (`IntoFuture`) or
/// call [`blocking`](Acquire::blocking).
#[must_use = "an Acquire does nothing until awaited or `.blocking()` is called"]
pub struct Acquire<'a, T: Send + 'static> {
    pub(crate) pool: &'a Pool<T>,
    pub(crate) opts: AcquireOptions,
}

impl<T: Send + 'static> std::fmt::Debug for Acquire<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acquire")
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

/// The option setters of an acquisition builder with an `opts: AcquireOptions` field.
macro_rules! option_setters {
    (priority: $priority:literal, timeout: $timeout:literal) => {
        #[doc = $priority]
        pub fn priority(mut self, p: $crate::Priority) -> Self {
            self.opts.priority = p;
            self
        }

        #[doc = $timeout]
        pub fn timeout(mut self, d: std::time::Duration) -> Self {
            self.opts.timeout = Some(d);
            self
        }
    };
}
pub(crate) use option_setters;

impl<T: Send + 'static> Acquire<'_, T> {
    option_setters!(
        priority: "Priority in the wait queue (default `Normal`).",
        timeout: "Overrides the pool's `acquire_timeout` for this call. `Duration::ZERO` \
            means \"do not wait\": an idle object or `PoolError::Timeout` at once, never a \
            queue or a create (unlike `try_get`, an idle object due for validation is \
            validated; a validation that cannot finish at once is a `Timeout`, and finishes \
            in the background, returning the object to the pool if it passes)."
    );

    /// Acquires from a thread without an async runtime, waiting up to the timeout.
    ///
    /// # Errors
    /// As `get().await`: `Timeout`, `Closed`, `Create`, `CircuitOpen`.
    ///
    /// # Panics
    /// On a tokio runtime worker thread (blocking there can deadlock the runtime): use
    /// `.await` there, or call this inside `tokio::task::spawn_blocking`.
    pub fn blocking(self) -> Result<Pooled<T>, PoolError> {
        let shared = self.pool.shared();
        shared.block_on_acquire(self.opts.timeout, || self.into_future())
    }
}
