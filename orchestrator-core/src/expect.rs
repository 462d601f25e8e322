//! Reference values: a client recipe's `expect` checked against the summaries its runs
//! wrote, like a regression test. `orchestrator run` exits 3 when one is missed.

use std::collections::BTreeMap;
use std::path::Path;

use orchestrator_recipes::{ClientRecipe, Expectation};
use serde::Serialize;
use serde_json::Value;

use crate::CoreError;
use crate::state::{ClientRow, ResultRow};

/// One metric of one run against its reference.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ExpectationResult {
    /// The client's name.
    pub client: String,
    /// The run: its `summary.json`, relative to the client's results (`run-001/…` in a
    /// sweep); `None` when the client left no summary at all.
    pub run: Option<String>,
    /// The metric (`ttft_p99_ms`).
    pub metric: String,
    /// Its value in the run; `None` when the run has no such figure.
    pub value: Option<f64>,
    /// The reference.
    pub expected: Expectation,
    /// Whether the value meets it.
    pub passed: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Not in the recipe: the session's bound on the failure rate (the config's
    /// `max_error_rate`) that every run of a workload client must meet unless its
    /// `expect` names `error_rate` itself; listed only when missed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

const STATS: [&str; 9] = [
    "mean", "min", "max", "std", "p50", "p90", "p95", "p99", "p999",
];

/// The value of metric `name` (see `orchestrator_recipes::EXPECT_METRIC_PATTERN`) in a
/// run's `summary.json`.
#[must_use]
pub fn metric(summary: &Value, name: &str) -> Option<f64> {
    let number = |key: &str| summary.get(key).and_then(Value::as_f64);
    if let Some(base) = name.strip_suffix("_ms") {
        if let Some((metric, stat)) = base.rsplit_once('_') {
            if STATS.contains(&stat) {
                return summary.get(format!("{metric}_ms"))?.get(stat)?.as_f64();
            }
        }
    }
    match name {
        "output_tokens_per_s" => number("output_tokens_per_second"),
        "error_rate" => {
            let completed = number("requests_completed")?;
            let failed = number("requests_failed")?;
            let all = completed + failed;
            Some(if all > 0.0 { failed / all } else { 0.0 })
        }
        "goodput_fraction" => summary.get("goodput")?.get("fraction")?.as_f64(),
        "goodput_requests_per_second" => {
            summary.get("goodput")?.get("requests_per_second")?.as_f64()
        }
        other => number(other),
    }
}

/// Checks `expect` on each run's summary (`(label, summary)`); with no runs every
/// expectation fails, since nothing shows it is met.
#[must_use]
pub fn evaluate(
    client: &str,
    expect: &BTreeMap<String, Expectation>,
    runs: &[(String, Value)],
) -> Vec<ExpectationResult> {
    let mut results = Vec::new();
    for (name, expected) in expect {
        if runs.is_empty() {
            results.push(ExpectationResult {
                client: client.to_owned(),
                run: None,
                metric: name.clone(),
                value: None,
                expected: expected.clone(),
                passed: false,
                message: Some(
                    "the client wrote no summary.json (only workload clients do)".to_owned(),
                ),
                implicit: false,
            });
        }
        for (run, summary) in runs {
            let value = metric(summary, name);
            let verdict = match value {
                Some(v) => expected.check(v),
                None => Err(format!("the run has no `{name}`")),
            };
            results.push(ExpectationResult {
                client: client.to_owned(),
                run: Some(run.clone()),
                metric: name.clone(),
                value,
                expected: expected.clone(),
                passed: verdict.is_ok(),
                message: verdict.err(),
                implicit: false,
            });
        }
    }
    results
}

