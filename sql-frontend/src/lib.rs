//! Sluice's SQL front end: turns a SQL script (Flink dialect: `CREATE TABLE ... WITH (...)`,
//! `SET`, `INSERT INTO ... SELECT`, statement sets) into a [`JobGraph`](sluice_proto::JobGraph).
//!
//! The work is split so that later planners can reuse the first stages:
//! [`parser`] turns text into statements (Flink's DDL, CREATE MODEL, ML_PREDICT calls, ...),
//! [`catalog`] keeps the declared tables, views and models (model options are checked by
//! [`sluice_core::models`]), [`plan`] turns INSERTs into a job graph through DataFusion, [`session`] runs statements, and every stage
//! reports a located [`SqlError`].
//!
//! ```
//! let script = "
//!     CREATE TABLE src (id BIGINT, name STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '10');
//!     CREATE TABLE out (id BIGINT) WITH ('connector' = 'print');
//!     INSERT INTO out SELECT id FROM src;";
//! let plan = sluice_sql::plan(script, &sluice_sql::PlanOptions::default()).unwrap();
//! assert_eq!(plan.graph.vertices.len(), 1);
//! ```

#![deny(missing_docs)]
#![warn(missing_docs)]

pub mod catalog;
pub mod error;
pub mod parser;
pub mod plan;
pub mod session;
pub mod types;

pub use error::SqlError;
pub use plan::Plan;
pub use session::{plan, Outcome, PlanOptions, ScriptOutcome, Session};
