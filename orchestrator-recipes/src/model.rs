//! The typed recipe model: services, clients and complete recipes, in their canonical
//! form. Files in the original tool's layout are normalised into these same types by
//! [`crate::forms`] before validation; nothing here knows about legacy keys.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Duration, Gres, Memory, ScalarString, Tolerance};

/// The `pattern` every service and client name follows: it ends up in SLURM job
/// names and in file names.
pub const NAME_PATTERN: &str = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$";
/// The `pattern` of environment variable names.
pub const ENV_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";

/// A service to deploy as a SLURM job: a command or container that listens on ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecipe {
    /// Name of the service; letters, digits, `_`, `.` and `-`.
    #[schemars(pattern(NAME_PATTERN))]
    pub name: String,
    /// What the service is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The service driver (`generic` when absent): which plugin launches and probes it.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// Container image to run in: a SIF file path or name (may contain `$HOME`). No
    /// image means the command runs natively on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<String>,
    /// Where to build the image from when it is missing and `containers.auto_build` is
    /// on, e.g. `docker://ollama/ollama:latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_source: Option<String>,
    /// Host paths bound into the container (`SRC[:DST[:OPTS]]`, Apptainer's `--bind`;
    /// a leading `$HOME/` or `~/` is the node's home).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_binds: Vec<String>,
    /// Build the image from `container_source` before every run, even when it exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub container_rebuild: bool,
    /// Commands run inside the image while it is built from `container_source` (a
    /// definition file's `%post`), e.g. `pip install requests`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_build_commands: Vec<String>,
    /// The program to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments, each one word: `${NAME}` is the job's environment variable,
    /// filled in when the job runs without being parsed by the shell again (`$NAME`
    /// stays as written; `$${NAME}` is a literal `${NAME}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ScalarString>,
    /// What the job needs from the cluster.
    #[serde(default)]
    pub resources: Resources,
    /// Environment variables of the service process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
    pub environment: BTreeMap<String, ScalarString>,
    /// Ports the service listens on; the first is the one clients target by default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(range(min = 1)))]
    pub ports: Vec<u16>,
    /// How to tell that the service is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// A bash script run on the service's node once the service is healthy and before
    /// any client starts (its variables are the job's environment: `${NAME}` is expanded
    /// by bash, and a value is never parsed as code); if it fails, or takes more than 10
    /// minutes, the service fails with its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_script: Option<String>,
    /// How many times the service's job is submitted again when it ends because of the
    /// cluster, not itself: `NODE_FAIL` (its node was lost), `BOOT_FAIL`, `PREEMPTED`.
    /// Its clients then start over against the new job. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// A script to upload and run instead of `command`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptSpec>,
    /// The original tool's cAdvisor sidecar: read, and not run (`validate` says so);
    /// the session's node exporter (`monitoring:`) and the job's own sampling
    /// (`monitor:`) measure what it measured.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_cadvisor: bool,
    /// The original tool's cAdvisor port: read, and not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cadvisor_port: Option<u16>,
    /// What this service scrapes besides the session, which makes it the session's
    /// Prometheus (the original tool's `monitoring_targets`, where `service_id` is
    /// `service`): a port of a service of the recipe, of a service that runs (its id),
    /// or of a host. The same as `monitoring: {service: THIS, targets: [...]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitoring_targets: Vec<ScrapeTarget>,
    /// Settings of the service's driver (its `type`), checked against that driver's own
    /// schema (`orchestrator list drivers`), e.g. `models` to pull for `ollama`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, serde_json::Value>,
    /// How the service job samples its own CPU and memory, the node's and its GPUs'
    /// (on by default, every 5 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<MonitorSpec>,
    /// Deployments of this service over its own settings: each list's values in turn,
    /// every combination of the lists one deployment, loaded by the recipe's clients in
    /// a session of its own; `run` then compares the deployments.
    #[serde(default, skip_serializing_if = "ServiceMatrix::is_empty")]
    pub matrix: ServiceMatrix,
}

