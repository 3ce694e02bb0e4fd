//! Planning a script into a job graph.
//!
//! This first planner handles the streaming subset Sluice runs today: each
//! `INSERT INTO sink SELECT ... FROM source [GROUP BY ...]` becomes
//! `source -> [project] -> sink` or `source =hash=> aggregate -> [project] -> sink`. All the
//! INSERTs of a script form one job, and INSERTs reading the same table share its source.
//! Anything beyond that subset is rejected with a located "not supported yet" error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_operators::connectors::Role;
use sluice_operators::graph::{JobGraphBuilder, NodeId};
use sluice_operators::schema::{decode_schema, encode_schema};
use sluice_operators::transforms::keyed_aggregate::output_type;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{
    AggregateCall, AggregateFunction, JobGraph, KeyedAggregateSpec, OperatorSpec, Partitioning, ProjectSpec,
};
use sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, ObjectName, ObjectNamePart, Query,
    Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Spanned, TableFactor, WildcardAdditionalOptions,
};
use sqlparser::tokenizer::Location;

use crate::catalog::{Catalog, Table};
use crate::error::{Result, SqlError};
use crate::parser::{located, parse_script, Insert, ScriptStatement};
use crate::types::sql_name;

/// The configuration key of the default parallelism (`SET 'parallelism.default' = '4'`).
pub const PARALLELISM_KEY: &str = "parallelism.default";
/// The configuration key of the job name (`SET 'pipeline.name' = 'my-job'`).
pub const JOB_NAME_KEY: &str = "pipeline.name";

/// Settings given with the script (from the command line).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Default parallelism of operators; overrides `SET 'parallelism.default'`. When neither
    /// is given it is 1. Tables may still ask for their own (`scan.parallelism`,
    /// `sink.parallelism`). 0 counts as 1.
    pub default_parallelism: Option<u32>,
    /// Job name; overrides `SET 'pipeline.name'`. The default is `insert-into_<sinks>`.
    pub job_name: Option<String>,
}

/// A planned job.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The job graph to submit.
    pub graph: JobGraph,
    /// The graph in words: vertices, edges and configuration.
    pub explain: String,
}

/// Parses, validates and plans `script` into one job graph.
pub fn plan(script: &str, options: &PlanOptions) -> Result<Plan> {
    let statements = parse_script(script)?;
    let mut catalog = Catalog::new();
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    let mut set_parallelism: Option<u32> = None;
    let mut job = JobPlanner::new(script);
    for statement in statements {
        match statement {
            ScriptStatement::CreateTable(create) => catalog.create_table(&create)?,
            ScriptStatement::Set(set) => {
                if set.key == PARALLELISM_KEY {
                    set_parallelism = match set.value.trim().parse::<u32>() {
                        Ok(p) if p >= 1 => Some(p),
                        _ => {
                            return Err(SqlError::new(
                                set.value_location,
                                format!("'{PARALLELISM_KEY}' must be a positive integer, not '{}'", set.value),
                            ))
                        }
                    };
                }
                config.insert(set.key, set.value);
            }
            ScriptStatement::Insert(insert) => {
                let parallelism = options.default_parallelism.or(set_parallelism).unwrap_or(1).max(1);
                job.plan_insert(&catalog, &insert, parallelism)?;
            }
        }
    }
    if job.sinks.is_empty() {
        return Err(SqlError::new(Location { line: 1, column: 1 }, "the script has no INSERT INTO statement; nothing to run")
            .with_hint("add INSERT INTO <sink table> SELECT ... FROM <source table>"));
    }
    let name = options
        .job_name
        .clone()
        .or_else(|| config.get(JOB_NAME_KEY).cloned())
        .unwrap_or_else(|| format!("insert-into_{}", job.sink_names.join(",")));
    let default_parallelism = options.default_parallelism.or(set_parallelism).unwrap_or(1).max(1);
    let graph = job.builder.build(&name, config);
    let explain = explain(&graph, default_parallelism);
    Ok(Plan { graph, explain })
}

