//! The updates a streaming GROUP BY emits, as Flink's group aggregate does: `+I` with a
//! key's first result, then `-U` (the result as last emitted) and `+U` (the new result)
//! whenever it changes. Changes are collected per key and emitted together: after each
//! input batch, or with mini-batch (`table.exec.mini-batch.*`) when enough input rows are
//! buffered or the latency has passed, and always before a barrier, a watermark and the
//! end of the input, so a checkpoint never holds changes not yet emitted. A key hit many
//! times in between emits one update, which keeps a hot key from flooding the sink.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int8Array};
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use tokio::time::Instant;

use crate::aggregate::{Acc, Aggregates};
use sluice_core::changelog::RowKind;
use sluice_core::{OperatorError, Result};

/// When buffered changes are emitted besides barriers, watermarks and the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MiniBatch {
    /// At most this long after the first buffered row.
    pub latency: Duration,
    /// When this many input rows are buffered.
    pub size: u64,
}

/// A group's key in state: its key group and row-encoded key.
pub type GroupKey = (u32, Vec<u8>);

/// A changed group: its key, and its accumulators as last emitted (`None`: no result yet).
pub type Change = (GroupKey, Option<Vec<Acc>>);

/// The keys changed since the last emission, with their accumulators as then.
pub struct Updates {
    /// Per changed key (key group, key bytes): its accumulators at the last emission, or
    /// `None` for a key that had no result.
    before: HashMap<GroupKey, Option<Vec<Acc>>>,
    mini_batch: Option<MiniBatch>,
    buffered_rows: u64,
    deadline: Option<Instant>,
    /// Re-emit results that did not change (Flink does with a state TTL, since the
    /// consumer's copy may have expired).
    emit_unchanged: bool,
    /// Compares results (the aggregate columns) for equality; `None` without aggregates
    /// (SELECT DISTINCT), whose results never change.
    results: Option<RowConverter>,
}

impl Updates {
    /// Updates of results with `result_schema`'s aggregate columns (from `first_result`).
    pub fn new(
        result_schema: &SchemaRef,
        first_result: usize,
        mini_batch: Option<MiniBatch>,
        emit_unchanged: bool,
    ) -> Result<Self> {
        let fields: Vec<SortField> = result_schema
            .fields()
            .iter()
            .skip(first_result)
            .filter(|f| f.name() != sluice_core::changelog::ROW_KIND_COLUMN)
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        Ok(Updates {
            before: HashMap::new(),
            mini_batch,
            buffered_rows: 0,
            deadline: None,
            emit_unchanged,
            results: if fields.is_empty() {
                None
            } else {
                Some(RowConverter::new(fields).map_err(|e| OperatorError::arrow("aggregate results", e))?)
            },
        })
    }

    /// True when the key's state as of the last emission is recorded already.
    pub fn knows(&self, key: &GroupKey) -> bool {
        self.before.contains_key(key)
    }

    /// Records a key about to change, with its accumulators as last emitted.
    pub fn touch(&mut self, key: GroupKey, before: Option<Vec<Acc>>) {
        self.before.entry(key).or_insert(before);
    }

    /// Counts `rows` input rows; true when the mini-batch is full (or there is none).
    pub fn add_rows(&mut self, rows: usize) -> bool {
        self.buffered_rows += rows as u64;
        match self.mini_batch {
            None => true,
            Some(m) => {
                if self.deadline.is_none() && !self.before.is_empty() {
                    self.deadline = Some(Instant::now() + m.latency);
                }
                self.buffered_rows >= m.size
            }
        }
    }

    /// When the buffered changes must go out.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Takes the changed keys with their accumulators as last emitted.
    pub fn take(&mut self) -> Vec<Change> {
        self.buffered_rows = 0;
        self.deadline = None;
        self.before.drain().collect()
    }

    /// The rows that bring a consumer from `before` to `after` for each key: `+I` for a
    /// new key, `-U` and `+U` for a changed result, `-D` for a deleted key (`after` `None`:
    /// its rows were all retracted), nothing for an unchanged one. `keys` are the group-key
    /// columns of the changed keys; `output` ends with the row kind.
    pub fn rows(
        &self,
        aggregates: &Aggregates,
        keys: Vec<ArrayRef>,
        before: &[Option<&[Acc]>],
        after: &[Option<&[Acc]>],
        output: &SchemaRef,
    ) -> Result<Option<RecordBatch>> {
        let empty = aggregates.initial();
        let before_accs: Vec<&[Acc]> = before.iter().map(|b| b.unwrap_or(&empty)).collect();
        let after_accs: Vec<&[Acc]> = after.iter().map(|a| a.unwrap_or(&empty)).collect();
        let old = aggregates.columns(&before_accs)?;
        let new = aggregates.columns(&after_accs)?;
        let compared = match &self.results {
            Some(results) => {
                let rows = |columns: &[ArrayRef]| {
                    results.convert_columns(columns).map_err(|e| OperatorError::arrow("aggregate results", e))
                };
                Some((rows(&old)?, rows(&new)?))
            }
            None => None,
        };
        let changed = |i: usize| compared.as_ref().is_some_and(|(o, n)| o.row(i) != n.row(i));
        // (source, row): source 0 is the old results, 1 the new ones.
        let mut picks: Vec<(usize, usize)> = Vec::new();
        let mut kinds: Vec<i8> = Vec::new();
        for (i, (b, a)) in before.iter().zip(after).enumerate() {
            if b.is_none() && a.is_none() {
                continue;
            } else if b.is_none() {
                picks.push((1, i));
                kinds.push(RowKind::Insert.to_byte());
            } else if a.is_none() {
                picks.push((0, i));
                kinds.push(RowKind::Delete.to_byte());
            } else if self.emit_unchanged || changed(i) {
                picks.extend([(0, i), (1, i)]);
                kinds.extend([RowKind::UpdateBefore.to_byte(), RowKind::UpdateAfter.to_byte()]);
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(output.fields().len());
        // A key's column repeats for its -U and +U rows.
        let key_rows: Vec<(usize, usize)> = picks.iter().map(|&(_, row)| (0, row)).collect();
        for key in &keys {
            columns.push(interleave(&[key.as_ref()], &key_rows).map_err(|e| OperatorError::arrow("GROUP BY keys", e))?);
        }
        for (o, n) in old.iter().zip(&new) {
            columns
                .push(interleave(&[o.as_ref(), n.as_ref()], &picks).map_err(|e| OperatorError::arrow("results", e))?);
        }
        columns.push(Arc::new(Int8Array::from(kinds)));
        RecordBatch::try_new(output.clone(), columns)
            .map(Some)
            .map_err(|e| OperatorError::arrow("aggregate updates", e))
    }
}
