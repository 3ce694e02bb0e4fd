//! Errors of the task manager.

use sluice_core::OperatorError;

/// What can go wrong while running tasks or exchanging data.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// An operator failed.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// A data-plane frame could not be encoded or decoded.
    #[error("data exchange encoding: {0}")]
    Ipc(String),
    /// A remote producer could not be reached or broke the connection.
    #[error("data exchange with {peer}: {message}")]
    Exchange {
        /// Address of the other task manager.
        peer: String,
        /// What failed.
        message: String,
    },
    /// The deployment message is inconsistent.
    #[error("invalid deployment: {0}")]
    Deployment(String),
    /// A downstream task went away (it failed or was canceled).
    #[error("downstream task is gone")]
    DownstreamGone,
}

impl TaskError {
    /// Wraps an Arrow IPC error.
    pub fn ipc(e: arrow::error::ArrowError) -> Self {
        TaskError::Ipc(e.to_string())
    }
}