/// The settings a service matrix goes over: each a list of values, one per deployment.
/// A value is laid over the service's own: `environment` and `options` add to (or
/// replace keys of) the service's, `resources` replaces the keys it gives (its `slurm`
/// keys among them), `args`, `command` and `container_image` replace the service's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceMatrix {
    /// Environment variables, e.g. `[{OLLAMA_NUM_PARALLEL: 1}, {OLLAMA_NUM_PARALLEL: 4}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub environment: Vec<BTreeMap<String, ScalarString>>,
    /// Argument lists, e.g. `[[--io-threads, 1], [--io-threads, 4]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub args: Vec<Vec<ScalarString>>,
    /// Resources, e.g. `[{cpus: 1}, {cpus: 4}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub resources: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Driver options, e.g. `[{models: [a]}, {models: [b]}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub options: Vec<BTreeMap<String, serde_json::Value>>,
    /// Programs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub command: Vec<String>,
    /// Container images.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1))]
    pub container_image: Vec<String>,
}

impl ServiceMatrix {
    /// Whether it goes over nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.environment.is_empty()
            && self.args.is_empty()
            && self.resources.is_empty()
            && self.options.is_empty()
            && self.command.is_empty()
            && self.container_image.is_empty()
    }
}

/// Sampling of a service job: its processes' CPU time and resident memory and the
/// node's CPU and memory (from /proc), and with GPUs `nvidia-smi`'s utilisation,
/// memory, power, temperature and clock, into `monitor.csv` in the job directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// Sample at all.
    #[serde(default = "MonitorSpec::default_enabled")]
    pub enabled: bool,
    /// Time between samples.
    #[serde(default = "MonitorSpec::default_interval")]
    pub interval: Duration,
}

impl MonitorSpec {
    fn default_enabled() -> bool {
        true
    }
    fn default_interval() -> Duration {
        Duration::from_secs(5)
    }

    /// The interval to sample at, or `None` when monitoring is off; a service without
    /// a `monitor` section is sampled every 5 s.
    #[must_use]
    pub fn interval_of(spec: Option<&Self>) -> Option<std::time::Duration> {
        match spec {
            None => Some(Self::default_interval().to_std()),
            Some(s) if s.enabled => {
                Some(s.interval.to_std().max(std::time::Duration::from_secs(1)))
            }
            Some(_) => None,
        }
    }
}

/// What a job asks of the cluster. Unset values fall back to the config's `slurm`
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Number of GPUs (becomes `--gres=gpu:N` unless `slurm.gres` is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// CPUs per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub cpus: Option<u32>,
    /// Memory for the job (`--mem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// SLURM options of this job.
    #[serde(default)]
    pub slurm: SlurmOptions,
}

/// SLURM options: per job under `resources.slurm`, or site defaults in the config's
/// `slurm` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    /// Account to charge (`--account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Partition (`--partition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Quality of service (`--qos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Time limit (`--time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Number of nodes (`--nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub nodes: Option<u32>,
    /// Number of tasks (`--ntasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ntasks: Option<u32>,
    /// Tasks per node (`--ntasks-per-node`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ntasks_per_node: Option<u32>,
    /// Generic resources (`--gres`), e.g. `gpu:1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<Gres>,
    /// Node features (`--constraint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Further `sbatch` arguments, passed as given (each one quoted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

