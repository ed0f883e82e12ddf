//! The once-a-second history of each pool: a ring buffer of the last hour, and an hourly
//! usage pattern for the last day.

use std::collections::VecDeque;

use riptide_pool::{HealthStatus, PoolStats};
use serde::Serialize;

/// Samples kept per pool: one hour at one per second.
pub const HISTORY_SAMPLES: usize = 3600;
/// Hourly buckets kept per pool: the last day.
pub const HOURLY_BUCKETS: usize = 24;

/// One sample of a pool, taken by the admin's sampler (once a second).
///
/// `creates`, `destroys`, `timeouts` and `checkouts` are what happened since the previous
/// sample; the rest are the values at the time of the sample.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// When, in milliseconds since the Unix epoch.
    pub t: u64,
    /// `in_use / max_size` (from the pool's health).
    pub utilization: f64,
    /// Objects checked out.
    pub in_use: u32,
    /// Objects idle.
    pub idle: u32,
    /// Objects alive or being created.
    pub size: u32,
    /// The pool's `max_size` at the time.
    pub max_size: u32,
    /// Callers waiting (`pending_acquisitions`).
    pub waiting: u32,
    /// The pool's 99th percentile wait, in milliseconds.
    pub wait_p99_ms: f64,
    /// Objects created since the previous sample.
    pub creates: u64,
    /// Objects destroyed since the previous sample.
    pub destroys: u64,
    /// Acquisitions that timed out since the previous sample.
    pub timeouts: u64,
    /// Successful checkouts since the previous sample.
    pub checkouts: u64,
}

/// One hour of a pool's samples, summed up: the `hourly` list of `GET /pools/{name}/history`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HourBucket {
    /// The start of the hour, in seconds since the Unix epoch.
    pub hour: u64,
    /// Samples taken in that hour (up to 3600).
    pub samples: u32,
    /// Mean utilization over the samples.
    pub utilization_avg: f64,
    /// Highest utilization seen.
    pub utilization_max: f64,
    /// Mean number of waiting callers.
    pub waiting_avg: f64,
    /// Most callers seen waiting.
    pub waiting_max: u32,
    /// Highest wait p99 seen, in milliseconds.
    pub wait_p99_ms_max: f64,
    /// Objects created in the hour.
    pub creates: u64,
    /// Objects destroyed in the hour.
    pub destroys: u64,
    /// Timeouts in the hour.
    pub timeouts: u64,
    /// Checkouts in the hour.
    pub checkouts: u64,
    #[serde(skip)]
    util_sum: f64,
    #[serde(skip)]
    waiting_sum: u64,
}

impl HourBucket {
    fn new(hour: u64) -> Self {
        HourBucket {
            hour,
            samples: 0,
            utilization_avg: 0.0,
            utilization_max: 0.0,
            waiting_avg: 0.0,
            waiting_max: 0,
            wait_p99_ms_max: 0.0,
            creates: 0,
            destroys: 0,
            timeouts: 0,
            checkouts: 0,
            util_sum: 0.0,
            waiting_sum: 0,
        }
    }

    fn add(&mut self, s: &Sample) {
        self.samples += 1;
        self.util_sum += s.utilization;
        self.waiting_sum += u64::from(s.waiting);
        self.utilization_avg = self.util_sum / f64::from(self.samples);
        self.waiting_avg = self.waiting_sum as f64 / f64::from(self.samples);
        self.utilization_max = self.utilization_max.max(s.utilization);
        self.waiting_max = self.waiting_max.max(s.waiting);
        self.wait_p99_ms_max = self.wait_p99_ms_max.max(s.wait_p99_ms);
        self.creates += s.creates;
        self.destroys += s.destroys;
        self.timeouts += s.timeouts;
        self.checkouts += s.checkouts;
    }
}

/// The cumulative counters of the previous sample, to turn totals into per-second deltas.
#[derive(Debug, Clone, Copy)]
struct Totals {
    created: u64,
    destroyed: u64,
    timeouts: u64,
    acquired: u64,
}

