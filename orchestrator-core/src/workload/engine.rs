//! Running a load model against a [`Workload`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::api::{Connection, Workload};
use super::rng::Rng;
use super::stats::{OpenLoopFigures, Outcome, Recorder, Sample, Slo, Summary};

/// How requests arrive in an open loop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arrival {
    /// Evenly spaced, `1/rate` apart.
    Constant,
    /// Exponential gaps with mean `1/rate`.
    Poisson,
    /// Gamma gaps with shape `burstiness` and mean `1/rate`: below 1 burstier than
    /// Poisson, above 1 more regular; 1 is Poisson.
    Gamma {
        /// The gamma shape.
        burstiness: f64,
    },
}

/// Who decides when requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum LoadModel {
    /// `concurrency` users, each sending its next request when the last one answered.
    Closed {
        /// The number of users (connections).
        concurrency: u32,
    },
    /// Requests sent on a schedule, whatever the answers; latency counts from the
    /// scheduled time.
    Open {
        /// Requests per second.
        rate: f64,
        /// The gaps between requests.
        arrival: Arrival,
        /// At most this many requests in flight ([`DEFAULT_MAX_CONCURRENCY`] when
        /// `None`); a request due when the cap is full is dropped and counted.
        max_concurrency: Option<u32>,
    },
    /// A timed dataset's requests, each sent at its own time (scaled by
    /// `time_scale`: 0.5 replays twice as fast); latency counts from that time.
    Replay {
        /// The factor on the dataset's times.
        time_scale: f64,
        /// As [`Open`](Self::Open)'s.
        max_concurrency: Option<u32>,
    },
}

/// A load: the model and its bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSpec {
    /// The load model.
    pub model: LoadModel,
    /// How long to measure (after the warm-up).
    pub duration: Option<Duration>,
    /// How many requests to measure (after the warm-up).
    pub requests: Option<u64>,
    /// How long to send before measuring.
    pub warmup: Duration,
    /// How long the load takes to reach its level, linearly (a closed loop's users
    /// start one after another over it, an open loop's rate climbs from 0): part of
    /// the warm-up, which lasts at least this long.
    pub ramp_up: Duration,
    /// Objectives for goodput.
    pub slo: Slo,
    /// Keep every request for the JSON-lines file.
    #[serde(skip)]
    pub keep_samples: bool,
    /// Seed of the arrival schedule.
    pub seed: u64,
    /// When to begin (after connecting): the instant a client's replicas agreed on, so
    /// that their measured periods start together. At once when `None` or past.
    #[serde(skip)]
    pub start_at: Option<std::time::SystemTime>,
    /// An open loop's first request is due this long after the start: replicas with
    /// constant arrivals interleave their schedules by it.
    #[serde(skip)]
    pub phase: Duration,
    /// The settings named no load model (no concurrency, rate or arrival): a workload
    /// with a timed dataset then replays it ([`LoadModel::Replay`] at its own times)
    /// instead of running the default closed loop of one user.
    #[serde(skip)]
    pub implicit_model: bool,
}

impl LoadSpec {
    /// How long is sent before measuring: the warm-up, or the ramp when it is longer.
    #[must_use]
    pub fn unmeasured(&self) -> Duration {
        self.warmup.max(self.ramp_up)
    }

    /// `requests` requests from `concurrency` users in a closed loop: no warm-up, no
    /// SLOs, no samples kept, seed 1.
    #[must_use]
    pub fn closed(concurrency: u32, requests: u64) -> Self {
        Self {
            model: LoadModel::Closed { concurrency },
            duration: None,
            requests: Some(requests),
            warmup: Duration::ZERO,
            ramp_up: Duration::ZERO,
            slo: Slo::default(),
            keep_samples: false,
            start_at: None,
            phase: Duration::ZERO,
            seed: 1,
            implicit_model: false,
        }
    }
}

/// A run's summary and (when kept) its requests.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The summary.
    pub summary: Summary,
    /// Every request, in send order (empty unless `keep_samples`).
    pub samples: Vec<Sample>,
    /// What the summary was made from, exactly (`recorder.json`): runs of one load
    /// on several machines merge into one result ([`RunRecord::merge`]).
    pub record: RunRecord,
}

