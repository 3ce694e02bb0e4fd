//! Table connectors, looked up by the `connector` option in the [`registry`]. Each reads
//! Apache Flink's option names; [`validate`] checks a table's options when the table is
//! created, and `create_source` / `create_sink` (feature `runtime`) build running
//! instances in a task.
//!
//! Options every sink accepts: `sink.parallelism`, and `sink.rows-per-second`, which paces
//! the sink to protect a slow downstream system (and makes backpressure testable).

#![deny(missing_docs)]

pub mod blackhole;
pub mod datagen;
pub mod filesystem;
pub mod format;
pub mod jdbc;
pub mod kafka;
pub mod lanes;
pub mod nexmark;
pub mod print;
pub mod registry;

#[cfg(feature = "runtime")]
use arrow::record_batch::RecordBatch;
#[cfg(feature = "runtime")]
use async_trait::async_trait;
#[cfg(feature = "runtime")]
use sluice_core::rate::RateLimiter;
#[cfg(feature = "runtime")]
use sluice_core::{Collector, Operator, Source, TaskContext};
use sluice_proto::ConnectorSpec;

use registry::{Connector, LookupFactory, SinkFactory, SourceFactory};
use sluice_core::lookup::LookupOptions;
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
    /// Looked up by key (`JOIN t FOR SYSTEM_TIME AS OF ...`).
    Lookup,
}

/// The roles a connector can play (none for an unknown connector).
pub fn roles(connector: &str) -> Vec<Role> {
    registry::find(connector).map_or_else(Vec::new, |c| c.roles().to_vec())
}

/// True when a scan of the table `spec` describes ends (see [`Connector::bounded`]).
pub fn bounded(spec: &ConnectorSpec) -> bool {
    registry::find(&spec.connector).is_some_and(|c| c.bounded(spec))
}

/// What makes a scan of a `connector` table end (see [`Connector::how_to_bound`]).
pub fn how_to_bound(connector: &str) -> Option<&'static str> {
    registry::find(connector).and_then(|c| c.how_to_bound())
}

/// What a scan of the table `spec` describes can take from the planner.
pub fn pushdown(spec: &ConnectorSpec) -> registry::Pushdown {
    registry::find(&spec.connector).map_or_else(Default::default, |c| c.pushdown(spec))
}

/// Rows per batch that sources emit and exchanges buffer.
pub const DEFAULT_BATCH_ROWS: usize = 1024;

fn context(spec: &ConnectorSpec) -> String {
    format!("table '{}' (connector '{}')", spec.table, spec.connector)
}

fn check_connector(spec: &ConnectorSpec, role: Role) -> Result<&'static dyn Connector> {
    let what = match role {
        Role::Source => "read from",
        Role::Sink => "written to",
        Role::Lookup => "looked up (FOR SYSTEM_TIME AS OF)",
    };
    if spec.connector.is_empty() {
        return Err(OperatorError::config(
            format!("table '{}'", spec.table),
            "missing option 'connector'; add e.g. 'connector' = 'datagen' to its WITH clause",
        ));
    }
    let found = registry::find(&spec.connector);
    if let Some(connector) = found.filter(|c| c.roles().contains(&role)) {
        return Ok(connector);
    }
    let all: Vec<&str> = registry::CONNECTORS.iter().map(|c| c.name()).collect();
    let message = if found.is_some() {
        let known = registry::names_for(role);
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
        Role::Source | Role::Lookup => "scan.parallelism",
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
        Role::Source => source_factory(spec).map(|_| ()),
        Role::Sink => sink_factory(spec).map(|_| ()),
        Role::Lookup => lookup_factory(spec).map(|_| ()),
    }
}

/// Parses and checks the options of a lookup table: its connector's, and the cache and
/// retry options every lookup table shares.
pub fn lookup_factory(spec: &ConnectorSpec) -> Result<(Box<dyn LookupFactory>, LookupOptions)> {
    let connector = check_connector(spec, Role::Lookup)?;
    let mut options = Options::new(context(spec), &spec.options);
    options.declare("connector");
    options.declare("scan.parallelism");
    options.declare("sink.parallelism");
    options.declare("sink.rows-per-second");
    let lookup = LookupOptions::parse(&mut options)?;
    let factory = connector.lookup(spec, &mut options, decode_schema(&spec.schema)?)?;
    options.finish()?;
    Ok((factory, lookup))
}

