//! The REST API's answers, built from the jobmanager's state as pure functions (so they are
//! tested without a server). Shapes follow Flink's REST API; what Flink lacks (per-second
//! rates, the likely bottleneck, model panels) is added under names of its own.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sluice_core::metrics::{self as m, Histogram};
use sluice_proto::{JobGraph, JobState, JobStatus, Partitioning, TaskMetrics, TaskState, TaskStatus};

use crate::checkpoint::history::{CheckpointRecord, CheckpointStatus};
use crate::metrics::{
    by_model, growth, job_operator_metrics, model_metric, sample_histogram, task_rates, JobMetric, TaskRates,
};
pub use crate::state::{job_state_name, task_state_name};
use crate::state::{ClusterState, JobDetails};

/// Readings back over which rates are computed (10 s at the history's 2 s).
const RATE_SPAN: usize = 5;

/// Readings back over which a model's recent latency and cost are computed (1 minute).
const MODEL_SPAN: usize = 30;

/// Busy time per second above which a vertex may be the job's bottleneck.
const BOTTLENECK_BUSY_MS: f64 = 500.0;

/// The wall clock, in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

const TASK_STATES: [&str; 6] = ["DEPLOYING", "RUNNING", "ENDED", "FINISHED", "CANCELED", "FAILED"];

fn task_counts<'a>(tasks: impl Iterator<Item = &'a TaskStatus>) -> Value {
    let mut counts: BTreeMap<String, u64> = TASK_STATES.iter().map(|s| (s.to_lowercase(), 0)).collect();
    let mut total = 0;
    for t in tasks {
        *counts.entry(task_state_name(t.state).to_lowercase()).or_default() += 1;
        total += 1;
    }
    let mut value = json!(counts);
    value["total"] = json!(total);
    value
}

/// `GET /overview`.
pub fn overview(state: &ClusterState) -> Value {
    let jobs = state.list();
    let count = |s: JobState| jobs.iter().filter(|j| j.state == s as i32).count();
    let total: u32 = state.task_managers().iter().map(|t| t.slots).sum();
    let free: u32 = state.slots_free().iter().map(|(_, f)| f).sum();
    json!({
        "taskmanagers": state.task_managers().len(),
        "slots-total": total,
        "slots-available": free,
        "jobs-running": count(JobState::Running) + count(JobState::Restarting) + count(JobState::Created),
        "jobs-finished": count(JobState::Finished),
        "jobs-cancelled": count(JobState::Canceled),
        "jobs-failed": count(JobState::Failed),
        "sluice-version": env!("CARGO_PKG_VERSION"),
    })
}

/// `GET /taskmanagers`.
pub fn task_managers(state: &ClusterState) -> Value {
    let free: BTreeMap<String, u32> = state.slots_free().into_iter().collect();
    let now = now_ms();
    let managers: Vec<Value> = state
        .task_managers()
        .iter()
        .map(|t| {
            let data_port = t.address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).unwrap_or(0);
            json!({
                "id": t.id,
                "path": t.address,
                "dataPort": data_port,
                "timeSinceLastHeartbeat": now.saturating_sub(t.last_heartbeat.elapsed().as_millis() as u64),
                "slotsNumber": t.slots,
                "freeSlots": free.get(&t.id).copied().unwrap_or(0),
            })
        })
        .collect();
    json!({ "taskmanagers": managers })
}

fn times(status: &JobStatus, now: u64) -> (i64, u64) {
    let end = if status.finished_at_ms > 0 { status.finished_at_ms as i64 } else { -1 };
    let until = if end >= 0 { status.finished_at_ms } else { now };
    (end, until.saturating_sub(status.submitted_at_ms))
}

/// One job in `GET /jobs/overview`.
pub fn job_summary(status: &JobStatus, now: u64) -> Value {
    let (end, duration) = times(status, now);
    json!({
        "jid": status.job_id,
        "name": status.name,
        "state": job_state_name(status.state),
        "start-time": status.submitted_at_ms,
        "end-time": end,
        "duration": duration,
        "last-modification": if end >= 0 { end as u64 } else { now },
        "tasks": task_counts(status.tasks.iter()),
    })
}

