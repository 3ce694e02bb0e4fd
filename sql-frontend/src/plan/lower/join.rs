//! Lowering regular joins: each side gets a pre-projection of its columns and its join
//! keys (cast to the left side's key types where they differ), a hash edge on the keys,
//! and both meet in one join operator (input 0 the left side, input 1 the right).
//!
//! Columns of the two sides may share a name (`o.id`, `c.id`): the join's output names
//! such a column by its qualified name, which the expressions after it resolve
//! ([`super::resolve_columns`]).

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use datafusion::common::tree_node::TreeNode;
use datafusion::common::Column;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, ExprSchemable, Join, JoinType, LogicalPlan};
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::join_spec::JoinType as SpecJoinType;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{JoinSpec, OperatorSpec, Partitioning};
use sluice_transforms::expr::encode_expr;
use sqlparser::tokenizer::Location;

use super::{internal, short, unqualify, Lowering, Result, Stream};
use crate::error::SqlError;

/// A time column plus a constant offset (ms): `ts`, `ts + INTERVAL '5' MINUTE`, `ts - ...`.
fn time_term(e: &Expr) -> Option<(Column, i64)> {
    use datafusion::logical_expr::Operator;
    use datafusion::scalar::ScalarValue;
    match e {
        Expr::Column(c) => Some((c.clone(), 0)),
        Expr::Cast(c) => time_term(&c.expr),
        Expr::BinaryExpr(b) if matches!(b.op, Operator::Plus | Operator::Minus) => {
            let (column, base) = time_term(&b.left)?;
            let ms = match b.right.as_ref() {
                Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
                    i64::from(v.days) * 86_400_000 + v.nanoseconds / 1_000_000
                }
                Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
                    i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds)
                }
                _ => return None,
            };
            Some((column, if b.op == Operator::Plus { base + ms } else { base - ms }))
        }
        _ => None,
    }
}

/// The bounds `lower <= l.ts - r.ts <= upper` (ms) a condition puts on a left and a right
/// time column, with the columns; `None` unless it bounds both ways.
fn interval_bounds(join: &Join, condition: &Expr) -> Option<(Column, Column, i64, i64)> {
    use datafusion::logical_expr::Operator;
    let is_time = |c: &Column, schema: &datafusion::common::DFSchema| {
        schema
            .qualified_field_from_column(c)
            .is_ok_and(|(_, f)| matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(..)))
    };
    let (mut lower, mut upper, mut columns) = (None::<i64>, None::<i64>, None::<(Column, Column)>);
    let mut bound = |a: &Expr, op: Operator, b: &Expr| {
        let ((ca, oa), (cb, ob)) = (time_term(a)?, time_term(b)?);
        // ca + oa op cb + ob, as l - r op k with the left column first.
        let (l, r, op, k) = if is_time(&ca, join.left.schema()) && is_time(&cb, join.right.schema()) {
            (ca, cb, op, ob - oa)
        } else if is_time(&cb, join.left.schema()) && is_time(&ca, join.right.schema()) {
            (cb, ca, op.swap()?, oa - ob)
        } else {
            return None;
        };
        if columns.get_or_insert_with(|| (l.clone(), r.clone())) != &(l, r) {
            return None;
        }
        match op {
            Operator::GtEq => lower = Some(lower.map_or(k, |v| v.max(k))),
            Operator::Gt => lower = Some(lower.map_or(k + 1, |v| v.max(k + 1))),
            Operator::LtEq => upper = Some(upper.map_or(k, |v| v.min(k))),
            Operator::Lt => upper = Some(upper.map_or(k - 1, |v| v.min(k - 1))),
            _ => {}
        }
        Some(())
    };
    for conjunct in split_conjunction(condition) {
        match conjunct {
            Expr::BinaryExpr(b) => {
                bound(&b.left, b.op, &b.right);
            }
            Expr::Between(b) if !b.negated => {
                bound(&b.expr, Operator::GtEq, &b.low);
                bound(&b.expr, Operator::LtEq, &b.high);
            }
            _ => {}
        }
    }
    let (l, r) = columns?;
    Some((l, r, lower?, upper?))
}

/// The join's key pairs (its `on` and the equalities between the sides in its condition)
/// and what is left of the condition.
pub(super) fn equalities(join: &Join) -> (Vec<(Expr, Expr)>, Option<Expr>) {
    let mut on = join.on.clone();
    let mut rest = Vec::new();
    let only = |e: &Expr, schema: &datafusion::common::DFSchema| {
        let columns = e.column_refs();
        !columns.is_empty() && columns.iter().all(|c| schema.has_column(c))
    };
    if let Some(filter) = &join.filter {
        for conjunct in split_conjunction(filter) {
            if let Expr::BinaryExpr(b) = conjunct {
                if b.op == datafusion::logical_expr::Operator::Eq {
                    let (l, r) = (b.left.as_ref(), b.right.as_ref());
                    if only(l, join.left.schema()) && only(r, join.right.schema()) {
                        on.push((l.clone(), r.clone()));
                        continue;
                    }
                    if only(r, join.left.schema()) && only(l, join.right.schema()) {
                        on.push((r.clone(), l.clone()));
                        continue;
                    }
                }
            }
            rest.push(conjunct.clone());
        }
    }
    (on, conjunction(rest))
}