/// Renders a job graph as text: one line per vertex and per edge, then the configuration.
pub fn explain(graph: &JobGraph, default_parallelism: u32) -> String {
    let mut out = format!("job '{}' (default parallelism {default_parallelism})\n", graph.name);
    for v in &graph.vertices {
        out.push_str(&format!("vertex {}: {} [parallelism {}]\n", v.id, v.name, v.parallelism));
    }
    for e in &graph.edges {
        let partitioning = match Partitioning::try_from(e.partitioning) {
            Ok(Partitioning::Forward) => "forward".to_string(),
            Ok(Partitioning::Hash) => {
                let schema = decode_schema(&e.schema).ok();
                let keys: Vec<String> = e
                    .key_columns
                    .iter()
                    .map(|&k| {
                        schema
                            .as_ref()
                            .and_then(|s| s.fields().get(k as usize).map(|f| f.name().clone()))
                            .unwrap_or_else(|| format!("#{k}"))
                    })
                    .collect();
                format!("hash({})", keys.join(", "))
            }
            Ok(Partitioning::Rebalance) => "rebalance".to_string(),
            Ok(Partitioning::Broadcast) => "broadcast".to_string(),
            Err(_) => format!("partitioning {}", e.partitioning),
        };
        out.push_str(&format!("edge {} -> {}: {partitioning}\n", e.source_vertex, e.target_vertex));
    }
    for (k, v) in graph.config.iter().collect::<BTreeMap<_, _>>() {
        out.push_str(&format!("set '{k}' = '{v}'\n"));
    }
    out
}

/// A shared source node.
struct SourceNode {
    node: NodeId,
    parallelism: u32,
}

/// The job being built from the INSERTs of a script.
struct JobPlanner<'s> {
    script: &'s str,
    builder: JobGraphBuilder,
    /// Source nodes by lower-cased table name.
    sources: HashMap<String, SourceNode>,
    /// Written tables by lower-cased name, with the INSERT's location.
    sinks: HashMap<String, Location>,
    /// Written tables in order, as declared.
    sink_names: Vec<String>,
}

/// What one select item produces.
#[derive(Debug, Clone, Copy)]
enum ItemValue {
    /// A source column.
    Column(usize),
    /// An aggregate call, by index among the query's calls.
    Aggregate(usize),
}

/// One output column of a query.
#[derive(Debug, Clone)]
struct OutputColumn {
    value: ItemValue,
    /// The item's text for messages: the column name or the expression.
    label: String,
    /// The output name: the alias, the column name, or `EXPR$<position>` as in Flink.
    name: String,
    location: Location,
    data_type: DataType,
}

/// An aggregate call of a query.
#[derive(Debug, Clone)]
struct Call {
    function: AggregateFunction,
    column: Option<usize>,
    text: String,
    location: Location,
}

/// A resolved `SELECT ... FROM table [GROUP BY ...]`.
struct ResolvedSelect {
    columns: Vec<OutputColumn>,
    calls: Vec<Call>,
    /// Source column indices of the GROUP BY keys, without duplicates; None without GROUP BY.
    group_by: Option<Vec<usize>>,
}

impl<'s> JobPlanner<'s> {
    fn new(script: &'s str) -> Self {
        JobPlanner {
            script,
            builder: JobGraphBuilder::new(),
            sources: HashMap::new(),
            sinks: HashMap::new(),
            sink_names: Vec::new(),
        }
    }

