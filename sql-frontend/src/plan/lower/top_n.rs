//! Lowering Top-N: Flink's `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) AS rownum` in a
//! subquery whose rows are filtered on `rownum` (`<= N`, `< N`, `= N`, `BETWEEN a AND b`).
//! The filter and the OVER window become one Top-N operator behind a hash edge on the
//! partition columns; when they include `window_start` and `window_end` it is a window
//! Top-N, which emits each window once, otherwise a Top-N emitting updates. `ORDER BY ...
//! LIMIT n` is a Top-N over all rows; `ORDER BY` on a time column alone a temporal sort.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, SortExpr, Window, WindowFunctionDefinition};
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{OperatorSpec, Partitioning, SortColumn, TemporalSortSpec, TopNSpec};
use sqlparser::tokenizer::Location;

use super::{short, Lowering, Result, Stream};
use crate::error::SqlError;

/// A Top-N recognized around an OVER window, waiting for the window to be lowered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankFilter {
    /// The address of the window's plan node.
    window: usize,
    /// The first rank kept (1-based).
    start: u64,
    /// The last rank kept.
    end: u64,
}

/// The integer a rank bound compares with (through casts).
fn integer(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(value, _) => value.to_string().parse().ok(),
        Expr::Cast(c) => integer(&c.expr),
        Expr::TryCast(c) => integer(&c.expr),
        _ => None,
    }
}

/// True when `expr` is the rank column (through casts).
fn is_rank(expr: &Expr, rank: &str) -> bool {
    match expr {
        Expr::Column(c) => c.name == rank,
        Expr::Cast(c) => is_rank(&c.expr, rank),
        Expr::TryCast(c) => is_rank(&c.expr, rank),
        _ => false,
    }
}

/// The ranks a conjunct keeps, as (lowest, highest) bounds; `None` when it does not bound
/// the rank column.
fn rank_bounds(conjunct: &Expr, rank: &str) -> Option<(Option<i64>, Option<i64>)> {
    match conjunct {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_rank(left, rank) {
                (*op, integer(right)?)
            } else if is_rank(right, rank) {
                (op.swap()?, integer(left)?)
            } else {
                return None;
            };
            match op {
                Operator::LtEq => Some((None, Some(value))),
                Operator::Lt => Some((None, Some(value - 1))),
                Operator::Eq => Some((Some(value), Some(value))),
                Operator::GtEq => Some((Some(value), None)),
                Operator::Gt => Some((Some(value + 1), None)),
                _ => None,
            }
        }
        Expr::Between(b) if !b.negated && is_rank(&b.expr, rank) => {
            Some((Some(integer(&b.low)?), Some(integer(&b.high)?)))
        }
        _ => None,
    }
}

/// The OVER window under a filter (through projections and aliases), and the name its rank
/// column has at the filter.
fn window_below(plan: &LogicalPlan) -> Option<(&Window, String)> {
    let mut projections = Vec::new();
    let mut plan = plan;
    let window = loop {
        match plan {
            LogicalPlan::Projection(p) => {
                projections.push(p);
                plan = p.input.as_ref();
            }
            LogicalPlan::SubqueryAlias(a) => plan = a.input.as_ref(),
            LogicalPlan::Window(w) => break w,
            _ => return None,
        }
    };
    let (_, field) = window.schema.iter().last()?;
    let mut name = field.name().clone();
    for projection in projections.iter().rev() {
        let passed = projection.expr.iter().zip(projection.schema.iter()).find_map(|(e, (_, f))| {
            matches!(e.clone().unalias(), Expr::Column(c) if c.name == name).then(|| f.name().clone())
        })?;
        name = passed;
    }
    Some((window, name))
}

