//! Where the pool's futures run: spawning creates, their time limits and watchdog, and
//! work dropped aside (blocking waits are `block.rs`'s).
//!
//! - A create runs as its own task (on the tokio runtime current at the call, else the one
//!   captured at `build()` while it is alive, else on a thread of its own inside the pool's
//!   own runtime), so a caller that
//!   times out or is cancelled never aborts it halfway: the object it makes goes into the
//!   pool instead.
//! - Time limits run on the pool's own timer (`timer.rs`), never on a runtime's time
//!   driver: a runtime built without timers, or one that shut down, never leaves a caller
//!   waiting past its deadline.
//! - The runtime captured at `build()` is used only while it is alive ([`Runtime`], in
//!   `runtime.rs`): a pool that outlives the runtime it was built in falls back to
//!   threads, as a pool built outside any runtime does.
//! - Under a model checker there is no clock and no tokio: creates run on model threads and
//!   timeouts are modelled by dropping futures.

use std::future::Future;
#[cfg(not(riptide_model))]
use std::time::Duration;

#[cfg(not(riptide_model))]
use super::runtime::{create_runtime, is_current_thread, Runtime};

/// How a background run (a create) ended.
#[cfg_attr(riptide_model, allow(dead_code))] // models have no clock and do not catch panics
pub(crate) enum Ran<R> {
    /// It finished with this result.
    Done(R),
    /// It did not finish within its time limit: it was dropped then, or (a watched run
    /// its runtime stopped driving) its watchdog settled it.
    TimedOut,
    /// It panicked; the panic's message.
    Panicked(String),
    /// Its runtime shut down before it finished (the task was dropped).
    Dropped,
}

/// Where a background run ran.
#[cfg_attr(riptide_model, allow(dead_code))] // models run everything as planned
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RanOn {
    /// Where it was spawned: a runtime, or a thread when there was none.
    Planned,
    /// On a plain thread after every runtime it was given to dropped it unstarted (they
    /// were shutting down) and the pool's own runtime could not be built. Code that needs
    /// a runtime (a tokio reactor) fails there, so a failure says nothing about the work
    /// itself.
    RescueThread,
}

#[cfg(not(riptide_model))]
impl super::Env {
    /// Runs `fut`, bounded by `d`, in the background, then `finish` with how it ended.
    /// `finish` runs exactly once, whatever happens: a panic is caught, and a task dropped by
    /// its runtime's shutdown reports [`Ran::Dropped`], so a reservation is never lost.
    ///
    /// It runs on the runtime current at the call, else the one captured at `build()`,
    /// else a thread of its own. What a current-thread runtime cannot be trusted to run
    /// goes to the pool's own runtime ([`on_create_runtime`]). A runtime that drops the
    /// task before its first poll (it was shutting down) passes it on: to the captured
    /// runtime if it was not tried yet, is alive and multi-thread, else to the pool's own
    /// runtime (a plain thread only if that cannot be built: [`RanOn::RescueThread`]).
    ///
    /// With `watchdog`, a run its runtime stopped driving is settled as
    /// [`Ran::TimedOut`] shortly after `d`: its future is taken from the stalled task and
    /// dropped first (aside), so whatever it made (an object halfway through its
    /// handshake) is gone before its capacity is given back. Only for a future that owns
    /// all it touches (a create): never for one that borrows the pool's slots (a checkout
    /// step), whose object must outlive it.
    pub(crate) fn spawn_bounded<F, R>(
        &self,
        d: Duration,
        watchdog: bool,
        fut: F,
        finish: impl FnOnce(Ran<R>, RanOn) + Send + 'static,
    ) where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        type Settle<G, R> = (Option<G>, std::sync::Arc<std::sync::atomic::AtomicBool>, R);
        struct Finish<G: FnOnce(Ran<R>, RanOn), R>(Settle<G, std::marker::PhantomData<fn(R)>>);
        impl<G: FnOnce(Ran<R>, RanOn), R> Finish<G, R> {
            fn run(mut self, r: Ran<R>) {
                if let Some(g) = self.0 .0.take() {
                    g(r, self.on());
                }
            }
            fn on(&self) -> RanOn {
                // Relaxed: set before the run moved to its thread (the spawn orders it).
                if self.0 .1.load(std::sync::atomic::Ordering::Relaxed) {
                    RanOn::RescueThread
                } else {
                    RanOn::Planned
                }
            }
        }
        impl<G: FnOnce(Ran<R>, RanOn), R> Drop for Finish<G, R> {
            fn drop(&mut self) {
                if let Some(g) = self.0 .0.take() {
                    g(Ran::Dropped, self.on());
                }
            }
        }
        /// The run's hold on `finish`, shared with its watchdog: whichever settles first
        /// takes it. Dropped with the run unsettled (its runtime shut down), it reports
        /// [`Ran::Dropped`] through `Finish`'s drop.
        struct Shared<G: FnOnce(Ran<R>, RanOn), R> {
            finish: std::sync::Arc<std::sync::Mutex<Option<Finish<G, R>>>>,
            watchdog: Option<super::timer::Key>,
        }
        impl<G: FnOnce(Ran<R>, RanOn), R> Shared<G, R> {
            fn take(&self) -> Option<Finish<G, R>> {
                // Dropped after the timer's lock: it holds the other reference.
                drop(self.watchdog.and_then(super::timer::disarm));
                // No user code runs under this lock, so it is never poisoned by one.
                self.finish.lock().unwrap_or_else(|e| e.into_inner()).take()
            }
        }
        impl<G: FnOnce(Ran<R>, RanOn), R> Drop for Shared<G, R> {
            fn drop(&mut self) {
                drop(self.take());
            }
        }

