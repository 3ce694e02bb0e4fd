//! `/metrics`: the whole cluster's metrics for Prometheus, encoded by `prometheus-client`
//! (OpenMetrics when the scraper asks for it, else Prometheus's text format 0.0.4).
//!
//! Labels are bounded: job_id and job_name, vertex, subtask, task manager, model, table, kind, state;
//! never a key, a prompt or a row value. The table of names and their Flink counterparts is
//! in `docs/metrics.md`.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use sluice_core::metrics::{Histogram, Value, LATENCY_BOUNDS_US};
use sluice_proto::{JobState, JobStatus, TaskMetrics};

use crate::state::ClusterState;

/// The content type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of Prometheus's text format.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type Labels = Vec<(String, String)>;

/// One sample's value.
#[derive(Debug, Clone)]
enum Sample {
    Counter(f64),
    Gauge(f64),
    /// Microseconds by [`LATENCY_BOUNDS_US`], shown in seconds.
    Histogram(Histogram),
}

/// A metric family: its samples by label set.
#[derive(Debug)]
struct Family {
    help: String,
    unit: Option<Unit>,
    kind: MetricType,
    samples: Vec<(Labels, Sample)>,
}

/// Every family of one scrape, by name.
#[derive(Debug, Default)]
pub struct Scrape {
    families: BTreeMap<String, Family>,
}

