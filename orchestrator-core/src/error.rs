//! The errors of running sessions, in the taxonomy of the original tool's documentation
//! (configuration, connection, SLURM and service errors), each with a stable code.

use orchestrator_recipes::{ConfigError, LoadError};
use orchestrator_slurm::SlurmError;
use orchestrator_ssh::ShellError;

/// What went wrong while planning, running or inspecting a session.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum CoreError {
    /// The config could not be loaded.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    /// A recipe could not be loaded (the original's `FileNotFoundError` / `ValueError`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Recipe(#[from] LoadError),

    /// The recipe is valid YAML but cannot be run as asked.
    #[error("{file}: {message}")]
    #[diagnostic(code(recipe::plan))]
    Plan {
        /// The recipe file, or `recipe` when it was given as a value.
        file: String,
        /// What is wrong.
        message: String,
        /// What to do about it.
        #[help]
        hint: Option<String>,
    },

    /// Reaching the cluster or running a command there failed (the original's
    /// `ConnectionError`, `TimeoutError`, `AuthenticationError`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Shell(#[from] ShellError),

    /// The scheduler refused or failed (`JobSubmissionError`, `JobNotFoundError`,
    /// `InsufficientResourcesError`).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Slurm(#[from] SlurmError),

    /// A service's job ended before the service became healthy.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ServiceStartup(Box<StartupFailure>),

    /// A service's job runs but its health check never passed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ServiceHealthCheck(Box<HealthCheckFailure>),

    /// A service ended, or stopped answering its health check, while its clients ran.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ServiceDied(Box<ServiceDeath>),

    /// A service was healthy, and its `setup_script` failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    ServiceSetup(Box<SetupFailure>),

    /// No service, client or session has this id in the state store.
    #[error("no {what} with id `{id}` is tracked")]
    #[diagnostic(
        code(service::not_found),
        help("`orchestrator status --all` lists the ids the orchestrator tracks")
    )]
    NotFound {
        /// `service`, `client`, `session` or `service, client or session`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },

    /// The command would drop jobs that still run.
    #[error("{count} tracked job(s) are still active: {jobs}")]
    #[diagnostic(
        code(state::active_jobs),
        help(
            "stop them first with `orchestrator stop --all`, or pass --force to cancel them and clear"
        )
    )]
    ActiveJobs {
        /// How many.
        count: usize,
        /// Their names and ids.
        jobs: String,
    },

    /// The session was interrupted (Ctrl-C, SIGTERM, or a caller's cancellation).
    #[error("session {session_id} was interrupted; its jobs were cancelled")]
    #[diagnostic(code(session::interrupted))]
    Interrupted {
        /// The session.
        session_id: String,
    },

    /// `attach` found another living process driving the session.
    #[error("session {session_id} is driven by process {pid}, which still runs")]
    #[diagnostic(
        code(session::held),
        help(
            "one process drives a session at a time; wait for that one, or stop it (a process that dies lets go)"
        )
    )]
    SessionHeld {
        /// The session.
        session_id: String,
        /// The process that drives it.
        pid: u32,
    },

    /// `attach` found the session over: nothing is left to drive.
    #[error("session {session_id} ended {state}{}: there is nothing to continue", why.as_deref().map(|w| format!(" ({w})")).unwrap_or_default())]
    #[diagnostic(
        code(session::ended),
        help(
            "`orchestrator report SESSION` shows what it left; run the recipe again for a new session"
        )
    )]
    SessionEnded {
        /// The session.
        session_id: String,
        /// How it ended.
        state: crate::lifecycle::SessionState,
        /// Why, as recorded.
        why: Option<String>,
    },

    /// The state database failed.
    #[error("state database {path}: {message}")]
    #[diagnostic(
        code(state::database),
        help(
            "the database is in state_dir (`orchestrator config show`); it is safe to remove when no session runs"
        )
    )]
    State {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },

    /// A local file could not be read or written.
    #[error("{what}: {source}")]
    #[diagnostic(code(file::io))]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl CoreError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    pub(crate) fn plan(file: &str, message: impl Into<String>, hint: Option<String>) -> Self {
        Self::Plan {
            file: file.to_owned(),
            message: message.into(),
            hint,
        }
    }
}