/// A readiness probe: an HTTP GET on `endpoint`, or a TCP connect when no endpoint is
/// given, repeated every `interval` until it passes or `retries` attempts failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// A path (`/api/tags`) on the service's first port, or a full URL where
    /// `localhost` means the service's node: `http://localhost:11434/api/tags` (a GET),
    /// `redis://localhost:6379` (a Redis PING), `tcp://localhost:5432` (a connect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(/|https?://|redis://|tcp://)"))]
    pub endpoint: Option<String>,
    /// Port to probe; the service's first port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Time between attempts.
    #[serde(default = "HealthCheck::default_interval")]
    pub interval: Duration,
    /// Time one attempt may take.
    #[serde(default = "HealthCheck::default_timeout")]
    pub timeout: Duration,
    /// Failed attempts before the service counts as unhealthy.
    #[serde(default = "HealthCheck::default_retries")]
    #[schemars(range(min = 1))]
    pub retries: u32,
    /// Keep asking while the clients run: a service that fails `retries` attempts in a
    /// row then counts as died (`service::died`), as if its job had ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub during_run: bool,
}

impl HealthCheck {
    fn default_interval() -> Duration {
        Duration::from_secs(10)
    }
    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }
    fn default_retries() -> u32 {
        30
    }
}

/// A script shipped with the recipe and run in the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptSpec {
    /// The script's file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where it is on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// Where to put it on the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_path: Option<String>,
}

/// Where a client writes its results on the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Result file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A directory on the shared file system for results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_dir: Option<String>,
}

/// A benchmark client: a job that loads a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRecipe {
    /// Name of the client; letters, digits, `_`, `.` and `-`.
    #[schemars(pattern(NAME_PATTERN))]
    pub name: String,
    /// What the benchmark measures, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Container image to run in (SIF path or name); natively when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<String>,
    /// Where to build the image from when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_source: Option<String>,
    /// Host paths bound into the container (`SRC[:DST[:OPTS]]`, Apptainer's `--bind`;
    /// a leading `$HOME/` or `~/` is the node's home).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_binds: Vec<String>,
    /// Build the image from `container_source` before every run, even when it exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub container_rebuild: bool,
    /// Commands run inside the image while it is built from `container_source` (a
    /// definition file's `%post`), e.g. `pip install requests`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_build_commands: Vec<String>,
    /// The workload driver (`llm_inference`, `http`, `redis`, ...); a client with a
    /// `command` and no workload type runs that command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_type: Option<String>,
    /// A program to run against the target (it finds it in `TARGET_HOST`,
    /// `TARGET_PORT` and `TARGET_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Its arguments, each one word: `${NAME}` is the job's environment variable,
    /// filled in when the job runs without being parsed by the shell again (`$NAME`
    /// stays as written; `$${NAME}` is a literal `${NAME}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ScalarString>,
    /// How long the load runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// The service this client loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_service: Option<TargetService>,
    /// What the job needs from the cluster.
    #[serde(default)]
    pub resources: Resources,
    /// Environment variables of the client process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": ENV_NAME_PATTERN }))]
    pub environment: BTreeMap<String, ScalarString>,
    /// Workload parameters, checked against the workload driver's own schema. A list,
    /// or a comma-separated string such as `"1,2,5,10"`, sweeps over its values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Where results are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputSpec>,
    /// A script to upload and run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptSpec>,
    /// What happens to this client when the service it loads dies while it runs:
    /// `cancel` it (the default) or let it `finish`. Either way the session fails
    /// (`service::died`) and the client's results are marked invalid in the report.
    #[serde(default, skip_serializing_if = "OnServiceFailure::is_default")]
    pub on_service_failure: OnServiceFailure,
    /// How many times the client's job is submitted again when it ends because of the
    /// cluster (`NODE_FAIL`, `BOOT_FAIL`, `PREEMPTED`). Default 0: a client's results
    /// are not silently replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Run the client's workload as this many engine processes (replicas), one SLURM
    /// task each, spread over as many nodes as the job gets (`srun`; locally, processes
    /// of the one job). The load is split between them (concurrency as evenly as
    /// possible, an open loop's rate so that the rates add up to the one asked for),
    /// they start each measured period together, and their histograms are merged into
    /// one exact result, with a row per replica in the report. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub replicas: Option<u32>,
    /// Reference values the client's results must meet, by metric (`ttft_p99_ms`,
    /// `output_tokens_per_second`, ...): `orchestrator run` exits 3 when one is missed,
    /// like a failing regression test. Checked on every run of a sweep.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = { "pattern": EXPECT_METRIC_PATTERN }))]
    pub expect: BTreeMap<String, Expectation>,
}

