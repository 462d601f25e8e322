//! The `orchestrator` command line: argument parsing (clap), diagnostics rendering
//! (miette), tables and JSON output. The only crate of the workspace that writes to
//! the terminal.
//!
//! [`main`] runs the whole CLI, so a program of your own that links further driver
//! crates can be a complete `orchestrator` with one line.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod app;
mod cli;
mod cmd;
mod dispatch;
mod engine;
mod output;

// The bundled driver plugins. A plugin crate the binary never names is not linked, and
// its drivers would be missing from the registry: name each one here.
use orchestrator_plugin_chroma as _;
use orchestrator_plugin_generic as _;
use orchestrator_plugin_http as _;
use orchestrator_plugin_mysql as _;
use orchestrator_plugin_ollama as _;
use orchestrator_plugin_openai as _;
use orchestrator_plugin_postgres as _;
use orchestrator_plugin_prometheus as _;
use orchestrator_plugin_redis as _;

use std::process::ExitCode;

use clap::Parser;

pub use app::Exit;
pub use cli::Cli;

/// Runs the CLI on the process's arguments and returns its exit status.
#[must_use]
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    let from_env = std::env::var("ORCHESTRATOR_LOG_LEVEL").ok();
    match output::logging::level(from_env.as_deref(), cli.verbose) {
        Ok(level) => output::logging::init(level),
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Invalid.into();
        }
    }
    dispatch::run(&cli).into()
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
        assert_eq!(
            services,
            [
                "chroma",
                "generic",
                "llama-cpp",
                "mysql",
                "ollama",
                "prometheus",
                "vllm"
            ]
        );
        assert_eq!(
            workloads,
            [
                "chroma", "command", "http", "mysql", "ollama", "openai", "postgres", "redis"
            ]
        );
    }
}
