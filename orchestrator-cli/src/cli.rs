//! The command-line grammar. Help texts here are the user's manual: keep them true.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use orchestrator_recipes::Kind;

const AFTER_HELP: &str = "\
Exit status:
  0    everything asked for was done
  1    something failed while running (the cluster, a service, a client, a file)
  2    invalid input: a recipe or the config has problems, or the command line is wrong
  3    the session ran, but a client's result missed a value its recipe's `expect` asks for
  130  interrupted (Ctrl-C or SIGTERM); the session's jobs were cancelled

Environment:
  ORCHESTRATOR_CONFIG     config file to use when --config is not given
  ORCHESTRATOR_LOG_LEVEL  log level on stderr (DEBUG, INFO, WARNING, ERROR; default WARNING);
                          a session's debug log is also kept in RESULTS_DIR/SESSION/orchestrator.log
  SSH_KEY_PATH            overrides hpc.key_filename
  SLURM_ACCOUNT           overrides slurm.account
  NO_COLOR                turns colours off

Original tool's flags (still accepted):
  --recipe FILE           same as `orchestrator run FILE`
  --status                same as `orchestrator status`
  --list-services         same as `orchestrator list services`
  --stop-all-services     same as `orchestrator stop --all`
  --debug-services        same as `orchestrator debug`
  --clear-state           same as `orchestrator clear-state`

