//! An operator test harness (feature `test-util`): runs one operator at a parallelism,
//! as the task manager would, without processes. Rows are written compactly, one per
//! line with values separated by spaces (`"1 a\n2 b"`, `null` for NULL), typed by the
//! input schema; a keyed harness routes each row to the subtask owning its key group, as
//! a hash exchange does. Watermarks and barriers go to every subtask. A checkpoint takes
//! every subtask's operator lists and keyed state; [`Harness::restore`] starts fresh
//! instances from it at any parallelism (lists split or unioned, keyed state by key
//! group, as a restore does) and the test goes on.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::changelog;
use crate::keys::{key_group, key_group_range, subtask_for_key_group, KeyHasher, DEFAULT_MAX_PARALLELISM};
use crate::state::{key_group_of, KeyedStateStore, MemoryStateStore, StateClock};
use crate::watermarks::{WatermarkEvent, WatermarkTracker};
use crate::{Barrier, Collector, Distribution, Message, Operator, OperatorError, OperatorState, Result, StateInit};
use crate::{OperatorList, TaskContext};

/// Builds a fresh instance of the operator under test.
pub type Build = Arc<dyn Fn() -> Result<Box<dyn Operator>> + Send + Sync>;

/// What a checkpoint took of every subtask.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The checkpoint id.
    pub checkpoint_id: u64,
    /// Each old subtask's operator state, in subtask order.
    pub states: Vec<OperatorState>,
    /// Each old subtask's keyed state entries.
    pub keyed: Vec<BTreeMap<Vec<u8>, Vec<u8>>>,
}

struct Subtask {
    operator: Box<dyn Operator>,
    store: Arc<MemoryStateStore>,
    output: Vec<Message>,
    /// One channel per input, as the task's gate tracks them.
    watermarks: WatermarkTracker,
}

/// One input of the operator under test: its rows, and how they are routed.
#[derive(Debug, Clone)]
pub struct HarnessInput {
    /// The schema of its rows.
    pub schema: SchemaRef,
    /// With key columns, rows go to the subtask owning their key group (a hash exchange);
    /// without, to the subtasks in turn.
    pub key_columns: Option<Vec<usize>>,
}

/// One operator at a parallelism, fed and observed by a test.
pub struct Harness {
    build: Build,
    inputs: Vec<HarnessInput>,
    max_parallelism: u32,
    subtasks: Vec<Subtask>,
    next_subtask: usize,
    clock: StateClock,
}

impl Harness {
    /// Starts `parallelism` fresh subtasks of the operator `build` makes, reading rows of
    /// `schema`; with `key_columns`, rows are routed by key group.
    pub async fn start(
        build: Build,
        schema: SchemaRef,
        key_columns: Option<Vec<usize>>,
        parallelism: u32,
    ) -> Result<Self> {
        Self::open(build, vec![HarnessInput { schema, key_columns }], parallelism, None, StateClock::System).await
    }

    /// Starts `parallelism` fresh subtasks of an operator with several `inputs` (a
    /// two-input operator has two), with state TTLs following `clock`.
    pub async fn start_inputs(
        build: Build,
        inputs: Vec<HarnessInput>,
        parallelism: u32,
        clock: StateClock,
    ) -> Result<Self> {
        Self::open(build, inputs, parallelism, None, clock).await
    }

    /// As [`start`](Self::start), with state TTLs following `clock` (a
    /// [`StateClock::manual`] one moves only when the test says).
    pub async fn start_with_clock(
        build: Build,
        schema: SchemaRef,
        key_columns: Option<Vec<usize>>,
        parallelism: u32,
        clock: StateClock,
    ) -> Result<Self> {
        Self::open(build, vec![HarnessInput { schema, key_columns }], parallelism, None, clock).await
    }

    /// Starts `parallelism` fresh subtasks restored from `snapshot` (taken at any
    /// parallelism).
    pub async fn restore(
        build: Build,
        schema: SchemaRef,
        key_columns: Option<Vec<usize>>,
        parallelism: u32,
        snapshot: &Snapshot,
    ) -> Result<Self> {
        let inputs = vec![HarnessInput { schema, key_columns }];
        Self::open(build, inputs, parallelism, Some(snapshot), StateClock::System).await
    }

