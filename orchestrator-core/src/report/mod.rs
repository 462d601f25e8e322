//! The session report: what ran where, how it ended, and where its outputs are.
//! Written as `report.json` at the end of every session (also a failed one).

use std::collections::BTreeMap;
use std::path::Path;

use orchestrator_slurm::JobState;

mod energy;
mod html;
mod markdown;
mod types;

pub use html::{DeploymentChart, deployments_html};
pub use types::{
    Bin, ClientRun, JobResources, JobSummary, REPORT_VERSION, ReportClient, ReportFormat,
    ReportResult, ReportService, ReportSession, SecondCounts, ServiceMonitoring, SessionReport,
    TimelineEntry,
};

use crate::error::CoreError;
use crate::lifecycle::JobRecordState;
use crate::state::StateStore;
use crate::util::{now_ms, rfc3339};

/// Twenty equal bins over the values' range.
fn histogram(values: &[f64]) -> Vec<Bin> {
    const BINS: usize = 20;
    let (Some(lo), Some(hi)) = (
        values.iter().copied().reduce(f64::min),
        values.iter().copied().reduce(f64::max),
    ) else {
        return Vec::new();
    };
    let width = ((hi - lo) / BINS as f64).max(f64::EPSILON);
    let mut bins: Vec<Bin> = (0..BINS)
        .map(|i| Bin {
            from: lo + width * i as f64,
            to: lo + width * (i + 1) as f64,
            count: 0,
        })
        .collect();
    for v in values {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let i = (((v - lo) / width) as usize).min(BINS - 1);
        bins[i].count += 1;
    }
    bins
}

/// Each run's GPU and CPU package energy, from the monitoring of the service its
/// client loaded.
fn joule(
    runs: &mut [ClientRun],
    clients: &[crate::state::ClientRow],
    names: &BTreeMap<&str, &str>,
    monitoring: &[ServiceMonitoring],
) {
    for run in runs {
        let Some(window) = run
            .summary
            .get("measured_window_unix_s")
            .and_then(|w| serde_json::from_value::<[f64; 2]>(w.clone()).ok())
        else {
            continue;
        };
        let target = clients
            .iter()
            .find(|c| c.name == run.client)
            .and_then(|c| c.target_service_id.as_deref())
            .and_then(|id| names.get(id));
        let Some(series) = target.and_then(|t| monitoring.iter().find(|m| m.service == *t)) else {
            continue;
        };
        let count = |k: &str| run.summary.get(k).and_then(serde_json::Value::as_u64);
        let (requests, tokens) = (
            count("requests_completed").unwrap_or(0),
            count("output_tokens"),
        );
        run.energy = energy::of(&series.series.gpus, window, requests, tokens);
        run.cpu_energy = energy::cpu_of(&series.series.rapl, window, requests, tokens);
    }
}

/// Each client's load profile: the `profile` of the `index.json` beside its runs.
fn profiles(
    results: &[crate::state::ResultRow],
    names: &BTreeMap<&str, &str>,
) -> Vec<types::ClientProfile> {
    let mut seen = std::collections::BTreeSet::new();
    let mut found = Vec::new();
    for row in results.iter().filter(|r| r.name == "summary") {
        let Some(dir) = Path::new(&row.path).parent().and_then(Path::parent) else {
            continue;
        };
        if !seen.insert(dir.to_path_buf()) {
            continue;
        }
        let index: Option<serde_json::Value> = std::fs::read_to_string(dir.join("index.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(outcome) =
            index.and_then(|mut i| i.get_mut("profile").map(serde_json::Value::take))
        {
            found.push(types::ClientProfile {
                client: names
                    .get(row.client_id.as_str())
                    .map_or(row.client_id.as_str(), |n| n)
                    .to_owned(),
                outcome,
            });
        }
    }
    found
}

/// Per-second counts and TTFT/TPOT histograms of a run's `requests.jsonl`.
fn request_series(path: &Path) -> (Vec<SecondCounts>, BTreeMap<String, Vec<Bin>>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), BTreeMap::new());
    };
    let mut seconds: BTreeMap<u64, SecondCounts> = BTreeMap::new();
    let (mut ttft, mut tpot) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(r) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if r.get("warmup") == Some(&serde_json::Value::Bool(true)) {
            continue;
        }
        let second = r
            .get("end_us")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
            / 1_000_000;
        let entry = seconds.entry(second).or_insert(SecondCounts {
            second,
            completed: 0,
            failed: 0,
        });
        if r.get("error").is_some_and(|e| !e.is_null()) {
            entry.failed += 1;
        } else {
            entry.completed += 1;
            ttft.extend(r.get("ttft_ms").and_then(serde_json::Value::as_f64));
            tpot.extend(r.get("tpot_ms").and_then(serde_json::Value::as_f64));
        }
    }
    let mut histograms = BTreeMap::new();
    for (name, values) in [("ttft_ms", ttft), ("tpot_ms", tpot)] {
        if !values.is_empty() {
            histograms.insert(name.to_owned(), histogram(&values));
        }
    }
    (seconds.into_values().collect(), histograms)
}

