//! Calc: a filter and a projection of SQL expressions (WHERE, SELECT list, CASE, CAST,
//! arithmetic and DataFusion's built-in functions), evaluated batch at a time.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::physical_expr::PhysicalExpr;
use sluice_proto::CalcSpec;

use crate::expr::decode_physical;
use sluice_core::schema::decode_schema;
use sluice_core::{Collector, Operator, OperatorError, Result};

/// A running filter-and-project.
pub struct Calc {
    filter: Option<Arc<dyn PhysicalExpr>>,
    projections: Vec<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
    /// CURRENT_WATERMARK: the schema with the appended watermark column, and the
    /// watermark so far (`i64::MIN`: none yet).
    appended_watermark: Option<(SchemaRef, i64)>,
}

impl Calc {
    /// Builds the operator from its description.
    pub fn from_spec(spec: &CalcSpec) -> Result<Self> {
        let input = decode_schema(&spec.input_schema)?;
        let filter = spec.filter.as_deref().map(|f| decode_physical(f, &input)).transpose()?;
        let projections = spec.projections.iter().map(|p| decode_physical(p, &input)).collect::<Result<Vec<_>>>()?;
        let output_schema = decode_schema(&spec.output_schema)?;
        if projections.len() != output_schema.fields().len() {
            return Err(OperatorError::InvalidPlan(format!(
                "{} projections for {} output columns",
                projections.len(),
                output_schema.fields().len()
            )));
        }
        let appended_watermark = spec.appends_watermark.then_some((input, i64::MIN));
        Ok(Calc { filter, projections, output_schema, appended_watermark })
    }

    /// `batch` with the current watermark appended (NULL before the first).
    fn with_watermark(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some((schema, watermark)) = &self.appended_watermark else { return Ok(batch) };
        let value = (*watermark > i64::MIN).then_some(*watermark);
        let column: arrow::array::ArrayRef =
            Arc::new(arrow::array::TimestampMillisecondArray::from(vec![value; batch.num_rows()]));
        let mut columns = batch.columns().to_vec();
        columns.push(column);
        let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(schema.clone(), columns, &options)
            .map_err(|e| OperatorError::arrow("CURRENT_WATERMARK", e))
    }
}

