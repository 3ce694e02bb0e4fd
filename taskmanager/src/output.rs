//! The output side of a task: routes batches to consumer channels by the edge's
//! partitioning and buffers small batches per channel until they reach the row or byte
//! limit or their linger time, or a control signal flushes them.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::record_batch::RecordBatch;
use sluice_core::keys::{key_group, subtask_for_key_group, KeyHasher};
use sluice_core::Message;
use sluice_proto::Partitioning;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::TaskError;
use crate::metrics::{Activity, TaskMetrics};

/// Limits of the data exchange (per channel).
#[derive(Debug, Clone, Copy)]
pub struct ExchangeLimits {
    /// A buffered batch is sent once it holds this many rows.
    pub batch_rows: usize,
    /// ... or this many bytes.
    pub batch_bytes: usize,
    /// ... or once its oldest row has waited this long.
    pub linger: Duration,
    /// Batches a channel holds before the producer waits (backpressure).
    pub channel_capacity: usize,
    /// Key groups for hash partitioning.
    pub max_parallelism: u32,
}

impl Default for ExchangeLimits {
    fn default() -> Self {
        ExchangeLimits {
            batch_rows: sluice_connectors::DEFAULT_BATCH_ROWS,
            batch_bytes: 1 << 20,
            linger: Duration::from_millis(5),
            channel_capacity: 4,
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
        }
    }
}

/// One consumer channel with its buffer.
pub struct ChannelWriter {
    tx: mpsc::Sender<Message>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    pending_bytes: usize,
    oldest: Option<Instant>,
}

impl ChannelWriter {
    /// Wraps the sending end of a channel.
    pub fn new(tx: mpsc::Sender<Message>) -> Self {
        ChannelWriter { tx, pending: Vec::new(), pending_rows: 0, pending_bytes: 0, oldest: None }
    }

    /// Sends `message`, counting the time spent waiting for room in the channel as
    /// backpressure.
    async fn send(&self, message: Message, metrics: &TaskMetrics) -> Result<(), TaskError> {
        match self.tx.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(TaskError::DownstreamGone),
            Err(mpsc::error::TrySendError::Full(message)) => {
                let previous = metrics.enter(Activity::Backpressured);
                let sent = self.tx.send(message).await.map_err(|_| TaskError::DownstreamGone);
                metrics.switch(previous.or(Some(Activity::Busy)), None);
                sent
            }
        }
    }

    async fn push(
        &mut self,
        batch: RecordBatch,
        limits: &ExchangeLimits,
        metrics: &TaskMetrics,
    ) -> Result<(), TaskError> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        if rows >= limits.batch_rows {
            self.flush(metrics).await?;
            let mut offset = 0;
            while offset < rows {
                let len = limits.batch_rows.min(rows - offset);
                metrics.add_out(len);
                self.send(Message::Data(batch.slice(offset, len)), metrics).await?;
                offset += len;
            }
            return Ok(());
        }
        self.pending_bytes += batch.get_array_memory_size();
        self.pending_rows += rows;
        self.pending.push(batch);
        self.oldest.get_or_insert_with(Instant::now);
        if self.pending_rows >= limits.batch_rows || self.pending_bytes >= limits.batch_bytes {
            self.flush(metrics).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, metrics: &TaskMetrics) -> Result<(), TaskError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = if self.pending.len() == 1 {
            self.pending.pop().expect("one pending batch")
        } else {
            let schema = self.pending[0].schema();
            let merged = concat_batches(&schema, &self.pending)
                .map_err(|e| sluice_core::OperatorError::arrow("cannot merge output batches", e))?;
            self.pending.clear();
            merged
        };
        metrics.add_out(batch.num_rows());
        self.pending_rows = 0;
        self.pending_bytes = 0;
        self.oldest = None;
        self.send(Message::Data(batch), metrics).await
    }
}

