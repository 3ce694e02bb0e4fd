//! The subcommands of `sluice`.

pub mod client;
pub mod cluster;
pub mod embedded;
pub mod nexmark;
pub mod probe;
pub mod run;
pub mod shell;
pub mod top;
pub mod wait;
