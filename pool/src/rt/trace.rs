//! `tracing` spans on the pool's slow paths, at debug level: an acquisition that has to
//! wait or create (`riptide_pool.acquire`, open for as long as the caller waits, so a slow
//! request's trace shows the time spent waiting for the pool), a create
//! (`riptide_pool.create`), and a destroy (`riptide_pool.destroy`, around the object's
//! `Drop`). The fast path (an idle object, a return nobody waits for) makes none. Under
//! the model checkers they are no-ops.

#[cfg(not(riptide_model))]
mod imp {
    use std::time::Duration;

    pub(crate) type Span = tracing::Span;

    /// A waiting acquisition's span: boxed, and `None` while no subscriber wants it, so it
    /// costs a waiting future one word.
    pub(crate) type WaitSpan = Option<Box<Span>>;

    /// An acquisition that has to wait or create; a child of the caller's current span.
    pub(crate) fn acquire(pool: &str, priority: crate::Priority) -> WaitSpan {
        let span = tracing::debug_span!("riptide_pool.acquire", pool, ?priority);
        (!span.is_disabled()).then(|| Box::new(span))
    }

    /// A create run in the background (no parent: it may outlive its caller).
    pub(crate) fn create(pool: &str) -> Span {
        tracing::debug_span!(parent: None, "riptide_pool.create", pool)
    }

    /// Runs a destroy inside its span.
    pub(crate) fn destroy<R>(
        pool: &str,
        id: u64,
        reason: crate::DestroyReason,
        f: impl FnOnce() -> R,
    ) -> R {
        tracing::debug_span!("riptide_pool.destroy", pool, id, ?reason).in_scope(f)
    }

    /// The acquisition got its object after waiting `waited()` (a clock read, made only
    /// while a subscriber wants the span).
    pub(crate) fn served(span: &WaitSpan, waited: impl FnOnce() -> Duration) {
        if let Some(span) = span {
            let waited_us = waited().as_micros() as u64;
            tracing::debug!(parent: &**span, waited_us, "riptide_pool: served");
        }
    }

    /// Runs `fut` inside `span` (entered on every poll).
    pub(crate) fn instrument<F: std::future::Future>(
        span: Span,
        fut: F,
    ) -> tracing::instrument::Instrumented<F> {
        tracing::Instrument::instrument(fut, span)
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
