//! `orchestrator report`, `report compare`, `history`, `results fetch` and `tunnel`:
//! reading, comparing and reaching what a session left.

use std::io::Write as _;

use orchestrator_core::expect::metric;
use orchestrator_core::{BenchmarkOrchestrator, ClientRun, ReportFormat, SessionReport};
use serde::Serialize;

use crate::app::{Exit, fail, on_signal, with_orchestrator};
use crate::cli::{Cli, HistoryArgs, ReportArgs, ReportCommand, ResultsCommand, TunnelArgs};
use crate::output::{self, print_json};

/// The figures `report compare` and `history` show, by their `expect` names.
const COMPARED: [&str; 10] = [
    "requests_per_second",
    "error_rate",
    "latency_p50_ms",
    "latency_p99_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_mean_ms",
    "itl_p50_ms",
    "output_tokens_per_second",
    "achieved_rate",
];

/// The newest session, for commands whose session is optional.
fn latest(orch: &BenchmarkOrchestrator) -> Result<String, orchestrator_core::CoreError> {
    orch.sessions()?
        .into_iter()
        .next()
        .map(|s| s.session_id)
        .ok_or_else(|| orchestrator_core::CoreError::NotFound {
            what: "session",
            id: "(none recorded yet)".into(),
        })
}

/// `orchestrator report [SESSION] [-o FILE] [--format F]` and `report compare A B`.
pub fn report(cli: &Cli, args: &ReportArgs) -> Exit {
    if let Some(ReportCommand::Compare { a, b, json }) = &args.command {
        return compare(cli, a, b, *json);
    }
    if let Some(input) = &args.input {
        let report = std::fs::read_to_string(input)
            .map_err(|e| e.to_string())
            .and_then(|text| SessionReport::from_json(&text));
        return match report {
            Ok(report) => emit(&report, args),
            Err(e) => {
                eprintln!(
                    "error: {}: not a JSON report ({e})\n  hint: give a session's report.json (version 2 or 3), or the output of `orchestrator report -o FILE.json`",
                    input.display()
                );
                Exit::Invalid
            }
        };
    }
    with_orchestrator(cli, |orch| async move {
        let id = match args.session.clone().map_or_else(|| latest(&orch), Ok) {
            Ok(id) => id,
            Err(error) => return fail(&error),
        };
        match orch.report(&id) {
            Ok(report) => emit(&report, args),
            Err(error) => fail(&error),
        }
    })
}

/// Writes `report` where and how `args` say: to `-o FILE` in its extension's format (or
/// `--format`), else on stdout (Markdown unless `--format`).
fn emit(report: &SessionReport, args: &ReportArgs) -> Exit {
    let format = args.format.as_deref().and_then(ReportFormat::from_name);
    if let Some(path) = &args.output {
        let result = match format {
            // --format wins over the extension.
            Some(format) => report.write_as(path, format),
            None => report.write(path),
        };
        return match result {
            Ok(()) => {
                eprintln!(
                    "report of {} written to {}",
                    report.session.id,
                    path.display()
                );
                Exit::Success
            }
            Err(error) => fail(&error),
        };
    }
    let text = report.render(format.unwrap_or(ReportFormat::Markdown));
    let _ = std::io::stdout().write_all(text.as_bytes());
    Exit::Success
}

/// One figure of one run in two sessions.
#[derive(Debug, Serialize)]
struct Delta {
    client: String,
    run: String,
    metric: &'static str,
    a: f64,
    b: f64,
    delta: f64,
    /// `(b - a) / a`, in percent; `None` when `a` is 0.
    change_percent: Option<f64>,
}

fn deltas(a: &SessionReport, b: &SessionReport) -> Vec<Delta> {
    let mut out = Vec::new();
    for run_a in &a.runs {
        let Some(run_b) = b
            .runs
            .iter()
            .find(|r| r.client == run_a.client && r.run == run_a.run)
        else {
            continue;
        };
        for name in COMPARED {
            let (Some(va), Some(vb)) = (metric(&run_a.summary, name), metric(&run_b.summary, name))
            else {
                continue;
            };
            out.push(Delta {
                client: run_a.client.clone(),
                run: run_a.run.clone(),
                metric: name,
                a: va,
                b: vb,
                delta: vb - va,
                change_percent: (va != 0.0).then(|| (vb - va) / va * 100.0),
            });
        }
    }
    out
}