Examples:
  orchestrator run recipes/complete/local-demo.yaml
  orchestrator run --dry-run recipes/complete/redis.yaml
  orchestrator status
  orchestrator attach ses-1a2b3c4d
  orchestrator stop --all
  orchestrator bench http://127.0.0.1:8080/ --concurrency 16 --duration 10s
  orchestrator bench http://127.0.0.1:8080/ --rate 2000 --requests 20000 --json
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

    /// Say more: which forms of the original tool were read, where the config came from,
    /// and log at info level; `-vv` logs at debug level (scheduler commands, every state
    /// change)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Run this recipe (the original tool's flag; same as `run FILE`)
    #[arg(long, hide = true, value_name = "FILE")]
    pub recipe: Option<PathBuf>,

    /// Show the status (the original tool's flag)
    #[arg(long, hide = true)]
    pub status: bool,

    /// List the service recipes in services_dir (the original tool's flag)
    #[arg(long, hide = true)]
    pub list_services: bool,

    /// Stop every tracked job (the original tool's flag)
    #[arg(long, hide = true)]
    pub stop_all_services: bool,

    /// Show debug information on every service (the original tool's flag)
    #[arg(long, hide = true)]
    pub debug_services: bool,

    /// Forget all tracked sessions (the original tool's flag)
    #[arg(long, hide = true)]
    pub clear_state: bool,

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
    /// was expected and a hint. Drivers are resolved as `run` resolves them (an
    /// unknown `workload_type` is a problem), so a file that validates also plans;
    /// what a driver says about a valid file is printed as a warning. Exits 0 when
    /// every file is valid, 2 when any is not.
    Validate(ValidateArgs),
    /// Print or write the JSON Schemas of config.yaml and the recipes
    ///
    /// Editors use them for completion and checking: put
    /// `# yaml-language-server: $schema=PATH/service.schema.json` at the top of a recipe.
    Schema(SchemaArgs),
    /// List the service or client recipes (services_dir / clients_dir), the tracked ones
    /// that run (--running), or the drivers linked into this binary
    List(ListArgs),
    /// Show the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a benchmark session: deploy the services, wait until they are healthy, run
    /// the clients against them, fetch their outputs, stop the services, write a report
    ///
    /// Ctrl-C (or SIGTERM) cancels every job of the session and exits 130. A service or
    /// complete recipe is accepted; a service recipe without clients leaves the service
    /// running (stop it with `orchestrator stop ID`). If `run` itself dies (SIGKILL, a
    /// lost terminal), its jobs go on: `orchestrator attach SESSION` continues it.
    ///
    /// With `monitoring: prometheus` in the recipe, a Prometheus job starts before the
    /// clients and scrapes a node exporter beside every job and every workload client's
    /// live metrics; before the services stop, what it scraped goes to the report
    /// (`prometheus.json`) with Grafana's provisioning in `grafana/`.
    ///
    /// A client with `replicas: N` runs as N engine processes on up to N nodes, its load
    /// split between them, merged into one exact result. A service with a `matrix:` of
    /// its own settings is one deployment per combination, each a session of its own,
    /// run in turn and then compared (`matrix-SESSION.md` in the results directory).
    Run(RunArgs),
    /// Continue a session whose orchestrator died, as `run` would have: reconcile,
    /// wait for the jobs still running, submit what was never submitted, fetch the
    /// outputs, stop the services and write the report
    ///
    /// `status` marks the sessions that can be attached. One process drives a session
    /// at a time: attaching a session that a living `run` or `attach` drives is
    /// refused (exit 1), and so is attaching one that ended. Ctrl-C cancels the
    /// session's jobs, as in `run`. Exit codes are `run`'s.
    Attach(AttachArgs),
    /// Show sessions, services and clients, reconciled with the scheduler
    Status(StatusArgs),
    /// Start, stop or inspect one service
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Start, stop or inspect one benchmark client
    #[command(subcommand)]
    Client(ClientCommand),
    /// Cancel the jobs of a service, client or session, or every tracked job
    ///
    /// Only jobs recorded in the orchestrator's own state are cancelled: never any other
    /// job of yours, whatever its name.
    Stop(StopArgs),
    /// Show what went wrong: rendered script, scheduler view, log tails, recent events
    Debug(DebugArgs),
    /// Forget every tracked session, service and client (the audit log stays)
    ///
    /// Refuses while tracked jobs are still active, unless --force.
    ClearState(ClearStateArgs),
    /// The scheduler's own view of all your jobs (`squeue` on a cluster)
    SlurmStatus(JsonArg),
    /// Print or write a session's report, or compare two sessions
    ///
    /// The report holds the recipe as run and its SHA-256, the jobs and their SLURM
    /// options, the timeline, every client run's metrics with their definitions, sweep
    /// tables, the checked `expect` values, the services' monitoring and the errors.
    /// With -o the format follows the extension: .yaml (the original tool's
    /// benchmark_report.yaml), .json, .md, or .html (one self-contained page with SVG
    /// charts: latency percentiles, throughput and errors over time, TTFT/TPOT
    /// distributions, a sweep's throughput against latency, the services' CPU, memory
    /// and GPU series); without it the Markdown report goes to stdout.
    Report(ReportArgs),
    /// List past sessions, newest first, with their headline figures
    History(HistoryArgs),
    /// Forward a local port to a running service until Ctrl-C
    ///
    /// Connections to 127.0.0.1:PORT here reach the service's node and port through the
    /// SSH connection (from the login node), so Ollama or Grafana on a compute node can
    /// be used from a laptop. On the local scheduler it forwards on this machine.
    Tunnel(TunnelArgs),
    /// Download a session's raw outputs
    #[command(subcommand)]
    Results(ResultsCommand),
    /// Load a URL with a workload driver, here and now (no cluster): the same engine
    /// as client jobs
    ///
    /// A closed loop of --concurrency users (default 1), or an open loop at --rate
    /// requests per second (Poisson arrivals unless --arrival says otherwise), where
    /// latency counts from each request's scheduled time. With neither, a workload
    /// given a timed trace (`-p dataset=TRACE.jsonl`) replays it at its own times.
    /// Runs for --duration (default 10s) or --requests, after --warmup.
    Bench(Box<BenchArgs>),
    /// What client jobs run on their compute node
    #[command(subcommand)]
    Workload(WorkloadCommand),
    /// A small HTTP server for trying sessions on a machine with nothing else installed
    /// (`recipes/complete/local-demo.yaml` uses it)
    #[command(subcommand, hide = true)]
    Demo(DemoCommand),
}

/// `orchestrator report`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    /// Compare two sessions instead
    #[command(subcommand)]
    pub command: Option<ReportCommand>,

    /// The session (`ses-...`) [default: the latest]
    #[arg(value_name = "SESSION")]
    pub session: Option<String>,

    /// Render a saved JSON report instead (a session's `report.json`, or `report -o
    /// FILE.json`), e.g. one copied from the cluster's machine
    #[arg(long, value_name = "FILE", conflicts_with = "session")]
    pub input: Option<PathBuf>,

    /// Write the report to FILE (.yaml, .json, .md or .html) instead of printing it
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The format, whatever the file's extension [default: the extension's; md on stdout]
    #[arg(long, value_parser = ["md", "json", "yaml", "html"])]
    pub format: Option<String>,
}

