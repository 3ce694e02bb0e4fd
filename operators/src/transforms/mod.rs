//! Transforms: operators between sources and sinks.

pub mod keyed_aggregate;
pub mod project;
