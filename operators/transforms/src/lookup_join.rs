//! The lookup join: each input row asks a lookup table (a [`LookupSource`], such as a
//! PostgreSQL table) for the rows whose lookup columns equal the row's keys, and leaves
//! with each match (INNER), or with NULLs when nothing matches (LEFT). Rows are held by
//! the async machinery ([`AsyncRows`]): up to `table.exec.async-lookup.buffer-capacity`
//! lookups are in flight, queued keys go out together (one statement answers many keys),
//! rows sharing a key wait for one lookup, and rows leave in input order unless the job
//! allows unordered output.
//!
//! A cache ([`cache::LookupCache`]) answers repeated keys without asking. Failed lookups
//! are retried `lookup.max-retries` times with a doubling backoff when the error is
//! retriable (the database went away); a lookup that still fails, or outlasts
//! `table.exec.async-lookup.timeout`, fails the job with the table's name and the error.
//!
//! A barrier never waits for a lookup: the snapshot holds every row not emitted yet, and a
//! restore looks them up again (a lookup reads the table's current rows, so asking again
//! is what a later arrival would see).

pub mod cache;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use async_trait::async_trait;
use datafusion::physical_expr::PhysicalExpr;
use sluice_core::async_rows::{AsyncRows, AsyncSettings, HeldRow, Work};
use sluice_core::changelog;
use sluice_core::lookup::{LookupFailure, LookupOptions, LookupSource};
use sluice_core::metrics::{self, LatencyHistogram, Metric};
use sluice_core::schema::decode_schema;
use sluice_core::state::{OperatorState, StateInit};
use sluice_core::{Barrier, Collector, Operator, OperatorError, Result, TaskContext};
use sluice_proto::LookupJoinSpec;
use tokio::time::Instant;

use cache::LookupCache;

/// Keys per lookup statement at most.
const KEYS_PER_REQUEST: usize = 64;
/// How long a partial request waits for more keys.
const LINGER: Duration = Duration::from_millis(2);
/// The first wait before a retry; it doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What one row asks: its key (a one-row batch of the key columns) and the key's bytes;
/// `None` when a key column is NULL (nothing can match).
type Ask = Option<(RecordBatch, Vec<u8>)>;
/// A row's matches (a batch of the table's columns), or why the lookup failed.
type Found = std::result::Result<RecordBatch, String>;

/// Counters and latencies of one lookup-join subtask.
#[derive(Debug, Default)]
struct LookupStats {
    hits: AtomicU64,
    misses: AtomicU64,
    lookups: AtomicU64,
    retries: AtomicU64,
    latencies: Mutex<LatencyHistogram>,
}

impl LookupStats {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// A running lookup-join subtask.
pub struct LookupJoin {
    left_outer: bool,
    input: SchemaRef,
    data_columns: usize,
    keys: Vec<usize>,
    row_kind: Option<usize>,
    table_schema: SchemaRef,
    output: SchemaRef,
    joined: SchemaRef,
    filter: Option<Arc<dyn PhysicalExpr>>,
    source: Arc<dyn LookupSource>,
    options: LookupOptions,
    timeout: Duration,
    table: String,
    converter: RowConverter,
    rows: AsyncRows<Ask, Found>,
    cache: Option<LookupCache>,
    stats: Arc<LookupStats>,
    restored: Vec<(RecordBatch, u32)>,
}

impl LookupJoin {
    /// The operator of `spec`, asking `source` with the table's lookup `options`.
    pub fn from_spec(spec: &LookupJoinSpec, source: Arc<dyn LookupSource>, options: LookupOptions) -> Result<Self> {
        let input = decode_schema(&spec.input_schema)?;
        let output = decode_schema(&spec.output_schema)?;
        let joined = changelog::without_row_kind(&output);
        let table =
            spec.table.as_ref().ok_or_else(|| OperatorError::InvalidPlan("a lookup join without a table".into()))?;
        let table_schema = decode_schema(&table.schema)?;
        let keys: Vec<usize> = spec.keys.iter().map(|&k| k as usize).collect();
        let fields: Vec<SortField> = keys.iter().map(|&k| SortField::new(input.field(k).data_type().clone())).collect();
        let converter = RowConverter::new(fields).map_err(|e| OperatorError::arrow("lookup join", e))?;
        let filter = spec.filter.as_deref().map(|f| crate::expr::decode_physical(f, &joined)).transpose()?;
        let settings = AsyncSettings {
            ordered: spec.ordered,
            batch_size: KEYS_PER_REQUEST,
            linger: LINGER,
            // Each request holds up to KEYS_PER_REQUEST keys: the capacity counts lookups.
            max_in_flight: (spec.buffer_capacity as usize).div_ceil(KEYS_PER_REQUEST).max(1),
        };
        Ok(LookupJoin {
            left_outer: spec.left_outer,
            row_kind: changelog::row_kind_index(&input),
            data_columns: spec.input_data_columns as usize,
            input,
            keys,
            table_schema,
            joined,
            output,
            filter,
            source,
            cache: options.cache.map(LookupCache::new),
            options,
            timeout: Duration::from_millis(spec.timeout_ms.max(1)),
            table: table.table.clone(),
            converter,
            rows: AsyncRows::new(settings, Arc::new(tokio::sync::Notify::new())),
            stats: Arc::new(LookupStats::default()),
            restored: Vec::new(),
        })
    }

