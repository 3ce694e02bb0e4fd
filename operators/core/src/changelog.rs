//! Changelog rows: what a row means to the table its stream describes.
//!
//! A stream is append-only (every row an insertion), or it updates a table: then each row
//! carries its [`RowKind`] in a hidden last column, [`ROW_KIND_COLUMN`] (`Int8`, never
//! NULL, holding Flink's byte values so that the kinds read the same in both systems). An
//! append-only stream has no such column: its rows are all `+I`. Operators pass the column
//! through or interpret it; sinks take it off before writing the row and act on the kind
//! (print shows it, an upsert sink turns `-D` into a tombstone).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int8Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use crate::{OperatorError, Result};

/// The hidden column that holds each row's [`RowKind`] in an updating stream.
pub const ROW_KIND_COLUMN: &str = "__sluice_row_kind";

/// What a row does to its table (Flink's `RowKind`, with the same byte values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert,
    /// `-U`: the old content of a row about to be updated.
    UpdateBefore,
    /// `+U`: the new content of an updated row.
    UpdateAfter,
    /// `-D`: a row removed.
    Delete,
}

impl RowKind {
    /// Every kind, by byte value.
    pub const ALL: [RowKind; 4] = [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete];

    /// The byte stored in [`ROW_KIND_COLUMN`].
    pub fn to_byte(self) -> i8 {
        match self {
            RowKind::Insert => 0,
            RowKind::UpdateBefore => 1,
            RowKind::UpdateAfter => 2,
            RowKind::Delete => 3,
        }
    }

    /// The kind a stored byte stands for.
    pub fn from_byte(byte: i8) -> Result<RowKind> {
        usize::try_from(byte).ok().and_then(|i| RowKind::ALL.get(i).copied()).ok_or_else(|| {
            OperatorError::InvalidPlan(format!("{byte} is not a row kind (0 = +I, 1 = -U, 2 = +U, 3 = -D)"))
        })
    }

    /// How Flink writes the kind: `+I`, `-U`, `+U` or `-D`.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// The kind written as [`short_string`](Self::short_string) does.
    pub fn parse(text: &str) -> Option<RowKind> {
        RowKind::ALL.into_iter().find(|k| k.short_string() == text)
    }

    /// True for `-U` and `-D`: the row takes something out of the table.
    pub fn is_retraction(self) -> bool {
        matches!(self, RowKind::UpdateBefore | RowKind::Delete)
    }
}

/// The field of [`ROW_KIND_COLUMN`].
pub fn row_kind_field() -> Field {
    Field::new(ROW_KIND_COLUMN, DataType::Int8, false)
}

/// The index of the row-kind column in `schema`, when its rows carry kinds.
pub fn row_kind_index(schema: &Schema) -> Option<usize> {
    schema.index_of(ROW_KIND_COLUMN).ok()
}

