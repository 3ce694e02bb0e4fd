//! The `blackhole` sink: swallows every row (for benchmarks and tests).

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use sluice_core::{Collector, Operator, Result};

/// A sink that discards its input.
#[derive(Debug, Default)]
pub struct BlackholeSink;

#[async_trait]
impl Operator for BlackholeSink {
    async fn process_batch(&mut self, _batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        Ok(())
    }
}

/// The `blackhole` connector.
pub struct Blackhole;

impl crate::registry::Connector for Blackhole {
    fn name(&self) -> &'static str {
        "blackhole"
    }

    fn roles(&self) -> &'static [crate::Role] {
        &[crate::Role::Sink]
    }

    fn sink(
        &self,
        _spec: &sluice_proto::ConnectorSpec,
        _options: &mut sluice_core::options::Options<'_>,
        _schema: arrow::datatypes::SchemaRef,
    ) -> Result<Box<dyn crate::registry::SinkFactory>> {
        Ok(Box::new(BlackholeSink))
    }
}

impl crate::registry::SinkFactory for BlackholeSink {
    #[cfg(feature = "runtime")]
    fn build(self: Box<Self>) -> Box<dyn Operator> {
        self
    }
}
