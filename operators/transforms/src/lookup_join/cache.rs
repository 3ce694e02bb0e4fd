//! A lookup table's partial cache (Flink's `lookup.cache` = `PARTIAL`): a key's rows
//! (possibly none) by the key's bytes, at most `max-rows` keys, the least recently used
//! evicted first, entries expiring a time after they were written or last read. One
//! subtask's cache lives in its memory, as in Flink; it is not checkpointed.

use std::collections::{BTreeMap, HashMap};

use arrow::record_batch::RecordBatch;
use sluice_core::lookup::LookupCacheOptions;
use tokio::time::Instant;

struct Entry {
    rows: RecordBatch,
    written: Instant,
    read: Instant,
    /// Its place in the recency order.
    tick: u64,
}

/// The cached rows of recently looked-up keys.
pub struct LookupCache {
    options: LookupCacheOptions,
    entries: HashMap<Vec<u8>, Entry>,
    /// Keys by last use, oldest first.
    recency: BTreeMap<u64, Vec<u8>>,
    next_tick: u64,
}

impl LookupCache {
    /// An empty cache.
    pub fn new(options: LookupCacheOptions) -> Self {
        LookupCache { options, entries: HashMap::new(), recency: BTreeMap::new(), next_tick: 0 }
    }

    /// The rows of `key`, unless it is not cached or its entry expired.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<RecordBatch> {
        let entry = self.entries.get(key)?;
        let expired = self.options.expire_after_write.is_some_and(|t| entry.written + t <= now)
            || self.options.expire_after_access.is_some_and(|t| entry.read + t <= now);
        if expired {
            self.remove(key);
            return None;
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        let entry = self.entries.get_mut(key).expect("present above");
        self.recency.remove(&entry.tick);
        self.recency.insert(tick, key.to_vec());
        entry.tick = tick;
        entry.read = now;
        Some(entry.rows.clone())
    }

    /// Keeps the rows just looked up for `key` (an empty batch unless missing keys are
    /// not cached), evicting the least recently used key when full.
    pub fn put(&mut self, key: &[u8], rows: &RecordBatch, now: Instant) {
        if rows.num_rows() == 0 && !self.options.cache_missing_key {
            return;
        }
        self.remove(key);
        while self.entries.len() as u64 >= self.options.max_rows {
            let Some((_, oldest)) = self.recency.pop_first() else { break };
            self.entries.remove(&oldest);
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        self.recency.insert(tick, key.to_vec());
        self.entries.insert(key.to_vec(), Entry { rows: rows.clone(), written: now, read: now, tick });
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(entry) = self.entries.remove(key) {
            self.recency.remove(&entry.tick);
        }
    }

    /// Keys cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()))]).unwrap()
    }

    fn options(max_rows: u64, write: Option<u64>, access: Option<u64>, missing: bool) -> LookupCacheOptions {
        LookupCacheOptions {
            max_rows,
            expire_after_write: write.map(Duration::from_secs),
            expire_after_access: access.map(Duration::from_secs),
            cache_missing_key: missing,
        }
    }

    #[test]
    fn the_least_recently_used_key_leaves_first() {
        let now = Instant::now();
        let mut cache = LookupCache::new(options(2, None, None, true));
        cache.put(b"a", &rows(1), now);
        cache.put(b"b", &rows(2), now);
        assert!(cache.get(b"a", now).is_some(), "a is now the most recent");
        cache.put(b"c", &rows(3), now);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(b"b", now).is_none(), "b was the least recently used");
        assert_eq!(cache.get(b"a", now).unwrap().num_rows(), 1);
        assert_eq!(cache.get(b"c", now).unwrap().num_rows(), 3);
    }

    #[test]
    fn entries_expire_after_write_or_after_their_last_read() {
        let t0 = Instant::now();
        let mut cache = LookupCache::new(options(10, Some(10), None, true));
        cache.put(b"a", &rows(1), t0);
        assert!(cache.get(b"a", t0 + Duration::from_secs(9)).is_some());
        assert!(cache.get(b"a", t0 + Duration::from_secs(10)).is_none(), "reads do not extend a write expiry");

        let mut cache = LookupCache::new(options(10, None, Some(10), true));
        cache.put(b"a", &rows(1), t0);
        assert!(cache.get(b"a", t0 + Duration::from_secs(9)).is_some());
        assert!(cache.get(b"a", t0 + Duration::from_secs(18)).is_some(), "the read at 9 s extended it");
        assert!(cache.get(b"a", t0 + Duration::from_secs(29)).is_none());
    }

    #[test]
    fn missing_keys_are_cached_only_when_asked() {
        let now = Instant::now();
        let mut cache = LookupCache::new(options(10, None, None, false));
        cache.put(b"gone", &rows(0), now);
        assert!(cache.get(b"gone", now).is_none());
        let mut cache = LookupCache::new(options(10, None, None, true));
        cache.put(b"gone", &rows(0), now);
        assert_eq!(cache.get(b"gone", now).unwrap().num_rows(), 0);
    }
}
