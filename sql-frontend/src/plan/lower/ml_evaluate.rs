//! Planning ML_EVALUATE (FLIP-525): the model runs over the evaluated table as an
//! ML_PREDICT would, and one evaluation operator at parallelism 1 compares its outputs
//! with the label column, emitting one row of metrics when the table ends.
//!
//! Which model output is compared: for classification, the first INTEGER/BOOLEAN output is
//! the predicted label and the first FLOAT/DOUBLE output the positive-class probability
//! (log loss and AUC need it; without a label output the label is probability ≥ 0.5); for
//! regression, the first numeric output.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use sluice_core::schema::encode_schema;
use sluice_proto::operator_spec::Kind;
use sluice_proto::{MlEvaluateSpec, OperatorSpec, Partitioning};

use super::{Lowering, Result, Stream};
use crate::error::SqlError;
use crate::parser::{MlEvaluateCall, MlPredictCall};
use crate::plan::tables::ResolvedMl;
use crate::types::sql_name;

/// An ML_EVALUATE call resolved against its table and model.
#[derive(Debug, Clone)]
pub struct ResolvedEvaluation {
    /// The call as written.
    pub call: MlEvaluateCall,
    /// The model's run over the table.
    pub ml: ResolvedMl,
    /// The metrics row's schema.
    pub schema: SchemaRef,
    regression: bool,
    label: usize,
    prediction: usize,
    probability: Option<usize>,
}

/// The model call ML_EVALUATE makes: ML_PREDICT over the table with its feature columns.
pub fn predict_call(call: &MlEvaluateCall) -> MlPredictCall {
    MlPredictCall {
        placeholder: call.placeholder.clone(),
        input: call.input.clone(),
        input_location: call.input_location,
        model: call.model.clone(),
        model_location: call.model_location,
        descriptor: call.descriptor.clone(),
        config: call.config.clone(),
        location: call.location,
    }
}

fn is_label_type(t: &DataType) -> bool {
    t.is_integer() || *t == DataType::Boolean
}

impl ResolvedEvaluation {
    /// Checks the call's label and task against `ml` (the model run over the table).
    pub fn new(call: &MlEvaluateCall, ml: ResolvedMl) -> Result<Self> {
        let (label_name, label_at) = &call.label;
        let input_width = ml.output_schema.fields().len() - ml.model_output.fields().len();
        let label =
            ml.output_schema.fields()[..input_width].iter().position(|f| f.name() == label_name).ok_or_else(|| {
                SqlError::new(*label_at, format!("'{}' has no column '{label_name}'", call.input))
                    .with_hint("name the column holding the true label or value: DESCRIPTOR(label)")
            })?;
        let label_type = ml.output_schema.field(label).data_type().clone();
        let regression = match call.task.as_deref() {
            Some(task) => task == "regression",
            None => !is_label_type(&label_type),
        };
        if !(label_type.is_numeric() || label_type == DataType::Boolean) || (!regression && !is_label_type(&label_type))
        {
            let want = if regression { "a number" } else { "an INTEGER or BOOLEAN label (1 or TRUE: positive)" };
            return Err(SqlError::new(
                *label_at,
                format!("the label '{label_name}' is {}, not {want}", sql_name(&label_type)),
            )
            .with_hint("cast it in a view, or choose TASK => 'classification' or 'regression'"));
        }
        let outputs: Vec<(usize, &DataType)> =
            ml.model_output.fields().iter().enumerate().map(|(i, f)| (input_width + i, f.data_type())).collect();
        let first = |test: &dyn Fn(&DataType) -> bool| outputs.iter().find(|(_, t)| test(t)).map(|(i, _)| *i);
        let probability = if regression { None } else { first(&|t| t.is_floating()) };
        let prediction = if regression { first(&|t| t.is_numeric()) } else { first(&is_label_type).or(probability) };
        let prediction = prediction.ok_or_else(|| {
            SqlError::new(
                call.model_location,
                format!("model '{}' has no output ML_EVALUATE can compare with the label", call.model),
            )
            .with_hint(if regression {
                "regression needs a numeric OUTPUT column"
            } else {
                "classification needs an INTEGER/BOOLEAN label or a FLOAT/DOUBLE probability OUTPUT column"
            })
        })?;
        let names: &[&str] = if regression {
            &["mae", "mse", "rmse", "r2"]
        } else {
            &["accuracy", "precision", "recall", "f1", "log_loss", "auc"]
        };
        let mut fields = vec![Field::new("rows", DataType::Int64, false)];
        fields.extend(names.iter().map(|n| Field::new(*n, DataType::Float64, true)));
        Ok(ResolvedEvaluation {
            call: call.clone(),
            ml,
            schema: Arc::new(Schema::new(fields)),
            regression,
            label,
            prediction,
            probability,
        })
    }
}

impl Lowering {
    /// The evaluation of `predicted` (the model's run over the table).
    pub fn ml_evaluate(&mut self, predicted: &Stream, evaluation: &ResolvedEvaluation) -> Stream {
        let spec = MlEvaluateSpec {
            input_schema: encode_schema(&predicted.schema),
            label_column: evaluation.label as u32,
            prediction_column: evaluation.prediction as u32,
            probability_column: evaluation.probability.map(|p| p as u32),
            task: if evaluation.regression { "regression" } else { "classification" }.into(),
            output_schema: encode_schema(&evaluation.schema),
        };
        let task = if evaluation.regression { "regression" } else { "classification" };
        let name = format!("ml_evaluate(model {}, {task}, label {})", evaluation.call.model, evaluation.call.label.0);
        self.notes.push(format!(
            "ML_EVALUATE: the metrics row is emitted when '{}' ends; an unbounded table gives none",
            evaluation.call.input
        ));
        let op = OperatorSpec { uid: String::new(), name, kind: Some(Kind::MlEvaluate(spec)) };
        let partitioning = if predicted.parallelism == 1 { Partitioning::Forward } else { Partitioning::Rebalance };
        self.then(predicted, op, 1, partitioning, vec![], evaluation.schema.clone())
    }
}
