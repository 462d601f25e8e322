//! The values drivers and the session runner exchange: what a job runs ([`Launch`]),
//! what a client loads ([`Target`]), where a service says its version
//! ([`VersionQuery`]), and a driver's refusal ([`DriverError`]).

use std::collections::BTreeMap;

use serde::Serialize;

pub use orchestrator_slurm::Arg;

/// What a job runs, as a driver decides it from a recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Launch {
    /// The program.
    pub command: String,
    /// Its arguments: literal (`"serve".into()`), or the recipe's own as
    /// [`Arg::Expanding`], whose `${NAME}` references the job's environment fills in.
    pub args: Vec<Arg>,
    /// Environment variables added to the recipe's own (the recipe wins on a clash).
    pub environment: BTreeMap<String, String>,
    /// A container image to use when the recipe names none.
    pub default_image: Option<String>,
}

/// A recipe's own `args` as a job runs them: `${NAME}` in each is the job's environment
/// variable ([`Arg::Expanding`]).
#[must_use]
pub fn recipe_args(args: &[orchestrator_recipes::ScalarString]) -> Vec<Arg> {
    args.iter()
        .map(|a| Arg::Expanding(a.as_str().to_owned()))
        .collect()
}

impl Launch {
    /// What a service recipe that says what to run runs: its `command` with its `args`,
    /// or, with only a `container_image`, the image's own entry point (apptainer `run`
    /// semantics through `exec`) with them. `None` when it names neither, where a
    /// driver runs the service its own way (or refuses it).
    #[must_use]
    pub fn as_written(service: &orchestrator_recipes::ServiceRecipe) -> Option<Self> {
        let command = match (&service.command, &service.container_image) {
            (Some(command), _) => command.clone(),
            (None, Some(_)) => "/.singularity.d/runscript".to_owned(),
            (None, None) => return None,
        };
        Some(Self {
            command,
            args: recipe_args(&service.args),
            ..Self::default()
        })
    }
}

/// The service a client loads, once it is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The service's id in the state store.
    pub service_id: String,
    /// The service's name.
    pub service_name: String,
    /// Its driver.
    pub service_type: String,
    /// The host clients reach it on (its compute node).
    pub host: String,
    /// The port clients load.
    pub port: u16,
    /// `http://HOST:PORT` followed by the client's `target_service.endpoint`, if any.
    pub url: String,
}

impl Target {
    /// The environment a client job finds its target in: `TARGET_HOST`,
    /// `TARGET_PORT`, `TARGET_URL` and `TARGET_SERVICE_ID`, and `TARGET_SERVICE_HOST`
    /// (the host again, under the name the original tool's recipes use:
    /// `--endpoint=${TARGET_SERVICE_HOST}:3306`).
    #[must_use]
    pub fn environment(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("TARGET_HOST".to_owned(), self.host.clone()),
            ("TARGET_SERVICE_HOST".to_owned(), self.host.clone()),
            ("TARGET_PORT".to_owned(), self.port.to_string()),
            ("TARGET_URL".to_owned(), self.url.clone()),
            ("TARGET_SERVICE_ID".to_owned(), self.service_id.clone()),
        ])
    }
}

/// Where a service tells its version: `GET path`, then `pointer` into the JSON answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionQuery {
    /// The request path.
    pub path: &'static str,
    /// A JSON pointer (RFC 6901) to the version string.
    pub pointer: &'static str,
}

/// A recipe a driver cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DriverError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl DriverError {
    /// An error with a hint.
    #[must_use]
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}
