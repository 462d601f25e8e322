//! `orchestrator run`: a whole session, with progress on stderr and a summary.

use orchestrator_core::lifecycle::SessionState;
use std::path::Path;

use orchestrator_core::{
    BenchmarkOrchestrator, CancellationToken, CoreError, RunOptions, SessionOutcome,
    load_recipe_file,
};

use crate::app::{Exit, cancel_on_signals, fail, with_orchestrator};
use crate::cli::{AttachArgs, Cli, RunArgs};
use crate::output::progress::Reporter;
use crate::output::{self, print_json};

/// `orchestrator run`.
pub fn run(cli: &Cli, args: &RunArgs) -> Exit {
    let recipe = match load_recipe_file(&args.recipe) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            if cli.verbose > 0 {
                for note in &loaded.notes {
                    eprintln!("read: {note}");
                }
            }
            loaded.recipe
        }
        Err(error) => return fail(&error),
    };
    let file = args.recipe.display().to_string();
    // A service matrix is several deployments, each a session of its own.
    let mut deployments = match orchestrator_core::matrix::deployments(&recipe, &file) {
        Ok(d) => d,
        Err(error) => return fail(&error),
    };
    if deployments.len() > 1 {
        return run_matrix(cli, args, deployments, file);
    }
    let recipe = deployments.remove(0).recipe;
    with_orchestrator(cli, |orch| async move {
        if args.dry_run {
            return dry_run(&orch, &recipe, &file).await;
        }
        let options = RunOptions {
            keep_services: args.keep_services,
            recipe_path: Some(file),
        };
        match session(&orch, &recipe, &options, Show::of(args.json)).await {
            Ok((_, exit, _)) | Err(exit) => exit,
        }
    })
}

/// One session of `recipe`, planned, driven and concluded: its id, its exit code and
/// whether it was cancelled (Ctrl-C, SIGTERM); `Err` when it could not be planned.
async fn session(
    orch: &BenchmarkOrchestrator,
    recipe: &orchestrator_recipes::BenchmarkRecipe,
    options: &RunOptions,
    show: Show,
) -> Result<(String, Exit, bool), Exit> {
    let plan = orch
        .prepare_session(recipe, options)
        .map_err(|e| fail(&e))?;
    let (reporter, cancel) = follow(orch, &plan.session_id);
    let result = orch
        .drive_session(&plan, options, reporter.as_ref(), &cancel)
        .await;
    let exit = conclude(orch, &plan.session_id, show, &reporter, result);
    Ok((plan.session_id, exit, cancel.is_cancelled()))
}

/// What a session's end prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// Its summary table and the clients' last lines.
    Summary,
    /// Its outcome as JSON.
    Json,
    /// Nothing (a matrix prints its own JSON at the end).
    Nothing,
}

impl Show {
    fn of(json: bool) -> Self {
        if json { Self::Json } else { Self::Summary }
    }
}

/// `orchestrator attach`.
pub fn attach(cli: &Cli, args: &AttachArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        if let Err(error) = orch.outcome(&args.session) {
            return fail(&error);
        }
        let (reporter, cancel) = follow(&orch, &args.session);
        reporter.line(&format!("attaching session {}", args.session));
        let result = orch
            .attach_session(&args.session, reporter.as_ref(), &cancel)
            .await;
        if let Err(
            error @ (CoreError::NotFound { .. }
            | CoreError::SessionHeld { .. }
            | CoreError::SessionEnded { .. }),
        ) = &result
        {
            // Refused before anything was done: there is no outcome of ours to show.
            reporter.finish();
            return fail(error);
        }
        conclude(&orch, &args.session, Show::of(args.json), &reporter, result)
    })
}

/// Keeps the session's debug log, and shows progress on stderr; Ctrl-C and SIGTERM
/// cancel the returned token.
pub(crate) fn follow(
    orch: &BenchmarkOrchestrator,
    session_id: &str,
) -> (std::sync::Arc<Reporter>, CancellationToken) {
    let log = orch.results_dir().join(session_id).join("orchestrator.log");
    if let Err(error) = output::logging::to_file(&log) {
        eprintln!(
            "warning: cannot keep the session's log in {}: {error}",
            log.display()
        );
    }
    let reporter = std::sync::Arc::new(Reporter::new());
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone(), reporter.clone());
    (reporter, cancel)
}