/// A subtask's metrics, or `none` before its first report.
fn metrics_or<'a>(task: &'a TaskStatus, none: &'a TaskMetrics) -> &'a TaskMetrics {
    task.metrics.as_ref().unwrap_or(none)
}

/// The state of a vertex as the worst of its subtasks'.
fn vertex_state<'a>(tasks: impl Iterator<Item = &'a TaskStatus> + Clone) -> &'static str {
    let has = |s: TaskState| tasks.clone().any(|t| t.state == s as i32);
    if tasks.clone().next().is_none() {
        "CREATED"
    } else if has(TaskState::Failed) {
        "FAILED"
    } else if has(TaskState::Deploying) {
        "DEPLOYING"
    } else if has(TaskState::Running) || has(TaskState::Ended) {
        "RUNNING"
    } else if has(TaskState::Canceled) {
        "CANCELED"
    } else {
        "FINISHED"
    }
}

/// Each subtask's rates over the last [`RATE_SPAN`] readings.
fn subtask_rates(details: &JobDetails<'_>) -> BTreeMap<(u32, u32), TaskRates> {
    let Some((newest, older)) = details.history.span(RATE_SPAN) else { return BTreeMap::new() };
    let seconds = (newest.at_ms - older.at_ms) as f64 / 1000.0;
    newest
        .tasks
        .iter()
        .map(|(k, n)| (*k, task_rates(n, older.tasks.get(k).unwrap_or(&TaskMetrics::default()), seconds)))
        .collect()
}

fn watermark_value(w: Option<i64>) -> Value {
    w.map_or(Value::Null, |w| json!(w))
}

/// The vertex most likely to hold the job back: the busiest (its busiest subtask), when it
/// is busy more than half the time.
fn bottleneck(rates: &BTreeMap<(u32, u32), TaskRates>) -> Option<u32> {
    let mut busiest: BTreeMap<u32, f64> = BTreeMap::new();
    for ((vertex, _), r) in rates {
        let entry = busiest.entry(*vertex).or_insert(0.0);
        *entry = entry.max(r.busy_ms);
    }
    busiest
        .into_iter()
        .filter(|(_, busy)| *busy >= BOTTLENECK_BUSY_MS)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(vertex, _)| vertex)
}

