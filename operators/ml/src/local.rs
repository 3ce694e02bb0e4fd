//! The `local` provider with `runtime` = `onnx`: a model file run by ONNX Runtime (through
//! the `ort` crate), loaded once per task.
//!
//! INPUT columns map to the model's inputs by name, or to a single input of width N by
//! position; values are cast to the inputs' tensor types (DOUBLE → float32, INT → int64,
//! STRING → string tensor). OUTPUT columns map to the model's outputs by name or position;
//! for a classifier with a single DOUBLE OUTPUT column, that column gets the positive-class
//! probability, whether the model emits a probability tensor or a ZipMap.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use ort::session::{Session, SessionInputValue};
use ort::value::TensorElementType;
use ort::value::{DynValue, Tensor, ValueType};

use super::onnx_runtime::environment;
use sluice_core::{OperatorError, Result};

/// How the model's inputs are fed from the INPUT columns.
#[derive(Debug, Clone)]
enum InputMapping {
    /// One model input per column, in the model's order: (column, element type, rank).
    ByName(Vec<(usize, TensorElementType, usize)>),
    /// A single input of width N, fed with every column.
    Stacked(TensorElementType),
}

/// How OUTPUT columns are filled.
#[derive(Debug, Clone)]
enum OutputMapping {
    /// The positive-class probability of a binary classifier, from output `index`.
    PositiveClass(usize),
    /// Output `index` for each OUTPUT column.
    Columns(Vec<usize>),
}

/// A loaded ONNX model.
pub struct OnnxModel {
    model: String,
    session: Session,
    input_names: Vec<String>,
    inputs: InputMapping,
    outputs: OutputMapping,
    output_schema: SchemaRef,
}

fn error(model: &str, message: impl Into<String>) -> OperatorError {
    OperatorError::config(format!("model '{model}'"), message)
}

/// The local file a `model-path` names.
pub fn model_file(model: &str, path: &str) -> Result<std::path::PathBuf> {
    if let Some(local) = path.strip_prefix("file://") {
        return Ok(local.into());
    }
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(error(
            model,
            format!("'model-path' = '{path}': the '{scheme}://' scheme is not supported yet; copy the model to a local path or file:// URI"),
        ));
    }
    Ok(path.into())
}

fn type_name(t: &ValueType) -> String {
    match t {
        ValueType::Tensor { ty, shape, .. } => format!("tensor({ty:?}, {shape:?})"),
        other => format!("{other:?}"),
    }
}

