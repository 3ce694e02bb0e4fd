//! Window aggregation, as Flink's `GROUP BY window_start, window_end, k` over a windowing
//! function: one result row per key and window, emitted once, when the watermark passes
//! the window's last millisecond (`window_end - 1`), after which the window's state is
//! freed. A row whose windows have all fired is late: it is dropped and counted in
//! [`LATE_RECORDS_DROPPED`] (Flink's `numLateRecordsDropped`); lateness is judged per
//! window, so a HOP row still counts in the windows that have not fired.
//!
//! The windowing function upstream sends each row once with the bounds of its *slice*
//! (TUMBLE: the window; HOP: the greatest common divisor of size and slide; CUMULATE: the
//! step), and this operator adds the row to every window holding that slice, so rows are
//! not copied per window across the network. Without slices (the windowing function's
//! output went through expressions over its window columns first) each row carries one
//! window, which is used as it is.
//!
//! State: one accumulator entry per (key, window) in the value table [`WINDOWS`], under
//! the key's key group, and one event-time timer per entry at `window_end - 1`; both are
//! in every checkpoint, so windows restore at any parallelism and fire once. SESSION
//! windows merge instead (module `sessions`): each key's open sessions are one entry, with
//! one timer per session end.
//!
//! **Processing time.** Windows over a `PROCTIME()` column fire by the task's clock
//! instead: each (key, window) has a processing-time timer at `window_end - 1`, and the
//! operator's deadline is the earliest of them. A row's processing time is when this
//! operator sees it, as in Flink: a row timed upstream whose slice has begun to fire joins
//! the slice of the clock instead of being late. At the end of a bounded input every open
//! window fires, as with event time.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;
use async_trait::async_trait;
use std::sync::Arc;

use crate::aggregate::{Acc, Accumulators, Aggregates};
use crate::keyed_aggregate::in_memory;
use crate::window_tvf::WindowShape;
use sessions::{Added, Sessions, SESSIONS};
use sluice_core::keys::{key_converter, key_group, KeyHasher};
use sluice_core::metrics::{self, Metric};
use sluice_core::state::tables::{decode_time, encode_time, ValueTable};
use sluice_core::timers::{TimeDomain, TimerService};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

mod sessions;

/// The name of the table holding each (key, window)'s accumulators.
pub const WINDOWS: &str = "windows";
/// The metric counting rows dropped because every window holding them had fired.
pub const LATE_RECORDS_DROPPED: &str = "late_records_dropped";

/// Where the window columns sit among the group columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowKeys {
    /// Position of `window_start`.
    pub start: usize,
    /// Position of `window_end`.
    pub end: usize,
    /// Position of `window_time`, when grouped by it.
    pub time: Option<usize>,
}

/// The window aggregation of one subtask.
pub struct WindowAggregate {
    /// Input columns of the group keys, in output order (window columns included).
    key_columns: Vec<usize>,
    window_keys: WindowKeys,
    /// Input columns of the group keys other than the window's.
    plain_keys: Vec<usize>,
    /// The windows of a slice; `None` when rows carry their window.
    slices: Option<WindowShape>,
    aggregates: Aggregates,
    output_schema: SchemaRef,
    batch_rows: usize,
    key_converter: RowConverter,
    hasher: KeyHasher,
    max_parallelism: u32,
    windows: ValueTable<Accumulators>,
    timers: TimerService,
    /// Accumulators changed since the last flush, by (key group, stored key).
    pending: HashMap<(u32, Vec<u8>), Vec<Acc>>,
    /// SESSION windows: each key's open sessions (the other tables stay empty).
    sessions: Option<Sessions>,
    /// What fires the windows: the watermark, or the wall clock (processing time).
    domain: TimeDomain,
    /// The time windows fired through (the last watermark, or the clock at the last firing
    /// of processing-time windows): windows ending at or before it + 1 ms have fired.
    watermark: i64,
    late_records_dropped: u64,
}

