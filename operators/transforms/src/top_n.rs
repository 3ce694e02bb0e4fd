//! Top-N and deduplication, as Flink's `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o)`
//! under a filter on the rank (`WHERE rownum <= N`, `= 1`, `BETWEEN a AND b`).
//!
//! **Top-N** (no window among the partition columns): each partition's ranks
//! `rank_start..=rank_end` are kept up to date as rows come, and every change goes out as a
//! changelog row carrying its rank: `+I` for a rank filled for the first time, `-U` (the
//! rank's old row) and `+U` (its new row) when a rank's row changes, `-D` for a rank left
//! empty (only when the input retracts rows). Changes are collected per input batch, so a
//! row entering at rank 1 of a top 3 emits one `-U`/`+U` pair per rank it shifts. Over an
//! append-only input each partition keeps only its top `rank_end` rows, the others can
//! never rank again; over an updating input (a GROUP BY's results, say) it keeps every row,
//! as Flink's retract rank does, since a retraction can lift any row into the top.
//!
//! **Window Top-N** (`window_start`, `window_end` among the partition columns): each
//! window's rows are ranked and its ranks emitted once, as inserts, when the watermark
//! passes `window_end - 1`; the window's state is freed then. A row of a window that has
//! fired is dropped and counted in [`LATE_RECORDS_DROPPED`]. With rank 1 ordered by time
//! this is Flink's window deduplication.
//!
//! Rows that order equally rank by arrival, the older first, as in Flink; with
//! `newer_first_on_ties` (keep-last deduplication: `ORDER BY ts DESC`, rank 1) the newer
//! does. State: one [`Ranking`] per partition in the value table [`RANKINGS`] under the
//! partition's key group (plus one event-time timer per window), in every checkpoint, so
//! Top-N restores at any parallelism.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, Int8Array, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;

use crate::keyed_aggregate::in_memory;
use crate::window_aggregate::{millis, LATE_RECORDS_DROPPED};
use sluice_core::changelog::{self, RowKind};
use sluice_core::keys::{key_converter, key_group, KeyHasher};
use sluice_core::metrics::{self, Metric};
use sluice_core::state::tables::ValueTable;
use sluice_core::timers::{TimeDomain, TimerService};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

mod ranking;
use ranking::Entry;
pub use ranking::Ranking;

/// The name of the table holding each partition's ranked rows.
pub const RANKINGS: &str = "rankings";
/// A partition in state: its key group and row-encoded partition key.
type PartitionKey = (u32, Vec<u8>);
/// Partitions kept in memory before they are written to the store.
const MAX_PENDING: usize = 16_384;

/// One ORDER BY column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortColumn {
    /// The input column.
    pub column: usize,
    /// Descending order.
    pub descending: bool,
    /// NULLs before other values.
    pub nulls_first: bool,
}

/// What a Top-N ranks and keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranks {
    /// The input columns partitioning the rows (window columns among them for a window
    /// Top-N).
    pub partition: Vec<usize>,
    /// The ORDER BY columns.
    pub order: Vec<SortColumn>,
    /// The first rank emitted (1-based).
    pub start: u64,
    /// The last rank emitted (inclusive).
    pub end: u64,
    /// Rows ordering equally: the newer ranks first (keep-last deduplication).
    pub newer_first_on_ties: bool,
    /// Window Top-N: the input column of `window_end`.
    pub window_end: Option<usize>,
    /// Ranks only ever fill (LIMIT without ORDER BY over an append-only input): the
    /// output carries no row kinds.
    pub inserts_only: bool,
}

/// The Top-N of one subtask.
pub struct TopN {
    ranks: Ranks,
    /// The input rows carry kinds (an updating input): every row is kept.
    retracting: bool,
    output_schema: SchemaRef,
    batch_rows: usize,
    partition_converter: RowConverter,
    hasher: KeyHasher,
    sort_converter: RowConverter,
    row_converter: RowConverter,
    max_parallelism: u32,
    state_ttl: Option<Duration>,
    rankings: ValueTable<Ranking>,
    timers: TimerService,
    /// Partitions changed since the last flush, by (key group, partition key).
    pending: HashMap<PartitionKey, Ranking>,
    /// Top-N: the rows each partition changed since the last emission showed then.
    shown: HashMap<PartitionKey, Vec<Vec<u8>>>,
    watermark: i64,
    late_records_dropped: u64,
}

