//! `sluice jobmanager` and `sluice taskmanager`: the cluster processes.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sluice_core::secrets::SecretSources;
use sluice_jobmanager::{BoundJobManager, JobManagerConfig};
use sluice_taskmanager::{TaskManager, TaskManagerConfig};

use crate::config::{duration, ConfigFile};
use crate::{JobManagerArgs, TaskManagerArgs};

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

fn socket_address(name: &str, value: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    value
        .to_socket_addrs()
        .with_context(|| format!("{name} '{value}' is not a HOST:PORT address"))?
        .next()
        .with_context(|| format!("{name} '{value}' does not resolve to an address"))
}

/// A HOST:PORT address, or `None` for `off`.
pub fn optional_address(name: &str, value: &str) -> Result<Option<SocketAddr>> {
    match value.trim() {
        "off" | "none" | "" => Ok(None),
        value => socket_address(name, value).map(Some),
    }
}

/// Builds the jobmanager configuration from flags, environment and file.
pub fn jobmanager_config(args: &JobManagerArgs) -> Result<JobManagerConfig> {
    let whole = ConfigFile::load(args.config.as_deref())?;
    crate::config::configure_s3(&args.s3, whole.s3);
    let file = whole.jobmanager;
    let mut config = JobManagerConfig::default();
    if let Some(address) = args.rpc_address.as_ref().or(file.rpc_address.as_ref()) {
        config.rpc_address = socket_address("rpc-address", address)?;
    }
    config.checkpoint_dir = match args.checkpoint_dir.as_ref().or(file.checkpoint_dir.as_ref()) {
        Some(dir) => Some(crate::config::location("checkpoint-dir", dir)?),
        None => None,
    };
    config.ha_storage_dir = match args.ha_storage_dir.as_ref().or(file.ha_storage_dir.as_ref()) {
        Some(off) if off.trim() == "off" => None,
        Some(dir) => Some(crate::config::location("ha-storage-dir", dir)?),
        // Jobs are recoverable wherever checkpoints are kept.
        None => config.checkpoint_dir.as_ref().map(|d| d.join("_jobmanager")),
    };
    if let Some(v) = args.heartbeat_interval.as_ref().or(file.heartbeat_interval.as_ref()) {
        config.heartbeat_interval = duration("heartbeat-interval", v)?;
    }
    if let Some(v) = args.heartbeat_timeout.as_ref().or(file.heartbeat_timeout.as_ref()) {
        config.heartbeat_timeout = duration("heartbeat-timeout", v)?;
    }
    if let Some(v) = args.slot_request_timeout.as_ref().or(file.slot_request_timeout.as_ref()) {
        config.slot_request_timeout = duration("slot-request-timeout", v)?;
    }
    let rest = args.rest_address.as_ref().or(file.rest_address.as_ref()).map_or("127.0.0.1:8081", |s| s.as_str());
    config.rest_address = optional_address("rest-address", rest)?;
    config.auth_token = super::client::token();
    anyhow::ensure!(
        config.heartbeat_interval < config.heartbeat_timeout,
        "heartbeat-interval ({:?}) must be shorter than heartbeat-timeout ({:?})",
        config.heartbeat_interval,
        config.heartbeat_timeout
    );
    Ok(config)
}

/// `sluice jobmanager`.
pub async fn jobmanager(args: JobManagerArgs) -> Result<ExitCode> {
    let config = jobmanager_config(&args)?;
    let bound = BoundJobManager::bind(config).await?.with_sql_planner(super::client::sql_planner());
    bound.serve(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `sluice taskmanager`.
pub async fn taskmanager(args: TaskManagerArgs) -> Result<ExitCode> {
    let whole = ConfigFile::load(args.config.as_deref())?;
    crate::config::configure_s3(&args.s3, whole.s3);
    let file = whole.taskmanager;
    let jobmanager = args
        .jobmanager
        .or(file.jobmanager)
        .context("no jobmanager address: pass --jobmanager HOST:PORT (or set SLUICE_JOBMANAGER)")?;
    let slots = args.slots.or(file.slots).unwrap_or(1);
    anyhow::ensure!(slots > 0, "--slots must be at least 1");
    let mut config = TaskManagerConfig::new(jobmanager, slots);
    if let Some(bind) = args.bind.or(file.bind) {
        config.bind = socket_address("bind", &bind)?;
    }
    config.advertise_host = args.advertise_host.or(file.advertise_host);
    if let Some(path) = args.secrets_file.or(file.secrets_file) {
        config.secrets = SecretSources::with_file(&path)?;
    }
    if let Some(dir) = args.local_dir.or(file.local_dir) {
        config.local_dir = dir;
    }
    config.auth_token = super::client::token();
    TaskManager::run(config, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
