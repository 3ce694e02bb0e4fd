//! Keyed aggregation (`GROUP BY k` with the functions of [`crate::aggregate`]) over
//! hash-partitioned input.
//!
//! The accumulators of each key are keyed state (RocksDB in a task manager), in the value
//! table [`ACCUMULATORS`] under the key's key group, so the operator restores at any
//! parallelism. Keys touched since the last flush are kept in memory and written to the
//! store in one batch at each checkpoint (or when too many are pending). In streaming mode
//! results are updated as rows come (module `updates`); in batch mode they are emitted when
//! the input ends. With a state TTL (`table.exec.state.ttl`), a group not
//! updated for that long is forgotten, as in Flink: its next row starts it afresh. Over an
//! updating input (its schema has the row-kind column) `-U` and `-D` rows are taken out of
//! their group again, and a group left without rows is deleted (`-D`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::RowConverter;
use async_trait::async_trait;

use crate::aggregate::{Acc, Accumulators, Aggregates, Call};
use sluice_core::keys::{key_converter, key_group, KeyHasher};
use sluice_core::state::tables::ValueTable;
use sluice_core::state::{MemoryStateStore, StateClock, StateTables};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};
pub use updates::MiniBatch;
use updates::Updates;

mod updates;

/// Keys kept in memory before their accumulators are written to the store.
const MAX_PENDING_KEYS: usize = 65_536;
/// The name of the accumulator table in the operator's keyed state.
pub const ACCUMULATORS: &str = "accumulators";

/// The running aggregation of one subtask.
pub struct KeyedAggregate {
    key_columns: Vec<usize>,
    aggregates: Aggregates,
    output_schema: SchemaRef,
    batch_rows: usize,
    key_converter: RowConverter,
    hasher: KeyHasher,
    max_parallelism: u32,
    state_ttl: Option<Duration>,
    accumulators: ValueTable<Accumulators>,
    /// Accumulators changed since the last flush, by (key group, key).
    pending: HashMap<(u32, Vec<u8>), Vec<Acc>>,
    /// Streaming mode: the keys whose results changed since they were last emitted.
    updates: Option<Updates>,
}

/// Keyed state in memory, until a task hands the operator its store.
pub(crate) fn in_memory() -> StateTables {
    StateTables::new(
        Arc::new(MemoryStateStore::default()),
        (0, sluice_core::keys::DEFAULT_MAX_PARALLELISM),
        StateClock::System,
    )
}

