//! The `kafka` table connector, with Apache Flink's options: `topic` or `topic-pattern`,
//! `properties.*` (passed to librdkafka), `scan.startup.mode`, `scan.bounded.mode`,
//! `format`, `key.format` / `key.fields`, `value.fields-include`, `*.ignore-parse-errors`,
//! and `sink.delivery-guarantee`; and the dead-letter writer other operators use.
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
