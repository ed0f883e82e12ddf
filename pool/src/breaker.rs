//! [`CircuitBreaker`]: turns a failing backend into fast failures instead of a pile of
//! waiters. The pool puts one on its factory; the WASM adapter puts one on its guest.
//!
//! States and transitions:
//!
//! | from | event | to |
//! | --- | --- | --- |
//! | `Closed` | `failures` failures in a row | `Open` ([`Transition::Opened`]) |
//! | `Open` | `cool_down` passed | `HalfOpen` (no event: time) |
//! | `HalfOpen` | a caller wins the trial ([`Admit::Trial`]) | `HalfOpen`, others rejected |
//! | `HalfOpen` | the trial fails | `Open` for another `cool_down` ([`Transition::Opened`]) |
//! | `HalfOpen` | `successes` trials in a row succeed | `Closed` ([`Transition::Closed`]) |
//!
//! The state is three atomics (`open_until`, `trial`, and the two counters). Each
//! transition is one CAS or store on one of them, and they carry no other data: a stale
//! read only lets one more caller try or fall back, which every caller handles, so
//! `Relaxed` and `AcqRel` suffice (noted at each site).

use std::time::{Duration, Instant};

use crate::stats::CircuitState;
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// What a caller may do, from [`CircuitBreaker::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Go ahead (closed).
    Call,
    /// Go ahead as the half-open trial: report its outcome with this `Admit`.
    Trial,
    /// Do not call: fail fast.
    Reject,
}

/// What a report changed, from [`CircuitBreaker::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing.
    None,
    /// The breaker opened (or re-opened after a failed trial).
    Opened,
    /// The breaker closed.
    Closed,
}

/// A circuit breaker: `failures` failures in a row open it; after `cool_down` one caller at
/// a time tries; `successes` good trials in a row close it, a failed one re-opens it.
///
/// ```
/// use riptide_pool::breaker::{Admit, CircuitBreaker, Transition};
/// use riptide_pool::CircuitState;
/// use std::time::Duration;
///
/// let b = CircuitBreaker::new(2, 1, Duration::from_millis(10));
/// assert_eq!(b.record(b.admit(), false), Transition::None);
/// assert_eq!(b.record(b.admit(), false), Transition::Opened);
/// assert_eq!(b.admit(), Admit::Reject);
/// std::thread::sleep(Duration::from_millis(15));
/// assert_eq!(b.state(), CircuitState::HalfOpen);
/// let trial = b.admit();
/// assert_eq!(trial, Admit::Trial);
/// assert_eq!(b.admit(), Admit::Reject, "one trial at a time");
/// assert_eq!(b.record(trial, true), Transition::Closed);
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    base: Instant,
    failures_to_open: u64,
    successes_to_close: u64,
    cool_down_ms: u64,
    /// Consecutive failures while closed.
    failures: AtomicU64,
    /// Consecutive successful trials while half-open.
    trial_successes: AtomicU64,
    /// 0 while closed; otherwise the ms (on the caller's clock, plus 1) at which the
    /// cool-down ends. `u64::MAX` while one caller is opening it.
    open_until: AtomicU64,
    /// A half-open trial is in flight.
    trial: AtomicBool,
    /// The caller's clock (ms) at the latest failure; 0: none yet.
    last_failure: AtomicU64,
}

impl CircuitBreaker {
    /// `failures` failures in a row open it; after `cool_down`, `successes` good trials in a
    /// row close it. Both counts are taken as at least 1.
    #[must_use]
    pub fn new(failures: u32, successes: u32, cool_down: Duration) -> Self {
        CircuitBreaker {
            base: Instant::now(),
            failures_to_open: u64::from(failures.max(1)),
            successes_to_close: u64::from(successes.max(1)),
            cool_down_ms: u64::try_from(cool_down.as_millis()).unwrap_or(u64::MAX),
            failures: AtomicU64::new(0),
            trial_successes: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            trial: AtomicBool::new(false),
            last_failure: AtomicU64::new(0),
        }
    }

