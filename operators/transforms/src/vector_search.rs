//! VECTOR_SEARCH: each row of input 0 (the queries) finds the `TOP_K` rows of input 1 (the
//! searched table, broadcast to every subtask) whose vectors are closest to its query
//! vector.
//!
//! The searched rows live in memory ([`items::Items`]): below `hnsw_threshold` rows (or
//! with `index` = `exact`) every query is compared with every row, a batch of queries at
//! a time as a matrix product ([`exact`]); from there (or with `index` = `hnsw`) an HNSW
//! graph answers approximately ([`hnsw`]). A searched table with a changelog updates and
//! deletes rows as it goes.
//!
//! A bounded searched table (a file, a JDBC table) is loaded before any query is answered:
//! queries wait, checkpointed, until input 1 ends, and the
//! operator's watermark waits with them. An unbounded one (Kafka) answers each query from
//! the rows loaded so far, as Flink's processing-time lookups do.
//!
//! State: subtask 0 checkpoints the searched rows once, as a union list that every
//! subtask restores (all subtasks hold the same rows, since input 1 is broadcast and
//! barriers are aligned); each subtask checkpoints the queries it holds.

pub mod exact;
pub mod hnsw;
pub mod items;
pub mod metric;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, UInt32Array};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use sluice_core::changelog::{self, RowKind};
use sluice_core::metrics;
use sluice_core::schema::decode_schema;
use sluice_core::{
    Barrier, Collector, Distribution, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext,
};
use sluice_proto::VectorSearchSpec;

use self::hnsw::{BuildInput, HnswIndex, HnswParams};
use self::items::{append_vector, Items};
use self::metric::{squared_distance, squared_norm, Metric};

/// Searched rows in the index now.
pub const ITEMS: &str = "vector_search_items";
/// Searched rows left out: a NULL vector, a NULL, NaN or infinite element, or another
/// dimension.
pub const REJECTED_ITEMS: &str = "vector_search_rejected_items";
/// Queries answered.
pub const QUERIES: &str = "vector_search_queries";
/// 1 while the HNSW graph answers, 0 while the exact search does.
pub const HNSW_ANSWERS: &str = "vector_search_hnsw";
/// Queries with no usable vector (NULL, a NULL, NaN or infinite element, or another dimension than the
/// searched rows'): they match nothing.
pub const BAD_QUERIES: &str = "vector_search_bad_queries";

const ITEMS_LIST: &str = "items";
/// Below this many rows an HNSW graph is built in the task (about a second at 384
/// dimensions); from there on its own thread, while the exact search answers.
const SYNC_BUILD_ROWS: usize = 2_000;
const LOADED_LIST: &str = "items_loaded";
const HELD_LIST: &str = "held";

/// Which index answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// Exact below this many rows, HNSW from there.
    Auto(usize),
    /// Always exact.
    Exact,
    /// Always HNSW.
    Hnsw,
}

/// An aggregate over one query row's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    ArrayAgg(Option<usize>),
    Count(Option<usize>),
    Sum(Option<usize>),
    Avg(Option<usize>),
    Min(Option<usize>),
    Max(Option<usize>),
}

/// The VECTOR_SEARCH operator.
pub struct VectorSearch {
    query_column: usize,
    top_k: usize,
    left_outer: bool,
    aggregates: Vec<Aggregate>,
    output_schema: SchemaRef,
    input_schema: SchemaRef,
    items: Items,
    index_kind: IndexKind,
    hnsw_params: HnswParams,
    hnsw: Option<HnswIndex>,
    /// A graph being built on its own thread, for the store of this generation.
    building: Option<(u64, std::thread::JoinHandle<HnswIndex>)>,
    /// Bumped when the store is rebuilt (its slots renumbered): a graph built before
    /// is thrown away.
    generation: u64,
    items_bounded: bool,
    loaded: bool,
    held: Vec<RecordBatch>,
    held_watermark: Option<i64>,
    subtask: u32,
    queries: u64,
    bad_queries: u64,
}

fn plan_error(message: impl Into<String>) -> OperatorError {
    OperatorError::InvalidPlan(format!("VECTOR_SEARCH: {}", message.into()))
}

fn arrow_error(e: arrow::error::ArrowError) -> OperatorError {
    OperatorError::arrow("VECTOR_SEARCH", e)
}

