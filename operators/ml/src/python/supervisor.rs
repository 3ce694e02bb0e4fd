//! Serves batches on one subtask's worker. Batches queue in a channel (at most
//! `max-concurrent-operations` of them, the in-flight bound of the async machinery) and are
//! all sent to the worker at once, which answers them in order: it never idles while the
//! task encodes the next batch or decodes the last answer.
//!
//! A batch whose worker overran `timeout` or died is retried on a fresh worker (the model
//! reopened) after `retry.backoff`, up to `max-retries` times, then each of its rows fails
//! with the reason. A worker that cannot be reopened fails the job: a model that crashes on
//! every open does not loop. When the operator goes away mid-batch (the job is cancelled),
//! the worker is killed at once.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use sluice_core::metrics::LatencyHistogram;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::worker::{Worker, WorkerFailure, WorkerSpec};

/// Why a row has no prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFailure {
    /// What went wrong: the Python exception with its traceback, a contract breach, or the
    /// worker's timeout or crash.
    pub message: String,
    /// Attempts made for the row's batch.
    pub attempts: u32,
    /// True when the model cannot run at all: the job fails whatever `on-error` says.
    pub fatal: bool,
}

/// The predictions of a batch of rows (or of a run of them).
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The OUTPUT columns of every row (NULL where the row failed), and the rows that
    /// failed, by index.
    Predicted {
        /// The OUTPUT rows, one per input row.
        output: RecordBatch,
        /// The failed rows: (index in the batch, why).
        failures: Vec<(usize, RowFailure)>,
    },
    /// Every row failed for the same reason (the worker timed out or crashed too often,
    /// or cannot run).
    Failed(RowFailure),
}

impl Outcome {
    /// The outcome of rows `offset .. offset + len` of the batch.
    pub fn slice(&self, offset: usize, len: usize) -> Outcome {
        match self {
            Outcome::Predicted { output, failures } => Outcome::Predicted {
                output: output.slice(offset, len),
                failures: failures
                    .iter()
                    .filter(|(row, _)| (offset..offset + len).contains(row))
                    .map(|(row, failure)| (row - offset, failure.clone()))
                    .collect(),
            },
            Outcome::Failed(failure) => Outcome::Failed(failure.clone()),
        }
    }
}

/// Counters of one subtask's model, shared with the operator's metrics.
#[derive(Debug, Default)]
pub struct PythonStats {
    /// Rows predicted.
    pub rows: AtomicU64,
    /// Batches sent to Python (retries included).
    pub batches: AtomicU64,
    /// Rows whose prediction raised or broke the output contract.
    pub python_errors: AtomicU64,
    /// Batches that overran `timeout`.
    pub timeouts: AtomicU64,
    /// Workers that died.
    pub crashes: AtomicU64,
    /// Workers started after the first.
    pub restarts: AtomicU64,
    /// Batch round trips, in microseconds.
    pub latencies: Mutex<LatencyHistogram>,
}

impl PythonStats {
    /// The value of a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// A quantile of the batch round trips, in microseconds.
    pub fn latency(&self, p: f64) -> u64 {
        self.latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).quantile(p)
    }
}

/// One batch to predict.
struct Job {
    features: RecordBatch,
    attempts: Arc<AtomicU32>,
    reply: oneshot::Sender<Outcome>,
}

/// What the supervisor needs besides a worker.
pub struct SupervisorSpec {
    /// How to start a worker.
    pub worker: WorkerSpec,
    /// The package directory for the worker's path.
    pub package: PathBuf,
    /// Attempts after the first for a batch whose worker failed.
    pub max_retries: u32,
    /// Wait before such a retry.
    pub backoff: Duration,
}

/// The handle through which the operator's requests reach the worker. Dropping every
/// handle closes the model and stops the worker.
#[derive(Clone)]
pub struct Supervisor {
    jobs: mpsc::Sender<Job>,
}

impl Supervisor {
    /// Starts serving on `worker` (already open), with room for `queue` waiting batches.
    pub fn spawn(spec: SupervisorSpec, worker: Worker, stats: Arc<PythonStats>, queue: usize) -> Supervisor {
        let (jobs, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(serve(rx, spec, Some(worker), stats, queue.max(1)));
        Supervisor { jobs }
    }

    /// The outcome of `features`' rows.
    pub async fn predict(&self, features: RecordBatch, attempts: Arc<AtomicU32>) -> Outcome {
        let gone = || {
            Outcome::Failed(RowFailure {
                message: "the Python worker's supervisor stopped".into(),
                attempts: 0,
                fatal: true,
            })
        };
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { features, attempts, reply }).await.is_err() {
            return gone();
        }
        answer.await.unwrap_or_else(|_| gone())
    }
}

