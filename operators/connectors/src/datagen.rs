//! The `datagen` source, with Apache Flink's options: `number-of-rows`, `rows-per-second`,
//! and per field `fields.<f>.kind` (`random` | `sequence`), `start`/`end` (sequence),
//! `min`/`max` (random numbers), `length` (random strings), `max-past` (random timestamps)
//! and `null-rate`.
//!
//! Row `i` of the table is a pure function of `i` and the field names, and the rows are
//! dealt to subtasks in [`Lane`]s, so a job yields the same rows at any parallelism.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    Int8Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use crate::lanes::Lane;
use sluice_core::options::Options;
use sluice_core::rate::RateLimiter;
use sluice_core::{OperatorError, OperatorState, Result, Source, SourcePoll, StateInit, TaskContext};

/// Flink's default `rows-per-second`.
pub const DEFAULT_ROWS_PER_SECOND: f64 = 10_000.0;
const DEFAULT_STRING_LENGTH: usize = 100;

/// How one field is generated.
#[derive(Debug, Clone, PartialEq)]
enum FieldKind {
    Random { min: Option<f64>, max: Option<f64>, length: usize, max_past_ms: u64 },
    Sequence { start: i64, end: i64 },
}

#[derive(Debug, Clone)]
struct FieldGen {
    data_type: DataType,
    kind: FieldKind,
    null_rate: f64,
    seed: u64,
}

/// Parsed `datagen` options.
#[derive(Debug, Clone)]
pub struct DatagenConfig {
    schema: SchemaRef,
    total_rows: Option<u64>,
    rows_per_second: f64,
    fields: Vec<FieldGen>,
}

impl DatagenConfig {
    /// Reads and validates the options of a datagen table with `schema`.
    pub fn parse(options: &mut Options<'_>, schema: SchemaRef) -> Result<Self> {
        let number_of_rows = options.u64("number-of-rows")?;
        let rows_per_second: f64 =
            options.parse("rows-per-second", "a positive number")?.unwrap_or(DEFAULT_ROWS_PER_SECOND);
        if rows_per_second <= 0.0 || !rows_per_second.is_finite() {
            return Err(options.error("option 'rows-per-second' must be a positive number"));
        }
        options.declare("scan.parallelism");
        let mut fields = Vec::new();
        let mut sequence_rows: Option<u64> = None;
        for field in schema.fields() {
            let name = field.name();
            let key = |suffix: &str| format!("fields.{name}.{suffix}");
            let kind = options.choice(&key("kind"), &["random", "sequence"])?.unwrap_or_else(|| "random".to_string());
            check_type(options, name, field.data_type())?;
            let null_rate: f64 = options.parse(&key("null-rate"), "a number between 0 and 1")?.unwrap_or(0.0);
            if !(0.0..=1.0).contains(&null_rate) {
                return Err(options.error(format!("option '{}' must be between 0 and 1", key("null-rate"))));
            }
            let kind = if kind == "sequence" {
                let start: i64 = options
                    .parse(&key("start"), "an integer")?
                    .ok_or_else(|| options.error(format!("sequence field '{name}' needs '{}'", key("start"))))?;
                let end: i64 = options
                    .parse(&key("end"), "an integer")?
                    .ok_or_else(|| options.error(format!("sequence field '{name}' needs '{}'", key("end"))))?;
                if end < start {
                    return Err(options.error(format!(
                        "'{}' ({end}) is before '{}' ({start})",
                        key("end"),
                        key("start")
                    )));
                }
                if !matches!(
                    field.data_type(),
                    DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Utf8
                ) {
                    return Err(options.error(format!(
                        "field '{name}' of type {} cannot be a sequence; sequences are integers or strings",
                        field.data_type()
                    )));
                }
                let count = (end as i128 - start as i128 + 1) as u64;
                sequence_rows = Some(sequence_rows.map_or(count, |c| c.min(count)));
                FieldKind::Sequence { start, end }
            } else {
                let min: Option<f64> = options.parse(&key("min"), "a number")?;
                let max: Option<f64> = options.parse(&key("max"), "a number")?;
                if let (Some(lo), Some(hi)) = (min, max) {
                    if hi < lo {
                        return Err(options.error(format!("'{}' ({hi}) is below '{}' ({lo})", key("max"), key("min"))));
                    }
                }
                let length = options.u64(&key("length"))?.map_or(DEFAULT_STRING_LENGTH, |l| l as usize);
                let max_past_ms = options.duration(&key("max-past"))?.map_or(0, |d| d.as_millis() as u64);
                FieldKind::Random { min, max, length, max_past_ms }
            };
            fields.push(FieldGen {
                data_type: field.data_type().clone(),
                kind,
                null_rate,
                seed: xxhash_rust::xxh3::xxh3_64(name.as_bytes()),
            });
        }
        let total_rows = match (number_of_rows, sequence_rows) {
            (Some(n), Some(s)) => Some(n.min(s)),
            (n, s) => n.or(s),
        };
        Ok(DatagenConfig { schema, total_rows, rows_per_second, fields })
    }