/// A run's recorder and its measured window: `recorder.json`, beside `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The measured window, seconds.
    pub measured_seconds: f64,
    /// Open loop: the rate asked for, what was sent and dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenLoopFigures>,
    /// Every histogram and counter.
    pub recorder: super::stats::RecorderState,
}

impl RunRecord {
    /// One record of runs that loaded the same service at once (replicas, or runs on
    /// several machines over the same period): every request's latency in one
    /// histogram, counts added, an open loop's rates asked for and requests sent
    /// added, over the longest of their measured windows (they ran together, so the
    /// window they share is the longest).
    ///
    /// # Errors
    /// No run, a recorder that cannot be read, or open- and closed-loop runs mixed.
    pub fn merged(records: &[Self]) -> Result<Self, String> {
        let (first, rest) = records.split_first().ok_or("no run to merge")?;
        let mut total = Recorder::from_state(&first.recorder)?;
        let mut open = first.open;
        let mut measured = first.measured_seconds;
        for r in rest {
            total.merge(Recorder::from_state(&r.recorder)?);
            measured = measured.max(r.measured_seconds);
            open = match (open, r.open) {
                (None, None) => None,
                (Some(a), Some(o)) => Some(OpenLoopFigures {
                    target_rate: a.target_rate + o.target_rate,
                    sent: a.sent + o.sent,
                    dropped: a.dropped + o.dropped,
                }),
                _ => return Err("an open-loop run cannot be merged with a closed-loop one".into()),
            };
        }
        Ok(Self {
            measured_seconds: measured,
            open,
            recorder: total.state(),
        })
    }

    /// The summary this record makes.
    ///
    /// # Errors
    /// A recorder that cannot be read.
    pub fn summary(&self) -> Result<Summary, String> {
        let recorder = Recorder::from_state(&self.recorder)?;
        Ok(recorder.summary(
            Duration::from_secs_f64(self.measured_seconds.max(0.0)),
            self.open,
        ))
    }
}

impl RunResult {
    /// Writes `summary.json` (with `extra` merged in at the top) and `requests.jsonl`
    /// into `dir`.
    ///
    /// # Errors
    /// The files cannot be written.
    pub fn write(&self, dir: &std::path::Path, extra: &serde_json::Value) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let mut summary = serde_json::to_value(&self.summary).expect("summaries serialise");
        if let (Some(map), Some(extra)) = (summary.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        let mut text = serde_json::to_string_pretty(&summary).expect("summaries serialise");
        text.push('\n');
        std::fs::write(dir.join("summary.json"), text)?;
        let mut record = serde_json::to_string(&self.record).expect("records serialise");
        record.push('\n');
        std::fs::write(dir.join("recorder.json"), record)?;
        let mut lines = std::io::BufWriter::new(std::fs::File::create(dir.join("requests.jsonl"))?);
        for sample in &self.samples {
            serde_json::to_writer(&mut lines, sample)?;
            lines.write_all(b"\n")?;
        }
        lines.flush()
    }
}

/// Why a run could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The load has neither a duration nor a request count, or a bad value.
    #[error("{0}")]
    Spec(String),
    /// The first connection failed: nothing was sent.
    #[error("cannot reach the target: {0}")]
    Unreachable(String),
    /// The workload could not prepare against the target: nothing was sent.
    #[error("{0}")]
    Prepare(String),
}

/// Runs `spec` against `workload`. One connection is opened first, so an unreachable
/// target fails before any load starts.
///
/// # Errors
/// A spec without bounds, or an unreachable target.
pub async fn run(workload: Arc<dyn Workload>, spec: &LoadSpec) -> Result<RunResult, WorkloadError> {
    run_live(workload, spec, None).await
}

/// [`run`], counting every measured request into `live` as it completes (for a
/// Prometheus endpoint: [`serve_metrics`](super::serve_metrics)).
///
/// # Errors
/// A spec without bounds, or an unreachable target.
pub async fn run_live(
    workload: Arc<dyn Workload>,
    spec: &LoadSpec,
    live: Option<Arc<super::live::LiveMetrics>>,
) -> Result<RunResult, WorkloadError> {
    run_until(workload, spec, live, CancellationToken::new()).await
}

