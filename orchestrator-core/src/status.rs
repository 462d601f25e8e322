//! What status, stop and debug return: plain values for tables and `--json`.

use orchestrator_slurm::JobInfo;
use serde::Serialize;

use crate::lifecycle::{ClientState, JobRecordState, OwnerState, ServiceState, SessionState};
use crate::state::{ClientRow, EventRow, JobRow, ServiceRow, SessionRow};
use crate::util::rfc3339;

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
    pub(crate) fn new(s: ServiceRow, job: Option<&JobRow>) -> Self {
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
    pub(crate) fn new(c: ClientRow, job: Option<&JobRow>) -> Self {
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
    /// Whether `orchestrator attach` can continue it: its orchestrator died before it
    /// ended.
    pub attachable: bool,
    /// Its report.
    pub report_path: Option<String>,
    /// Started (RFC 3339).
    pub created_at: String,
    /// Ended (RFC 3339).
    pub finished_at: Option<String>,
}

impl SessionStatus {
    pub(crate) fn new(s: SessionRow, active_jobs: usize) -> Self {
        // Ended sessions have no living orchestrator to ask about.
        let attachable = s.state.resumable(s.error.as_deref())
            && (s.state.is_final() || !crate::reconcile::session_alive(&s));
        Self {
            attachable,
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
    pub tracked: Vec<crate::report::JobSummary>,
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