/// The channels of one outgoing edge, indexed by consumer subtask (one channel for forward).
pub struct EdgeOutput {
    partitioning: Partitioning,
    hasher: Option<KeyHasher>,
    channels: Vec<ChannelWriter>,
    next: usize,
}

impl EdgeOutput {
    /// An output over `channels`; `hasher` is required for hash partitioning.
    pub fn new(
        partitioning: Partitioning,
        hasher: Option<KeyHasher>,
        channels: Vec<ChannelWriter>,
        start: usize,
    ) -> Self {
        let next = if channels.is_empty() { 0 } else { start % channels.len() };
        EdgeOutput { partitioning, hasher, channels, next }
    }
}

/// Every outgoing edge of a task.
pub struct Outputs {
    edges: Vec<EdgeOutput>,
    limits: ExchangeLimits,
    metrics: Arc<TaskMetrics>,
}

impl Outputs {
    /// Outputs over `edges`.
    pub fn new(edges: Vec<EdgeOutput>, limits: ExchangeLimits, metrics: Arc<TaskMetrics>) -> Self {
        Outputs { edges, limits, metrics }
    }

    /// Routes a batch to every edge.
    pub async fn send_batch(&mut self, batch: RecordBatch) -> Result<(), TaskError> {
        let (limits, metrics) = (self.limits, self.metrics.clone());
        for edge in &mut self.edges {
            match edge.partitioning {
                Partitioning::Forward => edge.channels[0].push(batch.clone(), &limits, &metrics).await?,
                Partitioning::Rebalance => {
                    let n = edge.channels.len();
                    edge.channels[edge.next].push(batch.clone(), &limits, &metrics).await?;
                    edge.next = (edge.next + 1) % n;
                }
                Partitioning::Broadcast => {
                    for channel in &mut edge.channels {
                        channel.push(batch.clone(), &limits, &metrics).await?;
                    }
                }
                Partitioning::Hash => {
                    let hasher =
                        edge.hasher.as_ref().ok_or_else(|| TaskError::Deployment("hash edge without keys".into()))?;
                    let n = edge.channels.len() as u32;
                    let targets: Vec<u32> = hasher
                        .hashes(&batch)?
                        .into_iter()
                        .map(|h| subtask_for_key_group(key_group(h, limits.max_parallelism), limits.max_parallelism, n))
                        .collect();
                    let mut rows_for: Vec<Vec<u32>> = vec![Vec::new(); n as usize];
                    for (row, &t) in targets.iter().enumerate() {
                        rows_for[t as usize].push(row as u32);
                    }
                    for (target, rows) in rows_for.into_iter().enumerate() {
                        if rows.is_empty() {
                            continue;
                        }
                        let part = if rows.len() == batch.num_rows() {
                            batch.clone()
                        } else {
                            take_record_batch(&batch, &UInt32Array::from(rows))
                                .map_err(|e| sluice_core::OperatorError::arrow("hash partitioning", e))?
                        };
                        edge.channels[target].push(part, &limits, &metrics).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Flushes every buffer, then sends a control message to every consumer.
    pub async fn send_control(&mut self, message: Message) -> Result<(), TaskError> {
        if matches!(message, Message::SplitsAssigned(_)) {
            return Ok(()); // it concerns this task's chain only
        }
        let metrics = self.metrics.clone();
        for edge in &mut self.edges {
            for channel in &mut edge.channels {
                channel.flush(&metrics).await?;
                channel.send(message.clone(), &metrics).await?;
            }
        }
        Ok(())
    }

    /// When the oldest buffered row must be sent, if any row is buffered.
    pub fn linger_deadline(&self) -> Option<Instant> {
        self.edges
            .iter()
            .flat_map(|e| e.channels.iter())
            .filter_map(|c| c.oldest)
            .min()
            .map(|oldest| oldest + self.limits.linger)
    }

    /// Sends the buffers whose linger time has passed.
    pub async fn flush_lingering(&mut self) -> Result<(), TaskError> {
        let now = Instant::now();
        let (linger, metrics) = (self.limits.linger, self.metrics.clone());
        for edge in &mut self.edges {
            for channel in &mut edge.channels {
                if channel.oldest.is_some_and(|t| t + linger <= now) {
                    channel.flush(&metrics).await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    fn drain(rx: &mut mpsc::Receiver<Message>) -> Vec<Message> {
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(m);
        }
        out
    }

    #[tokio::test]
    async fn hash_routes_equal_keys_together_and_buffers_until_flushed() {
        let limits = ExchangeLimits { batch_rows: 1000, ..Default::default() };
        let (mut txs, mut rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::channel(16)).unzip();
        let channels = txs.drain(..).map(ChannelWriter::new).collect();
        let b = batch((0..300).map(|i| i % 30).collect());
        let hasher = KeyHasher::new(&b.schema(), &[0]).unwrap();
        let mut outputs = Outputs::new(
            vec![EdgeOutput::new(Partitioning::Hash, Some(hasher), channels, 0)],
            limits,
            Arc::new(TaskMetrics::default()),
        );
        outputs.send_batch(b).await.unwrap();
        assert!(rxs.iter_mut().all(|rx| drain(rx).is_empty()), "small batches wait in the buffer");
        assert!(outputs.linger_deadline().is_some());
        outputs.send_control(Message::EndOfInput).await.unwrap();
        let mut owner = std::collections::HashMap::new();
        let mut total = 0;
        for (i, rx) in rxs.iter_mut().enumerate() {
            let messages = drain(rx);
            assert!(matches!(messages.last(), Some(Message::EndOfInput)), "control follows the flushed data");
            for m in messages {
                if let Message::Data(d) = m {
                    total += d.num_rows();
                    for v in d.column(0).as_primitive::<Int64Type>().values() {
                        assert_eq!(*owner.entry(*v).or_insert(i), i, "key {v} went to two subtasks");
                    }
                }
            }
        }
        assert_eq!(total, 300);
    }

    #[tokio::test]
    async fn large_batches_are_split_and_rebalanced() {
        let limits = ExchangeLimits { batch_rows: 100, ..Default::default() };
        let (mut txs, mut rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| mpsc::channel(16)).unzip();
        let channels = txs.drain(..).map(ChannelWriter::new).collect();
        let mut outputs = Outputs::new(
            vec![EdgeOutput::new(Partitioning::Rebalance, None, channels, 0)],
            limits,
            Arc::new(TaskMetrics::default()),
        );
        outputs.send_batch(batch((0..250).collect())).await.unwrap();
        outputs.send_batch(batch((0..50).collect())).await.unwrap();
        outputs.send_control(Message::EndOfInput).await.unwrap();
        let sizes = |rx: &mut mpsc::Receiver<Message>| -> Vec<usize> {
            drain(rx)
                .into_iter()
                .filter_map(|m| if let Message::Data(d) = m { Some(d.num_rows()) } else { None })
                .collect()
        };
        assert_eq!(sizes(&mut rxs[0]), vec![100, 100, 50]);
        assert_eq!(sizes(&mut rxs[1]), vec![50]);
    }

    #[tokio::test]
    async fn a_full_channel_blocks_the_producer() {
        let limits = ExchangeLimits { batch_rows: 10, ..Default::default() };
        let (tx, _rx) = mpsc::channel(2);
        let mut outputs = Outputs::new(
            vec![EdgeOutput::new(Partitioning::Forward, None, vec![ChannelWriter::new(tx)], 0)],
            limits,
            Arc::new(TaskMetrics::default()),
        );
        outputs.send_batch(batch((0..20).collect())).await.unwrap();
        let third =
            tokio::time::timeout(Duration::from_millis(100), outputs.send_batch(batch((0..10).collect()))).await;
        assert!(third.is_err(), "the third batch must wait for the consumer");
    }
}
