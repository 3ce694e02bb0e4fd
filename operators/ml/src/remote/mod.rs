//! Models served over HTTP: the `openai` (chat completions, embeddings) and `anthropic`
//! (messages) providers, run by the async ML_PREDICT operator ([`AsyncPredict`]).
//!
//! - [`config`]: the model's settings, read from its options;
//! - [`api`]: request bodies and response parsing of each API;
//! - [`client`]: one request with its timeout, retries, backoff and flow control;
//! - [`limiter`]: adaptive concurrency and rate limits;
//! - [`rows`]: prompts from INPUT columns, answers into OUTPUT columns;
//! - [`cache`]: answers kept in keyed state (`cache.enabled`);
//! - [`operator`]: the operator, with barrier-safe snapshots of in-flight rows.

pub mod api;
pub mod cache;
pub mod client;
pub mod config;
pub mod context;
pub mod limiter;
pub mod operator;
pub mod rows;
pub mod stats;

pub use operator::AsyncPredict;
