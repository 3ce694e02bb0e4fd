//! The input side of a task: merges its input channels fairly, aligns checkpoint barriers
//! by checkpoint id (an input that delivered barrier n is parked until every input has),
//! tracks watermarks per input and overall ([`WatermarkTracker`], with idle channels), and
//! reports end of input once every input has ended. A two-input task (a join) has channels
//! of both inputs in one gate: each batch comes tagged with its input, and barriers align
//! across every channel of both.
//!
//! As in Flink's barrier handler, a barrier newer than the one being aligned means that
//! some input will never deliver the older one (its source missed the trigger): the older
//! checkpoint is abandoned, reported as [`GateEvent::Aborted`] so the task declines it, and
//! alignment starts over for the newer one. Barriers of an abandoned checkpoint that
//! arrive later are dropped.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;

use arrow::record_batch::RecordBatch;
use sluice_core::watermarks::{WatermarkEvent, WatermarkTracker};
use sluice_core::{Barrier, Message};
use tokio::sync::mpsc;

use crate::error::TaskError;

/// One input channel of a task.
pub struct InputChannel {
    rx: mpsc::Receiver<Message>,
    /// Who feeds this channel, for error messages.
    origin: String,
    /// Which input of the task's first operator it feeds (0, or 1 for a second input).
    input: usize,
    ended: bool,
    blocked: bool,
}

impl InputChannel {
    /// Wraps a channel fed by `origin` (e.g. "subtask 2 of 'source: orders' at 10.0.0.5:6121")
    /// into input `input` of the task.
    pub fn new(rx: mpsc::Receiver<Message>, origin: String, input: usize) -> Self {
        InputChannel { rx, origin, input, ended: false, blocked: false }
    }
}

/// What the gate hands to its task.
#[derive(Debug)]
pub enum GateEvent {
    /// A batch of input `input`.
    Data {
        /// The input it came from.
        input: usize,
        /// The rows.
        batch: RecordBatch,
    },
    /// The watermark of input `input` rose (only for tasks with two inputs).
    InputWatermark {
        /// The input.
        input: usize,
        /// Its watermark.
        watermark: i64,
    },
    /// Every channel of input `input` ended (only for tasks with two inputs); the other
    /// input may go on.
    InputEnded {
        /// The input.
        input: usize,
    },
    /// A control message: the task's watermark rose, every input is idle, a barrier
    /// arrived on every channel, or every channel ended.
    Message(Message),
    /// A checkpoint whose barrier was being aligned was abandoned, because a newer barrier
    /// arrived on an input that never delivered it.
    Aborted {
        /// The abandoned checkpoint.
        checkpoint_id: u64,
        /// Why, for the jobmanager's status.
        reason: String,
    },
}

/// The merged, aligned inputs of a task.
pub struct InputGate {
    inputs: Vec<InputChannel>,
    next: usize,
    watermarks: WatermarkTracker,
    /// Events ready to hand out (one message can produce several).
    ready: VecDeque<GateEvent>,
    pending_barrier: Option<Barrier>,
    /// The newest checkpoint id whose alignment started here (0: none); barriers up to it
    /// that arrive when nothing is pending belong to a finished or abandoned alignment.
    newest_barrier: u64,
    /// When the first input delivered the pending barrier.
    alignment_started: Option<std::time::Instant>,
    /// How long the last barrier took to align.
    last_alignment: std::time::Duration,
}

