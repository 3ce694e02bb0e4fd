//! The async ML_PREDICT operator of remote models, on the async machinery of
//! [`AsyncRows`]: every input row gets a slot; its request runs as a tokio task and
//! reports back through a channel, waking the task loop. Rows leave in input order
//! (`ORDERED`) or as they complete, and a watermark leaves only after every earlier row.
//! At most `max-concurrent-operations` requests are in flight; twice that many rows may
//! wait for an answer (the rest queued) and four times that many are held in all, answered
//! rows included. The task stops taking input while the operator is full, but keeps
//! serving checkpoints. This module adds what is the model's: prompts, the answer cache,
//! output shaping and `on-error`.
//!
//! A barrier never waits for a request: the snapshot holds the rows still in flight
//! (with their attempt counts) and the answered rows not emitted yet, and a restore
//! re-issues the former and emits the latter.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use sluice_proto::MlPredictSpec;
use tokio::time::Instant;

use super::api::Answer;
use super::cache::AnswerCache;
use super::client::{Client, Failure};
use super::config::{Api, OnError, RemoteConfig};
use super::context::Fitted;
use super::rows::{OutputValues, Prompter, Shaper};
use super::stats::RemoteStats;
use sluice_connectors::kafka::dead_letter::{row_json, DeadLetter, DeadLetterRestore, DeadLetterWriter};
use sluice_core::async_rows::{AsyncRows, AsyncSettings, HeldRow, Work};
use sluice_core::keys::{key_group, KeyHasher};
use sluice_core::metrics::{self, Metric};
use sluice_core::schema::decode_schema;
use sluice_core::state::{OperatorState, StateInit, StateTables};
use sluice_core::{Barrier, Collector, Operator, OperatorError, Result, TaskContext};

/// How long a partial embeddings request waits for more rows.
const EMBEDDING_LINGER: Duration = Duration::from_millis(5);

/// A row's prompt, or why it has none.
type Prompt = std::result::Result<String, String>;
/// A row's answer, or why it has none.
type Outcome = std::result::Result<Answer, Failure>;

/// A row in a checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedSlot {
    attempts: u32,
    result: Option<Outcome>,
}

/// A running async ML_PREDICT subtask.
pub struct AsyncPredict {
    config: Arc<RemoteConfig>,
    descriptor: Vec<usize>,
    input: SchemaRef,
    output: SchemaRef,
    prompter: Prompter,
    shaper: Shaper,
    stats: Arc<RemoteStats>,
    client: Option<Arc<Client>>,
    rows: AsyncRows<Prompt, Outcome>,
    dead_letters: Option<DeadLetterWriter>,
    dead_letter_restore: DeadLetterRestore,
    tables: Option<StateTables>,
    cache: Option<AnswerCache>,
    hasher: KeyHasher,
    max_parallelism: u32,
    restored: Vec<(RecordBatch, SavedSlot)>,
}

/// The work of one request of `client`: one outcome per prompt.
fn request(client: &Arc<Client>) -> impl FnMut(Vec<&Prompt>, Arc<AtomicU32>) -> Work<Outcome> + '_ {
    move |prompts, attempts| {
        let prompts: Vec<String> = prompts.into_iter().map(|p| p.clone().unwrap_or_default()).collect();
        let client = client.clone();
        Box::pin(async move {
            let n = prompts.len();
            match client.predict(&prompts, &attempts).await {
                Ok((answers, _)) if answers.len() == n => answers.into_iter().map(Ok).collect(),
                Ok((answers, _)) => {
                    let message = format!("the API answered {} of {n} inputs", answers.len());
                    let attempts = attempts.load(Ordering::Relaxed);
                    vec![Err(Failure { message, status: Some(200), attempts }); n]
                }
                Err(failure) => vec![Err(failure); n],
            }
        })
    }
}

