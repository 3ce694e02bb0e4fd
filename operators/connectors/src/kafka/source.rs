//! The Kafka source: partitions are assigned to subtasks explicitly (no consumer-group
//! rebalancing), offsets are checkpointed and restored, and committed to the group when a
//! checkpoint completes, for monitoring lag only. New partitions are picked up.
//!
//! Every start position is resolved to an offset when the partition is assigned (the
//! startup mode's earliest, latest, committed or by-time offset), so a partition that has
//! delivered nothing yet is checkpointed at the offset it started from, and a restore never
//! replays its history. A bounded source checkpoints the stop offsets it computed at its
//! first start, so a restored run reads exactly what a failure-free run reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, Int32Array, Int64Array, MapBuilder, StringArray, StringBuilder,
    TimestampMillisecondArray,
};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::options::{BoundedMode, KafkaConfig, MetadataKey, StartupMode};
use sluice_core::state::{put_bytes, Reader};
use sluice_core::{OperatorError, OperatorState, Result, Source, SourcePoll, StateInit, TaskContext};

/// A topic partition.
pub type Partition = (String, i32);

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a poll waits for more records before emitting what it has.
const LINGER: Duration = Duration::from_millis(20);

/// The subtask that reads `partition` at `parallelism`: stable as partitions are added.
pub fn owner(partition: &Partition, parallelism: u32) -> u32 {
    let topic_hash = xxhash_rust::xxh3::xxh3_64(partition.0.as_bytes());
    (topic_hash.wrapping_add(partition.1 as u64) % u64::from(parallelism.max(1))) as u32
}

fn kafka_error(config: &KafkaConfig, what: &str, e: impl std::fmt::Display) -> OperatorError {
    OperatorError::config(format!("table '{}' (connector 'kafka')", config.table), format!("{what}: {e}"))
}

/// What one checkpointed entry of the source records about a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// The next offset to read.
    Position,
    /// Bounded mode: the offset reading stops at.
    Stop,
}

fn encode_entry(kind: Recorded, partition: &Partition, offset: i64) -> Vec<u8> {
    let mut out = vec![match kind {
        Recorded::Position => 0u8,
        Recorded::Stop => 1u8,
    }];
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&partition.1.to_le_bytes());
    put_bytes(&mut out, partition.0.as_bytes());
    out
}

