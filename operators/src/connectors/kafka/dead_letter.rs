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
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde_json::{Map, Value};

use super::epoch::{EpochSettings, EpochTransactions, RestoredTransactions};
use super::options::transaction_timeout;
use crate::{OperatorError, OperatorState, Result, StateInit, TaskContext};

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

/// Records between two checkpoints buffered before they are sent to the transaction.
const MAX_QUEUED: usize = 1_000;

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
        let target = options.get("dead-letter.topic").cloned().ok_or("'on_error' = 'dead_letter' needs 'dead_letter.topic'")?;
        parse_target(&target)?;
        let properties = options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("dead-letter.properties.").map(|k| (k.to_string(), v.clone())))
            .collect();
        let guarantee = match options.get("dead-letter.delivery-guarantee").map(|g| g.trim().to_ascii_lowercase()).as_deref() {
            None => None,
            Some("exactly-once" | "exactly_once") => Some(DeadLetterGuarantee::ExactlyOnce),
            Some("at-least-once" | "at_least_once") => Some(DeadLetterGuarantee::AtLeastOnce),
            Some(other) => {
                return Err(format!("'dead-letter.delivery-guarantee' = '{other}' is not one of 'exactly-once', 'at-least-once'"))
            }
        };
        Ok(DeadLetterConfig { target, properties, guarantee })
    }
}

/// What a dead-letter writer restores: the transactions of the checkpoint, and the
/// operator's uid (which names its transactional ids).
#[derive(Debug, Clone, Default)]
pub struct DeadLetterRestore {
    entries: Vec<Vec<u8>>,
    checkpoint: u64,
    restored: bool,
    operator_uid: String,
}

impl DeadLetterRestore {
    /// The dead-letter part of an operator's `init`.
    pub fn from_init(init: &StateInit) -> Self {
        DeadLetterRestore {
            entries: init.list(TRANSACTIONS_LIST).to_vec(),
            checkpoint: init.restored_checkpoint,
            restored: init.restored,
            operator_uid: init.operator_uid.clone(),
        }
    }
}

enum Delivery {
    AtLeastOnce { producer: FutureProducer, in_flight: Vec<DeliveryFuture> },
    ExactlyOnce { transactions: Box<EpochTransactions>, queued: Vec<Bytes>, checkpointing: bool },
}

/// Writes dead letters to a Kafka topic.
pub struct DeadLetterWriter {
    topic: String,
    delivery: Delivery,
    written: u64,
}

impl DeadLetterWriter {
    /// A writer for `config` in the subtask of `ctx`. Without `bootstrap.servers` in the
    /// properties, the task manager's `SLUICE_DEAD_LETTER_BOOTSTRAP_SERVERS` names the
    /// brokers. Exactly once, it first finishes the transactions `restore` recorded and
    /// aborts those a failed attempt left open.
    pub async fn open(config: &DeadLetterConfig, ctx: &TaskContext, restore: DeadLetterRestore) -> Result<Self> {
        let context = format!("dead-letter target '{}'", config.target);
        let topic = parse_target(&config.target).map_err(|m| OperatorError::config(context.clone(), m))?;
        let mut properties = config.properties.clone();
        if !properties.contains_key("bootstrap.servers") {
            let servers = std::env::var(BOOTSTRAP_ENV).map_err(|_| {
                OperatorError::config(
                    context.clone(),
                    format!("no Kafka brokers for the dead-letter topic: set 'dead-letter.properties.bootstrap.servers' in the model, or {BOOTSTRAP_ENV} on the task managers"),
                )
            })?;
            properties.insert("bootstrap.servers".into(), servers);
        }
        let guarantee = config.guarantee.unwrap_or(if ctx.checkpointing {
            DeadLetterGuarantee::ExactlyOnce
        } else {
            DeadLetterGuarantee::AtLeastOnce
        });
        let delivery = match guarantee {
            DeadLetterGuarantee::AtLeastOnce => {
                let mut client = ClientConfig::new();
                for (k, v) in &properties {
                    client.set(k, v);
                }
                client.set("acks", "all").set("enable.idempotence", "true");
                let producer = client.create().map_err(|e| OperatorError::config(context, format!("cannot create a producer: {e}")))?;
                Delivery::AtLeastOnce { producer, in_flight: Vec::new() }
            }
            DeadLetterGuarantee::ExactlyOnce => {
                let timeout = transaction_timeout(properties.get("transaction.timeout.ms").map(String::as_str))
                    .map_err(|m| OperatorError::config(context.clone(), m.replace("'properties.", "'dead-letter.properties.")))?;
                let restored = if restore.restored {
                    Some(RestoredTransactions::decode(&restore.entries, restore.checkpoint)?)
                } else {
                    None
                };
                let settings = EpochSettings {
                    bootstrap: properties["bootstrap.servers"].split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
                    topic: topic.clone(),
                    prefix: format!("sluice-{}-{}-dead-letters", &ctx.job_id[..ctx.job_id.len().min(12)], restore.operator_uid),
                    timeout,
                    subtask: ctx.subtask,
                    parallelism: ctx.parallelism,
                };
                let transactions = EpochTransactions::open(settings, restored).await.map_err(|e| {
                    OperatorError::config(
                        context,
                        format!("cannot write transactionally: {e} (set 'dead-letter.delivery-guarantee' = 'at-least-once' for a cluster without transactions)"),
                    )
                })?;
                Delivery::ExactlyOnce { transactions: Box::new(transactions), queued: Vec::new(), checkpointing: ctx.checkpointing }
            }
        };
        Ok(DeadLetterWriter { topic, delivery, written: 0 })
    }

