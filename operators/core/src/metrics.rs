//! Metrics operators report: counters, gauges and latency histograms.
//!
//! Histograms count observations in fixed buckets ([`LATENCY_BOUNDS_US`]) rather than
//! keeping samples, so the histograms of every subtask of a job add up bucket by bucket and
//! a job's p99 is the p99 of all its requests, not the highest of its subtasks' p99s. The
//! quantile estimate is Prometheus's `histogram_quantile` (linear within the bucket), so the
//! REST API and a Prometheus query over `/metrics` agree.

pub use sluice_proto::metric::Value;
pub use sluice_proto::{Histogram, Metric};

/// Upper bounds of the latency buckets, in microseconds: 1, 1.5, 2, 3, 5 and 7 per decade
/// from 10 µs to 100 s (about 1.4× apart, so an interpolated quantile is within a few tens
/// of percent). Observations above the last bound fall into one more bucket.
pub const LATENCY_BOUNDS_US: [u64; 43] = [
    10,
    15,
    20,
    30,
    50,
    70,
    100,
    150,
    200,
    300,
    500,
    700,
    1_000,
    1_500,
    2_000,
    3_000,
    5_000,
    7_000,
    10_000,
    15_000,
    20_000,
    30_000,
    50_000,
    70_000,
    100_000,
    150_000,
    200_000,
    300_000,
    500_000,
    700_000,
    1_000_000,
    1_500_000,
    2_000_000,
    3_000_000,
    5_000_000,
    7_000_000,
    10_000_000,
    15_000_000,
    20_000_000,
    30_000_000,
    50_000_000,
    70_000_000,
    100_000_000,
];

/// A counter metric.
pub fn counter(name: impl Into<String>, value: u64) -> Metric {
    Metric { name: name.into(), value: Some(Value::Counter(value)) }
}

/// A gauge metric.
pub fn gauge(name: impl Into<String>, value: f64) -> Metric {
    Metric { name: name.into(), value: Some(Value::Gauge(value)) }
}

/// A histogram metric.
pub fn histogram(name: impl Into<String>, histogram: &LatencyHistogram) -> Metric {
    Metric { name: name.into(), value: Some(Value::Histogram(histogram.snapshot())) }
}

/// The value of a counter or gauge as a number (`None` for a histogram).
pub fn scalar(metric: &Metric) -> Option<f64> {
    match metric.value.as_ref()? {
        Value::Counter(c) => Some(*c as f64),
        Value::Gauge(g) => Some(*g),
        Value::Histogram(_) => None,
    }
}

/// Latencies counted by bucket, in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: [0; LATENCY_BOUNDS_US.len() + 1], sum_us: 0 }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn record(&mut self, micros: u64) {
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.buckets[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(micros);
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The estimated `q` quantile (0..=1) in microseconds, rounded; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        quantile(&self.snapshot(), q).map_or(0, |v| v.round() as u64)
    }

    /// The histogram as reported.
    pub fn snapshot(&self) -> Histogram {
        Histogram { buckets: self.buckets.to_vec(), sum: self.sum_us as f64 }
    }
}

/// The number of observations in `h`.
pub fn count(h: &Histogram) -> u64 {
    h.buckets.iter().sum()
}

/// Adds `other`'s observations to `into`.
pub fn merge(into: &mut Histogram, other: &Histogram) {
    if into.buckets.len() < other.buckets.len() {
        into.buckets.resize(other.buckets.len(), 0);
    }
    for (a, b) in into.buckets.iter_mut().zip(&other.buckets) {
        *a += b;
    }
    into.sum += other.sum;
}

/// The observations of `newer` that `older` (an earlier reading of the same histogram) did
/// not have: the histogram of the time between them. A histogram that restarted (a counter
/// went down) counts from zero.
pub fn since(newer: &Histogram, older: &Histogram) -> Histogram {
    let restarted = newer.buckets.iter().zip(&older.buckets).any(|(n, o)| n < o);
    if restarted {
        return newer.clone();
    }
    Histogram {
        buckets: newer
            .buckets
            .iter()
            .enumerate()
            .map(|(i, n)| n - older.buckets.get(i).copied().unwrap_or(0))
            .collect(),
        sum: (newer.sum - older.sum).max(0.0),
    }
}

