//! What a run measured: per-request samples, HDR histograms, and the summary with the
//! definition of every metric written beside it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

mod input;
mod record;
pub use input::{InputLengthCheck, InputTally};
pub use record::{Buckets, RecorderState};

/// Where a request's output token count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// No tokens (not an LLM workload).
    #[default]
    None,
    /// Reported by the server (`usage`, `eval_count`).
    Server,
    /// Counted or estimated by the client.
    Client,
}

/// What a driver reports about one request; timings are from the moment the request
/// was actually sent.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The kind of failure (`http_503`, `timeout`, `connect`, ...); `None` on success.
    pub error: Option<String>,
    /// Time to the first token (or first byte of the body, for streaming drivers).
    pub ttft: Option<Duration>,
    /// Gaps between successive streamed chunks.
    pub chunk_gaps: Vec<Duration>,
    /// Output tokens, when the workload produces them.
    pub output_tokens: Option<u64>,
    /// Where `output_tokens` came from.
    pub token_source: TokenSource,
    /// Response bytes received.
    pub bytes: u64,
    /// The connection cannot be used again.
    pub reconnect: bool,
    /// What the server said about its own timing (e.g. Ollama's `eval_duration`).
    pub server: Option<serde_json::Value>,
    /// Which of the workload's operations this request was (`insert`, `query`), for
    /// the summary's per-operation figures; `None` for a workload of one kind.
    pub operation: Option<&'static str>,
    /// What the request carried, in the workload's [unit](super::Workload::unit)
    /// (vectors inserted, rows, commands); 0 when it has none.
    pub items: u64,
    /// Input (prompt) tokens, as the server counted them (`usage.prompt_tokens`).
    pub input_tokens: Option<u64>,
    /// Input tokens the client built the prompt to have (`input_tokens` of exact
    /// length, a trace's `input_length`): checked against the server's count.
    pub input_expected: Option<u64>,
}

impl Outcome {
    /// A failed request.
    #[must_use]
    pub fn failed(kind: impl Into<String>) -> Self {
        Self {
            error: Some(kind.into()),
            reconnect: true,
            ..Self::default()
        }
    }
}

/// One request, as the JSON-lines file records it. Times are microseconds since the
/// run started.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Its number.
    pub n: u64,
    /// When it was meant to be sent (open loop: the schedule; closed loop: = start).
    pub intended_us: u64,
    /// When it was sent.
    pub start_us: u64,
    /// When it completed.
    pub end_us: u64,
    /// End-to-end latency from the intended send time, ms.
    pub latency_ms: f64,
    /// Time to first token from the intended send time, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// Output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Where the token count came from.
    #[serde(skip_serializing_if = "is_none_source")]
    pub token_source: TokenSource,
    /// Bytes received.
    pub bytes: u64,
    /// The failure, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Sent during the warm-up (not in the summary).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warmup: bool,
    /// The server's own timing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<serde_json::Value>,
    /// Input tokens, as the server counted them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Input tokens the prompt was built to have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_expected: Option<u64>,
}

fn is_none_source(s: &TokenSource) -> bool {
    *s == TokenSource::None
}

/// Service-level objectives for goodput: a request counts as good when it succeeded
/// and meets every objective given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Longest acceptable end-to-end latency, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Longest acceptable time to first token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Longest acceptable time per output token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
}

impl Slo {
    fn is_set(&self) -> bool {
        self.latency_ms.is_some() || self.ttft_ms.is_some() || self.tpot_ms.is_some()
    }

    fn met(&self, s: &Sample) -> bool {
        let within = |limit: Option<f64>, value: Option<f64>| {
            limit.is_none_or(|l| value.is_some_and(|v| v <= l))
        };
        s.error.is_none()
            && within(self.latency_ms, Some(s.latency_ms))
            && within(self.ttft_ms, s.ttft_ms)
            && within(self.tpot_ms, s.tpot_ms)
    }
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds from 1 ns to one hour, three significant digits (0.1 % error).
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid bounds")
}

fn put(h: &mut Option<Histogram<u64>>, d: Duration) {
    let _ = h.get_or_insert_with(histogram).record(nanos(d));
}

