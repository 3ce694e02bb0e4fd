//! The checkpoint coordinator of one job: triggers checkpoints, collects the subtasks'
//! acknowledgements, writes the metadata of complete checkpoints, keeps the last few and
//! deletes the rest, serves savepoints, and picks the checkpoint a restart restores.
//! Its decisions are the pure functions of [`super::decide`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::{CheckpointMetadata, CheckpointSummary, CheckpointTaskStats, JobGraph, TaskSnapshot, VertexSnapshot};
use tokio::sync::oneshot;

use super::decide::{self, SubtaskKey, TriggerFacts};
use super::options::CheckpointOptions;
use super::storage;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Test fault switch `SLUICE_TEST_EXIT_AFTER_CHECKPOINT=N`: the process exits right after
/// checkpoint N's metadata is written and before anyone is told, as if killed there.
fn exit_if_requested(id: u64) {
    static AFTER: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let after = AFTER.get_or_init(|| std::env::var("SLUICE_TEST_EXIT_AFTER_CHECKPOINT").ok().and_then(|v| v.parse().ok()));
    if *after == Some(id) {
        eprintln!("test fault: exiting after checkpoint {id} completed, before committing it");
        std::process::exit(137);
    }
}

/// A savepoint asked for by the CLI.
#[derive(Debug)]
pub struct SavepointRequest {
    /// The directory savepoints go under.
    pub directory: PathBuf,
    /// End the job once the savepoint is complete.
    pub stop: bool,
    /// Where to answer: the savepoint's path, or why it failed.
    pub reply: oneshot::Sender<Result<String, String>>,
}

#[derive(Debug)]
struct Pending {
    id: u64,
    timestamp_ms: u64,
    triggered_at: Instant,
    savepoint: Option<SavepointRequest>,
    acks: BTreeMap<SubtaskKey, (TaskSnapshot, CheckpointTaskStats)>,
}

#[derive(Debug)]
struct Completed {
    id: u64,
    files: BTreeSet<String>,
}

/// What happened when a checkpoint completed.
#[derive(Debug)]
pub struct Completion {
    /// The checkpoint.
    pub id: u64,
    /// Whether the job should stop now (stop-with-savepoint).
    pub stop: bool,
}

/// A trigger to send to the job's task managers.
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    /// The checkpoint.
    pub id: u64,
    /// When it was triggered (ms since the epoch).
    pub timestamp_ms: u64,
    /// The latest completed checkpoint of this attempt (0: none).
    pub last_completed: u64,
}

/// The coordinator of one job's checkpoints.
#[derive(Debug)]
pub struct Coordinator {
    /// The job's settings.
    pub options: CheckpointOptions,
    /// `<checkpoint dir>/<job id>`.
    pub job_dir: PathBuf,
    /// This coordinator's fencing identity.
    me: String,
    next_id: u64,
    pending: Option<Pending>,
    last_trigger: Option<Instant>,
    last_end: Option<Instant>,
    completed: Vec<Completed>,
    /// The latest acknowledged state of each subtask in the current attempt.
    last_state: BTreeMap<SubtaskKey, TaskSnapshot>,
    /// The latest checkpoint statistics of each subtask.
    pub task_stats: BTreeMap<SubtaskKey, CheckpointTaskStats>,
    /// Counters and the latest checkpoint, for status.
    pub summary: CheckpointSummary,
    queued_savepoint: Option<SavepointRequest>,
    pinned: Option<u64>,
    /// The checkpoint triggered once every task's input had ended.
    final_checkpoint: Option<u64>,
    /// The latest checkpoint completed by the current attempt (0: none yet).
    completed_this_attempt: u64,
}

impl Coordinator {
    /// A coordinator for job `job_id` with `options`; `me` identifies this jobmanager.
    pub fn new(job_id: &str, options: CheckpointOptions, me: String) -> Self {
        let job_dir = options.directory.join(job_id);
        let summary = CheckpointSummary {
            interval_ms: options.interval.map_or(0, |i| i.as_millis() as u64),
            ..Default::default()
        };
        Coordinator {
            options,
            job_dir,
            me,
            next_id: 1,
            pending: None,
            last_trigger: None,
            last_end: None,
            completed: Vec::new(),
            last_state: BTreeMap::new(),
            task_stats: BTreeMap::new(),
            summary,
            queued_savepoint: None,
            pinned: None,
            final_checkpoint: None,
            completed_this_attempt: 0,
        }
    }

    /// Claims the job's checkpoint directory for this coordinator (fencing older ones).
    pub fn claim(&self) -> Result<(), String> {
        storage::claim(&self.job_dir, &self.me).map_err(|e| e.to_string())
    }