        let rescued = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let finish = Finish((Some(finish), rescued.clone(), std::marker::PhantomData));
        let finish = std::sync::Arc::new(std::sync::Mutex::new(Some(finish)));
        // The watchdog: a run whose runtime stopped driving it (a current-thread runtime
        // that is alive but idle) never reaches its own time limit, and would hold its
        // reservation, and a half-open breaker's trial, for as long as that runtime
        // idles. Shortly after the limit the watchdog settles it as timed out, off the
        // timer thread (settling wakes callers); a result that comes later is dropped.
        // Not under Miri, which checks the unsafe paths and fails a test that leaves a
        // thread running: arming it starts the process's timer thread.
        let held = Held::new(fut);
        let watchdog = (watchdog && !cfg!(miri)).then(|| {
            let finish = finish.clone();
            let stranded = held.share();
            let at = super::timer::deadline_after(d.saturating_add(STRANDED_GRACE));
            super::timer::arm(
                at,
                super::timer::Action::Call(Box::new(move || {
                    run_aside(move || {
                        // The future first (waiting out a poll in progress, if its runtime
                        // woke meanwhile): what it made must be gone before its capacity
                        // is free. Then settle, unless the run settled itself.
                        stranded.take();
                        let taken = finish.lock().unwrap_or_else(|e| e.into_inner()).take();
                        if let Some(f) = taken {
                            f.run(Ran::TimedOut);
                        }
                    });
                })),
            )
        });
        let settle = Shared { finish, watchdog };

        let run = async move {
            let r = match super::timer::Timeout::new(d, CatchUnwind::new(held)).await {
                Some(Ok(v)) => Ran::Done(v),
                Some(Err(msg)) => Ran::Panicked(msg),
                None => Ran::TimedOut,
            };
            match settle.take() {
                Some(f) => f.run(r),
                // Settled by the watchdog: what the run made is dropped here.
                None => drop(r),
            }
        };
        let run: Run = Box::pin(run);
        match tokio::runtime::Handle::try_current() {
            // A blocking caller on a thread of its own, inside a current-thread runtime it
            // does not drive (see `block_on_timeout`): that runtime runs its tasks, and
            // drives its reactor and timers, only while its owner drives it, which may be
            // never. The run goes to the pool's own runtime (`on_create_runtime`).
            Ok(h) if super::block::blocking_outside_owner() => on_create_runtime(Some(&h), run),
            Ok(h) => Rescue::spawn(&h, run, self.runtime().cloned(), rescued),
            // Outside any runtime: the one captured at build while it lives. A current-thread
            // one runs tasks only while its owner drives it, and this thread is not its
            // owner: the pool's own runtime, as above. With no runtime left (the pool was
            // built outside one, or the one captured is gone), the pool's own runtime too,
            // so a factory that needs tokio's timer or reactor finds them. Not under Miri,
            // which wants every thread finished when a test ends: a thread of its own.
            Err(_) => match self.runtime().and_then(Runtime::handle) {
                Some(h) if is_current_thread(h) => on_create_runtime(Some(h), run),
                Some(h) => Rescue::spawn(h, run, None, rescued),
                None if cfg!(miri) => on_thread(run),
                None => on_create_runtime(None, run),
            },
        }
    }
}