/// A row going out: its encoding, its rank and (Top-N) its kind.
type Emitted<'a> = (&'a [u8], u64, Option<RowKind>);

impl TopN {
    /// A Top-N of `input_schema` rows (with the row-kind column when the input carries
    /// updates), emitting `output_schema`: the input's data columns, the rank, and the row
    /// kind unless it is a window Top-N or inserts only.
    pub fn new(input_schema: &SchemaRef, ranks: Ranks, output_schema: SchemaRef, batch_rows: usize) -> Result<Self> {
        if ranks.start == 0 || ranks.end < ranks.start {
            return Err(OperatorError::InvalidPlan(format!("the ranks {}..={} are empty", ranks.start, ranks.end)));
        }
        let retracting = changelog::row_kind_index(input_schema).is_some();
        if retracting && ranks.window_end.is_some() {
            return Err(OperatorError::InvalidPlan("a window Top-N reads an append-only input".into()));
        }
        let data = changelog::without_row_kind(input_schema);
        let sort_fields = ranks
            .order
            .iter()
            .map(|s| {
                let field = data.fields().get(s.column).ok_or_else(|| {
                    OperatorError::InvalidPlan(format!("ORDER BY column {} is out of range", s.column))
                })?;
                let options = arrow::compute::SortOptions { descending: s.descending, nulls_first: s.nulls_first };
                Ok(SortField::new_with_options(field.data_type().clone(), options))
            })
            .collect::<Result<Vec<_>>>()?;
        let all: Vec<usize> = (0..data.fields().len()).collect();
        let mut tables = in_memory();
        Ok(TopN {
            partition_converter: key_converter(&data, &ranks.partition)?,
            hasher: KeyHasher::new(&data, &ranks.partition)?,
            sort_converter: RowConverter::new(sort_fields).map_err(|e| OperatorError::arrow("ORDER BY", e))?,
            row_converter: key_converter(&data, &all)?,
            rankings: tables.value(RANKINGS, None)?,
            timers: TimerService::open(&mut tables)?,
            ranks,
            retracting,
            output_schema,
            batch_rows: batch_rows.max(1),
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
            state_ttl: None,
            pending: HashMap::new(),
            shown: HashMap::new(),
            watermark: i64::MIN,
            late_records_dropped: 0,
        })
    }

    /// This Top-N forgetting partitions not updated for `ttl` (`None`: never).
    pub fn with_state_ttl(mut self, ttl: Option<Duration>) -> Result<Self> {
        self.state_ttl = ttl;
        self.rankings = in_memory().value(RANKINGS, ttl)?;
        Ok(self)
    }

    /// The Top-N a plan describes, emitting batches of at most `batch_rows`.
    pub fn from_spec(spec: &sluice_proto::TopNSpec, batch_rows: usize) -> Result<Self> {
        let input = sluice_core::schema::decode_schema(&spec.input_schema)?;
        let output = sluice_core::schema::decode_schema(&spec.output_schema)?;
        let ranks = Ranks {
            partition: spec.partition_columns.iter().map(|&c| c as usize).collect(),
            order: spec
                .order
                .iter()
                .map(|s| SortColumn { column: s.column as usize, descending: s.descending, nulls_first: s.nulls_first })
                .collect(),
            start: spec.rank_start,
            end: spec.rank_end,
            newer_first_on_ties: spec.newer_first_on_ties,
            window_end: spec.window_end_column.map(|c| c as usize),
            inserts_only: spec.inserts_only,
        };
        TopN::new(&input, ranks, output, batch_rows)?.with_state_ttl(spec.state_ttl_ms.map(Duration::from_millis))
    }

    /// The partition's ranking, loaded into `pending` (`None` when it has none yet).
    fn load(&mut self, key: &PartitionKey) -> Result<Option<&mut Ranking>> {
        if !self.pending.contains_key(key) {
            match self.rankings.get(key.0, &key.1)? {
                Some(ranking) => {
                    self.pending.insert(key.clone(), ranking);
                }
                None => return Ok(None),
            }
        }
        Ok(self.pending.get_mut(key))
    }