    fn plan_insert(&mut self, catalog: &Catalog, insert: &Insert, parallelism: u32) -> Result<()> {
        let sink = catalog.table(&insert.table, insert.table_location)?;
        let sink_key = sink.name.to_lowercase();
        if let Some(previous) = self.sinks.get(&sink_key) {
            return Err(SqlError::new(
                insert.table_location,
                format!("table '{}' is already written by the INSERT at line {}, column {}", sink.name, previous.line, previous.column),
            )
            .with_hint("writing one table from several INSERTs is not supported yet"));
        }
        sink.validate(Role::Sink, insert.table_location)?;

        let select = simple_select(&insert.query, self.script)?;
        let (from_name, from_location, alias) = from_table(select, self.script, insert.location)?;
        let source = catalog.table(&from_name, from_location)?;
        let source_key = source.name.to_lowercase();
        if !self.sources.contains_key(&source_key) {
            source.validate(Role::Source, from_location)?;
        }
        let resolved = resolve_select(select, source, alias.as_ref(), self.script, insert.location)?;
        check_against_sink(&resolved.columns, sink, insert)?;

        // The source, shared by the INSERTs that read it.
        let source_node = match self.sources.get(&source_key) {
            Some(node) => SourceNode { node: node.node, parallelism: node.parallelism },
            None => {
                let p = source.requested_parallelism(Role::Source, from_location)?.unwrap_or(parallelism);
                let node = self.builder.add(
                    OperatorSpec {
                        name: format!("source: {}({})", source.name, source.connector),
                        kind: Some(Kind::Source(source.connector_spec())),
                    },
                    p,
                );
                self.sources.insert(source_key, SourceNode { node, parallelism: p });
                SourceNode { node, parallelism: p }
            }
        };

        let last = match &resolved.group_by {
            None => self.plan_projection(&resolved, source, sink, &source_node),
            Some(keys) => self.plan_aggregate(&resolved, keys, source, sink, &source_node, parallelism),
        };

        let sink_parallelism = sink.requested_parallelism(Role::Sink, insert.table_location)?.unwrap_or(parallelism);
        let sink_node = self.builder.add(
            OperatorSpec {
                name: format!("sink: {}({})", sink.name, sink.connector),
                kind: Some(Kind::Sink(sink.connector_spec())),
            },
            sink_parallelism,
        );
        self.builder.connect(last, sink_node, Partitioning::Forward, Vec::new(), encode_schema(&sink.schema));
        self.sinks.insert(sink_key, insert.table_location);
        self.sink_names.push(sink.name.clone());
        Ok(())
    }

    /// `source -> project` (or the source alone when it already has the sink's schema).
    fn plan_projection(
        &mut self,
        select: &ResolvedSelect,
        source: &Table,
        sink: &Table,
        source_node: &SourceNode,
    ) -> NodeId {
        let indices: Vec<usize> = select
            .columns
            .iter()
            // Without GROUP BY every item is a column (aggregates were rejected).
            .map(|c| match c.value {
                ItemValue::Column(i) | ItemValue::Aggregate(i) => i,
            })
            .collect();
        let identity = indices.iter().copied().eq(0..source.schema.fields().len());
        if identity && source.schema.fields() == sink.schema.fields() {
            return source_node.node;
        }
        let names: Vec<String> = indices
            .iter()
            .zip(sink.schema.fields())
            .map(|(&i, out)| {
                let input = source.schema.field(i).name();
                if input == out.name() {
                    input.clone()
                } else {
                    format!("{input} AS {}", out.name())
                }
            })
            .collect();
        let project = self.builder.add(
            OperatorSpec {
                name: format!("project({})", names.join(", ")),
                kind: Some(Kind::Project(ProjectSpec {
                    columns: indices.iter().map(|&i| i as u32).collect(),
                    output_schema: encode_schema(&sink.schema),
                })),
            },
            source_node.parallelism,
        );
        self.builder.connect(source_node.node, project, Partitioning::Forward, Vec::new(), encode_schema(&source.schema));
        project
    }

