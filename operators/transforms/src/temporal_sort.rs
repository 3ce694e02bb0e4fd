//! `ORDER BY ts [, c ...]` in a streaming query, ascending on a time attribute first, as
//! Flink's temporal sort: each row is held until the watermark passes its time, then the
//! held rows go out in order (by time, then the other ORDER BY columns, then arrival). A row
//! whose time is at or behind the watermark when it comes can no longer be placed: it is
//! dropped and counted in [`LATE_RECORDS_DROPPED`], as is a row without a time. The rows
//! are kept in a time-ordered state table under one key, so the sort runs in one subtask
//! and restores from checkpoints; the end of a bounded input emits what is held.

use arrow::array::{Array, ArrayRef};
use arrow::compute::SortOptions;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;

use crate::keyed_aggregate::in_memory;
use crate::top_n::SortColumn;
use crate::window_aggregate::{millis, LATE_RECORDS_DROPPED};
use sluice_core::keys::key_converter;
use sluice_core::metrics::{self, Metric};
use sluice_core::state::tables::{StateValue, TimeTable};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit};

/// The name of the table holding the rows not yet emitted.
pub const HELD: &str = "held";
/// The one key the held rows are kept under.
const KEY: &[u8] = b"";

/// A held row: the sortable encoding of its other ORDER BY columns, and its row encoding.
struct Held {
    then_by: Vec<u8>,
    row: Vec<u8>,
}

impl StateValue for Held {
    const VERSION: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.then_by.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.then_by);
        out.extend_from_slice(&self.row);
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let damaged = || OperatorError::State("a held row of a temporal sort is truncated".into());
        let len = bytes.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes).ok_or_else(damaged)? as usize;
        let then_by = bytes.get(4..4 + len).ok_or_else(damaged)?.to_vec();
        Ok(Held { then_by, row: bytes[4 + len..].to_vec() })
    }
}

/// The temporal sort (one subtask).
pub struct TemporalSort {
    schema: SchemaRef,
    time_column: usize,
    then_by: Vec<SortColumn>,
    then_by_converter: RowConverter,
    row_converter: RowConverter,
    batch_rows: usize,
    held: TimeTable<Held>,
    watermark: i64,
    late_records_dropped: u64,
}

impl TemporalSort {
    /// A sort of `schema` rows by `time_column`, then by `then_by`.
    pub fn new(schema: SchemaRef, time_column: usize, then_by: Vec<SortColumn>, batch_rows: usize) -> Result<Self> {
        let fields = then_by
            .iter()
            .map(|s| {
                let field = schema.fields().get(s.column).ok_or_else(|| {
                    OperatorError::InvalidPlan(format!("ORDER BY column {} is out of range", s.column))
                })?;
                let options = SortOptions { descending: s.descending, nulls_first: s.nulls_first };
                Ok(SortField::new_with_options(field.data_type().clone(), options))
            })
            .collect::<Result<Vec<_>>>()?;
        let all: Vec<usize> = (0..schema.fields().len()).collect();
        Ok(TemporalSort {
            row_converter: key_converter(&schema, &all)?,
            then_by_converter: RowConverter::new(fields).map_err(|e| OperatorError::arrow("ORDER BY", e))?,
            held: in_memory().time_ordered(HELD, None)?,
            schema,
            time_column,
            then_by,
            batch_rows: batch_rows.max(1),
            watermark: i64::MIN,
            late_records_dropped: 0,
        })
    }

    /// The sort a plan describes, emitting batches of at most `batch_rows`.
    pub fn from_spec(spec: &sluice_proto::TemporalSortSpec, batch_rows: usize) -> Result<Self> {
        let then_by = spec
            .then_by
            .iter()
            .map(|s| SortColumn { column: s.column as usize, descending: s.descending, nulls_first: s.nulls_first })
            .collect();
        let schema = sluice_core::schema::decode_schema(&spec.input_schema)?;
        TemporalSort::new(schema, spec.time_column as usize, then_by, batch_rows)
    }