/// `GET /jobs/{id}`.
pub fn job(status: &JobStatus, details: &JobDetails<'_>, now: u64) -> Value {
    let (end, duration) = times(status, now);
    let rates = subtask_rates(details);
    let bottleneck = bottleneck(&rates);
    let no_metrics = TaskMetrics::default();
    let vertices: Vec<Value> = details
        .graph
        .vertices
        .iter()
        .map(|v| {
            let tasks: Vec<&TaskStatus> = status.tasks.iter().filter(|t| t.vertex_id == v.id).collect();
            let sum = |f: fn(&TaskMetrics) -> u64| tasks.iter().map(|t| f(metrics_or(t, &no_metrics))).sum::<u64>();
            let max = |f: fn(&TaskMetrics) -> u64| tasks.iter().map(|t| f(metrics_or(t, &no_metrics))).max().unwrap_or(0);
            let vertex_rates: Vec<TaskRates> =
                rates.iter().filter(|((vertex, _), _)| *vertex == v.id).map(|(_, r)| *r).collect();
            let rate_max = |f: fn(&TaskRates) -> f64| vertex_rates.iter().map(f).fold(0.0, f64::max);
            let rate_sum = |f: fn(&TaskRates) -> f64| vertex_rates.iter().map(f).sum::<f64>();
            let subtasks: Vec<Value> = tasks
                .iter()
                .map(|t| {
                    let mt = metrics_or(t, &no_metrics);
                    let r = rates.get(&(v.id, t.subtask)).copied().unwrap_or_default();
                    json!({
                        "subtask": t.subtask,
                        "status": task_state_name(t.state),
                        "taskmanager-id": t.task_manager_id,
                        "read-records": mt.rows_in,
                        "write-records": mt.rows_out,
                        "read-bytes": mt.bytes_in,
                        "write-bytes": mt.bytes_out,
                        "records-in-per-second": r.rows_in,
                        "records-out-per-second": r.rows_out,
                        "busy-ms-per-second": r.busy_ms,
                        "idle-ms-per-second": r.idle_ms,
                        "backpressured-ms-per-second": r.backpressured_ms,
                        "watermark": watermark_value(mt.watermark),
                        "input-watermark": watermark_value(mt.input_watermark),
                        "error": t.error,
                    })
                })
                .collect();
            json!({
                "id": v.id.to_string(),
                "name": v.name,
                "parallelism": v.parallelism,
                "status": vertex_state(tasks.iter().copied()),
                "start-time": status.submitted_at_ms,
                "end-time": end,
                "duration": duration,
                "tasks": task_counts(tasks.iter().copied()),
                "metrics": {
                    "read-bytes": sum(|m| m.bytes_in),
                    "read-bytes-complete": true,
                    "write-bytes": sum(|m| m.bytes_out),
                    "write-bytes-complete": true,
                    "read-records": sum(|m| m.rows_in),
                    "read-records-complete": true,
                    "write-records": sum(|m| m.rows_out),
                    "write-records-complete": true,
                    "accumulated-backpressured-time": max(|m| m.backpressured_us) / 1000,
                    "accumulated-idle-time": max(|m| m.idle_us) / 1000,
                    "accumulated-busy-time": max(|m| m.busy_us) / 1000,
                },
                "rates": {
                    "records-in-per-second": rate_sum(|r| r.rows_in),
                    "records-out-per-second": rate_sum(|r| r.rows_out),
                    "busy-ms-per-second": rate_max(|r| r.busy_ms),
                    "idle-ms-per-second": rate_max(|r| r.idle_ms),
                    "backpressured-ms-per-second": rate_max(|r| r.backpressured_ms),
                },
                "watermark": watermark_value(tasks.iter().filter_map(|t| metrics_or(t, &no_metrics).watermark).min()),
                "input-watermark": watermark_value(tasks.iter().filter_map(|t| metrics_or(t, &no_metrics).input_watermark).min()),
                "bottleneck": bottleneck == Some(v.id),
                "subtasks": subtasks,
            })
        })
        .collect();
    let mut status_counts: BTreeMap<&str, u64> = TASK_STATES.iter().map(|s| (*s, 0)).collect();
    for v in &vertices {
        if let Some(s) = v["status"].as_str() {
            *status_counts.entry(s).or_default() += 1;
        }
    }
    json!({
        "jid": status.job_id,
        "name": status.name,
        "isStoppable": status.state == JobState::Running as i32 && details.checkpoints.is_some(),
        "state": job_state_name(status.state),
        "message": status.message,
        "start-time": status.submitted_at_ms,
        "end-time": end,
        "duration": duration,
        "now": now,
        "attempt": details.attempt,
        "restarts": status.restarts,
        "vertices": vertices,
        "status-counts": status_counts,
        "plan": plan(&status.job_id, details.graph),
        "models": models(status, details),
    })
}

/// A partitioning as Flink's plan names it.
fn ship_strategy(partitioning: i32) -> &'static str {
    match Partitioning::try_from(partitioning) {
        Ok(Partitioning::Hash) => "HASH",
        Ok(Partitioning::Rebalance) => "REBALANCE",
        Ok(Partitioning::Broadcast) => "BROADCAST",
        _ => "FORWARD",
    }
}

