//! Lowering GROUP BY: a pre-projection of the group keys and the aggregate arguments, a
//! hash edge on the keys, and a keyed aggregation — or, when the query groups by the
//! `window_start` and `window_end` of a windowing function, a window aggregation that
//! emits each window once when the watermark passes its end.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan};
use datafusion::scalar::ScalarValue;
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{
    AggregateCall, AggregateFunction, KeyedAggregateSpec, OperatorSpec, Partitioning, WindowAggregateSpec,
};
use sluice_transforms::aggregate::output_type;
use sqlparser::tokenizer::Location;

use super::{internal, short, unqualify, Lowering, Result, Stream, WindowFeed};
use crate::error::SqlError;
use crate::parser::is_window_placeholder;
use crate::plan::tables::WINDOW_COLUMNS;

/// How a GROUP BY reads the windows of a windowing function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowGrouping {
    /// The windowing call's placeholder table.
    pub placeholder: String,
    /// True when nothing between the call and the GROUP BY looks at the window columns:
    /// the call then sends each row once with its slice, and the aggregate finds the
    /// windows (no copy of a row per window).
    pub slices: bool,
    /// Positions of `window_start`, `window_end` and `window_time` among the group keys.
    pub start: usize,
    /// See `start`.
    pub end: usize,
    /// See `start`.
    pub time: Option<usize>,
}

fn names_window_column(expr: &Expr) -> bool {
    expr.column_refs().iter().any(|c| WINDOW_COLUMNS.contains(&c.name.as_str()))
}

/// A window column passed on under its own name.
fn passes_window_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => WINDOW_COLUMNS.contains(&c.name.as_str()),
        Expr::Alias(a) => matches!(a.expr.as_ref(), Expr::Column(c) if c.name == a.name),
        _ => false,
    }
}