/// `orchestrator report compare`.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Metric deltas of session B against session A, run by run (same client and run)
    Compare {
        /// The reference session
        a: String,
        /// The session compared with it
        b: String,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// `orchestrator tunnel`.
#[derive(Debug, Args)]
pub struct TunnelArgs {
    /// The service (`svc-...`)
    #[arg(value_name = "SERVICE_ID")]
    pub service: String,

    /// The local port [default: any free one, printed]
    #[arg(long, value_name = "P")]
    pub local_port: Option<u16>,
}

/// `orchestrator results ...`.
#[derive(Debug, Subcommand)]
pub enum ResultsCommand {
    /// Copy every job directory of a session (script, stdout, stderr, results/) from
    /// the cluster, as it is there now, into DIR/<service or client name>/
    Fetch {
        /// The session (`ses-...`)
        #[arg(value_name = "SESSION")]
        session: String,
        /// Where to put them [default: ./SESSION]
        #[arg(long, value_name = "DIR")]
        to: Option<PathBuf>,
    },
    /// Merge runs that loaded one service at the same time (from several machines)
    /// into one exact result
    ///
    /// Each DIR is a run's results directory (`bench --out DIR`, a client's
    /// `results/`), holding the `recorder.json` the engine writes beside
    /// `summary.json`: every histogram bucket and counter. The merged percentiles are
    /// those of every request of every run (to the histograms' 0.1 %), not averages of
    /// percentiles; counts, and an open loop's rates asked for and sent, add up;
    /// rates are over the longest measured window, as the runs ran together.
    Merge {
        /// The runs' results directories
        #[arg(value_name = "DIR", required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Write the merged summary.json and recorder.json here
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Print the merged summary as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// `orchestrator history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show at most N sessions
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,

    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `--json` alone.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A complete recipe (services and clients) or a service recipe
    #[arg(value_name = "RECIPE")]
    pub recipe: PathBuf,

    /// Render and print the job scripts; submit and create nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Leave the services running after the clients finish (not with a service matrix)
    #[arg(long)]
    pub keep_services: bool,

    /// Print one JSON object at the end: `{session_id, state, error, services, clients,
    /// jobs: [{job_id, node, state, ...}], report_path, results_dir}`; with a service
    /// matrix, `{deployments: [{number, label, settings, session_id, state, exit_code}],
    /// runs: [{deployment, session_id, client, run, figures}]}`
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The session to continue (`ses-…`, from `orchestrator status`)
    #[arg(value_name = "SESSION")]
    pub session: String,

    /// Print one JSON object at the end, as `run --json` does
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show every tracked session [default: active ones and the 5 latest that ended]
    #[arg(long)]
    pub all: bool,

    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator service ...`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Submit a service recipe as a job of its own session and print its id
    Start {
        /// The service recipe
        #[arg(value_name = "RECIPE")]
        recipe: PathBuf,
        /// Wait until it runs and passes its health check
        #[arg(long)]
        wait: bool,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Cancel a service's job
    Stop {
        /// The service id (`svc-...`)
        id: String,
    },
    /// Show one service
    Status {
        /// The service id (`svc-...`)
        id: String,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// `orchestrator client ...`.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Submit a client recipe against a running service and print its id
    Start {
        /// The client recipe
        #[arg(value_name = "RECIPE")]
        recipe: PathBuf,
        /// The id of the service to load (`svc-...`)
        #[arg(long, value_name = "ID")]
        target: String,
        /// Load this host instead of the service's node
        #[arg(long, value_name = "HOST")]
        host: Option<String>,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Cancel a client's job
    Stop {
        /// The client id (`cli-...`)
        id: String,
    },
    /// Show one client
    Status {
        /// The client id (`cli-...`)
        id: String,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

/// `orchestrator stop`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["id", "session", "all"])))]
pub struct StopArgs {
    /// A service (`svc-...`), client (`cli-...`) or session (`ses-...`) id
    pub id: Option<String>,

    /// Stop every job of this session
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,

    /// Stop every job the orchestrator tracks
    #[arg(long)]
    pub all: bool,

    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator debug`.
#[derive(Debug, Args)]
pub struct DebugArgs {
    /// A service, client or session id [default: every tracked service]
    pub id: Option<String>,

    /// Print JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator clear-state`.
#[derive(Debug, Args)]
pub struct ClearStateArgs {
    /// Cancel the tracked jobs that are still active, then clear
    #[arg(long)]
    pub force: bool,

    /// Print `{services, clients}` on stdout
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The target, e.g. http://127.0.0.1:8080/
    pub url: String,

    /// The workload driver (`orchestrator list drivers` names them)
    #[arg(long, short = 'd', default_value = "http")]
    pub driver: String,

    /// Closed loop: this many users, each sending when its last request answered
    #[arg(long, conflicts_with = "rate")]
    pub concurrency: Option<u32>,

    /// Open loop: this many requests per second
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,

    /// Open loop: gaps between requests
    #[arg(long, value_parser = ["constant", "poisson", "gamma"], requires = "rate")]
    pub arrival: Option<String>,

    /// Open loop: gamma shape (below 1 burstier than Poisson, 1 is Poisson)
    #[arg(long, requires = "rate")]
    pub burstiness: Option<f64>,

    /// Open loop: at most this many requests in flight; requests due beyond it are
    /// dropped and counted [default: 1024]
    #[arg(long, requires = "rate")]
    pub max_concurrency: Option<u32>,

    /// How long to measure, e.g. 30s, 2m [default: 10s unless --requests]
    #[arg(long, short = 'z', value_name = "DURATION")]
    pub duration: Option<String>,

    /// How many requests to measure
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,

    /// How long to send before measuring
    #[arg(long, value_name = "DURATION")]
    pub warmup: Option<String>,

    /// A driver parameter, key=value (a JSON value, else a string); repeatable
    #[arg(long = "param", short = 'p', value_name = "KEY=VALUE")]
    pub params: Vec<String>,

    /// Goodput objective: end-to-end latency at most this many ms
    #[arg(long)]
    pub slo_latency_ms: Option<f64>,

    /// Goodput objective: time to first token at most this many ms
    #[arg(long)]
    pub slo_ttft_ms: Option<f64>,

    /// Goodput objective: time per output token at most this many ms
    #[arg(long)]
    pub slo_tpot_ms: Option<f64>,

    /// Seed of the arrival schedule
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Write summary.json and requests.jsonl (one line per request) into this directory
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// While the load runs, serve its counters and latency histograms at
    /// http://0.0.0.0:PORT/metrics in the Prometheus text format
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,

    /// Print the summary as JSON: requests_completed, requests_failed,
    /// requests_per_second, target_rate, achieved_rate, latency_ms {mean, p50, p90,
    /// p95, p99, p999, max, ...}, and for LLM drivers ttft_ms, tpot_ms, itl_ms,
    /// output_tokens_per_second
    #[arg(long)]
    pub json: bool,
}

/// `orchestrator workload ...`.
#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Run a workload spec (what a client job executes): one run per combination of
    /// swept parameters, each into its own directory under --out
    Run {
        /// The spec as JSON: {driver, url, parameters, duration_s}
        #[arg(long, value_name = "JSON", conflicts_with = "spec")]
        spec_json: Option<String>,
        /// The spec in a JSON file
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// Where results go
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `orchestrator demo ...`.
#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Serve HTTP: `/` answers a small text, `/health` answers `ok`, `/flaky` answers
    /// `500` to every tenth request (to see how failures are reported)
    HttpServer {
        /// Port to listen on
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0")]
        bind: String,
    },
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

    /// Print `[{file, valid, kind, errors: [{code, message, line, column, hint}], notes, warnings}]` on stdout
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

    /// List the tracked services or clients whose jobs have not ended, instead of recipes
    #[arg(long)]
    pub running: bool,

    /// Print `[{name, description, driver, path}]` on stdout (drivers: `[{kind, name,
    /// description, engine}]`; --running: the status objects)
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
    /// The service and workload drivers linked into this binary
    Drivers,
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