    fn arrow(e: arrow::error::ArrowError) -> OperatorError {
        OperatorError::arrow("lookup join", e)
    }

    /// What each row of `batch` asks.
    fn asks(&self, batch: &RecordBatch) -> Result<Vec<Ask>> {
        let columns: Vec<ArrayRef> = self.keys.iter().map(|&k| batch.column(k).clone()).collect();
        let rows = self.converter.convert_columns(&columns).map_err(Self::arrow)?;
        let key_batch = batch.project(&self.keys).map_err(Self::arrow)?;
        Ok((0..batch.num_rows())
            .map(|i| {
                let null = columns.iter().any(|c| c.is_null(i));
                (!null).then(|| (key_batch.slice(i, 1), rows.row(i).as_ref().to_vec()))
            })
            .collect())
    }

    /// Takes one row: answered at once when its key has a NULL or is cached, waiting for
    /// a lookup of the same key in flight, or queued.
    fn admit(&mut self, row: RecordBatch, ask: Ask, attempts: u32) {
        let now = Instant::now();
        let (result, share) = match &ask {
            None => (Some(Ok(RecordBatch::new_empty(self.table_schema.clone()))), None),
            Some((_, bytes)) => match self.cache.as_mut().and_then(|c| c.get(bytes, now)) {
                Some(rows) => {
                    LookupStats::bump(&self.stats.hits, 1);
                    (Some(Ok(rows)), None)
                }
                None => {
                    LookupStats::bump(&self.stats.misses, 1);
                    (None, Some(share_key(bytes)))
                }
            },
        };
        self.rows.admit(row, 0, ask, attempts, result, share);
    }

    fn request(&self) -> impl FnMut(Vec<&Ask>, Arc<AtomicU32>) -> Work<Found> + 'static {
        let source = self.source.clone();
        let stats = self.stats.clone();
        let (max_retries, timeout, table) = (self.options.max_retries, self.timeout, self.table.clone());
        move |asks, attempts| {
            let keys: Vec<RecordBatch> = asks.iter().filter_map(|a| a.as_ref().map(|(k, _)| k.clone())).collect();
            let positions: Vec<Option<usize>> = {
                let mut next = 0;
                asks.iter()
                    .map(|a| {
                        a.as_ref().map(|_| {
                            next += 1;
                            next - 1
                        })
                    })
                    .collect()
            };
            let (source, stats, table) = (source.clone(), stats.clone(), table.clone());
            Box::pin(async move {
                let n = positions.len();
                let Some(schema) = keys.first().map(|k| k.schema()) else {
                    return vec![Err("no key to look up".to_string()); n];
                };
                let keys = match arrow::compute::concat_batches(&schema, &keys) {
                    Ok(k) => k,
                    Err(e) => return vec![Err(e.to_string()); n],
                };
                let attempt = lookup_with_retries(source.as_ref(), &keys, &stats, &attempts, max_retries);
                let found = match tokio::time::timeout(timeout, attempt).await {
                    Ok(found) => found,
                    Err(_) => Err(format!(
                        "no answer within {timeout:?} (table.exec.async-lookup.timeout); table '{table}' is too slow or \
                         unreachable"
                    )),
                };
                match found {
                    Ok(matches) => positions
                        .iter()
                        .map(|p| Ok(p.map_or_else(|| RecordBatch::new_empty(schema.clone()), |p| matches[p].clone())))
                        .collect(),
                    Err(message) => vec![Err(message); n],
                }
            })
        }
    }

    fn dispatch(&mut self, all: bool) {
        let mut start = self.request();
        self.rows.dispatch(all, &mut start);
    }

    /// Emits the rows that may leave, then the watermarks they no longer hold back.
    fn emit_ready(&mut self, out: &mut Collector) -> Result<()> {
        let (cache, now) = (&mut self.cache, Instant::now());
        self.rows.collect(&mut |slot, found| remember(cache, now, slot, found))?;
        let ready = self.rows.take_ready();
        if let Some(batch) = self.join(ready.rows)? {
            out.batch(batch);
        }
        for watermark in ready.watermarks {
            out.watermark(watermark);
        }
        Ok(())
    }

