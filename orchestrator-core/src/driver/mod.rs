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

use orchestrator_recipes::{ClientRecipe, ParameterIssue, ServiceRecipe};
use serde_json::Value;

pub(crate) mod checks;
mod types;

use crate::health::HealthProbe;
use crate::workload::{RESULTS_DIR, WorkloadSpec};
pub use types::{Arg, DriverError, Launch, Target, VersionQuery, recipe_args};

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

    /// Other names for this driver: a `type` a recipe may write instead of
    /// [`name`](Self::name), and a service's program that it runs when the recipe has
    /// no `type` (the `mysql` driver: `mariadb`, `mysqld`, `mariadbd`). None by default.
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether `name` is this driver's name or one of its [aliases](Self::aliases).
    fn answers_to(&self, name: &str) -> bool {
        self.name() == name || self.aliases().contains(&name)
    }

    /// The JSON Schema of the driver's own options.
    fn options_schema(&self) -> Value {
        serde_json::json!({ "type": "object" })
    }

    /// Checks the recipe's `options` (their keys are already checked against
    /// [`options_schema`](Self::options_schema)); by default any key is accepted. Called
    /// when a recipe is validated, before anything is submitted.
    ///
    /// # Errors
    /// An option value this driver does not accept, its key named in backquotes.
    fn check_options(&self, options: &serde_json::Map<String, Value>) -> Result<(), DriverError> {
        let _ = options;
        Ok(())
    }

    /// What the service's job runs.
    ///
    /// # Errors
    /// A recipe this driver cannot launch, e.g. one with neither a command nor an image.
    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError>;

    /// Where the running service says its version, for the report: an HTTP path and a
    /// JSON pointer into its answer (Ollama: `/api/version`, `/version`). `None` (the
    /// default): the version is not known.
    fn version_query(&self) -> Option<VersionQuery> {
        None
    }

    /// What a user should know about `service` although this driver runs it (each a
    /// sentence; `validate` and `run` print them as warnings), e.g. a health endpoint
    /// the service does not serve, probed elsewhere instead. None by default.
    fn review(&self, service: &ServiceRecipe) -> Vec<String> {
        let _ = service;
        Vec::new()
    }

    /// How to tell that the service is ready: by default the recipe's `health_check`,
    /// else a TCP connect to its first port, else nothing (running is ready).
    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        HealthProbe::for_service(service)
    }

    /// How `service` runs as its session's monitor (a recipe's `monitoring:`): every
    /// `interval` it scrapes the targets the session's jobs write into the directory
    /// `$ORCH_MONITORING_TARGETS` (Prometheus's `file_sd_configs` files), and it
    /// answers Prometheus's HTTP API on the service's first port. `None` (the
    /// default): this driver cannot monitor a session.
    fn monitor_launch(
        &self,
        service: &ServiceRecipe,
        interval: std::time::Duration,
    ) -> Option<Result<Launch, DriverError>> {
        let _ = (service, interval);
        None
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

    /// Service types this workload is the natural load for: a client that names a kind
    /// of load ([`GENERIC_WORKLOAD_TYPES`], e.g. `workload_type: llm_inference`) rather
    /// than a driver gets the workload whose list holds its target's type. Empty (the
    /// default): never chosen so.
    fn fits(&self) -> &'static [&'static str] {
        &[]
    }

    /// The original tool's names for this workload's parameters, as its client recipes
    /// write them: `(original, here)`, e.g. `("num_operations", "requests")`. A client's
    /// parameter under an original name is read under this tool's (`-v` says so); both
    /// at once is an error. None by default.
    fn original_parameters(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// The JSON Schema of the client's `parameters`.
    fn parameters_schema(&self) -> Value {
        serde_json::json!({ "type": "object" })
    }

    /// What the client's job runs against `target`: by default the orchestrator's own
    /// engine with this driver (`orchestrator workload run`, see
    /// [`engine_launch`]); a workload that runs a
    /// program of its own says which.
    ///
    /// # Errors
    /// A recipe this workload cannot run.
    fn launch(&self, client: &ClientRecipe, target: &Target) -> Result<Launch, DriverError> {
        engine_launch(self, client, target)
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

/// Parameters of the original tool's clients that the orchestrator itself takes care
/// of, whatever the workload: read, said, and not passed on.
pub const HANDLED_ORIGINAL_PARAMETERS: &[(&str, &str)] = &[
    (
        "wait_for_service",
        "the client starts once the service's health check passes",
    ),
    (
        "output_file",
        "results go to the job's `results/` and come back to `results_dir`",
    ),
];

/// A client's `parameters` as `driver` reads them: the original tool's names
/// ([`WorkloadDriver::original_parameters`]) renamed, the ones the orchestrator handles
/// ([`HANDLED_ORIGINAL_PARAMETERS`]) left out, each said in a note.
///
/// # Errors
/// A parameter given under both names, at the original one.
pub fn read_parameters<D: WorkloadDriver + ?Sized>(
    driver: &D,
    client: &str,
    parameters: &BTreeMap<String, Value>,
) -> Result<(BTreeMap<String, Value>, Vec<String>), ParameterIssue> {
    let mut read = BTreeMap::new();
    let mut notes = Vec::new();
    for (key, value) in parameters {
        if let Some((_, why)) = HANDLED_ORIGINAL_PARAMETERS.iter().find(|(k, _)| k == key) {
            notes.push(format!(
                "client `{client}`: the original tool's parameter `{key}` is not needed: {why}"
            ));
            continue;
        }
        let name = match driver.original_parameters().iter().find(|(k, _)| k == key) {
            Some((_, here)) => {
                if parameters.contains_key(*here) {
                    return Err(ParameterIssue {
                        key: key.clone(),
                        message: format!(
                            "`{key}` is the original tool's name for `{here}`, and both are given"
                        ),
                        hint: Some(format!("keep one of `{key}` and `{here}`")),
                        ..ParameterIssue::default()
                    });
                }
                notes.push(format!(
                    "client `{client}`: the original tool's parameter `{key}` read as `{here}` of the `{}` workload",
                    driver.name()
                ));
                (*here).to_owned()
            }
            None => key.clone(),
        };
        read.insert(name, value.clone());
    }
    Ok((read, notes))
}

/// Workload types that name a kind of load rather than a driver, as the original
/// tool's recipes write them (`workload_type: llm_inference`): each resolves to the
/// linked workload that [fits](WorkloadDriver::fits) the target service's type.
pub const GENERIC_WORKLOAD_TYPES: &[&str] = &["llm_inference", "llm", "inference"];

/// A driver chosen for a recipe, and how, when the recipe did not name it outright.
#[derive(Clone)]
pub struct Resolved<D: ?Sized + 'static> {
    /// The driver.
    pub driver: &'static D,
    /// How it was chosen (for `-v`), when the recipe named a kind rather than it.
    pub note: Option<String>,
}

impl<D: ?Sized> std::fmt::Debug for Resolved<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("note", &self.note)
            .finish_non_exhaustive()
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
            if let Some(driver) = all.iter().find(|d| d.answers_to(kind)) {
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

    /// The driver of a service: the one its `type` names (else the fallback); with no
    /// `type`, the driver named like its command's program (`command: ollama`, as the
    /// original tool's recipes write it), else the fallback.
    ///
    /// # Errors
    /// No driver of that name and no fallback is linked.
    pub fn service_driver_for(
        service: &ServiceRecipe,
    ) -> Result<Resolved<dyn ServiceDriver>, DriverError> {
        if service.service_type.is_none() {
            let program = service
                .command
                .as_deref()
                .and_then(|c| std::path::Path::new(c).file_name().and_then(|n| n.to_str()));
            if let Some(program) = program {
                if let Some(driver) = Self::service_drivers()
                    .into_iter()
                    .find(|d| !d.is_fallback() && d.answers_to(program))
                {
                    return Ok(Resolved {
                        driver,
                        note: Some(format!(
                            "service `{}` has no `type`: its command `{program}` is run by the `{}` driver (write `type: {}` to say so)",
                            service.name,
                            driver.name(),
                            driver.name()
                        )),
                    });
                }
            }
        }
        Ok(Resolved {
            driver: Self::service_driver(service.service_type.as_deref())?,
            note: None,
        })
    }

    /// The type of the service a client loads, as far as it is known: its target's
    /// `type` or the driver its target runs on (`target`, in a complete recipe or once
    /// submitted), else the client's `target_service.type`, else its
    /// `target_service.name` when that names a service driver (`name: ollama`).
    #[must_use]
    pub fn target_type(client: &ClientRecipe, target: Option<&ServiceRecipe>) -> Option<String> {
        // A type a driver answers to under an alias (`mariadb`) is that driver's.
        let canonical = |kind: &str| {
            Self::service_drivers()
                .into_iter()
                .find(|d| !d.is_fallback() && d.answers_to(kind))
                .map_or_else(|| kind.to_owned(), |d| d.name().to_owned())
        };
        if let Some(service) = target {
            if let Some(kind) = &service.service_type {
                return Some(canonical(kind));
            }
            if let Ok(resolved) = Self::service_driver_for(service) {
                if !resolved.driver.is_fallback() {
                    return Some(resolved.driver.name().to_owned());
                }
            }
        }
        let wanted = client.target_service.as_ref()?;
        if let Some(kind) = &wanted.service_type {
            return Some(canonical(kind));
        }
        let name = wanted.name.as_deref()?;
        Self::service_drivers()
            .into_iter()
            .find(|d| !d.is_fallback() && d.answers_to(name))
            .map(|d| d.name().to_owned())
    }

    /// The workload driver of a client: its `workload_type`; a generic one
    /// ([`GENERIC_WORKLOAD_TYPES`]) resolved to the workload that fits the type of its
    /// target ([`target_type`](Self::target_type)); with none, for a client with a
    /// `command`, the fallback workload.
    ///
    /// # Errors
    /// The client names a workload that is not linked, a generic one that nothing fits,
    /// or nothing to run.
    pub fn workload_driver(
        client: &ClientRecipe,
        target: Option<&ServiceRecipe>,
    ) -> Result<Resolved<dyn WorkloadDriver>, DriverError> {
        let all = Self::workload_drivers();
        let known = names(all.iter().map(|d| d.name()));
        if let Some(kind) = &client.workload_type {
            if let Some(driver) = all.iter().find(|d| d.name() == kind) {
                return Ok(Resolved {
                    driver: *driver,
                    note: None,
                });
            }
            if GENERIC_WORKLOAD_TYPES.contains(&kind.as_str()) {
                return Self::generic_workload(client, kind, target, &all);
            }
        }
        if client.command.is_some() || (client.workload_type.is_none() && client.script.is_some()) {
            if let Some(driver) = all.iter().find(|d| d.is_fallback()) {
                let note = (client.command.is_none()).then(|| {
                    format!(
                        "client `{}`: its `script:` block runs as `python3 {} --endpoint=URL` and each parameter as `--name=value`, as the original tool ran it",
                        client.name,
                        crate::script::remote_script(client.script.as_ref().expect("a script"))
                    )
                });
                return Ok(Resolved {
                    driver: *driver,
                    note,
                });
            }
        }
        Err(match &client.workload_type {
            Some(kind) => DriverError::new(
                format!(
                    "client `{}`: no workload driver `{kind}` is linked",
                    client.name
                ),
                format!(
                    "known workload types: {known} (or one of {}, resolved by the target's type); or give the client a `command` to run",
                    GENERIC_WORKLOAD_TYPES.join(", ")
                ),
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

    fn generic_workload(
        client: &ClientRecipe,
        kind: &str,
        target: Option<&ServiceRecipe>,
        all: &[&'static dyn WorkloadDriver],
    ) -> Result<Resolved<dyn WorkloadDriver>, DriverError> {
        let fitting: Vec<&'static dyn WorkloadDriver> = all
            .iter()
            .copied()
            .filter(|d| !d.fits().is_empty())
            .collect();
        let choices = fitting
            .iter()
            .map(|d| format!("`{}` for {}", d.name(), d.fits().join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let Some(service_type) = Self::target_type(client, target) else {
            return Err(DriverError::new(
                format!(
                    "client `{}`: `workload_type: {kind}` names a kind of load, and the type of the service it loads is not known",
                    client.name
                ),
                format!(
                    "give `target_service.type` (e.g. `ollama`, `vllm`), or name the workload: {choices}"
                ),
            ));
        };
        match fitting
            .iter()
            .find(|d| d.fits().contains(&service_type.as_str()))
        {
            Some(driver) => Ok(Resolved {
                driver: *driver,
                note: Some(format!(
                    "client `{}`: `workload_type: {kind}` against a service of type `{service_type}` runs the `{}` workload",
                    client.name,
                    driver.name()
                )),
            }),
            None => Err(DriverError::new(
                format!(
                    "client `{}`: `workload_type: {kind}` names a kind of load, and no linked workload fits a service of type `{service_type}`",
                    client.name
                ),
                format!("name the workload: {choices}"),
            )),
        }
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

/// What a client job runs for an engine-backed workload: the orchestrator binary with
/// the spec inline (each argument is quoted into the job script).
///
/// # Errors
/// A client with a `command` (it would be ignored): use the `command` workload.
pub fn engine_launch<D: WorkloadDriver + ?Sized>(
    workload: &D,
    client: &ClientRecipe,
    target: &Target,
) -> Result<Launch, DriverError> {
    let driver = workload.name();
    if client.command.is_some() {
        return Err(DriverError::new(
            format!(
                "client `{}` sets both workload_type `{driver}` and a command",
                client.name
            ),
            "drop the command (the orchestrator runs the workload itself), or drop workload_type to run the command",
        ));
    }
    // The original tool's parameter names, read as this workload's (validated already).
    let parameters = read_parameters(workload, &client.name, &client.parameters)
        .map_err(|issue| DriverError::new(issue.message, issue.hint.unwrap_or_default()))?
        .0;
    let spec = WorkloadSpec {
        driver: driver.to_owned(),
        url: target.url.clone(),
        parameters: parameters.into_iter().collect(),
        duration_s: client.duration.map(|d| d.to_std().as_secs_f64()),
        replicas: client.replicas.filter(|n| *n > 1),
    };
    Ok(Launch {
        command: "orchestrator".into(),
        args: vec![
            "workload".into(),
            "run".into(),
            "--spec-json".into(),
            serde_json::to_string(&spec)
                .expect("specs serialise")
                .into(),
            "--out".into(),
            RESULTS_DIR.into(),
        ],
        ..Launch::default()
    })
}
