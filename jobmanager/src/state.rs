//! The jobmanager's bookkeeping: registered task managers, jobs, their placement and the
//! states of their tasks. Methods here change state and return the RPCs to make
//! ([`Action`]s); the server performs them outside the lock.

use sluice_storage::Location;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::{
    CheckpointAck, CheckpointMetadata, JobGraph, JobRecord, JobState, JobStatus, JobSummary, NotifyCheckpointRequest,
    TaskId, TaskLocation, TaskMetrics, TaskState, TaskStateReport, TaskStatus, TriggerCheckpointRequest, VertexInfo,
};

use crate::checkpoint::history::CheckpointHistory;
use crate::checkpoint::restore::assign_state;
use crate::checkpoint::{
    storage, CheckpointOptions, CheckpointWrite, Coordinator, Discard, RestartStrategy, SavepointRequest, WriteOutcome,
};
use crate::metrics::{MetricsHistory, MetricsSample};
use crate::placement::{place, FreeSlots};
use crate::recovery::StoredCheckpoints;

/// How many failures a job keeps for its exception history.
const EXCEPTION_HISTORY: usize = 20;

/// A failure of a job, as its exception history shows it.
#[derive(Debug, Clone)]
pub struct ExceptionRecord {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// What failed and why.
    pub message: String,
    /// True when the job was restarted after it; false when it failed the job.
    pub restarted: bool,
}

/// What the REST API shows of a job besides its status.
#[derive(Debug)]
pub struct JobDetails<'a> {
    /// The job's graph.
    pub graph: &'a JobGraph,
    /// Its attempt (restarts so far).
    pub attempt: u32,
    /// Recent readings of its subtasks' metrics.
    pub history: &'a MetricsHistory,
    /// Its recent checkpoints, when it takes checkpoints.
    pub checkpoints: Option<&'a CheckpointHistory>,
    /// Its failures, oldest first.
    pub exceptions: &'a VecDeque<ExceptionRecord>,
}

/// What the jobmanager must do outside its lock: an RPC to a task manager, or disk work.
#[derive(Debug)]
pub enum Action {
    /// Deploy a job's tasks on a task manager.
    Deploy {
        /// Target task manager.
        task_manager: String,
        /// The request (boxed: it carries the job graph).
        request: Box<sluice_proto::DeployTasksRequest>,
    },
    /// Cancel a job's tasks on a task manager.
    Cancel {
        /// Target task manager.
        task_manager: String,
        /// The job.
        job_id: String,
        /// Attempts up to this one are canceled.
        attempt: u32,
    },
    /// Start a checkpoint on a task manager's tasks.
    Trigger {
        /// Target task manager.
        task_manager: String,
        /// The request.
        request: TriggerCheckpointRequest,
    },
    /// Write a complete checkpoint's metadata (and savepoint), outside the lock; the
    /// outcome goes to [`ClusterState::checkpoint_written`].
    WriteCheckpoint {
        /// The job.
        job_id: String,
        /// The disk work.
        write: Box<CheckpointWrite>,
    },
    /// Delete old checkpoints, outside the lock.
    Discard(Box<Discard>),
    /// Tell a task manager's tasks that a checkpoint completed. With `stop`, the job ends
    /// once every task manager has answered.
    Notify {
        /// Target task manager.
        task_manager: String,
        /// The request.
        request: NotifyCheckpointRequest,
    },
    /// The job ended: delete its record, so that no restarted jobmanager recovers it.
    Forget {
        /// The job.
        job_id: String,
    },
}

/// A registered task manager.
#[derive(Debug, Clone)]
pub struct TaskManagerInfo {
    /// Id given at registration.
    pub id: String,
    /// Its RPC and data address.
    pub address: String,
    /// Slots it offers.
    pub slots: u32,
    /// When it was last heard from.
    pub last_heartbeat: Instant,
}

#[derive(Debug, Clone)]
struct TaskInfo {
    task_manager: String,
    state: TaskState,
    metrics: TaskMetrics,
    error: String,
}

/// Where a job is in its life, each phase with the data that belongs to it alone.
#[derive(Debug)]
enum Phase {
    /// Submitted, waiting for the slots of its first deployment.
    Created(Waiting),
    /// Failed, waiting out its restart delay and then for slots.
    Restarting(Restarting),
    /// Deployed on task managers.
    Running(Deployed),
    /// A stop-with-savepoint took its savepoint: the sinks commit, then the job ends.
    Stopping(Stopping),
    /// Finished, failed or canceled.
    Ended(Ended),
}

/// A job waiting for its first slots.
#[derive(Debug)]
struct Waiting {
    /// Since when (the scheduling timeout counts from here).
    since: Instant,
}

/// A job waiting to be deployed again after a failure.
#[derive(Debug)]
struct Restarting {
    /// When it may be deployed again; the scheduling timeout counts from here.
    at: Instant,
}

/// A deployed job.
#[derive(Debug, Default)]
struct Deployed {
    /// Slots held per task manager.
    slots: HashMap<String, u32>,
}

/// A job whose stop-with-savepoint completed its savepoint.
#[derive(Debug)]
struct Stopping {
    /// The slots it still holds while the sinks commit.
    slots: HashMap<String, u32>,
    /// The savepoint's path.
    savepoint: String,
    /// Where to answer once the job has ended.
    reply: tokio::sync::oneshot::Sender<Result<String, String>>,
}

/// A job that ended.
#[derive(Debug)]
struct Ended {
    /// Finished, failed or canceled.
    state: JobState,
    /// When (ms since the epoch).
    at_ms: u64,
}

#[derive(Debug)]
struct Job {
    id: String,
    graph: JobGraph,
    phase: Phase,
    message: String,
    submitted_at_ms: u64,
    attempt: u32,
    tasks: BTreeMap<(u32, u32), TaskInfo>,
    /// The checkpoint coordinator, when the job takes checkpoints.
    checkpoints: Option<Coordinator>,
    restart: RestartStrategy,
    restarts: u32,
    /// The savepoint the job was submitted with: what a deployment restores until the job
    /// completes a checkpoint of its own.
    savepoint: Option<(CheckpointMetadata, Location)>,
    /// Where that savepoint is, as submitted ("" for none).
    from_savepoint: String,
    /// Recent readings of its subtasks' metrics.
    history: MetricsHistory,
    /// Its failures, oldest first.
    exceptions: VecDeque<ExceptionRecord>,
}

impl Job {
    fn record_exception(&mut self, message: &str, restarted: bool) {
        if self.exceptions.len() == EXCEPTION_HISTORY {
            self.exceptions.pop_front();
        }
        self.exceptions.push_back(ExceptionRecord { at_ms: now_ms(), message: message.to_string(), restarted });
    }

    fn required_slots(&self) -> u32 {
        self.graph.vertices.iter().map(|v| v.parallelism).max().unwrap_or(0)
    }

    fn max_parallelism(&self) -> u32 {
        self.graph
            .config
            .get("pipeline.max-parallelism")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(sluice_core::keys::DEFAULT_MAX_PARALLELISM)
    }

    fn subtasks_in(&self, states: &[TaskState]) -> BTreeSet<(u32, u32)> {
        self.tasks.iter().filter(|(_, t)| states.contains(&t.state)).map(|(k, _)| *k).collect()
    }

    /// The state reported to users.
    fn state(&self) -> JobState {
        match &self.phase {
            Phase::Created(_) => JobState::Created,
            Phase::Restarting(_) => JobState::Restarting,
            Phase::Running(_) | Phase::Stopping(_) => JobState::Running,
            Phase::Ended(e) => e.state,
        }
    }

    /// The slots the job holds (none unless deployed).
    fn slots(&self) -> Option<&HashMap<String, u32>> {
        match &self.phase {
            Phase::Running(d) => Some(&d.slots),
            Phase::Stopping(s) => Some(&s.slots),
            _ => None,
        }
    }

