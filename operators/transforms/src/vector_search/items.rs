//! The searched table's rows as VECTOR_SEARCH keeps them: the rows themselves (for the
//! output), their vectors in one contiguous matrix (for the search), and, for a table
//! that changes, where each row is so that an update or a delete finds it.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float32Type, Float64Type, SchemaRef};
use arrow::row::{RowConverter, SortField};
use sluice_core::changelog::RowKind;
use sluice_core::{OperatorError, Result};

use super::metric::{squared_norm, Metric};

/// Where a stored row is: its chunk and its row in the chunk.
#[derive(Debug, Clone, Copy)]
pub struct Location {
    /// The chunk.
    pub chunk: u32,
    /// The row within the chunk.
    pub row: u32,
}

/// The stored rows of the searched table. A row's slot is its position in the vector
/// matrix; a deleted row's slot stays, marked dead, until [`Items::compacted`] drops it.
pub struct Items {
    schema: SchemaRef,
    metric: Metric,
    search_column: usize,
    dimension: Option<usize>,
    chunks: Vec<RecordBatch>,
    locations: Vec<Location>,
    alive: Vec<bool>,
    live: usize,
    vectors: Vec<f32>,
    squared_norms: Vec<f32>,
    /// Row identities (the key columns, or every column) → their live slots; only kept
    /// for a table whose changelog can update or delete rows.
    identities: Option<Identities>,
    rejected: u64,
}

/// Finds the slots of a row by its key.
struct Identities {
    converter: RowConverter,
    columns: Vec<usize>,
    slots: HashMap<Vec<u8>, Vec<u32>>,
}

/// Appends the values of a vector column's row to `out` as `f32`s and returns how many;
/// `None`, with `out` as it was, for NULL, a NULL element or one that is not a finite
/// number (no distance can be computed from NaN).
pub fn append_vector(column: &ArrayRef, row: usize, out: &mut Vec<f32>) -> Option<usize> {
    let start = out.len();
    if !append_raw(column, row, out) || !out[start..].iter().all(|x| x.is_finite()) {
        out.truncate(start);
        return None;
    }
    Some(out.len() - start)
}

fn append_raw(column: &ArrayRef, row: usize, out: &mut Vec<f32>) -> bool {
    if column.is_null(row) {
        return false;
    }
    let list = match column.data_type() {
        DataType::List(_) => column.as_list::<i32>().value(row),
        DataType::LargeList(_) => column.as_list::<i64>().value(row),
        DataType::FixedSizeList(..) => column.as_fixed_size_list().value(row),
        _ => return false,
    };
    if list.null_count() > 0 {
        return false;
    }
    match list.data_type() {
        DataType::Float32 => out.extend_from_slice(list.as_primitive::<Float32Type>().values()),
        DataType::Float64 => out.extend(list.as_primitive::<Float64Type>().values().iter().map(|&v| v as f32)),
        _ => return false,
    }
    true
}

impl Items {
    /// An empty store of rows of `schema`, searched on `search_column` by `metric`. With
    /// `identity` (the key columns, or every column when the table has no key) rows can
    /// later be updated and deleted.
    pub fn new(schema: SchemaRef, search_column: usize, metric: Metric, identity: Option<Vec<usize>>) -> Result<Self> {
        let identities = match identity {
            Some(columns) => {
                let fields =
                    columns.iter().map(|&c| SortField::new(schema.field(c).data_type().clone())).collect::<Vec<_>>();
                let converter = RowConverter::new(fields)
                    .map_err(|e| OperatorError::arrow("VECTOR_SEARCH: comparing the searched rows", e))?;
                Some(Identities { converter, columns, slots: HashMap::new() })
            }
            None => None,
        };
        Ok(Items {
            schema,
            metric,
            search_column,
            dimension: None,
            chunks: Vec::new(),
            locations: Vec::new(),
            alive: Vec::new(),
            live: 0,
            vectors: Vec::new(),
            squared_norms: Vec::new(),
            identities,
            rejected: 0,
        })
    }