/// A (key, window) entry's key: the key's row encoding, then the window's end and start.
fn stored_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut stored = Vec::with_capacity(key.len() + 16);
    stored.extend_from_slice(key);
    stored.extend_from_slice(&encode_time(end));
    stored.extend_from_slice(&encode_time(start));
    stored
}

/// The key's row encoding and the window (start, end) of a stored entry's key.
fn parse_stored_key(stored: &[u8]) -> Result<(&[u8], i64, i64)> {
    let damaged = || OperatorError::State("a stored window key is truncated".into());
    let split = stored.len().checked_sub(16).ok_or_else(damaged)?;
    let end = decode_time(&stored[split..]).ok_or_else(damaged)?;
    let start = decode_time(&stored[split + 8..]).ok_or_else(damaged)?;
    Ok((&stored[..split], start, end))
}

/// Milliseconds since the epoch of a timestamp column (any unit or zone).
pub(crate) fn millis(column: &ArrayRef) -> Result<TimestampMillisecondArray> {
    let cast = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))
        .map_err(|e| OperatorError::arrow("window bounds", e))?;
    cast.as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .cloned()
        .ok_or_else(|| OperatorError::InvalidPlan(format!("window bounds are {}", column.data_type())))
}

impl WindowAggregate {
    /// An aggregation of `input_schema` rows grouped by `key_columns` (in output order, the
    /// window columns at `window_keys` among them), emitting `output_schema` (the group
    /// columns, then one per aggregate).
    pub fn new(
        input_schema: &SchemaRef,
        key_columns: Vec<usize>,
        window_keys: WindowKeys,
        slices: Option<WindowShape>,
        aggregates: Aggregates,
        output_schema: SchemaRef,
        batch_rows: usize,
    ) -> Result<Self> {
        let positions = [Some(window_keys.start), Some(window_keys.end), window_keys.time];
        if positions.iter().flatten().any(|&p| p >= key_columns.len()) {
            return Err(OperatorError::InvalidPlan("window columns must be group columns".into()));
        }
        let plain_keys: Vec<usize> =
            key_columns.iter().enumerate().filter(|(p, _)| !positions.contains(&Some(*p))).map(|(_, &c)| c).collect();
        if plain_keys.is_empty() {
            return Err(OperatorError::InvalidPlan("a window aggregate needs a key besides the window".into()));
        }
        let mut tables = in_memory();
        let sessions = match slices {
            Some(WindowShape::Session { gap }) => Some(Sessions::new(gap, tables.value(SESSIONS, None)?)),
            _ => None,
        };
        Ok(WindowAggregate {
            sessions,
            key_converter: key_converter(input_schema, &plain_keys)?,
            hasher: KeyHasher::new(input_schema, &plain_keys)?,
            windows: tables.value(WINDOWS, None)?,
            timers: TimerService::open(&mut tables)?,
            key_columns,
            window_keys,
            plain_keys,
            slices,
            aggregates,
            output_schema,
            batch_rows: batch_rows.max(1),
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
            pending: HashMap::new(),
            domain: TimeDomain::EventTime,
            watermark: i64::MIN,
            late_records_dropped: 0,
        })
    }

    /// This aggregation's windows firing by the task's clock (processing time), not by the
    /// watermark.
    pub fn with_processing_time(mut self) -> Self {
        self.domain = TimeDomain::ProcessingTime;
        self
    }

    /// The aggregation a plan describes, emitting batches of at most `batch_rows`.
    pub fn from_spec(spec: &sluice_proto::WindowAggregateSpec, batch_rows: usize) -> Result<Self> {
        let input = sluice_core::schema::decode_schema(&spec.input_schema)?;
        let output = sluice_core::schema::decode_schema(&spec.output_schema)?;
        let keys: Vec<usize> = spec.key_columns.iter().map(|&c| c as usize).collect();
        let aggregates = Aggregates::from_proto(&spec.aggregates, &input, &output, keys.len())?;
        let window_keys = WindowKeys {
            start: spec.window_start_key as usize,
            end: spec.window_end_key as usize,
            time: spec.window_time_key.map(|t| t as usize),
        };
        let slices = spec.slices.as_ref().map(WindowShape::from_spec).transpose()?;
        let aggregate = WindowAggregate::new(&input, keys, window_keys, slices, aggregates, output, batch_rows)?;
        Ok(if spec.processing_time { aggregate.with_processing_time() } else { aggregate })
    }

