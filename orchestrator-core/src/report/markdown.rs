//! The Markdown form of a session report: what a person reads first.

use std::fmt::Write as _;

use serde_json::Value;

use super::types::{ClientProfile, ClientRun, SessionReport};

/// The distributions a run may have, in the order tables show them.
const DISTRIBUTIONS: [(&str, &str); 5] = [
    ("latency_ms", "latency"),
    ("ttft_ms", "TTFT"),
    ("tpot_ms", "TPOT"),
    ("itl_ms", "inter-chunk"),
    ("schedule_lag_ms", "schedule lag"),
];
const STATS: [&str; 8] = ["mean", "min", "p50", "p90", "p95", "p99", "p999", "max"];

/// `|` would end a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn number(v: Option<&Value>) -> String {
    match v.and_then(Value::as_f64) {
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
        None => "-".to_owned(),
    }
}

fn parameters(p: &Value) -> String {
    match p.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".to_owned(),
    }
}

/// The report as Markdown.
#[must_use]
pub fn markdown(r: &SessionReport) -> String {
    let mut out = String::new();
    let s = &r.session;
    let _ = writeln!(
        out,
        "# Benchmark report: {} ({})\n",
        s.name.as_deref().unwrap_or("unnamed"),
        s.id
    );
    out.push_str("| | |\n|---|---|\n");
    let rows = [
        ("state", s.state.to_string()),
        ("scheduler", format!("{} on {}", s.scheduler, s.target)),
        ("started", s.started_at.clone()),
        (
            "finished",
            s.finished_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "duration",
            s.duration_s
                .map_or_else(|| "-".into(), |d| format!("{d:.1} s")),
        ),
        (
            "recipe",
            format!(
                "{} (sha256 `{}`)",
                s.recipe_path.as_deref().unwrap_or("-"),
                &r.recipe_sha256
            ),
        ),
        ("orchestrator", r.orchestrator_version.clone()),
        (
            "service versions",
            if r.service_versions.is_empty() {
                "-".to_owned()
            } else {
                r.service_versions
                    .iter()
                    .map(|(s, v)| format!("{s} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("generated", r.generated_at.clone()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "| {k} | {} |", cell(&v));
    }
    if let Some(error) = &s.error {
        let _ = writeln!(out, "\n**Error:** {}", cell(error));
    }

    out.push_str("\n## Jobs\n\n| kind | job | id | node | state | exit | submitted | ended |\n|---|---|---|---|---|---|---|---|\n");
    for j in &r.jobs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            j.kind,
            cell(&j.job_name),
            j.job_id.as_deref().unwrap_or("-"),
            j.node.as_deref().unwrap_or("-"),
            j.state,
            j.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            j.submitted_at.as_deref().unwrap_or("-"),
            j.ended_at.as_deref().unwrap_or("-"),
        );
    }
    if r.resources.iter().any(|j| !j.sbatch.is_empty()) {
        out.push_str("\n## Resources\n\n| job | node | sbatch options |\n|---|---|---|\n");
        for j in &r.resources {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                cell(&j.job_name),
                j.node.as_deref().unwrap_or("-"),
                cell(
                    &j.sbatch
                        .iter()
                        .map(|o| format!("`{o}`"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            );
        }
    }

    out.push_str("\n## Timeline\n\n| t (s) | subject | event | detail |\n|---|---|---|---|\n");
    for e in &r.timeline {
        let _ = writeln!(
            out,
            "| {:.1} | {} | {} | {} |",
            e.t_s,
            cell(e.subject.as_deref().unwrap_or("session")),
            e.event,
            cell(e.detail.as_deref().unwrap_or("")),
        );
    }

    if !r.runs.is_empty() {
        out.push_str("\n## Results\n");
        for run in &r.runs {
            run_section(&mut out, run);
        }
        sweeps(&mut out, &r.runs);
        repeats(&mut out, &r.repeats);
        profiles(&mut out, &r.profiles);
        if let Some(defs) = r
            .runs
            .iter()
            .find_map(|run| run.summary.get("definitions").and_then(Value::as_object))
        {
            out.push_str("\n### Definitions\n\n");
            for (k, v) in defs {
                let _ = writeln!(out, "- `{k}`: {}", v.as_str().unwrap_or_default());
            }
        }
    }

    if !r.monitoring.is_empty() {
        out.push_str("\n## Monitoring\n\n| service | samples | CPU % of a core (mean / max) | RSS MB (mean / max) | node CPU % | GPU util % | GPU memory MiB | GPU power W |\n|---|---|---|---|---|---|---|---|\n");
        let mm = |m: Option<crate::monitor::MeanMax>| {
            m.map_or_else(
                || "-".to_owned(),
                |m| format!("{:.1} / {:.1}", m.mean, m.max),
            )
        };
        for m in &r.monitoring {
            let s = &m.series.summary;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&m.service),
                s.samples,
                mm(s.cpu_percent),
                mm(s.rss_mb),
                mm(s.node_cpu_percent),
                mm(s.gpu_utilization_percent),
                mm(s.gpu_memory_used_mib),
                mm(s.gpu_power_w),
            );
        }
    }

    if let Some(p) = &r.prometheus {
        prometheus_section(&mut out, p);
    }

    if !r.expectations.is_empty() {
        out.push_str("\n## Expectations\n\n| client | run | metric | value | expected | result |\n|---|---|---|---|---|---|\n");
        for e in &r.expectations {
            let mut bounds = Vec::new();
            if let Some(min) = e.expected.min {
                bounds.push(format!("≥ {min}"));
            }
            if let Some(max) = e.expected.max {
                bounds.push(format!("≤ {max}"));
            }
            if let Some(t) = e.expected.tolerance {
                bounds.push(format!("± {t}"));
            }
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} | {} |",
                cell(&e.client),
                e.run.as_deref().unwrap_or("-"),
                e.metric,
                e.value.map_or_else(|| "-".into(), |v| format!("{v:.3}")),
                bounds.join(" "),
                if e.passed {
                    "pass".to_owned()
                } else {
                    format!("**MISSED**: {}", cell(e.message.as_deref().unwrap_or("")))
                },
            );
        }
    }

    if !r.errors.is_empty() {
        out.push_str("\n## Errors\n\n");
        for e in &r.errors {
            let _ = writeln!(out, "- {}", cell(e));
        }
    }
    out
}