    /// Queues one dead letter.
    pub fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        let value = letter.to_json().to_string();
        match &mut self.delivery {
            Delivery::AtLeastOnce { producer, in_flight } => {
                let record = FutureRecord::<(), String>::to(&self.topic).payload(&value);
                let delivery = producer.send_result(record).map_err(|(e, _)| write_error(&self.topic, e))?;
                in_flight.push(delivery);
            }
            Delivery::ExactlyOnce { queued, .. } => queued.push(Bytes::from(value)),
        }
        self.written += 1;
        Ok(())
    }

    /// True when enough letters are queued that the operator should [`Self::send_queued`].
    pub fn should_send(&self) -> bool {
        matches!(&self.delivery, Delivery::ExactlyOnce { queued, .. } if queued.len() >= MAX_QUEUED)
    }

    /// Hands the queued letters to the open transaction.
    pub async fn send_queued(&mut self) -> Result<()> {
        if let Delivery::ExactlyOnce { transactions, queued, .. } = &mut self.delivery {
            for value in std::mem::take(queued) {
                transactions.send(None, value).await.map_err(|e| write_error(&self.topic, e))?;
            }
        }
        Ok(())
    }

    /// At a barrier: at least once, waits until every letter written so far is stored.
    pub async fn flush(&mut self) -> Result<()> {
        match &mut self.delivery {
            Delivery::AtLeastOnce { in_flight, .. } => {
                for delivery in std::mem::take(in_flight) {
                    match tokio::time::timeout(Duration::from_secs(60), delivery).await {
                        Ok(Ok(Ok(_))) => {}
                        Ok(Ok(Err((e, _)))) => return Err(write_error(&self.topic, e)),
                        Ok(Err(_)) => return Err(write_error(&self.topic, "the producer was closed")),
                        Err(_) => return Err(write_error(&self.topic, "no acknowledgement within 60 s")),
                    }
                }
                Ok(())
            }
            Delivery::ExactlyOnce { .. } => self.send_queued().await,
        }
    }

    /// The operator state of checkpoint `checkpoint_id`: exactly once, the epoch's
    /// transaction is precommitted and `state` gets the [`TRANSACTIONS_LIST`].
    pub async fn snapshot(&mut self, checkpoint_id: u64, state: OperatorState) -> Result<OperatorState> {
        self.flush().await?;
        let Delivery::ExactlyOnce { transactions, .. } = &mut self.delivery else { return Ok(state) };
        let entries = transactions.precommit(checkpoint_id).await.map_err(|e| write_error(&self.topic, e))?;
        Ok(state.with_list(TRANSACTIONS_LIST, crate::Distribution::Union, entries))
    }

    /// Checkpoint `checkpoint_id` completed: its letters become visible.
    pub async fn commit(&mut self, checkpoint_id: u64) -> Result<()> {
        let Delivery::ExactlyOnce { transactions, .. } = &mut self.delivery else { return Ok(()) };
        transactions.commit_through(checkpoint_id).await.map_err(|e| write_error(&self.topic, e))
    }

    /// A stop with a savepoint: nothing may stay open after the final checkpoint.
    pub async fn stop(&mut self) -> Result<()> {
        let Delivery::ExactlyOnce { transactions, .. } = &mut self.delivery else { return Ok(()) };
        transactions.abort_open().await.map_err(|e| write_error(&self.topic, e))
    }

    /// The end of input: everything is stored; without checkpoints, the open transaction
    /// commits (with them, the final checkpoint does).
    pub async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        match &mut self.delivery {
            Delivery::ExactlyOnce { transactions, checkpointing: false, .. } => {
                transactions.commit_open().await.map_err(|e| write_error(&self.topic, e))
            }
            _ => Ok(()),
        }
    }

    /// Dead letters written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

fn write_error(topic: &str, e: impl std::fmt::Display) -> OperatorError {
    OperatorError::config(format!("dead-letter topic '{topic}'"), format!("cannot write: {e}"))
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
