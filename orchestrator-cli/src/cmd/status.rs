//! `status`, `list --running`, `stop`, `debug`, `clear-state` and `slurm-status`:
//! what the orchestrator tracks, reconciled with the scheduler.

use orchestrator_core::lifecycle::JobRecordState;
use orchestrator_core::{CoreError, SystemStatus};
use serde::Serialize;

use crate::app::{Exit, fail, stopped, with_orchestrator};
use crate::cli::{ClearStateArgs, Cli, DebugArgs, StatusArgs, StopArgs};
use crate::output::{self, dash, print_json};

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
        output::table(
            &["ID", "NAME", "STATE", "ACTIVE", "STARTED (UTC)", "ERROR"],
            &rows
        )
    );
    for s in status.sessions.iter().filter(|s| s.attachable) {
        println!(
            "session {id}: its orchestrator is gone; `orchestrator attach {id}` continues it, \
             `orchestrator stop {id}` ends it",
            id = s.session_id
        );
    }
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
            output::table(
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
            output::table(
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
        print!("{}", output::table(header, &rows));
    }
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
