//! The command-line grammar. Help texts here are the user's manual: keep them true.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use orchestrator_recipes::Kind;

const AFTER_HELP: &str = "\
Exit status:
  0  everything asked for was done
  1  something failed while running (an unreadable file, the cluster, a service)
  2  invalid input: a recipe or the config has problems, or the command line is wrong

Environment:
  ORCHESTRATOR_CONFIG     config file to use when --config is not given
  ORCHESTRATOR_LOG_LEVEL  log level (DEBUG, INFO, WARNING, ERROR)
  SSH_KEY_PATH            overrides hpc.key_filename
  SLURM_ACCOUNT           overrides slurm.account
  NO_COLOR                turns colours off

Original tool's flags (still accepted):
  --list-services         same as `orchestrator list services`

Examples:
  orchestrator validate recipes/complete/*.yaml
  orchestrator validate --json recipes/services/ollama.yaml
  orchestrator list services
  orchestrator schema --out schemas/";

/// Benchmark services on HPC clusters: deploy a service as a SLURM job, load it with
/// benchmark clients, collect the results.
#[derive(Debug, Parser)]
#[command(
    name = "orchestrator",
    version,
    after_help = AFTER_HELP,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Config file [default: $ORCHESTRATOR_CONFIG, else ./config.yaml, else built-in defaults]
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Say more: which forms of the original tool were read, where the config came from
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// List the service recipes in services_dir (the original tool's flag)
    #[arg(long, hide = true)]
    pub list_services: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check recipes and config files without submitting anything
    ///
    /// Every problem of a file is reported at once, with its line and column, what
    /// was expected and a hint. Exits 0 when every file is valid, 2 when any is not.
    Validate(ValidateArgs),
    /// Print or write the JSON Schemas of config.yaml and the recipes
    ///
    /// Editors use them for completion and checking: put
    /// `# yaml-language-server: $schema=PATH/service.schema.json` at the top of a recipe.
    Schema(SchemaArgs),
    /// List the service or client recipes found in services_dir / clients_dir
    List(ListArgs),
    /// Show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `orchestrator validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files to check
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// What the files are [default: recognised from their keys]
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,

    /// Print `[{file, valid, kind, errors: [{code, message, line, column, hint}], notes}]` on stdout
    #[arg(long)]
    pub json: bool,
}

/// A kind of file, on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// A service recipe
    Service,
    /// A client recipe
    Client,
    /// A complete recipe (services and clients)
    Recipe,
    /// The orchestrator's config.yaml
    Config,
}

impl From<KindArg> for Kind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Service => Kind::Service,
            KindArg::Client => Kind::Client,
            KindArg::Recipe => Kind::Recipe,
            KindArg::Config => Kind::Config,
        }
    }
}

/// `orchestrator schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print only this schema [default: all four, as one JSON object keyed by file name]
    #[arg(value_enum)]
    pub kind: Option<KindArg>,

    /// Write `config.schema.json`, `service.schema.json`, `client.schema.json` and
    /// `recipe.schema.json` into this directory instead of printing
    #[arg(long, value_name = "DIR", conflicts_with = "kind")]
    pub out: Option<PathBuf>,
}

/// `orchestrator list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// What to list
    #[arg(value_enum)]
    pub what: ListWhat,

    /// Print `[{name, description, driver, path}]` on stdout
    #[arg(long)]
    pub json: bool,
}

/// What `orchestrator list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListWhat {
    /// Service recipes in services_dir
    Services,
    /// Client recipes in clients_dir
    Clients,
}

/// `orchestrator config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved configuration (defaults filled in, environment overrides
    /// applied, paths resolved, secrets redacted) as YAML
    Show {
        /// Print it as JSON instead
        #[arg(long)]
        json: bool,
    },
}
