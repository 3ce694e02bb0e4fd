//! Lanes: how a generating source (datagen, nexmark) deals an endless numbered sequence to
//! its subtasks. Lane `i` of `n` holds items `i, i + n, i + 2n, ...`; a job starts with one
//! lane per subtask, and a checkpoint holds each lane with how far it got, so on restore at
//! another parallelism the lanes are dealt to the new subtasks and every item is still
//! produced exactly once, and a subtask's items stay in order.

use sluice_core::state::Reader;
use sluice_core::{OperatorError, Result};

/// One lane of a sequence and its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane {
    /// Which lane.
    pub index: u64,
    /// Lanes in all.
    pub count: u64,
    /// Items of this lane produced (or passed over) so far.
    pub position: u64,
}

impl Lane {
    /// The lane of `subtask` of `parallelism` at a fresh start.
    pub fn fresh(subtask: u32, parallelism: u32) -> Self {
        Lane { index: u64::from(subtask), count: u64::from(parallelism.max(1)), position: 0 }
    }

    /// The lane as checkpoint bytes.
    pub fn encode(&self) -> Vec<u8> {
        [self.index, self.count, self.position].iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A lane from checkpoint bytes of `what` (a source, for messages).
    pub fn decode(bytes: &[u8], what: &'static str) -> Result<Self> {
        let mut r = Reader::new(bytes, what);
        let lane = Lane { index: r.u64()?, count: r.u64()?, position: r.u64()? };
        if lane.count == 0 || lane.index >= lane.count || !r.is_empty() {
            return Err(OperatorError::State(format!("{what} lane state is malformed")));
        }
        Ok(lane)
    }

    /// The sequence number of this lane's item `k` places past its position.
    pub fn item(&self, k: u64) -> u64 {
        self.index + (self.position + k) * self.count
    }

    /// Items of this lane in all, for a sequence of `total` items (`None`: unbounded).
    pub fn items(&self, total: Option<u64>) -> Option<u64> {
        total.map(|total| if total > self.index { (total - self.index).div_ceil(self.count) } else { 0 })
    }

    /// Items of this lane still to come (`u64::MAX` when unbounded).
    pub fn remaining(&self, total: Option<u64>) -> u64 {
        self.items(total).map_or(u64::MAX, |n| n.saturating_sub(self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_partition_a_sequence_and_survive_encoding() {
        let total = Some(10);
        let lanes: Vec<Lane> = (0..3).map(|s| Lane::fresh(s, 3)).collect();
        let mut items: Vec<u64> = lanes.iter().flat_map(|l| (0..l.remaining(total)).map(move |k| l.item(k))).collect();
        items.sort_unstable();
        assert_eq!(items, (0..10).collect::<Vec<_>>());
        let moved = Lane { index: 2, count: 3, position: 2 };
        assert_eq!(Lane::decode(&moved.encode(), "test").unwrap(), moved);
        assert_eq!((moved.item(0), moved.remaining(total)), (8, 1));
        assert!(Lane::decode(&Lane { index: 3, count: 3, position: 0 }.encode(), "test").is_err());
    }
}