fn decode_entry(bytes: &[u8]) -> Result<(Recorded, Partition, i64)> {
    let truncated = || OperatorError::State("kafka source state is truncated".into());
    let kind = match bytes.first() {
        Some(0) => Recorded::Position,
        Some(1) => Recorded::Stop,
        Some(k) => return Err(OperatorError::State(format!("kafka source state has an unknown entry kind {k}"))),
        None => return Err(truncated()),
    };
    let offset = i64::from_le_bytes(bytes.get(1..9).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
    let id = i32::from_le_bytes(bytes.get(9..13).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
    let topic = Reader::new(&bytes[13..], "kafka source").string()?;
    Ok((kind, (topic, id), offset))
}

/// Where a partition starts when the consumer group has no committed offset for it:
/// `properties.auto.offset.reset`, librdkafka's names and Flink's, latest by default.
fn reset_offset(config: &KafkaConfig, partition: &Partition, low: i64, high: i64) -> Result<i64> {
    match config.properties.get("auto.offset.reset").map(|v| v.to_ascii_lowercase()) {
        None => Ok(high),
        Some(v) if matches!(v.as_str(), "latest" | "largest" | "end") => Ok(high),
        Some(v) if matches!(v.as_str(), "earliest" | "smallest" | "beginning") => Ok(low),
        Some(_) => Err(kafka_error(
            config,
            "scan.startup.mode 'group-offsets'",
            format!(
                "the consumer group has no committed offset for {}/{} and 'properties.auto.offset.reset' does not \
                 allow a default; set it to 'earliest' or 'latest'",
                partition.0, partition.1
            ),
        )),
    }
}

/// Where each new partition starts, and (bounded) where it stops.
type StartsAndStops = (Vec<(Partition, i64)>, Vec<(Partition, i64)>);

/// A running Kafka source subtask.
pub struct KafkaSource {
    config: KafkaConfig,
    batch_rows: usize,
    consumer: Option<Arc<StreamConsumer>>,
    subtask: u32,
    parallelism: u32,
    attempt: u32,
    restored: Option<HashMap<Partition, i64>>,
    /// Bounded mode: the stop offsets of the restored checkpoint.
    restored_stops: HashMap<Partition, i64>,
    /// Next offset to read, per assigned partition.
    positions: BTreeMap<Partition, i64>,
    /// Bounded mode: the offset each partition stops at.
    stop_at: BTreeMap<Partition, i64>,
    /// Offsets to commit to the group when a checkpoint completes.
    to_commit: BTreeMap<u64, Vec<(Partition, i64)>>,
    last_discovery: Instant,
    skipped: u64,
    /// Partitions assigned but not yet announced downstream (`SourcePoll::SplitsAssigned`).
    unannounced: Vec<Partition>,
}

impl KafkaSource {
    /// A source over `config`, emitting batches of at most `batch_rows` rows.
    pub fn new(config: KafkaConfig, batch_rows: usize) -> Self {
        KafkaSource {
            config,
            batch_rows,
            consumer: None,
            subtask: 0,
            parallelism: 1,
            attempt: 0,
            restored: None,
            restored_stops: HashMap::new(),
            positions: BTreeMap::new(),
            stop_at: BTreeMap::new(),
            to_commit: BTreeMap::new(),
            last_discovery: Instant::now(),
            skipped: 0,
            unannounced: Vec::new(),
        }
    }

    fn consumer(&self) -> &Arc<StreamConsumer> {
        self.consumer.as_ref().expect("opened")
    }

    /// Every partition of the table's topics, sorted.
    async fn list_partitions(&self) -> Result<Vec<Partition>> {
        let consumer = self.consumer().clone();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<Partition>> {
            let metadata = match config.topic_pattern {
                Some(_) => consumer.fetch_metadata(None, METADATA_TIMEOUT),
                None if config.topics.len() == 1 => consumer.fetch_metadata(Some(&config.topics[0]), METADATA_TIMEOUT),
                None => consumer.fetch_metadata(None, METADATA_TIMEOUT),
            }
            .map_err(|e| kafka_error(&config, &format!("cannot read the metadata of {}", config.topics_text()), e))?;
            let mut out = Vec::new();
            for topic in metadata.topics() {
                let wanted = match &config.topic_pattern {
                    Some(p) => p.is_match(topic.name()),
                    None => config.topics.iter().any(|t| t == topic.name()),
                };
                if !wanted || topic.error().is_some() {
                    continue;
                }
                out.extend(topic.partitions().iter().map(|p| (topic.name().to_string(), p.id())));
            }
            if out.is_empty() {
                return Err(kafka_error(
                    &config,
                    "cannot read",
                    format!("{} has no partitions (does the topic exist?)", config.topics_text()),
                ));
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| OperatorError::State(format!("kafka metadata lookup failed: {e}")))?
    }

    /// Assigns the partitions this subtask owns among `all` that it does not read yet.
    async fn assign_new(&mut self, all: Vec<Partition>, fresh_start: bool) -> Result<()> {
        let mine: Vec<Partition> = all
            .into_iter()
            .filter(|p| owner(p, self.parallelism) == self.subtask && !self.positions.contains_key(p))
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        let consumer = self.consumer().clone();
        let config = self.config.clone();
        let restored = self.restored.clone().unwrap_or_default();
        let restored_stops = self.restored_stops.clone();
        let bounded = self.config.bounded == BoundedMode::LatestOffset;
        let (starts, stops) = tokio::task::spawn_blocking(move || -> Result<StartsAndStops> {
            let mut starts = Vec::new();
            let mut stops = Vec::new();
            for p in &mine {
                // The partition's low and high offsets, read from the broker at most once.
                let mut read = None;
                let mut watermarks = || -> Result<(i64, i64)> {
                    if let Some(known) = read {
                        return Ok(known);
                    }
                    let known = consumer
                        .fetch_watermarks(&p.0, p.1, METADATA_TIMEOUT)
                        .map_err(|e| kafka_error(&config, &format!("cannot read the offsets of {}/{}", p.0, p.1), e))?;
                    read = Some(known);
                    Ok(known)
                };
                let start = match restored.get(p) {
                    Some(&offset) => offset,
                    // Partitions that appear while running are read from their start.
                    None if !fresh_start => watermarks()?.0,
                    None => match &config.startup {
                        StartupMode::Earliest => watermarks()?.0,
                        StartupMode::Latest => watermarks()?.1,
                        StartupMode::GroupOffsets => {
                            let mut tpl = TopicPartitionList::new();
                            tpl.add_partition(&p.0, p.1);
                            let committed = consumer.committed_offsets(tpl, METADATA_TIMEOUT).map_err(|e| {
                                kafka_error(&config, "cannot read the consumer group's committed offsets", e)
                            })?;
                            match committed.elements().first().and_then(|e| e.offset().to_raw()).filter(|o| *o >= 0) {
                                Some(offset) => offset,
                                None => {
                                    let (low, high) = watermarks()?;
                                    reset_offset(&config, p, low, high)?
                                }
                            }
                        }
                        StartupMode::SpecificOffsets(map) => match map.get(&p.1) {
                            Some(&o) => o,
                            None => watermarks()?.0,
                        },
                        StartupMode::Timestamp(ms) => {
                            let mut tpl = TopicPartitionList::new();
                            tpl.add_partition_offset(&p.0, p.1, Offset::Offset(*ms))
                                .map_err(|e| kafka_error(&config, "bad partition", e))?;
                            let found = consumer
                                .offsets_for_times(tpl, METADATA_TIMEOUT)
                                .map_err(|e| kafka_error(&config, "cannot look up offsets by time", e))?;
                            // No record at or after the time: start at the end.
                            match found.elements().first().and_then(|e| e.offset().to_raw()).filter(|o| *o >= 0) {
                                Some(offset) => offset,
                                None => watermarks()?.1,
                            }
                        }
                    },
                };
                starts.push((p.clone(), start));
                if bounded {
                    let stop = match restored_stops.get(p) {
                        Some(&stop) => stop,
                        None => watermarks()?.1,
                    };
                    stops.push((p.clone(), stop));
                }
            }
            Ok((starts, stops))
        })
        .await
        .map_err(|e| OperatorError::State(format!("kafka offset lookup failed: {e}")))??;
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in self.positions.iter().chain(starts.iter().map(|(p, o)| (p, o))) {
            tpl.add_partition_offset(&p.0, p.1, Offset::Offset(*offset))
                .map_err(|e| kafka_error(&self.config, "bad partition", e))?;
        }
        self.positions.extend(starts.iter().cloned());
        self.stop_at.extend(stops);
        // Announced so per-partition watermarks wait for them; a bounded partition with
        // nothing left to read is not waited for.
        self.unannounced.extend(
            starts
                .iter()
                .filter(|(p, start)| self.stop_at.get(p).is_none_or(|stop| start < stop))
                .map(|(p, _)| p.clone()),
        );
        self.consumer().assign(&tpl).map_err(|e| kafka_error(&self.config, "cannot assign partitions", e))?;
        let starts: Vec<String> = starts.iter().map(|(p, o)| format!("{}/{} from offset {o}", p.0, p.1)).collect();
        tracing::info!(
            table = %self.config.table,
            subtask = self.subtask,
            attempt = self.attempt,
            partitions = %starts.join(", "),
            "kafka source reads its partitions"
        );
        Ok(())
    }

    /// True when a bounded source has read every partition to its stop offset.
    fn reached_end(&self) -> bool {
        if self.config.bounded != BoundedMode::LatestOffset {
            return false;
        }
        let position = self.consumer.as_ref().and_then(|c| c.position().ok());
        self.stop_at.iter().all(|(p, &stop)| {
            let read = self.positions.get(p).copied().unwrap_or(-1);
            let fetched =
                position.as_ref().and_then(|tpl| tpl.find_partition(&p.0, p.1)).and_then(|e| e.offset().to_raw());
            stop <= 0 || read >= stop || fetched.is_some_and(|f| f >= stop)
        })
    }

    /// Fetches the writer schemas of `avro-confluent` values and keys not seen yet.
    async fn learn_schemas(&self, messages: &[Received]) -> Result<()> {
        let key_format = self.config.key.as_ref().map(|(format, _)| format);
        if self.config.value_format.registry.is_none() && key_format.is_none_or(|f| f.registry.is_none()) {
            return Ok(());
        }
        let values: Vec<&[u8]> = messages.iter().map(|m| m.value.as_slice()).collect();
        let failed = |e: String| OperatorError::config(format!("table '{}' (connector 'kafka')", self.config.table), e);
        self.config.value_format.prepare_decode(&values).await.map_err(failed)?;
        if let Some((format, _)) = &self.config.key {
            let keys: Vec<&[u8]> = messages.iter().filter_map(|m| m.key.as_deref()).collect();
            format.prepare_decode(&keys).await.map_err(failed)?;
        }
        Ok(())
    }

    /// Decodes messages into a batch, handling bad records by the format's error policy.
    fn decode(&mut self, messages: &[Received]) -> Result<Option<RecordBatch>> {
        let value_schema = self.config.value_schema();
        let format = self.config.value_format.clone();
        let decode_values = |rows: &[&Received]| {
            format.decode_records(&value_schema, &rows.iter().map(|m| m.value.as_slice()).collect::<Vec<_>>())
        };
        let all: Vec<&Received> = messages.iter().collect();
        let good: Vec<&Received> = match decode_values(&all) {
            Ok(Some(batch))
                if batch.num_rows() == messages.len()
                    && self.config.key.is_none()
                    && self.config.metadata.is_empty() =>
            {
                return Ok(Some(batch));
            }
            Ok(Some(batch)) if batch.num_rows() == messages.len() => all,
            _ => {
                let mut good = Vec::new();
                for m in all {
                    match decode_values(&[m]) {
                        Ok(Some(b)) if b.num_rows() == 1 => good.push(m),
                        _ if format.ignore_parse_errors => self.skipped += 1,
                        Ok(_) => return Err(self.bad_record(m, "the record is empty".into())),
                        Err(message) => return Err(self.bad_record(m, message)),
                    }
                }
                good
            }
        };
        if good.is_empty() {
            return Ok(None);
        }
        let values = decode_values(&good)
            .map_err(|e| self.bad_record(good[0], e))?
            .ok_or_else(|| self.bad_record(good[0], "the records decode to nothing".into()))?;
        let key_batch = match &self.config.key {
            Some((key_format, key_columns)) => {
                let key_schema = Arc::new(self.config.schema.project(key_columns).expect("key columns are in range"));
                let keys: Vec<&[u8]> = good.iter().map(|m| m.key.as_deref().unwrap_or_default()).collect();
                let decoded = key_format.decode_records(&key_schema, &keys);
                Some(
                    decoded
                        .map_err(|e| self.bad_record(good[0], format!("bad key: {e}")))?
                        .ok_or_else(|| self.bad_record(good[0], "a record has no key".into()))?,
                )
            }
            None => None,
        };
        let value_columns = self.config.value_columns();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.config.schema.fields().len());
        for (c, field) in self.config.schema.fields().iter().enumerate() {
            if let Some((_, key)) = self.config.metadata.iter().find(|(m, _)| *m == c) {
                columns.push(metadata_column(*key, field.data_type(), &good)?);
            } else if let Some(v) = value_columns.iter().position(|v| *v == c) {
                columns.push(values.column(v).clone());
            } else {
                let (_, key_columns) = self.config.key.as_ref().expect("a column outside the value is a key column");
                let k = key_columns.iter().position(|k| *k == c).expect("a key column");
                columns.push(key_batch.as_ref().expect("keys were decoded").column(k).clone());
            }
        }
        RecordBatch::try_new(self.config.schema.clone(), columns)
            .map(Some)
            .map_err(|e| OperatorError::arrow("kafka records", e))
    }

    fn bad_record(&self, m: &Received, message: String) -> OperatorError {
        OperatorError::BadRecord {
            location: format!("topic '{}' partition {} offset {}", m.partition.0, m.partition.1, m.offset),
            message,
            skip_option: self.config.value_format.skip_option(),
        }
    }
}

/// A record as read, with its metadata.
struct Received {
    partition: Partition,
    offset: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    timestamp: Timestamp,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A metadata column for `rows`.
fn metadata_column(key: MetadataKey, data_type: &DataType, rows: &[&Received]) -> Result<ArrayRef> {
    Ok(match key {
        MetadataKey::Timestamp => {
            let tz = match data_type {
                DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            };
            Arc::new(
                TimestampMillisecondArray::from_iter(rows.iter().map(|m| m.timestamp.to_millis()))
                    .with_timezone_opt(tz),
            )
        }
        MetadataKey::TimestampType => Arc::new(StringArray::from_iter_values(rows.iter().map(|m| match m.timestamp {
            Timestamp::CreateTime(_) => "CreateTime",
            Timestamp::LogAppendTime(_) => "LogAppendTime",
            Timestamp::NotAvailable => "NoTimestampType",
        }))),
        MetadataKey::Partition => Arc::new(Int32Array::from_iter_values(rows.iter().map(|m| m.partition.1))),
        MetadataKey::Offset => Arc::new(Int64Array::from_iter_values(rows.iter().map(|m| m.offset))),
        MetadataKey::Topic => Arc::new(StringArray::from_iter_values(rows.iter().map(|m| m.partition.0.as_str()))),
        // The same text as the partitions' announcement (`SourcePoll::SplitsAssigned`).
        MetadataKey::Split => {
            Arc::new(StringArray::from_iter_values(rows.iter().map(|m| format!("{}/{}", m.partition.0, m.partition.1))))
        }
        MetadataKey::Key => Arc::new(BinaryArray::from_iter(rows.iter().map(|m| m.key.as_deref()))),
        MetadataKey::Headers => {
            let mut builder = MapBuilder::new(None, StringBuilder::new(), BinaryBuilder::new());
            for m in rows {
                for (name, value) in &m.headers {
                    builder.keys().append_value(name);
                    match value {
                        Some(v) => builder.values().append_value(v),
                        None => builder.values().append_null(),
                    }
                }
                builder.append(true).map_err(|e| OperatorError::arrow("kafka headers", e))?;
            }
            let map = builder.finish();
            // Rebuilt with the table's declared field names and nullability.
            let (DataType::Map(entries_field, sorted), DataType::Struct(fields)) =
                (data_type, map.entries().data_type())
            else {
                return Err(OperatorError::InvalidPlan("headers column is not a MAP".into()));
            };
            let declared = match entries_field.data_type() {
                DataType::Struct(declared) => declared.clone(),
                _ => fields.clone(),
            };
            let entries = arrow::array::StructArray::try_new(declared, map.entries().columns().to_vec(), None)
                .map_err(|e| OperatorError::arrow("kafka headers", e))?;
            Arc::new(
                arrow::array::MapArray::try_new(
                    entries_field.clone(),
                    map.offsets().clone(),
                    entries,
                    map.nulls().cloned(),
                    *sorted,
                )
                .map_err(|e| OperatorError::arrow("kafka headers", e))?,
            )
        }
    })
}

#[async_trait]
impl Source for KafkaSource {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            let mut positions = HashMap::new();
            for entry in init.entries() {
                match decode_entry(entry)? {
                    (Recorded::Position, partition, offset) => positions.insert(partition, offset),
                    (Recorded::Stop, partition, offset) => self.restored_stops.insert(partition, offset),
                };
            }
            self.restored = Some(positions);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.subtask = ctx.subtask;
        self.parallelism = ctx.parallelism;
        self.attempt = ctx.attempt;
        let mut client = ClientConfig::new();
        client.set("group.id", format!("sluice-{}", ctx.job_id));
        for (k, v) in &self.config.properties {
            client.set(k, v);
        }
        client
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        let consumer: StreamConsumer =
            client.create().map_err(|e| kafka_error(&self.config, "cannot create a consumer", e))?;
        self.consumer = Some(Arc::new(consumer));
        let all = self.list_partitions().await?;
        let fresh = self.restored.is_none();
        self.assign_new(all, fresh).await?;
        self.last_discovery = Instant::now();
        Ok(())
    }

    async fn poll_next(&mut self) -> Result<SourcePoll> {
        if let Some(interval) = self.config.discovery_interval {
            if self.config.bounded == BoundedMode::Unbounded && self.last_discovery.elapsed() >= interval {
                self.last_discovery = Instant::now();
                let all = self.list_partitions().await?;
                self.assign_new(all, false).await?;
            }
        }
        if !self.unannounced.is_empty() {
            let splits = self.unannounced.drain(..).map(|p| format!("{}/{}", p.0, p.1)).collect();
            return Ok(SourcePoll::SplitsAssigned(splits));
        }
        if self.reached_end() {
            return Ok(SourcePoll::Finished);
        }
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut messages = Vec::new();
        let consumer = self.consumer().clone();
        while messages.len() < self.batch_rows {
            let received = match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => break,
                Ok(r) => r,
            };
            let m = received
                .map_err(|e| kafka_error(&self.config, &format!("cannot read {}", self.config.topics_text()), e))?;
            let partition = (m.topic().to_string(), m.partition());
            if self.stop_at.get(&partition).is_some_and(|&stop| m.offset() >= stop) {
                continue;
            }
            self.positions.insert(partition.clone(), m.offset() + 1);
            let headers = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect())
                .unwrap_or_default();
            messages.push(Received {
                partition,
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().unwrap_or_default().to_vec(),
                timestamp: m.timestamp(),
                headers,
            });
        }
        if messages.is_empty() {
            return Ok(if self.reached_end() { SourcePoll::Finished } else { SourcePoll::Idle });
        }
        self.learn_schemas(&messages).await?;
        Ok(match self.decode(&messages)? {
            Some(batch) => SourcePoll::Batch(batch),
            None => SourcePoll::Idle,
        })
    }

    fn skipped_records(&self) -> u64 {
        self.skipped
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        let known: Vec<(Partition, i64)> = self.positions.iter().map(|(p, o)| (p.clone(), *o)).collect();
        let stops = self.stop_at.iter().map(|(p, o)| encode_entry(Recorded::Stop, p, *o));
        let entries = known.iter().map(|(p, o)| encode_entry(Recorded::Position, p, *o)).chain(stops).collect();
        self.to_commit.insert(checkpoint_id, known);
        // Union: every subtask sees every partition's offset and keeps those it owns, so
        // partitions move correctly when the parallelism changes.
        Ok(OperatorState::union(entries))
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        let done: Vec<u64> = self.to_commit.range(..=checkpoint_id).map(|(id, _)| *id).collect();
        let Some(offsets) = done.last().and_then(|id| self.to_commit.get(id)).cloned() else { return Ok(()) };
        for id in done {
            self.to_commit.remove(&id);
        }
        if !self.config.properties.contains_key("group.id") || offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            tpl.add_partition_offset(&p.0, p.1, Offset::Offset(*o))
                .map_err(|e| kafka_error(&self.config, "bad partition", e))?;
        }
        // For monitoring lag only: the checkpoint holds the offsets that count.
        if let Err(e) = self.consumer().commit(&tpl, CommitMode::Async) {
            tracing::warn!(table = %self.config.table, error = %e, "cannot commit offsets to the consumer group");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_owners_spread() {
        let p = ("orders".to_string(), 7);
        assert_eq!(
            decode_entry(&encode_entry(Recorded::Position, &p, 12345)).unwrap(),
            (Recorded::Position, p.clone(), 12345)
        );
        assert_eq!(decode_entry(&encode_entry(Recorded::Stop, &p, 0)).unwrap(), (Recorded::Stop, p.clone(), 0));
        assert!(
            decode_entry(&encode_entry(Recorded::Stop, &p, 0)[..10]).is_err(),
            "truncated state is an error, not a panic"
        );
        let owners: std::collections::BTreeSet<u32> = (0..8).map(|i| owner(&("t".to_string(), i), 4)).collect();
        assert_eq!(owners.len(), 4, "consecutive partitions go to every subtask");
    }
}
