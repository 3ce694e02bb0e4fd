//! Generated gRPC services and messages of Sluice (see `proto/sluice.proto`).
//!
//! Besides the generated code, only [`auth`] lives here: the control plane's token check.
//! The CLI talks to the jobmanager through [`job_manager_client`], task managers register through [`resource_manager_client`],
//! the jobmanager deploys through [`task_executor_client`], and task managers exchange
//! data through [`data_exchange_client`].

#![allow(missing_docs, clippy::all)]

pub mod auth;

tonic::include_proto!("sluice.v1");

/// The largest gRPC message any Sluice client or server sends or accepts, the same on
/// every service, so whatever one process may send, the other accepts (acknowledgements
/// carry operator list state; deployments carry restored state). A message past it is
/// refused by its sender with a reason.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;
