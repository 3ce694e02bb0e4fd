//! A dead-letter writer other operators use for records they give up on (the ML
//! operator's `dead-letter.topic` = `kafka:TOPIC`): each record is a JSON object with the
//! input row, the error, and optional details (HTTP status, attempts). Delivery is
//! at-least-once: [`DeadLetterWriter::flush`] is called at every checkpoint barrier.

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::{Map, Value};

use crate::{OperatorError, Result};

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

/// Writes dead letters to a Kafka topic.
pub struct DeadLetterWriter {
    topic: String,
    producer: FutureProducer,
    in_flight: Vec<DeliveryFuture>,
    written: u64,
}

impl DeadLetterWriter {
    /// A writer for `target` (`kafka:TOPIC`) with librdkafka `properties`; without
    /// `bootstrap.servers` there, the task manager's `SLUICE_DEAD_LETTER_BOOTSTRAP_SERVERS`
    /// names the brokers.
    pub fn open(target: &str, properties: &BTreeMap<String, String>) -> Result<Self> {
        let context = format!("dead-letter target '{target}'");
        let topic = parse_target(target).map_err(|m| OperatorError::config(context.clone(), m))?;
        let mut config = ClientConfig::new();
        match std::env::var(BOOTSTRAP_ENV) {
            Ok(servers) if !properties.contains_key("bootstrap.servers") => {
                config.set("bootstrap.servers", servers);
            }
            _ if !properties.contains_key("bootstrap.servers") => {
                return Err(OperatorError::config(
                    context,
                    format!("no Kafka brokers for the dead-letter topic: set 'dead-letter.properties.bootstrap.servers' in the model, or {BOOTSTRAP_ENV} on the task managers"),
                ))
            }
            _ => {}
        }
        for (k, v) in properties {
            config.set(k, v);
        }
        config.set("acks", "all").set("enable.idempotence", "true");
        let producer = config.create().map_err(|e| OperatorError::config(context, format!("cannot create a producer: {e}")))?;
        Ok(DeadLetterWriter { topic, producer, in_flight: Vec::new(), written: 0 })
    }

    /// Queues one dead letter.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        let value = letter.to_json().to_string();
        let record = FutureRecord::<(), String>::to(&self.topic).payload(&value);
        let delivery = self.producer.send_result(record).map_err(|(e, _)| self.error(e))?;
        self.in_flight.push(delivery);
        self.written += 1;
        Ok(())
    }

    /// Waits until every dead letter written so far is stored in Kafka.
    pub async fn flush(&mut self) -> Result<()> {
        for delivery in std::mem::take(&mut self.in_flight) {
            match tokio::time::timeout(Duration::from_secs(60), delivery).await {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err((e, _)))) => return Err(self.error(e)),
                Ok(Err(_)) => return Err(self.error("the producer was closed")),
                Err(_) => return Err(self.error("no acknowledgement within 60 s")),
            }
        }
        Ok(())
    }

    /// Dead letters written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    fn error(&self, e: impl std::fmt::Display) -> OperatorError {
        OperatorError::config(format!("dead-letter topic '{}'", self.topic), format!("cannot write: {e}"))
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
