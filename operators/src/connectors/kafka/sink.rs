//! The Kafka sink. `at-least-once` waits for every record to be acknowledged at each
//! checkpoint barrier and at the end of input; `none` never waits. `exactly-once` writes
//! each checkpoint epoch in one Kafka transaction (through [`super::protocol`], which knows
//! the transaction's producer id and epoch): the transaction is flushed at the barrier,
//! recorded in the checkpoint, and committed when the checkpoint completes, or on restore
//! if the job failed before it could commit. Transactions a failed attempt left open are
//! aborted on restore.
//!
//! Transactional ids are `<prefix>-<subtask>-<n>`, where n is the checkpoint after which
//! the transaction started (0 for the first one), so a restored attempt reuses, and so
//! fences, the ids of the attempt it replaces.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use super::options::{DeliveryGuarantee, KafkaConfig};
use super::protocol::{abort_open_transaction, end_transaction, Transaction, TransactionHandle};
use crate::state::{put_bytes, Reader};
use crate::{Collector, Distribution, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

/// Test fault switch `SLUICE_TEST_EXIT_BEFORE_COMMIT=N`: the process exits when told that
/// checkpoint N or later completed, before committing its transactions, as if killed there.
fn exit_before_commit_if_requested(checkpoint_id: u64) {
    static FROM: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let from = FROM.get_or_init(|| std::env::var("SLUICE_TEST_EXIT_BEFORE_COMMIT").ok().and_then(|v| v.parse().ok()));
    if from.is_some_and(|n| checkpoint_id >= n) {
        eprintln!("test fault: exiting after checkpoint {checkpoint_id} completed, before committing its transactions");
        std::process::exit(137);
    }
}

/// An encoded key or value.
type Encoded = Vec<u8>;

/// Records in flight before the sink waits for their acknowledgements.
const MAX_IN_FLIGHT: usize = 100_000;

/// A transaction of a checkpoint epoch, flushed and waiting for its checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct Precommitted {
    checkpoint: u64,
    handle: TransactionHandle,
}

/// What one subtask puts into a checkpoint: its identity (so a restore at another
/// parallelism knows which transactional ids existed) and its precommitted transactions.
#[derive(Debug, Clone, PartialEq)]
struct SinkEntry {
    subtask: u32,
    parallelism: u32,
    precommitted: Option<Precommitted>,
}

impl SinkEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u64::from(self.subtask).to_le_bytes());
        out.extend_from_slice(&u64::from(self.parallelism).to_le_bytes());
        if let Some(p) = &self.precommitted {
            out.extend_from_slice(&p.checkpoint.to_le_bytes());
            out.extend_from_slice(&(p.handle.producer_id as u64).to_le_bytes());
            out.extend_from_slice(&(p.handle.epoch as u64).to_le_bytes());
            put_bytes(&mut out, p.handle.transactional_id.as_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "kafka sink");
        let subtask = r.u64()? as u32;
        let parallelism = r.u64()? as u32;
        let precommitted = if r.is_empty() {
            None
        } else {
            let checkpoint = r.u64()?;
            let producer_id = r.u64()? as i64;
            let epoch = r.u64()? as i16;
            Some(Precommitted { checkpoint, handle: TransactionHandle { transactional_id: r.string()?, producer_id, epoch } })
        };
        Ok(SinkEntry { subtask, parallelism, precommitted })
    }
}

/// The exactly-once machinery of a sink subtask.
struct Transactional {
    bootstrap: Vec<String>,
    prefix: String,
    timeout: Duration,
    subtask: u32,
    parallelism: u32,
    /// The open transaction and whether anything was written to it.
    current: Option<(Transaction, bool)>,
    precommitted: Vec<Precommitted>,
    restored: Option<(Vec<SinkEntry>, u64, u64)>,
}

impl Transactional {
    fn id(&self, subtask: u32, after: u64) -> String {
        format!("{}-{subtask}-{after}", self.prefix)
    }

    async fn begin(&mut self, topic: &str, after: u64) -> std::result::Result<(), String> {
        let id = self.id(self.subtask, after);
        self.current = Some((Transaction::begin(&self.bootstrap, topic, &id, self.timeout).await?, false));
        Ok(())
    }