    /// Writes the pending accumulators (or sessions) to the store.
    fn flush(&mut self) -> Result<()> {
        if let Some(sessions) = &mut self.sessions {
            sessions.flush()?;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending: Vec<((u32, Vec<u8>), Accumulators)> =
            self.pending.drain().map(|(k, accs)| (k, Accumulators(accs))).collect();
        self.windows.put_all(pending.iter().map(|((g, k), a)| (*g, k.as_slice(), a)))
    }

    /// Emits the windows that fired at `watermark` (a time of the operator's domain), in
    /// the order of their timers.
    fn fire(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        let due = match self.domain {
            TimeDomain::EventTime => self.timers.due_event_timers(watermark)?,
            TimeDomain::ProcessingTime => self.timers.due_processing_timers(watermark)?,
        };
        if due.is_empty() {
            return Ok(());
        }
        let mut fired: Vec<(Vec<u8>, Vec<Acc>)> = Vec::with_capacity(due.len());
        if let Some(sessions) = &mut self.sessions {
            // A session's timer is its key's: the key's sessions that ended fire.
            for timer in due {
                for session in sessions.take_fired(timer.key_group, &timer.key, watermark)? {
                    fired.push((stored_key(&timer.key, session.start, session.end), session.accs));
                }
            }
            for chunk in fired.chunks(self.batch_rows) {
                out.batch(self.results(chunk)?);
            }
            return Ok(());
        }
        for timer in due {
            let accs = match self.pending.remove(&(timer.key_group, timer.key.clone())) {
                Some(accs) => Some(accs),
                None => self.windows.get(timer.key_group, &timer.key)?.map(|Accumulators(a)| a),
            };
            self.windows.remove(timer.key_group, &timer.key)?;
            if let Some(accs) = accs {
                self.aggregates.check(&accs)?;
                fired.push((timer.key, accs));
            }
        }
        for chunk in fired.chunks(self.batch_rows) {
            out.batch(self.results(chunk)?);
        }
        Ok(())
    }

    /// The result rows of fired (key, window) entries.
    fn results(&self, fired: &[(Vec<u8>, Vec<Acc>)]) -> Result<RecordBatch> {
        let mut keys = Vec::with_capacity(fired.len());
        let (mut starts, mut ends) = (Vec::with_capacity(fired.len()), Vec::with_capacity(fired.len()));
        for (stored, _) in fired {
            let (key, start, end) = parse_stored_key(stored)?;
            keys.push(key);
            starts.push(start);
            ends.push(end);
        }
        let parser = self.key_converter.parser();
        let mut plain = self
            .key_converter
            .convert_rows(keys.iter().map(|k| parser.parse(k)))
            .map_err(|e| OperatorError::arrow("GROUP BY keys", e))?
            .into_iter();
        let times: Vec<i64> = ends.iter().map(|e| e - 1).collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output_schema.fields().len());
        for position in 0..self.key_columns.len() {
            let window_column = if position == self.window_keys.start {
                Some(&starts)
            } else if position == self.window_keys.end {
                Some(&ends)
            } else if Some(position) == self.window_keys.time {
                Some(&times)
            } else {
                None
            };
            let column = match window_column {
                Some(values) => {
                    let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(values.clone()));
                    let target = self.output_schema.field(position).data_type();
                    cast(&millis, target).map_err(|e| OperatorError::arrow("window bounds", e))?
                }
                None => plain.next().ok_or_else(|| OperatorError::InvalidPlan("missing group column".into()))?,
            };
            columns.push(column);
        }
        let groups: Vec<&[Acc]> = fired.iter().map(|(_, a)| a.as_slice()).collect();
        columns.extend(self.aggregates.columns(&groups)?);
        RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| OperatorError::arrow("window aggregate output", e))
    }
}

