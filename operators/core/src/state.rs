//! Operator state: what operators put into checkpoints and get back when a job restores.
//!
//! Two kinds, as in Flink:
//! - **Operator state** is named lists of opaque entries per subtask (a source's split
//!   positions, a sink's files to commit). On restore each list's entries are redistributed
//!   over the new subtasks: dealt round-robin ([`Distribution::Split`]) or given to all
//!   ([`Distribution::Union`]).
//! - **Keyed state** lives in a [`KeyedStateStore`] (RocksDB in a task manager), under keys
//!   prefixed by their key group, so a job can restore at another parallelism: each new
//!   subtask takes the key groups it owns. [`ValueState`], [`ListState`] and [`MapState`]
//!   give typed access to one named state of an operator.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::{OperatorError, Result};

/// How operator list state is redistributed over the subtasks of a restored job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    /// Entries are dealt round-robin to the new subtasks.
    #[default]
    Split,
    /// Every new subtask receives every entry.
    Union,
}

/// `state.storage.fs.memory-threshold` when a job does not set it (Flink's default): larger
/// operator lists are stored as files in the checkpoint storage.
pub const DEFAULT_MEMORY_THRESHOLD: u64 = 20 << 10;

/// One named list of operator state entries, with how it is redistributed on restore.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorList {
    /// The list's name, unique within the operator.
    pub name: String,
    /// How its entries are redistributed on restore.
    pub distribution: Distribution,
    /// Opaque entries.
    pub entries: Vec<Vec<u8>>,
}

/// The operator state one subtask puts into a checkpoint: named lists, each with its own
/// distribution (an ML operator's held rows are split, its dead-letter transactions are a
/// union). Large lists go to the checkpoint storage, with only a handle in the
/// acknowledgement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorState {
    /// The lists, by name.
    pub lists: Vec<OperatorList>,
}

impl OperatorState {
    /// The name of the list most operators use.
    pub const DEFAULT_LIST: &'static str = "default";

    /// One list named [`Self::DEFAULT_LIST`], dealt round-robin on restore.
    pub fn split(entries: Vec<Vec<u8>>) -> Self {
        OperatorState::default().with_list(Self::DEFAULT_LIST, Distribution::Split, entries)
    }

    /// One list named [`Self::DEFAULT_LIST`], given to every subtask on restore.
    pub fn union(entries: Vec<Vec<u8>>) -> Self {
        OperatorState::default().with_list(Self::DEFAULT_LIST, Distribution::Union, entries)
    }

    /// This state with one more list.
    pub fn with_list(mut self, name: &str, distribution: Distribution, entries: Vec<Vec<u8>>) -> Self {
        self.lists.push(OperatorList { name: name.to_string(), distribution, entries });
        self
    }

    /// The entries of list `name` (none when there is no such list).
    pub fn entries(&self, name: &str) -> &[Vec<u8>] {
        self.lists.iter().find(|l| l.name == name).map_or(&[], |l| &l.entries)
    }
}

/// What an operator starts from.
#[derive(Clone, Default)]
pub struct StateInit {
    /// The operator state entries given to this subtask, by list name (empty on a fresh
    /// start).
    pub lists: BTreeMap<String, Vec<Vec<u8>>>,
    /// True when the job restored a checkpoint (even if this subtask got no entries).
    pub restored: bool,
    /// The checkpoint restored (0: none).
    pub restored_checkpoint: u64,
    /// The operator's keyed state, when it declared one.
    pub keyed: Option<Arc<dyn KeyedStateStore>>,
    /// The operator's uid in the job graph (stable across restores).
    pub operator_uid: String,
}

impl StateInit {
    /// A restore handing this subtask `state`'s lists (for tests and harnesses).
    pub fn restoring(state: OperatorState) -> Self {
        StateInit {
            lists: state.lists.into_iter().map(|l| (l.name, l.entries)).collect(),
            restored: true,
            ..Default::default()
        }
    }

    /// The restored entries of list [`OperatorState::DEFAULT_LIST`].
    pub fn entries(&self) -> &[Vec<u8>] {
        self.list(OperatorState::DEFAULT_LIST)
    }

