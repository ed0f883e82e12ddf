//! Where futures run: spawning creates, timeouts, and blocking waits.
//!
//! - A create runs as its own task (tokio when a runtime is reachable, else a thread), so
//!   a caller that times out or is cancelled never aborts it halfway: the object it makes
//!   goes into the pool instead (sqlx#3132 is the bug this avoids).
//! - Under loom there is no clock and no tokio: creates run on a loom thread and timeouts
//!   are modelled by dropping futures.

use std::future::Future;
use std::time::Duration;

/// Runs `fut`, bounded by `d`, in the background, then `finish` with its result (`None`
/// when the time ran out). `finish` runs exactly once: if the task panics or its runtime
/// drops it, `finish(None)` runs from the unwinding/drop, so a reservation is never lost.
pub(crate) fn spawn_bounded<F, R>(
    rt: Option<&Runtime>,
    d: Duration,
    fut: F,
    finish: impl FnOnce(Option<R>) + Send + 'static,
) -> Spawned
where
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    struct Finish<G: FnOnce(Option<R>), R>(Option<G>, std::marker::PhantomData<fn(R)>);
    impl<G: FnOnce(Option<R>), R> Finish<G, R> {
        fn run(mut self, r: Option<R>) {
            if let Some(g) = self.0.take() {
                g(r);
            }
        }
    }
    impl<G: FnOnce(Option<R>), R> Drop for Finish<G, R> {
        fn drop(&mut self) {
            if let Some(g) = self.0.take() {
                g(None);
            }
        }
    }
    let finish = Finish(Some(finish), std::marker::PhantomData);

    #[cfg(not(model))]
    {
        let h = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| rt.cloned());
        match h {
            Some(h) => {
                h.spawn(async move {
                    let r = tokio::time::timeout(d, fut).await.ok();
                    finish.run(r);
                });
            }
            None => {
                std::thread::Builder::new()
                    .name("riptide-pool-create".into())
                    .spawn(move || {
                        let r = block_on_deadline(fut, std::time::Instant::now().checked_add(d));
                        finish.run(r);
                    })
                    .expect("riptide_pool: could not spawn a thread to create an object");
            }
        }
    }
    #[cfg(model)]
    {
        let _ = (rt, d);
        crate::sync::thread::spawn(move || {
            let r = crate::sync::block_on(fut);
            finish.run(Some(r));
        })
    }
}

/// What `spawn_bounded` leaves behind: nothing, or (loom) the thread to join.
#[cfg(not(model))]
pub(crate) type Spawned = ();
#[cfg(model)]
pub(crate) type Spawned = crate::sync::thread::JoinHandle<()>;

/// Spawns a task on the current or captured tokio runtime; false when there is none.
#[cfg(not(model))]
pub(crate) fn spawn_task(
    rt: Option<&Runtime>,
    fut: impl Future<Output = ()> + Send + 'static,
) -> bool {
    match tokio::runtime::Handle::try_current()
        .ok()
        .or_else(|| rt.cloned())
    {
        Some(h) => {
            h.spawn(fut);
            true
        }
        None => false,
    }
}

/// Panics with a clear message when an async acquisition has to wait with no tokio
/// runtime reachable (its deadline and creates need one).
#[cfg(not(model))]
pub(crate) fn require_runtime(rt: Option<&Runtime>) {
    if rt.is_none() && tokio::runtime::Handle::try_current().is_err() {
        panic!(
            "riptide_pool: `get().await` needs a tokio runtime (with time enabled) when it has \
             to wait; build the pool inside one, or use `get_blocking()` from plain threads"
        );
    }
}

#[cfg(model)]
pub(crate) fn require_runtime(_rt: Option<&Runtime>) {}

#[cfg(not(model))]
pub(crate) type Runtime = tokio::runtime::Handle;
#[cfg(model)]
pub(crate) type Runtime = ();

/// `fut` bounded by `d`: `None` when the time ran out first. Uses the current tokio
/// runtime, else the one captured at `build()`.
///
/// # Panics
/// With no tokio runtime reachable, or one without its time driver: `get()` needs one.
#[cfg(not(model))]
pub(crate) async fn timeout<F: Future>(
    rt: Option<&Runtime>,
    d: Duration,
    fut: F,
) -> Option<F::Output> {
    let t = if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::timeout(d, fut)
    } else if let Some(h) = rt {
        let _enter = h.enter();
        tokio::time::timeout(d, fut)
    } else {
        panic!(
            "riptide_pool: `get().await` needs a tokio runtime (with time enabled) when it has \
             to wait; build the pool inside one, or use `get_blocking()` from plain threads"
        )
    };
    t.await.ok()
}

#[cfg(model)]
pub(crate) async fn timeout<F: Future>(
    _rt: Option<&Runtime>,
    _d: Duration,
    fut: F,
) -> Option<F::Output> {
    Some(fut.await)
}

/// Polls `fut` on this thread, parking between polls, until it completes or `deadline`
/// passes (then `None`, and `fut` is dropped).
#[cfg(not(model))]
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

/// Runs a blocking acquisition: through a tokio runtime's `block_on` when one is reachable
/// (tokio then panics if this is one of its worker threads, as it must: blocking a worker
/// can deadlock the runtime), else on this thread.
#[cfg(not(model))]
pub(crate) fn block_on_timeout<F: Future + Send>(
    rt: Option<&Runtime>,
    d: Duration,
    fut: F,
) -> Option<F::Output> {
    let h = tokio::runtime::Handle::try_current()
        .ok()
        .or_else(|| rt.cloned());
    match h {
        Some(h) => {
            assert_not_worker(&h);
            h.block_on(async { tokio::time::timeout(d, fut).await.ok() })
        }
        None => block_on_deadline(fut, std::time::Instant::now().checked_add(d)),
    }
}

#[cfg(model)]
pub(crate) fn block_on_timeout<F: Future + Send>(
    _rt: Option<&Runtime>,
    _d: Duration,
    fut: F,
) -> Option<F::Output> {
    Some(crate::sync::block_on(fut))
}

/// Panics with a clear message on a tokio worker thread (tokio's `block_on` refuses to
/// run there; we check first so the message names our function).
#[cfg(not(model))]
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