    /// Its own clock, in ms (plus 1, so 0 never is a time).
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// The state now.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.state_at(self.now_ms())
    }

    /// Whether a caller may go ahead; a half-open breaker admits one trial at a time.
    #[must_use]
    pub fn admit(&self) -> Admit {
        self.admit_at(self.now_ms())
    }

    /// Reports the outcome of a call admitted as `admit`.
    pub fn record(&self, admit: Admit, ok: bool) -> Transition {
        self.record_at(admit, ok, self.now_ms())
    }

    /// A call admitted as `admit` that never reached the backend (e.g. nothing to run it
    /// on): a trial is given up, so another caller may try.
    pub fn abandon(&self, admit: Admit) {
        if admit == Admit::Trial {
            // Release: as in `record_at`.
            self.trial.store(false, Ordering::Release);
        }
    }

    /// Closed with no failure counted: nothing a new breaker would not know.
    pub(crate) fn is_clear(&self) -> bool {
        // Relaxed: see the module docs (a caller that must not miss a failure reads this
        // when no call can be in flight).
        self.open_until.load(Ordering::Relaxed) == 0 && self.failures.load(Ordering::Relaxed) == 0
    }

    /// Whether a new breaker could take this one's place at `now_ms` (the caller's clock)
    /// without letting a failing backend through: nothing counted ([`is_clear`]), or a full
    /// cool-down since the latest failure, no longer open and no trial in flight. A failure
    /// streak or an open breaker that recent is kept; an older one is forgotten, as it
    /// would be by a breaker that saw successes meanwhile.
    ///
    /// [`is_clear`]: Self::is_clear
    pub(crate) fn is_stale_at(&self, now_ms: u64) -> bool {
        if self.is_clear() {
            return true;
        }
        // Relaxed: see the module docs (read, like `is_clear`, when no call can be in
        // flight).
        let last = self.last_failure.load(Ordering::Relaxed);
        let until = self.open_until.load(Ordering::Relaxed);
        until != u64::MAX
            && now_ms >= until
            && now_ms >= last.saturating_add(self.cool_down_ms)
            && !self.trial.load(Ordering::Relaxed)
    }

    /// Whether [`admit`](Self::admit) would turn a caller away now (open, or half-open
    /// with its trial in flight), without taking the trial. `now_ms` (the caller's clock)
    /// is read only while the breaker is not closed.
    pub(crate) fn rejects(&self, now_ms: impl FnOnce() -> u64) -> bool {
        // Relaxed: see the module docs; a stale answer only lets the caller try (and
        // `admit` decide) or fail fast as a moment earlier.
        if self.open_until.load(Ordering::Relaxed) == 0 {
            return false;
        }
        match self.state_at(now_ms()) {
            CircuitState::Closed => false,
            CircuitState::Open => true,
            CircuitState::HalfOpen => self.trial.load(Ordering::Relaxed),
        }
    }

    /// [`state`](Self::state) on the caller's clock (ms, never 0).
    pub(crate) fn state_at(&self, now_ms: u64) -> CircuitState {
        // Relaxed: see the module docs.
        match self.open_until.load(Ordering::Relaxed) {
            0 => CircuitState::Closed,
            t if now_ms < t => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// [`admit`](Self::admit) on the caller's clock.
    pub(crate) fn admit_at(&self, now_ms: u64) -> Admit {
        match self.state_at(now_ms) {
            CircuitState::Closed => Admit::Call,
            CircuitState::Open => Admit::Reject,
            // AcqRel: the trial holder sees the previous holder's count (see `record_at`).
            CircuitState::HalfOpen => {
                match self
                    .trial
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                {
                    Ok(_) => Admit::Trial,
                    Err(_) => Admit::Reject,
                }
            }
        }
    }

    /// [`record`](Self::record) on the caller's clock.
    pub(crate) fn record_at(&self, admit: Admit, ok: bool, now_ms: u64) -> Transition {
        let trial = admit == Admit::Trial;
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            if !trial {
                return Transition::None;
            }
            // Only the trial holder gets here, so this count has one writer at a time.
            let n = self.trial_successes.load(Ordering::Relaxed) + 1;
            let closed = n >= self.successes_to_close;
            self.trial_successes
                .store(if closed { 0 } else { n }, Ordering::Relaxed);
            if closed {
                self.open_until.store(0, Ordering::Relaxed);
            }
            // Release: the next trial holder sees the count above.
            self.trial.store(false, Ordering::Release);
            return if closed {
                Transition::Closed
            } else {
                Transition::None
            };
        }
        // Relaxed: read only by `is_stale_at`, when no call can be in flight.
        self.last_failure.store(now_ms, Ordering::Relaxed);
        if trial {
            self.open(now_ms);
            self.trial.store(false, Ordering::Release);
            return Transition::Opened;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        // AcqRel on the CAS: exactly one failing caller opens a closed breaker.
        if n >= self.failures_to_open
            && self
                .open_until
                .compare_exchange(0, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.open(now_ms);
            self.failures.store(0, Ordering::Relaxed);
            Transition::Opened
        } else {
            Transition::None
        }
    }

    fn open(&self, now_ms: u64) {
        self.trial_successes.store(0, Ordering::Relaxed);
        let until = now_ms.saturating_add(self.cool_down_ms).max(1);
        self.open_until.store(until, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(riptide_model)))]
mod tests {
    use super::*;

    fn b(failures: u32, successes: u32) -> CircuitBreaker {
        CircuitBreaker::new(failures, successes, Duration::from_millis(100))
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = b(3, 1);
        let t = 10;
        assert_eq!(b.record_at(Admit::Call, false, t), Transition::None);
        assert_eq!(b.record_at(Admit::Call, false, t), Transition::None);
        assert_eq!(
            b.record_at(Admit::Call, true, t),
            Transition::None,
            "a success resets"
        );
        assert_eq!(b.record_at(Admit::Call, false, t), Transition::None);
        assert_eq!(b.record_at(Admit::Call, false, t), Transition::None);
        assert_eq!(b.record_at(Admit::Call, false, t), Transition::Opened);
        assert_eq!(b.state_at(t), CircuitState::Open);
        assert_eq!(b.admit_at(t + 99), Admit::Reject);
    }

    #[test]
    fn half_open_admits_one_trial_and_needs_the_successes() {
        let b = b(1, 2);
        assert_eq!(b.record_at(Admit::Call, false, 10), Transition::Opened);
        assert_eq!(b.state_at(110), CircuitState::HalfOpen);
        let t = b.admit_at(110);
        assert_eq!(t, Admit::Trial);
        assert_eq!(b.admit_at(110), Admit::Reject, "one trial at a time");
        assert_eq!(b.record_at(t, true, 111), Transition::None, "one of two");
        let t = b.admit_at(112);
        assert_eq!(t, Admit::Trial);
        assert_eq!(b.record_at(t, true, 113), Transition::Closed);
        assert_eq!(b.state_at(113), CircuitState::Closed);
        assert_eq!(b.admit_at(113), Admit::Call);
    }

    #[test]
    fn a_failed_trial_reopens_for_another_cool_down() {
        let b = b(1, 1);
        b.record_at(Admit::Call, false, 10);
        let t = b.admit_at(200);
        assert_eq!(b.record_at(t, false, 200), Transition::Opened);
        assert_eq!(b.state_at(250), CircuitState::Open);
        assert_eq!(b.state_at(300), CircuitState::HalfOpen);
    }

    #[test]
    fn a_streak_is_stale_one_cool_down_after_its_latest_failure() {
        let b = b(3, 1);
        assert!(b.is_stale_at(5), "nothing counted");
        b.record_at(Admit::Call, false, 10);
        b.record_at(Admit::Call, false, 50);
        assert!(!b.is_stale_at(149), "a failure 99 ms ago counts");
        assert!(b.is_stale_at(150));
        // Open: kept through the cool-down, then while a trial is in flight.
        b.record_at(Admit::Call, false, 60);
        assert_eq!(b.state_at(60), CircuitState::Open);
        assert!(!b.is_stale_at(159));
        let trial = b.admit_at(160);
        assert_eq!(trial, Admit::Trial);
        assert!(!b.is_stale_at(170), "a trial in flight");
        b.record_at(trial, false, 170);
        assert!(!b.is_stale_at(269), "re-opened by the failed trial");
        assert!(b.is_stale_at(270));
        let trial = b.admit_at(280);
        b.record_at(trial, true, 281);
        assert!(
            b.is_stale_at(282),
            "closed by a good trial: nothing counted"
        );
    }

    #[test]
    fn concurrent_failures_open_it_once() {
        let b = std::sync::Arc::new(b(2, 1));
        let opened: usize = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| b.record_at(Admit::Call, false, 5) == Transition::Opened)
                        .count()
                })
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(opened, 1);
    }
}
