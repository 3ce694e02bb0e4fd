//! Lookups in a PostgreSQL table: one statement answers a whole request of keys, joining
//! the table with the keys unnested from one array parameter per lookup column:
//!
//! ```sql
//! SELECT t."id"::text, t."name"::text FROM "customers" AS t
//!   JOIN unnest($1::text[]::bigint[]) AS k(k0) ON t."id" = k.k0
//! ```
//!
//! so the server uses the table's index on the lookup columns, and a request of 64 keys
//! costs one round trip instead of 64. The statement is prepared once per connection; the
//! lookup columns' types are read from the server's catalog when it is first built.

use std::collections::HashMap;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use sluice_core::lookup::{LookupFailure, LookupSource};
use sluice_core::OperatorError;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::postgres::{column_types, failure, identifier, table_identifier, Connection};
use super::values::{decode, texts};
use super::JdbcTable;

/// The lookups of one jdbc table by some of its columns.
pub struct JdbcLookup {
    connection: Connection,
    schema: SchemaRef,
    /// Positions of the lookup columns in `schema`.
    lookup_columns: Vec<usize>,
    /// The statement, prepared on the connection it belongs to (by the client's address).
    prepared: Mutex<Option<(usize, Statement)>>,
    context: String,
}

impl JdbcLookup {
    /// Lookups in `table` by `columns` (names of its physical columns).
    pub fn new(table: JdbcTable, columns: &[String]) -> sluice_core::Result<Self> {
        let context = table.connection.context();
        let lookup_columns = columns
            .iter()
            .map(|name| {
                table.schema.index_of(name).map_err(|_| {
                    OperatorError::config(
                        context.clone(),
                        format!("the lookup column '{name}' is not a column of the table"),
                    )
                })
            })
            .collect::<sluice_core::Result<Vec<_>>>()?;
        Ok(JdbcLookup {
            connection: Connection::new(table.connection),
            schema: table.schema,
            lookup_columns,
            prepared: Mutex::new(None),
            context,
        })
    }

    /// The lookup statement, prepared on `client`.
    async fn statement(&self, client: &std::sync::Arc<Client>) -> Result<Statement, LookupFailure> {
        let id = std::sync::Arc::as_ptr(client) as usize;
        let mut prepared = self.prepared.lock().await;
        if let Some((on, statement)) = prepared.as_ref() {
            if *on == id {
                return Ok(statement.clone());
            }
        }
        let names: Vec<&str> = self.lookup_columns.iter().map(|&c| self.schema.field(c).name().as_str()).collect();
        let types = column_types(client, self.connection.target(), &names).await?;
        let select: Vec<String> =
            self.schema.fields().iter().map(|f| format!("t.{}::text", identifier(f.name()))).collect();
        let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("${}::text[]::{t}[]", i + 1)).collect();
        let names: Vec<String> = (0..types.len()).map(|i| format!("k{i}")).collect();
        let on: Vec<String> = self
            .lookup_columns
            .iter()
            .enumerate()
            .map(|(i, &c)| format!("t.{} = k.k{i}", identifier(self.schema.field(c).name())))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} AS t JOIN unnest({}) AS k({}) ON {}",
            select.join(", "),
            table_identifier(&self.connection.target().table_name),
            arrays.join(", "),
            names.join(", "),
            on.join(" AND ")
        );
        let statement = client.prepare(&sql).await.map_err(|e| self.located(failure(&e)))?;
        *prepared = Some((id, statement.clone()));
        Ok(statement)
    }

    fn located(&self, failure: LookupFailure) -> LookupFailure {
        LookupFailure { message: format!("{}: {}", self.context, failure.message), ..failure }
    }

    /// The rows of `found` that match each key row, by their lookup columns.
    fn group(&self, keys: &RecordBatch, found: &RecordBatch) -> Result<Vec<RecordBatch>, LookupFailure> {
        let arrow =
            |e: arrow::error::ArrowError| LookupFailure { message: format!("{}: {e}", self.context), retriable: false };
        let fields: Vec<SortField> =
            self.lookup_columns.iter().map(|&c| SortField::new(self.schema.field(c).data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(arrow)?;
        let key_columns: Vec<ArrayRef> = keys.columns().to_vec();
        let found_columns: Vec<ArrayRef> = self.lookup_columns.iter().map(|&c| found.column(c).clone()).collect();
        let key_rows = converter.convert_columns(&key_columns).map_err(arrow)?;
        let found_rows = converter.convert_columns(&found_columns).map_err(arrow)?;
        let mut by_key: HashMap<&[u8], Vec<u32>> = HashMap::new();
        for (i, row) in found_rows.iter().enumerate() {
            by_key.entry(row.data()).or_default().push(i as u32);
        }
        let mut out = Vec::with_capacity(keys.num_rows());
        for row in key_rows.iter() {
            let indices = by_key.get(row.data()).cloned().unwrap_or_default();
            let indices = UInt32Array::from(indices);
            let columns = found
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c, &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(arrow)?;
            let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(indices.len()));
            out.push(RecordBatch::try_new_with_options(self.schema.clone(), columns, &options).map_err(arrow)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl LookupSource for JdbcLookup {
    async fn lookup(&self, keys: &RecordBatch) -> Result<Vec<RecordBatch>, LookupFailure> {
        let client = self.connection.client().await.map_err(|f| self.located(f))?;
        let statement = self.statement(&client).await?;
        let params =
            keys.columns().iter().map(texts).collect::<Result<Vec<_>, _>>().map_err(|message| LookupFailure {
                message: format!("{}: {message}", self.context),
                retriable: false,
            })?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&statement, &refs).await.map_err(|e| self.located(failure(&e)))?;
        let found = decode(&self.schema, &rows, &self.context)?;
        self.group(keys, &found)
    }
}
