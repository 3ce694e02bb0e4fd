//! Process configuration: command-line flags win over `SLUICE_*` environment variables
//! (both handled by clap), which win over a TOML file given with `--config`, which wins
//! over the defaults.
//!
//! ```toml
//! [jobmanager]
//! rpc-address = "0.0.0.0:6123"
//! checkpoint-dir = "s3://checkpoints/sluice"   # or a shared directory
//! ha-storage-dir = "s3://checkpoints/sluice/_jobmanager"   # the default; "off": none
//! heartbeat-interval = "1 s"
//! heartbeat-timeout = "5 s"
//! slot-request-timeout = "5 min"
//! rest-address = "127.0.0.1:8081"
//!
//! [s3]                                # Flink's s3.* options
//! endpoint = "http://minio:9000"
//! access-key = "sluice"
//! secret-key = "..."                  # better: SLUICE_S3_SECRET_KEY
//! path-style-access = true
//!
//! [taskmanager]
//! jobmanager = "jobmanager:6123"
//! slots = 4
//! bind = "0.0.0.0:6121"
//! advertise-host = "taskmanager-1"
//! secrets-file = "/etc/sluice/secrets"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Settings of `sluice jobmanager`.
    #[serde(default)]
    pub jobmanager: JobManagerSection,
    /// Settings of `sluice taskmanager`.
    #[serde(default)]
    pub taskmanager: TaskManagerSection,
    /// S3-compatible storage, for every process.
    #[serde(default)]
    pub s3: S3Section,
}

/// `[s3]` settings (Flink's `s3.*` options).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct S3Section {
    /// `s3.endpoint`.
    pub endpoint: Option<String>,
    /// `s3.access-key`.
    pub access_key: Option<String>,
    /// `s3.secret-key`.
    pub secret_key: Option<String>,
    /// `s3.region`.
    pub region: Option<String>,
    /// `s3.path.style.access`.
    pub path_style_access: Option<bool>,
}

/// `[jobmanager]` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobManagerSection {
    /// RPC listen address.
    pub rpc_address: Option<String>,
    /// Checkpoint storage: a directory or s3://bucket/prefix.
    pub checkpoint_dir: Option<String>,
    /// Where jobs are kept for a restarted jobmanager, or `off`.
    pub ha_storage_dir: Option<String>,
    /// Heartbeat interval, e.g. "1 s".
    pub heartbeat_interval: Option<String>,
    /// Heartbeat timeout, e.g. "5 s".
    pub heartbeat_timeout: Option<String>,
    /// Slot request timeout, e.g. "5 min".
    pub slot_request_timeout: Option<String>,
    /// REST API address, or `off`.
    pub rest_address: Option<String>,
}

/// `[taskmanager]` settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskManagerSection {
    /// Jobmanager address.
    pub jobmanager: Option<String>,
    /// Task slots.
    pub slots: Option<u32>,
    /// Listen address.
    pub bind: Option<String>,
    /// Host name advertised to other processes.
    pub advertise_host: Option<String>,
    /// Secrets file (`NAME=value` lines).
    pub secrets_file: Option<PathBuf>,
    /// Local directory for keyed state.
    pub local_dir: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads `path`, or returns the defaults when no file is given.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let Some(path) = path else { return Ok(ConfigFile::default()) };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file '{}'", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file '{}'", path.display()))
    }
}

/// Configures this process's S3 storage from flags (and environment), over the file's
/// `[s3]` section.
pub fn configure_s3(args: &crate::S3Args, file: S3Section) {
    sluice_storage::configure_s3(sluice_storage::S3Options {
        endpoint: args.s3_endpoint.clone().or(file.endpoint),
        access_key: args.s3_access_key.clone().or(file.access_key),
        secret_key: args.s3_secret_key.clone().or(file.secret_key),
        region: args.s3_region.clone().or(file.region),
        path_style_access: args.s3_path_style_access.or(file.path_style_access),
    });
}

/// Parses a checkpoint storage location setting, naming the setting on error.
pub fn location(name: &str, value: &str) -> Result<sluice_storage::Location> {
    sluice_storage::Location::parse(value.trim()).map_err(|e| anyhow::anyhow!("setting '{name}': {e}"))
}

/// Parses a duration setting such as "5 s", naming the setting on error.
pub fn duration(name: &str, value: &str) -> Result<std::time::Duration> {
    sluice_core::options::parse_duration(value).map_err(|e| anyhow::anyhow!("setting '{name}' = '{value}': {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("sluice-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sluice.toml");
        std::fs::write(&file, "[taskmanager]\nslots = 3\njobmanager = \"jm:6123\"\n").unwrap();
        let config = ConfigFile::load(Some(&file)).unwrap();
        assert_eq!(config.taskmanager.slots, Some(3));
        std::fs::write(&file, "[taskmanager]\nslot = 3\n").unwrap();
        let err = format!("{:#}", ConfigFile::load(Some(&file)).unwrap_err());
        assert!(err.contains("unknown field `slot`"), "{err}");
        assert!(duration("x", "30 parsecs").is_err());
    }
}
