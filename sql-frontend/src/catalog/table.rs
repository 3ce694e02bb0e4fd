//! Declared tables: columns (physical, computed, metadata), watermark, primary key,
//! connector and options.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_connectors::Role;
use sluice_core::options::closest;
use sluice_core::schema::encode_schema;
use sluice_core::OperatorError;
use sluice_proto::ConnectorSpec;
use sqlparser::ast::Expr;
use sqlparser::tokenizer::Location;

use super::quoted;
use crate::error::{Result, SqlError};
use crate::parser::{ColumnKind, CreateTable};
use crate::types::sql_name;

/// One column of a table.
#[derive(Debug, Clone)]
pub struct TableColumn {
    /// The name as declared.
    pub name: String,
    /// Where the name is declared.
    pub location: Location,
    /// Its type; [`DataType::Null`] for a computed column, whose type comes from its
    /// expression when the table is planned.
    pub data_type: DataType,
    /// Whether it may hold NULL (primary-key columns may not).
    pub nullable: bool,
    /// What it holds.
    pub kind: ColumnKind,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// The event-time column, as declared in the column list.
    pub column: String,
    /// The watermark expression.
    pub expr: Expr,
    /// The expression as SQL text.
    pub text: String,
}

/// A declared table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The name as declared.
    pub name: String,
    /// Where the name is in its CREATE TABLE.
    pub location: Location,
    /// Declared `TEMPORARY`.
    pub temporary: bool,
    /// The columns, in declaration order.
    pub columns: Vec<TableColumn>,
    /// The watermark, if declared.
    pub watermark: Option<Watermark>,
    /// The primary-key columns (as declared in the column list); empty without a key.
    pub primary_key: Vec<String>,
    /// The primary key's constraint name, if given.
    pub primary_key_name: Option<String>,
    /// `PARTITIONED BY` columns.
    pub partitioned_by: Vec<String>,
    /// The `connector` option.
    pub connector: String,
    /// All `WITH` options, `connector` included.
    pub options: BTreeMap<String, String>,
    /// `COMMENT '...'`.
    pub comment: Option<String>,
    /// Where each option's key and value are.
    option_locations: BTreeMap<String, (Location, Location)>,
}

