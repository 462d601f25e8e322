//! The commands that talk to the cluster (or the local scheduler): run, status,
//! service, client, stop, debug, clear-state, slurm-status.

use std::path::Path;

use orchestrator_core::{
    BenchmarkOrchestrator, CancellationToken, CoreError, RunOptions, SessionOutcome, SystemStatus,
    load_client, load_recipe_file, load_service,
};
use serde::Serialize;

use orchestrator_core::lifecycle::{JobRecordState, SessionState};

use crate::cli::{
    ClearStateArgs, Cli, ClientCommand, DebugArgs, RunArgs, ServiceCommand, StatusArgs, StopArgs,
};
use crate::progress::Reporter;
use crate::{Exit, render};

/// How an error of the core ends the command.
pub fn fail(error: &CoreError) -> Exit {
    eprint!("{}", render::diagnostic(error));
    match error {
        CoreError::Config(_) | CoreError::Recipe(_) | CoreError::Plan { .. } => Exit::Invalid,
        CoreError::Interrupted { .. } => Exit::Interrupted,
        _ => Exit::Failure,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("the async runtime starts")
}

/// Runs `f` on a runtime with an orchestrator built from the config.
pub fn with_orchestrator<F, Fut>(cli: &Cli, f: F) -> Exit
where
    F: FnOnce(BenchmarkOrchestrator) -> Fut,
    Fut: Future<Output = Exit>,
{
    let loaded = match crate::commands::config(cli) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let local = loaded.config.hpc.is_none();
    let orch = match BenchmarkOrchestrator::from_config(&loaded) {
        Ok(orch) => orch,
        Err(error) => return fail(&error),
    };
    // Jobs that run `orchestrator` (the workload engine, the demo server) run this very
    // binary: in place on this machine, uploaded once per build to a cluster.
    let orch = match (local, std::env::current_exe()) {
        (true, Ok(exe)) => orch.with_orchestrator_bin(exe.display().to_string()),
        (false, Ok(exe)) => orch.with_uploadable_binary(exe),
        (_, Err(_)) => orch,
    };
    runtime().block_on(f(orch))
}

pub(crate) fn print_json(value: &impl Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("output serialises")
    );
}

/// Cancels `token` on Ctrl-C or SIGTERM, after telling `reporter`.
fn cancel_on_signals(token: CancellationToken, reporter: std::sync::Arc<Reporter>) {
    on_signal(token, move |why| {
        reporter.line(&format!("{why}: cancelling the session's jobs"));
    });
}

/// Cancels `token` on Ctrl-C or SIGTERM, after calling `then` with
/// `interrupted (Ctrl-C)` or `terminated (SIGTERM)`.
pub(crate) fn on_signal(token: CancellationToken, then: impl FnOnce(&str) + Send + 'static) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => then("interrupted (Ctrl-C)"),
            () = terminated => then("terminated (SIGTERM)"),
        }
        token.cancel();
    });
}

/// `orchestrator run`.
pub fn run(cli: &Cli, args: &RunArgs) -> Exit {
    let recipe = match load_recipe_file(&args.recipe) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            if cli.verbose {
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
        let reporter = std::sync::Arc::new(Reporter::new());
        let cancel = CancellationToken::new();
        cancel_on_signals(cancel.clone(), reporter.clone());
        let result = orch
            .drive_session(&plan, &options, reporter.as_ref(), &cancel)
            .await;
        reporter.finish();
        let outcome = match &result {
            Ok(outcome) => Some(outcome.clone()),
            Err(_) => orch.outcome(&plan.session_id).ok(),
        };
        if args.json {
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
                        "expectation missed: client {} {}: {} {}",
                        e.client,
                        e.run.as_deref().unwrap_or("-"),
                        e.metric,
                        e.message.as_deref().unwrap_or_default()
                    );
                }
                Exit::ExpectationMissed
            }
            Ok(_) => Exit::Success,
            Err(error) => fail(&error),
        }
    })
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
        render::table(
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

/// `orchestrator status`.
pub fn status(cli: &Cli, args: &StatusArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        match orch
            .get_system_status(if args.all { None } else { Some(5) })
            .await
        {
            Ok(status) if args.json => {
                print_json(&status);
                Exit::Success
            }
            Ok(status) => {
                print_status(&status);
                Exit::Success
            }
            Err(error) => fail(&error),
        }
    })
}