    /// The rows' schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The metric the vectors are prepared for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The vectors' dimension, once a row set it.
    pub fn dimension(&self) -> Option<usize> {
        self.dimension
    }

    /// Live rows.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Slots, dead ones included.
    pub fn slots(&self) -> usize {
        self.alive.len()
    }

    /// Rows left out because their vector was NULL, held a NULL or a NaN or infinity, or
    /// had another dimension.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// True when the row in `slot` is live.
    #[inline]
    pub fn is_alive(&self, slot: u32) -> bool {
        self.alive[slot as usize]
    }

    /// The prepared vector in `slot`.
    #[inline]
    pub fn vector(&self, slot: u32) -> &[f32] {
        let d = self.dimension.unwrap_or(0);
        &self.vectors[slot as usize * d..(slot as usize + 1) * d]
    }

    /// Every prepared vector, slot by slot.
    pub fn matrix(&self) -> &[f32] {
        &self.vectors
    }

    /// Every vector's squared norm, slot by slot.
    pub fn squared_norms(&self) -> &[f32] {
        &self.squared_norms
    }

    /// The stored chunks of rows.
    pub fn chunks(&self) -> &[RecordBatch] {
        &self.chunks
    }

    /// Where the row in `slot` is.
    pub fn location(&self, slot: u32) -> Location {
        self.locations[slot as usize]
    }

    /// Applies a batch of the table's changelog: inserts and updates add rows (an update
    /// of a key replaces its row), deletes remove them. Returns the slots added.
    pub fn apply(&mut self, rows: &RecordBatch, kinds: &[RowKind]) -> Result<Vec<u32>> {
        let keys = match &self.identities {
            Some(ids) => {
                let columns: Vec<ArrayRef> = ids.columns.iter().map(|&c| rows.column(c).clone()).collect();
                let converted = ids
                    .converter
                    .convert_columns(&columns)
                    .map_err(|e| OperatorError::arrow("VECTOR_SEARCH: keying the searched rows", e))?;
                Some((0..rows.num_rows()).map(|r| converted.row(r).as_ref().to_vec()).collect::<Vec<_>>())
            }
            None => None,
        };
        let keyed = self.identities.as_ref().is_some_and(|ids| ids.columns.len() < self.schema.fields().len());
        let chunk = self.chunks.len() as u32;
        let column = rows.column(self.search_column).clone();
        let mut added = Vec::new();
        for (row, kind) in kinds.iter().enumerate() {
            let key = keys.as_ref().map(|k| &k[row]);
            if kind.is_retraction() || (keyed && *kind == RowKind::UpdateAfter) || (keyed && *kind == RowKind::Insert) {
                // A keyed upsert replaces the row with its key; a retraction removes one.
                if let Some(key) = key {
                    self.remove(key);
                }
                if kind.is_retraction() {
                    continue;
                }
            }
            // Straight into the matrix, taken back out if the row cannot be stored.
            let start = self.vectors.len();
            let Some(len) = append_vector(&column, row, &mut self.vectors) else {
                self.rejected += 1;
                continue;
            };
            if self.alive.is_empty() {
                // The first row stored sets the dimension; an empty vector never does.
                self.dimension = None;
            }
            if len == 0 || *self.dimension.get_or_insert(len) != len {
                self.vectors.truncate(start);
                self.rejected += 1;
                continue;
            }
            let vector = &mut self.vectors[start..];
            self.metric.prepare(vector);
            let slot = self.alive.len() as u32;
            self.squared_norms.push(squared_norm(vector));
            self.locations.push(Location { chunk, row: row as u32 });
            self.alive.push(true);
            self.live += 1;
            if let (Some(ids), Some(key)) = (&mut self.identities, key) {
                ids.slots.entry(key.clone()).or_default().push(slot);
            }
            added.push(slot);
        }
        if !added.is_empty() {
            self.chunks.push(rows.clone());
        }
        Ok(added)
    }