    /// Queues a savepoint; it is taken as soon as no checkpoint is in flight.
    pub fn request_savepoint(&mut self, request: SavepointRequest) {
        if let Some(old) = self.queued_savepoint.replace(request) {
            let _ = old.reply.send(Err("superseded by a newer savepoint request".into()));
        }
    }

    /// Starts a checkpoint if one is due. `tasks_ready`: every task reported running,
    /// ended or finished; `all_ended`: every task's input has ended, so a final checkpoint
    /// lets them commit and finish.
    pub fn maybe_trigger(&mut self, now: Instant, tasks_ready: bool, all_ended: bool) -> Option<Trigger> {
        let facts = TriggerFacts {
            now,
            interval: self.options.interval,
            min_pause: self.options.min_pause,
            last_trigger: self.last_trigger,
            last_end: self.last_end,
            in_flight: self.pending.is_some(),
            tasks_ready,
            forced: self.queued_savepoint.is_some() || (all_ended && self.final_checkpoint.is_none()),
        };
        if !decide::should_trigger(&facts) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let timestamp_ms = now_ms();
        self.pending = Some(Pending { id, timestamp_ms, triggered_at: now, savepoint: self.queued_savepoint.take(), acks: BTreeMap::new() });
        self.last_trigger = Some(now);
        self.summary.pending_id = id;
        if all_ended {
            self.final_checkpoint.get_or_insert(id);
        }
        Some(Trigger { id, timestamp_ms, last_completed: self.completed_this_attempt })
    }

    /// Aborts the checkpoint in flight if it has run longer than the timeout.
    pub fn check_timeout(&mut self, now: Instant) {
        let expired = self.pending.as_ref().is_some_and(|p| now.duration_since(p.triggered_at) > self.options.timeout);
        if expired {
            let timeout = self.options.timeout;
            self.abort(now, &format!("it did not complete within {:?} ('execution.checkpointing.timeout')", timeout));
        }
    }

    /// Aborts the checkpoint in flight, if any.
    pub fn abort(&mut self, now: Instant, reason: &str) {
        if let Some(pending) = self.pending.take() {
            if self.final_checkpoint == Some(pending.id) {
                self.final_checkpoint = None;
            }
            let message = format!("checkpoint {} failed: {reason}", pending.id);
            tracing::warn!(job_dir = %self.job_dir.display(), "{message}");
            self.summary.failed += 1;
            self.summary.last_failure = message.clone();
            self.summary.pending_id = 0;
            self.last_end = Some(now);
            if let Some(savepoint) = pending.savepoint {
                let _ = savepoint.reply.send(Err(message));
            }
        }
    }

    /// The newest checkpoint id triggered so far (0: none).
    pub fn last_triggered(&self) -> u64 {
        self.next_id - 1
    }

    /// Aborts checkpoint `id` if it is the one in flight.
    pub fn abort_if_pending(&mut self, id: u64, now: Instant, reason: &str) {
        if self.pending.as_ref().is_some_and(|p| p.id == id) {
            self.abort(now, reason);
        }
    }

    /// A new attempt of the job starts: the checkpoint in flight is void, and the state
    /// of finished subtasks comes from the restored checkpoint.
    pub fn restart(&mut self, now: Instant) {
        self.abort(now, "the job is restarting");
        self.last_state.clear();
        self.final_checkpoint = None;
        self.completed_this_attempt = 0;
    }

    /// Records a subtask's acknowledgement; true when it belongs to the checkpoint in flight.
    pub fn acknowledge(&mut self, key: SubtaskKey, id: u64, snapshot: TaskSnapshot, stats: CheckpointTaskStats) -> bool {
        match &mut self.pending {
            Some(p) if p.id == id => {
                self.task_stats.insert(key, stats);
                p.acks.insert(key, (snapshot, stats));
                true
            }
            _ => false,
        }
    }