#[cfg(not(riptide_model))]
impl super::Env {
    /// Runs `work` (an object's destruction) away from the caller, so that a slow `Drop`
    /// never holds a caller past its deadline. It runs on a blocking thread of the pool's
    /// own runtime, inside the tokio runtime current at the call if any (a `Drop` that
    /// spawns its clean-up finds that runtime, as it would have on the caller) and under
    /// the caller's tracing subscriber; else on a thread of its own. Never on the current
    /// runtime's blocking pool: that pool may be full (of blocking callers waiting for the
    /// very capacity `work` frees), or its runtime shut down (it would drop `work` at once,
    /// to run on the caller). `work` runs exactly once: if no thread can be had, it runs
    /// where that happens. Under Miri, which wants every thread finished when a test
    /// ends, it runs on the caller.
    pub(crate) fn run_aside(&self, work: impl FnOnce() + Send + 'static) {
        run_aside(work);
    }
}

/// How long after its time limit a background run that has not settled (its runtime
/// stopped driving it) is settled as timed out by its watchdog.
#[cfg(not(riptide_model))]
const STRANDED_GRACE: Duration = Duration::from_millis(100);

/// [`Env::run_aside`](super::Env::run_aside), for callers without a pool at hand.
#[cfg(not(riptide_model))]
fn run_aside(work: impl FnOnce() + Send + 'static) {
    // Runs the work when dropped: at the end of `run`, or, if the work never gets
    // to run (no thread could take it), where it is dropped.
    let once = crate::defer::OnDrop::new(work);
    if cfg!(miri) {
        // Miri wants every thread finished when a test ends, and the pool's own
        // runtime keeps its blocking threads: the work runs here.
        return drop(once);
    }
    let current = tokio::runtime::Handle::try_current().ok();
    // The caller's subscriber too: what the drop logs (a panicking `Drop`) goes where
    // it would have gone on the caller, even to a subscriber scoped to its thread.
    let dispatch = tracing::dispatcher::get_default(tracing::Dispatch::clone);
    let run = move || {
        let _in = current.as_ref().map(tokio::runtime::Handle::enter);
        tracing::dispatcher::with_default(&dispatch, || drop(once));
    };
    match create_runtime() {
        // The pool's own runtime never shuts down, and nothing else fills its blocking
        // pool.
        Some(rt) => drop(rt.spawn_blocking(run)),
        None => {
            // A thread of its own; if none can be spawned, the work runs here as the
            // builder drops it.
            let _ = std::thread::Builder::new()
                .name("riptide-pool-destroy".into())
                .spawn(run);
        }
    }
}

/// A background run, type-erased.
#[cfg(not(riptide_model))]
type Run = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A background run on a thread of its own.
#[cfg(not(riptide_model))]
fn on_thread(run: Run) {
    on_thread_in(None, run);
}

/// A background run on a thread of its own, inside `rt`'s context if given.
#[cfg(not(riptide_model))]
fn on_thread_in(rt: Option<tokio::runtime::Handle>, run: Run) {
    std::thread::Builder::new()
        .name("riptide-pool-create".into())
        .spawn(move || {
            let _entered = rt.as_ref().map(tokio::runtime::Handle::enter);
            super::block::block_on_deadline(run, None);
        })
        .expect("riptide_pool: could not spawn a thread to create an object");
}

/// A create that a current-thread runtime cannot be trusted to run: one started outside
/// it (a blocking caller on another thread, the upkeep thread), or one it dropped unstarted
/// as it shut down. That runtime drives its tasks, reactor and timers only while its owner
/// drives it, which may be never (an idle `main` waiting on a channel) or never again (it
/// is shutting down): a factory that awaits a tokio timer or socket there would hang until
/// its `create_timeout` and count as failing.
///
/// So the run goes to the pool's own runtime ([`create_runtime`]): a thread of its own
/// (a factory that blocks, or waits long on a slow backend, stalls no other create) that
/// enters that runtime's context and polls the run there, while the runtime's worker
/// drives the reactor and timers: what the factory opens (a socket, a spawned connection
/// task) keeps working after the create. The thread only entered the runtime, so a
/// factory may still block inside (`get_blocking` on another pool). If that runtime
/// cannot be built (no threads left), the thread enters `fallback` instead.
#[cfg(not(riptide_model))]
fn on_create_runtime(fallback: Option<&tokio::runtime::Handle>, run: Run) {
    let ctx = create_runtime().map_or_else(|| fallback.cloned(), |rt| Some(rt.handle().clone()));
    on_thread_in(ctx, run);
}

