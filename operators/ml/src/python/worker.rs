//! One worker process: `python -m sluice._worker` (see `python/sluice/_worker.py`), fed
//! over its standard input and answering on its standard output, in frames of
//!
//! ```text
//! u32 header length (LE) | u64 payload length (LE) | header JSON | payload (Arrow IPC stream)
//! ```
//!
//! Its standard error (the model's `print()` included: the worker moves file descriptor 1
//! there before importing the model) is logged line by line with the model's name, and the
//! last lines are kept to explain a crash. A request that outlives its limit gets SIGUSR1,
//! on which the worker's faulthandler prints every thread's Python stack, and the worker is
//! killed a moment later.

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lines of standard error kept to explain a crash.
const KEPT_LINES: usize = 40;
/// How long a worker that overran its limit has to print its stack before it is killed.
const STACK_GRACE: Duration = Duration::from_millis(300);
/// The largest reply header (JSON) a worker may send.
const MAX_HEADER: usize = 64 << 20;
/// The largest reply payload (Arrow IPC) a worker may send.
const MAX_PAYLOAD: u64 = 4 << 30;
/// How long a dead worker's last lines of standard error are waited for.
const DRAIN: Duration = Duration::from_secs(1);

/// What a worker needs to start and open the model.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The model's name.
    pub model: String,
    /// The Python interpreter.
    pub executable: String,
    /// The model's configuration, passed to `set_model_config`.
    pub config_json: String,
    /// The OUTPUT columns.
    pub output: SchemaRef,
    /// This subtask's index, its parallelism and the job's attempt.
    pub subtask: u32,
    /// The operator's parallelism.
    pub parallelism: u32,
    /// The job's execution attempt.
    pub attempt: u32,
    /// How long one batch may run.
    pub timeout: Duration,
    /// How long `open` may run.
    pub open_timeout: Duration,
    /// The task's name, in logs.
    pub task: String,
}

/// A Python exception (or a breach of the output contract) of one row or of `open`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct PythonError {
    /// The exception's type, such as `ValueError` or `OutputTypeError`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its message.
    pub message: String,
    /// The formatted traceback (empty for a contract breach).
    #[serde(default)]
    pub traceback: String,
    /// The OUTPUT column concerned, for a contract breach.
    #[serde(default)]
    pub column: Option<String>,
}

impl std::fmt::Display for PythonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.traceback.is_empty() {
            write!(f, "\n{}", self.traceback.trim_end())?;
        }
        Ok(())
    }
}

/// Why a worker stopped serving.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerFailure {
    /// The process could not be started.
    #[error("cannot start the Python worker '{executable}': {reason} (set 'python.executable' to an interpreter with pyarrow installed)")]
    Spawn {
        /// The interpreter.
        executable: String,
        /// Why.
        reason: String,
    },
    /// The model's `open` raised.
    #[error("open failed: {0}")]
    OpenFailed(PythonError),
    /// A request outlived its limit; the worker printed its stack and was killed.
    #[error("{what} did not finish within {limit:?}; the worker's Python stack and last output:\n{stderr}")]
    TimedOut {
        /// `open` or `a batch`.
        what: &'static str,
        /// The limit.
        limit: Duration,
        /// The last lines of standard error (the stack among them).
        stderr: String,
    },
    /// The process died.
    #[error("the Python worker died ({how}); its last output:\n{stderr}")]
    Died {
        /// The exit code or the signal.
        how: String,
        /// The last lines of standard error.
        stderr: String,
    },
    /// The worker answered something unexpected.
    #[error("the Python worker broke the protocol: {0}")]
    Protocol(String),
}

/// The answer to one batch: the OUTPUT columns (NULL in failed rows) and the failed rows.
#[derive(Debug)]
pub struct Prediction {
    /// The OUTPUT columns, one row per input row.
    pub output: RecordBatch,
    /// The failed rows, by index in the batch.
    pub errors: Vec<(usize, PythonError)>,
}

/// The last lines a worker wrote to standard error.
#[derive(Debug, Default)]
struct StderrTail(Mutex<VecDeque<String>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.is_empty() {
            "(nothing)".into()
        } else {
            lines.iter().map(|l| format!("  | {l}")).collect::<Vec<_>>().join("\n")
        }
    }
}

/// A running worker process with its model open.
pub struct Worker {
    child: Child,
    /// Frames for the worker's standard input, written in order by a task of their own, so
    /// that a batch can be sent while the answer to the one before is still being read.
    frames: mpsc::UnboundedSender<Vec<u8>>,
    stdout: BufReader<ChildStdout>,
    tail: Arc<StderrTail>,
    stderr_task: Option<JoinHandle<()>>,
    next_id: u64,
    /// True when the model defines `predict_batch`.
    pub batched: bool,
}

