//! Commands that talk to a running cluster (`submit`, `list`, `status`, `cancel`), and
//! `explain`, which only plans.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use sluice_jobmanager::metrics::JobMetric;
use sluice_proto::auth::{AttachToken, AuthChannel, Token};
use sluice_proto::job_manager_client::JobManagerClient;
use sluice_proto::{
    CancelJobRequest, GetJobStatusRequest, JobState, JobStatus, ListJobsRequest, SubmitJobRequest,
    TriggerSavepointRequest,
};
use sluice_sql::{Plan, PlanOptions, Session};
use tonic::transport::Endpoint;

use crate::{CheckpointArgs, ClusterArgs, ExplainArgs, JobArgs, SavepointArgs, StatusArgs, SubmitArgs};

/// Runs a SQL file's statements: prints what SHOW, DESCRIBE and EXPLAIN return, and
/// returns the job of its INSERTs and queries, if any. Errors name the file, line and column.
pub fn run_file(file: &Path, parallelism: Option<u32>) -> Result<Option<Plan>> {
    let script = std::fs::read_to_string(file).with_context(|| format!("cannot read SQL file '{}'", file.display()))?;
    let options = PlanOptions { default_parallelism: parallelism, job_name: None };
    let outcome = Session::new(options)
        .run_script(&script)
        .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.render(&script)))?;
    for text in &outcome.text {
        println!("{}", text.trim_end());
    }
    Ok(outcome.plan)
}

/// Plans SQL for the jobmanager's `POST /jobs`, as `sluice submit` plans a file.
pub fn sql_planner() -> sluice_jobmanager::SqlPlanner {
    std::sync::Arc::new(|script: &str, parallelism: Option<u32>| {
        let options = PlanOptions { default_parallelism: parallelism, job_name: None };
        let outcome = Session::new(options).run_script(script).map_err(|e| e.render(script))?;
        outcome
            .plan
            .map(|plan| plan.graph)
            .ok_or_else(|| "the script has no INSERT INTO statement or query; nothing to run".to_string())
    })
}

/// Like [`run_file`], but a script without a job is an error.
pub fn plan_file(file: &Path, parallelism: Option<u32>) -> Result<Plan> {
    run_file(file, parallelism)?.with_context(|| {
        format!("{}: the script has no INSERT INTO statement or query; nothing to run", file.display())
    })
}

/// The cluster's token every client call carries (set once, from the command line).
static TOKEN: std::sync::OnceLock<Option<Token>> = std::sync::OnceLock::new();

/// Sets the token client calls carry and cluster processes require.
pub fn set_token(token: Option<Token>) {
    let _ = TOKEN.set(token);
}

/// The token client calls carry and cluster processes require, if any.
pub fn token() -> Option<Token> {
    TOKEN.get().cloned().flatten()
}

/// A client of the jobmanager whose calls carry the cluster's token.
pub type JmClient = JobManagerClient<AuthChannel>;

/// Connects to the jobmanager at `address`; each call may take 30 s.
pub async fn connect(address: &str) -> Result<JmClient> {
    connect_with_timeout(address, Duration::from_secs(30)).await
}

/// Connects to the jobmanager at `address`; each call may take `timeout` (the channel's
/// timeout caps a call's own).
pub async fn connect_with_timeout(address: &str, timeout: Duration) -> Result<JmClient> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("invalid jobmanager address '{address}': expected HOST:PORT"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot reach the jobmanager at {address}; is it running? (sluice jobmanager --rpc-address {address})"
            )
        })?;
    let attach = AttachToken::new(token().as_ref()).map_err(|e| anyhow::anyhow!(e))?;
    Ok(JobManagerClient::new(attach.wrap(channel))
        .max_encoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
        .max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES))
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}

/// The state word of a job state.
pub fn state_word(state: i32) -> &'static str {
    sluice_jobmanager::state::job_state_name(state)
}

