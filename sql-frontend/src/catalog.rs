//! The tables a script declares: their schemas, connectors and options.
//!
//! Names are looked up case-insensitively and keep their original spelling. A table's
//! options are validated when the planner uses it, for the role it is used in
//! ([`Table::validate`]), with errors located at the option they name when they name one.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use sluice_operators::connectors::{self, Role};
use sluice_operators::options::closest;
use sluice_operators::schema::encode_schema;
use sluice_operators::OperatorError;
use sluice_proto::ConnectorSpec;
use sqlparser::tokenizer::Location;

use crate::error::{Result, SqlError};
use crate::parser::CreateTable;

/// A declared table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The name as declared.
    pub name: String,
    /// Where the name is in its CREATE TABLE.
    pub location: Location,
    /// The columns.
    pub schema: SchemaRef,
    /// The `connector` option.
    pub connector: String,
    /// All `WITH` options, `connector` included.
    pub options: BTreeMap<String, String>,
    /// Where each option's key and value are.
    option_locations: BTreeMap<String, (Location, Location)>,
}

impl Table {
    /// Builds a table from its CREATE TABLE statement, rejecting duplicate columns and
    /// options and a missing `connector`.
    pub fn from_statement(create: &CreateTable) -> Result<Self> {
        let mut fields: Vec<Field> = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            if let Some(previous) = fields.iter().find(|f| f.name().eq_ignore_ascii_case(&column.name)) {
                return Err(SqlError::new(
                    column.location,
                    format!("duplicate column '{}' in table '{}'", column.name, create.name),
                )
                .with_hint(format!("'{}' is already declared; rename one of them", previous.name())));
            }
            fields.push(Field::new(column.name.clone(), column.data_type.clone(), column.nullable));
        }
        let mut options = BTreeMap::new();
        let mut option_locations = BTreeMap::new();
        for option in &create.options {
            if options.insert(option.key.clone(), option.value.clone()).is_some() {
                return Err(SqlError::new(
                    option.key_location,
                    format!("option '{}' is set twice for table '{}'", option.key, create.name),
                ));
            }
            option_locations.insert(option.key.clone(), (option.key_location, option.value_location));
        }
        let Some(connector) = options.get("connector").cloned() else {
            return Err(SqlError::new(create.location, format!("table '{}' has no 'connector' option", create.name))
                .with_hint("add e.g. 'connector' = 'datagen' to its WITH clause"));
        };
        Ok(Table {
            name: create.name.clone(),
            location: create.location,
            schema: Arc::new(Schema::new(fields)),
            connector,
            options,
            option_locations,
        })
    }

    /// The connector description the operators are built from.
    pub fn connector_spec(&self) -> ConnectorSpec {
        ConnectorSpec {
            table: self.name.clone(),
            connector: self.connector.clone(),
            options: self.options.clone().into_iter().collect(),
            schema: encode_schema(&self.schema),
        }
    }

    /// The index of column `name` (case-insensitive), or an error at `location` naming the
    /// closest column.
    pub fn column(&self, name: &str, location: Location) -> Result<usize> {
        if let Some(index) = self.schema.fields().iter().position(|f| f.name() == name) {
            return Ok(index);
        }
        if let Some(index) = self.schema.fields().iter().position(|f| f.name().eq_ignore_ascii_case(name)) {
            return Ok(index);
        }
        let names: Vec<&str> = self.schema.fields().iter().map(|f| f.name().as_str()).collect();
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
        connectors::validate(&self.connector_spec(), role).map_err(|e| self.operator_error(&e, usage))
    }

    /// The parallelism the table asks for in `role` (`scan.parallelism`, `sink.parallelism`).
    pub fn requested_parallelism(&self, role: Role, usage: Location) -> Result<Option<u32>> {
        connectors::requested_parallelism(&self.connector_spec(), role).map_err(|e| self.operator_error(&e, usage))
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

/// The tables of a script.
#[derive(Debug, Default)]
pub struct Catalog {
    tables: Vec<Table>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the table of a CREATE TABLE statement. Creating an existing table is an
    /// error unless `IF NOT EXISTS` was given (then the statement does nothing).
    pub fn create_table(&mut self, create: &CreateTable) -> Result<()> {
        if let Some(existing) = self.find(&create.name) {
            if create.if_not_exists {
                return Ok(());
            }
            return Err(SqlError::new(create.location, format!("table '{}' already exists", create.name)).with_hint(
                format!(
                    "it was created at line {}, column {}; use CREATE TABLE IF NOT EXISTS to keep the first one",
                    existing.location.line, existing.location.column
                ),
            ));
        }
        self.tables.push(Table::from_statement(create)?);
        Ok(())
    }

    /// The table called `name` (case-insensitive), if any.
    pub fn find(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name).or_else(|| self.tables.iter().find(|t| t.name.eq_ignore_ascii_case(name)))
    }

    /// The table called `name`, or an error at `location` naming the closest table.
    pub fn table(&self, name: &str, location: Location) -> Result<&Table> {
        if let Some(table) = self.find(name) {
            return Ok(table);
        }
        let names: Vec<&str> = self.tables.iter().map(|t| t.name.as_str()).collect();
        let error = SqlError::new(location, format!("unknown table '{name}'"));
        Err(match closest(name, names.iter().copied()) {
            Some(close) => error.with_hint(format!("did you mean '{close}'?")),
            None if names.is_empty() => error.with_hint("declare it with CREATE TABLE first"),
            None => error.with_hint(format!("declared tables are {}", quoted(&names))),
        })
    }

    /// The declared tables, in declaration order.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }
}

fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::{parse_script, ScriptStatement};

    fn catalog(sql: &str) -> Result<Catalog> {
        let mut catalog = Catalog::new();
        for statement in parse_script(sql)? {
            if let ScriptStatement::CreateTable(create) = statement {
                catalog.create_table(&create)?;
            }
        }
        Ok(catalog)
    }

    const AT: Location = Location { line: 99, column: 1 };

    #[test]
    fn lookups_are_case_insensitive_and_suggest() {
        let c = catalog("CREATE TABLE Orders (Id BIGINT, amount DOUBLE) WITH ('connector' = 'datagen')").unwrap();
        let t = c.table("orders", AT).unwrap();
        assert_eq!(t.name, "Orders");
        assert_eq!(t.column("ID", AT).unwrap(), 0);
        let e = c.table("ordrs", AT).unwrap_err();
        assert_eq!(e.to_string(), "line 99, column 1: unknown table 'ordrs' (hint: did you mean 'Orders'?)");
        let e = t.column("amont", AT).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean 'amount'?"));
        let e = t.column("zzzzzzzz", AT).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("its columns are 'Id', 'amount'"));
    }

    #[test]
    fn if_not_exists_keeps_the_first_table() {
        let c = catalog(
            "CREATE TABLE t (a INT) WITH ('connector' = 'datagen');\nCREATE TABLE IF NOT EXISTS T (b INT) WITH ('connector' = 'print')",
        )
        .unwrap();
        assert_eq!(c.tables().len(), 1);
        assert_eq!(c.tables()[0].connector, "datagen");
    }

    #[test]
    fn option_errors_point_at_the_option() {
        let c = catalog(
            "CREATE TABLE t (a INT) WITH (\n  'connector' = 'datagen',\n  'fields.a.min' = 'x')",
        )
        .unwrap();
        let e = c.tables()[0].validate(Role::Source, AT).unwrap_err();
        assert!(e.message.contains("'fields.a.min' = 'x' is not a number"), "{e}");
        assert_eq!((e.line, e.column), (3, 3));
        // The role is checked where the table is used.
        let e = c.tables()[0].validate(Role::Sink, AT).unwrap_err();
        assert!(e.message.contains("cannot be written to"), "{e}");
        assert_eq!((e.line, e.column), (99, 1));
    }

    #[test]
    fn duplicate_options_are_rejected() {
        let e = catalog("CREATE TABLE t (a INT) WITH ('connector' = 'print',\n 'connector' = 'print')").unwrap_err();
        assert!(e.message.contains("option 'connector' is set twice"), "{e}");
        assert_eq!((e.line, e.column), (2, 2));
    }
}
