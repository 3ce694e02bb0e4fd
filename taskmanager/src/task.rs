//! Running one subtask: a head (a source, or the input gate) feeding an operator chain
//! whose output goes to the task's outputs.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use sluice_operators::{Barrier, Message, Operator, Source, SourcePoll, TaskContext};

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

    async fn process(&mut self, mut batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, TaskError> {
        for op in &mut self.operators {
            let mut next = Vec::new();
            for batch in batches {
                op.process_batch(batch, &mut next).await?;
            }
            batches = next;
        }
        Ok(batches)
    }

    /// Passes a barrier down the chain after the batches each operator emits before it.
    async fn barrier(&mut self, barrier: Barrier) -> Result<Vec<RecordBatch>, TaskError> {
        let mut emitted: Vec<RecordBatch> = Vec::new();
        for op in &mut self.operators {
            let mut out = Vec::new();
            for batch in std::mem::take(&mut emitted) {
                op.process_batch(batch, &mut out).await?;
            }
            op.on_barrier(barrier, &mut out).await?;
            emitted = out;
        }
        Ok(emitted)
    }

    /// Passes a watermark down the chain; returns the batches emitted and the watermark to forward.
    async fn watermark(&mut self, watermark: i64) -> Result<(Vec<RecordBatch>, Option<i64>), TaskError> {
        let mut emitted: Vec<RecordBatch> = Vec::new();
        let mut current = Some(watermark);
        for i in 0..self.operators.len() {
            let mut out = Vec::new();
            for batch in std::mem::take(&mut emitted) {
                self.operators[i].process_batch(batch, &mut out).await?;
            }
            if let Some(w) = current {
                current = self.operators[i].on_watermark(w, &mut out).await?;
            }
            emitted = out;
        }
        Ok((emitted, current))
    }

    /// Ends the input of every operator in order, carrying what each emits to the next.
    async fn finish(&mut self) -> Result<Vec<RecordBatch>, TaskError> {
        let mut carried: Vec<RecordBatch> = Vec::new();
        for i in 0..self.operators.len() {
            let mut out = Vec::new();
            for batch in std::mem::take(&mut carried) {
                self.operators[i].process_batch(batch, &mut out).await?;
            }
            self.operators[i].finish(&mut out).await?;
            carried = out;
        }
        Ok(carried)
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

    async fn emit(&mut self, batches: Vec<RecordBatch>) -> Result<(), TaskError> {
        for batch in batches {
            self.outputs.send_batch(batch).await?;
        }
        Ok(())
    }

    async fn end(&mut self) -> Result<(), TaskError> {
        let rest = self.chain.finish().await?;
        self.emit(rest).await?;
        self.outputs.send_control(Message::EndOfInput).await
    }

    async fn run_source(&mut self, mut source: Box<dyn Source>) -> Result<(), TaskError> {
        source.open(&self.ctx).await?;
        loop {
            match source.poll_next().await? {
                SourcePoll::Batch(batch) => {
                    self.metrics.add_rows_in(batch.num_rows());
                    let out = self.chain.process(vec![batch]).await?;
                    self.emit(out).await?;
                }
                SourcePoll::Idle => {}
                SourcePoll::Finished => return self.end().await,
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
            match message {
                Message::Data(batch) => {
                    self.metrics.add_rows_in(batch.num_rows());
                    let out = self.chain.process(vec![batch]).await?;
                    self.emit(out).await?;
                }
                Message::Watermark(w) => {
                    let (out, forward) = self.chain.watermark(w).await?;
                    self.emit(out).await?;
                    if let Some(w) = forward {
                        self.outputs.send_control(Message::Watermark(w)).await?;
                    }
                }
                Message::Barrier(barrier) => {
                    let out = self.chain.barrier(barrier).await?;
                    self.emit(out).await?;
                    self.outputs.send_control(Message::Barrier(barrier)).await?;
                }
                Message::EndOfInput => return self.end().await,
            }
        }
    }
}