    /// Waits for one request to finish (sending everything queued first).
    async fn receive_one(&mut self) -> Result<()> {
        let mut start = self.request();
        let (cache, now) = (&mut self.cache, Instant::now());
        self.rows.collect_one(&mut start, &mut |slot, found| remember(cache, now, slot, found)).await
    }

    /// The output rows of finished slots, in their order.
    fn join(&mut self, slots: Vec<HeldRow<Ask, Found>>) -> Result<Option<RecordBatch>> {
        if slots.is_empty() {
            return Ok(None);
        }
        let mut inputs = Vec::with_capacity(slots.len());
        let mut matches = Vec::with_capacity(slots.len());
        for slot in slots {
            match slot.result.expect("finished") {
                Ok(found) => {
                    inputs.push(slot.row);
                    matches.push(found);
                }
                Err(message) => {
                    return Err(OperatorError::config(
                        format!("lookup join on table '{}'", self.table),
                        format!(
                            "the lookup failed after {} attempt(s): {message} (raise 'lookup.max-retries' to ride out \
                             longer outages)",
                            slot.attempts.load(Ordering::Relaxed)
                        ),
                    ))
                }
            }
        }
        let inputs = arrow::compute::concat_batches(&self.input, &inputs).map_err(Self::arrow)?;
        let found = arrow::compute::concat_batches(&self.table_schema, &matches).map_err(Self::arrow)?;
        // Every (input row, matching row) pair, then the pairs the condition keeps.
        let (mut left, mut right) = (Vec::new(), Vec::new());
        let mut offset = 0u32;
        for (i, m) in matches.iter().enumerate() {
            for j in 0..m.num_rows() as u32 {
                left.push(i as u32);
                right.push(Some(offset + j));
            }
            offset += m.num_rows() as u32;
        }
        let keep = match &self.filter {
            Some(filter) if !left.is_empty() => {
                let pairs = self.build(&inputs, &found, &left, &right, false)?;
                let result = filter
                    .evaluate(&pairs)
                    .and_then(|v| v.into_array(pairs.num_rows()))
                    .map_err(|e| OperatorError::Evaluation(format!("lookup join condition: {e}")))?;
                let result = result
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .ok_or_else(|| OperatorError::InvalidPlan("the lookup join condition is not BOOLEAN".into()))?
                    .clone();
                (0..result.len()).map(|i| result.is_valid(i) && result.value(i)).collect()
            }
            _ => vec![true; left.len()],
        };
        let (mut out_left, mut out_right) = (Vec::new(), Vec::new());
        let mut pair = 0;
        for i in 0..inputs.num_rows() as u32 {
            let mut matched = false;
            while pair < left.len() && left[pair] == i {
                if keep[pair] {
                    out_left.push(i);
                    out_right.push(right[pair]);
                    matched = true;
                }
                pair += 1;
            }
            if !matched && self.left_outer {
                out_left.push(i);
                out_right.push(None);
            }
        }
        if out_left.is_empty() {
            return Ok(None);
        }
        self.build(&inputs, &found, &out_left, &out_right, true).map(Some)
    }

    /// Rows of `inputs` (their data columns) by `left` beside rows of `found` by `right`
    /// (NULLs where `None`), with the inputs' row kinds when `with_kind`.
    fn build(
        &self,
        inputs: &RecordBatch,
        found: &RecordBatch,
        left: &[u32],
        right: &[Option<u32>],
        with_kind: bool,
    ) -> Result<RecordBatch> {
        let left = UInt32Array::from(left.to_vec());
        let right = UInt32Array::from(right.to_vec());
        let mut columns = Vec::with_capacity(self.output.fields().len());
        for c in 0..self.data_columns {
            columns.push(arrow::compute::take(inputs.column(c), &left, None).map_err(Self::arrow)?);
        }
        for c in found.columns() {
            columns.push(arrow::compute::take(c, &right, None).map_err(Self::arrow)?);
        }
        let schema = if with_kind {
            if let Some(kind) = self.row_kind {
                columns.push(arrow::compute::take(inputs.column(kind), &left, None).map_err(Self::arrow)?);
            }
            self.output.clone()
        } else {
            self.joined.clone()
        };
        RecordBatch::try_new(schema, columns).map_err(Self::arrow)
    }
}