    /// The restored entries of list `name`.
    pub fn list(&self, name: &str) -> &[Vec<u8>] {
        self.lists.get(name).map_or(&[], Vec::as_slice)
    }
}

impl fmt::Debug for StateInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateInit")
            .field("lists", &self.lists.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>())
            .field("restored", &self.restored)
            .field("restored_checkpoint", &self.restored_checkpoint)
            .field("keyed", &self.keyed.is_some())
            .field("operator_uid", &self.operator_uid)
            .finish()
    }
}

/// One write to a keyed state store: a put, or a delete when the value is `None`.
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// A byte store for the keyed state of one operator subtask. Keys start with the key
/// group (two bytes, big-endian), so iteration is in key-group order.
pub trait KeyedStateStore: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies `writes` atomically.
    fn write(&self, writes: Vec<StateWrite>) -> Result<()>;
    /// Calls `visit` for every entry whose key starts with `prefix`, in key order, until
    /// it returns false.
    fn scan(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
}

/// The key under which state `state` of `key` (in `key_group`) is stored:
/// key group (2 bytes), state id (1 byte), then the key bytes.
pub fn state_key(key_group: u32, state: u8, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + key.len());
    k.extend_from_slice(&(key_group as u16).to_be_bytes());
    k.push(state);
    k.extend_from_slice(key);
    k
}

/// The key group of a stored state key.
pub fn key_group_of(stored_key: &[u8]) -> Option<u32> {
    stored_key.get(..2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
}

/// Splits a stored key into (key group, state id, key).
pub fn split_state_key(stored_key: &[u8]) -> Option<(u32, u8, &[u8])> {
    if stored_key.len() < 3 {
        return None;
    }
    Some((key_group_of(stored_key)?, stored_key[2], &stored_key[3..]))
}

/// One value per key.
pub struct ValueState<'a> {
    store: &'a dyn KeyedStateStore,
    id: u8,
}

impl<'a> ValueState<'a> {
    /// The value state numbered `id` of an operator.
    pub fn new(store: &'a dyn KeyedStateStore, id: u8) -> Self {
        ValueState { store, id }
    }

    /// The value of `key`.
    pub fn get(&self, key_group: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.get(&state_key(key_group, self.id, key))
    }

    /// Sets the value of `key`.
    pub fn put(&self, key_group: u32, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.store.write(vec![(state_key(key_group, self.id, key), Some(value))])
    }

    /// Removes the value of `key`.
    pub fn clear(&self, key_group: u32, key: &[u8]) -> Result<()> {
        self.store.write(vec![(state_key(key_group, self.id, key), None)])
    }
}

/// A list of values per key.
pub struct ListState<'a> {
    value: ValueState<'a>,
}

impl<'a> ListState<'a> {
    /// The list state numbered `id` of an operator.
    pub fn new(store: &'a dyn KeyedStateStore, id: u8) -> Self {
        ListState { value: ValueState::new(store, id) }
    }

    /// The elements of `key`'s list, in insertion order.
    pub fn get(&self, key_group: u32, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        match self.value.get(key_group, key)? {
            Some(bytes) => decode_list(&bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Appends an element to `key`'s list.
    pub fn add(&self, key_group: u32, key: &[u8], element: &[u8]) -> Result<()> {
        let mut bytes = self.value.get(key_group, key)?.unwrap_or_default();
        bytes.extend_from_slice(&(element.len() as u32).to_le_bytes());
        bytes.extend_from_slice(element);
        self.value.put(key_group, key, bytes)
    }

    /// Removes `key`'s list.
    pub fn clear(&self, key_group: u32, key: &[u8]) -> Result<()> {
        self.value.clear(key_group, key)
    }
}

fn decode_list(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let corrupt = || OperatorError::State("a list state entry is truncated".into());
        let len = u32::from_le_bytes(bytes.get(..4).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?) as usize;
        out.push(bytes.get(4..4 + len).ok_or_else(corrupt)?.to_vec());
        bytes = &bytes[4 + len..];
    }
    Ok(out)
}

/// A map per key: user keys to values.
pub struct MapState<'a> {
    store: &'a dyn KeyedStateStore,
    id: u8,
}

impl<'a> MapState<'a> {
    /// The map state numbered `id` of an operator.
    pub fn new(store: &'a dyn KeyedStateStore, id: u8) -> Self {
        MapState { store, id }
    }

