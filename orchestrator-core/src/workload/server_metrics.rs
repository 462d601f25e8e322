//! An LLM server's own figures beside the client's: its Prometheus page (vLLM's
//! `/metrics`, llama.cpp's `llama-server --metrics`) scraped before a run, during it
//! and after it ([`Workload::scrape`](super::Workload::scrape)), reduced to what the
//! server says of the same requests: its mean time to first token, time per output
//! token, queue time and end-to-end latency (each histogram's growth of sum over
//! count), the tokens it counted, its prefix-cache hit rate, and the requests running
//! and waiting and the KV cache in use, sampled during the run (mean and maximum).
//!
//! The series are found by name, as vLLM (`vllm:…`, V0 and V1 names) and llama.cpp
//! (`llamacpp:…`) write them; series of several label sets (one per model) are added
//! up. A figure whose series the page lacks is left out, never guessed.

use std::collections::BTreeMap;

use serde::Serialize;

/// One page, parsed: each series name (labels dropped, label sets added up) and its
/// value.
pub type Page = BTreeMap<String, f64>;

/// Parses Prometheus' text format: `name{labels} value [timestamp]` lines; comments and
/// lines that do not parse are skipped.
#[must_use]
pub fn parse(text: &str) -> Page {
    let mut page = Page::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The labels may hold spaces: the name ends at `{` or the first space, the
        // value follows the closing `}`.
        let (name, rest) = match line.find('{') {
            Some(open) if line[..open].find(' ').is_none() => {
                let Some(close) = line.rfind('}') else {
                    continue;
                };
                (&line[..open], &line[close + 1..])
            }
            _ => match line.split_once(' ') {
                Some((name, rest)) => (name, rest),
                None => continue,
            },
        };
        let value = rest.split_whitespace().next().map(str::parse::<f64>);
        if let Some(Ok(value)) = value {
            if value.is_finite() {
                *page.entry(name.to_owned()).or_default() += value;
            }
        }
    }
    page
}

/// The first of `names` the page has.
fn find(page: &Page, names: &[&str]) -> Option<f64> {
    names.iter().find_map(|n| page.get(*n).copied())
}

/// A gauge sampled during the run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sampled {
    /// The mean of the samples.
    pub mean: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples.
    pub samples: usize,
}

/// What the server said of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerMetrics {
    /// Whose names the page had: `vllm` or `llamacpp`.
    pub server: String,
    /// Pages scraped (before, during, after).
    pub scrapes: usize,
    /// The server's mean time to first token over the run, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_mean_ms: Option<f64>,
    /// Its mean time per output token, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpot_mean_ms: Option<f64>,
    /// Its mean time a request waited before running, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_time_mean_ms: Option<f64>,
    /// Its mean end-to-end latency, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e2e_latency_mean_ms: Option<f64>,
    /// Its mean prompt processing time per prompt token it processed, ms (llama.cpp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_ms_per_token: Option<f64>,
    /// Requests it finished over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_finished: Option<f64>,
    /// Prompt tokens it processed over the run (llama.cpp: those not found in its
    /// prompt cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<f64>,
    /// Prompt tokens it took from its prompt cache instead (llama.cpp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_cached: Option<f64>,
    /// Tokens it generated over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_tokens: Option<f64>,
    /// Of its prefix-cache lookups over the run, the fraction that hit (vLLM V1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_cache_hit_rate: Option<f64>,
    /// Requests running, sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running: Option<Sampled>,
    /// Requests waiting (queued, deferred), sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Sampled>,
    /// The fraction of the KV cache in use, sampled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_cache_usage: Option<Sampled>,
}

/// A histogram's growth between two pages as a mean, ms: `Δsum / Δcount` (seconds).
fn histogram_mean(before: &Page, after: &Page, names: &[&str]) -> Option<f64> {
    names.iter().find_map(|name| {
        let (sum, count) = (format!("{name}_sum"), format!("{name}_count"));
        let d = |k: &str| Some(after.get(k)? - before.get(k).copied().unwrap_or(0.0));
        let (dsum, dcount) = (d(&sum)?, d(&count)?);
        (dcount > 0.0).then(|| dsum / dcount * 1000.0)
    })
}