fn run_section(out: &mut String, run: &ClientRun) {
    let s = &run.summary;
    let _ = writeln!(
        out,
        "\n### {} / {} ({})\n",
        cell(&run.client),
        run.run,
        cell(&parameters(&run.parameters))
    );
    if let Some(why) = &run.invalid {
        let _ = writeln!(out, "**INVALID**: {}\n", cell(why));
    }
    let count = |key: &str| s.get(key).and_then(Value::as_u64).unwrap_or(0);
    let failed = count("requests_failed");
    if failed > 0 {
        let all = failed + count("requests_completed");
        let mut kinds: Vec<(&String, u64)> = s
            .get("errors")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k, v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = kinds
            .iter()
            .take(3)
            .map(|(k, n)| format!("{k} × {n}"))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let rate = failed as f64 * 100.0 / all as f64;
        let _ = writeln!(
            out,
            "**FAILED**: {rate:.2} % of requests ({failed} of {all}): {}\n",
            cell(&top.join(", "))
        );
    }
    let _ = writeln!(
        out,
        "{} requests completed, {} failed, {} req/s over {} s{}{}\n",
        number(s.get("requests_completed")),
        number(s.get("requests_failed")),
        number(s.get("requests_per_second")),
        number(s.get("measured_seconds")),
        s.get("output_tokens_per_second")
            .map(|v| format!(", {} output tokens/s", number(Some(v))))
            .unwrap_or_default(),
        s.get("achieved_rate")
            .map(|v| format!(
                ", open loop: target {} req/s, achieved {}",
                number(s.get("target_rate")),
                number(Some(v))
            ))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        out,
        "| ms | {} |\n|---|{}",
        STATS.join(" | "),
        "---|".repeat(STATS.len())
    );
    for (key, label) in DISTRIBUTIONS {
        let Some(d) = s.get(key).filter(|d| d.is_object()) else {
            continue;
        };
        let values: Vec<String> = STATS.iter().map(|st| number(d.get(*st))).collect();
        let _ = writeln!(out, "| {label} | {} |", values.join(" | "));
    }
    input_check(out, s);
    if let Some(e) = &run.energy {
        let _ = writeln!(
            out,
            "\nEnergy (the service's GPU power.draw over the measured period, {} GPU{}, {} samples{}): {:.1} J at {:.1} W mean{}.",
            e.gpus,
            if e.gpus == 1 { "" } else { "s" },
            e.samples,
            if e.held_s > 0.0 {
                format!(
                    ", the nearest sample held over {:.1} s at the ends",
                    e.held_s
                )
            } else {
                String::new()
            },
            e.gpu_joules,
            e.mean_power_w,
            per_unit(e.joules_per_request, e.joules_per_output_token),
        );
    }
    if let Some(e) = &run.cpu_energy {
        let _ = writeln!(
            out,
            "\nCPU energy (the RAPL counters of the service node's {} package{} over the measured period, whatever else ran on them; {} readings): {:.1} J at {:.1} W mean{}.",
            e.packages,
            if e.packages == 1 { "" } else { "s" },
            e.samples,
            e.joules,
            e.mean_power_w,
            per_unit(e.joules_per_request, e.joules_per_output_token),
        );
    }
    server_metrics(out, s);
    replicas(out, s);
}