/// A background run spawned on a tokio runtime. If the runtime drops it before its first
/// poll (it was shutting down: a handle cannot tell), the run moves on instead of failing:
/// to `next` (the runtime captured at build, while alive), else to a thread; a run dropped
/// after it started reports `Ran::Dropped`.
#[cfg(not(riptide_model))]
struct Rescue {
    run: Option<Run>,
    started: bool,
    next: Option<Runtime>,
    /// Set when the run moves to a thread (`RanOn::RescueThread`).
    rescued: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(not(riptide_model))]
impl Rescue {
    fn spawn(
        h: &tokio::runtime::Handle,
        run: Run,
        next: Option<Runtime>,
        rescued: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        h.spawn(Rescue {
            run: Some(run),
            started: false,
            next,
            rescued,
        });
    }
}

#[cfg(not(riptide_model))]
impl Future for Rescue {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.started = true;
        let Some(run) = self.run.as_mut() else {
            return std::task::Poll::Ready(());
        };
        let r = run.as_mut().poll(cx);
        if r.is_ready() {
            self.run = None;
        }
        r
    }
}

#[cfg(not(riptide_model))]
impl Drop for Rescue {
    fn drop(&mut self) {
        let Some(run) = self.run.take().filter(|_| !self.started) else {
            return;
        };
        let next = self.next.take().filter(|rt| rt.handle().is_some());
        if let Some(rt) = next.as_ref().filter(|rt| !rt.is_current_thread()) {
            // If that runtime is shutting down too, it drops this one unstarted in turn (at
            // once, when it is already closed) and the run moves on again, below.
            Rescue::spawn(&rt.handle, run, None, self.rescued.clone());
            return;
        }
        // The pool's own runtime, which drives the reactor and timers a factory needs, so
        // its outcome is the factory's. This covers a current-thread build runtime (perhaps
        // the one shutting down) and no runtime left at all. Only if that runtime cannot be
        // built does the run get a plain thread, where a factory that needs a reactor
        // fails: that failure is not the factory's.
        if create_runtime().is_none() {
            // Relaxed: the thread's spawn orders it before the run's finish reads it.
            self.rescued
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        on_create_runtime(next.as_ref().map(|rt| &rt.handle), run);
    }
}

/// A run's future, held where its watchdog can take it away from a task its runtime
/// stopped driving (and drop it). Polling a taken one stays pending: its run's own time
/// limit, already past, ends it when its runtime polls it again.
#[cfg(not(riptide_model))]
struct Held<F>(std::sync::Arc<std::sync::Mutex<Option<std::pin::Pin<Box<F>>>>>);

#[cfg(not(riptide_model))]
impl<F> Held<F> {
    fn new(fut: F) -> Self {
        Held(std::sync::Arc::new(std::sync::Mutex::new(Some(Box::pin(
            fut,
        )))))
    }

    fn share(&self) -> Self {
        Held(self.0.clone())
    }

    /// Takes the future away and drops it here; a panic in its drop is caught (what it
    /// held is dropped either way).
    fn take(&self) {
        // Poisoned only by a panic in the future's poll, which `CatchUnwind` reported.
        let fut = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(fut)));
    }
}

#[cfg(not(riptide_model))]
impl<F: Future> Future for Held<F> {
    type Output = F::Output;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(fut) = slot.as_mut() else {
            return std::task::Poll::Pending;
        };
        let r = fut.as_mut().poll(cx);
        if r.is_ready() {
            // Done: nothing of it is left for a watchdog to drop.
            *slot = None;
        }
        r
    }
}

pin_project_lite::pin_project! {
    /// A future whose panics become `Err(message)`.
    pub(crate) struct CatchUnwind<F> {
        #[pin]
        fut: F,
    }
}

impl<F> CatchUnwind<F> {
    pub(crate) fn new(fut: F) -> Self {
        CatchUnwind { fut }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let fut = self.project().fut;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(p) => std::task::Poll::Ready(Err(crate::error::panic_message(&*p))),
        }
    }
}