/// A comma join's WHERE clause taken into the join: `FROM a, b WHERE a.k = b.k AND c` is
/// the inner join `a JOIN b ON a.k = b.k AND c`, as Flink plans it. Returns the join and
/// what stays above it (conjuncts for which `stays` holds, such as model calls, which
/// their own operators run); `None` unless `plan` is a join without any condition (a comma
/// or CROSS join) and the result has an equality between its sides. Conjuncts over the
/// left side of `FROM a, b, c` go down into the nested join of `a` and `b`.
pub(super) fn with_where(
    plan: &LogicalPlan,
    predicate: &Expr,
    stays: &dyn Fn(&Expr) -> bool,
) -> Option<(LogicalPlan, Option<Expr>)> {
    let LogicalPlan::Join(join) = plan else { return None };
    if join.join_type != JoinType::Inner || !join.on.is_empty() || join.filter.is_some() {
        return None;
    }
    let nested = matches!(join.left.as_ref(), LogicalPlan::Join(_));
    let (mut own, mut left_only, mut above) = (Vec::new(), Vec::new(), Vec::new());
    for conjunct in split_conjunction(predicate) {
        if stays(conjunct) {
            above.push(conjunct.clone());
            continue;
        }
        let columns = conjunct.column_refs();
        let on_left = !columns.is_empty() && columns.iter().all(|c| join.left.schema().has_column(c));
        if nested && on_left {
            left_only.push(conjunct.clone());
        } else {
            own.push(conjunct.clone());
        }
    }
    let mut merged = join.clone();
    if let Some(left) = conjunction(left_only) {
        match with_where(&join.left, &left, stays) {
            Some((joined, None)) => merged.left = Arc::new(joined),
            _ => own.push(left),
        }
    }
    merged.filter = conjunction(own);
    (!equalities(&merged).0.is_empty()).then_some((LogicalPlan::Join(merged), conjunction(above)))
}

/// A join's residual condition over its output columns (named as in `joined`), encoded.
pub(super) fn rewrite_condition(
    join: &Join,
    condition: &Expr,
    joined: &arrow::datatypes::Schema,
    at: Location,
) -> Result<Vec<u8>> {
    let rewritten = condition
        .clone()
        .transform(|e| {
            Ok(match e {
                Expr::Column(c) => {
                    let index = join.schema.index_of_column(&c)?;
                    datafusion::common::tree_node::Transformed::yes(Expr::Column(Column::new_unqualified(
                        joined.field(index).name(),
                    )))
                }
                other => datafusion::common::tree_node::Transformed::no(other),
            })
        })
        .map_err(|e| internal(at, e))?
        .data;
    encode_expr(&rewritten).map_err(|e| internal(at, e))
}

