//! The traits every operator implements, and the context a task hands them.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::{Barrier, Message, Result};

/// Collects what an operator emits, in order: batches and watermarks.
#[derive(Debug, Default)]
pub struct Collector {
    messages: Vec<Message>,
}

impl Collector {
    /// Emits a batch (empty batches are dropped).
    pub fn batch(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.messages.push(Message::Data(batch));
        }
    }

    /// Emits a watermark.
    pub fn watermark(&mut self, watermark: i64) {
        self.messages.push(Message::Watermark(watermark));
    }

    /// Emits any message (used by the task to forward control signals).
    pub fn message(&mut self, message: Message) {
        match message {
            Message::Data(batch) => self.batch(batch),
            other => self.messages.push(other),
        }
    }

    /// Takes everything emitted so far.
    pub fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    /// The batches emitted so far (for tests and simple callers).
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.messages
            .iter()
            .filter_map(|m| if let Message::Data(b) = m { Some(b.clone()) } else { None })
            .collect()
    }
}

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
/// what it emits into the [`Collector`] goes down the chain. Barriers and the end of input
/// are forwarded by the task after the operator has handled them.
#[async_trait]
pub trait Operator: Send {
    /// Called once before the first message.
    async fn open(&mut self, _ctx: &TaskContext) -> Result<()> {
        Ok(())
    }

    /// Processes one batch.
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()>;

    /// A watermark arrived; the default forwards it. An operator may hold it back.
    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        out.watermark(watermark);
        Ok(())
    }

    /// A checkpoint barrier arrived on every input; it is forwarded after this returns.
    async fn on_barrier(&mut self, _barrier: Barrier, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// Every input has ended: emit what is left and flush external systems.
    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
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
