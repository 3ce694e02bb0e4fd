//! Errors raised while configuring or running operators.

use arrow::error::ArrowError;

/// Result alias for operator code.
pub type Result<T, E = OperatorError> = std::result::Result<T, E>;

/// What went wrong in an operator, phrased for the person running the job.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// A connector or operator option is missing, unknown or malformed.
    #[error("{context}: {message}")]
    Config {
        /// Where the option belongs, e.g. "table 'orders' (connector 'datagen')".
        context: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{action} '{path}': {source}")]
    Io {
        /// What was attempted ("cannot read", "cannot create", ...).
        action: &'static str,
        /// The file or directory involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be decoded.
    #[error("bad record in {location}: {message} (set '{skip_option}' = 'true' to skip and count bad records)")]
    BadRecord {
        /// File and line, or topic, partition and offset.
        location: String,
        /// The parse error.
        message: String,
        /// The option that skips such records.
        skip_option: &'static str,
    },
    /// A file does not hold what its table says (a damaged Parquet file, a column of
    /// another type).
    #[error("file '{path}': {message}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An Arrow computation failed.
    #[error("{context}: {source}")]
    Arrow {
        /// What the operator was doing.
        context: String,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },
    /// An expression could not be evaluated on a batch (e.g. a division by zero).
    #[error("cannot evaluate {0}")]
    Evaluation(String),
    /// Checkpointed state could not be read, written or restored.
    #[error("state: {0}")]
    State(String),
    /// The job plan handed to an operator is inconsistent (a bug in the planner).
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
}

impl OperatorError {
    /// A configuration error for `context` (a table, model or operator).
    pub fn config(context: impl Into<String>, message: impl Into<String>) -> Self {
        OperatorError::Config { context: context.into(), message: message.into() }
    }

    /// Wraps an Arrow error with what the operator was doing.
    pub fn arrow(context: impl Into<String>, source: ArrowError) -> Self {
        OperatorError::Arrow { context: context.into(), source }
    }
}