/// How a driven session ends the command: its summary (or JSON), the error or the
/// missed expectations, and the exit code.
pub(crate) fn conclude(
    orch: &BenchmarkOrchestrator,
    session_id: &str,
    show: Show,
    reporter: &Reporter,
    result: Result<SessionOutcome, CoreError>,
) -> Exit {
    reporter.finish();
    let outcome = match &result {
        Ok(outcome) => Some(outcome.clone()),
        Err(_) => orch.outcome(session_id).ok(),
    };
    match (show, &outcome) {
        (Show::Json, Some(outcome)) => print_json(outcome),
        (Show::Summary, Some(outcome)) => print_summary(outcome),
        _ => {}
    }
    match result {
        Ok(outcome) if outcome.state == SessionState::Failed => {
            eprintln!("error: {}", outcome.error.unwrap_or_default());
            Exit::Failure
        }
        Ok(outcome) if outcome.missed().next().is_some() => {
            for e in outcome.missed() {
                eprintln!(
                    "expectation missed: client {} {}: {} {}{}",
                    e.client,
                    e.run.as_deref().unwrap_or("-"),
                    e.metric,
                    e.message.as_deref().unwrap_or_default(),
                    if e.implicit {
                        " (the bound on failed requests, the config's `max_error_rate`; a \
                         client's `expect: {error_rate: {max: …}}` overrides it)"
                    } else {
                        ""
                    }
                );
            }
            Exit::ExpectationMissed
        }
        Ok(_) => Exit::Success,
        Err(error) => {
            let exit = fail(&error);
            if outcome.is_some_and(|o| !o.state.is_final()) {
                eprintln!(
                    "the session's jobs could not all be cancelled, so it was left as it is: \
                     `orchestrator attach {session_id}` continues it and \
                     `orchestrator stop {session_id}` stops it, once the cluster answers"
                );
            }
            exit
        }
    }
}

pub(crate) async fn dry_run(
    orch: &BenchmarkOrchestrator,
    recipe: &orchestrator_recipes::BenchmarkRecipe,
    file: &str,
) -> Exit {
    match orch.dry_run(recipe, file).await {
        Ok(jobs) => {
            for job in &jobs {
                println!("# ===== {} → {} =====", job.job_name, job.script_path);
                print!("{}", job.script);
            }
            eprintln!(
                "dry run: {} job script(s) rendered for the {} scheduler; nothing was submitted",
                jobs.len(),
                orch.scheduler().name()
            );
            Exit::Success
        }
        Err(error) => fail(&error),
    }
}

fn print_summary(outcome: &SessionOutcome) {
    let name_of = |id: &str| {
        outcome
            .services
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.clone())
            .or_else(|| {
                outcome
                    .clients
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| c.name.clone())
            })
            .unwrap_or_default()
    };
    let rows: Vec<Vec<String>> = outcome
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.kind.clone(),
                name_of(&j.owner_id),
                j.owner_id.clone(),
                j.job_id.clone().unwrap_or_else(|| "-".into()),
                j.node.clone().unwrap_or_else(|| "-".into()),
                j.state.to_string(),
                j.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
            ]
        })
        .collect();
    println!("session {}: {}", outcome.session_id, outcome.state);
    if !outcome.expectations.is_empty() {
        let missed = outcome.missed().count();
        println!(
            "expectations: {} of {} met{}",
            outcome.expectations.len() - missed,
            outcome.expectations.len(),
            if missed > 0 { " (exit code 3)" } else { "" }
        );
    }
    print!(
        "{}",
        output::table(
            &["KIND", "NAME", "ID", "JOB", "NODE", "STATE", "EXIT"],
            &rows
        )
    );
    if let Some(dir) = &outcome.results_dir {
        for client in &outcome.clients {
            // A client of replicas: the merged figures, not one replica's last lines.
            if let Some(merged) = merged_line(&Path::new(dir).join(&client.name)) {
                println!("\nclient {}: {merged}", client.name);
                continue;
            }
            let path = Path::new(dir).join(&client.name).join("stdout.log");
            if let Ok(text) = std::fs::read_to_string(&path) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(12)..];
                if !tail.is_empty() {
                    println!("\nclient {} ({}):", client.name, path.display());
                    for line in tail {
                        println!("  {line}");
                    }
                }
            }
        }
    }
    if let Some(report) = &outcome.report_path {
        println!("\nreport: {report}");
    }
    if outcome.state == SessionState::Running {
        let ids: Vec<&str> = outcome.services.iter().map(|s| s.id.as_str()).collect();
        println!(
            "services still running: {} (stop them with `orchestrator stop {}`)",
            ids.join(", "),
            outcome.session_id
        );
    }
}

