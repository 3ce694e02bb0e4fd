//! Sluice's jobmanager: accepts jobs from the CLI, keeps the registry of task managers and
//! their slots, places and deploys subtasks, tracks task states into job states, and
//! detects lost task managers by their heartbeats.

#![deny(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod metrics;
pub mod placement;
pub mod recovery;
pub mod rest;
pub mod server;
pub mod state;

pub use config::JobManagerConfig;
pub use server::{BoundJobManager, JobManagerError, SqlPlanner};
