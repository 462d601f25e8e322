//! [`BenchmarkOrchestrator`]: the original tool's central class, in Rust. It owns the
//! connection to the cluster (or this machine), the scheduler, the state store and
//! the job defaults; sessions, status, stop, debug and clear-state hang off it, and
//! [`ServersModule`] / [`ClientsModule`] are its `servers` and `clients` views.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_recipes::{
    BenchmarkRecipe, ClientRecipe, Config, Document, Kind, LoadedConfig, ServiceRecipe,
    load_config, load_file_checked,
};
use orchestrator_slurm::{
    JobId, JobInfo, JobKind, LocalScheduler, Scheduler, ScriptRenderer, Slurm,
};
use orchestrator_ssh::{LocalShell, Shell, SshOptions, SshShell, quote};
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::CoreError;
use crate::lifecycle::{ClientState, JobRecordState, OwnerState, ServiceState, SessionState};
use crate::plan::{JobDefaults, plan_client, plan_service};
use crate::session::{PollPolicy, RunOptions, Tracked, job_update};
use crate::state::{ClientRow, EventRow, JobRow, ServiceRow, SessionRow, StateStore};
use crate::util::rfc3339;

/// The orchestrator: one per config.
pub struct BenchmarkOrchestrator {
    config: Config,
    shell: Arc<dyn Shell>,
    scheduler: Arc<dyn Scheduler>,
    renderer: ScriptRenderer,
    state: StateStore,
    defaults: JobDefaults,
    results_dir: PathBuf,
    work_dir: OnceCell<String>,
    poll: PollPolicy,
    /// An orchestrator binary of this machine that may be uploaded to the cluster.
    uploadable: Option<PathBuf>,
    remote_binary: OnceCell<String>,
}

