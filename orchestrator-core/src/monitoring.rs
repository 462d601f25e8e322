//! Prometheus for a whole session (a recipe's `monitoring:`).
//!
//! Planning adds the session's Prometheus (or takes the recipe's own), and gives every
//! job a [`Registration`]: once it runs and knows its node, the job writes its target
//! files into the session's `.targets` directory, which Prometheus re-reads
//! (`file_sd_configs`), and starts a node exporter there. Every workload client gets a
//! live metrics endpoint (`metrics_port`). Before the services are stopped, the runner
//! asks Prometheus's HTTP API for the series of the session and stores them, with the
//! targets' health, beside the report ([`Snapshot`]); Grafana's provisioning files
//! are written next to it, for a Grafana elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use orchestrator_recipes::{ScrapeTarget, ServiceRecipe, SessionMonitoring};
use orchestrator_slurm::{Registration, TargetFile};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The session's target directory, relative to every job's directory
/// (`WORK/SESSION/NAME`): `WORK/SESSION/.targets`, which no job's name can be.
pub const TARGETS_DIR: &str = "../.targets";
/// The first live metrics port of workload clients that name none.
pub const FIRST_METRICS_PORT: u16 = 9464;
/// The scrape interval when the recipe names none.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// The name of the Prometheus service added when the recipe names none of its own.
pub const DEFAULT_SERVICE: &str = "prometheus";

/// The session's monitoring, planned.
#[derive(Debug, Clone)]
pub struct MonitoringPlan {
    /// Index of the Prometheus in [`crate::Plan::services`].
    pub service: usize,
    /// How often everything is scraped.
    pub interval: Duration,
    /// The node exporter's port, when one runs beside every job.
    pub node_exporter: Option<u16>,
    /// Targets on hosts, or on services that run already (named by id): the runner
    /// writes them before anything starts.
    pub external: Vec<ScrapeTarget>,
    /// What goes into the report: a name and a PromQL query each.
    pub queries: Vec<(String, String)>,
}

/// The service added for `monitoring:` when the recipe names none.
#[must_use]
pub fn default_service() -> ServiceRecipe {
    serde_json::from_value(json!({
        "name": DEFAULT_SERVICE,
        "description": "the session's Prometheus (monitoring: prometheus)",
        "type": "prometheus",
        "ports": [9090],
        "resources": {"cpus": 1, "memory": "1G"},
        "monitor": {"enabled": false},
    }))
    .expect("the default Prometheus service is a valid recipe")
}

/// The built-in queries, for rates over `window`: the targets' health, the clients'
/// requests and latency, the nodes' CPU, memory and network.
#[must_use]
pub fn builtin_queries(window: Duration) -> Vec<(String, String)> {
    let w = format!("{}s", window.as_secs().max(1));
    [
        ("targets up", "up".to_owned()),
        (
            "client requests/s",
            format!("sum by (client, outcome) (rate(orchestrator_requests_total[{w}]))"),
        ),
        (
            "client requests (total)",
            "sum by (client, outcome) (orchestrator_requests_total)".to_owned(),
        ),
        (
            "client latency p99 (s)",
            format!(
                "histogram_quantile(0.99, sum by (client, le) (rate(orchestrator_request_duration_seconds_bucket[{w}])))"
            ),
        ),
        (
            "node CPU busy (%)",
            format!(
                "100 * (1 - avg by (node) (rate(node_cpu_seconds_total{{mode=\"idle\"}}[{w}])))"
            ),
        ),
        (
            "node memory available (bytes)",
            "sum by (node) (node_memory_MemAvailable_bytes)".to_owned(),
        ),
        (
            "node network received (bytes/s)",
            format!(
                "sum by (node) (rate(node_network_receive_bytes_total{{device!=\"lo\"}}[{w}]))"
            ),
        ),
        (
            "node network sent (bytes/s)",
            format!(
                "sum by (node) (rate(node_network_transmit_bytes_total{{device!=\"lo\"}}[{w}]))"
            ),
        ),
    ]
    .into_iter()
    .map(|(n, q)| (n.to_owned(), q))
    .collect()
}

impl MonitoringPlan {
    /// The plan of `spec` for the Prometheus at `service`.
    #[must_use]
    pub fn new(spec: &SessionMonitoring, service: usize, external: Vec<ScrapeTarget>) -> Self {
        let interval = spec
            .scrape_interval
            .map_or(DEFAULT_INTERVAL, orchestrator_recipes::Duration::to_std)
            .max(Duration::from_secs(1));
        let mut queries = builtin_queries(interval * 5);
        queries.extend(spec.queries.iter().map(|q| (q.clone(), q.clone())));
        Self {
            service,
            interval,
            node_exporter: spec.node_exporter.then_some(spec.node_exporter_port),
            external,
            queries,
        }
    }