fn dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn print_status(status: &SystemStatus) {
    println!(
        "scheduler: {} on {} · {} active job(s) · state: {}",
        status.scheduler, status.target, status.active_jobs, status.state_db
    );
    if status.sessions.is_empty() {
        println!("no sessions tracked");
        return;
    }
    let rows: Vec<Vec<String>> = status
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.session_id.clone(),
                dash(s.name.as_ref()),
                s.state.to_string(),
                s.active_jobs.to_string(),
                s.created_at
                    .replace('T', " ")
                    .trim_end_matches('Z')
                    .to_owned(),
                dash(s.error.as_ref()),
            ]
        })
        .collect();
    println!("\nSESSIONS");
    print!(
        "{}",
        render::table(
            &["ID", "NAME", "STATE", "ACTIVE", "STARTED (UTC)", "ERROR"],
            &rows
        )
    );
    if !status.services.services.is_empty() {
        let rows: Vec<Vec<String>> = status
            .services
            .services
            .iter()
            .map(|s| {
                vec![
                    s.service_id.clone(),
                    s.name.clone(),
                    s.session_id.clone(),
                    s.status.to_string(),
                    dash(s.job_id.as_ref()),
                    dash(s.job_state.as_ref()),
                    dash(s.node.as_ref()),
                    dash(s.port),
                ]
            })
            .collect();
        println!(
            "\nSERVICES ({} running of {})",
            status.services.running_services, status.services.total_services
        );
        print!(
            "{}",
            render::table(
                &[
                    "ID",
                    "NAME",
                    "SESSION",
                    "STATUS",
                    "JOB",
                    "JOB STATE",
                    "NODE",
                    "PORT"
                ],
                &rows
            )
        );
    }
    if !status.clients.clients.is_empty() {
        let rows: Vec<Vec<String>> = status
            .clients
            .clients
            .iter()
            .map(|c| {
                vec![
                    c.client_id.clone(),
                    c.name.clone(),
                    c.session_id.clone(),
                    c.status.to_string(),
                    dash(c.job_id.as_ref()),
                    dash(c.job_state.as_ref()),
                    dash(c.node.as_ref()),
                    dash(c.target.as_ref()),
                ]
            })
            .collect();
        println!(
            "\nCLIENTS ({} running of {})",
            status.clients.running_clients, status.clients.total_clients
        );
        print!(
            "{}",
            render::table(
                &[
                    "ID",
                    "NAME",
                    "SESSION",
                    "STATUS",
                    "JOB",
                    "JOB STATE",
                    "NODE",
                    "TARGET"
                ],
                &rows
            )
        );
    }
}

/// `orchestrator list services|clients --running`.
pub fn list_running(cli: &Cli, services: bool, json: bool) -> Exit {
    with_orchestrator(cli, |orch| async move {
        let status = match orch.get_system_status(None).await {
            Ok(status) => status,
            Err(error) => return fail(&error),
        };
        let active =
            |job_state: &Option<JobRecordState>| job_state.as_ref().is_some_and(|j| !j.is_final());
        if services {
            let running = status
                .services
                .services
                .into_iter()
                .filter(|s| active(&s.job_state));
            print_list(
                running.collect(),
                json,
                "service",
                &["ID", "NAME", "STATUS", "NODE", "PORT"],
                |s| {
                    vec![
                        s.service_id.clone(),
                        s.name.clone(),
                        s.status.to_string(),
                        dash(s.node.as_ref()),
                        dash(s.port),
                    ]
                },
            );
        } else {
            let running = status
                .clients
                .clients
                .into_iter()
                .filter(|c| active(&c.job_state));
            print_list(
                running.collect(),
                json,
                "client",
                &["ID", "NAME", "STATUS", "NODE", "TARGET"],
                |c| {
                    vec![
                        c.client_id.clone(),
                        c.name.clone(),
                        c.status.to_string(),
                        dash(c.node.as_ref()),
                        dash(c.target.as_ref()),
                    ]
                },
            );
        }
        Exit::Success
    })
}

/// Prints `items` as JSON, or as a table (or a note on stderr when there are none).
fn print_list<T: Serialize>(
    items: Vec<T>,
    json: bool,
    what: &str,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    if json {
        print_json(&items);
    } else if items.is_empty() {
        eprintln!("no tracked {what} is running");
    } else {
        let rows: Vec<Vec<String>> = items.iter().map(row).collect();
        print!("{}", render::table(header, &rows));
    }
}

