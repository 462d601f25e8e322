//! The `orchestrator` command line: argument parsing (clap), diagnostics rendering
//! (miette), tables and JSON output. The only crate of the workspace that writes to
//! the terminal.
//!
//! [`main`] runs the whole CLI, so a program of your own that links further driver
//! crates can be a complete `orchestrator` with one line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod cli;
mod commands;
mod demo;
mod progress;
mod render;
mod reports;
mod sessions;

// The bundled driver plugins. A plugin crate the binary never names is not linked, and
// its drivers would be missing from the registry: name each one here.
use orchestrator_plugin_generic as _;
use orchestrator_plugin_http as _;
use orchestrator_plugin_ollama as _;
use orchestrator_plugin_openai as _;
use orchestrator_plugin_postgres as _;
use orchestrator_plugin_redis as _;

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
    /// The session ran, but a client's result missed a reference value in its
    /// recipe's `expect`.
    ExpectationMissed = 3,
    /// Interrupted by Ctrl-C or SIGTERM; the session's jobs were cancelled.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// Runs the CLI on the process's arguments and returns its exit status.
#[must_use]
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    commands::run(&cli).into()
}

/// `orchestrator status | head` closes stdout early: end quietly, as other Unix tools
/// do, instead of panicking in `println!`.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use orchestrator_core::Registry;

    #[test]
    fn the_command_line_grammar_is_consistent() {
        // clap checks names, shorts and conflicts of every subcommand only when asked.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn the_binary_links_exactly_the_bundled_drivers() {
        let services: Vec<&str> = Registry::service_drivers()
            .iter()
            .map(|d| d.name())
            .collect();
        let workloads: Vec<&str> = Registry::workload_drivers()
            .iter()
            .map(|d| d.name())
            .collect();
        assert_eq!(services, ["generic", "ollama"]);
        assert_eq!(
            workloads,
            ["command", "http", "ollama", "openai", "postgres", "redis"]
        );
    }
}
