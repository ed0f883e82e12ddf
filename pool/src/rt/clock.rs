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
//! and the counter value taken together) that the ticker renews every tick, with the rate
//! the ticker measures against the monotonic clock. It never steps back at an anchor, and
//! at every tick the ticker checks where the old anchor puts the present: more than
//! `DRIFT` (100 µs) off the monotonic clock and the fine clock is off until the rate is
//! measured again. So it follows the system clock, adjustments included, to within that
//! bound (in practice well under a microsecond). Anywhere else, before the rate is known,
//! and when an anchor is older than `STALE` (10 ms: a stalled ticker) or ahead of this
//! core's counter, it is `Instant::now()`.

#[cfg(not(riptide_model))]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// How often the ticker advances the clock (no ticker under Miri).
    #[cfg_attr(miri, allow(dead_code))]
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

    /// An anchor older than this (in counter-extrapolated ns) is not trusted: the ticker
    /// has stalled, or this core's counter reads behind the anchor's.
    const STALE: u64 = 10_000_000;
    /// The rate is first measured over this much time, then over windows of `WINDOW`.
    const FIRST: Duration = Duration::from_millis(20);
    const WINDOW: Duration = Duration::from_secs(1);
    /// The widest pair of counter reads around a monotonic reading that makes an anchor
    /// (a wider one was interrupted: the tick is skipped).
    const SAMPLE: u64 = 20_000;
    /// The most the fine clock may be off the monotonic clock at a tick; more (a wrong
    /// rate, a suspend that stopped the monotonic clock but not the counter) turns it off
    /// until the rate is measured again.
    const DRIFT: u64 = 100_000;
    /// Ticks between looks at the kernel's clocksource.
    const RECHECK: u32 = 500;

    /// Even: stable; odd: the ticker is writing.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    /// Monotonic ns since the epoch at the anchor.
    static BASE_NS: AtomicU64 = AtomicU64::new(0);
    /// The counter at the anchor.
    static BASE_TSC: AtomicU64 = AtomicU64::new(0);
    /// Nanoseconds per counter tick, as a 32.32 fixed-point number; 0: off.
    static RATE: AtomicU64 = AtomicU64::new(0);

    #[allow(unused_unsafe)]
    fn tsc() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor and only reads the counter.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    /// Ns covered by `ticks` counter ticks at `rate`, saturating.
    fn span(ticks: u64, rate: u64) -> u64 {
        u64::try_from((u128::from(ticks) * u128::from(rate)) >> 32).unwrap_or(u64::MAX)
    }

    /// The fine clock's ns since the epoch, or `None` where it cannot be trusted.
    #[inline]
    pub(super) fn read() -> Option<u64> {
        // The reader's half of a sequence lock: Acquire on the first load pairs with the
        // ticker's final Release store, so the fields read are at least that anchor's; the
        // Acquire fence orders the field loads before the second load of `SEQ`, which
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
        let ns = span(tsc().wrapping_sub(base_tsc), rate);
        (ns < STALE).then(|| base_ns + ns)
    }

    /// The ticker thread's side: renews the anchor every tick and measures the rate.
    pub(super) struct Ticker {
        /// Whether the kernel keeps time with the counter (else the fine clock stays off).
        pub(super) usable: bool,
        /// Where the current rate measurement began: (ns, counter).
        start: Option<(u64, u64)>,
        /// The published anchor and rate (this thread is their only writer).
        anchor: (u64, u64, u64),
        /// Ticks until the clocksource is looked at again.
        recheck: u32,
    }

    impl Ticker {
        pub(super) fn new() -> Ticker {
            Ticker {
                usable: Self::kernel_uses_tsc(),
                start: None,
                anchor: (0, 0, 0),
                recheck: RECHECK,
            }
        }

        fn kernel_uses_tsc() -> bool {
            std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .is_ok_and(|s| s.trim() == "tsc")
        }

        /// A monotonic reading and the counter at that moment (the middle of two counter
        /// reads around it), from the tightest of three tries; `None` if every try was
        /// interrupted or the counter went backwards (the thread changed cores).
        fn sample(exact_ns: fn() -> u64) -> Option<(u64, u64)> {
            let mut best: Option<(u64, u64, u64)> = None;
            for _ in 0..3 {
                let t0 = tsc();
                let ns = exact_ns();
                let t1 = tsc();
                if t1 < t0 || t1 - t0 > SAMPLE {
                    continue;
                }
                if best.is_none_or(|(_, _, w)| t1 - t0 < w) {
                    best = Some((ns, t0 + (t1 - t0) / 2, t1 - t0));
                }
            }
            best.map(|(ns, at, _)| (ns, at))
        }

        /// One tick: a fresh anchor, and the rate once enough time has passed.
        pub(super) fn tick(&mut self, exact_ns: fn() -> u64) {
            self.recheck -= 1;
            if self.recheck == 0 {
                self.recheck = RECHECK;
                self.usable = Self::kernel_uses_tsc();
            }
            let Some((ns, at)) = Self::sample(exact_ns).filter(|_| self.usable) else {
                if !self.usable && self.anchor.2 != 0 {
                    self.start = None;
                    self.publish(0, 0, 0);
                }
                return;
            };
            let (old_ns, old_tsc, mut rate) = self.anchor;
            let mut base = ns;
            if rate != 0 {
                // Where the published anchor puts this moment. Never step back (a reader
                // after this tick must not read less than one before it); far off either
                // way, the rate is wrong: off until it is measured again.
                let then = old_ns.saturating_add(span(at.wrapping_sub(old_tsc), rate));
                if then.abs_diff(ns) > DRIFT || at < old_tsc {
                    rate = 0;
                    self.start = None;
                } else {
                    base = base.max(then);
                }
            }
            let (start_ns, start_tsc) = *self.start.get_or_insert((ns, at));
            let enough = if rate == 0 { FIRST } else { WINDOW };
            let elapsed = ns.saturating_sub(start_ns);
            if elapsed >= enough.as_nanos() as u64 && at > start_tsc {
                // (A suspend inside the window cannot skew this: the tick after it finds the
                // clock off by more than `DRIFT` and starts over.)
                rate = u64::try_from((u128::from(elapsed) << 32) / u128::from(at - start_tsc))
                    .unwrap_or(0);
                self.start = Some((ns, at));
            }
            self.publish(base, at, rate);
        }

        /// The writer's half of the sequence lock (one writer: the ticker thread): an odd
        /// count, a Release fence so no reader that sees a new field misses the odd count,
        /// the fields, then the even count with Release.
        fn publish(&mut self, base_ns: u64, base_tsc: u64, rate: u64) {
            self.anchor = (base_ns, base_tsc, rate);
            let seq = SEQ.load(Ordering::Relaxed);
            SEQ.store(seq + 1, Ordering::Relaxed);
            fence(Ordering::Release);
            BASE_NS.store(base_ns, Ordering::Relaxed);
            BASE_TSC.store(base_tsc, Ordering::Relaxed);
            RATE.store(rate, Ordering::Relaxed);
            SEQ.store(seq + 2, Ordering::Release);
        }
    }
}