    /// Commits the restored checkpoint's transactions this subtask is responsible for and
    /// aborts what the failed attempt left open, except the ids this attempt reuses.
    async fn recover(&mut self) -> std::result::Result<(), String> {
        let Some((entries, restored, last)) = self.restored.take() else { return Ok(()) };
        let mut commits: Vec<&Precommitted> = entries.iter().filter_map(|e| e.precommitted.as_ref()).collect();
        commits.sort_by(|a, b| a.handle.transactional_id.cmp(&b.handle.transactional_id));
        for (i, p) in commits.iter().enumerate() {
            if i as u32 % self.parallelism == self.subtask {
                end_transaction(&self.bootstrap, &p.handle, true).await?;
                tracing::info!(transaction = %p.handle.transactional_id, checkpoint = p.checkpoint, "committed a restored transaction");
            }
        }
        let old_parallelism = entries.iter().map(|e| e.parallelism).max().unwrap_or(0);
        let mut k = 0u32;
        for old in 0..old_parallelism {
            for after in restored..=last.max(restored) {
                let reused = old < self.parallelism && after == restored;
                if !reused {
                    if k % self.parallelism == self.subtask {
                        abort_open_transaction(&self.bootstrap, &self.id(old, after), self.timeout).await?;
                    }
                    k += 1;
                }
            }
        }
        Ok(())
    }
}

/// A running Kafka sink subtask.
pub struct KafkaSink {
    config: KafkaConfig,
    topic: String,
    producer: Option<FutureProducer>,
    in_flight: Vec<DeliveryFuture>,
    transactional: Option<Transactional>,
    checkpointing: bool,
}

impl KafkaSink {
    /// A sink writing to the single topic of `config`.
    pub fn new(config: KafkaConfig) -> Result<Self> {
        if config.topic_pattern.is_some() || config.topics.len() != 1 {
            let context = format!("table '{}' (connector 'kafka')", config.table);
            return Err(OperatorError::config(context, "a Kafka sink writes to one topic: set 'topic' to a single name"));
        }
        Ok(KafkaSink { topic: config.topics[0].clone(), config, producer: None, in_flight: Vec::new(), transactional: None, checkpointing: false })
    }

    fn error(&self, e: impl std::fmt::Display) -> OperatorError {
        OperatorError::config(format!("table '{}' (connector 'kafka')", self.config.table), format!("cannot write to topic '{}': {e}", self.topic))
    }

    /// Waits until every record sent so far is acknowledged.
    async fn flush(&mut self) -> Result<()> {
        for delivery in std::mem::take(&mut self.in_flight) {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(self.error(e)),
                Err(_) => return Err(self.error("the producer was closed")),
            }
        }
        Ok(())
    }

    /// The keys (when the table has key fields) and values of `batch`'s rows.
    fn encode(&self, batch: &RecordBatch) -> Result<(Option<Vec<Encoded>>, Vec<Encoded>)> {
        let values = batch.project(&self.config.value_columns()).map_err(|e| OperatorError::arrow("kafka value", e))?;
        let values = self.config.value_format.encode_records(&values)?;
        let keys = match &self.config.key {
            Some((format, columns)) => {
                let keys = batch.project(columns).map_err(|e| OperatorError::arrow("kafka key", e))?;
                Some(format.encode_records(&keys)?)
            }
            None => None,
        };
        Ok((keys, values))
    }
}

