//! The session's Prometheus, from the runner's side: the targets no job of the session
//! registers (hosts, services that ran already) written before anything starts, and
//! at the end a snapshot of what it scraped, asked of its HTTP API before it stops.

use std::path::Path;
use std::time::Duration;

use crate::backend::Tracked;
use crate::error::CoreError;
use crate::monitoring::{self, QuerySeries, Snapshot};
use crate::plan::Plan;
use crate::runner::Runner;

/// The most points a series keeps (the step grows for long sessions).
const MAX_POINTS: f64 = 500.0;
/// The most bytes one answer of Prometheus may have.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

impl Runner<'_> {
    /// Writes `static.json` into the session's target directory: the targets on hosts
    /// and on services outside the recipe, found on their nodes when the session was
    /// planned ([`crate::monitoring::resolve_external`]).
    ///
    /// # Errors
    /// The cluster failing.
    pub(crate) async fn write_static_targets(&self, plan: &Plan) -> Result<(), CoreError> {
        let Some(m) = &plan.monitoring else {
            return Ok(());
        };
        let resolved: Vec<(String, &orchestrator_recipes::ScrapeTarget)> = m
            .external
            .iter()
            .filter_map(|t| Some((t.host.clone()?, t)))
            .collect();
        if resolved.is_empty() {
            return Ok(());
        }
        let dir = self.backend.job_dir(&plan.session_id, ".targets").await?;
        let text = monitoring::static_targets(&plan.session_id, &resolved);
        self.backend
            .shell()
            .write_file(&format!("{dir}/static.json"), text.as_bytes())
            .await?;
        Ok(())
    }

    /// Asks the session's Prometheus, which still runs, for every target's health and
    /// each query's series since the session started; stores them as
    /// `prometheus.json` in `results_dir` (a result of the Prometheus service) with
    /// Grafana's provisioning in `grafana/`. Best effort: what fails is said in the
    /// snapshot, and the session goes on to its end.
    pub(crate) async fn snapshot(&self, plan: &Plan, tracked: &[Tracked], results_dir: &Path) {
        let Some(m) = &plan.monitoring else {
            return;
        };
        let service = &plan.services[m.service];
        let Some(job) = tracked.get(m.service).filter(|t| !t.ended()) else {
            let _ = self.backend.state().event(
                Some(&plan.session_id),
                Some(&service.id),
                "monitoring.snapshot",
                Some("the session's Prometheus was not running at the end: nothing to ask"),
            );
            return;
        };
        let host = job.node().unwrap_or("localhost").to_owned();
        let port = service.recipe.ports.first().copied().unwrap_or(9090);
        let end = crate::util::now_ms() as f64 / 1000.0;
        let start = self
            .backend
            .state()
            .existing_session(&plan.session_id)
            .map_or(end - 3600.0, |s| s.created_at as f64 / 1000.0);
        let interval = m.interval.as_secs_f64();
        let step = interval.max((end - start) / MAX_POINTS).ceil();
        let mut snapshot = Snapshot {
            prometheus: format!("{host}:{port}"),
            scrape_interval_s: interval,
            start,
            end,
            step_s: step,
            ..Snapshot::default()
        };
        let get = |path: String| {
            let host = host.clone();
            async move {
                let (code, body) = crate::health::http_get_limited(
                    self.backend.shell().as_ref(),
                    &host,
                    port,
                    &path,
                    Duration::from_secs(30),
                    MAX_ANSWER,
                )
                .await?;
                if code == 200 || code == 400 || code == 422 {
                    Ok(body)
                } else {
                    Err(format!(
                        "HTTP {code}: {}",
                        body.chars().take(200).collect::<String>()
                    ))
                }
            }
        };
        if let Ok(body) = get("/api/v1/status/buildinfo".into()).await {
            snapshot.version = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["data"]["version"].as_str().map(str::to_owned));
        }
        match get("/api/v1/targets?state=active".into()).await {
            Ok(body) => match monitoring::parse_targets(&body) {
                Ok(targets) => snapshot.targets = targets,
                Err(e) => snapshot.errors.push(format!("targets: {e}")),
            },
            Err(e) => snapshot.errors.push(format!("targets: {e}")),
        }
        for (name, query) in &m.queries {
            let path = format!(
                "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step}",
                monitoring::url_encode(query)
            );
            let answer = get(path).await.and_then(|b| monitoring::parse_matrix(&b));
            let (series, error) = match answer {
                Ok(series) => (series, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            snapshot.queries.push(QuerySeries {
                name: name.clone(),
                query: query.clone(),
                series,
                error,
            });
        }
        let path = results_dir.join("prometheus.json");
        let text = serde_json::to_string_pretty(&snapshot).expect("snapshots serialise");
        if std::fs::write(&path, &text).is_ok() {
            let _ = self.backend.state().add_result(
                &plan.session_id,
                &service.id,
                "prometheus",
                &path.display().to_string(),
                i64::try_from(text.len()).unwrap_or(i64::MAX),
            );
        }
        let grafana = results_dir.join("grafana");
        let url = format!("http://{host}:{port}");
        let dashboards = grafana.join("dashboards").display().to_string();
        for (file, content) in
            monitoring::grafana_files(&snapshot, &plan.session_id, &url, &dashboards)
        {
            let file = grafana.join(file);
            if let Some(parent) = file.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&file, content);
        }
        let series: usize = snapshot.queries.iter().map(|q| q.series.len()).sum();
        self.progress
            .event(&crate::session::SessionEvent::Monitored {
                prometheus: snapshot.prometheus.clone(),
                targets: snapshot.targets.len(),
                series,
                problems: snapshot.problems(),
                dir: results_dir.display().to_string(),
            });
        let _ = self.backend.state().event(
            Some(&plan.session_id),
            Some(&service.id),
            "monitoring.snapshot",
            Some(&format!(
                "Prometheus {}: {} targets, {series} series of {} queries{}",
                snapshot.prometheus,
                snapshot.targets.len(),
                snapshot.queries.len(),
                if snapshot.errors.is_empty() {
                    String::new()
                } else {
                    format!("; {}", snapshot.errors.join("; "))
                }
            )),
        );
    }
}

