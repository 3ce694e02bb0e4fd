//! The Kafka sink. `at-least-once` waits for every record to be acknowledged at each
//! checkpoint barrier and at the end of input; `none` never waits. `exactly-once` writes
//! each checkpoint epoch in one Kafka transaction ([`super::epoch`]), committed when the
//! checkpoint completes. An `upsert-kafka` sink reads a changelog: of the changes a batch
//! makes to a key, only the last is written, as the key's row (`+I`, `+U`) or as a
//! tombstone (`-U` or `-D` not followed by a new row of the key), which keeps the topic's
//! latest record per key right whatever the updates' own key. The transactional-id prefix is `sink.transactional-id-prefix`, or
//! else derived from the job and the table, so two jobs never fence each other.

use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use super::epoch::{EpochSettings, EpochTransactions, RestoredTransactions};
use super::options::{DeliveryGuarantee, KafkaConfig};
use sluice_core::changelog::{self, ChangelogBatch, RowKind};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

/// An encoded key or value.
type Encoded = Vec<u8>;

/// The encoded keys (when the table has a key) and values (`None`: a tombstone) of rows.
type Records = (Option<Vec<Encoded>>, Vec<Option<Encoded>>);

/// Records in flight before the sink waits for their acknowledgements.
const MAX_IN_FLIGHT: usize = 100_000;

/// A running Kafka sink subtask.
pub struct KafkaSink {
    config: KafkaConfig,
    topic: String,
    producer: Option<FutureProducer>,
    in_flight: Vec<DeliveryFuture>,
    transactional: Option<EpochTransactions>,
    restored: Option<RestoredTransactions>,
    checkpointing: bool,
}

