//! Scan pushdown, as Flink's `SupportsProjectionPushDown` and `SupportsFilterPushDown`: the
//! columns a query reads from a table and the simple conditions of its WHERE clause go
//! into the source's [`ScanPushdown`], so a filesystem source reads only those Parquet
//! columns and skips partitions and row groups that cannot match. The pushed conditions are
//! hints: the query keeps its filter, so a source may use any subset of them.

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use sluice_proto::scan_predicate::Op;
use sluice_proto::{ScanPredicate, ScanPushdown};

/// What one table scan needs: the columns it reads (by name, in order) and its filter.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// The columns the scan produces; `None`: every column.
    pub columns: Option<Vec<String>>,
    /// The filter right above the scan.
    pub filter: Option<Expr>,
    /// The table's columns.
    pub schema: Option<arrow::datatypes::SchemaRef>,
}

impl ScanRequest {
    /// The pushdown for a source whose connector takes projections (`projection`) and
    /// conditions (`filters`); `None` when nothing would be pushed.
    pub fn pushdown(&self, projection: bool, filters: bool) -> Option<ScanPushdown> {
        let columns = if projection { self.columns.clone().unwrap_or_default() } else { Vec::new() };
        let predicates = match (&self.filter, filters) {
            (Some(filter), true) => predicates(filter, self.schema.as_deref()),
            _ => Vec::new(),
        };
        (!columns.is_empty() || !predicates.is_empty()).then_some(ScanPushdown { columns, predicates })
    }
}

/// The pushdown as EXPLAIN shows it: ` [project=[a, b], filter=[dt = '2026-12-04']]`.
pub fn describe(pushdown: &ScanPushdown) -> String {
    let mut parts = Vec::new();
    if !pushdown.columns.is_empty() {
        parts.push(format!("project=[{}]", pushdown.columns.join(", ")));
    }
    if !pushdown.predicates.is_empty() {
        let conditions: Vec<String> = pushdown.predicates.iter().map(describe_predicate).collect();
        parts.push(format!("filter=[{}]", conditions.join(" AND ")));
    }
    format!(" [{}]", parts.join(", "))
}

fn describe_predicate(p: &ScanPredicate) -> String {
    let quoted: Vec<String> = p.values.iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect();
    let symbol = match p.op() {
        Op::Eq => "=",
        Op::NotEq => "<>",
        Op::Lt => "<",
        Op::LtEq => "<=",
        Op::Gt => ">",
        Op::GtEq => ">=",
        Op::In => return format!("{} IN ({})", p.column, quoted.join(", ")),
        Op::IsNull => return format!("{} IS NULL", p.column),
        Op::IsNotNull => return format!("{} IS NOT NULL", p.column),
    };
    format!("{} {symbol} {}", p.column, quoted.join(""))
}

/// The conjuncts of `filter` that compare a column with literals; the rest is left to the
/// query.
pub fn predicates(filter: &Expr, schema: Option<&arrow::datatypes::Schema>) -> Vec<ScanPredicate> {
    let mut out = Vec::new();
    for conjunct in datafusion::logical_expr::utils::split_conjunction(filter) {
        match conjunct {
            // `c BETWEEN low AND high` is two conditions, `c >= low` and `c <= high`.
            Expr::Between(between) if !between.negated => {
                let Some(column) = column_name(&between.expr, schema) else { continue };
                for (op, bound) in [(Op::GtEq, &between.low), (Op::LtEq, &between.high)] {
                    if let Some(value) = literal_text(bound) {
                        out.push(ScanPredicate { column: column.clone(), op: op as i32, values: vec![value] });
                    }
                }
            }
            _ => out.extend(predicate(conjunct, schema)),
        }
    }
    out
}

fn predicate(expr: &Expr, schema: Option<&arrow::datatypes::Schema>) -> Option<ScanPredicate> {
    let column_name = |e: &Expr| column_name(e, schema);
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, op, literal) = match (column_name(left), column_name(right)) {
                (Some(c), None) => (c, comparison(*op)?, right.as_ref()),
                (None, Some(c)) => (c, flipped(comparison(*op)?), left.as_ref()),
                _ => return None,
            };
            Some(ScanPredicate { column, op: op as i32, values: vec![literal_text(literal)?] })
        }
        Expr::InList(list) if !list.negated => {
            let column = column_name(&list.expr)?;
            let values = list.list.iter().map(literal_text).collect::<Option<Vec<_>>>()?;
            Some(ScanPredicate { column, op: Op::In as i32, values })
        }
        Expr::IsNull(inner) => {
            Some(ScanPredicate { column: column_name(inner)?, op: Op::IsNull as i32, values: Vec::new() })
        }
        Expr::IsNotNull(inner) => {
            Some(ScanPredicate { column: column_name(inner)?, op: Op::IsNotNull as i32, values: Vec::new() })
        }
        _ => None,
    }
}