impl AsyncPredict {
    /// The operator for `spec` of a remote provider, whose options (secrets resolved) are `options`.
    pub fn new(spec: &MlPredictSpec, options: &BTreeMap<String, String>) -> Result<Self> {
        let config = Arc::new(RemoteConfig::from_options(&spec.provider, &spec.model, options)?);
        let model_input = decode_schema(&spec.model_input_schema)?;
        let model_output = decode_schema(&spec.model_output_schema)?;
        let output = decode_schema(&spec.output_schema)?;
        let prompter = Prompter::new(&model_input, config.prompt_template.clone()).map_err(|m| config.error(m))?;
        let shaper = Shaper::new(&model_output, config.json_output, config.api == Api::OpenAiEmbeddings)
            .map_err(|m| config.error(m))?;
        let input_columns = output.fields().len() - model_output.fields().len();
        let input = Arc::new(arrow::datatypes::Schema::new(output.fields()[..input_columns].to_vec()));
        let descriptor: Vec<usize> = spec.descriptor_columns.iter().map(|&c| c as usize).collect();
        let hasher = KeyHasher::new(&input, &descriptor)?;
        let settings = AsyncSettings {
            ordered: config.ordered,
            batch_size: config.batch_size,
            linger: EMBEDDING_LINGER,
            max_in_flight: config.max_concurrency,
        };
        Ok(AsyncPredict {
            hasher,
            descriptor,
            input,
            output,
            prompter,
            shaper,
            stats: Arc::new(RemoteStats::default()),
            client: None,
            rows: AsyncRows::new(settings, Arc::new(tokio::sync::Notify::new())),
            dead_letters: None,
            dead_letter_restore: DeadLetterRestore::default(),
            tables: None,
            cache: None,
            max_parallelism: sluice_core::keys::DEFAULT_MAX_PARALLELISM,
            restored: Vec::new(),
            config,
        })
    }

    fn arrow(e: arrow::error::ArrowError) -> OperatorError {
        OperatorError::arrow("ML_PREDICT", e)
    }

    /// Takes one input row: answered from the cache, failed for want of a prompt, attached
    /// to an in-flight request for the same prompt (with the cache), or queued.
    /// `prompt` within `max-context-size`, or None when `context-overflow-action` skips
    /// its row.
    fn fit(&self, prompt: Prompt) -> Option<Prompt> {
        let Some(limit) = &self.config.context else { return Some(prompt) };
        let text = match prompt {
            Ok(text) => text,
            Err(e) => return Some(Err(e)),
        };
        match limit.fit(text) {
            Fitted::Unchanged(text) => Some(Ok(text)),
            Fitted::Truncated { prompt, tokens } => {
                RemoteStats::bump(&self.stats.context_truncated);
                if limit.log {
                    tracing::warn!(model = %self.config.model, tokens, max = limit.max_tokens, "a prompt over max-context-size was truncated");
                }
                Some(Ok(prompt))
            }
            Fitted::Skipped { tokens } => {
                RemoteStats::bump(&self.stats.context_skipped);
                if limit.log {
                    tracing::warn!(model = %self.config.model, tokens, max = limit.max_tokens, "a row whose prompt is over max-context-size was skipped");
                }
                None
            }
        }
    }

    fn admit(&mut self, row: RecordBatch, key_group: u32, prompt: Prompt, saved: Option<SavedSlot>) -> Result<()> {
        let attempts = saved.as_ref().map_or(0, |s| s.attempts);
        let mut result = saved.and_then(|s| s.result);
        let mut share = None;
        if result.is_none() {
            match &prompt {
                Err(message) => result = Some(Err(Failure { message: message.clone(), status: None, attempts: 0 })),
                Ok(p) if self.cache.is_some() => {
                    if let Some(answer) = self.cache.as_ref().map(|c| c.get(key_group, p)).transpose()?.flatten() {
                        RemoteStats::bump(&self.stats.cache_hits);
                        result = Some(Ok(answer));
                    } else {
                        if self.rows.is_shared(p) {
                            // The same prompt is being asked: share its answer.
                            RemoteStats::bump(&self.stats.cache_hits);
                        }
                        share = Some(p.clone());
                    }
                }
                Ok(_) => {}
            }
        }
        self.rows.admit(row, key_group, prompt, attempts, result, share);
        Ok(())
    }

    /// The key group of each row of `batch` (by its features).
    fn key_groups(&self, batch: &RecordBatch) -> Result<Vec<u32>> {
        Ok(self.hasher.hashes(batch)?.into_iter().map(|h| key_group(h, self.max_parallelism)).collect())
    }

    /// Sends queued rows: whole requests, or everything when `all`.
    fn dispatch(&mut self, all: bool) {
        let Some(client) = self.client.clone() else { return };
        self.rows.dispatch(all, &mut request(&client));
    }

    /// Waits for one request to finish (sending everything queued first).
    async fn receive_one(&mut self) -> Result<()> {
        let client = self.client.clone().ok_or_else(|| self.config.error("the model client is not open"))?;
        let cache = &mut self.cache;
        let mut start = request(&client);
        self.rows.collect_one(&mut start, &mut |slot, result| cache_answer(cache, slot, result)).await
    }