impl OnnxModel {
    /// Loads the model of `options` for INPUT columns `input_schema` and OUTPUT columns
    /// `output_schema`; a mismatch with the model's signature is an error naming both sides.
    pub fn load(
        model: &str,
        options: &BTreeMap<String, String>,
        input_schema: &SchemaRef,
        output_schema: &SchemaRef,
    ) -> Result<Self> {
        match options.get("runtime").map(String::as_str).unwrap_or("onnx") {
            "onnx" => {}
            other => {
                return Err(error(
                    model,
                    format!("'runtime' = '{other}' runs on a Python worker, not in ONNX Runtime (set 'runtime' = 'onnx' for an .onnx file)"),
                ))
            }
        }
        let path = model_file(model, options.get("model-path").map(String::as_str).unwrap_or_default())?;
        if !path.is_file() {
            return Err(error(model, format!("model file '{}' does not exist (check 'model-path')", path.display())));
        }
        let env = environment().map_err(|e| error(model, e))?;
        let mut builder = Session::builder(env).map_err(|e| error(model, e.to_string()))?;
        if let Some(threads) = options.get("inference-threads").and_then(|t| t.parse::<usize>().ok()) {
            builder = builder.with_intra_threads(threads).map_err(|e| error(model, e.to_string()))?;
        }
        if options.get("gpu").is_some_and(|g| g.eq_ignore_ascii_case("true")) {
            use ort::ep::ExecutionProvider;
            if !ort::ep::CUDA::is_available().unwrap_or(false) {
                return Err(error(
                    model,
                    "'gpu' = 'true' needs ONNX Runtime's CUDA execution provider, which the installed ONNX Runtime lacks \
                     (install onnxruntime-gpu and point ORT_DYLIB_PATH at it, or set 'gpu' = 'false')",
                ));
            }
            builder = builder
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| error(model, e.to_string()))?;
        }
        let bytes = std::fs::read(&path).map_err(|e| error(model, format!("cannot read '{}': {e}", path.display())))?;
        let classifier = output_schema.fields().len() == 1
            && *output_schema.field(0).data_type() == DataType::Float64
            && options.get("task").map(String::as_str) != Some("regression");
        // A classifier's ZipMap is replaced by its probability tensor: the same scores,
        // without reading a map per row.
        let stripped = classifier.then(|| super::zipmap::without_zipmap(&bytes)).flatten();
        let session = match stripped.map(|b| builder.commit_from_memory(&b)) {
            Some(Ok(session)) => session,
            _ => builder
                .commit_from_memory(&bytes)
                .map_err(|e| error(model, format!("cannot load '{}': {e}", path.display())))?,
        };
        let inputs = Self::map_inputs(model, &session, input_schema)?;
        let outputs = Self::map_outputs(model, &session, output_schema, options.get("task").map(String::as_str))?;
        let input_names = session.inputs().iter().map(|i| i.name().to_string()).collect();
        tracing::info!(model, file = %path.display(), "model loaded");
        Ok(OnnxModel {
            model: model.to_string(),
            session,
            input_names,
            inputs,
            outputs,
            output_schema: output_schema.clone(),
        })
    }

    fn map_inputs(model: &str, session: &Session, input_schema: &SchemaRef) -> Result<InputMapping> {
        let declared: Vec<&str> = input_schema.fields().iter().map(|f| f.name().as_str()).collect();
        let signature: Vec<String> =
            session.inputs().iter().map(|i| format!("{} {}", i.name(), type_name(i.dtype()))).collect();
        let mismatch = |why: &str| {
            error(
                model,
                format!(
                    "INPUT ({}) does not match the model's inputs ({}): {why}",
                    declared.join(", "),
                    signature.join(", ")
                ),
            )
        };
        let tensor = |t: &ValueType| match t {
            ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.len())),
            _ => None,
        };
        let model_inputs = session.inputs();
        if model_inputs.len() == 1 && declared.len() > 1 {
            let (ty, _) =
                tensor(model_inputs[0].dtype()).ok_or_else(|| mismatch("the model's input is not a tensor"))?;
            return Ok(InputMapping::Stacked(ty));
        }
        let mut mapping = Vec::new();
        for input in model_inputs {
            let column = declared
                .iter()
                .position(|d| d.eq_ignore_ascii_case(input.name()))
                .or_else(|| (model_inputs.len() == declared.len()).then_some(mapping.len()))
                .ok_or_else(|| mismatch(&format!("no INPUT column is called '{}'", input.name())))?;
            let (ty, rank) =
                tensor(input.dtype()).ok_or_else(|| mismatch(&format!("input '{}' is not a tensor", input.name())))?;
            mapping.push((column, ty, rank));
        }
        if mapping.len() != declared.len() {
            return Err(mismatch("the model needs a different number of inputs"));
        }
        Ok(InputMapping::ByName(mapping))
    }

    fn map_outputs(
        model: &str,
        session: &Session,
        output_schema: &SchemaRef,
        task: Option<&str>,
    ) -> Result<OutputMapping> {
        let declared: Vec<&str> = output_schema.fields().iter().map(|f| f.name().as_str()).collect();
        let outputs = session.outputs();
        let signature: Vec<String> = outputs.iter().map(|o| format!("{} {}", o.name(), type_name(o.dtype()))).collect();
        if declared.len() == 1 && *output_schema.field(0).data_type() == DataType::Float64 && task != Some("regression")
        {
            // A classifier: the probabilities are a float tensor [rows, classes] or a ZipMap.
            let probabilities = outputs.iter().position(|o| match o.dtype() {
                ValueType::Tensor { ty: TensorElementType::Float32 | TensorElementType::Float64, shape, .. } => {
                    shape.len() == 2 && outputs.len() > 1
                }
                ValueType::Sequence(inner) => matches!(**inner, ValueType::Map { .. }),
                _ => false,
            });
            if let Some(index) = probabilities {
                return Ok(OutputMapping::PositiveClass(index));
            }
        }
        let mut columns = Vec::new();
        for (i, name) in declared.iter().enumerate() {
            let index = outputs
                .iter()
                .position(|o| o.name().eq_ignore_ascii_case(name))
                .or_else(|| (i < outputs.len()).then_some(i))
                .ok_or_else(|| {
                    error(
                        model,
                        format!(
                            "OUTPUT ({}) does not match the model's outputs ({})",
                            declared.join(", "),
                            signature.join(", ")
                        ),
                    )
                })?;
            columns.push(index);
        }
        Ok(OutputMapping::Columns(columns))
    }
}

