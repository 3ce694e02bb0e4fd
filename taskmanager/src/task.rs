//! Running one subtask: a head (a source, or the input gate) feeding an operator chain
//! whose output goes to the task's outputs, and the task's part of checkpoints.
//!
//! A source task, when the jobmanager triggers checkpoint n, records its source's
//! positions and emits `Barrier(n)` before its next batch. Every task, when `Barrier(n)`
//! leaves its input gate (aligned), snapshots its operators in chain order: operator state
//! in the acknowledgement, keyed state as a RocksDB checkpoint (synchronous) copied to the
//! checkpoint storage afterwards (asynchronous, while the task goes on). When the
//! jobmanager reports checkpoint n complete, the operators commit.
//!
//! With checkpoints, a task whose input has ended does not finish at once: it reports
//! `ENDED`, snapshots its state (after committing what completed before) for every
//! checkpoint triggered after, and finishes when one triggered after every task's input
//! ended completes, so sinks commit their last rows exactly once, and no checkpoint
//! carries the stale state of a task that finished earlier (a sink's pending commits that
//! were done since, which a job restored from a later checkpoint would redo).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

use sluice_core::keys::key_group_range;
use sluice_core::{
    Barrier, Collector, Message, Operator, OperatorError, OperatorState, Source, StateInit, TaskContext,
};
use sluice_proto::{CheckpointTaskStats, OperatorRestore, OperatorSnapshot, TaskRestore, TaskSnapshot};
use tokio::sync::mpsc;

use crate::error::TaskError;
use crate::input::InputGate;
use crate::list_state;
use crate::metrics::{Activity, TaskMetrics};
use crate::output::Outputs;
use crate::state::{CheckpointStorage, KeyedBackend, LocalSnapshot};

mod step;

pub use step::Head;
use step::{SourceIdleness, Step};

/// A command from the jobmanager to a running task.
#[derive(Debug)]
pub enum TaskCommand {
    /// Start checkpoint `checkpoint_id` (sources emit its barrier; ended tasks snapshot).
    Trigger {
        /// The checkpoint.
        checkpoint_id: u64,
        /// When it was triggered (ms since the epoch).
        timestamp_ms: u64,
        /// The latest completed checkpoint.
        last_completed: u64,
        /// Stop-with-savepoint: a source emits nothing after this barrier.
        stop: bool,
        /// Every task's input had ended: an ended task finishes once this completes.
        all_ended: bool,
    },
    /// The checkpoint completed: commit what it covers.
    Complete(u64),
    /// Stop-with-savepoint: stop processing, answer once the commands before this one are
    /// done, and wait to be canceled.
    Park(tokio::sync::oneshot::Sender<()>),
}

/// What a task reports to its task manager besides its end.
#[derive(Debug, Clone)]
pub enum TaskEvent {
    /// The input ended; the task waits for its final checkpoint.
    Ended,
    /// The task could not take its part of a checkpoint.
    Decline {
        /// The checkpoint.
        checkpoint_id: u64,
        /// Why.
        reason: String,
    },
    /// The task's part of a checkpoint is stored.
    Ack {
        /// The checkpoint.
        checkpoint_id: u64,
        /// The operators' state.
        snapshot: TaskSnapshot,
        /// Timings and sizes.
        stats: CheckpointTaskStats,
    },
}

/// A task's link to the checkpoint protocol.
pub struct TaskCheckpointing {
    /// Commands from the jobmanager.
    pub commands: mpsc::UnboundedReceiver<TaskCommand>,
    /// Events for the jobmanager.
    pub events: mpsc::UnboundedSender<TaskEvent>,
    /// The job's checkpoint storage; `None` when checkpoints are disabled.
    pub storage: Option<CheckpointStorage>,
    /// The state to start from (file paths absolute), when the job restored a checkpoint.
    pub restore: Option<TaskRestore>,
    /// The checkpoint restored (0: none).
    pub restored_checkpoint: u64,
    /// Local directory for this task's RocksDB instances.
    pub local_dir: PathBuf,
    /// Operator lists larger than this many bytes are stored as files, not sent inline
    /// (`state.storage.fs.memory-threshold`).
    pub memory_threshold: u64,
}