/// Evaluates `exprs` over `batch` into a batch of `schema`.
pub fn project(batch: &RecordBatch, exprs: &[Arc<dyn PhysicalExpr>], schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = exprs
        .iter()
        .zip(schema.fields())
        .map(|(expr, field)| {
            let value = expr.evaluate(batch).map_err(|e| OperatorError::Evaluation(format!("{expr}: {e}")))?;
            let array = value.into_array(batch.num_rows()).map_err(|e| OperatorError::Evaluation(e.to_string()))?;
            if array.data_type() != field.data_type() {
                return arrow::compute::cast(&array, field.data_type())
                    .map_err(|e| OperatorError::arrow(format!("casting column '{}'", field.name()), e));
            }
            Ok(array)
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| OperatorError::arrow("projection", e))
}

#[async_trait]
impl Operator for Calc {
    async fn on_watermark(&mut self, watermark: i64, out: &mut Collector) -> Result<()> {
        if let Some((_, current)) = &mut self.appended_watermark {
            *current = (*current).max(watermark);
        }
        out.watermark(watermark);
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, out: &mut Collector) -> Result<()> {
        let batch = self.with_watermark(batch)?;
        let batch = match &self.filter {
            Some(filter) => {
                let mask = filter
                    .evaluate(&batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(|e| OperatorError::Evaluation(format!("WHERE {filter}: {e}")))?;
                if mask.data_type() != &DataType::Boolean {
                    return Err(OperatorError::InvalidPlan(format!(
                        "filter yields {} instead of BOOLEAN",
                        mask.data_type()
                    )));
                }
                filter_record_batch(&batch, mask.as_boolean()).map_err(|e| OperatorError::arrow("WHERE", e))?
            }
            None => batch,
        };
        if batch.num_rows() > 0 {
            out.batch(project(&batch, &self.projections, &self.output_schema)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::encode_expr;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{col, lit, when};
    use sluice_core::schema::encode_schema;

    #[tokio::test]
    async fn filters_and_projects_with_sql_expressions() {
        let input =
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false), Field::new("s", DataType::Utf8, true)]));
        let output = Arc::new(Schema::new(vec![
            Field::new("doubled", DataType::Int64, false),
            Field::new("size", DataType::Utf8, false),
        ]));
        let spec = CalcSpec {
            input_schema: encode_schema(&input),
            filter: Some(encode_expr(&col("a").gt(lit(1i64))).unwrap()),
            projections: vec![
                encode_expr(&(col("a") * lit(2i64))).unwrap(),
                encode_expr(&when(col("a").gt(lit(2i64)), lit("big")).otherwise(lit("small")).unwrap()).unwrap(),
            ],
            output_schema: encode_schema(&output),
            appends_watermark: false,
        };
        let mut calc = Calc::from_spec(&spec).unwrap();
        let batch = RecordBatch::try_new(
            input,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
            ],
        )
        .unwrap();
        let mut out = Collector::default();
        calc.process_batch(batch, &mut out).await.unwrap();
        let result = out.batches();
        assert_eq!(result.len(), 1);
        let expected = RecordBatch::try_new(
            output,
            vec![Arc::new(Int64Array::from(vec![4, 6])), Arc::new(StringArray::from(vec!["small", "big"]))],
        )
        .unwrap();
        assert_eq!(result[0], expected);
    }

    /// Through the harness at parallelism 2: rows are filtered and computed on whichever
    /// subtask gets them, NULLs stay NULL, watermarks and barriers pass unchanged, and a
    /// stateless calc restores at another parallelism with nothing to restore.
    #[tokio::test]
    async fn a_calc_in_the_harness_passes_watermarks_and_barriers() {
        use sluice_core::harness::{Build, Harness};
        use sluice_core::{Message, Operator};
        let input =
            Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("s", DataType::Utf8, true)]));
        let output = Arc::new(Schema::new(vec![
            Field::new("a10", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let spec = CalcSpec {
            input_schema: encode_schema(&input),
            filter: Some(encode_expr(&col("a").gt(lit(1i64)).or(col("a").is_null())).unwrap()),
            projections: vec![encode_expr(&(col("a") * lit(10i64))).unwrap(), encode_expr(&col("s")).unwrap()],
            output_schema: encode_schema(&output),
            appends_watermark: false,
        };
        let build: Build = Arc::new(move || Ok(Box::new(Calc::from_spec(&spec)?) as Box<dyn Operator>));
        let mut h = Harness::start(build.clone(), input.clone(), None, 2).await.unwrap();
        h.push("1 x\n2 y\nnull z").await.unwrap();
        h.push("3 null\n0 w").await.unwrap();
        h.watermark(1_000).await.unwrap();
        let snapshot = h.checkpoint(7).await.unwrap();
        assert_eq!(h.sorted_rows(), vec!["20 y", "30 null", "null z"]);
        for s in 0..2 {
            assert_eq!(h.watermarks_of(s), vec![1_000]);
            assert!(matches!(h.output(s).last(), Some(Message::Barrier(b)) if b.checkpoint_id == 7));
        }
        let mut restored = Harness::restore(build, input, None, 3, &snapshot).await.unwrap();
        restored.push("5 v").await.unwrap();
        assert_eq!(restored.sorted_rows(), vec!["50 v"]);
    }

    #[test]
    fn a_corrupt_expression_is_an_error() {
        let input = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let spec = CalcSpec {
            input_schema: encode_schema(&input),
            filter: None,
            projections: vec![vec![0xff, 0x01]],
            output_schema: encode_schema(&input),
            appends_watermark: false,
        };
        assert!(Calc::from_spec(&spec).is_err());
    }

    /// CURRENT_WATERMARK: rows see the watermark the Calc received last (NULL before the
    /// first), as the column appended to their batch.
    #[tokio::test]
    async fn rows_see_the_current_watermark() {
        use arrow::datatypes::TimeUnit;
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let input = Arc::new(Schema::new(vec![
            Field::new("t", ts.clone(), false),
            Field::new("__sluice_watermark", ts.clone(), true),
        ]));
        let output = Arc::new(Schema::new(vec![Field::new("t", ts.clone(), false)]));
        // WHERE __sluice_watermark IS NULL OR t > __sluice_watermark
        let late = col("__sluice_watermark").is_null().or(col("t").gt(col("__sluice_watermark")));
        let spec = CalcSpec {
            input_schema: encode_schema(&input),
            filter: Some(encode_expr(&late).unwrap()),
            projections: vec![encode_expr(&col("t")).unwrap()],
            output_schema: encode_schema(&output),
            appends_watermark: true,
        };
        let mut calc = Calc::from_spec(&spec).unwrap();
        let rows = |values: Vec<i64>| {
            let schema = Arc::new(Schema::new(vec![Field::new("t", ts.clone(), false)]));
            RecordBatch::try_new(schema, vec![Arc::new(arrow::array::TimestampMillisecondArray::from(values))]).unwrap()
        };
        let kept = |out: &mut Collector| -> Vec<i64> {
            out.batches()
                .iter()
                .flat_map(|b| {
                    let t = b.column(0).as_primitive::<arrow::datatypes::TimestampMillisecondType>();
                    t.values().to_vec()
                })
                .collect()
        };
        let mut out = Collector::default();
        calc.process_batch(rows(vec![5, 50]), &mut out).await.unwrap();
        assert_eq!(kept(&mut out), [5, 50], "no watermark yet: every row");
        let mut out = Collector::default();
        calc.on_watermark(20, &mut out).await.unwrap();
        calc.process_batch(rows(vec![10, 20, 30]), &mut out).await.unwrap();
        assert_eq!(kept(&mut out), [30], "rows at or behind the watermark are filtered");
    }
}
