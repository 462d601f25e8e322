//! Loads that choose their next run from the last one's result (a client's `load`
//! parameter):
//!
//! - `load: sweep` (or `{sweep: {points: N, max_concurrency: C}}`): GuideLLM's
//!   profile. A synchronous pass (one request at a time) measures the rate one user
//!   gets, a throughput pass (`max_concurrency` users, default 32) the most the
//!   server gives; then constant-rate runs spread evenly between the two (`points` in
//!   all, default 8). A server that gains nothing from concurrency (the two rates
//!   within 20 %) is swept from half its synchronous rate to one and a half times its
//!   throughput, so that its curve shows where latency climbs. The knee of the
//!   load–latency curve (the synchronous pass and the rates asked for) is then found
//!   ([`knee`]).
//! - `load: {slo_search: {ttft_p99_ms, tpot_p99_ms, latency_p99_ms, max_rate,
//!   precision}}`: the highest rate whose run meets every objective given, by
//!   bisection over real runs (vLLM's `serve_sla` idea): a throughput pass bounds the
//!   search (unless `max_rate` does), the bracket halves until its ends are within
//!   `precision` (default 10 %) of each other, and a run at 1.2 × the answer shows
//!   that a faster rate misses (when it meets them too, the search goes on from it).

use serde::Serialize;
use serde_json::Value;

use super::engine::{Arrival, LoadModel};
use super::stats::Summary;

/// A load profile, as `load` names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// Synchronous, throughput, then rates between.
    Sweep {
        /// Runs in all (at least 3).
        points: u32,
        /// Users of the throughput pass.
        max_concurrency: u32,
    },
    /// The highest rate that meets the objectives.
    SloSearch {
        /// The objectives.
        slo: SloTargets,
        /// The search's upper end, when not measured.
        max_rate: Option<f64>,
        /// The bracket's relative width at which the search stops.
        precision: f64,
        /// Users of the throughput pass.
        max_concurrency: u32,
    },
}

/// What a run of an SLO search must meet (p99s, ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SloTargets {
    /// Time to first token, p99.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p99_ms: Option<f64>,
    /// Time per output token, p99.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_p99_ms: Option<f64>,
    /// End-to-end latency, p99.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<f64>,
}

impl SloTargets {
    /// Why `summary` misses the objectives; `None` when it meets them all. A run with
    /// failed requests misses; so does one that lacks a metric an objective names.
    #[must_use]
    pub fn missed(&self, summary: &Summary) -> Option<String> {
        if summary.requests_failed > 0 {
            return Some(format!("{} requests failed", summary.requests_failed));
        }
        let checks = [
            ("ttft p99", self.ttft_p99_ms, summary.ttft_ms.map(|m| m.p99)),
            ("tpot p99", self.tpot_p99_ms, summary.tpot_ms.map(|m| m.p99)),
            (
                "latency p99",
                self.latency_p99_ms,
                Some(summary.latency_ms.p99),
            ),
        ];
        let missed: Vec<String> = checks
            .iter()
            .filter_map(|(name, limit, got)| match (limit, got) {
                (None, _) => None,
                (Some(limit), None) => Some(format!("no {name} to compare with {limit} ms")),
                (Some(limit), Some(got)) if got > limit => {
                    Some(format!("{name} {got:.1} ms > {limit} ms"))
                }
                _ => None,
            })
            .collect();
        (!missed.is_empty()).then(|| missed.join(", "))
    }
}

fn positive(v: &Value, what: &str) -> Result<f64, String> {
    v.as_f64()
        .filter(|x| *x > 0.0 && x.is_finite())
        .ok_or_else(|| format!("`{what}` must be a positive number, not {v}"))
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(v: Option<&Value>, what: &str, min: u32, default: u32) -> Result<u32, String> {
    match v {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= u64::from(min) && *n <= 10_000)
            .map(|n| n as u32)
            .ok_or_else(|| format!("`{what}` must be a whole number from {min}, not {v}")),
    }
}

