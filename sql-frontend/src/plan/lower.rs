//! Lowering: a DataFusion logical plan (after type coercion) becomes operators of the job
//! graph. Projections and filters become Calc operators (a filter under a projection fuses
//! into one), GROUP BY becomes a hash edge into a keyed aggregation, table scans become
//! sources (plus computed columns and the watermark generator), ML_PREDICT placeholders
//! become ML operators, and an INSERT's target becomes a sink.

use std::collections::HashMap;
use std::sync::Arc;

use crate::plan::graph::{JobGraphBuilder, NodeId};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::window_tvf_spec::WindowKind;
use sluice_proto::{CalcSpec, MlPredictSpec, OperatorSpec, Partitioning, ProjectSpec, WatermarkSpec, WindowTvfSpec};
use sluice_transforms::expr::encode_expr;

use crate::error::SqlError;
use crate::parser::WindowFunction;
use crate::plan::locate::QueryLocations;
use crate::plan::tables::{ResolvedMl, ResolvedWindow, TableInfo};
use crate::types::sql_name;
use sluice_connectors::kafka::options::SPLIT_METADATA;
use sqlparser::tokenizer::Location;

mod aggregate;
mod grouping_sets;
mod join;
pub mod lookup_join;
pub mod ml_calls;
pub mod ml_evaluate;
mod pushdown;
mod top_n;
pub mod vector_search;
pub use aggregate::{window_grouping, WindowGrouping};
pub use pushdown::ScanRequest;
use top_n::{rank_filter, RankFilter};

/// What of `request` the source of `table` takes: none for a table with computed columns
/// or a watermark (their expressions read the physical columns).
fn scan_pushdown(table: &TableInfo, request: &ScanRequest) -> Option<sluice_proto::ScanPushdown> {
    if !table.computed.is_empty() || table.watermark.is_some() {
        return None;
    }
    let takes = sluice_connectors::pushdown(&table.connector);
    request.pushdown(takes.projection, takes.filters)
}

/// The hidden column that carries a Kafka row's partition to its watermark operator.
const SPLIT_COLUMN: &str = "__sluice_split";

type Result<T> = std::result::Result<T, SqlError>;

/// Rows flowing out of an operator: where they come from and their schema.
#[derive(Clone)]
pub struct Stream {
    /// The operator producing them.
    pub node: NodeId,
    /// Their schema (field names as in the logical plan).
    pub schema: SchemaRef,
    /// The producer's parallelism.
    pub parallelism: u32,
    /// The operator whose updates the rows carry (their kind in the row-kind column);
    /// `None` for an append-only stream.
    pub updates: Option<String>,
}

/// Builds the job graph of one script.
pub struct Lowering {
    /// The graph so far.
    pub builder: JobGraphBuilder,
    default_parallelism: u32,
    /// The state TTL of stateful operators (`table.exec.state.ttl`; `None`: forever).
    pub state_ttl: Option<std::time::Duration>,
    /// Batch mode (`execution.runtime-mode` = `batch`): a GROUP BY emits final results when
    /// its bounded input ends, instead of updates.
    pub batch_mode: bool,
    /// Mini-batch of updating aggregates (`table.exec.mini-batch.*`): latency and size.
    pub mini_batch: Option<(std::time::Duration, u64)>,
    /// Source streams by table, shared by every INSERT that reads the table.
    sources: HashMap<String, Stream>,
    /// Positions in the query being lowered, for errors about its parts.
    pub locations: QueryLocations,
    /// The windowing call a window aggregate being lowered reads, once lowered.
    window_feed: Option<WindowFeed>,
    /// The operators (by uid) whose output carries updates, for EXPLAIN CHANGELOG_MODE.
    pub updating: std::collections::HashSet<String>,
    /// The Top-N a filter being lowered asks of the OVER window below it.
    rank_filter: Option<RankFilter>,
    /// The filter right above the table scan being lowered.
    scan_filter: Option<Expr>,
    /// The columns the projection (and filter) right above the table scan being lowered
    /// read.
    scan_columns: Option<std::collections::HashSet<String>>,
    /// What the table scan being resolved needs, for its source's pushdown.
    pub scan_request: Option<ScanRequest>,
    /// Tables read `FOR SYSTEM_TIME AS OF`, by placeholder.
    pub lookups: HashMap<String, lookup_join::ResolvedLookup>,
    /// How lookup joins run.
    pub async_lookup: lookup_join::AsyncLookup,
    /// Notes and warnings for EXPLAIN about the statement being lowered.
    pub notes: Vec<String>,
    /// Model calls on expressions, by function name.
    pub ml_calls: HashMap<String, ml_calls::ResolvedMlCall>,
    /// VECTOR_SEARCH calls, by placeholder.
    pub vector_searches: HashMap<String, vector_search::ResolvedVectorSearch>,
    /// The models the calls lowered so far run (for EXPLAIN).
    pub ml_models: Vec<crate::plan::tables::ResolvedMl>,
}