impl super::predict::Predictor for OnnxModel {
    fn predict(&mut self, inputs: &RecordBatch) -> Result<Vec<ArrayRef>> {
        let rows = inputs.num_rows();
        let model = self.model.clone();
        let mut feed: Vec<(&str, SessionInputValue<'static>)> = Vec::with_capacity(self.input_names.len());
        match &self.inputs {
            InputMapping::ByName(mapping) => {
                for ((column, ty, rank), name) in mapping.iter().zip(&self.input_names) {
                    let shape: Vec<usize> = if *rank == 1 { vec![rows] } else { vec![rows, 1] };
                    feed.push((name.as_str(), tensor(&model, inputs.column(*column), *ty, shape)?));
                }
            }
            InputMapping::Stacked(ty) => {
                let width = inputs.num_columns();
                let mut values = Vec::with_capacity(rows * width);
                let columns: Vec<ArrayRef> = inputs
                    .columns()
                    .iter()
                    .map(|c| cast(c, &DataType::Float64))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| {
                        error(&model, format!("INPUT columns must be numeric for a single tensor input: {e}"))
                    })?;
                for row in 0..rows {
                    for c in &columns {
                        values.push(c.as_primitive::<arrow::datatypes::Float64Type>().value(row));
                    }
                }
                let array = Arc::new(Float64Array::from(values)) as ArrayRef;
                feed.push((self.input_names[0].as_str(), tensor(&model, &array, *ty, vec![rows, width])?));
            }
        }
        let outputs = self.session.run(feed).map_err(|e| error(&model, format!("inference failed: {e}")))?;
        match &self.outputs {
            OutputMapping::PositiveClass(index) => Ok(vec![positive_class(&model, &outputs[*index], rows)?]),
            OutputMapping::Columns(indices) => indices
                .iter()
                .zip(self.output_schema.fields())
                .map(|(i, field)| column_from(&model, &outputs[*i], field.data_type(), rows))
                .collect(),
        }
    }
}

/// A tensor of `ty` with `shape` from an Arrow column.
fn tensor(
    model: &str,
    column: &ArrayRef,
    ty: TensorElementType,
    shape: Vec<usize>,
) -> Result<SessionInputValue<'static>> {
    let cast_to =
        |t: DataType| cast(column, &t).map_err(|e| error(model, format!("cannot convert an INPUT column to {t}: {e}")));
    let value: DynValue = match ty {
        // The common conversions copy straight into the tensor's buffer (a cast would
        // build an Arrow array first); NULLs were refused or dropped before this.
        TensorElementType::Float32 if column.data_type() == &DataType::Float64 => {
            let values: Vec<f32> =
                column.as_primitive::<arrow::datatypes::Float64Type>().values().iter().map(|&v| v as f32).collect();
            Tensor::from_array((shape, values)).map(|t| t.into_dyn())
        }
        TensorElementType::Int64 if column.data_type() == &DataType::Int32 => {
            let values: Vec<i64> =
                column.as_primitive::<arrow::datatypes::Int32Type>().values().iter().map(|&v| i64::from(v)).collect();
            Tensor::from_array((shape, values)).map(|t| t.into_dyn())
        }
        TensorElementType::Float32 => {
            let c = cast_to(DataType::Float32)?;
            Tensor::from_array((shape, c.as_primitive::<arrow::datatypes::Float32Type>().values().to_vec()))
                .map(|t| t.into_dyn())
        }
        TensorElementType::Float64 => {
            let c = cast_to(DataType::Float64)?;
            Tensor::from_array((shape, c.as_primitive::<arrow::datatypes::Float64Type>().values().to_vec()))
                .map(|t| t.into_dyn())
        }
        TensorElementType::Int64 => {
            let c = cast_to(DataType::Int64)?;
            Tensor::from_array((shape, c.as_primitive::<arrow::datatypes::Int64Type>().values().to_vec()))
                .map(|t| t.into_dyn())
        }
        TensorElementType::Int32 => {
            let c = cast_to(DataType::Int32)?;
            Tensor::from_array((shape, c.as_primitive::<arrow::datatypes::Int32Type>().values().to_vec()))
                .map(|t| t.into_dyn())
        }
        TensorElementType::String => {
            let c = cast_to(DataType::Utf8)?;
            let strings: Vec<String> = c.as_string::<i32>().iter().map(|s| s.unwrap_or_default().to_string()).collect();
            Tensor::from_string_array((shape, &strings[..])).map(|t| t.into_dyn())
        }
        other => return Err(error(model, format!("model inputs of type {other:?} are not supported"))),
    }
    .map_err(|e| error(model, format!("cannot build an input tensor: {e}")))?;
    Ok(SessionInputValue::from(value))
}