/// The job graph as Flink's `plan`: nodes with their inputs.
pub fn plan(id: &str, graph: &JobGraph) -> Value {
    let nodes: Vec<Value> = graph
        .vertices
        .iter()
        .map(|v| {
            let inputs: Vec<Value> = graph
                .edges
                .iter()
                .filter(|e| e.target_vertex == v.id)
                .enumerate()
                .map(|(num, e)| {
                    json!({
                        "num": num,
                        "id": e.source_vertex.to_string(),
                        "ship_strategy": ship_strategy(e.partitioning),
                        "exchange": "pipelined_bounded",
                        "target-input": e.target_input,
                    })
                })
                .collect();
            json!({
                "id": v.id.to_string(),
                "parallelism": v.parallelism,
                "operator": v.operators.first().map_or("", |o| o.name.as_str()),
                "operator_strategy": "",
                "description": v.name,
                "operators": v.operators.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
                "inputs": inputs,
                "optimizer_properties": {},
            })
        })
        .collect();
    json!({ "jid": id, "name": graph.name, "type": "STREAMING", "nodes": nodes, "explain": graph.explain })
}

/// `GET /jobs/{id}/exceptions`, newest first.
pub fn exceptions(details: &JobDetails<'_>) -> Value {
    let entries: Vec<Value> = details
        .exceptions
        .iter()
        .rev()
        .map(|e| {
            json!({
                "exceptionName": if e.restarted { "TaskFailure" } else { "JobFailure" },
                "stacktrace": e.message,
                "timestamp": e.at_ms,
                "restarted": e.restarted,
                "concurrentExceptions": [],
            })
        })
        .collect();
    let root = details.exceptions.back();
    json!({
        "root-exception": root.map(|e| e.message.clone()),
        "timestamp": root.map(|e| e.at_ms),
        "exceptionHistory": { "entries": entries, "truncated": false },
    })
}

fn status_name(status: CheckpointStatus) -> &'static str {
    match status {
        CheckpointStatus::InProgress => "IN_PROGRESS",
        CheckpointStatus::Completed => "COMPLETED",
        CheckpointStatus::Failed => "FAILED",
    }
}

/// One checkpoint as Flink's history shows it; `subtasks`: with each vertex's subtasks'
/// alignment, sync and async durations.
pub fn checkpoint_record(record: &CheckpointRecord, graph: &JobGraph, subtasks: bool) -> Value {
    let tasks: serde_json::Map<String, Value> = graph
        .vertices
        .iter()
        .map(|v| {
            let acks: Vec<(u32, &(u64, sluice_proto::CheckpointTaskStats))> =
                record.acks.iter().filter(|((vertex, _), _)| *vertex == v.id).map(|((_, s), a)| (*s, a)).collect();
            let mut task = json!({
                "id": v.id.to_string(),
                "status": status_name(record.status),
                "latest_ack_timestamp": acks.iter().map(|(_, (at, _))| *at).max(),
                "checkpointed_size": acks.iter().map(|(_, (_, s))| s.uploaded_bytes).sum::<u64>(),
                "state_size": acks.iter().map(|(_, (_, s))| s.state_bytes).sum::<u64>(),
                "end_to_end_duration": acks.iter().map(|(_, (at, _))| at.saturating_sub(record.triggered_at_ms)).max(),
                "num_subtasks": v.parallelism,
                "num_acknowledged_subtasks": acks.len(),
            });
            if subtasks {
                task["subtasks"] = acks
                    .iter()
                    .map(|(s, (at, stats))| {
                        json!({
                            "index": s,
                            "status": "completed",
                            "ack_timestamp": at,
                            "end_to_end_duration": at.saturating_sub(record.triggered_at_ms),
                            "state_size": stats.state_bytes,
                            "checkpointed_size": stats.uploaded_bytes,
                            "checkpoint": { "sync": stats.sync_ms, "async": stats.async_ms },
                            "alignment": { "duration": stats.alignment_ms },
                        })
                    })
                    .collect();
            }
            (v.id.to_string(), task)
        })
        .collect();
    json!({
        "id": record.id,
        "status": status_name(record.status),
        "is_savepoint": record.savepoint,
        "checkpoint_type": if record.savepoint { "SAVEPOINT" } else { "CHECKPOINT" },
        "trigger_timestamp": record.triggered_at_ms,
        "latest_ack_timestamp": record.latest_ack_ms(),
        "end_to_end_duration": record.duration_ms(),
        "state_size": record.state_bytes(),
        "checkpointed_size": record.uploaded_bytes(),
        "num_subtasks": record.subtasks,
        "num_acknowledged_subtasks": record.acks.len(),
        "external_path": record.path,
        "failure_message": record.failure,
        "tasks": tasks,
    })
}