/// A windowing call feeding a window aggregate.
struct WindowFeed {
    /// The call's placeholder table.
    placeholder: String,
    /// Whether the call sends slices (see [`WindowGrouping::slices`]).
    slices: bool,
    /// The aggregate's group columns besides the window's (`None`: one is an expression).
    keys: Option<Vec<String>>,
    /// The call as lowered.
    spec: Option<WindowTvfSpec>,
}

/// Checks that a SESSION window aggregate groups by exactly the window's partition columns
/// (`plain_keys`: the other group columns, `None` when one is an expression): sessions are
/// kept per group key. The group-window syntax partitions by the group keys by definition.
fn session_partition(call: &crate::parser::WindowTvfCall, plain_keys: Option<&[String]>) -> Result<()> {
    if call.legacy {
        return Ok(());
    }
    let mut partition: Vec<&str> = call.partition_by.iter().map(|(k, _)| k.as_str()).collect();
    let mut keys: Vec<&str> = plain_keys.unwrap_or_default().iter().map(String::as_str).collect();
    partition.sort_unstable();
    keys.sort_unstable();
    if plain_keys.is_some() && partition == keys {
        return Ok(());
    }
    Err(SqlError::new(
        call.location,
        format!(
            "a SESSION window aggregate must group by exactly its PARTITION BY columns ({}) besides the window; \
             other groupings are not supported yet",
            if partition.is_empty() { "none".to_string() } else { partition.join(", ") }
        ),
    )
    .with_hint("write SESSION(TABLE t PARTITION BY k, ...) ... GROUP BY k, window_start, window_end"))
}

/// A windowing call as shown in plans.
fn window_name(spec: &WindowTvfSpec) -> String {
    let (size, step, offset) = (spec.size_ms, spec.step_ms, spec.offset_ms);
    let clock = if spec.processing_time { ", processing time" } else { "" };
    let name = match WindowKind::try_from(spec.kind) {
        Ok(WindowKind::Tumble) => format!("tumble(size {size} ms, offset {offset} ms)"),
        Ok(WindowKind::Hop) => format!("hop(slide {step} ms, size {size} ms, offset {offset} ms)"),
        Ok(WindowKind::Cumulate) => format!("cumulate(step {step} ms, size {size} ms, offset {offset} ms)"),
        Ok(WindowKind::Session) => format!("session(gap {size} ms)"),
        Err(_) => "window".into(),
    };
    match name.strip_suffix(')') {
        Some(open) => format!("{open}{clock})"),
        None => name,
    }
}

/// Removes table qualifiers from column references: tasks resolve columns by name against
/// the unqualified schema of their input.
pub fn unqualify(expr: Expr) -> Expr {
    expr.transform(|e| match e {
        Expr::Column(c) if c.relation.is_some() => Ok(Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))),
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .expect("the rewrite of column references never fails")
}

/// The hidden column a Calc appends for CURRENT_WATERMARK (see `CalcSpec.appends_watermark`).
const WATERMARK_COLUMN: &str = "__sluice_watermark";

/// The Arrow schema of `schema`, a name that several columns share (`o.id`, `c.id` of a
/// join) qualified by its table (`o.id`), so every column keeps a name of its own.
pub fn unique_names(schema: &DFSchema) -> SchemaRef {
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let fields: Vec<Field> = schema
        .iter()
        .map(|(qualifier, field)| {
            let shared = names.iter().filter(|n| **n == field.name()).count() > 1;
            match (shared, qualifier) {
                (true, Some(q)) => field.as_ref().clone().with_name(format!("{q}.{}", field.name())),
                _ => field.as_ref().clone(),
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.as_arrow().metadata().clone()))
}

/// `expr` with its columns named as in `input`: by their qualified name where `input` has
/// a column of that name (a join's columns that both sides have), else unqualified.
fn resolve_columns(expr: Expr, input: &Schema) -> Expr {
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() && input.index_of(&c.flat_name()).is_ok() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.flat_name())))
            }
            Expr::Column(c) if c.relation.is_some() => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
    .expect("renaming columns cannot fail")
}

fn is_current_watermark(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.name() == crate::plan::functions::CURRENT_WATERMARK)
}

fn uses_current_watermark(expr: &Expr) -> bool {
    expr.exists(|e| Ok(is_current_watermark(e))).unwrap_or(false)
}

/// `expr` with each `CURRENT_WATERMARK(x)` replaced by the appended watermark column, cast
/// to `x`'s type.
fn current_watermark_column(expr: Expr, input: &DFSchema) -> datafusion::common::Result<Expr> {
    expr.transform(|e| {
        if !is_current_watermark(&e) {
            return Ok(Transformed::no(e));
        }
        let Expr::ScalarFunction(f) = e else { unreachable!("checked above") };
        let data_type = match f.args.first() {
            Some(arg) => arg.get_type(input)?,
            None => DataType::Timestamp(TimeUnit::Millisecond, None),
        };
        let column = Expr::Column(Column::new_unqualified(WATERMARK_COLUMN));
        Ok(Transformed::yes(datafusion::logical_expr::cast(column, data_type)))
    })
    .map(|t| t.data)
}