    /// Completes the checkpoint in flight if every subtask of `graph` acknowledged it or
    /// finished earlier (`finished`): writes its metadata, deletes old checkpoints, and
    /// answers a savepoint request. An error aborts the checkpoint.
    pub fn try_complete(&mut self, now: Instant, graph: &JobGraph, finished: &BTreeSet<SubtaskKey>) -> Option<Completion> {
        let pending = self.pending.as_ref()?;
        let subtasks: Vec<SubtaskKey> =
            graph.vertices.iter().flat_map(|v| (0..v.parallelism).map(move |s| (v.id, s))).collect();
        let acknowledged: BTreeSet<SubtaskKey> = pending.acks.keys().copied().collect();
        let finished_with_state: BTreeSet<SubtaskKey> =
            finished.iter().filter(|k| self.last_state.contains_key(k)).copied().collect();
        if !decide::is_complete(&subtasks, &acknowledged, &finished_with_state) {
            return None;
        }
        let pending = self.pending.take().expect("checked above");
        for (key, (snapshot, _)) in &pending.acks {
            self.last_state.insert(*key, snapshot.clone());
        }
        let metadata = CheckpointMetadata {
            job_id: self.job_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default(),
            checkpoint_id: pending.id,
            triggered_at_ms: pending.timestamp_ms,
            completed_at_ms: now_ms(),
            savepoint: false,
            coordinator: self.me.clone(),
            vertices: graph
                .vertices
                .iter()
                .map(|v| VertexSnapshot {
                    vertex_id: v.id,
                    parallelism: v.parallelism,
                    operator_uids: v.operators.iter().map(|o| o.uid.clone()).collect(),
                    subtasks: (0..v.parallelism).map(|s| self.last_state.get(&(v.id, s)).cloned().unwrap_or_default()).collect(),
                })
                .collect(),
        };
        let dir = self.job_dir.join(format!("chk-{}", pending.id));
        if let Err(e) = storage::write_metadata(&self.job_dir, &dir, &metadata, &self.me) {
            self.pending = Some(pending);
            self.abort(now, &e.to_string());
            return None;
        }
        exit_if_requested(pending.id);
        let files = storage::referenced_files(&metadata);
        let stats: Vec<&CheckpointTaskStats> = pending.acks.values().map(|(_, s)| s).collect();
        self.summary.completed += 1;
        self.summary.pending_id = 0;
        self.summary.latest_id = pending.id;
        self.summary.latest_path = dir.display().to_string();
        self.summary.latest_duration_ms = now.duration_since(pending.triggered_at).as_millis() as u64;
        self.summary.latest_state_bytes = stats.iter().map(|s| s.state_bytes).sum();
        self.summary.latest_uploaded_bytes = stats.iter().map(|s| s.uploaded_bytes).sum();
        self.summary.latest_completed_at_ms = metadata.completed_at_ms;
        self.last_end = Some(now);
        self.completed.push(Completed { id: pending.id, files });
        self.completed_this_attempt = pending.id;
        self.pinned = None;
        self.discard_old();
        tracing::info!(checkpoint = pending.id, path = %dir.display(), "checkpoint completed");
        let mut stop = false;
        if let Some(savepoint) = pending.savepoint {
            let target = savepoint.directory.join(format!("savepoint-{}-{}", &metadata.job_id[..metadata.job_id.len().min(8)], pending.id));
            let result = storage::write_savepoint(&self.job_dir, &metadata, &target).map(|p| p.display().to_string()).map_err(|e| e.to_string());
            stop = savepoint.stop && result.is_ok();
            if let Ok(path) = &result {
                tracing::info!(savepoint = %path, "savepoint completed");
            }
            let _ = savepoint.reply.send(result);
        }
        Some(Completion { id: pending.id, stop })
    }

    fn discard_old(&mut self) {
        let ids: Vec<u64> = self.completed.iter().map(|c| c.id).collect();
        let discard = decide::checkpoints_to_discard(&ids, self.options.retained, self.pinned);
        if discard.is_empty() {
            return;
        }
        let (gone, kept): (Vec<Completed>, Vec<Completed>) = std::mem::take(&mut self.completed).into_iter().partition(|c| discard.contains(&c.id));
        let unreferenced = decide::unreferenced_files(&gone.iter().map(|c| &c.files).collect::<Vec<_>>(), &kept.iter().map(|c| &c.files).collect::<Vec<_>>());
        for (i, c) in gone.iter().enumerate() {
            let files = if i == 0 { unreferenced.clone() } else { BTreeSet::new() };
            storage::discard(&self.job_dir, c.id, &files);
        }
        self.completed = kept;
    }

    /// The checkpoint to restore: the newest one that reads back intact. Unusable ones
    /// are reported in `problems` and skipped.
    pub fn latest_restorable(&mut self, problems: &mut Vec<String>) -> Option<(CheckpointMetadata, PathBuf)> {
        let ids: Vec<u64> = self.completed.iter().map(|c| c.id).collect();
        for id in decide::restore_candidates(&ids) {
            let dir = self.job_dir.join(format!("chk-{id}"));
            match storage::read_checkpoint(&dir) {
                Ok((metadata, base)) => {
                    self.pinned = Some(id);
                    self.summary.restored_from_id = id;
                    self.summary.restored_from_path = dir.display().to_string();
                    return Some((metadata, base));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot restore checkpoint {id}; falling back to an older one");
                    problems.push(e.to_string());
                }
            }
        }
        None
    }

    /// Records that the job starts from a savepoint (for status).
    pub fn restored_from(&mut self, path: &Path, id: u64) {
        self.summary.restored_from_id = id;
        self.summary.restored_from_path = path.display().to_string();
        self.next_id = self.next_id.max(id + 1);
    }
}
