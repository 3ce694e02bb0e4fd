//! The running dead-letter writer: at least once through librdkafka, or exactly once in
//! the checkpoint epoch's Kafka transaction ([`crate::kafka::epoch`]).

use std::time::Duration;

use bytes::Bytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::{parse_target, DeadLetter, DeadLetterConfig, DeadLetterGuarantee, BOOTSTRAP_ENV, TRANSACTIONS_LIST};
use crate::kafka::epoch::{EpochSettings, EpochTransactions, RestoredTransactions};
use crate::kafka::options::transaction_timeout;
use sluice_core::{OperatorError, OperatorState, Result, TaskContext};

/// Records between two checkpoints buffered before they are sent to the transaction.
const MAX_QUEUED: usize = 1_000;

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
    pub fn from_init(init: &sluice_core::StateInit) -> Self {
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
                let producer = client
                    .create()
                    .map_err(|e| OperatorError::config(context, format!("cannot create a producer: {e}")))?;
                Delivery::AtLeastOnce { producer, in_flight: Vec::new() }
            }
            DeadLetterGuarantee::ExactlyOnce => {
                let timeout = transaction_timeout(properties.get("transaction.timeout.ms").map(String::as_str))
                    .map_err(|m| {
                        OperatorError::config(context.clone(), m.replace("'properties.", "'dead-letter.properties."))
                    })?;
                let restored = if restore.restored {
                    Some(RestoredTransactions::decode(&restore.entries, restore.checkpoint)?)
                } else {
                    None
                };
                let settings = EpochSettings {
                    bootstrap: properties["bootstrap.servers"]
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                    topic: topic.clone(),
                    prefix: format!(
                        "sluice-{}-{}-dead-letters",
                        &ctx.job_id[..ctx.job_id.len().min(12)],
                        restore.operator_uid
                    ),
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
                Delivery::ExactlyOnce {
                    transactions: Box::new(transactions),
                    queued: Vec::new(),
                    checkpointing: ctx.checkpointing,
                }
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
                transactions.send(None, Some(value)).await.map_err(|e| write_error(&self.topic, e))?;
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
        Ok(state.with_list(TRANSACTIONS_LIST, sluice_core::Distribution::Union, entries))
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

    /// [`Self::snapshot`] of an operator's writer, if it has one (else `state` as it is).
    pub async fn snapshot_of(
        writer: &mut Option<Self>,
        checkpoint_id: u64,
        state: OperatorState,
    ) -> Result<OperatorState> {
        match writer {
            Some(writer) => writer.snapshot(checkpoint_id, state).await,
            None => Ok(state),
        }
    }

    /// [`Self::commit`] of an operator's writer, if it has one.
    pub async fn commit_of(writer: &mut Option<Self>, checkpoint_id: u64) -> Result<()> {
        match writer {
            Some(writer) => writer.commit(checkpoint_id).await,
            None => Ok(()),
        }
    }

    /// [`Self::stop`] of an operator's writer, if it has one.
    pub async fn stop_of(writer: &mut Option<Self>) -> Result<()> {
        match writer {
            Some(writer) => writer.stop().await,
            None => Ok(()),
        }
    }
}

fn write_error(topic: &str, e: impl std::fmt::Display) -> OperatorError {
    OperatorError::config(format!("dead-letter topic '{topic}'"), format!("cannot write: {e}"))
}