    /// `source =hash(keys)=> aggregate [-> project]`.
    fn plan_aggregate(
        &mut self,
        select: &ResolvedSelect,
        keys: &[usize],
        source: &Table,
        sink: &Table,
        source_node: &SourceNode,
        parallelism: u32,
    ) -> NodeId {
        // Where each output column is in the aggregate's output (keys, then calls).
        let positions: Vec<usize> = select
            .columns
            .iter()
            .map(|c| match c.value {
                ItemValue::Column(i) => keys.iter().position(|&k| k == i).unwrap_or(0),
                ItemValue::Aggregate(i) => keys.len() + i,
            })
            .collect();
        let width = keys.len() + select.calls.len();
        let identity = positions.iter().copied().eq(0..width);
        let output_schema: SchemaRef = if identity {
            sink.schema.clone()
        } else {
            let mut fields: Vec<Field> = keys.iter().map(|&k| source.schema.field(k).clone()).collect();
            for (i, call) in select.calls.iter().enumerate() {
                let name = select
                    .columns
                    .iter()
                    .find(|c| matches!(c.value, ItemValue::Aggregate(j) if j == i))
                    .map_or_else(|| call.text.clone(), |c| c.name.clone());
                let input = call.column.map(|c| source.schema.field(c).data_type().clone());
                let data_type = output_type(call.function, input.as_ref()).unwrap_or(DataType::Int64);
                let nullable = !matches!(call.function, AggregateFunction::Count | AggregateFunction::CountStar);
                fields.push(Field::new(name, data_type, nullable));
            }
            Arc::new(Schema::new(fields))
        };
        let key_names: Vec<&str> = keys.iter().map(|&k| source.schema.field(k).name().as_str()).collect();
        let call_texts: Vec<&str> = select.calls.iter().map(|c| c.text.as_str()).collect();
        let name = if call_texts.is_empty() {
            format!("aggregate(group by {})", key_names.join(", "))
        } else {
            format!("aggregate(group by {}: {})", key_names.join(", "), call_texts.join(", "))
        };
        let aggregate = self.builder.add(
            OperatorSpec {
                name,
                kind: Some(Kind::KeyedAggregate(KeyedAggregateSpec {
                    key_columns: keys.iter().map(|&k| k as u32).collect(),
                    aggregates: select
                        .calls
                        .iter()
                        .map(|c| AggregateCall { function: c.function as i32, column: c.column.map(|i| i as u32) })
                        .collect(),
                    output_schema: encode_schema(&output_schema),
                    input_schema: encode_schema(&source.schema),
                })),
            },
            parallelism,
        );
        self.builder.connect(
            source_node.node,
            aggregate,
            Partitioning::Hash,
            keys.iter().map(|&k| k as u32).collect(),
            encode_schema(&source.schema),
        );
        if identity {
            return aggregate;
        }
        let names: Vec<String> = positions
            .iter()
            .zip(sink.schema.fields())
            .map(|(&p, out)| {
                let input = output_schema.field(p).name();
                if input == out.name() {
                    input.clone()
                } else {
                    format!("{input} AS {}", out.name())
                }
            })
            .collect();
        let project = self.builder.add(
            OperatorSpec {
                name: format!("project({})", names.join(", ")),
                kind: Some(Kind::Project(ProjectSpec {
                    columns: positions.iter().map(|&p| p as u32).collect(),
                    output_schema: encode_schema(&sink.schema),
                })),
            },
            parallelism,
        );
        self.builder.connect(aggregate, project, Partitioning::Forward, Vec::new(), encode_schema(&output_schema));
        project
    }
}

/// The SELECT of a query that has nothing but a SELECT.
fn simple_select<'q>(query: &'q Query, script: &str) -> Result<&'q Select> {
    let at = |spanned: &dyn Spanned| spanned.span().start;
    let fallback = located(at(query), Location { line: 1, column: 1 });
    let unsupported = |location: Location, what: &str| {
        Err(SqlError::new(located(location, fallback), format!("{what} is not supported yet")))
    };
    if let Some(with) = &query.with {
        return unsupported(with.with_token.0.span.start, "WITH (a common table expression)");
    }
    if let Some(order_by) = &query.order_by {
        return unsupported(keyword_before(script, at(order_by), "ORDER BY"), "ORDER BY");
    }
    if let Some(limit) = &query.limit_clause {
        return unsupported(keyword_before(script, at(limit), "LIMIT"), "LIMIT");
    }
    if query.fetch.is_some() || !query.locks.is_empty() || query.for_clause.is_some() || !query.pipe_operators.is_empty() {
        return unsupported(fallback, "this query clause");
    }
    match query.body.as_ref() {
        SetExpr::Select(select) => Ok(select),
        SetExpr::Query(inner) => simple_select(inner, script),
        SetExpr::SetOperation { op, set_quantifier, right, .. } => {
            let keyword = format!("{op} {set_quantifier}");
            let location = located(at(right.as_ref()), fallback);
            let location = match keyword_before(script, location, keyword.trim()) {
                same if same == location => keyword_before(script, location, &op.to_string()),
                found => found,
            };
            unsupported(location, &op.to_string())
        }
        SetExpr::Values(values) => {
            unsupported(keyword_before(script, located(at(values), fallback), "VALUES"), "INSERT ... VALUES")
        }
        other => unsupported(at(other), "this query form"),
    }
}