impl Table {
    /// Builds a table from its CREATE TABLE statement, rejecting duplicate columns, a
    /// watermark or key on an unknown column, a watermark on a non-timestamp column and a
    /// missing `connector`.
    pub fn from_statement(create: &CreateTable) -> Result<Self> {
        if create.columns.is_empty() {
            return Err(SqlError::new(create.location, format!("table '{}' has no columns", create.name))
                .with_hint("declare at least one column: CREATE TABLE t (name TYPE, ...)"));
        }
        let mut columns: Vec<TableColumn> = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            if let Some(previous) = columns.iter().find(|c| c.name.eq_ignore_ascii_case(&column.name)) {
                return Err(SqlError::new(
                    column.location,
                    format!("duplicate column '{}' in table '{}'", column.name, create.name),
                )
                .with_hint(format!("'{}' is already declared; rename one of them", previous.name)));
            }
            columns.push(TableColumn {
                name: column.name.clone(),
                location: column.location,
                data_type: column.data_type.clone(),
                nullable: column.nullable,
                kind: column.kind.clone(),
                comment: column.comment.clone(),
            });
        }
        let mut table = Table {
            name: create.name.clone(),
            location: create.location,
            temporary: create.temporary,
            columns,
            watermark: None,
            primary_key: Vec::new(),
            primary_key_name: None,
            partitioned_by: Vec::new(),
            connector: String::new(),
            options: BTreeMap::new(),
            comment: create.comment.clone(),
            option_locations: BTreeMap::new(),
        };
        if let Some(watermark) = &create.watermark {
            let index = table.column(&watermark.column.value, watermark.column.location)?;
            let column = &table.columns[index];
            let is_time = matches!(column.data_type, DataType::Timestamp(..));
            if !is_time && !matches!(column.kind, ColumnKind::Computed { .. }) {
                return Err(SqlError::new(
                    watermark.column.location,
                    format!(
                        "the watermark column '{}' is {}, not a timestamp",
                        column.name,
                        sql_name(&column.data_type)
                    ),
                )
                .with_hint("declare the event-time column as TIMESTAMP(3) or TIMESTAMP_LTZ(3)"));
            }
            if watermark.text.split_whitespace().collect::<String>().eq_ignore_ascii_case("SOURCE_WATERMARK()") {
                // Flink: only for sources that implement SupportsSourceWatermark.
                return Err(SqlError::new(
                    watermark.location,
                    "SOURCE_WATERMARK() needs a connector that emits watermarks of its own, and no connector of \
                     Sluice does",
                )
                .with_hint(format!(
                    "derive the watermark from the column: WATERMARK FOR {0} AS {0} - INTERVAL '5' SECOND \
                     (Kafka tables get it per partition)",
                    column.name
                )));
            }
            table.watermark = Some(Watermark {
                column: column.name.clone(),
                expr: watermark.expr.clone(),
                text: watermark.text.clone(),
            });
        }
        if let Some(key) = &create.primary_key {
            for name in &key.columns {
                let index = table.column(&name.value, name.location)?;
                let column = &mut table.columns[index];
                if !matches!(column.kind, ColumnKind::Physical) {
                    return Err(SqlError::new(
                        name.location,
                        format!("primary key column '{}' is not a physical column", column.name),
                    )
                    .with_hint("a primary key may only use physical columns"));
                }
                if table.primary_key.contains(&column.name) {
                    return Err(SqlError::new(
                        name.location,
                        format!("column '{}' is listed twice in the primary key", column.name),
                    ));
                }
                column.nullable = false;
                table.primary_key.push(column.name.clone());
            }
            table.primary_key_name = key.name.clone();
        }
        for name in &create.partitioned_by {
            let index = table.column(&name.value, name.location)?;
            table.partitioned_by.push(table.columns[index].name.clone());
        }
        for option in &create.options {
            let key = match legacy_option(&option.key) {
                Some(LegacyOption::Now(key)) => key.to_string(),
                Some(LegacyOption::Ignored) => continue,
                None => option.key.clone(),
            };
            table.options.insert(key.clone(), option.value.clone());
            table.option_locations.insert(key, (option.key_location, option.value_location));
        }
        let Some(connector) = table.options.get("connector").cloned() else {
            return Err(SqlError::new(create.location, format!("table '{}' has no 'connector' option", create.name))
                .with_hint("add e.g. 'connector' = 'datagen' to its WITH clause"));
        };
        table.connector = connector;
        Ok(table)
    }

    /// The columns the connector reads or writes (physical columns only), in order.
    pub fn physical_schema(&self) -> SchemaRef {
        let fields = self
            .columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnKind::Physical))
            .map(|c| Field::new(c.name.clone(), c.data_type.clone(), c.nullable));
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }

    /// Every column in declaration order (computed columns typed [`DataType::Null`]).
    pub fn schema(&self) -> SchemaRef {
        let fields = self.columns.iter().map(|c| Field::new(c.name.clone(), c.data_type.clone(), c.nullable));
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }

    /// The connector description a sink is built from (over the physical schema).
    pub fn connector_spec(&self) -> ConnectorSpec {
        ConnectorSpec {
            table: self.name.clone(),
            connector: self.connector.clone(),
            options: self.options.clone().into_iter().collect(),
            schema: encode_schema(&self.physical_schema()),
            metadata: Default::default(),
            primary_key: self.primary_key.clone(),
            partition_keys: self.partitioned_by.clone(),
            pushdown: None,
        }
    }

    /// The columns a source produces: physical and metadata columns, in declaration order.
    pub fn source_schema(&self) -> SchemaRef {
        let fields = self.columns.iter().filter_map(|c| match c.kind {
            ColumnKind::Physical => Some(Field::new(c.name.clone(), c.data_type.clone(), c.nullable)),
            ColumnKind::Metadata { .. } => Some(Field::new(c.name.clone(), c.data_type.clone(), true)),
            ColumnKind::Computed { .. } => None,
        });
        Arc::new(Schema::new(fields.collect::<Vec<_>>()))
    }

    /// The connector description a source is built from: its schema holds the metadata
    /// columns too, and `metadata` names their keys.
    pub fn source_spec(&self) -> ConnectorSpec {
        let metadata = self
            .columns
            .iter()
            .filter_map(|c| match &c.kind {
                ColumnKind::Metadata { key, .. } => {
                    Some((c.name.clone(), key.clone().unwrap_or_else(|| c.name.clone())))
                }
                _ => None,
            })
            .collect();
        ConnectorSpec { schema: encode_schema(&self.source_schema()), metadata, ..self.connector_spec() }
    }

    /// The index in [`Table::columns`] of column `name` (case-insensitive), or an error at
    /// `location` naming the closest column.
    pub fn column(&self, name: &str, location: Location) -> Result<usize> {
        if let Some(index) = self.columns.iter().position(|c| c.name == name) {
            return Ok(index);
        }
        if let Some(index) = self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)) {
            return Ok(index);
        }
        let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        let error = SqlError::new(location, format!("unknown column '{name}' in table '{}'", self.name));
        Err(match closest(name, names.iter().copied()) {
            Some(close) => error.with_hint(format!("did you mean '{close}'?")),
            None => error.with_hint(format!("its columns are {}", quoted(&names))),
        })
    }

    /// Checks the table's options for `role`. An error about one of its options is located
    /// at that option in the WITH clause; an unknown connector at the connector's value;
    /// anything else at `usage`, where the table is used.
    pub fn validate(&self, role: Role, usage: Location) -> Result<()> {
        let spec = match role {
            Role::Source => self.source_spec(),
            Role::Sink | Role::Lookup => self.connector_spec(),
        };
        sluice_connectors::validate(&spec, role).map_err(|e| self.operator_error(&e, usage))
    }

    /// Checks the table's options when it is created: they must hold for at least one role
    /// its connector can play (a table is read, written or both; the role it is used in is
    /// checked again where it is used). The error of the first role is reported.
    pub fn validate_options(&self, location: Location) -> Result<()> {
        let roles = sluice_connectors::roles(&self.connector_spec().connector);
        let Some((first, others)) = roles.split_first() else { return self.validate(Role::Source, location) };
        match self.validate(*first, location) {
            Err(e) if !others.iter().any(|&role| self.validate(role, location).is_ok()) => Err(e),
            _ => Ok(()),
        }
    }

    /// The parallelism the table asks for in `role` (`scan.parallelism`, `sink.parallelism`).
    pub fn requested_parallelism(&self, role: Role, usage: Location) -> Result<Option<u32>> {
        sluice_connectors::requested_parallelism(&self.connector_spec(), role)
            .map_err(|e| self.operator_error(&e, usage))
    }

    fn operator_error(&self, error: &OperatorError, usage: Location) -> SqlError {
        let location = match error {
            OperatorError::Config { message, .. } => {
                if message.starts_with("unknown connector") {
                    self.option_locations.get("connector").map(|(_, value)| *value)
                } else {
                    // The longest option key the message names (so 'fields.a.min' wins over 'min').
                    self.option_locations
                        .iter()
                        .filter(|(key, _)| message.contains(&format!("'{key}'")))
                        .max_by_key(|(key, _)| key.len())
                        .map(|(_, (key, _))| *key)
                }
            }
            _ => None,
        };
        SqlError::from_operator(error, location.unwrap_or(usage))
    }
}

/// What a table option of Flink's legacy style (before Flink 1.11, still written by
/// published queries such as Nexmark's q13) is now.
enum LegacyOption {
    /// The option under its current name.
    Now(&'static str),
    /// A version marker that selects nothing.
    Ignored,
}

/// The current form of a legacy option key (`connector.type`, `connector.path`,
/// `format.type`, ...), or `None` for an option that is not one.
fn legacy_option(key: &str) -> Option<LegacyOption> {
    Some(match key {
        "connector.type" => LegacyOption::Now("connector"),
        "connector.path" => LegacyOption::Now("path"),
        "format.type" => LegacyOption::Now("format"),
        "format.field-delimiter" => LegacyOption::Now("csv.field-delimiter"),
        "connector.property-version" | "format.property-version" | "format.derive-schema" => LegacyOption::Ignored,
        _ => return None,
    })
}
