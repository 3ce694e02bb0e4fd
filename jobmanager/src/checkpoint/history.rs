//! The recent checkpoints of a job, in flight, completed and failed, with each subtask's
//! timings, for the REST API and the dashboard (Flink's checkpoint history).

use std::collections::{BTreeMap, VecDeque};

use sluice_proto::CheckpointTaskStats;

use super::decide::SubtaskKey;

/// How many checkpoints the history keeps (Flink's `web.checkpoints.history` is 10).
pub const HISTORY_LENGTH: usize = 20;

/// Where a checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// Triggered, not yet complete.
    InProgress,
    /// Its metadata is written.
    Completed,
    /// Aborted or declined.
    Failed,
}

/// One checkpoint as the history shows it.
#[derive(Debug, Clone)]
pub struct CheckpointRecord {
    /// Its id.
    pub id: u64,
    /// Where it is.
    pub status: CheckpointStatus,
    /// Taken for a savepoint.
    pub savepoint: bool,
    /// When it was triggered (ms since the epoch).
    pub triggered_at_ms: u64,
    /// When it completed or failed (ms since the epoch).
    pub ended_at_ms: Option<u64>,
    /// The subtasks that take part.
    pub subtasks: u32,
    /// Each subtask's acknowledgement: when (ms since the epoch) and its timings.
    pub acks: BTreeMap<SubtaskKey, (u64, CheckpointTaskStats)>,
    /// Where it is stored, once completed.
    pub path: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
}

impl CheckpointRecord {
    /// Bytes of state the checkpoint references.
    pub fn state_bytes(&self) -> u64 {
        self.acks.values().map(|(_, s)| s.state_bytes).sum()
    }

    /// Bytes copied for it.
    pub fn uploaded_bytes(&self) -> u64 {
        self.acks.values().map(|(_, s)| s.uploaded_bytes).sum()
    }

    /// The latest acknowledgement (ms since the epoch), if any.
    pub fn latest_ack_ms(&self) -> Option<u64> {
        self.acks.values().map(|(at, _)| *at).max()
    }

    /// From the trigger to its end (or to the latest acknowledgement while in flight).
    pub fn duration_ms(&self) -> u64 {
        let end = self.ended_at_ms.or_else(|| self.latest_ack_ms()).unwrap_or(self.triggered_at_ms);
        end.saturating_sub(self.triggered_at_ms)
    }
}

/// The last [`HISTORY_LENGTH`] checkpoints, oldest first.
#[derive(Debug, Default)]
pub struct CheckpointHistory {
    records: VecDeque<CheckpointRecord>,
}

impl CheckpointHistory {
    /// Checkpoint `id` was triggered.
    pub fn triggered(&mut self, id: u64, triggered_at_ms: u64, subtasks: u32, savepoint: bool) {
        if self.records.len() == HISTORY_LENGTH {
            self.records.pop_front();
        }
        self.records.push_back(CheckpointRecord {
            id,
            status: CheckpointStatus::InProgress,
            savepoint,
            triggered_at_ms,
            ended_at_ms: None,
            subtasks,
            acks: BTreeMap::new(),
            path: None,
            failure: None,
        });
    }

    /// A subtask acknowledged checkpoint `id` at `at_ms`.
    pub fn acknowledged(&mut self, id: u64, key: SubtaskKey, at_ms: u64, stats: CheckpointTaskStats) {
        if let Some(record) = self.get_mut(id) {
            record.acks.insert(key, (at_ms, stats));
        }
    }

    /// Checkpoint `id` completed at `at_ms`, stored at `path`.
    pub fn completed(&mut self, id: u64, at_ms: u64, path: String) {
        if let Some(record) = self.get_mut(id) {
            record.status = CheckpointStatus::Completed;
            record.ended_at_ms = Some(at_ms);
            record.path = Some(path);
        }
    }

    /// Checkpoint `id` failed at `at_ms`.
    pub fn failed(&mut self, id: u64, at_ms: u64, reason: String) {
        if let Some(record) = self.get_mut(id) {
            record.status = CheckpointStatus::Failed;
            record.ended_at_ms = Some(at_ms);
            record.failure = Some(reason);
        }
    }

    /// The checkpoints kept, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = &CheckpointRecord> {
        self.records.iter()
    }

    /// Checkpoint `id`, if still kept.
    pub fn get(&self, id: u64) -> Option<&CheckpointRecord> {
        self.records.iter().find(|r| r.id == id)
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut CheckpointRecord> {
        self.records.iter_mut().find(|r| r.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_goes_from_in_progress_to_completed_or_failed() {
        let mut h = CheckpointHistory::default();
        h.triggered(1, 1_000, 2, false);
        let stats = CheckpointTaskStats { checkpoint_id: 1, state_bytes: 10, uploaded_bytes: 4, ..Default::default() };
        h.acknowledged(1, (0, 0), 1_040, stats);
        h.acknowledged(1, (0, 1), 1_070, stats);
        assert_eq!(h.get(1).unwrap().status, CheckpointStatus::InProgress);
        assert_eq!(h.get(1).unwrap().duration_ms(), 70, "in flight: up to the latest ack");
        h.completed(1, 1_090, "/c/chk-1".into());
        let done = h.get(1).unwrap();
        assert_eq!(
            (done.status, done.duration_ms(), done.state_bytes(), done.uploaded_bytes()),
            (CheckpointStatus::Completed, 90, 20, 8)
        );
        h.triggered(2, 2_000, 2, true);
        h.failed(2, 2_500, "declined".into());
        assert_eq!(h.get(2).unwrap().failure.as_deref(), Some("declined"));
    }

    #[test]
    fn only_the_last_few_are_kept() {
        let mut h = CheckpointHistory::default();
        for id in 1..=(HISTORY_LENGTH as u64 + 5) {
            h.triggered(id, id, 1, false);
        }
        assert_eq!(h.records().count(), HISTORY_LENGTH);
        assert_eq!(h.records().next().unwrap().id, 6);
        assert!(h.get(5).is_none());
    }
}