/// Minimum, maximum, average and percentiles of `values`, as Flink's checkpoint summary.
fn summary_of(mut values: Vec<u64>) -> Value {
    if values.is_empty() {
        return json!({ "min": 0, "max": 0, "avg": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0 });
    }
    values.sort_unstable();
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize] as f64;
    json!({
        "min": values[0],
        "max": values[values.len() - 1],
        "avg": values.iter().sum::<u64>() / values.len() as u64,
        "p50": at(0.5),
        "p90": at(0.9),
        "p99": at(0.99),
    })
}

/// `GET /jobs/{id}/checkpoints`.
pub fn checkpoints(status: &JobStatus, details: &JobDetails<'_>) -> Value {
    let summary = status.checkpoints.clone().unwrap_or_default();
    let history: Vec<&CheckpointRecord> = details.checkpoints.map(|h| h.records().rev().collect()).unwrap_or_default();
    let completed: Vec<&&CheckpointRecord> =
        history.iter().filter(|r| r.status == CheckpointStatus::Completed).collect();
    let latest = |savepoint: Option<bool>, status: CheckpointStatus| {
        history
            .iter()
            .find(|r| r.status == status && savepoint.is_none_or(|s| r.savepoint == s))
            .map(|r| checkpoint_record(r, details.graph, false))
    };
    json!({
        "counts": {
            "restored": u64::from(summary.restored_from_id != 0),
            "total": summary.completed + summary.failed + u64::from(summary.pending_id != 0),
            "in_progress": u64::from(summary.pending_id != 0),
            "completed": summary.completed,
            "failed": summary.failed,
        },
        "summary": {
            "state_size": summary_of(completed.iter().map(|r| r.state_bytes()).collect()),
            "checkpointed_size": summary_of(completed.iter().map(|r| r.uploaded_bytes()).collect()),
            "end_to_end_duration": summary_of(completed.iter().map(|r| r.duration_ms()).collect()),
        },
        "latest": {
            "completed": latest(Some(false), CheckpointStatus::Completed),
            "savepoint": latest(Some(true), CheckpointStatus::Completed),
            "failed": latest(None, CheckpointStatus::Failed),
            "restored": (summary.restored_from_id != 0).then(|| json!({
                "id": summary.restored_from_id,
                "external_path": summary.restored_from_path,
            })),
        },
        "interval_ms": summary.interval_ms,
        "history": history.iter().map(|r| checkpoint_record(r, details.graph, false)).collect::<Vec<_>>(),
    })
}

/// A backpressure ratio as Flink's level: ok up to 10%, low up to 50%, high above.
fn level(ratio: f64) -> &'static str {
    if ratio <= 0.10 {
        "ok"
    } else if ratio <= 0.5 {
        "low"
    } else {
        "high"
    }
}

