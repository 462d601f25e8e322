//! Live metrics while a workload runs: counters and histograms that an existing
//! Prometheus (the original tool's monitoring stack, with Grafana) scrapes from
//! `GET /metrics` in the Prometheus text format (0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Bucket bounds of the latency histograms, seconds.
const BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// A cumulative histogram in Prometheus' shape.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or below each bound (not cumulative here; summed on render).
    counts: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|b| s <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    #[allow(clippy::cast_precision_loss)]
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BOUNDS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What a running workload has done so far (after its warm-up).
#[derive(Debug, Default)]
pub struct LiveMetrics {
    completed: AtomicU64,
    failed: std::sync::Mutex<BTreeMap<String, u64>>,
    output_tokens: AtomicU64,
    latency: Histogram,
    ttft: Histogram,
}

impl LiveMetrics {
    /// Empty metrics, to share between the engine and the endpoint.
    #[must_use]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// One request: its latency, time to first token, tokens and failure kind.
    pub fn observe(
        &self,
        latency: Duration,
        ttft: Option<Duration>,
        tokens: Option<u64>,
        error: Option<&str>,
    ) {
        match error {
            Some(kind) => {
                *self
                    .failed
                    .lock()
                    .expect("live metrics lock")
                    .entry(kind.to_owned())
                    .or_default() += 1;
            }
            None => {
                self.completed.fetch_add(1, Ordering::Relaxed);
                self.latency.observe(latency);
                if let Some(t) = ttft {
                    self.ttft.observe(t);
                }
                if let Some(n) = tokens {
                    self.output_tokens.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }

    /// The metrics in the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP orchestrator_requests_total Requests finished after the warm-up, by outcome and failure kind.\n\
             # TYPE orchestrator_requests_total counter\n",
        );
        let _ = writeln!(
            out,
            "orchestrator_requests_total{{outcome=\"ok\"}} {}",
            self.completed.load(Ordering::Relaxed)
        );
        for (kind, n) in self.failed.lock().expect("live metrics lock").iter() {
            let kind = kind.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "orchestrator_requests_total{{outcome=\"error\",kind=\"{kind}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP orchestrator_output_tokens_total Output tokens of successful requests.\n\
             # TYPE orchestrator_output_tokens_total counter\n",
        );
        let _ = writeln!(
            out,
            "orchestrator_output_tokens_total {}",
            self.output_tokens.load(Ordering::Relaxed)
        );
        self.latency.render(
            &mut out,
            "orchestrator_request_duration_seconds",
            "End-to-end latency of successful requests (from the intended send time).",
        );
        if self.ttft.count.load(Ordering::Relaxed) > 0 {
            self.ttft.render(
                &mut out,
                "orchestrator_time_to_first_token_seconds",
                "Time to the first token of successful streamed requests.",
            );
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `cancel` (a minimal HTTP/1.1 server:
/// one request per connection, then close).
pub async fn serve_metrics(
    metrics: Arc<LiveMetrics>,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) {
    loop {
        let (mut stream, _) = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "try /metrics\n".to_owned())
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_by_kind() {
        let m = LiveMetrics::new();
        m.observe(Duration::from_micros(300), None, Some(5), None);
        m.observe(
            Duration::from_millis(3),
            Some(Duration::from_millis(1)),
            Some(7),
            None,
        );
        m.observe(Duration::from_secs(100), None, None, None);
        m.observe(Duration::ZERO, None, None, Some("http_503"));
        let text = m.render();
        assert!(text.contains("orchestrator_requests_total{outcome=\"ok\"} 3\n"));
        assert!(
            text.contains("orchestrator_requests_total{outcome=\"error\",kind=\"http_503\"} 1\n")
        );
        assert!(text.contains("orchestrator_output_tokens_total 12\n"));
        assert!(text.contains("orchestrator_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("orchestrator_request_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("orchestrator_request_duration_seconds_bucket{le=\"60\"} 2\n"));
        assert!(text.contains("orchestrator_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("orchestrator_request_duration_seconds_count 3\n"));
        assert!(text.contains("orchestrator_time_to_first_token_seconds_count 1\n"));
    }
}
