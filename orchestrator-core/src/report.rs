//! The session report: what ran where, how it ended, and where its outputs are.
//! Written as `report.json` at the end of every session (also a failed one).

use std::path::Path;

use serde::Serialize;

use crate::CoreError;
use crate::orchestrator::BenchmarkOrchestrator;
use crate::session::JobSummary;
use crate::state::{ClientRow, ResultRow, ServiceRow};
use crate::util::{now_ms, rfc3339};

/// Bumped when the report's shape changes incompatibly.
pub const REPORT_VERSION: u32 = 1;

/// A session's report.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// The report format's version.
    pub report_version: u32,
    /// The orchestrator that wrote it.
    pub orchestrator_version: &'static str,
    /// When (RFC 3339).
    pub generated_at: String,
    /// The session.
    pub session: ReportSession,
    /// The recipe as run.
    pub recipe: serde_json::Value,
    /// Its services.
    pub services: Vec<ServiceRow>,
    /// Its clients.
    pub clients: Vec<ClientRow>,
    /// Its jobs, with times.
    pub jobs: Vec<JobSummary>,
    /// Fetched outputs.
    pub results: Vec<ResultRow>,
}

/// The session part of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSession {
    /// Its id.
    pub id: String,
    /// The recipe's name.
    pub name: Option<String>,
    /// The recipe file.
    pub recipe_path: Option<String>,
    /// How it ended.
    pub state: String,
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

impl SessionReport {
    /// Builds the report of a session from the state store.
    ///
    /// # Errors
    /// An unknown session, or the store failing.
    pub fn build(orch: &BenchmarkOrchestrator, session_id: &str) -> Result<Self, CoreError> {
        let state = orch.state();
        let s = state
            .session(session_id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "session",
                id: session_id.to_owned(),
            })?;
        let jobs = state
            .jobs(Some(session_id))?
            .iter()
            .map(JobSummary::from)
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let duration_s = s.finished_at.map(|f| (f - s.created_at) as f64 / 1000.0);
        Ok(Self {
            report_version: REPORT_VERSION,
            orchestrator_version: env!("CARGO_PKG_VERSION"),
            generated_at: rfc3339(now_ms()),
            session: ReportSession {
                id: s.id.clone(),
                name: s.name,
                recipe_path: s.recipe_path,
                state: s.state,
                error: s.error,
                scheduler: s.scheduler,
                target: s.target,
                started_at: rfc3339(s.created_at),
                finished_at: s.finished_at.map(rfc3339),
                duration_s,
            },
            recipe: serde_json::from_str(&s.recipe).unwrap_or(serde_json::Value::Null),
            services: state.services(Some(session_id))?,
            clients: state.clients(Some(session_id))?,
            jobs,
            results: state.results(session_id)?,
        })
    }

    /// Writes the report: YAML for `.yaml`/`.yml`, JSON otherwise.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), CoreError> {
        let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        let text = if yaml {
            serde_yaml::to_string(self).expect("reports serialise")
        } else {
            let mut t = serde_json::to_string_pretty(self).expect("reports serialise");
            t.push('\n');
            t
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(CoreError::io(format!("cannot create {}", dir.display())))?;
        }
        std::fs::write(path, text)
            .map_err(CoreError::io(format!("cannot write {}", path.display())))
    }
}