/// A checkpoint trigger a task with inputs received before the checkpoint's barrier: if
/// its input ends first, the barrier never comes and the task takes its part at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingTrigger {
    /// The checkpoint triggered.
    pub checkpoint_id: u64,
    /// The latest checkpoint completed when it was triggered.
    pub last_completed: u64,
    /// Every task's input had ended when it was triggered.
    pub all_ended: bool,
}

/// The operators of a task after its head, first to last, with their uids.
pub struct Chain {
    operators: Vec<Box<dyn Operator>>,
    uids: Vec<String>,
    backends: Vec<Option<KeyedBackend>>,
}

impl Chain {
    /// A chain of `operators` identified by `uids`.
    pub fn new(operators: Vec<Box<dyn Operator>>, uids: Vec<String>) -> Self {
        let backends = operators.iter().map(|_| None).collect();
        Chain { operators, uids, backends }
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), TaskError> {
        for op in &mut self.operators {
            op.open(ctx).await?;
        }
        Ok(())
    }

    /// Passes a message through every operator; returns what leaves the chain, in order.
    /// Barriers and the end of input are forwarded by the chain after each operator has
    /// handled them, so no operator can swallow them. At a barrier each operator's state
    /// is snapshotted into `snapshots` right after it handled the barrier.
    async fn process(
        &mut self,
        message: Message,
        snapshots: &mut Vec<OperatorState>,
    ) -> Result<Vec<Message>, TaskError> {
        self.process_from(0, vec![message], snapshots).await
    }

    /// Passes a batch of input `input` (of a two-input head operator) through the chain.
    async fn process_input(&mut self, input: usize, batch: RecordBatch) -> Result<Vec<Message>, TaskError> {
        let Some(head) = self.operators.first_mut() else { return Ok(vec![Message::Data(batch)]) };
        let mut out = Collector::default();
        head.process_input(input, batch, &mut out).await?;
        self.process_from(1, out.take(), &mut Vec::new()).await
    }

    /// Tells the head operator that input `input`'s watermark rose; what it emits goes
    /// through the rest of the chain.
    async fn input_watermark(&mut self, input: usize, watermark: i64) -> Result<Vec<Message>, TaskError> {
        let Some(head) = self.operators.first_mut() else { return Ok(Vec::new()) };
        let mut out = Collector::default();
        head.on_input_watermark(input, watermark, &mut out).await?;
        self.process_from(1, out.take(), &mut Vec::new()).await
    }

    async fn input_ended(&mut self, input: usize) -> Result<Vec<Message>, TaskError> {
        let Some(head) = self.operators.first_mut() else { return Ok(Vec::new()) };
        let mut out = Collector::default();
        head.on_input_end(input, &mut out).await?;
        self.process_from(1, out.take(), &mut Vec::new()).await
    }

    /// The earliest deadline of the chain's operators.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.operators.iter().filter_map(|op| op.deadline()).min()
    }

    /// False while some operator of the chain is full.
    fn accepts_input(&self) -> bool {
        self.operators.iter().all(|op| op.accepts_input())
    }

    /// Calls the timers that are due; what they emit goes through the rest of the chain.
    async fn fire_timers(&mut self) -> Result<Vec<Message>, TaskError> {
        let mut out = Vec::new();
        for k in 0..self.operators.len() {
            // The clock is read after the deadline, so "due now" is always due.
            if self.operators[k].deadline().is_some_and(|d| d <= tokio::time::Instant::now()) {
                let mut emitted = Collector::default();
                self.operators[k].on_timer(&mut emitted).await?;
                out.extend(self.process_from(k + 1, emitted.take(), &mut Vec::new()).await?);
            }
        }
        Ok(out)
    }

    /// Passes `messages` through the operators from index `start` on.
    async fn process_from(
        &mut self,
        start: usize,
        messages: Vec<Message>,
        snapshots: &mut Vec<OperatorState>,
    ) -> Result<Vec<Message>, TaskError> {
        let mut current = messages;
        for op in &mut self.operators[start..] {
            let mut out = Collector::default();
            for message in current {
                match message {
                    Message::Data(batch) => op.process_batch(batch, &mut out).await?,
                    Message::Watermark(w) => op.on_watermark(w, &mut out).await?,
                    Message::Idle => op.on_idle(&mut out).await?,
                    Message::SplitsAssigned(splits) => op.on_splits_assigned(splits, &mut out).await?,
                    Message::Barrier(b) => {
                        op.on_barrier(b, &mut out).await?;
                        snapshots.push(op.snapshot_state(b.checkpoint_id).await?);
                        out.message(Message::Barrier(b));
                    }
                    Message::EndOfInput => {
                        op.finish(&mut out).await?;
                        out.message(Message::EndOfInput);
                    }
                }
            }
            current = out.take();
        }
        Ok(current)
    }
}

