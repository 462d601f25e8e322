//! The workload engine: load models (closed loop, open loop at a constant, Poisson or
//! gamma-distributed rate, with an optional concurrency cap), warm-up, duration or
//! request bounds, per-request samples and HDR-histogram summaries. Protocol code lives
//! in the plugins, behind [`Workload`] and [`Connection`].

mod engine;
mod live;
mod rng;
mod spec;
mod stats;

use async_trait::async_trait;

pub use engine::{
    Arrival, DEFAULT_MAX_CONCURRENCY, LoadModel, LoadSpec, RunResult, WorkloadError, run, run_live,
};
pub use live::{LiveMetrics, serve_metrics};
pub use rng::{Rng, synthetic_prompt};
pub use spec::{
    LOAD_KEYS, RESULTS_DIR, WorkloadSpec, check_parameters, engine_launch, expand_sweep,
    load_model, load_of,
};
pub use stats::{
    Goodput, MetricSummary, OpenLoopFigures, Outcome, Recorder, Sample, Slo, Summary, TokenCounts,
    TokenSource,
};

/// A prepared workload against one target: opens connections.
#[async_trait]
pub trait Workload: Send + Sync {
    /// Opens a connection (or whatever a worker keeps between requests).
    ///
    /// # Errors
    /// The target cannot be reached; the message says why.
    async fn connect(&self) -> Result<Box<dyn Connection>, String>;
}

/// A driver's parameters as its typed struct (`deny_unknown_fields` makes a typo an
/// error): `"DRIVER parameters: …"`, with `known` (the keys it takes) as the hint.
///
/// # Errors
/// A key the struct does not have, or a value of the wrong type.
pub fn parse_parameters<P: serde::de::DeserializeOwned>(
    driver: &str,
    known: &str,
    parameters: &serde_json::Map<String, serde_json::Value>,
) -> Result<P, crate::DriverError> {
    serde_json::from_value(serde_json::Value::Object(parameters.clone())).map_err(|e| {
        crate::DriverError::new(
            format!("{driver} parameters: {e}"),
            format!("the {driver} workload takes {known}"),
        )
    })
}

/// The per-request time limit of a driver: `timeout_s`, else `default` seconds.
///
/// # Errors
/// Zero, negative or not finite.
pub fn timeout_parameter(
    timeout_s: Option<f64>,
    default: f64,
) -> Result<std::time::Duration, crate::DriverError> {
    let secs = timeout_s.unwrap_or(default);
    if secs > 0.0 && secs.is_finite() {
        Ok(std::time::Duration::from_secs_f64(secs))
    } else {
        Err(crate::DriverError::new(
            "timeout_s must be a positive number of seconds",
            format!("e.g. timeout_s: {default}"),
        ))
    }
}

/// Runs one request under a time limit: a request slower than `limit` fails as
/// `timeout` (and its connection is replaced). Drivers wrap their request in it.
pub async fn within(limit: std::time::Duration, request: impl Future<Output = Outcome>) -> Outcome {
    tokio::time::timeout(limit, request)
        .await
        .unwrap_or_else(|_| Outcome::failed("timeout"))
}

/// One worker's connection to the target.
#[async_trait]
pub trait Connection: Send {
    /// Sends request number `n` and waits for its whole answer.
    async fn request(&mut self, n: u64) -> Outcome;
}