    /// Emits the held rows with a time at or before `through`, in order, and forgets them.
    fn release(&mut self, through: i64, out: &mut Collector) -> Result<()> {
        let mut due = self.held.range(0, KEY, i64::MIN, through)?;
        if due.is_empty() {
            return Ok(());
        }
        self.held.remove_through(0, KEY, through)?;
        // Stable: rows of equal time and equal other columns keep their arrival order.
        due.sort_by(|(t1, a), (t2, b)| t1.cmp(t2).then_with(|| a.then_by.cmp(&b.then_by)));
        for chunk in due.chunks(self.batch_rows) {
            let parser = self.row_converter.parser();
            let columns = self
                .row_converter
                .convert_rows(chunk.iter().map(|(_, h)| parser.parse(&h.row)))
                .map_err(|e| OperatorError::arrow("sorted rows", e))?;
            out.batch(
                RecordBatch::try_new(self.schema.clone(), columns)
                    .map_err(|e| OperatorError::arrow("sorted rows", e))?,
            );
        }
        Ok(())
    }
}

#[async_trait]
impl Operator for TemporalSort {
    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let times = millis(batch.column(self.time_column))?;
        let rows =
            self.row_converter.convert_columns(batch.columns()).map_err(|e| OperatorError::arrow("rows to sort", e))?;
        let then_by: Vec<ArrayRef> = self.then_by.iter().map(|s| batch.column(s.column).clone()).collect();
        let keys = if then_by.is_empty() {
            None
        } else {
            Some(self.then_by_converter.convert_columns(&then_by).map_err(|e| OperatorError::arrow("ORDER BY", e))?)
        };
        for row in 0..batch.num_rows() {
            if times.is_null(row) || times.value(row) <= self.watermark {
                self.late_records_dropped += 1;
                continue;
            }
            let then_by = keys.as_ref().map(|k| k.row(row).as_ref().to_vec()).unwrap_or_default();
            let held = Held { then_by, row: rows.row(row).as_ref().to_vec() };
            self.held.insert(0, KEY, times.value(row), &held)?;
        }
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        self.release(watermark, out)?;
        out.watermark(watermark);
        Ok(())
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.release(i64::MAX, out)
    }

    fn uses_keyed_state(&self) -> bool {
        true
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if let Some(mut tables) = init.tables() {
            self.held = tables.time_ordered(HELD, None)?;
        }
        Ok(())
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::default())
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![metrics::counter(LATE_RECORDS_DROPPED, self.late_records_dropped)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use sluice_core::harness::{Build, Harness};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("name", DataType::Utf8, false),
            Field::new("score", DataType::Int64, false),
        ]))
    }

    fn build() -> Build {
        Arc::new(|| {
            let then_by = vec![SortColumn { column: 2, descending: true, nulls_first: false }];
            Ok(Box::new(TemporalSort::new(schema(), 0, then_by, 1024)?) as Box<dyn Operator>)
        })
    }

    /// 2020-01-01T00:00:0s as milliseconds.
    fn second(s: i64) -> i64 {
        1_577_836_800_000 + s * 1000
    }

    #[tokio::test]
    async fn rows_go_out_in_order_once_the_watermark_passes_them() {
        let mut h = Harness::start(build(), schema(), None, 1).await.unwrap();
        h.push("2020-01-01T00:00:03 c 1\n2020-01-01T00:00:01 a 1\n2020-01-01T00:00:03 d 5\n2020-01-01T00:00:02 b 1\n")
            .await
            .unwrap();
        let snapshot = h.checkpoint(1).await.unwrap();
        let mut h = Harness::restore(build(), schema(), None, 1, &snapshot).await.unwrap();
        h.watermark(second(2)).await.unwrap();
        assert_eq!(h.rows_of(0), ["2020-01-01T00:00:01 a 1", "2020-01-01T00:00:02 b 1"]);
        h.clear_output();
        h.push("2020-01-01T00:00:02 late 9\nnull none 0\n2020-01-01T00:00:04 e 1\n").await.unwrap();
        assert_eq!(h.metric(LATE_RECORDS_DROPPED), 2, "behind the watermark, or without a time");
        h.finish().await.unwrap();
        assert_eq!(
            h.rows_of(0),
            ["2020-01-01T00:00:03 d 5", "2020-01-01T00:00:03 c 1", "2020-01-01T00:00:04 e 1"],
            "equal times by score descending"
        );
    }
}
