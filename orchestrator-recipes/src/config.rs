//! The orchestrator's `config.yaml`, as types: where the cluster is, SLURM defaults,
//! where recipes, state and results live. No `hpc` section means the local scheduler.
//! [`config_file`](crate::config_file) finds and loads it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::SlurmOptions;
use crate::values::Duration;

/// The orchestrator's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster's login node, reached over SSH. Absent: jobs run on this machine
    /// with the local scheduler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpc: Option<HpcConfig>,
    /// SLURM defaults for every job; a recipe's `resources.slurm` overrides them.
    #[serde(default)]
    pub slurm: SlurmOptions,
    /// Directory of service recipes (`orchestrator list services`).
    #[serde(default = "Config::default_services_dir")]
    pub services_dir: String,
    /// Directory of client recipes (`orchestrator list clients`).
    #[serde(default = "Config::default_clients_dir")]
    pub clients_dir: String,
    /// Container settings.
    #[serde(default)]
    pub containers: ContainersConfig,
    /// Where the state database lives on this machine (default:
    /// `$XDG_STATE_HOME/hpc-orchestrator`, else `~/.local/state/hpc-orchestrator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// Where reports and fetched results go on this machine.
    #[serde(default = "Config::default_results_dir")]
    pub results_dir: String,
    /// Working directory for job scripts and outputs on the cluster; relative paths
    /// are relative to the home directory there.
    #[serde(default = "Config::default_work_dir")]
    pub work_dir: String,
    /// Directory of job script templates that override the embedded ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<String>,
    /// The `orchestrator` binary on the cluster that client jobs run the workload engine
    /// with. Absent: the running binary is uploaded once per version into `work_dir/bin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_binary: Option<String>,
    /// The share of failed requests (failed / all) above which a client's run counts
    /// as broken: `run` says so and exits 3, as for a missed `expect`. A client's own
    /// `expect: {error_rate: {max: …}}` overrides it. Each session records the bound
    /// it ran under.
    #[serde(default = "Config::default_max_error_rate")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub max_error_rate: f64,
    /// The original tool's monitoring section: kept, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<BTreeMap<String, Value>>,
    /// The original tool's logging section: kept, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<BTreeMap<String, Value>>,
    /// The original tool's benchmarks section: kept, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmarks: Option<BTreeMap<String, Value>>,
    /// Further named directories (the original tool's other `*_dir` keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_dirs: BTreeMap<String, String>,
}

/// How to reach the cluster's login node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HpcConfig {
    /// Host name or address of the login node.
    #[schemars(length(min = 1))]
    pub hostname: String,
    /// User name on the cluster.
    #[schemars(length(min = 1))]
    pub username: String,
    /// Private key file (`~` is expanded; `SSH_KEY_PATH` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_filename: Option<String>,
    /// SSH port.
    #[serde(default = "HpcConfig::default_port")]
    #[schemars(range(min = 1))]
    pub port: u16,
    /// known_hosts file that holds the login node's host key (default
    /// `~/.ssh/known_hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
}

impl HpcConfig {
    fn default_port() -> u16 {
        22
    }
}

/// Container settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainersConfig {
    /// Build a missing image from the recipe's `container_source` before the job runs.
    #[serde(default)]
    pub auto_build: bool,
    /// Longest time an image build may take.
    #[serde(default = "ContainersConfig::default_build_timeout")]
    pub build_timeout: Duration,
    /// Registry prefix for images named without one, e.g. `docker://registry.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The directory of images named without one: `container_image: ollama.sif` is
    /// `BASE_PATH/ollama.sif` (may start with `$HOME/`). Without it, such a name is
    /// relative to the job's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_path: Option<String>,
    /// The container runtime on the compute nodes: `apptainer`, `singularity`, or a
    /// path to either.
    #[serde(default = "ContainersConfig::default_runtime")]
    #[schemars(length(min = 1), pattern(r"^[^\s]+$"))]
    pub runtime: String,
}

impl ContainersConfig {
    fn default_build_timeout() -> Duration {
        Duration::from_secs(30 * 60)
    }
    fn default_runtime() -> String {
        "apptainer".to_owned()
    }
}

impl Default for ContainersConfig {
    fn default() -> Self {
        Self {
            auto_build: false,
            build_timeout: Self::default_build_timeout(),
            registry: None,
            base_path: None,
            runtime: Self::default_runtime(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            hpc: None,
            slurm: SlurmOptions::default(),
            services_dir: Self::default_services_dir(),
            clients_dir: Self::default_clients_dir(),
            containers: ContainersConfig::default(),
            state_dir: None,
            results_dir: Self::default_results_dir(),
            work_dir: Self::default_work_dir(),
            templates_dir: None,
            remote_binary: None,
            max_error_rate: Self::default_max_error_rate(),
            monitoring: None,
            logging: None,
            benchmarks: None,
            extra_dirs: BTreeMap::new(),
        }
    }
}

impl Config {
    /// The default of [`Config::max_error_rate`]: 1 %.
    pub const DEFAULT_MAX_ERROR_RATE: f64 = 0.01;

    fn default_max_error_rate() -> f64 {
        Self::DEFAULT_MAX_ERROR_RATE
    }
    fn default_services_dir() -> String {
        "recipes/services".into()
    }
    fn default_clients_dir() -> String {
        "recipes/clients".into()
    }
    fn default_results_dir() -> String {
        "results".into()
    }
    fn default_work_dir() -> String {
        ".hpc-orchestrator".into()
    }

    /// The config as shown to people: secrets (keys named like passwords or tokens,
    /// passwords inside URLs) replaced by `<redacted>`.
    #[must_use]
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).expect("the config serialises");
        redact_secrets(&mut value);
        value
    }
}

const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "credential",
];

/// Replaces secrets in `value` by `<redacted>`: the value of every key named like a
/// password or token (`MYSQL_PASSWORD`, `HF_TOKEN`, `api_key`), at any depth, and the
/// password inside any URL (`mysql://bench:…@db/x`). For configs and recipes as shown to
/// people, in messages and reports.
pub fn redact_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_WORDS.iter().any(|w| lower.contains(w)) && !v.is_null() {
                    *v = Value::String("<redacted>".into());
                } else {
                    redact_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        Value::String(text) => {
            if let Some(clean) = redact_url_password(text) {
                *text = clean;
            }
        }
        _ => {}
    }
}

/// `scheme://user:password@host/...` with the password replaced.
fn redact_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:<redacted>@{host}{tail}"))
}
