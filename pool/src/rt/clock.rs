//! The coarse clock the hot path reads: milliseconds since the process's first use,
//! ticked by one background thread every `TICK` (started lazily by the first pool).
//!
//! `Instant::now()` costs more than a whole checkout + return, so the fast path never
//! calls it. It reads this clock (one `Relaxed` load of a read-mostly line) to enforce
//! `max_lifetime`, stamp checkouts for leak scans and stamp returns for
//! `validation_interval`. Resolution: `TICK` (plus scheduling delay of the ticker).
//! Under a model checker (`cfg(riptide_model)`) the pool's logical clock is used instead.

#[cfg(not(riptide_model))]
mod imp {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// How often the ticker advances the clock.
    pub(crate) const TICK: Duration = Duration::from_millis(2);

    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static NOW_MS: AtomicU64 = AtomicU64::new(0);

    fn epoch() -> Instant {
        *EPOCH.get_or_init(Instant::now)
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
                .spawn(|| loop {
                    std::thread::sleep(TICK);
                    refresh();
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
}