/// `GET /jobs/{id}/vertices/{vertex}/backpressure`: each subtask's share of time
/// backpressured, idle and busy over the last readings.
pub fn backpressure(details: &JobDetails<'_>, vertex: u32, now: u64) -> Value {
    let rates = subtask_rates(details);
    let subtasks: Vec<Value> = rates
        .iter()
        .filter(|((v, _), _)| *v == vertex)
        .map(|((_, s), r)| {
            let ratio = r.backpressured_ms / 1000.0;
            json!({
                "subtask": s,
                "attempt-number": details.attempt,
                "backpressure-level": level(ratio),
                "ratio": ratio,
                "idleRatio": r.idle_ms / 1000.0,
                "busyRatio": r.busy_ms / 1000.0,
            })
        })
        .collect();
    let worst = subtasks.iter().filter_map(|s| s["ratio"].as_f64()).fold(0.0, f64::max);
    json!({
        "status": if rates.is_empty() { "deprecated" } else { "ok" },
        "backpressure-level": level(worst),
        "end-timestamp": now,
        "subtasks": subtasks,
    })
}

/// `GET /jobs/{id}/vertices/{vertex}/watermarks`: each subtask's input and output
/// watermark, as Flink's metric list.
pub fn watermarks(status: &JobStatus, vertex: u32) -> Value {
    let mut list = Vec::new();
    for t in status.tasks.iter().filter(|t| t.vertex_id == vertex) {
        let Some(metrics) = &t.metrics else { continue };
        if let Some(w) = metrics.input_watermark {
            list.push(json!({ "id": format!("{}.currentInputWatermark", t.subtask), "value": w.to_string() }));
        }
        if let Some(w) = metrics.watermark {
            list.push(json!({ "id": format!("{}.currentOutputWatermark", t.subtask), "value": w.to_string() }));
        }
    }
    Value::Array(list)
}

/// Per ML_PREDICT model: its counters summed over subtasks, latency percentiles (all and
/// over the last minute), rates, cache hit rate, tokens and cost per hour.
pub fn models(status: &JobStatus, details: &JobDetails<'_>) -> Value {
    let merged = job_operator_metrics(status);
    let span = details.history.span(MODEL_SPAN);
    let panels: Vec<Value> = by_model(&merged)
        .into_iter()
        .map(|(model, metrics)| {
            let scalar = |what: &str| match metrics.get(what) {
                Some(JobMetric::Scalar(v)) => Some(*v),
                _ => None,
            };
            let latency = match metrics.get("latency_us") {
                Some(JobMetric::Histogram(h)) => h.clone(),
                _ => Histogram::default(),
            };
            let name = |what: &str| format!("model.{model}.{what}");
            let (rows_per_s, cost_per_hour, recent) = match span {
                Some((newest, older)) => {
                    let seconds = (newest.at_ms - older.at_ms) as f64 / 1000.0;
                    let counter_growth = |what: &str| {
                        let total = |s: &crate::metrics::MetricsSample, key: (u32, u32)| {
                            s.tasks.get(&key).map_or(0, |t| {
                                t.operators.iter().filter(|x| x.name == name(what)).filter_map(m::scalar).sum::<f64>()
                                    as u64
                            })
                        };
                        newest.tasks.keys().map(|k| growth(total(newest, *k), total(older, *k))).sum::<u64>() as f64
                    };
                    let recent = m::since(
                        &sample_histogram(newest, &name("latency_us")),
                        &sample_histogram(older, &name("latency_us")),
                    );
                    (
                        Some(counter_growth("rows") / seconds),
                        Some(counter_growth("cost_micro_usd") / 1e6 / seconds * 3600.0),
                        Some(recent),
                    )
                }
                None => (None, None, None),
            };
            let requests = scalar("requests");
            let cache_hits = scalar("cache_hits");
            json!({
                "model": model,
                "rows": scalar("rows"),
                "rows-per-second": rows_per_s,
                "requests": requests,
                "in-flight": scalar("in_flight"),
                "concurrency-limit": scalar("concurrency_limit"),
                "latency-count": m::count(&latency),
                "latency-p50-ms": m::quantile(&latency, 0.5).map(|us| us / 1000.0),
                "latency-p99-ms": m::quantile(&latency, 0.99).map(|us| us / 1000.0),
                "recent-latency-p50-ms": recent.as_ref().and_then(|h| m::quantile(h, 0.5)).map(|us| us / 1000.0),
                "recent-latency-p99-ms": recent.as_ref().and_then(|h| m::quantile(h, 0.99)).map(|us| us / 1000.0),
                "retries": scalar("retries"),
                "http-429": scalar("http_429"),
                "timeouts": scalar("timeouts"),
                "failed": scalar("failed"),
                "dead-letters": scalar("dead_letters"),
                "cache-hits": cache_hits,
                "cache-hit-rate": match (cache_hits, requests) {
                    (Some(h), Some(r)) if h + r > 0.0 => Some(h / (h + r)),
                    _ => None,
                },
                "prompt-tokens": scalar("prompt_tokens"),
                "completion-tokens": scalar("completion_tokens"),
                "cost-usd": scalar("cost_micro_usd").map(|c| c / 1e6),
                "cost-per-hour-usd": cost_per_hour,
            })
        })
        .collect();
    Value::Array(panels)
}