    /// Emits the rows that may leave, then the watermarks they no longer hold back.
    fn emit_ready(&mut self, out: &mut Collector) -> Result<()> {
        let cache = &mut self.cache;
        self.rows.collect(&mut |slot, result| cache_answer(cache, slot, result))?;
        let ready = self.rows.take_ready();
        if let Some(batch) = self.shape(ready.rows)? {
            out.batch(batch);
        }
        for watermark in ready.watermarks {
            out.watermark(watermark);
        }
        Ok(())
    }

    /// The output rows of finished slots; failures follow `on-error`.
    fn shape(&mut self, slots: Vec<HeldRow<Prompt, Outcome>>) -> Result<Option<RecordBatch>> {
        let mut rows = Vec::with_capacity(slots.len());
        let mut values: Vec<OutputValues> = Vec::with_capacity(slots.len());
        for slot in slots {
            let outcome = match slot.result.expect("finished") {
                Ok(answer) => self.shaper.answer_row(answer).map_err(|message| Failure {
                    message,
                    status: Some(200),
                    attempts: slot.attempts.load(Ordering::Relaxed),
                }),
                Err(failure) => Err(failure),
            };
            match outcome {
                Ok(row_values) => {
                    RemoteStats::bump(&self.stats.rows);
                    rows.push(slot.row);
                    values.push(row_values);
                }
                Err(failure) => {
                    RemoteStats::bump(&self.stats.failed);
                    if let Some(kept) = self.on_failure(&slot.row, &failure)? {
                        rows.push(slot.row);
                        values.push(kept);
                    }
                }
            }
        }
        if rows.is_empty() {
            return Ok(None);
        }
        let inputs = arrow::compute::concat_batches(&self.input, &rows).map_err(Self::arrow)?;
        let mut columns = inputs.columns().to_vec();
        columns.extend(self.shaper.columns(values).map_err(|m| self.config.error(m))?);
        RecordBatch::try_new(self.output.clone(), columns).map(Some).map_err(Self::arrow)
    }

    /// Applies `on-error` to a failed row; returns its OUTPUT values when it is kept.
    fn on_failure(&mut self, row: &RecordBatch, failure: &Failure) -> Result<Option<OutputValues>> {
        let status = failure.status.map_or(String::new(), |s| format!(" (HTTP status {s})"));
        match &self.config.on_error {
            OnError::Fail => {
                return Err(self.config.error(format!(
                    "prediction failed{status} after {} attempt(s): {} (set 'on_error' = 'skip' or 'dead_letter' to keep the job running)",
                    failure.attempts, failure.message
                )))
            }
            OnError::Skip => {}
            OnError::DeadLetter { .. } => {
                let input = row_json(row)?;
                let letter = DeadLetter {
                    input,
                    error: failure.message.clone(),
                    http_status: failure.status,
                    attempts: failure.attempts,
                    source: format!("model {}", self.config.model),
                };
                self.dead_letters.as_mut().ok_or_else(|| self.config.error("the dead-letter writer is not open"))?.write(&letter)?;
                RemoteStats::bump(&self.stats.dead_letters);
            }
        }
        RemoteStats::bump(&self.stats.skipped);
        Ok(self.shaper.has_error_columns().then(|| self.shaper.failure_row(failure)))
    }

    fn encode_snapshot(&self) -> Result<Vec<u8>> {
        self.rows.snapshot(&self.input, &|slot, attempts| {
            serde_json::to_vec(&SavedSlot { attempts, result: slot.result.clone() })
                .expect("a held row's attempts and answer always encode as JSON")
        })
    }

    fn decode_snapshot(&self, entry: &[u8]) -> Result<Vec<(RecordBatch, SavedSlot)>> {
        let corrupt = |what: String| {
            OperatorError::State(format!(
                "model '{}': the checkpointed requests are unreadable: {what}",
                self.config.model
            ))
        };
        AsyncRows::<Prompt, Outcome>::decode_snapshot(&self.input, entry)
            .map_err(|e| corrupt(e.to_string()))?
            .into_iter()
            .map(|(row, meta)| Ok((row, serde_json::from_slice(&meta).map_err(|e| corrupt(e.to_string()))?)))
            .collect()
    }
}

/// Keeps a fresh answer in the cache, when there is one.
fn cache_answer(cache: &mut Option<AnswerCache>, slot: &HeldRow<Prompt, Outcome>, result: &Outcome) -> Result<()> {
    if let (Some(cache), Ok(prompt), Ok(answer)) = (cache.as_mut(), &slot.request, result) {
        cache.put(slot.key_group, prompt, answer)?;
    }
    Ok(())
}

