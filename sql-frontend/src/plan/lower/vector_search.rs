//! Planning VECTOR_SEARCH: the placeholder table a call leaves in its query (its schema,
//! checked against the searched table and the call's config), and the operator that
//! replaces the join of the searching rows with it: input 0 the searching rows (a forward
//! edge), input 1 the searched table (broadcast to every subtask).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan};
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{OperatorSpec, Partitioning, VectorSearchAggregate, VectorSearchSpec};
use sqlparser::tokenizer::Location;

use super::{short, Lowering, Result, Stream};
use crate::catalog::Table;
use crate::error::SqlError;
use crate::parser::VectorSearchCall;
use crate::types::sql_name;

/// Searched rows from which `index` = `auto` answers with the HNSW graph instead of
/// comparing with every row: measured by `cargo bench --bench vector_search`, exact
/// search at 100,000 rows of dimension 384 still answers hundreds of queries per second
/// per core, and building the graph costs seconds that only pay off past that size.
pub const DEFAULT_HNSW_THRESHOLD: u64 = 100_000;

/// The config keys a call may set, with their defaults.
const CONFIG_KEYS: [(&str, &str); 6] = [
    ("metric", "cosine"),
    ("index", "auto"),
    ("hnsw.threshold", "100000"),
    ("hnsw.m", "16"),
    ("hnsw.ef-construction", "200"),
    ("hnsw.ef-search", "100"),
];

/// A VECTOR_SEARCH call resolved against the searched table.
#[derive(Debug, Clone)]
pub struct ResolvedVectorSearch {
    /// The call as written.
    pub call: VectorSearchCall,
    /// The placeholder's schema: the searched table's columns and `score`, or the
    /// aggregates.
    pub schema: SchemaRef,
    /// The searched table's primary key.
    pub primary_key: Vec<String>,
    metric: String,
    index: String,
    threshold: u64,
    hnsw: (u32, u32, u32),
}

/// True for an ARRAY of FLOAT or DOUBLE.
fn is_vector(data_type: &DataType) -> bool {
    match data_type {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            matches!(f.data_type(), DataType::Float32 | DataType::Float64)
        }
        _ => false,
    }
}

