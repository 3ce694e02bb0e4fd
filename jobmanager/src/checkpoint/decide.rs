//! The checkpoint coordinator's decisions, as pure functions over observed facts (no I/O,
//! no clock reads): when to trigger, when a checkpoint is complete, which checkpoints to
//! delete and which of their files, and which checkpoint to restore.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A subtask: (vertex, subtask).
pub type SubtaskKey = (u32, u32);

/// What the trigger decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct TriggerFacts {
    /// Now.
    pub now: Instant,
    /// The job's checkpoint interval (`None`: only forced checkpoints).
    pub interval: Option<Duration>,
    /// Minimum pause after the end of the previous checkpoint.
    pub min_pause: Duration,
    /// When the previous checkpoint was triggered.
    pub last_trigger: Option<Instant>,
    /// When the previous checkpoint completed or failed.
    pub last_end: Option<Instant>,
    /// Whether a checkpoint is in flight.
    pub in_flight: bool,
    /// Whether every task is running (deployed and reported), ended or finished.
    pub tasks_ready: bool,
    /// A savepoint or the final checkpoint is wanted now.
    pub forced: bool,
}

/// Whether to trigger a checkpoint now: one at a time, once every task is ready, on
/// schedule (or at once when forced), and not before the minimum pause has passed.
pub fn should_trigger(f: &TriggerFacts) -> bool {
    if f.in_flight || !f.tasks_ready {
        return false;
    }
    let paused = f.last_end.is_none_or(|end| f.now.duration_since(end) >= f.min_pause);
    if f.forced {
        return true;
    }
    let Some(interval) = f.interval else { return false };
    let due = f.last_trigger.is_none_or(|t| f.now.duration_since(t) >= interval);
    due && paused
}

/// Whether a checkpoint is complete: every subtask acknowledged it, or finished earlier
/// (its final state, acknowledged in an earlier checkpoint, stands for it).
pub fn is_complete<'a>(
    subtasks: impl IntoIterator<Item = &'a SubtaskKey>,
    acknowledged: &BTreeSet<SubtaskKey>,
    finished_with_state: &BTreeSet<SubtaskKey>,
) -> bool {
    subtasks.into_iter().all(|k| acknowledged.contains(k) || finished_with_state.contains(k))
}

/// Which completed checkpoints to delete after one completed: all but the newest
/// `retained`, never `pinned` (the checkpoint the running attempt restored from, until it
/// has a newer one of its own).
pub fn checkpoints_to_discard(completed: &[u64], retained: usize, pinned: Option<u64>) -> Vec<u64> {
    let mut ids: Vec<u64> = completed.to_vec();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.into_iter().skip(retained.max(1)).filter(|id| Some(*id) != pinned).collect()
}

/// The shared files of discarded checkpoints that no kept checkpoint references.
pub fn unreferenced_files(discarded: &[&BTreeSet<String>], kept: &[&BTreeSet<String>]) -> BTreeSet<String> {
    let live: BTreeSet<&String> = kept.iter().flat_map(|s| s.iter()).collect();
    discarded.iter().flat_map(|s| s.iter()).filter(|f| f.starts_with("shared/") && !live.contains(f)).cloned().collect()
}

/// The order to try checkpoints in when restoring: newest first.
pub fn restore_candidates(completed: &[u64]) -> Vec<u64> {
    let mut ids = completed.to_vec();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(now: Instant) -> TriggerFacts {
        TriggerFacts {
            now,
            interval: Some(Duration::from_secs(1)),
            min_pause: Duration::ZERO,
            last_trigger: None,
            last_end: None,
            in_flight: false,
            tasks_ready: true,
            forced: false,
        }
    }

    #[test]
    fn triggers_on_schedule_one_at_a_time_after_the_pause() {
        let t0 = Instant::now();
        assert!(should_trigger(&facts(t0)));
        assert!(!should_trigger(&TriggerFacts { in_flight: true, ..facts(t0) }), "one in flight");
        assert!(!should_trigger(&TriggerFacts { tasks_ready: false, ..facts(t0) }), "tasks still deploying");
        assert!(!should_trigger(&TriggerFacts { interval: None, ..facts(t0) }), "checkpoints disabled");
        assert!(should_trigger(&TriggerFacts { interval: None, forced: true, ..facts(t0) }), "a savepoint is forced");
        let later = t0 + Duration::from_millis(1500);
        let f =
            TriggerFacts { last_trigger: Some(t0), last_end: Some(t0 + Duration::from_millis(1200)), ..facts(later) };
        assert!(should_trigger(&f));
        assert!(!should_trigger(&TriggerFacts { min_pause: Duration::from_millis(500), ..f }), "min pause not over");
        assert!(!should_trigger(&TriggerFacts { last_trigger: Some(t0 + Duration::from_millis(900)), ..f }), "not due");
    }

    #[test]
    fn complete_when_every_subtask_acked_or_finished() {
        let all = [(0, 0), (0, 1), (1, 0)];
        let acked: BTreeSet<_> = [(0, 0), (1, 0)].into();
        assert!(!is_complete(&all, &acked, &BTreeSet::new()));
        assert!(is_complete(&all, &acked, &[(0, 1)].into()));
    }

    #[test]
    fn retention_keeps_the_newest_and_the_pinned() {
        assert_eq!(checkpoints_to_discard(&[1, 2, 3, 4, 5], 3, None), vec![2, 1]);
        assert_eq!(checkpoints_to_discard(&[1, 2, 3, 4, 5], 3, Some(1)), vec![2]);
        assert_eq!(checkpoints_to_discard(&[4], 3, None), Vec::<u64>::new());
        let old: BTreeSet<String> = ["shared/a".into(), "shared/b".into(), "chk-1/op/MANIFEST".into()].into();
        let new: BTreeSet<String> = ["shared/b".into(), "shared/c".into()].into();
        assert_eq!(unreferenced_files(&[&old], &[&new]), ["shared/a".to_string()].into());
        assert_eq!(restore_candidates(&[3, 5, 4]), vec![5, 4, 3]);
    }
}
