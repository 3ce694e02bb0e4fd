//! The ML_PREDICT operator of `generic-python` models, on the async machinery of
//! [`AsyncRows`]: rows are grouped into batches of `batch-size` (sent early after
//! `batch-linger`, or by a watermark or the end of input), at most
//! `max-concurrent-operations` batches are in flight, and the task loop never waits for
//! Python. A barrier passes at once: the snapshot holds the rows still waiting (with their
//! attempts), and a restore sends them again.
//!
//! Each output row is the input row followed by the model's OUTPUT columns. A row whose
//! prediction failed (a Python exception, a breach of the output contract, or a batch that
//! kept timing out or crashing the worker) follows `on-error`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use sluice_connectors::kafka::dead_letter::{row_json, DeadLetter, DeadLetterRestore, DeadLetterWriter};
use sluice_core::async_rows::{AsyncRows, AsyncSettings, HeldRow, Work};
use sluice_core::metrics::{self, Metric};
use sluice_core::schema::decode_schema;
use sluice_core::state::{OperatorState, StateInit};
use sluice_core::{Barrier, Collector, Operator, OperatorError, Result, TaskContext};
use sluice_proto::MlPredictSpec;
use tokio::time::Instant;

use super::config::{OnError, PythonConfig};
use super::package::package_root;
use super::supervisor::{Outcome, PythonStats, RowFailure, Supervisor, SupervisorSpec};
use super::worker::{Worker, WorkerSpec};

/// A run's features: the model's INPUT columns of its rows.
type Features = RecordBatch;

/// A running ML_PREDICT subtask of a Python model.
pub struct PythonPredict {
    config: PythonConfig,
    descriptor: Vec<usize>,
    /// The input rows' schema.
    input: SchemaRef,
    /// The model's INPUT columns.
    model_input: SchemaRef,
    /// The model's OUTPUT columns.
    model_output: SchemaRef,
    /// Input columns then OUTPUT columns.
    output: SchemaRef,
    rows: AsyncRows<Features, Outcome>,
    supervisor: Option<Supervisor>,
    stats: Arc<PythonStats>,
    skipped: u64,
    dead_letters: Option<DeadLetterWriter>,
    dead_letter_count: u64,
    dead_letter_restore: DeadLetterRestore,
    restored: Vec<(RecordBatch, u32)>,
}

/// The work of one batch: the runs' features go to the worker together, and its outcome
/// is cut back into one per run.
fn request(supervisor: &Supervisor, schema: &SchemaRef) -> impl FnMut(Vec<&Features>, Arc<AtomicU32>) -> Work<Outcome> {
    let (supervisor, schema) = (supervisor.clone(), schema.clone());
    move |runs, attempts| {
        let lengths: Vec<usize> = runs.iter().map(|r| r.num_rows()).collect();
        let batch = match runs.as_slice() {
            [run] => Ok((*run).clone()),
            _ => arrow::compute::concat_batches(&schema, runs),
        };
        let supervisor = supervisor.clone();
        Box::pin(async move {
            let outcome = match batch {
                Ok(batch) => supervisor.predict(batch, attempts).await,
                Err(e) => Outcome::Failed(RowFailure {
                    message: format!("cannot assemble a batch: {e}"),
                    attempts: 0,
                    fatal: true,
                }),
            };
            let mut offset = 0;
            lengths
                .into_iter()
                .map(|len| {
                    let run = outcome.slice(offset, len);
                    offset += len;
                    run
                })
                .collect()
        })
    }
}

impl PythonPredict {
    /// The operator for `spec` of a `generic-python` model, whose options (secrets resolved) are `options`.
    pub fn new(spec: &MlPredictSpec, options: &BTreeMap<String, String>) -> Result<Self> {
        let config = PythonConfig::from_options(&spec.model, options)?;
        let model_input = decode_schema(&spec.model_input_schema)?;
        let model_output = decode_schema(&spec.model_output_schema)?;
        let output = decode_schema(&spec.output_schema)?;
        let input_columns = output.fields().len() - model_output.fields().len();
        let input = Arc::new(Schema::new(output.fields()[..input_columns].to_vec()));
        let descriptor: Vec<usize> = spec.descriptor_columns.iter().map(|&c| c as usize).collect();
        // The features carry the model's INPUT names, as the Python rows read them.
        let model_input = Arc::new(Schema::new(
            descriptor
                .iter()
                .zip(model_input.fields())
                .map(|(&c, declared)| input.field(c).clone().with_name(declared.name()))
                .collect::<Vec<_>>(),
        ));
        let settings = AsyncSettings {
            ordered: config.ordered,
            batch_size: config.batch_size,
            linger: config.linger,
            max_in_flight: config.max_in_flight,
        };
        Ok(PythonPredict {
            descriptor,
            input,
            model_input,
            model_output,
            output,
            rows: AsyncRows::new(settings, Arc::new(tokio::sync::Notify::new())),
            supervisor: None,
            stats: Arc::new(PythonStats::default()),
            skipped: 0,
            dead_letters: None,
            dead_letter_count: 0,
            dead_letter_restore: DeadLetterRestore::default(),
            restored: Vec::new(),
            config,
        })
    }