/// The key rows with `key` share a lookup by: its bytes in hex (one allocation per row,
/// no formatting machinery on this per-row path).
fn share_key(key: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(key.len() * 2);
    for b in key {
        text.push(char::from(HEX[usize::from(b >> 4)]));
        text.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    text
}

/// Keeps a fresh lookup's rows in the cache, when there is one.
fn remember(cache: &mut Option<LookupCache>, now: Instant, slot: &HeldRow<Ask, Found>, found: &Found) -> Result<()> {
    if let (Some(cache), Some((_, key)), Ok(rows)) = (cache.as_mut(), &slot.request, found) {
        cache.put(key, rows, now);
    }
    Ok(())
}

/// Asks `source` for `keys`, retrying retriable failures up to `max_retries` times.
async fn lookup_with_retries(
    source: &dyn LookupSource,
    keys: &RecordBatch,
    stats: &LookupStats,
    attempts: &AtomicU32,
    max_retries: u32,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let made = attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        LookupStats::bump(&stats.lookups, 1);
        match source.lookup(keys).await {
            Ok(found) if found.len() == keys.num_rows() => {
                let micros = started.elapsed().as_micros() as u64;
                stats.latencies.lock().unwrap_or_else(|e| e.into_inner()).record(micros);
                return Ok(found);
            }
            Ok(found) => return Err(format!("the table answered {} of {} keys", found.len(), keys.num_rows())),
            Err(LookupFailure { message, retriable }) if retriable && made < max_retries => {
                LookupStats::bump(&stats.retries, 1);
                tracing::warn!(attempt = made + 1, error = %message, "lookup failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(failure) => return Err(failure.message),
        }
    }
}

#[async_trait]
impl Operator for LookupJoin {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.rows.set_wake(ctx.wake.clone());
        let restored = std::mem::take(&mut self.restored);
        if !restored.is_empty() {
            tracing::info!(task = %ctx.task_name, table = %self.table, rows = restored.len(), "looking up restored rows again");
        }
        for (row, attempts) in restored {
            let ask = self.asks(&row)?.pop().flatten();
            self.admit(row, ask, attempts);
        }
        self.dispatch(true);
        Ok(())
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        for entry in init.entries() {
            for (row, meta) in AsyncRows::<Ask, Found>::decode_snapshot(&self.input, entry)? {
                let attempts = meta.get(..4).map_or(0, |b| u32::from_le_bytes(b.try_into().expect("four bytes")));
                self.restored.push((row, attempts));
            }
        }
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        while !self.accepts_input() {
            self.receive_one().await?;
            self.emit_ready(out)?;
        }
        let asks = self.asks(&batch)?;
        for (i, ask) in asks.into_iter().enumerate() {
            self.admit(batch.slice(i, 1), ask, 0);
        }
        self.dispatch(false);
        self.emit_ready(out)
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.dispatch(true);
        self.rows.watermark(watermark);
        self.emit_ready(out)
    }

    async fn on_barrier(&mut self, _barrier: Barrier, out: &mut Collector) -> Result<()> {
        self.emit_ready(out)
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        let entry = self.rows.snapshot(&self.input, &|_, attempts| attempts.to_le_bytes().to_vec())?;
        Ok(OperatorState::split(vec![entry]))
    }

    fn accepts_input(&self) -> bool {
        self.rows.accepts_input()
    }

    fn deadline(&self) -> Option<Instant> {
        self.rows.deadline()
    }

    async fn on_timer(&mut self, out: &mut Collector) -> Result<()> {
        if self.rows.linger_passed() {
            self.dispatch(true);
        }
        self.emit_ready(out)
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.dispatch(true);
        self.emit_ready(out)?;
        while !self.rows.is_empty() {
            self.receive_one().await?;
            self.emit_ready(out)?;
        }
        for watermark in self.rows.drain_watermarks() {
            out.watermark(watermark);
        }
        Ok(())
    }

    fn metrics(&self) -> Vec<Metric> {
        let name = |what: &str| format!("lookup.{}.{what}", self.table);
        let s = &self.stats;
        vec![
            metrics::counter(name("cache_hits"), s.hits.load(Ordering::Relaxed)),
            metrics::counter(name("cache_misses"), s.misses.load(Ordering::Relaxed)),
            metrics::gauge(name("cached_keys"), self.cache.as_ref().map_or(0, |c| c.len()) as f64),
            metrics::counter(name("requests"), s.lookups.load(Ordering::Relaxed)),
            metrics::counter(name("retries"), s.retries.load(Ordering::Relaxed)),
            metrics::gauge(name("held_rows"), self.rows.len() as f64),
            metrics::histogram(name("latency_us"), &s.latencies.lock().unwrap_or_else(|e| e.into_inner())),
        ]
    }
}

#[cfg(test)]
mod tests;
