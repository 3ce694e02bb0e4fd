//! Transforms: operators between sources and sinks.

pub mod calc;
pub mod keyed_aggregate;
pub mod project;
pub mod watermark;