    fn arrow(e: arrow::error::ArrowError) -> OperatorError {
        OperatorError::arrow("ML_PREDICT", e)
    }

    /// The features of `batch`'s rows, named as the model's INPUT columns.
    fn features(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = self.descriptor.iter().map(|&c| batch.column(c).clone()).collect();
        RecordBatch::try_new(self.model_input.clone(), columns).map_err(Self::arrow)
    }

    /// Holds `batch`'s rows in runs, cut where the batch being filled for the worker ends.
    fn admit(&mut self, batch: &RecordBatch, attempts: u32) -> Result<()> {
        let features = self.features(batch)?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = self.rows.room().min(batch.num_rows() - offset);
            self.rows.admit_run(batch.slice(offset, len), features.slice(offset, len), attempts);
            offset += len;
        }
        Ok(())
    }

    fn dispatch(&mut self, all: bool) {
        let Some(supervisor) = self.supervisor.clone() else { return };
        self.rows.dispatch(all, &mut request(&supervisor, &self.model_input));
    }

    async fn receive_one(&mut self) -> Result<()> {
        let supervisor = self.supervisor.clone().ok_or_else(|| self.config.error("the model is not open"))?;
        self.rows.collect_one(&mut request(&supervisor, &self.model_input), &mut |_, _| Ok(())).await
    }

    /// Emits the rows that may leave, then the watermarks they no longer hold back.
    fn emit_ready(&mut self, out: &mut Collector) -> Result<()> {
        self.rows.collect(&mut |_, _| Ok(()))?;
        let ready = self.rows.take_ready();
        if let Some(batch) = self.shape(ready.rows)? {
            out.batch(batch);
        }
        for watermark in ready.watermarks {
            out.watermark(watermark);
        }
        Ok(())
    }

    /// The output rows of finished runs; failed rows follow `on-error`.
    fn shape(&mut self, slots: Vec<HeldRow<Features, Outcome>>) -> Result<Option<RecordBatch>> {
        let mut inputs = Vec::with_capacity(slots.len());
        let mut predictions = Vec::with_capacity(slots.len());
        for slot in slots {
            let Some(outcome) = slot.result else { continue };
            match outcome {
                Outcome::Predicted { output, failures } if failures.is_empty() => {
                    inputs.push(slot.row);
                    predictions.push(output);
                }
                Outcome::Predicted { output, failures } => {
                    let mut keep = vec![true; slot.row.num_rows()];
                    for (row, failure) in &failures {
                        keep[*row] = false;
                        self.on_failure(&slot.row.slice(*row, 1), failure)?;
                    }
                    let keep = arrow::array::BooleanArray::from(keep);
                    let filter = |b: &RecordBatch| arrow::compute::filter_record_batch(b, &keep).map_err(Self::arrow);
                    inputs.push(filter(&slot.row)?);
                    predictions.push(filter(&output)?);
                }
                Outcome::Failed(failure) => {
                    for row in 0..slot.row.num_rows() {
                        self.on_failure(&slot.row.slice(row, 1), &failure)?;
                    }
                }
            }
        }
        if inputs.is_empty() {
            return Ok(None);
        }
        let inputs = arrow::compute::concat_batches(&self.input, &inputs).map_err(Self::arrow)?;
        let predictions = arrow::compute::concat_batches(&self.model_output, &predictions).map_err(Self::arrow)?;
        let mut columns = inputs.columns().to_vec();
        columns.extend(predictions.columns().iter().cloned());
        RecordBatch::try_new(self.output.clone(), columns).map(Some).map_err(Self::arrow)
    }

    /// Applies `on-error` to a failed row.
    fn on_failure(&mut self, row: &RecordBatch, failure: &RowFailure) -> Result<()> {
        if failure.fatal {
            return Err(self.config.error(failure.message.clone()));
        }
        match &self.config.on_error {
            OnError::Fail => {
                return Err(self.config.error(format!(
                    "prediction failed after {} attempt(s): {} (set 'on_error' = 'skip' or 'dead_letter' to keep the job running)",
                    failure.attempts, failure.message
                )))
            }
            OnError::Skip => {}
            OnError::DeadLetter(_) => {
                let letter = DeadLetter {
                    input: row_json(row)?,
                    error: failure.message.clone(),
                    http_status: None,
                    attempts: failure.attempts,
                    source: format!("model {}", self.config.model),
                };
                let writer =
                    self.dead_letters.as_mut().ok_or_else(|| self.config.error("the dead-letter writer is not open"))?;
                writer.write(&letter)?;
                self.dead_letter_count += 1;
            }
        }
        self.skipped += 1;
        Ok(())
    }

    fn worker_spec(&self, ctx: &TaskContext) -> WorkerSpec {
        WorkerSpec {
            model: self.config.model.clone(),
            executable: self.config.executable.clone(),
            config_json: self.config.model_config_json(&self.model_input, &self.model_output),
            output: self.model_output.clone(),
            subtask: ctx.subtask,
            parallelism: ctx.parallelism,
            attempt: ctx.attempt,
            timeout: self.config.timeout,
            open_timeout: self.config.open_timeout,
            task: ctx.task_name.clone(),
        }
    }
}

