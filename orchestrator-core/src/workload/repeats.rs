//! Repeats: a client parameter `repeat: N` runs every point of its sweep N times (each
//! with its own seed), and the headline figures of a point are given across its runs as
//! a mean, a t-based 95 % confidence interval and a coefficient of variation. A point
//! whose figures vary by more than [`MAX_STABLE_CV`] is marked: one run of it would not
//! have been the number to quote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The figures given across repeats, by metric name (as in `expect`); those a run
/// does not have (tokens for a plain HTTP workload) are left out.
pub const HEADLINE: &[&str] = &[
    "requests_per_second",
    "output_tokens_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "ttft_p99_ms",
    "tpot_p99_ms",
];

/// A coefficient of variation above this marks a point as unstable.
pub const MAX_STABLE_CV: f64 = 0.05;

/// One metric across the repeats of one point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatStats {
    /// How many runs had the metric.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Their sample standard deviation.
    pub std: f64,
    /// The 95 % confidence interval of the mean (Student's t with n − 1 degrees of
    /// freedom).
    pub ci95_low: f64,
    /// Its upper end.
    pub ci95_high: f64,
    /// The coefficient of variation, std / mean (0 when the mean is 0).
    pub cv: f64,
}

impl RepeatStats {
    /// The statistics of `values`; `None` for fewer than two.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n < 2 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = var.sqrt();
        let half = t975(n - 1) * std / (n as f64).sqrt();
        Some(Self {
            n,
            mean,
            std,
            ci95_low: mean - half,
            ci95_high: mean + half,
            cv: if mean == 0.0 { 0.0 } else { std / mean.abs() },
        })
    }
}

/// The 0.975 quantile of Student's t distribution with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        31..=40 => 2.021,
        41..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// One point of a sweep that ran more than once, with its figures across the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatPoint {
    /// The client.
    pub client: String,
    /// The point's parameters.
    pub parameters: Value,
    /// Its runs, in order.
    pub runs: Vec<String>,
    /// The headline metrics across them.
    pub metrics: BTreeMap<String, RepeatStats>,
    /// The metrics whose coefficient of variation is above [`MAX_STABLE_CV`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstable: Vec<String>,
}

/// A run as [`points`] reads it: its client, its label, its parameters and its summary.
pub struct RunOf<'a> {
    /// The client.
    pub client: &'a str,
    /// The run (`run-003`).
    pub run: &'a str,
    /// Its parameters (the sweep point).
    pub parameters: &'a Value,
    /// Its `summary.json`.
    pub summary: &'a Value,
}

/// The points that ran more than once, grouped by client and parameters, in the order
/// they first ran. The runs of a load profile (their summaries name a
/// `profile_step`) share their parameters but not their load: none is a repeat.
#[must_use]
pub fn points(runs: &[RunOf<'_>]) -> Vec<RepeatPoint> {
    let mut groups: Vec<(&str, &Value, Vec<&RunOf<'_>>)> = Vec::new();
    for run in runs
        .iter()
        .filter(|r| r.summary.get("profile_step").is_none())
    {
        match groups
            .iter_mut()
            .find(|(c, p, _)| *c == run.client && *p == run.parameters)
        {
            Some((_, _, members)) => members.push(run),
            None => groups.push((run.client, run.parameters, vec![run])),
        }
    }
    groups
        .into_iter()
        .filter(|(_, _, members)| members.len() > 1)
        .map(|(client, parameters, members)| {
            let metrics: BTreeMap<String, RepeatStats> = HEADLINE
                .iter()
                .filter_map(|name| {
                    let values: Vec<f64> = members
                        .iter()
                        .filter_map(|r| crate::expect::metric(r.summary, name))
                        .collect();
                    Some(((*name).to_owned(), RepeatStats::of(&values)?))
                })
                .collect();
            let unstable = metrics
                .iter()
                .filter(|(_, s)| s.cv > MAX_STABLE_CV)
                .map(|(name, _)| name.clone())
                .collect();
            RepeatPoint {
                client: client.to_owned(),
                parameters: parameters.clone(),
                runs: members.iter().map(|r| r.run.to_owned()).collect(),
                metrics,
                unstable,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_values_give_their_mean_a_t_interval_and_their_variation() {
        let s = RepeatStats::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!(s.n, 3);
        assert!((s.mean - 12.0).abs() < 1e-12);
        assert!((s.std - 2.0).abs() < 1e-12);
        // t(0.975, 2) = 4.303: 12 ± 4.303 · 2 / √3.
        let half = 4.303 * 2.0 / 3f64.sqrt();
        assert!((s.ci95_low - (12.0 - half)).abs() < 1e-9, "{s:?}");
        assert!((s.ci95_high - (12.0 + half)).abs() < 1e-9, "{s:?}");
        assert!((s.cv - 2.0 / 12.0).abs() < 1e-12);
        assert!(RepeatStats::of(&[5.0]).is_none());
        let same = RepeatStats::of(&[7.0, 7.0, 7.0, 7.0]).unwrap();
        assert_eq!((same.std, same.cv, same.ci95_low), (0.0, 0.0, 7.0));
        assert!((t975(50) - 2.000).abs() < 1e-12 && (t975(1000) - 1.960).abs() < 1e-12);
    }

    #[test]
    fn runs_group_by_client_and_parameters_and_a_varying_point_is_marked() {
        let p1 = serde_json::json!({"concurrency": 1});
        let p2 = serde_json::json!({"concurrency": 2});
        let summary = |rps: f64, p99: f64| serde_json::json!({"requests_per_second": rps, "latency_ms": {"p50": 1.0, "p99": p99}});
        let s = [
            summary(100.0, 5.0),
            summary(101.0, 5.1),
            summary(200.0, 5.0),
            summary(300.0, 9.0),
            summary(50.0, 1.0),
        ];
        let of = |client, run, parameters, summary| RunOf {
            client,
            run,
            parameters,
            summary,
        };
        let runs = [
            of("a", "run-000", &p1, &s[0]),
            of("a", "run-001", &p1, &s[1]),
            of("a", "run-002", &p2, &s[2]),
            of("a", "run-003", &p2, &s[3]),
            of("b", "results", &p1, &s[4]),
        ];
        let found = points(&runs);
        assert_eq!(
            found.len(),
            2,
            "client b's single run is no repeat: {found:?}"
        );
        assert_eq!(found[0].runs, ["run-000", "run-001"]);
        assert_eq!(found[0].metrics["requests_per_second"].n, 2);
        assert!((found[0].metrics["requests_per_second"].mean - 100.5).abs() < 1e-9);
        assert!(found[0].unstable.is_empty(), "{:?}", found[0]);
        assert!(!found[0].metrics.contains_key("output_tokens_per_s"));
        assert_eq!(found[1].parameters, p2);
        assert_eq!(found[1].unstable, ["latency_p99_ms", "requests_per_second"]);
        // A sweep's runs: the same parameters, each its own load.
        let step = |kind: &str, rps: f64| {
            let mut s = summary(rps, 5.0);
            s["profile_step"] = serde_json::json!(kind);
            s
        };
        let (sync, rate) = (step("synchronous", 3.0), step("rate", 4.5));
        let profile = [
            of("c", "run-000", &p1, &sync),
            of("c", "run-001", &p1, &rate),
        ];
        assert!(points(&profile).is_empty());
    }
}