/// The column `expr` reads, also through a cast that widens a number (coercion writes
/// `CAST(hr AS BIGINT) < 6` for an INT `hr`): comparing in the column's own type then
/// means the same.
fn column_name(expr: &Expr, schema: Option<&arrow::datatypes::Schema>) -> Option<String> {
    match expr {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(cast) => {
            let Expr::Column(c) = cast.expr.as_ref() else { return None };
            let from = schema?.field_with_name(&c.name).ok()?.data_type();
            widens(from, cast.field.data_type()).then(|| c.name.clone())
        }
        _ => None,
    }
}

fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    matches!(
        (from, to),
        (Int8, Int16 | Int32 | Int64)
            | (Int16, Int32 | Int64)
            | (Int32, Int64)
            | (UInt8, UInt16 | UInt32 | UInt64 | Int16 | Int32 | Int64)
            | (UInt16, UInt32 | UInt64 | Int32 | Int64)
            | (UInt32, UInt64 | Int64)
            | (Float32, Float64)
    )
}

fn comparison(op: Operator) -> Option<Op> {
    Some(match op {
        Operator::Eq => Op::Eq,
        Operator::NotEq => Op::NotEq,
        Operator::Lt => Op::Lt,
        Operator::LtEq => Op::LtEq,
        Operator::Gt => Op::Gt,
        Operator::GtEq => Op::GtEq,
        _ => return None,
    })
}

/// `lit op column` as `column op' lit`.
fn flipped(op: Op) -> Op {
    match op {
        Op::Lt => Op::Gt,
        Op::LtEq => Op::GtEq,
        Op::Gt => Op::Lt,
        Op::GtEq => Op::LtEq,
        other => other,
    }
}

/// A literal as the text Arrow's cast writes for it; `None` for NULL, non-literals and
/// types that have no text form.
fn literal_text(expr: &Expr) -> Option<String> {
    let Expr::Literal(value, _) = expr else { return None };
    if value.is_null() || matches!(value, ScalarValue::Binary(_) | ScalarValue::LargeBinary(_)) {
        return None;
    }
    let array = value.to_array().ok()?;
    let text = arrow::compute::cast(&array, &DataType::Utf8).ok()?;
    let text = text.as_any().downcast_ref::<StringArray>()?;
    (text.len() == 1 && text.is_valid(0)).then(|| text.value(0).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{cast, col, lit};

    fn ops(filter: Expr) -> Vec<(String, Op, Vec<String>)> {
        let schema = arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("hr", DataType::Int32, true),
            arrow::datatypes::Field::new("s", DataType::Utf8, true),
        ]);
        predicates(&filter, Some(&schema)).into_iter().map(|p| (p.column.clone(), p.op(), p.values)).collect()
    }

    #[test]
    fn conjuncts_of_columns_and_literals_are_pushed_and_the_rest_left() {
        let filter = col("dt")
            .eq(lit("2026-12-04"))
            .and(lit(10i64).lt(col("id")))
            .and(col("a").eq(col("b")))
            .and(col("s").in_list(vec![lit("x"), lit("y")], false))
            .and(col("n").is_null())
            .or(col("dt").eq(lit("2026-12-05")).and(col("id").gt(lit(1i64))));
        // A disjunction at the top is not a conjunction of simple conditions.
        assert!(ops(filter).is_empty());

        let filter = col("dt")
            .eq(lit("2026-12-04"))
            .and(lit(10i64).lt(col("id")))
            .and(col("a").eq(col("b")))
            .and(col("s").in_list(vec![lit("x"), lit("y")], false))
            .and(col("n").is_not_null())
            .and(cast(col("hr"), DataType::Int64).lt(lit(6i64)))
            .and(cast(col("s"), DataType::Int64).lt(lit(6i64)))
            .and(col("id").between(lit(3i64), lit(9i64)));
        assert_eq!(
            ops(filter),
            vec![
                ("dt".into(), Op::Eq, vec!["2026-12-04".into()]),
                ("id".into(), Op::Gt, vec!["10".into()]),
                ("s".into(), Op::In, vec!["x".into(), "y".into()]),
                ("n".into(), Op::IsNotNull, vec![]),
                // A widened INT compares as the INT; a string read as a number does not.
                ("hr".into(), Op::Lt, vec!["6".into()]),
                ("id".into(), Op::GtEq, vec!["3".into()]),
                ("id".into(), Op::LtEq, vec!["9".into()]),
            ]
        );
    }

    #[test]
    fn nothing_to_push_is_no_pushdown() {
        let request = ScanRequest { columns: None, filter: Some(col("a").eq(col("b"))), schema: None };
        assert!(request.pushdown(true, true).is_none());
        let request = ScanRequest { columns: Some(vec!["a".into()]), filter: Some(col("a").gt(lit(1))), schema: None };
        assert!(request.pushdown(false, false).is_none());
        let pushed = request.pushdown(true, false).unwrap();
        assert_eq!((pushed.columns, pushed.predicates.len()), (vec!["a".to_string()], 0));
    }
}
