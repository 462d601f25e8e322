//! What a client job runs: a [`WorkloadSpec`] (driver, target, parameters, load),
//! passed to `orchestrator workload run --spec-json JSON` on the compute node. Load
//! settings may sit among a recipe's `parameters` under reserved names; lists (or
//! comma-separated strings) in any parameter make a sweep: one run per combination.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::engine::{Arrival, LoadModel, LoadSpec};
use super::stats::Slo;

/// Parameter names that set the load rather than the driver's requests.
pub const LOAD_KEYS: &[&str] = &[
    "concurrency",
    "concurrent_users",
    "rate",
    "requests_per_second",
    "arrival",
    "burstiness",
    "max_concurrency",
    "requests",
    "num_requests",
    "warmup_s",
    "duration_s",
    "seed",
    "slo_latency_ms",
    "slo_ttft_ms",
    "slo_tpot_ms",
    "metrics_port",
    "repeat",
    "time_scale",
    "load",
    "ramp_up_s",
];

/// A workload run as a client job executes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    /// The workload driver.
    pub driver: String,
    /// The target URL.
    pub url: String,
    /// Parameters: the driver's, plus the reserved load names; lists sweep.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// Measured duration in seconds, unless a parameter says otherwise.
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// Run by this many replicas ([`super::replica`]), each taking its share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// Where a client job's engine writes, relative to its job directory.
pub const RESULTS_DIR: &str = "results";

/// Every combination of the swept parameters, in order (the last key varies fastest).
/// A list, or a string with commas (`"1,2,5"`, the original tool's form), sweeps;
/// numbers in such strings become numbers.
#[must_use]
pub fn expand_sweep(parameters: &Map<String, Value>) -> Vec<Map<String, Value>> {
    let mut runs = vec![Map::new()];
    for (key, value) in parameters {
        let choices: Vec<Value> = match value {
            Value::Array(items) if !items.is_empty() => items.clone(),
            Value::String(s) if s.contains(',') && key != "body" && key != "prompt" => s
                .split(',')
                .map(|part| {
                    let part = part.trim();
                    serde_json::from_str::<serde_json::Number>(part)
                        .map_or_else(|_| Value::String(part.to_owned()), Value::Number)
                })
                .collect(),
            other => vec![other.clone()],
        };
        runs = runs
            .into_iter()
            .flat_map(|run| {
                choices.iter().map(move |choice| {
                    let mut run = run.clone();
                    run.insert(key.clone(), choice.clone());
                    run
                })
            })
            .collect();
    }
    runs
}