/// A projection as shown in plans: a column by its output name, a computation as
/// `name := expression`.
fn describe_projection(expr: &Expr, output: &str) -> String {
    match expr.clone().unalias() {
        Expr::Column(_) => output.to_string(),
        Expr::Cast(c) if matches!(c.expr.as_ref(), Expr::Column(_)) => {
            format!("{output}: {}", sql_name(c.field.data_type()))
        }
        inner => format!("{output} := {inner}"),
    }
}

fn short(text: String) -> String {
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(99).collect::<String>())
    } else {
        text
    }
}

fn internal(location: Location, e: impl std::fmt::Display) -> SqlError {
    SqlError::new(location, format!("cannot plan this statement: {e}"))
}

impl Lowering {
    /// A lowering with `default_parallelism` for operators that don't ask for their own.
    pub fn new(default_parallelism: u32) -> Self {
        Lowering {
            builder: JobGraphBuilder::new(),
            default_parallelism: default_parallelism.max(1),
            state_ttl: None,
            batch_mode: false,
            mini_batch: None,
            sources: HashMap::new(),
            locations: QueryLocations::default(),
            window_feed: None,
            updating: Default::default(),
            rank_filter: None,
            scan_filter: None,
            scan_columns: None,
            scan_request: None,
            lookups: HashMap::new(),
            vector_searches: HashMap::new(),
            async_lookup: lookup_join::AsyncLookup::default(),
            notes: Vec::new(),
            ml_calls: HashMap::new(),
            ml_models: Vec::new(),
        }
    }

    /// The default parallelism.
    pub fn default_parallelism(&self) -> u32 {
        self.default_parallelism
    }

    /// Adds `operator` after `input`.
    pub fn then(
        &mut self,
        input: &Stream,
        operator: OperatorSpec,
        parallelism: u32,
        partitioning: Partitioning,
        keys: Vec<u32>,
        schema: SchemaRef,
    ) -> Stream {
        let node = self.builder.add(operator, parallelism);
        self.builder.connect(input.node, node, partitioning, keys, encode_schema(&input.schema));
        Stream { node, schema, parallelism, updates: None }
    }