/// The single table a SELECT reads: its name, where it is, and its alias.
fn from_table(select: &Select, script: &str, fallback: Location) -> Result<(String, Location, Option<Ident>)> {
    let select_location = located(select.select_token.0.span.start, fallback);
    let Some(first) = select.from.first() else {
        return Err(SqlError::new(select_location, "a SELECT without FROM is not supported yet")
            .with_hint("read from a table: SELECT ... FROM <table>"));
    };
    if let Some(second) = select.from.get(1) {
        return Err(SqlError::new(located(second.span().start, select_location), "joins are not supported yet"));
    }
    if let Some(join) = first.joins.first() {
        let at = located(join.relation.span().start, select_location);
        return Err(SqlError::new(keyword_before(script, at, "JOIN"), "joins are not supported yet"));
    }
    match &first.relation {
        TableFactor::Table { name, alias, args: None, .. } => {
            let location = located(name.span().start, select_location);
            let table = match name.0.as_slice() {
                [ObjectNamePart::Identifier(ident)] => ident.value.clone(),
                _ => {
                    return Err(SqlError::new(location, format!("qualified table name '{name}' is not supported yet"))
                        .with_hint("use the table name alone"))
                }
            };
            if let Some(alias) = alias.as_ref().filter(|a| !a.columns.is_empty()) {
                return Err(SqlError::new(located(alias.span().start, location), "column aliases on a table are not supported yet"));
            }
            Ok((table, location, alias.as_ref().map(|a| a.name.clone())))
        }
        TableFactor::Derived { .. } => Err(SqlError::new(
            located(first.relation.span().start, select_location),
            "subqueries in FROM are not supported yet",
        )),
        other => Err(SqlError::new(
            located(other.span().start, select_location),
            format!("reading from '{other}' is not supported yet"),
        )
        .with_hint("read from a table declared with CREATE TABLE")),
    }
}