    fn entry_key(&self, key_group: u32, key: &[u8], user_key: &[u8]) -> Vec<u8> {
        let mut k = state_key(key_group, self.id, &(key.len() as u32).to_be_bytes());
        k.extend_from_slice(key);
        k.extend_from_slice(user_key);
        k
    }

    /// The value under `user_key` in `key`'s map.
    pub fn get(&self, key_group: u32, key: &[u8], user_key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.get(&self.entry_key(key_group, key, user_key))
    }

    /// Sets `user_key` in `key`'s map.
    pub fn put(&self, key_group: u32, key: &[u8], user_key: &[u8], value: Vec<u8>) -> Result<()> {
        self.store.write(vec![(self.entry_key(key_group, key, user_key), Some(value))])
    }

    /// Removes `user_key` from `key`'s map.
    pub fn remove(&self, key_group: u32, key: &[u8], user_key: &[u8]) -> Result<()> {
        self.store.write(vec![(self.entry_key(key_group, key, user_key), None)])
    }

    /// Every (user key, value) of `key`'s map, in user-key order.
    pub fn entries(&self, key_group: u32, key: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let prefix = self.entry_key(key_group, key, &[]);
        let mut out = Vec::new();
        self.store.scan(&prefix, &mut |k, v| {
            out.push((k[prefix.len()..].to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }
}

/// A keyed state store in memory, for operator unit tests.
#[derive(Default)]
pub struct MemoryStateStore {
    entries: std::sync::Mutex<std::collections::BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl KeyedStateStore for MemoryStateStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned())
    }

    fn write(&self, writes: Vec<StateWrite>) -> Result<()> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes {
            match v {
                Some(v) => entries.insert(k, v),
                None => entries.remove(&k),
            };
        }
        Ok(())
    }

    fn scan(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in entries.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}

/// A cursor over a byte buffer, for decoding state entries.
pub struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `bytes`, naming `what` in errors.
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(OperatorError::State(format!("{} state is truncated", self.what)));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u64()? as usize;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string.
    pub fn string(&mut self) -> Result<String> {
        let what = self.what;
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| OperatorError::State(format!("{what} state holds invalid UTF-8")))
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Appends a length-prefixed byte string to `out`.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_states_share_a_store_without_clashing() {
        let store = MemoryStateStore::default();
        let value = ValueState::new(&store, 1);
        let list = ListState::new(&store, 2);
        let map = MapState::new(&store, 3);
        value.put(7, b"k", b"v".to_vec()).unwrap();
        list.add(7, b"k", b"a").unwrap();
        list.add(7, b"k", b"bc").unwrap();
        map.put(7, b"k", b"x", b"1".to_vec()).unwrap();
        map.put(7, b"k", b"y", b"2".to_vec()).unwrap();
        map.put(7, b"kk", b"x", b"3".to_vec()).unwrap();
        assert_eq!(value.get(7, b"k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(value.get(8, b"k").unwrap(), None, "key groups separate keys");
        assert_eq!(list.get(7, b"k").unwrap(), vec![b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(map.entries(7, b"k").unwrap(), vec![(b"x".to_vec(), b"1".to_vec()), (b"y".to_vec(), b"2".to_vec())]);
        map.remove(7, b"k", b"x").unwrap();
        assert_eq!(map.get(7, b"k", b"x").unwrap(), None);
        list.clear(7, b"k").unwrap();
        assert!(list.get(7, b"k").unwrap().is_empty());
        let mut groups = Vec::new();
        store
            .scan(&[], &mut |k, _| {
                groups.push(split_state_key(k).unwrap().0);
                true
            })
            .unwrap();
        assert!(groups.iter().all(|&g| g == 7));
    }

    #[test]
    fn state_keys_sort_by_key_group() {
        let a = state_key(1, 9, b"zzz");
        let b = state_key(256, 0, b"a");
        assert!(a < b);
        assert_eq!(split_state_key(&b), Some((256, 0, &b"a"[..])));
    }
}
