//! The jdbc sink: rows are buffered and written in one statement per flush, the columns
//! unnested from one text-array parameter each. A table with a PRIMARY KEY is upserted
//! (`INSERT ... ON CONFLICT (key) DO UPDATE`), and `-D` rows delete their key, so a replay
//! after a restore writes the same final rows again (idempotent). A table without one is
//! appended to (at least once: rows written after the last checkpoint are written again
//! after a failure, as with Flink's jdbc sink).
//!
//! A flush happens when `sink.buffer-flush.max-rows` rows are buffered, when the oldest has
//! waited `sink.buffer-flush.interval`, at every checkpoint (before the snapshot, so a
//! completed checkpoint covers every row before its barrier) and at the end of input.
//! Failed writes are retried `sink.max-retries` times when the error is retriable.

use std::collections::HashMap;
use std::time::Duration;

use arrow::array::{ArrayRef, UInt32Array};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use sluice_core::changelog::{self, RowKind};
use sluice_core::lookup::LookupFailure;
use sluice_core::metrics::{self, Metric};
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, TaskContext};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;

use super::postgres::{column_types, failure, identifier, table_identifier, Connection};
use super::values::texts;
use super::JdbcTable;

/// The first wait before a retry; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A running jdbc sink subtask.
pub struct JdbcSink {
    table: JdbcTable,
    connection: Connection,
    /// Buffered rows (the table's columns) with their kinds.
    buffer: Vec<(RecordBatch, Vec<RowKind>)>,
    buffered: usize,
    oldest: Option<Instant>,
    /// The upsert (or insert) and delete statements, built once.
    statements: Option<(String, Option<String>)>,
    written: u64,
    deleted: u64,
    retries: u64,
}

