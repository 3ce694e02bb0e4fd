//! The task manager process: its gRPC server (task deployment and data exchange), its
//! registration and heartbeats with the jobmanager, and the supervision of its tasks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

use sluice_proto::auth::{AttachToken, AuthChannel, RequireToken};
use sluice_proto::data_exchange_server::DataExchangeServer;
use sluice_proto::resource_manager_client::ResourceManagerClient;
use sluice_proto::task_executor_server::{TaskExecutor, TaskExecutorServer};
use sluice_proto::{
    Ack, CancelTasksRequest, CheckpointAck, CheckpointDecline, DeployTasksRequest, HeartbeatRequest,
    NotifyCheckpointRequest, RegisterTaskManagerRequest, TaskId, TaskMetricsReport, TaskState, TaskStateReport,
    TriggerCheckpointRequest,
};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

use crate::deploy::prepare;
use crate::exchange::{read_remote, DataExchangeService, ExchangeRegistry};
use crate::factory::BuildContext;
use crate::metrics::TaskMetrics;
use crate::output::ExchangeLimits;
use crate::task::{TaskCommand, TaskEvent};
use sluice_core::secrets::SecretSources;

/// How a task manager is configured.
#[derive(Debug, Clone)]
pub struct TaskManagerConfig {
    /// The jobmanager's RPC address, host:port.
    pub jobmanager: String,
    /// Number of task slots offered.
    pub slots: u32,
    /// Address to listen on (port 0 picks a free one).
    pub bind: SocketAddr,
    /// Host name other processes reach this one by; defaults to the bind address's IP.
    pub advertise_host: Option<String>,
    /// Data exchange limits.
    pub limits: ExchangeLimits,
    /// With no answer from the jobmanager for this long, running tasks are canceled.
    pub jobmanager_timeout: Duration,
    /// Where model secrets are resolved: the environment, then an optional secrets file.
    pub secrets: SecretSources,
    /// Local directory for the RocksDB instances of keyed state.
    pub local_dir: std::path::PathBuf,
    /// The cluster's token: sent on every call, required on every call served.
    pub auth_token: Option<sluice_proto::auth::Token>,
}

