//! Keyed state as declared, typed tables.
//!
//! An operator declares each of its keyed states by name in its [`StateTables`]: a
//! [`ValueTable`] (one value per key), a [`ListTable`] (a list per key), a [`MapTable`] (a
//! map per key) or a [`TimeTable`] (entries per key ordered by timestamp, for window
//! contents and join buffers). Values are [`StateValue`]s: typed encodings whose version
//! byte is stored with every entry, so an entry written by another encoding is refused
//! with its table's name instead of being misread.
//!
//! **Layout.** A stored key is the key group (2 bytes, big-endian), the table's id (4 bytes,
//! a hash of its name, so the id does not depend on declaration order), then the key. A
//! stored value is a header byte (bit 0: an expiry follows), the encoding's version, the
//! expiry (8 bytes, big-endian ms since the epoch) when the table has a TTL, then the value.
//!
//! **TTL** (Flink's `StateTtlConfig` with `OnCreateAndWrite` and `NeverReturnExpired`, which
//! `table.exec.state.ttl` sets for SQL operators): a write sets an entry's expiry to the
//! clock's time plus the TTL; a read never returns an expired entry. Expired entries are
//! removed in the background, a slice of the store after every [`CLEANUP_EVERY`] writes,
//! and by RocksDB's compaction (which reads the same header, see [`is_expired`]), so state
//! stays bounded by what was written within one TTL.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{KeyedStateStore, StateWrite};
use crate::{OperatorError, Result};

/// Writes between two background cleanup slices.
pub const CLEANUP_EVERY: u64 = 1_000;
/// Entries a background cleanup slice visits.
pub const CLEANUP_SLICE: usize = 2_000;

const HAS_EXPIRY: u8 = 1;
const TABLE_ID_BYTES: usize = 4;
const KEY_PREFIX: usize = 2 + TABLE_ID_BYTES;

/// A value kept in a state table: its encoding, and that encoding's version.
pub trait StateValue: Sized + Send + 'static {
    /// The encoding's version, stored with every entry. Change it whenever the encoding
    /// changes: entries of another version are then refused, with the table's name.
    const VERSION: u8;
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes a value [`encode`](Self::encode) wrote.
    fn decode(bytes: &[u8]) -> Result<Self>;
}

impl StateValue for Vec<u8> {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}

impl StateValue for () {
    const VERSION: u8 = 1;
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn decode(_bytes: &[u8]) -> Result<Self> {
        Ok(())
    }
}

impl StateValue for i64 {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| OperatorError::State(format!("a BIGINT state value has {} bytes", bytes.len())))?;
        Ok(i64::from_le_bytes(bytes))
    }
}

impl StateValue for String {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|_| OperatorError::State("a string state value is not UTF-8".into()))
    }
}

/// The clock TTLs follow: the system clock, or one a test sets.
#[derive(Debug, Clone, Default)]
pub enum StateClock {
    /// Milliseconds since the Unix epoch.
    #[default]
    System,
    /// A clock that moves only when told to.
    Manual(Arc<AtomicI64>),
}

impl StateClock {
    /// A manual clock at `now_ms`.
    pub fn manual(now_ms: i64) -> Self {
        StateClock::Manual(Arc::new(AtomicI64::new(now_ms)))
    }

    /// The time, in ms.
    pub fn now_ms(&self) -> i64 {
        match self {
            StateClock::System => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
            StateClock::Manual(now) => now.load(Ordering::Relaxed),
        }
    }

    /// Moves a manual clock forward by `ms` (the system clock ignores it).
    pub fn advance(&self, ms: i64) {
        if let StateClock::Manual(now) = self {
            now.fetch_add(ms, Ordering::Relaxed);
        }
    }
}

/// True when a stored value carries an expiry at or before `now_ms`: RocksDB's compaction
/// filter and the background cleanup drop such entries.
pub fn is_expired(stored_value: &[u8], now_ms: i64) -> bool {
    match stored_value {
        [header, _version, expiry @ ..] if header & HAS_EXPIRY != 0 && expiry.len() >= 8 => {
            i64::from_be_bytes(expiry[..8].try_into().expect("8 bytes")) <= now_ms
        }
        _ => false,
    }
}

