//! A partition's rows in rank order, as kept in state.

use sluice_core::state::tables::StateValue;
use sluice_core::{OperatorError, Result};

/// A ranked row: its ORDER BY columns' sortable encoding, its arrival number in the
/// partition (to rank equal rows), and its row encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    sort: Vec<u8>,
    seq: u64,
    /// The row's encoding (all data columns).
    pub row: Vec<u8>,
}

impl Entry {
    /// A row to rank; its arrival number is given when it is inserted.
    pub fn new(sort: Vec<u8>, row: Vec<u8>) -> Self {
        Entry { sort, seq: 0, row }
    }
}

/// A partition's rows in rank order, and the arrival number of its next row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranking {
    next_seq: u64,
    /// The rows, best first.
    pub entries: Vec<Entry>,
}

impl Ranking {
    /// Inserts `entry` at its rank (after the rows ordering equally, or before them with
    /// `newer_first`), then keeps at most `keep` rows.
    pub fn insert(&mut self, mut entry: Entry, newer_first: bool, keep: usize) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let at = if newer_first {
            self.entries.partition_point(|e| e.sort < entry.sort)
        } else {
            self.entries.partition_point(|e| e.sort <= entry.sort)
        };
        if at >= keep {
            return;
        }
        self.entries.insert(at, entry);
        self.entries.truncate(keep);
    }

    /// Removes one row equal to `row` (ordering as `sort`); false when there is none.
    pub fn retract(&mut self, sort: &[u8], row: &[u8]) -> bool {
        let from = self.entries.partition_point(|e| e.sort.as_slice() < sort);
        let found = self.entries[from..].iter().take_while(|e| e.sort == sort).position(|e| e.row == row);
        match found {
            Some(i) => {
                self.entries.remove(from + i);
                true
            }
            None => false,
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads what [`put_bytes`] wrote at `*at`.
fn take_bytes<'a>(bytes: &'a [u8], at: &mut usize) -> Result<&'a [u8]> {
    let len = u32::from_le_bytes(take::<4>(bytes, at)?) as usize;
    let value = bytes.get(*at..*at + len).ok_or_else(truncated)?;
    *at += len;
    Ok(value)
}

fn take<const N: usize>(bytes: &[u8], at: &mut usize) -> Result<[u8; N]> {
    let value: [u8; N] = bytes.get(*at..*at + N).and_then(|b| b.try_into().ok()).ok_or_else(truncated)?;
    *at += N;
    Ok(value)
}

fn truncated() -> OperatorError {
    OperatorError::State("a stored Top-N ranking is truncated".into())
}

impl StateValue for Ranking {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.next_seq.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for entry in &self.entries {
            put_bytes(out, &entry.sort);
            out.extend_from_slice(&entry.seq.to_le_bytes());
            put_bytes(out, &entry.row);
        }
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut at = 0;
        let next_seq = u64::from_le_bytes(take::<8>(bytes, &mut at)?);
        let count = u32::from_le_bytes(take::<4>(bytes, &mut at)?) as usize;
        let mut entries = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            let sort = take_bytes(bytes, &mut at)?.to_vec();
            let seq = u64::from_le_bytes(take::<8>(bytes, &mut at)?);
            let row = take_bytes(bytes, &mut at)?.to_vec();
            entries.push(Entry { sort, seq, row });
        }
        if at != bytes.len() {
            return Err(OperatorError::State("a stored Top-N ranking has trailing bytes".into()));
        }
        Ok(Ranking { next_seq, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sort: u8, row: &str) -> Entry {
        Entry::new(vec![sort], row.as_bytes().to_vec())
    }

    fn rows(r: &Ranking) -> Vec<&str> {
        r.entries.iter().map(|e| std::str::from_utf8(&e.row).unwrap()).collect()
    }

    #[test]
    fn equal_rows_rank_by_arrival_and_only_the_kept_ranks_stay() {
        let mut r = Ranking::default();
        for (sort, row) in [(5, "a"), (3, "b"), (5, "c"), (1, "d"), (9, "e")] {
            r.insert(entry(sort, row), false, 3);
        }
        assert_eq!(rows(&r), ["d", "b", "a"], "sorted ascending, the older 5 first, e and c past rank 3");
        let mut newer = Ranking::default();
        for (sort, row) in [(5, "a"), (5, "c"), (7, "x")] {
            newer.insert(entry(sort, row), true, 1);
        }
        assert_eq!(rows(&newer), ["c"], "keep-last: the newer equal row wins rank 1");
    }

    #[test]
    fn retracting_removes_one_equal_row_and_survives_a_round_trip() {
        let mut r = Ranking::default();
        for (sort, row) in [(2, "a"), (2, "a"), (1, "b")] {
            r.insert(entry(sort, row), false, usize::MAX);
        }
        assert!(r.retract(&[2], b"a"));
        assert!(!r.retract(&[2], b"zz"));
        assert_eq!(rows(&r), ["b", "a"]);
        let mut bytes = Vec::new();
        r.encode(&mut bytes);
        let back = Ranking::decode(&bytes).unwrap();
        assert_eq!(back, r);
        assert!(Ranking::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