/// The submit request for `plan` with the checkpoint options of the command line.
pub fn submit_request(plan: Plan, checkpoints: &CheckpointArgs) -> Result<SubmitJobRequest> {
    let mut graph = plan.graph;
    if let Some(interval) = &checkpoints.checkpoint_interval {
        sluice_core::options::parse_duration(interval)
            .map_err(|e| anyhow::anyhow!("--checkpoint-interval '{interval}': {e}"))?;
        graph.config.insert("execution.checkpointing.interval".into(), interval.clone());
    }
    let from_savepoint = match &checkpoints.from_savepoint {
        // A path is made absolute here: the jobmanager runs elsewhere.
        Some(raw) if !raw.contains("://") => {
            std::path::absolute(raw).with_context(|| format!("--from-savepoint '{raw}'"))?.display().to_string()
        }
        Some(url) => url.clone(),
        None => String::new(),
    };
    Ok(SubmitJobRequest { graph: Some(graph), from_savepoint })
}

/// `sluice submit`.
pub async fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let plan = plan_file(&args.file, args.parallelism)?;
    let request = submit_request(plan, &args.checkpoints)?;
    let mut client = connect(&args.cluster.jobmanager).await?;
    let job_id = client.submit_job(request).await.map_err(status_error)?.into_inner().job_id;
    // On a terminal, show the job until it is deployed; the id stays alone on the last
    // stdout line either way.
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        let mut progress = super::embedded::Progress::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let deployed = loop {
            let status = fetch_status(&mut client, &job_id).await?;
            progress.show(&status);
            if JobState::try_from(status.state).is_ok_and(|s| s != JobState::Created) {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        progress.clear();
        if let Some(status) = deployed {
            eprintln!("job {} is {}", status.name, state_word(status.state));
        }
    }
    println!("{job_id}");
    Ok(ExitCode::SUCCESS)
}

/// How long `sluice savepoint` waits for the savepoint (and, with `--stop`, the job's end).
const SAVEPOINT_TIMEOUT: Duration = Duration::from_secs(3600);

/// `sluice savepoint`.
pub async fn savepoint(args: SavepointArgs) -> Result<ExitCode> {
    // A savepoint of large state, or a stop that waits for every sink's commit, may take long.
    let mut client = connect_with_timeout(&args.cluster.jobmanager, SAVEPOINT_TIMEOUT).await?;
    let request = TriggerSavepointRequest {
        job_id: args.job.clone(),
        directory: args.directory.unwrap_or_default(),
        stop: args.stop,
    };
    let mut call = tonic::Request::new(request);
    call.set_timeout(SAVEPOINT_TIMEOUT);
    let response = client.trigger_savepoint(call).await.map_err(status_error)?;
    println!("{}", response.into_inner().path);
    Ok(ExitCode::SUCCESS)
}