/// [`run_live`], ending early once `stop` is cancelled (a job's SIGTERM): no new
/// request starts, those in flight finish, and the result covers what was measured
/// up to then.
///
/// # Errors
/// A spec without bounds, or an unreachable target.
pub async fn run_until(
    workload: Arc<dyn Workload>,
    spec: &LoadSpec,
    live: Option<Arc<super::live::LiveMetrics>>,
    stop: CancellationToken,
) -> Result<RunResult, WorkloadError> {
    workload.prepare().await.map_err(WorkloadError::Prepare)?;
    let (model, replay) = match spec.model {
        LoadModel::Closed { .. } if spec.implicit_model => match workload.schedule(1.0) {
            Some(times) => {
                let model = LoadModel::Replay {
                    time_scale: 1.0,
                    max_concurrency: None,
                };
                (model, Some(times))
            }
            None => (spec.model, None),
        },
        LoadModel::Replay { time_scale, .. } => {
            if !(time_scale > 0.0 && time_scale.is_finite()) {
                return Err(WorkloadError::Spec(format!(
                    "time_scale must be a positive number, not {time_scale}"
                )));
            }
            let times = workload.schedule(time_scale).ok_or_else(|| {
                WorkloadError::Spec(
                    "arrival `trace` replays a dataset's times, and this workload has none: give it a timed trace as its `dataset`".into(),
                )
            })?;
            (spec.model, Some(times))
        }
        model => (model, None),
    };
    if spec.duration.is_none() && spec.requests.is_none() && replay.is_none() {
        return Err(WorkloadError::Spec(
            "give a duration or a number of requests".into(),
        ));
    }
    match model {
        LoadModel::Closed { concurrency: 0 } => {
            return Err(WorkloadError::Spec("concurrency must be at least 1".into()));
        }
        LoadModel::Open { rate, .. } if !(rate > 0.0 && rate.is_finite()) => {
            return Err(WorkloadError::Spec(format!(
                "the rate must be a positive number, not {rate}"
            )));
        }
        LoadModel::Open {
            arrival: Arrival::Gamma { burstiness },
            ..
        } if burstiness.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) => {
            return Err(WorkloadError::Spec("burstiness must be positive".into()));
        }
        _ => {}
    }
    let first = workload
        .connect()
        .await
        .map_err(WorkloadError::Unreachable)?;
    let before = workload.server_counters().await;
    if let Some(at) = spec.start_at {
        // The timer wheel's millisecond, then a thread's sleep, precise to tens of
        // microseconds: replicas interleave their schedules by less than a millisecond.
        let left = || at.duration_since(std::time::SystemTime::now()).ok();
        if let Some(wait) = left().filter(|w| *w > Duration::from_millis(3)) {
            tokio::time::sleep(wait - Duration::from_millis(2)).await;
        }
        if let Some(rest) = left() {
            std::thread::sleep(rest);
        }
    }
    let scraping = super::scraping::Scraping::start(&workload, spec.unmeasured()).await;
    let mut result = match model {
        LoadModel::Closed { concurrency } => {
            closed(workload.clone(), first, concurrency, spec, live, stop).await
        }
        LoadModel::Open {
            max_concurrency, ..
        }
        | LoadModel::Replay {
            max_concurrency, ..
        } => {
            let schedule = match model {
                LoadModel::Open { rate, arrival, .. } => Schedule::Rate { rate, arrival },
                _ => Schedule::Times(replay.unwrap_or_default()),
            };
            open(
                workload.clone(),
                first,
                schedule,
                max_concurrency,
                spec,
                live,
                stop,
            )
            .await
        }
    };
    // The measured period ended about now (its last answer, or the schedule's end).
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    result.summary.measured_window_unix_s = Some([end - result.summary.measured_seconds, end]);
    result.summary.unit = workload.unit();
    if let Some(scraping) = scraping {
        result.summary.server_metrics = scraping.finish(workload.as_ref()).await;
    }
    if let Some(before) = before {
        if let Some(after) = workload.server_counters().await {
            result.summary.server_counters = Some(
                after
                    .into_iter()
                    .map(|(name, value)| {
                        let grown = value.saturating_sub(before.get(&name).copied().unwrap_or(0));
                        (name, grown)
                    })
                    .collect(),
            );
        }
    }
    Ok(result)
}

/// When to stop, shared by the workers.
struct Bounds {
    t0: Instant,
    warm_end: Instant,
    duration: Option<Duration>,
    /// When the measured period began: the end of the warm-up, or (a closed loop with a
    /// warm-up) once every warm-up request has ended, so that none runs on into it.
    measure_from: std::sync::OnceLock<Instant>,
    limit: Option<u64>,
    measured: AtomicU64,
    numbers: AtomicU64,
    /// Cancelled: the run ends now.
    stop: CancellationToken,
}

