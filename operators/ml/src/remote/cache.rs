//! `cache.enabled`: answers kept in the operator's keyed state (RocksDB in a task
//! manager), keyed by the model version and the prompt, so that they are part of every
//! checkpoint and a replay after a restore gets the answers the first run got.
//!
//! An entry lives in the key group of its row's features, which the planner also routes
//! rows by (a hash edge on the DESCRIPTOR columns), so a restore at another parallelism
//! hands every entry to the subtask that will see its rows. `cache.ttl` is the table's state
//! TTL: an expired answer is never used and is removed in the background; `cache.max-rows`
//! evicts the oldest tenth when the cache grows past it.

#[cfg(test)]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::api::Answer;
use super::config::CacheConfig;
use sluice_core::state::tables::ValueTable;
use sluice_core::state::{StateTables, StateValue};
use sluice_core::{OperatorError, Result};

/// The name of the table of cached answers.
pub const ANSWERS: &str = "answers";

#[derive(Serialize, Deserialize)]
struct Entry {
    /// When it was stored, in ms since the epoch.
    stored_ms: u64,
    /// Orders entries stored in the same millisecond.
    seq: u64,
    answer: Answer,
}

impl StateValue for Entry {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, self).expect("a cached answer always encodes as JSON");
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| OperatorError::State(format!("a cached answer is unreadable: {e}")))
    }
}

/// The answer cache of one subtask.
pub struct AnswerCache {
    answers: ValueTable<Entry>,
    config: CacheConfig,
    version: u64,
    rows: u64,
    seq: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl AnswerCache {
    /// The cache in the operator's `tables` for a model of `version`; counts the entries of
    /// the subtask's key groups (those a restore brought).
    pub fn open(tables: &mut StateTables, config: CacheConfig, version: u64) -> Result<Self> {
        let answers = tables.value::<Entry>(ANSWERS, config.ttl)?;
        let entries = answers.entries()?;
        let rows = entries.len() as u64;
        let seq = entries.iter().map(|(_, _, e)| e.seq).max().unwrap_or(0);
        Ok(AnswerCache { answers, config, version, rows, seq })
    }

    fn key(&self, prompt: &str) -> [u8; 16] {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.version.to_be_bytes());
        hasher.update(prompt.as_bytes());
        hasher.digest128().to_be_bytes()
    }

    /// The cached answer for `prompt` (of a row in `key_group`), if any and not expired.
    pub fn get(&self, key_group: u32, prompt: &str) -> Result<Option<Answer>> {
        Ok(self.answers.get(key_group, &self.key(prompt))?.map(|e| e.answer))
    }

    /// Stores `answer` for `prompt` (of a row in `key_group`), evicting the oldest entries
    /// when over `max-rows`.
    pub fn put(&mut self, key_group: u32, prompt: &str, answer: &Answer) -> Result<()> {
        let key = self.key(prompt);
        let fresh = self.answers.get(key_group, &key)?.is_none();
        self.seq += 1;
        self.answers.put(key_group, &key, &Entry { stored_ms: now_ms(), seq: self.seq, answer: answer.clone() })?;
        if fresh {
            self.rows += 1;
        }
        if self.rows > self.config.max_rows {
            self.evict()?;
        }
        Ok(())
    }

    /// Removes the oldest entries down to 90% of `max-rows`.
    fn evict(&mut self) -> Result<()> {
        let mut entries: Vec<((u64, u64), u32, Vec<u8>)> =
            self.answers.entries()?.into_iter().map(|(g, k, e)| ((e.stored_ms, e.seq), g, k)).collect();
        entries.sort();
        let keep = (self.config.max_rows * 9 / 10) as usize;
        let remove = entries.len().saturating_sub(keep);
        self.answers.remove_all(entries[..remove].iter().map(|(_, g, k)| (*g, k.as_slice())))?;
        self.rows = (entries.len() - remove) as u64;
        Ok(())
    }

    /// Entries held.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::state::{KeyedStateStore, MemoryStateStore, StateClock};
    use std::sync::Arc;

    fn open(store: &Arc<dyn KeyedStateStore>, config: CacheConfig, version: u64, groups: (u32, u32)) -> AnswerCache {
        AnswerCache::open(&mut StateTables::new(store.clone(), groups, StateClock::System), config, version).unwrap()
    }

    fn config(max_rows: u64, ttl: Option<Duration>) -> CacheConfig {
        CacheConfig { max_rows, ttl }
    }

    #[test]
    fn answers_are_kept_per_version_and_evicted_oldest_first() {
        let store: Arc<dyn KeyedStateStore> = Arc::new(MemoryStateStore::default());
        let mut cache = open(&store, config(10, None), 1, (0, 64));
        cache.put(3, "a", &Answer::Text("A".into())).unwrap();
        assert_eq!(cache.get(3, "a").unwrap(), Some(Answer::Text("A".into())));
        assert_eq!(cache.get(3, "b").unwrap(), None);
        let other_version = open(&store, config(10, None), 2, (0, 64));
        assert_eq!(other_version.get(3, "a").unwrap(), None);
        for i in 0..20 {
            cache.put(i % 64, &format!("p{i}"), &Answer::Text(i.to_string())).unwrap();
        }
        assert!(cache.rows() <= 10, "{}", cache.rows());
        assert_eq!(cache.get(19, "p19").unwrap(), Some(Answer::Text("19".into())));
        // A reopened cache counts what is stored.
        assert_eq!(open(&store, config(10, None), 1, (0, 64)).rows(), cache.rows());
    }

    #[test]
    fn expired_answers_are_not_used() {
        let store: Arc<dyn KeyedStateStore> = Arc::new(MemoryStateStore::default());
        let mut cache = open(&store, config(10, Some(Duration::ZERO)), 1, (0, 1));
        cache.put(0, "a", &Answer::Text("A".into())).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.get(0, "a").unwrap(), None);
    }
}
