//! The options of a `kafka` table, with Apache Flink's names.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};

use crate::format::{Format, FormatOptions};
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};

const FORMATS: &[Format] = &[Format::Json, Format::Csv, Format::Raw, Format::Avro, Format::AvroConfluent];

/// Where a source starts reading partitions it has no checkpointed offset for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// The first offset of each partition.
    Earliest,
    /// The end of each partition (only new records).
    Latest,
    /// The consumer group's committed offsets (else `auto.offset.reset`).
    GroupOffsets,
    /// The first record at or after a time (ms since the epoch).
    Timestamp(i64),
    /// Given offsets per partition; others start at the earliest offset.
    SpecificOffsets(BTreeMap<i32, i64>),
}

/// Where a bounded source stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundedMode {
    /// Never (a streaming source).
    Unbounded,
    /// At each partition's end offset when the source starts.
    LatestOffset,
}

/// The metadata key of a source's split (its Kafka topic and partition).
pub const SPLIT_METADATA: &str = "sluice.split";

/// A record's metadata that a source column can hold (`METADATA FROM 'key'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey {
    /// The record's timestamp (TIMESTAMP(3) or TIMESTAMP_LTZ(3)).
    Timestamp,
    /// `CreateTime`, `LogAppendTime` or `NoTimestampType` (STRING).
    TimestampType,
    /// The partition (INT).
    Partition,
    /// The offset (BIGINT).
    Offset,
    /// The topic (STRING).
    Topic,
    /// The raw key (BYTES).
    Key,
    /// The headers (MAP<STRING, BYTES>).
    Headers,
    /// The record's split, `topic/partition` (STRING): the planner's hidden column for
    /// per-partition watermarks.
    Split,
}

impl MetadataKey {
    const ALL: [(&'static str, MetadataKey, &'static str); 8] = [
        ("timestamp", MetadataKey::Timestamp, "TIMESTAMP(3) or TIMESTAMP_LTZ(3)"),
        ("timestamp-type", MetadataKey::TimestampType, "STRING"),
        ("partition", MetadataKey::Partition, "INT"),
        ("offset", MetadataKey::Offset, "BIGINT"),
        ("topic", MetadataKey::Topic, "STRING"),
        ("key", MetadataKey::Key, "BYTES"),
        ("headers", MetadataKey::Headers, "MAP<STRING, BYTES>"),
        (SPLIT_METADATA, MetadataKey::Split, "STRING"),
    ];

    fn accepts(self, t: &DataType) -> bool {
        match self {
            MetadataKey::Timestamp => matches!(t, DataType::Timestamp(TimeUnit::Millisecond, _)),
            MetadataKey::TimestampType | MetadataKey::Topic | MetadataKey::Split => *t == DataType::Utf8,
            MetadataKey::Partition => *t == DataType::Int32,
            MetadataKey::Offset => *t == DataType::Int64,
            MetadataKey::Key => *t == DataType::Binary,
            MetadataKey::Headers => matches!(t, DataType::Map(f, _) if matches!(f.data_type(), DataType::Struct(s)
                if s.len() == 2 && *s[0].data_type() == DataType::Utf8 && *s[1].data_type() == DataType::Binary)),
        }
    }
}

/// How a sink delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Fire and forget.
    None,
    /// Every record is acknowledged before a checkpoint completes; replays may duplicate.
    AtLeastOnce,
    /// One Kafka transaction per checkpoint, committed when the checkpoint completes.
    ExactlyOnce,
}

/// Parsed options of a `kafka` table.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// The table's name, for error messages.
    pub table: String,
    /// `topic` (several separated by `;`).
    pub topics: Vec<String>,
    /// `topic-pattern`, a regular expression over topic names (sources only).
    pub topic_pattern: Option<regex::Regex>,
    /// `properties.*`, passed to librdkafka without the prefix.
    pub properties: BTreeMap<String, String>,
    /// `scan.startup.mode` and its companions.
    pub startup: StartupMode,
    /// `scan.bounded.mode`.
    pub bounded: BoundedMode,
    /// `scan.topic-partition-discovery.interval`: how often new partitions are looked for.
    pub discovery_interval: Option<Duration>,
    /// `format`: the value format.
    pub value_format: FormatOptions,
    /// `key.format` and `key.fields`: the key format and the columns in the key.
    pub key: Option<(FormatOptions, Vec<usize>)>,
    /// `value.fields-include` = `EXCEPT_KEY`: key columns are left out of the value.
    pub value_except_key: bool,
    /// `sink.delivery-guarantee`.
    pub delivery: DeliveryGuarantee,
    /// `sink.transactional-id-prefix`.
    pub transactional_id_prefix: Option<String>,
    /// The table's columns.
    pub schema: SchemaRef,
    /// Source columns that hold record metadata.
    pub metadata: Vec<(usize, MetadataKey)>,
    /// An `upsert-kafka` table: a sink writes each key's latest row, and a tombstone (a
    /// record without a value) for a deleted key.
    pub upsert: bool,
}

