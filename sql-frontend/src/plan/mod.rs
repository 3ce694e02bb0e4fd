//! The planner: SQL queries → DataFusion logical plans (against our catalog, with type
//! coercion) → the operators and edges of a job graph.
//!
//! DataFusion's repartitioning and physical planning are not used: parallelism and data
//! exchange are ours. [`JobPlanner`] collects the INSERTs (and bare SELECTs) of a script
//! into one job.

pub mod functions;
pub mod graph;
pub mod locate;
pub mod lower;
pub mod provider;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{Column, DataFusionError, SchemaError};
use datafusion::logical_expr::{cast, Expr, LogicalPlan};
use datafusion::scalar::ScalarValue;
use datafusion::sql::planner::SqlToRel;
use sluice_connectors::Role;
use sluice_core::changelog;
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{ConnectorSpec, JobGraph, OperatorSpec, Partitioning};
use sqlparser::ast::{Query, Statement};
use sqlparser::tokenizer::Location;

use crate::catalog::{Catalog, View};
use crate::error::SqlError;
use crate::parser::ColumnKind;
use crate::parser::{Insert, LookupCall, TableCalls};
use crate::types::sql_name;
use locate::{prefer, QueryLocations};
pub use lower::lookup_join::AsyncLookup;
use lower::lookup_join::ResolvedLookup;
use lower::ml_calls::ResolvedMlCall;
use lower::ml_evaluate::ResolvedEvaluation;
use lower::vector_search::ResolvedVectorSearch;
use lower::{Lowering, Stream};
use provider::{parser_options, session, CatalogProvider};
use tables::{first_line, resolve_ml, resolve_table, resolve_window, ResolvedMl, ResolvedWindow};

type Result<T> = std::result::Result<T, SqlError>;

/// The error for a name that is neither a table nor a view.
pub fn unknown_relation(catalog: &Catalog, name: &str, location: Option<Location>) -> SqlError {
    let location = location.unwrap_or(Location { line: 1, column: 1 });
    let names = catalog.relation_names();
    let mut error = SqlError::new(location, format!("unknown table '{name}'"));
    if let Some(close) = sluice_core::options::closest(name, names.iter().map(String::as_str)) {
        error = error.with_hint(format!("did you mean '{close}'?"));
    } else if names.is_empty() {
        error = error.with_hint("declare it first with CREATE TABLE");
    }
    error
}

/// Turns a DataFusion planning error into a located SQL error.
/// The SQL names of the argument types DataFusion says a function received
/// ("... but received String (DataType: Utf8)"), each once.
fn received_types(message: &str) -> Vec<String> {
    let mut types = Vec::new();
    for part in message.split("(DataType: ").skip(1) {
        let Some(name) = part.split(')').next() else { continue };
        let shown = name.parse::<arrow::datatypes::DataType>().map_or_else(|_| name.to_string(), |t| sql_name(&t));
        if !types.contains(&shown) {
            types.push(shown);
        }
    }
    types
}

fn planning_error(catalog: &Catalog, e: DataFusionError, fallback: Location, query: &Query) -> SqlError {
    let locations = QueryLocations::of(query);
    let location = e
        .diagnostic()
        .and_then(|d| d.span)
        .map(|span| Location { line: span.start.line, column: span.start.column })
        .filter(|l| l.line > 0)
        .unwrap_or(fallback);
    if let Some(error) = carried_error(&e, location).or_else(|| unknown_column(&e, location)) {
        return error;
    }
    let message = first_line(&e);
    let full = e.to_string();
    if let Some(rest) = message.strip_prefix("Invalid function '") {
        let name = rest.split('\'').next().unwrap_or(rest);
        let mut error = SqlError::new(location, format!("unknown function '{name}'"));
        let state = session();
        let known = state.scalar_functions().keys().chain(state.aggregate_functions().keys());
        if let Some(close) = sluice_core::options::closest(name, known.map(String::as_str)) {
            error = error.with_hint(format!("did you mean '{close}'?"));
        }
        return error;
    }
    if let Some((_, rest)) = full.split_once("Function '") {
        if full.contains("failed to match any signature") {
            let name = rest.split('\'').next().unwrap_or(rest);
            let location = prefer(location, fallback, locations.function(name));
            let message = match received_types(&full).as_slice() {
                [] => format!("function '{name}' does not accept arguments of these types"),
                types => format!("function '{name}' does not accept arguments of type {}", types.join(", ")),
            };
            return SqlError::new(location, message).with_hint("CAST the arguments to the types the function takes");
        }
    }
    if message.contains("Cannot create filter with non-boolean predicate") {
        return SqlError::new(prefer(location, fallback, locations.condition()), message);
    }
    if let Some(rest) = message.strip_prefix("table '") {
        // DataFusion's own "table 'x' not found" (a name it resolved without asking us).
        if let Some(name) = rest.split('\'').next() {
            let name = name.rsplit('.').next().unwrap_or(name);
            return unknown_relation(catalog, name, Some(location));
        }
    }
    if let Some((_, rest)) = message.split_once("column \"") {
        if message.contains("must appear in the GROUP BY clause") {
            let column = rest.split('"').next().unwrap_or(rest);
            let column = column.rsplit('.').next().unwrap_or(column);
            let location = prefer(location, fallback, locations.column_or_wildcard(column));
            return SqlError::new(
                location,
                format!("column '{column}' must be in GROUP BY or inside an aggregate function"),
            )
            .with_hint(format!("add '{column}' to GROUP BY, or aggregate it, e.g. MAX({column})"));
        }
    }
    SqlError::new(location, message)
}