#[async_trait]
impl Operator for KafkaSink {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if self.config.delivery == DeliveryGuarantee::ExactlyOnce && init.restored {
            let entries = init.entries.iter().map(|e| SinkEntry::decode(e)).collect::<Result<Vec<_>>>()?;
            self.transactional = Some(Transactional {
                bootstrap: Vec::new(),
                prefix: String::new(),
                timeout: Duration::ZERO,
                subtask: 0,
                parallelism: 1,
                current: None,
                precommitted: Vec::new(),
                restored: Some((entries, init.restored_checkpoint, init.last_checkpoint)),
            });
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.checkpointing = ctx.checkpointing;
        if self.config.delivery == DeliveryGuarantee::ExactlyOnce {
            let bootstrap: Vec<String> =
                self.config.properties["bootstrap.servers"].split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let prefix = self.config.transactional_id_prefix.clone().unwrap_or_else(|| format!("sluice-{}", self.config.table));
            let timeout = self
                .config
                .properties
                .get("transaction.timeout.ms")
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_secs(600), Duration::from_millis);
            let restored = self.transactional.take().and_then(|t| t.restored);
            let after = restored.as_ref().map_or(0, |r| r.1);
            let mut t = Transactional {
                bootstrap,
                prefix,
                timeout,
                subtask: ctx.subtask,
                parallelism: ctx.parallelism,
                current: None,
                precommitted: Vec::new(),
                restored,
            };
            t.recover().await.map_err(|e| self.error(e))?;
            t.begin(&self.topic, after).await.map_err(|e| self.error(e))?;
            self.transactional = Some(t);
            return Ok(());
        }
        let mut client = ClientConfig::new();
        client.set("client.id", format!("sluice-{}-{}", ctx.job_id, ctx.subtask));
        for (k, v) in &self.config.properties {
            client.set(k, v);
        }
        if self.config.delivery == DeliveryGuarantee::AtLeastOnce {
            client.set("acks", "all").set("enable.idempotence", "true");
        }
        self.producer = Some(client.create().map_err(|e| self.error(e))?);
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let (keys, values) = self.encode(&batch)?;
        if let Some(t) = &mut self.transactional {
            let Some((txn, written)) = t.current.as_mut() else {
                return Err(OperatorError::State(format!("table '{}': no Kafka transaction is open", self.config.table)));
            };
            let mut keys = keys.map(Vec::into_iter);
            for value in values {
                let key = keys.as_mut().and_then(Iterator::next).map(bytes::Bytes::from);
                if let Err(e) = txn.send(key, bytes::Bytes::from(value)).await {
                    return Err(self.error(e));
                }
            }
            *written = true;
            return Ok(());
        }
        for (i, value) in values.iter().enumerate() {
            loop {
                let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.topic).payload(value);
                if let Some(keys) = &keys {
                    record = record.key(&keys[i]);
                }
                let producer = self.producer.as_ref().expect("opened");
                match producer.send_result(record) {
                    Ok(delivery) => {
                        self.in_flight.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        // The local queue is full: wait for what is in flight.
                        self.flush().await?;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(self.error(e)),
                }
            }
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        let topic = self.topic.clone();
        let Some(t) = &mut self.transactional else {
            if self.config.delivery != DeliveryGuarantee::None {
                self.flush().await?;
            }
            return Ok(OperatorState::default());
        };
        // Precommit: everything of this epoch is written; the next epoch gets a new transaction.
        if let Some((mut txn, written)) = t.current.take() {
            let flushed = txn.flush().await;
            if let Err(e) = flushed {
                return Err(OperatorError::config(format!("table '{}' (connector 'kafka')", self.config.table), format!("cannot write to topic '{topic}': {e}")));
            }
            if written {
                t.precommitted.push(Precommitted { checkpoint: checkpoint_id, handle: txn.handle().clone() });
            }
        }
        let begun = t.begin(&topic, checkpoint_id).await;
        let entries = {
            let (subtask, parallelism) = (t.subtask, t.parallelism);
            let mut entries: Vec<Vec<u8>> = t
                .precommitted
                .iter()
                .map(|p| SinkEntry { subtask, parallelism, precommitted: Some(p.clone()) }.encode())
                .collect();
            entries.push(SinkEntry { subtask, parallelism, precommitted: None }.encode());
            entries
        };
        begun.map_err(|e| self.error(e))?;
        // Union: a restore at any parallelism sees every transaction and every old subtask.
        Ok(OperatorState { entries, distribution: Distribution::Union })
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let Some(t) = &mut self.transactional else { return Ok(()) };
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut t.precommitted).into_iter().partition(|p| p.checkpoint <= checkpoint_id);
        t.precommitted = waiting;
        if !ready.is_empty() {
            exit_before_commit_if_requested(checkpoint_id);
        }
        let bootstrap = t.bootstrap.clone();
        for p in ready {
            end_transaction(&bootstrap, &p.handle, true).await.map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        if let Some(t) = &mut self.transactional {
            // Without checkpoints the end of input commits; with them, the final checkpoint does.
            if !self.checkpointing {
                if let Some((mut txn, _)) = t.current.take() {
                    let bootstrap = t.bootstrap.clone();
                    let result = match txn.flush().await {
                        Ok(()) => end_transaction(&bootstrap, txn.handle(), true).await,
                        Err(e) => Err(e),
                    };
                    result.map_err(|e| self.error(e))?;
                }
            }
            return Ok(());
        }
        self.flush().await?;
        if let Some(producer) = &self.producer {
            producer.flush(Duration::from_secs(30)).map_err(|e| self.error(e))?;
        }
        Ok(())
    }
}