/// The positive-class probability from a [rows, classes] tensor or a ZipMap.
fn positive_class(model: &str, value: &DynValue, rows: usize) -> Result<ArrayRef> {
    let probabilities: Vec<f64> = match value.dtype() {
        ValueType::Sequence(_) => {
            let maps = value
                .try_extract_sequence::<ort::value::DynMapValueType>()
                .map_err(|e| error(model, format!("cannot read the ZipMap output: {e}")))?;
            maps.iter()
                .map(|m| {
                    let map = m
                        .try_extract_map::<i64, f32>()
                        .map_err(|e| error(model, format!("cannot read the ZipMap output: {e}")))?;
                    Ok(f64::from(*map.get(&1).unwrap_or(&0.0)))
                })
                .collect::<Result<_>>()?
        }
        _ => {
            let positive = |shape: &[i64], len: usize| -> Result<(usize, usize)> {
                let classes = shape.get(1).copied().unwrap_or(1).max(1) as usize;
                if len != rows * classes {
                    return Err(error(
                        model,
                        format!("the model returned {len} probabilities for {rows} rows of {classes} classes"),
                    ));
                }
                Ok((classes, classes.min(2) - 1))
            };
            match value.try_extract_tensor::<f32>() {
                Ok((shape, data)) => {
                    let (classes, column) = positive(shape, data.len())?;
                    (0..rows).map(|r| f64::from(data[r * classes + column])).collect()
                }
                Err(_) => {
                    let (shape, data) = value.try_extract_tensor::<f64>().map_err(|e| error(model, e.to_string()))?;
                    let (classes, column) = positive(shape, data.len())?;
                    (0..rows).map(|r| data[r * classes + column]).collect()
                }
            }
        }
    };
    if probabilities.len() != rows {
        return Err(error(model, format!("the model returned {} scores for {rows} rows", probabilities.len())));
    }
    Ok(Arc::new(Float64Array::from(probabilities)))
}