/// Resolves the items and GROUP BY of a simple SELECT against its source table.
fn resolve_select(
    select: &Select,
    source: &Table,
    alias: Option<&Ident>,
    script: &str,
    fallback: Location,
) -> Result<ResolvedSelect> {
    let select_location = located(select.select_token.0.span.start, fallback);
    let at = |spanned: &dyn Spanned| located(spanned.span().start, select_location);
    let unsupported = |location: Location, what: &str| SqlError::new(location, format!("{what} is not supported yet"));
    if let Some(condition) = &select.selection {
        return Err(unsupported(keyword_before(script, at(condition), "WHERE"), "WHERE"));
    }
    if let Some(having) = &select.having {
        return Err(unsupported(keyword_before(script, at(having), "HAVING"), "HAVING"));
    }
    if select.distinct.is_some() {
        return Err(unsupported(select_location, "SELECT DISTINCT").with_hint("GROUP BY the selected columns instead"));
    }
    if let Some(qualify) = &select.qualify {
        return Err(unsupported(keyword_before(script, at(qualify), "QUALIFY"), "QUALIFY"));
    }
    if select.top.is_some()
        || select.into.is_some()
        || select.exclude.is_some()
        || select.prewhere.is_some()
        || !select.lateral_views.is_empty()
        || !select.connect_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || !select.sort_by.is_empty()
        || !select.named_window.is_empty()
    {
        return Err(unsupported(select_location, "this SELECT clause"));
    }
    let scope = Scope { table: source, alias };

    let group_by = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) => {
            if !modifiers.is_empty() {
                return Err(unsupported(at(&select.group_by), "GROUP BY with modifiers"));
            }
            if exprs.is_empty() {
                None
            } else {
                let mut keys = Vec::new();
                for expr in exprs {
                    match scope.column_ref(expr)? {
                        Some(k) if !keys.contains(&k) => keys.push(k),
                        Some(_) => {}
                        None => {
                            return Err(unsupported(at(expr), &format!("GROUP BY expression '{expr}'"))
                                .with_hint("group by columns"))
                        }
                    }
                }
                Some(keys)
            }
        }
        GroupByExpr::All(_) => return Err(unsupported(at(&select.group_by), "GROUP BY ALL")),
    };

    let mut columns: Vec<OutputColumn> = Vec::new();
    let mut calls: Vec<Call> = Vec::new();
    for item in &select.projection {
        let (expr, alias) = match item {
            SelectItem::Wildcard(options) => {
                let location = at(&options.wildcard_token.0);
                check_wildcard(options, location)?;
                if group_by.is_some() {
                    return Err(unsupported(location, "SELECT * with GROUP BY").with_hint("select the key columns and aggregates"));
                }
                columns.extend(scope.all_columns(location));
                continue;
            }
            SelectItem::QualifiedWildcard(kind, options) => {
                let location = at(item);
                check_wildcard(options, location)?;
                match kind {
                    SelectItemQualifiedWildcardKind::ObjectName(name) => scope.check_qualifier(name, location)?,
                    SelectItemQualifiedWildcardKind::Expr(_) => return Err(unsupported(location, &format!("'{item}'"))),
                }
                if group_by.is_some() {
                    return Err(unsupported(location, "SELECT * with GROUP BY").with_hint("select the key columns and aggregates"));
                }
                columns.extend(scope.all_columns(location));
                continue;
            }
            SelectItem::UnnamedExpr(expr) => (expr, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            other => return Err(unsupported(at(other), &format!("the select item '{other}'"))),
        };
        let location = at(expr);
        let position = columns.len();
        if let Some(index) = scope.column_ref(expr)? {
            let field = source.schema.field(index);
            columns.push(OutputColumn {
                value: ItemValue::Column(index),
                label: field.name().clone(),
                name: alias.unwrap_or_else(|| field.name().clone()),
                location,
                data_type: field.data_type().clone(),
            });
            continue;
        }
        let call = scope.aggregate(expr, location)?;
        let input = call.column.map(|c| source.schema.field(c).data_type().clone());
        let Some(data_type) = output_type(call.function, input.as_ref()) else {
            let input_name = input.as_ref().map_or_else(String::new, sql_name);
            return Err(SqlError::new(location, format!("{} over a {input_name} column is not supported", call.text))
                .with_hint("SUM takes a numeric column"));
        };
        columns.push(OutputColumn {
            value: ItemValue::Aggregate(calls.len()),
            label: call.text.clone(),
            name: alias.unwrap_or_else(|| format!("EXPR${position}")),
            location,
            data_type,
        });
        calls.push(call);
    }

    match &group_by {
        None => {
            if let Some(call) = calls.first() {
                return Err(SqlError::new(call.location, format!("aggregate {} without GROUP BY is not supported yet", call.text))
                    .with_hint("add GROUP BY <key columns>; aggregates over a whole stream come later"));
            }
        }
        Some(keys) => {
            for column in &columns {
                if let ItemValue::Column(i) = column.value {
                    if !keys.contains(&i) {
                        return Err(SqlError::new(
                            column.location,
                            format!("column '{}' is neither grouped nor aggregated", column.label),
                        )
                        .with_hint(format!("add '{}' to GROUP BY or aggregate it with COUNT, SUM, MIN or MAX", column.label)));
                    }
                }
            }
        }
    }
    Ok(ResolvedSelect { columns, calls, group_by })
}

/// Rejects `* EXCLUDE`, `* EXCEPT`, `* REPLACE`, `* RENAME` and the like.
fn check_wildcard(options: &WildcardAdditionalOptions, location: Location) -> Result<()> {
    if options.opt_ilike.is_some()
        || options.opt_exclude.is_some()
        || options.opt_except.is_some()
        || options.opt_replace.is_some()
        || options.opt_rename.is_some()
        || options.opt_alias.is_some()
    {
        return Err(SqlError::new(location, "modifiers of * are not supported yet"));
    }
    Ok(())
}

/// The table a SELECT reads, for resolving names.
struct Scope<'a> {
    table: &'a Table,
    alias: Option<&'a Ident>,
}

