//! The report's own types: what `report.json` holds, version 3. Times are RFC 3339,
//! the recipes are values, and no database row id appears. A version 2 report (rows
//! of the state store as they were) reads as version 3 ([`SessionReport::from_json`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::CoreError;
use crate::expect::ExpectationResult;
use crate::lifecycle::{ClientState, JobRecordState, ServiceState, SessionState};
use crate::state::{ClientRow, JobRow, ResultRow, ServiceRow};
use crate::util::rfc3339;

/// Bumped when the report's shape changes incompatibly.
pub const REPORT_VERSION: u32 = 3;

/// A session's report.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SessionReport {
    /// The report format's version.
    pub report_version: u32,
    /// The orchestrator that wrote it.
    pub orchestrator_version: String,
    /// When (RFC 3339).
    pub generated_at: String,
    /// The session.
    pub session: ReportSession,
    /// The recipe as run.
    pub recipe: serde_json::Value,
    /// SHA-256 of the recipe as run (its JSON text in the state store): two sessions
    /// with the same hash ran the same recipe.
    pub recipe_sha256: String,
    /// Its services.
    pub services: Vec<ReportService>,
    /// Its clients.
    pub clients: Vec<ReportClient>,
    /// Its jobs, with times.
    pub jobs: Vec<JobSummary>,
    /// What each job asked of the scheduler: the `#SBATCH` lines of its script.
    pub resources: Vec<JobResources>,
    /// What happened, in order: job states, health, the session's end.
    pub timeline: Vec<TimelineEntry>,
    /// Each client's runs (one per sweep combination) with their metrics.
    pub runs: Vec<ClientRun>,
    /// The sweep points that ran more than once (`repeat`), with their headline
    /// figures across the runs: mean, 95 % interval, coefficient of variation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<crate::workload::repeats::RepeatPoint>,
    /// The clients' load profiles (`load: sweep`, `load: {slo_search: …}`): each run
    /// and what the profile found (the knee, the rate that met the SLOs), from the
    /// client job's `index.json`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ClientProfile>,
    /// The clients' `expect`, checked.
    pub expectations: Vec<ExpectationResult>,
    /// Each service's version, where its driver can ask it (Ollama's `/api/version`).
    #[serde(default)]
    pub service_versions: BTreeMap<String, String>,
    /// What each service job sampled of itself (CPU, memory, GPUs), when monitored.
    pub monitoring: Vec<ServiceMonitoring>,
    /// What the session's Prometheus scraped (a recipe's `monitoring:`): its targets'
    /// health and each query's series, asked of it before it stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<crate::monitoring::Snapshot>,
    /// What went wrong: the session's error, failed jobs, failed requests by kind.
    pub errors: Vec<String>,
    /// Fetched outputs.
    pub results: Vec<ReportResult>,
}

/// The session part of a report.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ReportSession {
    /// Its id.
    pub id: String,
    /// The recipe's name.
    pub name: Option<String>,
    /// The recipe file.
    pub recipe_path: Option<String>,
    /// How it ended.
    pub state: SessionState,
    /// Why it failed.
    pub error: Option<String>,
    /// `slurm` or `local`.
    pub scheduler: String,
    /// Where it ran.
    pub target: String,
    /// Started (RFC 3339).
    pub started_at: String,
    /// Ended (RFC 3339).
    pub finished_at: Option<String>,
    /// Seconds from start to end.
    pub duration_s: Option<f64>,
}

/// A job's resources as submitted.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobResources {
    /// The job's name.
    pub job_name: String,
    /// Its node.
    pub node: Option<String>,
    /// `--partition=cpu`, `--mem=8192M`, ... (the `#SBATCH` options of its script).
    pub sbatch: Vec<String>,
}

/// One event of the session.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct TimelineEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Seconds since the session started.
    pub t_s: f64,
    /// The service or client it concerns, by name.
    pub subject: Option<String>,
    /// What happened (`job.state`, `health.pass`, `session.completed`, ...).
    pub event: String,
    /// Details (`RUNNING on node1`, ...).
    pub detail: Option<String>,
}