impl Bounds {
    /// The bounds of a run starting now. With `drain`, the measured period begins
    /// when [`begin_measuring`](Self::begin_measuring) is called, not at the end of the
    /// warm-up.
    fn new(spec: &LoadSpec, stop: CancellationToken, drain: bool) -> Self {
        let t0 = Instant::now();
        let warm_end = t0 + spec.unmeasured();
        let measure_from = std::sync::OnceLock::new();
        if !drain || spec.unmeasured().is_zero() {
            let _ = measure_from.set(warm_end);
        }
        Self {
            t0,
            warm_end,
            duration: spec.duration,
            measure_from,
            limit: spec.requests,
            measured: AtomicU64::new(0),
            numbers: AtomicU64::new(0),
            stop,
        }
    }

    /// Whether the warm-up must drain before the measured period begins.
    fn draining(&self) -> bool {
        self.measure_from.get().is_none()
    }

    /// The measured period begins now (the first caller decides, for all).
    fn begin_measuring(&self) {
        self.measure_from.get_or_init(Instant::now);
    }

    /// When the measured period began (until it does: when the warm-up ends).
    fn measure_start(&self) -> Instant {
        self.measure_from.get().copied().unwrap_or(self.warm_end)
    }

    /// When the run ends, if it lasts a duration.
    fn end(&self) -> Option<Instant> {
        self.duration.map(|d| self.measure_start() + d)
    }

    /// Claims the next request sent at `at`: its number and whether it is warm-up;
    /// `None` when the run is over.
    fn claim(&self, at: Instant) -> Option<(u64, bool)> {
        if self.end().is_some_and(|end| at >= end) || self.stop.is_cancelled() {
            return None;
        }
        let warm = at < self.warm_end;
        if !warm {
            if let Some(limit) = self.limit {
                if self.measured.fetch_add(1, Ordering::Relaxed) >= limit {
                    return None;
                }
            }
        }
        Some((self.numbers.fetch_add(1, Ordering::Relaxed), warm))
    }

    /// The measured time: from the start of the measured period to `last`.
    fn measured(&self, last: Instant) -> Duration {
        last.saturating_duration_since(self.measure_start())
    }
}

async fn one(workload: &dyn Workload, conn: &mut Option<Box<dyn Connection>>, n: u64) -> Outcome {
    if conn.is_none() {
        match workload.connect().await {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                tracing::debug!(error = %e, "connect failed");
                return Outcome::failed("connect");
            }
        }
    }
    let out = conn.as_mut().expect("connected above").request(n).await;
    if out.reconnect {
        *conn = None;
    }
    out
}

async fn closed(
    workload: Arc<dyn Workload>,
    first: Box<dyn Connection>,
    concurrency: u32,
    spec: &LoadSpec,
    live: Option<Arc<super::live::LiveMetrics>>,
    stop: CancellationToken,
) -> RunResult {
    let bounds = Arc::new(Bounds::new(spec, stop, true));
    // With a warm-up, every worker's warm-up requests end before any measured one
    // starts: a warm-up request running on into the measured period would leave its
    // worker idle there, and the rates low.
    let drained = Arc::new(tokio::sync::Barrier::new(concurrency as usize));
    let mut first = Some(first);
    let mut tasks = Vec::new();
    for user in 0..concurrency {
        let (workload, bounds, drained) = (workload.clone(), bounds.clone(), drained.clone());
        // A ramp: user k starts k/N of the way into it.
        let start_at = bounds.t0
            + spec
                .ramp_up
                .mul_f64(f64::from(user) / f64::from(concurrency));
        let mut conn = first.take();
        let (slo, keep, live) = (spec.slo, spec.keep_samples, live.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new(slo, keep).with_live(live);
            let mut last = bounds.t0;
            tokio::time::sleep_until(start_at).await;
            if bounds.draining() {
                loop {
                    let start = Instant::now();
                    if start >= bounds.warm_end {
                        break;
                    }
                    let Some((n, warm)) = bounds.claim(start) else {
                        break;
                    };
                    let out = one(workload.as_ref(), &mut conn, n).await;
                    let at = start - bounds.t0;
                    rec.record(n, at, at, Instant::now() - bounds.t0, warm, out);
                }
                drained.wait().await;
                bounds.begin_measuring();
            }
            loop {
                let start = Instant::now();
                let Some((n, warm)) = bounds.claim(start) else {
                    break;
                };
                let out = one(workload.as_ref(), &mut conn, n).await;
                let end = Instant::now();
                let at = start - bounds.t0;
                rec.record(n, at, at, end - bounds.t0, warm, out);
                last = end;
            }
            (rec, last)
        }));
    }
    let mut total = Recorder::new(spec.slo, spec.keep_samples);
    let mut last = bounds.measure_start();
    for task in tasks {
        if let Ok((rec, end)) = task.await {
            total.merge(rec);
            last = last.max(end);
        }
    }
    let measured = bounds.measured(last);
    let summary = total.summary(measured, None);
    let record = RunRecord {
        measured_seconds: measured.as_secs_f64(),
        open: None,
        recorder: total.state(),
    };
    RunResult {
        summary,
        samples: total.into_samples(),
        record,
    }
}