/// Every DataFusion error in `e`: those it collected, and the errors each wraps
/// (diagnostics, contexts).
fn causes(e: &DataFusionError) -> Vec<&DataFusionError> {
    let mut out = Vec::new();
    for top in e.iter() {
        let mut current: &dyn std::error::Error = top;
        out.push(top);
        while let Some(source) = current.source() {
            if let Some(inner) = source.downcast_ref::<DataFusionError>() {
                out.push(inner);
            }
            current = source;
        }
    }
    out
}

/// DataFusion's structured "no field named x" error, as our error with a hint: the
/// right qualifier when only that is wrong, else the closest column, else every column.
pub fn unknown_column(e: &DataFusionError, location: Location) -> Option<SqlError> {
    let (field, valid) = causes(e).into_iter().find_map(|e| match e {
        DataFusionError::SchemaError(error, _) => match error.as_ref() {
            SchemaError::FieldNotFound { field, valid_fields } => Some((field, valid_fields)),
            _ => None,
        },
        _ => None,
    })?;
    let name = field.name.as_str();
    if let Some(other) = valid.iter().find(|c| c.name == name) {
        // The column exists; its qualifier is what is wrong.
        return Some(
            SqlError::new(location, format!("unknown column '{}'", field.flat_name()))
                .with_hint(format!("did you mean '{}'?", other.flat_name())),
        );
    }
    let error = SqlError::new(location, format!("unknown column '{name}'"));
    let names: Vec<&str> = valid.iter().map(|c| c.name.as_str()).collect();
    Some(match sluice_core::options::closest(name, names.iter().copied()) {
        Some(close) => error.with_hint(format!("did you mean '{close}'?")),
        None => error.with_hint(format!("available columns: {}", names.join(", "))),
    })
}

/// One of our own errors that DataFusion carried back (a table the catalog could not
/// give the planner), with `location` when it has none of its own.
fn carried_error(e: &DataFusionError, location: Location) -> Option<SqlError> {
    causes(e).into_iter().find_map(|e| match e {
        DataFusionError::External(inner) => inner.downcast_ref::<SqlError>().map(|found| {
            let mut found = found.clone();
            if (found.line, found.column) == (1, 1) {
                (found.line, found.column) = (location.line, location.column);
            }
            found
        }),
        _ => None,
    })
}

/// What the placeholder tables of a query stand for.
#[derive(Debug, Default)]
pub struct Placeholders {
    /// ML_PREDICT calls, by placeholder name.
    ml: HashMap<String, ResolvedMl>,
    /// Window calls, by placeholder name.
    windows: HashMap<String, ResolvedWindow>,
    /// Tables read `FOR SYSTEM_TIME AS OF`, by placeholder name.
    lookups: HashMap<String, ResolvedLookup>,
    /// Model calls on expressions, by function name.
    ml_calls: HashMap<String, ResolvedMlCall>,
    /// VECTOR_SEARCH calls, by placeholder name.
    vector_searches: HashMap<String, ResolvedVectorSearch>,
    /// ML_EVALUATE calls, by placeholder name.
    evaluations: HashMap<String, ResolvedEvaluation>,
}

/// The model a call names, or an error at its name suggesting the closest.
fn find_model<'c>(catalog: &'c Catalog, name: &str, location: Location) -> Result<&'c crate::catalog::Model> {
    catalog.find_model(name).ok_or_else(|| {
        let mut error = SqlError::new(location, format!("unknown model '{name}'"));
        let names = catalog.model_names();
        if let Some(close) = sluice_core::options::closest(name, names.iter().map(String::as_str)) {
            error = error.with_hint(format!("did you mean '{close}'?"));
        } else {
            error = error.with_hint("declare it first with CREATE MODEL");
        }
        error
    })
}

