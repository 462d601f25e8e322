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
    with_orchestrator(cli, |orch| async move {
        if args.dry_run {
            return dry_run(&orch, &recipe, &file).await;
        }
        let options = RunOptions {
            keep_services: args.keep_services,
            recipe_path: Some(file),
        };
        let plan = match orch.prepare_session(&recipe, &options) {
            Ok(plan) => plan,
            Err(error) => return fail(&error),
        };
        let (reporter, cancel) = follow(&orch, &plan.session_id);
        let result = orch
            .drive_session(&plan, &options, reporter.as_ref(), &cancel)
            .await;
        conclude(&orch, &plan.session_id, args.json, &reporter, result)
    })
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
        conclude(&orch, &args.session, args.json, &reporter, result)
    })
}

/// Keeps the session's debug log, and shows progress on stderr; Ctrl-C and SIGTERM
/// cancel the returned token.
fn follow(
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
fn conclude(
    orch: &BenchmarkOrchestrator,
    session_id: &str,
    json: bool,
    reporter: &Reporter,
    result: Result<SessionOutcome, CoreError>,
) -> Exit {
    reporter.finish();
    let outcome = match &result {
        Ok(outcome) => Some(outcome.clone()),
        Err(_) => orch.outcome(session_id).ok(),
    };
    if json {
        if let Some(outcome) = &outcome {
            print_json(outcome);
        }
    } else if let Some(outcome) = &outcome {
        print_summary(outcome);
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

async fn dry_run(
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