/// `sluice list`.
pub async fn list(args: ClusterArgs) -> Result<ExitCode> {
    let mut client = connect(&args.jobmanager).await?;
    let jobs = client.list_jobs(ListJobsRequest {}).await.map_err(status_error)?.into_inner().jobs;
    if jobs.is_empty() {
        println!("no jobs");
    } else {
        println!("{:<32}  {:<10}  NAME", "JOB ID", "STATE");
        for job in jobs {
            println!("{:<32}  {:<10}  {}", job.job_id, state_word(job.state), job.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Fetches a job's status.
pub async fn fetch_status(client: &mut JmClient, job: &str) -> Result<JobStatus> {
    Ok(client.get_job_status(GetJobStatusRequest { job_id: job.to_string() }).await.map_err(status_error)?.into_inner())
}

/// A job status as JSON.
pub fn status_json(status: &JobStatus) -> serde_json::Value {
    let vertex_name = |id: u32| status.vertices.iter().find(|v| v.id == id).map(|v| v.name.clone()).unwrap_or_default();
    json!({
        "job_id": status.job_id,
        "name": status.name,
        "state": state_word(status.state),
        "message": status.message,
        "submitted_at_ms": status.submitted_at_ms,
        "finished_at_ms": status.finished_at_ms,
        "restarts": status.restarts,
        "max_restarts": status.max_restarts,
        "checkpoints": status.checkpoints.as_ref().map(|c| json!({
            "interval_ms": c.interval_ms,
            "completed": c.completed,
            "failed": c.failed,
            "in_flight": c.pending_id,
            "latest_id": c.latest_id,
            "latest_path": c.latest_path,
            "latest_duration_ms": c.latest_duration_ms,
            "latest_state_bytes": c.latest_state_bytes,
            "latest_uploaded_bytes": c.latest_uploaded_bytes,
            "latest_completed_at_ms": c.latest_completed_at_ms,
            "restored_from_id": c.restored_from_id,
            "restored_from_path": c.restored_from_path,
            "last_failure": c.last_failure,
        })),
        "tasks": status.tasks.iter().map(|t| {
            let m = t.metrics.clone().unwrap_or_default();
            let c = t.last_checkpoint.unwrap_or_default();
            json!({
                "vertex_id": t.vertex_id,
                "vertex": vertex_name(t.vertex_id),
                "subtask": t.subtask,
                "task_manager": t.task_manager_id,
                "state": sluice_jobmanager::state::task_state_name(t.state),
                "rows_in": m.rows_in,
                "rows_out": m.rows_out,
                "bytes_out": m.bytes_out,
                "batches_out": m.batches_out,
                "remote_rows_out": m.remote_rows_out,
                "records_skipped": m.records_skipped,
                "watermark": m.watermark,
                "operators": operator_metrics_json(&m.operators),
                "checkpoint": json!({
                    "id": c.checkpoint_id,
                    "alignment_ms": c.alignment_ms,
                    "sync_ms": c.sync_ms,
                    "async_ms": c.async_ms,
                    "state_bytes": c.state_bytes,
                    "uploaded_bytes": c.uploaded_bytes,
                }),
                "error": t.error,
            })
        }).collect::<Vec<_>>(),
    })
}

/// Operator metrics as JSON: counters and gauges as numbers, histograms as their count,
/// sum, p50 and p99.
fn operator_metrics_json(metrics: &[sluice_core::metrics::Metric]) -> serde_json::Value {
    use sluice_core::metrics::{count, quantile, Value};
    let entries = metrics.iter().filter_map(|m| {
        let value = match m.value.as_ref()? {
            Value::Counter(c) => json!(c),
            // Whole gauges (rows held, requests in flight) as integers.
            Value::Gauge(g) if g.fract() == 0.0 && g.abs() < 1e15 => json!(*g as i64),
            Value::Gauge(g) => json!(g),
            Value::Histogram(h) => json!({
                "count": count(h),
                "sum": h.sum,
                "p50": quantile(h, 0.5),
                "p99": quantile(h, 0.99),
            }),
        };
        Some((m.name.clone(), value))
    });
    serde_json::Value::Object(entries.collect())
}

/// `sluice status`.
pub async fn status(args: StatusArgs) -> Result<ExitCode> {
    let mut client = connect(&args.cluster.jobmanager).await?;
    if !args.watch {
        let status = fetch_status(&mut client, &args.job).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
        } else {
            print_status(&status);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let interval = sluice_core::options::parse_duration(&args.interval)
        .map_err(|e| anyhow::anyhow!("--interval '{}': {e}", args.interval))?;
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    loop {
        let status = fetch_status(&mut client, &args.job).await?;
        if args.json {
            println!("{}", serde_json::to_string(&status_json(&status))?);
        } else {
            if terminal {
                // Clear the screen and draw from its top.
                print!("\x1b[2J\x1b[H");
            }
            print_status(&status);
            if !terminal {
                println!();
            }
        }
        let state = JobState::try_from(status.state).unwrap_or(JobState::Created);
        if matches!(state, JobState::Finished | JobState::Failed | JobState::Canceled) {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(interval).await;
    }
}

/// A job's status as `sluice status` prints it for people.
fn print_status(status: &JobStatus) {
    println!("state: {}", state_word(status.state));
    println!("job:   {} ({})", status.job_id, status.name);
    if !status.message.is_empty() {
        println!("info:  {}", status.message);
    }
    let skipped: u64 = status.tasks.iter().map(|t| t.metrics.clone().unwrap_or_default().records_skipped).sum();
    let operators = sluice_jobmanager::metrics::job_operator_metrics(status);
    for (name, value) in &operators {
        match value {
            JobMetric::Scalar(v) => println!("{name}: {v}"),
            JobMetric::Histogram(h) => {
                // `model.m.latency_us` prints as `model.m.latency_p50_us` and `..._p99_us`.
                let stem = name.strip_suffix("_us").unwrap_or(name);
                for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
                    let v = sluice_core::metrics::quantile(h, q).unwrap_or(0.0).round();
                    println!("{stem}_{label}_us: {v}");
                }
            }
        }
    }
    if skipped > 0 {
        println!("skipped bad records: {skipped}");
    }
    if status.restarts > 0 {
        let limit =
            if status.max_restarts == u32::MAX { "unlimited".to_string() } else { status.max_restarts.to_string() };
        println!("restarts: {} (of {limit})", status.restarts);
    }
    if let Some(c) = &status.checkpoints {
        println!(
            "checkpoints: every {} ms, {} completed, {} failed{}",
            c.interval_ms,
            c.completed,
            c.failed,
            if c.pending_id != 0 { format!(", {} in flight", c.pending_id) } else { String::new() }
        );
        if c.latest_id != 0 {
            println!(
                "  latest: {} in {} ms, {} bytes of state ({} copied) at {}",
                c.latest_id, c.latest_duration_ms, c.latest_state_bytes, c.latest_uploaded_bytes, c.latest_path
            );
        }
        if c.restored_from_id != 0 {
            println!("  restored from: {} ({})", c.restored_from_id, c.restored_from_path);
        }
        if !c.last_failure.is_empty() {
            println!("  last failure: {}", c.last_failure);
        }
    }
    if !status.tasks.is_empty() {
        println!(
            "{:<40} {:>7}  {:<9}  {:<6} {:>12} {:>12} {:>6} {:>6} {:>6}  {:<23}",
            "TASK", "SUBTASK", "STATE", "TM", "ROWS IN", "ROWS OUT", "ALIGN", "SYNC", "ASYNC", "WATERMARK"
        );
        for t in &status.tasks {
            let name = status.vertices.iter().find(|v| v.id == t.vertex_id).map_or("", |v| v.name.as_str());
            let name: String = if name.chars().count() > 40 {
                name.chars().take(37).chain("...".chars()).collect()
            } else {
                name.into()
            };
            let m = t.metrics.clone().unwrap_or_default();
            let c = t.last_checkpoint.unwrap_or_default();
            println!(
                "{:<40} {:>7}  {:<9}  {:<6} {:>12} {:>12} {:>6} {:>6} {:>6}  {:<23}",
                name,
                t.subtask + 1,
                sluice_jobmanager::state::task_state_name(t.state),
                t.task_manager_id,
                m.rows_in,
                m.rows_out,
                c.alignment_ms,
                c.sync_ms,
                c.async_ms,
                watermark_text(m.watermark)
            );
        }
    }
}

/// A task's watermark as `sluice status` shows it: `-` before the first.
fn watermark_text(watermark: Option<i64>) -> String {
    watermark.map_or_else(|| "-".into(), sluice_core::watermarks::format_watermark)
}

/// `sluice cancel`.
pub async fn cancel(args: JobArgs) -> Result<ExitCode> {
    let mut client = connect(&args.cluster.jobmanager).await?;
    let response = client.cancel_job(CancelJobRequest { job_id: args.job.clone() }).await.map_err(status_error)?;
    println!("{}", state_word(response.into_inner().state));
    Ok(ExitCode::SUCCESS)
}

/// `sluice explain`.
pub fn explain(args: ExplainArgs) -> Result<ExitCode> {
    if let Some(plan) = run_file(&args.file, args.parallelism)? {
        println!("{}", plan.explain.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}
