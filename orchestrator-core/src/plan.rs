//! Planning: a recipe checked against the drivers and turned into job specifications,
//! before anything is submitted.

use std::collections::BTreeMap;

use orchestrator_recipes::{
    BenchmarkRecipe, ClientRecipe, Config, Resources, ServiceRecipe, SlurmOptions,
};
use orchestrator_slurm::{
    ContainerSpec, ImageBuild, JobKind, JobSpec, Registration, SbatchOptions,
};

use crate::CoreError;
use crate::driver::{Launch, Registry, ServiceDriver, Target, WorkloadDriver};
use crate::health::HealthProbe;
use crate::monitoring::MonitoringPlan;
use crate::util::new_id;

/// A service as it will be launched.
#[derive(Clone)]
pub struct ServicePlan {
    /// Its id (`svc-...`).
    pub id: String,
    /// The recipe.
    pub recipe: ServiceRecipe,
    /// Its driver.
    pub driver: &'static dyn ServiceDriver,
    /// What its job runs.
    pub launch: Launch,
    /// Its readiness probe.
    pub probe: Option<HealthProbe>,
    /// What it tells the session's Prometheus, when the session is monitored.
    pub register: Option<Registration>,
}

/// A client as it will be launched.
#[derive(Clone)]
pub struct ClientPlan {
    /// Its id (`cli-...`).
    pub id: String,
    /// The recipe.
    pub recipe: ClientRecipe,
    /// Its workload driver.
    pub driver: &'static dyn WorkloadDriver,
    /// Index of its target in [`Plan::services`].
    pub target: usize,
    /// The port it loads.
    pub port: u16,
    /// What it tells the session's Prometheus, when the session is monitored.
    pub register: Option<Registration>,
}