/// Every client's `expect` of a session, checked on the summaries fetched into the
/// state store; a client whose `expect` does not name `error_rate` gets
/// `max_error_rate` (a benchmark whose requests fail says little about the service),
/// said only when missed.
///
/// # Errors
/// A summary that was recorded but cannot be read.
pub fn session_expectations(
    clients: &[ClientRow],
    results: &[ResultRow],
    max_error_rate: f64,
) -> Result<Vec<ExpectationResult>, CoreError> {
    let mut all = Vec::new();
    for client in clients {
        let Ok(recipe) = serde_json::from_str::<ClientRecipe>(&client.recipe) else {
            continue;
        };
        let mut runs = Vec::new();
        for row in results
            .iter()
            .filter(|r| r.client_id == client.id && r.name == "summary")
        {
            let text = std::fs::read_to_string(&row.path)
                .map_err(CoreError::io(format!("cannot read {}", row.path)))?;
            let summary: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            runs.push((run_label(Path::new(&row.path)), summary));
        }
        all.extend(evaluate(&client.name, &recipe.expect, &runs));
        if !runs.is_empty() && !recipe.expect.contains_key("error_rate") {
            let bound = BTreeMap::from([(
                "error_rate".to_owned(),
                Expectation {
                    min: None,
                    max: Some(max_error_rate),
                    tolerance: None,
                },
            )]);
            // Only a miss is said: a bound the user did not write, met, is noise.
            all.extend(
                evaluate(&client.name, &bound, &runs)
                    .into_iter()
                    .filter(|e| !e.passed)
                    .map(|e| ExpectationResult {
                        implicit: true,
                        ..e
                    }),
            );
        }
    }
    Ok(all)
}