impl std::fmt::Debug for BenchmarkOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchmarkOrchestrator")
            .field("target", &self.shell.target())
            .field("scheduler", &self.scheduler.name())
            .field("state", &self.state.path())
            .finish_non_exhaustive()
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl BenchmarkOrchestrator {
    /// The original constructor: loads the config (`config_path`, else
    /// `ORCHESTRATOR_CONFIG`, else `./config.yaml`, else defaults) and sets up the
    /// cluster connection it describes. Nothing connects until a command needs it.
    ///
    /// # Errors
    /// An invalid or missing config, a template directory that does not load, or a
    /// state store that cannot be opened.
    pub fn new(config_path: Option<&Path>) -> Result<Self, CoreError> {
        let loaded = load_config(config_path, &process_env)?;
        Self::from_config(&loaded)
    }

    /// Sets up from a loaded config: SSH and SLURM when it has an `hpc` section, else
    /// this machine and the local scheduler.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_config(loaded: &LoadedConfig) -> Result<Self, CoreError> {
        let config = loaded.config.clone();
        let state_dir = loaded.state_dir(&process_env);
        let (shell, scheduler): (Arc<dyn Shell>, Arc<dyn Scheduler>) = match &config.hpc {
            Some(hpc) => {
                let key = hpc.key_filename.clone().unwrap_or_else(default_key);
                let mut options = SshOptions::new(&hpc.hostname, &hpc.username, key).port(hpc.port);
                if let Some(known) = &hpc.known_hosts {
                    options = options.known_hosts(known);
                }
                let shell: Arc<dyn Shell> = Arc::new(SshShell::new(options));
                (shell.clone(), Arc::new(Slurm::new(shell)))
            }
            None => (
                Arc::new(LocalShell::new()),
                Arc::new(LocalScheduler::new(state_dir.join("local-jobs"))),
            ),
        };
        Self::with_backend(config, &state_dir, shell, scheduler)
    }

    /// Sets up with a shell and scheduler of the caller's choice (for embedding and
    /// tests).
    ///
    /// # Errors
    /// A template directory that does not load, or a state store that cannot be opened.
    pub fn with_backend(
        config: Config,
        state_dir: &Path,
        shell: Arc<dyn Shell>,
        scheduler: Arc<dyn Scheduler>,
    ) -> Result<Self, CoreError> {
        let renderer = match &config.templates_dir {
            Some(dir) => ScriptRenderer::with_templates_dir(Path::new(dir))?,
            None => ScriptRenderer::new(),
        };
        let state = StateStore::open(state_dir)?;
        let poll = if scheduler.name() == "local" {
            PollPolicy::local()
        } else {
            PollPolicy::slurm()
        };
        Ok(Self {
            defaults: JobDefaults::from_config(&config),
            results_dir: PathBuf::from(&config.results_dir),
            config,
            shell,
            scheduler,
            renderer,
            state,
            work_dir: OnceCell::new(),
            poll,
            uploadable: None,
            remote_binary: OnceCell::new(),
        })
    }

    /// Polls the scheduler with this policy.
    #[must_use]
    pub fn with_poll_policy(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    /// Jobs that run the command `orchestrator` run this path instead (the CLI passes
    /// its own executable when jobs run on this machine).
    #[must_use]
    pub fn with_orchestrator_bin(mut self, path: impl Into<String>) -> Self {
        self.defaults.orchestrator_bin = Some(path.into());
        self
    }

    /// `path` is an orchestrator binary that jobs on the cluster may run: when a job
    /// runs the command `orchestrator` and the config names no `remote_binary`, it is
    /// uploaded once per content into `work_dir/bin` (the CLI passes itself).
    #[must_use]
    pub fn with_uploadable_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.uploadable = Some(path.into());
        self
    }

    /// Where jobs find the orchestrator binary: on this machine, the one given to
    /// [`with_orchestrator_bin`](Self::with_orchestrator_bin); on a cluster, the config's
    /// `remote_binary`, else the uploadable binary, copied to
    /// `work_dir/bin/orchestrator-VERSION-HASH` unless it is there already.
    ///
    /// # Errors
    /// No binary is known for the cluster, or the upload fails.
    pub async fn job_binary(&self) -> Result<String, CoreError> {
        if let Some(local) = &self.defaults.orchestrator_bin {
            return Ok(local.clone());
        }
        if let Some(remote) = &self.config.remote_binary {
            return Ok(remote.clone());
        }
        self.remote_binary
            .get_or_try_init(|| async {
                let local = self.uploadable.as_ref().ok_or_else(|| {
                    CoreError::plan(
                        "config",
                        "a job runs `orchestrator`, but no orchestrator binary is known for the cluster",
                        Some("set `remote_binary` in the config to the orchestrator on the cluster".into()),
                    )
                })?;
                let bytes = std::fs::read(local)
                    .map_err(CoreError::io(format!("cannot read {}", local.display())))?;
                let name = format!(
                    "orchestrator-{}-{:016x}",
                    env!("CARGO_PKG_VERSION"),
                    crate::util::fnv1a(&bytes)
                );
                let path = format!("{}/bin/{name}", self.work_dir().await?);
                let present = self
                    .shell
                    .exec(&format!("test -x {}", quote(&path)))
                    .await?
                    .success();
                if present {
                    tracing::debug!(%path, "the orchestrator binary is on the cluster already");
                } else {
                    self.shell.write_file(&path, &bytes).await?;
                    self.shell.exec_ok(&format!("chmod 755 {}", quote(&path))).await?;
                    self.state.event(
                        None,
                        None,
                        "binary.upload",
                        Some(&format!("{} bytes to {path}", bytes.len())),
                    )?;
                }
                Ok::<_, CoreError>(path)
            })
            .await
            .cloned()
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Where commands run.
    #[must_use]
    pub fn shell(&self) -> &Arc<dyn Shell> {
        &self.shell
    }
    /// The scheduler.
    #[must_use]
    pub fn scheduler(&self) -> &Arc<dyn Scheduler> {
        &self.scheduler
    }
    /// The state store.
    #[must_use]
    pub fn state(&self) -> &StateStore {
        &self.state
    }
    /// Where reports and fetched outputs go.
    #[must_use]
    pub fn results_dir(&self) -> &Path {
        &self.results_dir
    }
    pub(crate) fn renderer(&self) -> &ScriptRenderer {
        &self.renderer
    }
    pub(crate) fn job_defaults(&self) -> &JobDefaults {
        &self.defaults
    }
    pub(crate) fn poll_policy(&self) -> &PollPolicy {
        &self.poll
    }

    /// The `servers` view (the original `orch.servers`).
    #[must_use]
    pub fn servers(&self) -> ServersModule<'_> {
        ServersModule { orch: self }
    }

    /// The `clients` view (the original `orch.clients`).
    #[must_use]
    pub fn clients(&self) -> ClientsModule<'_> {
        ClientsModule { orch: self }
    }

    /// The absolute work directory on the cluster (created on first use); relative
    /// `work_dir`s are relative to the home directory there.
    ///
    /// # Errors
    /// The cluster failing.
    pub async fn work_dir(&self) -> Result<&str, CoreError> {
        self.work_dir
            .get_or_try_init(|| async {
                let dir = self.config.work_dir.trim_start_matches("~/");
                let command = format!(
                    "cd && mkdir -p -- {d} && cd -- {d} && pwd -P",
                    d = quote(dir)
                );
                let out = self.shell.exec_ok(&command).await?;
                Ok::<_, CoreError>(out.stdout_lossy().trim().to_owned())
            })
            .await
            .map(String::as_str)
    }

    /// The work directory's absolute path without creating it (for `--dry-run`).
    pub(crate) async fn work_dir_preview(&self) -> Result<String, CoreError> {
        let dir = self.config.work_dir.trim_start_matches("~/");
        if dir.starts_with('/') {
            return Ok(dir.trim_end_matches('/').to_owned());
        }
        let out = self.shell.exec_ok("cd && pwd -P").await?;
        Ok(format!(
            "{}/{}",
            out.stdout_lossy().trim(),
            dir.trim_end_matches('/')
        ))
    }

    pub(crate) async fn job_dir(&self, session_id: &str, name: &str) -> Result<String, CoreError> {
        Ok(format!("{}/{session_id}/{name}", self.work_dir().await?))
    }

    /// Loads and validates a recipe file as a complete recipe (a service recipe is a
    /// recipe with one service).
    ///
    /// # Errors
    /// An unreadable or invalid file, or a client or config file.
    pub fn load_recipe(&self, path: &Path) -> Result<BenchmarkRecipe, CoreError> {
        load_recipe(path)
    }

    /// The original `start_benchmark_session`: runs a whole session (services, health
    /// gate, clients, outputs, stop, report) and returns its id. Use
    /// [`run_session`](Self::run_session) for the outcome and progress events.
    ///
    /// # Errors
    /// As `run_session`.
    pub async fn start_benchmark_session(
        &self,
        recipe: &BenchmarkRecipe,
    ) -> Result<String, CoreError> {
        let outcome = self
            .run_session(
                recipe,
                &RunOptions::default(),
                &(),
                &tokio_util::sync::CancellationToken::new(),
            )
            .await?;
        Ok(outcome.session_id)
    }

    /// Asks the scheduler about every job that has not ended, in one query, and records
    /// what it says; then brings services, clients and sessions in line. Returns how
    /// many jobs changed.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn reconcile(&self) -> Result<usize, CoreError> {
        let active = self.state.active_jobs()?;
        let ids: Vec<JobId> = active
            .iter()
            .filter_map(|j| j.job_id.clone().map(JobId))
            .collect();
        let answer = if ids.is_empty() {
            BTreeMap::new()
        } else {
            self.scheduler.query(&ids).await?
        };
        let mut changed = 0;
        for job in &active {
            let update = match &job.job_id {
                Some(id) => job_update(answer.get(&JobId(id.clone()))),
                None => {
                    // Recorded but never confirmed: only the process that submits it
                    // can finish the record. If that process is gone, so is the job.
                    let owner_alive = self
                        .state
                        .session(&job.session_id)?
                        .and_then(|s| s.pid)
                        .is_some_and(process_alive);
                    if owner_alive {
                        continue;
                    }
                    crate::state::JobUpdate {
                        state: JobRecordState::Lost,
                        node: None,
                        reason: Some(
                            "the orchestrator stopped before the scheduler confirmed the job"
                                .into(),
                        ),
                        exit_code: None,
                    }
                }
            };
            if self.state.update_job(job.row, &update)? {
                changed += 1;
            }
            if update.state.is_final() {
                self.settle_owner(job, &update.state, update.exit_code)?;
            } else if update.state.is_running() && job.owner_kind == "client" {
                self.state
                    .set_client_state(&job.owner_id, ClientState::Running, None)?;
            }
        }
        self.settle_sessions()?;
        Ok(changed)
    }

    /// A job ended: its service or client follows.
    fn settle_owner(
        &self,
        job: &JobRow,
        state: &JobRecordState,
        exit_code: Option<i32>,
    ) -> Result<(), CoreError> {
        if job.owner_kind == "service" {
            if let Some(service) = self.state.service(&job.owner_id)? {
                if !service.state.is_final() {
                    let next = ServiceState::after_job(state, exit_code);
                    self.state
                        .set_service_state(&job.owner_id, next, None, None, None)?;
                }
            }
        } else if let Some(client) = self.state.client(&job.owner_id)? {
            if !client.state.is_final() {
                let next = ClientState::after_job(state, exit_code);
                self.state.set_client_state(&job.owner_id, next, None)?;
            }
        }
        Ok(())
    }

    /// A session whose process is gone and whose jobs have all ended is over.
    fn settle_sessions(&self) -> Result<(), CoreError> {
        let active_sessions: Vec<String> = self
            .state
            .active_jobs()?
            .into_iter()
            .map(|j| j.session_id)
            .collect();
        for session in self.state.sessions()? {
            if session.state.is_final() {
                continue;
            }
            if session.pid.is_some_and(process_alive) || active_sessions.contains(&session.id) {
                continue;
            }
            // Kept services that ended, or a process that died: nothing runs any more.
            let error = if session.state == SessionState::Running && session.keep_services {
                None
            } else {
                Some("the orchestrator process ended before the session finished")
            };
            let state = if error.is_some() {
                SessionState::Failed
            } else {
                SessionState::Completed
            };
            self.state.set_session_state(&session.id, state, error)?;
        }
        Ok(())
    }

    /// Cancels every active job of a session (one scheduler call), waits for them to
    /// end, and records how each owner's job ended. The session's own end (which
    /// settles what is left: [`StateStore::set_session_state`]) is the caller's.
    pub(crate) async fn cancel_session_jobs(&self, session_id: &str) -> Result<usize, CoreError> {
        let jobs: Vec<JobRow> = self
            .state
            .jobs(Some(session_id))?
            .into_iter()
            .filter(|j| j.ended_at.is_none())
            .collect();
        self.cancel_jobs(&jobs).await
    }

    /// Cancels these recorded jobs in one scheduler call and waits (up to a minute)
    /// until the scheduler says they ended.
    async fn cancel_jobs(&self, jobs: &[JobRow]) -> Result<usize, CoreError> {
        let mut tracked: Vec<Tracked> = jobs
            .iter()
            .filter_map(|j| {
                Some(Tracked {
                    row: j.row,
                    kind: if j.owner_kind == "service" {
                        JobKind::Service
                    } else {
                        JobKind::Client
                    },
                    owner_id: j.owner_id.clone(),
                    name: j.job_name.clone(),
                    job_id: JobId(j.job_id.clone()?),
                    stdout_path: j.stdout_path.clone(),
                    stderr_path: j.stderr_path.clone(),
                    last: None,
                })
            })
            .collect();
        if tracked.is_empty() {
            return Ok(0);
        }
        let ids: Vec<JobId> = tracked.iter().map(|t| t.job_id.clone()).collect();
        self.scheduler.cancel(&ids).await?;
        for job in jobs {
            self.state.event(
                Some(&job.session_id),
                Some(&job.owner_id),
                "job.cancel",
                Some(&format!("job {}", job.job_id.as_deref().unwrap_or("-"))),
            )?;
        }
        self.wait_ended(&mut tracked, std::time::Duration::from_secs(60))
            .await?;
        for job in &tracked {
            let state = job.record_state();
            let row = jobs
                .iter()
                .find(|j| j.row == job.row)
                .expect("tracked from jobs");
            self.settle_owner(row, &state, job.exit_code())?;
        }
        Ok(tracked.len())
    }

    /// Ids of the services or clients (`kind`) whose jobs have not ended, as recorded.
    fn active_owners(&self, kind: &str) -> Result<Vec<String>, CoreError> {
        Ok(dedup(
            self.state
                .active_jobs()?
                .into_iter()
                .filter(|j| j.owner_kind == kind)
                .map(|j| j.owner_id),
        ))
    }

    /// Cancels the active jobs of one service or client; whether it had any.
    async fn cancel_owner(&self, owner: &str) -> Result<bool, CoreError> {
        let jobs: Vec<JobRow> = self
            .state
            .jobs_of(owner)?
            .into_iter()
            .filter(|j| j.ended_at.is_none())
            .collect();
        Ok(self.cancel_jobs(&jobs).await? > 0)
    }

    /// The original `stop_benchmark_session`: cancels every job of the session.
    /// Returns whether the session was known.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn stop_benchmark_session(&self, session_id: &str) -> Result<bool, CoreError> {
        if self.state.session(session_id)?.is_none() {
            return Ok(false);
        }
        self.cancel_session_jobs(session_id).await?;
        let session = self.state.session(session_id)?.expect("checked above");
        if !session.state.is_final() {
            self.state.set_session_state(
                session_id,
                SessionState::Cancelled,
                Some("stopped by the user"),
            )?;
        }
        Ok(true)
    }

    /// The original `stop_service`.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn stop_service(&self, service_id: &str) -> Result<bool, CoreError> {
        self.servers().stop_service(service_id).await
    }

    /// The original `stop_all_services`: cancels every job recorded in the state store
    /// that has not ended (services and their clients), in one scheduler call. Jobs the
    /// orchestrator did not submit are never touched.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn stop_all_services(&self) -> Result<StopSummary, CoreError> {
        self.reconcile().await?;
        let jobs = self.state.active_jobs()?;
        let services = self.active_owners("service")?;
        let clients = self.active_owners("client")?;
        let sessions: Vec<String> = dedup(jobs.iter().map(|j| j.session_id.clone()));
        let cancelled = self.cancel_jobs(&jobs).await?;
        for session in &sessions {
            let row = self.state.session(session)?;
            if row.is_some_and(|s| !s.state.is_final()) {
                self.state.set_session_state(
                    session,
                    SessionState::Cancelled,
                    Some("stopped by the user"),
                )?;
            }
        }
        Ok(StopSummary {
            jobs_cancelled: cancelled,
            services,
            clients,
            sessions,
        })
    }

    /// The original `show_servers_status`.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn show_servers_status(&self) -> Result<ServersStatus, CoreError> {
        self.reconcile().await?;
        self.servers_status(None)
    }

    /// The original `show_clients_status`.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn show_clients_status(&self) -> Result<ClientsStatus, CoreError> {
        self.reconcile().await?;
        self.clients_status(None)
    }

    fn servers_status(&self, sessions: Option<&[String]>) -> Result<ServersStatus, CoreError> {
        let jobs = self.state.jobs(None)?;
        let services: Vec<ServiceStatus> = self
            .state
            .services(None)?
            .into_iter()
            .filter(|s| sessions.is_none_or(|ids| ids.contains(&s.session_id)))
            .map(|s| {
                let job = last_job(&jobs, &s.id);
                ServiceStatus::new(s, job)
            })
            .collect();
        Ok(ServersStatus {
            total_services: services.len(),
            running_services: services
                .iter()
                .filter(|s| s.status == ServiceState::Running)
                .count(),
            services,
        })
    }

    fn clients_status(&self, sessions: Option<&[String]>) -> Result<ClientsStatus, CoreError> {
        let jobs = self.state.jobs(None)?;
        let clients: Vec<ClientStatus> = self
            .state
            .clients(None)?
            .into_iter()
            .filter(|c| sessions.is_none_or(|ids| ids.contains(&c.session_id)))
            .map(|c| {
                let job = last_job(&jobs, &c.id);
                ClientStatus::new(c, job)
            })
            .collect();
        Ok(ClientsStatus {
            total_clients: clients.len(),
            running_clients: clients
                .iter()
                .filter(|c| c.status == ClientState::Running)
                .count(),
            clients,
        })
    }

    /// The original `get_system_status`, reconciled with the scheduler: every session
    /// that has not ended plus the `recent` latest that have (all with `None`), and
    /// their services and clients.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn get_system_status(
        &self,
        recent: Option<usize>,
    ) -> Result<SystemStatus, CoreError> {
        self.reconcile().await?;
        let all = self.state.sessions()?;
        let active_jobs = self.state.active_jobs()?;
        let mut ended_shown = 0;
        let mut sessions = Vec::new();
        for s in all {
            if s.state.is_final() {
                if recent.is_some_and(|n| ended_shown >= n) {
                    continue;
                }
                ended_shown += 1;
            }
            let active = active_jobs.iter().filter(|j| j.session_id == s.id).count();
            sessions.push(SessionStatus::new(s, active));
        }
        let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
        Ok(SystemStatus {
            scheduler: self.scheduler.name().to_owned(),
            target: self.shell.target().to_owned(),
            state_db: self.state.path().display().to_string(),
            active_jobs: active_jobs.len(),
            services: self.servers_status(Some(&ids))?,
            clients: self.clients_status(Some(&ids))?,
            sessions,
        })
    }

    /// The original `get_slurm_status`: the scheduler's own view of all the user's
    /// jobs, and the jobs the orchestrator tracks.
    ///
    /// # Errors
    /// The cluster failing.
    pub async fn get_slurm_status(&self) -> Result<SlurmStatus, CoreError> {
        let raw = self.scheduler.raw_status().await?;
        let tracked = self
            .state
            .active_jobs()?
            .iter()
            .map(crate::session::JobSummary::from)
            .collect();
        Ok(SlurmStatus {
            scheduler: self.scheduler.name().to_owned(),
            raw,
            tracked,
        })
    }

    /// The original `debug_services`: for each service (or the service, client or
    /// session `id`): the rendered script, the scheduler's view, the tails of stdout
    /// and stderr, and the latest events.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn debug_services(&self, id: Option<&str>) -> Result<Vec<DebugEntry>, CoreError> {
        self.reconcile().await?;
        let owners: Vec<(String, String, String, String, OwnerState)> = match id {
            None => self
                .state
                .services(None)?
                .into_iter()
                .map(|s| ("service".into(), s.id, s.name, s.session_id, s.state.into()))
                .collect(),
            Some(id) => {
                let mut owners = Vec::new();
                if let Some(s) = self.state.service(id)? {
                    owners.push(("service".into(), s.id, s.name, s.session_id, s.state.into()));
                } else if let Some(c) = self.state.client(id)? {
                    owners.push(("client".into(), c.id, c.name, c.session_id, c.state.into()));
                } else if self.state.session(id)?.is_some() {
                    for s in self.state.services(Some(id))? {
                        owners.push(("service".into(), s.id, s.name, s.session_id, s.state.into()));
                    }
                    for c in self.state.clients(Some(id))? {
                        owners.push(("client".into(), c.id, c.name, c.session_id, c.state.into()));
                    }
                } else {
                    return Err(CoreError::NotFound {
                        what: "service, client or session",
                        id: id.to_owned(),
                    });
                }
                owners
            }
        };
        let mut entries = Vec::new();
        for (kind, owner, name, session, state) in owners {
            let job = self.state.jobs_of(&owner)?.pop();
            let scheduler_view = match job.as_ref().and_then(|j| j.job_id.clone()) {
                Some(id) => self
                    .scheduler
                    .query(&[JobId(id.clone())])
                    .await?
                    .remove(&JobId(id)),
                None => None,
            };
            let (stdout_tail, stderr_tail) = match &job {
                Some(j) => (
                    self.file_tail(&j.stdout_path).await,
                    self.file_tail(&j.stderr_path).await,
                ),
                None => (String::new(), String::new()),
            };
            entries.push(DebugEntry {
                kind,
                events: self.state.events(None, Some(&owner), 20)?,
                id: owner,
                name,
                session_id: session,
                state,
                job,
                scheduler_view,
                stdout_tail,
                stderr_tail,
            });
        }
        Ok(entries)
    }

    async fn file_tail(&self, path: &str) -> String {
        let command = format!("tail -c 4000 -- {} 2>&1", quote(path));
        match self.shell.exec(&command).await {
            Ok(out) => out.stdout_lossy().into_owned(),
            Err(e) => format!("(cannot read {path}: {e})"),
        }
    }

    /// The original `clear_all_state`: forgets every tracked session, service, client
    /// and job. Refuses while tracked jobs are active unless `force`, which cancels
    /// them first. Returns how many services and clients were cleared.
    ///
    /// # Errors
    /// [`CoreError::ActiveJobs`], the cluster or the store failing.
    pub async fn clear_all_state(&self, force: bool) -> Result<(usize, usize), CoreError> {
        self.reconcile().await?;
        let active = self.state.active_jobs()?;
        if !active.is_empty() {
            if !force {
                return Err(CoreError::ActiveJobs {
                    count: active.len(),
                    jobs: active
                        .iter()
                        .map(|j| {
                            format!(
                                "{} ({})",
                                j.job_name,
                                j.job_id.as_deref().unwrap_or("not yet submitted")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            self.stop_all_services().await?;
        }
        self.state.clear()
    }

    /// Writes the report of a session to `output_path`, in the format its extension
    /// names: `.yaml`/`.yml`, `.json` or `.md`. Returns the path.
    ///
    /// # Errors
    /// An unknown session, another extension, or the file cannot be written.
    pub async fn generate_report(
        &self,
        session_id: &str,
        output_path: &Path,
    ) -> Result<PathBuf, CoreError> {
        let report = crate::report::SessionReport::build(self, session_id)?;
        report.write(output_path)?;
        Ok(output_path.to_path_buf())
    }

    /// Writes `report.json` into the session's results directory and records it.
    pub(crate) async fn write_report(
        &self,
        session_id: &str,
        dir: Option<&Path>,
    ) -> Result<PathBuf, CoreError> {
        let dir = dir.map_or_else(|| self.results_dir.join(session_id), Path::to_path_buf);
        std::fs::create_dir_all(&dir)
            .map_err(CoreError::io(format!("cannot create {}", dir.display())))?;
        let path = dir.join("report.json");
        self.state
            .set_session_report(session_id, &path.display().to_string())?;
        self.generate_report(session_id, &path).await
    }
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn last_job<'a>(jobs: &'a [JobRow], owner: &str) -> Option<&'a JobRow> {
    jobs.iter().rev().find(|j| j.owner_id == owner)
}

/// Whether a local process is alive (the orchestrator that runs a session).
fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn default_key() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| format!("{home}/.ssh/{k}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| format!("{home}/.ssh/id_ed25519"))
}

/// Loads a recipe file as a complete recipe.
///
/// # Errors
/// An unreadable or invalid file, or a client or config file.
pub fn load_recipe(path: &Path) -> Result<BenchmarkRecipe, CoreError> {
    load_recipe_file(path).map(|file| file.recipe)
}

/// A recipe file as [`load_recipe_file`] read it.
#[derive(Debug, Clone)]
pub struct RecipeFile {
    /// The complete recipe.
    pub recipe: BenchmarkRecipe,
    /// How it was read (the original tool's forms, drivers chosen by kind): for `-v`.
    pub notes: Vec<String>,
    /// What the user should know although it runs: to print.
    pub warnings: Vec<String>,
}

/// [`load_recipe`], with how the file was read and its warnings.
///
/// # Errors
/// An unreadable or invalid file, or a client or config file.
pub fn load_recipe_file(path: &Path) -> Result<RecipeFile, CoreError> {
    let loaded = load_file_checked(path, None, &crate::check_settings)?;
    let kind = loaded.value.kind();
    let (notes, warnings) = (loaded.notes, loaded.warnings);
    let recipe = loaded.value.into_recipe().ok_or_else(|| {
        CoreError::plan(
            &path.display().to_string(),
            format!("a {kind} file cannot be run on its own"),
            Some(match kind {
                Kind::Client => "start it against a running service: `orchestrator client start FILE --target SERVICE_ID`".into(),
                _ => "pass a service or complete recipe".into(),
            }),
        )
    })?;
    Ok(RecipeFile {
        recipe,
        notes,
        warnings,
    })
}

fn load_typed(path: &Path, kind: Kind) -> Result<Document, CoreError> {
    Ok(load_file_checked(path, Some(kind), &crate::check_settings)?.value)
}

/// What `stop --all` did.
#[derive(Debug, Clone, Serialize)]
pub struct StopSummary {
    /// Jobs cancelled.
    pub jobs_cancelled: usize,
    /// Services whose jobs were cancelled.
    pub services: Vec<String>,
    /// Clients whose jobs were cancelled.
    pub clients: Vec<String>,
    /// Sessions concerned.
    pub sessions: Vec<String>,
}

/// A service, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// Its id.
    pub service_id: String,
    /// Its name.
    pub name: String,
    /// Its session.
    pub session_id: String,
    /// Its driver.
    pub driver: String,
    /// `pending`, `starting`, `running`, `failed`, `stopped`, `completed`.
    pub status: ServiceState,
    /// The scheduler's id.
    pub job_id: Option<String>,
    /// The scheduler's state.
    pub job_state: Option<JobRecordState>,
    /// The node.
    pub node: Option<String>,
    /// The port.
    pub port: Option<u16>,
    /// The last health answer.
    pub health: Option<String>,
    /// The job's exit code.
    pub exit_code: Option<i32>,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl ServiceStatus {
    fn new(s: ServiceRow, job: Option<&JobRow>) -> Self {
        Self {
            job_id: job.and_then(|j| j.job_id.clone()),
            job_state: job.map(|j| j.state.clone()),
            node: job.and_then(|j| j.node.clone()).or(s.host),
            exit_code: job.and_then(|j| j.exit_code),
            service_id: s.id,
            name: s.name,
            session_id: s.session_id,
            driver: s.driver,
            status: s.state,
            port: s.port,
            health: s.health,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// A client, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStatus {
    /// Its id.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// Its session.
    pub session_id: String,
    /// Its workload driver.
    pub workload: String,
    /// `pending`, `running`, `completed`, `failed`, `cancelled`.
    pub status: ClientState,
    /// The scheduler's id.
    pub job_id: Option<String>,
    /// The scheduler's state.
    pub job_state: Option<JobRecordState>,
    /// The node.
    pub node: Option<String>,
    /// The service it loads.
    pub target_service_id: Option<String>,
    /// `host:port` it loads.
    pub target: Option<String>,
    /// The job's exit code.
    pub exit_code: Option<i32>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl ClientStatus {
    fn new(c: ClientRow, job: Option<&JobRow>) -> Self {
        Self {
            job_id: job.and_then(|j| j.job_id.clone()),
            job_state: job.map(|j| j.state.clone()),
            node: job.and_then(|j| j.node.clone()),
            exit_code: job.and_then(|j| j.exit_code),
            target: match (&c.target_host, c.target_port) {
                (Some(h), Some(p)) => Some(format!("{h}:{p}")),
                _ => None,
            },
            client_id: c.id,
            name: c.name,
            session_id: c.session_id,
            workload: c.driver,
            status: c.state,
            target_service_id: c.target_service_id,
            created_at: rfc3339(c.created_at),
        }
    }
}

/// Services, as `show_servers_status` returns them.
#[derive(Debug, Clone, Serialize)]
pub struct ServersStatus {
    /// How many are tracked.
    pub total_services: usize,
    /// How many are running and healthy.
    pub running_services: usize,
    /// Each.
    pub services: Vec<ServiceStatus>,
}

/// Clients, as `show_clients_status` returns them.
#[derive(Debug, Clone, Serialize)]
pub struct ClientsStatus {
    /// How many are tracked.
    pub total_clients: usize,
    /// How many run.
    pub running_clients: usize,
    /// Each.
    pub clients: Vec<ClientStatus>,
}

/// A session, as status shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    /// Its id.
    pub session_id: String,
    /// The recipe's name.
    pub name: Option<String>,
    /// The recipe file.
    pub recipe_path: Option<String>,
    /// `starting`, `running`, `completed`, `failed`, `cancelled`.
    pub state: SessionState,
    /// Why it failed.
    pub error: Option<String>,
    /// Jobs not yet ended.
    pub active_jobs: usize,
    /// Its report.
    pub report_path: Option<String>,
    /// Started (RFC 3339).
    pub created_at: String,
    /// Ended (RFC 3339).
    pub finished_at: Option<String>,
}

impl SessionStatus {
    fn new(s: SessionRow, active_jobs: usize) -> Self {
        Self {
            session_id: s.id,
            name: s.name,
            recipe_path: s.recipe_path,
            state: s.state,
            error: s.error,
            active_jobs,
            report_path: s.report_path,
            created_at: rfc3339(s.created_at),
            finished_at: s.finished_at.map(rfc3339),
        }
    }
}

/// Everything, as `get_system_status` returns it.
#[derive(Debug, Clone, Serialize)]
pub struct SystemStatus {
    /// `slurm` or `local`.
    pub scheduler: String,
    /// Where commands run.
    pub target: String,
    /// The state database.
    pub state_db: String,
    /// Tracked jobs that have not ended.
    pub active_jobs: usize,
    /// Sessions shown.
    pub sessions: Vec<SessionStatus>,
    /// Their services.
    pub services: ServersStatus,
    /// Their clients.
    pub clients: ClientsStatus,
}

/// What `get_slurm_status` returns.
#[derive(Debug, Clone, Serialize)]
pub struct SlurmStatus {
    /// `slurm` or `local`.
    pub scheduler: String,
    /// The scheduler's own listing (`squeue` for SLURM).
    pub raw: String,
    /// The tracked jobs that have not ended.
    pub tracked: Vec<crate::session::JobSummary>,
}

/// One service or client, as `debug` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DebugEntry {
    /// `service` or `client`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its session.
    pub session_id: String,
    /// Its state.
    pub state: OwnerState,
    /// Its latest job, with the rendered script.
    pub job: Option<JobRow>,
    /// What the scheduler says now.
    pub scheduler_view: Option<JobInfo>,
    /// The end of its standard output.
    pub stdout_tail: String,
    /// The end of its standard error.
    pub stderr_tail: String,
    /// Its latest events.
    pub events: Vec<EventRow>,
}

/// The original `ServersModule`: services on their own.
#[derive(Debug, Clone, Copy)]
pub struct ServersModule<'a> {
    orch: &'a BenchmarkOrchestrator,
}

impl ServersModule<'_> {
    /// Names of the service recipes in `services_dir`.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list_available_services(&self) -> Result<Vec<String>, CoreError> {
        catalog_names(&self.orch.config.services_dir, Kind::Service)
    }

    /// Ids of services whose job has not ended.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn list_running_services(&self) -> Result<Vec<String>, CoreError> {
        self.orch.reconcile().await?;
        self.orch.active_owners("service")
    }

    /// Submits a service in a session of its own and returns its id without waiting;
    /// [`check_service_status`](Self::check_service_status) or
    /// [`wait_healthy`](Self::wait_healthy) tell when it is up.
    ///
    /// # Errors
    /// A recipe that cannot run, or the submission failing.
    pub async fn start_service(&self, recipe: &ServiceRecipe) -> Result<String, CoreError> {
        let plan = crate::plan::plan(
            &BenchmarkRecipe {
                name: Some(recipe.name.clone()),
                description: recipe.description.clone(),
                services: vec![recipe.clone()],
                clients: Vec::new(),
            },
            "recipe",
        )?;
        self.orch.record_plan(
            &plan,
            &RunOptions {
                keep_services: true,
                recipe_path: None,
            },
        )?;
        let service = &plan.services[0];
        self.orch
            .submit_service(&plan.session_id, service, None)
            .await?;
        self.orch
            .state
            .set_session_state(&plan.session_id, SessionState::Running, None)?;
        Ok(service.id.clone())
    }

    /// Waits until the service runs and passes its health check.
    ///
    /// # Errors
    /// [`CoreError::ServiceStartup`], [`CoreError::ServiceHealthCheck`], or the
    /// cluster failing.
    pub async fn wait_healthy(
        &self,
        service_id: &str,
        progress: &dyn crate::Progress,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<ServiceStatus, CoreError> {
        let row = self.service_row(service_id)?;
        let recipe: ServiceRecipe =
            serde_json::from_str(&row.recipe).map_err(|e| CoreError::State {
                path: self.orch.state.path().display().to_string(),
                message: format!("service {service_id}: unreadable recipe: {e}"),
            })?;
        let mut service = plan_service(&recipe, "recipe")?;
        service.id = row.id.clone();
        let job =
            self.orch
                .state
                .jobs_of(service_id)?
                .pop()
                .ok_or_else(|| CoreError::NotFound {
                    what: "service job",
                    id: service_id.to_owned(),
                })?;
        let mut tracked = vec![tracked_of(&job, row.name.clone())?];
        loop {
            self.orch.refresh(&mut tracked, progress).await?;
            if tracked[0].ended() {
                return Err(self.orch.startup_error(&tracked[0]).await);
            }
            if let Some(node) = tracked[0].node().filter(|_| tracked[0].placed()) {
                let node = node.to_owned();
                self.orch
                    .health_gate(
                        &row.session_id,
                        &service,
                        &node,
                        &mut tracked,
                        0,
                        progress,
                        cancel,
                    )
                    .await?;
                return self.check_service_status(service_id).await;
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(CoreError::Interrupted { session_id: row.session_id.clone() }),
                () = tokio::time::sleep(self.orch.poll.min) => {}
            }
        }
    }

    /// Cancels a service's job. Returns whether there was an active job to cancel.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn stop_service(&self, service_id: &str) -> Result<bool, CoreError> {
        self.service_row(service_id)?;
        let cancelled = self.orch.cancel_owner(service_id).await?;
        self.orch
            .state
            .set_service_state(service_id, ServiceState::Stopped, None, None, None)?;
        self.orch.settle_sessions()?;
        Ok(cancelled)
    }

    /// A service's status, reconciled with the scheduler.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn check_service_status(&self, service_id: &str) -> Result<ServiceStatus, CoreError> {
        self.orch.reconcile().await?;
        let row = self.service_row(service_id)?;
        let jobs = self.orch.state.jobs_of(service_id)?;
        Ok(ServiceStatus::new(row, jobs.last()))
    }

    fn service_row(&self, id: &str) -> Result<ServiceRow, CoreError> {
        self.orch
            .state
            .service(id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "service",
                id: id.to_owned(),
            })
    }
}

