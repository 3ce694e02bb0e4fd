//! Session windows of a window aggregate, as Flink merges them: a row at `t` opens
//! `[t, t + gap)`; windows of a key that touch (`a.start <= b.end && a.end >= b.start`) merge
//! into one, their accumulators too; a session fires when the watermark passes its last
//! millisecond. A key's open sessions are one entry of the value table [`SESSIONS`].

use std::collections::HashMap;

use crate::aggregate::{Acc, Accumulators, Aggregates};
use sluice_core::state::tables::ValueTable;
use sluice_core::state::{put_bytes, Reader, StateValue};
use sluice_core::Result;

/// The name of the table holding each key's open sessions.
pub const SESSIONS: &str = "sessions";

/// One open session of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The time of its first row.
    pub start: i64,
    /// The time of its last row plus the gap.
    pub end: i64,
    /// Its accumulators.
    pub accs: Vec<Acc>,
}

/// A key's open sessions, as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionList(pub Vec<Session>);

impl StateValue for SessionList {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.0.len() as u64).to_le_bytes());
        for session in &self.0 {
            out.extend_from_slice(&session.start.to_le_bytes());
            out.extend_from_slice(&session.end.to_le_bytes());
            let mut accs = Vec::new();
            Accumulators(session.accs.clone()).encode(&mut accs);
            put_bytes(out, &accs);
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "sessions");
        let n = r.u64()?;
        let mut sessions = Vec::new();
        for _ in 0..n {
            let start = r.u64()? as i64;
            let end = r.u64()? as i64;
            let Accumulators(accs) = Accumulators::decode(r.bytes()?)?;
            sessions.push(Session { start, end, accs });
        }
        Ok(SessionList(sessions))
    }
}

/// What adding a row's window to a key's sessions did.
#[derive(Debug, PartialEq)]
pub enum Added {
    /// It opened or extended a session: the ends of the sessions it replaced (their timers
    /// go) and the end of the session it is in now (its timer comes).
    Merged {
        /// Ends of the sessions merged away.
        replaced: Vec<i64>,
        /// End of the resulting session.
        end: i64,
    },
    /// Its session would have fired already: the row is late.
    Late,
}

/// The open sessions of a subtask's keys: a cache over the table, written at checkpoints.
pub struct Sessions {
    /// The gap that ends a session.
    pub gap: i64,
    table: ValueTable<SessionList>,
    pending: HashMap<(u32, Vec<u8>), Vec<Session>>,
}

impl Sessions {
    /// Sessions with `gap`, kept in `table`.
    pub fn new(gap: i64, table: ValueTable<SessionList>) -> Self {
        Sessions { gap, table, pending: HashMap::new() }
    }

    /// The open sessions of a key, loaded into the cache.
    pub fn of(&mut self, group: u32, key: &[u8]) -> Result<&mut Vec<Session>> {
        let entry = (group, key.to_vec());
        if !self.pending.contains_key(&entry) {
            let stored = self.table.get(group, key)?.map(|l| l.0).unwrap_or_default();
            self.pending.insert(entry.clone(), stored);
        }
        Ok(self.pending.get_mut(&entry).expect("inserted above"))
    }

    /// Adds `row` (a one-row session starting at `start`, its accumulators `accs`) to the
    /// key's sessions, merging those it touches, unless the merged session has fired by
    /// `watermark`.
    pub fn add(
        &mut self,
        aggregates: &Aggregates,
        group: u32,
        key: &[u8],
        start: i64,
        accs: Vec<Acc>,
        watermark: i64,
    ) -> Result<Added> {
        let gap = self.gap;
        let sessions = self.of(group, key)?;
        let new = Session { start, end: start + gap, accs };
        let touches = |s: &Session| s.start <= new.end && s.end >= new.start;
        let (mut touching, rest): (Vec<Session>, Vec<Session>) = sessions.drain(..).partition(touches);
        let replaced: Vec<i64> = touching.iter().map(|s| s.end).collect();
        let (merged_start, merged_end) =
            touching.iter().fold((new.start, new.end), |(lo, hi), s| (lo.min(s.start), hi.max(s.end)));
        if merged_end - 1 <= watermark {
            sessions.extend(rest);
            sessions.extend(touching);
            return Ok(Added::Late);
        }
        touching.push(new);
        touching.sort_by_key(|s| s.start);
        let mut parts = touching.into_iter();
        let mut merged = parts.next().expect("the new session is there");
        for part in parts {
            aggregates.merge(&mut merged.accs, &part.accs)?;
        }
        merged.start = merged_start;
        merged.end = merged_end;
        sessions.extend(rest);
        sessions.push(merged);
        Ok(Added::Merged { replaced, end: merged_end })
    }

    /// Removes and returns the key's sessions that fired by `watermark`.
    pub fn take_fired(&mut self, group: u32, key: &[u8], watermark: i64) -> Result<Vec<Session>> {
        let sessions = self.of(group, key)?;
        let (fired, open): (Vec<Session>, Vec<Session>) = sessions.drain(..).partition(|s| s.end - 1 <= watermark);
        *sessions = open;
        Ok(fired)
    }

    /// Writes the cached sessions to the table (a key without open sessions is removed).
    pub fn flush(&mut self) -> Result<()> {
        for ((group, key), sessions) in self.pending.drain() {
            if sessions.is_empty() {
                self.table.remove(group, &key)?;
            } else {
                self.table.put(group, &key, &SessionList(sessions))?;
            }
        }
        Ok(())
    }
}