/// The metrics `expect` can name: a distribution's statistic in milliseconds
/// (`latency`, `ttft`, `tpot`, `itl` or `schedule_lag`, then `mean`, `min`, `max`,
/// `std`, `p50`, `p90`, `p95`, `p99` or `p999`, then `ms`: `ttft_p99_ms`), or a figure of
/// the run (`requests_per_second`, `output_tokens_per_second` or `_per_s`,
/// `requests_completed`, `requests_failed`, `error_rate`, `achieved_rate`,
/// `output_tokens`, `goodput_fraction`, `goodput_requests_per_second`).
pub const EXPECT_METRIC_PATTERN: &str = "^(?:(?:latency|ttft|tpot|itl|schedule_lag)_(?:mean|min|max|std|p50|p90|p95|p99|p999)_ms|requests_per_second|output_tokens_per_s(?:econd)?|requests_completed|requests_failed|error_rate|achieved_rate|output_tokens|goodput_fraction|goodput_requests_per_second)$";

/// A bound on one metric: at least `min`, at most `max`, each loosened by `tolerance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "anyOf" = [{"required": ["min"]}, {"required": ["max"]}]))]
pub struct Expectation {
    /// The metric must be at least this (less the tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The metric must be at most this (plus the tolerance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// How far the metric may miss a bound: a percentage of it (`5%`) or an amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<Tolerance>,
}

impl Expectation {
    /// Whether `value` meets the bounds; `Err` says which it missed and by how much.
    ///
    /// # Errors
    /// The bound that `value` misses, in words.
    pub fn check(&self, value: f64) -> Result<(), String> {
        let slack = |bound: f64| self.tolerance.map_or(0.0, |t| t.slack(bound));
        let tolerance = self
            .tolerance
            .map(|t| format!(" (tolerance {t})"))
            .unwrap_or_default();
        if let Some(min) = self.min {
            if value < min - slack(min) {
                return Err(format!("{value:.4} is below the minimum {min}{tolerance}"));
            }
        }
        if let Some(max) = self.max {
            if value > max + slack(max) {
                return Err(format!("{value:.4} is above the maximum {max}{tolerance}"));
            }
        }
        Ok(())
    }
}

/// Which service a client loads and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetService {
    /// The service's driver type (`ollama`, `redis`, ...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// The service's name, as in its recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port to load; the service's first port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Path requests go to, e.g. `/api/generate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Path the client checks before it starts loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_endpoint: Option<String>,
}

/// A complete benchmark: the services to deploy and the clients that load them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkRecipe {
    /// Name of the benchmark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What it measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Services to deploy, at least one.
    #[schemars(length(min = 1))]
    pub services: Vec<ServiceRecipe>,
    /// Clients to run once the services are healthy.
    #[serde(default)]
    pub clients: Vec<ClientRecipe>,
    /// Prometheus for the whole session (`monitoring: prometheus`): it starts before
    /// the clients, scrapes every job's node exporter, every workload client's live
    /// metrics and the `targets` named here, and what it scraped goes into the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<SessionMonitoring>,
}