impl Scope<'_> {
    /// Checks that `qualifier` names the table (by alias or name).
    fn check_qualifier(&self, qualifier: &ObjectName, location: Location) -> Result<()> {
        let text = qualifier.to_string();
        let part = match qualifier.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => Some(ident),
            _ => None,
        };
        let matches = part.is_some_and(|ident| {
            ident.value.eq_ignore_ascii_case(&self.table.name)
                || self.alias.is_some_and(|a| ident.value.eq_ignore_ascii_case(&a.value))
        });
        if matches {
            return Ok(());
        }
        let mut known = vec![self.table.name.as_str()];
        if let Some(alias) = self.alias {
            known.push(alias.value.as_str());
        }
        let error = SqlError::new(location, format!("unknown table or alias '{text}'"));
        Err(match sluice_operators::options::closest(&text, known.iter().copied()) {
            Some(close) => error.with_hint(format!("did you mean '{close}'?")),
            None => error.with_hint(format!("the query reads '{}'", self.table.name)),
        })
    }

    /// Every column of the table, as a `*` produces them.
    fn all_columns(&self, location: Location) -> Vec<OutputColumn> {
        self.table
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| OutputColumn {
                value: ItemValue::Column(i),
                label: f.name().clone(),
                name: f.name().clone(),
                location,
                data_type: f.data_type().clone(),
            })
            .collect()
    }

    /// The column an expression names, `None` if it is not a column reference.
    fn column_ref(&self, expr: &Expr) -> Result<Option<usize>> {
        match expr {
            Expr::Identifier(ident) => self.table.column(&ident.value, ident.span.start).map(Some),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, column] => {
                    let name = ObjectName(vec![ObjectNamePart::Identifier(qualifier.clone())]);
                    self.check_qualifier(&name, qualifier.span.start)?;
                    self.table.column(&column.value, column.span.start).map(Some)
                }
                _ => Err(SqlError::new(
                    expr.span().start,
                    format!("the column reference '{expr}' is not supported yet"),
                )
                .with_hint("write column or table.column")),
            },
            Expr::Nested(inner) => self.column_ref(inner),
            _ => Ok(None),
        }
    }

    /// The aggregate call an expression is, or an error saying the expression is unsupported.
    fn aggregate(&self, expr: &Expr, location: Location) -> Result<Call> {
        let unsupported = || {
            SqlError::new(location, format!("the expression '{expr}' is not supported yet"))
                .with_hint("select columns, or COUNT, SUM, MIN and MAX of columns with GROUP BY")
        };
        let function = match expr {
            Expr::Function(f) => f,
            Expr::Nested(inner) => return self.aggregate(inner, location),
            _ => return Err(unsupported()),
        };
        let name = match function.name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => ident.value.to_ascii_uppercase(),
            _ => return Err(unsupported()),
        };
        let kind = match name.as_str() {
            "COUNT" => AggregateFunction::Count,
            "SUM" => AggregateFunction::Sum,
            "MIN" => AggregateFunction::Min,
            "MAX" => AggregateFunction::Max,
            _ => {
                return Err(SqlError::new(location, format!("function {name} is not supported yet"))
                    .with_hint("the supported functions are COUNT, SUM, MIN and MAX"))
            }
        };
        if function.filter.is_some() || function.over.is_some() || !function.within_group.is_empty() || function.null_treatment.is_some()
        {
            return Err(SqlError::new(location, format!("this form of {name} is not supported yet")));
        }
        let FunctionArguments::List(list) = &function.args else {
            return Err(SqlError::new(location, format!("{name} needs one argument")));
        };
        if list.duplicate_treatment.is_some() {
            return Err(SqlError::new(location, format!("{name}(DISTINCT ...) is not supported yet")));
        }
        if !list.clauses.is_empty() {
            return Err(SqlError::new(location, format!("this form of {name} is not supported yet")));
        }
        let [arg] = list.args.as_slice() else {
            return Err(SqlError::new(location, format!("{name} takes exactly one argument")));
        };
        let FunctionArg::Unnamed(arg) = arg else {
            return Err(SqlError::new(location, format!("{name} takes an unnamed argument")));
        };
        match arg {
            FunctionArgExpr::Wildcard if kind == AggregateFunction::Count => Ok(Call {
                function: AggregateFunction::CountStar,
                column: None,
                text: "COUNT(*)".to_string(),
                location,
            }),
            FunctionArgExpr::Expr(inner) => match self.column_ref(inner)? {
                Some(column) => Ok(Call {
                    function: kind,
                    column: Some(column),
                    text: format!("{name}({})", self.table.schema.field(column).name()),
                    location,
                }),
                None => Err(SqlError::new(
                    located(inner.span().start, location),
                    format!("the expression '{inner}' inside {name} is not supported yet"),
                )
                .with_hint(format!("aggregate a column: {name}(column)"))),
            },
            _ => Err(SqlError::new(location, format!("{name}({arg}) is not supported")).with_hint(format!("write {name}(column)"))),
        }
    }
}

