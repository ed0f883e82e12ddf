//! The coarse clock the hot path reads: milliseconds since the process's first use,
//! ticked by one background thread every `TICK` (started lazily by the first pool).
//!
//! `Instant::now()` costs more than a whole checkout + return, so the fast path never
//! calls it. It reads this clock (one `Relaxed` load of a read-mostly line) to enforce
//! `max_lifetime`, stamp checkouts for leak scans and stamp returns for
//! `validation_interval`. Resolution: `TICK` (plus scheduling delay of the ticker).
//! Under a model checker (`cfg(riptide_model)`) the pool's logical clock is used instead.
//!
//! A second, fine clock ([`now_ns`]) times waits to the nanosecond for less than
//! `Instant::now()` costs: on x86-64 Linux whose kernel keeps time with the CPU's
//! time-stamp counter (clocksource `tsc`, so the counter is stable and synchronised across
//! cores), it reads the counter and extrapolates from an anchor (a monotonic-clock reading
//! and the counter value taken together) that the ticker renews every tick. The rate is
//! measured by the ticker against the monotonic clock, so the fine clock follows the
//! system clock's own adjustments, never drifting more than the extrapolation over one
//! tick. Anywhere else, before the rate is known, and whenever an anchor looks stale, it
//! is `Instant::now()`.

#[cfg(not(riptide_model))]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// How often the ticker advances the clock.
    pub(crate) const TICK: Duration = Duration::from_millis(2);

    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static NOW_MS: AtomicU64 = AtomicU64::new(0);

    /// The process's epoch: both clocks count from it.
    pub(crate) fn epoch() -> Instant {
        *EPOCH.get_or_init(Instant::now)
    }

    /// Nanoseconds since the epoch: the fine clock where it runs, else `Instant::now()`.
    #[inline]
    pub(crate) fn now_ns() -> u64 {
        #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
        if let Some(ns) = super::fine::read() {
            return ns;
        }
        exact_ns()
    }

    /// Nanoseconds since the epoch from `Instant::now()`.
    pub(crate) fn exact_ns() -> u64 {
        u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Starts the ticker thread once per process. Not under Miri, which wants every
    /// thread joined: there `now_ms` reads the real clock each time.
    #[cfg(miri)]
    pub(crate) fn start() {}

    /// Starts the ticker thread once per process.
    #[cfg(not(miri))]
    pub(crate) fn start() {
        static STARTED: OnceLock<()> = OnceLock::new();
        STARTED.get_or_init(|| {
            refresh();
            let spawned = std::thread::Builder::new()
                .name("riptide-pool-clock".into())
                .spawn(|| {
                    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                    let mut fine = super::fine::Ticker::new();
                    loop {
                        std::thread::sleep(TICK);
                        refresh();
                        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
                        fine.tick(exact_ns);
                    }
                });
            // Without a ticker the clock is refreshed by the slow paths only.
            let _ = spawned;
        });
    }

    /// Re-reads the real clock (slow paths do this too, so the coarse clock never lags
    /// behind an event they saw).
    pub(crate) fn refresh() -> u64 {
        let ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
        // Relaxed + fetch_max: the value only ever grows; nothing else is published.
        NOW_MS.fetch_max(ms, Ordering::Relaxed);
        ms
    }

    /// Milliseconds since the epoch, at most `TICK` behind.
    #[inline]
    pub(crate) fn now_ms() -> u64 {
        #[cfg(miri)]
        return refresh();
        #[cfg(not(miri))]
        NOW_MS.load(Ordering::Relaxed)
    }
}

#[cfg(not(riptide_model))]
pub(crate) use imp::*;

/// The fine clock's anchor and rate, written by the ticker thread alone and read by any
/// thread through a sequence lock.
#[cfg(all(
    not(riptide_model),
    not(miri),
    target_arch = "x86_64",
    target_os = "linux"
))]
mod fine {
    use std::sync::atomic::{fence, AtomicU64, Ordering};
    use std::time::Duration;

    /// An anchor older than this (in counter-extrapolated time) is not trusted: the ticker
    /// has stalled, or this core's counter reads behind the anchor's.
    const STALE: u64 = 50_000_000;
    /// The rate is first set from this much elapsed time, then from at least `WINDOW`.
    const FIRST: Duration = Duration::from_millis(20);
    const WINDOW: Duration = Duration::from_secs(1);

    /// Even: stable; odd: the ticker is writing.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    /// Monotonic ns since the epoch at the anchor.
    static BASE_NS: AtomicU64 = AtomicU64::new(0);
    /// The counter at the anchor.
    static BASE_TSC: AtomicU64 = AtomicU64::new(0);
    /// Nanoseconds per counter tick, as a 32.32 fixed-point number; 0: not yet known.
    static RATE: AtomicU64 = AtomicU64::new(0);

