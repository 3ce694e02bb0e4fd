//! The jobmanager's bookkeeping: registered task managers, jobs, their placement and the
//! states of their tasks. Methods here change state and return the RPCs to make
//! ([`Action`]s); the server performs them outside the lock.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::{
    JobGraph, JobState, JobStatus, JobSummary, TaskId, TaskLocation, TaskMetrics, TaskState, TaskStateReport, TaskStatus,
    VertexInfo,
};

use crate::placement::{place, FreeSlots};

/// An RPC the jobmanager must send to a task manager.
#[derive(Debug, Clone)]
pub enum Action {
    /// Deploy a job's tasks on a task manager.
    Deploy {
        /// Target task manager.
        task_manager: String,
        /// The request.
        request: sluice_proto::DeployTasksRequest,
    },
    /// Cancel a job's tasks on a task manager.
    Cancel {
        /// Target task manager.
        task_manager: String,
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

#[derive(Debug)]
struct Job {
    id: String,
    graph: JobGraph,
    state: JobState,
    message: String,
    submitted_at_ms: u64,
    finished_at_ms: u64,
    waiting_since: Instant,
    attempt: u32,
    /// Slots held per task manager.
    slots: HashMap<String, u32>,
    tasks: BTreeMap<(u32, u32), TaskInfo>,
}

impl Job {
    fn required_slots(&self) -> u32 {
        self.graph.vertices.iter().map(|v| v.parallelism).max().unwrap_or(0)
    }

    fn is_terminal(&self) -> bool {
        matches!(self.state, JobState::Finished | JobState::Failed | JobState::Canceled)
    }

    fn task_name(&self, vertex: u32, subtask: u32) -> String {
        match self.graph.vertices.get(vertex as usize) {
            Some(v) => format!("subtask {}/{} of '{}'", subtask + 1, v.parallelism, v.name),
            None => format!("subtask {} of vertex {vertex}", subtask + 1),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// All of the jobmanager's state.
#[derive(Debug, Default)]
pub struct ClusterState {
    task_managers: Vec<TaskManagerInfo>,
    next_task_manager: u64,
    jobs: BTreeMap<String, Job>,
    /// Job ids in submission order, for FIFO scheduling and listing.
    order: Vec<String>,
}

impl ClusterState {
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

    /// Records a heartbeat; false if the task manager is unknown.
    pub fn heartbeat(&mut self, id: &str, reports: &[sluice_proto::TaskMetricsReport]) -> bool {
        let Some(tm) = self.task_managers.iter_mut().find(|t| t.id == id) else { return false };
        tm.last_heartbeat = Instant::now();
        for report in reports {
            let (Some(task), Some(metrics)) = (&report.task, &report.metrics) else { continue };
            if let Some(job) = self.jobs.get_mut(&task.job_id) {
                if job.attempt == task.attempt {
                    if let Some(info) = job.tasks.get_mut(&(task.vertex_id, task.subtask)) {
                        info.metrics = *metrics;
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

    /// Adds a job in CREATED state and returns its id.
    pub fn submit(&mut self, graph: JobGraph) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let job = Job {
            id: id.clone(),
            graph,
            state: JobState::Created,
            message: "waiting to be scheduled".into(),
            submitted_at_ms: now_ms(),
            finished_at_ms: 0,
            waiting_since: Instant::now(),
            attempt: 0,
            slots: HashMap::new(),
            tasks: BTreeMap::new(),
        };
        self.jobs.insert(id.clone(), job);
        self.order.push(id.clone());
        id
    }

    fn free_slots(&self) -> Vec<FreeSlots> {
        self.task_managers
            .iter()
            .map(|tm| {
                let held: u32 = self
                    .jobs
                    .values()
                    .filter(|j| !j.is_terminal())
                    .filter_map(|j| j.slots.get(&tm.id))
                    .sum();
                FreeSlots { task_manager: tm.id.clone(), free: tm.slots.saturating_sub(held) }
            })
            .collect()
    }

    /// Places waiting jobs in submission order while slots allow; fails jobs that waited
    /// longer than `timeout`.
    pub fn schedule(&mut self, timeout: Duration, actions: &mut Vec<Action>) {
        for id in self.order.clone() {
            let free = self.free_slots();
            let total_slots: u32 = self.task_managers.iter().map(|t| t.slots).sum();
            let Some(job) = self.jobs.get_mut(&id) else { continue };
            if job.state != JobState::Created {
                continue;
            }
            let required = job.required_slots();
            let available: u32 = free.iter().map(|f| f.free).sum();
            let Some(placement) = place(required, &free) else {
                let waited = job.waiting_since.elapsed();
                let why = format!(
                    "waiting for {required} free task slots: {available} free of {total_slots} on {} task manager(s); \
                     start more task managers (sluice taskmanager --slots N) or lower the parallelism",
                    self.task_managers.len()
                );
                if waited >= timeout {
                    job.state = JobState::Failed;
                    job.finished_at_ms = now_ms();
                    job.message = format!("could not get {required} task slots within {}s: {why}", timeout.as_secs());
                    tracing::warn!(job = %job.id, message = %job.message, "job failed");
                } else {
                    job.message = why;
                }
                continue;
            };
            self.deploy(&id, placement, actions);
        }
    }

    fn deploy(&mut self, id: &str, placement: Vec<String>, actions: &mut Vec<Action>) {
        let addresses: HashMap<String, String> =
            self.task_managers.iter().map(|t| (t.id.clone(), t.address.clone())).collect();
        let Some(job) = self.jobs.get_mut(id) else { return };
        job.slots.clear();
        for tm in &placement {
            *job.slots.entry(tm.clone()).or_default() += 1;
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
                    TaskInfo { task_manager: tm, state: TaskState::Deploying, metrics: TaskMetrics::default(), error: String::new() },
                );
            }
        }
        job.state = JobState::Running;
        job.message = format!("deployed on {}", per_tm.keys().cloned().collect::<Vec<_>>().join(", "));
        tracing::info!(job = %job.id, name = %job.graph.name, placement = %job.message, "job scheduled");
        for (task_manager, tasks) in per_tm {
            actions.push(Action::Deploy {
                task_manager: task_manager.clone(),
                request: sluice_proto::DeployTasksRequest {
                    task_manager_id: task_manager,
                    job_id: job.id.clone(),
                    attempt: job.attempt,
                    graph: Some(job.graph.clone()),
                    tasks,
                    locations: locations.clone(),
                },
            });
        }
    }

    fn end_job(&mut self, id: &str, state: JobState, message: String, actions: &mut Vec<Action>) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        if job.is_terminal() {
            return;
        }
        let was_deployed = job.state == JobState::Running;
        job.state = state;
        job.message = message;
        job.finished_at_ms = now_ms();
        match state {
            JobState::Failed => tracing::warn!(job = %id, message = %job.message, "job failed"),
            _ => tracing::info!(job = %id, state = ?state, "job ended"),
        }
        if was_deployed && state != JobState::Finished {
            for task_manager in job.slots.keys() {
                actions.push(Action::Cancel { task_manager: task_manager.clone(), job_id: id.to_string() });
            }
        }
        job.slots.clear();
    }

    /// Applies a task's state change.
    pub fn task_state(&mut self, report: &TaskStateReport, actions: &mut Vec<Action>) {
        let Some(task) = &report.task else { return };
        let Some(job) = self.jobs.get_mut(&task.job_id) else { return };
        if job.attempt != task.attempt || job.is_terminal() {
            return;
        }
        let state = TaskState::try_from(report.state).unwrap_or(TaskState::Failed);
        let name = job.task_name(task.vertex_id, task.subtask);
        let Some(info) = job.tasks.get_mut(&(task.vertex_id, task.subtask)) else { return };
        info.state = state;
        info.error = report.error.clone();
        if let Some(m) = report.metrics {
            info.metrics = m;
        }
        let tm = info.task_manager.clone();
        let id = job.id.clone();
        match state {
            TaskState::Failed => {
                let message = format!("{name} failed on {tm}: {}", report.error);
                self.end_job(&id, JobState::Failed, message, actions);
            }
            TaskState::Canceled => {
                let message = format!("{name} was canceled by {tm} (it lost contact with the jobmanager)");
                self.end_job(&id, JobState::Failed, message, actions);
            }
            TaskState::Finished if job.tasks.values().all(|t| t.state == TaskState::Finished) => {
                self.end_job(&id, JobState::Finished, "all tasks finished".into(), actions);
            }
            _ => {}
        }
    }

    /// Marks a deployment as failed.
    pub fn deploy_failed(&mut self, job_id: &str, task_manager: &str, error: &str, actions: &mut Vec<Action>) {
        let message = format!("deploying to {task_manager} failed: {error}");
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

    fn lose_task_manager(&mut self, id: &str, reason: &str, actions: &mut Vec<Action>) {
        self.task_managers.retain(|t| t.id != id);
        let affected: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running && j.slots.contains_key(id))
            .map(|j| j.id.clone())
            .collect();
        for job in affected {
            self.end_job(&job, JobState::Failed, reason.to_string(), actions);
        }
        actions.retain(|a| !matches!(a, Action::Cancel { task_manager, .. } | Action::Deploy { task_manager, .. } if task_manager == id));
    }

    /// Cancels a job; returns its state afterwards, or `None` if unknown.
    pub fn cancel(&mut self, id: &str, actions: &mut Vec<Action>) -> Option<JobState> {
        self.end_job(id, JobState::Canceled, "canceled by the user".into(), actions);
        self.jobs.get(id).map(|j| j.state)
    }

    /// Summaries of every job, in submission order.
    pub fn list(&self) -> Vec<JobSummary> {
        self.order
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .map(|j| JobSummary {
                job_id: j.id.clone(),
                name: j.graph.name.clone(),
                state: j.state as i32,
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
            state: job.state as i32,
            message: job.message.clone(),
            submitted_at_ms: job.submitted_at_ms,
            finished_at_ms: job.finished_at_ms,
            tasks: job
                .tasks
                .iter()
                .map(|(&(vertex_id, subtask), t)| TaskStatus {
                    vertex_id,
                    subtask,
                    task_manager_id: t.task_manager.clone(),
                    state: t.state as i32,
                    metrics: Some(t.metrics),
                    error: t.error.clone(),
                })
                .collect(),
            vertices: job
                .graph
                .vertices
                .iter()
                .map(|v| VertexInfo { id: v.id, name: v.name.clone(), parallelism: v.parallelism })
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
        let mut s = ClusterState::default();
        let mut actions = Vec::new();
        let job = s.submit(graph(&[4, 2]));
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
        let mut s = ClusterState::default();
        let mut actions = Vec::new();
        s.register("a:1".into(), 1, &mut actions);
        let job = s.submit(graph(&[2]));
        s.schedule(Duration::ZERO, &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(status.message.contains("could not get 2 task slots"), "{}", status.message);
    }

    #[test]
    fn a_failed_task_fails_the_job_and_cancels_the_rest() {
        let mut s = ClusterState::default();
        let mut actions = Vec::new();
        s.register("a:1".into(), 1, &mut actions);
        s.register("b:1".into(), 1, &mut actions);
        let job = s.submit(graph(&[2]));
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
        let mut s = ClusterState::default();
        let mut actions = Vec::new();
        s.register("a:1".into(), 2, &mut actions);
        let job = s.submit(graph(&[2]));
        s.schedule(Duration::from_secs(60), &mut actions);
        s.expire_task_managers(Duration::ZERO, &mut actions);
        let status = s.status(&job).unwrap();
        assert_eq!(status.state, JobState::Failed as i32);
        assert!(status.message.contains("tm-1 at a:1 was lost: no heartbeat"), "{}", status.message);
        assert!(s.task_managers().is_empty());
        assert!(!s.heartbeat("tm-1", &[]), "a lost task manager must register again");
    }

    #[test]
    fn cancel_frees_slots_for_the_next_job() {
        let mut s = ClusterState::default();
        let mut actions = Vec::new();
        s.register("a:1".into(), 2, &mut actions);
        let first = s.submit(graph(&[2]));
        let second = s.submit(graph(&[2]));
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(s.status(&second).unwrap().state, JobState::Created as i32);
        assert_eq!(s.cancel(&first, &mut actions), Some(JobState::Canceled));
        s.schedule(Duration::from_secs(60), &mut actions);
        assert_eq!(s.status(&second).unwrap().state, JobState::Running as i32);
    }
}
