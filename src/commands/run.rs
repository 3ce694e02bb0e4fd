//! `sluice run`: runs a SQL file on an embedded mini-cluster until its bounded sources end.

use std::process::ExitCode;

use super::client::{connect, run_file, submit_request};
use super::embedded::{wait_for_job, EmbeddedCluster};
use crate::RunArgs;
use anyhow::Result;
use sluice_core::secrets::SecretSources;

/// `sluice run`.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let Some(plan) = run_file(&args.file, args.parallelism)? else {
        eprintln!("nothing to run: {} has no INSERT INTO statement or query", args.file.display());
        return Ok(ExitCode::SUCCESS);
    };
    let required = plan.graph.vertices.iter().map(|v| v.parallelism).max().unwrap_or(1);
    let taskmanagers = args.taskmanagers.max(1);
    let secrets = match &args.secrets_file {
        Some(path) => SecretSources::with_file(path)?,
        None => SecretSources::environment(),
    };
    let request = submit_request(plan, &args.checkpoints)?;
    let rest_address = super::cluster::optional_address("--rest-address", &args.rest_address)?;
    let slots = required.div_ceil(taskmanagers);
    crate::config::configure_s3(&args.s3, Default::default());
    let checkpoint_dir =
        args.checkpoint_dir.as_deref().map(|d| crate::config::location("--checkpoint-dir", d)).transpose()?;
    let cluster = EmbeddedCluster::start(taskmanagers, slots, secrets, checkpoint_dir, rest_address).await?;
    if let Some(address) = cluster.rest_address {
        eprintln!("dashboard and REST API: {}", sluice_jobmanager::rest::describe(address));
    }
    let outcome = async {
        let mut client = connect(&cluster.address).await?;
        let job_id =
            client.submit_job(request).await.map_err(|s| anyhow::anyhow!("{}", s.message()))?.into_inner().job_id;
        wait_for_job(&mut client, &job_id).await
    }
    .await;
    cluster.stop().await;
    outcome.map(|()| ExitCode::SUCCESS)
}
