//! One side of a join: how its rows are keyed and encoded, and the rows it keeps.

use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;

use super::JoinInput;
use sluice_core::keys::{key_converter, KeyHasher};
use sluice_core::state::tables::{MapTable, StateValue};
use sluice_core::state::StateTables;
use sluice_core::{OperatorError, Result};

/// A kept row: how many copies of it the side holds, and how many rows of the other side
/// match it (for an outer side's NULL-padded row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Kept {
    /// Copies of the row.
    pub count: u64,
    /// Matching rows of the other side (each copy has as many).
    pub matches: u64,
}

impl StateValue for Kept {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.matches.to_le_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let word = |at: usize| -> Result<u64> {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(|| OperatorError::State("a kept join row is truncated".into()))
        };
        Ok(Kept { count: word(0)?, matches: word(8)? })
    }
}

/// A batch of one side, keyed: per row its key (`None` with a NULL), hash and encoding.
pub struct Keyed {
    /// The key encodings.
    pub keys: Vec<Option<Vec<u8>>>,
    /// The key hashes.
    pub hashes: Vec<u64>,
    /// The row encodings (data columns).
    pub rows: Vec<Vec<u8>>,
}

/// One side of a join.
pub struct Side {
    schema: SchemaRef,
    data_columns: usize,
    keys: Vec<usize>,
    key_converter: RowConverter,
    hasher: KeyHasher,
    row_converter: RowConverter,
    name: String,
    kept: MapTable<Kept>,
}

impl Side {
    /// Side `index` (0 left, 1 right) of a join, keeping its rows in `tables`.
    pub fn new(
        input: &JoinInput,
        tables: &mut StateTables,
        index: usize,
        ttl: Option<std::time::Duration>,
    ) -> Result<Self> {
        let schema = sluice_core::changelog::without_row_kind(&input.schema);
        let data: Vec<usize> = (0..input.data_columns).collect();
        let name = if index == 0 { "join_left" } else { "join_right" }.to_string();
        Ok(Side {
            key_converter: key_converter(&schema, &input.keys)?,
            hasher: KeyHasher::new(&schema, &input.keys)?,
            row_converter: key_converter(&schema, &data)?,
            kept: tables.map(&name, ttl)?,
            data_columns: input.data_columns,
            keys: input.keys.clone(),
            schema,
            name,
        })
    }

    /// Reopens the kept rows in `tables` (a task's store) with `ttl`.
    pub fn open(&mut self, tables: &mut StateTables, ttl: Option<std::time::Duration>) -> Result<()> {
        self.kept = tables.map(&self.name, ttl)?;
        Ok(())
    }

    /// Keys, hashes and encodings of a batch of this side (without its row kinds).
    pub fn keyed(&self, batch: &RecordBatch) -> Result<Keyed> {
        let keys: Vec<ArrayRef> = self.keys.iter().map(|&k| batch.column(k).clone()).collect();
        let encoded = self.key_converter.convert_columns(&keys).map_err(|e| OperatorError::arrow("join keys", e))?;
        let data: Vec<ArrayRef> = batch.columns()[..self.data_columns].to_vec();
        let rows = self.row_converter.convert_columns(&data).map_err(|e| OperatorError::arrow("join rows", e))?;
        let null_key = |row: usize| keys.iter().any(|k| k.is_null(row));
        Ok(Keyed {
            keys: (0..batch.num_rows()).map(|r| (!null_key(r)).then(|| encoded.row(r).as_ref().to_vec())).collect(),
            hashes: self.hasher.hashes(batch)?,
            rows: rows.iter().map(|r| r.as_ref().to_vec()).collect(),
        })
    }

    /// The kept rows of `key`.
    pub fn rows(&self, group: u32, key: &[u8]) -> Result<Vec<(Vec<u8>, Kept)>> {
        self.kept.entries(group, key)
    }

    /// The kept copies of `row` under `key`.
    pub fn get(&self, group: u32, key: &[u8], row: &[u8]) -> Result<Option<Kept>> {
        self.kept.get(group, key, row)
    }

    /// Writes a kept row's counts.
    pub fn put(&self, group: u32, key: &[u8], row: &[u8], kept: &Kept) -> Result<()> {
        self.kept.put(group, key, row, kept)
    }

    /// Forgets a kept row (an interval join's row that can match nothing more).
    pub fn forget(&self, group: u32, key: &[u8], row: &[u8]) -> Result<()> {
        self.kept.remove(group, key, row)
    }

    /// Records one more copy of `row` (or one less, `retract`), with its `matches`.
    pub fn record(&self, group: u32, key: &[u8], row: &[u8], retract: bool, matches: u64) -> Result<()> {
        let mut kept = self.kept.get(group, key, row)?.unwrap_or_default();
        if retract {
            kept.count = kept.count.saturating_sub(1);
            if kept.count == 0 {
                return self.kept.remove(group, key, row);
            }
        } else {
            kept.count += 1;
        }
        kept.matches = matches;
        self.kept.put(group, key, row, &kept)
    }

    /// The data columns of encoded rows.
    pub fn decode<'a>(&self, rows: impl Iterator<Item = &'a [u8]>) -> Result<Vec<ArrayRef>> {
        let parser = self.row_converter.parser();
        self.row_converter.convert_rows(rows.map(|r| parser.parse(r))).map_err(|e| OperatorError::arrow("join rows", e))
    }

    /// The data columns of rows that may be absent (NULLs for a padded side).
    pub fn decode_padded(&self, rows: &[Option<&[u8]>]) -> Result<Vec<ArrayRef>> {
        let present: Vec<&[u8]> = rows.iter().flatten().copied().collect();
        if present.len() == rows.len() {
            return self.decode(present.into_iter());
        }
        let decoded = if present.is_empty() {
            self.schema
                .fields()
                .iter()
                .take(self.data_columns)
                .map(|f| arrow::array::new_null_array(f.data_type(), 0))
                .collect()
        } else {
            self.decode(present.iter().copied())?
        };
        let mut next = 0u64;
        let indices: UInt64Array = rows
            .iter()
            .map(|r| {
                r.map(|_| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        decoded
            .iter()
            .map(|c| arrow::compute::take(c.as_ref(), &indices, None).map_err(|e| OperatorError::arrow("join rows", e)))
            .collect()
    }
}
