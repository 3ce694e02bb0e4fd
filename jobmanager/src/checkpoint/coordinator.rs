//! The checkpoint coordinator of one job: triggers checkpoints, collects the subtasks'
//! acknowledgements, has the metadata of complete checkpoints written, keeps the last few
//! and has the rest deleted, serves savepoints, and picks the checkpoint a restart
//! restores. Its decisions are the pure functions of [`super::decide`].
//!
//! The coordinator runs under the jobmanager's lock, which also serves heartbeats, so it
//! does no slow disk I/O itself: a complete checkpoint becomes a [`CheckpointWrite`] (the
//! metadata and any savepoint copy), performed outside the lock, whose outcome comes back
//! through [`Coordinator::written`]; deletions become a [`Discard`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::{
    CheckpointMetadata, CheckpointSummary, CheckpointTaskStats, JobGraph, TaskSnapshot, VertexSnapshot,
};
use sluice_storage::Location;
use tokio::sync::oneshot;

use super::decide::{self, SubtaskKey, TriggerFacts};
use super::history::CheckpointHistory;
use super::options::CheckpointOptions;
use super::storage;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Test fault switch `SLUICE_TEST_EXIT_AFTER_CHECKPOINT=N` (feature `test-faults`): the
/// process exits right after checkpoint N's metadata is written and before anyone is told,
/// as if killed there.
#[cfg(feature = "test-faults")]
fn exit_if_requested(id: u64) {
    static AFTER: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let after =
        AFTER.get_or_init(|| std::env::var("SLUICE_TEST_EXIT_AFTER_CHECKPOINT").ok().and_then(|v| v.parse().ok()));
    if *after == Some(id) {
        eprintln!("test fault: exiting after checkpoint {id} completed, before committing it");
        std::process::exit(137);
    }
}

#[cfg(not(feature = "test-faults"))]
fn exit_if_requested(_id: u64) {}

/// A savepoint asked for by the CLI.
#[derive(Debug)]
pub struct SavepointRequest {
    /// The directory savepoints go under.
    pub directory: Location,
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
    /// What a restore from it uses: its metadata (kept since it was written, or read back
    /// and checked by a recovering jobmanager), or why it cannot be used.
    restorable: Result<Arc<CheckpointMetadata>, String>,
}

/// A completed checkpoint a recovering jobmanager found in the storage.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCheckpoint {
    /// Its id.
    pub id: u64,
    /// The files it references.
    pub files: BTreeSet<String>,
    /// Its metadata, read back with every file it references present at its size, or why
    /// it is unusable.
    pub metadata: Result<CheckpointMetadata, String>,
}

/// A checkpoint every subtask acknowledged, whose metadata is being written.
#[derive(Debug)]
struct Writing {
    id: u64,
    triggered_at: Instant,
    savepoint: Option<SavepointRequest>,
    metadata: Arc<CheckpointMetadata>,
    files: BTreeSet<String>,
    state_bytes: u64,
    uploaded_bytes: u64,
    completed_at_ms: u64,
}

/// The disk work that completes a checkpoint, done outside the jobmanager's lock.
#[derive(Debug)]
pub struct CheckpointWrite {
    /// The checkpoint.
    pub id: u64,
    job_dir: Location,
    dir: Location,
    me: String,
    metadata: CheckpointMetadata,
    /// Where the savepoint goes, when the checkpoint is one.
    savepoint_target: Option<Location>,
}

/// What a [`CheckpointWrite`] did.
#[derive(Debug)]
pub struct WriteOutcome {
    /// Whether the metadata was written (the checkpoint is complete), or why not.
    metadata: Result<(), String>,
    /// The savepoint's directory, or why it could not be written.
    savepoint: Option<Result<String, String>>,
}

impl WriteOutcome {
    /// The write could not be done at all.
    pub fn failed(reason: String) -> Self {
        WriteOutcome { metadata: Err(reason), savepoint: None }
    }
}