/// The window grouping of `aggregate`, when it groups by the `window_start` and
/// `window_end` columns of a windowing call reached through projections and filters only
/// (as Flink plans a window aggregate); `None` for any other GROUP BY.
pub fn window_grouping(aggregate: &Aggregate) -> Option<WindowGrouping> {
    let position =
        |name: &str| aggregate.group_expr.iter().position(|e| matches!(e, Expr::Column(c) if c.name == name));
    let (start, end, time) = (position("window_start")?, position("window_end")?, position("window_time"));
    let mut slices = true;
    let mut plan = aggregate.input.as_ref();
    loop {
        match plan {
            LogicalPlan::Projection(p) => {
                for (expr, (_, field)) in p.expr.iter().zip(p.schema.iter()) {
                    let passed = passes_window_column(expr);
                    // A column named like a window column that is not one: not a window.
                    if WINDOW_COLUMNS.contains(&field.name().as_str()) && !passed {
                        return None;
                    }
                    if names_window_column(expr) && !passed {
                        slices = false;
                    }
                }
                plan = p.input.as_ref();
            }
            LogicalPlan::Filter(f) => {
                if names_window_column(&f.predicate) {
                    slices = false;
                }
                plan = f.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => plan = a.input.as_ref(),
            LogicalPlan::TableScan(scan) if is_window_placeholder(scan.table_name.table()) => {
                let placeholder = scan.table_name.table().to_string();
                return Some(WindowGrouping { placeholder, slices, start, end, time });
            }
            _ => return None,
        }
    }
}

/// The group keys and aggregate calls of a GROUP BY, ready for an aggregation operator.
struct Grouping {
    /// The pre-projection: keys (a constant for a GROUP BY without keys), then arguments.
    pre: Vec<Expr>,
    /// Number of keys in `pre`.
    keys: usize,
    calls: Vec<AggregateCall>,
    /// True when the query has no key of its own, and the constant key was added.
    global: bool,
}

impl Lowering {
    /// The pre-projection and calls of a GROUP BY over `group` (the keys that do not count
    /// as keys of their own, such as window columns, are in `group` but not in `own_keys`).
    fn grouping(&self, group: &[Expr], own_keys: usize, aggregates: &[Expr], location: Location) -> Result<Grouping> {
        let mut pre: Vec<Expr> = group.to_vec();
        let global = own_keys == 0;
        if global {
            // One constant key, so every row meets in one subtask.
            pre.push(Expr::Literal(ScalarValue::Int32(Some(0)), None));
        }
        let keys = pre.len();
        let mut calls = Vec::new();
        for expr in aggregates {
            let Expr::AggregateFunction(call) = expr.clone().unalias() else {
                return Err(SqlError::new(location, format!("'{expr}' is not supported as an aggregate yet")));
            };
            let at = self.locations.function(call.func.name()).unwrap_or(location);
            let name = call.func.name().to_ascii_lowercase();
            let params = &call.params;
            if !params.order_by.is_empty() {
                return Err(SqlError::new(at, format!("ORDER BY inside '{}' is not supported yet", call.func.name()))
                    .with_hint("FIRST_VALUE and LAST_VALUE take rows in arrival order"));
            }
            let mut separator = None;
            let function = match (name.as_str(), params.args.as_slice()) {
                ("count", [Expr::Literal(..)]) | ("count", []) if !params.distinct => AggregateFunction::CountStar,
                ("count", [_]) => AggregateFunction::Count,
                ("sum", [_]) => AggregateFunction::Sum,
                ("min", [_]) => AggregateFunction::Min,
                ("max", [_]) => AggregateFunction::Max,
                ("avg" | "mean", [_]) => AggregateFunction::Avg,
                ("first_value", [_]) => AggregateFunction::FirstValue,
                ("last_value", [_]) => AggregateFunction::LastValue,
                ("array_agg", [_]) => AggregateFunction::ArrayAgg,
                ("listagg", [_]) => AggregateFunction::Listagg,
                ("listagg" | "string_agg", [_, sep]) => {
                    let Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) = sep else {
                        return Err(SqlError::new(
                            at,
                            format!("the separator of '{}' must be a string literal", call.func.name()),
                        )
                        .with_hint("write it like LISTAGG(name, '; ')"));
                    };
                    separator = Some(s.clone());
                    AggregateFunction::Listagg
                }
                _ => return Err(SqlError::new(
                    at,
                    format!("aggregate function '{}' is not supported yet", call.func.name()),
                )
                .with_hint(
                    "supported: COUNT, SUM, MIN, MAX, AVG, FIRST_VALUE, LAST_VALUE, ARRAY_AGG, LISTAGG, with DISTINCT \
                         and FILTER (WHERE ...)",
                )),
            };
            let column = if function == AggregateFunction::CountStar {
                None
            } else {
                pre.push(params.args[0].clone());
                Some((pre.len() - 1) as u32)
            };
            let filter_column = params.filter.as_ref().map(|f| {
                pre.push(f.as_ref().clone());
                (pre.len() - 1) as u32
            });
            calls.push(AggregateCall {
                function: function as i32,
                column,
                distinct: params.distinct,
                filter_column,
                separator,
            });
        }
        Ok(Grouping { pre, keys, calls, global })
    }

    /// The schema of a grouping's pre-projection, its types checked against `output`.
    fn pre_schema(
        &self,
        grouping: &Grouping,
        group: &[Expr],
        input_schema: &DFSchema,
        output: &SchemaRef,
        location: Location,
    ) -> Result<SchemaRef> {
        // Names of the pre-projection are internal; they only need to be unique.
        let mut fields: Vec<Field> = Vec::new();
        for (i, e) in grouping.pre.iter().enumerate() {
            let (_, field) = e.to_field(input_schema).map_err(|err| internal(location, err))?;
            // Keys keep a readable name (shown as the hash key in plans) when it is unique.
            let readable = unqualify(e.clone()).to_string();
            let name = if i < group.len() && !fields.iter().any(|f| f.name() == &readable) {
                readable
            } else {
                format!("__agg_input_{i}")
            };
            fields.push(Field::new(name, field.data_type().clone(), field.is_nullable()));
        }
        let pre_schema = Arc::new(Schema::new(fields));
        for (i, call) in grouping.calls.iter().enumerate() {
            let function = AggregateFunction::try_from(call.function).map_err(|e| internal(location, e))?;
            let input_type = call.column.map(|c| pre_schema.field(c as usize).data_type().clone());
            let expected = output.field(group.len() + i).data_type();
            if output_type(function, input_type.as_ref()).as_ref() != Some(expected) {
                return Err(SqlError::new(
                    location,
                    format!(
                        "{:?} over {} is not supported yet",
                        function,
                        input_type.map_or("*".into(), |t| t.to_string())
                    ),
                )
                .with_hint("aggregate INT, BIGINT, FLOAT or DOUBLE columns, or CAST the argument"));
            }
        }
        Ok(pre_schema)
    }

    /// The operator's output: `output` with the constant key of a keyless GROUP BY inserted
    /// after the group columns.
    fn with_global_key(output: &SchemaRef, group: usize) -> SchemaRef {
        let mut fields: Vec<Field> = output.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.insert(group, Field::new("__global", DataType::Int32, false));
        Arc::new(Schema::new(fields))
    }

    /// Drops the constant key of a keyless GROUP BY again.
    fn drop_global_key(&mut self, stream: &Stream, output: SchemaRef, location: Location) -> Result<Stream> {
        let columns: Vec<Expr> =
            output.fields().iter().map(|f| Expr::Column(Column::new_unqualified(f.name()))).collect();
        self.calc(stream, None, &columns, output, location)
    }

    /// GROUP BY: a pre-projection of keys and arguments, a hash edge on the keys, and the
    /// keyed aggregation producing `output` (keys, then one column per aggregate).
    pub fn aggregate(
        &mut self,
        input: &Stream,
        input_schema: &DFSchema,
        group: &[Expr],
        aggregates: &[Expr],
        output: SchemaRef,
        location: Location,
    ) -> Result<Stream> {
        let grouping = self.grouping(group, group.len(), aggregates, location)?;
        if input.updates.is_some() {
            // Over updates every accumulator must take rows out again.
            if grouping.calls.iter().any(|c| c.function == AggregateFunction::Listagg as i32) {
                let at =
                    self.locations.function("listagg").or(self.locations.function("string_agg")).unwrap_or(location);
                return Err(SqlError::new(at, "LISTAGG over an updating input is not supported yet")
                    .with_hint("aggregate the rows before they are updated, or use ARRAY_AGG"));
            }
        }
        let pre_schema = self.pre_schema(&grouping, group, input_schema, &output, location)?;
        let pre_stream = self.calc(input, None, &grouping.pre, pre_schema.clone(), location)?;
        // An updating input's pre-projection keeps the row kinds, which the aggregate reads.
        let pre_schema = pre_stream.schema.clone();
        let agg_output = if grouping.global { Self::with_global_key(&output, 0) } else { output.clone() };
        let emit_changelog = !self.batch_mode;
        let agg_output = if emit_changelog { changelog::with_row_kind(&agg_output) } else { agg_output };
        let keys: Vec<u32> = (0..grouping.keys as u32).collect();
        let spec = KeyedAggregateSpec {
            key_columns: keys.clone(),
            aggregates: grouping.calls,
            output_schema: encode_schema(&agg_output),
            input_schema: encode_schema(&pre_schema),
            state_ttl_ms: self.state_ttl.map(|t| t.as_millis() as u64),
            emit_changelog,
            mini_batch_latency_ms: self.mini_batch.map(|(latency, _)| latency.as_millis() as u64),
            mini_batch_size: self.mini_batch.map(|(_, size)| size),
        };
        let shown: Vec<String> = output.fields().iter().skip(group.len()).map(|f| f.name().clone()).collect();
        let keys_shown: Vec<String> = group.iter().map(|g| unqualify(g.clone()).to_string()).collect();
        let name = if grouping.global {
            short(format!("aggregate({})", shown.join(", ")))
        } else if shown.is_empty() {
            short(format!("distinct({})", keys_shown.join(", ")))
        } else {
            short(format!("aggregate(group by {}: {})", keys_shown.join(", "), shown.join(", ")))
        };
        let parallelism = if grouping.global { 1 } else { self.default_parallelism };
        let op = OperatorSpec { uid: String::new(), name: name.clone(), kind: Some(Kind::KeyedAggregate(spec)) };
        let agg = self.then(&pre_stream, op, parallelism, Partitioning::Hash, keys, agg_output);
        if emit_changelog {
            self.updating.insert(self.builder.uid(agg.node).to_string());
        }
        let agg = Stream { updates: emit_changelog.then_some(name), ..agg };
        if grouping.global {
            return self.drop_global_key(&agg, output, location);
        }
        Ok(agg)
    }

    /// GROUP BY window_start, window_end, ...: the pre-projection, a hash edge on the keys
    /// other than the window's, and the window aggregation producing `output`.
    pub fn window_aggregate(
        &mut self,
        aggregate: &Aggregate,
        window: &WindowGrouping,
        output: SchemaRef,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let positions = [Some(window.start), Some(window.end), window.time];
        let keys = aggregate
            .group_expr
            .iter()
            .enumerate()
            .filter(|(i, _)| !positions.contains(&Some(*i)))
            .map(|(_, e)| match e {
                Expr::Column(c) => Some(c.name.clone()),
                _ => None,
            })
            .collect();
        self.window_feed =
            Some(WindowFeed { placeholder: window.placeholder.clone(), slices: window.slices, keys, spec: None });
        let input = self.lower(&aggregate.input, location, resolve);
        let feed = self.window_feed.take();
        let input = input?;
        let Some(tvf) = feed.and_then(|f| f.spec) else {
            return Err(internal(location, "a window aggregate without its windowing call"));
        };
        let group = &aggregate.group_expr;
        let window_positions = [Some(window.start), Some(window.end), window.time];
        let own_keys = group.len() - window_positions.iter().flatten().count();
        let grouping = self.grouping(group, own_keys, &aggregate.aggr_expr, location)?;
        let pre_schema = self.pre_schema(&grouping, group, aggregate.input.schema(), &output, location)?;
        let pre_stream = self.calc(&input, None, &grouping.pre, pre_schema.clone(), location)?;
        // Rows of one key meet in one subtask whatever their window.
        let hash_keys: Vec<u32> =
            (0..grouping.keys as u32).filter(|k| !window_positions.contains(&Some(*k as usize))).collect();
        let agg_output = if grouping.global { Self::with_global_key(&output, group.len()) } else { output.clone() };
        let name = super::window_name(&tvf);
        let processing_time = tvf.processing_time;
        let slices = window.slices.then_some(tvf);
        let spec = WindowAggregateSpec {
            input_schema: encode_schema(&pre_schema),
            key_columns: (0..grouping.keys as u32).collect(),
            window_start_key: window.start as u32,
            window_end_key: window.end as u32,
            window_time_key: window.time.map(|t| t as u32),
            aggregates: grouping.calls,
            output_schema: encode_schema(&agg_output),
            slices,
            processing_time,
        };
        let keys_shown: Vec<String> = group
            .iter()
            .enumerate()
            .filter(|(i, _)| !window_positions.contains(&Some(*i)))
            .map(|(_, g)| unqualify(g.clone()).to_string())
            .collect();
        let shown: Vec<String> = output.fields().iter().skip(group.len()).map(|f| f.name().clone()).collect();
        let name = if keys_shown.is_empty() {
            short(format!("window_aggregate({name}: {})", shown.join(", ")))
        } else {
            short(format!("window_aggregate({name}, group by {}: {})", keys_shown.join(", "), shown.join(", ")))
        };
        let parallelism = if grouping.global { 1 } else { self.default_parallelism };
        let op = OperatorSpec { uid: String::new(), name, kind: Some(Kind::WindowAggregate(spec)) };
        let agg = self.then(&pre_stream, op, parallelism, Partitioning::Hash, hash_keys, agg_output);
        if grouping.global {
            return self.drop_global_key(&agg, output, location);
        }
        Ok(agg)
    }
}