impl Lowering {
    /// A regular join of `join`'s sides, producing its columns.
    pub(super) fn join(
        &mut self,
        join: &Join,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        if let Some(search) = super::vector_search::vector_search_scan(&join.right, &self.vector_searches).cloned() {
            return self.vector_search(join, &search, location, resolve);
        }
        if let Some(lookup) = super::lookup_join::lookup_scan(&join.right, &self.lookups).cloned() {
            return self.lookup_join(join, &lookup, location, resolve);
        }
        if let Some(lookup) = super::lookup_join::lookup_scan(&join.left, &self.lookups) {
            return Err(SqlError::new(
                lookup.call.location,
                format!(
                    "the table read FOR SYSTEM_TIME AS OF ('{}') must be the right side of its join",
                    lookup.call.table
                ),
            )
            .with_hint(
                "write the stream first: FROM events e JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON ...",
            ));
        }
        let at = self.locations.condition().unwrap_or(location);
        let kind = match join.join_type {
            JoinType::Inner => SpecJoinType::Inner,
            JoinType::Left => SpecJoinType::Left,
            JoinType::Right => SpecJoinType::Right,
            JoinType::Full => SpecJoinType::Full,
            other => {
                return Err(SqlError::new(location, format!("a {other} join is not supported yet"))
                    .with_hint("write an INNER, LEFT, RIGHT or FULL OUTER join"))
            }
        };
        // The SQL planner leaves `ON a.k = b.k` in the condition: its equalities between the
        // sides are the keys, the rest stays a residual condition.
        let (on, residual) = equalities(join);
        if on.is_empty() {
            return Err(SqlError::new(location, "a join needs an equality between the two sides' columns")
                .with_hint("join on equal keys: ... JOIN b ON a.k = b.k (other conditions may follow with AND)"));
        }
        let left = self.lower(&join.left, location, resolve)?;
        let right = self.lower(&join.right, location, resolve)?;
        let left_keys: Vec<Expr> = on.iter().map(|(l, _)| l.clone()).collect();
        let mut right_keys = Vec::new();
        for (l, r) in &on {
            let lt = l.get_type(join.left.schema()).map_err(|e| internal(location, e))?;
            let rt = r.get_type(join.right.schema()).map_err(|e| internal(location, e))?;
            right_keys.push(if lt == rt { r.clone() } else { datafusion::logical_expr::cast(r.clone(), lt) });
        }
        let left = self.keyed_side(&left, join.left.schema(), &left_keys, location)?;
        let right = self.keyed_side(&right, join.right.schema(), &right_keys, location)?;
        let joined = super::unique_names(&join.schema);
        let filter = match &residual {
            Some(condition) => Some(rewrite_condition(join, condition, &joined, at)?),
            None => None,
        };
        let updating = left.0.updates.is_some() || right.0.updates.is_some();
        // An interval join (time bounds between the sides over append-only inputs) forgets
        // rows as the watermark passes them.
        let interval = match (&residual, updating) {
            (Some(condition), false) => interval_bounds(join, condition).and_then(|(l, r, lower, upper)| {
                Some(sluice_proto::JoinInterval {
                    left_time: join.left.schema().index_of_column(&l).ok()? as u32,
                    right_time: join.right.schema().index_of_column(&r).ok()? as u32,
                    lower_ms: lower,
                    upper_ms: upper,
                })
            }),
            _ => None,
        };
        // A window join (equal window_end of two windowed inputs): a row can match nothing
        // more once the watermark passes its window's last millisecond.
        let window_join = !updating && interval.is_none();
        let interval = interval.or_else(|| {
            let (l, r) = on.iter().find_map(|(l, r)| match (l, r) {
                (Expr::Column(l), Expr::Column(r)) if l.name == "window_end" && r.name == "window_end" => Some((l, r)),
                _ => None,
            })?;
            window_join.then_some(())?;
            Some(sluice_proto::JoinInterval {
                left_time: join.left.schema().index_of_column(l).ok()? as u32,
                right_time: join.right.schema().index_of_column(r).ok()? as u32,
                lower_ms: 1,
                upper_ms: -1,
            })
        });
        let emits_kinds = updating || kind != SpecJoinType::Inner;
        let output = if emits_kinds { changelog::with_row_kind(&joined) } else { joined.clone() };
        let spec = JoinSpec {
            join_type: kind as i32,
            left_schema: encode_schema(&left.0.schema),
            left_data_columns: left.1 as u32,
            left_keys: (left.1..left.1 + on.len()).map(|k| k as u32).collect(),
            right_schema: encode_schema(&right.0.schema),
            right_data_columns: right.1 as u32,
            right_keys: (right.1..right.1 + on.len()).map(|k| k as u32).collect(),
            filter,
            output_schema: encode_schema(&output),
            state_ttl_ms: self.state_ttl.map(|t| t.as_millis() as u64),
            interval,
        };
        let shown: Vec<String> =
            on.iter().map(|(l, r)| format!("{} = {}", unqualify(l.clone()), unqualify(r.clone()))).collect();
        let kind_name = kind.as_str_name().to_ascii_lowercase();
        let mut name = match &spec.interval {
            Some(i) if i.lower_ms > i.upper_ms => format!("{kind_name}_window_join(on {}", shown.join(" and ")),
            Some(i) => {
                format!("{kind_name}_interval_join({} ms..{} ms, on {}", i.lower_ms, i.upper_ms, shown.join(" and "))
            }
            None => format!("{kind_name}_join(on {}", shown.join(" and ")),
        };
        if let Some(f) = &residual {
            name.push_str(&format!("; where {f}"));
        }
        name.push(')');
        let name = short(name);
        let op = OperatorSpec { uid: String::new(), name: name.clone(), kind: Some(Kind::Join(spec)) };
        let parallelism = self.default_parallelism();
        let node = self.builder.add(op, parallelism);
        for (input, (side, data)) in [left, right].into_iter().enumerate() {
            let keys = (data..data + on.len()).map(|k| k as u32).collect();
            let schema = encode_schema(&side.schema);
            self.builder.connect_input(side.node, node, Partitioning::Hash, keys, schema, input as u32);
        }
        if emits_kinds {
            self.updating.insert(self.builder.uid(node).to_string());
        }
        Ok(Stream { node, schema: output, parallelism, updates: emits_kinds.then_some(name) })
    }

    /// A side's pre-projection: its data columns, then its join keys. Returns the stream
    /// and the number of data columns.
    pub(super) fn keyed_side(
        &mut self,
        side: &Stream,
        schema: &datafusion::common::DFSchema,
        keys: &[Expr],
        location: Location,
    ) -> Result<(Stream, usize)> {
        let data = changelog::without_row_kind(&side.schema);
        let mut exprs: Vec<Expr> =
            data.fields().iter().map(|f| Expr::Column(Column::new_unqualified(f.name()))).collect();
        let mut fields: Vec<Field> = data.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (i, key) in keys.iter().enumerate() {
            let (_, field) = key.to_field(schema).map_err(|e| internal(location, e))?;
            let name = format!("__join_key_{i}");
            exprs.push(key.clone().alias(&name));
            fields.push(Field::new(name, field.data_type().clone(), true));
        }
        let width = data.fields().len();
        let stream = self.calc(side, None, &exprs, Arc::new(Schema::new(fields)), location)?;
        Ok((stream, width))
    }
}
