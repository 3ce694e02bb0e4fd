//! Kafka transactions per checkpoint epoch, for every writer that must be exactly once
//! (the Kafka sink, dead letters). Each epoch is written in one transaction (through
//! [`super::protocol`], which knows the transaction's producer id and epoch): it is flushed
//! at the barrier, recorded in the checkpoint, and committed when the checkpoint completes,
//! or on restore if the job failed before it could commit. Transactions a failed attempt
//! left open are aborted on restore.
//!
//! Transactional ids are `<prefix>-<subtask>-<slot>`, from a small pool per subtask (as
//! Flink's FLIP-511): a new transaction takes the lowest slot that no open, precommitted or
//! retiring transaction of the subtask holds. A committed transaction's slot retires until
//! a checkpoint that no longer lists it completes: a restore from an older checkpoint
//! commits it again, which must find its producer epoch unchanged (re-initializing the id
//! would fence that commit). So a subtask uses three ids in the steady state.
//!
//! On start, each subtask recovers the id families given to it (its own, and those of old
//! subtasks beyond the new parallelism): it commits the restored checkpoint's transactions
//! of the family, then aborts whatever a failed attempt left open, slot by slot, up to the
//! first slot never used. That also holds when there is nothing to restore. The
//! checkpoint entries are a union list: a restore at any parallelism sees every
//! transaction and every old subtask.

use std::time::Duration;

use bytes::Bytes;

use super::protocol::{abort_open_transaction, end_transaction, ProtocolResult, Transaction, TransactionHandle};
use sluice_core::state::{put_bytes, Reader};
use sluice_core::Result;

/// Test fault switch `SLUICE_TEST_EXIT_BEFORE_COMMIT=N` (feature `test-faults`): the
/// process exits when told that checkpoint N or later completed, before committing its
/// transactions, as if killed there.
#[cfg(feature = "test-faults")]
fn exit_before_commit_if_requested(checkpoint_id: u64) {
    static FROM: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let from = FROM.get_or_init(|| std::env::var("SLUICE_TEST_EXIT_BEFORE_COMMIT").ok().and_then(|v| v.parse().ok()));
    if from.is_some_and(|n| checkpoint_id >= n) {
        eprintln!("test fault: exiting after checkpoint {checkpoint_id} completed, before committing its transactions");
        std::process::exit(137);
    }
}

#[cfg(not(feature = "test-faults"))]
fn exit_before_commit_if_requested(_checkpoint_id: u64) {}

/// Transactional-id pools probed beyond this many slots mean something else uses the ids.
const MAX_SLOTS: u32 = 10_000;

/// A transaction of a checkpoint epoch, flushed and waiting for its checkpoint.
#[derive(Debug, Clone, PartialEq)]
struct Precommitted {
    checkpoint: u64,
    handle: TransactionHandle,
}

/// What one subtask puts into a checkpoint: its identity and transactional-id prefix (so a
/// restore at another parallelism, or in a job with another prefix, knows which ids
/// existed) and its precommitted transactions.
#[derive(Debug, Clone, PartialEq)]
struct EpochEntry {
    subtask: u32,
    parallelism: u32,
    prefix: String,
    precommitted: Option<Precommitted>,
}

/// The transactional id of `slot` of `subtask`.
fn transactional_id(prefix: &str, subtask: u32, slot: u32) -> String {
    format!("{prefix}-{subtask}-{slot}")
}

impl EpochEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u64::from(self.subtask).to_le_bytes());
        out.extend_from_slice(&u64::from(self.parallelism).to_le_bytes());
        put_bytes(&mut out, self.prefix.as_bytes());
        if let Some(p) = &self.precommitted {
            out.extend_from_slice(&p.checkpoint.to_le_bytes());
            out.extend_from_slice(&(p.handle.producer_id as u64).to_le_bytes());
            out.extend_from_slice(&(p.handle.epoch as u64).to_le_bytes());
            put_bytes(&mut out, p.handle.transactional_id.as_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "kafka transactions");
        let subtask = r.u64()? as u32;
        let parallelism = r.u64()? as u32;
        let prefix = r.string()?;
        let precommitted = if r.is_empty() {
            None
        } else {
            let checkpoint = r.u64()?;
            let producer_id = r.u64()? as i64;
            let epoch = r.u64()? as i16;
            Some(Precommitted {
                checkpoint,
                handle: TransactionHandle { transactional_id: r.string()?, producer_id, epoch },
            })
        };
        Ok(EpochEntry { subtask, parallelism, prefix, precommitted })
    }
}

/// The transactions a restored checkpoint recorded, to finish before writing again.
#[derive(Debug, Clone, Default)]
pub struct RestoredTransactions {
    entries: Vec<EpochEntry>,
    checkpoint: u64,
}

impl RestoredTransactions {
    /// Decodes the checkpoint entries of checkpoint `checkpoint`.
    pub fn decode(entries: &[Vec<u8>], checkpoint: u64) -> Result<Self> {
        Ok(RestoredTransactions {
            entries: entries.iter().map(|e| EpochEntry::decode(e)).collect::<Result<_>>()?,
            checkpoint,
        })
    }
}