impl KeyedAggregate {
    /// An aggregation grouping on `key_columns` of `input_schema`, emitting `output_schema`
    /// (the keys, then one column per call).
    pub fn new(
        input_schema: &SchemaRef,
        key_columns: Vec<usize>,
        calls: Vec<Call>,
        output_schema: SchemaRef,
        batch_rows: usize,
    ) -> Result<Self> {
        let output_types = (0..calls.len())
            .map(|i| {
                output_schema.fields().get(key_columns.len() + i).map(|f| f.data_type().clone()).ok_or_else(|| {
                    OperatorError::InvalidPlan("the aggregate's output schema lacks a result column".into())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let aggregates = Aggregates::new(input_schema, calls, output_types)?;
        let aggregates = if sluice_core::changelog::row_kind_index(input_schema).is_some() {
            aggregates.retracting()?
        } else {
            aggregates
        };
        Ok(KeyedAggregate {
            aggregates,
            key_converter: key_converter(input_schema, &key_columns)?,
            hasher: KeyHasher::new(input_schema, &key_columns)?,
            key_columns,
            output_schema,
            batch_rows,
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
            state_ttl: None,
            accumulators: Self::table(in_memory(), None)?,
            pending: HashMap::new(),
            updates: None,
        })
    }

    /// This aggregation emitting updates as rows come (streaming mode), its output schema
    /// ending with the row-kind column; with `mini_batch`, updates are buffered longer.
    pub fn with_changelog(mut self, mini_batch: Option<MiniBatch>) -> Result<Self> {
        if sluice_core::changelog::row_kind_index(&self.output_schema).is_none() {
            return Err(OperatorError::InvalidPlan("an updating aggregate's output needs the row-kind column".into()));
        }
        let emit_unchanged = self.state_ttl.is_some();
        self.updates = Some(Updates::new(&self.output_schema, self.key_columns.len(), mini_batch, emit_unchanged)?);
        Ok(self)
    }

    /// The aggregation a plan describes, emitting batches of at most `batch_rows`.
    pub fn from_spec(spec: &sluice_proto::KeyedAggregateSpec, batch_rows: usize) -> Result<Self> {
        let calls = spec.aggregates.iter().map(Call::from_proto).collect::<Result<Vec<_>>>()?;
        KeyedAggregate::new(
            &sluice_core::schema::decode_schema(&spec.input_schema)?,
            spec.key_columns.iter().map(|&c| c as usize).collect(),
            calls,
            sluice_core::schema::decode_schema(&spec.output_schema)?,
            batch_rows,
        )?
        .with_state_ttl(spec.state_ttl_ms.map(Duration::from_millis))
        .and_then(|agg| {
            if !spec.emit_changelog {
                return Ok(agg);
            }
            let mini_batch = match (spec.mini_batch_latency_ms, spec.mini_batch_size) {
                (Some(latency), Some(size)) => {
                    Some(MiniBatch { latency: Duration::from_millis(latency), size: size.max(1) })
                }
                _ => None,
            };
            agg.with_changelog(mini_batch)
        })
    }

    /// This aggregation forgetting groups not updated for `ttl` (`None`: never).
    pub fn with_state_ttl(mut self, ttl: Option<Duration>) -> Result<Self> {
        self.state_ttl = ttl;
        self.accumulators = Self::table(in_memory(), ttl)?;
        Ok(self)
    }

    fn table(mut tables: StateTables, ttl: Option<Duration>) -> Result<ValueTable<Accumulators>> {
        tables.value(ACCUMULATORS, ttl)
    }

    /// Writes the pending accumulators to the store.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending: Vec<((u32, Vec<u8>), Accumulators)> =
            self.pending.drain().map(|(k, accs)| (k, Accumulators(accs))).collect();
        self.accumulators.put_all(pending.iter().map(|((g, k), a)| (*g, k.as_slice(), a)))
    }

    /// Streaming mode: emits the updates of the keys changed since the last emission.
    fn emit_updates(&mut self, out: &mut Collector) -> Result<()> {
        let Some(updates) = &mut self.updates else { return Ok(()) };
        let changed = updates.take();
        if changed.is_empty() {
            return Ok(());
        }
        for chunk in changed.chunks(self.batch_rows.max(1)) {
            let mut after = Vec::with_capacity(chunk.len());
            for (key, _) in chunk {
                let accs = match self.pending.get(key) {
                    Some(accs) => accs.clone(),
                    None => match self.accumulators.get(key.0, &key.1)? {
                        Some(Accumulators(a)) => a,
                        None => return Err(OperatorError::State("a changed group is missing from state".into())),
                    },
                };
                // A group whose rows were all retracted is deleted.
                if self.aggregates.is_retracting() && self.aggregates.rows(&accs) <= 0 {
                    self.pending.remove(key);
                    self.accumulators.remove(key.0, &key.1)?;
                    after.push(None);
                } else {
                    after.push(Some(accs));
                }
            }
            let parser = self.key_converter.parser();
            let keys = self
                .key_converter
                .convert_rows(chunk.iter().map(|((_, k), _)| parser.parse(k)))
                .map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
            let before: Vec<Option<&[Acc]>> = chunk.iter().map(|(_, b)| b.as_deref()).collect();
            let after: Vec<Option<&[Acc]>> = after.iter().map(Option::as_deref).collect();
            let updates = self.updates.as_ref().expect("checked above");
            if let Some(batch) = updates.rows(&self.aggregates, keys, &before, &after, &self.output_schema)? {
                out.batch(batch);
            }
        }
        Ok(())
    }

    /// Emits every group, in key-group order, in batches of at most `batch_rows`.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        self.flush()?;
        let mut out = Vec::new();
        let entries = self.accumulators.entries()?;
        // The results are emitted now: the state is done with, and a final checkpoint must
        // not hold it, or a job restored from that checkpoint would emit it again.
        self.accumulators.remove_all(entries.iter().map(|(g, k, _)| (*g, k.as_slice())))?;
        let mut keys = Vec::with_capacity(entries.len());
        let mut accs = Vec::with_capacity(entries.len());
        for (_, key, Accumulators(a)) in entries {
            self.aggregates.check(&a)?;
            keys.push(key);
            accs.push(a);
        }
        for (key_chunk, acc_chunk) in keys.chunks(self.batch_rows.max(1)).zip(accs.chunks(self.batch_rows.max(1))) {
            let parser = self.key_converter.parser();
            let mut columns = self
                .key_converter
                .convert_rows(key_chunk.iter().map(|k| parser.parse(k)))
                .map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
            let groups: Vec<&[Acc]> = acc_chunk.iter().map(Vec::as_slice).collect();
            columns.extend(self.aggregates.columns(&groups)?);
            out.push(
                RecordBatch::try_new(self.output_schema.clone(), columns)
                    .map_err(|e| OperatorError::arrow("aggregate output", e))?,
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl Operator for KeyedAggregate {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let keys: Vec<ArrayRef> = self.key_columns.iter().map(|&c| batch.column(c).clone()).collect();
        let rows = self.key_converter.convert_columns(&keys).map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
        let hashes = self.hasher.hashes(&batch)?;
        let inputs = self.aggregates.prepare(&batch)?;
        let kinds =
            if self.aggregates.is_retracting() { Some(sluice_core::changelog::split(&batch)?.kinds) } else { None };
        for (row, &hash) in hashes.iter().enumerate() {
            let stored = (key_group(hash, self.max_parallelism), rows.row(row).as_ref().to_vec());
            if let Some(updates) = &mut self.updates {
                if !updates.knows(&stored) {
                    // The key's accumulators as last emitted, before this change.
                    let before = match self.pending.get(&stored) {
                        Some(accs) => Some(accs.clone()),
                        None => {
                            let found = self.accumulators.get(stored.0, &stored.1)?.map(|Accumulators(a)| a);
                            let current = found.clone().unwrap_or_else(|| self.aggregates.initial());
                            self.aggregates.check(&current)?;
                            self.pending.insert(stored.clone(), current);
                            found
                        }
                    };
                    updates.touch(stored.clone(), before);
                }
            }
            let group = match self.pending.entry(stored) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let (g, k) = e.key();
                    let accs = match self.accumulators.get(*g, k)? {
                        Some(Accumulators(a)) => {
                            self.aggregates.check(&a)?;
                            a
                        }
                        None => self.aggregates.initial(),
                    };
                    e.insert(accs)
                }
            };
            match &kinds {
                Some(kinds) if kinds[row].is_retraction() => self.aggregates.retract(group, &inputs, row)?,
                _ => self.aggregates.accumulate(group, &inputs, row)?,
            }
        }
        if self.updates.as_mut().is_some_and(|u| u.add_rows(batch.num_rows())) {
            self.emit_updates(out)?;
        }
        if self.pending.len() >= MAX_PENDING_KEYS {
            self.flush()?;
        }
        Ok(())
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.updates.as_ref().and_then(Updates::deadline)
    }

    async fn on_timer(&mut self, out: &mut Collector) -> Result<()> {
        self.emit_updates(out)
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.emit_updates(out)?;
        out.watermark(watermark);
        Ok(())
    }

    async fn on_barrier(&mut self, _barrier: sluice_core::Barrier, out: &mut Collector) -> Result<()> {
        // A checkpoint must not hold changes that were never emitted.
        self.emit_updates(out)
    }

    fn uses_keyed_state(&self) -> bool {
        true
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if let Some(tables) = init.tables() {
            self.accumulators = Self::table(tables, self.state_ttl)?;
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

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        if self.updates.is_some() {
            return self.emit_updates(out);
        }
        for batch in self.emit()? {
            out.batch(batch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_proto::AggregateFunction;

    #[tokio::test]
    async fn counts_sums_and_extremes_per_key() {
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int32, true)]));
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("c", DataType::Int64, false),
            Field::new("s", DataType::Int64, true),
            Field::new("lo", DataType::Int32, true),
            Field::new("hi", DataType::Int32, true),
            Field::new("avg", DataType::Float64, true),
        ]));
        let calls = vec![
            Call::new(AggregateFunction::CountStar, None),
            Call::new(AggregateFunction::Count, Some(1)),
            Call::new(AggregateFunction::Sum, Some(1)),
            Call::new(AggregateFunction::Min, Some(1)),
            Call::new(AggregateFunction::Max, Some(1)),
            Call::new(AggregateFunction::Avg, Some(1)),
        ];
        let mut agg = KeyedAggregate::new(&input, vec![0], calls, output, 2).unwrap();
        let batch = RecordBatch::try_new(
            input.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "a", "c", "a"])),
                Arc::new(Int32Array::from(vec![Some(5), Some(-1), None, None, Some(7)])),
            ],
        )
        .unwrap();
        agg.process_batch(batch.clone(), &mut Collector::default()).await.unwrap();
        agg.process_batch(batch, &mut Collector::default()).await.unwrap();
        let mut collector = Collector::default();
        agg.finish(&mut collector).await.unwrap();
        let out = collector.batches();
        assert_eq!(out.len(), 2, "three groups in batches of two");
        let all = arrow::compute::concat_batches(&out[0].schema(), &out).unwrap();
        let order = arrow::compute::sort_to_indices(all.column(0), None, None).unwrap();
        let all = arrow::compute::take_record_batch(&all, &order).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&[all]).unwrap().to_string();
        let expected = "\
+---+---+---+----+----+----+------+
| k | n | c | s  | lo | hi | avg  |
+---+---+---+----+----+----+------+
| a | 6 | 4 | 24 | 5  | 7  | 6.0  |
| b | 2 | 2 | -2 | -1 | -1 | -1.0 |
| c | 2 | 0 |    |    |    |      |
+---+---+---+----+----+----+------+";
        assert_eq!(text, expected);
    }

    /// Through the harness: groups aggregated at parallelism 2, a checkpoint, a restore at
    /// parallelism 3, more rows; every group's result covers both runs' rows exactly once.
    #[tokio::test]
    async fn aggregates_restored_at_another_parallelism_cover_every_row_once() {
        use sluice_core::harness::{Build, Harness};
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)]));
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Int64, true),
        ]));
        let (i, o) = (input.clone(), output.clone());
        let build: Build = Arc::new(move || {
            let calls = vec![Call::new(AggregateFunction::CountStar, None), Call::new(AggregateFunction::Sum, Some(1))];
            Ok(Box::new(KeyedAggregate::new(&i, vec![0], calls, o.clone(), 1024)?) as Box<dyn Operator>)
        });
        let keys: Vec<String> = (0..40).map(|k| format!("key{k}")).collect();
        let first: String = keys.iter().enumerate().map(|(n, k)| format!("{k} {n}\n")).collect();
        let second: String = keys.iter().map(|k| format!("{k} 1000\n{k} null\n")).collect();
        let mut h = Harness::start(build.clone(), input.clone(), Some(vec![0]), 2).await.unwrap();
        h.push(&first).await.unwrap();
        let snapshot = h.checkpoint(1).await.unwrap();
        h.push("lost 1").await.unwrap(); // after the checkpoint: the restore forgets it
        let mut restored = Harness::restore(build, input, Some(vec![0]), 3, &snapshot).await.unwrap();
        restored.push(&second).await.unwrap();
        restored.finish().await.unwrap();
        // Independently: each key has its first value n, then 1000 and a NULL.
        let mut expected: Vec<String> = keys.iter().enumerate().map(|(n, k)| format!("{k} 3 {}", n + 1000)).collect();
        expected.sort();
        assert_eq!(restored.sorted_rows(), expected);
        assert!((0..3).all(|s| !restored.rows_of(s).is_empty()), "every new subtask owns some keys");
    }

    /// `table.exec.state.ttl`: a group not updated for longer than the TTL is forgotten
    /// (its next row starts it afresh), while a group updated within it keeps counting.
    #[tokio::test]
    async fn a_group_idle_for_longer_than_the_state_ttl_starts_afresh() {
        use sluice_core::harness::{Build, Harness};
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)]));
        let output = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let (i, o) = (input.clone(), output.clone());
        let build: Build = Arc::new(move || {
            let calls = vec![Call::new(AggregateFunction::CountStar, None)];
            let agg = KeyedAggregate::new(&i, vec![0], calls, o.clone(), 1024)?;
            Ok(Box::new(agg.with_state_ttl(Some(Duration::from_secs(60)))?) as Box<dyn Operator>)
        });
        let mut h = Harness::start_with_clock(build, input, Some(vec![0]), 2, StateClock::manual(0)).await.unwrap();
        h.push("idle 1\nidle 1\nbusy 1").await.unwrap();
        h.checkpoint(1).await.unwrap();
        h.clock().advance(40_000);
        h.push("busy 1").await.unwrap();
        h.checkpoint(2).await.unwrap();
        h.clock().advance(40_000); // idle: 80 s since its last update; busy: 40 s
        h.push("idle 1\nbusy 1").await.unwrap();
        h.finish().await.unwrap();
        assert_eq!(h.sorted_rows(), vec!["busy 3", "idle 1"]);
    }

    /// Input (k, v) and output (k, COUNT(*), SUM(v), row kind) of an updating aggregate.
    fn updating(mini_batch: Option<MiniBatch>) -> (SchemaRef, sluice_core::harness::Build) {
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)]));
        let output = sluice_core::changelog::with_row_kind(&Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Int64, true),
        ]));
        let i = input.clone();
        let build: sluice_core::harness::Build = Arc::new(move || {
            let calls = vec![Call::new(AggregateFunction::CountStar, None), Call::new(AggregateFunction::Sum, Some(1))];
            let agg = KeyedAggregate::new(&i, vec![0], calls, output.clone(), 1024)?.with_changelog(mini_batch)?;
            Ok(Box::new(agg) as Box<dyn Operator>)
        });
        (input, build)
    }

    /// GROUP BY n over an updating input (k, n): COUNT(*), SUM(n), MIN(k), MAX(k) and
    /// COUNT(DISTINCT k) per count, with the expected changes worked out by hand.
    #[tokio::test]
    async fn a_group_by_over_updates_retracts_rows_and_deletes_emptied_groups() {
        use sluice_core::harness::Harness;
        let input = sluice_core::changelog::with_row_kind(&Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let output = sluice_core::changelog::with_row_kind(&Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("keys", DataType::Int64, false),
            Field::new("total", DataType::Int64, true),
            Field::new("first", DataType::Utf8, true),
            Field::new("last", DataType::Utf8, true),
            Field::new("distinct", DataType::Int64, false),
        ]));
        let i = input.clone();
        let build: sluice_core::harness::Build = Arc::new(move || {
            let mut distinct = Call::new(AggregateFunction::Count, Some(0));
            distinct.distinct = true;
            let calls = vec![
                Call::new(AggregateFunction::CountStar, None),
                Call::new(AggregateFunction::Sum, Some(1)),
                Call::new(AggregateFunction::Min, Some(0)),
                Call::new(AggregateFunction::Max, Some(0)),
                distinct,
            ];
            let agg = KeyedAggregate::new(&i, vec![1], calls, output.clone(), 1024)?.with_changelog(None)?;
            Ok(Box::new(agg) as Box<dyn Operator>)
        });
        let mut h = Harness::start(build.clone(), input.clone(), Some(vec![1]), 1).await.unwrap();
        h.push("+I a 1\n+I b 1\n+I c 1").await.unwrap();
        assert_eq!(h.rows_of(0), ["+I 1 3 3 a c 3"]);
        h.clear_output();
        // a and c reach 2: they leave group 1 (whose MIN and MAX are b again).
        h.push("-U a 1\n+U a 2\n-U c 1\n+U c 2").await.unwrap();
        assert_eq!(h.sorted_rows(), ["+I 2 2 4 a c 2", "+U 1 1 1 b b 1", "-U 1 3 3 a c 3"]);
        let snapshot = h.checkpoint(1).await.unwrap();
        let mut h = Harness::restore(build, input, Some(vec![1]), 2, &snapshot).await.unwrap();
        // b reaches 2 too: group 1 is left empty and deleted.
        h.push("-U b 1\n+U b 2").await.unwrap();
        assert_eq!(h.sorted_rows(), ["+U 2 3 6 a c 3", "-D 1 1 1 b b 1", "-U 2 2 4 a c 2"]);
        let after = h.checkpoint(2).await.unwrap();
        let groups: usize = after.keyed.iter().map(|k| k.len()).sum();
        assert_eq!(groups, 1, "only group 2 is left in state");
    }

    /// Every `-U` is followed at once by the `+U` of the same key.
    fn assert_pairs(rows: &[String]) {
        for (i, row) in rows.iter().enumerate() {
            if let Some(rest) = row.strip_prefix("-U ") {
                let key = rest.split(' ').next().unwrap();
                let next = rows.get(i + 1).map(String::as_str).unwrap_or("");
                assert!(next.starts_with(&format!("+U {key} ")), "-U without its +U: {rows:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_streaming_group_by_inserts_new_keys_and_updates_changed_ones() {
        use sluice_core::harness::Harness;
        let (input, build) = updating(None);
        let mut h = Harness::start(build, input, Some(vec![0]), 1).await.unwrap();
        h.push("a 1\nb 2\na 3").await.unwrap();
        assert_eq!(h.sorted_rows(), ["+I a 2 4", "+I b 1 2"], "one result per key per batch");
        h.clear_output();
        h.push("a 5\nc 1").await.unwrap();
        let rows = h.rows_of(0);
        assert_pairs(&rows);
        assert_eq!(h.sorted_rows(), ["+I c 1 1", "+U a 3 9", "-U a 2 4"]);
        h.clear_output();
        // SUM ignores the NULL, COUNT(*) does not: b changes.
        h.push("b null").await.unwrap();
        assert_eq!(h.rows_of(0), ["-U b 1 2", "+U b 2 2"]);
        h.clear_output();
        h.finish().await.unwrap();
        assert!(h.sorted_rows().is_empty(), "nothing is held back for the end");
    }

    #[tokio::test]
    async fn an_unchanged_result_emits_nothing() {
        use sluice_core::harness::{Build, Harness};
        let input =
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)]));
        let output = sluice_core::changelog::with_row_kind(&Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("hi", DataType::Int64, true),
        ]));
        let i = input.clone();
        let build: Build = Arc::new(move || {
            let calls = vec![Call::new(AggregateFunction::Max, Some(1))];
            let agg = KeyedAggregate::new(&i, vec![0], calls, output.clone(), 1024)?.with_changelog(None)?;
            Ok(Box::new(agg) as Box<dyn Operator>)
        });
        let mut h = Harness::start(build, input, Some(vec![0]), 1).await.unwrap();
        h.push("a 5").await.unwrap();
        h.push("a 1").await.unwrap();
        h.push("a 7").await.unwrap();
        assert_eq!(h.rows_of(0), ["+I a 5", "-U a 5", "+U a 7"]);
    }

    #[tokio::test]
    async fn a_mini_batch_emits_when_full_at_its_deadline_and_before_a_barrier() {
        use sluice_core::harness::Harness;
        let mini_batch = MiniBatch { latency: Duration::from_secs(3600), size: 3 };
        let (input, build) = updating(Some(mini_batch));
        let mut h = Harness::start(build, input, Some(vec![0]), 1).await.unwrap();
        h.push("a 1").await.unwrap();
        h.push("a 2").await.unwrap();
        assert!(h.sorted_rows().is_empty(), "two rows buffered of three");
        h.push("a 3").await.unwrap();
        assert_eq!(h.sorted_rows(), ["+I a 3 6"], "one update for three rows of a hot key");
        h.clear_output();
        h.push("a 4").await.unwrap();
        h.fire_timers().await.unwrap();
        assert_eq!(h.rows_of(0), ["-U a 3 6", "+U a 4 10"], "the deadline passed");
        h.clear_output();
        h.push("b 1").await.unwrap();
        h.checkpoint(1).await.unwrap();
        let rows = h.rows_of(0);
        assert_eq!(rows, ["+I b 1 1"], "a barrier takes the buffered changes out first");
    }

    /// Restored at another parallelism, a key's next update retracts what the first run
    /// emitted: the changelog continues where the checkpoint left it.
    #[tokio::test]
    async fn updates_continue_across_a_restore_at_another_parallelism() {
        use sluice_core::harness::Harness;
        let (input, build) = updating(None);
        let keys: Vec<String> = (0..20).map(|k| format!("key{k}")).collect();
        let mut h = Harness::start(build.clone(), input.clone(), Some(vec![0]), 2).await.unwrap();
        h.push(&keys.iter().map(|k| format!("{k} 1\n")).collect::<String>()).await.unwrap();
        let snapshot = h.checkpoint(1).await.unwrap();
        let mut restored = Harness::restore(build, input, Some(vec![0]), 3, &snapshot).await.unwrap();
        restored.push(&keys.iter().map(|k| format!("{k} 10\n")).collect::<String>()).await.unwrap();
        let mut expected: Vec<String> =
            keys.iter().flat_map(|k| [format!("-U {k} 1 1"), format!("+U {k} 2 11")]).collect();
        expected.sort();
        assert_eq!(restored.sorted_rows(), expected);
    }
}
