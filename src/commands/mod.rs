//! The subcommands of `sluice`.

pub mod client;
pub mod cluster;
pub mod run;