impl Scrape {
    fn add(&mut self, name: &str, help: &str, unit: Option<Unit>, labels: Labels, sample: Sample) {
        let kind = match sample {
            Sample::Counter(_) => MetricType::Counter,
            Sample::Gauge(_) => MetricType::Gauge,
            Sample::Histogram(_) => MetricType::Histogram,
        };
        let family = self.families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            unit,
            kind,
            samples: Vec::new(),
        });
        // A name reused with another kind (two operators' metrics of the same name but
        // different types) would make an invalid family: the first kind wins.
        if family.kind == kind {
            family.samples.push((labels, sample));
        }
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.families {
            let mut metric = encoder.encode_descriptor(name, &family.help, family.unit.as_ref(), family.kind)?;
            for (labels, sample) in &family.samples {
                let encoder = metric.encode_family(labels)?;
                match sample {
                    // Whole numbers print as integers ("7", not "7.0").
                    Sample::Counter(v) if is_whole(*v) => ConstCounter::new(*v as u64).encode(encoder)?,
                    Sample::Counter(v) => ConstCounter::new(*v).encode(encoder)?,
                    Sample::Gauge(v) if is_whole(*v) => ConstGauge::new(*v as i64).encode(encoder)?,
                    Sample::Gauge(v) => ConstGauge::new(*v).encode(encoder)?,
                    Sample::Histogram(h) => {
                        let mut encoder = encoder;
                        let buckets: Vec<(f64, u64)> = h
                            .buckets
                            .iter()
                            .enumerate()
                            .map(|(i, &n)| (LATENCY_BOUNDS_US.get(i).map_or(f64::INFINITY, |&b| b as f64 / 1e6), n))
                            .collect();
                        let count = h.buckets.iter().sum();
                        encoder.encode_histogram::<NoLabelSet>(h.sum / 1e6, count, &buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// True for a number that prints as an integer without loss.
fn is_whole(v: f64) -> bool {
    v.fract() == 0.0 && v.abs() < 1e15
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A metric name made of what Prometheus allows (`[a-zA-Z0-9_]`).
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// Adds the task-level metrics of one subtask.
fn add_task(scrape: &mut Scrape, task: &Labels, m: &TaskMetrics) {
    let counters: [(&str, &str, Option<Unit>, f64); 8] = [
        ("sluice_task_records_in", "Rows that entered the subtask.", None, m.rows_in as f64),
        ("sluice_task_records_out", "Rows the subtask sent on.", None, m.rows_out as f64),
        ("sluice_task_bytes_in", "Bytes received from other task managers.", Some(Unit::Bytes), m.bytes_in as f64),
        ("sluice_task_bytes_out", "Bytes sent to other task managers.", Some(Unit::Bytes), m.bytes_out as f64),
        ("sluice_task_records_skipped", "Bad records the subtask's source skipped.", None, m.records_skipped as f64),
        ("sluice_task_busy_time", "Time spent handling input.", Some(Unit::Seconds), m.busy_us as f64 / 1e6),
        ("sluice_task_idle_time", "Time spent waiting for input.", Some(Unit::Seconds), m.idle_us as f64 / 1e6),
        (
            "sluice_task_backpressured_time",
            "Time spent waiting for room downstream.",
            Some(Unit::Seconds),
            m.backpressured_us as f64 / 1e6,
        ),
    ];
    for (name, help, unit, value) in counters {
        scrape.add(name, help, unit, task.clone(), Sample::Counter(value));
    }
    if let Some(w) = m.watermark {
        let help = "The watermark the subtask sent on, as a Unix time.";
        scrape.add(
            "sluice_task_current_output_watermark",
            help,
            Some(Unit::Seconds),
            task.clone(),
            Sample::Gauge(w as f64 / 1e3),
        );
    }
    if let Some(w) = m.input_watermark {
        let help = "The watermark the subtask's input reached, as a Unix time.";
        scrape.add(
            "sluice_task_current_input_watermark",
            help,
            Some(Unit::Seconds),
            task.clone(),
            Sample::Gauge(w as f64 / 1e3),
        );
    }
    for metric in &m.operators {
        add_operator_metric(scrape, task, metric);
    }
}

/// Adds an operator's metric: `model.<m>.<what>` as `sluice_model_<what>{model}`,
/// `lookup.<t>.<what>` and `jdbc.<t>.<what>` as `sluice_lookup_*` / `sluice_jdbc_*`
/// `{table}`, anything else as `sluice_operator_<name>`.
fn add_operator_metric(scrape: &mut Scrape, task: &Labels, metric: &sluice_core::metrics::Metric) {
    let Some(value) = &metric.value else { return };
    let mut labels = task.clone();
    let (family, help) = match metric.name.split_once('.') {
        Some((scope @ ("model" | "lookup" | "jdbc"), rest)) => {
            let Some((subject, what)) = rest.rsplit_once('.') else { return };
            labels.push((if scope == "model" { "model" } else { "table" }.to_string(), subject.to_string()));
            match (scope, what) {
                ("model", "latency_us") => {
                    ("sluice_model_request_duration".to_string(), "Latency of the model's successful requests.")
                }
                ("model", "http_429") => ("sluice_model_throttled_requests".to_string(), "Answers 429 (rate limited)."),
                ("model", "prompt_tokens" | "completion_tokens") => {
                    labels.push(("kind".into(), what.trim_end_matches("_tokens").to_string()));
                    ("sluice_model_tokens".to_string(), "Tokens the provider reported, by kind.")
                }
                ("model", "cost_micro_usd") => {
                    let Value::Counter(micro) = value else { return };
                    let help = "Estimated cost of the model's tokens (cost.input-per-1k, cost.output-per-1k).";
                    scrape.add("sluice_model_cost_usd", help, None, labels, Sample::Counter(*micro as f64 / 1e6));
                    return;
                }
                (_, what) => (format!("sluice_{scope}_{}", sanitize(what.trim_end_matches("_us"))), "Operator metric."),
            }
        }
        _ => (format!("sluice_operator_{}", sanitize(&metric.name)), "Operator metric."),
    };
    match value {
        Value::Counter(c) => scrape.add(&family, help, None, labels, Sample::Counter(*c as f64)),
        Value::Gauge(g) => scrape.add(&family, help, None, labels, Sample::Gauge(*g)),
        Value::Histogram(h) => scrape.add(&family, help, Some(Unit::Seconds), labels, Sample::Histogram(h.clone())),
    }
}

/// Adds a job's own metrics and its subtasks'.
fn add_job(scrape: &mut Scrape, status: &JobStatus) {
    let job = labels(&[("job_id", &status.job_id), ("job_name", &status.name)]);
    for state in [
        JobState::Created,
        JobState::Running,
        JobState::Restarting,
        JobState::Finished,
        JobState::Failed,
        JobState::Canceled,
    ] {
        let mut l = job.clone();
        l.push(("state".into(), super::views::job_state_name(state as i32).to_string()));
        let value = if status.state == state as i32 { 1.0 } else { 0.0 };
        scrape.add("sluice_job_state", "1 for the job's current state.", None, l, Sample::Gauge(value));
    }
    scrape.add(
        "sluice_job_restarts",
        "Restarts of the job.",
        None,
        job.clone(),
        Sample::Counter(status.restarts.into()),
    );
    if let Some(c) = &status.checkpoints {
        scrape.add(
            "sluice_job_checkpoints_completed",
            "Completed checkpoints.",
            None,
            job.clone(),
            Sample::Counter(c.completed as f64),
        );
        scrape.add(
            "sluice_job_checkpoints_failed",
            "Failed checkpoints.",
            None,
            job.clone(),
            Sample::Counter(c.failed as f64),
        );
        if c.latest_id != 0 {
            let help = "Duration of the latest completed checkpoint.";
            let value = Sample::Gauge(c.latest_duration_ms as f64 / 1e3);
            scrape.add("sluice_job_last_checkpoint_duration", help, Some(Unit::Seconds), job.clone(), value);
            let help = "State the latest completed checkpoint references.";
            let value = Sample::Gauge(c.latest_state_bytes as f64);
            scrape.add("sluice_job_last_checkpoint_size", help, Some(Unit::Bytes), job.clone(), value);
        }
    }
    for t in &status.tasks {
        let vertex = status.vertices.iter().find(|v| v.id == t.vertex_id).map_or("", |v| v.name.as_str());
        let mut task = job.clone();
        task.extend(labels(&[
            ("vertex", &t.vertex_id.to_string()),
            ("task_name", vertex),
            ("subtask", &t.subtask.to_string()),
            ("task_manager", &t.task_manager_id),
        ]));
        if let Some(m) = &t.metrics {
            add_task(scrape, &task, m);
        }
        if let Some(c) = &t.last_checkpoint {
            for (name, help, ms) in [
                ("sluice_task_checkpoint_alignment", "Alignment of the subtask's latest checkpoint.", c.alignment_ms),
                ("sluice_task_checkpoint_sync", "Synchronous part of the subtask's latest checkpoint.", c.sync_ms),
                ("sluice_task_checkpoint_async", "Asynchronous part of the subtask's latest checkpoint.", c.async_ms),
            ] {
                scrape.add(name, help, Some(Unit::Seconds), task.clone(), Sample::Gauge(ms as f64 / 1e3));
            }
        }
    }
}

/// Collects the cluster's metrics (under the jobmanager's lock; encoding them comes after).
pub fn collect(state: &ClusterState) -> Scrape {
    let mut scrape = Scrape::default();
    let none = Labels::new;
    let slots: u32 = state.task_managers().iter().map(|t| t.slots).sum();
    let free: u32 = state.slots_free().iter().map(|(_, f)| f).sum();
    let jobs = state.list();
    let running = jobs.iter().filter(|j| j.state == JobState::Running as i32).count();
    let cluster = [
        ("sluice_cluster_task_managers", "Registered task managers.", state.task_managers().len() as f64),
        ("sluice_cluster_slots", "Task slots of the registered task managers.", slots as f64),
        ("sluice_cluster_slots_available", "Task slots no job holds.", free as f64),
        ("sluice_cluster_jobs_running", "Jobs running.", running as f64),
    ];
    for (name, help, value) in cluster {
        scrape.add(name, help, None, none(), Sample::Gauge(value));
    }
    for job in &jobs {
        if let Some(status) = state.status(&job.job_id) {
            add_job(&mut scrape, &status);
        }
    }
    scrape
}

/// Encodes `scrape` in OpenMetrics text (`openmetrics`), else in Prometheus's text format.
pub fn encode(scrape: Scrape, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::metrics::{counter, gauge, histogram, LatencyHistogram};

    fn scrape_of(metrics: &[sluice_core::metrics::Metric]) -> String {
        let mut scrape = Scrape::default();
        let task = labels(&[("job_id", "j1"), ("subtask", "0")]);
        let m = TaskMetrics { rows_in: 5, busy_us: 1_500_000, operators: metrics.to_vec(), ..Default::default() };
        add_task(&mut scrape, &task, &m);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn model_metrics_get_prometheus_names_units_and_bounded_labels() {
        let mut h = LatencyHistogram::default();
        h.record(1_200);
        h.record(200_000_000);
        let text = scrape_of(&[
            counter("model.fraud.requests", 7),
            counter("model.fraud.prompt_tokens", 100),
            counter("model.fraud.cost_micro_usd", 2_500_000),
            gauge("model.fraud.in_flight", 3.0),
            histogram("model.fraud.latency_us", &h),
            counter("window.late_records_dropped", 2),
        ]);
        assert!(text.contains("sluice_task_records_in_total{job_id=\"j1\",subtask=\"0\"} 5\n"), "{text}");
        assert!(text.contains("sluice_task_busy_time_seconds_total{job_id=\"j1\",subtask=\"0\"} 1.5\n"), "{text}");
        assert!(
            text.contains("sluice_model_requests_total{job_id=\"j1\",subtask=\"0\",model=\"fraud\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "sluice_model_tokens_total{job_id=\"j1\",subtask=\"0\",model=\"fraud\",kind=\"prompt\"} 100\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("sluice_model_cost_usd_total{job_id=\"j1\",subtask=\"0\",model=\"fraud\"} 2.5\n"),
            "{text}"
        );
        assert!(text.contains("sluice_model_in_flight{job_id=\"j1\",subtask=\"0\",model=\"fraud\"} 3"), "{text}");
        assert!(text.contains("# TYPE sluice_model_request_duration_seconds histogram"), "{text}");
        // 1.2 ms lands in the 1.5 ms bucket, cumulatively in every later one; 200 s only in +Inf.
        assert!(text.contains("sluice_model_request_duration_seconds_bucket{job_id=\"j1\",subtask=\"0\",model=\"fraud\",le=\"0.001\"} 0\n"), "{text}");
        assert!(text.contains("sluice_model_request_duration_seconds_bucket{job_id=\"j1\",subtask=\"0\",model=\"fraud\",le=\"0.0015\"} 1\n"), "{text}");
        assert!(text.contains("sluice_model_request_duration_seconds_bucket{job_id=\"j1\",subtask=\"0\",model=\"fraud\",le=\"100\"} 1\n"), "{text}");
        assert!(text.contains("sluice_model_request_duration_seconds_bucket{job_id=\"j1\",subtask=\"0\",model=\"fraud\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains(
                "sluice_model_request_duration_seconds_count{job_id=\"j1\",subtask=\"0\",model=\"fraud\"} 2\n"
            ),
            "{text}"
        );
        assert!(text.contains("sluice_operator_window_late_records_dropped_total"), "{text}");
    }
}
