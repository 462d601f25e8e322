//! The orchestrator's `config.yaml`: where the cluster is, SLURM defaults, where
//! recipes, state and results live. No `hpc` section means the local scheduler.
//!
//! Lookup order: `--config FILE`, then `ORCHESTRATOR_CONFIG`, then `./config.yaml`,
//! then built-in defaults. A file named by the first two must exist. Afterwards the
//! environment overrides `SSH_KEY_PATH`, `SLURM_ACCOUNT` and `ORCHESTRATOR_LOG_LEVEL`
//! apply, and relative local paths are resolved against the config file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::forms::Kind;
use crate::load::{LoadError, load_file};
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
            monitoring: None,
            logging: None,
            benchmarks: None,
            extra_dirs: BTreeMap::new(),
        }
    }
}

impl Config {
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
        redact(&mut value);
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

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let lower = key.to_ascii_lowercase();
                if SECRET_WORDS.iter().any(|w| lower.contains(w)) && !v.is_null() {
                    *v = Value::String("<redacted>".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
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

/// A config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The resolved config.
    pub config: Config,
    /// The file it was read from; none for the built-in defaults.
    pub path: Option<PathBuf>,
    /// Which forms of the original tool were read.
    pub notes: Vec<String>,
    /// Environment overrides that applied, as `VARIABLE → setting`.
    pub overrides: Vec<String>,
    /// The log level from `ORCHESTRATOR_LOG_LEVEL`, if set.
    pub log_level: Option<String>,
}

impl LoadedConfig {
    /// Where the state database lives.
    #[must_use]
    pub fn state_dir(&self, env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
        if let Some(dir) = &self.config.state_dir {
            return PathBuf::from(dir);
        }
        if let Some(state_home) = env("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
            return Path::new(&state_home).join("hpc-orchestrator");
        }
        let home = env("HOME").unwrap_or_else(|| ".".into());
        Path::new(&home).join(".local/state/hpc-orchestrator")
    }
}

/// Why the config could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    /// A config file that was asked for does not exist.
    #[error("config file {} (from {origin}) does not exist", path.display())]
    #[diagnostic(
        code(config::not_found),
        help("create it, or unset {origin} to use ./config.yaml or the built-in defaults")
    )]
    NotFound {
        /// The file.
        path: PathBuf,
        /// `--config` or `ORCHESTRATOR_CONFIG`.
        origin: &'static str,
    },
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
}

/// Loads the config: `explicit` (from `--config`), else `ORCHESTRATOR_CONFIG`, else
/// `./config.yaml` when it exists, else the defaults; then applies the environment.
///
/// # Errors
/// A named file that does not exist, or a file that is unreadable or invalid.
pub fn load_config(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LoadedConfig, ConfigError> {
    let named = match explicit {
        Some(path) => Some((path.to_path_buf(), "--config")),
        None => env("ORCHESTRATOR_CONFIG")
            .filter(|p| !p.is_empty())
            .map(|p| (PathBuf::from(p), "ORCHESTRATOR_CONFIG")),
    };
    let path = match named {
        Some((path, origin)) => {
            if !path.exists() {
                return Err(ConfigError::NotFound { path, origin });
            }
            Some(path)
        }
        None => Some(PathBuf::from("config.yaml")).filter(|p| p.is_file()),
    };
    let (mut config, notes) = match &path {
        Some(path) => {
            let loaded = load_file(path, Some(Kind::Config))?;
            match loaded.value {
                crate::load::Document::Config(config) => (*config, loaded.notes),
                _ => unreachable!("loaded with Kind::Config"),
            }
        }
        None => (Config::default(), Vec::new()),
    };
    let home = env("HOME");
    let base = path
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut overrides = Vec::new();
    if let Some(key) = env("SSH_KEY_PATH").filter(|k| !k.is_empty()) {
        if let Some(hpc) = &mut config.hpc {
            hpc.key_filename = Some(key);
            overrides.push("SSH_KEY_PATH → hpc.key_filename".to_owned());
        }
    }
    if let Some(account) = env("SLURM_ACCOUNT").filter(|a| !a.is_empty()) {
        config.slurm.account = Some(account);
        overrides.push("SLURM_ACCOUNT → slurm.account".to_owned());
    }
    let log_level = env("ORCHESTRATOR_LOG_LEVEL").filter(|l| !l.is_empty());
    let resolve = |p: &str| resolve_local(p, &base, home.as_deref());
    config.services_dir = resolve(&config.services_dir);
    config.clients_dir = resolve(&config.clients_dir);
    config.results_dir = resolve(&config.results_dir);
    config.state_dir = config.state_dir.as_deref().map(resolve);
    config.templates_dir = config.templates_dir.as_deref().map(resolve);
    if let Some(hpc) = &mut config.hpc {
        hpc.key_filename = hpc.key_filename.as_deref().map(resolve);
        hpc.known_hosts = hpc.known_hosts.as_deref().map(resolve);
    }
    Ok(LoadedConfig {
        config,
        path,
        notes,
        overrides,
        log_level,
    })
}

/// `~` expanded, and a relative path joined to the config file's directory.
fn resolve_local(path: &str, base: &Path, home: Option<&str>) -> String {
    let expanded = match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ if path == "~" && home.is_some() => PathBuf::from(home.unwrap_or_default()),
        _ => PathBuf::from(path),
    };
    if expanded.is_relative() && !base.as_os_str().is_empty() {
        base.join(expanded).display().to_string()
    } else {
        expanded.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_and_secret_keys_are_redacted() {
        let mut config = Config::default();
        config.containers.registry = Some("docker://alice:hunter2@registry.example.com/x".into());
        config.monitoring = Some(BTreeMap::from([
            ("grafana_password".to_owned(), Value::from("hunter2")),
            ("port".to_owned(), Value::from(3000)),
        ]));
        let shown = config.redacted().to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("docker://alice:<redacted>@registry.example.com/x"));
        assert!(shown.contains("3000"));
    }

    #[test]
    fn paths_resolve_against_the_config_directory_and_home() {
        assert_eq!(
            resolve_local("recipes", Path::new("/etc/orch"), None),
            "/etc/orch/recipes"
        );
        assert_eq!(
            resolve_local("~/k", Path::new("/etc/orch"), Some("/home/u")),
            "/home/u/k"
        );
        assert_eq!(resolve_local("/abs", Path::new("/etc/orch"), None), "/abs");
        assert_eq!(resolve_local("rel", Path::new(""), None), "rel");
    }
}
