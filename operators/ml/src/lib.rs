//! The ML_PREDICT operators and their providers, as they run in a task manager. `local`
//! models run in the task manager ([`predict`], [`local`]); `openai` and `anthropic`
//! models are called over HTTP by the async operator of [`remote`]. Their options were
//! checked when the model was created (`sluice_core::models`).

#![deny(missing_docs)]

#[cfg(test)]
mod fixtures;
pub mod latency;
pub mod local;
pub mod onnx_runtime;
pub mod predict;
pub mod remote;
pub mod zipmap;

/// The examples of ARCHITECTURE.md, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../ARCHITECTURE.md")]
pub struct ArchitectureExamples;