    /// Total rows the table produces across all subtasks; `None` when unbounded.
    pub fn total_rows(&self) -> Option<u64> {
        self.total_rows
    }
}

fn check_type(options: &Options<'_>, name: &str, data_type: &DataType) -> Result<()> {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Boolean
        | DataType::Utf8
        | DataType::Date32
        | DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(()),
        other => Err(options.error(format!(
            "datagen cannot generate field '{name}' of type {other}; supported: TINYINT, SMALLINT, INT, \
             BIGINT, FLOAT, DOUBLE, BOOLEAN, STRING, DATE, TIMESTAMP(3)"
        ))),
    }
}

/// A running datagen subtask.
pub struct DatagenSource {
    config: DatagenConfig,
    batch_rows: usize,
    parallelism: u64,
    /// The splits this subtask produces, read round-robin a batch at a time.
    splits: Vec<Lane>,
    /// Splits restored from a checkpoint (`None`: start fresh).
    restored: Option<Vec<Lane>>,
    next_split: usize,
    limiter: Option<RateLimiter>,
    idle_wait: Duration,
}

impl DatagenSource {
    /// A source over `config` producing batches of at most `batch_rows` rows.
    pub fn new(config: DatagenConfig, batch_rows: usize) -> Self {
        DatagenSource {
            config,
            batch_rows,
            parallelism: 1,
            splits: Vec::new(),
            restored: None,
            next_split: 0,
            limiter: None,
            idle_wait: Duration::from_millis(20),
        }
    }

    /// Rows produced so far by this subtask's splits (their checkpointable position).
    pub fn produced(&self) -> u64 {
        self.splits.iter().map(|s| s.position).sum()
    }

    fn generate(&self, split: &Lane, count: usize) -> Result<RecordBatch> {
        let rows: Vec<u64> = (0..count as u64).map(|k| split.item(k)).collect();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let columns: Vec<ArrayRef> = self.config.fields.iter().map(|f| generate_column(f, &rows, now_ms)).collect();
        RecordBatch::try_new(self.config.schema.clone(), columns)
            .map_err(|e| OperatorError::arrow("datagen cannot build a batch", e))
    }
}

#[async_trait]
impl Source for DatagenSource {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        if init.restored {
            self.restored = Some(init.entries().iter().map(|e| Lane::decode(e, "datagen")).collect::<Result<_>>()?);
        }
        Ok(())
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.parallelism = u64::from(ctx.parallelism.max(1));
        self.splits = match self.restored.take() {
            Some(splits) => {
                let positions: Vec<String> =
                    splits.iter().map(|s| format!("split {}/{} at row {}", s.index, s.count, s.position)).collect();
                tracing::info!(
                    task = %ctx.task_name,
                    attempt = ctx.attempt,
                    positions = %positions.join(", "),
                    "datagen resumes from its checkpoint"
                );
                splits
            }
            None => vec![Lane::fresh(ctx.subtask, ctx.parallelism)],
        };
        self.limiter = Some(RateLimiter::new(self.config.rows_per_second / self.parallelism as f64));
        Ok(())
    }

    async fn poll_next(&mut self) -> Result<SourcePoll> {
        let total = self.config.total_rows;
        let Some(offset) = (0..self.splits.len())
            .map(|k| (self.next_split + k) % self.splits.len())
            .find(|&i| self.splits[i].remaining(total) > 0)
        else {
            return Ok(SourcePoll::Finished);
        };
        let want = self.splits[offset].remaining(total).min(self.batch_rows as u64);
        let granted = match self.limiter.as_mut() {
            Some(limiter) => {
                let (granted, wait) = limiter.take_up_to(want);
                if granted == 0 {
                    tokio::time::sleep(wait.min(self.idle_wait)).await;
                    return Ok(SourcePoll::Idle);
                }
                granted
            }
            None => want,
        };
        let batch = self.generate(&self.splits[offset], granted as usize)?;
        self.splits[offset].position += granted;
        self.next_split = (offset + 1) % self.splits.len();
        Ok(SourcePoll::Batch(batch))
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        Ok(OperatorState::split(self.splits.iter().map(Lane::encode).collect()))
    }
}