fn grown(before: &Page, after: &Page, names: &[&str]) -> Option<f64> {
    let now = find(after, names)?;
    Some(now - find(before, names).unwrap_or(0.0))
}

fn sampled(pages: &[Page], names: &[&str]) -> Option<Sampled> {
    let values: Vec<f64> = pages.iter().filter_map(|p| find(p, names)).collect();
    if values.is_empty() {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    Some(Sampled {
        mean,
        max: values.iter().copied().fold(f64::MIN, f64::max),
        samples: values.len(),
    })
}

impl ServerMetrics {
    /// The figures of a run from its pages: the first scraped before it, the last
    /// after it, those between during it. `None` when no page holds a known series.
    #[must_use]
    pub fn of(pages: &[Page]) -> Option<Self> {
        let (before, after) = (pages.first()?, pages.last()?);
        let server = if after.keys().any(|k| k.starts_with("vllm:")) {
            "vllm"
        } else if after.keys().any(|k| k.starts_with("llamacpp:")) {
            "llamacpp"
        } else {
            return None;
        };
        // The gauges while the load ran: the pages between, else all of them.
        let during = if pages.len() > 2 {
            &pages[1..pages.len() - 1]
        } else {
            pages
        };
        let per_token = |seconds: &str, tokens: &str| {
            let (s, t) = (
                grown(before, after, &[seconds])?,
                grown(before, after, &[tokens])?,
            );
            (t > 0.0).then(|| s / t * 1000.0)
        };
        let hits = grown(
            before,
            after,
            &["vllm:prefix_cache_hits_total", "vllm:prefix_cache_hits"],
        );
        let queries = grown(
            before,
            after,
            &[
                "vllm:prefix_cache_queries_total",
                "vllm:prefix_cache_queries",
            ],
        );
        Some(Self {
            server: server.to_owned(),
            scrapes: pages.len(),
            ttft_mean_ms: histogram_mean(before, after, &["vllm:time_to_first_token_seconds"]),
            tpot_mean_ms: histogram_mean(
                before,
                after,
                &[
                    "vllm:time_per_output_token_seconds",
                    "vllm:inter_token_latency_seconds",
                ],
            )
            .or_else(|| {
                per_token(
                    "llamacpp:tokens_predicted_seconds_total",
                    "llamacpp:tokens_predicted_total",
                )
            }),
            queue_time_mean_ms: histogram_mean(before, after, &["vllm:request_queue_time_seconds"]),
            e2e_latency_mean_ms: histogram_mean(
                before,
                after,
                &["vllm:e2e_request_latency_seconds"],
            ),
            prefill_ms_per_token: per_token(
                "llamacpp:prompt_seconds_total",
                "llamacpp:prompt_tokens_total",
            ),
            requests_finished: grown(before, after, &["vllm:request_success_total"]),
            prompt_tokens: grown(
                before,
                after,
                &["vllm:prompt_tokens_total", "llamacpp:prompt_tokens_total"],
            ),
            prompt_tokens_cached: grown(before, after, &["llamacpp:prompt_tokens_cached_total"]),
            generation_tokens: grown(
                before,
                after,
                &[
                    "vllm:generation_tokens_total",
                    "llamacpp:tokens_predicted_total",
                ],
            ),
            prefix_cache_hit_rate: match (hits, queries) {
                (Some(h), Some(q)) if q > 0.0 => Some(h / q),
                _ => None,
            },
            running: sampled(
                during,
                &["vllm:num_requests_running", "llamacpp:requests_processing"],
            ),
            waiting: sampled(
                during,
                &["vllm:num_requests_waiting", "llamacpp:requests_deferred"],
            ),
            kv_cache_usage: sampled(
                during,
                &[
                    "vllm:kv_cache_usage_perc",
                    "vllm:gpu_cache_usage_perc",
                    "llamacpp:kv_cache_usage_ratio",
                ],
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/llama-server-metrics/"
    );

    fn page(name: &str) -> Page {
        parse(&std::fs::read_to_string(format!("{DIR}{name}.txt")).unwrap())
    }

    /// Pages recorded from a real `llama-server --metrics` before, during and after
    /// a run of 10 requests of 48 prompt tokens and 16 output tokens from 2 users.
    #[test]
    fn a_recorded_llama_server_run_gives_the_servers_own_figures() {
        let pages: Vec<Page> = ["before", "during-1", "during-2", "during-3", "after"]
            .iter()
            .map(|n| page(n))
            .collect();
        assert_eq!(pages[0]["llamacpp:prompt_tokens_total"], 1509.0);
        let m = ServerMetrics::of(&pages).unwrap();
        assert_eq!(m.server, "llamacpp");
        assert_eq!(m.scrapes, 5);
        // What the client counted by the server's usage: 480 in, 160 out.
        assert_eq!(m.prompt_tokens, Some(480.0));
        assert_eq!(m.generation_tokens, Some(160.0));
        assert_eq!(m.prompt_tokens_cached, Some(0.0));
        // (40.6442 - 36.4638) s / 160 tokens; (11.3997 - 8.72785) s / 480 tokens.
        assert!((m.tpot_mean_ms.unwrap() - 26.1275).abs() < 1e-3, "{m:?}");
        assert!(
            (m.prefill_ms_per_token.unwrap() - 5.566_35).abs() < 1e-3,
            "{m:?}"
        );
        let running = m.running.unwrap();
        assert_eq!((running.mean, running.max, running.samples), (2.0, 2.0, 3));
        assert_eq!(m.waiting.unwrap().max, 0.0);
        // llama.cpp has no TTFT histogram: none is made up.
        assert!(m.ttft_mean_ms.is_none() && m.queue_time_mean_ms.is_none());
        // A page with no server's series is no figure at all.
        assert!(ServerMetrics::of(&[parse("# TYPE up gauge\nup 1\n")]).is_none());
    }

    /// vLLM cannot run here (no GPU): this page is **written** from vLLM's documented
    /// metric names (`docs/design/metrics.md`: V1's `kv_cache_usage_perc`, histograms
    /// as `_sum`/`_count`/`_bucket`), two label sets of one model, not recorded.
    #[test]
    fn vllm_histograms_become_means_and_label_sets_add_up() {
        let before = parse(
            "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.\n\
             # TYPE vllm:time_to_first_token_seconds histogram\n\
             vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"m a\"} 1.0\n\
             vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"m a\"} 10\n\
             vllm:request_queue_time_seconds_sum{model_name=\"m a\"} 0.5\n\
             vllm:request_queue_time_seconds_count{model_name=\"m a\"} 10\n\
             vllm:prefix_cache_queries_total{model_name=\"m a\"} 1000\n\
             vllm:prefix_cache_hits_total{model_name=\"m a\"} 100\n\
             vllm:num_requests_running{model_name=\"m a\"} 0\n",
        );
        let during = parse(
            "vllm:num_requests_running{engine=\"0\",model_name=\"m a\"} 6\n\
             vllm:num_requests_running{engine=\"1\",model_name=\"m a\"} 2\n\
             vllm:num_requests_waiting{model_name=\"m a\"} 3\n\
             vllm:kv_cache_usage_perc{model_name=\"m a\"} 0.42 1700000000000\n",
        );
        let after = parse(
            "vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"m a\"} 4.0\n\
             vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"m a\"} 30\n\
             vllm:request_queue_time_seconds_sum{model_name=\"m a\"} 2.5\n\
             vllm:request_queue_time_seconds_count{model_name=\"m a\"} 30\n\
             vllm:prefix_cache_queries_total{model_name=\"m a\"} 3000\n\
             vllm:prefix_cache_hits_total{model_name=\"m a\"} 500\n\
             vllm:num_requests_running{model_name=\"m a\"} 0\n",
        );
        let m = ServerMetrics::of(&[before, during, after]).unwrap();
        assert_eq!(m.server, "vllm");
        // (4.0 - 1.0) s over 20 requests; (2.5 - 0.5) s over 20.
        assert!((m.ttft_mean_ms.unwrap() - 150.0).abs() < 1e-9);
        assert!((m.queue_time_mean_ms.unwrap() - 100.0).abs() < 1e-9);
        assert!((m.prefix_cache_hit_rate.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(m.running.unwrap().max, 8.0, "the engines' gauges add up");
        assert_eq!(m.waiting.unwrap().mean, 3.0);
        assert_eq!(
            m.kv_cache_usage.unwrap().max,
            0.42,
            "a timestamp is not the value"
        );
    }
}