/// Checks the query's columns against the sink table: same number, same types.
fn check_against_sink(columns: &[OutputColumn], sink: &Table, insert: &Insert) -> Result<()> {
    let sink_fields = sink.schema.fields();
    if columns.len() != sink_fields.len() {
        let names: Vec<&str> = sink_fields.iter().map(|f| f.name().as_str()).collect();
        return Err(SqlError::new(
            insert.location,
            format!(
                "the query produces {} column(s) but sink table '{}' has {}",
                columns.len(),
                sink.name,
                sink_fields.len()
            ),
        )
        .with_hint(format!("select one value for each of its columns: {}", names.join(", "))));
    }
    for (column, field) in columns.iter().zip(sink_fields) {
        if &column.data_type != field.data_type() {
            let have = sql_name(&column.data_type);
            let want = sql_name(field.data_type());
            return Err(SqlError::new(
                column.location,
                format!("column '{}' is {have} but sink column '{}' is {want}", column.label, field.name()),
            )
            .with_hint(format!(
                "CAST({} AS {want}) is not supported yet; declare sink column '{}' as {have}",
                column.label,
                field.name()
            )));
        }
    }
    Ok(())
}

/// The location of `keyword` when it directly precedes `location` in `script` (only
/// whitespace between), else `location`. Used to point at `WHERE` rather than its condition.
fn keyword_before(script: &str, location: Location, keyword: &str) -> Location {
    let Some(offset) = byte_offset(script, location) else {
        return location;
    };
    let before = script[..offset].trim_end();
    let words: Vec<&str> = keyword.split_whitespace().collect();
    // Match the keyword's words backwards, allowing any whitespace between them.
    let mut rest = before;
    for word in words.iter().rev() {
        let Some(start) = rest.len().checked_sub(word.len()) else {
            return location;
        };
        if !rest.is_char_boundary(start) || !rest[start..].eq_ignore_ascii_case(word) {
            return location;
        }
        if words.first() == Some(word) {
            return location_of(script, start);
        }
        rest = rest[..start].trim_end();
    }
    location
}

/// The byte offset of a 1-based line and column (columns count characters).
fn byte_offset(script: &str, location: Location) -> Option<usize> {
    let line_index = usize::try_from(location.line).ok()?.checked_sub(1)?;
    let line_start: usize = script.split_inclusive('\n').take(line_index).map(str::len).sum();
    let line = script[line_start..].split('\n').next()?;
    let column = usize::try_from(location.column).ok()?.checked_sub(1)?;
    let within = line.char_indices().nth(column).map_or(line.len(), |(i, _)| i);
    Some(line_start + within)
}

/// The 1-based line and column of a byte offset.
fn location_of(script: &str, offset: usize) -> Location {
    let before = &script[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() as u64 + 1;
    Location { line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_before_a_location() {
        let script = "SELECT a FROM t\n  WHERE\n   a > 1";
        assert_eq!(keyword_before(script, Location { line: 3, column: 4 }, "WHERE"), Location { line: 2, column: 3 });
        let script = "x ORDER\n BY a";
        assert_eq!(keyword_before(script, Location { line: 2, column: 5 }, "ORDER BY"), Location { line: 1, column: 3 });
        assert_eq!(keyword_before("a b", Location { line: 1, column: 3 }, "WHERE"), Location { line: 1, column: 3 });
    }

    #[test]
    fn offsets_and_locations_agree() {
        let script = "ab\nçd\nef";
        for (offset, line, column) in [(0, 1, 1), (3, 2, 1), (5, 2, 2), (7, 3, 1)] {
            assert_eq!(location_of(script, offset), Location { line, column });
            assert_eq!(byte_offset(script, Location { line, column }), Some(offset));
        }
    }
}