/// Everything a subtask needs to run.
pub struct Task {
    /// Who the task is.
    pub ctx: TaskContext,
    /// Its source or input gate.
    pub head: Head,
    /// The uid of its source, when the head is one.
    pub source_uid: Option<String>,
    /// Its operators.
    pub chain: Chain,
    /// Its outgoing edges.
    pub outputs: Outputs,
    /// Its counters.
    pub metrics: Arc<TaskMetrics>,
    /// Its link to checkpoints.
    pub checkpointing: TaskCheckpointing,
    /// A checkpoint triggered whose barrier has not reached this task yet.
    pub unbarriered: Option<PendingTrigger>,
    /// The latest checkpoint the operators were told completed.
    pub notified: u64,
    /// A source task that emitted the barrier of a stop-with-savepoint: it emits nothing
    /// more unless a newer checkpoint is triggered (the savepoint failed).
    pub stopped_at: Option<u64>,
    /// When the operators' metrics were last published.
    pub metrics_published: Instant,
    /// A source task that polls nothing for this long says it is idle downstream
    /// (`table.exec.source.idle-timeout`).
    pub idle_timeout: Option<Duration>,
}

fn restored_operator<'a>(restore: &'a Option<TaskRestore>, uid: &str) -> Option<&'a OperatorRestore> {
    restore.as_ref().and_then(|r| r.operators.iter().find(|o| o.uid == uid))
}

impl Task {
    /// Runs the task until its input ends (bounded) or it is aborted.
    pub async fn run(mut self) -> Result<(), TaskError> {
        let mut head = std::mem::replace(&mut self.head, Head::Inputs(InputGate::new(Vec::new())));
        self.initialize_chain_state().await?;
        self.chain.open(&self.ctx).await?;
        if let Head::Source(source) = &mut head {
            let uid = self.source_uid.clone().unwrap_or_default();
            let key_groups = key_group_range(self.ctx.subtask, self.ctx.max_parallelism, self.ctx.parallelism);
            source.initialize_state(self.state_init(&uid, None, key_groups).await?).await?;
            source.open(&self.ctx).await?;
        }
        let result = self.run_head(head).await;
        self.metrics.stop();
        // Closing a keyed state store that was written to (RocksDB) takes about a second
        // (its memtable is flushed): on a blocking thread, in the background, so neither the
        // runtime (heartbeats, other tasks) nor the task's end waits for it. The store's
        // directory goes with it.
        tokio::task::spawn_blocking(move || drop(self));
        result
    }

