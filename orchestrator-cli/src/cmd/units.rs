//! `orchestrator service ...` and `orchestrator client ...`: one service or client at a
//! time, as the original tool's `ServersModule` and `ClientsModule`.

use orchestrator_core::{
    BenchmarkOrchestrator, CancellationToken, CoreError, load_client, load_service,
};
use serde::Serialize;

use crate::app::{Exit, cancel_on_signals, fail, stopped, with_orchestrator};
use crate::cli::{Cli, ClientCommand, ServiceCommand};
use crate::output::progress::Reporter;
use crate::output::{dash, print_json};

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
