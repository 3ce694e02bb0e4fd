//! The connector registry: a connector is one module implementing [`Connector`], listed
//! once in [`CONNECTORS`]. The planner validates a table's options through it when the
//! table is created; a task builds the running source or sink through it (feature
//! `runtime`).

use arrow::datatypes::SchemaRef;
use sluice_core::options::Options;
use sluice_core::{OperatorError, Result};
use sluice_proto::ConnectorSpec;

#[cfg(feature = "runtime")]
use sluice_core::{Operator, Source};

use crate::Role;

/// A source table's checked options, from which a task builds its running source.
pub trait SourceFactory: Send {
    /// The running source, emitting batches of at most `batch_rows` rows.
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>, batch_rows: usize) -> Box<dyn Source>;
}

/// A sink table's checked options, from which a task builds its running sink.
pub trait SinkFactory: Send {
    /// The running sink.
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn Operator>;
}

/// A lookup table's checked options, from which a task builds its running lookups.
pub trait LookupFactory: Send {
    /// The running lookups by `lookup_columns` (columns of the table's physical schema).
    #[cfg(feature = "runtime")]
    fn build(
        self: Box<Self>,
        lookup_columns: &[String],
    ) -> Result<std::sync::Arc<dyn sluice_core::lookup::LookupSource>>;
}

/// The pushdowns a connector's scans take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushdown {
    /// The source produces only the columns the query reads.
    pub projection: bool,
    /// The source skips what the query's conditions rule out.
    pub filters: bool,
}

/// One table connector, looked up by the table's `connector` option.
pub trait Connector: Sync {
    /// The value of the `connector` option that selects it.
    fn name(&self) -> &'static str;

    /// What its tables can be used as.
    fn roles(&self) -> &'static [Role];

    /// True when its tables may declare metadata columns (`METADATA FROM 'key'`).
    fn provides_metadata(&self) -> bool {
        false
    }

    /// True when a scan of the table ends: it reads what is there, or up to a bound (a
    /// batch job reads only such tables).
    fn bounded(&self, _spec: &ConnectorSpec) -> bool {
        false
    }

    /// What makes a scan of the table end, for the error of a batch job over one that does
    /// not (`None`: nothing does).
    fn how_to_bound(&self) -> Option<&'static str> {
        None
    }

    /// What a scan of this table can take from the planner: a projection (only some
    /// columns produced) and conditions (rows, files or partitions skipped).
    fn pushdown(&self, _spec: &ConnectorSpec) -> Pushdown {
        Pushdown::default()
    }

    /// Parses and checks a source table's options (taking each option it reads from
    /// `options`, which reports the ones left over).
    fn source(
        &self,
        spec: &ConnectorSpec,
        _options: &mut Options<'_>,
        _schema: SchemaRef,
    ) -> Result<Box<dyn SourceFactory>> {
        Err(OperatorError::InvalidPlan(format!("connector '{}' has no source", spec.connector)))
    }

    /// Parses and checks a sink table's options.
    fn sink(
        &self,
        spec: &ConnectorSpec,
        _options: &mut Options<'_>,
        _schema: SchemaRef,
    ) -> Result<Box<dyn SinkFactory>> {
        Err(OperatorError::InvalidPlan(format!("connector '{}' has no sink", spec.connector)))
    }

    /// Parses and checks a lookup table's options (those of its connector; the cache and
    /// retry options every lookup table shares are read by [`crate::lookup_factory`]).
    fn lookup(
        &self,
        spec: &ConnectorSpec,
        _options: &mut Options<'_>,
        _schema: SchemaRef,
    ) -> Result<Box<dyn LookupFactory>> {
        Err(OperatorError::InvalidPlan(format!("connector '{}' has no lookups", spec.connector)))
    }
}

/// Every connector. Adding one is its module and one line here.
pub static CONNECTORS: &[&dyn Connector] = &[
    &crate::datagen::Datagen,
    &crate::filesystem::Filesystem,
    &crate::kafka::Kafka,
    &crate::nexmark::Nexmark,
    &crate::kafka::UpsertKafka,
    &crate::print::Print,
    &crate::blackhole::Blackhole,
    &crate::jdbc::Jdbc,
];

/// The connector named `name`.
pub fn find(name: &str) -> Option<&'static dyn Connector> {
    CONNECTORS.iter().copied().find(|c| c.name() == name)
}

/// The names of the connectors that can play `role`, in registry order.
pub fn names_for(role: Role) -> Vec<&'static str> {
    CONNECTORS.iter().filter(|c| c.roles().contains(&role)).map(|c| c.name()).collect()
}
