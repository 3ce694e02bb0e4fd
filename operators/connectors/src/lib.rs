//! Table connectors, looked up by the `connector` option. Each reads Apache Flink's option
//! names; [`validate`] checks a table's options when the plan is made, and
//! `create_source` / `create_sink` (feature `runtime`) build running instances in a task.
//!
//! Options every sink accepts: `sink.parallelism`, and `sink.rows-per-second`, which paces
//! the sink to protect a slow downstream system (and makes backpressure testable).

#![deny(missing_docs)]

pub mod blackhole;
pub mod datagen;
pub mod filesystem;
pub mod format;
pub mod kafka;
pub mod print;

#[cfg(feature = "runtime")]
use arrow::record_batch::RecordBatch;
#[cfg(feature = "runtime")]
use async_trait::async_trait;
#[cfg(feature = "runtime")]
use sluice_core::rate::RateLimiter;
#[cfg(feature = "runtime")]
use sluice_core::{Collector, Operator, Source, TaskContext};
use sluice_proto::ConnectorSpec;

use sluice_core::options::{closest, Options};
use sluice_core::schema::decode_schema;
use sluice_core::{OperatorError, Result};

/// Where a table is used in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Read from (`FROM t`).
    Source,
    /// Written to (`INSERT INTO t`).
    Sink,
}

const SOURCES: &[&str] = &["datagen", "filesystem", "kafka"];
const SINKS: &[&str] = &["filesystem", "kafka", "print", "blackhole"];

/// The roles a connector can play (none for an unknown connector).
pub fn roles(connector: &str) -> Vec<Role> {
    let mut roles = Vec::new();
    if SOURCES.contains(&connector) {
        roles.push(Role::Source);
    }
    if SINKS.contains(&connector) {
        roles.push(Role::Sink);
    }
    roles
}

/// Rows per batch that sources emit and exchanges buffer.
pub const DEFAULT_BATCH_ROWS: usize = 1024;

fn context(spec: &ConnectorSpec) -> String {
    format!("table '{}' (connector '{}')", spec.table, spec.connector)
}

fn check_connector(spec: &ConnectorSpec, role: Role) -> Result<()> {
    let (known, what) = match role {
        Role::Source => (SOURCES, "read from"),
        Role::Sink => (SINKS, "written to"),
    };
    if spec.connector.is_empty() {
        return Err(OperatorError::config(
            format!("table '{}'", spec.table),
            "missing option 'connector'; add e.g. 'connector' = 'datagen' to its WITH clause",
        ));
    }
    if known.contains(&spec.connector.as_str()) {
        return Ok(());
    }
    let all: Vec<&str> = SOURCES.iter().chain(SINKS).copied().collect();
    let message = if all.contains(&spec.connector.as_str()) {
        format!("connector '{}' cannot be {what}; such tables use {}", spec.connector, known.join(", "))
    } else if let Some(close) = closest(&spec.connector, all.iter().copied()) {
        format!("unknown connector '{}'; did you mean '{close}'?", spec.connector)
    } else {
        format!("unknown connector '{}'; available: {}", spec.connector, all.join(", "))
    };
    Err(OperatorError::config(format!("table '{}'", spec.table), message))
}

/// Parallelism a table asks for (`scan.parallelism` or `sink.parallelism`), if any.
pub fn requested_parallelism(spec: &ConnectorSpec, role: Role) -> Result<Option<u32>> {
    let key = match role {
        Role::Source => "scan.parallelism",
        Role::Sink => "sink.parallelism",
    };
    let mut options = Options::new(context(spec), &spec.options);
    match options.parse::<u32>(key, "a positive integer")? {
        Some(0) => Err(options.error(format!("option '{key}' must be at least 1"))),
        p => Ok(p),
    }
}

/// Checks a table's options for `role`, reporting the first problem.
pub fn validate(spec: &ConnectorSpec, role: Role) -> Result<()> {
    check_connector(spec, role)?;
    requested_parallelism(spec, role)?;
    match role {
        Role::Source => source_config(spec).map(|_| ()),
        Role::Sink => sink_config(spec).map(|_| ()),
    }
}

/// A source table's parsed options.
pub enum SourceConfig {
    /// `datagen`.
    Datagen(datagen::DatagenConfig),
    /// `filesystem`.
    File(filesystem::FileSourceConfig),
    /// `kafka`.
    Kafka(kafka::KafkaConfig),
}

/// Parses and checks the options of a source table.
pub fn source_config(spec: &ConnectorSpec) -> Result<SourceConfig> {
    check_connector(spec, Role::Source)?;
    let schema = decode_schema(&spec.schema)?;
    let mut options = Options::new(context(spec), &spec.options);
    options.declare("connector");
    if let Some((column, key)) = spec.metadata.iter().next().filter(|_| spec.connector != "kafka") {
        return Err(options.error(format!(
            "metadata column '{column}' (FROM '{key}'): connector '{}' provides no metadata; metadata columns come with \
             connectors that have them, such as kafka",
            spec.connector
        )));
    }
    let config = match spec.connector.as_str() {
        "datagen" => SourceConfig::Datagen(datagen::DatagenConfig::parse(&mut options, schema)?),
        "filesystem" => SourceConfig::File(filesystem::FileSourceConfig::parse(&mut options, schema)?),
        "kafka" => SourceConfig::Kafka(kafka::KafkaConfig::parse(&mut options, &spec.table, schema, &spec.metadata)?),
        other => return Err(OperatorError::InvalidPlan(format!("no source for connector '{other}'"))),
    };
    options.finish()?;
    Ok(config)
}