    /// What a job registers: the node exporter of its node, and `files`.
    #[must_use]
    pub fn registration(&self, session_id: &str, files: Vec<TargetFile>) -> Registration {
        let mut files = files;
        if let Some(port) = self.node_exporter {
            files.push(target_file(
                vec!["node-".into(), ".json".into()],
                port,
                &[("job", "node"), ("session", session_id)],
                None,
                true,
            ));
        }
        Registration {
            dir: TARGETS_DIR.into(),
            files,
            node_exporter: self.node_exporter,
        }
    }
}

/// A target file for `NODE:port` with `labels` (and the node's name as label `node`
/// when `node_label`), where `name` is the file's name in pieces.
#[must_use]
pub fn target_file(
    name: Vec<String>,
    port: u16,
    labels: &[(&str, &str)],
    path: Option<&str>,
    node_label: bool,
) -> TargetFile {
    // No name, label or path of a recipe holds it, and JSON leaves it as it is.
    const NODE: &str = "\u{fffe}NODE\u{fffe}";
    let mut map: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if node_label {
        map.insert("node".into(), NODE.into());
    }
    if let Some(path) = path {
        map.insert("__metrics_path__".into(), path.to_owned());
    }
    let text = serde_json::to_string(&json!([{
        "targets": [format!("{NODE}:{port}")],
        "labels": map,
    }]))
    .expect("target files serialise");
    TargetFile {
        name,
        json: text.split(NODE).map(str::to_owned).collect(),
    }
}

/// The target file of a service of the session named by `targets`.
#[must_use]
pub fn service_targets(
    session_id: &str,
    service: &str,
    targets: &[&ScrapeTarget],
) -> Vec<TargetFile> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let job = t.job_name.as_deref().unwrap_or(service);
            target_file(
                vec![format!("service-{service}-{i}.json")],
                t.port,
                &[("job", job), ("service", service), ("session", session_id)],
                t.path.as_deref(),
                true,
            )
        })
        .collect()
}

/// The target file of a workload client's live metrics on `port`.
#[must_use]
pub fn client_target(session_id: &str, client: &str, port: u16) -> TargetFile {
    target_file(
        vec![format!("client-{client}.json")],
        port,
        &[
            ("job", "client"),
            ("client", client),
            ("session", session_id),
        ],
        None,
        true,
    )
}

/// `static.json`: the targets on hosts and running services, as `(host, target)`.
#[must_use]
pub fn static_targets(session_id: &str, resolved: &[(String, &ScrapeTarget)]) -> String {
    let entries: Vec<serde_json::Value> = resolved
        .iter()
        .map(|(host, t)| {
            let mut labels = BTreeMap::from([
                (
                    "job".to_owned(),
                    t.job_name.clone().unwrap_or_else(|| "targets".into()),
                ),
                ("session".to_owned(), session_id.to_owned()),
                ("node".to_owned(), host.clone()),
            ]);
            if let Some(service) = &t.service {
                labels.insert("service".into(), service.clone());
            }
            if let Some(path) = &t.path {
                labels.insert("__metrics_path__".into(), path.clone());
            }
            json!({"targets": [format!("{host}:{}", t.port)], "labels": labels})
        })
        .collect();
    serde_json::to_string_pretty(&entries).expect("target files serialise")
}

/// What Prometheus scraped during a session, asked of its HTTP API before it stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Where Prometheus answered (`NODE:PORT`).
    pub prometheus: String,
    /// Its version, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The scrape interval, seconds.
    pub scrape_interval_s: f64,
    /// The range asked for, Unix seconds.
    pub start: f64,
    /// Its end.
    pub end: f64,
    /// The step between points, seconds.
    pub step_s: f64,
    /// Every target Prometheus scraped, with its health at the end.
    pub targets: Vec<TargetHealth>,
    /// Each query's series.
    pub queries: Vec<QuerySeries>,
    /// What went wrong while asking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// One scrape target as Prometheus saw it last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TargetHealth {
    /// Its `job` label.
    pub job: String,
    /// Its `instance` label (`HOST:PORT`).
    pub instance: String,
    /// `up`, `down` or `unknown`.
    pub health: String,
    /// The last scrape's error, if it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Its other labels (`node`, `client`, `service`, `session`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A query's answer over the session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuerySeries {
    /// What it shows.
    pub name: String,
    /// The PromQL.
    pub query: String,
    /// Its series.
    pub series: Vec<Series>,
    /// Why there is no answer, when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One series: its labels and its `[unix seconds, value]` points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Series {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its points.
    pub values: Vec<(f64, f64)>,
}