fn merge(into: &mut Option<Histogram<u64>>, from: Option<Histogram<u64>>) {
    match (into.as_mut(), from) {
        (Some(a), Some(b)) => {
            let _ = a.add(&b);
        }
        (None, Some(b)) => *into = Some(b),
        (_, None) => {}
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Collects samples into histograms and counters; one per worker, merged at the end.
#[derive(Debug)]
pub struct Recorder {
    latency: Histogram<u64>,
    // Allocated on first use (each histogram is ~0.7 MB): a plain HTTP run never
    // needs the token metrics.
    ttft: Option<Histogram<u64>>,
    tpot: Option<Histogram<u64>>,
    itl: Option<Histogram<u64>>,
    lag: Option<Histogram<u64>>,
    completed: u64,
    failed: u64,
    warmup: u64,
    good: u64,
    errors: BTreeMap<String, u64>,
    output_tokens: u64,
    server_tokens: u64,
    client_tokens: u64,
    bytes: u64,
    items: u64,
    input: InputTally,
    operations: BTreeMap<Cow<'static, str>, OperationRecord>,
    slo: Slo,
    keep: bool,
    samples: Vec<Sample>,
    live: Option<std::sync::Arc<super::live::LiveMetrics>>,
}

impl Recorder {
    /// Also counts every measured request into `live`, for a metrics endpoint.
    #[must_use]
    pub fn with_live(mut self, live: Option<std::sync::Arc<super::live::LiveMetrics>>) -> Self {
        self.live = live;
        self
    }

    /// An empty recorder; `keep` keeps every sample for the JSON-lines file.
    #[must_use]
    pub fn new(slo: Slo, keep: bool) -> Self {
        Self {
            latency: histogram(),
            ttft: None,
            tpot: None,
            itl: None,
            lag: None,
            completed: 0,
            failed: 0,
            warmup: 0,
            good: 0,
            errors: BTreeMap::new(),
            output_tokens: 0,
            server_tokens: 0,
            client_tokens: 0,
            bytes: 0,
            items: 0,
            input: InputTally::default(),
            operations: BTreeMap::new(),
            slo,
            keep,
            samples: Vec::new(),
            live: None,
        }
    }

    /// Records one request. `intended`, `start` and `end` are offsets from the start of
    /// the run.
    #[allow(clippy::cast_precision_loss)]
    pub fn record(
        &mut self,
        n: u64,
        intended: Duration,
        start: Duration,
        end: Duration,
        warmup: bool,
        out: Outcome,
    ) {
        let lag = start.saturating_sub(intended);
        let latency = end.saturating_sub(intended);
        let ttft = out.ttft.map(|t| t + lag);
        let tpot = match (ttft, out.output_tokens) {
            (Some(ttft), Some(tokens)) if tokens > 1 => {
                Some(latency.saturating_sub(ttft).div_f64((tokens - 1) as f64))
            }
            _ => None,
        };
        let sample = Sample {
            n,
            intended_us: u64::try_from(intended.as_micros()).unwrap_or(u64::MAX),
            start_us: u64::try_from(start.as_micros()).unwrap_or(u64::MAX),
            end_us: u64::try_from(end.as_micros()).unwrap_or(u64::MAX),
            latency_ms: ms(latency),
            ttft_ms: ttft.map(ms),
            tpot_ms: tpot.map(ms),
            output_tokens: out.output_tokens,
            token_source: out.token_source,
            bytes: out.bytes,
            error: out.error.clone(),
            warmup,
            server: out.server.clone(),
            input_tokens: out.input_tokens,
            input_expected: out.input_expected,
        };
        if let (Some(live), false) = (&self.live, warmup) {
            live.observe(latency, ttft, out.output_tokens, out.error.as_deref());
        }
        if warmup {
            self.warmup += 1;
        } else {
            if let Some(name) = out.operation {
                let op = self
                    .operations
                    .entry(Cow::Borrowed(name))
                    .or_insert_with(OperationRecord::new);
                if out.error.is_some() {
                    op.failed += 1;
                } else {
                    op.completed += 1;
                    op.items += out.items;
                    let _ = op.latency.record(nanos(latency));
                }
            }
            match &out.error {
                Some(kind) => {
                    self.failed += 1;
                    *self.errors.entry(kind.clone()).or_default() += 1;
                }
                None => {
                    self.completed += 1;
                    self.items += out.items;
                    let _ = self.latency.record(nanos(latency));
                    put(&mut self.lag, lag);
                    if let Some(t) = ttft {
                        put(&mut self.ttft, t);
                    }
                    if let Some(t) = tpot {
                        put(&mut self.tpot, t);
                    }
                    for gap in &out.chunk_gaps {
                        put(&mut self.itl, *gap);
                    }
                    if let Some(tokens) = out.output_tokens {
                        self.output_tokens += tokens;
                        match out.token_source {
                            TokenSource::Server => self.server_tokens += tokens,
                            TokenSource::Client => self.client_tokens += tokens,
                            TokenSource::None => {}
                        }
                    }
                    self.bytes += out.bytes;
                    self.input.count(out.input_tokens, out.input_expected);
                    if self.slo.is_set() && self.slo.met(&sample) {
                        self.good += 1;
                    }
                }
            }
        }
        if self.keep {
            self.samples.push(sample);
        }
    }

    /// Adds another worker's records to these.
    pub fn merge(&mut self, other: Self) {
        let _ = self.latency.add(&other.latency);
        merge(&mut self.ttft, other.ttft);
        merge(&mut self.tpot, other.tpot);
        merge(&mut self.itl, other.itl);
        merge(&mut self.lag, other.lag);
        self.completed += other.completed;
        self.failed += other.failed;
        self.warmup += other.warmup;
        self.good += other.good;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.output_tokens += other.output_tokens;
        self.server_tokens += other.server_tokens;
        self.client_tokens += other.client_tokens;
        self.bytes += other.bytes;
        self.items += other.items;
        self.input.add(other.input);
        for (name, op) in other.operations {
            let mine = self
                .operations
                .entry(name)
                .or_insert_with(OperationRecord::new);
            mine.completed += op.completed;
            mine.failed += op.failed;
            mine.items += op.items;
            let _ = mine.latency.add(&op.latency);
        }
        self.samples.extend(other.samples);
    }

    /// The samples kept, in send order.
    #[must_use]
    pub fn into_samples(mut self) -> Vec<Sample> {
        self.samples.sort_by_key(|s| (s.intended_us, s.n));
        self.samples
    }

    /// The summary over `measured` (the run without its warm-up).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn summary(&self, measured: Duration, open: Option<OpenLoopFigures>) -> Summary {
        let secs = measured.as_secs_f64().max(1e-9);
        let llm = self.output_tokens > 0;
        Summary {
            requests_completed: self.completed,
            requests_failed: self.failed,
            requests_warmup: self.warmup,
            measured_seconds: measured.as_secs_f64(),
            requests_per_second: self.completed as f64 / secs,
            target_rate: open.map(|o| o.target_rate),
            achieved_rate: open.map(|o| o.sent as f64 / secs),
            requests_dropped: open.map(|o| o.dropped),
            latency_ms: MetricSummary::of(&self.latency),
            schedule_lag_ms: open.map(|_| MetricSummary::of_opt(self.lag.as_ref())),
            ttft_ms: llm.then(|| MetricSummary::of_opt(self.ttft.as_ref())),
            tpot_ms: llm.then(|| MetricSummary::of_opt(self.tpot.as_ref())),
            itl_ms: self.itl.as_ref().map(MetricSummary::of),
            output_tokens: llm.then_some(self.output_tokens),
            output_tokens_per_second: llm.then(|| self.output_tokens as f64 / secs),
            token_counts: llm.then_some(TokenCounts {
                from_server: self.server_tokens,
                from_client: self.client_tokens,
            }),
            bytes_received: self.bytes,
            errors: self.errors.clone(),
            goodput: self.slo.is_set().then(|| Goodput {
                slo: self.slo,
                good_requests: self.good,
                requests_per_second: self.good as f64 / secs,
                fraction: if self.completed + self.failed == 0 {
                    0.0
                } else {
                    self.good as f64 / (self.completed + self.failed) as f64
                },
            }),
            unit: None,
            items_completed: (self.items > 0).then_some(self.items),
            items_per_second: (self.items > 0).then(|| self.items as f64 / secs),
            operations: self
                .operations
                .iter()
                .map(|(name, op)| {
                    let figures = OperationSummary {
                        requests_completed: op.completed,
                        requests_failed: op.failed,
                        requests_per_second: op.completed as f64 / secs,
                        items_completed: (op.items > 0).then_some(op.items),
                        items_per_second: (op.items > 0).then(|| op.items as f64 / secs),
                        latency_ms: MetricSummary::of(&op.latency),
                    };
                    (name.clone().into_owned(), figures)
                })
                .collect(),
            server_counters: None,
            input_tokens: (self.input.tokens > 0).then_some(self.input.tokens),
            input_length_check: (self.input.checked() > 0).then(|| self.input.check()),
            server_metrics: None,
            measured_window_unix_s: None,
            definitions: definitions(),
        }
    }
}

/// One operation's counts and latencies, within a run of several kinds.
#[derive(Debug)]
struct OperationRecord {
    completed: u64,
    failed: u64,
    items: u64,
    latency: Histogram<u64>,
}

impl OperationRecord {
    fn new() -> Self {
        Self {
            completed: 0,
            failed: 0,
            items: 0,
            latency: histogram(),
        }
    }
}

/// One operation's figures over the measured period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationSummary {
    /// Its requests that succeeded.
    pub requests_completed: u64,
    /// Its requests that failed.
    pub requests_failed: u64,
    /// `requests_completed / measured_seconds` (of the whole run).
    pub requests_per_second: f64,
    /// What its successful requests carried, in the workload's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_completed: Option<u64>,
    /// `items_completed / measured_seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_per_second: Option<f64>,
    /// Latency of its successful requests.
    pub latency_ms: MetricSummary,
}

