//! `tracing` spans on the pool's slow paths, at debug level: an acquisition that has to
//! wait or create (`riptide_pool.acquire`, open for as long as the caller waits, so a slow
//! request's trace shows the time spent waiting for the pool), a create
//! (`riptide_pool.create`), and a destroy (`riptide_pool.destroy`, around the object's
//! `Drop`). The fast path (an idle object, a return nobody waits for) makes none. Under
//! the model checkers they are no-ops.
//!
//! A subscriber is user code and may panic. Every call into it from the pool (these
//! spans, and every event the pool logs) goes through [`quietly`], which swallows the
//! panic: it never unwinds through the pool's bookkeeping or reaches a caller.

#[cfg(not(riptide_model))]
mod imp {
    use std::future::Future;
    use std::pin::pin;
    use std::time::Duration;

    use super::quietly;

    pub(crate) type Span = tracing::Span;

    /// A waiting acquisition's span: boxed, and `None` while no subscriber wants it, so it
    /// costs a waiting future one word. Closed quietly when dropped.
    #[derive(Default)]
    pub(crate) struct WaitSpan(Option<Box<Span>>);

    impl Drop for WaitSpan {
        #[inline]
        fn drop(&mut self) {
            if let Some(span) = self.0.take() {
                quietly(move || drop(span));
            }
        }
    }

    /// An acquisition that has to wait or create; a child of the caller's current span.
    pub(crate) fn acquire(pool: &str, priority: crate::Priority) -> WaitSpan {
        // No subscriber wants debug spans (the usual case): skip the callsite's own check.
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return WaitSpan(None);
        }
        WaitSpan(
            quietly(|| {
                let span = tracing::debug_span!("riptide_pool.acquire", pool, ?priority);
                (!span.is_disabled()).then(|| Box::new(span))
            })
            .flatten(),
        )
    }

    /// A create run in the background (no parent: it may outlive its caller).
    pub(crate) fn create(pool: &str) -> Span {
        quietly(|| tracing::debug_span!(parent: None, "riptide_pool.create", pool))
            .unwrap_or_else(Span::none)
    }

    /// Runs a destroy inside its span.
    pub(crate) fn destroy<R>(
        pool: &str,
        id: u64,
        reason: crate::DestroyReason,
        f: impl FnOnce() -> R,
    ) -> R {
        if !tracing::level_enabled!(tracing::Level::DEBUG) {
            return f();
        }
        let Some(span) =
            quietly(|| tracing::debug_span!("riptide_pool.destroy", pool, id, ?reason))
        else {
            return f();
        };
        let r = {
            let entered = quietly(|| span.enter());
            let r = f();
            if let Some(entered) = entered {
                quietly(move || drop(entered));
            }
            r
        };
        quietly(move || drop(span));
        r
    }

    /// The acquisition got its object after waiting `waited()` (a clock read, made only
    /// while a subscriber wants the span).
    pub(crate) fn served(span: &WaitSpan, waited: impl FnOnce() -> Duration) {
        if let Some(span) = &span.0 {
            let waited_us = waited().as_micros() as u64;
            quietly(|| tracing::debug!(parent: &**span, waited_us, "riptide_pool: served"));
        }
    }

    /// Runs `fut` inside `span` (entered on every poll; entering, leaving and closing it
    /// quietly).
    pub(crate) fn instrument<F: Future>(span: Span, fut: F) -> impl Future<Output = F::Output> {
        struct Quiet(Option<Span>);
        impl Drop for Quiet {
            fn drop(&mut self) {
                if let Some(span) = self.0.take() {
                    quietly(move || drop(span));
                }
            }
        }
        let span = Quiet(Some(span));
        async move {
            let mut fut = pin!(fut);
            std::future::poll_fn(|cx| {
                let entered = span.0.as_ref().and_then(|s| quietly(|| s.enter()));
                let r = fut.as_mut().poll(cx);
                if let Some(entered) = entered {
                    quietly(move || drop(entered));
                }
                r
            })
            .await
        }
    }
}

#[cfg(riptide_model)]
mod imp {
    use std::time::Duration;

    #[derive(Clone, Default)]
    pub(crate) struct Span;

    pub(crate) type WaitSpan = Span;

    pub(crate) fn acquire(_pool: &str, _priority: crate::Priority) -> WaitSpan {
        Span
    }
    pub(crate) fn create(_pool: &str) -> Span {
        Span
    }
    pub(crate) fn destroy<R>(
        _pool: &str,
        _id: u64,
        _reason: crate::DestroyReason,
        f: impl FnOnce() -> R,
    ) -> R {
        f()
    }
    pub(crate) fn served(_span: &Span, _waited: impl FnOnce() -> Duration) {}
    pub(crate) fn instrument<F: std::future::Future>(_span: Span, fut: F) -> F {
        fut
    }
}

pub(crate) use imp::*;

/// Runs `f`, a call into the `tracing` subscriber (user code), swallowing its panic: a
/// subscriber that panics must not unwind through the pool's bookkeeping (a destroy about
/// to free its capacity, a create settling, a maintenance pass). The panic hook has
/// already reported the panic; its payload is leaked rather than dropped, since its
/// `Drop` may be the subscriber's code too. `None` if `f` panicked.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            std::mem::forget(payload);
            None
        }
    }
}
