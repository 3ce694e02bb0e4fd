//! GROUPING SETS, ROLLUP and CUBE: one aggregation per grouping set (a window aggregate
//! when the sets hold `window_start` and `window_end`, as Flink requires of window
//! aggregates), each conformed to the query's columns (NULL for the keys its set leaves
//! out, and DataFusion's `__grouping_id`), then merged into one stream.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Aggregate, Expr, GroupingSet, LogicalPlan};
use sqlparser::tokenizer::Location;

use super::{internal, Lowering, Result, Stream};

/// The sets of a grouping, in order (ROLLUP: longest first; CUBE: every subset).
fn sets(grouping: &GroupingSet) -> Vec<Vec<Expr>> {
    match grouping {
        GroupingSet::GroupingSets(sets) => sets.clone(),
        GroupingSet::Rollup(exprs) => (0..=exprs.len()).rev().map(|n| exprs[..n].to_vec()).collect(),
        GroupingSet::Cube(exprs) => (0..1u64 << exprs.len())
            .rev()
            .map(|mask| {
                let picked = exprs.iter().enumerate().filter(|(i, _)| mask & (1 << (exprs.len() - 1 - i)) != 0);
                picked.map(|(_, e)| e.clone()).collect()
            })
            .collect(),
    }
}

/// DataFusion's `__grouping_id` of a set: one bit per grouping column, the first the
/// highest, set when the set leaves the column out; then the set's duplicate ordinal.
fn grouping_id(all: &[Expr], set: &[Expr], ordinal: u64) -> u64 {
    let id = all.iter().fold(0u64, |id, e| (id << 1) | u64::from(!set.contains(e)));
    id | (ordinal << all.len())
}

impl Lowering {
    /// The aggregation of `aggregate`, whose grouping is `grouping`, producing `output`.
    pub(super) fn grouping_sets(
        &mut self,
        aggregate: &Aggregate,
        grouping: &GroupingSet,
        output: SchemaRef,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let all: Vec<Expr> = grouping.distinct_expr().into_iter().cloned().collect();
        let mut seen: HashMap<Vec<Expr>, u64> = HashMap::new();
        let mut streams = Vec::new();
        for set in sets(grouping) {
            let ordinal = seen.entry(set.clone()).or_default();
            let id = grouping_id(&all, &set, *ordinal);
            *ordinal += 1;
            let one = Aggregate::try_new(aggregate.input.clone(), set.clone(), aggregate.aggr_expr.clone())
                .map_err(|e| internal(location, e))?;
            let stream = self.lower(&LogicalPlan::Aggregate(one), location, resolve)?;
            let mut columns = Vec::with_capacity(output.fields().len());
            for (i, field) in output.fields().iter().enumerate() {
                let column = |at: usize| Expr::Column(Column::new_unqualified(stream.schema.field(at).name()));
                let expr = if i < all.len() {
                    match set.iter().position(|e| *e == all[i]) {
                        Some(at) => column(at),
                        None => Expr::Literal(
                            ScalarValue::try_from(field.data_type()).map_err(|e| internal(location, e))?,
                            None,
                        ),
                    }
                } else if i == all.len() {
                    let id =
                        ScalarValue::UInt64(Some(id)).cast_to(field.data_type()).map_err(|e| internal(location, e))?;
                    Expr::Literal(id, None)
                } else {
                    column(set.len() + i - all.len() - 1)
                };
                columns.push(expr.alias(field.name()));
            }
            let conformed = Arc::new(output.as_ref().clone());
            streams.push(self.calc(&stream, None, &columns, conformed, location)?);
        }
        // A set's rows are keyed by the grouping columns and the grouping id.
        let keys: Vec<u32> = (0..=all.len() as u32).collect();
        Ok(self.merge(&streams, "grouping sets", &keys))
    }
}
