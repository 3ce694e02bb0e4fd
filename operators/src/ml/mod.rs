//! Machine-learning models: the options a `CREATE MODEL ... WITH (...)` may set for each
//! provider, and the secrets those options may refer to.
//!
//! `local` models run in the task manager ([`predict`], [`local`]); `openai` and
//! `anthropic` models are called over HTTP by the async operator of [`remote`].
//!
//! Four providers exist: `openai`, `anthropic`, `local` and `generic-python`. Each has an
//! option schema ([`providers`]); [`validate_model_options`] checks a model's options
//! against it and returns them under their canonical (Apache Flink, kebab-case) keys, so
//! `'max_tokens'` and `'max-tokens'` mean the same option. Values stay as written, except
//! where an alias implies a conversion (`ordered_output` → `output-mode`, `base_url` →
//! `endpoint`); secret references (`'{{ secret.NAME }}'`, see [`secrets`]) are never
//! resolved here.

mod options;
pub mod latency;
pub mod local;
pub mod onnx_runtime;
pub mod predict;
pub mod providers;
pub mod remote;
pub mod secrets;
pub mod zipmap;

pub use options::{
    merge_model_options, validate_model_options, validate_predict_config, ModelOptionError, PREDICT_CONFIG_KEYS,
};
pub use providers::provider_names;
