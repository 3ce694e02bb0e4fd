//! `sluice run`: an embedded mini-cluster — a jobmanager and task managers in this process,
//! talking over the same gRPC control and data plane as a real cluster, on loopback.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use sluice_jobmanager::{BoundJobManager, JobManagerConfig};
use sluice_proto::{CancelJobRequest, JobState, SubmitJobRequest};
use sluice_taskmanager::{TaskManager, TaskManagerConfig};
use tokio::sync::watch;

use super::client::{connect, fetch_status, plan_file, state_word};
use super::cluster::shutdown_signal;
use crate::RunArgs;

/// `sluice run`.
pub async fn run(args: RunArgs) -> Result<ExitCode> {
    let plan = plan_file(&args.file, args.parallelism)?;
    let required = plan.graph.vertices.iter().map(|v| v.parallelism).max().unwrap_or(1);
    let taskmanagers = args.taskmanagers.max(1);
    let slots = required.div_ceil(taskmanagers).max(1);

    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let jm_config = JobManagerConfig { rpc_address: SocketAddr::from(([127, 0, 0, 1], 0)), ..Default::default() };
    let jobmanager = BoundJobManager::bind(jm_config).await?;
    let address = jobmanager.local_addr().to_string();
    let mut servers = vec![tokio::spawn({
        let shutdown = until_stopped(stopped.clone());
        async move { jobmanager.serve(shutdown).await.map_err(anyhow::Error::from) }
    })];
    for _ in 0..taskmanagers {
        let config = TaskManagerConfig::new(address.clone(), slots);
        let shutdown = until_stopped(stopped.clone());
        servers.push(tokio::spawn(async move { TaskManager::run(config, shutdown).await.map_err(anyhow::Error::from) }));
    }

    let started = Instant::now();
    let mut client = connect(&address).await?;
    let job_id = client.submit_job(SubmitJobRequest { graph: Some(plan.graph) }).await?.into_inner().job_id;
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    let outcome = loop {
        tokio::select! {
            _ = &mut interrupted => {
                let _ = client.cancel_job(CancelJobRequest { job_id: job_id.clone() }).await;
                break Err(anyhow::anyhow!("interrupted; the job was canceled"));
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let status = fetch_status(&mut client, &job_id).await?;
        match JobState::try_from(status.state) {
            Ok(JobState::Finished) => {
                eprintln!("job {} FINISHED in {:.2}s", status.name, started.elapsed().as_secs_f64());
                break Ok(ExitCode::SUCCESS);
            }
            Ok(JobState::Failed | JobState::Canceled) => {
                break Err(anyhow::anyhow!("job {} {}: {}", status.name, state_word(status.state), status.message));
            }
            _ => {}
        }
    };
    let _ = stop.send(true);
    for server in servers {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    outcome
}