/// Splits one run's parameters into the load and the driver's own parameters.
///
/// # Errors
/// A reserved name with a value of the wrong kind, or no bound on the run.
pub fn load_of(
    parameters: &Map<String, Value>,
    duration_s: Option<f64>,
) -> Result<(LoadSpec, Map<String, Value>), String> {
    let mut driver = parameters.clone();
    let mut take = |names: &[&str]| names.iter().find_map(|n| driver.remove(*n));
    let number = |v: Option<Value>, name: &str| -> Result<Option<f64>, String> {
        match v {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(Value::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("`{name}` must be a number, not `{s}`")),
            Some(other) => Err(format!("`{name}` must be a number, not {other}")),
        }
    };
    // A load profile (`load: sweep`) is the runner's: it sets the model of each run.
    if let Some(profile) = take(&["load"]) {
        super::profile::Profile::parse(&profile)?;
    }
    let concurrency = number(take(&["concurrency", "concurrent_users"]), "concurrency")?;
    let rate = number(take(&["rate", "requests_per_second"]), "rate")?;
    let burstiness = number(take(&["burstiness"]), "burstiness")?;
    let arrival = match take(&["arrival"]) {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => {
            return Err(format!(
                "`arrival` must be constant, poisson, gamma or trace, not {other}"
            ));
        }
    };
    let max_concurrency = number(take(&["max_concurrency"]), "max_concurrency")?;
    let time_scale = number(take(&["time_scale"]), "time_scale")?;
    let requests = number(take(&["requests", "num_requests"]), "requests")?;
    let warmup = number(take(&["warmup_s"]), "warmup_s")?.unwrap_or(0.0);
    let ramp_up = number(take(&["ramp_up_s"]), "ramp_up_s")?.unwrap_or(0.0);
    let duration = number(take(&["duration_s"]), "duration_s")?.or(duration_s);
    let seed = number(take(&["seed"]), "seed")?;
    let slo = Slo {
        latency_ms: number(take(&["slo_latency_ms"]), "slo_latency_ms")?,
        ttft_ms: number(take(&["slo_ttft_ms"]), "slo_ttft_ms")?,
        tpot_ms: number(take(&["slo_tpot_ms"]), "slo_tpot_ms")?,
    };
    let implicit_model =
        concurrency.is_none() && rate.is_none() && arrival.is_none() && time_scale.is_none();
    let model = if arrival.as_deref() == Some("trace") || time_scale.is_some() {
        replay_model(
            concurrency,
            rate,
            arrival.as_deref(),
            time_scale,
            max_concurrency,
        )?
    } else {
        load_model(
            concurrency,
            rate,
            arrival.as_deref(),
            burstiness,
            max_concurrency,
        )?
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let spec = LoadSpec {
        model,
        duration: duration.map(Duration::from_secs_f64),
        requests: requests.map(|r| r as u64),
        warmup: Duration::from_secs_f64(warmup.max(0.0)),
        ramp_up: Duration::from_secs_f64(ramp_up.max(0.0)),
        slo,
        keep_samples: true,
        start_at: None,
        phase: Duration::ZERO,
        seed: seed.map_or(1, |s| s as u64),
        implicit_model,
    };
    let replays = matches!(spec.model, LoadModel::Replay { .. });
    if spec.duration.is_none() && spec.requests.is_none() && !replays {
        return Err(
            "the run has no bound: give the client a `duration`, or `requests` in its parameters (a timed trace replayed with `arrival: trace` ends with the trace)"
                .into(),
        );
    }
    Ok((spec, driver))
}

/// The replay of a timed dataset (`arrival: trace`, or a `time_scale`), which keeps
/// the dataset's own times: it takes no rate or concurrency.
///
/// # Errors
/// A rate or a concurrency with it, or another arrival with a `time_scale`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn replay_model(
    concurrency: Option<f64>,
    rate: Option<f64>,
    arrival: Option<&str>,
    time_scale: Option<f64>,
    max_concurrency: Option<f64>,
) -> Result<LoadModel, String> {
    if let Some(other) = arrival.filter(|a| *a != "trace") {
        return Err(format!(
            "time_scale scales a replayed trace's times; arrival `{other}` has none (use arrival: trace)"
        ));
    }
    if rate.is_some() || concurrency.is_some() {
        return Err("a replayed trace keeps its own times: drop the rate and concurrency (time_scale speeds it up or slows it down; max_concurrency caps what is in flight)".into());
    }
    Ok(LoadModel::Replay {
        time_scale: time_scale.unwrap_or(1.0),
        max_concurrency: max_concurrency.map(|c| c as u32),
    })
}

