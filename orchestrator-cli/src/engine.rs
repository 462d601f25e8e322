//! The workload engine as the commands run it: a driver's workload prepared from its
//! parameters, the live metrics endpoint, a run's summary on the terminal, its verdict,
//! and runs merged into one result.

use std::path::Path;
use std::sync::Arc;

use orchestrator_core::Registry;
use orchestrator_core::workload::{self, Summary, Workload, repeats};
use serde_json::{Map, Value};

use crate::app::Exit;
use crate::output;

/// Serves live metrics on 0.0.0.0:`port` (0: any free port) until the token is
/// cancelled; says where on stderr.
pub fn metrics_endpoint(
    rt: &tokio::runtime::Runtime,
    port: u16,
) -> Result<
    (
        Arc<workload::LiveMetrics>,
        orchestrator_core::CancellationToken,
    ),
    String,
> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("0.0.0.0", port)))
        .map_err(|e| format!("cannot serve metrics on port {port}: {e}"))?;
    let bound = listener.local_addr().map_or(port, |a| a.port());
    let live = workload::LiveMetrics::new();
    let stop = orchestrator_core::CancellationToken::new();
    rt.spawn(workload::serve_metrics(
        live.clone(),
        listener,
        stop.clone(),
    ));
    eprintln!("metrics: http://0.0.0.0:{bound}/metrics (Prometheus text format)");
    Ok((live, stop))
}

pub fn prepare(
    driver: &str,
    url: &str,
    params: &Map<String, Value>,
) -> Result<Arc<dyn Workload>, String> {
    let driver = Registry::workload_named(driver)
        .map_err(|e| format!("{}\n  hint: {}", e.message, e.hint.unwrap_or_default()))?;
    match driver.workload(url, params) {
        Some(Ok(workload)) => Ok(workload),
        Some(Err(e)) => Err(format!(
            "{}\n  hint: {}",
            e.message,
            e.hint.unwrap_or_default()
        )),
        None => Err(format!(
            "the `{}` workload runs a program of its own, not the engine",
            driver.name()
        )),
    }
}

/// `orchestrator results merge DIR... [--out DIR] [--json]`: one exact result of
/// runs that loaded one service at once.
pub fn merge(dirs: &[std::path::PathBuf], out: Option<&Path>, json: bool) -> Exit {
    let mut records = Vec::new();
    let mut runs = Vec::new();
    for dir in dirs {
        let path = dir.join("recorder.json");
        let read = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<workload::RunRecord>(&text).map_err(|e| e.to_string())
            })
            .and_then(|record| Ok((record.summary()?, record)));
        let (s, record) = match read {
            Ok(read) => read,
            Err(e) => {
                eprintln!(
                    "error: cannot read {}: {e} (the engine writes it beside summary.json)",
                    path.display()
                );
                return Exit::Invalid;
            }
        };
        runs.push(serde_json::json!({
            "dir": dir.display().to_string(),
            "requests_completed": s.requests_completed,
            "requests_failed": s.requests_failed,
            "requests_per_second": s.requests_per_second,
            "achieved_rate": s.achieved_rate,
            "latency_p99_ms": s.latency_ms.p99,
            "schedule_lag_p99_ms": s.schedule_lag_ms.as_ref().map(|m| m.p99),
        }));
        records.push(record);
    }
    let merged = match workload::RunRecord::merged(&records).and_then(|m| Ok((m.summary()?, m))) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: the runs cannot be merged: {e}");
            return Exit::Invalid;
        }
    };
    let (summary, record) = merged;
    let mut value = serde_json::to_value(&summary).expect("summaries serialise");
    if let Some(map) = value.as_object_mut() {
        map.insert("merged_from".into(), Value::Array(runs.clone()));
    }
    if let Some(out) = out {
        let written = std::fs::create_dir_all(out).and_then(|()| {
            std::fs::write(
                out.join("summary.json"),
                serde_json::to_string_pretty(&value).expect("JSON") + "\n",
            )?;
            std::fs::write(
                out.join("recorder.json"),
                serde_json::to_string(&record).expect("JSON") + "\n",
            )
        });
        if let Err(e) = written {
            eprintln!("error: cannot write into {}: {e}", out.display());
            return Exit::Failure;
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
    } else {
        for run in &runs {
            eprintln!(
                "{}: {} completed, {} failed, {:.1} req/s",
                run["dir"].as_str().unwrap_or_default(),
                run["requests_completed"],
                run["requests_failed"],
                run["requests_per_second"].as_f64().unwrap_or_default()
            );
        }
        print_summary(&format!("{} runs, merged", records.len()), &summary);
    }
    verdict(&summary)
}

pub fn verdict(summary: &Summary) -> Exit {
    if summary.requests_completed == 0 && summary.requests_failed > 0 {
        Exit::Failure
    } else {
        Exit::Success
    }
}

