//! [`Env`] for real builds: the process's coarse clock and timer thread, the tokio runtime
//! captured at `build()`, and the events channel.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::runtime::{self, Runtime};
use super::{clock, timer, upkeep};
use crate::stats::PoolEvent;

/// An armed timer entry.
pub(crate) type TimerKey = timer::Key;
/// A disarmed entry's action: dropped after the caller's own lock (it may hold the last
/// reference to a pool).
pub(crate) type Disarmed = timer::Action;

/// A point in time a wait must not outlive (`None` under Miri: see [`Env::deadline`]).
/// Boxed: it lives in an acquisition future's slow states, and the future's size is paid
/// by every fast acquisition that moves it.
pub(crate) struct Deadline(Option<Box<timer::Sleep>>);

impl Deadline {
    /// Whether it has passed; if not, the task is woken when it does.
    pub(crate) fn poll_passed(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        self.0
            .as_mut()
            .is_some_and(|s| std::pin::Pin::new(&mut **s).poll(cx).is_ready())
    }
}

/// A pool's view of its surroundings.
pub(crate) struct Env {
    epoch: Instant,
    /// `epoch` in the clock's ns since the process's epoch (`clock::now_ns`).
    epoch_ns: u64,
    runtime: Option<Runtime>,
    /// Created by the first `subscribe`: its 1024-entry ring costs ~64 KiB.
    events: OnceLock<tokio::sync::broadcast::Sender<PoolEvent>>,
    /// Set once `subscribe` was called: until then no event is built and the broadcast's
    /// own lock (`receiver_count`) is never taken.
    subscribed: AtomicBool,
    /// Clock ms of the last rate-limited log line ([`NEVER_LOGGED`] before the first),
    /// and lines not logged since.
    logged_ms: AtomicU64,
    unlogged: AtomicU64,
}

/// `Env::logged_ms` before the first rate-limited line.
const NEVER_LOGGED: u64 = u64::MAX;