#[async_trait]
impl Operator for PythonPredict {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.rows.set_wake(ctx.wake.clone());
        let package = package_root().map_err(|m| self.config.error(m))?.to_path_buf();
        let spec = self.worker_spec(ctx);
        let worker = Worker::start(&spec, &package).await.map_err(|f| self.config.error(f.to_string()))?;
        tracing::info!(
            model = %self.config.model, task = %ctx.task_name, pid = worker.pid(), batched = worker.batched,
            "Python model open"
        );
        let supervisor = SupervisorSpec {
            worker: spec,
            package,
            max_retries: self.config.max_retries,
            backoff: self.config.backoff,
        };
        self.supervisor = Some(Supervisor::spawn(supervisor, worker, self.stats.clone(), self.config.max_in_flight));
        if let OnError::DeadLetter(config) = &self.config.on_error {
            self.dead_letters =
                Some(DeadLetterWriter::open(config, ctx, std::mem::take(&mut self.dead_letter_restore)).await?);
        }
        let restored = std::mem::take(&mut self.restored);
        if !restored.is_empty() {
            tracing::info!(model = %self.config.model, task = %ctx.task_name, rows = restored.len(), "re-sending restored ML_PREDICT rows");
        }
        // Consecutive rows with the same attempts go back as one run.
        let mut start = 0;
        while start < restored.len() {
            let attempts = restored[start].1;
            let end = restored[start..].iter().position(|(_, a)| *a != attempts).map_or(restored.len(), |p| start + p);
            let rows: Vec<&RecordBatch> = restored[start..end].iter().map(|(row, _)| row).collect();
            let run = arrow::compute::concat_batches(&self.input, rows).map_err(Self::arrow)?;
            self.admit(&run, attempts)?;
            start = end;
        }
        self.dispatch(true);
        Ok(())
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        self.dead_letter_restore = DeadLetterRestore::from_init(&init);
        for entry in init.entries() {
            let rows = AsyncRows::<Features, Outcome>::decode_snapshot(&self.input, entry).map_err(|e| {
                OperatorError::State(format!(
                    "model '{}': the checkpointed rows are unreadable: {e}",
                    self.config.model
                ))
            })?;
            for (row, meta) in rows {
                let attempts = meta.get(..4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
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
        self.admit(&batch, 0)?;
        self.dispatch(false);
        self.emit_ready(out)?;
        if let Some(writer) = self.dead_letters.as_mut().filter(|w| w.should_send()) {
            writer.send_queued().await?;
        }
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.dispatch(true);
        self.rows.watermark(watermark);
        self.emit_ready(out)
    }

    async fn on_barrier(&mut self, _barrier: Barrier, out: &mut Collector) -> Result<()> {
        self.emit_ready(out)
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        let entry = self.rows.snapshot(&self.input, &|_, attempts| attempts.to_le_bytes().to_vec())?;
        DeadLetterWriter::snapshot_of(&mut self.dead_letters, checkpoint_id, OperatorState::split(vec![entry])).await
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        DeadLetterWriter::commit_of(&mut self.dead_letters, checkpoint_id).await
    }

    async fn stop_with_savepoint(&mut self) -> Result<()> {
        DeadLetterWriter::stop_of(&mut self.dead_letters).await
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
        if let Some(writer) = &mut self.dead_letters {
            writer.finish().await?;
        }
        let s = &self.stats;
        tracing::info!(
            model = %self.config.model,
            rows = PythonStats::get(&s.rows),
            batches = PythonStats::get(&s.batches),
            python_errors = PythonStats::get(&s.python_errors),
            timeouts = PythonStats::get(&s.timeouts),
            crashes = PythonStats::get(&s.crashes),
            restarts = PythonStats::get(&s.restarts),
            skipped = self.skipped,
            dead_letters = self.dead_letter_count,
            latency_p50_us = s.latency(0.5),
            latency_p99_us = s.latency(0.99),
            "model statistics"
        );
        // The worker exits once the model is closed.
        self.supervisor = None;
        Ok(())
    }

    fn metrics(&self) -> Vec<Metric> {
        let name = |what: &str| format!("model.{}.{what}", self.config.model);
        let s = &self.stats;
        vec![
            metrics::counter(name("rows"), PythonStats::get(&s.rows)),
            metrics::counter(name("batches"), PythonStats::get(&s.batches)),
            metrics::gauge(name("held_rows"), self.rows.len() as f64),
            metrics::histogram(name("latency_us"), &s.latencies.lock().unwrap_or_else(|p| p.into_inner())),
            metrics::counter(name("python_errors"), PythonStats::get(&s.python_errors)),
            metrics::counter(name("timeouts"), PythonStats::get(&s.timeouts)),
            metrics::counter(name("crashes"), PythonStats::get(&s.crashes)),
            metrics::counter(name("worker_restarts"), PythonStats::get(&s.restarts)),
            metrics::counter(name("skipped"), self.skipped),
            metrics::counter(name("dead_letters"), self.dead_letter_count),
        ]
    }
}