/// The Top-N a filter over `input` asks for, and the rest of its predicate; `None` when
/// the filter does not bound the rank of an OVER window below it.
pub fn rank_filter(predicate: &Expr, input: &LogicalPlan) -> Option<(RankFilter, Option<Expr>)> {
    let (window, rank) = window_below(input)?;
    let (mut low, mut high) = (1i64, None::<i64>);
    let mut rest = Vec::new();
    for conjunct in datafusion::logical_expr::utils::split_conjunction(predicate) {
        match rank_bounds(conjunct, &rank) {
            Some((l, h)) => {
                low = low.max(l.unwrap_or(1));
                high = match (high, h) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            None => rest.push(conjunct.clone()),
        }
    }
    let high = high?;
    let filter =
        RankFilter { window: window as *const Window as usize, start: low.max(1) as u64, end: high.max(0) as u64 };
    Some((filter, datafusion::logical_expr::utils::conjunction(rest)))
}

impl RankFilter {
    /// True when this Top-N ranks `window`.
    pub fn ranks(&self, window: &Window) -> bool {
        self.window == window as *const Window as usize
    }
}

/// An ORDER BY column as plans show it: its name, then ` desc` when descending.
fn shown_order(input: &Stream, s: &SortColumn) -> String {
    let name = input.schema.field(s.column as usize).name();
    if s.descending {
        format!("{name} desc")
    } else {
        name.clone()
    }
}

fn unsupported(location: Location, what: &str) -> SqlError {
    SqlError::new(location, format!("{what} is not supported in a Top-N yet")).with_hint(
        "write SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY c DESC) AS rownum FROM t) \
         WHERE rownum <= N, with columns in PARTITION BY and ORDER BY",
    )
}

impl Lowering {
    /// The Top-N of `window`'s rows from `input`, keeping the ranks of `filter`.
    pub fn top_n(&mut self, input: &Stream, window: &Window, filter: RankFilter, location: Location) -> Result<Stream> {
        let [Expr::WindowFunction(call)] = window.window_expr.as_slice() else {
            let at = self.locations.function("row_number").unwrap_or(location);
            return Err(unsupported(at, "more than one OVER function"));
        };
        let WindowFunction { fun, params } = call.as_ref();
        let at = self.locations.function(fun.name()).unwrap_or(location);
        let is_row_number = matches!(fun, WindowFunctionDefinition::WindowUDF(f) if f.name() == "row_number");
        if !is_row_number {
            return Err(SqlError::new(at, format!("'{}' cannot rank a Top-N yet", fun.name()))
                .with_hint("rank with ROW_NUMBER()"));
        }
        if filter.end < filter.start {
            return Err(SqlError::new(
                location,
                format!("the rank filter keeps no rows (ranks {} to {})", filter.start, filter.end),
            )
            .with_hint("filter like WHERE rownum <= 3"));
        }
        // A column both sides of a join below have is named by its qualified name there.
        let column = |e: &Expr| match super::resolve_columns(e.clone(), &input.schema) {
            Expr::Column(c) => input.schema.index_of(&c.name).ok(),
            _ => None,
        };
        let partition: Vec<usize> = params
            .partition_by
            .iter()
            .map(|e| column(e).ok_or_else(|| unsupported(at, &format!("the expression '{e}' in PARTITION BY"))))
            .collect::<Result<_>>()?;
        if params.order_by.is_empty() {
            return Err(SqlError::new(at, "a Top-N needs ORDER BY in its OVER clause")
                .with_hint("write ROW_NUMBER() OVER (PARTITION BY k ORDER BY c DESC)"));
        }
        let order: Vec<SortColumn> = params
            .order_by
            .iter()
            .map(|s| {
                let c = column(&s.expr)
                    .ok_or_else(|| unsupported(at, &format!("the expression '{}' in ORDER BY", s.expr)))?;
                Ok(SortColumn { column: c as u32, descending: !s.asc, nulls_first: s.nulls_first })
            })
            .collect::<Result<_>>()?;
        let rank_field = window.schema.field(window.schema.fields().len() - 1).as_ref().clone();
        self.ranked(input, partition, order, (filter.start, filter.end), rank_field, location)
    }

    /// The Top-N operator after `input`: ranks `ranks` (first, last) of each `partition`
    /// by `order`, with the rank in `rank_field` (a window Top-N when the partition holds
    /// `window_start` and `window_end`).
    fn ranked(
        &mut self,
        input: &Stream,
        partition: Vec<usize>,
        order: Vec<SortColumn>,
        ranks: (u64, u64),
        rank_field: Field,
        location: Location,
    ) -> Result<Stream> {
        let named = |name: &str| partition.iter().find(|&&c| input.schema.field(c).name() == name).copied();
        let window_end = named("window_start").and(named("window_end"));
        if window_end.is_some() {
            self.append_only(input, "a window Top-N", location)?;
        }
        let data = changelog::without_row_kind(&input.schema);
        let mut fields: Vec<_> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(rank_field.with_nullable(false));
        let output = Arc::new(Schema::new(fields));
        // By arrival over insertions only, ranks only ever fill: no updates.
        let inserts_only = order.is_empty() && input.updates.is_none();
        let appends = window_end.is_some() || inserts_only;
        let output = if appends { output } else { changelog::with_row_kind(&output) };
        let (start, end) = ranks;
        let spec = TopNSpec {
            input_schema: encode_schema(&input.schema),
            partition_columns: partition.iter().map(|&c| c as u32).collect(),
            order: order.clone(),
            rank_start: start,
            rank_end: end,
            window_end_column: window_end.map(|c| c as u32),
            newer_first_on_ties: end == 1 && order.len() == 1 && order[0].descending,
            output_schema: encode_schema(&output),
            state_ttl_ms: if window_end.is_some() { None } else { self.state_ttl.map(|t| t.as_millis() as u64) },
            inserts_only,
        };
        let names = |columns: &mut dyn Iterator<Item = usize>| {
            columns.map(|c| input.schema.field(c).name().clone()).collect::<Vec<_>>().join(", ")
        };
        let ordered: Vec<String> = order.iter().map(|s| shown_order(input, s)).collect();
        let ranks = if start == 1 { format!("top {end}") } else { format!("ranks {start}..{end}") };
        let kind = if window_end.is_some() { "window_top_n" } else { "top_n" };
        let ordered = if ordered.is_empty() { "arrival".to_string() } else { ordered.join(", ") };
        let name = if partition.is_empty() {
            short(format!("{kind}({ranks}, order by {ordered})"))
        } else {
            short(format!(
                "{kind}({ranks}, partition by {}, order by {ordered})",
                names(&mut partition.iter().copied())
            ))
        };
        let op = OperatorSpec { uid: String::new(), name: name.clone(), kind: Some(Kind::TopN(spec)) };
        let keys: Vec<u32> = partition.iter().map(|&c| c as u32).collect();
        let stream = if keys.is_empty() {
            // One ranking over all rows: they meet in one subtask.
            self.then(input, op, 1, Partitioning::Rebalance, vec![], output)
        } else {
            let parallelism = self.default_parallelism();
            self.then(input, op, parallelism, Partitioning::Hash, keys, output)
        };
        if appends {
            return Ok(stream);
        }
        self.updating.insert(self.builder.uid(stream.node).to_string());
        Ok(Stream { updates: Some(name), ..stream })
    }

    /// `ORDER BY ... [LIMIT n [OFFSET m]]` over `input` (`range`: the OFFSET and LIMIT).
    /// With a LIMIT it is a Top-N over all rows, without the rank; without one the first
    /// key must be a time column ascending, and it is a temporal sort.
    pub fn sort_limit(
        &mut self,
        input: &Stream,
        order_by: &[SortExpr],
        range: Option<(u64, u64)>,
        location: Location,
    ) -> Result<Stream> {
        let at = |i: usize| self.locations.order_by(i).unwrap_or(location);
        let mut order = Vec::with_capacity(order_by.len());
        for (i, s) in order_by.iter().enumerate() {
            let column = match super::resolve_columns(s.expr.clone(), &input.schema) {
                Expr::Column(c) => input.schema.index_of(&c.name).ok(),
                _ => None,
            };
            let column = column.ok_or_else(|| {
                SqlError::new(at(i), format!("ORDER BY '{}' is not supported yet: order by columns", s.expr))
                    .with_hint("compute the value in a subquery and order by its column")
            })?;
            order.push(SortColumn { column: column as u32, descending: !s.asc, nulls_first: s.nulls_first });
        }
        let Some((offset, limit)) = range else {
            let first = order.first().filter(|s| {
                !s.descending && matches!(input.schema.field(s.column as usize).data_type(), DataType::Timestamp(..))
            });
            let Some(first) = first else {
                let at = at(0);
                return Err(SqlError::new(
                    at,
                    "ORDER BY in a streaming query must start with a time attribute, ascending",
                )
                .with_hint(
                    "order by the event time first (ORDER BY ts, ...), or keep the top rows: ORDER BY ... LIMIT n",
                ));
            };
            self.append_only(input, "ORDER BY", location)?;
            let spec = TemporalSortSpec {
                input_schema: encode_schema(&input.schema),
                time_column: first.column,
                then_by: order[1..].to_vec(),
            };
            let shown: Vec<String> = order.iter().map(|s| shown_order(input, s)).collect();
            let op = OperatorSpec {
                uid: String::new(),
                name: short(format!("temporal_sort({})", shown.join(", "))),
                kind: Some(Kind::TemporalSort(spec)),
            };
            let schema = input.schema.clone();
            return Ok(self.then(input, op, 1, Partitioning::Rebalance, vec![], schema));
        };
        if limit == 0 {
            return Err(
                SqlError::new(location, "LIMIT 0 keeps no rows").with_hint("remove the query, or LIMIT 1 or more")
            );
        }
        let rank = Field::new("__sluice_rank", DataType::UInt64, false);
        let ranked = self.ranked(input, Vec::new(), order, (offset + 1, offset + limit), rank, location)?;
        let columns: Vec<Expr> = changelog::without_row_kind(&input.schema)
            .fields()
            .iter()
            .map(|f| Expr::Column(datafusion::common::Column::new_unqualified(f.name())))
            .collect();
        let output = changelog::without_row_kind(&input.schema);
        self.calc(&ranked, None, &columns, output, location)
    }
}