    /// The encoded rows of the emitted ranks of a ranking.
    fn visible(&self, ranking: Option<&Ranking>) -> Vec<Vec<u8>> {
        let Some(ranking) = ranking else { return Vec::new() };
        let from = (self.ranks.start - 1) as usize;
        let to = (self.ranks.end as usize).min(ranking.entries.len());
        ranking.entries.get(from..to).unwrap_or_default().iter().map(|e| e.row.clone()).collect()
    }

    /// Writes the pending rankings to the store (removing emptied ones).
    fn flush(&mut self) -> Result<()> {
        for ((group, key), ranking) in self.pending.drain() {
            if ranking.entries.is_empty() {
                self.rankings.remove(group, &key)?;
            } else {
                self.rankings.put(group, &key, &ranking)?;
            }
        }
        Ok(())
    }

    /// Top-N: emits the changes of the partitions changed since the last emission.
    fn emit_changes(&mut self, out: &mut Collector) -> Result<()> {
        let shown: Vec<(PartitionKey, Vec<Vec<u8>>)> = self.shown.drain().collect();
        let mut rows: Vec<(Vec<u8>, u64, Option<RowKind>)> = Vec::new();
        for (key, before) in shown {
            let after = self.visible(self.pending.get(&key));
            for i in 0..before.len().max(after.len()) {
                let rank = self.ranks.start + i as u64;
                match (before.get(i), after.get(i)) {
                    (None, Some(new)) => rows.push((new.clone(), rank, Some(RowKind::Insert))),
                    (Some(old), None) => rows.push((old.clone(), rank, Some(RowKind::Delete))),
                    (Some(old), Some(new)) if old != new => {
                        rows.push((old.clone(), rank, Some(RowKind::UpdateBefore)));
                        rows.push((new.clone(), rank, Some(RowKind::UpdateAfter)));
                    }
                    _ => {}
                }
            }
        }
        let rows: Vec<Emitted> = rows.iter().map(|(r, rank, kind)| (r.as_slice(), *rank, *kind)).collect();
        self.output(&rows, out)
    }

    /// Sends `rows` in batches of at most `batch_rows`.
    fn output(&self, rows: &[Emitted], out: &mut Collector) -> Result<()> {
        for chunk in rows.chunks(self.batch_rows) {
            let parser = self.row_converter.parser();
            let mut columns = self
                .row_converter
                .convert_rows(chunk.iter().map(|(row, _, _)| parser.parse(row)))
                .map_err(|e| OperatorError::arrow("Top-N rows", e))?;
            let rank_type = self
                .output_schema
                .fields()
                .get(columns.len())
                .ok_or_else(|| OperatorError::InvalidPlan("the Top-N output lacks the rank column".into()))?
                .data_type();
            let ranks: ArrayRef = Arc::new(UInt64Array::from_iter_values(chunk.iter().map(|(_, rank, _)| *rank)));
            columns.push(cast(&ranks, rank_type).map_err(|e| OperatorError::arrow("Top-N rank", e))?);
            if self.ranks.window_end.is_none() && !self.ranks.inserts_only {
                let kinds = chunk.iter().map(|(_, _, kind)| kind.unwrap_or(RowKind::Insert).to_byte());
                columns.push(Arc::new(Int8Array::from_iter_values(kinds)));
            }
            let batch = RecordBatch::try_new(self.output_schema.clone(), columns)
                .map_err(|e| OperatorError::arrow("Top-N output", e))?;
            out.batch(batch);
        }
        Ok(())
    }

    /// Window Top-N: emits the windows that fired at `watermark` and frees them.
    fn fire(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        let due = self.timers.due_event_timers(watermark)?;
        let mut fired: Vec<Ranking> = Vec::with_capacity(due.len());
        for timer in due {
            let key = (timer.key_group, timer.key);
            let ranking = match self.pending.remove(&key) {
                Some(ranking) => Some(ranking),
                None => self.rankings.get(key.0, &key.1)?,
            };
            self.rankings.remove(key.0, &key.1)?;
            fired.extend(ranking);
        }
        let mut rows: Vec<Emitted> = Vec::new();
        for ranking in &fired {
            let from = (self.ranks.start - 1) as usize;
            let to = (self.ranks.end as usize).min(ranking.entries.len());
            for (i, entry) in ranking.entries.get(from..to).unwrap_or_default().iter().enumerate() {
                rows.push((entry.row.as_slice(), self.ranks.start + i as u64, None));
            }
        }
        self.output(&rows, out)
    }
}

