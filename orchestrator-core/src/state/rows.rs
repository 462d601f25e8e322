//! The rows of the state store, and how each is read from SQLite.

use rusqlite::Row;
use serde::Serialize;

use crate::lifecycle::{ClientState, JobRecordState, ServiceState, SessionState};

/// A session: one run of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    /// `ses-` and 8 hex digits.
    pub id: String,
    /// The recipe's name.
    pub name: Option<String>,
    /// The recipe file, when it came from one.
    pub recipe_path: Option<String>,
    /// The recipe as JSON.
    pub recipe: String,
    /// `slurm` or `local`.
    pub scheduler: String,
    /// Where commands run: `local` or `user@host:port`.
    pub target: String,
    /// Where it is.
    pub state: SessionState,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// Whether services stay up after the clients finish.
    pub keep_services: bool,
    /// The orchestrator process that runs it.
    pub pid: Option<u32>,
    /// That process's start time (`/proc/PID/stat`), which tells it from a later
    /// process with the same pid.
    pub pid_start: Option<String>,
    /// The bound on failed requests it ran under (`None`: recorded before sessions
    /// had one; the default applies).
    pub max_error_rate: Option<f64>,
    /// Its report file.
    pub report_path: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
}

/// A service of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServiceRow {
    /// `svc-` and 8 hex digits.
    pub id: String,
    /// Its session.
    pub session_id: String,
    /// The recipe's name.
    pub name: String,
    /// The service driver.
    pub driver: String,
    /// The recipe as JSON.
    pub recipe: String,
    /// Where it is.
    pub state: ServiceState,
    /// The node it runs on.
    pub host: Option<String>,
    /// The port clients load.
    pub port: Option<u16>,
    /// The last health check's answer.
    pub health: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A benchmark client of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ClientRow {
    /// `cli-` and 8 hex digits.
    pub id: String,
    /// Its session.
    pub session_id: String,
    /// The recipe's name.
    pub name: String,
    /// The workload driver.
    pub driver: String,
    /// The recipe as JSON.
    pub recipe: String,
    /// The service it loads.
    pub target_service_id: Option<String>,
    /// That service's host.
    pub target_host: Option<String>,
    /// That service's port.
    pub target_port: Option<u16>,
    /// Where it is.
    pub state: ClientState,
    /// Created.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A scheduler job of a service or client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    /// The row id.
    pub row: i64,
    /// Its session.
    pub session_id: String,
    /// `service` or `client`.
    pub owner_kind: String,
    /// The service's or client's id.
    pub owner_id: String,
    /// `slurm` or `local`.
    pub scheduler: String,
    /// `orch-<session>-<name>`.
    pub job_name: String,
    /// The scheduler's id, once submitted.
    pub job_id: Option<String>,
    /// The scheduler's state, or the orchestrator's own (`SUBMITTING`, `LOST`, ...).
    pub state: JobRecordState,
    /// The node it runs on.
    pub node: Option<String>,
    /// The scheduler's reason (why pending, why it failed).
    pub reason: Option<String>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// Its directory on the cluster.
    pub job_dir: String,
    /// Its script there.
    pub script_path: String,
    /// Its standard output there.
    pub stdout_path: String,
    /// Its standard error there.
    pub stderr_path: String,
    /// The rendered script.
    pub script: String,
    /// Recorded.
    pub created_at: i64,
    /// Submitted.
    pub submitted_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
    /// Ended (empty while active).
    pub ended_at: Option<i64>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// Its order.
    pub id: i64,
    /// When.
    pub at: i64,
    /// Which process wrote it.
    pub pid: u32,
    /// The session it concerns.
    pub session_id: Option<String>,
    /// The service, client or job it concerns.
    pub subject: Option<String>,
    /// What happened: `session.start`, `job.submit`, `job.state`, `health.pass`, ...
    pub action: String,
    /// Details.
    pub detail: Option<String>,
}

/// A file fetched from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ResultRow {
    /// Its order.
    pub id: i64,
    /// The session.
    pub session_id: String,
    /// The client.
    pub client_id: String,
    /// `stdout`, `stderr` or the result file's name.
    pub name: String,
    /// Where it is on this machine.
    pub path: String,
    /// Its size.
    pub bytes: i64,
    /// Fetched.
    pub created_at: i64,
}

/// What a job update says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// The new state.
    pub state: JobRecordState,
    /// The node, if known now.
    pub node: Option<String>,
    /// The reason, if any.
    pub reason: Option<String>,
    /// The exit code, if ended.
    pub exit_code: Option<i32>,
}

impl SessionRow {
    /// The bound on failed requests the session ran under.
    #[must_use]
    pub fn max_error_rate(&self) -> f64 {
        self.max_error_rate
            .unwrap_or(orchestrator_recipes::Config::DEFAULT_MAX_ERROR_RATE)
    }
}

pub(super) fn to_u16(v: Option<i64>) -> Option<u16> {
    v.and_then(|v| u16::try_from(v).ok())
}

pub(super) fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get("id")?,
        name: r.get("name")?,
        recipe_path: r.get("recipe_path")?,
        recipe: r.get("recipe")?,
        scheduler: r.get("scheduler")?,
        target: r.get("target")?,
        state: r.get("state")?,
        error: r.get("error")?,
        keep_services: r.get("keep_services")?,
        pid: r.get("pid")?,
        pid_start: r.get("pid_start")?,
        max_error_rate: r.get("max_error_rate")?,
        report_path: r.get("report_path")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        finished_at: r.get("finished_at")?,
    })
}

pub(super) fn service_row(r: &Row<'_>) -> rusqlite::Result<ServiceRow> {
    Ok(ServiceRow {
        id: r.get("id")?,
        session_id: r.get("session_id")?,
        name: r.get("name")?,
        driver: r.get("driver")?,
        recipe: r.get("recipe")?,
        state: r.get("state")?,
        host: r.get("host")?,
        port: to_u16(r.get("port")?),
        health: r.get("health")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

pub(super) fn client_row(r: &Row<'_>) -> rusqlite::Result<ClientRow> {
    Ok(ClientRow {
        id: r.get("id")?,
        session_id: r.get("session_id")?,
        name: r.get("name")?,
        driver: r.get("driver")?,
        recipe: r.get("recipe")?,
        target_service_id: r.get("target_service_id")?,
        target_host: r.get("target_host")?,
        target_port: to_u16(r.get("target_port")?),
        state: r.get("state")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

pub(super) fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        row: r.get("row")?,
        session_id: r.get("session_id")?,
        owner_kind: r.get("owner_kind")?,
        owner_id: r.get("owner_id")?,
        scheduler: r.get("scheduler")?,
        job_name: r.get("job_name")?,
        job_id: r.get("job_id")?,
        state: r.get("state")?,
        node: r.get("node")?,
        reason: r.get("reason")?,
        exit_code: r.get("exit_code")?,
        job_dir: r.get("job_dir")?,
        script_path: r.get("script_path")?,
        stdout_path: r.get("stdout_path")?,
        stderr_path: r.get("stderr_path")?,
        script: r.get("script")?,
        created_at: r.get("created_at")?,
        submitted_at: r.get("submitted_at")?,
        updated_at: r.get("updated_at")?,
        ended_at: r.get("ended_at")?,
    })
}
