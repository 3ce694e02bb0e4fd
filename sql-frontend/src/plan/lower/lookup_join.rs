//! Lowering lookup joins: `JOIN dim FOR SYSTEM_TIME AS OF e.time AS d ON e.k = d.k`. The
//! probe side gets a pre-projection of its columns and its keys (cast to the lookup
//! columns' types), then one lookup-join operator on the same subtasks (a forward edge:
//! the lookup needs no shuffle).
//!
//! Flink joins a table `FOR SYSTEM_TIME AS OF` a processing-time attribute with a lookup
//! of its current rows, and refuses an event-time attribute unless the table is versioned.
//! The lesson writes `FOR SYSTEM_TIME AS OF e.event_time` against a JDBC table, which has
//! no versions: Sluice runs it as the same lookup of the current rows, and EXPLAIN says so.

use std::collections::HashMap;

use datafusion::logical_expr::{Expr, ExprSchemable, Join, JoinType, LogicalPlan};
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{ConnectorSpec, LookupJoinSpec, OperatorSpec, Partitioning};
use sqlparser::tokenizer::Location;

use super::{internal, short, unqualify, Lowering, Result, Stream};
use crate::error::SqlError;
use crate::parser::LookupCall;

/// A table read `FOR SYSTEM_TIME AS OF`, resolved against the catalog.
#[derive(Debug, Clone)]
pub struct ResolvedLookup {
    /// The call as written.
    pub call: LookupCall,
    /// The table's connector, options and physical schema.
    pub table: ConnectorSpec,
    /// True when the time is a processing-time attribute (Flink's form).
    pub processing_time: bool,
}

/// How lookup joins run (`table.exec.async-lookup.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncLookup {
    /// Lookups in flight per subtask at most.
    pub capacity: u32,
    /// How long one row's lookup may take, retries included.
    pub timeout: std::time::Duration,
    /// Rows leave in input order.
    pub ordered: bool,
}

impl Default for AsyncLookup {
    fn default() -> Self {
        AsyncLookup { capacity: 100, timeout: std::time::Duration::from_secs(180), ordered: true }
    }
}

/// The lookup placeholder a plan scans, under its aliases.
pub fn lookup_scan<'a>(plan: &LogicalPlan, lookups: &'a HashMap<String, ResolvedLookup>) -> Option<&'a ResolvedLookup> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => lookup_scan(&alias.input, lookups),
        LogicalPlan::TableScan(scan) => lookups.get(scan.table_name.table()),
        _ => None,
    }
}