fn keys(object: &serde_json::Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "{what}: unknown key `{k}`; it takes {}",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

impl Profile {
    /// The profile `load` names.
    ///
    /// # Errors
    /// Another value: the message says what `load` takes.
    pub fn parse(load: &Value) -> Result<Self, String> {
        const TAKES: &str = "`load` is `sweep`, `{sweep: {points, max_concurrency}}` or `{slo_search: {ttft_p99_ms, tpot_p99_ms, latency_p99_ms, max_rate, precision, max_concurrency}}`";
        let (name, settings) = match load {
            Value::String(name) => (name.as_str(), None),
            Value::Object(o) if o.len() == 1 => {
                let (name, settings) = o.iter().next().expect("one key");
                let Value::Object(settings) = settings else {
                    return Err(format!("`load.{name}` must be a mapping; {TAKES}"));
                };
                (name.as_str(), Some(settings))
            }
            _ => return Err(TAKES.into()),
        };
        let empty = serde_json::Map::new();
        let s = settings.unwrap_or(&empty);
        match name {
            "sweep" => {
                keys(s, &["points", "max_concurrency"], "load.sweep")?;
                Ok(Self::Sweep {
                    points: whole(s.get("points"), "points", 3, 8)?,
                    max_concurrency: whole(s.get("max_concurrency"), "max_concurrency", 1, 32)?,
                })
            }
            "slo_search" => {
                keys(
                    s,
                    &[
                        "ttft_p99_ms",
                        "tpot_p99_ms",
                        "latency_p99_ms",
                        "max_rate",
                        "precision",
                        "max_concurrency",
                    ],
                    "load.slo_search",
                )?;
                let target = |k: &str| s.get(k).map(|v| positive(v, k)).transpose();
                let slo = SloTargets {
                    ttft_p99_ms: target("ttft_p99_ms")?,
                    tpot_p99_ms: target("tpot_p99_ms")?,
                    latency_p99_ms: target("latency_p99_ms")?,
                };
                if slo == SloTargets::default() {
                    return Err("load.slo_search names no objective: give ttft_p99_ms, tpot_p99_ms or latency_p99_ms".into());
                }
                let precision = target("precision")?.unwrap_or(0.1);
                if precision >= 1.0 {
                    return Err(format!(
                        "`precision` is a fraction below 1, not {precision}"
                    ));
                }
                Ok(Self::SloSearch {
                    slo,
                    max_rate: target("max_rate")?,
                    precision,
                    max_concurrency: whole(s.get("max_concurrency"), "max_concurrency", 1, 32)?,
                })
            }
            other => Err(format!("`load: {other}`: {TAKES}")),
        }
    }
}

/// One run a profile asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What it is: `synchronous`, `throughput`, `rate`, `search`, `check`.
    pub kind: &'static str,
    /// Its load model.
    pub model: LoadModel,
}

/// One run done: its step and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// What it was.
    pub kind: &'static str,
    /// The rate asked for (open loop), or `None` for a closed loop.
    pub rate: Option<f64>,
    /// Users (closed loop).
    pub concurrency: Option<u32>,
    /// Requests completed per second.
    pub requests_per_second: f64,
    /// Output tokens per second, for LLM workloads.
    pub output_tokens_per_second: Option<f64>,
    /// Latency p50, ms.
    pub latency_p50_ms: f64,
    /// Latency p99, ms.
    pub latency_p99_ms: f64,
    /// Time to first token p99, ms.
    pub ttft_p99_ms: Option<f64>,
    /// Failed requests.
    pub requests_failed: u64,
    /// Requests in flight on average (Little's law: rate × mean latency).
    pub mean_in_flight: f64,
    /// An SLO search's verdict: why the run missed (`None`: it met them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<String>,
}

impl Point {
    /// The load the run offered: the rate asked for, or the rate a closed loop got.
    #[must_use]
    pub fn offered(&self) -> f64 {
        self.rate.unwrap_or(self.requests_per_second)
    }

    fn of(step: &Step, summary: &Summary, missed: Option<String>) -> Self {
        let (rate, concurrency) = match step.model {
            LoadModel::Closed { concurrency } => (None, Some(concurrency)),
            LoadModel::Open { rate, .. } => (Some(rate), None),
            LoadModel::Replay { .. } => (None, None),
        };
        Self {
            kind: step.kind,
            rate,
            concurrency,
            requests_per_second: summary.requests_per_second,
            output_tokens_per_second: summary.output_tokens_per_second,
            latency_p50_ms: summary.latency_ms.p50,
            latency_p99_ms: summary.latency_ms.p99,
            ttft_p99_ms: summary.ttft_ms.map(|m| m.p99),
            requests_failed: summary.requests_failed,
            mean_in_flight: summary.requests_per_second * summary.latency_ms.mean / 1000.0,
            missed,
        }
    }
}

