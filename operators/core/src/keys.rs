//! Key hashing for hash partitioning and keyed state: rows are hashed on their key columns,
//! mapped to one of `max_parallelism` key groups, and key groups to subtasks, as in Flink,
//! so keyed state can later be redistributed when parallelism changes.

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use crate::{OperatorError, Result};

/// The default number of key groups (Flink's default max parallelism for small jobs).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// Hashes the key columns of rows, stably across processes and runs.
pub struct KeyHasher {
    columns: Vec<usize>,
    converter: RowConverter,
}

/// A row converter over `columns` of rows with `schema`: the order-preserving encoding of
/// keys that hashing, grouping and keyed state share.
pub fn key_converter(schema: &SchemaRef, columns: &[usize]) -> Result<RowConverter> {
    let fields = columns
        .iter()
        .map(|&c| {
            schema
                .fields()
                .get(c)
                .map(|f| SortField::new(f.data_type().clone()))
                .ok_or_else(|| OperatorError::InvalidPlan(format!("key column {c} is out of range")))
        })
        .collect::<Result<Vec<_>>>()?;
    RowConverter::new(fields).map_err(|e| OperatorError::arrow("key columns", e))
}

impl KeyHasher {
    /// A hasher over `columns` of rows with `schema`.
    pub fn new(schema: &SchemaRef, columns: &[usize]) -> Result<Self> {
        Ok(KeyHasher { columns: columns.to_vec(), converter: key_converter(schema, columns)? })
    }

    /// One hash per row of `batch`.
    pub fn hashes(&self, batch: &RecordBatch) -> Result<Vec<u64>> {
        let keys: Vec<ArrayRef> = self.columns.iter().map(|&c| batch.column(c).clone()).collect();
        let rows =
            self.converter.convert_columns(&keys).map_err(|e| OperatorError::arrow("cannot hash key columns", e))?;
        Ok(rows.iter().map(|row| xxhash_rust::xxh3::xxh3_64(row.as_ref())).collect())
    }
}

/// The key group of a key hash.
pub fn key_group(hash: u64, max_parallelism: u32) -> u32 {
    (hash % u64::from(max_parallelism)) as u32
}

/// The subtask that owns `key_group` when the operator runs at `parallelism`.
pub fn subtask_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    (u64::from(key_group) * u64::from(parallelism) / u64::from(max_parallelism)) as u32
}

/// The key groups `[start, end)` subtask `subtask` owns at `parallelism`.
pub fn key_group_range(subtask: u32, max_parallelism: u32, parallelism: u32) -> (u32, u32) {
    let start = |s: u32| (u64::from(s) * u64::from(max_parallelism)).div_ceil(u64::from(parallelism)) as u32;
    (start(subtask), start(subtask + 1).min(max_parallelism))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn equal_keys_hash_equal_and_groups_cover_all_subtasks() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from((0..1000).map(|i| i % 100).collect::<Vec<_>>())),
                Arc::new(StringArray::from((0..1000).map(|i| format!("x{i}")).collect::<Vec<_>>())),
            ],
        )
        .unwrap();
        let hasher = KeyHasher::new(&schema, &[0]).unwrap();
        let hashes = hasher.hashes(&batch).unwrap();
        assert_eq!(hashes[1], hashes[101]);
        assert_ne!(hashes[1], hashes[2]);
        let mut seen = [false; 4];
        for h in hashes {
            seen[subtask_for_key_group(key_group(h, 128), 128, 4) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn key_groups_map_to_contiguous_ranges() {
        assert_eq!(subtask_for_key_group(0, 128, 3), 0);
        assert_eq!(subtask_for_key_group(127, 128, 3), 2);
        assert_eq!(subtask_for_key_group(64, 128, 2), 1);
        for parallelism in 1..=20 {
            for subtask in 0..parallelism {
                let (start, end) = key_group_range(subtask, 128, parallelism);
                for g in 0..128 {
                    assert_eq!(subtask_for_key_group(g, 128, parallelism) == subtask, (start..end).contains(&g));
                }
            }
        }
    }
}