impl Lowering {
    /// A lookup join of `join`'s left side against the table `lookup` on its right.
    pub(super) fn lookup_join(
        &mut self,
        join: &Join,
        lookup: &ResolvedLookup,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let at = lookup.call.location;
        let table = &lookup.call.table;
        let left_outer = match join.join_type {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return Err(SqlError::new(
                    lookup.call.location,
                    format!("a lookup join (FOR SYSTEM_TIME AS OF) is INNER or LEFT, not {other}"),
                )
                .with_hint("write JOIN or LEFT JOIN, with the looked-up table on the right"))
            }
        };
        let (on, residual) = super::join::equalities(join);
        let table_schema = sluice_core::schema::decode_schema(&lookup.table.schema).map_err(|e| internal(at, e))?;
        let mut keys = Vec::new();
        let mut lookup_columns = Vec::new();
        let mut rest: Vec<Expr> = residual.into_iter().collect();
        for (l, r) in on {
            match &r {
                Expr::Column(c) if table_schema.index_of(&c.name).is_ok() => {
                    let target =
                        table_schema.field_with_name(&c.name).map_err(|e| internal(at, e))?.data_type().clone();
                    let lt = l.get_type(join.left.schema()).map_err(|e| internal(at, e))?;
                    keys.push(if lt == target { l } else { datafusion::logical_expr::cast(l, target) });
                    lookup_columns.push(c.name.clone());
                }
                _ => rest.push(l.eq(r)),
            }
        }
        if keys.is_empty() {
            return Err(SqlError::new(
                at,
                format!("a lookup join needs an equality between a column of '{table}' and the other side"),
            )
            .with_hint(format!(
                "join on the table's key: ... FOR SYSTEM_TIME AS OF e.proc_time AS d ON e.k = d.<column of {table}>"
            )));
        }
        let residual = datafusion::logical_expr::utils::conjunction(rest);
        let input = self.lower(&join.left, location, resolve)?;
        let (input, data_columns) = self.keyed_side(&input, join.left.schema(), &keys, location)?;
        let joined = super::unique_names(&join.schema);
        let filter = match &residual {
            Some(condition) => Some(super::join::rewrite_condition(join, condition, &joined, at)?),
            None => None,
        };
        let output = if input.updates.is_some() { changelog::with_row_kind(&joined) } else { joined.clone() };
        let settings = self.async_lookup;
        let spec = LookupJoinSpec {
            left_outer,
            input_schema: encode_schema(&input.schema),
            input_data_columns: data_columns as u32,
            keys: (data_columns..data_columns + keys.len()).map(|k| k as u32).collect(),
            table: Some(lookup.table.clone()),
            lookup_columns: lookup_columns.clone(),
            filter,
            output_schema: encode_schema(&output),
            buffer_capacity: settings.capacity,
            timeout_ms: settings.timeout.as_millis() as u64,
            // An updating input's changes to a key must stay in order.
            ordered: settings.ordered || input.updates.is_some(),
        };
        let shown: Vec<String> =
            keys.iter().zip(&lookup_columns).map(|(k, c)| format!("{} = {c}", unqualify(k.clone()))).collect();
        let kind = if left_outer { "left" } else { "inner" };
        let mut name = format!("{kind}_lookup_join({table}({}) on {}", lookup.table.connector, shown.join(" and "));
        if let Some(f) = &residual {
            name.push_str(&format!("; where {f}"));
        }
        name.push(')');
        self.notes_for_lookup(lookup, &lookup_columns);
        let op = OperatorSpec { uid: String::new(), name: short(name), kind: Some(Kind::LookupJoin(spec)) };
        let parallelism = input.parallelism;
        let stream = self.then(&input, op, parallelism, Partitioning::Forward, vec![], output);
        if input.updates.is_some() {
            self.updating.insert(self.builder.uid(stream.node).to_string());
        }
        Ok(Stream { updates: input.updates.clone(), ..stream })
    }

    /// EXPLAIN's notes on a lookup: what an event-time `AS OF` means here, and a lookup
    /// by columns that are not the table's primary key.
    fn notes_for_lookup(&mut self, lookup: &ResolvedLookup, columns: &[String]) {
        let (table, time) = (&lookup.call.table, &lookup.call.time);
        if !lookup.processing_time {
            self.notes.push(format!(
                "FOR SYSTEM_TIME AS OF {time}: table '{table}' (connector '{}') has no versions, so each row looks up \
                 the table's current rows when it arrives (a processing-time lookup; Flink accepts only a \
                 processing-time attribute here)",
                lookup.table.connector
            ));
        }
        let key = &lookup.table.primary_key;
        let by_key = !key.is_empty() && key.iter().all(|k| columns.iter().any(|c| c.eq_ignore_ascii_case(k)));
        if !by_key {
            let declared = if key.is_empty() {
                "has no PRIMARY KEY".to_string()
            } else {
                format!("has PRIMARY KEY ({})", key.join(", "))
            };
            self.notes.push(format!(
                "warning: the lookup of '{table}' by ({}) may match several rows per key: the table {declared}, and \
                 a lookup by a non-key column needs an index on it in the database to be fast",
                columns.join(", ")
            ));
        }
    }
}

/// The column a lookup placeholder's time names (`e.proc_time` → `proc_time`).
pub fn time_column(time: &str) -> &str {
    time.rsplit('.').next().unwrap_or(time)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_time_column_is_the_last_part() {
        assert_eq!(super::time_column("e.proc_time"), "proc_time");
        assert_eq!(super::time_column("ts"), "ts");
    }
}