/// A pool's samples (the last hour) and hourly buckets (the last day).
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: VecDeque<Sample>,
    hours: VecDeque<HourBucket>,
    last: Option<Totals>,
}

fn clamp32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl History {
    /// Records the figures read at `t_ms`.
    pub(crate) fn record(&mut self, t_ms: u64, s: &PoolStats, h: &HealthStatus) {
        let now = Totals {
            created: s.created,
            destroyed: s.destroyed,
            timeouts: s.timeouts,
            acquired: s.acquired,
        };
        // The first sample has nothing to compare with: its deltas are 0. A counter that
        // went down (it cannot in the core; a custom view might reset) also counts as 0.
        let prev = self.last.unwrap_or(now);
        self.last = Some(now);
        let sample = Sample {
            t: t_ms,
            utilization: if h.utilization.is_finite() {
                h.utilization
            } else {
                0.0
            },
            in_use: clamp32(s.in_use),
            idle: clamp32(s.idle),
            size: clamp32(s.size),
            max_size: clamp32(s.max_size),
            waiting: clamp32(s.pending_acquisitions),
            wait_p99_ms: s.wait_p99.as_secs_f64() * 1e3,
            creates: now.created.saturating_sub(prev.created),
            destroys: now.destroyed.saturating_sub(prev.destroyed),
            timeouts: now.timeouts.saturating_sub(prev.timeouts),
            checkouts: now.acquired.saturating_sub(prev.acquired),
        };
        if self.samples.len() == HISTORY_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);

        // The sample's hour, found from the back (the usual case is the last bucket). The
        // wall clock can step back (NTP): an earlier hour goes into its own bucket, in
        // order, so the list stays one bucket per hour, oldest first.
        let hour = t_ms / 1000 / 3600 * 3600;
        // A sample a whole day behind the newest bucket: the clock had jumped ahead (a VM
        // resumed with a stale offset, a bad RTC) and has been set right. The buckets of
        // the wrong hours go; kept, they would stay "newest" and push out every correct
        // hour until real time caught up with them.
        let day = (HOURLY_BUCKETS as u64) * 3600;
        while self.hours.back().is_some_and(|b| b.hour >= hour + day) {
            self.hours.pop_back();
        }
        // And a sample a whole day ahead of the newest bucket may be such a jump: the
        // day before it is let go only once a second sample confirms the new time.
        let jumped = self.hours.back().is_some_and(|b| hour >= b.hour + day);
        let at = match self.hours.iter().rposition(|b| b.hour <= hour) {
            Some(i) if self.hours[i].hour == hour => i,
            Some(i) => {
                self.hours.insert(i + 1, HourBucket::new(hour));
                i + 1
            }
            None => {
                self.hours.push_front(HourBucket::new(hour));
                0
            }
        };
        self.hours[at].add(&sample);
        // The last day: the newest hour and the 23 before it.
        let newest = self.hours.back().map_or(hour, |b| b.hour);
        while !jumped && self.hours.front().is_some_and(|b| b.hour + day <= newest) {
            self.hours.pop_front();
        }
    }

    /// The last `n` samples, oldest first.
    pub(crate) fn last(&self, n: usize) -> Vec<Sample> {
        let skip = self.samples.len().saturating_sub(n);
        self.samples.iter().skip(skip).copied().collect()
    }

    /// The hourly buckets of the last day, oldest first (the last one is the current,
    /// partial hour).
    pub(crate) fn hourly(&self) -> Vec<HourBucket> {
        self.hours.iter().copied().collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use riptide_pool::HealthLevel;
    use std::time::Duration;

    fn stats(in_use: usize, created: u64, waiting: usize) -> (PoolStats, HealthStatus) {
        let mut s = PoolStats::default();
        s.max_size = 10;
        s.in_use = in_use;
        s.created = created;
        s.pending_acquisitions = waiting;
        s.wait_p99 = Duration::from_micros(1500);
        let h = HealthStatus {
            level: HealthLevel::Healthy,
            utilization: in_use as f64 / 10.0,
            error_rate: 0.0,
            score: 100,
        };
        (s, h)
    }

    #[test]
    fn ring_keeps_the_last_hour_and_deltas() {
        let mut h = History::default();
        let t0 = 1_700_000_000_000u64 / 3_600_000 * 3_600_000; // an hour boundary
        for i in 0..(HISTORY_SAMPLES as u64 + 10) {
            let (s, hs) = stats((i % 10) as usize, i * 2, 0);
            h.record(t0 + i * 1000, &s, &hs);
        }
        assert_eq!(h.len(), HISTORY_SAMPLES);
        let all = h.last(usize::MAX);
        assert_eq!(all.first().unwrap().t, t0 + 10_000);
        assert!(all.iter().all(|s| s.creates == 2));
        assert_eq!(all.last().unwrap().wait_p99_ms, 1.5);
        assert_eq!(h.last(3).len(), 3);
        // 3610 samples from an hour boundary: a full hour and 10 s of the next.
        let hours = h.hourly();
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].samples, 3600);
        assert_eq!(hours[1].samples, 10);
        assert!((hours[0].utilization_avg - 0.45).abs() < 1e-9);
        assert_eq!(hours[0].utilization_max, 0.9);
        // The first sample's delta is 0, the other 3599 are 2 each.
        assert_eq!(hours[0].creates, 2 * 3599);
    }

    /// The sampler reads the wall clock, which an NTP step can move back. The hourly
    /// list stays one bucket per hour, oldest first, whatever order the samples come in.
    #[test]
    fn a_clock_stepped_back_keeps_the_hours_in_order() {
        let mut h = History::default();
        let t0 = 1_700_000_000_000u64 / 3_600_000 * 3_600_000 + 1_800_000; // mid-hour
        let (s, hs) = stats(1, 0, 0);
        h.record(t0, &s, &hs);
        h.record(t0 - 3_600_000, &s, &hs); // the clock stepped back an hour
        h.record(t0 - 3_599_000, &s, &hs);
        h.record(t0 + 1_000, &s, &hs); // and forward again
        let hours: Vec<u64> = h.hourly().iter().map(|b| b.hour).collect();
        let mut sorted = hours.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(hours, sorted, "one bucket per hour, oldest first");
        assert_eq!(h.hourly().iter().map(|b| b.samples).sum::<u32>(), 4);
        assert_eq!(
            h.hourly().last().unwrap().hour,
            t0 / 1000 / 3600 * 3600,
            "the last bucket is the current hour"
        );
    }

    /// One sample taken while the clock was two days ahead, then the clock set right: the
    /// hours around it are kept, the wrong hour goes.
    #[test]
    fn a_clock_that_jumped_ahead_and_back_keeps_the_real_hours() {
        let mut h = History::default();
        let t0 = 1_700_000_000_000u64 / 3_600_000 * 3_600_000;
        let (s, hs) = stats(5, 0, 0);
        for i in 0..3600u64 {
            h.record(t0 + i * 1000, &s, &hs);
        }
        h.record(t0 + 2 * 86_400_000, &s, &hs);
        for i in 3600..4 * 3600u64 {
            h.record(t0 + i * 1000, &s, &hs);
        }
        let hours: Vec<(u64, u32)> = h
            .hourly()
            .iter()
            .map(|b| ((b.hour * 1000 - t0) / 3_600_000, b.samples))
            .collect();
        assert_eq!(hours, [(0, 3600), (1, 3600), (2, 3600), (3, 3600)]);
    }

    #[test]
    fn hourly_keeps_one_day() {
        let mut h = History::default();
        let t0 = 1_700_000_000_000u64;
        for i in 0..30u64 {
            let (s, hs) = stats(1, 0, i as usize);
            h.record(t0 + i * 3_600_000, &s, &hs);
        }
        let hours = h.hourly();
        assert_eq!(hours.len(), HOURLY_BUCKETS);
        assert_eq!(hours.last().unwrap().waiting_max, 29);
        assert_eq!(
            hours.last().unwrap().hour - hours[0].hour,
            23 * 3600,
            "the current hour and the 23 before it"
        );
    }
}
