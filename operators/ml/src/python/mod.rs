//! The `generic-python` provider: a user's Python class (`PredictFunction`, from the
//! project's `python/` package) predicts rows for ML_PREDICT in a worker process per
//! subtask, so that a hung or crashing model, or one subtask's GIL, never touches the task
//! manager or another subtask.
//!
//! - [`config`]: the model's settings, read from its options;
//! - [`package`]: the Python package, embedded in the binary and put on the worker's path;
//! - [`worker`]: one worker process and its frames of JSON and Arrow IPC;
//! - [`supervisor`]: serves batches on a worker, restarting it after a timeout or a crash
//!   and retrying the batch under `max-retries`;
//! - [`operator`]: the operator, on the async machinery: a barrier never waits for Python.

pub mod config;
pub mod operator;
pub mod package;
pub mod supervisor;
pub mod worker;

pub use operator::PythonPredict;
