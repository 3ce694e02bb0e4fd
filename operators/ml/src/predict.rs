//! The ML_PREDICT operator for providers that run in the task manager (the `local`
//! provider), through the [`Predictor`] trait: rows are batched up to `batch-size` with a linger (`batch-linger`, default
//! 5 ms), and a batch is flushed at once by a barrier, a watermark or the end of input.
//! Inference runs on the blocking thread pool; the model is loaded once per task.
//! Each output row is the input row followed by the model's OUTPUT columns.
//!
//! A row with a NULL feature follows `on-error`: `fail` stops the job naming the model and
//! the column; `skip` drops the row and counts it; `dead_letter` also writes it to
//! `dead-letter.topic` (`kafka:TOPIC`), exactly once by default (in the checkpoint's
//! Kafka transaction, committed when the checkpoint completes).

use std::collections::BTreeMap;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use sluice_proto::MlPredictSpec;
use tokio::time::Instant;

use super::local::OnnxModel;
use sluice_connectors::kafka::dead_letter::{
    row_json, DeadLetter, DeadLetterConfig, DeadLetterRestore, DeadLetterWriter,
};
use sluice_core::metrics::{self, LatencyHistogram, Metric};

/// A model a provider opened for one task: it scores batches of rows. Providers that run in
/// the task manager (`local`) implement it; ML_PREDICT calls it on the blocking pool.
pub trait Predictor: Send {
    /// Scores a batch of the model's INPUT columns (no NULLs); returns its OUTPUT columns.
    fn predict(&mut self, inputs: &RecordBatch) -> Result<Vec<ArrayRef>>;
}

/// Opens `model` of `provider` for one task, with its (resolved) options and schemas.
pub fn open_predictor(
    provider: &str,
    model: &str,
    options: &BTreeMap<String, String>,
    input: &SchemaRef,
    output: &SchemaRef,
) -> Result<Box<dyn Predictor>> {
    match provider {
        "local" => Ok(Box::new(OnnxModel::load(model, options, input, output)?)),
        other => Err(error(
            model,
            format!("the '{other}' provider cannot run in this build yet; ML_PREDICT is planned and validated only"),
        )),
    }
}
use sluice_core::options::parse_duration;
use sluice_core::schema::decode_schema;
use sluice_core::{Barrier, Collector, Operator, OperatorError, OperatorState, Result, StateInit, TaskContext};

/// Rows per inference call when the model does not say.
const DEFAULT_BATCH_SIZE: usize = 32;
/// How long a partial batch waits for more rows when the model does not say.
const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// Per-model counters and batch latencies, reported as the operator's metrics and logged
/// when the task ends.
#[derive(Debug, Default)]
struct ModelStats {
    rows: u64,
    batches: u64,
    skipped: u64,
    dead_letters: u64,
    latencies: LatencyHistogram,
}

/// A running ML_PREDICT subtask of a local model.
pub struct MlPredict {
    provider: String,
    model: String,
    options: BTreeMap<String, String>,
    descriptor: Vec<usize>,
    model_input: SchemaRef,
    model_output: SchemaRef,
    output: SchemaRef,
    batch_size: usize,
    linger: Duration,
    skip_bad_rows: bool,
    dead_letter: Option<DeadLetterConfig>,
    dead_letter_restore: DeadLetterRestore,
    dead_letters: Option<DeadLetterWriter>,
    predictor: Option<Box<dyn Predictor>>,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    oldest: Option<Instant>,
    stats: ModelStats,
}

fn error(model: &str, message: impl Into<String>) -> OperatorError {
    OperatorError::config(format!("model '{model}'"), message)
}

