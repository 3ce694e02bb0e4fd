//! Watermark generation for a table's `WATERMARK FOR col AS expr`: after each batch the
//! watermark advances to the largest value of `expr` seen so far (bounded
//! out-of-orderness, as Flink does), and is emitted when it moves.
//!
//! With a split column (a Kafka source's partitions), each split keeps its own watermark
//! and the operator emits their minimum, so a slow partition holds event time back; a split
//! silent for the idle timeout stops holding it back until it delivers again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::compute::kernels::aggregate::max;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::physical_expr::PhysicalExpr;
use sluice_proto::WatermarkSpec;

use crate::expr::decode_physical;
use sluice_core::schema::decode_schema;
use sluice_core::{Collector, Operator, OperatorError, Result};

/// A running watermark generator.
pub struct WatermarkGenerator {
    expr: Arc<dyn PhysicalExpr>,
    current: i64,
    split_column: Option<usize>,
    idle_timeout: Option<Duration>,
    /// Per split: its highest watermark and when it last delivered rows.
    splits: HashMap<String, (i64, Instant)>,
}

impl WatermarkGenerator {
    /// Builds the generator from its description.
    pub fn from_spec(spec: &WatermarkSpec) -> Result<Self> {
        let input = decode_schema(&spec.input_schema)?;
        Ok(WatermarkGenerator {
            expr: decode_physical(&spec.expression, &input)?,
            current: i64::MIN,
            split_column: spec.split_column.map(|c| c as usize),
            idle_timeout: (spec.idle_timeout_ms > 0).then(|| Duration::from_millis(spec.idle_timeout_ms)),
            splits: HashMap::new(),
        })
    }

    /// The watermark over the splits: the minimum of those not idle at `now`.
    fn split_watermark(&self, now: Instant) -> Option<i64> {
        let active =
            self.splits.values().filter(|(_, seen)| self.idle_timeout.is_none_or(|t| now.duration_since(*seen) < t));
        active.map(|(w, _)| *w).min().or_else(|| self.splits.values().map(|(w, _)| *w).max())
    }
}

#[async_trait]
impl Operator for WatermarkGenerator {
    async fn on_splits_assigned(&mut self, splits: Vec<String>, out: &mut Collector) -> Result<()> {
        // A split that has not delivered yet holds the watermark back (at its start) like
        // one that is behind, until it delivers or goes idle; otherwise its first rows
        // would come after windows that should have held them.
        if self.split_column.is_some() {
            let now = Instant::now();
            for split in &splits {
                self.splits.entry(split.clone()).or_insert((i64::MIN, now));
            }
        }
        out.message(sluice_core::Message::SplitsAssigned(splits));
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let values = self
            .expr
            .evaluate(&batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| OperatorError::Evaluation(format!("WATERMARK {}: {e}", self.expr)))?;
        let millis = cast(&values, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .and_then(|v| cast(&v, &DataType::Int64))
            .map_err(|e| OperatorError::arrow("WATERMARK expression must be a TIMESTAMP", e))?;
        let millis: &Int64Array = millis.as_primitive::<Int64Type>();
        let highest = match self.split_column {
            None => max(millis),
            Some(column) => {
                let now = Instant::now();
                let splits = batch.column(column).as_string::<i32>();
                for row in 0..batch.num_rows() {
                    if millis.is_null(row) {
                        continue;
                    }
                    let entry = self.splits.entry(splits.value(row).to_string()).or_insert((i64::MIN, now));
                    entry.0 = entry.0.max(millis.value(row));
                    entry.1 = now;
                }
                self.split_watermark(now)
            }
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::encode_expr;
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::prelude::col;
    use sluice_core::schema::encode_schema;

    fn generator(idle_timeout_ms: u64) -> (WatermarkGenerator, Arc<Schema>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("split", DataType::Utf8, false),
        ]));
        let spec = WatermarkSpec {
            input_schema: encode_schema(&schema),
            expression: encode_expr(&col("ts")).unwrap(),
            column: "ts".into(),
            split_column: Some(1),
            idle_timeout_ms,
        };
        (WatermarkGenerator::from_spec(&spec).unwrap(), schema)
    }

    fn batch(schema: &Arc<Schema>, rows: &[(i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampMillisecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            ],
        )
        .unwrap()
    }

    fn watermarks(out: &mut Collector) -> Vec<i64> {
        out.take()
            .into_iter()
            .filter_map(|m| if let sluice_core::Message::Watermark(w) = m { Some(w) } else { None })
            .collect()
    }

    #[tokio::test]
    async fn the_slowest_partition_holds_the_watermark_until_it_is_idle() {
        let (mut g, schema) = generator(50);
        let mut out = Collector::default();
        g.process_batch(batch(&schema, &[(100, "t/0"), (10, "t/1")]), &mut out).await.unwrap();
        assert_eq!(watermarks(&mut out), vec![10], "the minimum over partitions");
        g.process_batch(batch(&schema, &[(200, "t/0")]), &mut out).await.unwrap();
        assert!(watermarks(&mut out).is_empty(), "partition 1 still holds it at 10");
        tokio::time::sleep(Duration::from_millis(80)).await;
        g.process_batch(batch(&schema, &[(300, "t/0")]), &mut out).await.unwrap();
        assert_eq!(watermarks(&mut out), vec![300], "partition 1 is idle and no longer holds it");
    }

    /// A partition assigned but not yet read holds the watermark back: its first rows may
    /// be older than what the other partitions delivered.
    #[tokio::test]
    async fn an_announced_partition_holds_the_watermark_before_its_first_row() {
        let (mut g, schema) = generator(0);
        let mut out = Collector::default();
        g.on_splits_assigned(vec!["t/0".into(), "t/2".into()], &mut out).await.unwrap();
        g.process_batch(batch(&schema, &[(1_000, "t/0"), (2_000, "t/0")]), &mut out).await.unwrap();
        assert!(watermarks(&mut out).is_empty(), "t/2 has delivered nothing yet");
        g.process_batch(batch(&schema, &[(500, "t/2")]), &mut out).await.unwrap();
        assert_eq!(watermarks(&mut out), vec![500]);
    }
}