/// The open loop's cap when none is given: beyond it the client, not the server, would
/// be what is measured (every request in flight holds a connection).
pub const DEFAULT_MAX_CONCURRENCY: u32 = 1024;

/// A request handed to an open-loop worker: its number, scheduled time (offset from
/// the start) and whether it is warm-up.
type Job = (u64, Duration, bool);

/// When an open loop's requests are due.
enum Schedule {
    /// At a rate, with gaps drawn from `arrival`.
    Rate { rate: f64, arrival: Arrival },
    /// At these times from the start (a replayed trace's).
    Times(Vec<Duration>),
}

impl Schedule {
    /// Requests per second it asks for: a replay's mean over its span.
    #[allow(clippy::cast_precision_loss)]
    fn rate(&self) -> f64 {
        match self {
            Self::Rate { rate, .. } => *rate,
            Self::Times(times) => {
                let span = times.last().copied().unwrap_or_default().as_secs_f64();
                if times.len() < 2 || span <= 0.0 {
                    0.0
                } else {
                    (times.len() - 1) as f64 / span
                }
            }
        }
    }

    /// The gap after each request, in turn (`None`: the schedule has ended).
    fn gaps(self, seed: u64) -> Box<dyn FnMut() -> Option<Duration> + Send> {
        match self {
            Self::Rate { rate, arrival } => {
                let mut rng = Rng::new(seed);
                let mean = 1.0 / rate;
                Box::new(move || {
                    Some(Duration::from_secs_f64(match arrival {
                        Arrival::Constant => mean,
                        Arrival::Poisson => rng.exponential(mean),
                        Arrival::Gamma { burstiness } => rng.gamma(burstiness, mean / burstiness),
                    }))
                })
            }
            Self::Times(times) => {
                let mut i = 0;
                Box::new(move || {
                    i += 1;
                    Some(times.get(i)?.saturating_sub(times[i - 1]))
                })
            }
        }
    }
}

