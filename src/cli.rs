//! The subcommands that do more than a few lines: `run` and `status`.

pub mod run;
pub mod status;
