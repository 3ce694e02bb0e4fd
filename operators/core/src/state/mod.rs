//! Operator state: what operators put into checkpoints and get back when a job restores.
//!
//! Two kinds, as in Flink:
//! - **Operator state** is named lists of opaque entries per subtask (a source's split
//!   positions, a sink's files to commit). On restore each list's entries are redistributed
//!   over the new subtasks: dealt round-robin ([`Distribution::Split`]) or given to all
//!   ([`Distribution::Union`]).
//! - **Keyed state** lives in a [`KeyedStateStore`] (RocksDB in a task manager), under keys
//!   prefixed by their key group, so a job can restore at another parallelism: each new
//!   subtask takes the key groups it owns. An operator declares its keyed state as named,
//!   typed tables ([`tables`]): values, lists, maps and time-ordered tables, each entry
//!   carrying its encoding's version and, with a TTL, its expiry.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::{OperatorError, Result};

pub mod tables;

pub use tables::{StateClock, StateTables, StateValue};

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
#[derive(Clone)]
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
    /// The key groups this subtask owns (start inclusive, end exclusive).
    pub key_groups: (u32, u32),
    /// The clock state TTLs follow (the system clock, or a test's).
    pub clock: StateClock,
}

impl Default for StateInit {
    fn default() -> Self {
        StateInit {
            lists: BTreeMap::new(),
            restored: false,
            restored_checkpoint: 0,
            keyed: None,
            operator_uid: String::new(),
            key_groups: (0, crate::keys::DEFAULT_MAX_PARALLELISM),
            clock: StateClock::System,
        }
    }
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

    /// The operator's keyed state, to declare its tables in; `None` when it declared no
    /// keyed state ([`Operator::uses_keyed_state`](crate::Operator::uses_keyed_state)).
    pub fn tables(&self) -> Option<StateTables> {
        self.keyed.clone().map(|store| StateTables::new(store, self.key_groups, self.clock.clone()))
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
            .field("key_groups", &self.key_groups)
            .finish()
    }
}

/// One write to a keyed state store: a put, or a delete when the value is `None`.
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// A byte store for the keyed state of one operator subtask. Keys start with the key
/// group (two bytes, big-endian), so iteration is in key-group order. Operators use it
/// through [`StateTables`], which lays out its keys and values.
pub trait KeyedStateStore: Send + Sync {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies `writes` atomically.
    fn write(&self, writes: Vec<StateWrite>) -> Result<()>;
    /// Calls `visit` for every entry whose key is at or after `start`, in key order, until
    /// it returns false.
    fn scan_from(&self, start: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;
    /// Calls `visit` for every entry whose key starts with `prefix`, in key order, until
    /// it returns false.
    fn scan(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        self.scan_from(prefix, &mut |k, v| k.starts_with(prefix) && visit(k, v))
    }
}

/// The key group of a stored state key (its first two bytes, big-endian).
pub fn key_group_of(stored_key: &[u8]) -> Option<u32> {
    stored_key.get(..2).map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
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

    fn scan_from(&self, start: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in entries.range(start.to_vec()..) {
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }
}

impl MemoryStateStore {
    /// How many entries the store holds (expired or not).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