/// `orchestrator service ...`.
pub fn service(cli: &Cli, command: &ServiceCommand) -> Exit {
    with_orchestrator(cli, |orch| async move {
        match command {
            ServiceCommand::Start { recipe, wait, json } => {
                let recipe = match load_service(recipe) {
                    Ok(r) => r,
                    Err(e) => return fail(&e),
                };
                let id = match orch.servers().start_service(&recipe).await {
                    Ok(id) => id,
                    Err(e) => return fail(&e),
                };
                if *wait {
                    let reporter = std::sync::Arc::new(Reporter::new());
                    let cancel = CancellationToken::new();
                    cancel_on_signals(cancel.clone(), reporter.clone());
                    let waited = orch
                        .servers()
                        .wait_healthy(&id, reporter.as_ref(), &cancel)
                        .await;
                    reporter.finish();
                    if let Err(error) = waited {
                        let _ = orch.servers().stop_service(&id).await;
                        return fail(&error);
                    }
                }
                service_status_out(&orch, &id, *json).await
            }
            ServiceCommand::Stop { id } => {
                stopped(id, orch.servers().stop_service(id).await, false)
            }
            ServiceCommand::Status { id, json } => service_status_out(&orch, id, *json).await,
        }
    })
}

async fn service_status_out(orch: &BenchmarkOrchestrator, id: &str, json: bool) -> Exit {
    show(orch.servers().check_service_status(id).await, json, |s| {
        format!(
            "{}  {}  {}  job {} {}  node {}  port {}",
            s.service_id,
            s.name,
            s.status,
            dash(s.job_id.as_ref()),
            dash(s.job_state.as_ref()),
            dash(s.node.as_ref()),
            dash(s.port)
        )
    })
}

/// Prints a result as JSON or as a line of text.
fn show<T: Serialize>(
    result: Result<T, CoreError>,
    json: bool,
    line: impl FnOnce(&T) -> String,
) -> Exit {
    match result {
        Ok(value) if json => {
            print_json(&value);
            Exit::Success
        }
        Ok(value) => {
            println!("{}", line(&value));
            Exit::Success
        }
        Err(e) => fail(&e),
    }
}

/// `orchestrator client ...`.
pub fn client(cli: &Cli, command: &ClientCommand) -> Exit {
    with_orchestrator(cli, |orch| async move {
        match command {
            ClientCommand::Start {
                recipe,
                target,
                host,
                json,
            } => {
                let recipe = match load_client(recipe) {
                    Ok(r) => r,
                    Err(e) => return fail(&e),
                };
                match orch
                    .clients()
                    .start_client(&recipe, target, host.as_deref())
                    .await
                {
                    Ok(id) => client_status_out(&orch, &id, *json).await,
                    Err(e) => fail(&e),
                }
            }
            ClientCommand::Stop { id } => stopped(id, orch.clients().stop_client(id).await, false),
            ClientCommand::Status { id, json } => client_status_out(&orch, id, *json).await,
        }
    })
}

async fn client_status_out(orch: &BenchmarkOrchestrator, id: &str, json: bool) -> Exit {
    show(orch.clients().check_client_status(id).await, json, |c| {
        format!(
            "{}  {}  {}  job {} {}  node {}  target {}",
            c.client_id,
            c.name,
            c.status,
            dash(c.job_id.as_ref()),
            dash(c.job_state.as_ref()),
            dash(c.node.as_ref()),
            dash(c.target.as_ref())
        )
    })
}

/// `orchestrator stop`.
pub fn stop(cli: &Cli, args: &StopArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        if args.all {
            return match orch.stop_all_services().await {
                Ok(summary) if args.json => {
                    print_json(&summary);
                    Exit::Success
                }
                Ok(summary) => {
                    println!(
                        "cancelled {} job(s): {} service(s), {} client(s) in {} session(s)",
                        summary.jobs_cancelled,
                        summary.services.len(),
                        summary.clients.len(),
                        summary.sessions.len()
                    );
                    Exit::Success
                }
                Err(e) => fail(&e),
            };
        }
        let id = args
            .session
            .as_deref()
            .or(args.id.as_deref())
            .unwrap_or_default();
        let result = if args.session.is_some() || id.starts_with("ses-") {
            orch.stop_benchmark_session(id).await.and_then(|found| {
                if found {
                    Ok(true)
                } else {
                    Err(CoreError::NotFound {
                        what: "session",
                        id: id.to_owned(),
                    })
                }
            })
        } else if id.starts_with("cli-") {
            orch.clients().stop_client(id).await
        } else {
            orch.servers().stop_service(id).await
        };
        stopped(id, result, args.json)
    })
}