/// Finds the node of every monitoring target that names a service outside the recipe
/// (by id, or name) among `services` of other sessions that run on a node, and writes
/// it as the target's `host`.
///
/// # Errors
/// A target naming no such service: the message lists those that run.
pub(crate) fn resolve_external(
    plan: &mut Plan,
    services: &[crate::state::ServiceRow],
    file: &str,
) -> Result<(), CoreError> {
    let session = plan.session_id.clone();
    let Some(m) = plan.monitoring.as_mut() else {
        return Ok(());
    };
    let running: Vec<&crate::state::ServiceRow> = services
        .iter()
        .filter(|s| s.session_id != session && !s.state.is_final() && s.host.is_some())
        .collect();
    for t in m.external.iter_mut().filter(|t| t.host.is_none()) {
        let Some(name) = t.service.clone() else {
            continue;
        };
        let found = running.iter().find(|s| s.id == name).or_else(|| {
            let mut by_name = running.iter().filter(|s| s.name == name);
            match (by_name.next(), by_name.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        });
        let Some(found) = found else {
            let known: Vec<String> = running
                .iter()
                .map(|s| {
                    format!(
                        "{} ({} on {})",
                        s.id,
                        s.name,
                        s.host.as_deref().unwrap_or("?")
                    )
                })
                .collect();
            return Err(CoreError::plan(
                file,
                format!(
                    "the monitoring target `{name}` is no service of this recipe and no service that runs (nothing was submitted)"
                ),
                Some(if known.is_empty() {
                    "no service runs now: start it first (`orchestrator run` its recipe, which with no clients keeps it up), or name a service of this recipe, or give the target a `host:`".into()
                } else {
                    format!(
                        "services that run now: {}; name one by its id, or name a service of this recipe, or give the target a `host:`",
                        known.join(", ")
                    )
                }),
            ));
        };
        t.host.clone_from(&found.host);
    }
    Ok(())
}