    /// Starts `parallelism` fresh subtasks of an operator with several `inputs`, restored
    /// from `snapshot` (taken at any parallelism).
    pub async fn restore_inputs(
        build: Build,
        inputs: Vec<HarnessInput>,
        parallelism: u32,
        snapshot: &Snapshot,
    ) -> Result<Self> {
        Self::open(build, inputs, parallelism, Some(snapshot), StateClock::System).await
    }

    async fn open(
        build: Build,
        inputs: Vec<HarnessInput>,
        parallelism: u32,
        snapshot: Option<&Snapshot>,
        clock: StateClock,
    ) -> Result<Self> {
        let max_parallelism = DEFAULT_MAX_PARALLELISM;
        let mut subtasks = Vec::new();
        for s in 0..parallelism {
            let mut operator = build()?;
            let store = Arc::new(MemoryStateStore::default());
            let (start, end) = key_group_range(s, max_parallelism, parallelism);
            let mut init = StateInit {
                operator_uid: "harness".into(),
                key_groups: (start, end),
                clock: clock.clone(),
                ..Default::default()
            };
            if let Some(snapshot) = snapshot {
                init.restored = true;
                init.restored_checkpoint = snapshot.checkpoint_id;
                init.lists = redistribute(&snapshot.states, s as usize, parallelism as usize);
                let writes = snapshot
                    .keyed
                    .iter()
                    .flatten()
                    .filter(|(k, _)| key_group_of(k).is_some_and(|g| g >= start && g < end))
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect();
                store.write(writes)?;
            }
            if operator.uses_keyed_state() {
                init.keyed = Some(store.clone() as Arc<dyn KeyedStateStore>);
            }
            operator.initialize_state(init).await?;
            let ctx = TaskContext {
                subtask: s,
                parallelism,
                max_parallelism,
                checkpointing: true,
                ..TaskContext::single(&format!("harness {s}/{parallelism}"))
            };
            operator.open(&ctx).await?;
            let channels: Vec<usize> = (0..inputs.len()).collect();
            subtasks.push(Subtask {
                operator,
                store,
                output: Vec::new(),
                watermarks: WatermarkTracker::new(&channels),
            });
        }
        Ok(Harness { build, inputs, max_parallelism, subtasks, next_subtask: 0, clock })
    }

    /// The clock the subtasks' state TTLs follow.
    pub fn clock(&self) -> &StateClock {
        &self.clock
    }

    /// The rows of `text` as a batch of the (first) input's schema.
    pub fn rows(&self, text: &str) -> Result<RecordBatch> {
        parse_rows(&self.inputs[0].schema, text)
    }

    /// Feeds the rows of `text` (to the first input).
    pub async fn push(&mut self, text: &str) -> Result<()> {
        self.push_to(0, text).await
    }

    /// Feeds the rows of `text` to input `input`.
    pub async fn push_to(&mut self, input: usize, text: &str) -> Result<()> {
        let schema = self.input(input)?.schema.clone();
        self.push_batch_to(input, parse_rows(&schema, text)?).await
    }

    fn input(&self, input: usize) -> Result<&HarnessInput> {
        self.inputs.get(input).ok_or_else(|| OperatorError::InvalidPlan(format!("the harness has no input {input}")))
    }

