//! Keyed aggregation (`GROUP BY k` with COUNT, SUM, MIN, MAX) over hash-partitioned input.
//!
//! The accumulators of each key are keyed state (RocksDB in a task manager), in the value
//! table [`ACCUMULATORS`] under the key's key group, so the operator restores at any
//! parallelism. Keys touched since the last flush are kept in memory and written to the
//! store in one batch at each checkpoint (or when too many are pending). Results are
//! emitted when the input ends. With a state TTL (`table.exec.state.ttl`), a group not
//! updated for that long is forgotten, as in Flink: its next row starts it afresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use sluice_proto::AggregateFunction;

use sluice_core::keys::{key_group, KeyHasher};
use sluice_core::state::tables::ValueTable;
use sluice_core::state::{MemoryStateStore, Reader, StateClock, StateTables, StateValue};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

/// Keys kept in memory before their accumulators are written to the store.
const MAX_PENDING_KEYS: usize = 65_536;
/// The name of the accumulator table in the operator's keyed state.
pub const ACCUMULATORS: &str = "accumulators";

/// The result type of `function` over an input of `input` type; `None` if unsupported.
pub fn output_type(function: AggregateFunction, input: Option<&DataType>) -> Option<DataType> {
    match (function, input) {
        (AggregateFunction::CountStar, _) | (AggregateFunction::Count, Some(_)) => Some(DataType::Int64),
        (AggregateFunction::Sum, Some(t)) if t.is_integer() => Some(DataType::Int64),
        (AggregateFunction::Sum, Some(t)) if t.is_floating() => Some(DataType::Float64),
        (AggregateFunction::Avg, Some(t)) if t.is_integer() || t.is_floating() => Some(DataType::Float64),
        (AggregateFunction::Min | AggregateFunction::Max, Some(t)) => Some(t.clone()),
        _ => None,
    }
}

