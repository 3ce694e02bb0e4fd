//! The `kafka` table connector, with Apache Flink's options: `topic` or `topic-pattern`,
//! `properties.*` (passed to librdkafka), `scan.startup.mode`, `scan.bounded.mode`,
//! `format`, `key.format` / `key.fields`, `value.fields-include`, `*.ignore-parse-errors`,
//! and `sink.delivery-guarantee`; and the dead-letter writer other operators use.

pub mod dead_letter;
pub mod epoch;
pub mod options;
pub mod protocol;
pub mod sink;
pub mod source;

pub use options::KafkaConfig;
pub use sink::KafkaSink;
pub use source::KafkaSource;