/// The load model of these settings: a rate means an open loop (capped by
/// `max_concurrency`, or by `concurrency` as the original tool's `concurrent_users`
/// with `requests_per_second`), else a closed loop of `concurrency` users (1 by
/// default).
///
/// # Errors
/// A rate with both caps, an unknown arrival, or open-loop settings without a rate.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn load_model(
    concurrency: Option<f64>,
    rate: Option<f64>,
    arrival: Option<&str>,
    burstiness: Option<f64>,
    max_concurrency: Option<f64>,
) -> Result<LoadModel, String> {
    // The original tool's `requests_per_second` with `concurrent_users`: a rate with
    // that many requests in flight at most.
    let (concurrency, max_concurrency) = match (rate, concurrency, max_concurrency) {
        (Some(_), Some(_), Some(_)) => {
            return Err("give max_concurrency or concurrency with a rate, not both".into());
        }
        (Some(_), Some(c), None) => (None, Some(c)),
        other => (other.1, other.2),
    };
    match (rate, concurrency) {
        (Some(_), Some(_)) => unreachable!("folded into the cap above"),
        (Some(rate), None) => {
            let arrival = match (
                arrival.unwrap_or(if burstiness.is_some() {
                    "gamma"
                } else {
                    "poisson"
                }),
                burstiness,
            ) {
                ("constant", _) => Arrival::Constant,
                ("poisson", _) => Arrival::Poisson,
                ("gamma", b) => Arrival::Gamma {
                    burstiness: b.unwrap_or(1.0),
                },
                (other, _) => {
                    return Err(format!(
                        "arrival `{other}`: expected constant, poisson, gamma or trace"
                    ));
                }
            };
            Ok(LoadModel::Open {
                rate,
                arrival,
                max_concurrency: max_concurrency.map(|c| c as u32),
            })
        }
        (None, c) => {
            if arrival.is_some() || burstiness.is_some() || max_concurrency.is_some() {
                return Err(
                    "arrival, burstiness and max_concurrency need a rate (open loop)".into(),
                );
            }
            Ok(LoadModel::Closed {
                concurrency: c.map_or(1, |c| c as u32),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_comma_strings_sweep_every_combination() {
        let p: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "concurrency": "1,2", "path": ["/a", "/b", "/c"], "method": "GET"
        }))
        .unwrap();
        let runs = expand_sweep(&p);
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[0]["concurrency"], 1);
        assert_eq!(runs[0]["path"], "/a");
        assert_eq!(runs[5]["concurrency"], 2);
        assert_eq!(runs[5]["path"], "/c");
        assert!(runs.iter().all(|r| r["method"] == "GET"));
    }

    #[test]
    fn a_trace_replays_at_its_own_times_scaled_and_takes_no_rate() {
        let params = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        // arrival: trace needs no bound: the trace ends the run.
        let (load, driver) = load_of(
            &params(serde_json::json!({"arrival": "trace", "dataset": "t.jsonl"})),
            None,
        )
        .unwrap();
        assert_eq!(
            load.model,
            LoadModel::Replay {
                time_scale: 1.0,
                max_concurrency: None
            }
        );
        assert_eq!(driver["dataset"], "t.jsonl");
        let (load, _) = load_of(
            &params(serde_json::json!({"time_scale": 0.5, "max_concurrency": 4})),
            Some(60.0),
        )
        .unwrap();
        assert_eq!(
            load.model,
            LoadModel::Replay {
                time_scale: 0.5,
                max_concurrency: Some(4)
            }
        );
        assert!(!load.implicit_model);
        let e = load_of(
            &params(serde_json::json!({"arrival": "trace", "rate": 5})),
            None,
        )
        .unwrap_err();
        assert!(e.contains("keeps its own times"), "{e}");
        let e = load_of(
            &params(serde_json::json!({"arrival": "poisson", "time_scale": 2})),
            None,
        )
        .unwrap_err();
        assert!(e.contains("arrival `poisson` has none"), "{e}");
        // Settings that name no load model leave it to the workload: a timed dataset
        // replays, anything else is one user's closed loop.
        let (load, _) = load_of(&params(serde_json::json!({})), Some(5.0)).unwrap();
        assert!(load.implicit_model);
        assert_eq!(load.model, LoadModel::Closed { concurrency: 1 });
        let (load, _) = load_of(&params(serde_json::json!({"concurrency": 1})), Some(5.0)).unwrap();
        assert!(!load.implicit_model);
    }

    #[test]
    fn reserved_names_become_the_load_and_the_rest_goes_to_the_driver() {
        let p: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "requests_per_second": 50, "max_concurrency": 8, "warmup_s": 2, "path": "/x"
        }))
        .unwrap();
        let (load, driver) = load_of(&p, Some(10.0)).unwrap();
        assert_eq!(
            load.model,
            LoadModel::Open {
                rate: 50.0,
                arrival: Arrival::Poisson,
                max_concurrency: Some(8)
            }
        );
        assert_eq!(load.duration, Some(Duration::from_secs(10)));
        assert_eq!(load.warmup, Duration::from_secs(2));
        assert_eq!(driver.len(), 1);
        assert!(load_of(&Map::new(), None).unwrap_err().contains("no bound"));
        // The original's requests_per_second with concurrent_users: a capped open loop.
        let original: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"requests_per_second": 5, "concurrent_users": 2}),
        )
        .unwrap();
        assert_eq!(
            load_of(&original, Some(1.0)).unwrap().0.model,
            LoadModel::Open {
                rate: 5.0,
                arrival: Arrival::Poisson,
                max_concurrency: Some(2)
            }
        );
        let three: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"rate": 5, "concurrency": 2, "max_concurrency": 3}),
        )
        .unwrap();
        assert!(load_of(&three, Some(1.0)).unwrap_err().contains("not both"));
    }
}