/// Whether prompts built to an exact length had it, by the server's count.
fn input_check(out: &mut String, s: &Value) {
    let Some(c) = s.get("input_length_check").filter(|c| c.is_object()) else {
        return;
    };
    let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
    let line = if n("mismatched") > 0 {
        format!(
            "**INPUT LENGTHS**: {} of {} prompts were not the length they were built to by the server's count (worst by {} tokens)",
            n("mismatched"),
            n("requests"),
            n("worst_difference")
        )
    } else {
        format!(
            "Input lengths: {} of {} prompts the length they were built to by the server's count{}",
            n("matched"),
            n("requests"),
            if n("unreported") > 0 {
                format!("; {} not counted by the server", n("unreported"))
            } else {
                String::new()
            }
        )
    };
    let _ = writeln!(out, "\n{line}.");
}

/// The server's own figures for the run, beside the client's.
fn server_metrics(out: &mut String, s: &Value) {
    let Some(m) = s.get("server_metrics").filter(|m| m.is_object()) else {
        return;
    };
    let client = |key: &str, stat: &str| number(s.get(key).and_then(|d| d.get(stat)));
    let _ = writeln!(
        out,
        "\nThe server's own figures ({}, {} scrapes of its metrics page):\n\n| | server | client |\n|---|---|---|",
        m.get("server").and_then(Value::as_str).unwrap_or("?"),
        number(m.get("scrapes"))
    );
    let rows = [
        ("TTFT mean ms", "ttft_mean_ms", client("ttft_ms", "mean")),
        ("TPOT mean ms", "tpot_mean_ms", client("tpot_ms", "mean")),
        (
            "latency mean ms",
            "e2e_latency_mean_ms",
            client("latency_ms", "mean"),
        ),
        ("queue time mean ms", "queue_time_mean_ms", "-".to_owned()),
        (
            "prefill ms per token",
            "prefill_ms_per_token",
            "-".to_owned(),
        ),
        (
            "requests finished",
            "requests_finished",
            number(s.get("requests_completed")),
        ),
        (
            "prompt tokens processed",
            "prompt_tokens",
            number(s.get("input_tokens")),
        ),
        (
            "prompt tokens from its cache",
            "prompt_tokens_cached",
            "-".to_owned(),
        ),
        (
            "generated tokens",
            "generation_tokens",
            number(s.get("output_tokens")),
        ),
        (
            "prefix cache hit rate",
            "prefix_cache_hit_rate",
            "-".to_owned(),
        ),
    ];
    for (label, key, theirs) in rows {
        if let Some(v) = m.get(key) {
            let _ = writeln!(out, "| {label} | {} | {theirs} |", number(Some(v)));
        }
    }
    for (label, key) in [
        ("requests running (mean / max)", "running"),
        ("requests waiting (mean / max)", "waiting"),
        ("KV cache in use (mean / max)", "kv_cache_usage"),
    ] {
        if let Some(g) = m.get(key).filter(|g| g.is_object()) {
            let _ = writeln!(
                out,
                "| {label} | {} / {} | - |",
                number(g.get("mean")),
                number(g.get("max"))
            );
        }
    }
}

