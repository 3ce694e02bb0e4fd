//! Transforms: operators between sources and sinks (calc, projections, watermarks, keyed
//! aggregates), and the codec of the DataFusion expressions they evaluate.

pub mod calc;
pub mod expr;
pub mod keyed_aggregate;
pub mod project;
pub mod watermark;
