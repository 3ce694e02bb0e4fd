//! A dead-letter writer other operators use for records they give up on (the ML
//! operator's `dead-letter.topic` = `kafka:TOPIC`): each record is a JSON object with the
//! input row, the error, and optional details (HTTP status, attempts).
//!
//! `dead-letter.delivery-guarantee` = `exactly-once` (the default when the job takes
//! checkpoints) writes each checkpoint epoch's dead letters in one Kafka transaction
//! ([`super::epoch`]), committed when the checkpoint completes: a restore never writes a
//! dead letter twice, and read_committed consumers see only those of completed
//! checkpoints. `at-least-once` (the default without checkpoints, and the choice for a
//! cluster without transactions) waits at each barrier until every letter is stored; a
//! restore writes again the letters of rows replayed since the last checkpoint.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use sluice_core::{OperatorError, Result};

#[cfg(feature = "runtime")]
mod writer;
#[cfg(feature = "runtime")]
pub use writer::{DeadLetterRestore, DeadLetterWriter};

/// One record given up on.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The input row, as JSON.
    pub input: Map<String, Value>,
    /// What went wrong (never a secret).
    pub error: String,
    /// The HTTP status of the last attempt, if any.
    pub http_status: Option<u16>,
    /// How many attempts were made.
    pub attempts: u32,
    /// Who gave up (e.g. "model fraud_scorer").
    pub source: String,
}

impl DeadLetter {
    /// The record's JSON value.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("source".into(), Value::String(self.source.clone()));
        out.insert("error".into(), Value::String(self.error.clone()));
        out.insert("http_status".into(), self.http_status.map_or(Value::Null, Value::from));
        out.insert("attempts".into(), Value::from(self.attempts));
        out.insert("input".into(), Value::Object(self.input.clone()));
        Value::Object(out)
    }
}

/// The first row of `batch` as a JSON object (a dead letter's `input`).
pub fn row_json(batch: &RecordBatch) -> Result<Map<String, Value>> {
    let arrow = |e| OperatorError::arrow("dead letter", e);
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut buffer);
        writer.write(&batch.slice(0, batch.num_rows().min(1))).map_err(arrow)?;
        writer.finish().map_err(arrow)?;
    }
    let line = buffer.split(|b| *b == b'\n').next().unwrap_or_default();
    Ok(match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    })
}

/// The task manager's environment variable with the default dead-letter brokers.
pub const BOOTSTRAP_ENV: &str = "SLUICE_DEAD_LETTER_BOOTSTRAP_SERVERS";

/// Where dead letters go: `kafka:TOPIC`.
pub fn parse_target(target: &str) -> std::result::Result<String, String> {
    match target.trim().split_once(':') {
        Some(("kafka", topic)) if !topic.trim().is_empty() && !topic.contains('/') => Ok(topic.trim().to_string()),
        _ => Err(format!("dead-letter target '{target}' is not supported: use 'kafka:TOPIC'")),
    }
}

/// The operator-state list holding the dead-letter transactions of a checkpoint.
pub const TRANSACTIONS_LIST: &str = "dead-letter-transactions";

/// How dead letters are delivered (`dead-letter.delivery-guarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterGuarantee {
    /// In the checkpoint's Kafka transaction.
    ExactlyOnce,
    /// Acknowledged at every barrier; replayed rows write their letters again.
    AtLeastOnce,
}

/// Where and how an operator writes its dead letters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// `kafka:TOPIC`.
    pub target: String,
    /// librdkafka properties (`dead-letter.properties.*`).
    pub properties: BTreeMap<String, String>,
    /// `dead-letter.delivery-guarantee`; `None`: exactly once when the job checkpoints.
    pub guarantee: Option<DeadLetterGuarantee>,
}

impl DeadLetterConfig {
    /// Reads the dead-letter options of a model (canonical keys): `dead-letter.topic`,
    /// `dead-letter.properties.*` and `dead-letter.delivery-guarantee`.
    pub fn from_model_options(options: &BTreeMap<String, String>) -> std::result::Result<Self, String> {
        let target =
            options.get("dead-letter.topic").cloned().ok_or("'on_error' = 'dead_letter' needs 'dead_letter.topic'")?;
        parse_target(&target)?;
        let properties = options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("dead-letter.properties.").map(|k| (k.to_string(), v.clone())))
            .collect();
        let guarantee =
            match options.get("dead-letter.delivery-guarantee").map(|g| g.trim().to_ascii_lowercase()).as_deref() {
                None => None,
                Some("exactly-once" | "exactly_once") => Some(DeadLetterGuarantee::ExactlyOnce),
                Some("at-least-once" | "at_least_once") => Some(DeadLetterGuarantee::AtLeastOnce),
                Some(other) => {
                    return Err(format!(
                        "'dead-letter.delivery-guarantee' = '{other}' is not one of 'exactly-once', 'at-least-once'"
                    ))
                }
            };
        Ok(DeadLetterConfig { target, properties, guarantee })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_kafka_topics() {
        assert_eq!(parse_target("kafka:failed-predictions").unwrap(), "failed-predictions");
        assert!(parse_target("s3://bucket").unwrap_err().contains("use 'kafka:TOPIC'"));
        assert!(parse_target("kafka:").is_err());
    }

    #[test]
    fn dead_letter_options_name_the_topic_and_the_guarantee() {
        let options = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let config = DeadLetterConfig::from_model_options(&options(&[
            ("dead-letter.topic", "kafka:bad"),
            ("dead-letter.properties.bootstrap.servers", "b:9092"),
            ("dead-letter.delivery-guarantee", "AT-LEAST-ONCE"),
        ]))
        .unwrap();
        assert_eq!(config.properties["bootstrap.servers"], "b:9092");
        assert_eq!(config.guarantee, Some(DeadLetterGuarantee::AtLeastOnce));
        let default = DeadLetterConfig::from_model_options(&options(&[("dead-letter.topic", "kafka:bad")])).unwrap();
        assert_eq!(default.guarantee, None, "decided by whether the job checkpoints");
        let bad = options(&[("dead-letter.topic", "kafka:bad"), ("dead-letter.delivery-guarantee", "twice")]);
        assert!(DeadLetterConfig::from_model_options(&bad).unwrap_err().contains("'exactly-once', 'at-least-once'"));
        assert!(DeadLetterConfig::from_model_options(&options(&[])).unwrap_err().contains("needs 'dead_letter.topic'"));
    }

    #[test]
    fn a_dead_letter_is_json_with_the_input_and_the_error() {
        let letter = DeadLetter {
            input: serde_json::json!({"id": 7}).as_object().unwrap().clone(),
            error: "HTTP 400: bad request".into(),
            http_status: Some(400),
            attempts: 1,
            source: "model m".into(),
        };
        let json = letter.to_json();
        assert_eq!(json["input"]["id"], 7);
        assert_eq!(json["http_status"], 400);
        assert_eq!(json["attempts"], 1);
    }
}