#[cfg(test)]
#[cfg(not(riptide_model))]
mod tests {
    /// The ticker advances the coarse clock. (How soon it catches up depends on when the
    /// ticker thread gets a core, so the test waits for it, up to 5 s.)
    #[test]
    fn the_clock_advances() {
        super::start();
        let a = super::now_ms();
        let t0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut b = super::now_ms();
        while b < a + 20 {
            assert!(t0.elapsed().as_secs() < 5, "stuck: {a} -> {b}");
            std::thread::sleep(std::time::Duration::from_millis(1));
            b = super::now_ms();
        }
    }

    /// The fine clock reads what `Instant::now()` reads (to within `fine::DRIFT`), and
    /// where the kernel keeps time with the counter it is what `now_ns` reads most of the
    /// time. A reading falls back to `Instant::now()` while the anchor is stale, which is
    /// whenever the ticker thread waited more than `fine::STALE` for a core (a loaded
    /// machine): the share of fine reads is checked over up to five attempts, the best one
    /// counting, so that a fine clock that never engages fails and a busy machine does not.
    #[test]
    #[cfg_attr(miri, ignore = "the fine clock is off under Miri")]
    fn the_fine_clock_follows_the_monotonic_clock() {
        super::start();
        std::thread::sleep(std::time::Duration::from_millis(60));
        let rounds = 2_000;
        let mut best = 0;
        for _attempt in 0..5 {
            let fine_reads = fine_reads_of(rounds);
            best = best.max(fine_reads);
            if best * 2 >= rounds {
                break;
            }
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
        if super::fine::Ticker::new().usable {
            assert!(
                best * 2 >= rounds,
                "clocksource tsc, yet at best {best} of {rounds} reads were fine"
            );
        }
        let _ = best;
    }

    /// `rounds` readings of `now_ns` (and of the fine clock where it exists), each
    /// checked against `Instant::now()` around it; how many the fine clock answered.
    fn fine_reads_of(rounds: usize) -> usize {
        #[cfg_attr(
            not(all(target_arch = "x86_64", target_os = "linux", not(miri))),
            allow(unused_mut)
        )]
        let mut fine_reads = 0;
        for _ in 0..rounds {
            let before = super::exact_ns();
            let now = super::now_ns();
            let after = super::exact_ns();
            assert!(
                now + 100_000 >= before && now <= after + 100_000,
                "{now} outside [{before}, {after}] by more than 100 us"
            );
            #[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
            if let Some(fine) = super::fine::read() {
                fine_reads += 1;
                let after = super::exact_ns();
                assert!(
                    fine + 100_000 >= before && fine <= after + 100_000,
                    "fine {fine} outside [{before}, {after}] by more than 100 us"
                );
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        fine_reads
    }
}
