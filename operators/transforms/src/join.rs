//! Regular joins (`INNER`, `LEFT`, `RIGHT`, `FULL OUTER`) of two streams on equal keys, with
//! an optional residual condition, as Flink's streaming join: both sides are kept in keyed
//! state (under the key's key group, so the join restores at any parallelism) and every
//! row is joined with the other side's rows of its key as it comes.
//!
//! The output is a changelog: `+I` for a joined row that appears, `-D` for one that goes.
//! A row of an outer side without a match is emitted padded with NULLs; when its first
//! match arrives the padded row is retracted (`-D`) before the joined one is inserted, and
//! when its last match is retracted the padded row comes back. For that each kept row
//! counts its matches. Both inputs may carry updates (`-U`/`-D` retract a kept row). An
//! inner join of two append-only inputs only ever inserts, and emits no row kinds.
//!
//! State: per side, a map table from the key to each distinct row (its encoding) with its
//! number of copies and of matches; `table.exec.state.ttl` forgets rows not touched for
//! that long. Keys with a NULL never match, as in SQL. An interval join (module
//! `interval`) also forgets rows as the watermark passes the last time they could match.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray, Int8Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::physical_expr::PhysicalExpr;

use crate::keyed_aggregate::in_memory;
use crate::window_aggregate::millis;
use sluice_core::changelog::{self, RowKind};
use sluice_core::keys::key_group;
use sluice_core::timers::{TimeDomain, TimerService};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

mod interval;
mod side;
pub use interval::Interval;
use side::{Kept, Side};

/// Which rows without a match a join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    /// Only matched rows.
    Inner,
    /// Also the left side's unmatched rows.
    Left,
    /// Also the right side's unmatched rows.
    Right,
    /// Also both sides' unmatched rows.
    Full,
}

impl JoinKind {
    /// True when side `side` (0 left, 1 right) keeps its unmatched rows.
    fn outer(self, side: usize) -> bool {
        matches!((self, side), (JoinKind::Full, _) | (JoinKind::Left, 0) | (JoinKind::Right, 1))
    }
}

/// One side of a join as planned.
#[derive(Debug, Clone)]
pub struct JoinInput {
    /// The side's rows (with the row-kind column when they carry updates).
    pub schema: SchemaRef,
    /// How many leading columns are the side's data (the join key columns follow).
    pub data_columns: usize,
    /// The key columns, in the order of the other side's.
    pub keys: Vec<usize>,
}

/// The join of one subtask.
pub struct Join {
    kind: JoinKind,
    sides: [Side; 2],
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// The joined data columns (left, then right, named as in the output), which the
    /// filter reads.
    joined: SchemaRef,
    output_schema: SchemaRef,
    emits_kinds: bool,
    batch_rows: usize,
    max_parallelism: u32,
    state_ttl: Option<Duration>,
    /// An interval join's time bounds: rows are forgotten when they can match nothing more.
    interval: Option<Interval>,
    timers: TimerService,
}

/// A joined row going out: the left and right rows (`None`: NULLs), and its kind.
type Joined = (Option<Vec<u8>>, Option<Vec<u8>>, RowKind);

impl Join {
    /// A join of `left` and `right` emitting `output_schema` (the data columns of both,
    /// then the row kind unless `kind` is inner over two append-only inputs), keeping pairs
    /// for which `filter` (over the data columns of both) holds.
    pub fn new(
        kind: JoinKind,
        left: JoinInput,
        right: JoinInput,
        filter: Option<Arc<dyn PhysicalExpr>>,
        output_schema: SchemaRef,
        batch_rows: usize,
    ) -> Result<Self> {
        if left.keys.len() != right.keys.len() || left.keys.is_empty() {
            return Err(OperatorError::InvalidPlan("a join needs as many keys on both sides, at least one".into()));
        }
        let emits_kinds = changelog::row_kind_index(&output_schema).is_some();
        // The filter reads the joined columns by their output names.
        let joined = changelog::without_row_kind(&output_schema);
        if joined.fields().len() != left.data_columns + right.data_columns {
            return Err(OperatorError::InvalidPlan("the join's output is not both sides' data columns".into()));
        }
        let mut tables = in_memory();
        let sides = [Side::new(&left, &mut tables, 0, None)?, Side::new(&right, &mut tables, 1, None)?];
        let timers = TimerService::open(&mut tables)?;
        Ok(Join {
            interval: None,
            timers,
            kind,
            sides,
            filter,
            joined,
            output_schema,
            emits_kinds,
            batch_rows: batch_rows.max(1),
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
            state_ttl: None,
        })
    }