/// A client of replicas' merged run in one line (a single run's; a sweep's runs are
/// in the report): `None` for any other client.
fn merged_line(client_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(client_dir.join("results/summary.json")).ok()?;
    let s: serde_json::Value = serde_json::from_str(&text).ok()?;
    let replicas = s.get("replicas")?.as_array()?;
    let figure = |key: &str| {
        s.get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let latency = |key: &str| {
        s["latency_ms"]
            .get(key)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0)
    };
    let problems = s
        .get("replica_problems")
        .and_then(serde_json::Value::as_array)
        .map(|p| {
            p.iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|p| !p.is_empty())
        .map(|p| format!("INVALID: {p}; "))
        .unwrap_or_default();
    Some(format!(
        "{problems}merged from {} replicas ({}): {} completed, {} failed, {:.1} req/s, latency p50 {:.3} ms, p99 {:.3} ms ({})",
        replicas.len(),
        replicas
            .iter()
            .filter_map(|r| r.get("node").and_then(serde_json::Value::as_str))
            .collect::<Vec<_>>()
            .join(", "),
        figure("requests_completed"),
        figure("requests_failed"),
        figure("requests_per_second"),
        latency("p50"),
        latency("p99"),
        client_dir.join("results/summary.json").display()
    ))
}

/// One deployment of a matrix as it ran.
#[derive(Debug, serde::Serialize)]
struct Deployed {
    number: usize,
    label: String,
    settings: Vec<orchestrator_core::matrix::Setting>,
    session_id: String,
    state: Option<SessionState>,
    exit_code: i32,
}

/// `orchestrator run` of a recipe with a service matrix: every deployment checked
/// before the first starts, then one session each, in turn; then their runs compared
/// (printed, and written as `matrix-SESSION.md`, `.html` and `.json` into the results
/// directory). The exit code is the worst of theirs.
fn run_matrix(
    cli: &Cli,
    args: &RunArgs,
    deployments: Vec<orchestrator_core::matrix::Deployment>,
    file: String,
) -> Exit {
    if deployments.iter().any(|d| d.recipe.clients.is_empty()) {
        eprintln!(
            "error: {file}: a service matrix needs clients: each deployment is loaded by them and stopped before the next (a service recipe alone stays up)"
        );
        return Exit::Invalid;
    }
    if args.keep_services {
        eprintln!(
            "error: --keep-services keeps one deployment's services, and this recipe's matrix makes {}: each is stopped before the next starts",
            deployments.len()
        );
        return Exit::Invalid;
    }
    with_orchestrator(cli, |orch| async move {
        let total = deployments.len();
        for d in &deployments {
            if let Err(error) = orch.check_recipe(&d.recipe, &file) {
                eprintln!("deployment {}/{total} ({}):", d.number, d.label);
                return fail(&error);
            }
        }
        if args.dry_run {
            for d in &deployments {
                println!("# ===== deployment {}/{total}: {} =====", d.number, d.label);
                let exit = dry_run(&orch, &d.recipe, &file).await;
                if exit != Exit::Success {
                    return exit;
                }
            }
            return Exit::Success;
        }
        let options = RunOptions {
            keep_services: false,
            recipe_path: Some(file.clone()),
        };
        let mut ran = Vec::new();
        let mut worst = Exit::Success;
        for d in &deployments {
            eprintln!("deployment {}/{total}: {}", d.number, d.label);
            let show = if args.json {
                Show::Nothing
            } else {
                Show::Summary
            };
            let (session_id, exit, cancelled) =
                match session(&orch, &d.recipe, &options, show).await {
                    Ok(ran) => ran,
                    Err(exit) => return exit,
                };
            ran.push(Deployed {
                number: d.number,
                label: d.label.clone(),
                settings: d.settings.clone(),
                state: orch.outcome(&session_id).ok().map(|o| o.state),
                session_id,
                exit_code: exit as i32,
            });
            worst = worse(worst, exit);
            if cancelled {
                eprintln!(
                    "interrupted: the deployments after {} were not run",
                    d.number
                );
                break;
            }
        }
        compare_deployments(&orch, &ran, args.json);
        worst
    })
}

/// The exit code that says more: a failure over missed expectations over success.
fn worse(a: Exit, b: Exit) -> Exit {
    let rank = |e: Exit| match e {
        Exit::Success => 0,
        Exit::ExpectationMissed => 1,
        _ => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// The figures the matrix comparison shows, by their `expect` names.
const MATRIX_FIGURES: [(&str, &str); 6] = [
    ("requests_per_second", "req/s"),
    ("error_rate", "errors"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("output_tokens_per_second", "tokens/s"),
    ("ttft_p99_ms", "TTFT p99 ms"),
];

/// Every run of every deployment side by side: a table on stdout (or one JSON
/// document), and `matrix-FIRST.md`/`.json` in the results directory.
fn compare_deployments(orch: &BenchmarkOrchestrator, ran: &[Deployed], json: bool) {
    use orchestrator_core::expect::metric;
    let mut found = Vec::new();
    for d in ran {
        let Ok(report) = orch.report(&d.session_id) else {
            continue;
        };
        for run in report.runs {
            let figures: serde_json::Map<String, serde_json::Value> = MATRIX_FIGURES
                .iter()
                .filter_map(|(name, _)| {
                    Some(((*name).to_owned(), metric(&run.summary, name)?.into()))
                })
                .collect();
            found.push((d, run, figures));
        }
    }
    // The figures some run has: an HTTP service's table has no tokens/s column.
    let shown: Vec<(&str, &str)> = MATRIX_FIGURES
        .iter()
        .filter(|(name, _)| found.iter().any(|(_, _, f)| f.contains_key(*name)))
        .copied()
        .collect();
    let mut rows = Vec::new();
    let mut table = Vec::new();
    for (d, run, figures) in &found {
        let mut cells = vec![
            d.number.to_string(),
            d.label.clone(),
            run.client.clone(),
            run.run.clone(),
        ];
        cells.extend(shown.iter().map(|(name, _)| {
            figures
                .get(*name)
                .and_then(serde_json::Value::as_f64)
                .map_or_else(|| "-".into(), |v| format!("{v:.3}"))
        }));
        cells.push(
            run.invalid
                .as_ref()
                .map_or_else(String::new, |why| format!("INVALID: {why}")),
        );
        table.push(cells);
        rows.push(serde_json::json!({
            "deployment": d.number,
            "session_id": d.session_id,
            "client": run.client,
            "run": run.run,
            "figures": figures,
            "invalid": run.invalid,
        }));
    }
    let mut headers = vec!["#", "DEPLOYMENT", "CLIENT", "RUN"];
    headers.extend(shown.iter().map(|(_, h)| *h));
    headers.push("NOTE");
    let document = serde_json::json!({"deployments": ran, "runs": rows});
    let mut markdown = format!(
        "# Deployments of one recipe's service matrix\n\n| {} |\n|{}\n",
        headers.join(" | "),
        "---|".repeat(headers.len())
    );
    for cells in &table {
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        markdown.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    markdown.push_str("\nSessions:\n\n");
    for d in ran {
        markdown.push_str(&format!(
            "- {} `{}`: {} (exit {}), `orchestrator report {}`\n",
            d.number,
            d.session_id,
            d.state.map_or_else(|| "?".to_owned(), |s| s.to_string()),
            d.exit_code,
            d.session_id
        ));
    }
    if let Some(first) = ran.first() {
        let base = orch
            .results_dir()
            .join(format!("matrix-{}", first.session_id));
        // A chart per figure: a line per client run across the deployments.
        let mut lines: Vec<(String, &serde_json::Map<String, serde_json::Value>, usize)> =
            Vec::new();
        for (d, run, figures) in &found {
            lines.push((format!("{} {}", run.client, run.run), figures, d.number));
        }
        let charts: Vec<orchestrator_core::DeploymentChart> = shown
            .iter()
            .map(|(name, header)| {
                let mut by_run: Vec<(String, Vec<Option<f64>>)> = Vec::new();
                for (label, figures, number) in &lines {
                    let index = by_run
                        .iter()
                        .position(|(l, _)| l == label)
                        .unwrap_or_else(|| {
                            by_run.push((label.clone(), vec![None; ran.len()]));
                            by_run.len() - 1
                        });
                    if let Some(slot) = ran.iter().position(|d| d.number == *number) {
                        by_run[index].1[slot] =
                            figures.get(*name).and_then(serde_json::Value::as_f64);
                    }
                }
                ((*header).to_owned(), (*header).to_owned(), by_run)
            })
            .collect();
        let html = orchestrator_core::deployments_html(
            "Deployments of one recipe's service matrix",
            &markdown,
            ran.len(),
            &charts,
        );
        let written = std::fs::write(base.with_extension("md"), &markdown)
            .and_then(|()| std::fs::write(base.with_extension("html"), &html))
            .and_then(|()| {
                std::fs::write(
                    base.with_extension("json"),
                    serde_json::to_string_pretty(&document).expect("JSON") + "\n",
                )
            });
        match written {
            Ok(()) => eprintln!("matrix comparison: {}", base.with_extension("md").display()),
            Err(e) => eprintln!(
                "warning: cannot write {}: {e}",
                base.with_extension("md").display()
            ),
        }
    }
    if json {
        print_json(&document);
    } else {
        println!("\ndeployments compared:");
        print!("{}", output::table(&headers, &table));
    }
}