impl MlPredict {
    /// The operator for `spec`, whose model options (with secrets resolved) are `options`.
    pub fn new(spec: &MlPredictSpec, options: BTreeMap<String, String>) -> Result<Self> {
        let model = spec.model.clone();
        let batch_size = match options.get("batch-size") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| error(&model, format!("'batch-size' = '{v}' must be a positive integer")))?,
            None => DEFAULT_BATCH_SIZE,
        };
        let linger = match options.get("batch-linger") {
            Some(v) => parse_duration(v).map_err(|e| error(&model, format!("'batch-linger' = '{v}': {e}")))?,
            None => DEFAULT_LINGER,
        };
        let (skip_bad_rows, dead_letter) = match options.get("on-error").map(String::as_str) {
            None | Some("fail") => (false, None),
            Some("skip") => (true, None),
            Some("dead_letter") => {
                (true, Some(DeadLetterConfig::from_model_options(&options).map_err(|m| error(&model, m))?))
            }
            Some(other) => {
                return Err(error(
                    &model,
                    format!("'on-error' = '{other}' is not one of 'fail', 'skip', 'dead_letter'"),
                ))
            }
        };
        Ok(MlPredict {
            provider: spec.provider.clone(),
            model,
            options,
            descriptor: spec.descriptor_columns.iter().map(|&c| c as usize).collect(),
            model_input: decode_schema(&spec.model_input_schema)?,
            model_output: decode_schema(&spec.model_output_schema)?,
            output: decode_schema(&spec.output_schema)?,
            batch_size,
            linger,
            skip_bad_rows,
            dead_letter,
            dead_letter_restore: DeadLetterRestore::default(),
            dead_letters: None,
            predictor: None,
            buffer: Vec::new(),
            buffered_rows: 0,
            oldest: None,
            stats: ModelStats::default(),
        })
    }

    /// Drops (or, with `on-error` = `fail`, refuses) rows with a NULL feature.
    fn without_nulls(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut keep: Option<Vec<bool>> = None;
        for (i, &column) in self.descriptor.iter().enumerate() {
            let array = batch.column(column);
            if array.null_count() == 0 {
                continue;
            }
            if !self.skip_bad_rows {
                return Err(error(
                    &self.model,
                    format!(
                        "a row has NULL in INPUT column '{}', which the model cannot score (set 'on_error' = 'skip' to drop such rows)",
                        self.model_input.field(i).name()
                    ),
                ));
            }
            let keep = keep.get_or_insert_with(|| vec![true; batch.num_rows()]);
            for (row, k) in keep.iter_mut().enumerate() {
                *k &= array.is_valid(row);
            }
        }
        let Some(keep) = keep else { return Ok(batch) };
        self.stats.skipped += keep.iter().filter(|k| !**k).count() as u64;
        if let Some(writer) = &mut self.dead_letters {
            for row in keep.iter().enumerate().filter(|(_, k)| !**k).map(|(row, _)| row) {
                let null = self.descriptor.iter().position(|&c| batch.column(c).is_null(row)).unwrap_or_default();
                writer.write(&DeadLetter {
                    input: row_json(&batch.slice(row, 1))?,
                    error: format!("INPUT column '{}' is NULL", self.model_input.field(null).name()),
                    http_status: None,
                    attempts: 0,
                    source: format!("model {}", self.model),
                })?;
                self.stats.dead_letters += 1;
            }
        }
        arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))
            .map_err(|e| OperatorError::arrow("ML_PREDICT", e))
    }

    /// Scores everything buffered (all of it, or only whole batches) and emits it.
    async fn flush(&mut self, all: bool, out: &mut Collector) -> Result<()> {
        if self.buffered_rows >= self.batch_size || (all && self.buffered_rows > 0) {
            let buffered = match self.buffer.len() {
                1 => self.buffer.pop().expect("one batch"),
                _ => arrow::compute::concat_batches(&self.buffer[0].schema(), &self.buffer)
                    .map_err(|e| OperatorError::arrow("ML_PREDICT", e))?,
            };
            self.buffer.clear();
            let mut chunks = Vec::new();
            let mut offset = 0;
            while buffered.num_rows() - offset >= self.batch_size || (all && offset < buffered.num_rows()) {
                let take = self.batch_size.min(buffered.num_rows() - offset);
                chunks.push((offset, take));
                offset += take;
            }
            if offset > 0 {
                out.batch(self.predict(buffered.slice(0, offset), &chunks).await?);
            }
            self.buffered_rows = buffered.num_rows() - offset;
            if self.buffered_rows > 0 {
                self.buffer.push(buffered.slice(offset, self.buffered_rows));
            }
        }
        self.oldest = if self.buffered_rows > 0 { self.oldest.or_else(|| Some(Instant::now())) } else { None };
        Ok(())
    }

    /// Runs the model on each `(offset, rows)` chunk of `rows` (one call per chunk, of at
    /// most `batch_size` rows) and returns `rows` with the model's outputs: one batch, and
    /// one hand-off of the worker thread for all the chunks.
    async fn predict(&mut self, rows: RecordBatch, chunks: &[(usize, usize)]) -> Result<RecordBatch> {
        let features = rows.project(&self.descriptor).map_err(|e| OperatorError::arrow("ML_PREDICT", e))?;
        let mut predictor = self.predictor.take().ok_or_else(|| error(&self.model, "the model is not loaded"))?;
        let chunks = chunks.to_vec();
        let run = move || {
            let mut results = Vec::with_capacity(chunks.len());
            for &(offset, take) in &chunks {
                let started = std::time::Instant::now();
                let result = predictor.predict(&features.slice(offset, take));
                results.push((result, started.elapsed(), take));
            }
            (predictor, results)
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let (predictor, results) = if multi_thread {
            // Inference blocks: the worker hands its other tasks to another thread first,
            // without the cost of a hop to the blocking pool.
            tokio::task::block_in_place(run)
        } else {
            tokio::task::spawn_blocking(run).await.map_err(|e| error(&self.model, format!("inference stopped: {e}")))?
        };
        self.predictor = Some(predictor);
        let mut outputs: Vec<Vec<ArrayRef>> = Vec::with_capacity(results.len());
        for (result, elapsed, take) in results {
            outputs.push(result?);
            self.stats.latencies.record(elapsed.as_micros() as u64);
            self.stats.rows += take as u64;
            self.stats.batches += 1;
        }
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        match outputs.as_slice() {
            [one] => columns.extend(one.iter().cloned()),
            _ => {
                for c in 0..outputs.first().map_or(0, Vec::len) {
                    let parts: Vec<&dyn arrow::array::Array> = outputs.iter().map(|o| o[c].as_ref()).collect();
                    columns.push(
                        arrow::compute::concat(&parts).map_err(|e| OperatorError::arrow("ML_PREDICT output", e))?,
                    );
                }
            }
        }
        RecordBatch::try_new(self.output.clone(), columns).map_err(|e| OperatorError::arrow("ML_PREDICT output", e))
    }
}