/// One aggregate call with its resolved input column.
#[derive(Debug, Clone)]
pub struct Call {
    /// The aggregate function.
    pub function: AggregateFunction,
    /// Its input column; `None` for COUNT(*).
    pub column: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
enum Acc {
    Count(i64),
    SumInt(Option<i64>),
    SumFloat(Option<f64>),
    Avg {
        sum: f64,
        count: i64,
    },
    /// MIN/MAX keep the extreme value in Arrow's order-preserving row encoding.
    Extreme(Option<Vec<u8>>),
}

/// The running aggregation of one subtask.
pub struct KeyedAggregate {
    key_columns: Vec<usize>,
    calls: Vec<Call>,
    output_schema: SchemaRef,
    batch_rows: usize,
    key_converter: RowConverter,
    /// One converter per MIN/MAX call (None for the others).
    value_converters: Vec<Option<RowConverter>>,
    hasher: KeyHasher,
    max_parallelism: u32,
    state_ttl: Option<Duration>,
    accumulators: ValueTable<Accumulators>,
    /// Accumulators changed since the last flush, by (key group, key).
    pending: HashMap<(u32, Vec<u8>), Vec<Acc>>,
    /// The accumulators of a new group, one per call.
    initial: Vec<Acc>,
}

/// Keyed state in memory, until a task hands the operator its store.
fn in_memory() -> StateTables {
    StateTables::new(
        Arc::new(MemoryStateStore::default()),
        (0, sluice_core::keys::DEFAULT_MAX_PARALLELISM),
        StateClock::System,
    )
}

/// The accumulators of one group, one per call, as stored.
struct Accumulators(Vec<Acc>);

impl StateValue for Accumulators {
    const VERSION: u8 = 1;
    fn encode(&self, out: &mut Vec<u8>) {
        for acc in &self.0 {
            acc.encode(out);
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "aggregate");
        let mut accs = Vec::new();
        while !r.is_empty() {
            accs.push(Acc::decode(&mut r)?);
        }
        Ok(Accumulators(accs))
    }
}

impl Acc {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Acc::Count(n) => {
                out.push(0);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Acc::SumInt(v) => {
                out.push(if v.is_some() { 1 } else { 2 });
                out.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
            }
            Acc::SumFloat(v) => {
                out.push(if v.is_some() { 3 } else { 4 });
                out.extend_from_slice(&v.unwrap_or(0.0).to_le_bytes());
            }
            Acc::Avg { sum, count } => {
                out.push(5);
                out.extend_from_slice(&sum.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
            }
            Acc::Extreme(v) => {
                out.push(if v.is_some() { 6 } else { 7 });
                sluice_core::state::put_bytes(out, v.as_deref().unwrap_or_default());
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Acc> {
        Ok(match r.u8()? {
            0 => Acc::Count(r.u64()? as i64),
            1 => Acc::SumInt(Some(r.u64()? as i64)),
            2 => Acc::SumInt(r.u64().map(|_| None)?),
            3 => Acc::SumFloat(Some(f64::from_bits(r.u64()?))),
            4 => Acc::SumFloat(r.u64().map(|_| None)?),
            5 => Acc::Avg { sum: f64::from_bits(r.u64()?), count: r.u64()? as i64 },
            6 => Acc::Extreme(Some(r.bytes()?.to_vec())),
            7 => Acc::Extreme(r.bytes().map(|_| None)?),
            tag => return Err(OperatorError::State(format!("unknown aggregate accumulator tag {tag}"))),
        })
    }
}

impl KeyedAggregate {
    /// An aggregation grouping on `key_columns` of `input_schema`, emitting `output_schema`.
    pub fn new(
        input_schema: &SchemaRef,
        key_columns: Vec<usize>,
        calls: Vec<Call>,
        output_schema: SchemaRef,
        batch_rows: usize,
    ) -> Result<Self> {
        let field_type = |c: usize| {
            input_schema
                .fields()
                .get(c)
                .map(|f| f.data_type().clone())
                .ok_or_else(|| OperatorError::InvalidPlan(format!("aggregate column {c} is out of range")))
        };
        let key_fields = key_columns.iter().map(|&c| field_type(c).map(SortField::new)).collect::<Result<Vec<_>>>()?;
        let key_converter = RowConverter::new(key_fields).map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
        let mut value_converters = Vec::new();
        for call in &calls {
            let input = call.column.map(field_type).transpose()?;
            if output_type(call.function, input.as_ref()).is_none() {
                return Err(OperatorError::InvalidPlan(format!("{:?} over {input:?}", call.function)));
            }
            value_converters.push(match (call.function, input) {
                (AggregateFunction::Min | AggregateFunction::Max, Some(t)) => {
                    Some(RowConverter::new(vec![SortField::new(t)]).map_err(|e| OperatorError::arrow("MIN/MAX", e))?)
                }
                _ => None,
            });
        }
        let initial = calls
            .iter()
            .enumerate()
            .map(|(i, call)| match call.function {
                AggregateFunction::CountStar | AggregateFunction::Count => Acc::Count(0),
                AggregateFunction::Sum if output_schema.field(key_columns.len() + i).data_type().is_floating() => {
                    Acc::SumFloat(None)
                }
                AggregateFunction::Sum => Acc::SumInt(None),
                AggregateFunction::Avg => Acc::Avg { sum: 0.0, count: 0 },
                AggregateFunction::Min | AggregateFunction::Max => Acc::Extreme(None),
            })
            .collect();
        let hasher = KeyHasher::new(input_schema, &key_columns)?;
        Ok(KeyedAggregate {
            initial,
            key_columns,
            calls,
            output_schema,
            batch_rows,
            key_converter,
            value_converters,
            hasher,
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
            state_ttl: None,
            accumulators: Self::table(in_memory(), None)?,
            pending: HashMap::new(),
        })
    }

    /// The aggregation a plan describes, emitting batches of at most `batch_rows`.
    pub fn from_spec(spec: &sluice_proto::KeyedAggregateSpec, batch_rows: usize) -> Result<Self> {
        let calls = spec
            .aggregates
            .iter()
            .map(|call| {
                let function = AggregateFunction::try_from(call.function)
                    .map_err(|_| OperatorError::InvalidPlan(format!("unknown aggregate function {}", call.function)))?;
                Ok(Call { function, column: call.column.map(|c| c as usize) })
            })
            .collect::<Result<Vec<_>>>()?;
        KeyedAggregate::new(
            &sluice_core::schema::decode_schema(&spec.input_schema)?,
            spec.key_columns.iter().map(|&c| c as usize).collect(),
            calls,
            sluice_core::schema::decode_schema(&spec.output_schema)?,
            batch_rows,
        )?
        .with_state_ttl(spec.state_ttl_ms.map(Duration::from_millis))
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

    /// Emits every group, in key-group order, in batches of at most `batch_rows`.
    fn emit(&mut self) -> Result<Vec<RecordBatch>> {
        self.flush()?;
        let mut out = Vec::new();
        let entries = self.accumulators.entries()?;
        // The results are emitted now: the state is done with, and a final checkpoint must
        // not hold it, or a job restored from that checkpoint would emit it again.
        self.accumulators.remove_all(entries.iter().map(|(g, k, _)| (*g, k.as_slice())))?;
        let calls = self.calls.len();
        let mut keys = Vec::with_capacity(entries.len());
        let mut accs = Vec::with_capacity(entries.len());
        for (_, key, Accumulators(a)) in entries {
            if a.len() != calls {
                return Err(OperatorError::State(format!(
                    "a group's state holds {} accumulators where the query has {calls}",
                    a.len()
                )));
            }
            keys.push(key);
            accs.push(a);
        }
        for (key_chunk, acc_chunk) in keys.chunks(self.batch_rows.max(1)).zip(accs.chunks(self.batch_rows.max(1))) {
            let parser = self.key_converter.parser();
            let mut columns = self
                .key_converter
                .convert_rows(key_chunk.iter().map(|k| parser.parse(k)))
                .map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
            for (i, call) in self.calls.iter().enumerate() {
                let column: ArrayRef = match call.function {
                    AggregateFunction::CountStar | AggregateFunction::Count => {
                        Arc::new(Int64Array::from_iter_values(acc_chunk.iter().map(|a| {
                            if let Acc::Count(n) = a[i] {
                                n
                            } else {
                                0
                            }
                        })))
                    }
                    AggregateFunction::Sum => match &acc_chunk[0][i] {
                        Acc::SumFloat(_) => Arc::new(Float64Array::from_iter(acc_chunk.iter().map(|a| {
                            if let Acc::SumFloat(v) = a[i] {
                                v
                            } else {
                                None
                            }
                        }))),
                        _ => Arc::new(Int64Array::from_iter(acc_chunk.iter().map(|a| {
                            if let Acc::SumInt(v) = a[i] {
                                v
                            } else {
                                None
                            }
                        }))),
                    },
                    AggregateFunction::Avg => Arc::new(Float64Array::from_iter(acc_chunk.iter().map(|a| match a[i] {
                        Acc::Avg { sum, count } if count > 0 => Some(sum / count as f64),
                        _ => None,
                    }))),
                    AggregateFunction::Min | AggregateFunction::Max => {
                        let conv = self.value_converters[i].as_ref().expect("MIN/MAX calls have a converter");
                        let data_type = self.output_schema.field(self.key_columns.len() + i).data_type().clone();
                        extremes_to_array(
                            conv,
                            acc_chunk.iter().map(|a| match &a[i] {
                                Acc::Extreme(v) => v.as_deref(),
                                _ => None,
                            }),
                            &data_type,
                        )?
                    }
                };
                columns.push(column);
            }
            out.push(
                RecordBatch::try_new(self.output_schema.clone(), columns)
                    .map_err(|e| OperatorError::arrow("aggregate output", e))?,
            );
        }
        Ok(out)
    }
}

/// Decodes MIN/MAX values (row-encoded, `None` = no input) into an array.
fn extremes_to_array<'a>(
    conv: &RowConverter,
    values: impl Iterator<Item = Option<&'a [u8]>>,
    data_type: &DataType,
) -> Result<ArrayRef> {
    let values: Vec<Option<&[u8]>> = values.collect();
    let present: Vec<&[u8]> = values.iter().flatten().copied().collect();
    let parser = conv.parser();
    let decoded = conv
        .convert_rows(present.iter().map(|v| parser.parse(v)))
        .map_err(|e| OperatorError::arrow("MIN/MAX", e))?
        .remove(0);
    // Scatter the decoded values back, with nulls where a group saw no value.
    let mut indices = Vec::with_capacity(values.len());
    let mut next = 0u64;
    for v in &values {
        indices.push(v.map(|_| {
            next += 1;
            next - 1
        }));
    }
    let taken = arrow::compute::take(decoded.as_ref(), &arrow::array::UInt64Array::from(indices), None)
        .map_err(|e| OperatorError::arrow("MIN/MAX", e))?;
    if taken.data_type() != data_type {
        return cast(&taken, data_type).map_err(|e| OperatorError::arrow("MIN/MAX", e));
    }
    Ok(taken)
}

#[async_trait]
impl Operator for KeyedAggregate {
    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let keys: Vec<ArrayRef> = self.key_columns.iter().map(|&c| batch.column(c).clone()).collect();
        let rows = self.key_converter.convert_columns(&keys).map_err(|e| OperatorError::arrow("GROUP BY keys", e))?;
        let hashes = self.hasher.hashes(&batch)?;
        // Per call: the input column prepared for fast access.
        enum Input {
            None,
            Valid(ArrayRef),
            Int(Int64Array),
            Float(Float64Array),
            Rows(arrow::row::Rows),
        }
        let mut inputs = Vec::with_capacity(self.calls.len());
        for (call, conv) in self.calls.iter().zip(&self.value_converters) {
            let column = call.column.map(|c| batch.column(c).clone());
            inputs.push(match (call.function, column) {
                (AggregateFunction::Count, Some(c)) => Input::Valid(c),
                (AggregateFunction::Sum | AggregateFunction::Avg, Some(c))
                    if c.data_type().is_floating() || call.function == AggregateFunction::Avg =>
                {
                    Input::Float(
                        cast(&c, &DataType::Float64)
                            .map_err(|e| OperatorError::arrow("SUM", e))?
                            .as_primitive::<Float64Type>()
                            .clone(),
                    )
                }
                (AggregateFunction::Sum, Some(c)) => Input::Int(
                    cast(&c, &DataType::Int64)
                        .map_err(|e| OperatorError::arrow("SUM", e))?
                        .as_primitive::<Int64Type>()
                        .clone(),
                ),
                (AggregateFunction::Min | AggregateFunction::Max, Some(c)) => {
                    let conv = conv.as_ref().expect("MIN/MAX calls have a converter");
                    Input::Rows(conv.convert_columns(&[c]).map_err(|e| OperatorError::arrow("MIN/MAX", e))?)
                }
                _ => Input::None,
            });
        }
        let min_max_columns: Vec<Option<ArrayRef>> =
            self.calls.iter().map(|call| call.column.map(|c| batch.column(c).clone())).collect();
        for (row, &hash) in hashes.iter().enumerate() {
            let stored = (key_group(hash, self.max_parallelism), rows.row(row).as_ref().to_vec());
            let group = match self.pending.entry(stored) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let (g, k) = e.key();
                    let accs = match self.accumulators.get(*g, k)? {
                        Some(Accumulators(a)) if a.len() == self.calls.len() => a,
                        Some(_) => {
                            return Err(OperatorError::State(
                                "a group's state does not match the query's aggregates".into(),
                            ))
                        }
                        None => self.initial.clone(),
                    };
                    e.insert(accs)
                }
            };
            for (i, input) in inputs.iter().enumerate() {
                let acc = &mut group[i];
                match (acc, input) {
                    (Acc::Count(n), Input::None) if self.calls[i].function == AggregateFunction::CountStar => *n += 1,
                    (Acc::Count(n), Input::Valid(c)) if c.is_valid(row) => *n += 1,
                    (Acc::SumInt(s), Input::Int(c)) if c.is_valid(row) => {
                        let v = c.value(row);
                        *s = Some(s.unwrap_or(0).checked_add(v).ok_or_else(|| {
                            OperatorError::InvalidPlan("SUM overflowed BIGINT; cast its input to DOUBLE".into())
                        })?);
                    }
                    (Acc::SumFloat(s), Input::Float(c)) if c.is_valid(row) => {
                        *s = Some(s.unwrap_or(0.0) + c.value(row))
                    }
                    (Acc::Avg { sum, count }, Input::Float(c)) if c.is_valid(row) => {
                        *sum += c.value(row);
                        *count += 1;
                    }
                    (Acc::Extreme(current), Input::Rows(r)) => {
                        let valid = min_max_columns[i].as_ref().is_some_and(|c| c.is_valid(row));
                        if valid {
                            let candidate = r.row(row);
                            let better = match current.as_deref() {
                                None => true,
                                Some(cur) if self.calls[i].function == AggregateFunction::Min => {
                                    candidate.as_ref() < cur
                                }
                                Some(cur) => candidate.as_ref() > cur,
                            };
                            if better {
                                *current = Some(candidate.as_ref().to_vec());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        if self.pending.len() >= MAX_PENDING_KEYS {
            self.flush()?;
        }
        Ok(())
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
    use arrow::datatypes::{Field, Schema};

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
            Call { function: AggregateFunction::CountStar, column: None },
            Call { function: AggregateFunction::Count, column: Some(1) },
            Call { function: AggregateFunction::Sum, column: Some(1) },
            Call { function: AggregateFunction::Min, column: Some(1) },
            Call { function: AggregateFunction::Max, column: Some(1) },
            Call { function: AggregateFunction::Avg, column: Some(1) },
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
            let calls = vec![
                Call { function: AggregateFunction::CountStar, column: None },
                Call { function: AggregateFunction::Sum, column: Some(1) },
            ];
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

    #[test]
    fn accumulators_round_trip_through_their_encoding() {
        let accs = vec![
            Acc::Count(3),
            Acc::SumInt(None),
            Acc::SumInt(Some(-4)),
            Acc::SumFloat(Some(1.5)),
            Acc::SumFloat(None),
            Acc::Avg { sum: 2.0, count: 4 },
            Acc::Extreme(Some(vec![1, 2, 3])),
            Acc::Extreme(None),
        ];
        let mut bytes = Vec::new();
        Accumulators(accs.clone()).encode(&mut bytes);
        assert_eq!(Accumulators::decode(&bytes).unwrap().0, accs);
        assert!(Accumulators::decode(&bytes[..5]).is_err(), "truncated state is an error");
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
            let calls = vec![Call { function: AggregateFunction::CountStar, column: None }];
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
}