/// The stable id of a table named `name` (FNV-1a).
fn table_id(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The background cleanup shared by an operator's tables.
#[derive(Debug, Default)]
struct Cleanup {
    writes: AtomicU64,
    /// Where the next slice starts (empty: at the beginning of the store).
    cursor: Mutex<Vec<u8>>,
    removed: AtomicU64,
}

/// What every table of one operator shares.
#[derive(Clone)]
struct Shared {
    store: Arc<dyn KeyedStateStore>,
    key_groups: (u32, u32),
    clock: StateClock,
    cleanup: Arc<Cleanup>,
}

impl Shared {
    /// Removes the expired entries among the next [`CLEANUP_SLICE`] entries of the store.
    fn cleanup_slice(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let mut cursor = self.cleanup.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let (mut visited, mut last, mut expired) = (0, None, Vec::new());
        self.store.scan_from(&cursor, &mut |k, v| {
            if is_expired(v, now) {
                expired.push((k.to_vec(), None));
            }
            visited += 1;
            last = Some(k.to_vec());
            visited < CLEANUP_SLICE
        })?;
        *cursor = match last {
            Some(mut key) if visited == CLEANUP_SLICE => {
                key.push(0);
                key
            }
            _ => Vec::new(),
        };
        let removed = expired.len();
        if removed > 0 {
            self.store.write(expired)?;
            self.cleanup.removed.fetch_add(removed as u64, Ordering::Relaxed);
        }
        Ok(removed)
    }
}

/// The keyed state of one operator subtask, where it declares its tables.
pub struct StateTables {
    shared: Shared,
    declared: Vec<(String, u32)>,
}

impl StateTables {
    /// The tables of an operator in `store`, owning `key_groups` (start inclusive, end
    /// exclusive), with TTLs following `clock`.
    pub fn new(store: Arc<dyn KeyedStateStore>, key_groups: (u32, u32), clock: StateClock) -> Self {
        StateTables { shared: Shared { store, key_groups, clock, cleanup: Arc::default() }, declared: Vec::new() }
    }

    fn declare(&mut self, name: &str, ttl: Option<Duration>) -> Result<Table> {
        let id = table_id(name);
        if let Some((other, _)) = self.declared.iter().find(|(n, i)| n == name || *i == id) {
            return Err(OperatorError::InvalidPlan(format!(
                "state table '{name}' is declared twice (or its id clashes with '{other}'); give each table its own name"
            )));
        }
        self.declared.push((name.to_string(), id));
        let ttl_ms = ttl.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX).max(1));
        Ok(Table { shared: self.shared.clone(), id, name: name.into(), ttl_ms })
    }

    /// Declares a value table.
    pub fn value<V: StateValue>(&mut self, name: &str, ttl: Option<Duration>) -> Result<ValueTable<V>> {
        Ok(ValueTable { table: self.declare(name, ttl)?, _value: PhantomData })
    }

    /// Declares a list table.
    pub fn list<V: StateValue>(&mut self, name: &str, ttl: Option<Duration>) -> Result<ListTable<V>> {
        Ok(ListTable { table: self.declare(name, ttl)?, _value: PhantomData })
    }

    /// Declares a map table.
    pub fn map<V: StateValue>(&mut self, name: &str, ttl: Option<Duration>) -> Result<MapTable<V>> {
        Ok(MapTable { table: self.declare(name, ttl)?, _value: PhantomData })
    }

    /// Declares a time-ordered table.
    pub fn time_ordered<V: StateValue>(&mut self, name: &str, ttl: Option<Duration>) -> Result<TimeTable<V>> {
        let seq = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Ok(TimeTable { table: self.declare(name, ttl)?, seq: Arc::new(AtomicU64::new(seq)), _value: PhantomData })
    }

    /// The key groups this subtask owns.
    pub fn key_groups(&self) -> (u32, u32) {
        self.shared.key_groups
    }

    /// The clock TTLs follow.
    pub fn clock(&self) -> &StateClock {
        &self.shared.clock
    }

    /// Expired entries removed by the background cleanup so far.
    pub fn expired_removed(&self) -> u64 {
        self.shared.cleanup.removed.load(Ordering::Relaxed)
    }

    /// Runs one background cleanup slice now; returns the entries it removed.
    pub fn cleanup_slice(&self) -> Result<usize> {
        self.shared.cleanup_slice()
    }
}

/// One declared table: its id, name and TTL, over the operator's store.
#[derive(Clone)]
struct Table {
    shared: Shared,
    id: u32,
    name: Arc<str>,
    ttl_ms: Option<i64>,
}

impl Table {
    fn prefix(&self, key_group: u32) -> Vec<u8> {
        let mut k = Vec::with_capacity(32);
        k.extend_from_slice(&(key_group as u16).to_be_bytes());
        k.extend_from_slice(&self.id.to_be_bytes());
        k
    }

