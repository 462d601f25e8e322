//! The `orchestrator` command line: argument parsing (clap), diagnostics rendering
//! (miette), tables and JSON output. The only crate of the workspace that writes to
//! the terminal.
//!
//! [`main`] runs the whole CLI, so a program of your own that links further driver
//! crates can be a complete `orchestrator` with one line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod render;

use std::process::ExitCode;

use clap::Parser;

pub use cli::Cli;

/// Exit status of a command, as documented in `orchestrator --help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success = 0,
    /// Something failed while running (I/O, the cluster, a service).
    Failure = 1,
    /// The input is invalid: a recipe, the config or the command line.
    Invalid = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Runs the CLI on the process's arguments and returns its exit status.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::run(&cli).into()
}