impl VectorSearch {
    /// The operator a plan describes.
    pub fn from_spec(spec: &VectorSearchSpec) -> Result<Self> {
        let input_schema = decode_schema(&spec.input_schema)?;
        let items_schema = decode_schema(&spec.items_schema)?;
        let output_schema = decode_schema(&spec.output_schema)?;
        let metric =
            Metric::parse(&spec.metric).ok_or_else(|| plan_error(format!("unknown metric '{}'", spec.metric)))?;
        let index_kind = match spec.index.as_str() {
            // The dot product is no distance, so a graph cannot order its rows.
            "" | "auto" if !metric.has_distance() => IndexKind::Exact,
            "" | "auto" => IndexKind::Auto(spec.hnsw_threshold as usize),
            "exact" => IndexKind::Exact,
            "hnsw" if !metric.has_distance() => return Err(plan_error(format!("no HNSW index for metric {metric}"))),
            "hnsw" => IndexKind::Hnsw,
            other => return Err(plan_error(format!("unknown index '{other}'"))),
        };
        let items_data = changelog::without_row_kind(&items_schema);
        let search_column = spec.search_column as usize;
        if search_column >= items_data.fields().len() || spec.query_column as usize >= input_schema.fields().len() {
            return Err(plan_error("a column index is out of range"));
        }
        let identity = changelog::row_kind_index(&items_schema).map(|_| {
            if spec.item_key.is_empty() {
                (0..items_data.fields().len()).collect()
            } else {
                spec.item_key.iter().map(|&c| c as usize).collect()
            }
        });
        let aggregates = spec
            .aggregates
            .iter()
            .map(|a| {
                let column = a.column.map(|c| c as usize);
                Ok(match a.function.as_str() {
                    "array_agg" => Aggregate::ArrayAgg(column),
                    "count" => Aggregate::Count(column),
                    "sum" => Aggregate::Sum(column),
                    "avg" => Aggregate::Avg(column),
                    "min" => Aggregate::Min(column),
                    "max" => Aggregate::Max(column),
                    other => return Err(plan_error(format!("unknown aggregate '{other}'"))),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VectorSearch {
            query_column: spec.query_column as usize,
            top_k: spec.top_k as usize,
            left_outer: spec.left_outer,
            aggregates,
            output_schema,
            input_schema,
            items: Items::new(items_data, search_column, metric, identity)?,
            index_kind,
            hnsw_params: HnswParams {
                m: (spec.hnsw_m as usize).max(2),
                ef_construction: (spec.hnsw_ef_construction as usize).max(1),
                ef_search: (spec.hnsw_ef_search as usize).max(1),
            },
            hnsw: None,
            building: None,
            generation: 0,
            items_bounded: spec.items_bounded,
            loaded: !spec.items_bounded,
            held: Vec::new(),
            held_watermark: None,
            subtask: 0,
            queries: 0,
            bad_queries: 0,
        })
    }

    fn holding(&self) -> bool {
        self.items_bounded && !self.loaded
    }

    /// Applies a batch of the searched table's changelog.
    fn load(&mut self, batch: &RecordBatch) -> Result<()> {
        let changes = changelog::split(batch)?;
        self.items.apply(&changes.rows, &changes.kinds)?;
        if self.items.wants_compaction() {
            self.items = self.items.compacted()?;
            self.hnsw = None;
            self.building = None;
            self.generation += 1;
        }
        Ok(())
    }

    /// Brings the HNSW graph up to date when it should answer. A graph is built on a
    /// thread of its own (seconds to minutes for 100,000s of rows): until it is ready the
    /// exact search answers, so neither rows nor barriers wait for the build.
    fn prepare_index(&mut self) {
        let has_graph = self.hnsw.is_some() || self.building.is_some();
        let use_hnsw = match self.index_kind {
            IndexKind::Exact => false,
            IndexKind::Hnsw => true,
            // Hysteresis: a table shrinking a little below the threshold keeps its graph.
            IndexKind::Auto(threshold) => self.items.live() >= if has_graph { threshold / 2 } else { threshold },
        };
        if !use_hnsw {
            self.hnsw = None;
            self.building = None;
            return;
        }
        if let Some(index) = &mut self.hnsw {
            // Rows come one by one into a graph; many at once are a new graph, built aside.
            if index.backlog(&self.items) <= SYNC_BUILD_ROWS {
                index.catch_up(&self.items);
                return;
            }
            self.hnsw = None;
        }
        match self.building.take() {
            // A small graph is built at once.
            None if self.items.live() < SYNC_BUILD_ROWS => {
                self.hnsw = Some(HnswIndex::build(&self.items, self.hnsw_params));
            }
            None => {
                let input = BuildInput::of(&self.items, self.hnsw_params);
                tracing::info!(rows = self.items.live(), "VECTOR_SEARCH: building the HNSW graph");
                self.building = Some((self.generation, std::thread::spawn(move || HnswIndex::build_from(input))));
            }
            Some((generation, handle)) if handle.is_finished() => match handle.join() {
                Ok(mut index) if generation == self.generation => {
                    index.catch_up(&self.items);
                    tracing::info!(rows = self.items.live(), "VECTOR_SEARCH: the HNSW graph answers from now on");
                    self.hnsw = Some(index);
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(
                        "VECTOR_SEARCH: building the HNSW graph failed; the exact search answers from now on"
                    );
                    self.index_kind = IndexKind::Exact;
                }
            },
            Some(pending) => self.building = Some(pending),
        }
    }

    /// Answers every held query, then lets the held watermark go.
    fn flush(&mut self, out: &mut Collector) -> Result<()> {
        if self.holding() {
            return Ok(());
        }
        for batch in std::mem::take(&mut self.held) {
            self.answer(&batch, out)?;
        }
        if let Some(watermark) = self.held_watermark.take() {
            out.watermark(watermark);
        }
        Ok(())
    }

    /// Searches for each row of `batch` and emits the output rows.
    fn answer(&mut self, batch: &RecordBatch, out: &mut Collector) -> Result<()> {
        let changes = changelog::split(batch)?;
        let rows = &changes.rows;
        let n = rows.num_rows();
        self.queries += n as u64;
        let column = rows.column(self.query_column).clone();
        let dimension = self.items.dimension();
        let mut queries = Vec::with_capacity(n * dimension.unwrap_or(0));
        let (mut asked, mut norms) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for row in 0..n {
            let start = queries.len();
            match (append_vector(&column, row, &mut queries), dimension) {
                (Some(len), Some(d)) if len == d => {
                    let query = &mut queries[start..];
                    self.items.metric().prepare(query);
                    norms.push(squared_norm(query));
                    asked.push(row);
                }
                // With no searched rows yet there is nothing to compare with.
                (Some(_), None) => queries.truncate(start),
                _ => {
                    queries.truncate(start);
                    self.bad_queries += 1;
                }
            }
        }
        let (k, m) = (self.top_k, asked.len());
        self.prepare_index();
        let found = match &self.hnsw {
            Some(index) => index.search(&self.items, &queries, m, k),
            None => exact::search(&self.items, &queries, m, k),
        };
        let metric = self.items.metric();
        let mut matches: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
        let d = dimension.unwrap_or(0);
        for (i, ((row, found), norm)) in asked.into_iter().zip(found).zip(norms).enumerate() {
            let query = &queries[i * d..(i + 1) * d];
            let mut scored: Vec<(u32, f64)> = found
                .into_iter()
                .map(|(slot, key)| match metric {
                    // The ranking key cancels large norms in f32: the winners' distances are
                    // computed again from their differences, and ranked by them.
                    Metric::Euclidean => (slot, f64::from(squared_distance(query, self.items.vector(slot))).sqrt()),
                    _ => (slot, metric.score(key, norm)),
                })
                .collect();
            if metric == Metric::Euclidean {
                scored.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            }
            matches[row] = scored;
        }
        let kinds = changelog::row_kind_index(&batch.schema()).map(|_| changes.kinds.as_slice());
        let output = if self.aggregates.is_empty() {
            self.rows(rows, &matches, kinds)?
        } else {
            self.summaries(rows, &matches, kinds)?
        };
        out.batch(output);
        Ok(())
    }

    /// One output row per match: the query row, the matched row, the score.
    fn rows(&self, rows: &RecordBatch, matches: &[Vec<(u32, f64)>], kinds: Option<&[RowKind]>) -> Result<RecordBatch> {
        let chunks = self.items.chunks();
        let padding = chunks.len();
        let (mut query_rows, mut item_rows, mut scores, mut out_kinds) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (row, found) in matches.iter().enumerate() {
            if found.is_empty() && self.left_outer {
                query_rows.push(row as u32);
                item_rows.push((padding, 0));
                scores.push(None);
                out_kinds.extend(kinds.map(|k| k[row]));
            }
            for &(slot, score) in found {
                let at = self.items.location(slot);
                query_rows.push(row as u32);
                item_rows.push((at.chunk as usize, at.row as usize));
                scores.push(Some(score));
                out_kinds.extend(kinds.map(|k| k[row]));
            }
        }
        let take = UInt32Array::from(query_rows);
        let mut columns: Vec<ArrayRef> = rows
            .columns()
            .iter()
            .map(|c| arrow::compute::take(c, &take, None))
            .collect::<std::result::Result<_, _>>()
            .map_err(arrow_error)?;
        for c in 0..self.items.schema().fields().len() {
            let nulls = arrow::array::new_null_array(self.items.schema().field(c).data_type(), 1);
            let mut sources: Vec<&dyn Array> = chunks.iter().map(|b| b.column(c).as_ref()).collect();
            sources.push(nulls.as_ref());
            columns.push(arrow::compute::interleave(&sources, &item_rows).map_err(arrow_error)?);
        }
        columns.push(Arc::new(Float64Array::from(scores)));
        self.finish_batch(columns, kinds.map(|_| out_kinds))
    }

    /// One output row per query row: its columns, then the aggregates over its matches.
    fn summaries(
        &self,
        rows: &RecordBatch,
        matches: &[Vec<(u32, f64)>],
        kinds: Option<&[RowKind]>,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        let data_fields = changelog::without_row_kind(&self.output_schema);
        let flat: Vec<(usize, usize)> = matches
            .iter()
            .flatten()
            .map(|&(slot, _)| {
                let at = self.items.location(slot);
                (at.chunk as usize, at.row as usize)
            })
            .collect();
        let scores: ArrayRef = Arc::new(Float64Array::from_iter_values(matches.iter().flatten().map(|m| m.1)));
        let counts: Vec<usize> = matches.iter().map(Vec::len).collect();
        let gather = |column: Option<usize>| -> Result<ArrayRef> {
            match column {
                None => Ok(scores.clone()),
                Some(c) => {
                    let sources: Vec<&dyn Array> = self.items.chunks().iter().map(|b| b.column(c).as_ref()).collect();
                    if flat.is_empty() {
                        return Ok(arrow::array::new_empty_array(self.items.schema().field(c).data_type()));
                    }
                    arrow::compute::interleave(&sources, &flat).map_err(arrow_error)
                }
            }
        };
        for (i, aggregate) in self.aggregates.iter().enumerate() {
            let field = data_fields.field(rows.num_columns() + i);
            let column: ArrayRef = match *aggregate {
                Aggregate::Count(None) => Arc::new(Int64Array::from_iter_values(counts.iter().map(|&c| c as i64))),
                // COUNT(column) counts the matches whose column is not NULL.
                Aggregate::Count(Some(c)) => {
                    let values = gather(Some(c))?;
                    let mut start = 0;
                    Arc::new(Int64Array::from_iter_values(counts.iter().map(|&count| {
                        let valid = (start..start + count).filter(|&j| values.is_valid(j)).count();
                        start += count;
                        valid as i64
                    })))
                }
                Aggregate::ArrayAgg(c) => {
                    let DataType::List(item) = field.data_type() else {
                        return Err(plan_error(format!("ARRAY_AGG's output '{}' is not a list", field.name())));
                    };
                    let values = arrow::compute::cast(&gather(c)?, item.data_type()).map_err(arrow_error)?;
                    let nulls = NullBuffer::from(counts.iter().map(|&c| c > 0).collect::<Vec<_>>());
                    Arc::new(
                        ListArray::try_new(
                            item.clone(),
                            OffsetBuffer::from_lengths(counts.iter().copied()),
                            values,
                            Some(nulls),
                        )
                        .map_err(arrow_error)?,
                    )
                }
                Aggregate::Sum(c) | Aggregate::Avg(c) | Aggregate::Min(c) | Aggregate::Max(c) => {
                    let values = arrow::compute::cast(&gather(c)?, &DataType::Float64).map_err(arrow_error)?;
                    let values =
                        values.as_any().downcast_ref::<Float64Array>().ok_or_else(|| plan_error("not numeric"))?;
                    let mut start = 0;
                    let result: Float64Array = counts
                        .iter()
                        .map(|&count| {
                            let part = (start..start + count).filter(|&j| values.is_valid(j)).map(|j| values.value(j));
                            start += count;
                            let (n, sum, min, max) = part
                                .fold((0usize, 0.0, f64::INFINITY, f64::NEG_INFINITY), |a, v| {
                                    (a.0 + 1, a.1 + v, a.2.min(v), a.3.max(v))
                                });
                            (n > 0).then(|| match aggregate {
                                Aggregate::Sum(_) => sum,
                                Aggregate::Avg(_) => sum / n as f64,
                                Aggregate::Min(_) => min,
                                _ => max,
                            })
                        })
                        .collect();
                    arrow::compute::cast(&result, field.data_type()).map_err(arrow_error)?
                }
            };
            columns.push(column);
        }
        self.finish_batch(columns, kinds.map(<[RowKind]>::to_vec))
    }

    /// The output batch of `columns`, with the rows' kinds last when the input has them.
    fn finish_batch(&self, columns: Vec<ArrayRef>, kinds: Option<Vec<RowKind>>) -> Result<RecordBatch> {
        let data = changelog::without_row_kind(&self.output_schema);
        let batch = RecordBatch::try_new(data, columns).map_err(arrow_error)?;
        match kinds {
            Some(kinds) => changelog::join(&batch, &kinds),
            None => Ok(batch),
        }
    }

    fn encode(batches: &[RecordBatch], schema: &SchemaRef) -> Result<Vec<Vec<u8>>> {
        batches
            .iter()
            .map(|batch| {
                let mut bytes = Vec::new();
                let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, schema).map_err(arrow_error)?;
                writer.write(batch).map_err(arrow_error)?;
                writer.finish().map_err(arrow_error)?;
                drop(writer);
                Ok(bytes)
            })
            .collect()
    }

    fn decode(entry: &[u8]) -> Result<Vec<RecordBatch>> {
        let corrupt =
            |e: arrow::error::ArrowError| OperatorError::State(format!("VECTOR_SEARCH state is unreadable: {e}"));
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(entry), None)
            .map_err(corrupt)?
            .map(|b| b.map_err(corrupt))
            .collect()
    }
}

#[async_trait]
impl Operator for VectorSearch {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        let entries = |name: &str| init.lists.get(name).map(Vec::as_slice).unwrap_or_default();
        for entry in entries(ITEMS_LIST) {
            for batch in Self::decode(entry)? {
                self.items.apply(&batch, &vec![RowKind::Insert; batch.num_rows()])?;
            }
        }
        if !entries(LOADED_LIST).is_empty() {
            self.loaded = true;
        }
        for entry in entries(HELD_LIST) {
            self.held.extend(Self::decode(entry)?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.subtask = ctx.subtask;
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        self.process_input(0, batch, out).await
    }

    async fn process_input(&mut self, input: usize, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        if input == 1 {
            return self.load(&batch);
        }
        self.flush(out)?;
        if self.holding() {
            self.held.push(batch);
            return Ok(());
        }
        self.answer(&batch, out)
    }

    /// The output's rows are the searching rows', so its watermark is input 0's (held
    /// back with the rows while a bounded table loads); the searched table's watermark
    /// only says when it has ended, and an unbounded one without a watermark must not
    /// stop event time downstream.
    async fn on_input_watermark(&mut self, input: usize, watermark: i64, out: &mut Collector) -> Result<()> {
        if input == 0 {
            if self.holding() || !self.held.is_empty() {
                self.held_watermark = Some(watermark);
            } else {
                out.watermark(watermark);
            }
        }
        Ok(())
    }

    /// The searched table ended: it is loaded (its watermark alone cannot say so, since a
    /// channel that went idle does not hold it back).
    async fn on_input_end(&mut self, input: usize, out: &mut Collector) -> Result<()> {
        if input == 1 && !self.loaded {
            self.loaded = true;
            tracing::info!(rows = self.items.live(), "VECTOR_SEARCH: the searched table is loaded");
            self.flush(out)?;
        }
        Ok(())
    }

    async fn on_watermark(&mut self, _watermark: i64, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    async fn on_barrier(&mut self, _barrier: Barrier, out: &mut Collector) -> Result<()> {
        self.flush(out)
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.loaded = true;
        self.flush(out)
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        let (items, loaded) = if self.subtask == 0 {
            let rows = self.items.live_rows(8192)?;
            (Self::encode(&rows, self.items.schema())?, if self.loaded { vec![vec![1]] } else { Vec::new() })
        } else {
            (Vec::new(), Vec::new())
        };
        let held = Self::encode(&self.held, &self.input_schema)?;
        Ok(OperatorState::default()
            .with_list(ITEMS_LIST, Distribution::Union, items)
            .with_list(LOADED_LIST, Distribution::Union, loaded)
            .with_list(HELD_LIST, Distribution::Split, held))
    }

    fn metrics(&self) -> Vec<metrics::Metric> {
        vec![
            metrics::gauge(ITEMS, self.items.live() as f64),
            metrics::counter(REJECTED_ITEMS, self.items.rejected()),
            metrics::counter(QUERIES, self.queries),
            metrics::counter(BAD_QUERIES, self.bad_queries),
            metrics::gauge(HNSW_ANSWERS, if self.hnsw.is_some() { 1.0 } else { 0.0 }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, ListArray, StringArray};
    use arrow::datatypes::{Field, Float32Type, Schema};
    use sluice_core::harness::{Build, Harness, HarnessInput};
    use sluice_core::schema::encode_schema;
    use sluice_core::state::StateClock;
    use sluice_proto::VectorSearchAggregate;

    use super::*;

    fn vector_type() -> DataType {
        DataType::List(Arc::new(Field::new("item", DataType::Float32, true)))
    }

    fn queries_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("q", DataType::Int64, false), Field::new("v", vector_type(), true)]))
    }

