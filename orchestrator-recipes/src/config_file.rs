//! Finding and loading the config. Lookup order: `--config FILE`, then
//! `ORCHESTRATOR_CONFIG`, then `./config.yaml`, then built-in defaults. A file named by
//! the first two must exist. Afterwards the environment overrides `SSH_KEY_PATH`,
//! `SLURM_ACCOUNT` and `ORCHESTRATOR_LOG_LEVEL` apply, and relative local paths are
//! resolved against the config file's directory.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::load::{LoadError, load_file};
use crate::model::Kind;

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
    use std::collections::BTreeMap;

    use serde_json::Value;

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