/// An open loop. Long-lived workers, one connection each, take scheduled requests from
/// a channel. A dispatcher on an OS thread of its own keeps the schedule (`nanosleep`
/// is precise to tens of microseconds, where the async timer wheel has milliseconds,
/// and a sleeping thread costs no CPU where spinning would take it from the workers).
/// For each request it claims an idle worker, starts a new one when none is idle, or,
/// at the cap, drops the request and counts it. Nothing is spawned per request.
async fn open(
    workload: Arc<dyn Workload>,
    first: Box<dyn Connection>,
    schedule: Schedule,
    cap: Option<u32>,
    spec: &LoadSpec,
    live: Option<Arc<super::live::LiveMetrics>>,
    stop: CancellationToken,
) -> RunResult {
    // An open loop keeps its schedule: warm-up requests still in flight when it ends
    // overlap the first measured ones, as in any steady arrival process.
    let bounds = Bounds::new(spec, stop, false);
    let t0 = bounds.t0;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let idle = Arc::new(AtomicU64::new(0));
    // One recorder for all workers: their number follows the load (up to the cap), and
    // a recorder per worker would cost its histograms each time.
    let recorder = Arc::new(std::sync::Mutex::new(
        Recorder::new(spec.slo, spec.keep_samples).with_live(live),
    ));
    let runtime = tokio::runtime::Handle::current();
    let spawn_worker = {
        let (workload, rx, idle, recorder) =
            (workload.clone(), rx.clone(), idle.clone(), recorder.clone());
        let mut first = Some(first);
        move || {
            let (workload, rx, idle, recorder) =
                (workload.clone(), rx.clone(), idle.clone(), recorder.clone());
            let mut conn = first.take();
            runtime.spawn(async move {
                let mut last = t0;
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some((n, intended, warm)) = job else {
                        break;
                    };
                    let start = Instant::now();
                    let out = one(workload.as_ref(), &mut conn, n).await;
                    let end = Instant::now();
                    recorder.lock().expect("recorder lock").record(
                        n,
                        intended,
                        start - t0,
                        end - t0,
                        warm,
                        out,
                    );
                    last = end;
                    idle.fetch_add(1, Ordering::AcqRel);
                }
                last
            })
        }
    };
    let cap = cap.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    let (seed, spec_phase, ramp_up) = (spec.seed, spec.phase, spec.ramp_up);
    let rate = schedule.rate();
    let dispatcher = {
        let idle = idle.clone();
        let mut spawn_worker = spawn_worker;
        move || {
            let ramp = match schedule {
                Schedule::Rate { .. } => ramp_up,
                Schedule::Times(_) => Duration::ZERO,
            };
            let mut gap = schedule.gaps(seed);
            // Requests are due at `v` on the schedule at the full rate; a ramp maps
            // that onto the clock so that the rate climbs linearly from 0 (its
            // cumulative count R·t²/2ramp while it lasts).
            let warp = move |v: Duration| -> Duration {
                if ramp.is_zero() {
                    v
                } else if v < ramp / 2 {
                    Duration::from_secs_f64((2.0 * v.as_secs_f64() * ramp.as_secs_f64()).sqrt())
                } else {
                    v + ramp / 2
                }
            };
            let mut virtual_due = Duration::ZERO;
            let (mut sent, mut dropped, mut started) = (0u64, 0u64, 0u32);
            let mut workers = Vec::new();
            let mut next = Some(t0 + spec_phase + warp(virtual_due));
            let mut last_dispatch = bounds.warm_end;
            while let Some(due) = next {
                let Some((n, warm)) = bounds.claim(due) else {
                    break;
                };
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let intended = due - t0;
                next = gap().map(|g| {
                    virtual_due += g;
                    t0 + spec_phase + warp(virtual_due)
                });
                // Claim an idle worker, or start one, or drop at the cap.
                let claimed = idle
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |i| i.checked_sub(1))
                    .is_ok();
                if !claimed {
                    if started >= cap {
                        if !warm {
                            dropped += 1;
                        }
                        continue;
                    }
                    workers.push(spawn_worker());
                    started += 1;
                }
                if !warm {
                    sent += 1;
                    last_dispatch = Instant::now();
                }
                let _ = tx.send((n, intended, warm));
            }
            drop(tx);
            let ended = next.is_none();
            (sent, dropped, last_dispatch, workers, bounds, ended)
        }
    };
    let (sent, dropped, last_dispatch, workers, bounds, ended) =
        tokio::task::spawn_blocking(dispatcher)
            .await
            .expect("the dispatcher does not panic");
    let mut last = bounds.warm_end;
    for worker in workers {
        if let Ok(end) = worker.await {
            last = last.max(end);
        }
    }
    let total = Arc::try_unwrap(recorder)
        .map(|m| m.into_inner().expect("recorder lock"))
        .unwrap_or_else(|_| unreachable!("every worker has ended"));
    // The measured window is the schedule's (a slow tail must not make the achieved
    // rate look lower than what was sent), or longer when the dispatcher itself fell
    // behind the schedule: the achieved rate is what really went out, per real second.
    // A schedule that ran out first (a replayed trace shorter than the duration) is
    // measured to its last answer.
    let scheduled = bounds
        .end()
        .filter(|_| !ended)
        .map_or_else(|| bounds.measured(last), |end| end - bounds.warm_end);
    let window = scheduled.max(bounds.measured(last_dispatch));
    let open = OpenLoopFigures {
        target_rate: rate,
        sent,
        dropped,
    };
    let summary = total.summary(window, Some(open));
    let record = RunRecord {
        measured_seconds: window.as_secs_f64(),
        open: Some(open),
        recorder: total.state(),
    };
    RunResult {
        summary,
        samples: total.into_samples(),
        record,
    }
}