/// A run of several replicas: the figures above are their merged ones; a row per
/// replica, an outlier marked.
fn replicas(out: &mut String, s: &Value) {
    let Some(rows) = s.get("replicas").and_then(Value::as_array) else {
        return;
    };
    let open = rows.iter().any(|r| r.get("achieved_rate").is_some());
    let _ = writeln!(
        out,
        "\nMerged from {} replicas (every request in one histogram):\n\n| replica | node | completed | failed | req/s |{} latency p99 ms | stands out |\n|---|---|---|---|---|{}---|---|",
        rows.len(),
        if open {
            " target req/s | achieved | lag p99 ms |"
        } else {
            ""
        },
        if open { "---|---|---|" } else { "" },
    );
    for r in rows {
        let open_cells = if open {
            format!(
                " {} | {} | {} |",
                number(r.get("target_rate")),
                number(r.get("achieved_rate")),
                number(r.get("schedule_lag_p99_ms"))
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |{open_cells} {} | {} |",
            number(r.get("replica")),
            cell(r.get("node").and_then(Value::as_str).unwrap_or("?")),
            number(r.get("requests_completed")),
            number(r.get("requests_failed")),
            number(r.get("requests_per_second")),
            number(r.get("latency_p99_ms")),
            r.get("outlier")
                .and_then(Value::as_str)
                .map_or_else(String::new, |w| format!("**{}**", cell(w))),
        );
    }
}

/// One table per swept client: each run's parameters and headline figures.
/// The points that ran more than once: each headline figure across the runs.
/// Each load profile's runs, and its knee or the rate that met the SLOs.
fn profiles(out: &mut String, profiles: &[ClientProfile]) {
    for p in profiles {
        let o = &p.outcome;
        let kind = o["profile"].as_str().unwrap_or("profile");
        let _ = writeln!(out, "\n### Load profile of `{}`: {kind}\n", cell(&p.client));
        let points = o["points"].as_array().map_or(&[][..], Vec::as_slice);
        let knee = o["knee"].as_u64();
        match (knee, o["slo_rate"].as_f64()) {
            (Some(k), _) => {
                let none = Value::Null;
                let point = usize::try_from(k)
                    .ok()
                    .and_then(|k| points.get(k))
                    .unwrap_or(&none);
                // The load offered: the rate asked for, or the synchronous pass's.
                let load = point["rate"]
                    .as_f64()
                    .or_else(|| point["requests_per_second"].as_f64());
                let _ = writeln!(
                    out,
                    "The knee of the load–latency curve is run {} ({}): {:.2} req/s offered at latency p99 {:.1} ms, {:.2} requests in flight on average.\n",
                    k + 1,
                    point["kind"].as_str().unwrap_or(""),
                    load.unwrap_or(0.0),
                    point["latency_p99_ms"].as_f64().unwrap_or(0.0),
                    point["mean_in_flight"].as_f64().unwrap_or(0.0),
                );
            }
            (_, Some(rate)) => {
                let check = match o["faster_missed"].as_bool() {
                    Some(true) => " A run 20 % faster missed them.",
                    Some(false) => {
                        " **A run 20 % faster met them too: the answer is a lower bound.**"
                    }
                    None => "",
                };
                let _ = writeln!(
                    out,
                    "The highest rate that met the objectives: **{rate:.3} req/s**.{check}\n"
                );
            }
            _ => {}
        }
        if let Some(problem) = o["problem"].as_str() {
            let _ = writeln!(out, "**{}**\n", cell(problem));
        }
        out.push_str("| run | kind | rate asked | req/s | latency p50 ms | latency p99 ms | TTFT p99 ms | in flight | failed | objectives |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for (i, point) in points.iter().enumerate() {
            let num = |k: &str| {
                point[k]
                    .as_f64()
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
            };
            let verdict = match (point.get("missed").and_then(Value::as_str), kind) {
                (Some(why), _) => format!("missed: {}", cell(why)),
                (None, "slo_search") if !point["rate"].is_null() => "met".to_owned(),
                _ => "-".to_owned(),
            };
            let mark = if knee == Some(i as u64) {
                " **knee**"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "| {}{mark} | {} | {} | {} | {} | {} | {} | {} | {} | {verdict} |",
                i + 1,
                point["kind"].as_str().unwrap_or(""),
                point["rate"].as_f64().map_or_else(
                    || point["concurrency"].as_u64().map_or_else(
                        || "-".to_owned(),
                        |c| format!("{c} user{}", if c == 1 { "" } else { "s" })
                    ),
                    |r| format!("{r:.3}/s"),
                ),
                num("requests_per_second"),
                num("latency_p50_ms"),
                num("latency_p99_ms"),
                num("ttft_p99_ms"),
                num("mean_in_flight"),
                point["requests_failed"].as_u64().unwrap_or(0),
            );
        }
    }
}

fn repeats(out: &mut String, points: &[crate::workload::repeats::RepeatPoint]) {
    if points.is_empty() {
        return;
    }
    out.push_str("\n### Repeats\n\n| client | parameters | runs | metric | mean | 95 % interval | CV |\n|---|---|---|---|---|---|---|\n");
    for point in points {
        for (metric, s) in &point.metrics {
            let flag = if point.unstable.contains(metric) {
                format!(
                    " **above {} %: unstable**",
                    crate::workload::repeats::MAX_STABLE_CV * 100.0
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {metric} | {:.3} | {:.3} – {:.3} | {:.2} %{flag} |",
                cell(&point.client),
                cell(&parameters(&point.parameters)),
                point.runs.len(),
                s.mean,
                s.ci95_low,
                s.ci95_high,
                s.cv * 100.0,
            );
        }
    }
}

fn sweeps(out: &mut String, runs: &[ClientRun]) {
    let mut clients: Vec<&str> = runs.iter().map(|r| r.client.as_str()).collect();
    clients.dedup();
    for client in clients {
        let mine: Vec<&ClientRun> = runs.iter().filter(|r| r.client == client).collect();
        if mine.len() < 2 {
            continue;
        }
        let _ = writeln!(
            out,
            "\n### Sweep: {}\n\n| run | parameters | completed | failed | req/s | p50 ms | p99 ms | tokens/s |\n|---|---|---|---|---|---|---|---|",
            cell(client)
        );
        for r in mine {
            let s = &r.summary;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.run,
                cell(&parameters(&r.parameters)),
                number(s.get("requests_completed")),
                number(s.get("requests_failed")),
                number(s.get("requests_per_second")),
                number(s.get("latency_ms").and_then(|l| l.get("p50"))),
                number(s.get("latency_ms").and_then(|l| l.get("p99"))),
                number(s.get("output_tokens_per_second")),
            );
        }
    }
}

/// What the session's Prometheus scraped: its targets, then each query's series with
/// their last and highest values.
fn prometheus_section(out: &mut String, p: &crate::monitoring::Snapshot) {
    let _ = writeln!(
        out,
        "\n## Prometheus\n\nPrometheus {}{} scraped every {} s; the series below are its answers over the session (step {} s), in `prometheus.json`; Grafana's provisioning for them is in `grafana/` (not run here).\n",
        p.prometheus,
        p.version
            .as_ref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
        p.scrape_interval_s,
        p.step_s
    );
    for problem in p.problems() {
        let _ = writeln!(out, "- **{}**", cell(&problem));
    }
    out.push_str(
        "\n| job | instance | scraped | at the end | last error |\n|---|---|---|---|---|\n",
    );
    for t in &p.targets {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&t.job),
            cell(&t.instance),
            if p.ever_up(t) { "yes" } else { "never" },
            cell(&t.health),
            cell(&t.last_error)
        );
    }
    out.push_str(
        "\n| query | series | labels | points | last | max |\n|---|---|---|---|---|---|\n",
    );
    for q in &p.queries {
        if q.series.is_empty() {
            let _ = writeln!(
                out,
                "| {} | 0 | {} | 0 | - | - |",
                cell(&q.name),
                cell(q.error.as_deref().unwrap_or("no series"))
            );
        }
        for s in &q.series {
            let labels = s.shown_labels();
            let last = s.values.last().map_or("-".to_owned(), |(_, v)| figure(*v));
            let max = s
                .values
                .iter()
                .map(|(_, v)| *v)
                .filter(|v| v.is_finite())
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
                .map_or("-".to_owned(), figure);
            let _ = writeln!(
                out,
                "| {} | 1 | {} | {} | {last} | {max} |",
                cell(&q.name),
                cell(&labels.join(", ")),
                s.values.len()
            );
        }
    }
}

