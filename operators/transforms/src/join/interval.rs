//! Interval joins: a join whose condition bounds the two sides' times
//! (`l.ts BETWEEN r.ts - INTERVAL '5' MINUTE AND r.ts + INTERVAL '10' MINUTE`, that is
//! `lower <= l.ts - r.ts <= upper`) keeps a row only while a row of the other side could
//! still match it: once the watermark passes `l.ts - lower` no right row to come can
//! match a left row, and once it passes `r.ts + upper` no left row can match a right row.
//! Each kept row has an event-time timer at that time, and the timer removes it.

use arrow::array::Array;

use super::side::Side;
use crate::window_aggregate::millis;
use sluice_core::Result;

/// The time bounds of an interval join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// The left side's time column.
    pub left_time: usize,
    /// The right side's time column.
    pub right_time: usize,
    /// The least `l.ts - r.ts` that matches (ms).
    pub lower: i64,
    /// The greatest `l.ts - r.ts` that matches (ms).
    pub upper: i64,
}

impl Interval {
    /// The time column of side `side`.
    pub fn column(&self, side: usize) -> usize {
        if side == 0 {
            self.left_time
        } else {
            self.right_time
        }
    }

    /// When a row of side `side` at time `time` can match nothing more.
    pub fn expiry(&self, side: usize, time: i64) -> i64 {
        if side == 0 {
            time.saturating_sub(self.lower)
        } else {
            time.saturating_add(self.upper)
        }
    }
}

/// The timer key of a side's key: the side, then the key.
pub fn timer_key(side: usize, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(side as u8);
    k.extend_from_slice(key);
    k
}

/// Removes the rows of `side` under `key` that expired by `watermark`.
pub fn expire(side: &Side, index: usize, interval: &Interval, group: u32, key: &[u8], watermark: i64) -> Result<()> {
    let kept = side.rows(group, key)?;
    if kept.is_empty() {
        return Ok(());
    }
    let columns = side.decode(kept.iter().map(|(r, _)| r.as_slice()))?;
    let times = millis(&columns[interval.column(index)])?;
    for (i, (row, _)) in kept.iter().enumerate() {
        if times.is_null(i) || interval.expiry(index, times.value(i)) <= watermark {
            side.forget(group, key, row)?;
        }
    }
    Ok(())
}
