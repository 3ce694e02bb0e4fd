//! Resolving catalog objects for planning: a table's full schema (physical, computed and
//! metadata columns) with its computed-column and watermark expressions planned by
//! DataFusion, each ML_PREDICT call's model, descriptor and output schema, and each window
//! call's time column and output schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::compute::can_cast_types;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, LogicalTableSource};
use datafusion::sql::planner::{PlannerContext, SqlToRel};
use sluice_proto::ConnectorSpec;

use crate::catalog::{ColumnKind, Model, Table};
use crate::error::SqlError;
use crate::parser::{MlPredictCall, WindowTvfCall};
use crate::plan::provider::{parser_options, session, CatalogProvider};
use crate::types::sql_name;
use sqlparser::tokenizer::Location;

type Result<T> = std::result::Result<T, SqlError>;

/// A table ready for planning.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Its name as declared.
    pub name: String,
    /// Connector and options, over the physical schema.
    pub connector: ConnectorSpec,
    /// The columns the connector reads or writes.
    pub physical_schema: SchemaRef,
    /// Every column, in declaration order.
    pub schema: SchemaRef,
    /// One expression per column of `schema` over the physical columns; empty when the
    /// table has only physical columns.
    pub computed: Vec<Expr>,
    /// The watermark: rowtime column, expression over `schema`, and its SQL text.
    pub watermark: Option<(String, Expr, String)>,
}

/// Plans `exprs` against `input` and applies DataFusion's type coercion; returns the
/// coerced expressions and their output schema.
pub fn coerce(table: &str, input: SchemaRef, exprs: Vec<Expr>) -> datafusion::common::Result<(Vec<Expr>, SchemaRef)> {
    let source = Arc::new(LogicalTableSource::new(input));
    let plan = LogicalPlanBuilder::scan(table, source, None)?.project(exprs)?.build()?;
    let state = session();
    let analyzed = state.analyzer().execute_and_check(plan, state.config_options(), |_, _| {})?;
    match analyzed {
        LogicalPlan::Projection(p) => Ok((p.expr.clone(), Arc::new(p.schema.as_arrow().clone()))),
        other => Ok((other.expressions(), Arc::new(other.schema().as_arrow().clone()))),
    }
}

/// Resolves a table for planning.
pub fn resolve_table(table: &Table, provider: &CatalogProvider<'_>) -> Result<TableInfo> {
    let physical = table.source_schema();
    let connector = table.source_spec();
    let has_extras = table.columns.iter().any(|c| !matches!(c.kind, ColumnKind::Physical));
    let mut info = TableInfo {
        name: table.name.clone(),
        connector,
        physical_schema: physical.clone(),
        schema: physical.clone(),
        computed: Vec::new(),
        watermark: None,
    };
    let planner = SqlToRel::new_with_options(provider, parser_options());
    if has_extras {
        let df = DFSchema::try_from_qualified_schema(table.name.as_str(), &physical)
            .map_err(|e| SqlError::new(table.location, e.to_string()))?;
        let mut exprs = Vec::new();
        for column in &table.columns {
            let expr = match &column.kind {
                ColumnKind::Physical => Expr::Column(Column::new(Some(table.name.as_str()), column.name.as_str())),
                ColumnKind::Computed { expr, text } => {
                    planner.sql_to_expr(expr.clone(), &df, &mut PlannerContext::new()).map_err(|e| {
                        let located = crate::plan::unknown_column(&e, column.location)
                            .unwrap_or_else(|| SqlError::new(column.location, first_line(&e)));
                        SqlError {
                            message: format!("computed column '{}' AS {text}: {}", column.name, located.message),
                            ..located
                        }
                    })?
                }
                ColumnKind::Metadata { .. } => {
                    Expr::Column(Column::new(Some(table.name.as_str()), column.name.as_str()))
                }
            };
            exprs.push(expr.alias(column.name.as_str()));
        }
        let (computed, schema) = coerce(&table.name, physical.clone(), exprs).map_err(|e| {
            SqlError::new(table.location, format!("computed columns of '{}': {}", table.name, first_line(&e)))
        })?;
        info.computed = computed;
        info.schema = schema;
    }
    if let Some(watermark) = &table.watermark {
        let df = DFSchema::try_from_qualified_schema(table.name.as_str(), &info.schema)
            .map_err(|e| SqlError::new(table.location, e.to_string()))?;
        let expr = planner.sql_to_expr(watermark.expr.clone(), &df, &mut PlannerContext::new()).map_err(|e| {
            SqlError::new(table.location, format!("WATERMARK FOR {}: {}", watermark.column, first_line(&e)))
        })?;
        let (mut exprs, schema) = coerce(&table.name, info.schema.clone(), vec![expr]).map_err(|e| {
            SqlError::new(table.location, format!("WATERMARK FOR {}: {}", watermark.column, first_line(&e)))
        })?;
        let data_type = schema.field(0).data_type();
        if !matches!(data_type, arrow::datatypes::DataType::Timestamp(..)) {
            return Err(SqlError::new(
                table.location,
                format!(
                    "the WATERMARK expression of '{}' is {} but must be a TIMESTAMP",
                    watermark.column,
                    sql_name(data_type)
                ),
            ));
        }
        info.watermark = Some((watermark.column.clone(), exprs.remove(0), watermark.text.clone()));
    }
    Ok(info)
}

/// The first line of an error, without DataFusion's prefixes.
pub fn first_line(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    for prefix in ["Error during planning: ", "Schema error: ", "SQL error: ", "This feature is not implemented: "] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    line
}