/// `schema` with the row-kind column added last (unchanged if it has one).
pub fn with_row_kind(schema: &Schema) -> SchemaRef {
    if row_kind_index(schema).is_some() {
        return Arc::new(schema.clone());
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(row_kind_field());
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `schema` without the row-kind column (the data columns of an updating stream).
pub fn without_row_kind(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> =
        schema.fields().iter().filter(|f| f.name() != ROW_KIND_COLUMN).map(|f| f.as_ref().clone()).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A batch split into its rows' values and their kinds (all `+I` when the batch has no
/// row-kind column).
#[derive(Debug)]
pub struct ChangelogBatch {
    /// The rows without the row-kind column.
    pub rows: RecordBatch,
    /// Each row's kind.
    pub kinds: Vec<RowKind>,
}

/// Splits `batch` into its values and its rows' kinds.
pub fn split(batch: &RecordBatch) -> Result<ChangelogBatch> {
    let Some(index) = row_kind_index(&batch.schema()) else {
        return Ok(ChangelogBatch { rows: batch.clone(), kinds: vec![RowKind::Insert; batch.num_rows()] });
    };
    let column = batch.column(index);
    let bytes = column.as_any().downcast_ref::<Int8Array>().ok_or_else(|| {
        OperatorError::InvalidPlan(format!("column '{ROW_KIND_COLUMN}' is {}, not Int8", column.data_type()))
    })?;
    if bytes.null_count() > 0 {
        return Err(OperatorError::InvalidPlan(format!("column '{ROW_KIND_COLUMN}' holds NULL")));
    }
    let kinds = bytes.values().iter().map(|&b| RowKind::from_byte(b)).collect::<Result<Vec<_>>>()?;
    let mut rows = batch.clone();
    rows.remove_column(index);
    Ok(ChangelogBatch { rows, kinds })
}

/// `rows` with `kinds` as their row-kind column, added last.
pub fn join(rows: &RecordBatch, kinds: &[RowKind]) -> Result<RecordBatch> {
    if kinds.len() != rows.num_rows() {
        return Err(OperatorError::InvalidPlan(format!("{} row kinds for {} rows", kinds.len(), rows.num_rows())));
    }
    if row_kind_index(&rows.schema()).is_some() {
        return Err(OperatorError::InvalidPlan(format!("the rows already have a '{ROW_KIND_COLUMN}' column")));
    }
    let column: ArrayRef = Arc::new(Int8Array::from_iter_values(kinds.iter().map(|k| k.to_byte())));
    let mut columns = rows.columns().to_vec();
    columns.push(column);
    RecordBatch::try_new(with_row_kind(&rows.schema()), columns)
        .map_err(|e| OperatorError::arrow("cannot add row kinds", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};

    fn rows() -> RecordBatch {
        let schema =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("n", DataType::Int64, true)]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "a", "b"])),
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(2), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn kinds_keep_flinks_bytes_and_texts() {
        let expected = [(RowKind::Insert, 0, "+I"), (RowKind::UpdateBefore, 1, "-U"), (RowKind::UpdateAfter, 2, "+U")];
        for (kind, byte, text) in expected.into_iter().chain([(RowKind::Delete, 3, "-D")]) {
            assert_eq!(kind.to_byte(), byte);
            assert_eq!(RowKind::from_byte(byte).unwrap(), kind);
            assert_eq!(kind.short_string(), text);
            assert_eq!(RowKind::parse(text), Some(kind));
        }
        assert!(RowKind::from_byte(4).is_err() && RowKind::from_byte(-1).is_err());
        assert_eq!(RowKind::parse("+X"), None);
        let retracting: Vec<_> = RowKind::ALL.into_iter().filter(|k| k.is_retraction()).collect();
        assert_eq!(retracting, [RowKind::UpdateBefore, RowKind::Delete]);
    }

    #[test]
    fn kinds_join_the_rows_as_a_last_column_and_split_off_again() {
        let kinds = [RowKind::Insert, RowKind::UpdateBefore, RowKind::UpdateAfter, RowKind::Delete];
        let joined = join(&rows(), &kinds).unwrap();
        assert_eq!(joined.num_columns(), 3);
        assert_eq!(row_kind_index(&joined.schema()), Some(2));
        let stored = joined.column(2).as_any().downcast_ref::<Int8Array>().unwrap();
        assert_eq!(stored.values().to_vec(), [0, 1, 2, 3]);
        let split = split(&joined).unwrap();
        assert_eq!(split.rows, rows());
        assert_eq!(split.kinds, kinds);
        assert!(join(&joined, &kinds).is_err(), "a second row-kind column is refused");
        assert!(join(&rows(), &kinds[..3]).is_err(), "one kind per row");
    }

    #[test]
    fn rows_without_the_column_are_insertions() {
        let split = split(&rows()).unwrap();
        assert_eq!(split.kinds, [RowKind::Insert; 4]);
        assert_eq!(split.rows, rows());
    }

    #[test]
    fn a_damaged_row_kind_column_is_an_error() {
        let schema = Arc::new(Schema::new(vec![row_kind_field()]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int8Array::from(vec![0, 7]))]).unwrap();
        let error = split(&batch).expect_err("7 is no row kind").to_string();
        assert!(error.contains("7 is not a row kind"), "{error}");
    }

    #[test]
    fn the_schema_gains_the_column_once() {
        let schema = rows().schema();
        let once = with_row_kind(&schema);
        assert_eq!(once.fields().len(), 3);
        assert_eq!(with_row_kind(&once), once);
    }
}
