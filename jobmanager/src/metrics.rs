//! Job-level views of the tasks' metrics: operator metrics summed (counters, gauges) or
//! merged (histograms) over subtasks, per-second rates between two readings, and a short
//! history of every subtask's readings, so the REST API and the dashboard can draw recent
//! rates and percentiles without a Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use sluice_core::metrics::{self, Histogram, Metric, Value};
use sluice_proto::{JobStatus, TaskMetrics};

/// How often the history takes a reading.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(2);

/// How many readings the history keeps (5 minutes at [`HISTORY_INTERVAL`]).
pub const HISTORY_LENGTH: usize = 150;

/// An operator metric of a whole job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobMetric {
    /// Counters and gauges, summed over the subtasks (the lowest, for names ending in
    /// `_min`).
    Scalar(f64),
    /// Histograms, merged.
    Histogram(Histogram),
}

/// Adds `metrics` of several subtasks up by name.
pub fn merge_operator_metrics<'a>(metrics: impl IntoIterator<Item = &'a Metric>) -> BTreeMap<String, JobMetric> {
    let mut merged: BTreeMap<String, JobMetric> = BTreeMap::new();
    for metric in metrics {
        let Some(value) = &metric.value else { continue };
        let lowest = metric.name.ends_with("_min");
        match (merged.get_mut(&metric.name), value) {
            (Some(JobMetric::Histogram(into)), Value::Histogram(h)) => metrics::merge(into, h),
            (Some(JobMetric::Scalar(into)), _) => {
                let v = metrics::scalar(metric).unwrap_or(0.0);
                *into = if lowest { into.min(v) } else { *into + v };
            }
            (Some(_), _) => {} // the same name with another kind: keep the first
            (None, Value::Histogram(h)) => {
                merged.insert(metric.name.clone(), JobMetric::Histogram(h.clone()));
            }
            (None, _) => {
                merged.insert(metric.name.clone(), JobMetric::Scalar(metrics::scalar(metric).unwrap_or(0.0)));
            }
        }
    }
    merged
}

/// The operator metrics of a job's every subtask, added up by name.
pub fn job_operator_metrics(status: &JobStatus) -> BTreeMap<String, JobMetric> {
    merge_operator_metrics(status.tasks.iter().filter_map(|t| t.metrics.as_ref()).flat_map(|m| &m.operators))
}

/// The model name and metric of an operator metric named `model.<model>.<what>`.
pub fn model_metric(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("model.")?.rsplit_once('.')
}

/// A job's model metrics (`model.<model>.<what>`) grouped by model, then by what.
pub fn by_model(metrics: &BTreeMap<String, JobMetric>) -> BTreeMap<&str, BTreeMap<&str, &JobMetric>> {
    let mut models: BTreeMap<&str, BTreeMap<&str, &JobMetric>> = BTreeMap::new();
    for (name, value) in metrics {
        if let Some((model, what)) = model_metric(name) {
            models.entry(model).or_default().insert(what, value);
        }
    }
    models
}

/// A reading of every subtask's metrics.
#[derive(Debug, Clone)]
pub struct MetricsSample {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// The metrics by (vertex, subtask).
    pub tasks: BTreeMap<(u32, u32), TaskMetrics>,
}

/// The recent readings of a job, oldest first.
#[derive(Debug, Default)]
pub struct MetricsHistory {
    samples: VecDeque<MetricsSample>,
    last: Option<Instant>,
}

impl MetricsHistory {
    /// True when a reading is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.last.is_none_or(|last| now.duration_since(last) >= HISTORY_INTERVAL)
    }

    /// Keeps a reading taken at `now`.
    pub fn record(&mut self, now: Instant, sample: MetricsSample) {
        if self.samples.len() == HISTORY_LENGTH {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
        self.last = Some(now);
    }

    /// The readings kept, oldest first.
    pub fn samples(&self) -> &VecDeque<MetricsSample> {
        &self.samples
    }

    /// The newest reading and the one `back` readings before it (or the oldest kept).
    pub fn span(&self, back: usize) -> Option<(&MetricsSample, &MetricsSample)> {
        let newest = self.samples.back()?;
        let older = self.samples.get(self.samples.len().saturating_sub(back + 1))?;
        (older.at_ms < newest.at_ms).then_some((newest, older))
    }
}

/// How much a counter grew between two readings; a counter that went down was restarted
/// (a new attempt of the task), so it grew by its new value.
pub fn growth(newer: u64, older: u64) -> u64 {
    if newer >= older {
        newer - older
    } else {
        newer
    }
}

/// Per-second rates of one subtask between two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TaskRates {
    /// Rows in per second.
    pub rows_in: f64,
    /// Rows out per second.
    pub rows_out: f64,
    /// Milliseconds per second spent handling input.
    pub busy_ms: f64,
    /// Milliseconds per second spent waiting for input.
    pub idle_ms: f64,
    /// Milliseconds per second spent waiting for room downstream.
    pub backpressured_ms: f64,
}