/// A service's `setup_script` failed (or did not finish in time) once the service was
/// healthy.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "the setup_script of service `{service}` ({service_id}) {outcome}; its output ends:\n{output}"
)]
#[diagnostic(
    code(service::setup),
    help(
        "the script runs with bash on the service's node, in its job directory (setup.log there has all its output); fix it, or drop `setup_script`"
    )
)]
pub struct SetupFailure {
    /// The service's name.
    pub service: String,
    /// The service's id.
    pub service_id: String,
    /// What happened: `exited with status 3`, `did not finish within 600 s`, ...
    pub outcome: String,
    /// The end of its output.
    pub output: String,
}

impl CoreError {
    /// Whether the same request may succeed a little later: the cluster could not be
    /// reached, or a scheduler command failed outright (a controller restarting), as
    /// opposed to an answer that refuses or cannot be read.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Shell(e) => e.is_transient(),
            // Polling: a scheduler command that failed outright is worth asking again.
            Self::Slurm(SlurmError::Command { .. }) => true,
            Self::Slurm(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// A service's job ended before the service became healthy (the original's
/// `ServiceStartupError`).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "service `{service}` ({service_id}) failed to start: job {job_id} ended {state}{}",
    exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default()
)]
#[diagnostic(
    code(service::startup),
    help(
        "the end of its log is below; `orchestrator debug {service_id}` shows the script and the whole log\n{log_tail}"
    )
)]
pub struct StartupFailure {
    /// The service's name.
    pub service: String,
    /// The service's id.
    pub service_id: String,
    /// The scheduler's job id.
    pub job_id: String,
    /// The job's final state.
    pub state: crate::lifecycle::JobRecordState,
    /// Its exit code, when the scheduler knows it.
    pub exit_code: Option<i32>,
    /// The last lines of its standard error and output.
    pub log_tail: String,
}

/// A service ended, or stopped answering its health check, while its clients ran: the
/// session fails and the clients' results are marked invalid.
#[derive(Debug, Clone, thiserror::Error, miette::Diagnostic)]
#[error(
    "service `{service}` ({service_id}) {how} {after_s:.1} s after its clients started; {clients}"
)]
#[diagnostic(
    code(service::died),
    help(
        "the clients' results are partial and marked invalid in the report; `orchestrator debug {service_id}` shows the service's script and log, whose end is:\n{log_tail}"
    )
)]
pub struct ServiceDeath {
    /// The service's name.
    pub service: String,
    /// The service's id.
    pub service_id: String,
    /// The scheduler's job id.
    pub job_id: String,
    /// What happened: `ended FAILED with exit code 137`, or `stopped answering its
    /// health check (…)`.
    pub how: String,
    /// Its job's state when it was seen.
    pub state: crate::lifecycle::JobRecordState,
    /// Its exit code, when the scheduler knows it.
    pub exit_code: Option<i32>,
    /// Seconds from the first client's submission to when it was seen.
    pub after_s: f64,
    /// What became of the clients: `clients cancelled: a, b` or `clients let finish: a`.
    pub clients: String,
    /// The last lines of its standard error and output.
    pub log_tail: String,
}

/// A service's job runs but its health check never passed (the original's
/// `ServiceHealthCheckError`).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "service `{service}` ({service_id}) did not become healthy: {attempts} checks of {probe} failed; the last: {last_response}"
)]
#[diagnostic(
    code(service::health_check),
    help(
        "check the health_check endpoint and port, or give the service more time (interval × retries); `orchestrator debug {service_id}` shows its log"
    )
)]
pub struct HealthCheckFailure {
    /// The service's name.
    pub service: String,
    /// The service's id.
    pub service_id: String,
    /// What was probed, e.g. `GET http://node1:8080/health`.
    pub probe: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// The last answer or error.
    pub last_response: String,
}