/// Builds a source instance for `spec`.
#[cfg(feature = "runtime")]
pub fn create_source(spec: &ConnectorSpec, batch_rows: usize) -> Result<Box<dyn Source>> {
    Ok(match source_config(spec)? {
        SourceConfig::Datagen(config) => Box::new(datagen::DatagenSource::new(config, batch_rows)),
        SourceConfig::File(config) => Box::new(filesystem::FileSource::new(config, batch_rows)),
        SourceConfig::Kafka(config) => Box::new(kafka::KafkaSource::new(config, batch_rows)),
    })
}

/// A sink table's parsed options.
pub enum SinkConfig {
    /// `filesystem`.
    File(filesystem::FileSinkConfig),
    /// `kafka`.
    Kafka(kafka::KafkaConfig),
    /// `print`.
    Print(print::PrintConfig),
    /// `blackhole`.
    Blackhole,
}

/// Parses and checks the options of a sink table; returns them with the
/// `sink.rows-per-second` pace, if any.
pub fn sink_config(spec: &ConnectorSpec) -> Result<(SinkConfig, Option<f64>)> {
    check_connector(spec, Role::Sink)?;
    let mut options = Options::new(context(spec), &spec.options);
    options.declare("connector");
    options.declare("sink.parallelism");
    let rate: Option<f64> = options.parse("sink.rows-per-second", "a positive number")?;
    let kind = match spec.connector.as_str() {
        "filesystem" => SinkConfig::File(filesystem::FileSinkConfig::parse(&mut options)?),
        "kafka" => {
            let schema = decode_schema(&spec.schema)?;
            let config = kafka::KafkaConfig::parse(&mut options, &spec.table, schema, &Default::default())?;
            config.check_sink()?;
            SinkConfig::Kafka(config)
        }
        "print" => SinkConfig::Print(print::PrintConfig::parse(&mut options)?),
        "blackhole" => SinkConfig::Blackhole,
        other => return Err(OperatorError::InvalidPlan(format!("no sink for connector '{other}'"))),
    };
    options.finish()?;
    match rate {
        Some(r) if !(r > 0.0 && r.is_finite()) => {
            Err(options.error("option 'sink.rows-per-second' must be a positive number"))
        }
        _ => Ok((kind, rate)),
    }
}

/// Builds a sink instance for `spec`.
#[cfg(feature = "runtime")]
pub fn create_sink(spec: &ConnectorSpec) -> Result<Box<dyn Operator>> {
    let (kind, rate) = sink_config(spec)?;
    let sink: Box<dyn Operator> = match kind {
        SinkConfig::File(config) => Box::new(filesystem::FileSink::new(config)),
        SinkConfig::Kafka(config) => Box::new(kafka::KafkaSink::new(config)),
        SinkConfig::Print(config) => Box::new(print::PrintSink::new(config)),
        SinkConfig::Blackhole => Box::new(blackhole::BlackholeSink),
    };
    Ok(match rate {
        None => sink,
        Some(r) => Box::new(Paced { inner: sink, limiter: RateLimiter::new(r) }),
    })
}

/// A sink slowed to a number of rows per second.
#[cfg(feature = "runtime")]
struct Paced {
    inner: Box<dyn Operator>,
    limiter: RateLimiter,
}

#[cfg(feature = "runtime")]
#[async_trait]
impl Operator for Paced {
    async fn open(&mut self, ctx: &TaskContext) -> Result<()> {
        self.inner.open(ctx).await
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        self.limiter.acquire(batch.num_rows() as u64).await;
        self.inner.process_batch(batch, out).await
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        self.inner.on_watermark(watermark, out).await
    }

    async fn on_barrier(&mut self, barrier: sluice_core::Barrier, out: &mut Collector) -> Result<()> {
        self.inner.on_barrier(barrier, out).await
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        self.inner.finish(out).await
    }

    fn uses_keyed_state(&self) -> bool {
        self.inner.uses_keyed_state()
    }

    async fn initialize_state(&mut self, init: sluice_core::StateInit) -> Result<()> {
        self.inner.initialize_state(init).await
    }

    async fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<sluice_core::OperatorState> {
        self.inner.snapshot_state(checkpoint_id).await
    }

    async fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        self.inner.notify_checkpoint_complete(checkpoint_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use sluice_core::schema::encode_schema;

    fn spec(connector: &str, pairs: &[(&str, &str)]) -> ConnectorSpec {
        ConnectorSpec {
            table: "t".into(),
            connector: connector.into(),
            options: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            schema: encode_schema(&Schema::new(vec![Field::new("a", DataType::Int64, false)])),
            metadata: Default::default(),
        }
    }

    #[test]
    fn unknown_connector_suggests_the_closest() {
        let err = validate(&spec("datagne", &[]), Role::Source).unwrap_err().to_string();
        assert!(err.contains("did you mean 'datagen'"), "{err}");
        let err = validate(&spec("print", &[]), Role::Source).unwrap_err().to_string();
        assert!(err.contains("cannot be read from"), "{err}");
    }

    #[test]
    fn sink_options_are_checked() {
        assert!(validate(&spec("blackhole", &[("sink.rows-per-second", "100")]), Role::Sink).is_ok());
        let err = validate(&spec("print", &[("print-identifer", "x")]), Role::Sink).unwrap_err().to_string();
        assert!(err.contains("did you mean 'print-identifier'"), "{err}");
        let err = validate(&spec("blackhole", &[("sink.parallelism", "0")]), Role::Sink).unwrap_err().to_string();
        assert!(err.contains("at least 1"), "{err}");
    }
}
