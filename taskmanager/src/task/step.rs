//! What a task does next. Its head decides: a source is polled to completion (its
//! `poll_next` is not cancel-safe, so it never races anything), while an input gate is
//! raced against the jobmanager's commands, the operators' timers and wake-ups, and the
//! lingering output. Either way the task's one loop ([`Task::run`](super::Task::run))
//! handles the step that comes out.

use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use sluice_core::{Message, Source, SourcePoll};

use super::{Task, TaskCommand};
use crate::error::TaskError;
use crate::input::{GateEvent, InputGate};

/// Where a task's rows come from.
pub enum Head {
    /// The task starts with a source.
    Source(Box<dyn Source>),
    /// The task reads its input channels.
    Inputs(InputGate),
}

impl Head {
    /// The source, when the head is one.
    pub(super) fn source_mut(&mut self) -> Option<&mut Box<dyn Source>> {
        match self {
            Head::Source(source) => Some(source),
            Head::Inputs(_) => None,
        }
    }

    /// The source, when the head is one, for the task's last phase.
    pub(super) fn into_source(self) -> Option<Box<dyn Source>> {
        match self {
            Head::Source(source) => Some(source),
            Head::Inputs(_) => None,
        }
    }

    /// How long the last barrier waited for alignment (zero for a source).
    pub(super) fn last_alignment(&self) -> Duration {
        match self {
            Head::Source(_) => Duration::ZERO,
            Head::Inputs(gate) => gate.last_alignment(),
        }
    }
}

/// One step of a task.
pub(super) enum Step {
    /// Rows of input `input` (always 0 unless the head operator has two inputs).
    Data {
        /// The input they came from.
        input: usize,
        /// The rows.
        batch: RecordBatch,
    },
    /// A control message: a watermark, an idle marker, the end of input, or an aligned barrier.
    Message(Message),
    /// One input's watermark of a two-input head operator rose.
    InputWatermark {
        /// The input.
        input: usize,
        /// Its watermark.
        watermark: i64,
    },
    /// Every channel of one input of a two-input head operator ended.
    InputEnded {
        /// The input.
        input: usize,
    },
    /// A checkpoint was abandoned during alignment.
    Aborted {
        /// The checkpoint.
        checkpoint_id: u64,
        /// Why.
        reason: String,
    },
    /// A command from the jobmanager.
    Command(TaskCommand),
    /// An operator's timer is due, or an operator woke the task.
    Timers,
    /// The lingering output is due to be sent.
    Linger,
    /// The source's input ended.
    SourceFinished,
    /// The jobmanager's command channel closed while the task waited on it alone.
    Disconnected,
    /// Nothing to do this time (the source had nothing).
    Nothing,
}

impl From<GateEvent> for Step {
    fn from(event: GateEvent) -> Self {
        match event {
            GateEvent::Message(message) => Step::Message(message),
            GateEvent::Data { input, batch } => Step::Data { input, batch },
            GateEvent::InputWatermark { input, watermark } => Step::InputWatermark { input, watermark },
            GateEvent::InputEnded { input } => Step::InputEnded { input },
            GateEvent::Aborted { checkpoint_id, reason } => Step::Aborted { checkpoint_id, reason },
        }
    }
}

/// Whether a source has had nothing for long enough to say so downstream
/// (`table.exec.source.idle-timeout`).
#[derive(Default)]
pub(super) struct SourceIdleness {
    since: Option<Instant>,
    announced: bool,
}

impl SourceIdleness {
    /// The source produced rows: it is active again.
    fn active(&mut self) {
        *self = SourceIdleness::default();
    }

    /// The source had nothing; true once, when it has had nothing for `timeout`.
    fn announce(&mut self, timeout: Option<Duration>) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        let due = !self.announced && timeout.is_some_and(|t| since.elapsed() >= t);
        self.announced |= due;
        due
    }
}

impl Task {
    /// The task's next step, as its head decides.
    pub(super) async fn next_step(&mut self, head: &mut Head, idle: &mut SourceIdleness) -> Result<Step, TaskError> {
        match head {
            Head::Source(source) => self.next_source_step(source, idle).await,
            Head::Inputs(gate) => self.next_input_step(gate).await,
        }
    }

    /// A source task's next step: commands first, then due timers and output, then (while
    /// the chain accepts input) one poll of the source, run to completion.
    async fn next_source_step(
        &mut self,
        source: &mut Box<dyn Source>,
        idle: &mut SourceIdleness,
    ) -> Result<Step, TaskError> {
        // A source whose input is always ready would otherwise never yield its worker thread.
        tokio::task::consume_budget().await;
        if let Ok(command) = self.checkpointing.commands.try_recv() {
            return Ok(Step::Command(command));
        }
        if self.stopped_at.is_some() {
            // Stop-with-savepoint: nothing after its barrier. Wait for the commit and the
            // end, or for a newer checkpoint (the savepoint failed: go on).
            return Ok(self.checkpointing.commands.recv().await.map_or(Step::Disconnected, Step::Command));
        }
        let now = tokio::time::Instant::now();
        if self.chain.deadline().is_some_and(|d| d <= now) {
            return Ok(Step::Timers);
        }
        if self.outputs.linger_deadline().is_some_and(|d| d <= now) {
            return Ok(Step::Linger);
        }
        if !self.chain.accepts_input() {
            // The chain is full: serve checkpoints and wait for an operator to make room.
            let wake = self.ctx.wake.clone();
            let timer = self.chain.deadline();
            return Ok(tokio::select! {
                Some(command) = self.checkpointing.commands.recv() => Step::Command(command),
                () = wake.notified() => Step::Timers,
                _ = tokio::time::sleep_until(timer.unwrap_or(now)), if timer.is_some() => Step::Timers,
            });
        }
        let polled = source.poll_next().await?;
        self.metrics.set_skipped(source.skipped_records());
        Ok(match polled {
            SourcePoll::Batch(batch) => {
                idle.active();
                Step::Data { input: 0, batch }
            }
            SourcePoll::Idle if idle.announce(self.idle_timeout) => Step::Message(Message::Idle),
            SourcePoll::Idle => Step::Nothing,
            SourcePoll::Finished => Step::SourceFinished,
            SourcePoll::SplitsAssigned(splits) => Step::Message(Message::SplitsAssigned(splits)),
        })
    }

    /// A task's next step when it reads input channels: whichever comes first of its input
    /// (while the chain accepts it), a wake-up, a command, the lingering output and a timer.
    async fn next_input_step(&mut self, gate: &mut InputGate) -> Result<Step, TaskError> {
        let wake = self.ctx.wake.clone();
        let linger = self.outputs.linger_deadline();
        let timer = self.chain.deadline();
        let accepting = self.chain.accepts_input();
        let now = tokio::time::Instant::now();
        Ok(tokio::select! {
            event = gate.next(), if accepting => Step::from(event?),
            () = wake.notified() => Step::Timers,
            Some(command) = self.checkpointing.commands.recv() => Step::Command(command),
            _ = tokio::time::sleep_until(linger.unwrap_or(now)), if linger.is_some() => Step::Linger,
            _ = tokio::time::sleep_until(timer.unwrap_or(now)), if timer.is_some() => Step::Timers,
        })
    }
}