    /// Marks one live slot of `key` dead.
    fn remove(&mut self, key: &[u8]) {
        let Some(ids) = &mut self.identities else { return };
        let Some(slots) = ids.slots.get_mut(key) else { return };
        if let Some(slot) = slots.pop() {
            self.alive[slot as usize] = false;
            self.live -= 1;
        }
        if slots.is_empty() {
            ids.slots.remove(key);
        }
    }

    /// True when dead slots are many enough that the store should be rebuilt.
    pub fn wants_compaction(&self) -> bool {
        let dead = self.alive.len() - self.live;
        dead > 1024 && dead > self.live
    }

    /// The live rows, in slot order, as batches of at most `rows` rows.
    pub fn live_rows(&self, rows: usize) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        let live: Vec<(usize, usize)> = (0..self.alive.len())
            .filter(|&s| self.alive[s])
            .map(|s| (self.locations[s].chunk as usize, self.locations[s].row as usize))
            .collect();
        for part in live.chunks(rows.max(1)) {
            let columns = (0..self.schema.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> = self.chunks.iter().map(|b| b.column(c).as_ref()).collect();
                    arrow::compute::interleave(&arrays, part)
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| OperatorError::arrow("VECTOR_SEARCH: gathering the searched rows", e))?;
            out.push(
                RecordBatch::try_new(self.schema.clone(), columns)
                    .map_err(|e| OperatorError::arrow("VECTOR_SEARCH: gathering the searched rows", e))?,
            );
        }
        Ok(out)
    }

    /// A store holding only the live rows, with the same settings.
    pub fn compacted(&self) -> Result<Items> {
        let identity = self.identities.as_ref().map(|ids| ids.columns.clone());
        let mut fresh = Items::new(self.schema.clone(), self.search_column, self.metric, identity)?;
        for batch in self.live_rows(8192)? {
            fresh.apply(&batch, &vec![RowKind::Insert; batch.num_rows()])?;
        }
        fresh.rejected = self.rejected;
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, ListArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(ids: &[i64], vectors: Vec<Option<Vec<Option<f32>>>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::List(Arc::new(Field::new("item", DataType::Float32, true))), true),
        ]));
        let list = ListArray::from_iter_primitive::<Float32Type, _, _>(vectors);
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(list)]).unwrap()
    }

    #[test]
    fn rows_with_bad_vectors_are_rejected_and_counted() {
        let rows = batch(
            &[1, 2, 3, 4, 5],
            vec![
                Some(vec![Some(1.0), Some(0.0)]),
                None,
                Some(vec![Some(1.0)]),
                Some(vec![Some(2.0), None]),
                Some(vec![Some(f32::NAN), Some(1.0)]),
            ],
        );
        let mut items = Items::new(rows.schema(), 1, Metric::Dot, None).unwrap();
        let added = items.apply(&rows, &[RowKind::Insert; 5]).unwrap();
        assert_eq!(added, vec![0]);
        assert_eq!((items.live(), items.rejected(), items.dimension()), (1, 4, Some(2)));
    }

    #[test]
    fn a_keyed_changelog_replaces_and_deletes_rows_by_key() {
        let first = batch(&[1, 2], vec![Some(vec![Some(1.0), Some(0.0)]), Some(vec![Some(0.0), Some(1.0)])]);
        let mut items = Items::new(first.schema(), 1, Metric::Dot, Some(vec![0])).unwrap();
        items.apply(&first, &[RowKind::Insert; 2]).unwrap();
        let change = batch(&[1, 2], vec![Some(vec![Some(5.0), Some(5.0)]), Some(vec![Some(0.0), Some(1.0)])]);
        items.apply(&change, &[RowKind::UpdateAfter, RowKind::Delete]).unwrap();
        assert_eq!(items.live(), 1);
        let live = items.live_rows(10).unwrap();
        assert_eq!(live[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().values().to_vec(), vec![1]);
        assert_eq!(items.vector(2), &[5.0, 5.0]);
        let compacted = items.compacted().unwrap();
        assert_eq!((compacted.slots(), compacted.live()), (1, 1));
    }
}