/// The rates of a subtask from `older` to `newer`: over the time between the two readings
/// when both carry it, else over `seconds` (the time between their arrivals).
pub fn task_rates(newer: &TaskMetrics, older: &TaskMetrics, seconds: f64) -> TaskRates {
    let seconds = if newer.at_ms > older.at_ms && older.at_ms > 0 {
        (newer.at_ms - older.at_ms) as f64 / 1000.0
    } else {
        seconds
    };
    if seconds <= 0.0 {
        return TaskRates::default();
    }
    let per_s = |n: u64, o: u64| growth(n, o) as f64 / seconds;
    TaskRates {
        rows_in: per_s(newer.rows_in, older.rows_in),
        rows_out: per_s(newer.rows_out, older.rows_out),
        busy_ms: per_s(newer.busy_us, older.busy_us) / 1000.0,
        idle_ms: per_s(newer.idle_us, older.idle_us) / 1000.0,
        backpressured_ms: per_s(newer.backpressured_us, older.backpressured_us) / 1000.0,
    }
}

/// The histogram `name` of the subtasks in `sample`, merged.
pub fn sample_histogram(sample: &MetricsSample, name: &str) -> Histogram {
    let mut merged = Histogram::default();
    for metric in sample.tasks.values().flat_map(|t| &t.operators).filter(|m| m.name == name) {
        if let Some(Value::Histogram(h)) = &metric.value {
            metrics::merge(&mut merged, h);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::metrics::{counter, gauge, histogram, LatencyHistogram};

    #[test]
    fn subtasks_metrics_add_up_by_kind() {
        let (mut a, mut b) = (LatencyHistogram::default(), LatencyHistogram::default());
        a.record(100);
        b.record(100);
        b.record(5_000);
        let metrics = [
            counter("model.m.rows", 3),
            counter("model.m.rows", 4),
            gauge("model.m.concurrency_limit_min", 8.0),
            gauge("model.m.concurrency_limit_min", 2.0),
            gauge("model.m.in_flight", 1.0),
            gauge("model.m.in_flight", 2.0),
            histogram("model.m.latency_us", &a),
            histogram("model.m.latency_us", &b),
        ];
        let merged = merge_operator_metrics(&metrics);
        assert_eq!(merged["model.m.rows"], JobMetric::Scalar(7.0));
        assert_eq!(merged["model.m.concurrency_limit_min"], JobMetric::Scalar(2.0));
        assert_eq!(merged["model.m.in_flight"], JobMetric::Scalar(3.0));
        let JobMetric::Histogram(h) = &merged["model.m.latency_us"] else { panic!() };
        assert_eq!((metrics::count(h), h.sum), (3, 5_200.0));
    }

    #[test]
    fn model_metric_names_split_into_model_and_metric() {
        assert_eq!(model_metric("model.fraud.latency_us"), Some(("fraud", "latency_us")));
        assert_eq!(model_metric("lookup.users.requests"), None);
    }

    #[test]
    fn rates_per_second_survive_a_restarted_task() {
        let older = TaskMetrics { rows_in: 100, busy_us: 1_000_000, idle_us: 0, ..Default::default() };
        let newer = TaskMetrics { rows_in: 300, busy_us: 1_500_000, idle_us: 1_500_000, ..Default::default() };
        let r = task_rates(&newer, &older, 2.0);
        assert_eq!((r.rows_in, r.busy_ms, r.idle_ms), (100.0, 250.0, 750.0));
        let restarted = TaskMetrics { rows_in: 40, ..Default::default() };
        assert_eq!(task_rates(&restarted, &older, 2.0).rows_in, 20.0);
        // Readings that carry their time are divided by it, whenever they arrived.
        let at = |ms, rows_in| TaskMetrics { at_ms: ms, rows_in, ..Default::default() };
        assert_eq!(task_rates(&at(11_000, 300), &at(10_000, 100), 9.0).rows_in, 200.0);
    }

    #[test]
    fn the_history_keeps_the_last_five_minutes_every_two_seconds() {
        let mut h = MetricsHistory::default();
        let start = Instant::now();
        assert!(h.due(start));
        for i in 0..(HISTORY_LENGTH as u64 + 10) {
            let now = start + HISTORY_INTERVAL * i as u32;
            assert!(h.due(now));
            h.record(now, MetricsSample { at_ms: i * 2000, tasks: BTreeMap::new() });
            assert!(!h.due(now + Duration::from_millis(500)));
        }
        assert_eq!(h.samples().len(), HISTORY_LENGTH);
        let (newest, older) = h.span(5).unwrap();
        assert_eq!(newest.at_ms - older.at_ms, 10_000);
    }
}