    /// The stored key of `key` in `key_group`, as is (for value tables).
    fn key(&self, key_group: u32, key: &[u8]) -> Vec<u8> {
        let mut k = self.prefix(key_group);
        k.extend_from_slice(key);
        k
    }

    /// The prefix of every entry of `key` (length-prefixed, for map and time tables).
    fn nested(&self, key_group: u32, key: &[u8]) -> Vec<u8> {
        let mut k = self.prefix(key_group);
        k.extend_from_slice(&(key.len() as u32).to_be_bytes());
        k.extend_from_slice(key);
        k
    }

    fn truncated(&self) -> OperatorError {
        OperatorError::State(format!("an entry of state table '{}' is truncated", self.name))
    }

    fn encode<V: StateValue>(&self, value: &V) -> Vec<u8> {
        self.encode_at(value, self.shared.clock.now_ms())
    }

    /// The stored form of `value` written at `now_ms` (its expiry counts from then).
    fn encode_at<V: StateValue>(&self, value: &V, now_ms: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match self.ttl_ms {
            Some(ttl) => {
                out.extend_from_slice(&[HAS_EXPIRY, V::VERSION]);
                out.extend_from_slice(&now_ms.saturating_add(ttl).to_be_bytes());
            }
            None => out.extend_from_slice(&[0, V::VERSION]),
        }
        value.encode(&mut out);
        out
    }

    /// The value of a stored entry; `None` when it expired.
    fn decode<V: StateValue>(&self, stored: &[u8], now_ms: i64) -> Result<Option<V>> {
        if is_expired(stored, now_ms) {
            return Ok(None);
        }
        let (header, version) = match stored {
            [header, version, ..] => (*header, *version),
            _ => return Err(self.truncated()),
        };
        if version != V::VERSION {
            return Err(OperatorError::State(format!(
                "state table '{}' holds an entry of encoding version {version}, but this build reads version {}; \
                 restore from a checkpoint this version of Sluice wrote, or start the job without one",
                self.name,
                V::VERSION
            )));
        }
        let body = if header & HAS_EXPIRY != 0 { stored.get(10..) } else { stored.get(2..) };
        let body = body.ok_or_else(|| self.truncated())?;
        V::decode(body).map(Some)
    }

    fn get<V: StateValue>(&self, stored_key: &[u8]) -> Result<Option<V>> {
        match self.shared.store.get(stored_key)? {
            Some(bytes) => self.decode(&bytes, self.shared.clock.now_ms()),
            None => Ok(None),
        }
    }

    fn write(&self, writes: Vec<StateWrite>) -> Result<()> {
        let n = writes.len() as u64;
        if n == 0 {
            return Ok(());
        }
        self.shared.store.write(writes)?;
        let before = self.shared.cleanup.writes.fetch_add(n, Ordering::Relaxed);
        if self.ttl_ms.is_some() && (before + n) / CLEANUP_EVERY != before / CLEANUP_EVERY {
            self.shared.cleanup_slice()?;
        }
        Ok(())
    }

    /// Visits the live entries under `prefix` in key order: (stored key, value).
    fn scan<V: StateValue>(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], V) -> bool) -> Result<()> {
        let now = self.shared.clock.now_ms();
        let mut failure = None;
        self.shared.store.scan(prefix, &mut |k, v| match self.decode::<V>(v, now) {
            Ok(Some(value)) => visit(k, value),
            Ok(None) => true,
            Err(e) => {
                failure = Some(e);
                false
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// Deletes every entry under `prefix`, expired or not.
    fn clear_prefix(&self, prefix: &[u8]) -> Result<usize> {
        let mut keys = Vec::new();
        self.shared.store.scan(prefix, &mut |k, _| {
            keys.push((k.to_vec(), None));
            true
        })?;
        let n = keys.len();
        self.write(keys)?;
        Ok(n)
    }
}

/// One value per key.
pub struct ValueTable<V> {
    table: Table,
    _value: PhantomData<fn() -> V>,
}

impl<V: StateValue> ValueTable<V> {
    /// The value of `key`, unless absent or expired.
    pub fn get(&self, key_group: u32, key: &[u8]) -> Result<Option<V>> {
        self.table.get(&self.table.key(key_group, key))
    }

    /// Sets the value of `key` (restarting its TTL).
    pub fn put(&self, key_group: u32, key: &[u8], value: &V) -> Result<()> {
        self.put_all([(key_group, key, value)])
    }

    /// Sets the values of several keys in one write.
    pub fn put_all<'a>(&self, entries: impl IntoIterator<Item = (u32, &'a [u8], &'a V)>) -> Result<()> {
        let now = self.table.shared.clock.now_ms();
        let writes =
            entries.into_iter().map(|(g, k, v)| (self.table.key(g, k), Some(self.table.encode_at(v, now)))).collect();
        self.table.write(writes)
    }

    /// Removes the value of `key`.
    pub fn remove(&self, key_group: u32, key: &[u8]) -> Result<()> {
        self.remove_all([(key_group, key)])
    }

    /// Removes the values of several keys in one write.
    pub fn remove_all<'a>(&self, keys: impl IntoIterator<Item = (u32, &'a [u8])>) -> Result<()> {
        self.table.write(keys.into_iter().map(|(g, k)| (self.table.key(g, k), None)).collect())
    }

    /// Visits the live entries of `key_group`, in key order, until `visit` returns false.
    pub fn scan_group(&self, key_group: u32, visit: &mut dyn FnMut(&[u8], V) -> bool) -> Result<()> {
        let prefix = self.table.prefix(key_group);
        self.table.scan(&prefix, &mut |k, v| visit(&k[KEY_PREFIX..], v))
    }

    /// Every live entry of the subtask's key groups: (key group, key, value), in key-group
    /// then key order.
    pub fn entries(&self) -> Result<Vec<(u32, Vec<u8>, V)>> {
        let mut out = Vec::new();
        let (start, end) = self.table.shared.key_groups;
        for group in start..end {
            self.scan_group(group, &mut |k, v| {
                out.push((group, k.to_vec(), v));
                true
            })?;
        }
        Ok(out)
    }
}