impl InputGate {
    /// A gate over `inputs` (at least one).
    pub fn new(inputs: Vec<InputChannel>) -> Self {
        let channel_inputs: Vec<usize> = inputs.iter().map(|i| i.input).collect();
        InputGate {
            inputs,
            next: 0,
            watermarks: WatermarkTracker::new(&channel_inputs),
            ready: VecDeque::new(),
            pending_barrier: None,
            newest_barrier: 0,
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

    /// Queues what a watermark change produced.
    fn queue_watermarks(&mut self, events: Vec<WatermarkEvent>) {
        let two_inputs = self.watermarks.inputs() > 1;
        for event in events {
            self.ready.push_back(match event {
                WatermarkEvent::Input { .. } if !two_inputs => continue,
                WatermarkEvent::Input { input, watermark } => GateEvent::InputWatermark { input, watermark },
                WatermarkEvent::Combined(w) => GateEvent::Message(Message::Watermark(w)),
                WatermarkEvent::Idle => GateEvent::Message(Message::Idle),
            });
        }
    }

    /// The next event for the task; `EndOfInput` once, when every input has ended.
    pub async fn next(&mut self) -> Result<GateEvent, TaskError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            if let Some(barrier) = self.pending_barrier {
                if self.all_live_blocked() {
                    self.pending_barrier = None;
                    self.last_alignment =
                        self.alignment_started.take().map_or(std::time::Duration::ZERO, |t| t.elapsed());
                    self.inputs.iter_mut().for_each(|i| i.blocked = false);
                    return Ok(GateEvent::Message(Message::Barrier(barrier)));
                }
            }
            if self.inputs.iter().all(|i| i.ended) {
                return Ok(GateEvent::Message(Message::EndOfInput));
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
            match message {
                None => {
                    return Err(TaskError::Exchange {
                        peer: self.inputs[index].origin.clone(),
                        message:
                            "the input closed before its end (the upstream task failed or its task manager was lost)"
                                .into(),
                    })
                }
                Some(Message::Data(batch)) => {
                    self.watermarks.on_data(index);
                    return Ok(GateEvent::Data { input: self.inputs[index].input, batch });
                }
                Some(Message::Watermark(w)) => {
                    let events = self.watermarks.on_watermark(index, w);
                    self.queue_watermarks(events);
                }
                Some(Message::Idle) => {
                    let events = self.watermarks.on_idle(index);
                    self.queue_watermarks(events);
                }
                Some(Message::Barrier(barrier)) => {
                    if let Some(aborted) = self.on_barrier(index, barrier) {
                        return Ok(aborted);
                    }
                }
                // Announcements of a source's splits stay within its task.
                Some(Message::SplitsAssigned(_)) => {}
                Some(Message::EndOfInput) => {
                    self.inputs[index].ended = true;
                    let events = self.watermarks.on_end(index);
                    self.queue_watermarks(events);
                    let input = self.inputs[index].input;
                    let input_ended = self.inputs.iter().filter(|i| i.input == input).all(|i| i.ended);
                    if self.watermarks.inputs() > 1 && input_ended {
                        self.ready.push_back(GateEvent::InputEnded { input });
                    }
                }
            }
        }
    }

    /// Input `index` delivered `barrier`: parks the input for its alignment, drops it when
    /// its checkpoint is already over, or abandons an older alignment.
    fn on_barrier(&mut self, index: usize, barrier: Barrier) -> Option<GateEvent> {
        let id = barrier.checkpoint_id;
        let aborted = match self.pending_barrier {
            Some(pending) if id == pending.checkpoint_id => None,
            Some(pending) if id < pending.checkpoint_id => return None,
            None if id <= self.newest_barrier => return None,
            None => None,
            Some(pending) => {
                let reason = format!(
                    "barrier {id} arrived from {} before barrier {} had arrived on every input \
                     (an upstream source missed the trigger of checkpoint {})",
                    self.inputs[index].origin, pending.checkpoint_id, pending.checkpoint_id
                );
                tracing::warn!(checkpoint = pending.checkpoint_id, "abandoning the alignment: {reason}");
                self.inputs.iter_mut().for_each(|i| i.blocked = false);
                self.alignment_started = None;
                Some(GateEvent::Aborted { checkpoint_id: pending.checkpoint_id, reason })
            }
        };
        self.inputs[index].blocked = true;
        if self.pending_barrier.is_none_or(|p| p.checkpoint_id != id) {
            self.pending_barrier = Some(barrier);
            self.newest_barrier = id;
        }
        self.alignment_started.get_or_insert_with(std::time::Instant::now);
        aborted
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
        let inputs =
            rxs.into_iter().enumerate().map(|(i, rx)| InputChannel::new(rx, format!("input {i}"), 0)).collect();
        (txs, InputGate::new(inputs))
    }

    fn value(m: &GateEvent) -> Option<i64> {
        match m {
            GateEvent::Data { batch, .. } => {
                Some(batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0))
            }
            _ => None,
        }
    }