impl TaskManagerConfig {
    /// Defaults for a task manager of `slots` slots reporting to `jobmanager`.
    pub fn new(jobmanager: String, slots: u32) -> Self {
        TaskManagerConfig {
            jobmanager,
            slots,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_host: None,
            limits: ExchangeLimits::default(),
            jobmanager_timeout: Duration::from_secs(10),
            secrets: SecretSources::environment(),
            // Unique per task manager: an embedded cluster runs several in one process.
            local_dir: std::env::temp_dir().join(format!(
                "sluice-taskmanager-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )),
            auth_token: None,
        }
    }
}

/// Errors that stop a task manager.
#[derive(Debug, thiserror::Error)]
pub enum TaskManagerError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The jobmanager address is malformed.
    #[error("invalid jobmanager address '{0}': expected HOST:PORT")]
    JobManagerAddress(String),
    /// The gRPC server failed.
    #[error("RPC server failed: {0}")]
    Server(#[from] tonic::transport::Error),
    /// The heartbeat thread could not be started.
    #[error("cannot start the heartbeat thread: {0}")]
    Thread(std::io::Error),
    /// The auth token cannot be sent in a header.
    #[error("{0}")]
    Token(String),
}

struct RunningTask {
    id: TaskId,
    abort: AbortHandle,
    metrics: Arc<TaskMetrics>,
    commands: mpsc::UnboundedSender<TaskCommand>,
}

/// What the task manager tells the jobmanager, in order.
enum Report {
    State(TaskStateReport),
    Ack(CheckpointAck),
    Decline(CheckpointDecline),
}

impl Report {
    /// A task's final state (or its end of input), without which the jobmanager would
    /// wait for the task forever.
    fn is_final(&self) -> bool {
        let Report::State(r) = self else { return false };
        matches!(
            TaskState::try_from(r.state),
            Ok(TaskState::Finished | TaskState::Failed | TaskState::Canceled | TaskState::Ended)
        )
    }
}

/// A report and the registration it was made under.
struct QueuedReport {
    /// [`Inner::registration`] when the report was queued.
    registration: u64,
    report: Report,
}

/// How long a task may take to commit a stop-with-savepoint and stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// Acknowledgements and declines that cannot be delivered are given up after this many
/// tries: the checkpoint times out without them.
const CHECKPOINT_REPORT_TRIES: u32 = 20;

/// Whether to try a report again after `tries` failed ones. A final state is retried as
/// long as the registration it was made under stands: once the task manager registers
/// anew, the jobmanager has already failed or restarted those tasks.
fn retry_report(report: &Report, tries: u32, same_registration: bool) -> bool {
    same_registration && (report.is_final() || tries < CHECKPOINT_REPORT_TRIES)
}

/// Shared state of a running task manager.
struct Inner {
    config: TaskManagerConfig,
    address: String,
    id: Mutex<Option<String>>,
    tasks: Mutex<HashMap<String, Vec<RunningTask>>>,
    registry: Arc<ExchangeRegistry>,
    reports: mpsc::UnboundedSender<QueuedReport>,
    /// Adds the cluster's token to this task manager's calls.
    token: AttachToken,
    /// Bumped whenever this task manager gives up its registration (the jobmanager forgot
    /// it or could not be reached), so reports about tasks of the old one are dropped.
    registration: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn id(&self) -> Option<String> {
        self.id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn registration(&self) -> u64 {
        self.registration.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues a report for the jobmanager.
    fn send_report(&self, report: Report) {
        let _ = self.reports.send(QueuedReport { registration: self.registration(), report });
    }

    /// Gives up the registration: every task is canceled, and the task manager registers
    /// again.
    fn unregister(&self) {
        self.registration.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.cancel_all();
        *self.id.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Cancels the job's tasks of attempts up to `through`.
    fn cancel_job(&self, job_id: &str, through: u32) {
        let tasks: Vec<RunningTask> = {
            let mut all = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
            let list = all.remove(job_id).unwrap_or_default();
            let (canceled, kept): (Vec<_>, Vec<_>) = list.into_iter().partition(|t| t.id.attempt <= through);
            if !kept.is_empty() {
                all.insert(job_id.to_string(), kept);
            }
            canceled
        };
        for task in &tasks {
            task.abort.abort();
        }
        self.registry.remove_job(job_id, through);
        self.remove_local_state(job_id, through);
        if !tasks.is_empty() {
            tracing::info!(job = job_id, tasks = tasks.len(), "canceled tasks");
        }
    }

    /// Deletes the job's local RocksDB directories of attempts up to `through`.
    fn remove_local_state(&self, job_id: &str, through: u32) {
        let Ok(entries) = std::fs::read_dir(&self.config.local_dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let attempt = name.strip_prefix(&format!("{job_id}-")).and_then(|a| a.parse::<u32>().ok());
            if attempt.is_some_and(|a| a <= through) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Sends a command made by `command` to every task of attempt `attempt` of the job.
    fn command(&self, job_id: &str, attempt: u32, mut command: impl FnMut() -> TaskCommand) {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for task in tasks.get(job_id).into_iter().flatten().filter(|t| t.id.attempt == attempt) {
            let _ = task.commands.send(command());
        }
    }

    fn cancel_all(&self) {
        let jobs: Vec<String> = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for job in jobs {
            self.cancel_job(&job, u32::MAX);
        }
    }

    fn task_finished(&self, id: &TaskId) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = tasks.get_mut(&id.job_id) {
            list.retain(|t| t.id != *id);
            if list.is_empty() {
                tasks.remove(&id.job_id);
                drop(tasks);
                self.remove_local_state(&id.job_id, id.attempt);
            }
        }
    }

    fn metrics_reports(&self) -> Vec<TaskMetricsReport> {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks
            .values()
            .flatten()
            .map(|t| TaskMetricsReport { task: Some(t.id.clone()), metrics: Some(t.metrics.snapshot()) })
            .collect()
    }
}

/// A running task manager.
pub struct TaskManager {
    inner: Arc<Inner>,
}

impl TaskManager {
    /// Binds the server, starts registration and heartbeats, and serves until `shutdown`.
    pub async fn run(
        config: TaskManagerConfig,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), TaskManagerError> {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| TaskManagerError::Bind { address: config.bind, source })?;
        let local = listener.local_addr().map_err(|source| TaskManagerError::Bind { address: config.bind, source })?;
        let host = config.advertise_host.clone().unwrap_or_else(|| default_advertise_host(local.ip()));
        let address = format!("{host}:{}", local.port());
        let jm_endpoint = Endpoint::from_shared(format!("http://{}", config.jobmanager))
            .map_err(|_| TaskManagerError::JobManagerAddress(config.jobmanager.clone()))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10));
        let jm_channel = jm_endpoint.connect_lazy();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let token = AttachToken::new(config.auth_token.as_ref()).map_err(TaskManagerError::Token)?;
        let require = RequireToken::new(config.auth_token.as_ref());
        let inner = Arc::new(Inner {
            token,
            config,
            address: address.clone(),
            id: Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
            registry: Arc::new(ExchangeRegistry::default()),
            reports: reports_tx,
            registration: std::sync::atomic::AtomicU64::new(0),
        });
        tracing::info!(%address, slots = inner.config.slots, jobmanager = %inner.config.jobmanager, "task manager starting");
        let heartbeat = HeartbeatThread::start(inner.clone(), &jm_endpoint)?;
        let reporter =
            tokio::spawn(report_loop(inner.clone(), resource_manager_client(inner.token.wrap(jm_channel)), reports_rx));
        let tm = TaskManager { inner: inner.clone() };
        let result = Server::builder()
            .initial_stream_window_size(crate::STREAM_WINDOW)
            .initial_connection_window_size(crate::CONNECTION_WINDOW)
            .tcp_nodelay(true)
            .add_service(InterceptedService::new(
                TaskExecutorServer::new(tm)
                    .max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(sluice_proto::MAX_MESSAGE_BYTES),
                require.clone(),
            ))
            .add_service(InterceptedService::new(
                DataExchangeServer::new(DataExchangeService::new(inner.registry.clone()))
                    .max_encoding_message_size(crate::MAX_FRAME_BYTES),
                require,
            ))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
            .await;
        heartbeat.stop();
        reporter.abort();
        inner.cancel_all();
        // Only when empty: a user-given directory may hold other things.
        let _ = std::fs::remove_dir(&inner.config.local_dir);
        result.map_err(TaskManagerError::from)
    }
}

/// The host name other processes reach a task manager bound to `ip` by, when none is
/// given: the IP itself, or for a wildcard bind (`0.0.0.0`, as in a container) the
/// machine's host name, which a container network resolves.
fn default_advertise_host(ip: std::net::IpAddr) -> String {
    if !ip.is_unspecified() {
        return ip.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into())
}

/// The heartbeat loop on its own thread and runtime, so that busy tasks can never delay
/// heartbeats into a false "task manager lost" (Flink also keeps them off task threads).
struct HeartbeatThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeartbeatThread {
    fn start(inner: Arc<Inner>, endpoint: &Endpoint) -> Result<Self, TaskManagerError> {
        let endpoint = endpoint.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the heartbeat runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let client = resource_manager_client(inner.token.wrap(endpoint.connect_lazy()));
                    tokio::select! {
                        () = heartbeat_loop(inner, client) => {}
                        _ = stopped => {}
                    }
                });
            })
            .map_err(TaskManagerError::Thread)?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }

    fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A client of the jobmanager's resource manager service, with Sluice's message limit.
