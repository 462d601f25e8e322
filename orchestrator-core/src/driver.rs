//! Driver traits and their registry.
//!
//! A *service driver* knows how to launch one kind of service and how to tell that it
//! is ready; a *workload driver* knows how to load a service from a client job. Plugin
//! crates register them with [`inventory::submit!`]; core finds them only through
//! [`Registry`], never by name in its own code.
//!
//! ```ignore
//! inventory::submit! { orchestrator_core::ServiceDriverEntry(&MyDriver) }
//! ```
//!
//! A plugin crate that the final binary never names is not linked at all, so its
//! entries would be missing: binaries name each plugin crate once (`use plugin as _;`).

use std::collections::BTreeMap;

use orchestrator_recipes::{ClientRecipe, ServiceRecipe};
use serde::Serialize;
use serde_json::Value;

use crate::health::HealthProbe;

/// What a job runs, as a driver decides it from a recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Launch {
    /// The program.
    pub command: String,
    /// Its arguments, passed literally.
    pub args: Vec<String>,
    /// Environment variables added to the recipe's own (the recipe wins on a clash).
    pub environment: BTreeMap<String, String>,
    /// A container image to use when the recipe names none.
    pub default_image: Option<String>,
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
    /// `TARGET_PORT`, `TARGET_URL` and `TARGET_SERVICE_ID`.
    #[must_use]
    pub fn environment(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("TARGET_HOST".to_owned(), self.host.clone()),
            ("TARGET_PORT".to_owned(), self.port.to_string()),
            ("TARGET_URL".to_owned(), self.url.clone()),
            ("TARGET_SERVICE_ID".to_owned(), self.service_id.clone()),
        ])
    }
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

/// Launches and probes one kind of service.
pub trait ServiceDriver: Send + Sync + 'static {
    /// The name recipes use in `type`.
    fn name(&self) -> &'static str;

    /// One line for `orchestrator list`.
    fn description(&self) -> &'static str;

    /// Whether this driver runs services whose `type` names no registered driver (the
    /// generic driver does: any command or container with ports).
    fn is_fallback(&self) -> bool {
        false
    }

    /// The JSON Schema of the driver's own options.
    fn options_schema(&self) -> Value {
        serde_json::json!({ "type": "object" })
    }

    /// What the service's job runs.
    ///
    /// # Errors
    /// A recipe this driver cannot launch, e.g. one with neither a command nor an image.
    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError>;

    /// How to tell that the service is ready: by default the recipe's `health_check`,
    /// else a TCP connect to its first port, else nothing (running is ready).
    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        HealthProbe::for_service(service)
    }
}

/// Loads a service from a client job.
pub trait WorkloadDriver: Send + Sync + 'static {
    /// The name client recipes use in `workload_type`.
    fn name(&self) -> &'static str;

    /// One line for `orchestrator list`.
    fn description(&self) -> &'static str;

    /// Whether this driver runs clients that name no workload type but carry a
    /// `command` (the `command` workload does).
    fn is_fallback(&self) -> bool {
        false
    }

    /// Service types this workload can load; empty means any.
    fn targets(&self) -> &'static [&'static str] {
        &[]
    }

    /// The JSON Schema of the client's `parameters`.
    fn parameters_schema(&self) -> Value {
        serde_json::json!({ "type": "object" })
    }

    /// What the client's job runs against `target`: by default the orchestrator's own
    /// engine with this driver (`orchestrator workload run`, see
    /// [`engine_launch`](crate::workload::engine_launch)); a workload that runs a
    /// program of its own says which.
    ///
    /// # Errors
    /// A recipe this workload cannot run.
    fn launch(&self, client: &ClientRecipe, target: &Target) -> Result<Launch, DriverError> {
        crate::workload::engine_launch(self.name(), client, target)
    }

    /// The workload for the engine (`orchestrator bench`, `orchestrator workload run`)
    /// against `url` with these parameters; `None` for workloads that run a program
    /// of their own instead. It must not connect (that is `Workload::connect`):
    /// `orchestrator validate` calls it to check parameters.
    ///
    /// # Errors
    /// Parameters the workload does not accept, or a URL it cannot load.
    fn workload(
        &self,
        url: &str,
        parameters: &serde_json::Map<String, Value>,
    ) -> Option<Result<std::sync::Arc<dyn crate::workload::Workload>, DriverError>> {
        let _ = (url, parameters);
        None
    }
}

