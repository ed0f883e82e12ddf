//! A circuit breaker on guest failures, in three atomics.
//!
//! Closed: calls go to the guest; `threshold` failures in a row open it. Open: calls go
//! straight to the fallback until `cool_down` has passed. Half-open: one caller at a time (the
//! one that wins a CAS) tries the guest; `successes` trials in a row close the breaker, a
//! failed trial opens it for another `cool_down`.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The breaker's state, as `stats()` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go to the guest.
    Closed,
    /// Calls fall back without touching the guest.
    Open,
    /// The cool-down has passed; the next call is a trial.
    HalfOpen,
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Call the guest.
    Call,
    /// Call the guest as the half-open trial; report the outcome with `trial = true`.
    Trial,
    /// Do not call the guest.
    Reject,
}

/// What a report changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    None,
    Opened,
    Closed,
}

pub(crate) struct Breaker {
    base: Instant,
    threshold: u32,
    successes: u32,
    cool_down: Duration,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// Consecutive successful trials while half-open.
    trial_successes: AtomicU32,
    /// 0 while closed; otherwise the ms (since `base`, plus 1) at which the cool-down ends.
    open_until: AtomicU64,
    /// A half-open trial is in flight.
    trial: AtomicBool,
}

// Orderings: `open_until` and `trial` are the breaker's whole state and carry no other data;
// each transition is a single CAS or store on one of them, and a stale read only makes one
// more caller try the guest or fall back, which both paths handle. Relaxed/AcqRel suffice.
impl Breaker {
    /// `threshold` failures in a row open it; after `cool_down`, `successes` good trials in a
    /// row close it. Both counts are at least 1 (`WasmPoolConfig::validate` checks).
    pub(crate) fn new(threshold: u32, successes: u32, cool_down: Duration) -> Self {
        Breaker {
            base: Instant::now(),
            threshold: threshold.max(1),
            successes: successes.max(1),
            cool_down,
            failures: AtomicU32::new(0),
            trial_successes: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            trial: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64 + 1
    }

    pub(crate) fn state(&self) -> CircuitState {
        match self.open_until.load(Ordering::Relaxed) {
            0 => CircuitState::Closed,
            t if self.now_ms() < t => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    pub(crate) fn admit(&self) -> Admit {
        match self.state() {
            CircuitState::Closed => Admit::Call,
            CircuitState::Open => Admit::Reject,
            CircuitState::HalfOpen => {
                if self
                    .trial
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    Admit::Trial
                } else {
                    Admit::Reject
                }
            }
        }
    }

    fn open(&self) {
        self.trial_successes.store(0, Ordering::Relaxed);
        let until = self.now_ms() + self.cool_down.as_millis() as u64;
        self.open_until.store(until.max(1), Ordering::Relaxed);
    }

    pub(crate) fn success(&self, trial: bool) -> Transition {
        self.failures.store(0, Ordering::Relaxed);
        if !trial {
            return Transition::None;
        }
        // Only the trial holder gets here, so this count has one writer at a time.
        let n = self.trial_successes.load(Ordering::Relaxed) + 1;
        let closed = n >= self.successes;
        if closed {
            self.trial_successes.store(0, Ordering::Relaxed);
            self.open_until.store(0, Ordering::Relaxed);
        } else {
            self.trial_successes.store(n, Ordering::Relaxed);
        }
        // Release: the next trial holder sees the count above.
        self.trial.store(false, Ordering::Release);
        if closed {
            Transition::Closed
        } else {
            Transition::None
        }
    }

    pub(crate) fn failure(&self, trial: bool) -> Transition {
        if trial {
            self.open();
            self.trial.store(false, Ordering::Release);
            return Transition::Opened;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold
            && self
                .open_until
                .compare_exchange(0, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            self.open();
            self.failures.store(0, Ordering::Relaxed);
            Transition::Opened
        } else {
            Transition::None
        }
    }

    /// A trial that never reached the guest (e.g. no instance free): let another try.
    pub(crate) fn abandon(&self, trial: bool) {
        if trial {
            self.trial.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_after_a_good_trial() {
        let b = Breaker::new(3, 1, Duration::from_millis(300));
        assert_eq!(b.failure(false), Transition::None);
        assert_eq!(b.success(false), Transition::None); // a success resets the run
        assert_eq!(b.failure(false), Transition::None);
        assert_eq!(b.failure(false), Transition::None);
        assert_eq!(b.failure(false), Transition::Opened);
        assert_eq!((b.state(), b.admit()), (CircuitState::Open, Admit::Reject));
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.admit(), Admit::Trial);
        assert_eq!(b.admit(), Admit::Reject, "one trial at a time");
        assert_eq!(b.failure(true), Transition::Opened);
        assert_eq!(b.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(b.admit(), Admit::Trial);
        assert_eq!(b.success(true), Transition::Closed);
        assert_eq!((b.state(), b.admit()), (CircuitState::Closed, Admit::Call));
    }

    #[test]
    fn closing_takes_the_configured_run_of_good_trials() {
        let b = Breaker::new(1, 3, Duration::from_millis(100));
        assert_eq!(b.failure(false), Transition::Opened);
        let wait_half_open = || {
            while b.state() != CircuitState::HalfOpen {
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        wait_half_open();
        for _ in 0..2 {
            assert_eq!(b.admit(), Admit::Trial);
            assert_eq!(b.admit(), Admit::Reject, "one trial at a time");
            assert_eq!(b.success(true), Transition::None, "not yet");
            assert_eq!(b.state(), CircuitState::HalfOpen);
        }
        // A failed trial reopens it and the run starts over.
        assert_eq!(b.admit(), Admit::Trial);
        assert_eq!(b.failure(true), Transition::Opened);
        assert_eq!(b.state(), CircuitState::Open);
        wait_half_open();
        for i in 0..3 {
            assert_eq!(b.admit(), Admit::Trial);
            let t = b.success(true);
            assert_eq!(t == Transition::Closed, i == 2, "trial {i}: {t:?}");
        }
        assert_eq!((b.state(), b.admit()), (CircuitState::Closed, Admit::Call));
    }
}