/// Prometheus monitoring of a whole session. `monitoring: prometheus` is this with
/// every default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionMonitoring {
    /// What monitors: `prometheus`.
    #[serde(rename = "type", default)]
    pub kind: MonitoringKind,
    /// The service of this recipe that is the session's Prometheus (a `type:
    /// prometheus` service, with your resources or image). Without it, one is added:
    /// `prometheus` on port 9090, natively, 1 CPU and 1 GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(NAME_PATTERN))]
    pub service: Option<String>,
    /// How often everything is scraped (default 2 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<Duration>,
    /// Start a node exporter (`prometheus-node-exporter` or `node_exporter`, where the
    /// node has one) beside every job of the session, once a node (default true).
    #[serde(default = "SessionMonitoring::default_node_exporter")]
    pub node_exporter: bool,
    /// The node exporter's port (default 9100).
    #[serde(default = "SessionMonitoring::default_node_exporter_port")]
    #[schemars(range(min = 1))]
    pub node_exporter_port: u16,
    /// More endpoints to scrape: a port of a service of this recipe (found on its node
    /// once it runs), of a service that already runs (by its id), or of a host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<ScrapeTarget>,
    /// PromQL queries whose series over the session go into the report, besides the
    /// built-in ones (targets up, client requests and latency, node CPU, memory and
    /// network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<String>,
}

impl SessionMonitoring {
    fn default_node_exporter() -> bool {
        true
    }
    fn default_node_exporter_port() -> u16 {
        9100
    }

    /// Every default: `monitoring: prometheus`.
    #[must_use]
    pub fn prometheus() -> Self {
        Self {
            kind: MonitoringKind::Prometheus,
            service: None,
            scrape_interval: None,
            node_exporter: true,
            node_exporter_port: Self::default_node_exporter_port(),
            targets: Vec::new(),
            queries: Vec::new(),
        }
    }
}

/// What monitors a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MonitoringKind {
    /// Prometheus, as a service of the session.
    #[default]
    Prometheus,
}

/// One more endpoint for the session's Prometheus: `service` (a service of this recipe
/// by name, or a running one by id) or `host`, and a port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTarget {
    /// A service of this recipe (its name), or a service that already runs (its id,
    /// as `orchestrator status` lists it): its node is scraped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// A host to scrape, when no service is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Za-z0-9._-]+$"))]
    pub host: Option<String>,
    /// The port its metrics are served on.
    #[schemars(range(min = 1))]
    pub port: u16,
    /// The `job` label its series get (default: the service's name, or `targets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(NAME_PATTERN))]
    pub job_name: Option<String>,
    /// The path its metrics are served at (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^/[!-~]*$"))]
    pub path: Option<String>,
}

impl BenchmarkRecipe {
    /// The service a client loads: the one whose `name` matches the client's
    /// `target_service.name` (or `.type`), else the one whose `type` matches
    /// `target_service.type`; with a single service, that one.
    #[must_use]
    pub fn target_of(&self, client: &ClientRecipe) -> Option<&ServiceRecipe> {
        let target = client.target_service.clone().unwrap_or_default();
        let wanted = target.name.as_ref().or(target.service_type.as_ref());
        if let Some(wanted) = wanted {
            if let Some(service) = self.services.iter().find(|s| &s.name == wanted) {
                return Some(service);
            }
        }
        if let Some(kind) = &target.service_type {
            let mut by_type = self
                .services
                .iter()
                .filter(|s| s.service_type.as_ref() == Some(kind));
            if let (Some(service), None) = (by_type.next(), by_type.next()) {
                return Some(service);
            }
        }
        match self.services.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}

/// The kinds of file the orchestrator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One service.
    Service,
    /// One client.
    Client,
    /// A complete benchmark: services and clients.
    Recipe,
    /// The orchestrator's `config.yaml`.
    Config,
}

impl Kind {
    /// The kind's name as used on the command line and in schema file names.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Client => "client",
            Self::Recipe => "recipe",
            Self::Config => "config",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Service => "service recipe",
            Self::Client => "client recipe",
            Self::Recipe => "complete recipe",
            Self::Config => "config",
        })
    }
}

/// What a client does when the service it loads dies during its run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnServiceFailure {
    /// Cancel the client's job at once.
    #[default]
    Cancel,
    /// Let it run to its end (its results stay marked invalid).
    Finish,
}

impl OnServiceFailure {
    fn is_default(&self) -> bool {
        *self == Self::Cancel
    }
}
