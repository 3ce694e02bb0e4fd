//! The in-band messages that flow between operators.

use arrow::record_batch::RecordBatch;

/// A checkpoint barrier: everything before it belongs to checkpoint `checkpoint_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// Monotonically increasing checkpoint number.
    pub checkpoint_id: u64,
    /// When the coordinator triggered the checkpoint (ms since the epoch).
    pub timestamp_ms: u64,
    /// The latest checkpoint completed when this one was triggered (0: none). An operator
    /// that has not yet been told of its completion commits it before the snapshot.
    pub last_completed: u64,
}

/// One element of a stream: data, or a control signal kept in order with the data.
#[derive(Debug, Clone)]
pub enum Message {
    /// Rows.
    Data(RecordBatch),
    /// No row with an event time at or below this (ms since the epoch) follows.
    Watermark(i64),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The producer is idle (Flink's `WatermarkStatus.IDLE`): until it sends a batch or a
    /// watermark again, its watermark does not hold back the minimum downstream.
    Idle,
    /// The producer has no more data.
    EndOfInput,
    /// The splits (Kafka partitions, as `topic/partition`) a source subtask reads from now
    /// on, announced when they are assigned, so that an operator keeping a watermark per
    /// split waits for each of them before its first row. It travels within a task's chain
    /// only: outputs do not send it on.
    SplitsAssigned(Vec<String>),
}

impl Message {
    /// True for control signals, which flush any buffered data immediately.
    pub fn is_control(&self) -> bool {
        !matches!(self, Message::Data(_))
    }
}