#[async_trait]
impl Operator for MlPredict {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        let (provider, model, options, input, output) = (
            self.provider.clone(),
            self.model.clone(),
            self.options.clone(),
            self.model_input.clone(),
            self.model_output.clone(),
        );
        let loaded = tokio::task::spawn_blocking(move || open_predictor(&provider, &model, &options, &input, &output))
            .await
            .map_err(|e| error(&self.model, format!("loading stopped: {e}")))??;
        tracing::info!(task = %ctx.task_name, model = %self.model, "model ready");
        self.predictor = Some(loaded);
        if let Some(config) = &self.dead_letter {
            self.dead_letters =
                Some(DeadLetterWriter::open(config, ctx, std::mem::take(&mut self.dead_letter_restore)).await?);
        }
        Ok(())
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        self.dead_letter_restore = DeadLetterRestore::from_init(&init);
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let batch = self.without_nulls(batch)?;
        if let Some(writer) = self.dead_letters.as_mut().filter(|w| w.should_send()) {
            writer.send_queued().await?;
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.buffered_rows += batch.num_rows();
        self.buffer.push(batch);
        self.flush(self.linger.is_zero(), out).await
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        // Rows before the watermark leave first.
        self.flush(true, out).await?;
        out.watermark(watermark);
        Ok(())
    }

