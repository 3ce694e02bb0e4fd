//! Checkpoints: the per-job coordinator, its pure decision functions, the job's options
//! (interval, retention, restart strategy), the checkpoint storage format, and the
//! assignment of a checkpoint's state to the subtasks of a restored job.

pub mod coordinator;
pub mod decide;
pub mod history;
pub mod options;
pub mod restore;
pub mod storage;

pub use coordinator::{CheckpointWrite, Coordinator, Discard, SavepointRequest, StoredCheckpoint, WriteOutcome};
pub use options::{CheckpointOptions, RestartStrategy};
