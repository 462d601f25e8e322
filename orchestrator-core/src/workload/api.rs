//! What a workload driver gives the engine: a [`Workload`] that opens
//! [`Connection`]s, and the helpers drivers read their parameters with.

use async_trait::async_trait;

use super::stats::Outcome;

/// A prepared workload against one target: opens connections.
#[async_trait]
pub trait Workload: Send + Sync {
    /// Opens a connection (or whatever a worker keeps between requests).
    ///
    /// # Errors
    /// The target cannot be reached; the message says why.
    async fn connect(&self) -> Result<Box<dyn Connection>, String>;

    /// What the workload must read or learn once, before any load: its dataset file,
    /// an LLM server's tokenizer for prompts of an exact length. The engine calls it
    /// first, before [`schedule`](Self::schedule) and any connection; parameters are
    /// checked without it (a recipe is validated where the files may not be). The
    /// default: nothing.
    ///
    /// # Errors
    /// The target cannot give it; the message says why and what to change.
    async fn prepare(&self) -> Result<(), String> {
        Ok(())
    }

    /// Counters the server keeps of what it was sent (a database's statement counts),
    /// read once before the load and once after it; the summary's `server_counters`
    /// holds their growth, so the client's figures can be checked against the server's
    /// own. `None` (the default): the server tells none, or they cannot be read.
    async fn server_counters(&self) -> Option<std::collections::BTreeMap<String, u64>> {
        None
    }

    /// What a request's [`Outcome::items`] count (`vectors`), for the summary's
    /// `unit`, `items_completed` and `items_per_second`. `None` (the default): the
    /// workload has no unit but requests.
    fn unit(&self) -> Option<&'static str> {
        None
    }

    /// The server's own metrics page (Prometheus' text format), for its figures
    /// beside the client's (the summary's `server_metrics`): the engine
    /// asks once before the load, every second during it and once after it. `None`
    /// (the default): the server has none.
    async fn scrape(&self) -> Option<String> {
        None
    }

    /// When each request is due, from the start, scaled by `time_scale`: a timed
    /// dataset's (a trace's), which [`LoadModel::Replay`](super::LoadModel::Replay)
    /// replays; request `n` is then the dataset's entry `n`. `None` (the default): the
    /// workload has no times of its own.
    fn schedule(&self, time_scale: f64) -> Option<Vec<std::time::Duration>> {
        let _ = time_scale;
        None
    }
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

/// The host and port of a session's target URL, `http://HOST[:PORT][/…]` (a bracketed
/// IPv6 host unbracketed), for a driver that speaks its own protocol to it; `None` for
/// a URL of another scheme, which the driver reads itself.
///
/// # Errors
/// The port is not a number.
pub fn http_host_port(
    url: &str,
    default_port: u16,
) -> Option<Result<(String, u16), crate::DriverError>> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(port) => (host, port),
            Err(_) => {
                return Some(Err(crate::DriverError::new(
                    format!("`{url}`: `{port}` is not a port"),
                    "write the target as http://HOST:PORT",
                )));
            }
        },
        None => (authority, default_port),
    };
    Some(Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    )))
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
/// `timeout` (and its connection is replaced). Drivers wrap their request in it, or,
/// where requests are many and short, keep a [`Timeout`] per connection.
pub async fn within(limit: std::time::Duration, request: impl Future<Output = Outcome>) -> Outcome {
    tokio::time::timeout(limit, request)
        .await
        .unwrap_or_else(|_| Outcome::failed("timeout"))
}

/// A connection's per-request time limit that costs almost nothing per request: one
/// timer per connection, re-armed only when the armed deadline is too early for the
/// request at hand, and then to `slack` past it (a tenth of the limit, at most 1 s).
/// Most requests reuse the armed timer, where [`within`] registers a new one each
/// time, which at tens of thousands of requests per second costs throughput. A request
/// fails as `timeout` between `limit` and `limit + slack` after it started.
pub struct Timeout {
    limit: std::time::Duration,
    slack: std::time::Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl std::fmt::Debug for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Timeout {
    /// A limit of `limit` per request.
    #[must_use]
    pub fn new(limit: std::time::Duration) -> Self {
        Self {
            limit,
            slack: (limit / 10).min(std::time::Duration::from_secs(1)),
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    /// Runs one request under the limit.
    pub async fn run(&mut self, request: impl Future<Output = Outcome>) -> Outcome {
        let wanted = tokio::time::Instant::now() + self.limit;
        if self.timer.deadline() < wanted {
            self.timer.as_mut().reset(wanted + self.slack);
        }
        tokio::select! {
            biased;
            out = request => out,
            () = &mut self.timer => Outcome::failed("timeout"),
        }
    }
}

/// One worker's connection to the target.
#[async_trait]
pub trait Connection: Send {
    /// Sends request number `n` and waits for its whole answer.
    async fn request(&mut self, n: u64) -> Outcome;
}

#[cfg(test)]
mod timeout_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_request_past_the_limit_fails_and_the_next_one_has_its_own() {
        let mut t = Timeout::new(Duration::from_secs(10));
        let slow = t
            .run(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Outcome::default()
            })
            .await;
        assert_eq!(slow.error.as_deref(), Some("timeout"));
        // Fast requests pass, and reuse the armed timer.
        for _ in 0..3 {
            let ok = t
                .run(async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    Outcome::default()
                })
                .await;
            assert!(ok.error.is_none());
        }
        // A request just past the limit (within the slack of 1 s) may pass; well past
        // it, it fails.
        let start = tokio::time::Instant::now();
        let late = t
            .run(async {
                tokio::time::sleep(Duration::from_secs(12)).await;
                Outcome::default()
            })
            .await;
        assert_eq!(late.error.as_deref(), Some("timeout"));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited <= Duration::from_secs(11),
            "{waited:?}"
        );
    }
}