/// What a profile found: its points, and the knee or the rate that meets the SLOs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// `sweep` or `slo_search`.
    pub profile: &'static str,
    /// Every run, in order.
    pub points: Vec<Point>,
    /// A sweep's knee: the index of the point where latency starts to climb.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knee: Option<usize>,
    /// An SLO search's answer: the highest rate that met the objectives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slo_rate: Option<f64>,
    /// Whether the run at 1.2 × that rate missed them (`None`: not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub faster_missed: Option<bool>,
    /// Why the profile could not give its answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The knee of a throughput–latency curve (Satopää et al.'s Kneedle): the points
/// sorted by throughput, both axes scaled to 0–1, the point farthest above the line
/// from the first to the last in throughput and below it in latency, i.e. where
/// `x − y` is largest. `None` with fewer than three points, or a flat curve.
#[must_use]
pub fn knee(points: &[(f64, f64)]) -> Option<usize> {
    if points.len() < 3 {
        return None;
    }
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|a, b| points[*a].0.total_cmp(&points[*b].0));
    let (xs, ys): (Vec<f64>, Vec<f64>) = order.iter().map(|i| points[*i]).unzip();
    let span = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
        (lo, hi - lo)
    };
    let ((x0, dx), (y0, dy)) = (span(&xs), span(&ys));
    if dx <= 0.0 || dy <= 0.0 {
        return None;
    }
    let best = (0..xs.len())
        .map(|i| (i, (xs[i] - x0) / dx - (ys[i] - y0) / dy))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (best.1 > 0.0).then(|| order[best.0])
}

/// The most runs an SLO search makes: it ends there with the best rate it found.
const MAX_RUNS: usize = 30;

/// The runs of a profile, one at a time.
#[derive(Debug, Clone)]
pub struct Planner {
    profile: Profile,
    arrival: Arrival,
    outcome: Outcome,
    /// The SLO search's bracket: the highest rate that met, the lowest that missed.
    bracket: (Option<f64>, Option<f64>),
    /// The rate whose 1.2 × check last ran.
    checked_at: Option<f64>,
}

impl Planner {
    /// The runs of `profile`; its open-loop runs have `arrival`'s gaps.
    #[must_use]
    pub fn new(profile: Profile, arrival: Arrival) -> Self {
        let name = match profile {
            Profile::Sweep { .. } => "sweep",
            Profile::SloSearch { .. } => "slo_search",
        };
        Self {
            profile,
            arrival,
            outcome: Outcome {
                profile: name,
                ..Outcome::default()
            },
            bracket: (None, None),
            checked_at: None,
        }
    }

    /// The run 20 % faster than `rate`, the answer so far.
    fn check(&mut self, rate: f64) -> Step {
        self.checked_at = Some(rate);
        self.open("check", rate * 1.2)
    }

    fn open(&self, kind: &'static str, rate: f64) -> Step {
        Step {
            kind,
            model: LoadModel::Open {
                rate,
                arrival: self.arrival,
                max_concurrency: None,
            },
        }
    }

    /// Records the result of `step`, the run [`next`](Self::next_step) asked for last.
    pub fn record(&mut self, step: &Step, summary: &Summary) {
        let missed = match &self.profile {
            Profile::SloSearch { slo, .. } if matches!(step.model, LoadModel::Open { .. }) => {
                slo.missed(summary)
            }
            _ => None,
        };
        if let (LoadModel::Open { rate, .. }, Profile::SloSearch { .. }) =
            (step.model, &self.profile)
        {
            if step.kind == "check" {
                self.outcome.faster_missed = Some(missed.is_some());
                if missed.is_none() {
                    // 20 % faster met them too: the search goes on from there (past a
                    // rate that missed before, that miss was noise: forget it).
                    self.bracket.0 = Some(rate);
                    if self.bracket.1.is_some_and(|m| m <= rate) {
                        self.bracket.1 = None;
                    }
                } else {
                    self.bracket.1 = Some(self.bracket.1.map_or(rate, |r: f64| r.min(rate)));
                }
            } else if missed.is_none() {
                self.bracket.0 = Some(self.bracket.0.map_or(rate, |r: f64| r.max(rate)));
            } else {
                self.bracket.1 = Some(self.bracket.1.map_or(rate, |r: f64| r.min(rate)));
            }
        }
        self.outcome.points.push(Point::of(step, summary, missed));
    }

