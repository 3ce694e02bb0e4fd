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
