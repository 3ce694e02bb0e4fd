//! The `kafka` table connector, with Apache Flink's options: `topic` or `topic-pattern`,
//! `properties.*` (passed to librdkafka), `scan.startup.mode`, `scan.bounded.mode`,
//! `format`, `key.format` / `key.fields`, `value.fields-include`, `*.ignore-parse-errors`,
//! and `sink.delivery-guarantee`; and the dead-letter writer other operators use.
//!
//! The `upsert-kafka` connector writes an updating query's latest row per primary key
//! (Flink's upsert-kafka sink), through the same sink.
//!
//! The options ([`options`]) are always compiled; the running source, sink and their
//! transaction machinery need the crate's `runtime` feature (librdkafka).

pub mod dead_letter;
#[cfg(feature = "runtime")]
pub mod epoch;
pub mod options;
#[cfg(feature = "runtime")]
pub mod protocol;
#[cfg(feature = "runtime")]
pub mod sink;
#[cfg(feature = "runtime")]
pub mod source;

pub use options::KafkaConfig;
#[cfg(feature = "runtime")]
pub use sink::KafkaSink;
#[cfg(feature = "runtime")]
pub use source::KafkaSource;

/// The `kafka` connector.
pub struct Kafka;

impl crate::registry::Connector for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn bounded(&self, spec: &sluice_proto::ConnectorSpec) -> bool {
        spec.options.get("scan.bounded.mode").is_some_and(|m| m != "unbounded")
    }

    fn how_to_bound(&self) -> Option<&'static str> {
        Some("read it up to the offsets at the job's start with 'scan.bounded.mode' = 'latest-offset'")
    }

    fn roles(&self) -> &'static [crate::Role] {
        &[crate::Role::Source, crate::Role::Sink]
    }

    fn provides_metadata(&self) -> bool {
        true
    }

    fn source(
        &self,
        spec: &sluice_proto::ConnectorSpec,
        options: &mut sluice_core::options::Options<'_>,
        schema: arrow::datatypes::SchemaRef,
    ) -> sluice_core::Result<Box<dyn crate::registry::SourceFactory>> {
        Ok(Box::new(KafkaSourceConfig(KafkaConfig::parse(options, &spec.table, schema, &spec.metadata)?)))
    }

    fn sink(
        &self,
        spec: &sluice_proto::ConnectorSpec,
        options: &mut sluice_core::options::Options<'_>,
        schema: arrow::datatypes::SchemaRef,
    ) -> sluice_core::Result<Box<dyn crate::registry::SinkFactory>> {
        let config = KafkaConfig::parse(options, &spec.table, schema, &Default::default())?;
        config.check_sink()?;
        Ok(Box::new(KafkaSinkConfig(config)))
    }
}

/// The `upsert-kafka` connector (a sink): each row's key is the table's primary key;
/// inserts and updates write the key's latest row, deletes write a tombstone.
pub struct UpsertKafka;

impl crate::registry::Connector for UpsertKafka {
    fn name(&self) -> &'static str {
        "upsert-kafka"
    }

    fn roles(&self) -> &'static [crate::Role] {
        &[crate::Role::Sink]
    }

    fn sink(
        &self,
        spec: &sluice_proto::ConnectorSpec,
        options: &mut sluice_core::options::Options<'_>,
        schema: arrow::datatypes::SchemaRef,
    ) -> sluice_core::Result<Box<dyn crate::registry::SinkFactory>> {
        let config = KafkaConfig::parse_upsert(options, &spec.table, schema, &spec.primary_key)?;
        Ok(Box::new(KafkaSinkConfig(config)))
    }
}

/// A `kafka` table read from.
struct KafkaSourceConfig(KafkaConfig);

impl crate::registry::SourceFactory for KafkaSourceConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn sluice_core::Source> {
        Box::new(KafkaSource::new(self.0, batch_rows))
    }
}

/// A `kafka` table written to.
struct KafkaSinkConfig(KafkaConfig);

impl crate::registry::SinkFactory for KafkaSinkConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn sluice_core::Operator> {
        Box::new(KafkaSink::new(self.0))
    }
}