fn resource_manager_client(channel: AuthChannel) -> ResourceManagerClient<AuthChannel> {
    ResourceManagerClient::new(channel)
        .max_encoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
        .max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
}

/// Registers with the jobmanager, then heartbeats; re-registers when the jobmanager
/// forgets this task manager, and cancels tasks when it cannot be reached for too long.
async fn heartbeat_loop(inner: Arc<Inner>, mut client: ResourceManagerClient<AuthChannel>) {
    let mut interval = Duration::from_millis(1000);
    let mut last_contact = tokio::time::Instant::now();
    loop {
        if inner.id().is_none() {
            let request = RegisterTaskManagerRequest {
                slots: inner.config.slots,
                address: inner.address.clone(),
                hostname: inner.address.split(':').next().unwrap_or_default().to_string(),
            };
            match client.register_task_manager(request).await {
                Ok(response) => {
                    let response = response.into_inner();
                    tracing::info!(id = %response.task_manager_id, "registered with the jobmanager");
                    interval = Duration::from_millis(response.heartbeat_interval_ms.max(50));
                    *inner.id.lock().unwrap_or_else(|p| p.into_inner()) = Some(response.task_manager_id);
                    last_contact = tokio::time::Instant::now();
                }
                Err(status) => {
                    tracing::warn!(jobmanager = %inner.config.jobmanager, error = %status.message(), "cannot register; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        tokio::time::sleep(interval).await;
        let Some(id) = inner.id() else { continue };
        let request =
            HeartbeatRequest { task_manager_id: id, tasks: inner.metrics_reports(), address: inner.address.clone() };
        match client.heartbeat(request).await {
            Ok(response) if response.get_ref().known => last_contact = tokio::time::Instant::now(),
            Ok(_) => {
                tracing::warn!("the jobmanager does not know this task manager; canceling tasks and registering again");
                inner.unregister();
            }
            Err(status) => {
                tracing::warn!(error = %status.message(), "heartbeat to the jobmanager failed");
                if last_contact.elapsed() > inner.config.jobmanager_timeout {
                    tracing::error!(
                        "jobmanager unreachable for {:?}; canceling tasks",
                        inner.config.jobmanager_timeout
                    );
                    inner.unregister();
                }
            }
        }
    }
}

/// Delivers task state changes and checkpoint acknowledgements to the jobmanager in order,
/// retrying while it is unreachable (see [`retry_report`]).
async fn report_loop(
    inner: Arc<Inner>,
    mut client: ResourceManagerClient<AuthChannel>,
    mut reports: mpsc::UnboundedReceiver<QueuedReport>,
) {
    while let Some(QueuedReport { registration, report }) = reports.recv().await {
        let mut tries = 0u32;
        loop {
            let result = match &report {
                Report::State(r) => client.report_task_state(r.clone()).await.map(|_| ()),
                Report::Ack(a) => client.acknowledge_checkpoint(a.clone()).await.map(|_| ()),
                Report::Decline(d) => client.decline_checkpoint(d.clone()).await.map(|_| ()),
            };
            let Err(status) = result else { break };
            tries += 1;
            if !retry_report(&report, tries, inner.registration() == registration) {
                tracing::warn!(tries, error = %status.message(), "giving up a report to the jobmanager");
                break;
            }
            tracing::warn!(tries, error = %status.message(), "cannot report to the jobmanager; retrying");
            tokio::time::sleep(Duration::from_millis(250 * u64::from(tries.min(8)))).await;
        }
    }
}

fn report(inner: &Inner, id: &TaskId, state: TaskState, error: String, metrics: &TaskMetrics) {
    inner.send_report(Report::State(TaskStateReport {
        task: Some(id.clone()),
        state: state as i32,
        error,
        metrics: Some(metrics.snapshot()),
    }));
}

/// Forwards a task's checkpoint events to the jobmanager.
async fn forward_events(
    inner: Arc<Inner>,
    id: TaskId,
    metrics: Arc<TaskMetrics>,
    mut events: mpsc::UnboundedReceiver<TaskEvent>,
) {
    while let Some(event) = events.recv().await {
        match event {
            TaskEvent::Ended => report(&inner, &id, TaskState::Ended, String::new(), &metrics),
            TaskEvent::Decline { checkpoint_id, reason } => {
                let decline = CheckpointDecline { task: Some(id.clone()), checkpoint_id, reason };
                inner.send_report(Report::Decline(decline));
            }
            TaskEvent::Ack { checkpoint_id, snapshot, stats } => {
                let ack = CheckpointAck {
                    task: Some(id.clone()),
                    checkpoint_id,
                    snapshot: Some(snapshot),
                    stats: Some(stats),
                };
                let size = prost::Message::encoded_len(&ack);
                if size > sluice_proto::MAX_MESSAGE_BYTES {
                    let reason = format!(
                        "subtask {} of vertex {}: its operator state of {} MiB exceeds the {} MiB a checkpoint \
                         acknowledgement may carry; lower the state held outside keyed state (for example \
                         'max_concurrent_requests' of ML_PREDICT, or a shorter checkpoint interval for the print sink)",
                        id.subtask + 1,
                        id.vertex_id,
                        size >> 20,
                        sluice_proto::MAX_MESSAGE_BYTES >> 20
                    );
                    inner.send_report(Report::Decline(CheckpointDecline {
                        task: Some(id.clone()),
                        checkpoint_id,
                        reason,
                    }));
                } else {
                    inner.send_report(Report::Ack(ack));
                }
            }
        }
    }
}

#[tonic::async_trait]
impl TaskExecutor for TaskManager {
    async fn deploy_tasks(&self, request: Request<DeployTasksRequest>) -> Result<Response<Ack>, Status> {
        let request = request.into_inner();
        let inner = &self.inner;
        let batch_rows = crate::faults::source_pace().map_or(inner.config.limits.batch_rows, |(rows, _)| rows.max(1));
        let build = BuildContext { batch_rows, secrets: inner.config.secrets.clone() };
        let prepared = match prepare(
            &request,
            &request.task_manager_id,
            inner.config.limits,
            &build,
            &inner.registry,
            &inner.config.local_dir,
        ) {
            Ok(p) => p,
            Err(e) => {
                inner.registry.remove_job(&request.job_id, request.attempt);
                return Err(Status::invalid_argument(e.to_string()));
            }
        };
        // Tasks start once all of them are listed: a task that ended before a sibling was
        // listed would find the job's list empty and remove the job's local state while
        // the sibling opens its store there.
        let (start, started) = tokio::sync::watch::channel(false);
        for prepared_task in prepared.tasks {
            let (id, task, metrics) = (prepared_task.id, prepared_task.task, prepared_task.metrics);
            let name = task.ctx.task_name.clone();
            // Every log line of the task says whose it is.
            let span = tracing::info_span!(
                "task",
                job = %task.ctx.job_id,
                vertex = task.ctx.vertex_id,
                subtask = task.ctx.subtask,
                attempt = task.ctx.attempt
            );
            let mut started = started.clone();
            let handle = tokio::spawn(
                async move {
                    // The sender lives until every task is listed; then it says go, or is dropped.
                    let _ = started.wait_for(|go| *go).await;
                    task.run().await
                }
                .instrument(span.clone()),
            );
            tokio::spawn(forward_events(inner.clone(), id.clone(), metrics.clone(), prepared_task.events));
            // Listed before its supervisor starts, so the supervisor's removal comes after.
            let running = RunningTask {
                id: id.clone(),
                abort: handle.abort_handle(),
                metrics: metrics.clone(),
                commands: prepared_task.commands,
            };
            inner
                .tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(request.job_id.clone())
                .or_default()
                .push(running);
            report(inner, &id, TaskState::Running, String::new(), &metrics);
            let inner = inner.clone();
            tokio::spawn(async move {
                let (state, error) = match handle.await {
                    Ok(Ok(())) => (TaskState::Finished, String::new()),
                    Ok(Err(e)) => (TaskState::Failed, e.to_string()),
                    Err(join) if join.is_cancelled() => (TaskState::Canceled, String::new()),
                    Err(join) => (TaskState::Failed, format!("task panicked: {}", panic_message(join))),
                };
                let entered = span.enter();
                match state {
                    TaskState::Failed => tracing::error!(task = %name, %error, "task failed"),
                    _ => tracing::info!(task = %name, ?state, "task ended"),
                }
                drop(entered);
                inner.task_finished(&id);
                report(&inner, &id, state, error, &metrics);
            });
        }
        let _ = start.send(true);
        for remote in prepared.remote_inputs {
            tokio::spawn(read_remote(remote, inner.token.clone()));
        }
        Ok(Response::new(Ack {}))
    }

    async fn cancel_tasks(&self, request: Request<CancelTasksRequest>) -> Result<Response<Ack>, Status> {
        let request = request.into_inner();
        self.inner.cancel_job(&request.job_id, request.attempt);
        Ok(Response::new(Ack {}))
    }

    async fn trigger_checkpoint(&self, request: Request<TriggerCheckpointRequest>) -> Result<Response<Ack>, Status> {
        let r = request.into_inner();
        let (checkpoint_id, timestamp_ms, last_completed, stop, all_ended) =
            (r.checkpoint_id, r.timestamp_ms, r.last_completed, r.stop, r.all_ended);
        self.inner.command(&r.job_id, r.attempt, || TaskCommand::Trigger {
            checkpoint_id,
            timestamp_ms,
            last_completed,
            stop,
            all_ended,
        });
        Ok(Response::new(Ack {}))
    }

    async fn notify_checkpoint_complete(
        &self,
        request: Request<NotifyCheckpointRequest>,
    ) -> Result<Response<Ack>, Status> {
        let r = request.into_inner();
        self.inner.command(&r.job_id, r.attempt, || TaskCommand::Complete(r.checkpoint_id));
        if r.stop {
            // Stop-with-savepoint: once every task has committed, end them.
            let mut parked = Vec::new();
            self.inner.command(&r.job_id, r.attempt, || {
                let (done, wait) = tokio::sync::oneshot::channel();
                parked.push(wait);
                TaskCommand::Park(done)
            });
            let tasks = parked.len();
            let mut unstopped = 0;
            for wait in parked {
                // A task that failed (its commit, or aborting what followed the savepoint)
                // drops its answer; one that hangs does not answer in time.
                if !matches!(tokio::time::timeout(STOP_TIMEOUT, wait).await, Ok(Ok(()))) {
                    unstopped += 1;
                }
            }
            self.inner.cancel_job(&r.job_id, r.attempt);
            if unstopped > 0 {
                return Err(Status::aborted(format!(
                    "{unstopped} of {tasks} task(s) on {} could not commit the savepoint and stop (failed, or no \
                     answer within {}s); their errors are in the job's status and this task manager's log",
                    self.inner.id().unwrap_or_else(|| self.inner.address.clone()),
                    STOP_TIMEOUT.as_secs()
                )));
            }
        }
        Ok(Response::new(Ack {}))
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into()),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(state: TaskState) -> Report {
        Report::State(TaskStateReport { task: None, state: state as i32, error: String::new(), metrics: None })
    }

    /// A final state given up after a few failed tries leaves the job RUNNING forever.
    #[test]
    fn final_states_are_retried_while_the_registration_stands() {
        for final_state in [TaskState::Finished, TaskState::Failed, TaskState::Canceled, TaskState::Ended] {
            assert!(retry_report(&state(final_state), 10_000, true), "{final_state:?} must not be given up");
            assert!(
                !retry_report(&state(final_state), 1, false),
                "{final_state:?} of a forgotten registration is dropped"
            );
        }
        assert!(retry_report(&state(TaskState::Running), 3, true));
        assert!(!retry_report(&state(TaskState::Running), CHECKPOINT_REPORT_TRIES, true));
        let ack = Report::Ack(CheckpointAck::default());
        assert!(retry_report(&ack, CHECKPOINT_REPORT_TRIES - 1, true));
        assert!(!retry_report(&ack, CHECKPOINT_REPORT_TRIES, true), "a checkpoint times out without it");
    }
}