    /// The task's one loop: takes the head's next step and handles it, until the input
    /// ends (then, with checkpoints, the final checkpoint) or the task parks.
    async fn run_head(&mut self, mut head: Head) -> Result<(), TaskError> {
        let mut idle = SourceIdleness::default();
        loop {
            // Where the time goes: waiting for input is idle, unless an operator is full
            // (its work holds the input back) or a source's poll produced rows (reading
            // them was work); handling a step is busy, except while a send waits for room
            // (backpressured, see `ChannelWriter::send`).
            let saturated = !self.chain.accepts_input();
            self.metrics.enter(if saturated { Activity::Busy } else { Activity::Idle });
            let step = self.next_step(&mut head, &mut idle).await?;
            let source_rows = matches!(step, Step::Data { .. }) && matches!(head, Head::Source(_));
            self.metrics.switch(Some(Activity::Busy), source_rows.then_some(Activity::Busy));
            let ended = match step {
                Step::Data { input, batch } => {
                    self.handle_input(input, batch).await?;
                    if let (Head::Source(_), Some((_, pause))) = (&head, crate::faults::source_pace()) {
                        tokio::time::sleep(pause).await;
                    }
                    false
                }
                Step::InputWatermark { input, watermark } => {
                    let out = self.chain.input_watermark(input, watermark).await?;
                    self.send(out).await?
                }
                Step::InputEnded { input } => {
                    let out = self.chain.input_ended(input).await?;
                    self.send(out).await?
                }
                Step::Aborted { checkpoint_id, reason } => {
                    let reason = format!("{}: {reason}", self.ctx.task_name);
                    let _ = self.checkpointing.events.send(TaskEvent::Decline { checkpoint_id, reason });
                    false
                }
                Step::Command(command) => match self.command(command, head.source_mut()).await? {
                    Some(done) => {
                        self.metrics.enter(Activity::Idle);
                        return self.park(done).await;
                    }
                    None => false,
                },
                Step::Timers => {
                    self.fire_due_timers().await?;
                    false
                }
                Step::Linger => {
                    self.outputs.flush_lingering().await?;
                    false
                }
                Step::Message(Message::Barrier(barrier)) => {
                    if self.unbarriered.is_some_and(|t| t.checkpoint_id <= barrier.checkpoint_id) {
                        self.unbarriered = None;
                    }
                    self.checkpoint_at_barrier(barrier, None, head.last_alignment()).await?;
                    false
                }
                Step::Message(message) => {
                    if let Message::Watermark(w) = &message {
                        self.metrics.set_input_watermark(*w);
                    }
                    self.handle(message).await?
                }
                Step::SourceFinished => {
                    // A bounded input ends event time too, so event-time results are emitted.
                    self.handle(Message::Watermark(i64::MAX)).await?;
                    self.handle(Message::EndOfInput).await?
                }
                Step::Disconnected => return Ok(()),
                Step::Nothing => false,
            };
            if ended {
                if self.checkpointing.storage.is_some() {
                    // Waiting for the final checkpoint is not work.
                    self.metrics.enter(Activity::Idle);
                    return self.await_final_checkpoint(head.into_source()).await;
                }
                return Ok(());
            }
        }
    }

    /// Obeys a command of the jobmanager; returns the park signal of a stop-with-savepoint.
    /// A source task starts a triggered checkpoint (its source's positions, then the
    /// barrier); a task with inputs learns of it from its barriers, and keeps the trigger in
    /// case its input ends first.
    async fn command(
        &mut self,
        command: TaskCommand,
        source: Option<&mut Box<dyn Source>>,
    ) -> Result<Option<tokio::sync::oneshot::Sender<()>>, TaskError> {
        match command {
            TaskCommand::Trigger { checkpoint_id, timestamp_ms, last_completed, stop, all_ended } => match source {
                Some(source) => {
                    self.notify_complete(last_completed, Some(source)).await?;
                    let state = source.snapshot_state(checkpoint_id).await?;
                    let barrier = Barrier { checkpoint_id, timestamp_ms, last_completed };
                    self.checkpoint_at_barrier(barrier, Some(state), Duration::ZERO).await?;
                    self.stopped_at = stop.then_some(checkpoint_id);
                }
                None => self.unbarriered = Some(PendingTrigger { checkpoint_id, last_completed, all_ended }),
            },
            TaskCommand::Complete(checkpoint_id) => self.notify_complete(checkpoint_id, source).await?,
            TaskCommand::Park(done) => return Ok(Some(done)),
        }
        Ok(None)
    }