    /// The next run, or `None` when the profile is done.
    #[must_use]
    pub fn next_step(&mut self) -> Option<Step> {
        let done = self.outcome.points.len();
        match self.profile.clone() {
            Profile::Sweep {
                points,
                max_concurrency,
            } => {
                let steps = usize::try_from(points).unwrap_or(3);
                match done {
                    0 => Some(Step {
                        kind: "synchronous",
                        model: LoadModel::Closed { concurrency: 1 },
                    }),
                    1 => Some(Step {
                        kind: "throughput",
                        model: LoadModel::Closed {
                            concurrency: max_concurrency,
                        },
                    }),
                    n if n < steps => {
                        let (lo, hi, ends) = self.sweep_range();
                        let between = steps - 2;
                        // Strictly between two measured rates; or, for a flat server,
                        // over the whole range made up around it, both ends included.
                        let (i, parts) = match (ends, between) {
                            (false, _) => (n - 1, between + 1),
                            (true, 1) => (1, 1),
                            (true, _) => (n - 2, between - 1),
                        };
                        #[allow(clippy::cast_precision_loss)]
                        let rate = lo + (hi - lo) * i as f64 / parts as f64;
                        Some(self.open("rate", rate))
                    }
                    _ => {
                        self.finish_sweep();
                        None
                    }
                }
            }
            Profile::SloSearch {
                max_rate,
                precision,
                max_concurrency,
                ..
            } => {
                if done == 0 && max_rate.is_none() {
                    return Some(Step {
                        kind: "throughput",
                        model: LoadModel::Closed {
                            concurrency: max_concurrency,
                        },
                    });
                }
                let ceiling = max_rate.unwrap_or_else(|| {
                    self.outcome
                        .points
                        .first()
                        .map_or(1.0, |p| p.requests_per_second * 1.5)
                });
                match self.bracket {
                    // The top first: a server that meets the objectives there needs no search.
                    (None, None) => Some(self.open("search", ceiling)),
                    // A check past every rate that missed met too: 20 % faster again.
                    // (The top itself met: nothing to search, said below.)
                    (Some(met), None) if met < ceiling && self.outcome.points.len() < MAX_RUNS => {
                        Some(self.check(met))
                    }
                    (Some(met), None) => {
                        self.outcome.slo_rate = Some(met);
                        self.outcome.problem = Some(if met >= ceiling {
                            format!(
                                "the highest rate tried, {met:.3}/s, met the objectives: raise max_rate to find where they are missed"
                            )
                        } else {
                            format!(
                                "every rate up to {met:.3}/s met the objectives, and the search stopped after {MAX_RUNS} runs"
                            )
                        });
                        None
                    }
                    (met, Some(missed)) => {
                        let low = met.unwrap_or(0.0);
                        if met.is_some() && (missed - low) <= precision * low {
                            // Done once the answer's own 1.2 x check ran (and missed).
                            if self.checked_at == Some(low) || self.outcome.points.len() >= MAX_RUNS
                            {
                                self.outcome.slo_rate = met;
                                return None;
                            }
                            return Some(self.check(low));
                        }
                        if met.is_none() && missed < ceiling * 1e-3 {
                            self.outcome.problem =
                                Some(format!("no rate down to {missed:.4}/s met the objectives"));
                            return None;
                        }
                        Some(self.open("search", f64::midpoint(low, missed)))
                    }
                }
            }
        }
    }

    /// The constant rates of a sweep: between the synchronous and throughput passes'
    /// rates, or around them when concurrency gains nothing; and whether the ends
    /// are to be runs too (a range made up around one rate, which the two passes
    /// did not measure).
    fn sweep_range(&self) -> (f64, f64, bool) {
        let rate = |i: usize| {
            self.outcome
                .points
                .get(i)
                .map_or(1.0, |p| p.requests_per_second)
        };
        let (sync, max) = (rate(0), rate(1).max(rate(0)));
        if max < sync * 1.2 {
            (sync * 0.5, max * 1.5, true)
        } else {
            (sync, max, false)
        }
    }