    /// Feeds `batch` to the first input.
    pub async fn push_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.push_batch_to(0, batch).await
    }

    /// Feeds `batch` to input `input`: by key group with key columns, else to the subtasks
    /// in turn.
    pub async fn push_batch_to(&mut self, input: usize, batch: RecordBatch) -> Result<()> {
        let p = self.subtasks.len() as u32;
        let key_columns = self.input(input)?.key_columns.clone();
        let parts: Vec<(usize, RecordBatch)> = match &key_columns {
            None => {
                let s = self.next_subtask;
                self.next_subtask = (s + 1) % self.subtasks.len();
                vec![(s, batch)]
            }
            Some(columns) => {
                let hashes = KeyHasher::new(&batch.schema(), columns)?.hashes(&batch)?;
                let mut rows: Vec<Vec<u32>> = vec![Vec::new(); p as usize];
                for (row, hash) in hashes.into_iter().enumerate() {
                    let owner = subtask_for_key_group(key_group(hash, self.max_parallelism), self.max_parallelism, p);
                    rows[owner as usize].push(row as u32);
                }
                let mut parts = Vec::new();
                for (s, rows) in rows.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
                    let taken = arrow::compute::take_record_batch(&batch, &UInt32Array::from(rows))
                        .map_err(|e| OperatorError::arrow("harness", e))?;
                    parts.push((s, taken));
                }
                parts
            }
        };
        for (s, part) in parts {
            let subtask = &mut self.subtasks[s];
            subtask.watermarks.on_data(input);
            let mut out = Collector::default();
            subtask.operator.process_input(input, part, &mut out).await?;
            subtask.output.extend(out.take());
        }
        Ok(())
    }

    /// A watermark reaches every input of every subtask.
    pub async fn watermark(&mut self, watermark: i64) -> Result<()> {
        for input in 0..self.inputs.len() {
            self.watermark_to(input, watermark).await?;
        }
        Ok(())
    }

    /// A watermark reaches input `input` of every subtask. As in a task, the operator
    /// hears of each input's watermark (when it has two inputs) and of the minimum over
    /// its inputs when that rises.
    pub async fn watermark_to(&mut self, input: usize, watermark: i64) -> Result<()> {
        self.input(input)?;
        for subtask in &mut self.subtasks {
            let events = subtask.watermarks.on_watermark(input, watermark);
            Self::deliver(subtask, events).await?;
        }
        Ok(())
    }

    /// Input `input` of every subtask ends: its watermark reaches the end, then the
    /// operator hears that the input ended (as a two-input task tells it).
    pub async fn end_input(&mut self, input: usize) -> Result<()> {
        self.watermark_to(input, i64::MAX).await?;
        for subtask in &mut self.subtasks {
            let mut out = Collector::default();
            subtask.operator.on_input_end(input, &mut out).await?;
            subtask.output.extend(out.take());
        }
        Ok(())
    }

    /// Input `input` of every subtask goes idle ([`Message::Idle`]).
    pub async fn idle_to(&mut self, input: usize) -> Result<()> {
        self.input(input)?;
        for subtask in &mut self.subtasks {
            let events = subtask.watermarks.on_idle(input);
            Self::deliver(subtask, events).await?;
        }
        Ok(())
    }

    async fn deliver(subtask: &mut Subtask, events: Vec<WatermarkEvent>) -> Result<()> {
        let two_inputs = subtask.watermarks.inputs() > 1;
        let mut out = Collector::default();
        for event in events {
            match event {
                WatermarkEvent::Input { input, watermark } if two_inputs => {
                    subtask.operator.on_input_watermark(input, watermark, &mut out).await?
                }
                WatermarkEvent::Input { .. } => {}
                WatermarkEvent::Combined(w) => subtask.operator.on_watermark(w, &mut out).await?,
                WatermarkEvent::Idle => subtask.operator.on_idle(&mut out).await?,
            }
        }
        subtask.output.extend(out.take());
        Ok(())
    }

    /// The operators' deadlines passed: each subtask's `on_timer` runs.
    pub async fn fire_timers(&mut self) -> Result<()> {
        for subtask in &mut self.subtasks {
            let mut out = Collector::default();
            subtask.operator.on_timer(&mut out).await?;
            subtask.output.extend(out.take());
        }
        Ok(())
    }

    /// Barrier `checkpoint_id` reaches every subtask: each handles it, snapshots, and the
    /// barrier is forwarded (it appears in the output).
    pub async fn checkpoint(&mut self, checkpoint_id: u64) -> Result<Snapshot> {
        let mut snapshot = Snapshot { checkpoint_id, states: Vec::new(), keyed: Vec::new() };
        for subtask in &mut self.subtasks {
            let barrier = Barrier { checkpoint_id, timestamp_ms: 0, last_completed: 0 };
            let mut out = Collector::default();
            subtask.operator.on_barrier(barrier, &mut out).await?;
            snapshot.states.push(subtask.operator.snapshot_state(checkpoint_id).await?);
            let mut keyed = BTreeMap::new();
            subtask.store.scan(&[], &mut |k, v| {
                keyed.insert(k.to_vec(), v.to_vec());
                true
            })?;
            snapshot.keyed.push(keyed);
            out.message(Message::Barrier(barrier));
            subtask.output.extend(out.take());
        }
        Ok(snapshot)
    }

    /// Checkpoint `checkpoint_id` completed.
    pub async fn notify_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        for subtask in &mut self.subtasks {
            subtask.operator.notify_checkpoint_complete(checkpoint_id).await?;
        }
        Ok(())
    }

    /// The input ended: every subtask finishes.
    pub async fn finish(&mut self) -> Result<()> {
        for subtask in &mut self.subtasks {
            let mut out = Collector::default();
            subtask.operator.finish(&mut out).await?;
            subtask.output.extend(out.take());
        }
        Ok(())
    }

    /// Everything subtask `s` emitted so far, in order.
    pub fn output(&self, s: usize) -> &[Message] {
        &self.subtasks[s].output
    }

    /// The rows every subtask emitted, rendered like the input (`"1 a"`), sorted.
    pub fn sorted_rows(&self) -> Vec<String> {
        let mut rows: Vec<String> = (0..self.subtasks.len()).flat_map(|s| self.rows_of(s)).collect();
        rows.sort();
        rows
    }

    /// The rows subtask `s` emitted, in order.
    pub fn rows_of(&self, s: usize) -> Vec<String> {
        self.subtasks[s]
            .output
            .iter()
            .filter_map(|m| if let Message::Data(b) = m { Some(b) } else { None })
            .flat_map(render_rows)
            .collect()
    }

    /// The watermarks subtask `s` emitted, in order.
    pub fn watermarks_of(&self, s: usize) -> Vec<i64> {
        self.subtasks[s]
            .output
            .iter()
            .filter_map(|m| if let Message::Watermark(w) = m { Some(*w) } else { None })
            .collect()
    }

    /// The sum over every subtask of the operator's counter or gauge `name`.
    pub fn metric(&self, name: &str) -> u64 {
        self.subtasks
            .iter()
            .flat_map(|s| s.operator.metrics())
            .filter(|m| m.name == name)
            .filter_map(|m| crate::metrics::scalar(&m))
            .sum::<f64>() as u64
    }

    /// The histogram `name` of every subtask, merged.
    pub fn histogram(&self, name: &str) -> crate::metrics::Histogram {
        let mut merged = crate::metrics::Histogram::default();
        for metric in self.subtasks.iter().flat_map(|s| s.operator.metrics()).filter(|m| m.name == name) {
            if let Some(crate::metrics::Value::Histogram(h)) = &metric.value {
                crate::metrics::merge(&mut merged, h);
            }
        }
        merged
    }

    /// Drops what the subtasks emitted so far.
    pub fn clear_output(&mut self) {
        for subtask in &mut self.subtasks {
            subtask.output.clear();
        }
    }

    /// A fresh instance of the operator, as [`Harness::restore`] builds them.
    pub fn build(&self) -> Build {
        self.build.clone()
    }
}