/// Series over the history, one value per pair of consecutive readings: each vertex's
/// rows in per second (by vertex id), and each model's rows per second and p99 latency in
/// milliseconds (by model).
pub fn series(details: &JobDetails<'_>) -> Value {
    let samples: Vec<&crate::metrics::MetricsSample> = details.history.samples().iter().collect();
    let mut vertices: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut p99: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for pair in samples.windows(2) {
        let (older, newer) = (pair[0], pair[1]);
        let seconds = newer.at_ms.saturating_sub(older.at_ms) as f64 / 1000.0;
        if seconds <= 0.0 {
            continue;
        }
        for v in &details.graph.vertices {
            let rows: u64 = newer
                .tasks
                .iter()
                .filter(|((vertex, _), _)| *vertex == v.id)
                .map(|(k, t)| growth(t.rows_in, older.tasks.get(k).map_or(0, |o| o.rows_in)))
                .sum();
            vertices.entry(v.id.to_string()).or_default().push(rows as f64 / seconds);
        }
        let models: std::collections::BTreeSet<&str> = newer
            .tasks
            .values()
            .flat_map(|t| &t.operators)
            .filter_map(|m| model_metric(&m.name))
            .filter(|(_, what)| *what == "latency_us")
            .map(|(model, _)| model)
            .collect();
        for model in models {
            let name = format!("model.{model}.latency_us");
            let window = m::since(&sample_histogram(newer, &name), &sample_histogram(older, &name));
            let value = m::quantile(&window, 0.99).map_or(Value::Null, |us| json!(us / 1000.0));
            p99.entry(model.to_string()).or_default().push(value);
        }
    }
    let models: serde_json::Map<String, Value> =
        p99.into_iter().map(|(model, values)| (model, json!({ "p99-ms": values }))).collect();
    json!({ "vertices": vertices, "models": models })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_flinks_thresholds() {
        assert_eq!((level(0.0), level(0.10), level(0.11), level(0.5), level(0.51)), ("ok", "ok", "low", "low", "high"));
    }

    #[test]
    fn the_bottleneck_is_the_busiest_vertex_when_busy_most_of_the_time() {
        let rate = |busy_ms| TaskRates { busy_ms, ..Default::default() };
        let rates: BTreeMap<(u32, u32), TaskRates> =
            [((0, 0), rate(100.0)), ((1, 0), rate(400.0)), ((1, 1), rate(950.0)), ((2, 0), rate(600.0))].into();
        assert_eq!(bottleneck(&rates), Some(1), "the busiest subtask counts, not the average");
        let idle: BTreeMap<(u32, u32), TaskRates> = [((0, 0), rate(100.0))].into();
        assert_eq!(bottleneck(&idle), None);
    }

    #[test]
    fn summaries_take_percentiles_of_the_completed_checkpoints() {
        let s = summary_of((1..=100).collect());
        assert_eq!((s["min"].as_u64(), s["max"].as_u64(), s["avg"].as_u64()), (Some(1), Some(100), Some(50)));
        assert_eq!(s["p50"].as_f64(), Some(51.0));
    }
}
