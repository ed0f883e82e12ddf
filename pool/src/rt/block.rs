//! Blocking waits: a blocking acquisition runs inside a runtime that drives its timers
//! and I/O (the current one, the one captured at build, or the pool's own beside a
//! current-thread runtime it does not drive), or parks this thread between polls.

use std::future::Future;
use std::time::Duration;

use super::runtime::{create_runtime, is_current_thread, Runtime};

#[cfg(not(riptide_model))]
std::thread_local! {
    /// Set while this thread runs a blocking acquisition inside a current-thread runtime
    /// that it entered from outside (`Handle::block_on`, which does not run the runtime's
    /// other tasks).
    static OUTSIDE_OWNER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread runs a blocking acquisition inside a current-thread runtime it does
/// not drive.
#[cfg(not(riptide_model))]
pub(super) fn blocking_outside_owner() -> bool {
    OUTSIDE_OWNER.with(std::cell::Cell::get)
}

/// Polls `fut` on this thread, parking between polls, until it completes or `deadline`
/// passes (then `None`, and `fut` is dropped).
#[cfg(not(riptide_model))]
pub(crate) fn block_on_deadline<F: Future>(
    fut: F,
    deadline: Option<std::time::Instant>,
) -> Option<F::Output> {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    return None;
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// Runs a blocking acquisition: inside the runtime current on this thread or captured at
/// `build()` (so user code in hooks and `validate` finds its reactor), else on this
/// thread (where its checkout step is polled inside the pool's own runtime).
///
/// # Panics
/// On a tokio runtime worker thread (blocking there can deadlock the runtime).
#[cfg(not(riptide_model))]
pub(crate) fn block_on_timeout<F: Future + Send>(
    rt: Option<&Runtime>,
    d: Duration,
    fut: F,
) -> Option<F::Output> {
    // A thread that blocks beside a current-thread runtime is never the one driving it
    // (inside its owner's `block_on`, `assert_not_worker` panics): that runtime runs its
    // tasks, reactor and timers only while its owner drives it, which may be never while
    // we wait (a `spawn_blocking` thread, a thread that entered its handle). So the
    // acquisition runs inside the pool's own runtime, whose worker drives them (a
    // `validate` that sleeps or does I/O completes), and creates started here get threads
    // of their own (`spawn_bounded`). Whether the runtime is the current one or the one
    // captured at build.
    let block_in = |h: &tokio::runtime::Handle, fut: F| {
        let outside = is_current_thread(h);
        let was = OUTSIDE_OWNER.replace(outside);
        let _restore = crate::defer::OnDrop::new(|| OUTSIDE_OWNER.set(was));
        let h = match create_runtime() {
            Some(own) if outside => own.handle(),
            _ => h,
        };
        h.block_on(super::timer::Timeout::new(d, fut))
    };
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        assert_not_worker(&h);
        return block_in(&h, fut);
    }
    match rt.and_then(Runtime::handle) {
        Some(h) => block_in(h, fut),
        // No runtime left (the pool was built outside one, or the one captured is gone):
        // polled here. What in it needs a runtime finds one: its creates run on the pool's
        // own (`spawn_bounded`), and so is its checkout step polled (`in_a_runtime`).
        None => block_on_deadline(fut, Some(super::timer::deadline_after(d))),
    }
}

/// Panics with a clear message on a tokio worker thread (tokio's `block_on` refuses to
/// run there; we check first so the message names our function).
#[cfg(not(riptide_model))]
pub(crate) fn assert_not_worker(h: &tokio::runtime::Handle) {
    let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.block_on(async {})));
    if probe.is_err() {
        panic!(
            "riptide_pool: get_blocking() was called on a tokio runtime worker thread, where \
             blocking can deadlock the runtime; use `pool.get().await` there, or call it \
             inside `tokio::task::spawn_blocking`"
        );
    }
}