/// An OUTPUT column of `data_type` from a model output tensor.
fn column_from(model: &str, value: &DynValue, data_type: &DataType, rows: usize) -> Result<ArrayRef> {
    let array: ArrayRef = if let Ok((_, data)) = value.try_extract_tensor::<f32>() {
        Arc::new(arrow::array::Float32Array::from(data.to_vec()))
    } else if let Ok((_, data)) = value.try_extract_tensor::<f64>() {
        Arc::new(Float64Array::from(data.to_vec()))
    } else if let Ok((_, data)) = value.try_extract_tensor::<i64>() {
        Arc::new(arrow::array::Int64Array::from(data.to_vec()))
    } else if let Ok((_, data)) = value.try_extract_strings() {
        Arc::new(arrow::array::StringArray::from(data))
    } else {
        return Err(error(
            model,
            format!("model output {} cannot fill a {data_type} column", type_name(value.dtype())),
        ));
    };
    if array.len() != rows {
        return Err(error(
            model,
            format!("a model output has {} values for {rows} rows; OUTPUT columns take one value per row", array.len()),
        ));
    }
    cast(&array, data_type).map_err(|e| error(model, format!("cannot convert a model output to {data_type}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{fraud_schemas as schemas, model_options as options};
    use crate::predict::Predictor;
    use arrow::array::{Int32Array, StringArray};

    fn rows(input: &SchemaRef) -> RecordBatch {
        RecordBatch::try_new(
            input.clone(),
            vec![
                Arc::new(Float64Array::from(vec![900.0, 20.0])),
                Arc::new(Int32Array::from(vec![2, 14])),
                Arc::new(Int32Array::from(vec![13, 2])),
                Arc::new(Int32Array::from(vec![30, 50])),
                Arc::new(StringArray::from(vec!["XX", "US"])),
                Arc::new(Int32Array::from(vec![12, 2])),
            ],
        )
        .unwrap()
    }

    /// Both exports of the fraud model (ZipMap and probability tensor) give the positive-class
    /// probability Python's onnxruntime gives.
    #[test]
    fn scores_like_python_from_zipmap_and_tensor_outputs() {
        let (input, output) = schemas();
        for file in ["fraud_classifier.onnx", "fraud_classifier_probs.onnx"] {
            let mut model = OnnxModel::load("fraud", &options(file), &input, &output).unwrap();
            assert!(
                model.session.outputs().iter().all(|o| !matches!(o.dtype(), ValueType::Sequence(_))),
                "{file}: the ZipMap was replaced by its probability tensor"
            );
            let scores = model.predict(&rows(&input)).unwrap();
            let scores = scores[0].as_primitive::<arrow::datatypes::Float64Type>();
            assert!((scores.value(0) - 0.990_758_06).abs() < 1e-6, "{file}: {scores:?}");
            assert!((scores.value(1) - 0.010_284_36).abs() < 1e-6, "{file}: {scores:?}");
        }
    }

    #[test]
    fn mismatches_and_bad_paths_are_explained() {
        let (input, output) = schemas();
        let narrow = Arc::new(input.project(&[0, 1]).unwrap());
        let e =
            OnnxModel::load("fraud", &options("fraud_classifier.onnx"), &narrow, &output).err().unwrap().to_string();
        assert!(e.contains("INPUT (amount, hour_of_day) does not match the model's inputs (amount"), "{e}");
        let mut missing = options("fraud_classifier.onnx");
        missing.insert("model-path".into(), "/nope/model.onnx".into());
        let e = OnnxModel::load("fraud", &missing, &input, &output).err().unwrap().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let mut remote = options("fraud_classifier.onnx");
        remote.insert("model-path".into(), "s3://models/fraud_v3.onnx".into());
        let e = OnnxModel::load("fraud", &remote, &input, &output).err().unwrap().to_string();
        assert!(e.contains("'s3://' scheme is not supported yet"), "{e}");
        let corrupt = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(corrupt.path(), b"not a model").unwrap();
        let mut bad = options("fraud_classifier.onnx");
        bad.insert("model-path".into(), corrupt.path().display().to_string());
        let e = OnnxModel::load("fraud", &bad, &input, &output).err().unwrap().to_string();
        assert!(e.contains("cannot load"), "{e}");
        let mut gpu = options("fraud_classifier.onnx");
        gpu.insert("gpu".into(), "true".into());
        use ort::ep::ExecutionProvider;
        match OnnxModel::load("fraud", &gpu, &input, &output) {
            Ok(_) => assert!(ort::ep::CUDA::is_available().unwrap(), "gpu = true loaded without CUDA"),
            Err(e) => assert!(e.to_string().contains("needs ONNX Runtime's CUDA execution provider"), "{e}"),
        }
        let mut torch = options("fraud_classifier.onnx");
        torch.insert("runtime".into(), "pytorch".into());
        assert!(OnnxModel::load("fraud", &torch, &input, &output)
            .err()
            .unwrap()
            .to_string()
            .contains("'runtime' = 'pytorch' runs on a Python worker"));
    }
}