    fn tsc() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor and only reads the counter.
        #[allow(unused_unsafe)]
        unsafe {
            std::arch::x86_64::_rdtsc()
        }
    }

    /// The fine clock's ns since the epoch, or `None` where it cannot be trusted.
    #[inline]
    pub(super) fn read() -> Option<u64> {
        // The reader's half of a sequence lock: Acquire on the first load pairs with the
        // ticker's final Release increment, so the fields read are at least that anchor's;
        // the Acquire fence orders the field loads before the second load of `SEQ`, which
        // differs if the ticker began writing meanwhile.
        let seq = SEQ.load(Ordering::Acquire);
        let rate = RATE.load(Ordering::Relaxed);
        let base_ns = BASE_NS.load(Ordering::Relaxed);
        let base_tsc = BASE_TSC.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if seq & 1 == 1 || rate == 0 || SEQ.load(Ordering::Relaxed) != seq {
            return None;
        }
        // A counter behind the anchor wraps to a huge count and is caught as stale.
        let ticks = tsc().wrapping_sub(base_tsc);
        let ns = (u128::from(ticks) * u128::from(rate)) >> 32;
        (ns < u128::from(STALE)).then(|| base_ns + ns as u64)
    }

    /// The ticker thread's side: renews the anchor every tick and measures the rate.
    pub(super) struct Ticker {
        /// Whether the kernel keeps time with the counter (else the fine clock stays off).
        pub(super) usable: bool,
        /// Where the current rate measurement began: (ns, counter).
        start: Option<(u64, u64)>,
    }

    impl Ticker {
        pub(super) fn new() -> Ticker {
            let source = std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            );
            Ticker {
                usable: source.is_ok_and(|s| s.trim() == "tsc"),
                start: None,
            }
        }

        /// One tick: a fresh anchor, and the rate once enough time has passed.
        pub(super) fn tick(&mut self, exact_ns: fn() -> u64) {
            if !self.usable {
                return;
            }
            let t0 = tsc();
            let ns = exact_ns();
            let t1 = tsc();
            // The counter at the monotonic reading: the middle of the two around it.
            let at = t0 + (t1.wrapping_sub(t0) / 2);
            let (start_ns, start_tsc) = *self.start.get_or_insert((ns, at));
            let span = ns.saturating_sub(start_ns);
            let mut rate = RATE.load(Ordering::Relaxed);
            let enough = if rate == 0 { FIRST } else { WINDOW };
            if span >= enough.as_nanos() as u64 && at > start_tsc {
                rate = u64::try_from((u128::from(span) << 32) / u128::from(at - start_tsc))
                    .unwrap_or(0);
                self.start = Some((ns, at));
            }
            // The writer's half of the sequence lock (one writer: this thread): an odd
            // count, a Release fence so no reader that sees a new field misses the odd
            // count, the fields, then the even count with Release.
            let seq = SEQ.load(Ordering::Relaxed);
            SEQ.store(seq + 1, Ordering::Relaxed);
            fence(Ordering::Release);
            BASE_NS.store(ns, Ordering::Relaxed);
            BASE_TSC.store(at, Ordering::Relaxed);
            RATE.store(rate, Ordering::Relaxed);
            SEQ.store(seq + 2, Ordering::Release);
        }
    }
}

#[cfg(test)]
#[cfg(not(riptide_model))]
mod tests {
    #[test]
    fn the_clock_advances() {
        super::start();
        let a = super::now_ms();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = super::now_ms();
        assert!(b >= a + 20, "{a} -> {b}");
    }

    /// The fine clock reads what `Instant::now()` reads (within the extrapolation over a
    /// tick), and where the kernel keeps time with the counter it is in use.
    #[test]
    #[cfg_attr(miri, ignore = "the fine clock is off under Miri")]
    fn the_fine_clock_follows_the_monotonic_clock() {
        super::start();
        std::thread::sleep(std::time::Duration::from_millis(60));
        let mut fine_used = false;
        for _ in 0..2_000 {
            let before = super::exact_ns();
            let fine = super::now_ns();
            let after = super::exact_ns();
            assert!(
                fine + 200_000 >= before && fine <= after + 200_000,
                "fine {fine} outside [{before}, {after}] by more than 200 us"
            );
            #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
            {
                fine_used |= super::fine::read().is_some();
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
        if super::fine::Ticker::new().usable {
            assert!(fine_used, "clocksource tsc, yet the fine clock never ran");
        }
        let _ = fine_used;
    }
}