/// Says what a stop did.
fn stopped(id: &str, result: Result<bool, CoreError>, json: bool) -> Exit {
    match result {
        Ok(cancelled) => {
            if json {
                print_json(&serde_json::json!({ "id": id, "cancelled": cancelled }));
            } else if cancelled {
                println!("stopped {id}");
            } else {
                println!("{id} had no active job");
            }
            Exit::Success
        }
        Err(e) => fail(&e),
    }
}

/// `orchestrator debug`.
pub fn debug(cli: &Cli, args: &DebugArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        let entries = match orch.debug_services(args.id.as_deref()).await {
            Ok(entries) => entries,
            Err(e) => return fail(&e),
        };
        if args.json {
            print_json(&entries);
            return Exit::Success;
        }
        if entries.is_empty() {
            println!("no services tracked");
        }
        for e in &entries {
            println!(
                "===== {} {} ({}) of session {}: {}",
                e.kind, e.name, e.id, e.session_id, e.state
            );
            if let Some(job) = &e.job {
                println!(
                    "job {} `{}`: {} on {}{}",
                    dash(job.job_id.as_ref()),
                    job.job_name,
                    job.state,
                    dash(job.node.as_ref()),
                    job.reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
                println!(
                    "scheduler now: {}",
                    e.scheduler_view.as_ref().map_or_else(
                        || "does not know the job (ended and purged, or never submitted)"
                            .to_owned(),
                        |v| format!(
                            "{} on {} exit {}",
                            v.state.as_str(),
                            dash(v.node.as_ref()),
                            dash(v.exit_code)
                        ),
                    )
                );
                println!("--- script {}", job.script_path);
                print!("{}", job.script);
                println!("--- stdout {} (tail)", job.stdout_path);
                println!("{}", e.stdout_tail.trim_end());
                println!("--- stderr {} (tail)", job.stderr_path);
                println!("{}", e.stderr_tail.trim_end());
            } else {
                println!("no job recorded");
            }
            println!("--- recent events");
            for ev in &e.events {
                println!(
                    "{}  {}  {}",
                    orchestrator_core::rfc3339(ev.at),
                    ev.action,
                    ev.detail.as_deref().unwrap_or("")
                );
            }
            println!();
        }
        Exit::Success
    })
}

/// `orchestrator clear-state`.
pub fn clear_state(cli: &Cli, args: &ClearStateArgs) -> Exit {
    with_orchestrator(cli, |orch| async move {
        match orch.clear_all_state(args.force).await {
            Ok((services, clients)) => {
                if args.json {
                    print_json(&serde_json::json!({ "services": services, "clients": clients }));
                } else {
                    println!("cleared {services} service(s) and {clients} client(s)");
                }
                Exit::Success
            }
            Err(e) => fail(&e),
        }
    })
}

/// `orchestrator slurm-status`.
pub fn slurm_status(cli: &Cli, json: bool) -> Exit {
    with_orchestrator(cli, |orch| async move {
        match orch.get_slurm_status().await {
            Ok(s) if json => {
                print_json(&s);
                Exit::Success
            }
            Ok(s) => {
                print!("{}", s.raw);
                if !s.raw.ends_with('\n') && !s.raw.is_empty() {
                    println!();
                }
                println!(
                    "({} active job(s) tracked by the orchestrator)",
                    s.tracked.len()
                );
                Exit::Success
            }
            Err(e) => fail(&e),
        }
    })
}

/// `orchestrator demo ...`: no config needed.
pub fn demo(command: &crate::cli::DemoCommand) -> Exit {
    use crate::cli::DemoCommand;
    runtime().block_on(async {
        match command {
            DemoCommand::HttpServer { port, bind } => crate::demo::http_server(bind, *port).await,
        }
    })
}
