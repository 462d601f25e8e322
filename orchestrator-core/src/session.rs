//! What a session is to its callers: the events it reports while it runs
//! ([`SessionEvent`], heard through [`Progress`]), how to run it ([`RunOptions`]) and
//! what it ended as ([`SessionOutcome`], [`JobSummary`]).

use serde::Serialize;

use crate::backend::Backend;
use crate::error::CoreError;
use crate::lifecycle::{JobRecordState, SessionState};
use crate::report::{ReportClient, ReportService};
use crate::state::JobRow;

/// What a session is doing, for progress displays.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session was planned and recorded.
    Created {
        /// Its id.
        session_id: String,
        /// Service names.
        services: Vec<String>,
        /// Client names.
        clients: Vec<String>,
    },
    /// A job was submitted.
    Submitted {
        /// `service` or `client`.
        kind: String,
        /// The recipe's name.
        name: String,
        /// The scheduler's id.
        job_id: String,
    },
    /// A job changed state.
    JobState {
        /// `service` or `client`.
        kind: String,
        /// The recipe's name.
        name: String,
        /// The scheduler's id.
        job_id: String,
        /// Its state.
        state: JobRecordState,
        /// Its node.
        node: Option<String>,
        /// The scheduler's reason (why pending).
        reason: Option<String>,
    },
    /// A health check failed; another follows.
    HealthAttempt {
        /// The service.
        name: String,
        /// Which attempt.
        attempt: u32,
        /// Of how many.
        retries: u32,
        /// What it got.
        response: String,
    },
    /// A service passed its health check.
    Healthy {
        /// The service.
        name: String,
        /// Its host.
        host: String,
        /// Its port.
        port: Option<u16>,
    },
    /// A client finished.
    ClientDone {
        /// The client.
        name: String,
        /// Its job's final state.
        state: JobRecordState,
        /// Its exit code.
        exit_code: Option<i32>,
    },
    /// Outputs were fetched to this directory.
    Fetched {
        /// The local directory.
        dir: String,
    },
    /// Services were stopped.
    Stopped {
        /// How many.
        services: usize,
    },
    /// Jobs are being cancelled because the session failed or was interrupted.
    CleaningUp {
        /// Why.
        reason: String,
    },
}

/// Receives [`SessionEvent`]s (the CLI draws them; `()` ignores them).
pub trait Progress: Send + Sync {
    /// Called for every event, in order.
    fn event(&self, event: &SessionEvent);
}

impl Progress for () {
    fn event(&self, _: &SessionEvent) {}
}

/// How to run a session.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Leave the services running after the clients finish.
    pub keep_services: bool,
    /// The recipe file, for messages and the record.
    pub recipe_path: Option<String>,
}

/// A finished session, as `run --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionOutcome {
    /// The session id.
    pub session_id: String,
    /// `completed`, `failed`, `cancelled`, or `running` when services were kept.
    pub state: SessionState,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Its services.
    pub services: Vec<ReportService>,
    /// Its clients.
    pub clients: Vec<ReportClient>,
    /// Its jobs, without their scripts.
    pub jobs: Vec<JobSummary>,
    /// The report file.
    pub report_path: Option<String>,
    /// Where fetched outputs are.
    pub results_dir: Option<String>,
    /// The clients' `expect` checked on their results; any that did not pass makes
    /// `orchestrator run` exit 3.
    pub expectations: Vec<crate::expect::ExpectationResult>,
}

impl SessionOutcome {
    /// The expectations that were missed.
    pub fn missed(&self) -> impl Iterator<Item = &crate::expect::ExpectationResult> {
        self.expectations.iter().filter(|e| !e.passed)
    }
}

/// A job, for summaries and reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobSummary {
    /// `service` or `client`.
    pub kind: String,
    /// The service's or client's id.
    pub owner_id: String,
    /// The SLURM job name.
    pub job_name: String,
    /// The scheduler's id.
    pub job_id: Option<String>,
    /// Its state.
    pub state: JobRecordState,
    /// Its node.
    pub node: Option<String>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// The scheduler's reason.
    pub reason: Option<String>,
    /// Submitted (RFC 3339).
    pub submitted_at: Option<String>,
    /// Ended (RFC 3339).
    pub ended_at: Option<String>,
    /// Its directory on the cluster.
    pub job_dir: String,
}

impl From<&JobRow> for JobSummary {
    fn from(j: &JobRow) -> Self {
        Self {
            kind: j.owner_kind.clone(),
            owner_id: j.owner_id.clone(),
            job_name: j.job_name.clone(),
            job_id: j.job_id.clone(),
            state: j.state.clone(),
            node: j.node.clone(),
            exit_code: j.exit_code,
            reason: j.reason.clone(),
            submitted_at: j.submitted_at.map(crate::util::rfc3339),
            ended_at: j.ended_at.map(crate::util::rfc3339),
            job_dir: j.job_dir.clone(),
        }
    }
}

/// The outcome of a session as the store has it.
///
/// # Errors
/// An unknown session, or the store failing.
pub(crate) fn outcome(b: &Backend, session_id: &str) -> Result<SessionOutcome, CoreError> {
    let session = b
        .state()
        .session(session_id)?
        .ok_or_else(|| CoreError::NotFound {
            what: "session",
            id: session_id.to_owned(),
        })?;
    let clients = b.state().clients(Some(session_id))?;
    let expectations =
        crate::expect::session_expectations(&clients, &b.state().results(session_id)?)?;
    Ok(SessionOutcome {
        session_id: session.id.clone(),
        state: session.state,
        error: session.error,
        services: b
            .state()
            .services(Some(session_id))?
            .iter()
            .map(ReportService::from)
            .collect(),
        clients: clients.iter().map(ReportClient::from).collect(),
        jobs: b
            .state()
            .jobs(Some(session_id))?
            .iter()
            .map(JobSummary::from)
            .collect(),
        report_path: session.report_path,
        results_dir: Some(b.results_dir().join(session_id).display().to_string()),
        expectations,
    })
}