fn compare(cli: &Cli, a: &str, b: &str, json: bool) -> Exit {
    with_orchestrator(cli, |orch| async move {
        let (ra, rb) = match (orch.report(a), orch.report(b)) {
            (Ok(ra), Ok(rb)) => (ra, rb),
            (Err(error), _) | (_, Err(error)) => return fail(&error),
        };
        let rows = deltas(&ra, &rb);
        if json {
            print_json(&serde_json::json!({
                "a": {"session": a, "recipe_sha256": ra.recipe_sha256},
                "b": {"session": b, "recipe_sha256": rb.recipe_sha256},
                "same_recipe": ra.recipe_sha256 == rb.recipe_sha256,
                "deltas": rows,
            }));
            return Exit::Success;
        }
        println!(
            "B {b} against A {a}{}",
            if ra.recipe_sha256 == rb.recipe_sha256 {
                " (same recipe)"
            } else {
                " (different recipes)"
            }
        );
        if rows.is_empty() {
            println!("no run of one session matches a run of the other (same client and run)");
            return Exit::Success;
        }
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|d| {
                vec![
                    d.client.clone(),
                    d.run.clone(),
                    d.metric.to_owned(),
                    format!("{:.3}", d.a),
                    format!("{:.3}", d.b),
                    format!("{:+.3}", d.delta),
                    d.change_percent
                        .map_or_else(|| "-".into(), |p| format!("{p:+.1} %")),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(
                &["CLIENT", "RUN", "METRIC", "A", "B", "DELTA", "CHANGE"],
                &table
            )
        );
        Exit::Success
    })
}

/// One past session.
#[derive(Debug, Serialize)]
struct HistoryRow {
    session: String,
    name: Option<String>,
    state: orchestrator_core::lifecycle::SessionState,
    started_at: String,
    duration_s: Option<f64>,
    recipe_sha256: String,
    runs: usize,
    /// The first run's figures.
    requests_per_second: Option<f64>,
    latency_p99_ms: Option<f64>,
    output_tokens_per_second: Option<f64>,
    expectations_passed: usize,
    expectations: usize,
}

fn history_row(report: &SessionReport) -> HistoryRow {
    let first: Option<&ClientRun> = report.runs.first();
    let figure = |name| first.and_then(|r| metric(&r.summary, name));
    HistoryRow {
        session: report.session.id.clone(),
        name: report.session.name.clone(),
        state: report.session.state,
        started_at: report.session.started_at.clone(),
        duration_s: report.session.duration_s,
        recipe_sha256: report.recipe_sha256.clone(),
        runs: report.runs.len(),
        requests_per_second: figure("requests_per_second"),
        latency_p99_ms: figure("latency_p99_ms"),
        output_tokens_per_second: figure("output_tokens_per_second"),
        expectations_passed: report.expectations.iter().filter(|e| e.passed).count(),
        expectations: report.expectations.len(),
    }
}

/// `orchestrator history`.
pub fn history(cli: &Cli, args: &HistoryArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        let mut sessions = match orch.sessions() {
            Ok(s) => s,
            Err(error) => return fail(&error),
        };
        sessions.truncate(args.limit);
        let mut rows = Vec::new();
        for s in &sessions {
            match orch.report(&s.session_id) {
                Ok(report) => rows.push(history_row(&report)),
                Err(error) => return fail(&error),
            }
        }
        if args.json {
            print_json(&rows);
            return Exit::Success;
        }
        let opt = |v: Option<f64>, digits: usize| {
            v.map_or_else(|| "-".into(), |x| format!("{x:.digits$}"))
        };
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.session.clone(),
                    r.name.clone().unwrap_or_else(|| "-".into()),
                    r.state.to_string(),
                    r.started_at
                        .replace('T', " ")
                        .trim_end_matches('Z')
                        .to_owned(),
                    opt(r.duration_s, 1),
                    r.runs.to_string(),
                    opt(r.requests_per_second, 1),
                    opt(r.latency_p99_ms, 3),
                    opt(r.output_tokens_per_second, 1),
                    if r.expectations == 0 {
                        "-".into()
                    } else {
                        format!("{}/{}", r.expectations_passed, r.expectations)
                    },
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(
                &[
                    "SESSION", "NAME", "STATE", "STARTED", "SECONDS", "RUNS", "REQ/S", "P99_MS",
                    "TOKENS/S", "EXPECT"
                ],
                &table
            )
        );
        Exit::Success
    })
}

/// `orchestrator results fetch SESSION [--to DIR]`.
pub fn results(cli: &Cli, command: &ResultsCommand) -> Exit {
    let (session, to) = match command {
        ResultsCommand::Fetch { session, to } => (session, to),
        ResultsCommand::Merge { dirs, out, json } => {
            return crate::engine::merge(dirs, out.as_deref(), *json);
        }
    };
    let to = to
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(session));
    with_orchestrator(cli, |orch| async move {
        match orch.fetch_session_outputs(session, &to).await {
            Ok(fetched) => {
                for (name, dir) in &fetched {
                    println!("{name}: {}", dir.display());
                }
                eprintln!(
                    "fetched {} job director{} of {session} into {}",
                    fetched.len(),
                    if fetched.len() == 1 { "y" } else { "ies" },
                    to.display()
                );
                Exit::Success
            }
            Err(error) => fail(&error),
        }
    })
}

/// `orchestrator tunnel SERVICE_ID [--local-port P]`.
pub fn tunnel(cli: &Cli, args: &TunnelArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        let cancel = orchestrator_core::CancellationToken::new();
        on_signal(cancel.clone(), |why| eprintln!("{why}: closing the tunnel"));
        let via = orch.shell().target().to_owned();
        let result = orch
            .tunnel(
                &args.service,
                args.local_port.unwrap_or(0),
                |t| {
                    // The line scripts wait for: the local address comes first.
                    eprintln!(
                        "forwarding {} to {} (service {}) through {via}; Ctrl-C to stop",
                        t.local, t.remote, t.service
                    );
                },
                &cancel,
            )
            .await;
        match result {
            Ok(n) => {
                eprintln!("tunnel closed after {n} connection(s)");
                Exit::Success
            }
            Err(error) => fail(&error),
        }
    })
}