/// A service's monitoring series.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ServiceMonitoring {
    /// The service's name.
    pub service: String,
    /// Its samples and their summary.
    pub series: crate::monitor::MonitorSeries,
}

/// One run of a client's workload: its `summary.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClientRun {
    /// The client's name.
    pub client: String,
    /// `results` for a single run, `run-NNN` in a sweep.
    pub run: String,
    /// The run's own parameters (a sweep's combination).
    pub parameters: serde_json::Value,
    /// The summary as the engine wrote it, definitions included.
    pub summary: serde_json::Value,
    /// Requests completed and failed in each second of the run, from its
    /// `requests.jsonl` (empty when the run kept no samples).
    pub per_second: Vec<SecondCounts>,
    /// Histograms of the per-request TTFT and TPOT, ms (LLM runs).
    pub histograms: BTreeMap<String, Vec<Bin>>,
    /// Why its figures cannot be trusted, when they cannot: the service it loaded died
    /// during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid: Option<String>,
    /// What its measured period cost in GPU energy, when the service it loaded was
    /// monitored on GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy: Option<super::energy::Energy>,
    /// What it cost in CPU package energy, when the service it loaded was monitored
    /// on a node whose RAPL counters the job could read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_energy: Option<super::energy::CpuEnergy>,
}

/// What one second of a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SecondCounts {
    /// The second, from the start of the run.
    pub second: u64,
    /// Requests that completed in it.
    pub completed: u64,
    /// Requests that failed in it.
    pub failed: u64,
}

/// One bin of a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Bin {
    /// Its lower edge.
    pub from: f64,
    /// Its upper edge.
    pub to: f64,
    /// Values in `[from, to)` (the last bin includes `to`).
    pub count: u64,
}

/// A report's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// JSON, the whole report.
    Json,
    /// YAML, the whole report (the original tool's `benchmark_report.yaml`).
    Yaml,
    /// Markdown for people: tables of jobs, timeline, metrics, sweeps, expectations.
    Markdown,
    /// One self-contained HTML page: the Markdown's tables and inline SVG charts.
    Html,
}

impl ReportFormat {
    /// The format a file name's extension names.
    ///
    /// # Errors
    /// An extension that names no format.
    pub fn from_path(path: &Path) -> Result<Self, CoreError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        Self::from_name(&ext).ok_or_else(|| {
            CoreError::plan(
                &path.display().to_string(),
                format!("a report is .yaml, .json, .md or .html, not `.{ext}`"),
                Some(
                    "name the file benchmark_report.yaml, report.json, report.md or report.html"
                        .into(),
                ),
            )
        })
    }

    /// `json`, `yaml`/`yml`, `md`/`markdown`, `html`/`htm`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            "md" | "markdown" => Some(Self::Markdown),
            "html" | "htm" => Some(Self::Html),
            _ => None,
        }
    }
}