/// A figure of a Prometheus series: whole above 1000, else four significant decimals.
fn figure(v: f64) -> String {
    if !v.is_finite() {
        v.to_string()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// `, 0.123 J per request, 0.0012 J per output token`, of what is known.
fn per_unit(per_request: Option<f64>, per_token: Option<f64>) -> String {
    let mut text = String::new();
    if let Some(j) = per_request {
        let _ = write!(text, ", {j:.3} J per request");
    }
    if let Some(j) = per_token {
        let _ = write!(text, ", {j:.4} J per output token");
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::monitoring::{QuerySeries, Series, Snapshot, TargetHealth};

    #[test]
    fn the_prometheus_section_lists_targets_and_each_series_last_and_highest_value() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let snapshot = Snapshot {
            prometheus: "node1:9090".into(),
            version: Some("2.42.0".into()),
            scrape_interval_s: 2.0,
            start: 100.0,
            end: 130.0,
            step_s: 2.0,
            targets: vec![
                TargetHealth {
                    job: "client".into(),
                    instance: "node2:9464".into(),
                    health: "down".into(),
                    last_error: "connection refused".into(),
                    labels: BTreeMap::new(),
                },
                TargetHealth {
                    job: "node".into(),
                    instance: "node3:9100".into(),
                    health: "down".into(),
                    last_error: "no route to host".into(),
                    labels: BTreeMap::new(),
                },
            ],
            queries: vec![
                QuerySeries {
                    name: "targets up".into(),
                    query: "up".into(),
                    series: vec![Series {
                        labels: labels(&[
                            ("__name__", "up"),
                            ("instance", "node2:9464"),
                            ("job", "client"),
                            ("session", "ses-1"),
                        ]),
                        values: vec![(100.0, 1.0), (102.0, 0.0)],
                    }],
                    error: None,
                },
                QuerySeries {
                    name: "node memory available (bytes)".into(),
                    query: "q".into(),
                    series: vec![Series {
                        labels: labels(&[("node", "node1")]),
                        values: vec![(100.0, 24_543_502_336.0), (102.0, 24_542_732_288.0)],
                    }],
                    error: None,
                },
                QuerySeries {
                    name: "mine".into(),
                    query: "rate(x[".into(),
                    series: Vec::new(),
                    error: Some("bad_data: unclosed".into()),
                },
            ],
            errors: Vec::new(),
        };
        let mut out = String::new();
        prometheus_section(&mut out, &snapshot);
        // The client's endpoint was scraped, then went away with the client: no
        // problem; node3 was never scraped, and the query was refused: said first.
        assert!(
            out.contains("- **Prometheus never scraped node3:9100 (job node): no route to host**"),
            "{out}"
        );
        assert!(
            out.contains("- **Prometheus refused the query `rate(x[`: bad_data: unclosed**"),
            "{out}"
        );
        assert!(!out.contains("never scraped node2"), "{out}");
        assert!(
            out.contains("| client | node2:9464 | yes | down | connection refused |"),
            "{out}"
        );
        assert!(
            out.contains("| targets up | 1 | instance=node2:9464, job=client | 2 | 0 | 1 |"),
            "{out}"
        );
        assert!(
            out.contains(
                "| node memory available (bytes) | 1 | node=node1 | 2 | 24542732288 | 24543502336 |"
            ),
            "{out}"
        );
        assert!(
            out.contains("| mine | 0 | bad_data: unclosed | 0 | - | - |"),
            "{out}"
        );
        assert_eq!(figure(0.001_234_56), "0.0012");
        assert_eq!(figure(12.5), "12.5");
    }
}