/// A list of values per key. The list is one entry, so its TTL covers the whole list and
/// restarts with every change.
pub struct ListTable<V> {
    table: Table,
    _value: PhantomData<fn() -> V>,
}

/// The stored form of a list: each element's encoding, length-prefixed.
struct Elements(Vec<Vec<u8>>);

impl StateValue for Elements {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        for e in &self.0 {
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
    }
    fn decode(mut bytes: &[u8]) -> Result<Self> {
        let corrupt = || OperatorError::State("a list state entry is truncated".into());
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
            let len = len as usize;
            out.push(bytes.get(4..4 + len).ok_or_else(corrupt)?.to_vec());
            bytes = &bytes[4 + len..];
        }
        Ok(Elements(out))
    }
}

/// The encoding of one value, on its own.
fn encoded<V: StateValue>(value: &V) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

impl<V: StateValue> ListTable<V> {
    /// The elements of `key`'s list, in insertion order (empty when absent or expired).
    pub fn get(&self, key_group: u32, key: &[u8]) -> Result<Vec<V>> {
        let stored: Option<Elements> = self.table.get(&self.table.key(key_group, key))?;
        stored.map_or(Ok(Vec::new()), |e| e.0.iter().map(|b| V::decode(b)).collect())
    }

    /// Appends `element` to `key`'s list.
    pub fn add(&self, key_group: u32, key: &[u8], element: &V) -> Result<()> {
        let stored_key = self.table.key(key_group, key);
        let mut elements: Elements = self.table.get(&stored_key)?.unwrap_or(Elements(Vec::new()));
        elements.0.push(encoded(element));
        self.table.write(vec![(stored_key, Some(self.table.encode(&elements)))])
    }

    /// Replaces `key`'s list (an empty list removes it).
    pub fn replace(&self, key_group: u32, key: &[u8], elements: &[V]) -> Result<()> {
        let stored_key = self.table.key(key_group, key);
        if elements.is_empty() {
            return self.table.write(vec![(stored_key, None)]);
        }
        let elements = Elements(elements.iter().map(encoded).collect());
        self.table.write(vec![(stored_key, Some(self.table.encode(&elements)))])
    }

    /// Removes `key`'s list.
    pub fn clear(&self, key_group: u32, key: &[u8]) -> Result<()> {
        self.table.write(vec![(self.table.key(key_group, key), None)])
    }
}

/// A map per key, from user keys (bytes) to values; each entry has its own TTL.
pub struct MapTable<V> {
    table: Table,
    _value: PhantomData<fn() -> V>,
}

impl<V: StateValue> MapTable<V> {
    fn entry_key(&self, key_group: u32, key: &[u8], user_key: &[u8]) -> Vec<u8> {
        let mut k = self.table.nested(key_group, key);
        k.extend_from_slice(user_key);
        k
    }

    /// The value under `user_key` in `key`'s map.
    pub fn get(&self, key_group: u32, key: &[u8], user_key: &[u8]) -> Result<Option<V>> {
        self.table.get(&self.entry_key(key_group, key, user_key))
    }