/// `properties.*`, passed to librdkafka without the prefix (`bootstrap.servers` required).
fn client_properties(options: &mut Options<'_>) -> Result<BTreeMap<String, String>> {
    options.accept_prefix("properties.");
    let properties: BTreeMap<String, String> = options
        .all()
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("properties.").map(|k| (k.to_string(), v.clone())))
        .collect();
    if !properties.contains_key("bootstrap.servers") {
        return Err(options.error("missing required option 'properties.bootstrap.servers' (e.g. 'localhost:9092')"));
    }
    transaction_timeout(properties.get("transaction.timeout.ms").map(String::as_str)).map_err(|m| options.error(m))?;
    Ok(properties)
}

/// `sink.delivery-guarantee` (at-least-once by default) and `sink.transactional-id-prefix`.
fn delivery(options: &mut Options<'_>) -> Result<(DeliveryGuarantee, Option<String>)> {
    let delivery =
        match options.choice("sink.delivery-guarantee", &["none", "at-least-once", "exactly-once"])?.as_deref() {
            Some("none") => DeliveryGuarantee::None,
            Some("exactly-once") => DeliveryGuarantee::ExactlyOnce,
            _ => DeliveryGuarantee::AtLeastOnce,
        };
    Ok((delivery, options.get("sink.transactional-id-prefix").map(str::to_string)))
}

/// The transaction timeout of exactly-once sinks when `properties.transaction.timeout.ms`
/// is not set: 15 minutes, the broker's default maximum (`transaction.max.timeout.ms`). It
/// must stay above the checkpoint timeout plus the time a restart takes, or the broker
/// aborts a precommitted transaction before the restored job can commit it.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The transaction timeout set by `properties.transaction.timeout.ms` among a table's
/// options (`DEFAULT_TRANSACTION_TIMEOUT` when absent).
pub fn transaction_timeout(properties_timeout_ms: Option<&str>) -> std::result::Result<Duration, String> {
    match properties_timeout_ms {
        None => Ok(DEFAULT_TRANSACTION_TIMEOUT),
        Some(raw) => raw.trim().parse::<u64>().ok().filter(|ms| *ms > 0).map(Duration::from_millis).ok_or_else(|| {
            format!("'properties.transaction.timeout.ms' = '{raw}': expected a positive number of milliseconds")
        }),
    }
}

impl KafkaConfig {
    /// Checks that the table can be written: a sink writes to one topic.
    pub fn check_sink(&self) -> Result<()> {
        if self.topic_pattern.is_some() || self.topics.len() != 1 {
            let context = format!("table '{}' (connector 'kafka')", self.table);
            return Err(OperatorError::config(
                context,
                "a Kafka sink writes to one topic: set 'topic' to a single name",
            ));
        }
        Ok(())
    }

    /// The transaction timeout of this table's exactly-once sink.
    pub fn transaction_timeout(&self) -> Duration {
        transaction_timeout(self.properties.get("transaction.timeout.ms").map(String::as_str))
            .unwrap_or(DEFAULT_TRANSACTION_TIMEOUT)
    }