async fn serve(
    mut jobs: mpsc::Receiver<Job>,
    spec: SupervisorSpec,
    mut worker: Option<Worker>,
    stats: Arc<PythonStats>,
    depth: usize,
) {
    // Batches not yet sent to the current worker, and those sent (with their ids) whose
    // answers are awaited, in order.
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut sent: VecDeque<(u64, Job)> = VecDeque::new();
    let model = &spec.worker.model;
    loop {
        if waiting.is_empty() && sent.is_empty() {
            match jobs.recv().await {
                Some(job) => waiting.push_back(job),
                None => break,
            }
        }
        while let Ok(job) = jobs.try_recv() {
            waiting.push_back(job);
        }
        let running = match worker.as_mut() {
            Some(running) => running,
            None => match Worker::start(&spec.worker, &spec.package).await {
                Ok(fresh) => {
                    PythonStats::bump(&stats.restarts, 1);
                    tracing::info!(model = %model, task = %spec.worker.task, pid = fresh.pid(), "Python worker restarted and model reopened");
                    worker.insert(fresh)
                }
                Err(failure) => {
                    let message = format!("the Python worker could not be restarted: {failure}");
                    for job in sent.drain(..).map(|(_, job)| job).chain(waiting.drain(..)) {
                        let attempts = job.attempts.load(Ordering::Relaxed);
                        let failure = RowFailure { message: message.clone(), attempts, fatal: true };
                        let _ = job.reply.send(Outcome::Failed(failure));
                    }
                    continue;
                }
            },
        };
        // Keep the worker's input full: it never waits while a batch is encoded or an
        // answer decoded.
        while sent.len() < depth {
            let Some(job) = waiting.pop_front() else { break };
            match running.send_batch(&job.features) {
                Ok(id) => {
                    PythonStats::bump(&stats.batches, 1);
                    sent.push_back((id, job));
                }
                Err(failure) => {
                    let attempts = job.attempts.load(Ordering::Relaxed);
                    let failure = RowFailure { message: failure.to_string(), attempts, fatal: true };
                    let _ = job.reply.send(Outcome::Failed(failure));
                }
            }
        }
        let Some((id, head)) = sent.front_mut() else { continue };
        let rows = head.features.num_rows();
        let started = Instant::now();
        let result = tokio::select! {
            result = running.receive_prediction(*id, rows, &spec.worker.output, spec.worker.timeout) => Some(result),
            () = head.reply.closed() => None,
        };
        match result {
            // The operator is gone (the job was cancelled or failed) while the batch ran:
            // stop the worker now rather than wait for a hung batch's timeout and retries.
            None => {
                worker.take();
                sent.clear();
                waiting.clear();
            }
            Some(Ok(prediction)) => {
                stats
                    .latencies
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .record(started.elapsed().as_micros() as u64);
                let (_, job) = sent.pop_front().expect("the head was sent");
                let attempts = job.attempts.load(Ordering::Relaxed) + 1;
                let mut failures: Vec<(usize, RowFailure)> = Vec::new();
                for (row, error) in prediction.errors {
                    tracing::warn!(model = %model, task = %spec.worker.task, error = %error, "prediction of a row failed in Python");
                    if row < rows && failures.last().is_none_or(|(last, _)| *last < row) {
                        failures.push((row, RowFailure { message: error.to_string(), attempts, fatal: false }));
                    }
                }
                PythonStats::bump(&stats.python_errors, failures.len() as u64);
                PythonStats::bump(&stats.rows, (rows - failures.len()) as u64);
                let _ = job.reply.send(Outcome::Predicted { output: prediction.output, failures });
            }
            Some(Err(failure)) => {
                worker.take();
                match &failure {
                    WorkerFailure::TimedOut { .. } => PythonStats::bump(&stats.timeouts, 1),
                    _ => PythonStats::bump(&stats.crashes, 1),
                }
                let attempts = head.attempts.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(model = %model, task = %spec.worker.task, attempts, rows, "{failure}");
                if attempts > spec.max_retries {
                    let (_, job) = sent.pop_front().expect("the head was sent");
                    let message = format!("{failure} (after {attempts} attempt(s))");
                    let _ = job.reply.send(Outcome::Failed(RowFailure { message, attempts, fatal: false }));
                }
                // The batches sent after it go again, in order, to the next worker.
                while let Some((_, job)) = sent.pop_back() {
                    waiting.push_front(job);
                }
                tokio::time::sleep(spec.backoff).await;
            }
        }
    }
    if let Some(worker) = worker {
        worker.close().await;
    }
}