    /// A Calc after `input`: an optional filter, then one expression per output field.
    pub fn calc(
        &mut self,
        input: &Stream,
        filter: Option<&Expr>,
        projections: &[Expr],
        output: SchemaRef,
        location: Location,
    ) -> Result<Stream> {
        // Model calls run as operators before the Calc, which reads their outputs.
        if projections.iter().chain(filter).any(|e| ml_calls::calls_model(e, &self.ml_calls)) {
            let mut exprs = projections.to_vec();
            exprs.extend(filter.cloned());
            let (stream, mut exprs) = self.expand_ml_calls(input, exprs, filter.is_some(), location)?;
            let filter = filter.map(|_| exprs.pop().expect("the filter is last"));
            return self.calc(&stream, filter.as_ref(), &exprs, output, location);
        }
        // An updating stream keeps its rows' kinds through every Calc.
        let mut projections = projections.to_vec();
        let mut output = output;
        if input.updates.is_some() && changelog::row_kind_index(&output).is_none() {
            projections.push(Expr::Column(Column::new_unqualified(changelog::ROW_KIND_COLUMN)));
            output = changelog::with_row_kind(&output);
        }
        let mut seen = std::collections::HashSet::new();
        for field in input.schema.fields() {
            if !seen.insert(field.name().as_str()) {
                return Err(SqlError::new(location, format!("the column name '{}' is ambiguous here", field.name()))
                    .with_hint("give the columns distinct names with AS"));
            }
        }
        let subquery = |e: &Expr| {
            e.exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_) | Expr::SetComparison(_)
                ))
            })
            .unwrap_or(false)
        };
        if projections.iter().chain(filter).any(subquery) {
            return Err(SqlError::new(location, "a subquery is not supported yet in streaming SQL")
                .with_hint("rewrite the subquery as a join or a view once joins are available"));
        }
        let projections: Vec<Expr> = projections.into_iter().map(|e| resolve_columns(e, &input.schema)).collect();
        let filter = filter.cloned().map(|e| resolve_columns(e, &input.schema));
        // CURRENT_WATERMARK(ts) reads a column the Calc appends to its input.
        let mut appends_watermark = false;
        let mut input_schema = input.schema.clone();
        let (projections, filter) = if projections.iter().chain(&filter).any(uses_current_watermark) {
            appends_watermark = true;
            let df = DFSchema::try_from(input.schema.as_ref().clone()).map_err(|e| internal(location, e))?;
            let rewrite = |e: Expr| current_watermark_column(e, &df).map_err(|e| internal(location, e));
            let projections = projections.into_iter().map(rewrite).collect::<Result<Vec<_>>>()?;
            let filter = filter.map(rewrite).transpose()?;
            let mut fields = input.schema.fields().to_vec();
            fields.push(Arc::new(Field::new(WATERMARK_COLUMN, DataType::Timestamp(TimeUnit::Millisecond, None), true)));
            input_schema = Arc::new(Schema::new(fields));
            (projections, filter)
        } else {
            (projections, filter)
        };
        let pass_through = !appends_watermark
            && filter.is_none()
            && output.fields().len() == input.schema.fields().len()
            && projections.iter().zip(input.schema.fields()).zip(output.fields()).all(|((e, i), o)| {
                matches!(e.clone().unalias(), Expr::Column(c) if c.name == *i.name())
                    && i.name() == o.name()
                    && i.data_type() == o.data_type()
                    && (i.is_nullable() == o.is_nullable() || o.is_nullable())
            });
        if pass_through {
            return Ok(Stream { schema: output, ..input.clone() });
        }
        let identity = !appends_watermark
            && projections.len() == input.schema.fields().len()
            && projections
                .iter()
                .zip(input.schema.fields())
                .all(|(e, f)| matches!(e, Expr::Column(c) if c.name == *f.name()));
        let mut name = Vec::new();
        if let Some(f) = &filter {
            name.push(format!("where {f}"));
        }
        if !identity {
            let list: Vec<String> = projections
                .iter()
                .zip(output.fields())
                .filter(|(_, f)| f.name() != changelog::ROW_KIND_COLUMN)
                .map(|(e, f)| describe_projection(e, f.name()))
                .collect();
            name.push(list.join(", "));
        }
        let spec = CalcSpec {
            appends_watermark,
            input_schema: encode_schema(&input_schema),
            filter: filter.as_ref().map(encode_expr).transpose().map_err(|e| internal(location, e))?,
            projections: projections
                .iter()
                .map(encode_expr)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| internal(location, e))?,
            output_schema: encode_schema(&output),
        };
        let op = OperatorSpec {
            uid: String::new(),
            name: short(format!("calc({})", name.join("; "))),
            kind: Some(Kind::Calc(spec)),
        };
        let parallelism = input.parallelism;
        let stream = self.then(input, op, parallelism, Partitioning::Forward, vec![], output);
        if input.updates.is_some() {
            self.updating.insert(self.builder.uid(stream.node).to_string());
        }
        Ok(Stream { updates: input.updates.clone(), ..stream })
    }

    /// Refuses `input` when it carries updates, which `what` cannot read yet.
    pub fn append_only(&self, input: &Stream, what: &str, location: Location) -> Result<()> {
        match &input.updates {
            None => Ok(()),
            Some(producer) => Err(SqlError::new(
                location,
                format!("{what} doesn't support consuming update changes which is produced by node {producer}"),
            )
            .with_hint(if what.starts_with("Table sink") {
                "aggregate by windows instead (GROUP BY window_start, window_end, ...), write to a table that takes \
                 updates ('connector' = 'upsert-kafka' with a PRIMARY KEY), or run the bounded input in batch mode: \
                 SET 'execution.runtime-mode' = 'batch'"
            } else {
                "aggregate by windows instead (GROUP BY window_start, window_end, ...), or run the bounded input in \
                 batch mode: SET 'execution.runtime-mode' = 'batch'"
            })),
        }
    }

    /// The stream of a table's rows: its source (at `requested` parallelism, else the
    /// default), computed columns and watermark. The table's options are already validated.
    /// A scan's `request` is pushed into the source where its connector takes it; a source
    /// with a pushdown serves only scans that ask for the same.
    pub fn table_stream(
        &mut self,
        table: &TableInfo,
        requested: Option<u32>,
        location: Location,
        request: Option<ScanRequest>,
    ) -> Result<Stream> {
        let pushdown = request.and_then(|r| scan_pushdown(table, &r));
        let key = match &pushdown {
            None => table.name.to_ascii_lowercase(),
            Some(p) => format!("{}\u{0}{:?}\u{0}{:?}", table.name.to_ascii_lowercase(), p.columns, p.predicates),
        };
        if let Some(stream) = self.sources.get(&key) {
            return Ok(stream.clone());
        }
        if self.batch_mode && !sluice_connectors::bounded(&table.connector) {
            return Err(unbounded_in_batch_mode(table, location));
        }
        let mut spec = table.connector.clone();
        let parallelism = requested.unwrap_or(self.default_parallelism);
        let mut physical = table.physical_schema.clone();
        if let Some(pushdown) = pushdown {
            if !pushdown.columns.is_empty() {
                let fields = pushdown
                    .columns
                    .iter()
                    .map(|c| physical.field_with_name(c).cloned().map_err(|e| internal(location, e)))
                    .collect::<Result<Vec<_>>>()?;
                physical = Arc::new(Schema::new(fields));
            }
            spec.pushdown = Some(pushdown);
        }
        // Kafka tables get per-partition watermarks: a hidden column carries each row's
        // partition to the watermark operator, which drops it.
        let per_split = table.watermark.is_some() && spec.connector == "kafka";
        let split_field = Field::new(SPLIT_COLUMN, DataType::Utf8, true);
        if per_split {
            spec.metadata.insert(SPLIT_COLUMN.into(), SPLIT_METADATA.into());
            physical =
                Arc::new(Schema::new([physical.fields().to_vec(), vec![Arc::new(split_field.clone())]].concat()));
            spec.schema = encode_schema(&physical);
        }
        let idle_timeout_ms = match spec.options.get("scan.watermark.idle-timeout") {
            Some(v) => sluice_core::options::parse_duration(v)
                .map_err(|e| {
                    SqlError::new(
                        location,
                        format!("table '{}': option 'scan.watermark.idle-timeout' = '{v}': {e}", table.name),
                    )
                })?
                .as_millis() as u64,
            None => 0,
        };
        let pushed = spec.pushdown.as_ref().map(pushdown::describe).unwrap_or_default();
        let name = format!("source: {}({}){pushed}", table.name, spec.connector);
        let node =
            self.builder.add(OperatorSpec { uid: String::new(), name, kind: Some(Kind::Source(spec)) }, parallelism);
        let mut stream = Stream { node, schema: physical, parallelism, updates: None };
        if !table.computed.is_empty() {
            let mut exprs = table.computed.clone();
            let mut output = table.schema.clone();
            if per_split {
                exprs.push(Expr::Column(Column::new(Some(table.name.as_str()), SPLIT_COLUMN)));
                output =
                    Arc::new(Schema::new([output.fields().to_vec(), vec![Arc::new(split_field.clone())]].concat()));
            }
            stream = self.calc(&stream, None, &exprs, output, location)?;
        }
        if let Some((column, expr, text)) = &table.watermark {
            let split_column = per_split.then(|| stream.schema.fields().len() as u32 - 1);
            let spec = WatermarkSpec {
                input_schema: encode_schema(&stream.schema),
                expression: encode_expr(&unqualify(expr.clone())).map_err(|e| internal(location, e))?,
                column: column.clone(),
                split_column,
                idle_timeout_ms,
            };
            let name = if per_split {
                format!("watermark(for {column} as {text}, per partition)")
            } else {
                format!("watermark(for {column} as {text})")
            };
            let op = OperatorSpec { uid: String::new(), name: short(name), kind: Some(Kind::Watermark(spec)) };
            let schema = stream.schema.clone();
            stream = self.then(&stream, op, stream.parallelism, Partitioning::Forward, vec![], schema);
            if per_split {
                let columns: Vec<u32> = (0..table.schema.fields().len() as u32).collect();
                let spec = ProjectSpec { columns, output_schema: encode_schema(&table.schema) };
                let op = OperatorSpec {
                    uid: String::new(),
                    name: "project(drop partition)".into(),
                    kind: Some(Kind::Project(spec)),
                };
                stream =
                    self.then(&stream, op, stream.parallelism, Partitioning::Forward, vec![], table.schema.clone());
            }
        }
        self.sources.insert(key, stream.clone());
        Ok(stream)
    }

    /// A windowing function after `input`: each row once per window holding it (or once,
    /// with its slice, when it feeds a window aggregate that finds the windows).
    pub fn window_tvf(&mut self, input: &Stream, window: &ResolvedWindow) -> Result<Stream> {
        let call = &window.call;
        self.append_only(input, &format!("the window function {}", call.function.name()), call.location)?;
        let kind = match call.function {
            WindowFunction::Tumble => WindowKind::Tumble,
            WindowFunction::Hop => WindowKind::Hop,
            WindowFunction::Cumulate => WindowKind::Cumulate,
            WindowFunction::Session => WindowKind::Session,
        };
        let mut spec = WindowTvfSpec {
            kind: kind as i32,
            time_column: window.time_column as u32,
            size_ms: call.size_ms,
            step_ms: call.step_ms,
            offset_ms: call.offset_ms,
            output_schema: encode_schema(&window.output_schema),
            slices: false,
            processing_time: window.processing_time,
        };
        if let Some(feed) = self.window_feed.as_mut().filter(|f| f.placeholder == call.placeholder) {
            // Flink's rule for window aggregates over HOP and CUMULATE.
            let (what, step_name) = match call.function {
                WindowFunction::Hop => ("HOP", "slide"),
                WindowFunction::Cumulate => ("CUMULATE", "step"),
                WindowFunction::Tumble | WindowFunction::Session => ("", ""),
            };
            if !call.legacy && !what.is_empty() && call.step_ms > 0 && call.size_ms % call.step_ms != 0 {
                let size_name = if what == "HOP" { "size" } else { "maxSize" };
                return Err(SqlError::new(
                    call.location,
                    format!(
                        "{what} table function based aggregate requires {size_name} must be an integral multiple of \
                         {step_name}, but got {size_name} {} ms and {step_name} {} ms",
                        call.size_ms, call.step_ms
                    ),
                )
                .with_hint(format!("choose a size that is a multiple of the {step_name}")));
            }
            if call.function == WindowFunction::Session {
                if !feed.slices {
                    return Err(SqlError::new(
                        call.location,
                        "a SESSION window's columns cannot be computed with before its GROUP BY yet",
                    )
                    .with_hint("use window_start and window_end after the GROUP BY"));
                }
                session_partition(call, feed.keys.as_deref())?;
            }
            spec.slices = feed.slices;
            feed.spec = Some(spec.clone());
        } else if call.function == WindowFunction::Session {
            return Err(SqlError::new(call.location, "a SESSION window table function needs a window aggregate yet")
                .with_hint("aggregate it: SELECT ... FROM TABLE(SESSION(...)) GROUP BY k, window_start, window_end"));
        }
        let name = if spec.slices { format!("{} slices", window_name(&spec)) } else { window_name(&spec) };
        let op = OperatorSpec { uid: String::new(), name, kind: Some(Kind::WindowTvf(spec)) };
        Ok(self.then(input, op, input.parallelism, Partitioning::Forward, vec![], window.output_schema.clone()))
    }

    /// An ML_PREDICT operator after `input` (behind a hash edge on the features when the
    /// model caches answers).
    pub fn ml_predict(&mut self, input: &Stream, ml: &ResolvedMl) -> Stream {
        let spec = MlPredictSpec {
            model: ml.model.clone(),
            provider: ml.provider.clone(),
            options: ml.options.clone(),
            config: ml.config.clone(),
            input_schema: encode_schema(&input.schema),
            descriptor_columns: ml.descriptor.iter().map(|&c| c as u32).collect(),
            model_input_schema: encode_schema(&ml.model_input),
            model_output_schema: encode_schema(&ml.model_output),
            output_schema: encode_schema(&ml.output_schema),
        };
        let op = OperatorSpec {
            uid: String::new(),
            name: format!("ml_predict(model {}, provider {})", ml.model, ml.provider),
            kind: Some(Kind::MlPredict(spec)),
        };
        let parallelism = self.default_parallelism;
        // Cached answers live in keyed state: rows with the same features must meet the
        // same subtask (and key group), also after rescaling.
        let cached = ml
            .config
            .get("cache.enabled")
            .or_else(|| ml.options.get("cache.enabled"))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if cached {
            let keys = ml.descriptor.iter().map(|&c| c as u32).collect();
            return self.then(input, op, parallelism, Partitioning::Hash, keys, ml.output_schema.clone());
        }
        self.then(input, op, parallelism, Partitioning::Forward, vec![], ml.output_schema.clone())
    }

    /// UNION ALL: each input conformed to the union's columns, then one operator that all of
    /// them feed (its watermark is the minimum over them, as for any operator with inputs).
    fn union_all(
        &mut self,
        inputs: &[Arc<LogicalPlan>],
        output: SchemaRef,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let mut streams = Vec::with_capacity(inputs.len());
        for input in inputs {
            let stream = self.lower(input, location, resolve)?;
            self.append_only(&stream, "UNION ALL", location)?;
            let columns: Vec<Expr> = stream
                .schema
                .fields()
                .iter()
                .zip(output.fields())
                .map(|(from, to)| {
                    let column = Expr::Column(Column::new_unqualified(from.name()));
                    let column = if from.data_type() == to.data_type() {
                        column
                    } else {
                        datafusion::logical_expr::cast(column, to.data_type().clone())
                    };
                    column.alias(to.name())
                })
                .collect();
            streams.push(self.calc(&stream, None, &columns, output.clone(), location)?);
        }
        Ok(self.merge(&streams, "union all", &[]))
    }

    /// One operator that all `streams` (of one schema) feed, named `name`. Updating
    /// streams stay updating: each key's changes come from one of them, in order; one at
    /// another parallelism is hashed on `keys` (its rows' key), so they stay in order.
    fn merge(&mut self, streams: &[Stream], name: &str, keys: &[u32]) -> Stream {
        let output = streams[0].schema.clone();
        let spec =
            ProjectSpec { columns: (0..output.fields().len() as u32).collect(), output_schema: encode_schema(&output) };
        let op = OperatorSpec { uid: String::new(), name: name.into(), kind: Some(Kind::Project(spec)) };
        let updating = streams.iter().any(|s| s.updates.is_some());
        let parallelism = match streams.iter().filter(|s| s.updates.is_some()).map(|s| s.parallelism).max() {
            Some(p) => p,
            None => self.default_parallelism,
        };
        let node = self.builder.add(op, parallelism);
        for stream in streams {
            let schema = encode_schema(&stream.schema);
            if updating && stream.parallelism != parallelism && !keys.is_empty() {
                self.builder.connect(stream.node, node, Partitioning::Hash, keys.to_vec(), schema);
            } else {
                self.builder.connect(stream.node, node, Partitioning::Forward, vec![], schema);
            }
        }
        let updates = streams.iter().find_map(|s| s.updates.clone());
        if updates.is_some() {
            self.updating.insert(self.builder.uid(node).to_string());
        }
        Stream { node, schema: output, parallelism, updates }
    }

    /// Lowers the input of a filter with `predicate`: a Top-N when the filter bounds the
    /// rank of an OVER window below it, a join when it joins a comma join's tables.
    /// Returns the input and what is left to filter.
    fn lower_filtered(
        &mut self,
        input: &LogicalPlan,
        predicate: Option<&Expr>,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<(Stream, Option<Expr>)> {
        let calls_model = |e: &Expr| ml_calls::calls_model(e, &self.ml_calls);
        if let Some((joined, above)) = predicate.and_then(|p| join::with_where(input, p, &calls_model)) {
            return Ok((self.lower(&joined, location, resolve)?, above));
        }
        let Some((filter, rest)) = predicate.and_then(|p| rank_filter(p, input)) else {
            if matches!(input, LogicalPlan::TableScan(_)) {
                self.scan_filter = predicate.cloned();
            }
            let lowered = self.lower(input, location, resolve);
            self.scan_filter = None;
            return Ok((lowered?, predicate.cloned()));
        };
        self.rank_filter = Some(filter);
        let lowered = self.lower(input, location, resolve);
        self.rank_filter = None;
        Ok((lowered?, rest))
    }

    /// Lowers the plan of a view read by the query being lowered: the view's windowing
    /// calls are its own, whatever the query around it feeds.
    pub fn lower_nested(
        &mut self,
        plan: &LogicalPlan,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let enclosing = self.window_feed.take();
        let lowered = self.lower(plan, location, resolve);
        self.window_feed = enclosing;
        lowered
    }

    /// Lowers a logical plan; `resolve` handles table scans (tables, views, ML_PREDICT).
    pub fn lower(
        &mut self,
        plan: &LogicalPlan,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let arrow = |schema: &DFSchema| Arc::new(schema.as_arrow().clone());
        match plan {
            LogicalPlan::Projection(projection) => {
                let (input_plan, filter) = match projection.input.as_ref() {
                    LogicalPlan::Filter(f) => (f.input.as_ref(), Some(&f.predicate)),
                    other => (other, None),
                };
                if matches!(input_plan, LogicalPlan::TableScan(_)) {
                    let read = projection.expr.iter().chain(filter).flat_map(|e| e.column_refs()).map(|c| c.name.clone());
                    self.scan_columns = Some(read.collect());
                }
                let lowered = self.lower_filtered(input_plan, filter, location, resolve);
                self.scan_columns = None;
                let (input, filter) = lowered?;
                let output = unique_names(&projection.schema);
                self.calc(&input, filter.as_ref(), &projection.expr, output, location)
            }
            LogicalPlan::Filter(filter) => {
                let (input, predicate) = self.lower_filtered(&filter.input, Some(&filter.predicate), location, resolve)?;
                let all: Vec<Expr> =
                    input.schema.fields().iter().map(|f| Expr::Column(Column::new_unqualified(f.name()))).collect();
                let schema = input.schema.clone();
                self.calc(&input, predicate.as_ref(), &all, schema, location)
            }
            LogicalPlan::Window(window) => match self.rank_filter.take().filter(|f| f.ranks(window)) {
                Some(filter) => {
                    let input = self.lower(&window.input, location, resolve)?;
                    self.top_n(&input, window, filter, location)
                }
                None => Err(SqlError::new(
                    self.locations.function("row_number").unwrap_or(location),
                    "an OVER window is supported only as a Top-N yet",
                )
                .with_hint(
                    "filter its rank: SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY c DESC) AS \
                     rownum FROM t) WHERE rownum <= N",
                )),
            },
            LogicalPlan::SubqueryAlias(alias) => self.lower(&alias.input, location, resolve),
            LogicalPlan::Aggregate(aggregate) => {
                if let [Expr::GroupingSet(sets)] = aggregate.group_expr.as_slice() {
                    return self.grouping_sets(aggregate, sets, arrow(&aggregate.schema), location, resolve);
                }
                if let Some(window) = window_grouping(aggregate) {
                    return self.window_aggregate(aggregate, &window, arrow(&aggregate.schema), location, resolve);
                }
                let input = self.lower(&aggregate.input, location, resolve)?;
                self.aggregate(
                    &input,
                    aggregate.input.schema(),
                    &aggregate.group_expr,
                    &aggregate.aggr_expr,
                    arrow(&aggregate.schema),
                    location,
                )
            }
            LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => {
                let lowered = self.lower(input, location, resolve)?;
                let keys: Vec<Expr> = input.schema().columns().into_iter().map(Expr::Column).collect();
                let output = arrow(input.schema());
                self.aggregate(&lowered, input.schema(), &keys, &[], output, location)
            }
            LogicalPlan::TableScan(scan) => {
                if !scan.filters.is_empty() || scan.fetch.is_some() {
                    return Err(internal(location, "pushed-down scan filters"));
                }
                let projected: Vec<String> = scan.projected_schema.fields().iter().map(|f| f.name().clone()).collect();
                let read = self.scan_columns.take();
                let table = scan.source.schema();
                let columns = match (&scan.projection, read) {
                    (Some(_), _) => Some(projected.clone()),
                    // The columns the projection above reads, in the table's order.
                    (None, Some(read)) if !read.is_empty() => {
                        Some(table.fields().iter().map(|f| f.name().clone()).filter(|n| read.contains(n)).collect())
                    }
                    _ => None,
                };
                self.scan_request =
                    Some(ScanRequest { columns, filter: self.scan_filter.take(), schema: Some(table.clone()) });
                let stream = resolve(self, scan.table_name.table(), location);
                self.scan_request = None;
                let stream = stream?;
                let names: Vec<&String> = stream.schema.fields().iter().map(|f| f.name()).collect();
                if names.iter().copied().eq(projected.iter()) {
                    // The source produces exactly the scan's columns (pushed down).
                    return Ok(stream);
                }
                match &scan.projection {
                    Some(indices) if indices.len() != stream.schema.fields().len() || indices.iter().enumerate().any(|(i, &j)| i != j) => {
                        let exprs: Vec<Expr> = indices
                            .iter()
                            .map(|&i| Expr::Column(Column::new_unqualified(stream.schema.field(i).name())))
                            .collect();
                        self.calc(&stream, None, &exprs, arrow(&scan.projected_schema), location)
                    }
                    _ => Ok(stream),
                }
            }
            LogicalPlan::Sort(sort) => {
                let input = self.lower(&sort.input, location, resolve)?;
                let range = sort.fetch.map(|n| (0, n as u64));
                self.sort_limit(&input, &sort.expr, range, location)
            }
            LogicalPlan::Limit(limit) => {
                let skip = match limit.get_skip_type() {
                    Ok(datafusion::logical_expr::SkipType::Literal(n)) => n as u64,
                    _ => return Err(SqlError::new(location, "OFFSET must be a number").with_hint("write OFFSET 10")),
                };
                let fetch = match limit.get_fetch_type() {
                    Ok(datafusion::logical_expr::FetchType::Literal(Some(n))) => n as u64,
                    _ => {
                        return Err(SqlError::new(location, "a streaming query needs a LIMIT with a number of rows")
                            .with_hint("write LIMIT 10"))
                    }
                };
                match limit.input.as_ref() {
                    LogicalPlan::Sort(sort) if sort.fetch.is_none() => {
                        let input = self.lower(&sort.input, location, resolve)?;
                        self.sort_limit(&input, &sort.expr, Some((skip, fetch)), location)
                    }
                    other => {
                        let input = self.lower(other, location, resolve)?;
                        self.sort_limit(&input, &[], Some((skip, fetch)), location)
                    }
                }
            }
            LogicalPlan::Join(join) => self.join(join, location, resolve),
            LogicalPlan::Union(union) => self.union_all(&union.inputs, arrow(&union.schema), location, resolve),
            LogicalPlan::EmptyRelation(_) | LogicalPlan::Values(_) => Err(SqlError::new(
                location,
                "queries without a FROM table are not supported in streaming jobs",
            )
            .with_hint("read from a table declared with CREATE TABLE")),
            other => Err(SqlError::new(location, format!("{} is not supported yet in streaming SQL", describe(other)))
                .with_hint("supported today: projections, WHERE, CASE, CAST, functions, GROUP BY, window table functions and window aggregates, Top-N, ORDER BY, LIMIT, joins on equal keys, DISTINCT, UNION ALL, ML_PREDICT")),
        }
    }
}

fn describe(plan: &LogicalPlan) -> &'static str {
    match plan {
        LogicalPlan::Subquery(_) => "a subquery",
        LogicalPlan::Unnest(_) => "UNNEST",
        LogicalPlan::RecursiveQuery(_) => "a recursive query",
        LogicalPlan::Distinct(_) => "DISTINCT ON",
        _ => "this query shape",
    }
}

/// The error for a scan of a table that never ends in a batch job, with what bounds it
/// where its connector has something.
fn unbounded_in_batch_mode(table: &TableInfo, location: Location) -> SqlError {
    const STREAMING: &str = "run the job in streaming mode: SET 'execution.runtime-mode' = 'streaming'";
    let hint = match sluice_connectors::how_to_bound(&table.connector.connector) {
        Some(bound) => format!("{bound}, or {STREAMING}"),
        None => STREAMING.to_string(),
    };
    SqlError::new(
        location,
        format!(
            "table '{}' is unbounded (connector '{}'): a batch job (execution.runtime-mode = 'batch') reads only \
             tables that end",
            table.name, table.connector.connector
        ),
    )
    .with_hint(hint)
}