/// Where and how one subtask writes its epochs.
#[derive(Debug, Clone)]
pub struct EpochSettings {
    /// The brokers.
    pub bootstrap: Vec<String>,
    /// The topic written.
    pub topic: String,
    /// The transactional-id prefix, unique to the job and the writer.
    pub prefix: String,
    /// The transaction timeout the broker enforces.
    pub timeout: Duration,
    /// This subtask.
    pub subtask: u32,
    /// The writer's parallelism.
    pub parallelism: u32,
}

/// The exactly-once machinery of one writer subtask.
pub struct EpochTransactions {
    settings: EpochSettings,
    /// The open transaction and whether anything was written to it.
    current: Option<(Transaction, bool)>,
    precommitted: Vec<Precommitted>,
    /// Committed transactions whose ids a restore may still commit again, and the
    /// checkpoint whose completion frees them (set by the first snapshot that leaves them
    /// out).
    retiring: Vec<(String, Option<u64>)>,
}

impl EpochTransactions {
    /// Finishes what `restored` recorded and a failed attempt left open, then begins the
    /// first transaction.
    pub async fn open(settings: EpochSettings, restored: Option<RestoredTransactions>) -> ProtocolResult<Self> {
        let mut t = EpochTransactions { settings, current: None, precommitted: Vec::new(), retiring: Vec::new() };
        t.recover(restored.unwrap_or_default()).await?;
        t.begin().await?;
        Ok(t)
    }

    /// The lowest slot of this subtask that no open, precommitted or retiring transaction
    /// holds.
    fn free_slot(&self) -> u32 {
        let held: Vec<&str> = self
            .current
            .iter()
            .map(|(t, _)| t.handle().transactional_id.as_str())
            .chain(self.precommitted.iter().map(|p| p.handle.transactional_id.as_str()))
            .chain(self.retiring.iter().map(|(id, _)| id.as_str()))
            .collect();
        let s = &self.settings;
        (0..).find(|&slot| !held.contains(&transactional_id(&s.prefix, s.subtask, slot).as_str())).unwrap_or(0)
    }

    async fn begin(&mut self) -> ProtocolResult<()> {
        let s = &self.settings;
        let id = transactional_id(&s.prefix, s.subtask, self.free_slot());
        self.current = Some((Transaction::begin(&s.bootstrap, &s.topic, &id, s.timeout).await?, false));
        Ok(())
    }

    /// Before the first transaction: commits the restored checkpoint's transactions of the
    /// id families this subtask is responsible for, then aborts what a failed attempt left
    /// open under them (also when nothing was restored).
    async fn recover(&mut self, restored: RestoredTransactions) -> ProtocolResult<()> {
        let s = self.settings.clone();
        let entries = restored.entries;
        let old_parallelism = entries.iter().map(|e| e.parallelism).max().unwrap_or(0);
        let mut families: Vec<(String, u32)> = vec![(s.prefix.clone(), s.subtask)];
        for e in entries.iter().filter(|e| e.subtask % s.parallelism == s.subtask) {
            if !families.contains(&(e.prefix.clone(), e.subtask)) {
                families.push((e.prefix.clone(), e.subtask));
            }
        }
        for (prefix, subtask) in families {
            // The restored transactions are committed, and their ids are left alone until
            // this attempt completes a checkpoint: a failure before that restores them again.
            let mut committed = Vec::new();
            for entry in entries.iter().filter(|e| e.prefix == prefix && e.subtask == subtask) {
                let Some(p) = &entry.precommitted else { continue };
                end_transaction(&s.bootstrap, &p.handle, true).await?;
                tracing::info!(
                    transaction = %p.handle.transactional_id,
                    checkpoint = p.checkpoint,
                    restored = restored.checkpoint,
                    "committed a restored transaction"
                );
                committed.push(p.handle.transactional_id.clone());
            }
            // The failed attempt never reused those ids (they retire until a newer
            // checkpoint completes), so every other used slot may hold an open transaction.
            let mut slot = 0;
            loop {
                let id = transactional_id(&prefix, subtask, slot);
                if !committed.contains(&id) && abort_open_transaction(&s.bootstrap, &id, s.timeout).await? {
                    break;
                }
                slot += 1;
                if slot >= MAX_SLOTS {
                    return Err(format!(
                        "transactional ids '{prefix}-{subtask}-0' to '{id}' are all in use; is another job writing with \
                         the transactional-id prefix '{prefix}'?"
                    ));
                }
            }
            if slot > 0 {
                tracing::info!(prefix = %prefix, subtask, slots = slot, old_parallelism, "aborted what a failed attempt left open");
            }
            self.retiring.extend(committed.into_iter().map(|id| (id, None)));
        }
        Ok(())
    }

    /// Adds a record to the open transaction (a `None` value is a tombstone); keyed records
    /// go to the partition Kafka's default partitioner picks.
    pub async fn send(&mut self, key: Option<Bytes>, value: Option<Bytes>) -> ProtocolResult<()> {
        let Some((txn, written)) = self.current.as_mut() else {
            return Err("no Kafka transaction is open".into());
        };
        txn.send(key, value).await?;
        *written = true;
        Ok(())
    }