impl CheckpointWrite {
    /// Writes the metadata (once, fenced) and copies the savepoint.
    pub fn perform(self) -> WriteOutcome {
        if let Err(e) = storage::write_metadata(&self.job_dir, &self.dir, &self.metadata, &self.me) {
            return WriteOutcome::failed(e.to_string());
        }
        exit_if_requested(self.id);
        let savepoint = self.savepoint_target.map(|target| {
            storage::write_savepoint(&self.job_dir, &self.metadata, &target)
                .map(|p| p.to_string())
                .map_err(|e| e.to_string())
        });
        WriteOutcome { metadata: Ok(()), savepoint }
    }

    /// The checkpoint's directory.
    pub fn dir(&self) -> &Location {
        &self.dir
    }
}

/// Checkpoints to delete, done outside the jobmanager's lock.
#[derive(Debug)]
pub struct Discard {
    job_dir: Location,
    /// Checkpoint directories to delete, and shared files no kept checkpoint references.
    checkpoints: Vec<(u64, BTreeSet<String>)>,
    /// A checkpoint written after its job restarted: never used.
    abandoned: Option<Location>,
}

impl Discard {
    /// Whether there is nothing to delete.
    pub fn is_empty(&self) -> bool {
        self.checkpoints.is_empty() && self.abandoned.is_none()
    }

    /// Deletes the files.
    pub fn perform(self) {
        for (id, files) in &self.checkpoints {
            storage::discard(&self.job_dir, *id, files);
        }
        if let Some(dir) = self.abandoned {
            if let Err(e) = dir.delete_all() {
                tracing::warn!(error = %e, "cannot delete an abandoned checkpoint");
            }
        }
    }
}

/// What happened when a checkpoint completed.
#[derive(Debug)]
pub struct Completion {
    /// The checkpoint.
    pub id: u64,
    /// Stop-with-savepoint: the savepoint's path, and where to answer once every sink has
    /// committed it and the job has ended (or why it could not).
    pub stop: Option<(String, oneshot::Sender<Result<String, String>>)>,
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
    /// A stop-with-savepoint: sources emit nothing after its barrier.
    pub stop: bool,
    /// Every task's input has ended: this checkpoint's completion lets them finish.
    pub all_ended: bool,
}

