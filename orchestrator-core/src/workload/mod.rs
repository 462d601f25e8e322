//! The workload engine: load models (closed loop, open loop at a constant, Poisson or
//! gamma-distributed rate, with an optional concurrency cap), warm-up, duration or
//! request bounds, per-request samples and HDR-histogram summaries. Protocol code lives
//! in the plugins, behind [`Workload`] and [`Connection`].

mod api;
pub mod dataset;
mod engine;
mod live;
pub mod profile;
pub mod repeats;
pub mod replica;
mod rng;
mod scraping;
pub mod server_metrics;
mod spec;
mod stats;
pub mod vocabulary;

pub use engine::{
    Arrival, DEFAULT_MAX_CONCURRENCY, LoadModel, LoadSpec, RunRecord, RunResult, WorkloadError,
    run, run_live, run_until,
};
pub use live::{LiveMetrics, serve_metrics};
pub use rng::{PROMPT_WORDS, Rng, run_salt, synthetic_prompt};
pub use spec::{LOAD_KEYS, RESULTS_DIR, WorkloadSpec, expand_sweep, load_model, load_of};
pub use stats::{
    Buckets, Goodput, InputLengthCheck, InputTally, MetricSummary, OpenLoopFigures, Outcome,
    Recorder, RecorderState, Sample, Slo, Summary, TokenCounts, TokenSource,
};

pub use api::{
    Connection, Timeout, Workload, http_host_port, parse_parameters, timeout_parameter, within,
};