    fn finish_sweep(&mut self) {
        // Latency against the load offered: the synchronous pass (at the rate it got)
        // and the constant rates asked for. Not the throughput pass, a closed loop at
        // its cap whose latency is its queue; and not an open loop's completions per
        // scheduled second, which past capacity count answers that came after it.
        let curve: Vec<(usize, (f64, f64))> = self
            .outcome
            .points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.kind != "throughput")
            .map(|(i, p)| (i, (p.offered(), p.latency_p99_ms)))
            .collect();
        let points: Vec<(f64, f64)> = curve.iter().map(|(_, p)| *p).collect();
        self.outcome.knee = knee(&points).map(|k| curve[k].0);
        if self.outcome.knee.is_none() {
            self.outcome.problem =
                Some("no knee: latency did not rise with throughput over the sweep".into());
        }
    }

    /// What the profile found (complete once [`next`](Self::next_step) gave `None`).
    #[must_use]
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Recorder, Slo};
    use std::time::Duration;

    /// A summary of `n` requests of `latency_ms` over one second.
    fn summary(n: u64, latency_ms: u64) -> Summary {
        let mut r = Recorder::new(Slo::default(), false);
        let ms = Duration::from_millis;
        for i in 0..n {
            r.record(
                i,
                ms(0),
                ms(0),
                ms(latency_ms),
                false,
                super::super::Outcome::default(),
            );
        }
        r.summary(Duration::from_secs(1), None)
    }

    #[test]
    fn the_knee_is_where_latency_starts_to_climb() {
        // Flat latency up to 80 req/s, then it climbs steeply.
        let curve = [
            (10.0, 5.0),
            (40.0, 5.5),
            (80.0, 6.0),
            (90.0, 60.0),
            (95.0, 300.0),
        ];
        assert_eq!(knee(&curve), Some(2));
        // In any order.
        let shuffled = [curve[4], curve[0], curve[2], curve[1], curve[3]];
        assert_eq!(knee(&shuffled), Some(2));
        assert_eq!(knee(&curve[..2]), None);
        assert_eq!(knee(&[(1.0, 5.0), (2.0, 5.0), (3.0, 5.0)]), None, "flat");
    }

    #[test]
    fn a_sweep_runs_synchronous_throughput_then_rates_between() {
        let mut p = Planner::new(
            Profile::parse(&serde_json::json!({"sweep": {"points": 5, "max_concurrency": 16}}))
                .unwrap(),
            Arrival::Constant,
        );
        let s = p.next_step().unwrap();
        assert_eq!(
            (s.kind, s.model),
            ("synchronous", LoadModel::Closed { concurrency: 1 })
        );
        p.record(&s, &summary(10, 100));
        let t = p.next_step().unwrap();
        assert_eq!(t.model, LoadModel::Closed { concurrency: 16 });
        p.record(&t, &summary(50, 320));
        let rates: Vec<f64> = (0..3)
            .map(|_| {
                let step = p.next_step().unwrap();
                let LoadModel::Open { rate, .. } = step.model else {
                    panic!()
                };
                p.record(&step, &summary(u64::try_from(rate as i64).unwrap(), 100));
                rate
            })
            .collect();
        assert_eq!(rates, [20.0, 30.0, 40.0]);
        assert!(p.next_step().is_none());
        assert_eq!(p.outcome().points.len(), 5);
    }

    #[test]
    fn a_server_that_gains_nothing_from_concurrency_is_swept_around_its_rate() {
        let mut p = Planner::new(Profile::parse(&"sweep".into()).unwrap(), Arrival::Poisson);
        let s = p.next_step().unwrap();
        p.record(&s, &summary(10, 100));
        let t = p.next_step().unwrap();
        p.record(&t, &summary(10, 3200));
        // Six rates from half the synchronous rate to 1.5 times the throughput pass's,
        // both included: a queue must show at the top of the range.
        let mut rates = Vec::new();
        while let Some(step) = p.next_step() {
            let LoadModel::Open { rate, arrival, .. } = step.model else {
                panic!()
            };
            assert_eq!(arrival, Arrival::Poisson);
            p.record(&step, &summary(10, 100));
            rates.push(rate);
        }
        let expected = [5.0, 7.0, 9.0, 11.0, 13.0, 15.0];
        assert!(
            rates
                .iter()
                .zip(expected)
                .all(|(r, e)| (r - e).abs() < 1e-9),
            "{rates:?}"
        );
        assert_eq!(rates.len(), expected.len());
        // Three points: one rate, the top.
        let mut p = Planner::new(
            Profile::parse(&serde_json::json!({"sweep": {"points": 3}})).unwrap(),
            Arrival::Constant,
        );
        for _ in 0..2 {
            let s = p.next_step().unwrap();
            p.record(&s, &summary(10, 100));
        }
        let LoadModel::Open { rate, .. } = p.next_step().unwrap().model else {
            panic!()
        };
        assert!((rate - 15.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn an_slo_search_bisects_to_the_highest_rate_that_meets_and_checks_a_faster_one() {
        let profile = Profile::parse(&serde_json::json!({"slo_search":
            {"latency_p99_ms": 100, "precision": 0.05}}))
        .unwrap();
        let mut p = Planner::new(profile, Arrival::Constant);
        // The server: 100 req/s at most (the throughput pass), latency 50 ms up to
        // 40 req/s, 500 ms beyond.
        let mut runs = 0;
        while let Some(step) = p.next_step() {
            runs += 1;
            let result = match step.model {
                LoadModel::Open { rate, .. } => summary(10, if rate <= 40.0 { 50 } else { 500 }),
                LoadModel::Closed { .. } => summary(100, 500),
                LoadModel::Replay { .. } => unreachable!(),
            };
            p.record(&step, &result);
            assert!(runs < 30);
        }
        let o = p.outcome();
        let answer = o.slo_rate.unwrap();
        assert!((38.0..=40.0).contains(&answer), "{answer}: {:#?}", o.points);
        assert_eq!(o.faster_missed, Some(true));
        assert_eq!(o.points.first().unwrap().kind, "throughput");
        assert_eq!(o.points.last().unwrap().kind, "check");
        // A first check that met by chance (a noisy run): the search goes on past it,
        // and its answer still has a check of its own that missed.
        let profile = Profile::parse(&serde_json::json!({"slo_search":
            {"latency_p99_ms": 100, "precision": 0.05}}))
        .unwrap();
        let mut p = Planner::new(profile, Arrival::Constant);
        let (mut runs, mut lucky) = (0, true);
        while let Some(step) = p.next_step() {
            runs += 1;
            let result = match step.model {
                LoadModel::Open { .. } if step.kind == "check" && lucky => {
                    lucky = false;
                    summary(10, 50)
                }
                LoadModel::Open { rate, .. } => summary(10, if rate <= 40.0 { 50 } else { 500 }),
                _ => summary(100, 500),
            };
            p.record(&step, &result);
            assert!(runs < 40);
        }
        // The lucky check's rate is the answer (every rate above it missed), and
        // its own 1.2 x check ran and missed.
        let o = p.outcome();
        let answer = o.slo_rate.unwrap();
        assert!(
            (answer - 1.2 * 39.843_75).abs() < 1e-9,
            "{answer}: {:#?}",
            o.points
        );
        assert!(
            o.points.iter().any(|p| p.kind == "check"
                && p.missed.is_some()
                && (p.rate.unwrap() - 1.2 * answer).abs() < 1e-9),
            "{:#?}",
            o.points
        );
        assert_eq!(o.faster_missed, Some(true));
        assert!(o.problem.is_none(), "{:?}", o.problem);
        let e = Profile::parse(&serde_json::json!({"slo_search": {}})).unwrap_err();
        assert!(e.contains("names no objective"), "{e}");
        let e = Profile::parse(&serde_json::json!({"sweep": {"point": 3}})).unwrap_err();
        assert!(e.contains("unknown key `point`"), "{e}");
        assert!(
            Profile::parse(&"ramp".into())
                .unwrap_err()
                .contains("`load: ramp`")
        );
    }
}