    /// Reads a `kafka` table's options (source and sink options alike, so a table can be
    /// both read and written).
    /// `metadata` maps a source's metadata columns to their keys (empty for sinks).
    pub fn parse(
        options: &mut Options<'_>,
        table: &str,
        schema: SchemaRef,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let topics: Vec<String> = options
            .get("topic")
            .map(|t| t.split(';').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        let topic_pattern = match options.get("topic-pattern") {
            Some(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                options.error(format!("option 'topic-pattern' is not a valid regular expression: {e}"))
            })?),
            None => None,
        };
        if topics.is_empty() == topic_pattern.is_none() {
            return Err(options.error("set exactly one of 'topic' (names separated by ';') and 'topic-pattern'"));
        }
        let properties = client_properties(options)?;
        let mode = options.choice(
            "scan.startup.mode",
            &["earliest-offset", "latest-offset", "group-offsets", "timestamp", "specific-offsets"],
        )?;
        let startup = match mode.as_deref() {
            // Flink's default is the group's offsets; without a group, the earliest offset.
            None if !properties.contains_key("group.id") => StartupMode::Earliest,
            None | Some("group-offsets") => StartupMode::GroupOffsets,
            Some("earliest-offset") => StartupMode::Earliest,
            Some("latest-offset") => StartupMode::Latest,
            Some("timestamp") => StartupMode::Timestamp(
                options.parse::<i64>("scan.startup.timestamp-millis", "milliseconds since the epoch")?.ok_or_else(
                    || options.error("'scan.startup.mode' = 'timestamp' needs 'scan.startup.timestamp-millis'"),
                )?,
            ),
            Some(_) => {
                let raw = options.get("scan.startup.specific-offsets").ok_or_else(|| {
                    options.error("'scan.startup.mode' = 'specific-offsets' needs 'scan.startup.specific-offsets' (e.g. 'partition:0,offset:42;partition:1,offset:300')")
                })?;
                StartupMode::SpecificOffsets(parse_specific_offsets(options, raw)?)
            }
        };
        if startup == StartupMode::GroupOffsets && !properties.contains_key("group.id") {
            return Err(options.error("'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'"));
        }
        let bounded = match options.choice("scan.bounded.mode", &["unbounded", "latest-offset"])?.as_deref() {
            Some("latest-offset") => BoundedMode::LatestOffset,
            _ => BoundedMode::Unbounded,
        };
        let discovery_interval =
            options.duration("scan.topic-partition-discovery.interval")?.or(Some(Duration::from_secs(60)));
        // Read by the planner for per-partition watermarks; checked here.
        options.duration("scan.watermark.idle-timeout")?;
        let value_format = FormatOptions::parse(options, FORMATS)?;
        let key_fields: Vec<usize> = match options.get("key.fields") {
            Some(fields) => fields
                .split(';')
                .map(|f| {
                    let f = f.trim();
                    schema.index_of(f).map_err(|_| {
                        options.error(format!("option 'key.fields' names '{f}', which is not a column of the table"))
                    })
                })
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        let key = match (options.get("key.format").is_some(), key_fields.is_empty()) {
            (true, false) => Some((FormatOptions::parse_key(options, "key.format", FORMATS)?, key_fields)),
            (false, true) => None,
            (true, true) => {
                return Err(options.error("'key.format' needs 'key.fields' (the key columns, separated by ';')"))
            }
            (false, false) => return Err(options.error("'key.fields' needs 'key.format' (e.g. 'json' or 'raw')")),
        };
        let value_except_key =
            matches!(options.choice("value.fields-include", &["all", "except_key"])?.as_deref(), Some("except_key"));
        let (delivery, transactional_id_prefix) = delivery(options)?;
        options.declare("scan.parallelism");
        options.declare("sink.partitioner");
        let mut config = KafkaConfig {
            table: table.to_string(),
            topics,
            topic_pattern,
            properties,
            startup,
            bounded,
            discovery_interval,
            value_format,
            key,
            value_except_key,
            delivery,
            transactional_id_prefix,
            schema,
            metadata: Vec::new(),
            upsert: false,
        };
        config.set_metadata(metadata).map_err(|m| options.error(m))?;
        config.value_format.check_schema(&config.value_schema(), options)?;
        Ok(config)
    }

    /// Reads an `upsert-kafka` table's options (Flink's: `topic`, `properties.*`,
    /// `key.format`, `value.format`, `value.fields-include`, `sink.delivery-guarantee`,
    /// `sink.transactional-id-prefix`); its key is the table's primary key.
    pub fn parse_upsert(
        options: &mut Options<'_>,
        table: &str,
        schema: SchemaRef,
        primary_key: &[String],
    ) -> Result<Self> {
        if primary_key.is_empty() {
            return Err(options.error(
                "an 'upsert-kafka' table needs a primary key: add PRIMARY KEY (k) NOT ENFORCED to its columns",
            ));
        }
        let topic = options.get("topic").map(|t| t.trim().to_string()).filter(|t| !t.is_empty() && !t.contains(';'));
        let Some(topic) = topic else {
            return Err(options.error("missing required option 'topic' (one topic name)"));
        };
        let properties = client_properties(options)?;
        let key_fields = primary_key
            .iter()
            .map(|k| schema.index_of(k).map_err(|_| options.error(format!("primary key column '{k}' is not physical"))))
            .collect::<Result<Vec<_>>>()?;
        let key_format = FormatOptions::parse_key(options, "key.format", FORMATS)?;
        let value_format = FormatOptions::parse_key(options, "value.format", FORMATS)?;
        let value_except_key =
            matches!(options.choice("value.fields-include", &["all", "except_key"])?.as_deref(), Some("except_key"));
        let (delivery, transactional_id_prefix) = delivery(options)?;
        let config = KafkaConfig {
            table: table.to_string(),
            topics: vec![topic],
            topic_pattern: None,
            properties,
            startup: StartupMode::Earliest,
            bounded: BoundedMode::Unbounded,
            discovery_interval: None,
            value_format,
            key: Some((key_format, key_fields)),
            value_except_key,
            delivery,
            transactional_id_prefix,
            schema,
            metadata: Vec::new(),
            upsert: true,
        };
        config.value_format.check_schema(&config.value_schema(), options)?;
        Ok(config)
    }