/// A service of the session.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReportService {
    /// Its id (`svc-…`), as `status` and `service` commands name it.
    pub id: String,
    /// The recipe's name.
    pub name: String,
    /// Its service driver.
    pub driver: String,
    /// How it ended (or where it is, for kept services).
    pub state: ServiceState,
    /// The node it ran on.
    pub host: Option<String>,
    /// The port clients loaded.
    pub port: Option<u16>,
    /// The last health check's answer.
    pub health: Option<String>,
    /// Its recipe as run.
    pub recipe: serde_json::Value,
    /// Recorded (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<&ServiceRow> for ReportService {
    fn from(s: &ServiceRow) -> Self {
        Self {
            id: s.id.clone(),
            name: s.name.clone(),
            driver: s.driver.clone(),
            state: s.state,
            host: s.host.clone(),
            port: s.port,
            health: s.health.clone(),
            recipe: recipe_value(&s.recipe),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// A benchmark client of the session.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ReportClient {
    /// Its id (`cli-…`).
    pub id: String,
    /// The recipe's name.
    pub name: String,
    /// Its workload driver.
    pub driver: String,
    /// How it ended.
    pub state: ClientState,
    /// The service it loaded.
    pub target_service_id: Option<String>,
    /// That service's host.
    pub target_host: Option<String>,
    /// That service's port.
    pub target_port: Option<u16>,
    /// Its recipe as run.
    pub recipe: serde_json::Value,
    /// Recorded (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

impl From<&ClientRow> for ReportClient {
    fn from(c: &ClientRow) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            driver: c.driver.clone(),
            state: c.state,
            target_service_id: c.target_service_id.clone(),
            target_host: c.target_host.clone(),
            target_port: c.target_port,
            recipe: recipe_value(&c.recipe),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A file fetched from a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ReportResult {
    /// The client (or service) it came from, by id.
    pub client_id: String,
    /// `stdout`, `stderr`, `summary`, `monitor` or the result file's name.
    pub name: String,
    /// Where it is on this machine.
    pub path: String,
    /// Its size.
    pub bytes: u64,
    /// Fetched (RFC 3339).
    pub fetched_at: String,
}

impl From<&ResultRow> for ReportResult {
    fn from(r: &ResultRow) -> Self {
        Self {
            client_id: r.client_id.clone(),
            name: r.name.clone(),
            path: r.path.clone(),
            bytes: u64::try_from(r.bytes).unwrap_or(0),
            fetched_at: rfc3339(r.created_at),
        }
    }
}

/// A recipe as the store keeps it (JSON text), as the report shows it: a value, its
/// secrets redacted ([`orchestrator_recipes::redact_secrets`]).
pub(super) fn recipe_value(text: &str) -> serde_json::Value {
    let mut value =
        serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()));
    orchestrator_recipes::redact_secrets(&mut value);
    value
}

impl SessionReport {
    /// Reads a report written by this or an earlier orchestrator: version 3 as it is,
    /// version 2 (the state store's rows, recipes as JSON text, times in milliseconds)
    /// turned into version 3.
    ///
    /// # Errors
    /// Text that is not a report of a version this orchestrator reads, as a message.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        match value
            .get("report_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(3) => {}
            Some(2) => upgrade_v2(&mut value),
            Some(other) => {
                return Err(format!(
                    "report version {other}; this orchestrator reads versions 2 and 3"
                ));
            }
            None => return Err("no `report_version`: not a session report".into()),
        }
        serde_json::from_value(value).map_err(|e| e.to_string())
    }
}

/// Version 2 → 3: services, clients and results lose their database ids, recipes
/// become values, millisecond times become RFC 3339.
fn upgrade_v2(report: &mut serde_json::Value) {
    use serde_json::Value;
    let time = |v: &mut Value| {
        if let Some(ms) = v.as_i64() {
            *v = Value::String(rfc3339(ms));
        }
    };
    for list in ["services", "clients"] {
        for row in report
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(row) = row.as_object_mut() else {
                continue;
            };
            row.remove("session_id");
            if let Some(recipe) = row.get_mut("recipe") {
                if let Some(text) = recipe.as_str() {
                    *recipe = recipe_value(text);
                }
            }
            for key in ["created_at", "updated_at"] {
                if let Some(v) = row.get_mut(key) {
                    time(v);
                }
            }
        }
    }
    for row in report
        .get_mut("results")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let Some(row) = row.as_object_mut() else {
            continue;
        };
        row.remove("id");
        row.remove("session_id");
        if let Some(mut at) = row.remove("created_at") {
            time(&mut at);
            row.insert("fetched_at".into(), at);
        }
    }
    report["report_version"] = Value::from(3);
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
            submitted_at: j.submitted_at.map(rfc3339),
            ended_at: j.ended_at.map(rfc3339),
            job_dir: j.job_dir.clone(),
        }
    }
}

/// A client's load profile and what it found.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClientProfile {
    /// The client.
    pub client: String,
    /// `workload::profile::Outcome`, as the job wrote it.
    pub outcome: serde_json::Value,
}
