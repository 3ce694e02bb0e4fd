//! The input side of a task: merges its input channels fairly, aligns checkpoint barriers
//! (an input that delivered barrier n is parked until every input has), forwards the
//! minimum watermark across inputs, and reports end of input once every input has ended.

use std::future::poll_fn;
use std::task::Poll;

use sluice_operators::{Barrier, Message};
use tokio::sync::mpsc;

use crate::error::TaskError;

/// One input channel of a task.
pub struct InputChannel {
    rx: mpsc::Receiver<Message>,
    /// Who feeds this channel, for error messages.
    origin: String,
    ended: bool,
    blocked: bool,
    watermark: i64,
}

impl InputChannel {
    /// Wraps a channel fed by `origin` (e.g. "subtask 2 of 'source: orders' at 10.0.0.5:6121").
    pub fn new(rx: mpsc::Receiver<Message>, origin: String) -> Self {
        InputChannel { rx, origin, ended: false, blocked: false, watermark: i64::MIN }
    }
}

/// The merged, aligned inputs of a task.
pub struct InputGate {
    inputs: Vec<InputChannel>,
    next: usize,
    watermark: i64,
    pending_barrier: Option<Barrier>,
    /// When the first input delivered the pending barrier.
    alignment_started: Option<std::time::Instant>,
    /// How long the last barrier took to align.
    last_alignment: std::time::Duration,
}

impl InputGate {
    /// A gate over `inputs` (at least one).
    pub fn new(inputs: Vec<InputChannel>) -> Self {
        InputGate {
            inputs,
            next: 0,
            watermark: i64::MIN,
            pending_barrier: None,
            alignment_started: None,
            last_alignment: std::time::Duration::ZERO,
        }
    }

    /// How long the last barrier returned by [`next`](Self::next) waited for every input.
    pub fn last_alignment(&self) -> std::time::Duration {
        self.last_alignment
    }

    fn all_live_blocked(&self) -> bool {
        self.inputs.iter().all(|i| i.ended || i.blocked)
    }

    /// The minimum watermark over the inputs still open; `None` when all have ended.
    fn min_watermark(&self) -> Option<i64> {
        self.inputs.iter().filter(|i| !i.ended).map(|i| i.watermark).min()
    }

    /// The next message for the task; `EndOfInput` once, when every input has ended.
    pub async fn next(&mut self) -> Result<Message, TaskError> {
        loop {
            if let Some(barrier) = self.pending_barrier {
                if self.all_live_blocked() {
                    self.pending_barrier = None;
                    self.last_alignment = self.alignment_started.take().map_or(std::time::Duration::ZERO, |t| t.elapsed());
                    self.inputs.iter_mut().for_each(|i| i.blocked = false);
                    return Ok(Message::Barrier(barrier));
                }
            }
            if self.inputs.iter().all(|i| i.ended) {
                return Ok(Message::EndOfInput);
            }
            let (index, message) = poll_fn(|cx| {
                let n = self.inputs.len();
                for k in 0..n {
                    let i = (self.next + k) % n;
                    let input = &mut self.inputs[i];
                    if input.ended || input.blocked {
                        continue;
                    }
                    if let Poll::Ready(message) = input.rx.poll_recv(cx) {
                        self.next = (i + 1) % n;
                        return Poll::Ready((i, message));
                    }
                }
                Poll::Pending
            })
            .await;
            let input = &mut self.inputs[index];
            match message {
                None => {
                    return Err(TaskError::Exchange {
                        peer: input.origin.clone(),
                        message: "the input closed before its end (the upstream task failed or its task manager was lost)"
                            .into(),
                    })
                }
                Some(Message::Data(batch)) => return Ok(Message::Data(batch)),
                Some(Message::Watermark(w)) => {
                    input.watermark = input.watermark.max(w);
                    if let Some(advanced) = self.advance_watermark() {
                        return Ok(Message::Watermark(advanced));
                    }
                }
                Some(Message::Barrier(barrier)) => {
                    input.blocked = true;
                    self.pending_barrier = Some(barrier);
                    self.alignment_started.get_or_insert_with(std::time::Instant::now);
                }
                Some(Message::EndOfInput) => {
                    input.ended = true;
                    if let Some(advanced) = self.advance_watermark() {
                        return Ok(Message::Watermark(advanced));
                    }
                }
            }
        }
    }

    fn advance_watermark(&mut self) -> Option<i64> {
        match self.min_watermark() {
            Some(min) if min > self.watermark => {
                self.watermark = min;
                Some(min)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn data(v: i64) -> Message {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        Message::Data(RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap())
    }

    fn gate(n: usize) -> (Vec<mpsc::Sender<Message>>, InputGate) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(16)).unzip();
        let inputs = rxs.into_iter().enumerate().map(|(i, rx)| InputChannel::new(rx, format!("input {i}"))).collect();
        (txs, InputGate::new(inputs))
    }

    fn value(m: &Message) -> Option<i64> {
        match m {
            Message::Data(b) => Some(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)),
            _ => None,
        }
    }

    #[tokio::test]
    async fn barriers_align_and_block_the_early_input() {
        let (txs, mut gate) = gate(2);
        let barrier = Barrier { checkpoint_id: 1, timestamp_ms: 0, last_completed: 0 };
        txs[0].send(Message::Barrier(barrier)).await.unwrap();
        txs[0].send(data(10)).await.unwrap(); // after the barrier: must wait
        txs[1].send(data(1)).await.unwrap();
        assert_eq!(value(&gate.next().await.unwrap()), Some(1));
        txs[1].send(Message::Barrier(barrier)).await.unwrap();
        assert!(matches!(gate.next().await.unwrap(), Message::Barrier(b) if b == barrier));
        assert_eq!(value(&gate.next().await.unwrap()), Some(10));
    }

    #[tokio::test]
    async fn watermark_is_the_minimum_and_end_comes_last() {
        let (txs, mut gate) = gate(2);
        txs[0].send(Message::Watermark(100)).await.unwrap();
        txs[1].send(Message::Watermark(50)).await.unwrap();
        assert!(matches!(gate.next().await.unwrap(), Message::Watermark(50)));
        txs[1].send(Message::EndOfInput).await.unwrap();
        assert!(matches!(gate.next().await.unwrap(), Message::Watermark(100)));
        txs[0].send(Message::EndOfInput).await.unwrap();
        assert!(matches!(gate.next().await.unwrap(), Message::EndOfInput));
    }

    #[tokio::test]
    async fn a_closed_input_is_an_error_naming_it() {
        let (mut txs, mut gate) = gate(2);
        txs.remove(1);
        let err = gate.next().await.unwrap_err().to_string();
        assert!(err.contains("input 1"), "{err}");
    }
}