fn tracked_of(job: &JobRow, name: String) -> Result<Tracked, CoreError> {
    Ok(Tracked {
        row: job.row,
        kind: if job.owner_kind == "service" {
            JobKind::Service
        } else {
            JobKind::Client
        },
        owner_id: job.owner_id.clone(),
        name,
        job_id: JobId(job.job_id.clone().ok_or_else(|| CoreError::NotFound {
            what: "submitted job",
            id: job.owner_id.clone(),
        })?),
        stdout_path: job.stdout_path.clone(),
        stderr_path: job.stderr_path.clone(),
        last: None,
    })
}

fn catalog_names(dir: &str, kind: Kind) -> Result<Vec<String>, CoreError> {
    let catalog = orchestrator_recipes::catalog::list(Path::new(dir), kind)
        .map_err(CoreError::io(format!("cannot read {dir}")))?;
    Ok(catalog.entries.into_iter().map(|e| e.name).collect())
}

/// The original `ClientsModule`: clients against running services.
#[derive(Debug, Clone, Copy)]
pub struct ClientsModule<'a> {
    orch: &'a BenchmarkOrchestrator,
}

impl ClientsModule<'_> {
    /// Names of the client recipes in `clients_dir`.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list_available_clients(&self) -> Result<Vec<String>, CoreError> {
        catalog_names(&self.orch.config.clients_dir, Kind::Client)
    }

    /// Ids of clients whose job has not ended.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn list_running_clients(&self) -> Result<Vec<String>, CoreError> {
        self.orch.reconcile().await?;
        self.orch.active_owners("client")
    }

    /// Submits a client against the running service `target_service_id` (on its node,
    /// or on `host` when given) and returns the client's id without waiting.
    ///
    /// # Errors
    /// An unknown or not running service, a recipe that cannot run, or the submission
    /// failing.
    pub async fn start_client(
        &self,
        recipe: &ClientRecipe,
        target_service_id: &str,
        host: Option<&str>,
    ) -> Result<String, CoreError> {
        self.orch.reconcile().await?;
        let service_row =
            self.orch
                .state
                .service(target_service_id)?
                .ok_or_else(|| CoreError::NotFound {
                    what: "service",
                    id: target_service_id.to_owned(),
                })?;
        let service_recipe: ServiceRecipe =
            serde_json::from_str(&service_row.recipe).map_err(|e| CoreError::State {
                path: self.orch.state.path().display().to_string(),
                message: format!("service {target_service_id}: unreadable recipe: {e}"),
            })?;
        let job = self.orch.state.jobs_of(target_service_id)?.pop();
        let node = host
            .map(str::to_owned)
            .or_else(|| {
                job.as_ref()
                    .filter(|j| j.ended_at.is_none())
                    .and_then(|j| j.node.clone())
            })
            .ok_or_else(|| {
                CoreError::plan(
                    "recipe",
                    format!(
                        "service {target_service_id} is {} and has no node yet",
                        service_row.state
                    ),
                    Some(
                        "wait until `orchestrator service status ID` says running, or pass --host"
                            .into(),
                    ),
                )
            })?;
        let mut service = plan_service(&service_recipe, "recipe")?;
        service.id = service_row.id.clone();
        let client = plan_client(recipe, &service, 0, "recipe")?;
        let target = self.orch.target_of(&service, &node, client.port, recipe);
        let now = crate::util::now_ms();
        let taken = self
            .orch
            .state
            .clients(Some(&service_row.session_id))?
            .iter()
            .any(|c| c.name == recipe.name)
            || recipe.name == service_row.name;
        let dir_name = if taken {
            format!("{}-{}", recipe.name, client.id)
        } else {
            recipe.name.clone()
        };
        self.orch.state.insert_client(&ClientRow {
            id: client.id.clone(),
            session_id: service_row.session_id.clone(),
            name: recipe.name.clone(),
            driver: client.driver.name().to_owned(),
            recipe: serde_json::to_string(recipe).expect("recipes serialise"),
            target_service_id: Some(service_row.id.clone()),
            target_host: Some(node.clone()),
            target_port: Some(client.port),
            state: ClientState::Pending,
            created_at: now,
            updated_at: now,
        })?;
        self.orch
            .submit_client(
                &service_row.session_id,
                &client.id,
                recipe,
                client.driver,
                &target,
                &dir_name,
            )
            .await?;
        Ok(client.id)
    }

    /// Cancels a client's job. Returns whether there was an active job to cancel.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn stop_client(&self, client_id: &str) -> Result<bool, CoreError> {
        self.client_row(client_id)?;
        self.orch.cancel_owner(client_id).await
    }

    /// A client's status, reconciled with the scheduler.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn check_client_status(&self, client_id: &str) -> Result<ClientStatus, CoreError> {
        self.orch.reconcile().await?;
        let row = self.client_row(client_id)?;
        let jobs = self.orch.state.jobs_of(client_id)?;
        Ok(ClientStatus::new(row, jobs.last()))
    }

    fn client_row(&self, id: &str) -> Result<ClientRow, CoreError> {
        self.orch
            .state
            .client(id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "client",
                id: id.to_owned(),
            })
    }
}

/// Loads a service recipe file.
///
/// # Errors
/// An unreadable or invalid file, or one that is not a service.
pub fn load_service(path: &Path) -> Result<ServiceRecipe, CoreError> {
    match load_typed(path, Kind::Service)? {
        Document::Service(s) => Ok(*s),
        _ => unreachable!("loaded as a service"),
    }
}

/// Loads a client recipe file.
///
/// # Errors
/// An unreadable or invalid file, or one that is not a client.
pub fn load_client(path: &Path) -> Result<ClientRecipe, CoreError> {
    match load_typed(path, Kind::Client)? {
        Document::Client(c) => Ok(*c),
        _ => unreachable!("loaded as a client"),
    }
}
