//! Jobmanager settings.

use std::net::SocketAddr;
use std::time::Duration;

/// How a jobmanager is configured.
#[derive(Debug, Clone)]
pub struct JobManagerConfig {
    /// Address the RPC server listens on (port 0 picks a free one).
    pub rpc_address: SocketAddr,
    /// Where checkpoints are stored: a directory every process shares, or S3-compatible
    /// storage (`s3://bucket/prefix`).
    pub checkpoint_dir: Option<sluice_storage::Location>,
    /// Where jobs are kept so that a restarted jobmanager recovers them (Flink's
    /// `high-availability.storageDir`); `None`: a restarted jobmanager starts empty.
    pub ha_storage_dir: Option<sluice_storage::Location>,
    /// How often task managers send heartbeats.
    pub heartbeat_interval: Duration,
    /// A task manager silent for this long is declared lost (Flink's default is 50 s).
    pub heartbeat_timeout: Duration,
    /// How long a job may wait for enough free slots before it fails.
    pub slot_request_timeout: Duration,
    /// Address of the REST API, metrics and dashboard (`None`: not served).
    pub rest_address: Option<SocketAddr>,
    /// The token every gRPC call and REST request must carry (`None`: none required).
    pub auth_token: Option<sluice_proto::auth::Token>,
}

impl Default for JobManagerConfig {
    fn default() -> Self {
        JobManagerConfig {
            rpc_address: SocketAddr::from(([127, 0, 0, 1], 6123)),
            checkpoint_dir: None,
            ha_storage_dir: None,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            slot_request_timeout: Duration::from_secs(300),
            rest_address: None,
            auth_token: None,
        }
    }
}
