//! A [`Recorder`] written down and read back, exactly: what a run's `recorder.json`
//! holds, so that runs of one load on several machines (client replicas) merge into
//! one result whose percentiles are those of every request.

use std::borrow::Cow;
use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{InputTally, OperationRecord, Recorder, Slo, histogram};

/// A histogram's recorded buckets as `[value, count]` pairs, each value the highest
/// of its bucket: recorded again, every count lands in the bucket it came from, so a
/// histogram rebuilt from them (and merged with others) is the one that was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buckets(pub Vec<(u64, u64)>);

impl Buckets {
    fn of(h: &Histogram<u64>) -> Self {
        Self(
            h.iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        )
    }

    fn histogram(&self) -> Result<Histogram<u64>, String> {
        let mut h = histogram();
        for (value, count) in &self.0 {
            h.record_n(*value, *count)
                .map_err(|e| format!("a bucket at {value} ns cannot be recorded: {e:?}"))?;
        }
        Ok(h)
    }
}

/// Everything a [`Recorder`] counted, exactly, as a replica writes it
/// (`recorder.json`) for the orchestrator to merge with the others' into one result:
/// the merged percentiles are those of every request, not averages of percentiles.
/// Kept samples and the live endpoint are not part of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecorderState {
    /// The format's version (1).
    pub version: u32,
    /// End-to-end latency of successful requests, ns.
    pub latency: Buckets,
    /// Time to first token, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft: Option<Buckets>,
    /// Time per output token, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot: Option<Buckets>,
    /// Inter-chunk latency, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub itl: Option<Buckets>,
    /// Schedule lag (open loop), ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<Buckets>,
    /// Requests that succeeded after the warm-up.
    pub completed: u64,
    /// Requests that failed after the warm-up.
    pub failed: u64,
    /// Requests during the warm-up.
    pub warmup: u64,
    /// Requests that met the SLOs.
    pub good: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Requests whose token count the server reported.
    pub server_tokens: u64,
    /// Requests whose token count the client counted.
    pub client_tokens: u64,
    /// Response bytes of successful requests.
    pub bytes: u64,
    /// Items (vectors, rows) of successful requests.
    pub items: u64,
    /// Input token counts (absent in files from before they were kept).
    #[serde(default)]
    pub input: InputTally,
    /// Per operation: completed, failed, items and latency.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operations: BTreeMap<String, (u64, u64, u64, Buckets)>,
    /// The SLOs goodput was counted against.
    pub slo: Slo,
}

impl Recorder {
    /// What this recorder counted, to write down and merge elsewhere.
    #[must_use]
    pub fn state(&self) -> RecorderState {
        RecorderState {
            version: 1,
            latency: Buckets::of(&self.latency),
            ttft: self.ttft.as_ref().map(Buckets::of),
            tpot: self.tpot.as_ref().map(Buckets::of),
            itl: self.itl.as_ref().map(Buckets::of),
            lag: self.lag.as_ref().map(Buckets::of),
            completed: self.completed,
            failed: self.failed,
            warmup: self.warmup,
            good: self.good,
            errors: self.errors.clone(),
            output_tokens: self.output_tokens,
            server_tokens: self.server_tokens,
            client_tokens: self.client_tokens,
            bytes: self.bytes,
            items: self.items,
            input: self.input,
            operations: self
                .operations
                .iter()
                .map(|(name, op)| {
                    (
                        name.clone().into_owned(),
                        (op.completed, op.failed, op.items, Buckets::of(&op.latency)),
                    )
                })
                .collect(),
            slo: self.slo,
        }
    }

    /// A recorder holding what `state` counted (no samples), to merge with others.
    ///
    /// # Errors
    /// A state of another version, or a bucket outside the histograms' range.
    pub fn from_state(state: &RecorderState) -> Result<Self, String> {
        if state.version != 1 {
            return Err(format!(
                "a recorder state of version {}, where this orchestrator reads version 1",
                state.version
            ));
        }
        let opt = |b: &Option<Buckets>| b.as_ref().map(Buckets::histogram).transpose();
        let mut operations = BTreeMap::new();
        for (name, (completed, failed, items, latency)) in &state.operations {
            operations.insert(
                Cow::Owned(name.clone()),
                OperationRecord {
                    completed: *completed,
                    failed: *failed,
                    items: *items,
                    latency: latency.histogram()?,
                },
            );
        }
        Ok(Self {
            latency: state.latency.histogram()?,
            ttft: opt(&state.ttft)?,
            tpot: opt(&state.tpot)?,
            itl: opt(&state.itl)?,
            lag: opt(&state.lag)?,
            completed: state.completed,
            failed: state.failed,
            warmup: state.warmup,
            good: state.good,
            errors: state.errors.clone(),
            output_tokens: state.output_tokens,
            server_tokens: state.server_tokens,
            client_tokens: state.client_tokens,
            bytes: state.bytes,
            items: state.items,
            input: state.input,
            operations,
            slo: state.slo,
            keep: false,
            samples: Vec::new(),
            live: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{OpenLoopFigures, Outcome};
    use super::*;

    /// Issue #18: replicas write their recorders down and one result is merged from
    /// them; it is the result of one recorder that saw every request, to the bucket.
    #[test]
    fn recorders_written_down_and_merged_give_the_result_of_all_requests() {
        let us = Duration::from_micros;
        let mut all = Recorder::new(Slo::default(), false);
        let mut parts = [
            Recorder::new(Slo::default(), false),
            Recorder::new(Slo::default(), false),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in 0..20_000u64 {
            // A skewed spread, 50 µs to about 2 s, and every 97th a failure.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let latency = us(50 + (x % 1000) * (x % 1000) * 2);
            let out = || Outcome {
                operation: Some(if n % 3 == 0 { "set" } else { "get" }),
                ttft: Some(latency / 4),
                output_tokens: Some(8),
                error: (n % 97 == 0).then(|| "timeout".to_owned()),
                ..Outcome::default()
            };
            let lag = us(x % 300);
            all.record(n, us(0), lag, lag + latency, n < 100, out());
            parts[usize::from(n % 2 == 1)].record(n, us(0), lag, lag + latency, n < 100, out());
        }
        let open = Some(OpenLoopFigures {
            target_rate: 1000.0,
            sent: 20_000,
            dropped: 0,
        });
        let [a, b] = parts;
        let written: Vec<String> = [a, b]
            .iter()
            .map(|r| serde_json::to_string(&r.state()).unwrap())
            .collect();
        let mut merged = Recorder::from_state(&serde_json::from_str(&written[0]).unwrap()).unwrap();
        merged.merge(Recorder::from_state(&serde_json::from_str(&written[1]).unwrap()).unwrap());
        let measured = Duration::from_secs(20);
        let expected = serde_json::to_value(all.summary(measured, open)).unwrap();
        let got = serde_json::to_value(merged.summary(measured, open)).unwrap();
        assert_eq!(got, expected);
        assert!(
            expected["latency_ms"]["p99"].as_f64().unwrap() > 1000.0,
            "{expected:#}"
        );
        // Every 97th of 0..20000 failed, but for 0 and 97 in the warm-up.
        assert_eq!(expected["requests_failed"], 205);
        // A state of another version is refused, not misread.
        let mut future = all.state();
        future.version = 2;
        assert!(
            Recorder::from_state(&future)
                .unwrap_err()
                .contains("version 2")
        );
    }
}
