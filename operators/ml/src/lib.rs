//! The ML_PREDICT operators and their providers, as they run in a task manager. `local`
//! ONNX models run in the task manager ([`predict`], [`local`]), `local` PyTorch and
//! TensorFlow models on a Python worker as built-in classes ([`python`]); `openai` and `anthropic`
//! models are called over HTTP by the async operator of [`remote`]; `generic-python`
//! models run in a Python worker process per subtask ([`python`]). Their options were
//! checked when the model was created (`sluice_core::models`).

#![deny(missing_docs)]

pub mod evaluate;
#[cfg(test)]
mod fixtures;
pub mod local;
pub mod onnx_runtime;
pub mod predict;
pub mod python;
pub mod remote;
pub mod zipmap;

use std::collections::BTreeMap;

use sluice_core::{Operator, OperatorError, Result};
use sluice_proto::MlPredictSpec;

/// Builds the ML_PREDICT operator of one provider from its spec and resolved options.
pub type BuildPredict = fn(&MlPredictSpec, BTreeMap<String, String>) -> Result<Box<dyn Operator>>;

/// The providers that run in this build, by the `provider` option. Adding one is its
/// module and one line here (and its option schema in `sluice_core::models`).
pub static PROVIDERS: &[(&str, BuildPredict)] = &[
    ("local", |spec, options| match options.get("runtime").map(String::as_str) {
        Some("pytorch" | "tensorflow") => {
            let python = python::config::local_runtime_options(&spec.model, &options)?;
            Ok(Box::new(python::PythonPredict::new(spec, &python)?))
        }
        _ => Ok(Box::new(predict::MlPredict::new(spec, options)?)),
    }),
    ("openai", |spec, options| Ok(Box::new(remote::AsyncPredict::new(spec, &options)?))),
    ("anthropic", |spec, options| Ok(Box::new(remote::AsyncPredict::new(spec, &options)?))),
    ("generic-python", |spec, options| Ok(Box::new(python::PythonPredict::new(spec, &options)?))),
];

/// The ML_PREDICT operator for `spec`, whose options (secrets resolved, the call's own
/// settings applied) are `options`.
pub fn build_predict(spec: &MlPredictSpec, options: BTreeMap<String, String>) -> Result<Box<dyn Operator>> {
    match PROVIDERS.iter().find(|(name, _)| *name == spec.provider) {
        Some((_, build)) => build(spec, options),
        None => Err(OperatorError::config(
            format!("model '{}'", spec.model),
            format!(
                "the '{}' provider cannot run in this build yet; ML_PREDICT is planned and validated only \
                 (providers that run: {})",
                spec.provider,
                PROVIDERS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// The examples of ARCHITECTURE.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../ARCHITECTURE.md")]
pub struct ArchitectureExamples;