    /// This join as an interval join: rows are forgotten once `interval` says they can
    /// match nothing more.
    pub fn with_interval(mut self, interval: Interval) -> Self {
        self.interval = Some(interval);
        self
    }

    /// This join forgetting rows not touched for `ttl` (`None`: never).
    pub fn with_state_ttl(mut self, ttl: Option<Duration>) -> Result<Self> {
        self.state_ttl = ttl;
        let mut tables = in_memory();
        for side in &mut self.sides {
            side.open(&mut tables, ttl)?;
        }
        self.timers = TimerService::open(&mut tables)?;
        Ok(self)
    }

    /// The join a plan describes, emitting batches of at most `batch_rows`.
    pub fn from_spec(spec: &sluice_proto::JoinSpec, batch_rows: usize) -> Result<Self> {
        use sluice_proto::join_spec::JoinType;
        let decode = sluice_core::schema::decode_schema;
        let side = |schema: &[u8], data: u32, keys: &[u32]| -> Result<JoinInput> {
            Ok(JoinInput {
                schema: decode(schema)?,
                data_columns: data as usize,
                keys: keys.iter().map(|&k| k as usize).collect(),
            })
        };
        let left = side(&spec.left_schema, spec.left_data_columns, &spec.left_keys)?;
        let right = side(&spec.right_schema, spec.right_data_columns, &spec.right_keys)?;
        let kind = match JoinType::try_from(spec.join_type) {
            Ok(JoinType::Inner) => JoinKind::Inner,
            Ok(JoinType::Left) => JoinKind::Left,
            Ok(JoinType::Right) => JoinKind::Right,
            Ok(JoinType::Full) => JoinKind::Full,
            Err(_) => return Err(OperatorError::InvalidPlan(format!("unknown join type {}", spec.join_type))),
        };
        let output = decode(&spec.output_schema)?;
        let joined = changelog::without_row_kind(&output);
        let filter = spec.filter.as_deref().map(|f| crate::expr::decode_physical(f, &joined)).transpose()?;
        let join = Join::new(kind, left, right, filter, output, batch_rows)?
            .with_state_ttl(spec.state_ttl_ms.map(Duration::from_millis))?;
        Ok(match &spec.interval {
            Some(i) => join.with_interval(Interval {
                left_time: i.left_time as usize,
                right_time: i.right_time as usize,
                lower: i.lower_ms,
                upper: i.upper_ms,
            }),
            None => join,
        })
    }

