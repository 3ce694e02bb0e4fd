//! The jdbc source: reads a PostgreSQL table once, in ranges of a column when it is
//! partitioned (see [`super::partition`]), each range dealt to one subtask.
//!
//! A range is read by a task of its own in one read-only transaction, `scan.fetch-size`
//! rows per round trip from a portal, in a fixed order (the primary key, else every
//! column), into a small channel the source drains; a full channel holds the reader back.
//! The source's checkpointed position is, per range not yet finished, how many of its rows
//! were emitted; a restored source reads the range again from there (`OFFSET`). A failed
//! read (a lost connection, the server restarting) is retried from the same position with
//! a doubling backoff until `connection.max-retry-timeout` has passed; an error of the
//! query itself (a missing table or column, a value of the wrong type) fails the job at
//! once, naming the table.

use std::collections::VecDeque;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use sluice_core::lookup::LookupFailure;
use sluice_core::state::Reader;
use sluice_core::{OperatorError, OperatorState, Result, Source, SourcePoll, StateInit, TaskContext};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::partition::ScanRange;
use super::postgres::{connect, failure, identifier, table_identifier};
use super::values::decode;
use super::{JdbcConnection, JdbcTable};

/// Longest one poll waits for rows before reporting the source idle.
const POLL_WAIT: Duration = Duration::from_millis(20);
/// Batches read ahead of the source.
const READ_AHEAD: usize = 2;
/// The first pause before a failed read is retried; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A part of the table to read, and how many of its rows were emitted: its checkpointed
/// position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    /// The range of the partition column, or `None` for the whole table.
    range: Option<ScanRange>,
    /// Rows of it emitted so far.
    emitted: u64,
}

impl Split {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.emitted.to_le_bytes().to_vec();
        if let Some(r) = &self.range {
            out.extend_from_slice(&r.lower.to_le_bytes());
            out.extend_from_slice(&r.upper.to_le_bytes());
            out.push(u8::from(r.first) | u8::from(r.last) << 1);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "jdbc source");
        let emitted = r.u64()?;
        let range = if bytes.len() > 8 {
            let (lower, upper) = (r.u64()? as i64, r.u64()? as i64);
            let ends = r.u8()?;
            Some(ScanRange { lower, upper, first: ends & 1 != 0, last: ends & 2 != 0 })
        } else {
            None
        };
        Ok(Split { range, emitted })
    }
}

/// What a running reader sends: a batch of rows, or why it stopped early. It closes the
/// channel when its split is done.
type Read = std::result::Result<RecordBatch, LookupFailure>;

/// The reader of the current split.
struct Reading {
    rows: mpsc::Receiver<Read>,
    task: JoinHandle<()>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A failed read waiting to be retried.
struct Retry {
    /// When the failures began.
    since: Instant,
    /// The pause before the next attempt.
    backoff: Duration,
    /// When the next attempt starts.
    at: Instant,
}

/// A running jdbc source subtask.
pub struct JdbcSource {
    table: JdbcTable,
    batch_rows: usize,
    /// Splits still to read, the current one first.
    splits: VecDeque<Split>,
    restored: Option<Vec<Split>>,
    reading: Option<Reading>,
    retry: Option<Retry>,
}

impl JdbcSource {
    /// A source reading `table`, emitting batches of at most `batch_rows` rows.
    pub fn new(table: JdbcTable, batch_rows: usize) -> Self {
        JdbcSource {
            table,
            batch_rows: batch_rows.max(1),
            splits: VecDeque::new(),
            restored: None,
            reading: None,
            retry: None,
        }
    }

    /// The statement reading `split` from where it stopped.
    fn statement(&self, split: &Split) -> String {
        let schema = &self.table.schema;
        let select: Vec<String> = schema.fields().iter().map(|f| format!("t.{}::text", identifier(f.name()))).collect();
        let order: Vec<String> = if self.table.primary_key.is_empty() {
            schema.fields().iter().map(|f| format!("t.{}::text", identifier(f.name()))).collect()
        } else {
            self.table.primary_key.iter().map(|c| format!("t.{}", identifier(c))).collect()
        };
        let mut sql =
            format!("SELECT {} FROM {} AS t", select.join(", "), table_identifier(&self.table.connection.table_name));
        let column = self.table.scan.partition.as_ref().map(|p| format!("t.{}", identifier(&p.column)));
        if let Some(condition) = split.range.zip(column).and_then(|(range, column)| range.condition(&column)) {
            sql.push_str(&format!(" WHERE {condition}"));
        }
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
        if split.emitted > 0 {
            sql.push_str(&format!(" OFFSET {}", split.emitted));
        }
        sql
    }

    /// Starts reading the current split from its position.
    fn start_reading(&mut self) {
        let Some(split) = self.splits.front() else { return };
        let (sender, rows) = mpsc::channel(READ_AHEAD);
        let sql = self.statement(split);
        let fetch = self.table.scan.fetch_size.map_or(self.batch_rows, |n| n as usize);
        let reader = RangeReader {
            connection: self.table.connection.clone(),
            schema: self.table.schema.clone(),
            sql,
            fetch: fetch as i32,
            batch_rows: self.batch_rows,
        };
        let task = tokio::spawn(async move {
            if let Err(failure) = reader.run(&sender).await {
                let _ = sender.send(Err(failure)).await;
            }
        });
        self.reading = Some(Reading { rows, task });
    }

