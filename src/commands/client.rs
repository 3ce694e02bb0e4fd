//! Commands that talk to a running cluster (`submit`, `list`, `status`, `cancel`), and
//! `explain`, which only plans.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use sluice_proto::job_manager_client::JobManagerClient;
use sluice_proto::{CancelJobRequest, GetJobStatusRequest, JobState, JobStatus, ListJobsRequest, SubmitJobRequest, TaskState};
use sluice_sql::{Plan, PlanOptions, Session};
use tonic::transport::{Channel, Endpoint};

use crate::{ClusterArgs, ExplainArgs, JobArgs, StatusArgs, SubmitArgs};

/// Runs a SQL file's statements: prints what SHOW, DESCRIBE and EXPLAIN return, and
/// returns the job of its INSERTs and queries, if any. Errors name the file, line and column.
pub fn run_file(file: &Path, parallelism: Option<u32>) -> Result<Option<Plan>> {
    let script =
        std::fs::read_to_string(file).with_context(|| format!("cannot read SQL file '{}'", file.display()))?;
    let options = PlanOptions { default_parallelism: parallelism, job_name: None };
    let outcome = Session::new(options)
        .run_script(&script)
        .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.render(&script)))?;
    for text in &outcome.text {
        println!("{}", text.trim_end());
    }
    Ok(outcome.plan)
}

/// Like [`run_file`], but a script without a job is an error.
pub fn plan_file(file: &Path, parallelism: Option<u32>) -> Result<Plan> {
    run_file(file, parallelism)?.with_context(|| {
        format!("{}: the script has no INSERT INTO statement or query; nothing to run", file.display())
    })
}

/// Connects to the jobmanager at `address`.
pub async fn connect(address: &str) -> Result<JobManagerClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("invalid jobmanager address '{address}': expected HOST:PORT"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach the jobmanager at {address}; is it running? (sluice jobmanager --rpc-address {address})")
        })?;
    Ok(JobManagerClient::new(channel).max_encoding_message_size(64 << 20))
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}

/// The state word of a job state.
pub fn state_word(state: i32) -> &'static str {
    match JobState::try_from(state) {
        Ok(JobState::Created) => "CREATED",
        Ok(JobState::Running) => "RUNNING",
        Ok(JobState::Restarting) => "RESTARTING",
        Ok(JobState::Finished) => "FINISHED",
        Ok(JobState::Failed) => "FAILED",
        Ok(JobState::Canceled) => "CANCELED",
        Err(_) => "UNKNOWN",
    }
}

fn task_state_word(state: i32) -> &'static str {
    match TaskState::try_from(state) {
        Ok(TaskState::Deploying) => "DEPLOYING",
        Ok(TaskState::Running) => "RUNNING",
        Ok(TaskState::Finished) => "FINISHED",
        Ok(TaskState::Failed) => "FAILED",
        Ok(TaskState::Canceled) => "CANCELED",
        Err(_) => "UNKNOWN",
    }
}

/// `sluice submit`.
pub async fn submit(args: SubmitArgs) -> Result<ExitCode> {
    let plan = plan_file(&args.file, args.parallelism)?;
    let mut client = connect(&args.cluster.jobmanager).await?;
    let response = client.submit_job(SubmitJobRequest { graph: Some(plan.graph) }).await.map_err(status_error)?;
    println!("{}", response.into_inner().job_id);
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
pub async fn fetch_status(client: &mut JobManagerClient<Channel>, job: &str) -> Result<JobStatus> {
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
        "tasks": status.tasks.iter().map(|t| {
            let m = t.metrics.unwrap_or_default();
            json!({
                "vertex_id": t.vertex_id,
                "vertex": vertex_name(t.vertex_id),
                "subtask": t.subtask,
                "task_manager": t.task_manager_id,
                "state": task_state_word(t.state),
                "rows_in": m.rows_in,
                "rows_out": m.rows_out,
                "bytes_out": m.bytes_out,
                "batches_out": m.batches_out,
                "remote_rows_out": m.remote_rows_out,
                "error": t.error,
            })
        }).collect::<Vec<_>>(),
    })
}

/// `sluice status`.
pub async fn status(args: StatusArgs) -> Result<ExitCode> {
    let mut client = connect(&args.cluster.jobmanager).await?;
    let status = fetch_status(&mut client, &args.job).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status_json(&status))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("state: {}", state_word(status.state));
    println!("job:   {} ({})", status.job_id, status.name);
    if !status.message.is_empty() {
        println!("info:  {}", status.message);
    }
    if !status.tasks.is_empty() {
        println!("{:<40} {:>7}  {:<9}  {:<6} {:>12} {:>12}", "TASK", "SUBTASK", "STATE", "TM", "ROWS IN", "ROWS OUT");
        for t in &status.tasks {
            let name = status.vertices.iter().find(|v| v.id == t.vertex_id).map_or("", |v| v.name.as_str());
            let name: String = if name.chars().count() > 40 { name.chars().take(37).chain("...".chars()).collect() } else { name.into() };
            let m = t.metrics.unwrap_or_default();
            println!(
                "{:<40} {:>7}  {:<9}  {:<6} {:>12} {:>12}",
                name,
                t.subtask + 1,
                task_state_word(t.state),
                t.task_manager_id,
                m.rows_in,
                m.rows_out
            );
        }
    }
    Ok(ExitCode::SUCCESS)
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