impl SessionReport {
    /// Builds the report of a session from the state store and the summaries it
    /// recorded.
    ///
    /// # Errors
    /// An unknown session, or the store failing.
    pub fn build(state: &StateStore, session_id: &str) -> Result<Self, CoreError> {
        let s = state.existing_session(session_id)?;
        let job_rows = state.jobs(Some(session_id))?;
        let services = state.services(Some(session_id))?;
        let clients = state.clients(Some(session_id))?;
        let results = state.results(session_id)?;
        let names: BTreeMap<&str, &str> = services
            .iter()
            .map(|r| (r.id.as_str(), r.name.as_str()))
            .chain(clients.iter().map(|c| (c.id.as_str(), c.name.as_str())))
            .collect();
        let mut events = state.events(Some(session_id), None, 10_000)?;
        events.sort_by_key(|e| e.id);
        #[allow(clippy::cast_precision_loss)]
        let timeline = events
            .iter()
            .map(|e| TimelineEntry {
                at: rfc3339(e.at),
                t_s: (e.at - s.created_at) as f64 / 1000.0,
                subject: e
                    .subject
                    .as_deref()
                    .map(|id| names.get(id).map_or(id, |n| n).to_owned()),
                event: e.action.clone(),
                detail: e.detail.clone(),
            })
            .collect();
        let resources = job_rows
            .iter()
            .map(|j| JobResources {
                job_name: j.job_name.clone(),
                node: j.node.clone(),
                sbatch: j
                    .script
                    .lines()
                    .filter_map(|l| l.strip_prefix("#SBATCH "))
                    .map(|l| l.trim().to_owned())
                    .collect(),
            })
            .collect();
        // Services that died while their clients ran, and what was said of each.
        let deaths: BTreeMap<&str, String> = events
            .iter()
            .filter(|e| e.action == "service.died")
            .filter_map(|e| {
                let id = e.subject.as_deref()?;
                let name = names.get(id).map_or(id, |n| n);
                Some((id, format!("service `{name}` {}", e.detail.as_deref()?)))
            })
            .collect();
        let invalid = |client_id: &str| {
            let target = clients
                .iter()
                .find(|c| c.id == client_id)?
                .target_service_id
                .as_deref()?;
            deaths.get(target).cloned()
        };
        let mut runs = Vec::new();
        for row in results.iter().filter(|r| r.name == "summary") {
            let Ok(text) = std::fs::read_to_string(&row.path) else {
                continue;
            };
            let summary: serde_json::Value =
                serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            let (per_second, histograms) =
                request_series(&Path::new(&row.path).with_file_name("requests.jsonl"));
            runs.push(ClientRun {
                per_second,
                histograms,
                client: names
                    .get(row.client_id.as_str())
                    .map_or(row.client_id.as_str(), |n| n)
                    .to_owned(),
                run: Path::new(&row.path)
                    .parent()
                    .and_then(Path::file_name)
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                parameters: summary
                    .get("parameters")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
                // A run some replica did not complete is not the whole load.
                invalid: invalid(&row.client_id).or_else(|| {
                    let problems = summary.get("replica_problems")?.as_array()?;
                    let text: Vec<&str> = problems
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .collect();
                    Some(text.join("; "))
                }),
                summary,
                energy: None,
                cpu_energy: None,
            });
        }
        let profiles = profiles(&results, &names);
        let expectations =
            crate::expect::session_expectations(&clients, &results, s.max_error_rate())?;
        let service_versions = events
            .iter()
            .filter(|e| e.action == "service.version")
            .filter_map(|e| {
                let id = e.subject.as_deref()?;
                Some((
                    names.get(id).map_or(id, |n| n).to_owned(),
                    e.detail.clone()?,
                ))
            })
            .collect();
        let monitoring: Vec<ServiceMonitoring> = results
            .iter()
            .filter(|r| r.name == "monitor")
            .filter_map(|r| {
                let text = std::fs::read_to_string(&r.path).ok()?;
                Some(ServiceMonitoring {
                    service: names
                        .get(r.client_id.as_str())
                        .map_or(r.client_id.as_str(), |n| n)
                        .to_owned(),
                    series: crate::monitor::parse_monitor(&text),
                })
            })
            .collect();
        joule(&mut runs, &clients, &names, &monitoring);
        let prometheus = results
            .iter()
            .filter(|r| r.name == "prometheus")
            .find_map(|r| serde_json::from_str(&std::fs::read_to_string(&r.path).ok()?).ok());
        let mut errors: Vec<String> = s.error.iter().cloned().collect();
        for j in &job_rows {
            if matches!(j.exit_code, Some(code) if code != 0)
                || j.state == JobRecordState::Scheduler(JobState::Failed)
            {
                errors.push(format!(
                    "{}: job {} {} with exit code {}",
                    j.job_name,
                    j.job_id.as_deref().unwrap_or("-"),
                    j.state,
                    j.exit_code
                        .map_or_else(|| "-".to_owned(), |c| c.to_string())
                ));
            }
        }
        for run in &runs {
            if let Some(kinds) = run.summary.get("errors").and_then(|e| e.as_object()) {
                for (kind, count) in kinds {
                    errors.push(format!("{} {}: {count} × {kind}", run.client, run.run));
                }
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let duration_s = s.finished_at.map(|f| (f - s.created_at) as f64 / 1000.0);
        Ok(Self {
            report_version: REPORT_VERSION,
            orchestrator_version: env!("CARGO_PKG_VERSION").to_owned(),
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
            recipe: match types::recipe_value(&s.recipe) {
                serde_json::Value::String(_) => serde_json::Value::Null,
                recipe => recipe,
            },
            recipe_sha256: sha256_hex(s.recipe.as_bytes()),
            services: services.iter().map(ReportService::from).collect(),
            clients: clients.iter().map(ReportClient::from).collect(),
            jobs: job_rows.iter().map(JobSummary::from).collect(),
            resources,
            timeline,
            repeats: crate::workload::repeats::points(
                &runs
                    .iter()
                    .map(|r| crate::workload::repeats::RunOf {
                        client: &r.client,
                        run: &r.run,
                        parameters: &r.parameters,
                        summary: &r.summary,
                    })
                    .collect::<Vec<_>>(),
            ),
            runs,
            profiles,
            expectations,
            service_versions,
            monitoring,
            prometheus,
            errors,
            results: results.iter().map(ReportResult::from).collect(),
        })
    }

    /// The report in `format`.
    #[must_use]
    pub fn render(&self, format: ReportFormat) -> String {
        match format {
            ReportFormat::Json => {
                let mut t = serde_json::to_string_pretty(self).expect("reports serialise");
                t.push('\n');
                t
            }
            ReportFormat::Yaml => serde_yaml::to_string(self).expect("reports serialise"),
            ReportFormat::Markdown => markdown::markdown(self),
            ReportFormat::Html => html::html(self),
        }
    }

    /// Writes the report in the format its extension names (`.yaml`/`.yml`, `.json`,
    /// `.md`, `.html`).
    ///
    /// # Errors
    /// Another extension, or the file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), CoreError> {
        self.write_as(path, ReportFormat::from_path(path)?)
    }

    /// Writes the report in `format`, whatever the file is called.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_as(&self, path: &Path, format: ReportFormat) -> Result<(), CoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(CoreError::io(format!("cannot create {}", dir.display())))?;
        }
        std::fs::write(path, self.render(format))
            .map_err(CoreError::io(format!("cannot write {}", path.display())))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