impl ResolvedVectorSearch {
    /// Checks `call` against the searched table's `items` schema (and the table, when it
    /// is one rather than a view) and its config.
    pub fn new(call: &VectorSearchCall, items: &Schema, table: Option<&Table>) -> Result<Self> {
        let mut settings: HashMap<&str, String> = CONFIG_KEYS.iter().map(|(k, v)| (*k, v.to_string())).collect();
        for (key, value) in &call.config {
            let Some((known, _)) = CONFIG_KEYS.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) else {
                let names: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
                let mut error =
                    SqlError::new(call.config_location, format!("unknown VECTOR_SEARCH config key '{key}'"));
                error = match sluice_core::options::closest(key, names.iter().copied()) {
                    Some(close) => error.with_hint(format!("did you mean '{close}'?")),
                    None => error.with_hint(format!(
                        "the keys are {}; the search runs in memory in Sluice, so a remote store's options (async, \
                         timeout) do not apply",
                        names.join(", ")
                    )),
                };
                return Err(error);
            };
            settings.insert(known, value.clone());
        }
        let metric = settings["metric"].to_ascii_lowercase();
        if sluice_transforms::vector_search::metric::Metric::parse(&metric).is_none() {
            return Err(SqlError::new(call.config_location, format!("unknown VECTOR_SEARCH metric '{metric}'"))
                .with_hint("use 'cosine', 'dot' or 'euclidean'"));
        }
        let index = settings["index"].to_ascii_lowercase();
        if !["auto", "exact", "hnsw"].contains(&index.as_str()) {
            return Err(SqlError::new(call.config_location, format!("unknown VECTOR_SEARCH index '{index}'"))
                .with_hint("use 'auto' (exact below hnsw.threshold rows, HNSW from there), 'exact' or 'hnsw'"));
        }
        if index == "hnsw" && metric == "dot" {
            return Err(SqlError::new(call.config_location, "an HNSW index cannot search by 'dot'")
                .with_hint("a dot product of vectors of any length is no distance for the graph: use 'cosine' (the dot product of unit vectors) or 'index' = 'exact'"));
        }
        let number = |key: &str| -> Result<u64> {
            settings[key].parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                SqlError::new(call.config_location, format!("VECTOR_SEARCH config '{key}' must be a positive number"))
            })
        };
        let threshold = number("hnsw.threshold")?;
        // hnsw_rs takes at most 256 links per node; candidate lists past 10,000 only cost.
        let bounded_number = |key: &str, max: u64| -> Result<u32> {
            let n = number(key)?;
            if n > max {
                return Err(SqlError::new(
                    call.config_location,
                    format!("VECTOR_SEARCH config '{key}' is {n}, more than {max}"),
                )
                .with_hint(format!("use a value from 1 to {max}")));
            }
            Ok(n as u32)
        };
        let hnsw = (
            bounded_number("hnsw.m", 256)?,
            bounded_number("hnsw.ef-construction", 10_000)?,
            bounded_number("hnsw.ef-search", 10_000)?,
        );
        let table_name = &call.table;
        let search = items.field_with_name(&call.search_column).map_err(|_| {
            SqlError::new(call.search_location, format!("table '{table_name}' has no column '{}'", call.search_column))
                .with_hint(format!(
                    "search one of its ARRAY<FLOAT> columns: {}",
                    items
                        .fields()
                        .iter()
                        .filter(|f| is_vector(f.data_type()))
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
        })?;
        if !is_vector(search.data_type()) {
            return Err(SqlError::new(
                call.search_location,
                format!(
                    "column '{}' of '{table_name}' is {}, not a vector",
                    search.name(),
                    sql_name(search.data_type())
                ),
            )
            .with_hint("VECTOR_SEARCH searches an ARRAY<FLOAT> or ARRAY<DOUBLE> column"));
        }
        let schema = match &call.aggregates {
            None => {
                if items.field_with_name("score").is_ok() {
                    return Err(SqlError::new(
                        call.table_location,
                        format!("table '{table_name}' has a column named 'score', which VECTOR_SEARCH adds"),
                    )
                    .with_hint(
                        "search a view that renames it: CREATE VIEW v AS SELECT score AS item_score, ... FROM t",
                    ));
                }
                let mut fields: Vec<Field> =
                    changelog::without_row_kind(items).fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new("score", DataType::Float64, true));
                Arc::new(Schema::new(fields))
            }
            Some(aggregates) => {
                let mut fields = Vec::new();
                for a in aggregates {
                    let column_type = match a.column.as_deref() {
                        None => DataType::Int64,
                        Some(c) if c.eq_ignore_ascii_case("score") && items.field_with_name(c).is_err() => {
                            DataType::Float64
                        }
                        Some(c) => items
                            .field_with_name(c)
                            .map_err(|_| {
                                SqlError::new(a.location, format!("table '{table_name}' has no column '{c}'"))
                                    .with_hint("aggregate a column of the searched table, or score")
                            })?
                            .data_type()
                            .clone(),
                    };
                    let numeric = column_type.is_numeric();
                    let data_type = match a.function.as_str() {
                        "array_agg" => DataType::List(Arc::new(Field::new("item", column_type, true))),
                        "count" => DataType::Int64,
                        _ if !numeric => {
                            return Err(SqlError::new(
                                a.location,
                                format!("{} needs a number, not {}", a.function.to_uppercase(), sql_name(&column_type)),
                            ))
                        }
                        "avg" => DataType::Float64,
                        "sum" if column_type.is_integer() => DataType::Int64,
                        "sum" => DataType::Float64,
                        _ => column_type,
                    };
                    fields.push(Field::new(&a.name, data_type, a.function != "count"));
                }
                Arc::new(Schema::new(fields))
            }
        };
        Ok(ResolvedVectorSearch {
            call: call.clone(),
            schema,
            primary_key: table.map(|t| t.primary_key.clone()).unwrap_or_default(),
            metric,
            index,
            threshold,
            hnsw,
        })
    }
}

/// The VECTOR_SEARCH placeholder a plan scans, under its aliases.
pub fn vector_search_scan<'a>(
    plan: &LogicalPlan,
    searches: &'a HashMap<String, ResolvedVectorSearch>,
) -> Option<&'a ResolvedVectorSearch> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => vector_search_scan(&alias.input, searches),
        LogicalPlan::TableScan(scan) => searches.get(scan.table_name.table()),
        _ => None,
    }
}