/// `batch` as an Arrow IPC stream (a schema alone when `batch` is None).
fn ipc(schema: &SchemaRef, batch: Option<&RecordBatch>) -> Result<Vec<u8>, WorkerFailure> {
    let fail = |e: arrow::error::ArrowError| WorkerFailure::Protocol(format!("cannot encode a batch: {e}"));
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(fail)?;
    if let Some(batch) = batch {
        writer.write(batch).map_err(fail)?;
    }
    writer.finish().map_err(fail)?;
    drop(writer);
    Ok(out)
}

/// How a process ended, in words.
fn exit_reason(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                4 => "SIGILL",
                6 => "SIGABRT",
                7 => "SIGBUS",
                8 => "SIGFPE",
                9 => "SIGKILL",
                11 => "SIGSEGV",
                13 => "SIGPIPE",
                15 => "SIGTERM",
                _ => "",
            };
            if name.is_empty() {
                format!("signal {signal}")
            } else {
                format!("signal {signal}, {name}")
            }
        }
        _ => "unknown status".into(),
    }
}

impl Worker {
    /// Starts a worker for `spec` with the package at `package` on its path, and opens the model.
    pub async fn start(spec: &WorkerSpec, package: &Path) -> Result<Worker, WorkerFailure> {
        let python_path = match std::env::var_os("PYTHONPATH") {
            Some(existing) if !existing.is_empty() => {
                let mut p = package.as_os_str().to_owned();
                p.push(":");
                p.push(existing);
                p
            }
            _ => package.as_os_str().to_owned(),
        };
        let mut child = Command::new(&spec.executable)
            // The model's name is on the command line only to tell workers apart in `ps`.
            .args(["-u", "-m", "sluice._worker", spec.model.as_str()])
            .env("PYTHONPATH", python_path)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| WorkerFailure::Spawn { executable: spec.executable.clone(), reason: e.to_string() })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let (frames, mut to_write) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            // Ends when the worker is dropped (closing its input) or its pipe breaks.
            while let Some(frame) = to_write.recv().await {
                if stdin.write_all(&frame).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let stdout = BufReader::with_capacity(1 << 16, child.stdout.take().expect("stdout is piped"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::new(StderrTail::default());
        let (lines, model, task, pid) = (tail.clone(), spec.model.clone(), spec.task.clone(), child.id().unwrap_or(0));
        let stderr_task = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                tracing::info!(target: "sluice::python", model = %model, task = %task, pid, "{line}");
                lines.push(line);
            }
        });
        let mut worker =
            Worker { child, frames, stdout, tail, stderr_task: Some(stderr_task), next_id: 0, batched: false };
        let header = json!({
            "op": "open",
            "config": spec.config_json,
            "subtask_index": spec.subtask,
            "parallelism": spec.parallelism,
            "attempt_number": spec.attempt,
        });
        let payload = ipc(&spec.output, None)?;
        let (reply, _) = worker.call(&header, &payload, "open", spec.open_timeout).await?;
        match reply["op"].as_str() {
            Some("opened") => {
                worker.batched = reply["batched"].as_bool().unwrap_or(false);
                Ok(worker)
            }
            Some("failed") => {
                let error = serde_json::from_value(reply).map_err(|e| WorkerFailure::Protocol(e.to_string()))?;
                Err(WorkerFailure::OpenFailed(error))
            }
            _ => Err(WorkerFailure::Protocol(format!("unexpected answer to open: {reply}"))),
        }
    }

    /// Sends `features` (the model's INPUT columns) to be predicted; the answers come back
    /// in the order the batches were sent ([`receive_prediction`](Self::receive_prediction)).
    /// Returns the batch's id.
    pub fn send_batch(&mut self, features: &RecordBatch) -> Result<u64, WorkerFailure> {
        self.next_id += 1;
        let payload = ipc(&features.schema(), Some(features))?;
        self.send(&json!({"op": "predict", "id": self.next_id}), &payload);
        Ok(self.next_id)
    }

    /// Reads the answer to batch `id` of `rows` rows, whose OUTPUT columns are `output`,
    /// within `timeout`.
    pub async fn receive_prediction(
        &mut self,
        id: u64,
        rows: usize,
        output: &SchemaRef,
        timeout: Duration,
    ) -> Result<Prediction, WorkerFailure> {
        let (reply, payload) = self.receive("a batch", timeout).await?;
        if reply["op"] != "result" || reply["id"] != id {
            return Err(WorkerFailure::Protocol(format!("unexpected answer to batch {id}: {reply}")));
        }
        let errors: Vec<(usize, PythonError)> = serde_json::from_value(reply["errors"].clone())
            .map_err(|e| WorkerFailure::Protocol(format!("unreadable row errors: {e}")))?;
        let broken = |what: String| WorkerFailure::Protocol(format!("unreadable result of batch {id}: {what}"));
        let mut reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(payload), None)
            .map_err(|e| broken(e.to_string()))?;
        let batch = reader.next().ok_or_else(|| broken("no batch".into()))?.map_err(|e| broken(e.to_string()))?;
        let output =
            RecordBatch::try_new(output.clone(), batch.columns().to_vec()).map_err(|e| broken(e.to_string()))?;
        if output.num_rows() != rows {
            return Err(broken(format!("{} rows for {rows}", output.num_rows())));
        }
        Ok(Prediction { output, errors })
    }

    /// Queues one frame for the worker's input.
    fn send(&mut self, header: &Value, payload: &[u8]) {
        let header = header.to_string();
        let mut frame = Vec::with_capacity(12 + header.len() + payload.len());
        frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
        frame.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        frame.extend_from_slice(header.as_bytes());
        frame.extend_from_slice(payload);
        // A worker whose input is gone has died: the next read says how.
        let _ = self.frames.send(frame);
    }

    /// Sends one request and reads its reply within `limit`.
    async fn call(
        &mut self,
        header: &Value,
        payload: &[u8],
        what: &'static str,
        limit: Duration,
    ) -> Result<(Value, Vec<u8>), WorkerFailure> {
        self.send(header, payload);
        self.receive(what, limit).await
    }

    /// Reads the next reply within `limit`; a worker that dies or overruns is stopped (an
    /// overrunning one after printing its Python stack) and its failure returned.
    async fn receive(&mut self, what: &'static str, limit: Duration) -> Result<(Value, Vec<u8>), WorkerFailure> {
        let exchange = async {
            let mut lengths = [0u8; 12];
            self.stdout.read_exact(&mut lengths).await?;
            let header_len = u32::from_le_bytes(lengths[..4].try_into().expect("4 bytes")) as usize;
            let payload_len = u64::from_le_bytes(lengths[4..].try_into().expect("8 bytes"));
            if header_len > MAX_HEADER || payload_len > MAX_PAYLOAD {
                // Not a frame of ours (something else wrote to the data channel): refuse it
                // rather than allocate whatever it claims.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("a reply frame claims a {header_len}-byte header and a {payload_len}-byte payload"),
                ));
            }
            let payload_len = payload_len as usize;
            let mut reply = vec![0u8; header_len];
            self.stdout.read_exact(&mut reply).await?;
            let mut payload = vec![0u8; payload_len];
            self.stdout.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>((reply, payload))
        };
        match tokio::time::timeout(limit, exchange).await {
            Ok(Ok((reply, payload))) => {
                let reply = serde_json::from_slice(&reply).map_err(|e| WorkerFailure::Protocol(e.to_string()))?;
                Ok((reply, payload))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                let _ = self.child.start_kill();
                self.stop().await;
                Err(WorkerFailure::Protocol(e.to_string()))
            }
            Ok(Err(_)) => {
                // The pipe broke: the worker died.
                let how = self.stop().await;
                Err(WorkerFailure::Died { how, stderr: self.tail.text() })
            }
            Err(_) => {
                if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
                    // SAFETY: kill(2) with a pid and a signal number has no memory effects;
                    // the pid is our own child's, not yet reaped (so not reused).
                    unsafe { libc::kill(pid, libc::SIGUSR1) };
                    tokio::time::sleep(STACK_GRACE).await;
                }
                let _ = self.child.start_kill();
                self.stop().await;
                Err(WorkerFailure::TimedOut { what, limit, stderr: self.tail.text() })
            }
        }
    }

    /// Kills the process (if it still runs), reaps it and waits briefly for its last
    /// lines of standard error; returns how it ended.
    async fn stop(&mut self) -> String {
        let status = match tokio::time::timeout(Duration::from_millis(500), self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        };
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(DRAIN, task).await;
        }
        status.map_or_else(|| "unknown status".into(), exit_reason)
    }

    /// Asks the model to close and the worker to exit; kills it if it does not within a second.
    pub async fn close(mut self) {
        self.send(&json!({"op": "close"}), &[]);
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await.is_err() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// The process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
