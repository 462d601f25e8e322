//! What every command shares: the config, the async runtime, an orchestrator built
//! from the config, Ctrl-C and SIGTERM, and the one mapping from errors to exit codes.

use std::process::ExitCode;

use orchestrator_core::{BenchmarkOrchestrator, CancellationToken, CoreError};
use orchestrator_recipes::{LoadedConfig, load_config};

use crate::cli::Cli;
use crate::output;
use crate::output::progress::Reporter;

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

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the config, printing its diagnostic on failure.
pub fn config(cli: &Cli) -> Result<LoadedConfig, Exit> {
    load_config(cli.config.as_deref(), &env).map_err(|error| {
        eprint!("{}", output::diagnostic(&error));
        Exit::Invalid
    })
}

/// How an error of the core ends the command.
pub fn fail(error: &CoreError) -> Exit {
    eprint!("{}", output::diagnostic(error));
    match error {
        CoreError::Config(_) | CoreError::Recipe(_) | CoreError::Plan { .. } => Exit::Invalid,
        CoreError::Interrupted { .. } => Exit::Interrupted,
        _ => Exit::Failure,
    }
}

/// The async runtime: two workers for commands that wait on the cluster, one per core
/// (`None`) for the workload engine.
pub fn runtime(workers: Option<usize>) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// Runs `f` on a runtime with an orchestrator built from the config.
pub fn with_orchestrator<F, Fut>(cli: &Cli, f: F) -> Exit
where
    F: FnOnce(BenchmarkOrchestrator) -> Fut,
    Fut: Future<Output = Exit>,
{
    let loaded = match config(cli) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let local = loaded.config.hpc.is_none();
    let orch = match BenchmarkOrchestrator::from_config(&loaded) {
        Ok(orch) => orch,
        Err(error) => return fail(&error),
    };
    // Jobs that run `orchestrator` (the workload engine, the demo server) run this very
    // binary: in place on this machine, uploaded once per build to a cluster.
    let orch = match (local, std::env::current_exe()) {
        (true, Ok(exe)) => orch.with_orchestrator_bin(exe.display().to_string()),
        (false, Ok(exe)) => orch.with_uploadable_binary(exe),
        (_, Err(_)) => orch,
    };
    runtime(Some(2)).block_on(f(orch))
}

/// Cancels `token` on Ctrl-C or SIGTERM, after calling `then` with
/// `interrupted (Ctrl-C)` or `terminated (SIGTERM)`.
pub fn on_signal(token: CancellationToken, then: impl FnOnce(&str) + Send + 'static) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => then("interrupted (Ctrl-C)"),
            () = terminated => then("terminated (SIGTERM)"),
        }
        token.cancel();
    });
}

/// Reports a `stop` of one id: what was cancelled, or the error.
/// Says what a stop did.
pub fn stopped(id: &str, result: Result<bool, CoreError>, json: bool) -> Exit {
    match result {
        Ok(cancelled) => {
            if json {
                output::print_json(&serde_json::json!({ "id": id, "cancelled": cancelled }));
            } else if cancelled {
                println!("stopped {id}");
            } else {
                println!("{id} had no active job");
            }
            Exit::Success
        }
        Err(e) => fail(&e),
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM, after telling `reporter`.
pub fn cancel_on_signals(token: CancellationToken, reporter: std::sync::Arc<Reporter>) {
    on_signal(token, move |why| {
        reporter.line(&format!("{why}: cancelling the session's jobs"));
    });
}
