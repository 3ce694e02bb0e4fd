//! Transforms: operators between sources and sinks (calc, projections, watermarks, keyed
//! aggregates, windowing functions, window aggregates, Top-N, temporal sort, joins and VECTOR_SEARCH), and the codec of the DataFusion
//! expressions they evaluate.

#![deny(missing_docs)]

pub mod aggregate;
pub mod calc;
pub mod expr;
pub mod functions;
pub mod join;
pub mod keyed_aggregate;
pub mod lookup_join;
pub mod project;
pub mod temporal_sort;
pub mod top_n;
pub mod vector_search;
pub mod watermark;
pub mod window_aggregate;
pub mod window_tvf;
