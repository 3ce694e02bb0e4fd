//! The traits every operator implements, and the context a task hands them.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::{Barrier, Result};

/// What a running subtask knows about itself.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The job this task belongs to.
    pub job_id: String,
    /// The vertex (operator chain) this task runs.
    pub vertex_id: u32,
    /// This subtask's index, from 0.
    pub subtask: u32,
    /// Number of subtasks of the vertex.
    pub parallelism: u32,
    /// Execution attempt of the job (0 for the first run).
    pub attempt: u32,
    /// Name used in logs and metrics, e.g. "datagen(orders) -> print (2/4)".
    pub task_name: String,
}

impl TaskContext {
    /// A context for a single-subtask task, used by tests and tools.
    pub fn single(name: &str) -> Self {
        TaskContext {
            job_id: "local".into(),
            vertex_id: 0,
            subtask: 0,
            parallelism: 1,
            attempt: 0,
            task_name: name.into(),
        }
    }
}

/// A transform or sink. The task calls it with each message of its input, in order;
/// output batches are appended to `out` and passed down the chain.
#[async_trait]
pub trait Operator: Send {
    /// Called once before the first message.
    async fn open(&mut self, _ctx: &TaskContext) -> Result<()> {
        Ok(())
    }

    /// Processes one batch.
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()>;

    /// A watermark arrived; returns the watermark to forward downstream, if any.
    async fn on_watermark(&mut self, watermark: i64, _out: &mut Vec<RecordBatch>) -> Result<Option<i64>> {
        Ok(Some(watermark))
    }

    /// A checkpoint barrier arrived on every input; it is forwarded after this returns.
    async fn on_barrier(&mut self, _barrier: Barrier, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }

    /// Every input has ended: emit what is left and flush external systems.
    async fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<()> {
        Ok(())
    }
}

/// What a source produced on one poll.
#[derive(Debug)]
pub enum SourcePoll {
    /// A batch of rows.
    Batch(RecordBatch),
    /// Nothing right now; poll again.
    Idle,
    /// A bounded source has emitted everything.
    Finished,
}

/// A source of rows. `poll_next` must return within a few milliseconds (returning
/// [`SourcePoll::Idle`] when it has nothing) so the task can act on control signals.
#[async_trait]
pub trait Source: Send {
    /// Called once before the first poll.
    async fn open(&mut self, _ctx: &TaskContext) -> Result<()> {
        Ok(())
    }

    /// Produces the next batch.
    async fn poll_next(&mut self) -> Result<SourcePoll>;
}