#[async_trait]
impl Operator for WindowAggregate {
    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let plain: Vec<ArrayRef> = self.plain_keys.iter().map(|&c| batch.column(c).clone()).collect();
        let rows = self.key_converter.convert_columns(&plain).map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
        let hashes = self.hasher.hashes(&batch)?;
        let starts = millis(batch.column(self.key_columns[self.window_keys.start]))?;
        let ends = millis(batch.column(self.key_columns[self.window_keys.end]))?;
        let inputs = self.aggregates.prepare(&batch)?;
        let mut windows: Vec<(i64, i64)> = Vec::new();
        for (row, &hash) in hashes.iter().enumerate() {
            if starts.is_null(row) || ends.is_null(row) {
                continue;
            }
            windows.clear();
            let mut start = starts.value(row);
            if let (TimeDomain::ProcessingTime, Some(shape)) = (self.domain, &self.slices) {
                // A row's processing time is when the window sees it, as in Flink: one
                // timed upstream whose slice has begun to fire belongs to the clock's slice.
                if ends.value(row) - 1 <= self.watermark {
                    start = shape.slice(self.watermark + 1).0;
                }
            }
            match &self.slices {
                Some(shape) => shape.for_each_window(start, |s, e| windows.push((s, e))),
                None => windows.push((start, ends.value(row))),
            }
            let group = key_group(hash, self.max_parallelism);
            let key = rows.row(row);
            if let Some(sessions) = &mut self.sessions {
                let mut accs = self.aggregates.initial();
                self.aggregates.accumulate(&mut accs, &inputs, row)?;
                match sessions.add(&self.aggregates, group, key.as_ref(), start, accs, self.watermark)? {
                    Added::Late => self.late_records_dropped += 1,
                    Added::Merged { replaced, end } => {
                        for old in replaced {
                            self.timers.delete(self.domain, group, key.as_ref(), old - 1)?;
                        }
                        self.timers.register(self.domain, group, key.as_ref(), end - 1)?;
                    }
                }
                continue;
            }
            let mut on_time = false;
            for &(start, end) in &windows {
                if end - 1 <= self.watermark {
                    continue; // this window fired already
                }
                on_time = true;
                let stored = (group, stored_key(key.as_ref(), start, end));
                let accs = match self.pending.entry(stored) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let (g, k) = e.key();
                        let accs = match self.windows.get(*g, k)? {
                            Some(Accumulators(a)) => {
                                self.aggregates.check(&a)?;
                                a
                            }
                            None => {
                                self.timers.register(self.domain, *g, k, end - 1)?;
                                self.aggregates.initial()
                            }
                        };
                        e.insert(accs)
                    }
                };
                self.aggregates.accumulate(accs, &inputs, row)?;
            }
            if !on_time {
                self.late_records_dropped += 1;
            }
        }
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        if self.domain == TimeDomain::EventTime {
            self.watermark = self.watermark.max(watermark);
            self.fire(watermark, out)?;
        }
        out.watermark(watermark);
        Ok(())
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        if self.domain != TimeDomain::ProcessingTime {
            return None;
        }
        let next = self.timers.next_processing_time()?;
        let wait = u64::try_from(next.saturating_sub(now_ms())).unwrap_or(0);
        Some(tokio::time::Instant::now() + std::time::Duration::from_millis(wait))
    }

    async fn on_timer(&mut self, out: &mut Collector) -> Result<()> {
        if self.domain != TimeDomain::ProcessingTime {
            return Ok(());
        }
        let now = now_ms();
        self.watermark = self.watermark.max(now);
        self.fire(now, out)
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        // Every window still open fires at the end of the input.
        self.fire(i64::MAX, out)
    }

    fn uses_keyed_state(&self) -> bool {
        true
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if let Some(mut tables) = init.tables() {
            self.windows = tables.value(WINDOWS, None)?;
            if let Some(sessions) = &mut self.sessions {
                *sessions = Sessions::new(sessions.gap, tables.value(SESSIONS, None)?);
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
        self.flush()?;
        Ok(OperatorState::default())
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![metrics::counter(LATE_RECORDS_DROPPED, self.late_records_dropped)]
    }
}

/// The wall clock, in milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