    /// Which of `candidates` (rows of the other side) pass the filter with `row` of side
    /// `side`.
    fn passing(&self, side: usize, row: &[u8], candidates: &[(Vec<u8>, Kept)]) -> Result<Vec<bool>> {
        let Some(filter) = &self.filter else { return Ok(vec![true; candidates.len()]) };
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.sides[side].decode(std::iter::repeat_n(row, candidates.len()))?;
        let other = self.sides[1 - side].decode(candidates.iter().map(|(r, _)| r.as_slice()))?;
        let (left, right) = if side == 0 { (this, other) } else { (other, this) };
        let mut columns = left;
        columns.extend(right);
        let pairs = RecordBatch::try_new(self.joined.clone(), columns)
            .map_err(|e| OperatorError::arrow("join condition", e))?;
        let result = filter
            .evaluate(&pairs)
            .and_then(|v| v.into_array(pairs.num_rows()))
            .map_err(|e| OperatorError::Evaluation(format!("join condition: {e}")))?;
        let result = result
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| OperatorError::InvalidPlan("the join condition is not BOOLEAN".into()))?;
        Ok((0..result.len()).map(|i| result.is_valid(i) && result.value(i)).collect())
    }

    /// Joins one change of side `side` (`row` with key `key` in key group `group`; `key`
    /// `None` when it has a NULL) and records it in state.
    fn change(
        &mut self,
        side: usize,
        group: u32,
        key: Option<&[u8]>,
        row: Vec<u8>,
        kind: RowKind,
        out: &mut Vec<Joined>,
    ) -> Result<()> {
        let other = 1 - side;
        let (this_outer, other_outer) = (self.kind.outer(side), self.kind.outer(other));
        let pair = |this: Option<Vec<u8>>, that: Option<Vec<u8>>, kind: RowKind| -> Joined {
            if side == 0 {
                (this, that, kind)
            } else {
                (that, this, kind)
            }
        };
        let retract = kind.is_retraction();
        let Some(key) = key else {
            // A NULL key matches nothing: only an outer side shows the row.
            if this_outer {
                out.push(pair(Some(row), None, if retract { RowKind::Delete } else { RowKind::Insert }));
            }
            return Ok(());
        };
        if retract && self.sides[side].get(group, key, &row)?.is_none() {
            return Ok(()); // never seen (or expired): nothing to take back
        }
        let candidates = self.sides[other].rows(group, key)?;
        let passing = self.passing(side, &row, &candidates)?;
        let mut matches = 0u64;
        for ((that, mut kept), pass) in candidates.into_iter().zip(passing) {
            if !pass {
                continue;
            }
            matches += kept.count;
            // The other row's padded copy goes before its first match comes.
            if other_outer && !retract && kept.matches == 0 {
                for _ in 0..kept.count {
                    out.push(pair(None, Some(that.clone()), RowKind::Delete));
                }
            }
            for _ in 0..kept.count {
                let joined = if retract { RowKind::Delete } else { RowKind::Insert };
                out.push(pair(Some(row.clone()), Some(that.clone()), joined));
            }
            if other_outer {
                kept.matches = if retract { kept.matches.saturating_sub(1) } else { kept.matches + 1 };
                if retract && kept.matches == 0 {
                    for _ in 0..kept.count {
                        out.push(pair(None, Some(that.clone()), RowKind::Insert));
                    }
                }
                self.sides[other].put(group, key, &that, &kept)?;
            }
        }
        if this_outer && matches == 0 {
            out.push(pair(Some(row.clone()), None, if retract { RowKind::Delete } else { RowKind::Insert }));
        }
        self.sides[side].record(group, key, &row, retract, matches)
    }

    /// Emits joined rows in batches of at most `batch_rows`.
    fn emit(&self, joined: &[Joined], out: &mut Collector) -> Result<()> {
        for chunk in joined.chunks(self.batch_rows) {
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
            for (side, pick) in [(0, 0usize), (1, 1usize)] {
                let rows: Vec<Option<&[u8]>> =
                    chunk.iter().map(|j| if pick == 0 { j.0.as_deref() } else { j.1.as_deref() }).collect();
                columns.extend(self.sides[side].decode_padded(&rows)?);
            }
            if self.emits_kinds {
                columns.push(Arc::new(Int8Array::from_iter_values(chunk.iter().map(|j| j.2.to_byte()))));
            }
            let batch = RecordBatch::try_new(self.output_schema.clone(), columns)
                .map_err(|e| OperatorError::arrow("join output", e))?;
            out.batch(batch);
        }
        Ok(())
    }
}

#[async_trait]
impl Operator for Join {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        self.process_input(0, batch, out).await
    }

    async fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let side = input.min(1);
        let changes = changelog::split(&batch)?;
        let keyed = self.sides[side].keyed(&changes.rows)?;
        let times = match &self.interval {
            Some(interval) => Some(millis(changes.rows.column(interval.column(side)))?),
            None => None,
        };
        let mut joined = Vec::new();
        for (row, kind) in changes.kinds.iter().enumerate() {
            let group = key_group(keyed.hashes[row], self.max_parallelism);
            let key = keyed.keys[row].as_deref();
            self.change(side, group, key, keyed.rows[row].clone(), *kind, &mut joined)?;
            if let (Some(interval), Some(times), Some(key)) = (&self.interval, &times, key) {
                if times.is_valid(row) {
                    let expiry = interval.expiry(side, times.value(row));
                    self.timers.register(TimeDomain::EventTime, group, &interval::timer_key(side, key), expiry)?;
                }
            }
        }
        self.emit(&joined, out)
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        if let Some(interval) = self.interval {
            for timer in self.timers.due_event_timers(watermark)? {
                let Some((&side, key)) = timer.key.split_first() else { continue };
                let side = usize::from(side).min(1);
                interval::expire(&self.sides[side], side, &interval, timer.key_group, key, watermark)?;
            }
        }
        out.watermark(watermark);
        Ok(())
    }

    fn uses_keyed_state(&self) -> bool {
        true
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if let Some(mut tables) = init.tables() {
            for side in &mut self.sides {
                side.open(&mut tables, self.state_ttl)?;
            }
            self.timers = TimerService::open(&mut tables)?;
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.max_parallelism = ctx.max_parallelism;
        Ok(())
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::default())
    }
}

#[cfg(test)]
mod tests;