    /// Precommits the epoch of checkpoint `checkpoint_id` (everything written is flushed;
    /// the next epoch gets a new transaction) and returns the checkpoint entries, a union
    /// list.
    pub async fn precommit(&mut self, checkpoint_id: u64) -> ProtocolResult<Vec<Vec<u8>>> {
        if let Some((mut txn, written)) = self.current.take() {
            txn.flush().await?;
            if written {
                self.precommitted.push(Precommitted { checkpoint: checkpoint_id, handle: txn.handle().clone() });
            }
        }
        // This checkpoint leaves the committed transactions out: its completion frees them.
        for (_, freed_by) in &mut self.retiring {
            freed_by.get_or_insert(checkpoint_id);
        }
        let begun = self.begin().await;
        let s = &self.settings;
        let entry = |precommitted: Option<Precommitted>| {
            EpochEntry { subtask: s.subtask, parallelism: s.parallelism, prefix: s.prefix.clone(), precommitted }
                .encode()
        };
        let mut entries: Vec<Vec<u8>> = self.precommitted.iter().map(|p| entry(Some(p.clone()))).collect();
        entries.push(entry(None));
        begun?;
        Ok(entries)
    }

    /// Commits the transactions of checkpoints up to `checkpoint_id`, which completed.
    pub async fn commit_through(&mut self, checkpoint_id: u64) -> ProtocolResult<()> {
        // A checkpoint that no longer lists a committed transaction completed: no restore
        // commits it again, and its id is free.
        self.retiring.retain(|(_, freed_by)| freed_by.is_none_or(|c| c > checkpoint_id));
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.precommitted).into_iter().partition(|p| p.checkpoint <= checkpoint_id);
        self.precommitted = waiting;
        if !ready.is_empty() {
            exit_before_commit_if_requested(checkpoint_id);
        }
        for p in ready {
            let committed = end_transaction(&self.settings.bootstrap, &p.handle, true).await;
            self.retiring.push((p.handle.transactional_id, None));
            committed?;
        }
        Ok(())
    }

    /// Aborts the open transaction if it holds anything (at a stop with a savepoint, an
    /// open transaction would hold back read_committed consumers until it timed out).
    pub async fn abort_open(&mut self) -> ProtocolResult<()> {
        if let Some((txn, true)) = self.current.take() {
            end_transaction(&self.settings.bootstrap, txn.handle(), false).await?;
        }
        Ok(())
    }

    /// Commits the open transaction (the end of input of a job without checkpoints).
    pub async fn commit_open(&mut self) -> ProtocolResult<()> {
        if let Some((mut txn, written)) = self.current.take() {
            txn.flush().await?;
            // A transaction that wrote nothing has nothing to commit.
            if written {
                end_transaction(&self.settings.bootstrap, txn.handle(), true).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transactions() -> EpochTransactions {
        let settings = EpochSettings {
            bootstrap: Vec::new(),
            topic: "t".into(),
            prefix: "p".into(),
            timeout: Duration::from_secs(60),
            subtask: 3,
            parallelism: 4,
        };
        EpochTransactions { settings, current: None, precommitted: Vec::new(), retiring: Vec::new() }
    }

    /// A restore from the checkpoint that precommitted a transaction commits it again with
    /// its producer epoch: its id must not be re-initialized (a new transaction on it)
    /// until a checkpoint that no longer lists it has completed.
    #[test]
    fn a_committed_transactions_slot_is_reused_only_after_a_checkpoint_without_it() {
        let mut t = transactions();
        let handle =
            |slot| TransactionHandle { transactional_id: transactional_id("p", 3, slot), producer_id: 1, epoch: 0 };
        assert_eq!(t.free_slot(), 0);
        t.precommitted.push(Precommitted { checkpoint: 5, handle: handle(0) });
        assert_eq!(t.free_slot(), 1, "precommitted at checkpoint 5");
        t.precommitted.clear();
        t.retiring.push((handle(0).transactional_id, Some(6)));
        assert_eq!(t.free_slot(), 1, "committed, but checkpoint 5 (which a restore may use) lists it");
        t.retiring.clear();
        assert_eq!(t.free_slot(), 0, "free once checkpoint 6 completed");
    }

    #[test]
    fn entries_round_trip_with_their_prefix() {
        let entry = EpochEntry {
            subtask: 2,
            parallelism: 4,
            prefix: "sluice-abc-out".into(),
            precommitted: Some(Precommitted {
                checkpoint: 9,
                handle: TransactionHandle { transactional_id: "sluice-abc-out-2-1".into(), producer_id: 77, epoch: 4 },
            }),
        };
        assert_eq!(EpochEntry::decode(&entry.encode()).unwrap(), entry);
        let bare = EpochEntry { precommitted: None, ..entry };
        assert_eq!(EpochEntry::decode(&bare.encode()).unwrap(), bare);
    }
}
