//! `cache.enabled`: answers kept in the operator's keyed state (RocksDB in a task
//! manager), keyed by the model version and the prompt, so that they are part of every
//! checkpoint and a replay after a restore gets the answers the first run got.
//!
//! An entry lives in the key group of its row's features, which the planner also routes
//! rows by (a hash edge on the DESCRIPTOR columns), so a restore at another parallelism
//! hands every entry to the subtask that will see its rows. `cache.ttl` expires entries when read;
//! `cache.max-rows` evicts the oldest tenth when the cache grows past it.

use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::api::Answer;
use super::config::CacheConfig;
use sluice_core::state::{split_state_key, state_key, KeyedStateStore};
use sluice_core::Result;

/// The state id of cached answers.
const ANSWERS: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Entry {
    /// When it was stored, in ms since the epoch.
    stored_ms: u64,
    /// Orders entries stored in the same millisecond.
    seq: u64,
    answer: Answer,
}

/// The answer cache of one subtask.
pub struct AnswerCache {
    store: Arc<dyn KeyedStateStore>,
    config: CacheConfig,
    version: u64,
    /// This subtask's key groups (inclusive start, exclusive end).
    key_groups: (u32, u32),
    rows: u64,
    seq: u64,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl AnswerCache {
    /// The cache in `store` for a model of `version`, for a subtask owning `key_groups`
    /// (inclusive start, exclusive end); counts the entries a restore brought.
    pub fn open(
        store: Arc<dyn KeyedStateStore>,
        config: CacheConfig,
        version: u64,
        key_groups: (u32, u32),
    ) -> Result<Self> {
        let mut cache = AnswerCache { store, config, version, key_groups, rows: 0, seq: 0 };
        let (mut rows, mut seq) = (0, 0);
        cache.visit(&mut |_, value| {
            rows += 1;
            seq = serde_json::from_slice::<Entry>(value).map_or(seq, |e| e.seq.max(seq));
            true
        })?;
        (cache.rows, cache.seq) = (rows, seq);
        Ok(cache)
    }

    fn visit(&self, visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for key_group in self.key_groups.0..self.key_groups.1 {
            self.store.scan(&state_key(key_group, ANSWERS, &[]), visit)?;
        }
        Ok(())
    }

    fn key(&self, key_group: u32, prompt: &str) -> Vec<u8> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.version.to_be_bytes());
        hasher.update(prompt.as_bytes());
        state_key(key_group, ANSWERS, &hasher.digest128().to_be_bytes())
    }

    /// The cached answer for `prompt` (of a row in `key_group`), if any and not expired.
    pub fn get(&self, key_group: u32, prompt: &str) -> Result<Option<Answer>> {
        let Some(bytes) = self.store.get(&self.key(key_group, prompt))? else { return Ok(None) };
        let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else { return Ok(None) };
        if self.config.ttl.is_some_and(|ttl| now_ms().saturating_sub(entry.stored_ms) > ttl.as_millis() as u64) {
            return Ok(None);
        }
        Ok(Some(entry.answer))
    }

    /// Stores `answer` for `prompt` (of a row in `key_group`), evicting the oldest entries
    /// when over `max-rows`.
    pub fn put(&mut self, key_group: u32, prompt: &str, answer: &Answer) -> Result<()> {
        let key = self.key(key_group, prompt);
        let fresh = self.store.get(&key)?.is_none();
        self.seq += 1;
        let value = serde_json::to_vec(&Entry { stored_ms: now_ms(), seq: self.seq, answer: answer.clone() })
            .map_err(|e| sluice_core::OperatorError::State(format!("cannot encode a cached answer: {e}")))?;
        self.store.write(vec![(key, Some(value))])?;
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
        let mut entries: Vec<((u64, u64), Vec<u8>)> = Vec::new();
        self.visit(&mut |key, value| {
            let age = serde_json::from_slice::<Entry>(value).map_or((0, 0), |e| (e.stored_ms, e.seq));
            if split_state_key(key).is_some() {
                entries.push((age, key.to_vec()));
            }
            true
        })?;
        entries.sort();
        let keep = (self.config.max_rows * 9 / 10) as usize;
        let remove = entries.len().saturating_sub(keep);
        self.store.write(entries.drain(..remove).map(|(_, k)| (k, None)).collect())?;
        self.rows = entries.len() as u64;
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
    use sluice_core::state::MemoryStateStore;

    fn config(max_rows: u64, ttl: Option<Duration>) -> CacheConfig {
        CacheConfig { max_rows, ttl }
    }

    #[test]
    fn answers_are_kept_per_version_and_evicted_oldest_first() {
        let store: Arc<dyn KeyedStateStore> = Arc::new(MemoryStateStore::default());
        let mut cache = AnswerCache::open(store.clone(), config(10, None), 1, (0, 64)).unwrap();
        cache.put(3, "a", &Answer::Text("A".into())).unwrap();
        assert_eq!(cache.get(3, "a").unwrap(), Some(Answer::Text("A".into())));
        assert_eq!(cache.get(3, "b").unwrap(), None);
        let other_version = AnswerCache::open(store.clone(), config(10, None), 2, (0, 64)).unwrap();
        assert_eq!(other_version.get(3, "a").unwrap(), None);
        for i in 0..20 {
            cache.put(i % 64, &format!("p{i}"), &Answer::Text(i.to_string())).unwrap();
        }
        assert!(cache.rows() <= 10, "{}", cache.rows());
        assert_eq!(cache.get(19, "p19").unwrap(), Some(Answer::Text("19".into())));
        // A reopened cache counts what is stored.
        assert_eq!(AnswerCache::open(store, config(10, None), 1, (0, 64)).unwrap().rows(), cache.rows());
    }

    #[test]
    fn expired_answers_are_not_used() {
        let store: Arc<dyn KeyedStateStore> = Arc::new(MemoryStateStore::default());
        let mut cache = AnswerCache::open(store, config(10, Some(Duration::ZERO)), 1, (0, 1)).unwrap();
        cache.put(0, "a", &Answer::Text("A".into())).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(cache.get(0, "a").unwrap(), None);
    }
}
