//! The jobmanager's RPC server (the CLI's `JobManager` service and the task managers'
//! `ResourceManager` service) and its background loop for scheduling and heartbeat checks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sluice_proto::auth::{AttachToken, AuthChannel, RequireToken};
use sluice_proto::job_manager_server::{JobManager, JobManagerServer};
use sluice_proto::resource_manager_server::{ResourceManager, ResourceManagerServer};
use sluice_proto::task_executor_client::TaskExecutorClient;
use sluice_proto::{
    Ack, CancelJobRequest, CancelJobResponse, CancelTasksRequest, CheckpointAck, CheckpointDecline,
    GetJobStatusRequest, HeartbeatRequest, HeartbeatResponse, JobStatus, ListJobsRequest, ListJobsResponse,
    RegisterTaskManagerRequest, RegisterTaskManagerResponse, SubmitJobRequest, SubmitJobResponse, TaskStateReport,
    TriggerSavepointRequest, TriggerSavepointResponse,
};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};

use crate::checkpoint::WriteOutcome;
use crate::config::JobManagerConfig;
use crate::recovery::{stored_checkpoints, JobStore, StoredCheckpoints};
use crate::state::{Action, ClusterState};

/// Errors that stop the jobmanager.
#[derive(Debug, thiserror::Error)]
pub enum JobManagerError {
    /// The RPC address could not be bound.
    #[error("cannot listen on {address}: {source} (is another jobmanager running there?)")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The RPC server failed.
    #[error("RPC server failed: {0}")]
    Server(#[from] tonic::transport::Error),
    /// The auth token cannot be sent in a header.
    #[error("{0}")]
    Token(String),
    /// The jobs of an earlier jobmanager cannot be read.
    #[error("cannot recover the jobs of an earlier jobmanager: {0}")]
    Recovery(String),
}

/// How long a starting jobmanager retries reading its job store (the storage may be
/// starting too, as in a compose cluster) before it gives up.
const RECOVERY_PATIENCE: Duration = Duration::from_secs(120);

/// A job to recover: its record, its checkpoints and the savepoint it started from.
type Recovered = (sluice_proto::JobRecord, StoredCheckpoints, Option<crate::state::Savepoint>);

/// Runs `work` (storage I/O) on the blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| format!("storage work stopped: {e}"))?
}

