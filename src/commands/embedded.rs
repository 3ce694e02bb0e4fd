//! An embedded mini-cluster: a jobmanager and task managers in this process, talking over
//! the same gRPC control and data plane as a real cluster, on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::{fetch_status, state_word, JmClient};
use super::cluster::shutdown_signal;
use anyhow::Result;
use sluice_core::secrets::SecretSources;
use sluice_jobmanager::{BoundJobManager, JobManagerConfig};
use sluice_proto::{CancelJobRequest, JobState, JobStatus};
use sluice_taskmanager::{TaskManager, TaskManagerConfig};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running embedded cluster.
pub struct EmbeddedCluster {
    /// The jobmanager's address on loopback.
    pub address: String,
    /// The REST API's and dashboard's address, when served.
    pub rest_address: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<Result<()>>>,
}

impl EmbeddedCluster {
    /// Starts a jobmanager (with its REST API at `rest_address`, if any) and
    /// `taskmanagers` task managers of `slots` slots each.
    pub async fn start(
        taskmanagers: u32,
        slots: u32,
        secrets: SecretSources,
        checkpoint_dir: Option<sluice_storage::Location>,
        rest_address: Option<SocketAddr>,
    ) -> Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let jm_config = JobManagerConfig {
            rpc_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            checkpoint_dir,
            rest_address,
            auth_token: super::client::token(),
            ..Default::default()
        };
        let jobmanager = BoundJobManager::bind(jm_config).await?.with_sql_planner(super::client::sql_planner());
        let address = jobmanager.local_addr().to_string();
        let rest_address = jobmanager.rest_addr();
        let mut servers = vec![tokio::spawn({
            let shutdown = until_stopped(stopped.clone());
            async move { jobmanager.serve(shutdown).await.map_err(anyhow::Error::from) }
        })];
        for _ in 0..taskmanagers.max(1) {
            let mut config = TaskManagerConfig::new(address.clone(), slots.max(1));
            config.secrets = secrets.clone();
            config.auth_token = super::client::token();
            let shutdown = until_stopped(stopped.clone());
            servers.push(tokio::spawn(
                async move { TaskManager::run(config, shutdown).await.map_err(anyhow::Error::from) },
            ));
        }
        Ok(EmbeddedCluster { address, rest_address, stop, servers })
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
/// On a terminal, a progress line on stderr shows rows read and written, the read rate and
/// checkpoints.
pub async fn wait_for_job(client: &mut JmClient, job_id: &str) -> Result<()> {
    let started = Instant::now();
    let interrupted = shutdown_signal();
    tokio::pin!(interrupted);
    let mut progress = Progress::new();
    loop {
        tokio::select! {
            _ = &mut interrupted => {
                progress.clear();
                let _ = client.cancel_job(CancelJobRequest { job_id: job_id.to_string() }).await;
                anyhow::bail!("interrupted; the job was canceled");
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let status = fetch_status(client, job_id).await?;
        match JobState::try_from(status.state) {
            Ok(JobState::Finished) => {
                progress.clear();
                eprintln!("job {} FINISHED in {:.2}s", status.name, started.elapsed().as_secs_f64());
                return Ok(());
            }
            Ok(JobState::Failed | JobState::Canceled) => {
                progress.clear();
                anyhow::bail!("job {} {}: {}", status.name, state_word(status.state), status.message)
            }
            _ => progress.show(&status),
        }
    }
}

/// A job's progress on stderr, drawn only on a terminal (indicatif hides it otherwise).
pub struct Progress {
    bar: indicatif::ProgressBar,
    /// When rows read were last counted, and how many.
    last: Option<(Instant, u64)>,
}

impl Progress {
    /// A spinner on stderr.
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
            bar.set_style(style);
        }
        Progress { bar, last: None }
    }

    /// Shows the job's state, rows read and written, the read rate and checkpoints.
    pub fn show(&mut self, status: &JobStatus) {
        let rows = |pick: fn(&sluice_proto::VertexInfo) -> bool| -> u64 {
            let vertices: Vec<u32> = status.vertices.iter().filter(|v| pick(v)).map(|v| v.id).collect();
            status
                .tasks
                .iter()
                .filter(|t| vertices.contains(&t.vertex_id))
                .filter_map(|t| t.metrics.as_ref().map(|m| m.rows_in))
                .sum()
        };
        let (read, written) = (rows(|v| v.source), rows(|v| v.sink));
        let now = Instant::now();
        let rate = match self.last {
            Some((then, before)) if now.duration_since(then) >= Duration::from_millis(500) => {
                self.last = Some((now, read));
                Some(read.saturating_sub(before) as f64 / now.duration_since(then).as_secs_f64())
            }
            Some(_) => None,
            None => {
                self.last = Some((now, read));
                None
            }
        };
        let mut message = format!("{} · read {read} rows · wrote {written}", state_word(status.state));
        if let Some(rate) = rate {
            message.push_str(&format!(" · {rate:.0} rows/s"));
        }
        if let Some(c) = status.checkpoints.as_ref().filter(|c| c.completed > 0) {
            message.push_str(&format!(" · {} checkpoints, {} bytes of state", c.completed, c.latest_state_bytes));
        }
        if rate.is_some() || self.bar.message().is_empty() {
            self.bar.set_message(message);
        }
        self.bar.tick();
    }

    /// Removes the line.
    pub fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}
