//! ML_EVALUATE's operator: keeps each row's label and prediction (and positive-class
//! probability) and, when its bounded input ends, emits one row of metrics
//! ([`metrics`]). It runs at parallelism 1 behind the model's ML_PREDICT; what it kept is
//! checkpointed, so a restore goes on counting.

pub mod metrics;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use async_trait::async_trait;
use sluice_core::metrics::{counter, Metric};
use sluice_core::schema::decode_schema;
use sluice_core::{Collector, Operator, OperatorError, OperatorState, Result, StateInit};
use sluice_proto::MlEvaluateSpec;

/// Rows left out of the metrics because their label or prediction was NULL.
pub const SKIPPED_ROWS: &str = "ml_evaluate_skipped_rows";

/// The ML_EVALUATE operator.
pub struct MlEvaluate {
    label: usize,
    prediction: usize,
    probability: Option<usize>,
    regression: bool,
    output_schema: SchemaRef,
    labels: Vec<f64>,
    predictions: Vec<f64>,
    probabilities: Vec<f64>,
    skipped: u64,
}

fn arrow_error(e: arrow::error::ArrowError) -> OperatorError {
    OperatorError::arrow("ML_EVALUATE", e)
}

/// A column's values as `f64`s (booleans as 0 and 1).
fn numbers(column: &ArrayRef) -> Result<Float64Array> {
    let cast = arrow::compute::cast(column, &DataType::Float64).map_err(arrow_error)?;
    Ok(cast.as_primitive::<Float64Type>().clone())
}

impl MlEvaluate {
    /// The operator a plan describes.
    pub fn from_spec(spec: &MlEvaluateSpec) -> Result<Self> {
        let input = decode_schema(&spec.input_schema)?;
        let columns = [Some(spec.label_column), Some(spec.prediction_column), spec.probability_column];
        if columns.iter().flatten().any(|&c| c as usize >= input.fields().len()) {
            return Err(OperatorError::InvalidPlan("ML_EVALUATE: a column index is out of range".into()));
        }
        Ok(MlEvaluate {
            label: spec.label_column as usize,
            prediction: spec.prediction_column as usize,
            probability: spec.probability_column.map(|c| c as usize),
            regression: spec.task == "regression",
            output_schema: decode_schema(&spec.output_schema)?,
            labels: Vec::new(),
            predictions: Vec::new(),
            probabilities: Vec::new(),
            skipped: 0,
        })
    }

    /// The metrics row.
    fn result(&self) -> Result<RecordBatch> {
        let rows: ArrayRef = Arc::new(Int64Array::from(vec![self.labels.len() as i64]));
        let value = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
        let empty = self.labels.is_empty();
        let mut columns = vec![rows];
        if self.regression {
            let m = (!empty).then(|| metrics::regression(&self.labels, &self.predictions));
            columns.extend([m.map(|m| m.mae), m.map(|m| m.mse), m.map(|m| m.rmse), m.and_then(|m| m.r2)].map(value));
        } else {
            let probabilities = self.probability.map(|_| self.probabilities.as_slice());
            let m = (!empty).then(|| metrics::classification(&self.labels, &self.predictions, probabilities));
            columns.extend(
                [
                    m.map(|m| m.accuracy),
                    m.map(|m| m.precision),
                    m.map(|m| m.recall),
                    m.map(|m| m.f1),
                    m.and_then(|m| m.log_loss),
                    m.and_then(|m| m.auc),
                ]
                .map(value),
            );
        }
        RecordBatch::try_new(self.output_schema.clone(), columns).map_err(arrow_error)
    }
}

#[async_trait]
impl Operator for MlEvaluate {
    async fn initialize_state(&mut self, init: StateInit) -> Result<()> {
        for entry in init.lists.get(OperatorState::DEFAULT_LIST).into_iter().flatten() {
            let corrupt = || OperatorError::State("ML_EVALUATE: the checkpointed rows are unreadable".into());
            if entry.len() % 24 != 0 {
                return Err(corrupt());
            }
            for row in entry.chunks_exact(24) {
                let f = |i: usize| f64::from_le_bytes(row[i * 8..i * 8 + 8].try_into().unwrap_or_default());
                self.labels.push(f(0));
                self.predictions.push(f(1));
                self.probabilities.push(f(2));
            }
        }
        Ok(())
    }

    async fn process_batch(&mut self, batch: RecordBatch, _out: &mut Collector) -> Result<()> {
        let labels = numbers(batch.column(self.label))?;
        let predictions = match (self.regression, self.probability) {
            // A probability alone decides the predicted label.
            (false, Some(p)) if p == self.prediction => {
                let p = numbers(batch.column(p))?;
                Float64Array::from_iter(p.iter().map(|v| v.map(|v| if v >= 0.5 { 1.0 } else { 0.0 })))
            }
            _ => numbers(batch.column(self.prediction))?,
        };
        let probabilities = self.probability.map(|p| numbers(batch.column(p))).transpose()?;
        for row in 0..batch.num_rows() {
            let probability = probabilities.as_ref().map(|p| p.is_valid(row).then(|| p.value(row)));
            if labels.is_null(row) || predictions.is_null(row) || probability == Some(None) {
                self.skipped += 1;
                continue;
            }
            self.labels.push(labels.value(row));
            self.predictions.push(predictions.value(row));
            self.probabilities.push(probability.flatten().unwrap_or(0.0));
        }
        Ok(())
    }

    async fn finish(&mut self, out: &mut Collector) -> Result<()> {
        out.batch(self.result()?);
        Ok(())
    }

    async fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<OperatorState> {
        let mut entry = Vec::with_capacity(self.labels.len() * 24);
        for i in 0..self.labels.len() {
            for v in [self.labels[i], self.predictions[i], self.probabilities[i]] {
                entry.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(OperatorState::split(vec![entry]))
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![counter(SKIPPED_ROWS, self.skipped)]
    }
}