/// The row encodings of `columns` (`rows` empty ones when there are no columns).
fn encoded(converter: &RowConverter, columns: &[ArrayRef], rows: usize, what: &str) -> Result<Vec<Vec<u8>>> {
    if columns.is_empty() {
        return Ok(vec![Vec::new(); rows]);
    }
    let encoded = converter.convert_columns(columns).map_err(|e| OperatorError::arrow(what, e))?;
    Ok(encoded.iter().map(|r| r.as_ref().to_vec()).collect())
}

#[async_trait]
impl Operator for TopN {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let changes = changelog::split(&batch)?;
        let data = &changes.rows;
        let rows_in = data.num_rows();
        let partitions: Vec<ArrayRef> = self.ranks.partition.iter().map(|&c| data.column(c).clone()).collect();
        let keys = encoded(&self.partition_converter, &partitions, rows_in, "PARTITION BY")?;
        // One ranking over all rows (no PARTITION BY) lives under key group 0.
        let hashes = if partitions.is_empty() { vec![0; rows_in] } else { self.hasher.hashes(data)? };
        let order: Vec<ArrayRef> = self.ranks.order.iter().map(|s| data.column(s.column).clone()).collect();
        let sorts = encoded(&self.sort_converter, &order, rows_in, "ORDER BY")?;
        let rows = encoded(&self.row_converter, data.columns(), rows_in, "Top-N rows")?;
        let ends = self.ranks.window_end.map(|c| millis(data.column(c))).transpose()?;
        let keep = if self.retracting { usize::MAX } else { self.ranks.end as usize };
        for (row, kind) in changes.kinds.iter().enumerate() {
            let key = (key_group(hashes[row], self.max_parallelism), keys[row].clone());
            if let Some(ends) = &ends {
                if ends.is_null(row) {
                    continue;
                }
                let end = ends.value(row);
                if end - 1 <= self.watermark {
                    self.late_records_dropped += 1;
                    continue;
                }
                if self.load(&key)?.is_none() {
                    self.timers.register(TimeDomain::EventTime, key.0, &key.1, end - 1)?;
                }
            } else if !self.shown.contains_key(&key) {
                self.load(&key)?;
                let before = self.visible(self.pending.get(&key));
                self.shown.insert(key.clone(), before);
            }
            self.load(&key)?;
            let newer_first = self.ranks.newer_first_on_ties;
            let ranking = self.pending.entry(key).or_default();
            if kind.is_retraction() {
                ranking.retract(&sorts[row], &rows[row]);
            } else {
                ranking.insert(Entry::new(sorts[row].clone(), rows[row].clone()), newer_first, keep);
            }
        }
        if self.ranks.window_end.is_none() {
            self.emit_changes(out)?;
        }
        if self.pending.len() >= MAX_PENDING {
            self.flush()?;
        }
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        if self.ranks.window_end.is_some() {
            self.fire(watermark, out)?;
        }
        out.watermark(watermark);
        Ok(())
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        if self.ranks.window_end.is_some() {
            // Every window still open fires at the end of the input.
            self.fire(i64::MAX, out)?;
        }
        Ok(())
    }

    fn uses_keyed_state(&self) -> bool {
        true
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if let Some(mut tables) = init.tables() {
            self.rankings = tables.value(RANKINGS, self.state_ttl)?;
            self.timers = TimerService::open(&mut tables)?;
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.max_parallelism = ctx.max_parallelism;
        Ok(())
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        self.flush()?;
        Ok(OperatorState::default())
    }

    fn metrics(&self) -> Vec<Metric> {
        if self.ranks.window_end.is_none() {
            return Vec::new();
        }
        vec![metrics::counter(LATE_RECORDS_DROPPED, self.late_records_dropped)]
    }
}

#[cfg(test)]
mod tests;
