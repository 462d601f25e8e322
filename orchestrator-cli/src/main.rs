//! The `orchestrator` binary: see `orchestrator --help`.

fn main() -> std::process::ExitCode {
    orchestrator_cli::main()
}