impl Series {
    /// Its labels as a report shows them, `key=value` each: without the metric's name
    /// and the session (the same in every series of a report).
    #[must_use]
    pub fn shown_labels(&self) -> Vec<String> {
        self.labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "session" | "__name__"))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

impl Snapshot {
    /// What the snapshot lacks, each as a sentence: the questions Prometheus did not
    /// answer, and every target it never once scraped (a target of a client that has
    /// ended is down at the end, and that is as it should be).
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("Prometheus could not be asked: {e}"))
            .collect();
        for q in &self.queries {
            if let Some(e) = &q.error {
                problems.push(format!("Prometheus refused the query `{}`: {e}", q.query));
            }
        }
        for t in self.targets.iter().filter(|t| !self.ever_up(t)) {
            problems.push(format!(
                "Prometheus never scraped {} (job {}){}",
                t.instance,
                t.job,
                if t.last_error.is_empty() {
                    String::new()
                } else {
                    format!(": {}", t.last_error)
                }
            ));
        }
        problems
    }

    /// Whether `target`'s `up` series was 1 at some point of the session.
    #[must_use]
    pub fn ever_up(&self, target: &TargetHealth) -> bool {
        target.health == "up"
            || self
                .queries
                .iter()
                .filter(|q| q.query == "up")
                .flat_map(|q| &q.series)
                .filter(|s| {
                    s.labels.get("instance") == Some(&target.instance)
                        && s.labels.get("job") == Some(&target.job)
                })
                .any(|s| s.values.iter().any(|(_, v)| *v == 1.0))
    }

    /// The points of all series of the query called `name`.
    #[must_use]
    pub fn points(&self, name: &str) -> usize {
        self.queries
            .iter()
            .filter(|q| q.name == name)
            .flat_map(|q| &q.series)
            .map(|s| s.values.len())
            .sum()
    }
}

/// A JSON object of strings (Prometheus's labels) as a map; anything else is empty.
fn string_map(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads Prometheus's `/api/v1/targets` answer.
///
/// # Errors
/// An answer that is not Prometheus's.
pub fn parse_targets(body: &str) -> Result<Vec<TargetHealth>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("status {}: {}", v["status"], v["error"]));
    }
    let active = v["data"]["activeTargets"]
        .as_array()
        .ok_or("no data.activeTargets")?;
    Ok(active
        .iter()
        .map(|t| {
            let labels = string_map(&t["labels"]);
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            TargetHealth {
                job: get("job"),
                instance: get("instance"),
                health: t["health"].as_str().unwrap_or("unknown").to_owned(),
                last_error: t["lastError"].as_str().unwrap_or_default().to_owned(),
                labels: labels
                    .iter()
                    .filter(|(k, _)| *k != "job" && *k != "instance")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        })
        .collect())
}