    fn set_metadata(&mut self, metadata: &BTreeMap<String, String>) -> std::result::Result<(), String> {
        for (column, key) in metadata {
            let index =
                self.schema.index_of(column).map_err(|_| format!("metadata column '{column}' is not in the table"))?;
            let known: Vec<&str> = MetadataKey::ALL.iter().map(|k| k.0).filter(|k| *k != SPLIT_METADATA).collect();
            let Some(&(_, kind, expected)) = MetadataKey::ALL.iter().find(|k| k.0 == key) else {
                return Err(format!(
                    "metadata column '{column}': kafka has no metadata '{key}'; it has {}",
                    known.join(", ")
                ));
            };
            let actual = self.schema.field(index).data_type();
            if !kind.accepts(actual) {
                return Err(format!("metadata column '{column}' (FROM '{key}') must be {expected}, not {actual}"));
            }
            self.metadata.push((index, kind));
        }
        Ok(())
    }

    /// The columns the value holds.
    pub fn value_columns(&self) -> Vec<usize> {
        let key_columns: &[usize] = self.key.as_ref().map_or(&[], |(_, k)| k);
        (0..self.schema.fields().len())
            .filter(|c| !(self.value_except_key && key_columns.contains(c)))
            .filter(|c| !self.metadata.iter().any(|(m, _)| m == c))
            .collect()
    }

    /// The schema of the value.
    pub fn value_schema(&self) -> SchemaRef {
        std::sync::Arc::new(self.schema.project(&self.value_columns()).expect("value columns are in range"))
    }

    /// A human-readable name of the topics, for messages.
    pub fn topics_text(&self) -> String {
        match &self.topic_pattern {
            Some(p) => format!("topics matching '{}'", p.as_str().trim_start_matches("^(?:").trim_end_matches(")$")),
            None => self.topics.join(", "),
        }
    }
}

/// Parses Flink's `partition:0,offset:42;partition:1,offset:300`.
fn parse_specific_offsets(options: &Options<'_>, raw: &str) -> Result<BTreeMap<i32, i64>> {
    let mut out = BTreeMap::new();
    for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for kv in part.split(',') {
            match kv.trim().split_once(':') {
                Some(("partition", v)) => partition = v.trim().parse::<i32>().ok(),
                Some(("offset", v)) => offset = v.trim().parse::<i64>().ok(),
                _ => {}
            }
        }
        match (partition, offset) {
            (Some(p), Some(o)) => {
                out.insert(p, o);
            }
            _ => {
                return Err(options
                    .error(format!("option 'scan.startup.specific-offsets': '{part}' is not 'partition:N,offset:M'")))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn parse(pairs: &[(&str, &str)]) -> Result<KafkaConfig> {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let mut options = Options::new("table 't' (connector 'kafka')", &values);
        let config = KafkaConfig::parse(&mut options, "t", schema, &BTreeMap::new())?;
        options.finish()?;
        Ok(config)
    }

    #[test]
    fn reads_flink_options() {
        let c = parse(&[
            ("topic", "a;b"),
            ("properties.bootstrap.servers", "localhost:9092"),
            ("properties.group.id", "g"),
            ("properties.fetch.min.bytes", "1"),
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "partition:0,offset:42;partition:3,offset:7"),
            ("format", "json"),
            ("key.format", "raw"),
            ("key.fields", "name"),
            ("value.fields-include", "EXCEPT_KEY"),
            ("sink.delivery-guarantee", "exactly-once"),
        ])
        .unwrap();
        assert_eq!(c.topics, vec!["a", "b"]);
        assert_eq!(c.properties.get("fetch.min.bytes").map(String::as_str), Some("1"));
        assert_eq!(c.startup, StartupMode::SpecificOffsets([(0, 42), (3, 7)].into()));
        assert_eq!(c.value_columns(), vec![0]);
        assert_eq!(c.delivery, DeliveryGuarantee::ExactlyOnce);
    }

    #[test]
    fn bad_options_are_explained() {
        let err = |pairs: &[(&str, &str)]| parse(pairs).unwrap_err().to_string();
        assert!(err(&[("format", "json"), ("properties.bootstrap.servers", "x")]).contains("exactly one of 'topic'"));
        assert!(err(&[("topic", "t"), ("format", "json")]).contains("properties.bootstrap.servers"));
        assert!(err(&[
            ("topic", "t"),
            ("properties.bootstrap.servers", "x"),
            ("format", "json"),
            ("scan.startup.mode", "group-offsets")
        ])
        .contains("needs 'properties.group.id'"));
        assert!(err(&[("topic", "t"), ("properties.bootstrap.servers", "x"), ("format", "raw")])
            .contains("exactly one column"));
        assert!(err(&[
            ("topic", "t"),
            ("properties.bootstrap.servers", "x"),
            ("format", "json"),
            ("key.fields", "nope"),
            ("key.format", "json")
        ])
        .contains("'nope'"));
    }
}