/// Resolves a table read `FOR SYSTEM_TIME AS OF`: it must be a table whose connector does
/// lookups, with only physical columns.
fn resolve_lookup(catalog: &Catalog, call: &LookupCall) -> Result<ResolvedLookup> {
    let at = call.table_location;
    let Some(table) = catalog.find_table(&call.table) else {
        if catalog.find_view(&call.table).is_some() {
            return Err(SqlError::new(
                at,
                format!("'{}' is a view; only a table can be read FOR SYSTEM_TIME AS OF", call.table),
            )
            .with_hint("look up a table whose connector does lookups, such as 'jdbc'"));
        }
        return Err(unknown_relation(catalog, &call.table, Some(at)));
    };
    if !sluice_connectors::roles(&table.connector).contains(&Role::Lookup) {
        return Err(SqlError::new(
            at,
            format!(
                "table '{}' (connector '{}') cannot be looked up: FOR SYSTEM_TIME AS OF needs a connector with lookups",
                table.name, table.connector
            ),
        )
        .with_hint("declare the dimension table with 'connector' = 'jdbc', or join the stream with a regular JOIN"));
    }
    if table.columns.iter().any(|c| !matches!(c.kind, ColumnKind::Physical)) {
        return Err(SqlError::new(
            at,
            format!("table '{}' has computed or metadata columns, which a lookup cannot read yet", table.name),
        )
        .with_hint("declare only the columns stored in the database"));
    }
    table.validate(Role::Lookup, at)?;
    let time = lower::lookup_join::time_column(&call.time);
    let processing_time = call.time.eq_ignore_ascii_case("PROCTIME()")
        || catalog.tables().iter().any(|t| {
            t.columns.iter().any(|c| {
                c.name.eq_ignore_ascii_case(time)
                    && matches!(&c.kind, ColumnKind::Computed { text, .. }
                        if text.split_whitespace().collect::<String>().eq_ignore_ascii_case("PROCTIME()"))
            })
        });
    Ok(ResolvedLookup { call: call.clone(), table: table.connector_spec(), processing_time })
}

/// The schema of the table or view `name` that a table function reads.
fn call_input(catalog: &Catalog, provider: &CatalogProvider, name: &str, location: Location) -> Result<SchemaRef> {
    provider.relation_schema(name).map_err(|e| {
        if e.message.starts_with("unknown table") {
            unknown_relation(catalog, name, Some(location))
        } else {
            e
        }
    })
}

/// Checks that a window over a table times its rows by a time attribute of the table, as
/// Flink requires: its event time (the column of its WATERMARK), or a processing-time
/// column (`name AS PROCTIME()`), which makes the window a processing-time window. Views
/// are not checked yet: their columns do not carry whether they are time attributes.
fn time_attribute(table: &crate::catalog::Table, window: &mut ResolvedWindow) -> Result<()> {
    let column = window.output_schema.field(window.time_column).name();
    if table.watermark.as_ref().is_some_and(|w| w.column.eq_ignore_ascii_case(column)) {
        return Ok(());
    }
    let processing = table.columns.iter().any(|c| {
        c.name == *column
            && matches!(&c.kind, ColumnKind::Computed { text, .. }
                if text.split_whitespace().collect::<String>().eq_ignore_ascii_case("PROCTIME()"))
    });
    if processing {
        window.processing_time = true;
        return Ok(());
    }
    let kind = sql_name(window.output_schema.field(window.time_column).data_type());
    Err(SqlError::new(
        window.call.time_location,
        format!(
            "the window function requires the time column to be a time attribute, but '{column}' of table '{}' is a \
             plain {kind}",
            table.name
        ),
    )
    .with_hint(format!(
        "declare it as the table's event time: WATERMARK FOR {column} AS {column} - INTERVAL '5' SECOND \
         (or window by processing time over a column declared AS PROCTIME())"
    )))
}

/// Plans a query and its table-function calls to an analyzed logical plan.
pub fn logical_plan(
    catalog: &Catalog,
    query: &Query,
    calls: &TableCalls,
    location: Location,
) -> Result<(LogicalPlan, Placeholders)> {
    let mut provider = CatalogProvider::new(catalog);
    let mut resolved = Placeholders::default();
    for call in &calls.windows {
        let input = call_input(catalog, &provider, &call.input, call.input_location)?;
        let mut window = resolve_window(call, &input)?;
        if let Some(table) = catalog.find_table(&call.input) {
            time_attribute(table, &mut window)?;
        }
        provider.add_placeholder(&call.placeholder, window.output_schema.clone());
        resolved.windows.insert(call.placeholder.clone(), window);
    }
    for call in &calls.lookups {
        let lookup = resolve_lookup(catalog, call)?;
        let schema = sluice_core::schema::decode_schema(&lookup.table.schema)
            .map_err(|e| SqlError::new(call.table_location, e.to_string()))?;
        provider.add_placeholder(&call.placeholder, schema);
        resolved.lookups.insert(call.placeholder.clone(), lookup);
    }
    for call in &calls.vector_searches {
        let items = call_input(catalog, &provider, &call.table, call.table_location)?;
        let search = ResolvedVectorSearch::new(call, &items, catalog.find_table(&call.table))?;
        provider.add_placeholder(&call.placeholder, search.schema.clone());
        resolved.vector_searches.insert(call.placeholder.clone(), search);
    }
    for call in &calls.evaluations {
        let input = call_input(catalog, &provider, &call.input, call.input_location)?;
        let model = find_model(catalog, &call.model, call.model_location)?;
        let ml = resolve_ml(&lower::ml_evaluate::predict_call(call), &input, model)?;
        let evaluation = ResolvedEvaluation::new(call, ml)?;
        provider.add_placeholder(&call.placeholder, evaluation.schema.clone());
        resolved.evaluations.insert(call.placeholder.clone(), evaluation);
    }
    for call in &calls.ml_predicts {
        let input = call_input(catalog, &provider, &call.input, call.input_location)?;
        let model = find_model(catalog, &call.model, call.model_location)?;
        let ml = resolve_ml(call, &input, model)?;
        provider.add_placeholder(&call.placeholder, ml.output_schema.clone());
        resolved.ml.insert(call.placeholder.clone(), ml);
    }
    for call in &calls.ml_calls {
        let model = find_model(catalog, &call.model, call.model_location)?;
        let resolved_call = ResolvedMlCall::new(call, model)?;
        provider.add_function(resolved_call.udf());
        resolved.ml_calls.insert(call.function.clone(), resolved_call);
    }
    let planner = SqlToRel::new_with_options(&provider, parser_options());
    let plan = planner
        .sql_statement_to_plan(Statement::Query(Box::new(query.clone())))
        .map_err(|e| planning_error(catalog, e, location, query))?;
    let state = session();
    let analyzed = state
        .analyzer()
        .execute_and_check(plan, state.config_options(), |_, _| {})
        .map_err(|e| planning_error(catalog, e, location, query))?;
    Ok((analyzed, resolved))
}