/// An ML_PREDICT call resolved against its input and model.
#[derive(Debug, Clone)]
pub struct ResolvedMl {
    /// The input table or view.
    pub input: String,
    /// Where the input is named.
    pub input_location: Location,
    /// The model's name.
    pub model: String,
    /// Its provider.
    pub provider: String,
    /// Its options (canonical keys, secrets unresolved).
    pub options: BTreeMap<String, String>,
    /// The call's MAP overrides.
    pub config: BTreeMap<String, String>,
    /// Input column index for each model input.
    pub descriptor: Vec<usize>,
    /// The model's INPUT schema.
    pub model_input: SchemaRef,
    /// The model's OUTPUT schema.
    pub model_output: SchemaRef,
    /// Input columns followed by output columns (renamed on clash).
    pub output_schema: SchemaRef,
}

/// Checks an ML_PREDICT call against the input's schema and the model.
pub fn resolve_ml(call: &MlPredictCall, input: &SchemaRef, model: &Model) -> Result<ResolvedMl> {
    let config = sluice_core::models::validate_predict_config(&call.config).map_err(|e| {
        let mut error = SqlError::new(call.location, format!("ML_PREDICT config: {}", e.message));
        if let Some(hint) = &e.hint {
            error = error.with_hint(hint.clone());
        }
        error
    })?;
    let inputs = model.input.fields();
    if call.descriptor.len() != inputs.len() {
        return Err(SqlError::new(
            call.location,
            format!(
                "DESCRIPTOR names {} column(s) but model '{}' takes {} input(s): ({})",
                call.descriptor.len(),
                model.name,
                inputs.len(),
                inputs
                    .iter()
                    .map(|f| format!("{} {}", f.name(), sql_name(f.data_type())))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_hint("list one input column per model INPUT column, in order"));
    }
    let mut descriptor = Vec::new();
    for ((name, location), model_field) in call.descriptor.iter().zip(inputs) {
        let Some((index, field)) = input.fields().iter().enumerate().find(|(_, f)| f.name() == name) else {
            let mut error = SqlError::new(
                *location,
                format!("unknown column '{name}' in DESCRIPTOR of ML_PREDICT over '{}'", call.input),
            );
            if let Some(close) = sluice_core::options::closest(name, input.fields().iter().map(|f| f.name().as_str())) {
                error = error.with_hint(format!("did you mean '{close}'?"));
            }
            return Err(error);
        };
        if !can_cast_types(field.data_type(), model_field.data_type()) {
            return Err(SqlError::new(
                *location,
                format!(
                    "column '{name}' is {} but model '{}' input '{}' is {}, and one cannot be cast to the other",
                    sql_name(field.data_type()),
                    model.name,
                    model_field.name(),
                    sql_name(model_field.data_type())
                ),
            ));
        }
        descriptor.push(index);
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for out in model.output.fields() {
        let mut name = out.name().clone();
        let mut suffix = 0;
        while fields.iter().any(|f| f.name() == &name) {
            name = format!("{}{suffix}", out.name());
            suffix += 1;
        }
        fields.push(Field::new(name, out.data_type().clone(), true));
    }
    Ok(ResolvedMl {
        input: call.input.clone(),
        input_location: call.input_location,
        model: model.name.clone(),
        provider: model.provider.clone(),
        options: model.options.clone(),
        config,
        descriptor,
        model_input: model.input.clone(),
        model_output: model.output.clone(),
        output_schema: Arc::new(Schema::new(fields)),
    })
}

/// A window call checked against its input.
#[derive(Debug, Clone)]
pub struct ResolvedWindow {
    /// The call as written.
    pub call: WindowTvfCall,
    /// The index of the time column in the input.
    pub time_column: usize,
    /// The input's columns followed by `window_start`, `window_end` and `window_time`.
    pub output_schema: SchemaRef,
    /// The time column is a processing-time attribute (`PROCTIME()`).
    pub processing_time: bool,
}

/// The columns a window adds to its input's.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// Checks a window call's time column against its input's schema.
pub fn resolve_window(call: &WindowTvfCall, input: &SchemaRef) -> Result<ResolvedWindow> {
    let name = &call.time_column;
    let found = input.fields().iter().position(|f| f.name() == name);
    let found = found.or_else(|| input.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)));
    let Some(time_column) = found else {
        let mut error = SqlError::new(
            call.time_location,
            format!("unknown column '{name}' in DESCRIPTOR of the window over '{}'", call.input),
        );
        if let Some(close) = sluice_core::options::closest(name, input.fields().iter().map(|f| f.name().as_str())) {
            error = error.with_hint(format!("did you mean '{close}'?"));
        }
        return Err(error);
    };
    let time_type = input.field(time_column).data_type();
    if !matches!(time_type, DataType::Timestamp(..)) {
        return Err(SqlError::new(
            call.time_location,
            format!(
                "a window needs a time column, but '{}' is {}",
                input.field(time_column).name(),
                sql_name(time_type)
            ),
        )
        .with_hint("window over a TIMESTAMP(3) or TIMESTAMP_LTZ(3) column, such as the table's WATERMARK column"));
    }
    let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
    for added in WINDOW_COLUMNS {
        if fields.iter().any(|f| f.name().eq_ignore_ascii_case(added)) {
            return Err(SqlError::new(
                call.input_location,
                format!("'{}' already has a column named '{added}', which the window adds", call.input),
            )
            .with_hint("rename that column in a view first"));
        }
        fields.push(Field::new(added, DataType::Timestamp(TimeUnit::Millisecond, None), false));
    }
    Ok(ResolvedWindow {
        call: call.clone(),
        time_column,
        output_schema: Arc::new(Schema::new(fields)),
        processing_time: false,
    })
}