pub fn print_summary(target: &str, s: &Summary) {
    // Failures first: a figure measured while requests failed is not the service's.
    let all = s.requests_completed + s.requests_failed;
    if s.requests_failed > 0 {
        let mut kinds: Vec<(&String, &u64)> = s.errors.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = kinds
            .iter()
            .take(3)
            .map(|(kind, n)| format!("{kind} × {n}"))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let rate = s.requests_failed as f64 * 100.0 / all as f64;
        println!(
            "FAILED: {rate:.2} % of requests ({} of {all}): {}",
            s.requests_failed,
            top.join(", ")
        );
    }
    println!("target: {target}");
    println!(
        "requests: {} completed, {} failed in {:.2} s: {:.1} req/s",
        s.requests_completed, s.requests_failed, s.measured_seconds, s.requests_per_second
    );
    if let (Some(unit), Some(items), Some(rate)) = (s.unit, s.items_completed, s.items_per_second) {
        println!(
            "{unit}: {items} in {:.2} s: {rate:.1} {unit}/s",
            s.measured_seconds
        );
    }
    for (name, op) in &s.operations {
        let items = match (op.items_completed, op.items_per_second) {
            (Some(items), Some(rate)) => format!(", {items} items: {rate:.1}/s"),
            _ => String::new(),
        };
        println!(
            "{name}: {} completed, {} failed: {:.1} req/s{items}",
            op.requests_completed, op.requests_failed, op.requests_per_second
        );
    }
    if let Some(counters) = &s.server_counters {
        let grown: Vec<String> = counters
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("{name} +{n}"))
            .collect();
        println!(
            "the server counted: {}",
            if grown.is_empty() {
                "nothing".to_owned()
            } else {
                grown.join(", ")
            }
        );
    }
    if let (Some(target), Some(achieved)) = (s.target_rate, s.achieved_rate) {
        println!(
            "open loop: target {target:.1} req/s, achieved {achieved:.1} req/s, {} dropped at the cap",
            s.requests_dropped.unwrap_or(0)
        );
    }
    let mut rows = vec![metric_row("latency", &s.latency_ms)];
    for (name, op) in &s.operations {
        rows.push(metric_row(&format!("latency {name}"), &op.latency_ms));
    }
    for (name, metric) in [
        ("schedule lag", &s.schedule_lag_ms),
        ("ttft", &s.ttft_ms),
        ("tpot", &s.tpot_ms),
        ("itl", &s.itl_ms),
    ] {
        if let Some(m) = metric {
            rows.push(metric_row(name, m));
        }
    }
    print!(
        "{}",
        output::table(
            &[
                "MS", "MEAN", "STD", "MIN", "P50", "P90", "P95", "P99", "P99.9", "MAX"
            ],
            &rows
        )
    );
    if let Some(tps) = s.output_tokens_per_second {
        println!("output tokens/s: {tps:.1}");
    }
    if let Some(c) = &s.input_length_check {
        if c.mismatched > 0 {
            println!(
                "INPUT LENGTHS: {} of {} prompts not the length they were built to, by the server's count (worst by {} tokens)",
                c.mismatched, c.requests, c.worst_difference
            );
        } else {
            println!(
                "input lengths: {} of {} as built, by the server's count{}",
                c.matched,
                c.requests,
                if c.unreported > 0 {
                    format!(" ({} not counted by the server)", c.unreported)
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(m) = &s.server_metrics {
        let mut said = Vec::new();
        for (name, v) in [
            ("ttft mean", m.ttft_mean_ms),
            ("tpot mean", m.tpot_mean_ms),
            ("queue time mean", m.queue_time_mean_ms),
            ("latency mean", m.e2e_latency_mean_ms),
            ("prefill per token", m.prefill_ms_per_token),
        ] {
            if let Some(v) = v {
                said.push(format!("{name} {v:.2} ms"));
            }
        }
        for (name, g) in [
            ("running", m.running),
            ("waiting", m.waiting),
            ("kv cache", m.kv_cache_usage),
        ] {
            if let Some(g) = g {
                said.push(format!("{name} mean {:.2} max {:.2}", g.mean, g.max));
            }
        }
        println!("the server ({}) says: {}", m.server, said.join(", "));
    }
    if let Some(g) = &s.goodput {
        println!(
            "goodput: {:.1} req/s ({:.1} % of requests met the SLOs)",
            g.requests_per_second,
            g.fraction * 100.0
        );
    }
    for (kind, n) in &s.errors {
        println!("errors: {kind}: {n}");
    }
}

/// `point 1 (3 runs): requests_per_second 1234.5 ± 12.3 (95 % CI), CV 0.8 %; …`, and
/// what varied by more than 5 %.
pub fn repeat_line(index: usize, point: &repeats::RepeatPoint) -> String {
    let figures: Vec<String> = point
        .metrics
        .iter()
        .map(|(name, s)| {
            format!(
                "{name} {:.2} ± {:.2} (95 % CI), CV {:.1} %",
                s.mean,
                (s.ci95_high - s.ci95_low) / 2.0,
                s.cv * 100.0
            )
        })
        .collect();
    let mut line = format!(
        "point {} ({} runs, {}): {}",
        index + 1,
        point.runs.len(),
        point.parameters,
        figures.join("; ")
    );
    if !point.unstable.is_empty() {
        line.push_str(&format!(
            "\nUNSTABLE: {} varied by more than {} % across the runs",
            point.unstable.join(", "),
            repeats::MAX_STABLE_CV * 100.0
        ));
    }
    line
}

fn metric_row(name: &str, m: &workload::MetricSummary) -> Vec<String> {
    let f = |v: f64| format!("{v:.3}");
    vec![
        name.to_owned(),
        f(m.mean),
        f(m.std),
        f(m.min),
        f(m.p50),
        f(m.p90),
        f(m.p95),
        f(m.p99),
        f(m.p999),
        f(m.max),
    ]
}
