//! From the parsed command line to the command that runs it: the subcommands, and
//! the original tool's flags (`--recipe`, `--status`, ...) as the same commands.

use crate::app::Exit;
use crate::cli::{
    ClearStateArgs, Cli, Command, ConfigCommand, DebugArgs, ListArgs, ListWhat, RunArgs,
    StatusArgs, StopArgs,
};
use crate::cmd::{bench, demo, recipes, reports, run, status, units, workload};

/// Runs the parsed command line.
pub fn run(cli: &Cli) -> Exit {
    match &cli.command {
        Some(Command::Validate(args)) => recipes::validate(cli, args),
        Some(Command::Schema(args)) => recipes::schema_command(args),
        Some(Command::List(args)) => list(cli, args),
        Some(Command::Config(ConfigCommand::Show { json })) => recipes::config_show(cli, *json),
        Some(Command::Run(args)) => run::run(cli, args),
        Some(Command::Attach(args)) => run::attach(cli, args),
        Some(Command::Status(args)) => status::status(cli, args),
        Some(Command::Service(command)) => units::service(cli, command),
        Some(Command::Client(command)) => units::client(cli, command),
        Some(Command::Stop(args)) => status::stop(cli, args),
        Some(Command::Debug(args)) => status::debug(cli, args),
        Some(Command::ClearState(args)) => status::clear_state(cli, args),
        Some(Command::SlurmStatus(args)) => status::slurm_status(cli, args.json),
        Some(Command::Report(args)) => reports::report(cli, args),
        Some(Command::History(args)) => reports::history(cli, args),
        Some(Command::Tunnel(args)) => reports::tunnel(cli, args),
        Some(Command::Results(command)) => reports::results(cli, command),
        Some(Command::Demo(command)) => demo::demo(command),
        Some(Command::Bench(args)) => bench::bench(args),
        Some(Command::Workload(command)) => workload::workload_command(command),
        None => legacy(cli),
    }
}

/// The original tool's flags.
fn legacy(cli: &Cli) -> Exit {
    match () {
        () if cli.recipe.is_some() => run::run(
            cli,
            &RunArgs {
                recipe: cli.recipe.clone().expect("checked"),
                dry_run: false,
                keep_services: false,
                json: false,
            },
        ),
        () if cli.status => status::status(
            cli,
            &StatusArgs {
                all: false,
                json: false,
            },
        ),
        () if cli.list_services => recipes::list(
            cli,
            &ListArgs {
                what: ListWhat::Services,
                running: false,
                json: false,
            },
        ),
        () if cli.stop_all_services => status::stop(
            cli,
            &StopArgs {
                id: None,
                session: None,
                all: true,
                json: false,
            },
        ),
        () if cli.debug_services => status::debug(
            cli,
            &DebugArgs {
                id: None,
                json: false,
            },
        ),
        () if cli.clear_state => status::clear_state(
            cli,
            &ClearStateArgs {
                force: false,
                json: false,
            },
        ),
        () => {
            eprintln!("error: no command given; see `orchestrator --help`");
            Exit::Invalid
        }
    }
}

/// `orchestrator list`: what is tracked and running comes from the cluster, the rest
/// from the recipe directories.
fn list(cli: &Cli, args: &ListArgs) -> Exit {
    if args.running && args.what != ListWhat::Drivers {
        return status::list_running(cli, args.what == ListWhat::Services, args.json);
    }
    recipes::list(cli, args)
}