    async fn on_barrier(&mut self, _barrier: Barrier, out: &mut Collector) -> Result<()> {
        self.flush(true, out).await
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        DeadLetterWriter::snapshot_of(&mut self.dead_letters, checkpoint_id, OperatorState::default()).await
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        DeadLetterWriter::commit_of(&mut self.dead_letters, checkpoint_id).await
    }

    async fn stop_with_savepoint(&mut self) -> Result<()> {
        DeadLetterWriter::stop_of(&mut self.dead_letters).await
    }

    fn metrics(&self) -> Vec<Metric> {
        let name = |what: &str| format!("model.{}.{what}", self.model);
        vec![
            metrics::counter(name("rows"), self.stats.rows),
            metrics::counter(name("batches"), self.stats.batches),
            metrics::counter(name("skipped"), self.stats.skipped),
            metrics::counter(name("dead_letters"), self.stats.dead_letters),
            metrics::histogram(name("latency_us"), &self.stats.latencies),
        ]
    }

    fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.linger)
    }

    async fn on_timer(&mut self, out: &mut Collector) -> Result<()> {
        self.flush(true, out).await
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.flush(true, out).await?;
        if let Some(writer) = &mut self.dead_letters {
            writer.finish().await?;
        }
        tracing::info!(
            model = %self.model,
            rows = self.stats.rows,
            batches = self.stats.batches,
            skipped = self.stats.skipped,
            p50_us = self.stats.latencies.quantile(0.5),
            p99_us = self.stats.latencies.quantile(0.99),
            "model statistics"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fraud_schemas, model_options};
    use arrow::array::Float64Array;
    use arrow::datatypes::Schema;
    use sluice_core::harness::{Build, Harness};
    use sluice_core::schema::encode_schema;
    use sluice_core::Message;
    use std::sync::Arc;

    /// In the harness: with a long linger, rows wait for a full batch, but a barrier
    /// flushes them before it passes (a checkpoint never waits for the model), and the
    /// scores equal the model's own on the same features.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_barrier_flushes_the_partial_batch_and_scores_match_the_model() {
        let (features, model_output) = fraud_schemas();
        let mut fields = features.fields().to_vec();
        fields.extend(model_output.fields().iter().cloned());
        let output = Arc::new(Schema::new(fields));
        let spec = MlPredictSpec {
            model: "fraud".into(),
            provider: "local".into(),
            input_schema: encode_schema(&features),
            descriptor_columns: (0..6).collect(),
            model_input_schema: encode_schema(&features),
            model_output_schema: encode_schema(&model_output),
            output_schema: encode_schema(&output),
            ..Default::default()
        };
        let mut options = model_options("fraud_classifier.onnx");
        let direct_options = options.clone();
        options.insert("batch-linger".into(), "1h".into());
        let build: Build = Arc::new(move || Ok(Box::new(MlPredict::new(&spec, options.clone())?) as Box<dyn Operator>));
        let mut h = Harness::start(build.clone(), features.clone(), None, 1).await.unwrap();
        let rows = "900.0 2 13 30 XX 12\n20.0 14 2 50 US 2\n1500.5 3 7 22 FR 18";
        h.push(rows).await.unwrap();
        assert!(h.rows_of(0).is_empty(), "3 rows of a 32-row batch wait for the linger");
        h.checkpoint(1).await.unwrap();
        let out = h.output(0);
        assert!(matches!(out.last(), Some(Message::Barrier(_))), "the barrier passes after the rows");
        let scored: Vec<f64> = out
            .iter()
            .filter_map(|m| if let Message::Data(b) = m { Some(b.clone()) } else { None })
            .flat_map(|b| b.column(6).as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec())
            .collect();
        // The model itself, on the same features.
        let mut model = open_predictor("local", "fraud", &direct_options, &features, &model_output).unwrap();
        let direct = model.predict(&h.rows(rows).unwrap()).unwrap();
        let direct = direct[0].as_any().downcast_ref::<Float64Array>().unwrap().values().to_vec();
        assert_eq!(scored, direct);
    }
}