/// The estimated `q` quantile (0..=1) of `h` in microseconds, as Prometheus's
/// `histogram_quantile` computes it: the bucket holding rank `q × count`, interpolated
/// linearly between its bounds (from 0 for the first bucket). In the bucket above every
/// bound, the last bound. `None` when `h` is empty.
pub fn quantile(h: &Histogram, q: f64) -> Option<f64> {
    let total = count(h);
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, &n) in h.buckets.iter().enumerate() {
        let through = below + n;
        if n > 0 && through as f64 >= rank {
            let Some(&upper) = LATENCY_BOUNDS_US.get(i) else {
                return Some(LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1] as f64);
            };
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS_US[i - 1] as f64 };
            return Some(lower + (upper as f64 - lower) * (rank - below as f64) / n as f64);
        }
        below = through;
    }
    Some(LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.len() - 1] as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_rise() {
        assert!(LATENCY_BOUNDS_US.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn an_observation_lands_in_the_first_bucket_whose_bound_holds_it() {
        let mut h = LatencyHistogram::default();
        for us in [10, 11, 100_000_000, 100_000_001] {
            h.record(us);
        }
        let s = h.snapshot();
        assert_eq!((s.buckets[0], s.buckets[1]), (1, 1), "10 ≤ 10, 11 ≤ 15");
        assert_eq!(s.buckets[LATENCY_BOUNDS_US.len() - 1], 1);
        assert_eq!(s.buckets[LATENCY_BOUNDS_US.len()], 1, "above every bound");
        assert_eq!(s.sum, 200_000_022.0);
        assert_eq!(h.count(), 4);
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket_as_prometheus_does() {
        // 100 observations in (1000, 1500] µs: Prometheus puts the p50 halfway.
        let mut h = LatencyHistogram::default();
        for _ in 0..100 {
            h.record(1_200);
        }
        assert_eq!(h.quantile(0.5), 1_250);
        assert_eq!(h.quantile(1.0), 1_500);
        // Another 100 in (1500, 2000]: the p75 is halfway through that bucket.
        for _ in 0..100 {
            h.record(1_800);
        }
        assert_eq!(h.quantile(0.75), 1_750);
        assert_eq!(quantile(&Histogram::default(), 0.5), None);
        let mut high = LatencyHistogram::default();
        high.record(u64::MAX / 4);
        assert_eq!(high.quantile(0.99), 100_000_000, "above every bound: the last bound");
    }

    #[test]
    fn histograms_of_subtasks_merge_into_the_jobs() {
        // One fast subtask and one slow one: the job's p99 is the slow one's, its p50 in
        // between, where the max of per-subtask p50s would say "slow".
        let (mut fast, mut slow) = (LatencyHistogram::default(), LatencyHistogram::default());
        for _ in 0..90 {
            fast.record(1_000);
        }
        for _ in 0..10 {
            slow.record(70_000);
        }
        let mut job = fast.snapshot();
        merge(&mut job, &slow.snapshot());
        assert_eq!(count(&job), 100);
        assert!(quantile(&job, 0.5).unwrap() <= 1_000.0);
        assert!(quantile(&job, 0.99).unwrap() > 50_000.0);
    }

    #[test]
    fn since_is_the_difference_of_two_readings() {
        let mut h = LatencyHistogram::default();
        h.record(100);
        let older = h.snapshot();
        h.record(5_000);
        let window = since(&h.snapshot(), &older);
        assert_eq!(count(&window), 1);
        assert_eq!(window.sum, 5_000.0);
        assert_eq!(since(&older, &h.snapshot()), older, "a restarted histogram counts from zero");
    }
}