impl Env {
    /// Captures the tokio runtime current on this thread (if any) and starts the coarse
    /// clock.
    pub(crate) fn new() -> Env {
        clock::start();
        let epoch = Instant::now();
        Env {
            epoch,
            epoch_ns: u64::try_from(epoch.duration_since(clock::epoch()).as_nanos())
                .unwrap_or(u64::MAX),
            runtime: Runtime::capture(),
            events: OnceLock::new(),
            subscribed: AtomicBool::new(false),
            logged_ms: AtomicU64::new(NEVER_LOGGED),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Time since the pool was built (aging, deadlines).
    pub(crate) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// [`now`](Env::now) from the fine clock (`clock::now_ns`): what a waiting acquisition
    /// stamps its start and end with.
    #[inline]
    pub(crate) fn now_fine(&self) -> Duration {
        Duration::from_nanos(clock::now_ns().saturating_sub(self.epoch_ns))
    }

    /// The coarse clock in ms: one load, at most a tick behind (`clock.rs`).
    #[inline]
    pub(crate) fn coarse_ms(&self) -> u64 {
        clock::now_ms()
    }

    /// A fresh clock reading in ms (it also pushes the coarse clock forward).
    pub(crate) fn exact_ms(&self) -> u64 {
        clock::refresh()
    }

    /// The runtime captured at build, while it is alive.
    pub(crate) fn runtime(&self) -> Option<&Runtime> {
        self.runtime.as_ref()
    }

    /// Runs a blocking acquisition bounded by `d` (see `block::block_on_timeout`).
    pub(crate) fn block_on_timeout<F: Future + Send>(
        &self,
        d: Duration,
        fut: F,
    ) -> Option<F::Output> {
        super::block::block_on_timeout(self.runtime(), d, fut)
    }

    /// Panics with a clear message on a tokio worker thread.
    pub(crate) fn assert_may_block(&self) {
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            super::block::assert_not_worker(&h);
        }
    }

    /// Arms `f` on the pool's timer at `at` (time since the epoch); `None` when `at` is
    /// out of range, or under Miri (which wants every thread finished when a test ends).
    pub(crate) fn arm(&self, at: Duration, f: Box<dyn FnOnce() + Send>) -> Option<TimerKey> {
        let when = self.epoch.checked_add(at).filter(|_| !cfg!(miri))?;
        Some(timer::arm(when, timer::Action::Call(f)))
    }

    /// Disarms an entry armed by [`arm`](Self::arm).
    pub(crate) fn disarm(key: TimerKey) -> Option<Disarmed> {
        timer::disarm(key)
    }

    /// A deadline at `at` (time since the epoch), armed on the pool's timer only if it is
    /// polled before it has passed. Under Miri, which wants every thread finished when a
    /// test ends, it never passes (a blocking caller still bounds its own wait).
    pub(crate) fn deadline(&self, at: Duration) -> Deadline {
        let when = self
            .epoch
            .checked_add(at)
            .unwrap_or_else(|| timer::deadline_after(Duration::MAX));
        Deadline((!cfg!(miri)).then(|| Box::new(timer::Sleep::until(when))))
    }

    /// Starts background upkeep for a pool: a task on the multi-thread runtime captured at
    /// build, or the upkeep thread. If that runtime shuts down while the pool lives on, the
    /// task's end marks the runtime gone (creates move to threads) and hands the pool to the
    /// upkeep thread. A current-thread runtime runs tasks only while its owner drives it,
    /// so with one the upkeep thread runs the passes and a task on the runtime only watches
    /// for its shutdown.
    pub(crate) fn start_upkeep(&self, pool: Box<dyn super::Upkeep>, interval: Duration) {
        let Some(rt) = self.runtime() else {
            upkeep::register(pool, interval);
            return;
        };
        if rt.is_current_thread() {
            let watch = pool.another();
            upkeep::register(pool, interval);
            rt.spawn_with_liveness(|liveness| async move {
                // Dropped with the task: by the runtime's shutdown, or once the pool is
                // gone (when marking the runtime gone no longer matters).
                let _liveness = liveness;
                while watch.alive() {
                    timer::Sleep::after(Duration::from_secs(1)).await;
                }
            });
            return;
        }
        rt.spawn_with_liveness(|liveness| async move {
            /// On the task's end: the runtime is marked gone (if it is shutting down) and
            /// a pool still open moves to the upkeep thread.
            struct Handover(Option<Box<dyn super::Upkeep>>, runtime::Liveness);
            impl Drop for Handover {
                fn drop(&mut self) {
                    // First: from here on, creates run on threads.
                    self.1.mark_gone();
                    if let Some(pool) = self.0.take().filter(|p| p.alive()) {
                        upkeep::register(pool, Duration::ZERO);
                    }
                }
            }
            let mut handover = Handover(Some(pool), liveness);
            let mut next = interval;
            loop {
                timer::Sleep::after(next).await;
                match handover.0.as_deref().and_then(upkeep::tick_caught) {
                    Some(d) => next = d,
                    None => break,
                }
            }
            // Ended normally (the pool is gone or closed): nothing to hand over.
            handover.0 = None;
        });
    }

    /// Subscribes to the pool's events.
    pub(crate) fn subscribe(&self) -> tokio::sync::broadcast::Receiver<PoolEvent> {
        let rx = self
            .events
            .get_or_init(|| tokio::sync::broadcast::channel(1024).0)
            .subscribe();
        // Relaxed: a receiver subscribed before this store misses nothing it could have
        // seen (events sent before `subscribe` are not delivered to it anyway).
        self.subscribed.store(true, Ordering::Relaxed);
        rx
    }

    /// Sends an event, building it only when someone listens.
    pub(crate) fn emit(&self, event: impl FnOnce() -> PoolEvent) {
        if let Some(tx) = self
            .subscribed
            .load(Ordering::Relaxed)
            .then(|| self.events.get())
            .flatten()
            .filter(|tx| tx.receiver_count() > 0)
        {
            let _ = tx.send(event());
        }
    }

    /// Whether a rate-limited log line may go out now (at most one a second); `Some(n)`:
    /// yes, and `n` lines were held back since the last one.
    pub(crate) fn log_allowed(&self) -> Option<u64> {
        self.log_allowed_at(self.exact_ms())
    }

    /// [`log_allowed`](Self::log_allowed) at clock reading `now` (ms since the process's
    /// epoch, which may be under a second: the first line always goes out).
    fn log_allowed_at(&self, now: u64) -> Option<u64> {
        let last = self.logged_ms.load(Ordering::Relaxed);
        // Relaxed: a rate limit; the CAS picks one logger per second.
        if (last == NEVER_LOGGED || now.saturating_sub(last) >= 1000)
            && self
                .logged_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.unlogged.swap(0, Ordering::Relaxed))
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The tokio runtime current when a partitioned pool was built, for the partitions it
/// creates later (each a pool of its own, built on whatever thread first uses its key):
/// while that runtime lives, each partition is built inside it, so its upkeep, creates
/// and blocking callers use it as a plain pool built there would. A task on it watches
/// for its shutdown (and ends with the partitioned pool).
pub(crate) struct BuildRuntime(Option<Runtime>);

impl BuildRuntime {
    /// Captures the runtime current on this thread, if any; `watch` tells when the
    /// partitioned pool is gone or closed.
    pub(crate) fn capture(watch: Box<dyn super::Upkeep>) -> Self {
        let rt = Runtime::capture();
        if let Some(rt) = &rt {
            rt.spawn_with_liveness(|liveness| async move {
                // Dropped with the task: by the runtime's shutdown, or once the
                // partitioned pool is gone or closed (when no partition is built any more).
                let _liveness = liveness;
                while watch.alive() {
                    timer::Sleep::after(Duration::from_secs(1)).await;
                }
            });
        }
        BuildRuntime(rt)
    }

    /// Enters the captured runtime while it lives (else nothing: the partition is built
    /// in whatever runtime is current here, if any).
    pub(crate) fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.0.as_ref()?.handle().map(tokio::runtime::Handle::enter)
    }
}

#[cfg(test)]
mod tests {
    use super::Env;

    /// One line a second goes out, counting those held back, and the first goes out
    /// whenever it comes, also in the clock's first second.
    #[test]
    fn the_log_rate_limit_lets_the_first_line_out() {
        let env = Env::new();
        assert_eq!(env.log_allowed_at(3), Some(0), "the first line, 3 ms in");
        assert_eq!(env.log_allowed_at(500), None);
        assert_eq!(env.log_allowed_at(1_002), None);
        assert_eq!(env.log_allowed_at(1_003), Some(2), "two held back");
        assert_eq!(env.log_allowed_at(1_004), None);
    }
}