/// The output schema of a view (renamed by its column list, if any).
pub fn view_schema(catalog: &Catalog, view: &View) -> Result<SchemaRef> {
    let (plan, _) = logical_plan(catalog, &view.query, &view.calls, view.location)?;
    rename_view(view, Arc::new(plan.schema().as_arrow().clone()))
}

fn rename_view(view: &View, schema: SchemaRef) -> Result<SchemaRef> {
    if view.columns.is_empty() {
        return Ok(schema);
    }
    if view.columns.len() != schema.fields().len() {
        return Err(SqlError::new(
            view.location,
            format!(
                "view '{}' names {} columns but its query returns {}",
                view.name,
                view.columns.len(),
                schema.fields().len()
            ),
        ));
    }
    let fields: Vec<Field> =
        schema.fields().iter().zip(&view.columns).map(|(f, name)| f.as_ref().clone().with_name(name.clone())).collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Checks what CREATE TABLE cannot check alone: computed columns and the watermark.
pub fn check_table(catalog: &Catalog, name: &str) -> Result<()> {
    let Some(table) = catalog.find_table(name) else { return Ok(()) };
    resolve_table(table, &CatalogProvider::new(catalog)).map(|_| ())
}

/// A table with the types of its computed columns filled in from their expressions.
pub fn typed_table(catalog: &Catalog, table: &crate::catalog::Table) -> Result<crate::catalog::Table> {
    let info = resolve_table(table, &CatalogProvider::new(catalog))?;
    let mut typed = table.clone();
    for column in &mut typed.columns {
        if let Ok(field) = info.schema.field_with_name(&column.name) {
            column.data_type = field.data_type().clone();
            column.nullable = field.is_nullable();
        }
    }
    Ok(typed)
}

/// Collects the statements of one job and lowers them into its graph. Each statement is
/// planned against the catalog as it is when the statement comes.
pub struct JobPlanner {
    lowering: Lowering,
    changelog_explain: bool,
    explain: Vec<String>,
    models: BTreeMap<String, ResolvedMl>,
    sinks: Vec<String>,
    selects: usize,
}

impl JobPlanner {
    /// A planner with `default_parallelism`.
    pub fn new(default_parallelism: u32) -> Self {
        JobPlanner {
            lowering: Lowering::new(default_parallelism),
            changelog_explain: false,
            explain: Vec::new(),
            models: BTreeMap::new(),
            sinks: Vec::new(),
            selects: 0,
        }
    }

    /// This planner running lookup joins with `settings` (`table.exec.async-lookup.*`).
    pub fn with_async_lookup(mut self, settings: AsyncLookup) -> Self {
        self.lowering.async_lookup = settings;
        self
    }

    /// This planner giving stateful operators a state TTL (`table.exec.state.ttl`).
    pub fn with_state_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.lowering.state_ttl = ttl;
        self
    }

    /// This planner in batch mode (`execution.runtime-mode` = `batch`): GROUP BY emits
    /// final results at the end of its bounded input instead of updates.
    pub fn with_batch_mode(mut self, batch: bool) -> Self {
        self.lowering.batch_mode = batch;
        self
    }

    /// This planner buffering the updates of GROUP BY for up to `latency` or `size` input
    /// rows (`table.exec.mini-batch.*`).
    pub fn with_mini_batch(mut self, mini_batch: Option<(std::time::Duration, u64)>) -> Self {
        self.lowering.mini_batch = mini_batch;
        self
    }

    /// True when no statement was added.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    fn lower_query(
        &mut self,
        catalog: &Catalog,
        query: &Query,
        calls: &TableCalls,
        location: Location,
    ) -> Result<(Stream, LogicalPlan)> {
        let (plan, resolved) = logical_plan(catalog, query, calls, location)?;
        for ml in resolved.ml.values() {
            self.models.insert(ml.model.clone(), ml.clone());
        }
        self.lowering.lookups.extend(resolved.lookups.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.lowering.vector_searches.extend(resolved.vector_searches.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.lowering.ml_calls.extend(resolved.ml_calls.iter().map(|(k, v)| (k.clone(), v.clone())));
        let models = &mut self.models;
        let locations = QueryLocations::of(query);
        self.lowering.locations = locations.clone();
        let stream = self.lowering.lower(&plan, location, &mut |lw, name, loc| {
            resolve_relation(catalog, lw, name, loc, &resolved, models).map_err(|e| {
                // An error about the relation as a whole points at where the query reads it.
                let at = prefer(e.location(), loc, locations.relation(name));
                SqlError { line: at.line, column: at.column, ..e }
            })
        })?;
        for ml in self.lowering.ml_models.drain(..) {
            self.models.insert(ml.model.clone(), ml);
        }
        Ok((stream, plan))
    }

    /// Adds `INSERT INTO target [(columns)] query`.
    pub fn add_insert(&mut self, catalog: &Catalog, insert: &Insert) -> Result<()> {
        let (target, target_location, columns) = (insert.target.as_str(), insert.target_location, &insert.columns);
        let (query, calls, location) = (insert.query.as_ref(), &insert.calls, insert.location);
        let table = catalog.find_table(target).ok_or_else(|| {
            if catalog.find_view(target).is_some() || catalog.find_model(target).is_some() {
                SqlError::new(target_location, format!("'{target}' is not a table; INSERT INTO needs a table"))
            } else {
                unknown_relation(catalog, target, Some(target_location))
            }
        })?;
        if self.sinks.iter().any(|s| s.eq_ignore_ascii_case(&table.name)) {
            return Err(SqlError::new(
                target_location,
                format!("table '{}' is already written by an earlier INSERT of this job", table.name),
            )
            .with_hint("each sink table takes one INSERT per job; write to a second table"));
        }
        let spec = table.connector_spec();
        table.validate(Role::Sink, target_location)?;
        let (stream, plan) = self.lower_query(catalog, query, calls, location)?;
        let sink_schema = table.physical_schema();
        let stream = self.conform(&stream, &sink_schema, columns, &table.name, location)?;
        if !accepts_updates(&spec) {
            self.lowering.append_only(
                &stream,
                &format!("Table sink '{}' (connector '{}')", table.name, spec.connector),
                target_location,
            )?;
        }
        let requested = table.requested_parallelism(Role::Sink, target_location)?;
        // The updates of a key must reach the sink in order: they stay on their subtask, or
        // all meet in one.
        let parallelism = match (&stream.updates, requested) {
            (Some(_), Some(1)) => 1,
            (Some(producer), Some(p)) if p != stream.parallelism => {
                return Err(SqlError::new(
                    target_location,
                    format!(
                        "table '{}' asks for 'sink.parallelism' = '{p}', but the updates of {producer} must keep their \
                         parallelism ({}) to stay in order",
                        table.name, stream.parallelism
                    ),
                )
                .with_hint("remove 'sink.parallelism' (or make it 1), or set the job's parallelism instead"))
            }
            (Some(_), _) => stream.parallelism,
            (None, requested) => requested.unwrap_or(self.lowering.default_parallelism()),
        };
        let name = format!("sink: {}({})", table.name, spec.connector);
        self.lowering.then(
            &stream,
            OperatorSpec { uid: String::new(), name, kind: Some(Kind::Sink(spec)) },
            parallelism,
            Partitioning::Forward,
            vec![],
            sink_schema,
        );
        self.explain.push(with_notes(
            format!("INSERT INTO {}\n{}", table.name, plan.display_indent()),
            &mut self.lowering.notes,
        ));
        self.sinks.push(table.name.clone());
        Ok(())
    }

    /// Adds a bare `SELECT`: its rows are printed (an implicit `print` sink).
    pub fn add_select(
        &mut self,
        catalog: &Catalog,
        query: &Query,
        calls: &TableCalls,
        location: Location,
    ) -> Result<()> {
        let (stream, plan) = self.lower_query(catalog, query, calls, location)?;
        self.selects += 1;
        let name = format!("select_{}", self.selects);
        let spec = ConnectorSpec {
            table: name.clone(),
            connector: "print".into(),
            options: [("connector".to_string(), "print".to_string())].into(),
            schema: encode_schema(&changelog::without_row_kind(&stream.schema)),
            metadata: Default::default(),
            primary_key: Vec::new(),
            ..Default::default()
        };
        // The updates of a key must reach the sink in order: they stay on their subtask.
        let parallelism =
            if stream.updates.is_some() { stream.parallelism } else { self.lowering.default_parallelism() };
        let schema = stream.schema.clone();
        self.lowering.then(
            &stream,
            OperatorSpec { uid: String::new(), name: format!("sink: {name}(print)"), kind: Some(Kind::Sink(spec)) },
            parallelism,
            Partitioning::Forward,
            vec![],
            schema,
        );
        self.explain.push(with_notes(format!("SELECT (printed)\n{}", plan.display_indent()), &mut self.lowering.notes));
        self.sinks.push(name);
        Ok(())
    }

    /// Casts and renames the query's columns to the sink's columns.
    fn conform(
        &mut self,
        stream: &Stream,
        sink: &SchemaRef,
        columns: &[(String, Location)],
        table: &str,
        location: Location,
    ) -> Result<Stream> {
        let targets: Vec<(usize, Location)> = if columns.is_empty() {
            (0..sink.fields().len()).map(|i| (i, location)).collect()
        } else {
            columns
                .iter()
                .map(|(name, loc)| {
                    sink.index_of(name).map(|i| (i, *loc)).map_err(|_| {
                        let mut e = SqlError::new(*loc, format!("table '{table}' has no column '{name}'"));
                        if let Some(c) =
                            sluice_core::options::closest(name, sink.fields().iter().map(|f| f.name().as_str()))
                        {
                            e = e.with_hint(format!("did you mean '{c}'?"));
                        }
                        e
                    })
                })
                .collect::<Result<_>>()?
        };
        let data = changelog::without_row_kind(&stream.schema);
        let produced = data.fields();
        if produced.len() != targets.len() {
            return Err(SqlError::new(
                location,
                format!(
                    "the query returns {} column(s) but INSERT INTO {table} expects {}",
                    produced.len(),
                    targets.len()
                ),
            )
            .with_hint(format!(
                "{table} has columns ({})",
                sink.fields()
                    .iter()
                    .map(|f| format!("{} {}", f.name(), sql_name(f.data_type())))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let mut exprs: Vec<Expr> = Vec::with_capacity(sink.fields().len());
        for (index, field) in sink.fields().iter().enumerate() {
            let expr = match targets.iter().position(|(t, _)| *t == index) {
                Some(position) => {
                    let from = &produced[position];
                    let column = Expr::Column(Column::new_unqualified(from.name()));
                    if from.data_type() == field.data_type() {
                        column
                    } else if implicitly_castable(from.data_type(), field.data_type()) {
                        cast(column, field.data_type().clone())
                    } else {
                        let at = prefer(targets[position].1, location, self.lowering.locations.item(position));
                        return Err(SqlError::new(
                            at,
                            format!(
                                "column {} of the query ('{}', {}) cannot be written to column '{}' ({}) of table '{table}'",
                                position + 1,
                                from.name(),
                                sql_name(from.data_type()),
                                field.name(),
                                sql_name(field.data_type())
                            ),
                        )
                        .with_hint(format!("convert it with CAST(... AS {})", sql_name(field.data_type()))));
                    }
                }
                None if field.is_nullable() => cast(Expr::Literal(ScalarValue::Null, None), field.data_type().clone()),
                None => {
                    return Err(SqlError::new(
                        location,
                        format!("column '{}' of table '{table}' is NOT NULL but gets no value", field.name()),
                    ))
                }
            };
            exprs.push(expr.alias(field.name()));
        }
        // NOT NULL sink columns fed by nullable values keep the conforming step: it fails the
        // job on a NULL, as Flink's default NOT NULL enforcer does.
        let identity = produced.len() == sink.fields().len()
            && produced.iter().zip(sink.fields()).all(|(a, b)| {
                a.name() == b.name() && a.data_type() == b.data_type() && (b.is_nullable() || !a.is_nullable())
            })
            && targets.iter().enumerate().all(|(i, (t, _))| i == *t);
        if identity {
            return Ok(stream.clone());
        }
        self.lowering.calc(stream, None, &exprs, sink.clone(), location)
    }

    /// The sink tables written so far.
    pub fn sinks(&self) -> &[String] {
        &self.sinks
    }

    /// This planner's EXPLAIN showing each operator's changelog mode (`EXPLAIN
    /// CHANGELOG_MODE`).
    pub fn with_changelog_explain(mut self, on: bool) -> Self {
        self.changelog_explain = on;
        self
    }

    /// Finishes the job graph.
    pub fn finish(self, name: &str, config: BTreeMap<String, String>) -> Plan {
        let updating = self.lowering.updating;
        let changelog_explain = self.changelog_explain;
        let mut graph = self.lowering.builder.build(name, config);
        let mut explain = String::new();
        for (i, part) in self.explain.iter().enumerate() {
            explain.push_str(&format!("== Logical plan {} ==\n{part}\n\n", i + 1));
        }
        if changelog_explain {
            explain.push_str(&explain_graph_with(&graph, &|op| changelog_mode(op, &updating)));
        } else {
            explain.push_str(&explain_graph(&graph));
        }
        if !self.models.is_empty() {
            explain.push_str("\n== Models ==\n");
            for ml in self.models.values() {
                explain.push_str(&explain_model(ml));
            }
        }
        // The graph carries its plan in words (secrets masked) for the dashboard.
        graph.explain = explain.clone();
        Plan { graph, explain }
    }
}

/// A statement's EXPLAIN text followed by the lowering's notes about it (taken).
fn with_notes(text: String, notes: &mut Vec<String>) -> String {
    let mut text = text;
    for note in notes.drain(..) {
        text.push_str(&format!("\nNote: {note}"));
    }
    text
}

/// An operator's changelog mode as Flink's EXPLAIN CHANGELOG_MODE writes it: the kinds of
/// rows it emits (`I`, `UB`, `UA`, `D`), `NONE` for a sink.
fn changelog_mode(op: &OperatorSpec, updating: &std::collections::HashSet<String>) -> String {
    let mode = match op.kind {
        Some(Kind::Sink(_)) => "NONE",
        _ if updating.contains(&op.uid) => "I,UB,UA",
        _ => "I",
    };
    format!(", changelogMode=[{mode}]")
}

/// Sinks that take updates (their rows' kinds), not only insertions: a jdbc table
/// upserts and deletes by its PRIMARY KEY; files in a changelog format write each change.
fn accepts_updates(spec: &ConnectorSpec) -> bool {
    matches!(spec.connector.as_str(), "print" | "blackhole" | "upsert-kafka")
        || (spec.connector == "jdbc" && !spec.primary_key.is_empty())
        || (spec.connector == "filesystem" && spec.options.get("format").is_some_and(|f| f == "debezium-json"))
}

/// Implicit conversions allowed when writing to a sink: numeric widening, and any number
/// into a DECIMAL column, rounded to its scale (an assignment cast, as PostgreSQL's). The
/// latter matters because a literal such as `0.908` is a DOUBLE in Sluice's SQL where
/// Flink reads a DECIMAL: `INSERT INTO t (price DECIMAL(23, 3)) SELECT 0.908 * price`
/// writes the same values in both. Unsigned integers, which Flink's SQL does not have but
/// DataFusion's ROW_NUMBER and RANK return, go into BIGINT (failing on overflow).
fn implicitly_castable(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    matches!(
        (from, to),
        (Int8 | Int16 | Int32 | Int64 | Float32 | Float64, Decimal128(..))
            | (UInt8 | UInt16 | UInt32 | UInt64, Int64)
            | (Int8, Int16 | Int32 | Int64 | Float32 | Float64)
            | (Int16, Int32 | Int64 | Float32 | Float64)
            | (Int32, Int64 | Float64)
            | (Int64, Float64)
            | (Float32, Float64)
            | (Null, _)
    )
}

/// Finds a table scan's stream: a table-function placeholder, a view or a table.
fn resolve_relation(
    catalog: &Catalog,
    lowering: &mut Lowering,
    name: &str,
    location: Location,
    placeholders: &Placeholders,
    models: &mut BTreeMap<String, ResolvedMl>,
) -> Result<Stream> {
    let none = Placeholders::default();
    // Only a table's own source takes the scan's pushdown.
    let request = lowering.scan_request.take();
    if let Some(lookup) = lowering.lookups.get(name) {
        return Err(SqlError::new(
            lookup.call.location,
            format!("table '{}' is read FOR SYSTEM_TIME AS OF outside a join", lookup.call.table),
        )
        .with_hint("FOR SYSTEM_TIME AS OF belongs on the right side of a JOIN: FROM e JOIN dim FOR SYSTEM_TIME AS OF e.proc_time AS d ON ..."));
    }
    if let Some(search) = lowering.vector_searches.get(name) {
        return Err(SqlError::new(
            search.call.location,
            "VECTOR_SEARCH is read outside a join with the rows that search",
        )
        .with_hint("write FROM t, LATERAL TABLE(VECTOR_SEARCH(TABLE items, t.v, DESCRIPTOR(v), 5)) AS s"));
    }
    if let Some(ml) = placeholders.ml.get(name) {
        let input = resolve_relation(catalog, lowering, &ml.input, ml.input_location, &none, models)?;
        lowering.append_only(&input, "ML_PREDICT", ml.input_location)?;
        return Ok(lowering.ml_predict(&input, ml));
    }
    if let Some(evaluation) = placeholders.evaluations.get(name) {
        let ml = &evaluation.ml;
        let input = resolve_relation(catalog, lowering, &ml.input, ml.input_location, &none, models)?;
        lowering.append_only(&input, "ML_EVALUATE", ml.input_location)?;
        models.insert(ml.model.clone(), ml.clone());
        let predicted = lowering.ml_predict(&input, ml);
        return Ok(lowering.ml_evaluate(&predicted, evaluation));
    }
    if let Some(window) = placeholders.windows.get(name) {
        let (input_name, at) = (&window.call.input, window.call.input_location);
        let input = resolve_relation(catalog, lowering, input_name, at, &none, models)?;
        return lowering.window_tvf(&input, window);
    }
    if let Some(table) = catalog.find_table(name) {
        table.validate(Role::Source, location)?;
        let requested = table.requested_parallelism(Role::Source, location)?;
        let info = resolve_table(table, &CatalogProvider::new(catalog))?;
        return lowering.table_stream(&info, requested, location, request);
    }
    if let Some(view) = catalog.find_view(name) {
        let (plan, resolved) = logical_plan(catalog, &view.query, &view.calls, view.location)?;
        for ml in resolved.ml.values() {
            models.insert(ml.model.clone(), ml.clone());
        }
        lowering.lookups.extend(resolved.lookups.iter().map(|(k, v)| (k.clone(), v.clone())));
        lowering.vector_searches.extend(resolved.vector_searches.iter().map(|(k, v)| (k.clone(), v.clone())));
        lowering.ml_calls.extend(resolved.ml_calls.iter().map(|(k, v)| (k.clone(), v.clone())));
        let stream = lowering.lower_nested(&plan, view.location, &mut |lw, n, l| {
            resolve_relation(catalog, lw, n, l, &resolved, models)
        })?;
        let data = changelog::without_row_kind(&stream.schema);
        let renamed = rename_view(view, data.clone())?;
        if renamed == data {
            return Ok(stream);
        }
        let exprs: Vec<Expr> = data
            .fields()
            .iter()
            .zip(renamed.fields())
            .map(|(from, to)| Expr::Column(Column::new_unqualified(from.name())).alias(to.name()))
            .collect();
        return lowering.calc(&stream, None, &exprs, renamed, view.location);
    }
    Err(unknown_relation(catalog, name, Some(location)))
}

/// A planned job.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The job graph to submit.
    pub graph: JobGraph,
    /// Logical plans, job graph and models in words.
    pub explain: String,
}

fn partitioning_name(edge: &sluice_proto::Edge) -> String {
    match Partitioning::try_from(edge.partitioning) {
        Ok(Partitioning::Hash) => {
            let schema = sluice_core::schema::decode_schema(&edge.schema).ok();
            let keys: Vec<String> = edge
                .key_columns
                .iter()
                .map(|&k| schema.as_ref().map_or(k.to_string(), |s| s.field(k as usize).name().clone()))
                .collect();
            format!("HASH[{}]", keys.join(", "))
        }
        Ok(Partitioning::Rebalance) => "REBALANCE".into(),
        Ok(Partitioning::Broadcast) => "BROADCAST".into(),
        _ => "FORWARD".into(),
    }
}

/// The job graph in words: vertices (operator chains) with parallelism, and edges.
pub fn explain_graph(graph: &JobGraph) -> String {
    explain_graph_with(graph, &|_| String::new())
}

/// Like [`explain_graph`], with `annotate`'s text after each operator's name.
fn explain_graph_with(graph: &JobGraph, annotate: &dyn Fn(&OperatorSpec) -> String) -> String {
    let mut out = format!("== Job graph: {} ==\n", graph.name);
    for vertex in &graph.vertices {
        out.push_str(&format!("vertex {} [parallelism {}]\n", vertex.id, vertex.parallelism));
        for op in &vertex.operators {
            out.push_str(&format!("  {}{}\n", op.name, annotate(op)));
        }
    }
    for edge in &graph.edges {
        out.push_str(&format!("edge {} -> {}: {}\n", edge.source_vertex, edge.target_vertex, partitioning_name(edge)));
    }
    out
}

/// The columns of `schema` as SQL writes them: `name TYPE, ...`.
pub(crate) fn columns(schema: &SchemaRef) -> String {
    schema.fields().iter().map(|f| format!("{} {}", f.name(), sql_name(f.data_type()))).collect::<Vec<_>>().join(", ")
}

fn explain_model(ml: &ResolvedMl) -> String {
    let options: Vec<String> =
        ml.options.iter().map(|(k, v)| format!("'{k}' = '{}'", sluice_core::secrets::mask(k, v))).collect();
    let mut out = format!(
        "model {} (provider {})\n  INPUT ({})\n  OUTPUT ({})\n  options: {}\n",
        ml.model,
        ml.provider,
        columns(&ml.model_input),
        columns(&ml.model_output),
        options.join(", ")
    );
    if !ml.config.is_empty() {
        let config: Vec<String> =
            ml.config.iter().map(|(k, v)| format!("'{k}' = '{}'", sluice_core::secrets::mask(k, v))).collect();
        out.push_str(&format!("  call config: {}\n", config.join(", ")));
    }
    out.push_str(&format!("  rows out: ({})\n", columns(&ml.output_schema)));
    out
}