/// `…/results/run-001/summary.json` → `run-001`; a run of its own → `results`.
fn run_label(path: &Path) -> String {
    path.parent().and_then(Path::file_name).map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_recipes::Tolerance;

    fn summary() -> Value {
        serde_json::json!({
            "requests_completed": 95, "requests_failed": 5, "requests_per_second": 12.5,
            "output_tokens_per_second": 880.0,
            "latency_ms": {"mean": 100.0, "p99": 180.0},
            "ttft_ms": {"p50": 120.0, "p99": 260.0},
            "schedule_lag_ms": {"p999": 3.0},
            "goodput": {"fraction": 0.9, "requests_per_second": 11.0}
        })
    }

    #[test]
    fn metric_names_resolve_to_summary_figures() {
        let s = summary();
        assert_eq!(metric(&s, "ttft_p99_ms"), Some(260.0));
        assert_eq!(metric(&s, "latency_mean_ms"), Some(100.0));
        assert_eq!(metric(&s, "schedule_lag_p999_ms"), Some(3.0));
        assert_eq!(metric(&s, "output_tokens_per_s"), Some(880.0));
        assert_eq!(metric(&s, "output_tokens_per_second"), Some(880.0));
        assert_eq!(metric(&s, "error_rate"), Some(0.05));
        assert_eq!(metric(&s, "goodput_fraction"), Some(0.9));
        assert_eq!(metric(&s, "tpot_p99_ms"), None, "not an LLM run");
    }

    #[test]
    fn every_name_the_recipe_schema_allows_is_understood() {
        // A summary with every figure: each name the pattern accepts must resolve.
        let dist = serde_json::json!({"mean": 1.0, "min": 1.0, "max": 1.0, "std": 1.0,
            "p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0, "p999": 1.0});
        let mut full = summary();
        for m in ["latency", "ttft", "tpot", "itl", "schedule_lag"] {
            full[format!("{m}_ms")] = dist.clone();
        }
        full["achieved_rate"] = 1.0.into();
        full["output_tokens"] = 1.into();
        let pattern = regex_lite(orchestrator_recipes::EXPECT_METRIC_PATTERN);
        let mut names: Vec<String> = [
            "requests_per_second",
            "output_tokens_per_s",
            "output_tokens_per_second",
            "requests_completed",
            "requests_failed",
            "error_rate",
            "achieved_rate",
            "output_tokens",
            "goodput_fraction",
            "goodput_requests_per_second",
        ]
        .map(str::to_owned)
        .to_vec();
        for m in ["latency", "ttft", "tpot", "itl", "schedule_lag"] {
            for s in STATS {
                names.push(format!("{m}_{s}_ms"));
            }
        }
        for name in &names {
            assert!(pattern(name), "{name} is not allowed by the schema");
            assert!(metric(&full, name).is_some(), "{name} does not resolve");
        }
        assert!(!pattern("ttft_p98_ms") && !pattern("throughput"));
    }

    /// The schema's pattern, matched the way the recipe validator matches it.
    fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": pattern});
        let validator = jsonschema::validator_for(&schema).unwrap();
        move |s| validator.is_valid(&serde_json::json!(s))
    }

    #[test]
    fn bounds_with_tolerances_pass_and_fail_as_documented() {
        let expect: BTreeMap<String, Expectation> = BTreeMap::from([
            (
                "ttft_p99_ms".to_owned(),
                Expectation {
                    min: None,
                    max: Some(250.0),
                    tolerance: None,
                },
            ),
            (
                "output_tokens_per_s".to_owned(),
                Expectation {
                    min: Some(900.0),
                    max: None,
                    tolerance: Some(Tolerance::Percent(5.0)),
                },
            ),
        ]);
        let results = evaluate("llm", &expect, &[("results".to_owned(), summary())]);
        // 880 ≥ 900 − 5 % = 855 passes; a p99 TTFT of 260 misses 250.
        let by_metric: BTreeMap<&str, &ExpectationResult> =
            results.iter().map(|r| (r.metric.as_str(), r)).collect();
        assert!(by_metric["output_tokens_per_s"].passed);
        let ttft = by_metric["ttft_p99_ms"];
        assert!(!ttft.passed);
        assert_eq!(ttft.value, Some(260.0));
        assert_eq!(
            ttft.message.as_deref(),
            Some("260.0000 is above the maximum 250")
        );
        // No summary at all: nothing shows the bound is met.
        let none = evaluate("cmd", &expect, &[]);
        assert_eq!(none.len(), 2);
        assert!(none.iter().all(|r| !r.passed && r.run.is_none()));
    }

    fn client_with(expect: &str, summary: &Value, dir: &Path) -> (ClientRow, ResultRow) {
        let recipe =
            format!("{{\"name\": \"load\", \"workload_type\": \"http\", \"expect\": {expect}}}");
        let path = dir.join("results/summary.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, summary.to_string()).unwrap();
        let client = ClientRow {
            id: "cli-1".into(),
            session_id: "ses-1".into(),
            name: "load".into(),
            driver: "http".into(),
            recipe,
            target_service_id: None,
            target_host: None,
            target_port: None,
            state: crate::lifecycle::ClientState::Completed,
            created_at: 0,
            updated_at: 0,
        };
        let result = ResultRow {
            id: 1,
            session_id: "ses-1".into(),
            client_id: "cli-1".into(),
            name: "summary".into(),
            path: path.display().to_string(),
            bytes: 1,
            created_at: 0,
        };
        (client, result)
    }

    /// Issue #17: 6,583 requests completed and 349,760 failed was a green summary.
    #[test]
    fn a_run_whose_requests_fail_past_the_default_bound_misses_an_implicit_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let broken = serde_json::json!({"requests_completed": 6583, "requests_failed": 349_760});
        let (client, result) = client_with("{}", &broken, dir.path());
        let found = session_expectations(&[client], &[result], 0.01).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].implicit && !found[0].passed, "{found:?}");
        assert_eq!(found[0].metric, "error_rate");
        assert!(
            found[0]
                .message
                .as_deref()
                .unwrap()
                .contains("above the maximum 0.01")
        );

        // Within the bound: nothing is said.
        let fine = serde_json::json!({"requests_completed": 1000, "requests_failed": 5});
        let (client, result) = client_with("{}", &fine, dir.path());
        assert!(
            session_expectations(&[client], &[result], 0.01)
                .unwrap()
                .is_empty()
        );

        // The recipe's own `error_rate` replaces the default.
        let (client, result) =
            client_with("{\"error_rate\": {\"max\": 0.99}}", &broken, dir.path());
        let found = session_expectations(&[client], &[result], 0.01).unwrap();
        assert_eq!(found.len(), 1);
        assert!(!found[0].implicit && found[0].passed, "{found:?}");

        // The config's bound replaces the default: 10 % failed is within 0.2.
        let tenth = serde_json::json!({"requests_completed": 900, "requests_failed": 100});
        let (client, result) = client_with("{}", &tenth, dir.path());
        assert!(
            session_expectations(
                std::slice::from_ref(&client),
                std::slice::from_ref(&result),
                0.2
            )
            .unwrap()
            .is_empty()
        );
        let found = session_expectations(&[client], &[result], 0.05).unwrap();
        assert!(
            found[0]
                .message
                .as_deref()
                .unwrap()
                .contains("above the maximum 0.05")
        );
    }
}
