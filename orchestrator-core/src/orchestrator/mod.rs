//! [`BenchmarkOrchestrator`]: the original tool's central class, in Rust. It owns the
//! connection to the cluster (or this machine), the scheduler, the state store and
//! the job defaults; sessions, status, stop, debug and clear-state hang off it, and
//! [`ServersModule`] / [`ClientsModule`] are its `servers` and `clients` views.

mod admin;
mod attach;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_recipes::{BenchmarkRecipe, Config, LoadedConfig, load_config};
use orchestrator_slurm::{LocalScheduler, Scheduler, ScriptRenderer, Slurm};
use orchestrator_ssh::{LocalShell, Shell, SshOptions, SshShell};

use crate::backend::{Backend, PollPolicy};
use crate::error::CoreError;
use crate::plan::JobDefaults;
use crate::session::RunOptions;
use crate::state::StateStore;

/// The orchestrator: one per config.
pub struct BenchmarkOrchestrator {
    config: Config,
    pub(crate) backend: Backend,
}

impl std::fmt::Debug for BenchmarkOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BenchmarkOrchestrator")
            .field("target", &self.backend.shell.target())
            .field("scheduler", &self.backend.scheduler.name())
            .field("state", &self.backend.state.path())
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
        let backend = Backend::new(
            shell,
            scheduler,
            renderer,
            StateStore::open(state_dir)?,
            JobDefaults::from_config(&config),
            PathBuf::from(&config.results_dir),
            config.work_dir.clone(),
            config.remote_binary.clone(),
        );
        Ok(Self { config, backend })
    }

    /// Polls the scheduler with this policy.
    #[must_use]
    pub fn with_poll_policy(mut self, poll: PollPolicy) -> Self {
        self.backend.poll = poll;
        self
    }

    /// Jobs that run the command `orchestrator` run this path instead (the CLI passes
    /// its own executable when jobs run on this machine).
    #[must_use]
    pub fn with_orchestrator_bin(mut self, path: impl Into<String>) -> Self {
        self.backend.defaults.orchestrator_bin = Some(path.into());
        self
    }

    /// `path` is an orchestrator binary that jobs on the cluster may run: when a job
    /// runs the command `orchestrator` and the config names no `remote_binary`, it is
    /// uploaded once per content into `work_dir/bin` (the CLI passes itself).
    #[must_use]
    pub fn with_uploadable_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.backend.uploadable = Some(path.into());
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
        self.backend.job_binary().await
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// Where commands run.
    #[must_use]
    pub fn shell(&self) -> &Arc<dyn Shell> {
        &self.backend.shell
    }
    /// The scheduler.
    #[must_use]
    pub fn scheduler(&self) -> &Arc<dyn Scheduler> {
        &self.backend.scheduler
    }
    /// The state store.
    #[must_use]
    pub fn state(&self) -> &StateStore {
        &self.backend.state
    }
    /// Where reports and fetched outputs go.
    #[must_use]
    pub fn results_dir(&self) -> &Path {
        &self.backend.results_dir
    }

    /// The absolute work directory on the cluster (created on first use); relative
    /// `work_dir`s are relative to the home directory there.
    ///
    /// # Errors
    /// The cluster failing.
    pub async fn work_dir(&self) -> Result<&str, CoreError> {
        self.backend.work_dir().await
    }

    /// Loads and validates a recipe file as a complete recipe (a service recipe is a
    /// recipe with one service).
    ///
    /// # Errors
    /// An unreadable or invalid file, or a client or config file.
    pub fn load_recipe(&self, path: &Path) -> Result<BenchmarkRecipe, CoreError> {
        crate::loading::load_recipe(path)
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
        crate::reconcile::reconcile(&self.backend).await
    }

    /// The report of a session, built from the state store and the summaries it
    /// recorded.
    ///
    /// # Errors
    /// An unknown session, or the store failing.
    pub fn report(&self, session_id: &str) -> Result<crate::report::SessionReport, CoreError> {
        crate::report::SessionReport::build(self.state(), session_id)
    }

    /// The recorded sessions, newest first, as the store has them (not reconciled: see
    /// [`get_system_status`](Self::get_system_status) for that).
    ///
    /// # Errors
    /// The store failing.
    pub fn sessions(&self) -> Result<Vec<crate::status::SessionStatus>, CoreError> {
        let active = self.state().active_jobs()?;
        Ok(self
            .state()
            .sessions()?
            .into_iter()
            .map(|s| {
                let jobs = active.iter().filter(|j| j.session_id == s.id).count();
                crate::status::SessionStatus::new(s, jobs)
            })
            .collect())
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
        self.report(session_id)?.write(output_path)?;
        Ok(output_path.to_path_buf())
    }
}

fn default_key() -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| format!("{home}/.ssh/{k}"))
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| format!("{home}/.ssh/id_ed25519"))
}
