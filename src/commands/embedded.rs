//! An embedded mini-cluster: a jobmanager and task managers in this process, talking over
//! the same gRPC control and data plane as a real cluster, on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use sluice_core::secrets::SecretSources;
use sluice_jobmanager::{BoundJobManager, JobManagerConfig};
use sluice_proto::job_manager_client::JobManagerClient;
use sluice_proto::{CancelJobRequest, JobState};
use sluice_taskmanager::{TaskManager, TaskManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use super::client::{fetch_status, state_word};
use super::cluster::shutdown_signal;

/// A running embedded cluster.
pub struct EmbeddedCluster {
    /// The jobmanager's address on loopback.
    pub address: String,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<Result<()>>>,
}

impl EmbeddedCluster {
    /// Starts a jobmanager and `taskmanagers` task managers of `slots` slots each.
    pub async fn start(
        taskmanagers: u32,
        slots: u32,
        secrets: SecretSources,
        checkpoint_dir: Option<std::path::PathBuf>,
    ) -> Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let jm_config = JobManagerConfig {
            rpc_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            checkpoint_dir,
            ..Default::default()
        };
        let jobmanager = BoundJobManager::bind(jm_config).await?;
        let address = jobmanager.local_addr().to_string();
        let mut servers = vec![tokio::spawn({
            let shutdown = until_stopped(stopped.clone());
            async move { jobmanager.serve(shutdown).await.map_err(anyhow::Error::from) }
        })];
        for _ in 0..taskmanagers.max(1) {
            let mut config = TaskManagerConfig::new(address.clone(), slots.max(1));
            config.secrets = secrets.clone();
            let shutdown = until_stopped(stopped.clone());
            servers.push(tokio::spawn(
                async move { TaskManager::run(config, shutdown).await.map_err(anyhow::Error::from) },
            ));
        }
        Ok(EmbeddedCluster { address, stop, servers })
    }

    /// Stops every process of the cluster.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for server in self.servers {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }
}

/// Waits until a job ends; Ctrl-C cancels it. Ok when it finished, an error otherwise.
pub async fn wait_for_job(client: &mut JobManagerClient<Channel>, job_id: &str) -> Result<()> {
    let started = Instant::now();
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                let _ = client.cancel_job(CancelJobRequest { job_id: job_id.to_string() }).await;
                anyhow::bail!("interrupted; the job was canceled");
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let status = fetch_status(client, job_id).await?;
        match JobState::try_from(status.state) {
            Ok(JobState::Finished) => {
                eprintln!("job {} FINISHED in {:.2}s", status.name, started.elapsed().as_secs_f64());
                return Ok(());
            }
            Ok(JobState::Failed | JobState::Canceled) => {
                anyhow::bail!("job {} {}: {}", status.name, state_word(status.state), status.message)
            }
            _ => {}
        }
    }
}