/// What only an open-loop run knows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenLoopFigures {
    /// Requests per second asked for.
    pub target_rate: f64,
    /// Requests sent after the warm-up (completed, failed, or still in flight at the end).
    pub sent: u64,
    /// Requests not sent because the concurrency cap was reached.
    pub dropped: u64,
}

/// One metric's distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricSummary {
    /// How many values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Standard deviation.
    pub std: f64,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl MetricSummary {
    fn of_opt(h: Option<&Histogram<u64>>) -> Self {
        h.map_or_else(|| Self::of(&Histogram::new(1).expect("valid")), Self::of)
    }

    #[allow(clippy::cast_precision_loss)]
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        if h.is_empty() {
            return Self {
                count: 0,
                mean: 0.0,
                std: 0.0,
                min: 0.0,
                p50: 0.0,
                p90: 0.0,
                p95: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            };
        }
        Self {
            count: h.len(),
            mean: h.mean() / 1e6,
            std: h.stdev() / 1e6,
            min: ms(h.min()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Where the token counts came from.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TokenCounts {
    /// Tokens the server reported.
    pub from_server: u64,
    /// Tokens the client counted.
    pub from_client: u64,
}

/// Requests that met the SLOs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Goodput {
    /// The objectives.
    pub slo: Slo,
    /// Requests that met them.
    pub good_requests: u64,
    /// Good requests per second.
    pub requests_per_second: f64,
    /// Good requests / all requests (completed + failed).
    pub fraction: f64,
}

/// The summary of one run (`summary.json`, `bench --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Requests that succeeded after the warm-up.
    pub requests_completed: u64,
    /// Requests that failed after the warm-up.
    pub requests_failed: u64,
    /// Requests during the warm-up (in no other figure).
    pub requests_warmup: u64,
    /// The measured time: from the start of the measured period (the end of the
    /// warm-up; in a closed loop, once every warm-up request has ended) to the last
    /// completion.
    pub measured_seconds: f64,
    /// `requests_completed / measured_seconds`.
    pub requests_per_second: f64,
    /// Open loop: the rate asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Open loop: requests sent per measured second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achieved_rate: Option<f64>,
    /// Open loop: requests not sent because the concurrency cap was full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_dropped: Option<u64>,
    /// End-to-end latency of successful requests.
    pub latency_ms: MetricSummary,
    /// Open loop: how late requests were sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag_ms: Option<MetricSummary>,
    /// Time to first token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<MetricSummary>,
    /// Time per output token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<MetricSummary>,
    /// Inter-chunk latency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub itl_ms: Option<MetricSummary>,
    /// Output tokens of successful requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// `output_tokens / measured_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens_per_second: Option<f64>,
    /// Where the token counts came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_counts: Option<TokenCounts>,
    /// Response bytes of successful requests.
    pub bytes_received: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Requests that met the SLOs, when some were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput: Option<Goodput>,
    /// What successful requests carried is counted in (`vectors`), from the workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// What successful requests carried, in `unit`: e.g. vectors inserted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_completed: Option<u64>,
    /// `items_completed / measured_seconds`: e.g. vectors per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items_per_second: Option<f64>,
    /// Per operation, for a workload of several kinds (`mixed`): each one's counts,
    /// rate and latency percentiles.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub operations: BTreeMap<String, OperationSummary>,
    /// What the server itself counted over the run, where the workload can ask it
    /// ([`Workload::server_counters`](super::Workload::server_counters)): each counter's
    /// growth from before the first request to after the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_counters: Option<BTreeMap<String, u64>>,
    /// Input tokens of the successful requests, as the server counted them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// How many prompts built to an exact length the server counted at that length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_length_check: Option<InputLengthCheck>,
    /// What the server's own metrics page said of the run
    /// ([`ServerMetrics`](super::server_metrics::ServerMetrics)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_metrics: Option<super::server_metrics::ServerMetrics>,
    /// The measured period on the clock, seconds since the epoch (its start and end,
    /// to the millisecond): what a service's monitoring (GPU power) is joined on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_window_unix_s: Option<[f64; 2]>,
    /// How each figure is computed.
    pub definitions: BTreeMap<&'static str, &'static str>,
}

fn definitions() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        (
            "latency_ms",
            "end-to-end: completion time minus the intended send time (open loop: the schedule's time, so a late send counts against the server, not hidden; closed loop: the actual send)",
        ),
        (
            "ttft_ms",
            "time to first token: first non-empty streamed chunk minus the intended send time",
        ),
        (
            "tpot_ms",
            "time per output token: (latency - ttft) / (output_tokens - 1), per request with more than one token",
        ),
        (
            "itl_ms",
            "inter-chunk latency: time between successive streamed chunks",
        ),
        (
            "requests_per_second",
            "requests_completed / measured_seconds",
        ),
        (
            "server_metrics",
            "the server's own figures from its Prometheus page, scraped when the run starts (after its warm-up, to the second), every second during it and after it: histogram means are the growth of sum over count, counters their growth, gauges (running, waiting, kv_cache_usage) sampled during the run",
        ),
        (
            "input_tokens",
            "prompt tokens of the successful requests, as the server counted them (usage.prompt_tokens)",
        ),
        (
            "input_length_check",
            "of the prompts built to an exact number of tokens, how many the server counted at that number (unreported: it gave no count)",
        ),
        (
            "achieved_rate",
            "requests sent after the warm-up / measured_seconds (open loop)",
        ),
        (
            "schedule_lag_ms",
            "actual send time minus intended send time (open loop)",
        ),
        (
            "output_tokens_per_second",
            "sum of output tokens of successful requests / measured_seconds",
        ),
        (
            "measured_seconds",
            "from the start of the measured period (the end of the warm-up; in a closed loop, once every warm-up request has ended) to the last completion",
        ),
        (
            "percentiles",
            "from an HDR histogram of nanoseconds with 3 significant digits (0.1 % resolution)",
        ),
        (
            "goodput",
            "requests that succeeded and met every SLO given, per measured second",
        ),
        (
            "items_per_second",
            "what successful measured requests carried, in the workload's unit (e.g. vectors inserted), per measured second",
        ),
        (
            "operations",
            "per operation of a workload of several kinds: its successful and failed measured requests, its rate over the whole measured time, its latency percentiles",
        ),
        (
            "server_counters",
            "the server's own counters (e.g. MySQL's Com_select, Com_commit), read before the first request and after the last: their growth over the whole run, warm-up included, and anything else the server served meanwhile",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_operations_are_counted_per_worker_and_merged() {
        let ms = Duration::from_millis;
        let outcome = |op: &'static str, items: u64, error: Option<&str>| Outcome {
            operation: Some(op),
            items,
            error: error.map(str::to_owned),
            ..Outcome::default()
        };
        let mut a = Recorder::new(Slo::default(), false);
        a.record(0, ms(0), ms(0), ms(10), false, outcome("insert", 100, None));
        a.record(1, ms(0), ms(0), ms(2), false, outcome("query", 10, None));
        // Warm-up and failures carry no items.
        a.record(2, ms(0), ms(0), ms(5), true, outcome("insert", 100, None));
        let mut b = Recorder::new(Slo::default(), false);
        b.record(3, ms(0), ms(0), ms(20), false, outcome("insert", 100, None));
        b.record(
            4,
            ms(0),
            ms(0),
            ms(1),
            false,
            outcome("query", 0, Some("timeout")),
        );
        a.merge(b);
        let s = a.summary(Duration::from_secs(2), None);
        assert_eq!((s.requests_completed, s.requests_failed), (3, 1));
        assert_eq!(s.items_completed, Some(210));
        assert_eq!(s.items_per_second, Some(105.0));
        let insert = &s.operations["insert"];
        assert_eq!((insert.requests_completed, insert.requests_failed), (2, 0));
        assert_eq!(insert.items_completed, Some(200));
        assert!(
            (insert.latency_ms.max - 20.0).abs() < 0.05,
            "{}",
            insert.latency_ms.max
        );
        let query = &s.operations["query"];
        assert_eq!((query.requests_completed, query.requests_failed), (1, 1));
        assert_eq!(query.items_completed, Some(10));
        // A workload of one kind has no per-operation figures, and no items none.
        let mut plain = Recorder::new(Slo::default(), false);
        plain.record(0, ms(0), ms(0), ms(1), false, Outcome::default());
        let p = plain.summary(Duration::from_secs(1), None);
        assert!(p.operations.is_empty() && p.items_completed.is_none());
        let json = serde_json::to_value(&p).unwrap();
        assert!(json.get("operations").is_none() && json.get("items_completed").is_none());
    }

    #[test]
    fn latency_counts_from_the_intended_time_and_tpot_follows_its_formula() {
        let mut r = Recorder::new(
            Slo {
                ttft_ms: Some(200.0),
                tpot_ms: None,
                latency_ms: None,
            },
            true,
        );
        let out = Outcome {
            ttft: Some(Duration::from_millis(100)),
            output_tokens: Some(11),
            token_source: TokenSource::Server,
            ..Outcome::default()
        };
        // Meant for t=0, sent 50 ms late, done at t=1050 ms.
        r.record(
            0,
            Duration::ZERO,
            Duration::from_millis(50),
            Duration::from_millis(1050),
            false,
            out,
        );
        let s = &r.samples[0];
        assert_eq!(s.latency_ms, 1050.0);
        assert_eq!(s.ttft_ms, Some(150.0));
        // (1050 - 150) / (11 - 1) = 90 ms.
        assert!((s.tpot_ms.unwrap() - 90.0).abs() < 1e-9);
        let summary = r.summary(Duration::from_secs(1), None);
        assert_eq!(summary.requests_completed, 1);
        assert_eq!(summary.goodput.unwrap().good_requests, 1);
        assert_eq!(summary.token_counts.unwrap().from_server, 11);
        assert!(
            (summary.latency_ms.p50 - 1050.0).abs() < 1.1,
            "{}",
            summary.latency_ms.p50
        );
    }

    #[test]
    fn warmup_and_failures_stay_out_of_the_latency() {
        let mut r = Recorder::new(Slo::default(), false);
        r.record(
            0,
            Duration::ZERO,
            Duration::ZERO,
            Duration::from_millis(5),
            true,
            Outcome::default(),
        );
        r.record(
            1,
            Duration::ZERO,
            Duration::ZERO,
            Duration::from_millis(7),
            false,
            Outcome::failed("http_503"),
        );
        r.record(
            2,
            Duration::ZERO,
            Duration::ZERO,
            Duration::from_millis(2),
            false,
            Outcome::default(),
        );
        let s = r.summary(Duration::from_secs(2), None);
        assert_eq!(
            (s.requests_warmup, s.requests_failed, s.requests_completed),
            (1, 1, 1)
        );
        assert_eq!(s.errors["http_503"], 1);
        assert_eq!(s.latency_ms.count, 1);
        assert!((s.latency_ms.max - 2.0).abs() < 0.01);
        assert_eq!(s.requests_per_second, 0.5);
        assert!(s.goodput.is_none() && s.ttft_ms.is_none());
    }
}