    /// The gate's next event; a gate that hangs fails the test instead of stalling it.
    async fn next(gate: &mut InputGate) -> GateEvent {
        tokio::time::timeout(std::time::Duration::from_secs(5), gate.next()).await.expect("the gate is stuck").unwrap()
    }

    fn barrier(id: u64) -> Barrier {
        Barrier { checkpoint_id: id, timestamp_ms: 0, last_completed: 0 }
    }

    fn is_barrier(event: &GateEvent, id: u64) -> bool {
        matches!(event, GateEvent::Message(Message::Barrier(b)) if b.checkpoint_id == id)
    }

    /// Input 1's source missed checkpoint 1's trigger: its barrier 2 must not align with
    /// input 0's barrier 1, or a restore from 2 would miss input 0's rows between 1 and 2.
    #[tokio::test]
    async fn a_newer_barrier_abandons_the_older_alignment_instead_of_completing_it() {
        let (txs, mut gate) = gate(2);
        txs[0].send(Message::Barrier(barrier(1))).await.unwrap();
        txs[0].send(data(10)).await.unwrap(); // after barrier 1, before barrier 2 on input 0
        txs[1].send(data(1)).await.unwrap();
        txs[1].send(Message::Barrier(barrier(2))).await.unwrap();
        txs[1].send(data(2)).await.unwrap(); // after barrier 2 on input 1
        assert_eq!(value(&next(&mut gate).await), Some(1));
        match next(&mut gate).await {
            GateEvent::Aborted { checkpoint_id, reason } => {
                assert_eq!(checkpoint_id, 1);
                assert!(reason.contains("input 1") && reason.contains("barrier 2"), "{reason}");
            }
            other => panic!("expected checkpoint 1 to be abandoned, got {other:?}"),
        }
        // Input 0's row between its barriers 1 and 2 comes before barrier 2 leaves.
        assert_eq!(value(&next(&mut gate).await), Some(10));
        txs[0].send(Message::Barrier(barrier(2))).await.unwrap();
        assert!(is_barrier(&next(&mut gate).await, 2));
        assert_eq!(value(&next(&mut gate).await), Some(2));
    }