/// The lists new subtask `s` of `parallelism` gets: a split list's entries of every old
/// subtask, concatenated in order and dealt round-robin; a union list's all.
fn redistribute(states: &[OperatorState], s: usize, parallelism: usize) -> BTreeMap<String, Vec<Vec<u8>>> {
    let mut by_name: BTreeMap<String, (Distribution, Vec<Vec<u8>>)> = BTreeMap::new();
    for OperatorList { name, distribution, entries } in states.iter().flat_map(|st| st.lists.iter().cloned()) {
        let list = by_name.entry(name).or_insert((distribution, Vec::new()));
        if distribution == Distribution::Union {
            list.0 = Distribution::Union;
        }
        list.1.extend(entries);
    }
    by_name
        .into_iter()
        .map(|(name, (distribution, entries))| {
            let mine = match distribution {
                Distribution::Union => entries,
                Distribution::Split => entries.into_iter().skip(s).step_by(parallelism).collect(),
            };
            (name, mine)
        })
        .collect()
}

/// Parses rows written one per line, values separated by spaces, `null` for NULL. When
/// `schema` has the row-kind column ([`changelog::ROW_KIND_COLUMN`]), each line starts with
/// its row's kind (`+I 1 a`, `-U 1 a`, `+U 1 b`, `-D 1 b`).
pub fn parse_rows(schema: &SchemaRef, text: &str) -> Result<RecordBatch> {
    let lines: Vec<Vec<&str>> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| l.split_whitespace().collect()).collect();
    if let Some(index) = changelog::row_kind_index(schema) {
        let others: Vec<usize> = (0..schema.fields().len()).filter(|&c| c != index).collect();
        let values = schema.project(&others).map_err(|e| OperatorError::arrow("harness rows", e))?;
        let mut kinds = Vec::new();
        let mut rest = String::new();
        for (i, line) in lines.iter().enumerate() {
            let kind = line.first().and_then(|k| changelog::RowKind::parse(k)).ok_or_else(|| {
                OperatorError::InvalidPlan(format!("row {i} does not start with its kind (+I, -U, +U or -D)"))
            })?;
            kinds.push(kind);
            rest.push_str(&line[1..].join(" "));
            rest.push('\n');
        }
        return changelog::join(&parse_rows(&Arc::new(values), &rest)?, &kinds);
    }
    let width = schema.fields().len();
    if let Some((i, line)) = lines.iter().enumerate().find(|(_, l)| l.len() != width) {
        return Err(OperatorError::InvalidPlan(format!(
            "row {i} has {} values; the schema has {width} columns",
            line.len()
        )));
    }
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (c, field) in schema.fields().iter().enumerate() {
        let text: StringArray = lines.iter().map(|l| (l[c] != "null").then_some(l[c])).collect();
        let column = arrow::compute::cast(&text, field.data_type())
            .map_err(|e| OperatorError::arrow(format!("column '{}'", field.name()), e))?;
        columns.push(column);
    }
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| OperatorError::arrow("harness rows", e))
}