impl JdbcSink {
    /// The sink of `table`, not connected yet.
    pub fn new(table: JdbcTable) -> Self {
        let connection = Connection::new(table.connection.clone());
        JdbcSink {
            table,
            connection,
            buffer: Vec::new(),
            buffered: 0,
            oldest: None,
            statements: None,
            written: 0,
            deleted: 0,
            retries: 0,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> OperatorError {
        OperatorError::config(self.table.connection.context(), message.to_string())
    }

    /// The write statements: an INSERT (an upsert with a primary key) and, with a primary
    /// key, a DELETE by key.
    async fn build_statements(
        &self,
        client: &tokio_postgres::Client,
    ) -> std::result::Result<(String, Option<String>), LookupFailure> {
        let schema = &self.table.schema;
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let types = column_types(client, self.connection.target(), &names).await?;
        let table = table_identifier(&self.table.connection.table_name);
        let columns: Vec<String> = names.iter().map(|n| identifier(n)).collect();
        let arrays: Vec<String> = types.iter().enumerate().map(|(i, t)| format!("${}::text[]::{t}[]", i + 1)).collect();
        let mut insert =
            format!("INSERT INTO {table} ({}) SELECT * FROM unnest({})", columns.join(", "), arrays.join(", "));
        if self.table.primary_key.is_empty() {
            return Ok((insert, None));
        }
        let key: Vec<String> = self.table.primary_key.iter().map(|k| identifier(k)).collect();
        let updates: Vec<String> =
            columns.iter().filter(|c| !key.contains(c)).map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        insert.push_str(&format!(" ON CONFLICT ({}) ", key.join(", ")));
        insert.push_str(&if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        });
        let mut key_types = Vec::with_capacity(key.len());
        for k in &self.table.primary_key {
            let Some(i) = names.iter().position(|n| n == k) else {
                return Err(LookupFailure {
                    message: format!("primary key column '{k}' is not a column the table stores"),
                    retriable: false,
                });
            };
            key_types.push(&types[i]);
        }
        let key_arrays: Vec<String> =
            key_types.iter().enumerate().map(|(i, t)| format!("${}::text[]::{t}[]", i + 1)).collect();
        let key_names: Vec<String> = (0..key.len()).map(|i| format!("k{i}")).collect();
        let matches: Vec<String> = key.iter().enumerate().map(|(i, k)| format!("t.{k} = d.k{i}")).collect();
        let delete = format!(
            "DELETE FROM {table} AS t USING unnest({}) AS d({}) WHERE {}",
            key_arrays.join(", "),
            key_names.join(", "),
            matches.join(" AND ")
        );
        Ok((insert, Some(delete)))
    }

    /// The buffered rows to upsert and the keys to delete: with a primary key, only each
    /// key's last change counts (`-U` rows are dropped: their `+U` follows).
    fn changes(&self) -> Result<(RecordBatch, Option<RecordBatch>)> {
        let arrow = |e| OperatorError::arrow("jdbc sink", e);
        let schema = self.table.schema.clone();
        let batches: Vec<RecordBatch> = self.buffer.iter().map(|(b, _)| b.clone()).collect();
        let rows = arrow::compute::concat_batches(&schema, &batches).map_err(arrow)?;
        let kinds: Vec<RowKind> = self.buffer.iter().flat_map(|(_, k)| k.iter().copied()).collect();
        if self.table.primary_key.is_empty() {
            return Ok((rows, None));
        }
        let key_indices: Vec<usize> = self
            .table
            .primary_key
            .iter()
            .map(|k| schema.index_of(k).map_err(|_| self.error(format!("primary key column '{k}' is not a column"))))
            .collect::<Result<_>>()?;
        let fields: Vec<SortField> =
            key_indices.iter().map(|&i| SortField::new(schema.field(i).data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(arrow)?;
        let key_columns: Vec<ArrayRef> = key_indices.iter().map(|&i| rows.column(i).clone()).collect();
        let keys = converter.convert_columns(&key_columns).map_err(arrow)?;
        let mut last: HashMap<&[u8], usize> = HashMap::new();
        for (i, kind) in kinds.iter().enumerate() {
            if *kind != RowKind::UpdateBefore {
                last.insert(keys.row(i).data(), i);
            }
        }
        let mut last: Vec<usize> = last.into_values().collect();
        last.sort_unstable();
        let (upserts, deletes): (Vec<usize>, Vec<usize>) = last.into_iter().partition(|&i| kinds[i] != RowKind::Delete);
        let take = |indices: Vec<usize>| -> Result<RecordBatch> {
            let indices = UInt32Array::from(indices.into_iter().map(|i| i as u32).collect::<Vec<_>>());
            arrow::compute::take_record_batch(&rows, &indices).map_err(arrow)
        };
        let deletes = take(deletes)?.project(&key_indices).map_err(arrow)?;
        Ok((take(upserts)?, Some(deletes)))
    }

    /// Runs `sql` with one text array per column of `batch`.
    async fn execute(
        &self,
        client: &tokio_postgres::Client,
        sql: &str,
        batch: &RecordBatch,
    ) -> std::result::Result<u64, LookupFailure> {
        let params = batch
            .columns()
            .iter()
            .map(texts)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| LookupFailure { message, retriable: false })?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        client.execute(sql, &refs).await.map_err(|e| failure(&e))
    }

    /// One attempt at writing `upserts` and deleting `deletes`.
    async fn write(
        &mut self,
        upserts: &RecordBatch,
        deletes: Option<&RecordBatch>,
    ) -> std::result::Result<(), LookupFailure> {
        let client = self.connection.client().await?;
        let (insert, delete) = match &self.statements {
            Some(statements) => statements.clone(),
            None => {
                let built = self.build_statements(&client).await?;
                self.statements = Some(built.clone());
                built
            }
        };
        if upserts.num_rows() > 0 {
            self.execute(&client, &insert, upserts).await?;
        }
        if let (Some(sql), Some(keys)) = (delete, deletes.filter(|d| d.num_rows() > 0)) {
            self.execute(&client, &sql, keys).await?;
        }
        Ok(())
    }

    /// Writes everything buffered, retrying retriable failures.
    async fn flush(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let (upserts, deletes) = self.changes()?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            match self.write(&upserts, deletes.as_ref()).await {
                Ok(()) => break,
                Err(f) if f.retriable && attempt < self.table.sink.max_retries => {
                    attempt += 1;
                    self.retries += 1;
                    tracing::warn!(table = %self.table.connection.table, attempt, error = %f.message, "jdbc write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(f) => {
                    return Err(self.error(format!(
                    "writing {} row(s) failed after {} attempt(s): {} (raise 'sink.max-retries' to ride out outages)",
                    upserts.num_rows(),
                    attempt + 1,
                    f.message
                )))
                }
            }
        }
        self.written += upserts.num_rows() as u64;
        self.deleted += deletes.map_or(0, |d| d.num_rows() as u64);
        self.buffer.clear();
        self.buffered = 0;
        self.oldest = None;
        Ok(())
    }
}

#[async_trait]
impl Operator for JdbcSink {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        tracing::info!(task = %ctx.task_name, table = %self.table.connection.context(), "jdbc sink ready");
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let (rows, kinds) = if changelog::row_kind_index(batch.schema().as_ref()).is_some() {
            let split = changelog::split(&batch)?;
            (split.rows, split.kinds)
        } else {
            let n = batch.num_rows();
            (batch, vec![RowKind::Insert; n])
        };
        let rows = RecordBatch::try_new(self.table.schema.clone(), rows.columns().to_vec())
            .map_err(|e| OperatorError::arrow("jdbc sink", e))?;
        self.buffered += rows.num_rows();
        self.buffer.push((rows, kinds));
        self.oldest.get_or_insert_with(Instant::now);
        if self.buffered >= self.table.sink.max_rows {
            self.flush().await?;
        }
        Ok(())
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        self.flush().await?;
        Ok(OperatorState::default())
    }

    fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.table.sink.interval)
    }

    async fn on_timer(&mut self, _out: &mut Collector) -> Result<()> {
        if self.oldest.is_some_and(|t| t + self.table.sink.interval <= Instant::now()) {
            self.flush().await?;
        }
        Ok(())
    }

    async fn finish(&mut self, _out: &mut Collector) -> Result<()> {
        self.flush().await
    }

    fn metrics(&self) -> Vec<Metric> {
        let name = |what: &str| format!("jdbc.{}.{what}", self.table.connection.table);
        vec![
            metrics::counter(name("rows_written"), self.written),
            metrics::counter(name("rows_deleted"), self.deleted),
            metrics::counter(name("retries"), self.retries),
        ]
    }
}
