//! A complete `orchestrator` with one more driver: the bundled ones come with
//! `orchestrator_cli`, the example's own is linked by naming its crate.

use orchestrator_example_echo as _;

fn main() -> std::process::ExitCode {
    orchestrator_cli::main()
}