    #[tokio::test]
    async fn a_late_barrier_of_an_abandoned_checkpoint_is_dropped() {
        let (txs, mut gate) = gate(2);
        txs[0].send(Message::Barrier(barrier(1))).await.unwrap();
        txs[1].send(Message::Barrier(barrier(2))).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Aborted { checkpoint_id: 1, .. }));
        txs[0].send(data(5)).await.unwrap();
        txs[1].send(Message::Barrier(barrier(1))).await.unwrap(); // late: must not block input 1
        txs[0].send(Message::Barrier(barrier(2))).await.unwrap();
        assert_eq!(value(&next(&mut gate).await), Some(5));
        assert!(is_barrier(&next(&mut gate).await, 2));
        txs[1].send(Message::Barrier(barrier(1))).await.unwrap(); // older than the last aligned one
        txs[1].send(data(6)).await.unwrap();
        assert_eq!(value(&next(&mut gate).await), Some(6));
    }

    #[tokio::test]
    async fn barriers_align_and_block_the_early_input() {
        let (txs, mut gate) = gate(2);
        txs[0].send(Message::Barrier(barrier(1))).await.unwrap();
        txs[0].send(data(10)).await.unwrap(); // after the barrier: must wait
        txs[1].send(data(1)).await.unwrap();
        assert_eq!(value(&next(&mut gate).await), Some(1));
        txs[1].send(Message::Barrier(barrier(1))).await.unwrap();
        assert!(is_barrier(&next(&mut gate).await, 1));
        assert_eq!(value(&next(&mut gate).await), Some(10));
    }

    #[tokio::test]
    async fn watermark_is_the_minimum_and_end_comes_last() {
        let (txs, mut gate) = gate(2);
        txs[0].send(Message::Watermark(100)).await.unwrap();
        txs[1].send(Message::Watermark(50)).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Message(Message::Watermark(50))));
        txs[1].send(Message::EndOfInput).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Message(Message::Watermark(100))));
        txs[0].send(Message::EndOfInput).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Message(Message::EndOfInput)));
    }

    /// An input of a two-input gate ends when its last channel does, even while the other
    /// channels of that input are idle (which no longer hold its watermark back).
    #[tokio::test]
    async fn an_input_ends_when_all_its_channels_end() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(16)).unzip();
        // Channel 0 feeds input 0; channels 1 and 2 feed input 1.
        let channels =
            rxs.into_iter().zip([0, 1, 1]).map(|(rx, input)| InputChannel::new(rx, format!("ch {input}"), input));
        let mut gate = InputGate::new(channels.collect());
        txs[2].send(Message::Idle).await.unwrap();
        txs[1].send(Message::EndOfInput).await.unwrap();
        txs[0].send(data(3)).await.unwrap();
        let mut events = Vec::new();
        while !matches!(events.last(), Some(GateEvent::Data { .. })) {
            events.push(next(&mut gate).await);
        }
        assert!(!events.iter().any(|e| matches!(e, GateEvent::InputEnded { .. })), "channel 2 is idle, not ended");
        txs[2].send(Message::EndOfInput).await.unwrap();
        // The input's last watermark may come first; then the end (the gate is stuck
        // otherwise, which `next` reports).
        let mut events = vec![next(&mut gate).await];
        while !matches!(events.last(), Some(GateEvent::InputEnded { .. })) {
            assert!(events.len() < 3, "{events:?}");
            events.push(next(&mut gate).await);
        }
        assert!(matches!(events.last(), Some(GateEvent::InputEnded { input: 1 })), "{events:?}");
    }

    /// A two-input gate: batches come tagged with their input, each input's watermark is
    /// reported, barriers align across both, and an idle channel stops holding the task's
    /// watermark back.
    #[tokio::test]
    async fn a_two_input_gate_tags_batches_and_tracks_each_inputs_watermark() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(16)).unzip();
        // Channels 0 and 1 feed input 0; channel 2 feeds input 1.
        let channels =
            rxs.into_iter().zip([0, 0, 1]).map(|(rx, input)| InputChannel::new(rx, format!("ch {input}"), input));
        let mut gate = InputGate::new(channels.collect());
        txs[2].send(data(7)).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Data { input: 1, .. }));
        txs[0].send(data(1)).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Data { input: 0, .. }));
        txs[2].send(Message::Watermark(30)).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::InputWatermark { input: 1, watermark: 30 }));
        txs[0].send(Message::Watermark(10)).await.unwrap();
        txs[1].send(Message::Idle).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::InputWatermark { input: 0, watermark: 10 }));
        assert!(matches!(next(&mut gate).await, GateEvent::Message(Message::Watermark(10))));
        txs[2].send(Message::Barrier(barrier(1))).await.unwrap();
        txs[2].send(data(8)).await.unwrap(); // after the barrier on input 1: waits
        txs[0].send(Message::Barrier(barrier(1))).await.unwrap();
        txs[1].send(data(2)).await.unwrap(); // the idle channel wakes
        assert_eq!(value(&next(&mut gate).await), Some(2));
        txs[1].send(Message::Barrier(barrier(1))).await.unwrap();
        assert!(is_barrier(&next(&mut gate).await, 1), "aligned across both inputs");
        assert_eq!(value(&next(&mut gate).await), Some(8));
    }

    #[tokio::test]
    async fn a_gate_whose_every_channel_is_idle_says_so_once() {
        let (txs, mut gate) = gate(2);
        txs[0].send(Message::Idle).await.unwrap();
        txs[1].send(Message::Watermark(5)).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Message(Message::Watermark(5))));
        txs[1].send(Message::Idle).await.unwrap();
        txs[0].send(Message::Idle).await.unwrap();
        txs[0].send(data(3)).await.unwrap();
        assert!(matches!(next(&mut gate).await, GateEvent::Message(Message::Idle)));
        assert_eq!(value(&next(&mut gate).await), Some(3), "the second idle changes nothing");
    }

    #[tokio::test]
    async fn a_closed_input_is_an_error_naming_it() {
        let (mut txs, mut gate) = gate(2);
        txs.remove(1);
        let err = gate.next().await.unwrap_err().to_string();
        assert!(err.contains("input 1"), "{err}");
    }
}