/// Renders a batch's rows like [`parse_rows`] reads them (with their kind first when the
/// batch has the row-kind column).
pub fn render_rows(batch: &RecordBatch) -> Vec<String> {
    if changelog::row_kind_index(&batch.schema()).is_some() {
        if let Ok(changelog::ChangelogBatch { rows, kinds }) = changelog::split(batch) {
            let values = render_rows(&rows);
            return kinds.iter().zip(values).map(|(k, v)| format!("{} {v}", k.short_string())).collect();
        }
    }
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(row) {
                        "null".to_string()
                    } else {
                        arrow::util::display::array_value_to_string(c, row).unwrap_or_else(|e| format!("<{e}>"))
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use async_trait::async_trait;

    /// A two-column test operator: counts rows per key (keyed state) and emits the
    /// counts at the end; holds watermarks back by 10.
    struct CountPerKey {
        counts: Option<crate::state::tables::ValueTable<i64>>,
    }

    #[async_trait]
    impl Operator for CountPerKey {
        async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
            let counts = self.counts.as_ref().expect("keyed");
            let hashes = KeyHasher::new(&batch.schema(), &[0])?.hashes(&batch)?;
            for (row, hash) in hashes.into_iter().enumerate() {
                let key = arrow::util::display::array_value_to_string(batch.column(0), row).unwrap();
                let group = key_group(hash, DEFAULT_MAX_PARALLELISM);
                let n = counts.get(group, key.as_bytes())?.unwrap_or(0);
                counts.put(group, key.as_bytes(), &(n + 1))?;
            }
            Ok(())
        }

        async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
            out.watermark(watermark - 10);
            Ok(())
        }

        fn uses_keyed_state(&self) -> bool {
            true
        }

        async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
            self.counts = Some(init.tables().expect("keyed").value("counts", None)?);
            Ok(())
        }

        async fn finish(&mut self, out: &mut Collector) -> Result<()> {
            let mut keys = Vec::new();
            let mut counts = Vec::new();
            for (_, key, n) in self.counts.as_ref().expect("keyed").entries()? {
                keys.push(String::from_utf8(key).unwrap());
                counts.push(n);
            }
            let schema = Arc::new(Schema::new(vec![
                Field::new("k", DataType::Utf8, false),
                Field::new("n", DataType::Int64, false),
            ]));
            out.batch(
                RecordBatch::try_new(
                    schema,
                    vec![Arc::new(StringArray::from(keys)), Arc::new(arrow::array::Int64Array::from(counts))],
                )
                .unwrap(),
            );
            Ok(())
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("v", DataType::Int64, true)]))
    }

    /// Records what reaches it: each input's batches and watermarks, as rows
    /// ("batch <input> <rows>", "watermark <input> <watermark>"), forwarding the minimum.
    struct TwoInputRecorder;

    fn event(text: String) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("event", DataType::Utf8, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![text]))]).unwrap()
    }

    #[async_trait]
    impl Operator for TwoInputRecorder {
        async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
            self.process_input(0, batch, out).await
        }

        async fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Collector) -> Result<()> {
            out.batch(event(format!("batch {input} {}", batch.num_rows())));
            Ok(())
        }

        async fn on_input_watermark(&mut self, input: usize, watermark: i64, out: &mut Collector) -> Result<()> {
            out.batch(event(format!("watermark {input} {watermark}")));
            Ok(())
        }
    }

    /// A two-input operator sees which input each batch came from, each input's
    /// watermark, and the minimum over both; an idle input stops holding it back.
    #[tokio::test]
    async fn a_two_input_operator_sees_each_inputs_batches_and_watermarks() {
        let build: Build = Arc::new(|| Ok(Box::new(TwoInputRecorder) as Box<dyn Operator>));
        let right = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let inputs = vec![
            HarnessInput { schema: schema(), key_columns: Some(vec![0]) },
            HarnessInput { schema: right, key_columns: None },
        ];
        let mut h = Harness::start_inputs(build, inputs, 1, StateClock::System).await.unwrap();
        h.push_to(0, "a 1\nb 2\nc 3").await.unwrap();
        h.push_to(1, "7").await.unwrap();
        h.watermark_to(0, 100).await.unwrap();
        h.watermark_to(1, 40).await.unwrap();
        h.watermark_to(1, 70).await.unwrap();
        h.watermark_to(0, 90).await.unwrap(); // lower than input 0's: changes nothing
        h.idle_to(1).await.unwrap();
        assert_eq!(
            h.rows_of(0),
            vec!["batch 0 3", "batch 1 1", "watermark 0 100", "watermark 1 40", "watermark 1 70"],
            "batches tagged with their input, and each input's watermark"
        );
        assert_eq!(h.watermarks_of(0), vec![40, 70, 100], "the minimum over both, then input 0's once 1 is idle");
        assert!(h.push_to(2, "x").await.is_err(), "there is no third input");
    }

    #[test]
    fn rows_parse_and_render_compactly() {
        let batch = parse_rows(&schema(), "a 1\nb null\n").unwrap();
        assert_eq!(render_rows(&batch), vec!["a 1", "b null"]);
        assert!(parse_rows(&schema(), "a").unwrap_err().to_string().contains("row 0 has 1 values"));
    }

    /// Keyed state written at parallelism 2 is routed to the right subtask of 3 on
    /// restore, and counting goes on from there.
    #[tokio::test]
    async fn a_keyed_operator_restores_at_another_parallelism_and_goes_on() {
        let build: Build = Arc::new(|| Ok(Box::new(CountPerKey { counts: None }) as Box<dyn Operator>));
        let mut h = Harness::start(build.clone(), schema(), Some(vec![0]), 2).await.unwrap();
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let rows: String = keys.iter().map(|k| format!("{k} 1\n")).collect();
        h.push(&rows).await.unwrap();
        h.push("a 2\nb 2").await.unwrap();
        h.watermark(100).await.unwrap();
        assert_eq!(h.watermarks_of(0), vec![90]);
        let snapshot = h.checkpoint(1).await.unwrap();
        assert!(matches!(h.output(1).last(), Some(Message::Barrier(b)) if b.checkpoint_id == 1));

        let mut restored = Harness::restore(build, schema(), Some(vec![0]), 3, &snapshot).await.unwrap();
        restored.push(&rows).await.unwrap();
        restored.finish().await.unwrap();
        let mut expected: Vec<String> =
            keys.iter().map(|k| format!("{k} {}", if ["a", "b"].contains(k) { 3 } else { 2 })).collect();
        expected.sort();
        assert_eq!(restored.sorted_rows(), expected, "each key counted once, on the subtask that owns it");
    }

    #[test]
    fn changelog_rows_are_written_with_their_kind_first() {
        let values = Schema::new(vec![Field::new("k", DataType::Utf8, false), Field::new("n", DataType::Int64, true)]);
        let schema = changelog::with_row_kind(&values);
        let text = "+I a 1\n-U a 1\n+U a 2\n-D a null";
        let batch = parse_rows(&schema, text).unwrap();
        let split = changelog::split(&batch).unwrap();
        assert_eq!(split.kinds.iter().map(|k| k.short_string()).collect::<Vec<_>>(), ["+I", "-U", "+U", "-D"]);
        assert_eq!(render_rows(&split.rows), ["a 1", "a 1", "a 2", "a null"]);
        assert_eq!(render_rows(&batch), text.lines().collect::<Vec<_>>());
        let error = parse_rows(&schema, "a 1").expect_err("a row without its kind").to_string();
        assert!(error.contains("does not start with its kind"), "{error}");
    }
}