    /// A failed read: retried from the same position after a pause while
    /// `connection.max-retry-timeout` has not passed, else the job's error.
    fn failed(&mut self, failure: LookupFailure) -> Result<()> {
        self.reading = None;
        let context = self.table.connection.context();
        let now = Instant::now();
        let retry = self.retry.get_or_insert(Retry { since: now, backoff: FIRST_BACKOFF, at: now });
        let limit = self.table.scan.max_retry_timeout;
        if !failure.retriable || now.duration_since(retry.since) >= limit {
            let why = if failure.retriable {
                format!(" (still failing after {limit:?}; raise 'connection.max-retry-timeout' to wait longer)")
            } else {
                String::new()
            };
            return Err(OperatorError::config(context, format!("reading failed: {}{why}", failure.message)));
        }
        tracing::warn!(table = %self.table.connection.table, error = %failure.message, retry_in = ?retry.backoff,
            "jdbc source read failed; retrying");
        retry.at = now + retry.backoff;
        retry.backoff = (retry.backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }
}

#[async_trait]
impl Source for JdbcSource {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| Split::decode(e)).collect::<Result<_>>()?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        let splits = match self.restored.take() {
            Some(splits) => splits,
            None => {
                let ranges: Vec<Option<ScanRange>> = match &self.table.scan.partition {
                    Some(partition) => partition.ranges().into_iter().map(Some).collect(),
                    None => vec![None],
                };
                let parallelism = ctx.parallelism.max(1) as usize;
                ranges
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| i % parallelism == ctx.subtask as usize)
                    .map(|(_, range)| Split { range, emitted: 0 })
                    .collect()
            }
        };
        self.splits = splits.into();
        Ok(())
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::split(self.splits.iter().map(Split::encode).collect()))
    }

    async fn poll_next(&mut self) -> Result<SourcePoll> {
        loop {
            if self.splits.is_empty() {
                return Ok(SourcePoll::Finished);
            }
            if let Some(retry) = &self.retry {
                if self.reading.is_none() && Instant::now() < retry.at {
                    tokio::time::sleep_until(retry.at.min(Instant::now() + POLL_WAIT)).await;
                    return Ok(SourcePoll::Idle);
                }
            }
            if self.reading.is_none() {
                self.start_reading();
            }
            let Some(reading) = self.reading.as_mut() else { continue };
            match tokio::time::timeout(POLL_WAIT, reading.rows.recv()).await {
                Err(_) => return Ok(SourcePoll::Idle),
                Ok(Some(Ok(batch))) => {
                    self.retry = None;
                    if let Some(split) = self.splits.front_mut() {
                        split.emitted += batch.num_rows() as u64;
                    }
                    return Ok(SourcePoll::Batch(batch));
                }
                Ok(Some(Err(failure))) => self.failed(failure)?,
                Ok(None) => {
                    self.reading = None;
                    self.retry = None;
                    self.splits.pop_front();
                }
            }
        }
    }
}

/// Reads one statement's rows into batches.
struct RangeReader {
    connection: JdbcConnection,
    schema: SchemaRef,
    sql: String,
    /// Rows per round trip.
    fetch: i32,
    batch_rows: usize,
}

impl RangeReader {
    async fn run(self, sender: &mpsc::Sender<Read>) -> std::result::Result<(), LookupFailure> {
        let context = self.connection.context();
        let located = |f: LookupFailure| LookupFailure { message: format!("{context}: {}", f.message), ..f };
        let mut client = connect(&self.connection).await.map_err(located)?;
        let transaction = client
            .build_transaction()
            .read_only(true)
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(|e| located(failure(&e)))?;
        let statement = transaction.prepare(&self.sql).await.map_err(|e| located(failure(&e)))?;
        let portal = transaction.bind(&statement, &[]).await.map_err(|e| located(failure(&e)))?;
        let mut pending = Vec::with_capacity(self.batch_rows);
        loop {
            let rows = transaction.query_portal(&portal, self.fetch).await.map_err(|e| located(failure(&e)))?;
            let done = rows.len() < self.fetch as usize;
            pending.extend(rows);
            while pending.len() >= self.batch_rows || (done && !pending.is_empty()) {
                let take = pending.len().min(self.batch_rows);
                let batch = decode(&self.schema, &pending[..take], &context)?;
                pending.drain(..take);
                if sender.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_positions_survive_encoding() {
        let ranged = Split { range: Some(ScanRange { lower: -5, upper: 9, first: true, last: false }), emitted: 1234 };
        assert_eq!(Split::decode(&ranged.encode()).unwrap(), ranged);
        let whole = Split { range: None, emitted: 7 };
        assert_eq!(Split::decode(&whole.encode()).unwrap(), whole);
    }
}