#[async_trait]
impl Operator for AsyncPredict {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.rows.set_wake(ctx.wake.clone());
        self.max_parallelism = ctx.max_parallelism;
        let client = Client::new(self.config.clone(), self.stats.clone()).map_err(|m| self.config.error(m))?;
        self.client = Some(Arc::new(client));
        if let OnError::DeadLetter(config) = &self.config.on_error {
            self.dead_letters =
                Some(DeadLetterWriter::open(config, ctx, std::mem::take(&mut self.dead_letter_restore)).await?);
        }
        if let (Some(mut tables), Some(cache)) = (self.tables.take(), self.config.cache.clone()) {
            let cache = AnswerCache::open(&mut tables, cache, self.config.version())?;
            tracing::info!(model = %self.config.model, task = %ctx.task_name, cached = cache.rows(), "answer cache ready");
            self.cache = Some(cache);
        }
        let restored = std::mem::take(&mut self.restored);
        if !restored.is_empty() {
            let unanswered = restored.iter().filter(|(_, s)| s.result.is_none()).count();
            self.stats.reissued.fetch_add(unanswered as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(model = %self.config.model, task = %ctx.task_name, rows = restored.len(), reissued = unanswered, "restored ML_PREDICT rows");
        }
        for (row, saved) in restored {
            let features = row.project(&self.descriptor).map_err(Self::arrow)?;
            let prompt = self.prompter.prompts(&features).pop().unwrap_or_else(|| Err("no row".into()));
            let key_group = self.key_groups(&row)?.first().copied().unwrap_or_default();
            if let Some(prompt) = self.fit(prompt) {
                self.admit(row, key_group, prompt, Some(saved))?;
            }
        }
        self.dispatch(true);
        tracing::info!(task = %ctx.task_name, model = %self.config.model, endpoint = %self.config.endpoint, "model ready");
        Ok(())
    }