/// A whole session, checked.
#[derive(Clone)]
pub struct Plan {
    /// The session id (`ses-...`).
    pub session_id: String,
    /// The recipe.
    pub recipe: BenchmarkRecipe,
    /// Services, in recipe order.
    pub services: Vec<ServicePlan>,
    /// Clients, in recipe order.
    pub clients: Vec<ClientPlan>,
    /// The session's Prometheus (`services[monitoring.service]`), when it is monitored.
    pub monitoring: Option<MonitoringPlan>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("session_id", &self.session_id)
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| (&s.id, &s.recipe.name, s.driver.name()))
                    .collect::<Vec<_>>(),
            )
            .field(
                "clients",
                &self
                    .clients
                    .iter()
                    .map(|c| (&c.id, &c.recipe.name, c.driver.name()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Plans one service.
///
/// # Errors
/// No driver for its type, or a recipe the driver cannot launch.
pub fn plan_service(service: &ServiceRecipe, file: &str) -> Result<ServicePlan, CoreError> {
    let driver = Registry::service_driver_for(service)
        .map_err(service_error(file, &service.name))?
        .driver;
    let launch = driver
        .launch(service)
        .map_err(service_error(file, &service.name))?;
    let probe = driver.health_probe(service);
    if let Some(probe) = &probe {
        if probe.port.is_none() && service.ports.is_empty() {
            return Err(CoreError::plan(
                file,
                format!(
                    "service `{}` has a health_check but no port to probe",
                    service.name
                ),
                Some("add `ports: [PORT]` to the service, or `port:` to its health_check".into()),
            ));
        }
    }
    Ok(ServicePlan {
        id: new_id("svc"),
        recipe: service.clone(),
        driver,
        launch,
        probe,
        register: None,
    })
}

/// A driver's refusal of service `name`, as a planning error of `file`.
fn service_error<'a>(
    file: &'a str,
    name: &'a str,
) -> impl Fn(crate::DriverError) -> CoreError + 'a {
    move |e| CoreError::plan(file, format!("service `{name}`: {}", e.message), e.hint)
}

/// The port a client loads on `service`: its `target_service.port`, else the service's
/// first port.
///
/// # Errors
/// Neither is given.
pub fn client_port(
    client: &ClientRecipe,
    service: &ServiceRecipe,
    file: &str,
) -> Result<u16, CoreError> {
    client
        .target_service
        .as_ref()
        .and_then(|t| t.port)
        .or_else(|| service.ports.first().copied())
        .ok_or_else(|| {
            CoreError::plan(
                file,
                format!(
                    "client `{}` targets service `{}`, which has no port",
                    client.name, service.name
                ),
                Some("give the service `ports:` or the client `target_service.port`".into()),
            )
        })
}

/// Plans one client against `service` (its target): the workload is resolved and
/// tried against a placeholder address, so that a recipe it cannot run fails now.
///
/// # Errors
/// No workload driver, no port, or a recipe the workload cannot run.
pub fn plan_client(
    client: &ClientRecipe,
    service: &ServicePlan,
    target: usize,
    file: &str,
) -> Result<ClientPlan, CoreError> {
    let driver = Registry::workload_driver(client, Some(&service.recipe))
        .map_err(|e| CoreError::plan(file, e.message, e.hint))?
        .driver;
    let port = client_port(client, &service.recipe, file)?;
    let kind = service.driver.name();
    if !driver.targets().is_empty() && !driver.targets().contains(&kind) {
        return Err(CoreError::plan(
            file,
            format!(
                "client `{}`: workload `{}` cannot load a `{kind}` service",
                client.name,
                driver.name()
            ),
            Some(format!("it loads: {}", driver.targets().join(", "))),
        ));
    }
    let placeholder = Target {
        service_id: service.id.clone(),
        service_name: service.recipe.name.clone(),
        service_type: kind.to_owned(),
        host: "NODE".into(),
        port,
        url: format!("http://NODE:{port}"),
    };
    driver.launch(client, &placeholder).map_err(|e| {
        CoreError::plan(
            file,
            format!("client `{}`: {}", client.name, e.message),
            e.hint,
        )
    })?;
    crate::replicas::check(client, driver, file)?;
    let mut recipe = client.clone();
    crate::datasets::resolve(&mut recipe, file)?;
    if let Some(script) = recipe.script.as_mut().filter(|_| runs_script(client)) {
        // The file to upload, found now so that a missing one stops the session early.
        let local = crate::script::local_script(script, file, &client.name)?;
        if script.name.is_none() {
            script.name = local.file_name().map(|n| n.to_string_lossy().into_owned());
        }
        script.local_path = Some(local.to_string_lossy().into_owned());
    }
    Ok(ClientPlan {
        id: new_id("cli"),
        recipe,
        driver,
        target,
        port,
        register: None,
    })
}

/// Whether a client runs its `script:` block: it has one, and neither a command nor a
/// workload type.
#[must_use]
pub fn runs_script(client: &ClientRecipe) -> bool {
    client.script.is_some() && client.command.is_none() && client.workload_type.is_none()
}

/// Plans a complete recipe: every service and client resolved, every client's target
/// found, names unique.
///
/// # Errors
/// The first problem found, as [`CoreError::Plan`].
pub fn plan(recipe: &BenchmarkRecipe, file: &str) -> Result<Plan, CoreError> {
    plan_as(recipe, file, new_id("ses"))
}

/// [`plan`] for the session `session_id` (a recorded one, planned again by `attach`:
/// what its jobs register names it).
///
/// # Errors
/// As [`plan`].
pub fn plan_as(
    recipe: &BenchmarkRecipe,
    file: &str,
    session_id: String,
) -> Result<Plan, CoreError> {
    if recipe.services.is_empty() {
        return Err(CoreError::plan(file, "the recipe has no service", None));
    }
    let mut names = BTreeMap::new();
    for name in recipe
        .services
        .iter()
        .map(|s| &s.name)
        .chain(recipe.clients.iter().map(|c| &c.name))
    {
        if names.insert(name.clone(), ()).is_some() {
            return Err(CoreError::plan(
                file,
                format!("the name `{name}` is used twice"),
                Some("services and clients of one recipe need distinct names: they name the jobs and their directories".into()),
            ));
        }
    }
    let mut services = recipe
        .services
        .iter()
        .map(|s| plan_service(s, file))
        .collect::<Result<Vec<_>, _>>()?;
    let monitoring = match session_monitoring(recipe, file)? {
        Some(spec) => Some(plan_monitoring(
            recipe,
            &spec,
            &mut services,
            &session_id,
            file,
        )?),
        None => None,
    };
    let mut clients = Vec::new();
    let mut recipe_clients = recipe.clients.clone();
    if monitoring.is_some() {
        give_metrics_ports(&mut recipe_clients, recipe, file)?;
    }
    // A client may load the Prometheus added for `monitoring:`, by its name.
    let planned_services: Vec<ServiceRecipe> = services.iter().map(|s| s.recipe.clone()).collect();
    for client in &recipe_clients {
        let named = client.target_service.as_ref().and_then(|t| t.name.as_ref());
        let target = named
            .and_then(|n| planned_services.iter().position(|s| &s.name == n))
            .or_else(|| {
                recipe
                    .target_of(client)
                    .and_then(|t| planned_services.iter().position(|s| s.name == t.name))
            });
        let Some(target) = target else {
            let wanted = client
                .target_service
                .as_ref()
                .and_then(|t| t.name.clone().or_else(|| t.service_type.clone()))
                .unwrap_or_else(|| "-".into());
            return Err(CoreError::plan(
                file,
                format!(
                    "client `{}`: no service matches its target `{wanted}`",
                    client.name
                ),
                Some(format!(
                    "set target_service.name to one of: {}",
                    planned_services
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ));
        };
        let mut planned = plan_client(client, &services[target], target, file)?;
        if let Some(m) = &monitoring {
            // A client's replicas each register their own metrics (their node, their
            // port): the engine writes those files.
            let files = metrics_port(&planned.recipe)
                .filter(|_| client.replicas.unwrap_or(1) <= 1)
                .map(|port| crate::monitoring::client_target(&session_id, &client.name, port))
                .into_iter()
                .collect();
            planned.register = Some(m.registration(&session_id, files));
        }
        clients.push(planned);
    }
    Ok(Plan {
        session_id,
        recipe: recipe.clone(),
        services,
        clients,
        monitoring,
    })
}

/// A client's live metrics port, when it serves one (`metrics_port`, not 0).
fn metrics_port(client: &ClientRecipe) -> Option<u16> {
    client
        .parameters
        .get("metrics_port")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p > 0)
}

/// In a monitored session, every client that runs the orchestrator's own engine and
/// names no `metrics_port` gets one: 9464, 9465, ... in recipe order, so that two on
/// one node do not collide.
fn give_metrics_ports(
    clients: &mut [ClientRecipe],
    recipe: &BenchmarkRecipe,
    file: &str,
) -> Result<(), CoreError> {
    let mut next = crate::monitoring::FIRST_METRICS_PORT;
    for client in clients.iter_mut() {
        let target = recipe.target_of(client);
        let engine = Registry::workload_driver(client, target).is_ok_and(|r| {
            r.driver
                .workload("http://NODE:1", &serde_json::Map::new())
                .is_some()
        });
        if !engine || client.parameters.contains_key("metrics_port") {
            continue;
        }
        client
            .parameters
            .insert("metrics_port".into(), serde_json::json!(next));
        next = next.checked_add(1).ok_or_else(|| {
            CoreError::plan(file, "too many clients for their metrics ports", None)
        })?;
    }
    Ok(())
}

/// The recipe's `monitoring:`, with a service's `monitoring_targets` (the original
/// tool's Prometheus service) merged in: that service is the session's Prometheus.
///
/// # Errors
/// Two services with `monitoring_targets`, or one that `monitoring.service` does not
/// name.
fn session_monitoring(
    recipe: &BenchmarkRecipe,
    file: &str,
) -> Result<Option<orchestrator_recipes::SessionMonitoring>, CoreError> {
    let mut scraping = recipe
        .services
        .iter()
        .filter(|s| !s.monitoring_targets.is_empty());
    let Some(service) = scraping.next() else {
        return Ok(recipe.monitoring.clone());
    };
    if let Some(other) = scraping.next() {
        return Err(CoreError::plan(
            file,
            format!(
                "services `{}` and `{}` both have `monitoring_targets`: a session has one Prometheus",
                service.name, other.name
            ),
            Some("keep the targets on one of them".into()),
        ));
    }
    let mut spec = recipe
        .monitoring
        .clone()
        .unwrap_or_else(orchestrator_recipes::SessionMonitoring::prometheus);
    match &spec.service {
        Some(named) if *named != service.name => {
            return Err(CoreError::plan(
                file,
                format!(
                    "service `{}` has `monitoring_targets`, so it is the session's Prometheus, but `monitoring.service` names `{named}`",
                    service.name
                ),
                Some(format!(
                    "move the targets to `monitoring.targets`, or name `{}` in `monitoring.service`",
                    service.name
                )),
            ));
        }
        _ => spec.service = Some(service.name.clone()),
    }
    spec.targets
        .extend(service.monitoring_targets.iter().cloned());
    Ok(Some(spec))
}

/// The session's Prometheus: the recipe's own (`monitoring.service`) or one added at
/// the end of `services`; every service's registration.
fn plan_monitoring(
    recipe: &BenchmarkRecipe,
    spec: &orchestrator_recipes::SessionMonitoring,
    services: &mut Vec<ServicePlan>,
    session_id: &str,
    file: &str,
) -> Result<MonitoringPlan, CoreError> {
    let names: Vec<&str> = recipe.services.iter().map(|s| s.name.as_str()).collect();
    let index = match &spec.service {
        Some(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            CoreError::plan(
                file,
                format!("`monitoring.service` names `{name}`, which is no service of this recipe"),
                Some(format!(
                    "name one of: {}, or leave `service` out to have a Prometheus added",
                    names.join(", ")
                )),
            )
        })?,
        None => {
            let added = crate::monitoring::default_service();
            if names.contains(&added.name.as_str()) {
                return Err(CoreError::plan(
                    file,
                    format!(
                        "the session's Prometheus would be called `{}`, which a service of this recipe is called already",
                        added.name
                    ),
                    Some(format!(
                        "if that service is your Prometheus, say so: `monitoring: {{service: {}}}`; else rename it",
                        added.name
                    )),
                ));
            }
            services.push(plan_service(&added, file)?);
            services.len() - 1
        }
    };
    let (inside, external): (Vec<&orchestrator_recipes::ScrapeTarget>, Vec<_>) =
        spec.targets.iter().partition(|t| {
            t.service
                .as_ref()
                .is_some_and(|s| names.contains(&s.as_str()))
        });
    for t in &external {
        if t.service.is_none() && t.host.is_none() {
            return Err(CoreError::plan(
                file,
                format!(
                    "a monitoring target on port {} names neither a service nor a host",
                    t.port
                ),
                Some("give it `service: NAME` (a service of this recipe, or a running one's id) or `host: NODE`".into()),
            ));
        }
    }
    let plan = MonitoringPlan::new(spec, index, external.into_iter().cloned().collect());
    let prometheus = &mut services[index];
    let launch = prometheus
        .driver
        .monitor_launch(&prometheus.recipe, plan.interval)
        .ok_or_else(|| {
            CoreError::plan(
                file,
                format!(
                    "`monitoring.service` names `{}`, a `{}` service, which cannot monitor a session",
                    prometheus.recipe.name,
                    prometheus.driver.name()
                ),
                Some("name a `type: prometheus` service, or leave `service` out to have one added".into()),
            )
        })?
        .map_err(service_error(file, &prometheus.recipe.name))?;
    prometheus.launch = launch;
    for service in services.iter_mut() {
        let mine: Vec<&orchestrator_recipes::ScrapeTarget> = inside
            .iter()
            .copied()
            .filter(|t| t.service.as_deref() == Some(service.recipe.name.as_str()))
            .collect();
        let files = crate::monitoring::service_targets(session_id, &service.recipe.name, &mine);
        service.register = Some(plan.registration(session_id, files));
    }
    Ok(plan)
}

/// What the config adds to every job.
#[derive(Debug, Clone)]
pub struct JobDefaults {
    /// The config's `slurm` defaults.
    pub slurm: SbatchOptions,
    /// Build missing images from `container_source`.
    pub auto_build: bool,
    /// Longest image build.
    pub build_timeout: std::time::Duration,
    /// Registry prefix for sources written without a scheme.
    pub registry: Option<String>,
    /// The container runtime (`apptainer`, `singularity`, or a path).
    pub container_runtime: String,
    /// The directory of images named without one.
    pub image_dir: Option<String>,
    /// The orchestrator binary as local jobs run it; a job command `orchestrator`
    /// becomes this path (on a cluster, see `BenchmarkOrchestrator::job_binary`).
    pub orchestrator_bin: Option<String>,
}

impl JobDefaults {
    /// The defaults of a config.
    #[must_use]
    pub fn from_config(config: &Config) -> Self {
        Self {
            slurm: sbatch_options(&Resources {
                slurm: config.slurm.clone(),
                ..Resources::default()
            }),
            auto_build: config.containers.auto_build,
            build_timeout: config.containers.build_timeout.to_std(),
            registry: config.containers.registry.clone(),
            container_runtime: config.containers.runtime.clone(),
            image_dir: config.containers.base_path.clone(),
            orchestrator_bin: None,
        }
    }
}

/// A recipe's resources as sbatch options.
#[must_use]
pub fn sbatch_options(resources: &Resources) -> SbatchOptions {
    let SlurmOptions {
        account,
        partition,
        qos,
        time,
        nodes,
        ntasks,
        ntasks_per_node,
        gres,
        constraint,
        extra_args,
    } = resources.slurm.clone();
    SbatchOptions {
        partition,
        account,
        qos,
        time: time.map(orchestrator_recipes::Duration::to_std),
        nodes,
        ntasks,
        ntasks_per_node,
        cpus_per_task: resources.cpus,
        mem_mib: resources
            .memory
            .map(orchestrator_recipes::Memory::megabytes_ceil),
        gres: gres.map(|g| g.as_str().to_owned()),
        gpus: resources.gpu,
        constraint,
        nodelist: None,
        extra_args,
    }
}

/// What differs between a service's and a client's job.
struct JobInput<'a> {
    /// Service or client.
    pub kind: JobKind,
    /// The session.
    pub session_id: &'a str,
    /// The recipe's name.
    pub name: &'a str,
    /// The absolute job directory.
    pub job_dir: String,
    /// What the driver launches.
    pub launch: &'a Launch,
    /// The recipe's environment.
    pub environment: &'a BTreeMap<String, orchestrator_recipes::ScalarString>,
    /// Environment set by the orchestrator (the target), which wins.
    pub extra_environment: BTreeMap<String, String>,
    /// The recipe's resources.
    pub resources: &'a Resources,
    /// The recipe's image.
    pub image: Option<&'a str>,
    /// Where to build it from.
    pub source: Option<&'a str>,
    /// The recipe's bind mounts.
    pub binds: &'a [String],
    /// Build it again before every run.
    pub rebuild: bool,
    /// Commands to run in it while building it.
    pub build_commands: &'a [String],
}

