//! The Kafka sink. `at-least-once` waits for every record to be acknowledged at each
//! checkpoint barrier and at the end of input; `none` never waits. `exactly-once` writes
//! each checkpoint epoch in one Kafka transaction (through [`super::protocol`], which knows
//! the transaction's producer id and epoch): the transaction is flushed at the barrier,
//! recorded in the checkpoint, and committed when the checkpoint completes, or on restore
//! if the job failed before it could commit. Transactions a failed attempt left open are
//! aborted on restore.
//!
//! Transactional ids are `<prefix>-<subtask>-<slot>`, from a small pool per subtask (as
//! Flink's FLIP-511): a new transaction takes the lowest slot that no open, precommitted or
//! retiring transaction of the subtask holds. A committed transaction's slot retires until
//! a checkpoint that no longer lists it completes: a restore from an older checkpoint
//! commits it again, which must find its producer epoch unchanged (re-initializing the id
//! would fence that commit). So a subtask uses three ids in the steady state. The prefix is
//! `sink.transactional-id-prefix`, or else derived from the job and the table, so two jobs
//! never fence each other.
//!
//! On start, each subtask recovers the id families given to it (its own, and those of old
//! subtasks beyond the new parallelism): it commits the restored checkpoint's transactions
//! of the family, then aborts whatever a failed attempt left open, slot by slot, up to the
//! first slot never used. That also holds when there is nothing to restore.

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

/// Test fault switch `SLUICE_TEST_EXIT_BEFORE_COMMIT=N` (feature `test-faults`): the
/// process exits when told that checkpoint N or later completed, before committing its
/// transactions, as if killed there.
#[cfg(feature = "test-faults")]
fn exit_before_commit_if_requested(checkpoint_id: u64) {
    static FROM: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let from = FROM.get_or_init(|| std::env::var("SLUICE_TEST_EXIT_BEFORE_COMMIT").ok().and_then(|v| v.parse().ok()));
    if from.is_some_and(|n| checkpoint_id >= n) {
        eprintln!("test fault: exiting after checkpoint {checkpoint_id} completed, before committing its transactions");
        std::process::exit(137);
    }
}

#[cfg(not(feature = "test-faults"))]
fn exit_before_commit_if_requested(_checkpoint_id: u64) {}

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

/// What one subtask puts into a checkpoint: its identity and transactional-id prefix (so a
/// restore at another parallelism, or in a job with another prefix, knows which ids
/// existed) and its precommitted transactions.
#[derive(Debug, Clone, PartialEq)]
struct SinkEntry {
    subtask: u32,
    parallelism: u32,
    prefix: String,
    precommitted: Option<Precommitted>,
}

/// The transactional id of `slot` of `subtask`.
fn transactional_id(prefix: &str, subtask: u32, slot: u32) -> String {
    format!("{prefix}-{subtask}-{slot}")
}

/// Transactional-id pools probed beyond this many slots mean something else uses the ids.
const MAX_SLOTS: u32 = 10_000;

impl SinkEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u64::from(self.subtask).to_le_bytes());
        out.extend_from_slice(&u64::from(self.parallelism).to_le_bytes());
        put_bytes(&mut out, self.prefix.as_bytes());
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
        let prefix = r.string()?;
        let precommitted = if r.is_empty() {
            None
        } else {
            let checkpoint = r.u64()?;
            let producer_id = r.u64()? as i64;
            let epoch = r.u64()? as i16;
            Some(Precommitted { checkpoint, handle: TransactionHandle { transactional_id: r.string()?, producer_id, epoch } })
        };
        Ok(SinkEntry { subtask, parallelism, prefix, precommitted })
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
    /// Committed transactions whose ids a restore may still commit again, and the
    /// checkpoint whose completion frees them (set by the first snapshot that leaves them
    /// out).
    retiring: Vec<(String, Option<u64>)>,
    /// The restored checkpoint's entries, and its id.
    restored: Option<(Vec<SinkEntry>, u64)>,
}