    /// What operator `uid` starts from (its restored lists read off the task's thread).
    fn state_init(
        &self,
        uid: &str,
        keyed: Option<Arc<dyn sluice_core::KeyedStateStore>>,
        key_groups: (u32, u32),
    ) -> impl std::future::Future<Output = Result<StateInit, TaskError>> + Send + 'static {
        let restore = restored_operator(&self.checkpointing.restore, uid).cloned();
        let restored = self.checkpointing.restore.is_some();
        let (checkpoint, uid) = (self.checkpointing.restored_checkpoint, uid.to_string());
        async move {
            let mut init = tokio::task::spawn_blocking(move || {
                list_state::state_init(restore.as_ref(), restored, checkpoint, &uid)
            })
            .await
            .map_err(|e| OperatorError::State(format!("reading operator state stopped: {e}")))??;
            init.keyed = keyed;
            init.key_groups = key_groups;
            Ok(init)
        }
    }

    /// Opens the keyed state of the operators that use it (restoring it when the job
    /// restored a checkpoint) and hands every operator its state.
    async fn initialize_chain_state(&mut self) -> Result<(), TaskError> {
        let ctx = &self.ctx;
        let range = key_group_range(ctx.subtask, ctx.max_parallelism, ctx.parallelism);
        for i in 0..self.chain.operators.len() {
            let uid = self.chain.uids[i].clone();
            let keyed = if self.chain.operators[i].uses_keyed_state() {
                let handles =
                    restored_operator(&self.checkpointing.restore, &uid).map(|o| o.keyed.clone()).unwrap_or_default();
                let name = format!("{uid}-{}", ctx.subtask);
                let dir = self.checkpointing.local_dir.join(&name);
                let storage = self.checkpointing.storage.clone();
                let max = ctx.max_parallelism;
                let backend = tokio::task::spawn_blocking(move || {
                    KeyedBackend::open(dir, name, range, max, &handles, storage.as_ref())
                })
                .await
                .map_err(|e| OperatorError::State(format!("opening keyed state failed: {e}")))??;
                let store = backend.store();
                self.chain.backends[i] = Some(backend);
                Some(store)
            } else {
                None
            };
            let init = self.state_init(&uid, keyed, range).await?;
            self.chain.operators[i].initialize_state(init).await?;
        }
        Ok(())
    }

    /// Publishes the operators' own metrics (at most every 250 ms, or when `now`).
    fn publish_operator_metrics(&mut self, now: bool) {
        if !now && self.metrics_published.elapsed() < Duration::from_millis(250) {
            return;
        }
        self.metrics_published = Instant::now();
        let metrics = self.chain.operators.iter().flat_map(|op| op.metrics()).collect();
        self.metrics.set_operator_metrics(metrics);
    }

    /// Feeds a control message into the chain and sends what comes out; true after end of
    /// input.
    async fn handle(&mut self, message: Message) -> Result<bool, TaskError> {
        let mut snapshots = Vec::new();
        let out = self.chain.process(message, &mut snapshots).await?;
        // After the message, so that what the end of input did is reported too.
        self.publish_operator_metrics(true);
        self.send(out).await
    }

    /// Feeds a batch of input `input` into the chain and sends what comes out.
    async fn handle_input(&mut self, input: usize, batch: RecordBatch) -> Result<(), TaskError> {
        self.metrics.add_rows_in(batch.num_rows());
        let out = self.chain.process_input(input, batch).await?;
        self.publish_operator_metrics(false);
        self.send(out).await?;
        Ok(())
    }

    async fn send(&mut self, messages: Vec<Message>) -> Result<bool, TaskError> {
        let mut ended = false;
        for out in messages {
            match out {
                Message::Data(batch) => self.outputs.send_batch(batch).await?,
                control => {
                    ended |= matches!(control, Message::EndOfInput);
                    if let Message::Watermark(w) = control {
                        self.metrics.set_watermark(w);
                    }
                    self.outputs.send_control(control).await?;
                }
            }
        }
        Ok(ended)
    }

    /// Takes this task's part of a checkpoint at a barrier: snapshots the operators as the
    /// barrier passes them, takes the keyed-state checkpoints, forwards the barrier, and
    /// leaves the upload and the acknowledgement to a background task.
    async fn checkpoint_at_barrier(
        &mut self,
        barrier: Barrier,
        source_state: Option<OperatorState>,
        alignment: Duration,
    ) -> Result<(), TaskError> {
        let started = Instant::now();
        // The barrier proves its predecessor completed: commit it now if not yet told, so
        // this snapshot holds only what is still uncommitted.
        self.notify_complete(barrier.last_completed, None).await?;
        let mut states = Vec::new();
        let out = self.chain.process(Message::Barrier(barrier), &mut states).await?;
        let locals = self.snapshot_keyed(barrier.checkpoint_id)?;
        let sync = started.elapsed();
        self.send(out).await?;
        self.acknowledge(barrier.checkpoint_id, source_state, states, locals, alignment, sync);
        Ok(())
    }

    /// Snapshots an ended task directly (no barrier can reach it any more).
    async fn checkpoint_ended(
        &mut self,
        checkpoint_id: u64,
        source: Option<&mut Box<dyn Source>>,
    ) -> Result<(), TaskError> {
        let started = Instant::now();
        let source_state = match source {
            Some(s) => Some(s.snapshot_state(checkpoint_id).await?),
            None => None,
        };
        let mut states = Vec::new();
        for op in &mut self.chain.operators {
            states.push(op.snapshot_state(checkpoint_id).await?);
        }
        let locals = self.snapshot_keyed(checkpoint_id)?;
        self.acknowledge(checkpoint_id, source_state, states, locals, Duration::ZERO, started.elapsed());
        Ok(())
    }

    fn snapshot_keyed(&mut self, checkpoint_id: u64) -> Result<Vec<Option<LocalSnapshot>>, TaskError> {
        if self.checkpointing.storage.is_none() {
            return Ok(Vec::new());
        }
        let mut locals = Vec::new();
        for backend in &self.chain.backends {
            locals.push(match backend {
                Some(b) => Some(b.snapshot_sync(checkpoint_id)?),
                None => None,
            });
        }
        Ok(locals)
    }

    /// Uploads keyed state in the background, then acknowledges the checkpoint.
    fn acknowledge(
        &mut self,
        checkpoint_id: u64,
        source_state: Option<OperatorState>,
        states: Vec<OperatorState>,
        locals: Vec<Option<LocalSnapshot>>,
        alignment: Duration,
        sync: Duration,
    ) {
        let Some(storage) = self.checkpointing.storage.clone() else { return };
        let mut operators = Vec::new();
        if let (Some(uid), Some(state)) = (&self.source_uid, source_state) {
            operators.push(operator_snapshot(uid, state));
        }
        for (uid, state) in self.chain.uids.iter().zip(states) {
            operators.push(operator_snapshot(uid, state));
        }
        let threshold = self.checkpointing.memory_threshold;
        let owner = |uid: &str| {
            let uid: String =
                uid.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
            format!("{}-{}-{uid}", self.ctx.vertex_id, self.ctx.subtask)
        };
        let owners: Vec<String> = operators.iter().map(|o| owner(&o.uid)).collect();
        let uploads: Vec<(usize, _)> = locals
            .into_iter()
            .enumerate()
            .filter_map(|(i, local)| {
                let backend = self.chain.backends[i].as_ref()?;
                Some((i, backend.upload_fn(local?, storage.clone())))
            })
            .collect();
        let offset = usize::from(self.source_uid.is_some());
        let events = self.checkpointing.events.clone();
        let task = self.ctx.task_name.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut uploaded_bytes = 0;
            // Large lists go to the checkpoint storage; the acknowledgement carries their handles.
            let spill_storage = storage.clone();
            let spilled = tokio::task::spawn_blocking(move || {
                let mut written = 0;
                for (operator, owner) in operators.iter_mut().zip(&owners) {
                    for list in &mut operator.lists {
                        written += list_state::spill(list, &spill_storage, checkpoint_id, owner, threshold)?;
                    }
                }
                Ok::<_, OperatorError>((operators, written))
            })
            .await;
            let mut operators = match spilled {
                Ok(Ok((operators, written))) => {
                    uploaded_bytes += written;
                    operators
                }
                Ok(Err(e)) => {
                    let reason = format!("{task} cannot store its operator state: {e}");
                    let _ = events.send(TaskEvent::Decline { checkpoint_id, reason });
                    return;
                }
                Err(e) => {
                    let reason = format!("{task}: the operator state upload stopped: {e}");
                    let _ = events.send(TaskEvent::Decline { checkpoint_id, reason });
                    return;
                }
            };
            for (i, upload) in uploads {
                match tokio::task::spawn_blocking(upload).await {
                    Ok(Ok((handle, copied))) => {
                        uploaded_bytes += copied;
                        operators[offset + i].keyed = Some(handle);
                    }
                    Ok(Err(e)) => {
                        let reason = format!("{task} cannot store its keyed state: {e}");
                        let _ = events.send(TaskEvent::Decline { checkpoint_id, reason });
                        return;
                    }
                    Err(e) => {
                        let reason = format!("{task}: the keyed state upload stopped: {e}");
                        let _ = events.send(TaskEvent::Decline { checkpoint_id, reason });
                        return;
                    }
                }
            }
            let state_bytes = operators
                .iter()
                .map(|o| {
                    o.lists
                        .iter()
                        .map(|l| list_state::inline_bytes(l) + l.file.as_ref().map_or(0, |f| f.size))
                        .sum::<u64>()
                        + o.keyed.as_ref().map_or(0, |k| k.files.iter().map(|f| f.size).sum())
                })
                .sum();
            let stats = CheckpointTaskStats {
                checkpoint_id,
                alignment_ms: alignment.as_millis() as u64,
                sync_ms: sync.as_millis() as u64,
                async_ms: started.elapsed().as_millis() as u64,
                state_bytes,
                uploaded_bytes,
            };
            let _ = events.send(TaskEvent::Ack { checkpoint_id, snapshot: TaskSnapshot { operators }, stats });
        });
    }

    /// Tells the operators that `checkpoint_id` completed (once; older ids are ignored).
    async fn notify_complete(
        &mut self,
        checkpoint_id: u64,
        source: Option<&mut Box<dyn Source>>,
    ) -> Result<(), TaskError> {
        if checkpoint_id <= self.notified {
            return Ok(());
        }
        self.notified = checkpoint_id;
        if let Some(source) = source {
            source.notify_checkpoint_complete(checkpoint_id).await?;
        }
        for op in &mut self.chain.operators {
            op.notify_checkpoint_complete(checkpoint_id).await?;
        }
        Ok(())
    }

    /// Stop-with-savepoint: everything before is done (the savepoint's commits too); the
    /// operators discard what they began after it, then the task waits to be canceled. A
    /// task that cannot stop cleanly fails, and the stop with it.
    async fn park(&mut self, done: tokio::sync::oneshot::Sender<()>) -> Result<(), TaskError> {
        for op in &mut self.chain.operators {
            op.stop_with_savepoint().await?;
        }
        let _ = done.send(());
        std::future::pending::<()>().await;
        Ok(())
    }

    /// After the end of input, with checkpoints: waits for a checkpoint covering the final
    /// state to complete, then returns (the task finishes).
    async fn await_final_checkpoint(&mut self, mut source: Option<Box<dyn Source>>) -> Result<(), TaskError> {
        self.outputs.flush_lingering().await?;
        let _ = self.checkpointing.events.send(TaskEvent::Ended);
        let mut final_checkpoint = None;
        // A checkpoint triggered while the input was ending never reached this task as a
        // barrier: its part is the final state.
        if let Some(PendingTrigger { checkpoint_id, last_completed, all_ended }) = self.unbarriered.take() {
            self.notify_complete(last_completed, source.as_mut()).await?;
            self.checkpoint_ended(checkpoint_id, source.as_mut()).await?;
            if all_ended {
                final_checkpoint = Some(checkpoint_id);
            }
        }
        while let Some(command) = self.checkpointing.commands.recv().await {
            match command {
                TaskCommand::Trigger { checkpoint_id, last_completed, all_ended, .. } => {
                    // Each snapshot follows the commit of what completed before, so it
                    // holds no commit already done.
                    self.notify_complete(last_completed, source.as_mut()).await?;
                    self.checkpoint_ended(checkpoint_id, source.as_mut()).await?;
                    if all_ended {
                        final_checkpoint.get_or_insert(checkpoint_id);
                    }
                }
                TaskCommand::Complete(checkpoint_id) => {
                    self.notify_complete(checkpoint_id, source.as_mut()).await?;
                    if final_checkpoint.is_some_and(|f| checkpoint_id >= f) {
                        return Ok(());
                    }
                }
                TaskCommand::Park(done) => return self.park(done).await,
            }
        }
        Ok(())
    }

    /// Calls the chain's due timers and sends what they emit.
    async fn fire_due_timers(&mut self) -> Result<(), TaskError> {
        let out = self.chain.fire_timers().await?;
        self.publish_operator_metrics(false);
        self.send(out).await?;
        Ok(())
    }
}

fn operator_snapshot(uid: &str, state: OperatorState) -> OperatorSnapshot {
    OperatorSnapshot { uid: uid.to_string(), lists: list_state::inline_all(state), keyed: None }
}

#[cfg(test)]
mod tests;