/// The coordinator of one job's checkpoints.
#[derive(Debug)]
pub struct Coordinator {
    /// The job's settings.
    pub options: CheckpointOptions,
    /// `<checkpoint dir>/<job id>`.
    pub job_dir: Location,
    /// This coordinator's fencing identity.
    me: String,
    next_id: u64,
    pending: Option<Pending>,
    /// A checkpoint whose metadata is being written.
    writing: Option<Writing>,
    last_trigger: Option<Instant>,
    last_end: Option<Instant>,
    completed: Vec<Completed>,
    /// The latest acknowledged state of each subtask in the current attempt.
    last_state: BTreeMap<SubtaskKey, TaskSnapshot>,
    /// The latest checkpoint statistics of each subtask.
    pub task_stats: BTreeMap<SubtaskKey, CheckpointTaskStats>,
    /// Counters and the latest checkpoint, for status.
    pub summary: CheckpointSummary,
    /// The recent checkpoints with each subtask's timings.
    pub history: CheckpointHistory,
    queued_savepoint: Option<SavepointRequest>,
    pinned: Option<u64>,
    /// The checkpoint triggered once every task's input had ended.
    final_checkpoint: Option<u64>,
    /// The latest checkpoint completed by the current attempt (0: none yet).
    completed_this_attempt: u64,
    /// Whether this coordinator claimed the job's directory.
    claimed: bool,
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
            writing: None,
            last_trigger: None,
            last_end: None,
            completed: Vec::new(),
            last_state: BTreeMap::new(),
            task_stats: BTreeMap::new(),
            summary,
            history: CheckpointHistory::default(),
            queued_savepoint: None,
            pinned: None,
            final_checkpoint: None,
            completed_this_attempt: 0,
            claimed: false,
        }
    }

    /// Claims the job's checkpoint directory for this coordinator (fencing older ones),
    /// unless it did already: a coordinator claims once, so one that another jobmanager
    /// fenced stays fenced instead of taking the directory back.
    pub fn claim(&mut self) -> Result<(), String> {
        if !self.claimed {
            storage::claim(&self.job_dir, &self.me).map_err(|e| e.to_string())?;
            self.claimed = true;
        }
        Ok(())
    }

    /// Where and as whom to claim, for a claim made outside the jobmanager's lock
    /// (then [`Coordinator::claimed`]); `None` once claimed.
    pub fn claim_target(&self) -> Option<(Location, String)> {
        (!self.claimed).then(|| (self.job_dir.clone(), self.me.clone()))
    }

    /// The directory was claimed outside the lock.
    pub fn claimed(&mut self) {
        self.claimed = true;
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
    pub fn maybe_trigger(
        &mut self,
        now: Instant,
        tasks_ready: bool,
        all_ended: bool,
        subtasks: u32,
    ) -> Option<Trigger> {
        let facts = TriggerFacts {
            now,
            interval: self.options.interval,
            min_pause: self.options.min_pause,
            last_trigger: self.last_trigger,
            last_end: self.last_end,
            in_flight: self.pending.is_some() || self.writing.is_some(),
            tasks_ready,
            forced: self.queued_savepoint.is_some() || (all_ended && self.final_checkpoint.is_none()),
        };
        if !decide::should_trigger(&facts) {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let timestamp_ms = now_ms();
        let savepoint = self.queued_savepoint.take();
        let stop = savepoint.as_ref().is_some_and(|s| s.stop);
        self.history.triggered(id, timestamp_ms, subtasks, savepoint.is_some());
        self.pending = Some(Pending { id, timestamp_ms, triggered_at: now, savepoint, acks: BTreeMap::new() });
        self.last_trigger = Some(now);
        self.summary.pending_id = id;
        if all_ended {
            self.final_checkpoint.get_or_insert(id);
        }
        Some(Trigger { id, timestamp_ms, last_completed: self.completed_this_attempt, stop, all_ended })
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
            self.record_failure(now, pending.id, pending.savepoint, reason);
        }
    }

    /// Checkpoint `id` failed for `reason`: counted, reported, and answered to its
    /// savepoint request.
    fn record_failure(&mut self, now: Instant, id: u64, savepoint: Option<SavepointRequest>, reason: &str) {
        if self.final_checkpoint == Some(id) {
            self.final_checkpoint = None;
        }
        self.history.failed(id, now_ms(), reason.to_string());
        let message = format!("checkpoint {id} failed: {reason}");
        tracing::warn!(job_dir = %self.job_dir, "{message}");
        self.summary.failed += 1;
        self.summary.last_failure = message.clone();
        self.summary.pending_id = 0;
        self.last_end = Some(now);
        if let Some(savepoint) = savepoint {
            let _ = savepoint.reply.send(Err(message));
        }
    }

    /// Aborts checkpoint `id` if it is the one in flight.
    pub fn abort_if_pending(&mut self, id: u64, now: Instant, reason: &str) {
        if self.pending.as_ref().is_some_and(|p| p.id == id) {
            self.abort(now, reason);
        }
    }

    /// A new attempt of the job starts: the checkpoint in flight is void (one being written
    /// is deleted once written: the new attempt's sinks abort its transactions), and the
    /// state of finished subtasks comes from the restored checkpoint.
    pub fn restart(&mut self, now: Instant) {
        self.abort(now, "the job is restarting");
        if let Some(writing) = self.writing.take() {
            if let Some(savepoint) = writing.savepoint {
                let _ = savepoint
                    .reply
                    .send(Err(format!("checkpoint {} was abandoned: the job is restarting", writing.id)));
            }
        }
        self.last_state.clear();
        self.final_checkpoint = None;
        self.completed_this_attempt = 0;
    }

    /// Records a subtask's acknowledgement; true when it belongs to the checkpoint in flight.
    pub fn acknowledge(
        &mut self,
        key: SubtaskKey,
        id: u64,
        snapshot: TaskSnapshot,
        stats: CheckpointTaskStats,
    ) -> bool {
        match &mut self.pending {
            Some(p) if p.id == id => {
                self.task_stats.insert(key, stats);
                self.history.acknowledged(id, key, now_ms(), stats);
                p.acks.insert(key, (snapshot, stats));
                true
            }
            _ => false,
        }
    }

    /// When every subtask of `graph` acknowledged the checkpoint in flight or finished
    /// earlier (`finished`), returns the disk work that completes it; its outcome goes to
    /// [`written`](Self::written).
    pub fn try_complete(&mut self, graph: &JobGraph, finished: &BTreeSet<SubtaskKey>) -> Option<CheckpointWrite> {
        let pending = self.pending.as_ref()?;
        let subtasks: Vec<SubtaskKey> =
            graph.vertices.iter().flat_map(|v| (0..v.parallelism).map(move |s| (v.id, s))).collect();
        let acknowledged: BTreeSet<SubtaskKey> = pending.acks.keys().copied().collect();
        let finished_with_state: BTreeSet<SubtaskKey> =
            finished.iter().filter(|k| self.last_state.contains_key(k)).copied().collect();
        if !decide::is_complete(&subtasks, &acknowledged, &finished_with_state) {
            return None;
        }
        let pending = self.pending.take()?;
        for (key, (snapshot, _)) in &pending.acks {
            self.last_state.insert(*key, snapshot.clone());
        }
        let metadata = CheckpointMetadata {
            job_id: self.job_dir.file_name().unwrap_or_default(),
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
                    subtasks: (0..v.parallelism)
                        .map(|s| self.last_state.get(&(v.id, s)).cloned().unwrap_or_default())
                        .collect(),
                })
                .collect(),
        };
        let savepoint_target = pending.savepoint.as_ref().map(|savepoint| {
            savepoint.directory.join(&format!(
                "savepoint-{}-{}",
                &metadata.job_id[..metadata.job_id.len().min(8)],
                pending.id
            ))
        });
        self.writing = Some(Writing {
            id: pending.id,
            triggered_at: pending.triggered_at,
            savepoint: pending.savepoint,
            metadata: Arc::new(metadata.clone()),
            files: storage::referenced_files(&metadata),
            state_bytes: pending.acks.values().map(|(_, s)| s.state_bytes).sum(),
            uploaded_bytes: pending.acks.values().map(|(_, s)| s.uploaded_bytes).sum(),
            completed_at_ms: metadata.completed_at_ms,
        });
        Some(CheckpointWrite {
            id: pending.id,
            job_dir: self.job_dir.clone(),
            dir: self.job_dir.join(&format!("chk-{}", pending.id)),
            me: self.me.clone(),
            metadata,
            savepoint_target,
        })
    }

    /// The outcome of checkpoint `id`'s [`CheckpointWrite`]: records the checkpoint as
    /// completed (or failed), answers a savepoint request, and returns what to tell the
    /// tasks and what to delete. A checkpoint written after its job restarted is deleted.
    pub fn written(&mut self, now: Instant, id: u64, outcome: WriteOutcome) -> (Option<Completion>, Discard) {
        let dir = self.job_dir.join(&format!("chk-{id}"));
        let Some(writing) = self.writing.take_if(|w| w.id == id) else {
            let abandoned = outcome.metadata.is_ok().then_some(dir);
            return (None, Discard { job_dir: self.job_dir.clone(), checkpoints: Vec::new(), abandoned });
        };
        if let Err(e) = outcome.metadata {
            self.record_failure(now, id, writing.savepoint, &e);
            return (None, Discard { job_dir: self.job_dir.clone(), checkpoints: Vec::new(), abandoned: None });
        }
        self.summary.completed += 1;
        self.summary.pending_id = 0;
        self.summary.latest_id = id;
        self.summary.latest_path = dir.to_string();
        self.summary.latest_duration_ms = now.duration_since(writing.triggered_at).as_millis() as u64;
        self.summary.latest_state_bytes = writing.state_bytes;
        self.summary.latest_uploaded_bytes = writing.uploaded_bytes;
        self.summary.latest_completed_at_ms = writing.completed_at_ms;
        self.history.completed(id, writing.completed_at_ms, dir.to_string());
        self.last_end = Some(now);
        self.completed.push(Completed { id, files: writing.files, restorable: Ok(writing.metadata) });
        self.completed_this_attempt = id;
        self.pinned = None;
        let discard = self.discard_old();
        tracing::info!(checkpoint = id, path = %dir, "checkpoint completed");
        let mut stop = None;
        if let (Some(savepoint), Some(result)) = (writing.savepoint, outcome.savepoint) {
            match result {
                Ok(path) if savepoint.stop => {
                    tracing::info!(savepoint = %path, "savepoint completed; the job stops once its sinks have committed");
                    stop = Some((path, savepoint.reply));
                }
                result => {
                    if let Ok(path) = &result {
                        tracing::info!(savepoint = %path, "savepoint completed");
                    }
                    let _ = savepoint.reply.send(result);
                }
            }
        }
        (Some(Completion { id, stop }), discard)
    }

    /// Drops the checkpoints beyond the retained ones; returns their deletion.
    fn discard_old(&mut self) -> Discard {
        let ids: Vec<u64> = self.completed.iter().map(|c| c.id).collect();
        let discard = decide::checkpoints_to_discard(&ids, self.options.retained, self.pinned);
        let mut work = Discard { job_dir: self.job_dir.clone(), checkpoints: Vec::new(), abandoned: None };
        if discard.is_empty() {
            return work;
        }
        let (gone, kept): (Vec<Completed>, Vec<Completed>) =
            std::mem::take(&mut self.completed).into_iter().partition(|c| discard.contains(&c.id));
        let unreferenced = decide::unreferenced_files(
            &gone.iter().map(|c| &c.files).collect::<Vec<_>>(),
            &kept.iter().map(|c| &c.files).collect::<Vec<_>>(),
        );
        for (i, c) in gone.iter().enumerate() {
            let files = if i == 0 { unreferenced.clone() } else { BTreeSet::new() };
            work.checkpoints.push((c.id, files));
        }
        self.completed = kept;
        work
    }

    /// The checkpoint to restore: the newest completed one (`Ok(None)` when there is
    /// none). When it cannot be read back, restoring an older one would replay output
    /// that the newest one's commits may already have published, so that is an error
    /// unless `execution.checkpointing.recover-without-newest` accepts duplicates; then the
    /// newest one that reads back intact is used and the unusable ones are reported in
    /// `problems`.
    pub fn latest_restorable(
        &mut self,
        problems: &mut Vec<String>,
    ) -> Result<Option<(CheckpointMetadata, Location)>, String> {
        let ids: Vec<u64> = self.completed.iter().map(|c| c.id).collect();
        for id in decide::restore_candidates(&ids) {
            let dir = self.job_dir.join(&format!("chk-{id}"));
            let Some(completed) = self.completed.iter().find(|c| c.id == id) else { continue };
            match &completed.restorable {
                Ok(metadata) => {
                    let metadata = (**metadata).clone();
                    self.pinned = Some(id);
                    self.summary.restored_from_id = id;
                    self.summary.restored_from_path = dir.to_string();
                    return Ok(Some((metadata, self.job_dir.clone())));
                }
                Err(e) if !self.options.recover_without_newest => {
                    return Err(format!(
                        "{e}; an older checkpoint is not restored, because checkpoint {id} completed and its \
                         sinks may have committed its output, which a restore from an older one would write \
                         again. Repair or restore the checkpoint's files and resubmit with --from-savepoint {}, \
                         or set 'execution.checkpointing.recover-without-newest' = 'true' to accept duplicates",
                        dir
                    ));
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot restore checkpoint {id}; falling back to an older one (duplicates accepted)");
                    problems.push(e.clone());
                }
            }
        }
        Ok(None)
    }

    /// Takes over the checkpoints another jobmanager completed for this job (`stored`,
    /// oldest first, read and checked outside the lock): the newest usable one is what the
    /// job restores, the oldest beyond the retained number are discarded as usual, and new
    /// checkpoints are numbered above `highest_id`, the highest id found in the storage.
    pub fn recovered(&mut self, stored: Vec<StoredCheckpoint>, highest_id: u64) {
        let newest = stored.last().map_or(0, |c| c.id);
        self.completed = stored
            .into_iter()
            .map(|c| Completed { id: c.id, files: c.files, restorable: c.metadata.map(Arc::new) })
            .collect();
        self.next_id = self.next_id.max(highest_id.max(newest) + 1);
        if newest != 0 {
            self.summary.latest_id = newest;
            self.summary.latest_path = self.job_dir.join(&format!("chk-{newest}")).to_string();
        }
    }

    /// Records that the job starts from a savepoint (for status).
    pub fn restored_from(&mut self, path: &Location, id: u64) {
        self.summary.restored_from_id = id;
        self.summary.restored_from_path = path.to_string();
        self.next_id = self.next_id.max(id + 1);
    }
}
