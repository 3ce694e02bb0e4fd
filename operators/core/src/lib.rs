//! Sluice's data model and operator framework.
//!
//! Data moves between operators as Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es,
//! interleaved in order with control signals ([`Message`]). Sources implement [`Source`];
//! transforms and sinks implement [`Operator`]. This crate holds what every other crate
//! shares and nothing heavy: plan-time validation (connector and model option helpers,
//! model option schemas, secret masking) needs no Kafka client, ONNX Runtime or HTTP
//! client. Operators live by role in `sluice-connectors`, `sluice-transforms` and
//! `sluice-ml`.

#![deny(missing_docs)]

pub mod async_rows;
pub mod changelog;
pub mod durable;
pub mod error;
#[cfg(any(test, feature = "test-util"))]
pub mod harness;
pub mod job_graph;
pub mod keys;
pub mod lookup;
pub mod message;
pub mod metrics;
pub mod models;
pub mod operator;
pub mod options;
pub mod rate;
pub mod schema;
pub mod secrets;
pub mod state;
pub mod timers;
pub mod watermarks;

pub use error::{OperatorError, Result};
pub use message::{Barrier, Message};
pub use operator::{Collector, Operator, Source, SourcePoll, TaskContext};
pub use state::{Distribution, KeyedStateStore, OperatorList, OperatorState, StateInit};
