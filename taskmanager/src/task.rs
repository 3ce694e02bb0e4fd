//! Running one subtask: a head (a source, or the input gate) feeding an operator chain
//! whose output goes to the task's outputs.

use std::sync::Arc;

use sluice_operators::{Collector, Message, Operator, Source, SourcePoll, TaskContext};

use crate::error::TaskError;
use crate::input::InputGate;
use crate::metrics::TaskMetrics;
use crate::output::Outputs;

/// Where a task's rows come from.
pub enum Head {
    /// The task starts with a source.
    Source(Box<dyn Source>),
    /// The task reads its input channels.
    Inputs(InputGate),
}

/// The operators of a task after its head, first to last.
pub struct Chain {
    operators: Vec<Box<dyn Operator>>,
}

impl Chain {
    /// A chain of `operators`.
    pub fn new(operators: Vec<Box<dyn Operator>>) -> Self {
        Chain { operators }
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), TaskError> {
        for op in &mut self.operators {
            op.open(ctx).await?;
        }
        Ok(())
    }

    /// Passes a message through every operator; returns what leaves the chain, in order.
    /// Barriers and the end of input are forwarded by the chain after each operator has
    /// handled them, so no operator can swallow them.
    async fn process(&mut self, message: Message) -> Result<Vec<Message>, TaskError> {
        let mut current = vec![message];
        for op in &mut self.operators {
            let mut out = Collector::default();
            for message in current {
                match message {
                    Message::Data(batch) => op.process_batch(batch, &mut out).await?,
                    Message::Watermark(w) => op.on_watermark(w, &mut out).await?,
                    Message::Barrier(b) => {
                        op.on_barrier(b, &mut out).await?;
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
    /// Its operators.
    pub chain: Chain,
    /// Its outgoing edges.
    pub outputs: Outputs,
    /// Its counters.
    pub metrics: Arc<TaskMetrics>,
}

impl Task {
    /// Runs the task until its input ends (bounded) or it is aborted.
    pub async fn run(mut self) -> Result<(), TaskError> {
        self.chain.open(&self.ctx).await?;
        let head = std::mem::replace(&mut self.head, Head::Inputs(InputGate::new(Vec::new())));
        match head {
            Head::Source(source) => self.run_source(source).await,
            Head::Inputs(gate) => self.run_inputs(gate).await,
        }
    }

    /// Feeds one message into the chain and sends what comes out; true after end of input.
    async fn handle(&mut self, message: Message) -> Result<bool, TaskError> {
        if let Message::Data(batch) = &message {
            self.metrics.add_rows_in(batch.num_rows());
        }
        let mut ended = false;
        for out in self.chain.process(message).await? {
            match out {
                Message::Data(batch) => self.outputs.send_batch(batch).await?,
                control => {
                    ended |= matches!(control, Message::EndOfInput);
                    self.outputs.send_control(control).await?;
                }
            }
        }
        Ok(ended)
    }

    async fn run_source(&mut self, mut source: Box<dyn Source>) -> Result<(), TaskError> {
        source.open(&self.ctx).await?;
        loop {
            match source.poll_next().await? {
                SourcePoll::Batch(batch) => {
                    self.handle(Message::Data(batch)).await?;
                }
                SourcePoll::Idle => {}
                SourcePoll::Finished => {
                    // A bounded input ends event time too, so event-time results are emitted.
                    self.handle(Message::Watermark(i64::MAX)).await?;
                    self.handle(Message::EndOfInput).await?;
                    return Ok(());
                }
            }
            if self.outputs.linger_deadline().is_some_and(|d| d <= tokio::time::Instant::now()) {
                self.outputs.flush_lingering().await?;
            }
        }
    }

    async fn run_inputs(&mut self, mut gate: InputGate) -> Result<(), TaskError> {
        loop {
            let message = match self.outputs.linger_deadline() {
                Some(deadline) => tokio::select! {
                    message = gate.next() => message?,
                    _ = tokio::time::sleep_until(deadline) => {
                        self.outputs.flush_lingering().await?;
                        continue;
                    }
                },
                None => gate.next().await?,
            };
            if self.handle(message).await? {
                return Ok(());
            }
        }
    }
}
