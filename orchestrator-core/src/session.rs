//! What a session is to its callers: the events it reports while it runs
//! ([`SessionEvent`], heard through [`Progress`]), how to run it ([`RunOptions`]) and
//! what it ended as ([`SessionOutcome`], [`JobSummary`]).

use serde::Serialize;

use crate::lifecycle::{JobRecordState, SessionState};
use crate::report::{JobSummary, ReportClient, ReportService};

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
    /// A job an earlier orchestrator of the session submitted is driven on (`attach`).
    Adopted {
        /// `service` or `client`.
        kind: String,
        /// The recipe's name.
        name: String,
        /// The scheduler's id.
        job_id: String,
        /// Its state as last recorded.
        state: JobRecordState,
    },
    /// A job that ended because of the cluster (`NODE_FAIL`, …) is submitted again.
    Requeued {
        /// `service` or `client`.
        kind: String,
        /// The recipe's name.
        name: String,
        /// The job that ended.
        job_id: String,
        /// How it ended.
        state: JobRecordState,
        /// Which retry this is (from 1).
        retry: u32,
        /// Of how many the recipe allows.
        retries: u32,
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
    /// The session's Prometheus was asked what it scraped, before it stopped.
    Monitored {
        /// Where it answered (`NODE:PORT`).
        prometheus: String,
        /// The targets it scraped.
        targets: usize,
        /// The series stored.
        series: usize,
        /// What the snapshot lacks (targets never scraped, queries refused).
        problems: Vec<String>,
        /// Where the snapshot and Grafana's files are.
        dir: String,
    },
    /// Services were stopped.
    Stopped {
        /// How many.
        services: usize,
    },
    /// A service ended, or stopped answering, while its clients ran.
    ServiceDied {
        /// The service.
        name: String,
        /// What happened, and what became of its clients.
        detail: String,
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
