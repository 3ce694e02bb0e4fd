//! Projection: selects (and renames) input columns.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use sluice_core::{Collector, Operator, OperatorError, Result};

/// Emits the chosen columns of each batch under the output schema's names.
pub struct Project {
    columns: Vec<usize>,
    output_schema: SchemaRef,
}

impl Project {
    /// A projection of `columns` producing `output_schema`.
    pub fn new(columns: Vec<usize>, output_schema: SchemaRef) -> Self {
        Project { columns, output_schema }
    }
}

#[async_trait]
impl Operator for Project {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let columns = self
            .columns
            .iter()
            .map(|&c| {
                batch.columns().get(c).cloned().ok_or_else(|| {
                    OperatorError::InvalidPlan(format!(
                        "projection of column {c} of a {}-column batch",
                        batch.num_columns()
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let projected = RecordBatch::try_new(self.output_schema.clone(), columns)
            .map_err(|e| OperatorError::arrow("projection", e))?;
        out.batch(projected);
        Ok(())
    }
}