    /// Sets `user_key` in `key`'s map.
    pub fn put(&self, key_group: u32, key: &[u8], user_key: &[u8], value: &V) -> Result<()> {
        self.table.write(vec![(self.entry_key(key_group, key, user_key), Some(self.table.encode(value)))])
    }

    /// Removes `user_key` from `key`'s map.
    pub fn remove(&self, key_group: u32, key: &[u8], user_key: &[u8]) -> Result<()> {
        self.table.write(vec![(self.entry_key(key_group, key, user_key), None)])
    }

    /// Every live (user key, value) of `key`'s map, in user-key order.
    pub fn entries(&self, key_group: u32, key: &[u8]) -> Result<Vec<(Vec<u8>, V)>> {
        let prefix = self.table.nested(key_group, key);
        let mut out = Vec::new();
        self.table.scan(&prefix, &mut |k, v| {
            out.push((k[prefix.len()..].to_vec(), v));
            true
        })?;
        Ok(out)
    }

    /// Removes `key`'s whole map.
    pub fn clear(&self, key_group: u32, key: &[u8]) -> Result<()> {
        self.table.clear_prefix(&self.table.nested(key_group, key)).map(|_| ())
    }
}

/// Entries per key ordered by timestamp (window contents, join buffers): several entries
/// may share a timestamp, and are then kept in insertion order.
pub struct TimeTable<V> {
    table: Table,
    seq: Arc<AtomicU64>,
    _value: PhantomData<fn() -> V>,
}

/// Timestamps stored big-endian with the sign bit flipped, so byte order is time order.
pub fn encode_time(timestamp: i64) -> [u8; 8] {
    ((timestamp as u64) ^ (1 << 63)).to_be_bytes()
}

/// The timestamp [`encode_time`] wrote at the start of `bytes`; `None` when they are too
/// short to hold one (a damaged entry).
pub fn decode_time(bytes: &[u8]) -> Option<i64> {
    let b: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

impl<V: StateValue> TimeTable<V> {
    /// Adds `value` at `timestamp` to `key`'s entries.
    pub fn insert(&self, key_group: u32, key: &[u8], timestamp: i64, value: &V) -> Result<()> {
        let mut k = self.table.nested(key_group, key);
        k.extend_from_slice(&encode_time(timestamp));
        // The sequence starts at the subtask's start time in ns and only grows, so entries
        // written by any earlier run (restored) sort before, and never collide with, new ones.
        k.extend_from_slice(&self.seq.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        self.table.write(vec![(k, Some(self.table.encode(value)))])
    }

    /// `key`'s live entries with a timestamp in `from..=to`, in time order.
    pub fn range(&self, key_group: u32, key: &[u8], from: i64, to: i64) -> Result<Vec<(i64, V)>> {
        let prefix = self.table.nested(key_group, key);
        let mut start = prefix.clone();
        start.extend_from_slice(&encode_time(from));
        let now = self.table.shared.clock.now_ms();
        let (mut out, mut failure) = (Vec::new(), None);
        self.table.shared.store.scan_from(&start, &mut |k, v| {
            if !k.starts_with(&prefix) {
                return false;
            }
            let Some(timestamp) = decode_time(&k[prefix.len()..]) else {
                failure = Some(self.table.truncated());
                return false;
            };
            if timestamp > to {
                return false;
            }
            match self.table.decode::<V>(v, now) {
                Ok(Some(value)) => out.push((timestamp, value)),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            }
            true
        })?;
        failure.map_or(Ok(out), Err)
    }

    /// Removes `key`'s entries with a timestamp at or before `timestamp`; returns how many.
    pub fn remove_through(&self, key_group: u32, key: &[u8], timestamp: i64) -> Result<usize> {
        let prefix = self.table.nested(key_group, key);
        let (mut doomed, mut truncated) = (Vec::new(), false);
        self.table.shared.store.scan(&prefix, &mut |k, _| match decode_time(&k[prefix.len()..]) {
            Some(t) if t <= timestamp => {
                doomed.push((k.to_vec(), None));
                true
            }
            Some(_) => false,
            None => {
                truncated = true;
                false
            }
        })?;
        if truncated {
            return Err(self.table.truncated());
        }
        let n = doomed.len();
        self.table.write(doomed)?;
        Ok(n)
    }

    /// Removes all of `key`'s entries.
    pub fn clear(&self, key_group: u32, key: &[u8]) -> Result<()> {
        self.table.clear_prefix(&self.table.nested(key_group, key)).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
