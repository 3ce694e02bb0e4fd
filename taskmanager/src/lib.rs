//! Sluice's task manager: runs subtasks in slots, exchanges data with other task managers
//! over gRPC streams of Arrow IPC frames, registers with the jobmanager and heartbeats.

#![deny(missing_docs)]

pub mod deploy;
pub mod error;
pub mod exchange;
pub mod factory;
pub mod faults;
pub mod input;
pub mod ipc;
pub mod list_state;
pub mod metrics;
pub mod output;
pub mod runtime;
pub mod state;
pub mod task;

pub use output::ExchangeLimits;
pub use runtime::{TaskManager, TaskManagerConfig};

/// HTTP/2 stream window of data channels: how many bytes may be in flight on one remote
/// channel (beyond its bounded queues). Small, so wide shuffles stay small in memory.
pub const STREAM_WINDOW: u32 = 256 << 10;
/// HTTP/2 connection window between two task managers.
pub const CONNECTION_WINDOW: u32 = 4 << 20;
/// Largest data frame accepted.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