/// [`recover_jobs`], retried every 2 s while the storage cannot be read, for up to
/// [`RECOVERY_PATIENCE`]: a jobmanager must not start without the jobs it has to recover.
async fn recover_jobs_patiently(
    store: &JobStore,
    checkpoint_root: &sluice_storage::Location,
) -> Result<Vec<Recovered>, JobManagerError> {
    let deadline = tokio::time::Instant::now() + RECOVERY_PATIENCE;
    loop {
        let (store, root) = (store.clone(), checkpoint_root.clone());
        let result = tokio::task::spawn_blocking(move || recover_jobs(&store, &root))
            .await
            .map_err(|e| JobManagerError::Recovery(e.to_string()))?;
        match result {
            Ok(recovered) => return Ok(recovered),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "cannot read the job store yet; retrying in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the job store and what each job's checkpoint storage holds; every record is
/// saved back with one more recovery, so the attempts of this jobmanager are numbered
/// above those of the one before.
fn recover_jobs(
    store: &JobStore,
    checkpoint_root: &sluice_storage::Location,
) -> Result<Vec<Recovered>, JobManagerError> {
    let failed = |e: sluice_storage::StorageError| JobManagerError::Recovery(e.to_string());
    let mut recovered = Vec::new();
    for mut record in store.load().map_err(failed)? {
        let config = record.graph.as_ref().map(|g| g.config.clone()).unwrap_or_default();
        let stored = match crate::checkpoint::CheckpointOptions::from_config(&config, checkpoint_root) {
            Ok(options) => stored_checkpoints(&options.directory.join(&record.job_id)).map_err(failed)?,
            Err(_) => StoredCheckpoints::default(),
        };
        record.recoveries += 1;
        store.save(&record).map_err(failed)?;
        tracing::info!(
            job = %record.job_id,
            checkpoints = stored.completed.len(),
            latest = stored.completed.last().map_or(0, |c| c.id),
            "found a job of an earlier jobmanager"
        );
        let savepoint = match record.from_savepoint.as_str() {
            "" => None,
            path => match sluice_storage::Location::parse(path)
                .map_err(|e| e.to_string())
                .and_then(|path| crate::state::read_savepoint(&path))
            {
                Ok(savepoint) => Some(savepoint),
                // Not started from scratch instead: its record stays for a later attempt.
                Err(e) => {
                    tracing::error!(job = %record.job_id, error = %e, "the savepoint of a job to recover cannot be read; the job is not recovered");
                    continue;
                }
            },
        };
        recovered.push((record, stored, savepoint));
    }
    Ok(recovered)
}

/// What the RPC services, the REST API and the background loop share.
pub(crate) struct Shared {
    pub(crate) config: JobManagerConfig,
    state: Mutex<ClusterState>,
    clients: Mutex<HashMap<String, TaskExecutorClient<AuthChannel>>>,
    /// Adds the cluster's token to calls to task managers.
    token: AttachToken,
    /// Savepoints the REST API triggered, by job and trigger id.
    pub(crate) savepoints: Mutex<HashMap<(String, String), SavepointOperation>>,
    /// Plans SQL for `POST /jobs`, when the jobmanager was given a planner.
    pub(crate) planner: Option<SqlPlanner>,
    /// Where jobs are kept for a restarted jobmanager, when they are.
    jobs: Option<JobStore>,
}

/// Plans a SQL script (with an optional default parallelism) into the job graph to run;
/// the error is the message to show, with line and column.
pub type SqlPlanner = Arc<dyn Fn(&str, Option<u32>) -> Result<sluice_proto::JobGraph, String> + Send + Sync>;

/// Where a savepoint the REST API triggered is.
#[derive(Debug, Clone)]
pub(crate) enum SavepointOperation {
    /// Being taken.
    InProgress,
    /// Taken, at this path.
    Completed(String),
    /// It failed, for this reason.
    Failed(String),
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, ClusterState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` on the state, then schedules and performs the resulting RPCs.
    pub(crate) fn update<R>(self: &Arc<Self>, change: impl FnOnce(&mut ClusterState, &mut Vec<Action>) -> R) -> R {
        let mut actions = Vec::new();
        let result = {
            let mut state = self.state();
            let r = change(&mut state, &mut actions);
            state.schedule(self.config.slot_request_timeout, &mut actions);
            r
        };
        self.perform(actions);
        result
    }

    /// Submits `graph` (from `savepoint`, if any); returns the job id, or why it was
    /// refused. Its storage work is done outside the lock before the job is added: the
    /// savepoint is read, the job's checkpoint directory claimed, and its record kept for a
    /// restarted jobmanager, so a slow or unreachable storage never stalls the lock that
    /// heartbeats need.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        graph: sluice_proto::JobGraph,
        savepoint: Option<sluice_storage::Location>,
    ) -> Result<String, String> {
        let savepoint = match savepoint {
            Some(path) => Some(blocking(move || crate::state::read_savepoint(&path)).await?),
            None => None,
        };
        let mut job = self.state().prepare(graph, savepoint)?;
        let record = self.jobs.as_ref().map(|_| job.record(0));
        let (store, claim) = (self.jobs.clone(), job.claim_target());
        blocking(move || {
            if let Some((job_dir, me)) = claim {
                crate::checkpoint::storage::claim(&job_dir, &me)
                    .map_err(|e| format!("cannot claim the job's checkpoint storage: {e}"))?;
            }
            if let (Some(store), Some(record)) = (store, record) {
                store.save(&record).map_err(|e| {
                    format!(
                        "the job could not be recorded in '{}' for recovery, so it was not started: {e}",
                        store.location()
                    )
                })?;
            }
            Ok(())
        })
        .await?;
        job.claimed();
        Ok(self.update(|s, _| s.add(job)))
    }

    /// Takes a savepoint of job `job_id` into `directory` (the job's default when empty),
    /// stopping the job after it with `stop`; returns its path.
    pub(crate) async fn savepoint(
        self: &Arc<Self>,
        job_id: &str,
        directory: &str,
        stop: bool,
    ) -> Result<String, SavepointError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let directory = (!directory.is_empty())
            .then(|| crate::checkpoint::options::storage_path(directory))
            .transpose()
            .map_err(|e| SavepointError::Directory(format!("savepoint directory '{directory}': {e}")))?;
        self.update(|s, _| s.request_savepoint(job_id, directory, stop, reply));
        match answer.await {
            Ok(Ok(path)) => Ok(path),
            Ok(Err(message)) => Err(SavepointError::Refused(message)),
            Err(_) => Err(SavepointError::Abandoned),
        }
    }

    fn client(&self, task_manager: &str) -> Option<TaskExecutorClient<AuthChannel>> {
        if let Some(c) = self.clients.lock().unwrap_or_else(|p| p.into_inner()).get(task_manager) {
            return Some(c.clone());
        }
        let address = self.state().address_of(task_manager)?;
        let channel = Endpoint::from_shared(format!("http://{address}"))
            .ok()?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .connect_lazy();
        let client = TaskExecutorClient::new(self.token.wrap(channel))
            .max_encoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
            .max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES);
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).insert(task_manager.to_string(), client.clone());
        Some(client)
    }

    fn perform(self: &Arc<Self>, actions: Vec<Action>) {
        // Stop-with-savepoint: the job ends once every task manager has committed.
        let mut stops: HashMap<String, Vec<(String, sluice_proto::NotifyCheckpointRequest)>> = HashMap::new();
        for action in actions {
            let shared = self.clone();
            match action {
                Action::Notify { task_manager, request } if request.stop => {
                    stops.entry(request.job_id.clone()).or_default().push((task_manager, request));
                }
                action => {
                    tokio::spawn(async move { shared.perform_one(action).await });
                }
            }
        }
        for (job_id, notifies) in stops {
            let shared = self.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for (task_manager, request) in notifies {
                    let result = match shared.client(&task_manager) {
                        Some(mut client) => client.notify_checkpoint_complete(request).await.map(|_| ()),
                        None => Err(Status::unavailable("the task manager is gone")),
                    };
                    if let Err(status) = result {
                        failures.push(format!("{task_manager}: {}", status.message()));
                    }
                }
                if failures.is_empty() {
                    shared.update(|s, a| s.stopped(&job_id, a));
                } else {
                    shared.update(|s, a| s.stop_failed(&job_id, &failures.join("; "), a));
                }
            });
        }
    }

    async fn perform_one(self: &Arc<Self>, action: Action) {
        match action {
            Action::Deploy { task_manager, request } => {
                let job_id = request.job_id.clone();
                let result = match self.client(&task_manager) {
                    Some(mut client) => client.deploy_tasks(*request).await.map(|_| ()),
                    None => Err(Status::unavailable("the task manager is gone")),
                };
                match result {
                    Ok(()) => {}
                    // Unreachable: the task manager is lost, whatever its heartbeats say.
                    Err(status) if status.code() == tonic::Code::Unavailable => {
                        let reason = format!("task manager {task_manager} is unreachable: {}", status.message());
                        tracing::warn!("{reason}");
                        self.update(|s, a| s.lose_task_manager(&task_manager, &reason, a));
                    }
                    // The task manager found the job invalid: a restart would fail alike.
                    Err(status) if status.code() == tonic::Code::InvalidArgument => {
                        self.update(|s, a| s.deploy_refused(&job_id, &task_manager, status.message(), a))
                    }
                    Err(status) => self.update(|s, a| s.deploy_failed(&job_id, &task_manager, status.message(), a)),
                }
            }
            Action::Cancel { task_manager, job_id, attempt } => {
                if let Some(mut client) = self.client(&task_manager) {
                    if let Err(status) =
                        client.cancel_tasks(CancelTasksRequest { job_id: job_id.clone(), attempt }).await
                    {
                        tracing::warn!(%task_manager, job = %job_id, error = %status.message(), "cannot cancel tasks");
                    }
                }
            }
            Action::Trigger { task_manager, request } => {
                let (job_id, attempt, checkpoint_id) = (request.job_id.clone(), request.attempt, request.checkpoint_id);
                let result = match self.client(&task_manager) {
                    Some(mut client) => client.trigger_checkpoint(request).await.map(|_| ()),
                    None => Err(Status::unavailable("the task manager is gone")),
                };
                // A source that never gets the trigger never emits the barrier: the
                // checkpoint cannot complete, so it fails now instead of at its timeout.
                if let Err(status) = result {
                    let reason = format!("its trigger could not be delivered to {task_manager}: {}", status.message());
                    tracing::warn!(%task_manager, checkpoint = checkpoint_id, "{reason}");
                    self.update(|s, _| s.trigger_failed(&job_id, attempt, checkpoint_id, &reason));
                }
            }
            Action::WriteCheckpoint { job_id, write } => {
                let id = write.id;
                let dir = write.dir().to_string();
                let outcome = tokio::task::spawn_blocking(move || write.perform())
                    .await
                    .unwrap_or_else(|e| WriteOutcome::failed(format!("writing '{dir}' stopped: {e}")));
                self.update(|s, a| s.checkpoint_written(&job_id, id, outcome, a));
            }
            Action::Discard(discard) => {
                let _ = tokio::task::spawn_blocking(move || discard.perform()).await;
            }
            Action::Forget { job_id } => {
                if let Some(store) = self.jobs.clone() {
                    let id = job_id.clone();
                    let _ = tokio::task::spawn_blocking(move || store.remove(&id)).await;
                }
            }
            Action::Notify { task_manager, request } => {
                if let Some(mut client) = self.client(&task_manager) {
                    if let Err(status) = client.notify_checkpoint_complete(request).await {
                        tracing::warn!(%task_manager, error = %status.message(), "cannot notify a completed checkpoint");
                    }
                }
            }
        }
    }
}

/// A jobmanager bound to its addresses, ready to serve.
pub struct BoundJobManager {
    shared: Arc<Shared>,
    listener: TcpListener,
    address: SocketAddr,
    rest: Option<(TcpListener, SocketAddr)>,
}

impl BoundJobManager {
    /// Binds the RPC address.
    pub async fn bind(config: JobManagerConfig) -> Result<Self, JobManagerError> {
        let listener = TcpListener::bind(config.rpc_address)
            .await
            .map_err(|source| JobManagerError::Bind { address: config.rpc_address, source })?;
        let address =
            listener.local_addr().map_err(|source| JobManagerError::Bind { address: config.rpc_address, source })?;
        let checkpoint_root = config
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| sluice_storage::Location::local(std::env::temp_dir().join("sluice-checkpoints")));
        let rest = match config.rest_address {
            Some(wanted) => {
                let bind_error = |source| JobManagerError::Bind { address: wanted, source };
                let listener = TcpListener::bind(wanted).await.map_err(bind_error)?;
                let bound = listener.local_addr().map_err(bind_error)?;
                Some((listener, bound))
            }
            None => None,
        };
        let token = AttachToken::new(config.auth_token.as_ref()).map_err(JobManagerError::Token)?;
        let mut state = ClusterState::new(checkpoint_root.clone());
        let jobs = config.ha_storage_dir.as_ref().map(JobStore::new);
        if let Some(store) = &jobs {
            for (record, stored, savepoint) in recover_jobs_patiently(store, &checkpoint_root).await? {
                let mut job = match state.prepare_recovered(&record, stored, savepoint) {
                    Ok(job) => job,
                    Err(e) => {
                        tracing::error!(job = %record.job_id, error = %e, "cannot recover a job; it is not run again");
                        continue;
                    }
                };
                if let Some((job_dir, me)) = job.claim_target() {
                    let claimed =
                        blocking(move || crate::checkpoint::storage::claim(&job_dir, &me).map_err(|e| e.to_string()))
                            .await;
                    match claimed {
                        Ok(()) => job.claimed(),
                        // Claimed again at its deployment.
                        Err(e) => {
                            tracing::warn!(job = %record.job_id, error = %e, "cannot claim the checkpoint storage yet")
                        }
                    }
                }
                state.add(job);
            }
        }
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            clients: Mutex::new(HashMap::new()),
            token,
            savepoints: Mutex::new(HashMap::new()),
            planner: None,
            jobs,
        });
        Ok(BoundJobManager { shared, listener, address, rest })
    }

    /// Lets `POST /jobs` take SQL, planned by `planner`.
    pub fn with_sql_planner(mut self, planner: SqlPlanner) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.planner = Some(planner);
        }
        self
    }

    /// The RPC address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// The REST address actually bound, when the REST API is served.
    pub fn rest_addr(&self) -> Option<SocketAddr> {
        self.rest.as_ref().map(|(_, a)| *a)
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<(), JobManagerError> {
        let shared = self.shared;
        tracing::info!(address = %self.address, "jobmanager listening");
        if let Some(dir) = &shared.config.checkpoint_dir {
            tracing::info!(checkpoint_dir = %dir, "checkpoint storage configured");
        }
        let ticker = tokio::spawn(tick_loop(shared.clone()));
        let rest = self.rest.map(|(listener, address)| {
            tracing::info!(address = %crate::rest::describe(address), "REST API, metrics and dashboard listening");
            tokio::spawn(crate::rest::serve(listener, shared.clone(), std::future::pending()))
        });
        let require = RequireToken::new(shared.config.auth_token.as_ref());
        let result = Server::builder()
            .add_service(InterceptedService::new(
                JobManagerServer::new(JobManagerService { shared: shared.clone() })
                    .max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(sluice_proto::MAX_MESSAGE_BYTES),
                require.clone(),
            ))
            .add_service(InterceptedService::new(
                ResourceManagerServer::new(ResourceManagerService { shared: shared.clone() })
                    .max_decoding_message_size(sluice_proto::MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(sluice_proto::MAX_MESSAGE_BYTES),
                require,
            ))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(self.listener), shutdown)
            .await;
        ticker.abort();
        if let Some(rest) = rest {
            rest.abort();
        }
        result.map_err(JobManagerError::from)
    }
}

/// Checks heartbeats, slot-wait timeouts, restart delays and checkpoint schedules.
async fn tick_loop(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let timeout = shared.config.heartbeat_timeout;
        shared.update(|s, a| {
            s.expire_task_managers(timeout, a);
            let now = std::time::Instant::now();
            s.tick_checkpoints(now, a);
            s.sample_metrics(now);
        });
    }
}

/// Why a savepoint was not taken.
#[derive(Debug)]
pub(crate) enum SavepointError {
    /// The directory given is not usable.
    Directory(String),
    /// The job cannot take it (unknown, not running, no checkpoints, or it failed).
    Refused(String),
    /// The job ended or restarted before it completed.
    Abandoned,
}

impl std::fmt::Display for SavepointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SavepointError::Directory(m) | SavepointError::Refused(m) => f.write_str(m),
            SavepointError::Abandoned => f.write_str("the savepoint was abandoned (the job ended or restarted)"),
        }
    }
}

struct JobManagerService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl JobManager for JobManagerService {
    async fn submit_job(&self, request: Request<SubmitJobRequest>) -> Result<Response<SubmitJobResponse>, Status> {
        let request = request.into_inner();
        let graph = request.graph.ok_or_else(|| Status::invalid_argument("the request has no job graph"))?;
        sluice_core::job_graph::check(&graph)
            .map_err(|e| Status::invalid_argument(format!("invalid job graph: {e}")))?;
        let name = graph.name.clone();
        let savepoint = (!request.from_savepoint.is_empty())
            .then(|| crate::checkpoint::options::storage_path(&request.from_savepoint))
            .transpose()
            .map_err(|e| Status::invalid_argument(format!("savepoint '{}': {e}", request.from_savepoint)))?;
        let job_id = self.shared.submit(graph, savepoint).await.map_err(Status::invalid_argument)?;
        tracing::info!(job = %job_id, %name, "job submitted");
        Ok(Response::new(SubmitJobResponse { job_id }))
    }

    async fn list_jobs(&self, _request: Request<ListJobsRequest>) -> Result<Response<ListJobsResponse>, Status> {
        Ok(Response::new(ListJobsResponse { jobs: self.shared.state().list() }))
    }

    async fn get_job_status(&self, request: Request<GetJobStatusRequest>) -> Result<Response<JobStatus>, Status> {
        let id = &request.get_ref().job_id;
        self.shared
            .state()
            .status(id)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no job with id '{id}'; `sluice list` shows the known jobs")))
    }

    async fn trigger_savepoint(
        &self,
        request: Request<TriggerSavepointRequest>,
    ) -> Result<Response<TriggerSavepointResponse>, Status> {
        let request = request.into_inner();
        match self.shared.savepoint(&request.job_id, &request.directory, request.stop).await {
            Ok(path) => Ok(Response::new(TriggerSavepointResponse { path })),
            Err(SavepointError::Directory(message)) => Err(Status::invalid_argument(message)),
            Err(SavepointError::Refused(message)) => Err(Status::failed_precondition(message)),
            Err(SavepointError::Abandoned) => {
                Err(Status::aborted("the savepoint was abandoned (the job ended or restarted)"))
            }
        }
    }

    async fn cancel_job(&self, request: Request<CancelJobRequest>) -> Result<Response<CancelJobResponse>, Status> {
        let id = request.get_ref().job_id.clone();
        match self.shared.update(|s, a| s.cancel(&id, a)) {
            Some(state) => Ok(Response::new(CancelJobResponse { state: state as i32 })),
            None => Err(Status::not_found(format!("no job with id '{id}'; `sluice list` shows the known jobs"))),
        }
    }
}

struct ResourceManagerService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl ResourceManager for ResourceManagerService {
    async fn register_task_manager(
        &self,
        request: Request<RegisterTaskManagerRequest>,
    ) -> Result<Response<RegisterTaskManagerResponse>, Status> {
        let request = request.into_inner();
        if request.slots == 0 {
            return Err(Status::invalid_argument("a task manager must offer at least one slot"));
        }
        let address = request.address.clone();
        let id = self.shared.update(|s, a| s.register(request.address, request.slots, a));
        self.shared.clients.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        tracing::info!(%id, %address, slots = request.slots, "task manager registered");
        Ok(Response::new(RegisterTaskManagerResponse {
            task_manager_id: id,
            heartbeat_interval_ms: self.shared.config.heartbeat_interval.as_millis() as u64,
        }))
    }

    async fn heartbeat(&self, request: Request<HeartbeatRequest>) -> Result<Response<HeartbeatResponse>, Status> {
        let request = request.into_inner();
        let known = self.shared.state().heartbeat(&request.task_manager_id, &request.address, &request.tasks);
        Ok(Response::new(HeartbeatResponse { known }))
    }

    async fn report_task_state(&self, request: Request<TaskStateReport>) -> Result<Response<Ack>, Status> {
        let report = request.into_inner();
        self.shared.update(|s, a| s.task_state(&report, a));
        Ok(Response::new(Ack {}))
    }

    async fn acknowledge_checkpoint(&self, request: Request<CheckpointAck>) -> Result<Response<Ack>, Status> {
        let ack = request.into_inner();
        self.shared.update(|s, a| s.acknowledge(ack, a));
        Ok(Response::new(Ack {}))
    }

    async fn decline_checkpoint(&self, request: Request<CheckpointDecline>) -> Result<Response<Ack>, Status> {
        let decline = request.into_inner();
        self.shared.update(|s, _| s.decline(&decline));
        Ok(Response::new(Ack {}))
    }
}
