//! `sluice top`: a live view of a running job, one line per vertex (rows per second in and
//! out, busy, idle and backpressured milliseconds per second of its busiest subtask, its
//! watermark) and one per model (rows per second, requests in flight, latency), redrawn
//! in place until the job ends.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use sluice_jobmanager::metrics::{by_model, job_operator_metrics, task_rates, JobMetric, TaskRates};
use sluice_proto::{JobState, JobStatus};

use super::client::{connect, fetch_status, state_word};
use crate::TopArgs;

/// `sluice top`.
pub async fn top(args: TopArgs) -> Result<ExitCode> {
    let interval = sluice_core::options::parse_duration(&args.interval)
        .map_err(|e| anyhow::anyhow!("--interval '{}': {e}", args.interval))?;
    let mut client = connect(&args.cluster.jobmanager).await?;
    let terminal = std::io::stdout().is_terminal();
    let mut previous: Option<(Instant, JobStatus)> = None;
    loop {
        let status = fetch_status(&mut client, &args.job).await?;
        let now = Instant::now();
        let rates = match &previous {
            Some((then, before)) => subtask_rates(&status, before, now.duration_since(*then).as_secs_f64()),
            None => BTreeMap::new(),
        };
        if terminal {
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", render(&status, &rates));
        if !terminal {
            println!();
        }
        let state = JobState::try_from(status.state).unwrap_or(JobState::Created);
        if matches!(state, JobState::Finished | JobState::Failed | JobState::Canceled) {
            return Ok(ExitCode::SUCCESS);
        }
        previous = Some((now, status));
        tokio::time::sleep(interval).await;
    }
}

/// Each subtask's rates between two readings `seconds` apart.
fn subtask_rates(now: &JobStatus, before: &JobStatus, seconds: f64) -> BTreeMap<(u32, u32), TaskRates> {
    now.tasks
        .iter()
        .map(|t| {
            let older = before
                .tasks
                .iter()
                .find(|b| (b.vertex_id, b.subtask) == (t.vertex_id, t.subtask))
                .and_then(|b| b.metrics.clone())
                .unwrap_or_default();
            ((t.vertex_id, t.subtask), task_rates(&t.metrics.clone().unwrap_or_default(), &older, seconds))
        })
        .collect()
}

/// The view: a header, one line per vertex, one per model.
fn render(status: &JobStatus, rates: &BTreeMap<(u32, u32), TaskRates>) -> String {
    let mut out = format!("{} ({})  {}\n", status.name, status.job_id, state_word(status.state));
    if !status.message.is_empty() {
        out.push_str(&format!("{}\n", status.message));
    }
    out.push_str(&format!(
        "{:<44} {:>3} {:>10} {:>10} {:>7} {:>7} {:>7}  {}\n",
        "VERTEX", "P", "IN/S", "OUT/S", "BUSY", "IDLE", "BACKPR", "WATERMARK"
    ));
    for vertex in &status.vertices {
        let of_vertex: Vec<&TaskRates> = rates.iter().filter(|((v, _), _)| *v == vertex.id).map(|(_, r)| r).collect();
        let sum = |f: fn(&TaskRates) -> f64| of_vertex.iter().map(|r| f(r)).sum::<f64>();
        let max = |f: fn(&TaskRates) -> f64| of_vertex.iter().map(|r| f(r)).fold(0.0, f64::max);
        let watermark = status
            .tasks
            .iter()
            .filter(|t| t.vertex_id == vertex.id)
            .filter_map(|t| t.metrics.as_ref()?.watermark)
            .min()
            .map_or_else(|| "-".to_string(), sluice_core::watermarks::format_watermark);
        let name: String = if vertex.name.chars().count() > 44 {
            vertex.name.chars().take(41).chain("...".chars()).collect()
        } else {
            vertex.name.clone()
        };
        out.push_str(&format!(
            "{:<44} {:>3} {:>10.0} {:>10.0} {:>7.0} {:>7.0} {:>7.0}  {}\n",
            name,
            vertex.parallelism,
            sum(|r| r.rows_in),
            sum(|r| r.rows_out),
            max(|r| r.busy_ms),
            max(|r| r.idle_ms),
            max(|r| r.backpressured_ms),
            watermark
        ));
    }
    out.push_str("(BUSY, IDLE and BACKPR: ms per second of the vertex's busiest subtask)\n");
    let metrics = job_operator_metrics(status);
    for (model, values) in by_model(&metrics) {
        let scalar = |what: &str| match values.get(what) {
            Some(JobMetric::Scalar(v)) => format!("{v}"),
            _ => "-".into(),
        };
        let latency = |q: f64| match values.get("latency_us") {
            Some(JobMetric::Histogram(h)) => {
                sluice_core::metrics::quantile(h, q).map_or_else(|| "-".into(), |us| format!("{:.1} ms", us / 1000.0))
            }
            _ => "-".into(),
        };
        out.push_str(&format!(
            "model {model}: rows {}, in flight {} (limit {}), p50 {}, p99 {}, retries {}, 429s {}, timeouts {}\n",
            scalar("rows"),
            scalar("in_flight"),
            scalar("concurrency_limit"),
            latency(0.5),
            latency(0.99),
            scalar("retries"),
            scalar("http_429"),
            scalar("timeouts")
        ));
    }
    out
}
