//! Watermark generation for a table's `WATERMARK FOR col AS expr`: after each batch the
//! watermark advances to the largest value of `expr` seen so far (bounded
//! out-of-orderness, as Flink does), and is emitted when it moves.

use std::sync::Arc;

use arrow::array::Array;
use arrow::compute::cast;
use arrow::compute::kernels::aggregate::max;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::physical_expr::PhysicalExpr;
use sluice_proto::WatermarkSpec;

use crate::expr::decode_physical;
use crate::schema::decode_schema;
use crate::{Collector, Operator, OperatorError, Result};

/// A running watermark generator.
pub struct WatermarkGenerator {
    expr: Arc<dyn PhysicalExpr>,
    current: i64,
}

impl WatermarkGenerator {
    /// Builds the generator from its description.
    pub fn from_spec(spec: &WatermarkSpec) -> Result<Self> {
        let input = decode_schema(&spec.input_schema)?;
        Ok(WatermarkGenerator { expr: decode_physical(&spec.expression, &input)?, current: i64::MIN })
    }
}

#[async_trait]
impl Operator for WatermarkGenerator {
    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let values = self
            .expr
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| OperatorError::Evaluation(format!("WATERMARK {}: {e}", self.expr)))?;
        let millis = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .and_then(|v| cast(&v, &DataType::Int64))
            .map_err(|e| OperatorError::arrow("WATERMARK expression must be a TIMESTAMP", e))?;
        let highest = max(millis.as_any().downcast_ref::<arrow::array::PrimitiveArray<Int64Type>>().ok_or_else(|| {
            OperatorError::InvalidPlan("watermark values are not integers".into())
        })?);
        out.batch(batch);
        if let Some(highest) = highest {
            if highest > self.current {
                self.current = highest;
                out.watermark(highest);
            }
        }
        Ok(())
    }

    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        // Watermarks from upstream are replaced by the ones generated here, except the final
        // one a bounded input sends at its end.
        if watermark == i64::MAX {
            out.watermark(watermark);
        }
        Ok(())
    }
}