/// Builds the lookups of `spec` by `lookup_columns`, with its cache and retry options.
#[cfg(feature = "runtime")]
pub fn create_lookup(
    spec: &ConnectorSpec,
    lookup_columns: &[String],
) -> Result<(std::sync::Arc<dyn sluice_core::lookup::LookupSource>, LookupOptions)> {
    let (factory, options) = lookup_factory(spec)?;
    Ok((factory.build(lookup_columns)?, options))
}

/// Parses and checks the options of a source table.
pub fn source_factory(spec: &ConnectorSpec) -> Result<Box<dyn SourceFactory>> {
    let connector = check_connector(spec, Role::Source)?;
    let schema = decode_schema(&spec.schema)?;
    let mut options = Options::new(context(spec), &spec.options);
    options.declare("connector");
    if let Some((column, key)) = spec.metadata.iter().next().filter(|_| !connector.provides_metadata()) {
        return Err(options.error(format!(
            "metadata column '{column}' (FROM '{key}'): connector '{}' provides no metadata; metadata columns come with \
             connectors that have them, such as kafka",
            spec.connector
        )));
    }
    let factory = connector.source(spec, &mut options, schema)?;
    options.finish()?;
    Ok(factory)
}

/// Builds a source instance for `spec`.
#[cfg(feature = "runtime")]
pub fn create_source(spec: &ConnectorSpec, batch_rows: usize) -> Result<Box<dyn Source>> {
    Ok(source_factory(spec)?.build(batch_rows))
}

/// Parses and checks the options of a sink table; returns them with the
/// `sink.rows-per-second` pace, if any.
pub fn sink_factory(spec: &ConnectorSpec) -> Result<(Box<dyn SinkFactory>, Option<f64>)> {
    let connector = check_connector(spec, Role::Sink)?;
    let mut options = Options::new(context(spec), &spec.options);
    options.declare("connector");
    options.declare("sink.parallelism");
    let rate: Option<f64> = options.parse("sink.rows-per-second", "a positive number")?;
    let factory = connector.sink(spec, &mut options, decode_schema(&spec.schema)?)?;
    options.finish()?;
    match rate {
        Some(r) if !(r > 0.0 && r.is_finite()) => {
            Err(options.error("option 'sink.rows-per-second' must be a positive number"))
        }
        _ => Ok((factory, rate)),
    }
}

/// Builds a sink instance for `spec`.
#[cfg(feature = "runtime")]
pub fn create_sink(spec: &ConnectorSpec) -> Result<Box<dyn Operator>> {
    let (factory, rate) = sink_factory(spec)?;
    let sink = factory.build();
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

    async fn stop_with_savepoint(&mut self) -> Result<()> {
        self.inner.stop_with_savepoint().await
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.inner.deadline()
    }

    fn accepts_input(&self) -> bool {
        self.inner.accepts_input()
    }

    async fn on_timer(&mut self, out: &mut Collector) -> Result<()> {
        self.inner.on_timer(out).await
    }

    fn metrics(&self) -> Vec<sluice_core::metrics::Metric> {
        self.inner.metrics()
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
            primary_key: Vec::new(),
            ..Default::default()
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
    fn every_connector_is_registered_once_with_its_roles() {
        let names: Vec<&str> = registry::CONNECTORS.iter().map(|c| c.name()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "{names:?}");
        assert_eq!(registry::names_for(Role::Source), vec!["datagen", "filesystem", "kafka", "nexmark", "jdbc"]);
        assert_eq!(
            registry::names_for(Role::Sink),
            vec!["filesystem", "kafka", "upsert-kafka", "print", "blackhole", "jdbc"]
        );
        assert_eq!(registry::names_for(Role::Lookup), vec!["filesystem", "jdbc"]);
        assert_eq!(roles("kafka"), vec![Role::Source, Role::Sink]);
        assert!(roles("nope").is_empty());
        let err = validate(&spec("blackhole", &[]), Role::Source).unwrap_err().to_string();
        assert!(err.contains("such tables use datagen, filesystem, kafka, nexmark, jdbc"), "{err}");
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