    fn uses_keyed_state(&self) -> bool {
        self.config.cache.is_some()
    }

    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        self.tables = init.tables();
        self.dead_letter_restore = DeadLetterRestore::from_init(&init);
        for entry in init.entries() {
            let rows = self.decode_snapshot(entry)?;
            self.restored.extend(rows);
        }
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        // The task stops feeding a full operator; this only guards other callers.
        while !self.accepts_input() {
            self.receive_one().await?;
            self.emit_ready(out)?;
        }
        let features = batch.project(&self.descriptor).map_err(Self::arrow)?;
        let prompts = self.prompter.prompts(&features);
        let key_groups = if self.cache.is_some() { self.key_groups(&batch)? } else { vec![0; batch.num_rows()] };
        for (i, prompt) in prompts.into_iter().enumerate() {
            if let Some(prompt) = self.fit(prompt) {
                self.admit(batch.slice(i, 1), key_groups[i], prompt, None)?;
            }
        }
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
        // The held rows are split over the new subtasks on restore; the dead letters of
        // rows answered before the barrier are in this epoch's transaction.
        let state = OperatorState::split(vec![self.encode_snapshot()?]);
        DeadLetterWriter::snapshot_of(&mut self.dead_letters, checkpoint_id, state).await
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
            rows = RemoteStats::get(&s.rows),
            requests = RemoteStats::get(&s.requests),
            retries = RemoteStats::get(&s.retries),
            throttled = RemoteStats::get(&s.throttled),
            timeouts = RemoteStats::get(&s.timeouts),
            failed = RemoteStats::get(&s.failed),
            dead_letters = RemoteStats::get(&s.dead_letters),
            cache_hits = RemoteStats::get(&s.cache_hits),
            latency_p50_us = s.latency(0.5),
            latency_p99_us = s.latency(0.99),
            "model statistics"
        );
        Ok(())
    }

    fn metrics(&self) -> Vec<Metric> {
        let name = |what: &str| format!("model.{}.{what}", self.config.model);
        let s = &self.stats;
        let prompt_tokens = RemoteStats::get(&s.prompt_tokens);
        let completion_tokens = RemoteStats::get(&s.completion_tokens);
        let cost = prompt_tokens as f64 / 1000.0 * self.config.cost_input_per_1k
            + completion_tokens as f64 / 1000.0 * self.config.cost_output_per_1k;
        vec![
            metrics::counter(name("rows"), RemoteStats::get(&s.rows)),
            metrics::counter(name("requests"), RemoteStats::get(&s.requests)),
            metrics::gauge(name("in_flight"), RemoteStats::get(&s.in_flight) as f64),
            metrics::gauge(name("held_rows"), self.rows.len() as f64),
            metrics::gauge(name("concurrency_limit"), self.client.as_ref().map_or(0, |c| c.concurrency_limit()) as f64),
            metrics::gauge(
                name("concurrency_limit_min"),
                self.client.as_ref().map_or(0, |c| c.lowest_concurrency_limit()) as f64,
            ),
            metrics::histogram(name("latency_us"), &s.latency_histogram()),
            metrics::counter(name("retries"), RemoteStats::get(&s.retries)),
            metrics::counter(name("http_429"), RemoteStats::get(&s.throttled)),
            metrics::counter(name("timeouts"), RemoteStats::get(&s.timeouts)),
            metrics::counter(name("failed"), RemoteStats::get(&s.failed)),
            metrics::counter(name("skipped"), RemoteStats::get(&s.skipped)),
            metrics::counter(name("dead_letters"), RemoteStats::get(&s.dead_letters)),
            metrics::counter(name("cache_hits"), RemoteStats::get(&s.cache_hits)),
            metrics::counter(name("reissued"), RemoteStats::get(&s.reissued)),
            metrics::counter(name("context_truncated"), RemoteStats::get(&s.context_truncated)),
            metrics::counter(name("context_skipped"), RemoteStats::get(&s.context_skipped)),
            metrics::counter(name("prompt_tokens"), prompt_tokens),
            metrics::counter(name("completion_tokens"), completion_tokens),
            metrics::counter(name("cost_micro_usd"), (cost * 1_000_000.0).round() as u64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};
    use serde_json::Value;
    use sluice_core::harness::{Build, Harness};
    use sluice_core::schema::encode_schema;
    use sluice_core::{Message, Operator};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A chat-completions endpoint that answers each request after `delay` with
    /// "answer: <the prompt>", counting the requests it got (one per connection).
    async fn slow_endpoint(delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let body = loop {
                        let n = socket.read(&mut buffer).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break body.to_string();
                        }
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let prompt: Value = serde_json::from_str(&body).unwrap();
                    let question =
                        prompt["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
                    tokio::time::sleep(delay).await;
                    let answer = serde_json::json!({
                        "choices": [{"message": {"content": format!("answer: {question}")}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                    })
                    .to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        (url, requests)
    }

    /// In the harness: a barrier passes while every request is still in flight, the
    /// snapshot holds those rows, and a fresh instance restored from it (at another
    /// parallelism) re-issues them and emits each row's answer once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_barrier_passes_requests_in_flight_and_a_restore_reissues_them() {
        let (url, requests) = slow_endpoint(Duration::from_secs(1)).await;
        let input = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("q", DataType::Utf8, false),
        ]));
        let model_input = Arc::new(Schema::new(vec![Field::new("q", DataType::Utf8, false)]));
        let model_output = Arc::new(Schema::new(vec![Field::new("answer", DataType::Utf8, true)]));
        let output = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("q", DataType::Utf8, false),
            Field::new("answer", DataType::Utf8, true),
        ]));
        let spec = MlPredictSpec {
            model: "assistant".into(),
            provider: "openai".into(),
            input_schema: encode_schema(&input),
            descriptor_columns: vec![1],
            model_input_schema: encode_schema(&model_input),
            model_output_schema: encode_schema(&model_output),
            output_schema: encode_schema(&output),
            ..Default::default()
        };
        let options: BTreeMap<String, String> = [
            ("task", "chat-completion"),
            ("endpoint", url.as_str()),
            ("api-key", "sk-test"),
            ("model", "stub"),
            ("max-concurrent-operations", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let build: Build = Arc::new(move || Ok(Box::new(AsyncPredict::new(&spec, &options)?) as Box<dyn Operator>));

        let mut h = Harness::start(build.clone(), input.clone(), None, 1).await.unwrap();
        h.push("1 one\n2 two\n3 three\n4 four\n5 five").await.unwrap();
        let snapshot = h.checkpoint(1).await.unwrap();
        assert!(h.rows_of(0).is_empty(), "no answer is back yet");
        assert!(matches!(h.output(0).last(), Some(Message::Barrier(_))), "the barrier did not wait for the requests");
        drop(h); // the task manager dies with the requests in flight

        let mut restored = Harness::restore(build, input, None, 2, &snapshot).await.unwrap();
        restored.finish().await.unwrap();
        let expected: Vec<String> = ["1 one", "2 two", "3 three", "4 four", "5 five"]
            .iter()
            .map(|r| format!("{r} answer: {}", r.split(' ').nth(1).unwrap()))
            .collect();
        let mut expected = expected;
        expected.sort();
        assert_eq!(restored.sorted_rows(), expected, "every held row answered once after the restore");
        assert_eq!(restored.metric("model.assistant.reissued"), 5, "every held row was asked again");
        assert!(requests.load(Ordering::SeqCst) >= 5);
    }
}
