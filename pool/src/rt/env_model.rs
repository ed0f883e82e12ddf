//! [`Env`] under the model checkers: a logical clock the models advance, create threads
//! the models join, no timer (the models run the deadline sweep themselves) and no events.

use std::future::Future;
use std::time::Duration;

use super::exec::Ran;
use crate::stats::PoolEvent;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// No timer under the model checkers.
pub(crate) type TimerKey = std::convert::Infallible;
/// Nothing to drop.
pub(crate) struct Disarmed;

/// A deadline that never passes by itself (see `Env::deadline`).
pub(crate) struct Deadline;

impl Deadline {
    pub(crate) fn poll_passed(&mut self, _cx: &mut std::task::Context<'_>) -> bool {
        false
    }
}

std::thread_local! {
    /// Whether `run_aside` runs its work on a model thread of its own. Per OS thread:
    /// a model's threads all run on the thread that checks it, and each test checks its
    /// models on a thread of its own.
    static ASIDE_ON_THREADS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// See `ASIDE_ON_THREADS`.
pub(crate) fn drop_aside_on_threads(on: bool) {
    ASIDE_ON_THREADS.with(|c| c.set(on));
}

/// A pool's view of its (modelled) surroundings.
pub(crate) struct Env {
    /// The logical clock, in ns.
    clock: AtomicU64,
    /// Create threads, so models can join them.
    tasks: Mutex<Vec<crate::sync::thread::JoinHandle<()>>>,
}

impl Env {
    pub(crate) fn new() -> Env {
        Env {
            clock: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The logical clock.
    pub(crate) fn now(&self) -> Duration {
        // Relaxed: the clock only moves forward and publishes nothing.
        Duration::from_nanos(self.clock.load(Ordering::Relaxed))
    }

    /// The logical clock (the fine clock of a native build).
    pub(crate) fn now_fine(&self) -> Duration {
        self.now()
    }

    pub(crate) fn coarse_ms(&self) -> u64 {
        u64::try_from(self.now().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn exact_ms(&self) -> u64 {
        self.coarse_ms()
    }

    /// Runs `fut` on a model thread, to completion (time limits are modelled by dropping
    /// futures); the models join it.
    pub(crate) fn spawn_bounded<F, R>(
        &self,
        _d: Duration,
        _watchdog: bool,
        fut: F,
        finish: impl FnOnce(Ran<R>, super::exec::RanOn) + Send + 'static,
    ) where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let t = crate::sync::thread::spawn(move || {
            let r = crate::sync::block_on(fut);
            finish(Ran::Done(r), super::exec::RanOn::Planned);
        });
        self.tasks.lock().push(t);
    }

    pub(crate) fn block_on_timeout<F: Future + Send>(
        &self,
        _d: Duration,
        fut: F,
    ) -> Option<F::Output> {
        Some(crate::sync::block_on(fut))
    }

    pub(crate) fn assert_may_block(&self) {}

    /// Runs `work` here: the models see a destruction where it is asked for; or, for a
    /// model that asked for it (`model::drop_aside_on_threads`), on a model thread of its
    /// own that the models join with the creates, so they see what happens while a drop
    /// is still in flight.
    pub(crate) fn run_aside(&self, work: impl FnOnce() + Send + 'static) {
        if ASIDE_ON_THREADS.with(std::cell::Cell::get) {
            let t = crate::sync::thread::spawn(work);
            self.tasks.lock().push(t);
        } else {
            work();
        }
    }

    pub(crate) fn arm(&self, _at: Duration, _f: Box<dyn FnOnce() + Send>) -> Option<TimerKey> {
        None
    }

    pub(crate) fn disarm(key: TimerKey) -> Option<Disarmed> {
        match key {}
    }

    pub(crate) fn emit(&self, _event: impl FnOnce() -> PoolEvent) {}

    /// No background upkeep: the models run the maintenance pass themselves.
    pub(crate) fn start_upkeep(&self, _pool: Box<dyn super::Upkeep>, _interval: Duration) {}

    /// Under the model checkers a deadline never passes on its own: time-outs are modelled
    /// by dropping futures, and queued waiters by the deadline sweep the models run.
    pub(crate) fn deadline(&self, _at: Duration) -> Deadline {
        Deadline
    }

    pub(crate) fn log_allowed(&self) -> Option<u64> {
        Some(0)
    }

    /// Advances the logical clock.
    pub(crate) fn advance(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.clock.fetch_add(ns, Ordering::Relaxed);
    }

    /// Joins the create threads started so far.
    pub(crate) fn join_tasks(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            t.join().expect("create thread");
        }
    }
}

/// The models have no tokio runtime: partitions are built as they are.
pub(crate) struct BuildRuntime;

impl BuildRuntime {
    pub(crate) fn capture(_watch: Box<dyn super::Upkeep>) -> Self {
        BuildRuntime
    }

    pub(crate) fn enter(&self) -> Option<()> {
        None
    }
}
