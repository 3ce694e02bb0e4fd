//! The traits every operator implements, and the context a task hands them.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::{Barrier, Message, OperatorState, Result, StateInit};

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

    /// Says that this output is idle (see [`Message::Idle`]).
    pub fn idle(&mut self) {
        self.messages.push(Message::Idle);
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
        self.messages.iter().filter_map(|m| if let Message::Data(b) = m { Some(b.clone()) } else { None }).collect()
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
    /// True when the job takes checkpoints: sinks then commit only what a completed
    /// checkpoint covers, including at the end of input.
    pub checkpointing: bool,
    /// Number of key groups keyed state is partitioned into (the job's max parallelism).
    pub max_parallelism: u32,
    /// Wakes the task loop, which then calls the timers of operators whose
    /// [`deadline`](Operator::deadline) has passed: operators with background work (async
    /// requests) notify it when a result is ready.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
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
            checkpointing: false,
            max_parallelism: crate::keys::DEFAULT_MAX_PARALLELISM,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// A transform or sink. The task calls it with each message of its input, in order;
/// what it emits into the [`Collector`] goes down the chain. Barriers and the end of input
/// are forwarded by the task after the operator has handled them.
///
/// An operator at the head of a task may have two inputs (a join): it learns which input
/// each batch came from in [`process_input`](Self::process_input), and each input's
/// watermark in [`on_input_watermark`](Self::on_input_watermark); [`on_watermark`](
/// Self::on_watermark) then gets the minimum over both. Barriers are aligned across all
/// channels of both inputs before the operator sees them.
#[async_trait]
pub trait Operator: Send {
    /// Called once before the first message.
    async fn open(&mut self, _ctx: &TaskContext) -> Result<()> {
        Ok(())
    }

    /// Processes one batch.
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()>;

    /// Processes one batch of input `input` (0, or 1 for the second input of a two-input
    /// operator). The default is [`process_batch`](Self::process_batch): one input.
    async fn process_input(&mut self, _input: usize, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        self.process_batch(batch, out).await
    }

    /// Input `input`'s watermark rose (the minimum over its channels); called before
    /// [`on_watermark`](Self::on_watermark) with the minimum over every input. The
    /// default ignores it.
    async fn on_input_watermark(&mut self, _input: usize, _watermark: i64, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// Every channel of input `input` of a two-input operator ended (the other may go on);
    /// called after that input's last watermark. The default does nothing.
    async fn on_input_end(&mut self, _input: usize, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// A watermark arrived; the default forwards it. An operator may hold it back.
    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        out.watermark(watermark);
        Ok(())
    }

    /// Every input is idle (see [`Message::Idle`](crate::Message::Idle)); the default
    /// says so downstream. An operator holding rows back may emit or keep them.
    async fn on_idle(&mut self, out: &mut Collector) -> Result<()> {
        out.idle();
        Ok(())
    }

    /// The source of this chain reads these splits from now on; the default passes the
    /// announcement on.
    async fn on_splits_assigned(&mut self, splits: Vec<String>, out: &mut Collector) -> Result<()> {
        out.message(Message::SplitsAssigned(splits));
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

    /// When the operator wants [`on_timer`](Self::on_timer) called (e.g. to emit a partial
    /// batch after its linger); `None` when it waits for nothing.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        None
    }

    /// False while the operator is full (e.g. as many rows in flight as allowed): the task
    /// then stops feeding it input until a timer or a wake-up, but still handles checkpoints.
    fn accepts_input(&self) -> bool {
        true
    }

    /// Its deadline passed: emit what it held back.
    async fn on_timer(&mut self, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// The operator's own metrics (see [`crate::metrics`]), reported with the task's
    /// counters.
    fn metrics(&self) -> Vec<crate::metrics::Metric> {
        Vec::new()
    }

    /// True when the operator keeps keyed state: the task then gives it a store in
    /// [`StateInit::keyed`].
    fn uses_keyed_state(&self) -> bool {
        false
    }

    /// Called once before `open` with the state to start from.
    async fn initialize_state(&mut self, _init: StateInit) -> Result<()> {
        Ok(())
    }

    /// Called when a checkpoint barrier reaches the operator, after `on_barrier` (or at
    /// the end of input, for the final checkpoint): writes pending keyed state to its store
    /// and returns the operator state to put into checkpoint `checkpoint_id`.
    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::default())
    }

    /// Checkpoint `checkpoint_id` completed: commit what it covers to external systems.
    async fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }

    /// Stop-with-savepoint: the savepoint completed and its commits are done; the task ends
    /// now without finishing its input. Work begun after the savepoint's barrier is
    /// discarded (a transactional sink aborts the transaction it opened there), since the
    /// job resumed from the savepoint does it again.
    async fn stop_with_savepoint(&mut self) -> Result<()> {
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
    /// The source reads these splits from now on (see [`Message::SplitsAssigned`]).
    SplitsAssigned(Vec<String>),
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

    /// Called once before `open` with the positions to resume from.
    async fn initialize_state(&mut self, _init: StateInit) -> Result<()> {
        Ok(())
    }

    /// Returns the positions reached so far, for checkpoint `checkpoint_id` (the barrier
    /// is emitted right after). Sources whose state is not checkpointed replay everything.
    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::default())
    }

    /// Checkpoint `checkpoint_id` completed (e.g. commit offsets for monitoring).
    async fn notify_checkpoint_complete(&mut self, _checkpoint_id: u64) -> Result<()> {
        Ok(())
    }

    /// Bad records skipped so far (with the format's `*.ignore-parse-errors`).
    fn skipped_records(&self) -> u64 {
        0
    }
}