    fn items_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false), Field::new("e", vector_type(), true)]))
    }

    fn vectors(values: &[Option<[f32; 2]>]) -> ArrayRef {
        Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(
            values.iter().map(|v| v.map(|v| v.iter().map(|&x| Some(x)).collect::<Vec<_>>())),
        ))
    }

    fn queries(ids: &[i64], v: &[Option<[f32; 2]>]) -> RecordBatch {
        RecordBatch::try_new(queries_schema(), vec![Arc::new(Int64Array::from(ids.to_vec())), vectors(v)]).unwrap()
    }

    fn items(names: &[&str], v: &[[f32; 2]]) -> RecordBatch {
        let v: Vec<Option<[f32; 2]>> = v.iter().copied().map(Some).collect();
        RecordBatch::try_new(items_schema(), vec![Arc::new(StringArray::from(names.to_vec())), vectors(&v)]).unwrap()
    }

    fn spec(left_outer: bool, aggregates: Vec<VectorSearchAggregate>) -> VectorSearchSpec {
        let mut fields: Vec<Field> = queries_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        if aggregates.is_empty() {
            fields.push(Field::new("name", DataType::Utf8, true));
            fields.push(Field::new("e", vector_type(), true));
            fields.push(Field::new("score", DataType::Float64, true));
        } else {
            fields.push(Field::new("names", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true));
            fields.push(Field::new("n", DataType::Int64, false));
            fields.push(Field::new("best", DataType::Float64, true));
        }
        VectorSearchSpec {
            input_schema: encode_schema(&queries_schema()),
            query_column: 1,
            items_schema: encode_schema(&items_schema()),
            search_column: 1,
            top_k: 2,
            metric: "euclidean".into(),
            index: "exact".into(),
            hnsw_threshold: 100,
            hnsw_m: 16,
            hnsw_ef_construction: 100,
            hnsw_ef_search: 50,
            items_bounded: true,
            item_key: vec![],
            left_outer,
            aggregates,
            output_schema: encode_schema(&Schema::new(fields)),
        }
    }

    fn build(spec: VectorSearchSpec) -> Build {
        Arc::new(move || Ok(Box::new(VectorSearch::from_spec(&spec)?) as Box<dyn Operator>))
    }

    fn inputs() -> Vec<HarnessInput> {
        vec![
            HarnessInput { schema: queries_schema(), key_columns: None },
            HarnessInput { schema: items_schema(), key_columns: None },
        ]
    }

    #[tokio::test]
    async fn queries_wait_for_a_bounded_table_then_get_their_nearest_rows() {
        let mut h = Harness::start_inputs(build(spec(true, vec![])), inputs(), 1, StateClock::System).await.unwrap();
        h.push_batch_to(0, queries(&[1, 2, 3], &[Some([0.0, 0.0]), Some([10.0, 10.0]), None])).await.unwrap();
        h.watermark_to(0, 5).await.unwrap();
        h.push_batch_to(1, items(&["a", "b", "c"], &[[1.0, 0.0], [0.0, 3.0], [9.0, 9.0]])).await.unwrap();
        assert!(h.rows_of(0).is_empty(), "queries wait until the table is loaded");
        let snapshot = h.checkpoint(1).await.unwrap();
        h.end_input(1).await.unwrap();
        let rows = h.rows_of(0);
        assert_eq!(rows.len(), 5, "{rows:?}");
        assert_eq!(rows[0], "1 [0.0, 0.0] a [1.0, 0.0] 1.0");
        assert_eq!(rows[1], "1 [0.0, 0.0] b [0.0, 3.0] 3.0");
        assert_eq!(rows[2], format!("2 [10.0, 10.0] c [9.0, 9.0] {}", 2f64.sqrt()));
        assert_eq!(rows[3], format!("2 [10.0, 10.0] b [0.0, 3.0] {}", 149f64.sqrt()));
        assert_eq!(rows[4], "3 null null null null", "a NULL query is kept, padded");
        assert_eq!(h.metric(BAD_QUERIES), 1);
        assert_eq!(h.watermarks_of(0), vec![5], "the held watermark follows the held rows");

        // Restored at parallelism 2 before the table ended: both subtasks have its rows and
        // the held queries are answered once the end comes.
        let mut restored = Harness::restore_inputs(build(spec(true, vec![])), inputs(), 2, &snapshot).await.unwrap();
        restored.end_input(1).await.unwrap();
        assert_eq!(restored.sorted_rows().len(), 5);
        restored.clear_output();
        restored.push_batch_to(0, queries(&[7], &[Some([0.0, 2.5])])).await.unwrap();
        restored.push_batch_to(0, queries(&[8], &[Some([0.0, 2.5])])).await.unwrap();
        let rows = restored.sorted_rows();
        assert_eq!(rows.len(), 4, "each subtask searches every row: {rows:?}");
        assert!(rows.iter().filter(|r| r.contains(" b ")).count() == 2);
    }

    #[tokio::test]
    async fn the_lessons_form_aggregates_each_rows_matches_in_rank_order() {
        let aggregates = vec![
            VectorSearchAggregate { function: "array_agg".into(), column: Some(0) },
            VectorSearchAggregate { function: "count".into(), column: None },
            VectorSearchAggregate { function: "min".into(), column: None },
        ];
        let mut h =
            Harness::start_inputs(build(spec(false, aggregates)), inputs(), 1, StateClock::System).await.unwrap();
        h.push_batch_to(1, items(&["a", "b", "c"], &[[1.0, 0.0], [0.0, 3.0], [9.0, 9.0]])).await.unwrap();
        h.end_input(1).await.unwrap();
        h.push_batch_to(0, queries(&[1, 2], &[Some([0.0, 2.0]), Some([1.0, 2.0])])).await.unwrap();
        h.push_batch_to(0, queries(&[3], &[None])).await.unwrap();
        let rows = h.rows_of(0);
        assert_eq!(rows[0], "1 [0.0, 2.0] [b, a] 2 1.0", "{rows:?}");
        assert_eq!(rows[1], format!("2 [1.0, 2.0] [b, a] 2 {}", 2f64.sqrt()), "{rows:?}");
        assert_eq!(rows[2], "3 null null 0 null", "{rows:?}");
    }

    #[tokio::test]
    async fn an_unbounded_tables_changelog_updates_and_deletes_searched_rows_by_key() {
        let mut spec = spec(false, vec![]);
        spec.items_bounded = false;
        spec.item_key = vec![0];
        spec.top_k = 1;
        let changelog_items = changelog::with_row_kind(&items_schema());
        spec.items_schema = encode_schema(&changelog_items);
        let inputs = vec![
            HarnessInput { schema: queries_schema(), key_columns: None },
            HarnessInput { schema: changelog_items, key_columns: None },
        ];
        let mut h = Harness::start_inputs(build(spec), inputs, 1, StateClock::System).await.unwrap();
        // Nothing loaded yet: an unbounded table does not hold queries back.
        h.push_batch_to(0, queries(&[0], &[Some([0.0, 0.0])])).await.unwrap();
        assert!(h.rows_of(0).is_empty());
        let change =
            |kinds: &[RowKind], names: &[&str], v: &[[f32; 2]]| changelog::join(&items(names, v), kinds).unwrap();
        h.push_batch_to(1, change(&[RowKind::Insert; 2], &["a", "b"], &[[1.0, 0.0], [5.0, 5.0]])).await.unwrap();
        h.push_batch_to(0, queries(&[1], &[Some([0.0, 0.0])])).await.unwrap();
        // 'a' moves away (an upsert by key), then is deleted.
        h.push_batch_to(1, change(&[RowKind::UpdateAfter], &["a"], &[[9.0, 9.0]])).await.unwrap();
        h.push_batch_to(0, queries(&[2], &[Some([0.0, 0.0])])).await.unwrap();
        h.push_batch_to(1, change(&[RowKind::Delete], &["b"], &[[5.0, 5.0]])).await.unwrap();
        h.push_batch_to(0, queries(&[3], &[Some([0.0, 0.0])])).await.unwrap();
        let names: Vec<String> = h.rows_of(0).iter().map(|r| r.split(' ').nth(3).unwrap().to_string()).collect();
        assert_eq!(names, ["a", "b", "a"], "{:?}", h.rows_of(0));
        assert_eq!(h.metric(ITEMS), 1);
    }

    #[tokio::test]
    async fn a_large_graph_is_built_aside_while_the_exact_search_answers() {
        let mut spec = spec(false, vec![]);
        spec.index = "hnsw".into();
        spec.metric = "cosine".into();
        spec.top_k = 1;
        let mut h = Harness::start_inputs(build(spec), inputs(), 1, StateClock::System).await.unwrap();
        let n = SYNC_BUILD_ROWS + 500;
        let names: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
        let vectors: Vec<[f32; 2]> = (0..n).map(|i| [(i as f32 * 0.37).sin(), (i as f32 * 0.37).cos()]).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        h.push_batch_to(1, items(&refs, &vectors)).await.unwrap();
        h.end_input(1).await.unwrap();
        // The closest item to (10, 0) by cosine is the one whose vector points most along x.
        let best = (0..n).max_by(|&a, &b| vectors[a][0].total_cmp(&vectors[b][0])).unwrap();
        let mut asked = 0;
        loop {
            h.push_batch_to(0, queries(&[asked], &[Some([10.0, 0.0])])).await.unwrap();
            asked += 1;
            let hnsw = h.metric(HNSW_ANSWERS) == 1;
            if hnsw || asked > 2_000 {
                assert!(hnsw, "the graph never came");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let rows = h.rows_of(0);
        assert_eq!(rows.len() as i64, asked, "every query is answered, before the graph and after");
        assert!(rows[0].contains(&format!(" i{best} ")), "the exact search answered first: {}", rows[0]);
    }

    #[tokio::test]
    async fn the_searching_rows_watermark_passes_an_unbounded_table_without_one() {
        let mut spec = spec(false, vec![]);
        spec.items_bounded = false;
        spec.top_k = 1;
        let mut h = Harness::start_inputs(build(spec), inputs(), 1, StateClock::System).await.unwrap();
        h.push_batch_to(1, items(&["far", "near"], &[[1000.0, 1000.0], [0.0, 0.0]])).await.unwrap();
        h.push_batch_to(0, queries(&[1], &[Some([1000.01, 1000.0])])).await.unwrap();
        h.watermark_to(0, 100).await.unwrap();
        assert_eq!(h.watermarks_of(0), vec![100], "input 1 never sent a watermark");
        // Euclidean distances come from the differences, not from norms that cancel in f32.
        let rows = h.rows_of(0);
        let score: f64 = rows[0].rsplit(' ').next().unwrap().parse().unwrap();
        assert!(rows[0].contains(" far ") && (score - 0.01).abs() < 1e-3, "{rows:?}");
    }
}