impl Lowering {
    /// The search of `search`'s table for each row of `join`'s left side.
    pub(super) fn vector_search(
        &mut self,
        join: &Join,
        search: &ResolvedVectorSearch,
        location: Location,
        resolve: &mut dyn FnMut(&mut Lowering, &str, Location) -> Result<Stream>,
    ) -> Result<Stream> {
        let call = &search.call;
        let at = call.location;
        let left_outer = match join.join_type {
            JoinType::Inner => false,
            JoinType::Left => true,
            other => {
                return Err(SqlError::new(at, format!("VECTOR_SEARCH is joined INNER or LEFT, not {other}"))
                    .with_hint("write FROM t, LATERAL TABLE(VECTOR_SEARCH(...)) or FROM t LEFT JOIN LATERAL TABLE(VECTOR_SEARCH(...)) ON TRUE"))
            }
        };
        let on_true = match &join.filter {
            None => true,
            Some(Expr::Literal(ScalarValue::Boolean(Some(true)), _)) => true,
            Some(_) => false,
        };
        if !join.on.is_empty() || !on_true {
            return Err(SqlError::new(at, "a join with VECTOR_SEARCH takes no condition")
                .with_hint("write ON TRUE, and filter the matches in WHERE (e.g. WHERE v.score > 0.8)"));
        }
        let column = Column::from_qualified_name(&call.query_column);
        let query_column = join.left.schema().index_of_column(&column).map_err(|_| {
            SqlError::new(call.query_location, format!("the rows that search have no column '{}'", call.query_column))
                .with_hint(
                    "COLUMN_TO_QUERY names a column of the table joined before VECTOR_SEARCH, such as e.embedding",
                )
        })?;
        let query_type = join.left.schema().field(query_column).data_type();
        if !is_vector(query_type) {
            return Err(SqlError::new(
                call.query_location,
                format!("'{}' is {}, not a vector", call.query_column, sql_name(query_type)),
            )
            .with_hint(
                "query with an ARRAY<FLOAT> column, such as ML_EMBED(MODEL m, text) computed in a view or CTE",
            ));
        }
        let input = self.lower(&join.left, location, resolve)?;
        // A retraction would be searched again, and the index may have changed since.
        self.append_only(&input, "VECTOR_SEARCH", call.query_location)?;
        let items = resolve(self, &call.table, call.table_location)?;
        // A table or view whose every source ends is loaded before queries are answered.
        let sources = self.builder.sources_of(items.node);
        let bounded = !sources.is_empty()
            && sources.iter().all(|s| match &s.kind {
                Some(Kind::Source(c)) => sluice_connectors::bounded(c),
                _ => false,
            });
        let items_data = changelog::without_row_kind(&items.schema);
        let search_column = items_data.index_of(&call.search_column).map_err(|e| super::internal(at, e))?;
        let item_key =
            search.primary_key.iter().filter_map(|k| items_data.index_of(k).ok().map(|i| i as u32)).collect::<Vec<_>>();
        let joined = super::unique_names(&join.schema);
        let output = if input.updates.is_some() { changelog::with_row_kind(&joined) } else { joined };
        let aggregates = search
            .call
            .aggregates
            .iter()
            .flatten()
            .map(|a| VectorSearchAggregate {
                function: a.function.clone(),
                column: a.column.as_deref().and_then(|c| items_data.index_of(c).ok()).map(|c| c as u32),
            })
            .collect();
        let (m, ef_construction, ef_search) = search.hnsw;
        let spec = VectorSearchSpec {
            input_schema: encode_schema(&input.schema),
            query_column: query_column as u32,
            items_schema: encode_schema(&items.schema),
            search_column: search_column as u32,
            top_k: call.top_k,
            metric: search.metric.clone(),
            index: search.index.clone(),
            hnsw_threshold: search.threshold,
            hnsw_m: m,
            hnsw_ef_construction: ef_construction,
            hnsw_ef_search: ef_search,
            items_bounded: bounded,
            item_key,
            left_outer,
            aggregates,
            output_schema: encode_schema(&output),
        };
        let name = format!(
            "vector_search({}.{} by {}, top {}, {}, {})",
            call.table, call.search_column, call.query_column, call.top_k, search.metric, search.index
        );
        if bounded {
            self.notes.push(format!(
                "VECTOR_SEARCH: table '{}' is bounded; it is loaded into memory on every subtask before the first \
                 row is searched",
                call.table
            ));
        } else {
            self.notes.push(format!(
                "VECTOR_SEARCH: table '{}' is unbounded; each row is searched among the rows loaded when it \
                 arrives, and the table's changelog keeps the index current",
                call.table
            ));
        }
        let op = OperatorSpec { uid: String::new(), name: short(name), kind: Some(Kind::VectorSearch(spec)) };
        let parallelism = input.parallelism;
        let node = self.builder.add(op, parallelism);
        self.builder.connect_input(input.node, node, Partitioning::Forward, vec![], encode_schema(&input.schema), 0);
        self.builder.connect_input(items.node, node, Partitioning::Broadcast, vec![], encode_schema(&items.schema), 1);
        if input.updates.is_some() {
            self.updating.insert(self.builder.uid(node).to_string());
        }
        Ok(Stream { node, schema: output, parallelism, updates: input.updates.clone() })
    }
}