/// SplitMix64: a fast, well-mixed hash of a 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn random_int(h: u64, min: i128, max: i128) -> i128 {
    let span = (max - min + 1) as u128;
    min + ((h as u128 * span) >> 64) as i128
}

fn generate_column(field: &FieldGen, rows: &[u64], now_ms: i64) -> ArrayRef {
    let hash = |row: u64| mix(field.seed ^ mix(row));
    let is_null = |row: u64| field.null_rate > 0.0 && unit(mix(hash(row) ^ 0x6E75_6C6C)) < field.null_rate;
    macro_rules! ints {
        ($builder:ty, $t:ty) => {{
            let mut b = <$builder>::with_capacity(rows.len());
            for &row in rows {
                if is_null(row) {
                    b.append_null();
                    continue;
                }
                let v = match &field.kind {
                    FieldKind::Sequence { start, .. } => (*start as i128 + row as i128) as $t,
                    FieldKind::Random { min, max, .. } => {
                        let lo = min.map_or(<$t>::MIN as i128, |m| m as i128);
                        let hi = max.map_or(<$t>::MAX as i128, |m| m as i128);
                        random_int(hash(row), lo, hi) as $t
                    }
                };
                b.append_value(v);
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    macro_rules! floats {
        ($builder:ty, $t:ty) => {{
            let mut b = <$builder>::with_capacity(rows.len());
            for &row in rows {
                if is_null(row) {
                    b.append_null();
                    continue;
                }
                let (lo, hi) = match &field.kind {
                    FieldKind::Random { min, max, .. } => (min.unwrap_or(0.0), max.unwrap_or(<$t>::MAX as f64)),
                    FieldKind::Sequence { .. } => (0.0, 1.0),
                };
                b.append_value((lo + unit(hash(row)) * (hi - lo)) as $t);
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match &field.data_type {
        DataType::Int8 => ints!(Int8Builder, i8),
        DataType::Int16 => ints!(Int16Builder, i16),
        DataType::Int32 => ints!(Int32Builder, i32),
        DataType::Int64 => ints!(Int64Builder, i64),
        DataType::Float32 => floats!(Float32Builder, f32),
        DataType::Float64 => floats!(Float64Builder, f64),
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(rows.len());
            for &row in rows {
                if is_null(row) {
                    b.append_null();
                } else {
                    b.append_value(hash(row) & 1 == 1);
                }
            }
            Arc::new(b.finish())
        }
        DataType::Utf8 => {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
            let mut text = String::new();
            for &row in rows {
                if is_null(row) {
                    b.append_null();
                    continue;
                }
                text.clear();
                match &field.kind {
                    FieldKind::Sequence { start, .. } => text.push_str(&(*start as i128 + row as i128).to_string()),
                    FieldKind::Random { length, .. } => {
                        let mut h = hash(row);
                        for _ in 0..*length {
                            h = mix(h);
                            text.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
                        }
                    }
                }
                b.append_value(&text);
            }
            Arc::new(b.finish())
        }
        DataType::Date32 => {
            let mut b = Date32Builder::with_capacity(rows.len());
            let today = (now_ms / 86_400_000) as i32;
            for &row in rows {
                if is_null(row) {
                    b.append_null();
                } else {
                    let past_days = match &field.kind {
                        FieldKind::Random { max_past_ms, .. } => {
                            (unit(hash(row)) * (*max_past_ms as f64 / 86_400_000.0)) as i32
                        }
                        FieldKind::Sequence { .. } => 0,
                    };
                    b.append_value(today - past_days);
                }
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            let mut b = TimestampMillisecondBuilder::with_capacity(rows.len());
            for &row in rows {
                if is_null(row) {
                    b.append_null();
                } else {
                    let past = match &field.kind {
                        FieldKind::Random { max_past_ms, .. } => (unit(hash(row)) * *max_past_ms as f64) as i64,
                        FieldKind::Sequence { .. } => 0,
                    };
                    b.append_value(now_ms - past);
                }
            }
            Arc::new(b.finish().with_timezone_opt(tz.clone()))
        }
        other => unreachable!("datagen type {other} was rejected when the options were parsed"),
    }
}

/// The `datagen` connector.
pub struct Datagen;

impl crate::registry::Connector for Datagen {
    fn name(&self) -> &'static str {
        "datagen"
    }

    fn bounded(&self, spec: &sluice_proto::ConnectorSpec) -> bool {
        spec.options.contains_key("number-of-rows")
    }

    fn how_to_bound(&self) -> Option<&'static str> {
        Some("give it 'number-of-rows'")
    }

    fn roles(&self) -> &'static [crate::Role] {
        &[crate::Role::Source]
    }

    fn source(
        &self,
        _spec: &sluice_proto::ConnectorSpec,
        options: &mut Options<'_>,
        schema: SchemaRef,
    ) -> Result<Box<dyn crate::registry::SourceFactory>> {
        Ok(Box::new(DatagenConfig::parse(options, schema)?))
    }
}

impl crate::registry::SourceFactory for DatagenConfig {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn Source> {
        Box::new(DatagenSource::new(*self, batch_rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Int64Type, Schema};
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)], schema: SchemaRef) -> Result<DatagenConfig> {
        let values: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut options = Options::new("table 't'", &values);
        let config = DatagenConfig::parse(&mut options, schema)?;
        options.finish()?;
        Ok(config)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]))
    }

    async fn run(config: &DatagenConfig, subtask: u32, parallelism: u32) -> Vec<RecordBatch> {
        let mut source = DatagenSource::new(config.clone(), 100);
        let mut ctx = TaskContext::single("datagen");
        ctx.subtask = subtask;
        ctx.parallelism = parallelism;
        source.open(&ctx).await.unwrap();
        let mut out = Vec::new();
        loop {
            match source.poll_next().await.unwrap() {
                SourcePoll::Batch(b) => out.push(b),
                SourcePoll::Idle | SourcePoll::SplitsAssigned(_) => {}
                SourcePoll::Finished => return out,
            }
        }
    }

    /// Runs two subtasks for `polls` polls each, snapshots them, and restores their splits at
    /// parallelism 3: the rows before and after the snapshot are every row exactly once.
    #[tokio::test]
    async fn restores_positions_at_another_parallelism() {
        let cfg = config(
            &[
                ("number-of-rows", "1000"),
                ("rows-per-second", "100000000"),
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "0"),
                ("fields.id.end", "999"),
            ],
            schema(),
        )
        .unwrap();
        let ids = |b: &RecordBatch| b.column(0).as_primitive::<Int64Type>().values().to_vec();
        let mut seen = Vec::new();
        let mut entries = Vec::new();
        for subtask in 0..2 {
            let mut source = DatagenSource::new(cfg.clone(), 100);
            let mut ctx = TaskContext::single("datagen");
            ctx.subtask = subtask;
            ctx.parallelism = 2;
            source.open(&ctx).await.unwrap();
            for _ in 0..(subtask + 1) * 2 {
                if let SourcePoll::Batch(b) = source.poll_next().await.unwrap() {
                    seen.extend(ids(&b));
                }
            }
            entries.extend(source.snapshot_state(1).await.unwrap().entries(OperatorState::DEFAULT_LIST).to_vec());
        }
        assert!(!seen.is_empty() && seen.len() < 1000, "{} rows before the snapshot", seen.len());
        for subtask in 0..3u32 {
            let mut source = DatagenSource::new(cfg.clone(), 100);
            let mine = entries.iter().skip(subtask as usize).step_by(3).cloned().collect();
            source.initialize_state(StateInit::restoring(OperatorState::split(mine))).await.unwrap();
            let mut ctx = TaskContext::single("datagen");
            ctx.subtask = subtask;
            ctx.parallelism = 3;
            source.open(&ctx).await.unwrap();
            loop {
                match source.poll_next().await.unwrap() {
                    SourcePoll::Batch(b) => seen.extend(ids(&b)),
                    SourcePoll::Idle | SourcePoll::SplitsAssigned(_) => {}
                    SourcePoll::Finished => break,
                }
            }
        }
        seen.sort();
        assert_eq!(seen, (0..1000).collect::<Vec<i64>>());
    }

    #[tokio::test]
    async fn same_rows_at_any_parallelism() {
        let cfg = config(
            &[
                ("number-of-rows", "1000"),
                ("rows-per-second", "100000000"),
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "1"),
                ("fields.id.end", "5000"),
                ("fields.v.min", "0"),
                ("fields.v.max", "9"),
                ("fields.s.length", "5"),
            ],
            schema(),
        )
        .unwrap();
        let rows_of = |batches: Vec<RecordBatch>| {
            let mut rows = Vec::new();
            for b in batches {
                let ids = b.column(0).as_primitive::<Int64Type>();
                let vs = b.column(1).as_primitive::<arrow::datatypes::Int32Type>();
                let ss = b.column(2).as_string::<i32>();
                for i in 0..b.num_rows() {
                    assert!((0..=9).contains(&vs.value(i)));
                    assert_eq!(ss.value(i).len(), 5);
                    rows.push((ids.value(i), vs.value(i), ss.value(i).to_string()));
                }
            }
            rows
        };
        let mut single = rows_of(run(&cfg, 0, 1).await);
        let mut split = rows_of(run(&cfg, 0, 3).await);
        split.extend(rows_of(run(&cfg, 1, 3).await));
        split.extend(rows_of(run(&cfg, 2, 3).await));
        single.sort();
        split.sort();
        assert_eq!(single.len(), 1000);
        assert_eq!(single, split);
        assert_eq!(single.first().unwrap().0, 1);
        assert_eq!(single.last().unwrap().0, 1000);
    }

    #[tokio::test]
    async fn sequence_bounds_the_table() {
        let cfg = config(
            &[
                ("fields.id.kind", "sequence"),
                ("fields.id.start", "10"),
                ("fields.id.end", "19"),
                ("rows-per-second", "1000000"),
            ],
            schema(),
        )
        .unwrap();
        assert_eq!(cfg.total_rows(), Some(10));
        let total: usize = run(&cfg, 0, 1).await.iter().map(|b| b.num_rows()).sum();
        assert_eq!(total, 10);
    }

    #[test]
    fn null_rate_produces_nulls() {
        let field = FieldGen {
            data_type: DataType::Int64,
            kind: FieldKind::Random { min: None, max: None, length: 0, max_past_ms: 0 },
            null_rate: 0.5,
            seed: 1,
        };
        let rows: Vec<u64> = (0..1000).collect();
        let nulls = generate_column(&field, &rows, 0).null_count();
        assert!((350..650).contains(&nulls), "{nulls} nulls of 1000 at rate 0.5");
    }

    #[test]
    fn bad_options_are_explained() {
        let err = config(&[("fields.id.kind", "sequence")], schema()).unwrap_err().to_string();
        assert!(err.contains("needs 'fields.id.start'"), "{err}");
        let err = config(&[("rows-per-second", "-1")], schema()).unwrap_err().to_string();
        assert!(err.contains("positive"), "{err}");
        let err = config(&[("fields.v.min", "9"), ("fields.v.max", "1")], schema()).unwrap_err().to_string();
        assert!(err.contains("below"), "{err}");
    }
}