/// The job of a service, in `job_dir`.
#[must_use]
pub fn service_job(
    defaults: &JobDefaults,
    session_id: &str,
    service: &ServicePlan,
    job_dir: String,
) -> JobSpec {
    let r = &service.recipe;
    let mut spec = job_spec(
        defaults,
        JobInput {
            kind: JobKind::Service,
            session_id,
            name: &r.name,
            job_dir,
            launch: &service.launch,
            environment: &r.environment,
            extra_environment: BTreeMap::new(),
            resources: &r.resources,
            image: r.container_image.as_deref(),
            source: r.container_source.as_deref(),
            binds: &r.container_binds,
            rebuild: r.container_rebuild,
            build_commands: &r.container_build_commands,
        },
    );
    spec.monitor = orchestrator_recipes::MonitorSpec::interval_of(r.monitor.as_ref());
    spec.setup_script.clone_from(&r.setup_script);
    spec.register.clone_from(&service.register);
    spec
}

/// The job of a client against `target`, in `job_dir`.
///
/// # Errors
/// The workload cannot run this recipe against this target.
pub fn client_job(
    defaults: &JobDefaults,
    session_id: &str,
    client: &ClientRecipe,
    driver: &'static dyn WorkloadDriver,
    target: &Target,
    job_dir: String,
    register: Option<&Registration>,
) -> Result<JobSpec, CoreError> {
    let launch = driver.launch(client, target).map_err(|e| {
        CoreError::plan(
            "recipe",
            format!("client `{}`: {}", client.name, e.message),
            e.hint,
        )
    })?;
    let mut spec = job_spec(
        defaults,
        JobInput {
            kind: JobKind::Client,
            session_id,
            name: &client.name,
            job_dir,
            launch: &launch,
            environment: &client.environment,
            extra_environment: target.environment(),
            resources: &client.resources,
            image: client.container_image.as_deref(),
            source: client.container_source.as_deref(),
            binds: &client.container_binds,
            rebuild: client.container_rebuild,
            build_commands: &client.container_build_commands,
        },
    );
    spec.register = register.cloned();
    spec.replicas = client.replicas.filter(|n| *n > 1);
    Ok(spec)
}