    /// The task managers the job's tasks run on (none unless deployed).
    fn task_managers(&self) -> Vec<String> {
        self.slots().map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// Deployed, running or stopping: its tasks' reports count.
    fn is_deployed(&self) -> bool {
        self.slots().is_some()
    }

    fn task_name(&self, vertex: u32, subtask: u32) -> String {
        match self.graph.vertices.get(vertex as usize) {
            Some(v) => format!("subtask {}/{} of '{}'", subtask + 1, v.parallelism, v.name),
            None => format!("subtask {} of vertex {vertex}", subtask + 1),
        }
    }
}

/// Why checkpoints under `job_dir` cannot work for a job placed on `placement`: the
/// directory is in this machine's temporary directory (the default when the jobmanager has
/// no `--checkpoint-dir`), which task managers on other hosts cannot reach, so a restore
/// there would find nothing.
fn unshared_checkpoint_storage(
    job_dir: &Location,
    placement: &[String],
    addresses: &HashMap<String, String>,
) -> Option<String> {
    if !job_dir.is_machine_local_temp() {
        return None;
    }
    let hosts: BTreeSet<&str> = placement
        .iter()
        .filter_map(|tm| addresses.get(tm))
        .map(|a| a.rsplit_once(':').map_or(a.as_str(), |(host, _)| host))
        .collect();
    (hosts.len() > 1).then(|| {
        format!(
            "the job's checkpoints would go to '{}', a temporary directory local to the jobmanager's machine, but its \
             tasks run on the hosts {}, which cannot reach it; give the jobmanager a directory every process shares \
             (--checkpoint-dir, or SET 'state.checkpoints.dir')",
            job_dir,
            hosts.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Cancels attempt `attempt` of job `job_id` on each of `task_managers`.
fn cancel_tasks<'a>(
    job_id: &str,
    attempt: u32,
    task_managers: impl Iterator<Item = &'a String>,
    actions: &mut Vec<Action>,
) {
    for task_manager in task_managers {
        actions.push(Action::Cancel { task_manager: task_manager.clone(), job_id: job_id.to_string(), attempt });
    }
}

/// A job state's name, as Flink's (`CREATED`, `RUNNING`, ..., `CANCELED`).
pub fn job_state_name(state: i32) -> &'static str {
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

/// A task state's name (`ENDED`: its input ended, it waits for the final checkpoint).
pub fn task_state_name(state: i32) -> &'static str {
    match TaskState::try_from(state) {
        Ok(TaskState::Deploying) => "DEPLOYING",
        Ok(TaskState::Running) => "RUNNING",
        Ok(TaskState::Finished) => "FINISHED",
        Ok(TaskState::Failed) => "FAILED",
        Ok(TaskState::Canceled) => "CANCELED",
        Ok(TaskState::Ended) => "ENDED",
        Err(_) => "UNKNOWN",
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A savepoint (or retained checkpoint) a job starts from, read and checked.
#[derive(Debug, Clone)]
pub struct Savepoint {
    /// Where it is, as given.
    pub path: Location,
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// The location its files are relative to.
    pub base: Location,
}

/// Reads and checks the savepoint at `path` (storage I/O: outside the lock when it can be).
pub fn read_savepoint(path: &Location) -> Result<Savepoint, String> {
    let (metadata, base) = storage::read_checkpoint(path).map_err(|e| e.to_string())?;
    Ok(Savepoint { path: path.clone(), metadata, base })
}

/// A checked job not yet added to the state (see [`ClusterState::prepare`]).
#[derive(Debug)]
pub struct NewJob(Job);

impl NewJob {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The record that lets a restarted jobmanager recover the job.
    pub fn record(&self, recoveries: u32) -> JobRecord {
        JobRecord {
            job_id: self.0.id.clone(),
            graph: Some(self.0.graph.clone()),
            from_savepoint: self.0.from_savepoint.clone(),
            submitted_at_ms: self.0.submitted_at_ms,
            recoveries,
        }
    }

    /// Where and as whom its checkpoint directory is to be claimed, if it takes
    /// checkpoints; then [`NewJob::claimed`].
    pub fn claim_target(&self) -> Option<(Location, String)> {
        self.0.checkpoints.as_ref().and_then(Coordinator::claim_target)
    }

    /// Its checkpoint directory was claimed (outside the lock).
    pub fn claimed(&mut self) {
        if let Some(c) = &mut self.0.checkpoints {
            c.claimed();
        }
    }
}

/// All of the jobmanager's state.
#[derive(Debug)]
pub struct ClusterState {
    /// This jobmanager's identity, which fences its checkpoint writes.
    instance: String,
    /// Default checkpoint storage of jobs.
    checkpoint_root: Location,
    task_managers: Vec<TaskManagerInfo>,
    next_task_manager: u64,
    jobs: BTreeMap<String, Job>,
    /// Job ids in submission order, for FIFO scheduling and listing.
    order: Vec<String>,
}

impl ClusterState {
    /// State of a jobmanager whose jobs checkpoint under `checkpoint_root` by default.
    pub fn new(checkpoint_root: Location) -> Self {
        ClusterState {
            instance: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            checkpoint_root,
            task_managers: Vec::new(),
            next_task_manager: 0,
            jobs: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    /// Registers a task manager and returns its id. A task manager registering again at an
    /// address already known replaces the old one, whose jobs fail.
    pub fn register(&mut self, address: String, slots: u32, actions: &mut Vec<Action>) -> String {
        if let Some(old) = self.task_managers.iter().find(|t| t.address == address).map(|t| t.id.clone()) {
            self.lose_task_manager(&old, &format!("task manager {old} at {address} restarted"), actions);
        }
        self.next_task_manager += 1;
        let id = format!("tm-{}", self.next_task_manager);
        self.task_managers.push(TaskManagerInfo { id: id.clone(), address, slots, last_heartbeat: Instant::now() });
        id
    }

    /// Records a heartbeat of task manager `id` at `address` (empty: not checked); false
    /// if no task manager of that id registered at that address (a restarted jobmanager
    /// may have given the id to another one).
    pub fn heartbeat(&mut self, id: &str, address: &str, reports: &[sluice_proto::TaskMetricsReport]) -> bool {
        let Some(tm) =
            self.task_managers.iter_mut().find(|t| t.id == id && (address.is_empty() || t.address == address))
        else {
            return false;
        };
        tm.last_heartbeat = Instant::now();
        for report in reports {
            let (Some(task), Some(metrics)) = (&report.task, &report.metrics) else { continue };
            if let Some(job) = self.jobs.get_mut(&task.job_id) {
                if job.attempt == task.attempt {
                    if let Some(info) = job.tasks.get_mut(&(task.vertex_id, task.subtask)) {
                        info.metrics = metrics.clone();
                    }
                }
            }
        }
        true
    }

    /// The registered task managers.
    pub fn task_managers(&self) -> &[TaskManagerInfo] {
        &self.task_managers
    }

    /// Address of a task manager.
    pub fn address_of(&self, id: &str) -> Option<String> {
        self.task_managers.iter().find(|t| t.id == id).map(|t| t.address.clone())
    }

    /// Adds a job in CREATED state and returns its id. With `from_savepoint`, the job
    /// starts from that savepoint or retained checkpoint (read here: the server reads it
    /// outside the lock and uses [`ClusterState::prepare`]). Bad options or an unusable
    /// savepoint are refused with the reason.
    pub fn submit(&mut self, graph: JobGraph, from_savepoint: Option<&Location>) -> Result<String, String> {
        let savepoint = from_savepoint.map(read_savepoint).transpose()?;
        let job = self.prepare(graph, savepoint)?;
        Ok(self.add(job))
    }

    /// A job of `graph` (starting from `savepoint`), checked but not yet added: what it
    /// needs from the storage (its record, its claim) can be done outside the lock, then
    /// [`ClusterState::add`] schedules it.
    pub fn prepare(&self, graph: JobGraph, savepoint: Option<Savepoint>) -> Result<NewJob, String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.new_job(id, graph, savepoint, now_ms()).map(NewJob)
    }

    /// A job another jobmanager ran (its `record`, and `stored`, what its checkpoint
    /// storage holds, with its savepoint read): it restarts from its latest completed
    /// checkpoint once task managers offer the slots, with attempt numbers above the old
    /// jobmanager's. Added with [`ClusterState::add`].
    pub fn prepare_recovered(
        &self,
        record: &JobRecord,
        stored: StoredCheckpoints,
        savepoint: Option<Savepoint>,
    ) -> Result<NewJob, String> {
        let graph = record.graph.clone().ok_or("the record holds no job graph")?;
        let mut job = self.new_job(record.job_id.clone(), graph, savepoint, record.submitted_at_ms)?;
        job.attempt = record.recoveries << 16;
        if let Some(c) = &mut job.checkpoints {
            c.recovered(stored.completed, stored.highest_id);
        }
        job.phase = Phase::Restarting(Restarting { at: Instant::now() });
        job.message = "recovered by a restarted jobmanager: waiting for task slots".into();
        Ok(NewJob(job))
    }

    /// Adds a prepared job and returns its id.
    pub fn add(&mut self, job: NewJob) -> String {
        let job = job.0;
        let id = job.id.clone();
        if job.attempt > 0 {
            tracing::info!(job = %id, name = %job.graph.name, "job recovered");
        }
        self.order.push(id.clone());
        self.jobs.insert(id.clone(), job);
        id
    }

    /// A job `id` of `graph`, validated, in CREATED state.
    fn new_job(
        &self,
        id: String,
        graph: JobGraph,
        savepoint: Option<Savepoint>,
        submitted_at_ms: u64,
    ) -> Result<Job, String> {
        let options =
            CheckpointOptions::from_config(&graph.config, &self.checkpoint_root).map_err(|e| e.to_string())?;
        let restart =
            RestartStrategy::from_config(&graph.config, options.interval.is_some()).map_err(|e| e.to_string())?;
        crate::checkpoint::options::check_transaction_timeouts(&graph, &options)?;
        let mut checkpoints =
            options.interval.is_some().then(|| Coordinator::new(&id, options, format!("{}/{id}", self.instance)));
        let mut job = Job {
            id,
            graph,
            phase: Phase::Created(Waiting { since: Instant::now() }),
            message: "waiting to be scheduled".into(),
            submitted_at_ms,
            attempt: 0,
            tasks: BTreeMap::new(),
            checkpoints: None,
            restart,
            restarts: 0,
            savepoint: None,
            from_savepoint: String::new(),
            history: MetricsHistory::default(),
            exceptions: VecDeque::new(),
        };
        if let Some(Savepoint { path, metadata, base }) = savepoint {
            assign_state(&metadata, &base, &job.graph, job.max_parallelism())?;
            if let Some(c) = &mut checkpoints {
                c.restored_from(&path, metadata.checkpoint_id);
            }
            job.from_savepoint = path.to_string();
            job.savepoint = Some((metadata, base));
        }
        job.checkpoints = checkpoints;
        Ok(job)
    }

    /// Whether job `id` has ended (or is unknown).
    pub fn has_ended(&self, id: &str) -> bool {
        self.jobs.get(id).is_none_or(|j| matches!(j.phase, Phase::Ended(_)))
    }

    fn free_slots(&self) -> Vec<FreeSlots> {
        self.task_managers
            .iter()
            .map(|tm| {
                let held: u32 = self.jobs.values().filter_map(|j| j.slots()?.get(&tm.id)).sum();
                FreeSlots { task_manager: tm.id.clone(), free: tm.slots.saturating_sub(held) }
            })
            .collect()
    }

    /// Places waiting jobs in submission order while slots allow; fails jobs that waited
    /// longer than `timeout`.
    pub fn schedule(&mut self, timeout: Duration, actions: &mut Vec<Action>) {
        let now = Instant::now();
        for id in self.order.clone() {
            let free = self.free_slots();
            let total_slots: u32 = self.task_managers.iter().map(|t| t.slots).sum();
            let Some(job) = self.jobs.get_mut(&id) else { continue };
            let waiting_since = match &job.phase {
                Phase::Created(w) => w.since,
                Phase::Restarting(r) if r.at <= now => r.at,
                _ => continue,
            };
            let restarting = matches!(job.phase, Phase::Restarting(_));
            let required = job.required_slots();
            let available: u32 = free.iter().map(|f| f.free).sum();
            let Some(placement) = place(required, &free) else {
                let why = format!(
                    "waiting for {required} free task slots: {available} free of {total_slots} on {} task manager(s); \
                     start more task managers (sluice taskmanager --slots N) or lower the parallelism",
                    self.task_managers.len()
                );
                if now.saturating_duration_since(waiting_since) >= timeout {
                    let message = format!("could not get {required} task slots within {}s: {why}", timeout.as_secs());
                    self.end_job(&id, JobState::Failed, message, actions);
                } else if restarting {
                    job.message = format!("restarting (restart {}): {why}", job.restarts);
                } else {
                    job.message = why;
                }
                continue;
            };
            let restore = if restarting {
                job.attempt += 1;
                let mut problems = Vec::new();
                let latest = match job.checkpoints.as_mut() {
                    Some(c) => c.latest_restorable(&mut problems),
                    None => Ok(None),
                };
                if !problems.is_empty() {
                    if let Some(c) = &mut job.checkpoints {
                        c.summary.last_failure = problems.join("; ");
                    }
                }
                match latest {
                    Ok(Some(restored)) => Some(restored),
                    // Nothing newer than the savepoint the job started from: restore it again.
                    Ok(None) => job.savepoint.clone(),
                    Err(e) => {
                        self.end_job(&id, JobState::Failed, format!("cannot restart: {e}"), actions);
                        continue;
                    }
                }
            } else {
                job.savepoint.clone()
            };
            self.deploy(&id, placement, restore, actions);
        }
    }

    /// Deploys job `id` on `placement` (a task manager per slot), starting from `restore`.
    fn deploy(
        &mut self,
        id: &str,
        placement: Vec<String>,
        restore: Option<(CheckpointMetadata, Location)>,
        actions: &mut Vec<Action>,
    ) {
        let addresses: HashMap<String, String> =
            self.task_managers.iter().map(|t| (t.id.clone(), t.address.clone())).collect();
        let Some(job) = self.jobs.get_mut(id) else { return };
        let (restore, restored_checkpoint_id) = match restore {
            Some((metadata, base)) => match assign_state(&metadata, &base, &job.graph, job.max_parallelism()) {
                Ok(r) => (r, metadata.checkpoint_id),
                Err(e) => {
                    let id = job.id.clone();
                    self.end_job(&id, JobState::Failed, format!("cannot restore: {e}"), actions);
                    return;
                }
            },
            None => (Vec::new(), 0),
        };
        if let Some(c) = &mut job.checkpoints {
            if let Some(problem) = unshared_checkpoint_storage(&c.job_dir, &placement, &addresses) {
                let id = job.id.clone();
                self.end_job(&id, JobState::Failed, problem, actions);
                return;
            }
            if let Err(e) = c.claim() {
                let id = job.id.clone();
                self.end_job(&id, JobState::Failed, format!("checkpoint storage: {e}"), actions);
                return;
            }
        }
        let checkpoint_directory = job.checkpoints.as_ref().map(|c| c.job_dir.to_string()).unwrap_or_default();
        let mut deployed = Deployed::default();
        for tm in &placement {
            *deployed.slots.entry(tm.clone()).or_default() += 1;
        }
        job.tasks.clear();
        let mut locations = Vec::new();
        let mut per_tm: BTreeMap<String, Vec<TaskId>> = BTreeMap::new();
        for vertex in &job.graph.vertices {
            for subtask in 0..vertex.parallelism {
                let tm = placement[subtask as usize].clone();
                locations.push(TaskLocation {
                    vertex_id: vertex.id,
                    subtask,
                    address: addresses.get(&tm).cloned().unwrap_or_default(),
                    task_manager_id: tm.clone(),
                });
                per_tm.entry(tm.clone()).or_default().push(TaskId {
                    job_id: job.id.clone(),
                    vertex_id: vertex.id,
                    subtask,
                    attempt: job.attempt,
                });
                job.tasks.insert(
                    (vertex.id, subtask),
                    TaskInfo {
                        task_manager: tm,
                        state: TaskState::Deploying,
                        metrics: TaskMetrics::default(),
                        error: String::new(),
                    },
                );
            }
        }
        job.phase = Phase::Running(deployed);
        job.message = format!("deployed on {}", per_tm.keys().cloned().collect::<Vec<_>>().join(", "));
        if restored_checkpoint_id != 0 {
            job.message.push_str(&format!(" from checkpoint {restored_checkpoint_id}"));
        }
        tracing::info!(job = %job.id, name = %job.graph.name, placement = %job.message, "job scheduled");
        for (task_manager, tasks) in per_tm {
            actions.push(Action::Deploy {
                task_manager: task_manager.clone(),
                request: Box::new(sluice_proto::DeployTasksRequest {
                    task_manager_id: task_manager,
                    job_id: job.id.clone(),
                    attempt: job.attempt,
                    graph: Some(job.graph.clone()),
                    restore: restore
                        .iter()
                        .filter(|r| tasks.iter().any(|t| t.vertex_id == r.vertex_id && t.subtask == r.subtask))
                        .cloned()
                        .collect(),
                    tasks,
                    locations: locations.clone(),
                    checkpoint_directory: checkpoint_directory.clone(),
                    restored_checkpoint_id,
                }),
            });
        }
    }

    /// Ends job `id` in `state` (finished, failed or canceled) with `message`: answers a
    /// waiting stop-with-savepoint, cancels the tasks of a running job that did not finish,
    /// and frees its slots.
    fn end_job(&mut self, id: &str, state: JobState, message: String, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        if matches!(job.phase, Phase::Ended(_)) {
            return;
        }
        match std::mem::replace(&mut job.phase, Phase::Ended(Ended { state, at_ms: now_ms() })) {
            Phase::Stopping(stopping) => {
                let answer = match state {
                    JobState::Finished => Ok(stopping.savepoint),
                    _ => Err(format!("the savepoint was taken, but the job could not stop cleanly: {message}")),
                };
                let _ = stopping.reply.send(answer);
            }
            Phase::Running(deployed) if state != JobState::Finished => {
                cancel_tasks(id, job.attempt, deployed.slots.keys(), actions);
            }
            Phase::Running(_) | Phase::Created(_) | Phase::Restarting(_) | Phase::Ended(_) => {}
        }
        if state == JobState::Failed {
            job.record_exception(&message, false);
        }
        actions.push(Action::Forget { job_id: id.to_string() });
        job.message = message;
        match state {
            JobState::Failed => tracing::warn!(job = %id, message = %job.message, "job failed"),
            _ => tracing::info!(job = %id, state = ?state, "job ended"),
        }
    }

    /// Applies a task's state change.
    pub fn task_state(&mut self, report: &TaskStateReport, actions: &mut Vec<Action>) {
        let Some(task) = &report.task else { return };
        let Some(job) = self.jobs.get_mut(&task.job_id) else { return };
        if job.attempt != task.attempt || !job.is_deployed() {
            return;
        }
        let state = TaskState::try_from(report.state).unwrap_or(TaskState::Failed);
        let name = job.task_name(task.vertex_id, task.subtask);
        let Some(info) = job.tasks.get_mut(&(task.vertex_id, task.subtask)) else { return };
        info.state = state;
        info.error = report.error.clone();
        if let Some(m) = report.metrics.clone() {
            info.metrics = m;
        }
        let tm = info.task_manager.clone();
        let id = job.id.clone();
        match state {
            TaskState::Failed => {
                let message = format!("{name} failed on {tm}: {}", report.error);
                self.fail_or_restart(&id, message, None, actions);
            }
            // Stop-with-savepoint: task managers end the tasks once they committed.
            TaskState::Canceled if matches!(job.phase, Phase::Stopping(_)) => {}
            TaskState::Canceled => {
                let message = format!("{name} was canceled by {tm} (it lost contact with the jobmanager)");
                self.fail_or_restart(&id, message, None, actions);
            }
            TaskState::Finished if job.tasks.values().all(|t| t.state == TaskState::Finished) => {
                let message = match &job.phase {
                    Phase::Stopping(s) => format!("stopped with a savepoint at {}", s.savepoint),
                    _ => "all tasks finished".into(),
                };
                self.end_job(&id, JobState::Finished, message, actions);
            }
            TaskState::Finished => self.try_complete_checkpoint(&id, actions),
            _ => {}
        }
    }

    /// A failure of a running job: restart it from its latest checkpoint if its restart
    /// strategy allows, else fail it. `lost` is a task manager that is gone.
    fn fail_or_restart(&mut self, id: &str, reason: String, lost: Option<&str>, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let deployed = match &job.phase {
            Phase::Running(d) => d,
            // A job stopping with a savepoint is not restarted: its savepoint is taken.
            Phase::Stopping(_) => return self.end_job(id, JobState::Failed, reason, actions),
            _ => return,
        };
        let next = job.restarts + 1;
        let Some(delay) = job.restart.delay(next) else {
            let message =
                if job.restarts > 0 { format!("{reason} (no restarts left after {})", job.restarts) } else { reason };
            self.end_job(id, JobState::Failed, message, actions);
            return;
        };
        cancel_tasks(id, job.attempt, deployed.slots.keys().filter(|tm| Some(tm.as_str()) != lost), actions);
        let now = Instant::now();
        job.phase = Phase::Restarting(Restarting { at: now + delay });
        job.record_exception(&reason, true);
        job.restarts = next;
        let limit = match job.restart.max_attempts() {
            u32::MAX => "unlimited".to_string(),
            n => n.to_string(),
        };
        job.message = format!("restarting (restart {next} of {limit}) in {:.1}s after: {reason}", delay.as_secs_f64());
        tracing::warn!(job = %id, "{}", job.message);
        if let Some(c) = &mut job.checkpoints {
            c.restart(now);
        }
        for info in job.tasks.values_mut() {
            if matches!(info.state, TaskState::Running | TaskState::Deploying | TaskState::Ended) {
                info.state = TaskState::Canceled;
            }
        }
    }

    /// Starts due checkpoints and aborts timed-out ones.
    pub fn tick_checkpoints(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for job in self.jobs.values_mut() {
            let Phase::Running(deployed) = &job.phase else { continue };
            let Some(coordinator) = &mut job.checkpoints else { continue };
            coordinator.check_timeout(now);
            let ready = job
                .tasks
                .values()
                .all(|t| matches!(t.state, TaskState::Running | TaskState::Ended | TaskState::Finished));
            let all_ended = job.tasks.values().all(|t| matches!(t.state, TaskState::Ended | TaskState::Finished))
                && job.tasks.values().any(|t| t.state == TaskState::Ended);
            let subtasks = job.graph.vertices.iter().map(|v| v.parallelism).sum();
            if let Some(trigger) = coordinator.maybe_trigger(now, ready, all_ended, subtasks) {
                for task_manager in deployed.slots.keys() {
                    actions.push(Action::Trigger {
                        task_manager: task_manager.clone(),
                        request: TriggerCheckpointRequest {
                            job_id: job.id.clone(),
                            attempt: job.attempt,
                            checkpoint_id: trigger.id,
                            timestamp_ms: trigger.timestamp_ms,
                            last_completed: trigger.last_completed,
                            stop: trigger.stop,
                            all_ended: trigger.all_ended,
                        },
                    });
                }
            }
        }
    }

    /// Records a subtask's checkpoint acknowledgement; completes the checkpoint when it was
    /// the last one missing.
    pub fn acknowledge(&mut self, ack: CheckpointAck, actions: &mut Vec<Action>) {
        let Some(task) = &ack.task else { return };
        let Some(job) = self.jobs.get_mut(&task.job_id) else { return };
        if job.attempt != task.attempt || !job.is_deployed() {
            return;
        }
        let Some(coordinator) = &mut job.checkpoints else { return };
        let key = (task.vertex_id, task.subtask);
        if coordinator.acknowledge(
            key,
            ack.checkpoint_id,
            ack.snapshot.unwrap_or_default(),
            ack.stats.unwrap_or_default(),
        ) {
            let id = job.id.clone();
            self.try_complete_checkpoint(&id, actions);
        }
    }

    /// A subtask could not take its part of a checkpoint: the checkpoint fails at once.
    pub fn decline(&mut self, decline: &sluice_proto::CheckpointDecline) {
        let Some(task) = &decline.task else { return };
        self.fail_checkpoint(&task.job_id, task.attempt, decline.checkpoint_id, &decline.reason);
    }

    /// Checkpoint `checkpoint_id` of attempt `attempt` could not be triggered on some task
    /// manager: it fails at once (its barrier would never come from the sources there).
    pub fn trigger_failed(&mut self, job_id: &str, attempt: u32, checkpoint_id: u64, reason: &str) {
        self.fail_checkpoint(job_id, attempt, checkpoint_id, reason);
    }

    /// Fails checkpoint `checkpoint_id` of attempt `attempt`, if it is the one in flight.
    fn fail_checkpoint(&mut self, job_id: &str, attempt: u32, checkpoint_id: u64, reason: &str) {
        let Some(job) = self.jobs.get_mut(job_id) else { return };
        if job.attempt != attempt {
            return;
        }
        if let Some(c) = &mut job.checkpoints {
            c.abort_if_pending(checkpoint_id, Instant::now(), reason);
        }
    }

    fn try_complete_checkpoint(&mut self, id: &str, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let finished = job.subtasks_in(&[TaskState::Finished]);
        let Some(coordinator) = &mut job.checkpoints else { return };
        let Some(write) = coordinator.try_complete(&job.graph, &finished) else { return };
        actions.push(Action::WriteCheckpoint { job_id: job.id.clone(), write: Box::new(write) });
    }

    /// The metadata of checkpoint `checkpoint_id` was written (or could not be): the
    /// checkpoint completes, the tasks are told, and old checkpoints are deleted.
    pub fn checkpoint_written(
        &mut self,
        job_id: &str,
        checkpoint_id: u64,
        outcome: WriteOutcome,
        actions: &mut Vec<Action>,
    ) {
        let Some(job) = self.jobs.get_mut(job_id) else { return };
        let Some(coordinator) = &mut job.checkpoints else { return };
        let (completion, discard) = coordinator.written(Instant::now(), checkpoint_id, outcome);
        if !discard.is_empty() {
            actions.push(Action::Discard(Box::new(discard)));
        }
        let Some(completion) = completion else { return };
        let stop = completion.stop.is_some();
        match (&mut job.phase, completion.stop) {
            (Phase::Running(deployed), Some((savepoint, reply))) => {
                let slots = std::mem::take(&mut deployed.slots);
                job.phase = Phase::Stopping(Stopping { slots, savepoint, reply });
                job.message = "stopping: the savepoint is complete, the sinks commit".into();
            }
            (_, Some((_, reply))) => {
                let _ = reply.send(Err(format!("job {job_id} is no longer running (state {:?})", job.state())));
                return;
            }
            (_, None) => {}
        }
        if !job.is_deployed() {
            return;
        }
        for task_manager in job.task_managers() {
            actions.push(Action::Notify {
                task_manager,
                request: NotifyCheckpointRequest {
                    job_id: job.id.clone(),
                    attempt: job.attempt,
                    checkpoint_id: completion.id,
                    stop,
                },
            });
        }
    }

    /// Queues a savepoint of a running job that takes checkpoints.
    pub fn request_savepoint(
        &mut self,
        id: &str,
        directory: Option<Location>,
        stop: bool,
        reply: tokio::sync::oneshot::Sender<Result<String, String>>,
    ) {
        let Some(job) = self.jobs.get_mut(id) else {
            let _ = reply.send(Err(format!("no job with id '{id}'; `sluice list` shows the known jobs")));
            return;
        };
        match &job.phase {
            Phase::Running(_) => {}
            Phase::Stopping(s) => {
                let _ = reply.send(Err(format!("job {id} is stopping with the savepoint at {}", s.savepoint)));
                return;
            }
            _ => {
                let _ = reply.send(Err(format!("job {id} is not running (state {:?})", job.state())));
                return;
            }
        }
        let Some(coordinator) = &mut job.checkpoints else {
            let _ = reply.send(Err(format!(
                "job {id} does not take checkpoints; submit it with SET 'execution.checkpointing.interval' = '10s' \
                 (or --checkpoint-interval) to take savepoints"
            )));
            return;
        };
        let directory = directory.unwrap_or_else(|| coordinator.options.savepoint_directory.clone());
        coordinator.request_savepoint(SavepointRequest { directory, stop, reply });
    }

    /// Every task manager committed a stop-with-savepoint and ended the job's tasks.
    pub fn stopped(&mut self, id: &str, actions: &mut Vec<Action>) {
        let Some(Phase::Stopping(stopping)) = self.jobs.get(id).map(|j| &j.phase) else { return };
        let message = format!("stopped with a savepoint at {}", stopping.savepoint);
        self.end_job(id, JobState::Finished, message, actions);
    }

    /// A task manager could not commit a stop-with-savepoint: the job fails with `reason`
    /// (the savepoint stays usable; what the sinks had not committed is in it).
    pub fn stop_failed(&mut self, id: &str, reason: &str, actions: &mut Vec<Action>) {
        let Some(Phase::Stopping(stopping)) = self.jobs.get(id).map(|j| &j.phase) else { return };
        let message =
            format!("stop-with-savepoint failed after the savepoint at {} was taken: {reason}", stopping.savepoint);
        self.end_job(id, JobState::Failed, message, actions);
    }

    /// Marks a deployment as failed.
    pub fn deploy_failed(&mut self, job_id: &str, task_manager: &str, error: &str, actions: &mut Vec<Action>) {
        let message = format!("deploying to {task_manager} failed: {error}");
        self.fail_or_restart(job_id, message, None, actions);
    }

    /// A task manager refused job `job_id`'s deployment as invalid (a configuration it
    /// cannot run, such as a model option it rejects): every restart would fail the same
    /// way, so the job fails now with the reason, as Flink fails a job whose graph cannot
    /// be instantiated.
    pub fn deploy_refused(&mut self, job_id: &str, task_manager: &str, error: &str, actions: &mut Vec<Action>) {
        if !self.jobs.get(job_id).is_some_and(Job::is_deployed) {
            return;
        }
        let message = format!(
            "deploying to {task_manager} failed: {error}; the job cannot run as written: fix it and submit it again"
        );
        self.end_job(job_id, JobState::Failed, message, actions);
    }

    /// Declares task managers silent for longer than `timeout` lost.
    pub fn expire_task_managers(&mut self, timeout: Duration, actions: &mut Vec<Action>) {
        let expired: Vec<(String, String, Duration)> = self
            .task_managers
            .iter()
            .filter(|t| t.last_heartbeat.elapsed() > timeout)
            .map(|t| (t.id.clone(), t.address.clone(), t.last_heartbeat.elapsed()))
            .collect();
        for (id, address, silent) in expired {
            let reason = format!(
                "task manager {id} at {address} was lost: no heartbeat for {:.1}s (timeout {:.1}s)",
                silent.as_secs_f64(),
                timeout.as_secs_f64()
            );
            tracing::warn!("{reason}");
            self.lose_task_manager(&id, &reason, actions);
        }
    }

    /// Forgets a task manager: its jobs restart or fail with `reason`.
    pub fn lose_task_manager(&mut self, id: &str, reason: &str, actions: &mut Vec<Action>) {
        self.task_managers.retain(|t| t.id != id);
        let affected: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.slots().is_some_and(|s| s.contains_key(id)))
            .map(|j| j.id.clone())
            .collect();
        for job in affected {
            self.fail_or_restart(&job, reason.to_string(), Some(id), actions);
        }
        actions.retain(|a| {
            !matches!(a, Action::Cancel { task_manager, .. } | Action::Deploy { task_manager, .. }
                | Action::Trigger { task_manager, .. } | Action::Notify { task_manager, .. } if task_manager == id)
        });
    }

    /// Cancels a job; returns its state afterwards, or `None` if unknown.
    pub fn cancel(&mut self, id: &str, actions: &mut Vec<Action>) -> Option<JobState> {
        self.end_job(id, JobState::Canceled, "canceled by the user".into(), actions);
        self.jobs.get(id).map(|j| j.state())
    }

    /// Takes a reading of the metrics of every deployed job whose history is due.
    pub fn sample_metrics(&mut self, now: Instant) {
        for job in self.jobs.values_mut().filter(|j| j.is_deployed() && j.history.due(now)) {
            let tasks = job.tasks.iter().map(|(&k, t)| (k, t.metrics.clone())).collect();
            job.history.record(now, MetricsSample { at_ms: now_ms(), tasks });
        }
    }

    /// What the REST API shows of job `id` besides its status.
    pub fn details(&self, id: &str) -> Option<JobDetails<'_>> {
        let job = self.jobs.get(id)?;
        Some(JobDetails {
            graph: &job.graph,
            attempt: job.attempt,
            history: &job.history,
            checkpoints: job.checkpoints.as_ref().map(|c| &c.history),
            exceptions: &job.exceptions,
        })
    }

    /// Free slots per task manager.
    pub fn slots_free(&self) -> Vec<(String, u32)> {
        self.free_slots().into_iter().map(|f| (f.task_manager, f.free)).collect()
    }

    /// Summaries of every job, in submission order.
    pub fn list(&self) -> Vec<JobSummary> {
        self.order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|j| JobSummary {
                job_id: j.id.clone(),
                name: j.graph.name.clone(),
                state: j.state() as i32,
                submitted_at_ms: j.submitted_at_ms,
            })
            .collect()
    }

    /// Full status of a job.
    pub fn status(&self, id: &str) -> Option<JobStatus> {
        let job = self.jobs.get(id)?;
        Some(JobStatus {
            job_id: job.id.clone(),
            name: job.graph.name.clone(),
            state: job.state() as i32,
            message: job.message.clone(),
            submitted_at_ms: job.submitted_at_ms,
            finished_at_ms: match &job.phase {
                Phase::Ended(e) => e.at_ms,
                _ => 0,
            },
            tasks: job
                .tasks
                .iter()
                .map(|(&(vertex_id, subtask), t)| TaskStatus {
                    vertex_id,
                    subtask,
                    task_manager_id: t.task_manager.clone(),
                    state: t.state as i32,
                    metrics: Some(t.metrics.clone()),
                    error: t.error.clone(),
                    last_checkpoint: job
                        .checkpoints
                        .as_ref()
                        .and_then(|c| c.task_stats.get(&(vertex_id, subtask)).copied()),
                })
                .collect(),
            checkpoints: job.checkpoints.as_ref().map(|c| c.summary.clone()),
            restarts: job.restarts,
            max_restarts: job.restart.max_attempts(),
            vertices: job
                .graph
                .vertices
                .iter()
                .map(|v| VertexInfo {
                    id: v.id,
                    name: v.name.clone(),
                    parallelism: v.parallelism,
                    source: !job.graph.edges.iter().any(|e| e.target_vertex == v.id),
                    sink: !job.graph.edges.iter().any(|e| e.source_vertex == v.id),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::Vertex;

    fn graph(parallelism: &[u32]) -> JobGraph {
        JobGraph {
            name: "job".into(),
            vertices: parallelism
                .iter()
                .enumerate()
                .map(|(i, &p)| Vertex { id: i as u32, name: format!("v{i}"), parallelism: p, operators: vec![] })
                .collect(),
            edges: vec![],
            config: Default::default(),
            explain: String::new(),
        }
    }

    fn report(job: &str, vertex: u32, subtask: u32, state: TaskState, error: &str) -> TaskStateReport {
        TaskStateReport {
            task: Some(TaskId { job_id: job.into(), vertex_id: vertex, subtask, attempt: 0 }),
            state: state as i32,
            error: error.into(),
            metrics: None,
        }
    }

    #[test]
    fn a_job_waits_for_slots_then_runs_and_finishes() {
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let mut actions = Vec::new();
        let job = s.submit(graph(&[4, 2]), None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Created as i32);
        assert!(status.message.contains("waiting for 4 free task slots: 0 free"), "{}", status.message);
        s.register("a:1".into(), 2, &mut actions);
        s.register("b:1".into(), 2, &mut actions);
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(s.status(&job).unwrap().state, JobState::Running as i32);
        assert_eq!(actions.iter().filter(|a| matches!(a, Action::Deploy { .. })).count(), 2);
        for (v, p) in [(0, 4), (1, 2)] {
            for st in 0..p {
                s.task_state(&report(&job, v, st, TaskState::Finished, ""), &mut actions);
            }
        }
        assert_eq!(s.status(&job).unwrap().state, JobState::Finished as i32);
        assert!(s.free_slots().iter().all(|f| f.free == 2), "slots are released");
    }

    #[test]
    fn waiting_too_long_fails_with_the_reason() {
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let mut actions = Vec::new();
        s.register("a:1".into(), 1, &mut actions);
        let job = s.submit(graph(&[2]), None).unwrap();
        s.schedule(Duration::ZERO, &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(status.message.contains("could not get 2 task slots"), "{}", status.message);
    }

    #[test]
    fn a_refused_deployment_fails_the_job_without_restarting_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, job, _) = running_checkpointed_job(dir.path());
        let mut actions = Vec::new();
        s.deploy_refused(&job, "tm-1", "model 'm': 'base_url' uses plain HTTP", &mut actions);
        s.schedule(Duration::from_secs(60), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32, "{}", status.message);
        assert!(status.message.contains("plain HTTP") && status.message.contains("fix it"), "{}", status.message);
        assert_eq!(status.restarts, 0);
        assert!(!actions.iter().any(|a| matches!(a, Action::Deploy { .. })), "not deployed again");
    }

    #[test]
    fn a_failed_task_fails_the_job_and_cancels_the_rest() {
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let mut actions = Vec::new();
        s.register("a:1".into(), 1, &mut actions);
        s.register("b:1".into(), 1, &mut actions);
        let job = s.submit(graph(&[2]), None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        actions.clear();
        s.task_state(&report(&job, 0, 1, TaskState::Failed, "disk full"), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(status.message.contains("subtask 2/2 of 'v0' failed on tm-2: disk full"), "{}", status.message);
        assert_eq!(actions.iter().filter(|a| matches!(a, Action::Cancel { .. })).count(), 2);
    }

    #[test]
    fn a_lost_task_manager_fails_its_jobs() {
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let mut actions = Vec::new();
        s.register("a:1".into(), 2, &mut actions);
        let job = s.submit(graph(&[2]), None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        s.expire_task_managers(Duration::ZERO, &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(status.message.contains("tm-1 at a:1 was lost: no heartbeat"), "{}", status.message);
        assert!(s.task_managers().is_empty());
        assert!(!s.heartbeat("tm-1", "", &[]), "a lost task manager must register again");
    }

    #[test]
    fn cancel_frees_slots_for_the_next_job() {
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let mut actions = Vec::new();
        s.register("a:1".into(), 2, &mut actions);
        let first = s.submit(graph(&[2]), None).unwrap();
        let second = s.submit(graph(&[2]), None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(s.status(&second).unwrap().state, JobState::Created as i32);
        assert_eq!(s.cancel(&first, &mut actions), Some(JobState::Canceled));
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(s.status(&second).unwrap().state, JobState::Running as i32);
    }

    fn checkpointed_graph() -> JobGraph {
        let mut g = graph(&[2]);
        g.vertices[0].operators =
            vec![sluice_proto::OperatorSpec { uid: "0-src".into(), name: "src".into(), kind: None }];
        for (k, v) in [
            ("execution.checkpointing.interval", "10ms"),
            ("restart-strategy.type", "fixed-delay"),
            ("restart-strategy.fixed-delay.delay", "0ms"),
            ("restart-strategy.fixed-delay.attempts", "1"),
        ] {
            g.config.insert(k.into(), v.into());
        }
        g
    }

    fn report_at(job: &str, subtask: u32, attempt: u32, state: TaskState) -> TaskStateReport {
        TaskStateReport {
            task: Some(TaskId { job_id: job.into(), vertex_id: 0, subtask, attempt }),
            state: state as i32,
            error: "boom".into(),
            metrics: None,
        }
    }

    /// Ticks the checkpoint schedule, 20 ms at a time, until a checkpoint is triggered;
    /// returns its id and the instant it was triggered at.
    fn trigger_next(s: &mut ClusterState, actions: &mut Vec<Action>) -> (u64, Instant) {
        let mut now = Instant::now();
        loop {
            s.tick_checkpoints(now, actions);
            if let Some(id) = actions.iter().find_map(|a| {
                if let Action::Trigger { request, .. } = a {
                    Some(request.checkpoint_id)
                } else {
                    None
                }
            }) {
                return (id, now);
            }
            now += Duration::from_millis(20);
        }
    }

    /// The inline entries restored to `operator`, of all its lists.
    fn restored_entries(operator: &sluice_proto::OperatorRestore) -> Vec<Vec<u8>> {
        operator.lists.iter().flat_map(|l| &l.parts).flat_map(|p| p.entries.clone()).collect()
    }

    /// Runs one checkpoint of a running job through trigger, acknowledgements and completion.
    fn complete_checkpoint(s: &mut ClusterState, job: &str, attempt: u32) -> u64 {
        let mut actions = Vec::new();
        let (id, _) = trigger_next(s, &mut actions);
        for subtask in 0..2 {
            let snapshot = sluice_proto::TaskSnapshot {
                operators: vec![sluice_proto::OperatorSnapshot {
                    uid: "0-src".into(),
                    lists: vec![sluice_proto::OperatorListSnapshot {
                        name: "default".into(),
                        entries: vec![vec![subtask as u8, id as u8]],
                        entry_count: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let ack = CheckpointAck {
                task: Some(TaskId { job_id: job.into(), vertex_id: 0, subtask, attempt }),
                checkpoint_id: id,
                snapshot: Some(snapshot),
                stats: Some(Default::default()),
            };
            s.acknowledge(ack, &mut actions);
        }
        perform_disk_work(s, &mut actions);
        assert!(actions.iter().any(|a| matches!(a, Action::Notify { request, .. } if request.checkpoint_id == id)));
        id
    }

    /// Does what the server does outside the lock: writes checkpoints and deletes old ones.
    fn perform_disk_work(s: &mut ClusterState, actions: &mut Vec<Action>) {
        while let Some(i) =
            actions.iter().position(|a| matches!(a, Action::WriteCheckpoint { .. } | Action::Discard(_)))
        {
            match actions.remove(i) {
                Action::WriteCheckpoint { job_id, write } => {
                    let id = write.id;
                    let outcome = write.perform();
                    s.checkpoint_written(&job_id, id, outcome, actions);
                }
                Action::Discard(discard) => discard.perform(),
                _ => unreachable!("matched above"),
            }
        }
    }

    /// The jobmanager's lock also serves heartbeats: completing a checkpoint writes
    /// nothing while the state is held, but hands the disk work to the server.
    #[test]
    fn completing_a_checkpoint_leaves_its_disk_work_outside_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut graph = checkpointed_graph();
        graph.config.insert("state.checkpoints.num-retained".into(), "1".into());
        let (mut s, job, mut actions) = running_job(dir.path(), graph);
        let first = complete_checkpoint(&mut s, &job, 0);
        actions.clear();
        let (second, now) = trigger_next(&mut s, &mut actions);
        for subtask in 0..2 {
            let ack = CheckpointAck {
                task: Some(TaskId { job_id: job.clone(), vertex_id: 0, subtask, attempt: 0 }),
                checkpoint_id: second,
                snapshot: Some(Default::default()),
                stats: Some(Default::default()),
            };
            s.acknowledge(ack, &mut actions);
        }
        let chk = |id: u64| dir.path().join(&job).join(format!("chk-{id}"));
        assert!(!chk(second).join("_metadata").exists(), "no metadata written under the lock");
        assert!(!actions.iter().any(|a| matches!(a, Action::Notify { .. })), "complete only once written");
        s.tick_checkpoints(now + Duration::from_secs(1), &mut actions);
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Trigger { request, .. } if request.checkpoint_id > second)),
            "one at a time"
        );
        let write =
            actions.iter().position(|a| matches!(a, Action::WriteCheckpoint { .. })).expect("the write is handed out");
        let Action::WriteCheckpoint { job_id, write } = actions.remove(write) else { unreachable!() };
        let outcome = write.perform();
        assert!(chk(second).join("_metadata").exists());
        s.checkpoint_written(&job_id, second, outcome, &mut actions);
        assert!(actions.iter().any(|a| matches!(a, Action::Notify { request, .. } if request.checkpoint_id == second)));
        assert!(chk(first).exists(), "the retired checkpoint is deleted outside the lock too");
        let discard = actions.iter().position(|a| matches!(a, Action::Discard(_))).expect("the deletion is handed out");
        let Action::Discard(discard) = actions.remove(discard) else { unreachable!() };
        discard.perform();
        assert!(!chk(first).exists());
    }

    /// A cluster of one 2-slot task manager running a checkpointed job of 2 subtasks; the
    /// actions so far (its deployment) are returned.
    fn running_checkpointed_job(dir: &std::path::Path) -> (ClusterState, String, Vec<Action>) {
        running_job(dir, checkpointed_graph())
    }

    /// Like [`running_checkpointed_job`], with the job graph given.
    fn running_job(dir: &std::path::Path, graph: JobGraph) -> (ClusterState, String, Vec<Action>) {
        let mut s = ClusterState::new(Location::local(dir));
        let mut actions = Vec::new();
        s.register("a:1".into(), 2, &mut actions);
        let job = s.submit(graph, None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        for subtask in 0..2 {
            s.task_state(&report_at(&job, subtask, 0, TaskState::Running), &mut actions);
        }
        (s, job, actions)
    }

    fn redeployment(actions: &[Action]) -> &sluice_proto::DeployTasksRequest {
        actions
            .iter()
            .find_map(|a| if let Action::Deploy { request, .. } = a { Some(request) } else { None })
            .expect("a deployment")
    }

    #[test]
    fn a_failure_restarts_from_the_latest_checkpoint_until_restarts_run_out() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, job, mut actions) = running_checkpointed_job(dir.path());
        assert!(!redeployment(&actions).checkpoint_directory.is_empty());
        let first = complete_checkpoint(&mut s, &job, 0);
        assert!(dir.path().join(&job).join(format!("chk-{first}/_metadata")).exists());
        let status = s.status(&job).unwrap();
        assert_eq!(status.checkpoints.unwrap().completed, 1);

        actions.clear();
        s.task_state(&report_at(&job, 1, 0, TaskState::Failed), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Restarting as i32);
        assert!(status.message.contains("restart 1 of 1"), "{}", status.message);
        assert!(actions.iter().any(|a| matches!(a, Action::Cancel { .. })));
        actions.clear();
        s.schedule(Duration::from_secs(60), &mut actions);
        let request = redeployment(&actions);
        assert_eq!((request.attempt, request.restored_checkpoint_id), (1, first));
        let restored: Vec<Vec<u8>> = request.restore.iter().flat_map(|r| restored_entries(&r.operators[0])).collect();
        assert_eq!(restored, vec![vec![0, first as u8], vec![1, first as u8]]);

        actions.clear();
        s.task_state(&report_at(&job, 0, 1, TaskState::Failed), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(status.message.contains("no restarts left after 1"), "{}", status.message);
    }

    /// Fails subtask 1 of attempt 0 and runs the scheduler: the actions of the restart.
    fn fail_and_restart(s: &mut ClusterState, job: &str) -> Vec<Action> {
        let mut actions = Vec::new();
        s.task_state(&report_at(job, 1, 0, TaskState::Failed), &mut actions);
        s.schedule(Duration::from_secs(60), &mut actions);
        actions
    }

    /// A job a recovering jobmanager found with checkpoint 1 intact and checkpoint 2
    /// damaged in its storage, on a cluster of one 2-slot task manager, scheduled.
    fn recovered_with_a_damaged_newest(graph: JobGraph) -> (ClusterState, String, Vec<Action>) {
        use crate::checkpoint::StoredCheckpoint;
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let record = JobRecord { job_id: "j".into(), graph: Some(graph), recoveries: 1, ..Default::default() };
        let intact = CheckpointMetadata { job_id: "j".into(), checkpoint_id: 1, ..Default::default() };
        let stored = StoredCheckpoints {
            completed: vec![
                StoredCheckpoint { id: 1, files: BTreeSet::new(), metadata: Ok(intact) },
                StoredCheckpoint {
                    id: 2,
                    files: BTreeSet::new(),
                    metadata: Err("checkpoint 's3://b/j/chk-2' is unusable: bad header".into()),
                },
            ],
            highest_id: 3,
        };
        let job = s.prepare_recovered(&record, stored, None).unwrap();
        let job = s.add(job);
        let mut actions = Vec::new();
        s.register("a:1".into(), 2, &mut actions);
        s.schedule(Duration::from_secs(60), &mut actions);
        (s, job, actions)
    }

    #[test]
    fn a_damaged_newest_checkpoint_fails_the_restart_instead_of_replaying_committed_output() {
        let (s, job, actions) = recovered_with_a_damaged_newest(checkpointed_graph());
        assert!(!actions.iter().any(|a| matches!(a, Action::Deploy { .. })), "no restore from an older checkpoint");
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        for part in ["chk-2' is unusable", "may have committed", "recover-without-newest"] {
            assert!(status.message.contains(part), "{part:?} missing from: {}", status.message);
        }
    }

    #[test]
    fn a_damaged_checkpoint_falls_back_to_the_previous_one_when_duplicates_are_accepted() {
        let mut graph = checkpointed_graph();
        graph.config.insert("execution.checkpointing.recover-without-newest".into(), "true".into());
        let (s, job, actions) = recovered_with_a_damaged_newest(graph);
        let deployment = redeployment(&actions);
        assert_eq!(deployment.restored_checkpoint_id, 1);
        assert_eq!(deployment.tasks[0].attempt, (1 << 16) + 1, "attempts above the earlier jobmanagers'");
        let summary = s.status(&job).unwrap().checkpoints.unwrap();
        assert!(summary.last_failure.contains("chk-2' is unusable"), "{}", summary.last_failure);
        assert_eq!(summary.restored_from_id, 1);
    }

    /// A checkpoint whose metadata file was damaged after it completed is still restored
    /// by the jobmanager that completed it: it keeps the metadata it wrote.
    #[test]
    fn a_restart_restores_the_metadata_the_jobmanager_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, job, _) = running_checkpointed_job(dir.path());
        complete_checkpoint(&mut s, &job, 0);
        let second = complete_checkpoint(&mut s, &job, 0);
        std::fs::write(dir.path().join(&job).join(format!("chk-{second}/_metadata")), b"garbage").unwrap();
        let actions = fail_and_restart(&mut s, &job);
        assert_eq!(redeployment(&actions).restored_checkpoint_id, second);
    }

    #[test]
    fn a_restart_before_the_first_checkpoint_restores_the_savepoint_the_job_started_from() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, first_job, _) = running_checkpointed_job(dir.path());
        let id = complete_checkpoint(&mut s, &first_job, 0);
        let savepoint = Location::local(dir.path().join(&first_job).join(format!("chk-{id}")));
        let mut actions = Vec::new();
        s.register("b:1".into(), 2, &mut actions);
        let job = s.submit(checkpointed_graph(), Some(&savepoint)).unwrap();
        actions.clear();
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(redeployment(&actions).restored_checkpoint_id, id);
        for subtask in 0..2 {
            s.task_state(&report_at(&job, subtask, 0, TaskState::Running), &mut actions);
        }
        let actions = fail_and_restart(&mut s, &job);
        let request = redeployment(&actions);
        assert_eq!((request.attempt, request.restored_checkpoint_id), (1, id), "the restart restores the savepoint");
        let restored: Vec<Vec<u8>> = request.restore.iter().flat_map(|r| restored_entries(&r.operators[0])).collect();
        assert_eq!(restored, vec![vec![0, id as u8], vec![1, id as u8]], "the savepoint's state, not an empty start");
    }

    #[test]
    fn a_trigger_that_cannot_be_delivered_fails_the_checkpoint_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, job, _) = running_checkpointed_job(dir.path());
        let mut actions = Vec::new();
        let (id, _) = trigger_next(&mut s, &mut actions);
        s.trigger_failed(&job, 0, id, "its trigger could not be delivered to tm-1: connection refused");
        let summary = s.status(&job).unwrap().checkpoints.unwrap();
        assert_eq!((summary.failed, summary.pending_id), (1, 0));
        assert!(
            summary.last_failure.contains(&format!("checkpoint {id} failed: its trigger could not be delivered")),
            "{}",
            summary.last_failure
        );
        let next = complete_checkpoint(&mut s, &job, 0);
        assert!(next > id, "the next checkpoint runs without waiting for the timeout");
    }

    #[test]
    fn old_checkpoints_are_deleted_beyond_the_retained_number() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, job, _) = running_checkpointed_job(dir.path());
        let ids: Vec<u64> = (0..5).map(|_| complete_checkpoint(&mut s, &job, 0)).collect();
        let exists = |id: &u64| dir.path().join(&job).join(format!("chk-{id}")).exists();
        assert_eq!(ids.iter().filter(|id| exists(id)).count(), 3);
        assert!(!exists(&ids[0]) && exists(&ids[4]));
    }

    #[test]
    fn checkpoints_in_a_local_temporary_directory_refuse_tasks_on_several_hosts() {
        let mut s = ClusterState::new(Location::local(std::env::temp_dir().join("sluice-test-checkpoints")));
        let mut actions = Vec::new();
        s.register("host-a:6121".into(), 1, &mut actions);
        s.register("host-b:6121".into(), 1, &mut actions);
        let job = s.submit(checkpointed_graph(), None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(
            status.message.contains("host-a, host-b") && status.message.contains("--checkpoint-dir"),
            "{}",
            status.message
        );
        assert!(!actions.iter().any(|a| matches!(a, Action::Deploy { .. })));
    }

    #[test]
    fn a_restart_waits_for_a_replacement_task_manager() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ClusterState::new(Location::local(dir.path()));
        let mut actions = Vec::new();
        s.register("a:1".into(), 1, &mut actions);
        s.register("a:2".into(), 1, &mut actions);
        let job = s.submit(checkpointed_graph(), None).unwrap();
        s.schedule(Duration::from_secs(60), &mut actions);
        s.lose_task_manager("tm-2", "task manager tm-2 was lost", &mut actions);
        s.schedule(Duration::from_secs(60), &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Restarting as i32);
        assert!(status.message.contains("waiting for 2 free task slots: 1 free"), "{}", status.message);
        assert_eq!(status.restarts, 1);
        actions.clear();
        s.register("a:3".into(), 1, &mut actions);
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(s.status(&job).unwrap().state, JobState::Running as i32);
        assert_eq!(redeployment(&actions).attempt, 1);
    }
}