/// A registered service driver: `inventory::submit! { ServiceDriverEntry(&MyDriver) }`.
pub struct ServiceDriverEntry(pub &'static dyn ServiceDriver);

/// A registered workload driver: `inventory::submit! { WorkloadDriverEntry(&MyLoad) }`.
pub struct WorkloadDriverEntry(pub &'static dyn WorkloadDriver);

inventory::collect!(ServiceDriverEntry);
inventory::collect!(WorkloadDriverEntry);

/// The drivers linked into this program.
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl Registry {
    /// Every service driver, sorted by name (link order is not stable).
    #[must_use]
    pub fn service_drivers() -> Vec<&'static dyn ServiceDriver> {
        let mut all: Vec<_> = inventory::iter::<ServiceDriverEntry>
            .into_iter()
            .map(|e| e.0)
            .collect();
        all.sort_by_key(|d| d.name());
        all
    }

    /// Every workload driver, sorted by name.
    #[must_use]
    pub fn workload_drivers() -> Vec<&'static dyn WorkloadDriver> {
        let mut all: Vec<_> = inventory::iter::<WorkloadDriverEntry>
            .into_iter()
            .map(|e| e.0)
            .collect();
        all.sort_by_key(|d| d.name());
        all
    }

    /// The driver for a service `type`: the one of that name, else the fallback driver
    /// (for a type that has no dedicated driver yet).
    ///
    /// # Errors
    /// No driver of that name and no fallback is linked.
    pub fn service_driver(kind: Option<&str>) -> Result<&'static dyn ServiceDriver, DriverError> {
        let all = Self::service_drivers();
        if let Some(kind) = kind {
            if let Some(driver) = all.iter().find(|d| d.name() == kind) {
                return Ok(*driver);
            }
        }
        all.iter()
            .find(|d| d.is_fallback())
            .copied()
            .ok_or_else(|| {
                DriverError::new(
                    format!("no service driver `{}` is linked", kind.unwrap_or("-")),
                    format!(
                        "known service types: {}",
                        names(all.iter().map(|d| d.name()))
                    ),
                )
            })
    }

    /// The workload driver called `name`.
    ///
    /// # Errors
    /// None of that name is linked.
    pub fn workload_named(name: &str) -> Result<&'static dyn WorkloadDriver, DriverError> {
        let all = Self::workload_drivers();
        all.iter()
            .find(|d| d.name() == name)
            .copied()
            .ok_or_else(|| {
                DriverError::new(
                    format!("no workload driver `{name}` is linked"),
                    format!(
                        "known workload types: {}",
                        names(all.iter().map(|d| d.name()))
                    ),
                )
            })
    }

    /// The workload driver of a client: its `workload_type`, else (for a client with a
    /// `command`) the fallback workload.
    ///
    /// # Errors
    /// The client names a workload that is not linked and has no command to run.
    pub fn workload_driver(
        client: &ClientRecipe,
    ) -> Result<&'static dyn WorkloadDriver, DriverError> {
        let all = Self::workload_drivers();
        if let Some(kind) = &client.workload_type {
            if let Some(driver) = all.iter().find(|d| d.name() == kind) {
                return Ok(*driver);
            }
        }
        if client.command.is_some() {
            if let Some(driver) = all.iter().find(|d| d.is_fallback()) {
                return Ok(*driver);
            }
        }
        let known = names(all.iter().map(|d| d.name()));
        Err(match &client.workload_type {
            Some(kind) => DriverError::new(
                format!(
                    "client `{}`: no workload driver `{kind}` is linked",
                    client.name
                ),
                format!("known workload types: {known}; or give the client a `command` to run"),
            ),
            None => DriverError::new(
                format!(
                    "client `{}` has neither a `workload_type` nor a `command`",
                    client.name
                ),
                format!("set `command` (and `args`), or a workload_type: {known}"),
            ),
        })
    }
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<&str> = names.collect();
    if list.is_empty() {
        "none (no driver plugin is linked into this program)".to_owned()
    } else {
        list.join(", ")
    }
}