/// Builds the job specification of a service or client.
fn job_spec(defaults: &JobDefaults, input: JobInput<'_>) -> JobSpec {
    let mut environment = input.launch.environment.clone();
    environment.extend(
        input
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().to_owned())),
    );
    environment.extend(input.extra_environment);
    let sbatch = sbatch_options(input.resources).merged_over(&defaults.slurm);
    let command = input.launch.command.clone();
    let image = input
        .image
        .map(str::to_owned)
        .or_else(|| input.launch.default_image.clone())
        .map(|image| match &defaults.image_dir {
            // A bare name (`ollama.sif`) is in the config's image directory.
            Some(dir) if !image.contains('/') => {
                format!("{}/{image}", dir.trim_end_matches('/'))
            }
            _ => image,
        });
    let container = image.map(|image| ContainerSpec {
        runtime: defaults.container_runtime.clone(),
        image,
        binds: input.binds.to_vec(),
        gpu: sbatch.wants_gpu(),
        // A recipe that asks for a rebuild or build commands is built whatever
        // `containers.auto_build` says: it said so itself.
        build: match (
            defaults.auto_build || input.rebuild || !input.build_commands.is_empty(),
            input.source,
        ) {
            (true, Some(source)) => Some(ImageBuild {
                source: with_registry(source, defaults.registry.as_deref()),
                timeout: defaults.build_timeout,
                rebuild: input.rebuild,
                post: input.build_commands.to_vec(),
            }),
            _ => None,
        },
    });
    JobSpec {
        kind: input.kind,
        name: input.name.to_owned(),
        session_id: input.session_id.to_owned(),
        job_dir: input.job_dir,
        command,
        args: input.launch.args.clone(),
        environment,
        sbatch,
        container,
        monitor: None,
        register: None,
        setup_script: None,
        replicas: None,
    }
}

/// `ollama/ollama:latest` with registry `docker://reg.example` becomes
/// `docker://reg.example/ollama/ollama:latest`; a source with a scheme is kept.
fn with_registry(source: &str, registry: Option<&str>) -> String {
    match registry {
        Some(registry) if !source.contains("://") => {
            format!("{}/{}", registry.trim_end_matches('/'), source)
        }
        _ => source.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_prefixes_only_bare_sources() {
        assert_eq!(
            with_registry("ollama/ollama:latest", Some("docker://reg.example/")),
            "docker://reg.example/ollama/ollama:latest"
        );
        assert_eq!(
            with_registry("docker://ollama/ollama", Some("docker://reg.example")),
            "docker://ollama/ollama"
        );
        assert_eq!(with_registry("x.sif", None), "x.sif");
    }
}