impl KafkaSink {
    /// A sink writing to the single topic of `config`.
    /// The config was checked with [`KafkaConfig::check_sink`].
    pub fn new(config: KafkaConfig) -> Self {
        KafkaSink {
            topic: config.topics[0].clone(),
            config,
            producer: None,
            in_flight: Vec::new(),
            transactional: None,
            restored: None,
            checkpointing: false,
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> OperatorError {
        OperatorError::config(
            format!("table '{}' (connector 'kafka')", self.config.table),
            format!("cannot write to topic '{}': {e}", self.topic),
        )
    }

    /// Registers the value's and key's Avro schemas of `avro-confluent` formats, under
    /// `<topic>-value` and `<topic>-key` unless a subject is set.
    async fn register_schemas(&self) -> Result<()> {
        let value_schema = self.config.value_schema();
        let value_subject = format!("{}-value", self.topic);
        self.config.value_format.prepare_encode(&value_schema, &value_subject).await.map_err(|e| self.error(e))?;
        if let Some((format, columns)) = &self.config.key {
            let key_schema =
                Arc::new(self.config.schema.project(columns).map_err(|e| OperatorError::arrow("kafka key", e))?);
            format.prepare_encode(&key_schema, &format!("{}-key", self.topic)).await.map_err(|e| self.error(e))?;
        }
        Ok(())
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

    /// The keys (when the table has key fields) and values of `batch`'s rows; a `None`
    /// value is a tombstone.
    fn encode(&self, batch: &RecordBatch) -> Result<Records> {
        let ChangelogBatch { rows, kinds } = changelog::split(batch)?;
        let values = rows.project(&self.config.value_columns()).map_err(|e| OperatorError::arrow("kafka value", e))?;
        let values = self.config.value_format.encode_records(&values)?;
        let keys = match &self.config.key {
            Some((format, columns)) => {
                let keys = rows.project(columns).map_err(|e| OperatorError::arrow("kafka key", e))?;
                Some(format.encode_records(&keys)?)
            }
            None => None,
        };
        if !self.config.upsert {
            return Ok((keys, values.into_iter().map(Some).collect()));
        }
        let keys = keys.ok_or_else(|| OperatorError::InvalidPlan("an upsert sink needs its key".into()))?;
        Ok(last_change_per_key(keys, values, &kinds))
    }
}

/// Of each key's changes, the last, in the order of their last changes: the key with its
/// row (`+I`, `+U`), or with no value (`-U`, `-D`: a tombstone).
fn last_change_per_key(keys: Vec<Encoded>, values: Vec<Encoded>, kinds: &[RowKind]) -> Records {
    let mut last = std::collections::HashMap::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        last.insert(key.as_slice(), i);
    }
    let mut kept: Vec<usize> = last.into_values().collect();
    kept.sort_unstable();
    let mut keys: Vec<Option<Encoded>> = keys.into_iter().map(Some).collect();
    let mut values: Vec<Option<Encoded>> = values.into_iter().map(Some).collect();
    let mut out_keys = Vec::with_capacity(kept.len());
    let mut out_values = Vec::with_capacity(kept.len());
    for i in kept {
        out_keys.push(keys[i].take().unwrap_or_default());
        out_values.push(if kinds[i].is_retraction() { None } else { values[i].take() });
    }
    (Some(out_keys), out_values)
}

#[async_trait]
impl Operator for KafkaSink {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if self.config.delivery == DeliveryGuarantee::ExactlyOnce && init.restored {
            self.restored = Some(RestoredTransactions::decode(init.entries(), init.restored_checkpoint)?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.checkpointing = ctx.checkpointing;
        self.register_schemas().await?;
        if self.config.delivery == DeliveryGuarantee::ExactlyOnce {
            let settings = EpochSettings {
                bootstrap: self.config.properties["bootstrap.servers"]
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                topic: self.topic.clone(),
                prefix: self.config.transactional_id_prefix.clone().unwrap_or_else(|| {
                    format!("sluice-{}-{}", &ctx.job_id[..ctx.job_id.len().min(12)], self.config.table)
                }),
                timeout: self.config.transaction_timeout(),
                subtask: ctx.subtask,
                parallelism: ctx.parallelism,
            };
            let opened = EpochTransactions::open(settings, self.restored.take()).await;
            self.transactional = Some(opened.map_err(|e| self.error(e))?);
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
            let mut keys = keys.map(Vec::into_iter);
            for value in values {
                let key = keys.as_mut().and_then(Iterator::next).map(bytes::Bytes::from);
                if let Err(e) = t.send(key, value.map(bytes::Bytes::from)).await {
                    return Err(self.error(e));
                }
            }
            return Ok(());
        }
        for (i, value) in values.iter().enumerate() {
            loop {
                let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.topic);
                if let Some(value) = value {
                    record = record.payload(value);
                }
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
        let Some(t) = &mut self.transactional else {
            if self.config.delivery != DeliveryGuarantee::None {
                self.flush().await?;
            }
            return Ok(OperatorState::default());
        };
        let entries = t.precommit(checkpoint_id).await;
        Ok(OperatorState::union(entries.map_err(|e| self.error(e))?))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let Some(t) = &mut self.transactional else { return Ok(()) };
        let committed = t.commit_through(checkpoint_id).await;
        committed.map_err(|e| self.error(e))
    }

    async fn stop_with_savepoint(&mut self) -> Result<()> {
        let Some(t) = &mut self.transactional else { return Ok(()) };
        let aborted = t.abort_open().await;
        aborted.map_err(|e| self.error(e))
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        if let Some(t) = &mut self.transactional {
            // Without checkpoints the end of input commits; with them, the final checkpoint does.
            if !self.checkpointing {
                let committed = t.commit_open().await;
                committed.map_err(|e| self.error(e))?;
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

    #[test]
    fn only_each_keys_last_change_is_written_and_retractions_become_tombstones() {
        let keys: Vec<Encoded> = ["a", "b", "a", "c", "b", "c"].iter().map(|k| k.as_bytes().to_vec()).collect();
        let values: Vec<Encoded> = ["a1", "b1", "a2", "c1", "b1", "c2"].iter().map(|v| v.as_bytes().to_vec()).collect();
        let kinds = [
            RowKind::Insert,
            RowKind::Insert,
            RowKind::UpdateAfter,
            RowKind::Insert,
            RowKind::Delete,
            RowKind::UpdateBefore,
        ];
        let (keys, values) = last_change_per_key(keys, values, &kinds);
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let written: Vec<(String, Option<String>)> =
            keys.unwrap().iter().zip(values).map(|(k, v)| (text(k), v.as_deref().map(text))).collect();
        assert_eq!(
            written,
            [("a".into(), Some("a2".into())), ("b".into(), None), ("c".into(), None)],
            "a's update, b's delete and c's retraction, in the order of their last changes"
        );
    }
}
