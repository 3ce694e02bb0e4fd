//! Sluice's data model and operators.
//!
//! Data moves between operators as Arrow [`RecordBatch`](arrow::record_batch::RecordBatch)es,
//! interleaved in order with control signals ([`Message`]). Sources implement [`Source`];
//! transforms and sinks implement [`Operator`]. Operators are described on the wire by the
//! protobuf [`OperatorSpec`](sluice_proto::OperatorSpec) and built by [`factory`].

pub mod factory;
pub mod connectors;
pub mod durable;
pub mod error;
pub mod expr;
pub mod graph;
pub mod keys;
pub mod message;
pub mod ml;
pub mod operator;
pub mod options;
pub mod rate;
pub mod schema;
pub mod state;
pub mod transforms;

pub use error::{OperatorError, Result};
pub use message::{Barrier, Message};
pub use operator::{Collector, Operator, Source, SourcePoll, TaskContext};
pub use state::{Distribution, KeyedStateStore, OperatorList, OperatorState, StateInit};