impl Transactional {
    /// The lowest slot of this subtask that no open, precommitted or retiring transaction
    /// holds.
    fn free_slot(&self) -> u32 {
        let held: Vec<&str> = self
            .current
            .iter()
            .map(|(t, _)| t.handle().transactional_id.as_str())
            .chain(self.precommitted.iter().map(|p| p.handle.transactional_id.as_str()))
            .chain(self.retiring.iter().map(|(id, _)| id.as_str()))
            .collect();
        (0..).find(|&slot| !held.contains(&transactional_id(&self.prefix, self.subtask, slot).as_str())).unwrap_or(0)
    }

    async fn begin(&mut self, topic: &str) -> std::result::Result<(), String> {
        let id = transactional_id(&self.prefix, self.subtask, self.free_slot());
        self.current = Some((Transaction::begin(&self.bootstrap, topic, &id, self.timeout).await?, false));
        Ok(())
    }

    /// Before the first transaction: commits the restored checkpoint's transactions of the
    /// id families this subtask is responsible for, then aborts what a failed attempt left
    /// open under them (also when nothing was restored).
    async fn recover(&mut self) -> std::result::Result<(), String> {
        let (entries, restored_checkpoint) = self.restored.take().unwrap_or_default();
        let old_parallelism = entries.iter().map(|e| e.parallelism).max().unwrap_or(0);
        let mut families: Vec<(String, u32)> = vec![(self.prefix.clone(), self.subtask)];
        for e in entries.iter().filter(|e| e.subtask % self.parallelism == self.subtask) {
            if !families.contains(&(e.prefix.clone(), e.subtask)) {
                families.push((e.prefix.clone(), e.subtask));
            }
        }
        for (prefix, subtask) in families {
            // The restored transactions are committed, and their ids are left alone until
            // this attempt completes a checkpoint: a failure before that restores them again.
            let mut committed = Vec::new();
            for entry in entries.iter().filter(|e| e.prefix == prefix && e.subtask == subtask) {
                let Some(p) = &entry.precommitted else { continue };
                end_transaction(&self.bootstrap, &p.handle, true).await?;
                tracing::info!(
                    transaction = %p.handle.transactional_id,
                    checkpoint = p.checkpoint,
                    restored = restored_checkpoint,
                    "committed a restored transaction"
                );
                committed.push(p.handle.transactional_id.clone());
            }
            // The failed attempt never reused those ids (they retire until a newer
            // checkpoint completes), so every other used slot may hold an open transaction.
            let mut slot = 0;
            loop {
                let id = transactional_id(&prefix, subtask, slot);
                if !committed.contains(&id) && abort_open_transaction(&self.bootstrap, &id, self.timeout).await? {
                    break;
                }
                slot += 1;
                if slot >= MAX_SLOTS {
                    return Err(format!(
                        "transactional ids '{prefix}-{subtask}-0' to '{id}' are all in use; is another job writing with \
                         'sink.transactional-id-prefix' = '{prefix}'?"
                    ));
                }
            }
            if slot > 0 {
                tracing::info!(prefix = %prefix, subtask, slots = slot, old_parallelism, "aborted what a failed attempt left open");
            }
            self.retiring.extend(committed.into_iter().map(|id| (id, None)));
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
                retiring: Vec::new(),
                restored: Some((entries, init.restored_checkpoint)),
            });
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.checkpointing = ctx.checkpointing;
        if self.config.delivery == DeliveryGuarantee::ExactlyOnce {
            let bootstrap: Vec<String> =
                self.config.properties["bootstrap.servers"].split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let prefix = self
                .config
                .transactional_id_prefix
                .clone()
                .unwrap_or_else(|| format!("sluice-{}-{}", &ctx.job_id[..ctx.job_id.len().min(12)], self.config.table));
            let timeout = self.config.transaction_timeout();
            let restored = self.transactional.take().and_then(|t| t.restored);
            let mut t = Transactional {
                bootstrap,
                prefix,
                timeout,
                subtask: ctx.subtask,
                parallelism: ctx.parallelism,
                current: None,
                precommitted: Vec::new(),
                retiring: Vec::new(),
                restored,
            };
            t.recover().await.map_err(|e| self.error(e))?;
            t.begin(&self.topic).await.map_err(|e| self.error(e))?;
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
        // This checkpoint leaves the committed transactions out: its completion frees them.
        for (_, freed_by) in &mut t.retiring {
            freed_by.get_or_insert(checkpoint_id);
        }
        let begun = t.begin(&topic).await;
        let entries = {
            let entry = |precommitted: Option<Precommitted>| {
                SinkEntry { subtask: t.subtask, parallelism: t.parallelism, prefix: t.prefix.clone(), precommitted }.encode()
            };
            let mut entries: Vec<Vec<u8>> = t.precommitted.iter().map(|p| entry(Some(p.clone()))).collect();
            entries.push(entry(None));
            entries
        };
        begun.map_err(|e| self.error(e))?;
        // Union: a restore at any parallelism sees every transaction and every old subtask.
        Ok(OperatorState { entries, distribution: Distribution::Union })
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let Some(t) = &mut self.transactional else { return Ok(()) };
        // A checkpoint that no longer lists a committed transaction completed: no restore
        // commits it again, and its id is free.
        t.retiring.retain(|(_, freed_by)| freed_by.is_none_or(|c| c > checkpoint_id));
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut t.precommitted).into_iter().partition(|p| p.checkpoint <= checkpoint_id);
        t.precommitted = waiting;
        if !ready.is_empty() {
            exit_before_commit_if_requested(checkpoint_id);
        }
        let bootstrap = t.bootstrap.clone();
        for p in ready {
            let committed = end_transaction(&bootstrap, &p.handle, true).await;
            if let Some(t) = &mut self.transactional {
                t.retiring.push((p.handle.transactional_id, None));
            }
            committed.map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    async fn stop_with_savepoint(&mut self) -> Result<()> {
        let Some(t) = &mut self.transactional else { return Ok(()) };
        // An open transaction would hold back read_committed consumers until it timed out.
        if let Some((txn, true)) = t.current.take() {
            let bootstrap = t.bootstrap.clone();
            end_transaction(&bootstrap, txn.handle(), false).await.map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        if let Some(t) = &mut self.transactional {
            // Without checkpoints the end of input commits; with them, the final checkpoint does.
            if !self.checkpointing {
                if let Some((mut txn, written)) = t.current.take() {
                    let bootstrap = t.bootstrap.clone();
                    // A transaction that wrote nothing has nothing to commit.
                    let result = match txn.flush().await {
                        Ok(()) if written => end_transaction(&bootstrap, txn.handle(), true).await,
                        Ok(()) => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn transactional() -> Transactional {
        Transactional {
            bootstrap: Vec::new(),
            prefix: "p".into(),
            timeout: Duration::from_secs(60),
            subtask: 3,
            parallelism: 4,
            current: None,
            precommitted: Vec::new(),
            retiring: Vec::new(),
            restored: None,
        }
    }

    /// A restore from the checkpoint that precommitted a transaction commits it again with
    /// its producer epoch: its id must not be re-initialized (a new transaction on it)
    /// until a checkpoint that no longer lists it has completed.
    #[test]
    fn a_committed_transactions_slot_is_reused_only_after_a_checkpoint_without_it() {
        let mut t = transactional();
        let handle = |slot| TransactionHandle { transactional_id: transactional_id("p", 3, slot), producer_id: 1, epoch: 0 };
        assert_eq!(t.free_slot(), 0);
        t.precommitted.push(Precommitted { checkpoint: 5, handle: handle(0) });
        assert_eq!(t.free_slot(), 1, "precommitted at checkpoint 5");
        t.precommitted.clear();
        t.retiring.push((handle(0).transactional_id, Some(6)));
        assert_eq!(t.free_slot(), 1, "committed, but checkpoint 5 (which a restore may use) lists it");
        t.retiring.clear();
        assert_eq!(t.free_slot(), 0, "free once checkpoint 6 completed");
    }

    #[test]
    fn sink_entries_round_trip_with_their_prefix() {
        let entry = SinkEntry {
            subtask: 2,
            parallelism: 4,
            prefix: "sluice-abc-out".into(),
            precommitted: Some(Precommitted {
                checkpoint: 9,
                handle: TransactionHandle { transactional_id: "sluice-abc-out-2-1".into(), producer_id: 77, epoch: 4 },
            }),
        };
        assert_eq!(SinkEntry::decode(&entry.encode()).unwrap(), entry);
        let bare = SinkEntry { precommitted: None, ..entry };
        assert_eq!(SinkEntry::decode(&bare.encode()).unwrap(), bare);
    }
}