/// Reads a `/api/v1/query_range` answer (a matrix).
///
/// # Errors
/// An answer that is not Prometheus's, or Prometheus's own error (a bad query).
pub fn parse_matrix(body: &str) -> Result<Vec<Series>, String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("no reason given")
        ));
    }
    let result = v["data"]["result"].as_array().ok_or("no data.result")?;
    Ok(result
        .iter()
        .map(|s| Series {
            labels: string_map(&s["metric"]),
            values: s["values"]
                .as_array()
                .map(|points| {
                    points
                        .iter()
                        .filter_map(|p| {
                            let t = p[0].as_f64()?;
                            let v = p[1].as_str()?.parse::<f64>().ok()?;
                            Some((t, v))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// `text` percent-encoded for a URL's query string (RFC 3986's unreserved characters
/// stay as they are).
#[must_use]
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Grafana's provisioning for this snapshot, as `(relative path, content)`: a data
/// source at `prometheus_url` and a dashboard with a panel per query, over the
/// session's time range. Not run here: there is no Grafana on these machines.
#[must_use]
pub fn grafana_files(
    snapshot: &Snapshot,
    session_id: &str,
    prometheus_url: &str,
    dashboards_dir: &str,
) -> Vec<(String, String)> {
    let datasource = format!(
        "# Grafana data source for session {session_id}'s Prometheus, written by the HPC\n\
         # Benchmarking Orchestrator. Copy into provisioning/datasources/; it was not run here.\n\
         apiVersion: 1\n\
         datasources:\n  - name: orchestrator-{session_id}\n    uid: orch-{session_id}\n    type: prometheus\n    access: proxy\n    url: {prometheus_url}\n"
    );
    let provider = format!(
        "# Grafana dashboard provider for session {session_id}'s dashboard. Copy into\n\
         # provisioning/dashboards/; change `path` where the dashboards are copied to.\n\
         apiVersion: 1\n\
         providers:\n  - name: orchestrator-{session_id}\n    type: file\n    options:\n      path: {}\n",
        serde_json::to_string(dashboards_dir).expect("strings serialise")
    );
    #[allow(clippy::cast_possible_truncation)]
    let ms = |s: f64| (s * 1000.0) as i64;
    let panels: Vec<serde_json::Value> = snapshot
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            json!({
                "id": i + 1,
                "type": "timeseries",
                "title": q.name,
                "datasource": {"type": "prometheus", "uid": format!("orch-{session_id}")},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
                "targets": [{"refId": "A", "expr": q.query}],
            })
        })
        .collect();
    let dashboard = json!({
        "uid": format!("orch-{session_id}"),
        "title": format!("Session {session_id}"),
        "schemaVersion": 39,
        "time": {"from": ms(snapshot.start).to_string(), "to": ms(snapshot.end).to_string()},
        "panels": panels,
    });
    vec![
        (
            "provisioning/datasources/orchestrator.yaml".into(),
            datasource,
        ),
        ("provisioning/dashboards/orchestrator.yaml".into(), provider),
        (
            format!("dashboards/session-{session_id}.json"),
            serde_json::to_string_pretty(&dashboard).expect("dashboards serialise"),
        ),
        (
            "README.md".into(),
            format!(
                "# Grafana for session {session_id}\n\n\
                 Written by the HPC Benchmarking Orchestrator, and **not run here** (Grafana is not\n\
                 installed where this tool is tested). Point a Grafana at these files:\n\n\
                 - `provisioning/datasources/orchestrator.yaml`: the session's Prometheus\n\
                   ({prometheus_url}, which stopped with the session; run it again on its\n\
                   data directory, or change the URL);\n\
                 - `provisioning/dashboards/orchestrator.yaml` and `dashboards/`: a panel per\n\
                   query of the report, over the session's time range.\n"
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_file_is_json_once_the_node_is_put_in_its_place() {
        let file = client_target("ses-1", "lo\"ad", 9464);
        assert_eq!(file.name, ["client-lo\"ad.json"]);
        let text = file.json.join("node2");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[0]["targets"][0], "node2:9464");
        assert_eq!(v[0]["labels"]["client"], "lo\"ad");
        assert_eq!(v[0]["labels"]["node"], "node2");
        assert_eq!(v[0]["labels"]["job"], "client");
    }

    #[test]
    fn prometheus_answers_are_read_and_its_errors_kept() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"client":"load"},"values":[[1700000000.5,"12"],[1700000002.5,"NaN"]]}]}}"#;
        let series = parse_matrix(body).unwrap();
        assert_eq!(series[0].labels["client"], "load");
        assert_eq!(series[0].values[0], (1_700_000_000.5, 12.0));
        assert!(series[0].values[1].1.is_nan());
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(
            parse_matrix(bad).unwrap_err(),
            "bad_data: parse error at char 3"
        );
        let targets = r#"{"status":"success","data":{"activeTargets":[{"labels":{"job":"node","instance":"node1:9100","node":"node1"},"health":"down","lastError":"connection refused"}]}}"#;
        let t = parse_targets(targets).unwrap();
        assert_eq!(t[0].instance, "node1:9100");
        let snapshot = Snapshot {
            targets: t,
            ..Snapshot::default()
        };
        assert_eq!(
            snapshot.problems(),
            ["Prometheus never scraped node1:9100 (job node): connection refused"]
        );
        // Up once during the session (a client's endpoint, gone at the end) is fine.
        let mut labels = BTreeMap::new();
        labels.insert("instance".to_owned(), "node1:9100".to_owned());
        labels.insert("job".to_owned(), "node".to_owned());
        let snapshot = Snapshot {
            queries: vec![QuerySeries {
                name: "targets up".into(),
                query: "up".into(),
                series: vec![Series {
                    labels,
                    values: vec![(1.0, 1.0), (3.0, 0.0)],
                }],
                error: None,
            }],
            ..snapshot
        };
        assert!(snapshot.problems().is_empty(), "{:?}", snapshot.problems());
    }

    #[test]
    fn queries_are_encoded_for_a_url() {
        assert_eq!(
            url_encode("rate(x{a=\"b c\"}[10s])"),
            "rate%28x%7Ba%3D%22b%20c%22%7D%5B10s%5D%29"
        );
    }
}
