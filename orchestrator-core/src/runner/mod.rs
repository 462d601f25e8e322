//! The session runner: submit the services, wait until they run, gate each on its
//! health check, submit the clients, wait for them, fetch their outputs, stop the
//! services, write the report. It runs on a [`Backend`] and reports to a
//! [`Progress`]; it does not know the orchestrator that owns it.

mod fetch;
mod gate;
mod monitoring;
mod requeue;
mod watch;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use orchestrator_slurm::{JobId, JobKind};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Tracked, WaitError};
use crate::driver::Target;
use crate::error::{CoreError, ServiceDeath};
use crate::lifecycle::{ClientState, ServiceState, SessionState};
use crate::plan::{ClientPlan, Plan, ServicePlan, client_job, service_job};
use crate::report::{JobSummary, ReportClient, ReportService};
use crate::session::{Progress, RunOptions, SessionEvent, SessionOutcome};

pub(crate) use fetch::upload_script;
pub(crate) use monitoring::resolve_external;
use watch::Loaded;

/// One session being driven: where it runs, who hears of it, and what stops it.
pub(crate) struct Runner<'a> {
    pub(crate) backend: &'a Backend,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) cancel: &'a CancellationToken,
}

impl Runner<'_> {
    /// Drives a session to its end. `adopted` holds, by owner id, the jobs an earlier
    /// orchestrator of this session submitted (`attach`): each is waited on instead
    /// of being submitted again; the rest are submitted as `run` would.
    pub(crate) async fn drive(
        &self,
        plan: &Plan,
        options: &RunOptions,
        mut adopted: BTreeMap<String, Tracked>,
    ) -> Result<SessionOutcome, CoreError> {
        let sid = &plan.session_id;
        // Every client already ran to its end (its orchestrator died after), and none
        // is to run again: only the outputs, the services and the report are left.
        let mut clients_done = !plan.clients.is_empty();
        for client in &plan.clients {
            clients_done &= match adopted.get(&client.id) {
                Some(t) if t.ended() => self.retry_of(plan, t)?.is_none(),
                _ => false,
            };
        }
        if adopted.is_empty() {
            self.write_static_targets(plan).await?;
        }
        let mut tracked = Vec::new();
        for service in &plan.services {
            let t = match adopted.remove(&service.id) {
                Some(t) => self.adopted(t),
                None => self.submitted(submit_service(self.backend, sid, service, None).await?),
            };
            tracked.push(t);
        }
        let services_count = tracked.len();
        let death = if clients_done {
            for client in &plan.clients {
                let t = adopted
                    .remove(&client.id)
                    .expect("every client was adopted");
                tracked.push(self.adopted(t));
            }
            None
        } else {
            self.start_and_load(plan, &mut tracked, &mut adopted)
                .await?
        };
        let mut failed_clients = Vec::new();
        for job in &tracked[services_count..] {
            let end = job.record_state();
            let state = ClientState::after_job(&end, job.exit_code());
            self.backend
                .state()
                .set_client_state(&job.owner_id, state, None)?;
            self.progress.event(&SessionEvent::ClientDone {
                name: job.name.clone(),
                state: end.clone(),
                exit_code: job.exit_code(),
            });
            if state != ClientState::Completed {
                failed_clients.push(format!(
                    "client `{}` ended {end}{}",
                    job.name,
                    job.exit_code()
                        .map(|c| format!(" with exit code {c}"))
                        .unwrap_or_default()
                ));
            }
        }
        let (results_dir, replica_problems) =
            fetch::fetch_outputs(self.backend, sid, &tracked[services_count..]).await?;
        // A client whose replica failed failed, named with the replica.
        failed_clients.extend(replica_problems);
        self.snapshot(plan, &tracked[..services_count], &results_dir)
            .await;
        self.progress.event(&SessionEvent::Fetched {
            dir: results_dir.display().to_string(),
        });
        // With no clients, the services are what the user asked for: they stay up.
        let keep = options.keep_services || plan.clients.is_empty();
        if !keep {
            let ids: Vec<JobId> = tracked[..services_count]
                .iter()
                .filter(|t| !t.ended())
                .map(|t| t.job_id.clone())
                .collect();
            if !ids.is_empty() {
                self.backend.scheduler().cancel(&ids).await?;
            }
            self.backend
                .wait_ended(&mut tracked[..services_count], Duration::from_secs(60))
                .await?;
            for job in &tracked[..services_count] {
                // Stopped by us, unless its job had ended otherwise before.
                let state = if job.ended() {
                    ServiceState::after_job(&job.record_state(), job.exit_code())
                } else {
                    ServiceState::Stopped
                };
                self.backend
                    .state()
                    .set_service_state(&job.owner_id, state, None, None, None)?;
            }
            fetch::fetch_logs(self.backend, sid, &tracked[..services_count], &results_dir).await;
            self.progress.event(&SessionEvent::Stopped {
                services: services_count,
            });
        }
        if let Some(death) = death {
            // The outputs were fetched and the services stopped above; the report (its
            // runs marked invalid) is written now, and the session failed with the
            // death, which the caller's clean-up reports.
            self.backend.state().set_session_state(
                sid,
                SessionState::Failed,
                Some(&CoreError::ServiceDied(Box::new(death.clone())).to_string()),
            )?;
            write_report(self.backend, sid, Some(&results_dir))?;
            return Err(CoreError::ServiceDied(Box::new(death)));
        }
        let (state, error) = if failed_clients.is_empty() {
            let state = if keep {
                SessionState::Running
            } else {
                SessionState::Completed
            };
            (state, None)
        } else {
            (SessionState::Failed, Some(failed_clients.join("; ")))
        };
        self.backend
            .state()
            .set_session_state(sid, state, error.as_deref())?;
        let report = write_report(self.backend, sid, Some(&results_dir))?;
        let mut outcome = outcome(self.backend, sid)?;
        outcome.report_path = Some(report.display().to_string());
        outcome.results_dir = Some(results_dir.display().to_string());
        Ok(outcome)
    }

    /// Waits until every service runs, gates each on its health check, submits (or
    /// adopts) the clients and waits for them: the service that died meanwhile, if one
    /// did. A job that ends because of the cluster is submitted again while its recipe's
    /// `retries` allow: a service (every client then starts over against it) or a
    /// client.
    async fn start_and_load(
        &self,
        plan: &Plan,
        tracked: &mut Vec<Tracked>,
        adopted: &mut BTreeMap<String, Tracked>,
    ) -> Result<Option<ServiceDeath>, CoreError> {
        let sid = &plan.session_id;
        let services = plan.services.len();
        loop {
            self.wait_for_services(plan, tracked).await?;
            self.backend
                .state()
                .set_session_state(sid, SessionState::Running, None)?;
            let mut nodes = Vec::new();
            for (i, service) in plan.services.iter().enumerate() {
                let node = tracked[i].node().unwrap_or("localhost").to_owned();
                self.health_gate(sid, service, &node, tracked, i).await?;
                nodes.push(node);
            }
            let target = |index: usize| {
                let client = &plan.clients[index];
                target_of(
                    &plan.services[client.target],
                    &nodes[client.target],
                    client.port,
                    &client.recipe,
                )
            };
            let clients_started = tokio::time::Instant::now();
            for (index, client) in plan.clients.iter().enumerate() {
                let t = match adopted.remove(&client.id) {
                    Some(t) => self.adopted(t),
                    None => {
                        self.submit_client_attempt(plan, index, &target(index), None)
                            .await?
                    }
                };
                tracked.push(t);
            }
            if plan.clients.is_empty() {
                return Ok(None);
            }
            loop {
                match self
                    .wait_for_clients(plan, tracked, clients_started)
                    .await?
                {
                    Loaded::Requeue(index, retry) => {
                        // Its clients were cancelled and have ended: they start over.
                        let old = tracked[index].clone();
                        tracked.truncate(services);
                        tracked[index] = self.requeue_service(plan, index, &old, retry).await?;
                        break;
                    }
                    Loaded::Ended(death @ Some(_)) => return Ok(death),
                    Loaded::Ended(None) => {
                        let mut again = false;
                        for index in 0..plan.clients.len() {
                            let old = tracked[services + index].clone();
                            if let Some(retry) = self.retry_of(plan, &old)? {
                                tracked[services + index] = self
                                    .submit_client_attempt(
                                        plan,
                                        index,
                                        &target(index),
                                        Some((&old, retry)),
                                    )
                                    .await?;
                                again = true;
                            }
                        }
                        if !again {
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    /// Waits until every service's job runs on a node; one that ends first is
    /// submitted again when its end was the cluster's and its `retries` allow, else it
    /// is a startup error.
    async fn wait_for_services(
        &self,
        plan: &Plan,
        tracked: &mut [Tracked],
    ) -> Result<(), CoreError> {
        loop {
            let waited = self
                .backend
                .wait_until(
                    &plan.session_id,
                    tracked,
                    self.progress,
                    self.cancel,
                    |jobs| {
                        if let Some(ended) = jobs.iter().position(Tracked::ended) {
                            return Err(ended);
                        }
                        Ok(jobs.iter().all(Tracked::placed))
                    },
                )
                .await;
            match waited {
                Ok(()) => return Ok(()),
                Err(WaitError::Core(e)) => return Err(e),
                Err(WaitError::Ended(index)) => {
                    let job = tracked[index].clone();
                    match self.retry_of(plan, &job)? {
                        Some(retry) => {
                            tracked[index] = self.requeue_service(plan, index, &job, retry).await?;
                        }
                        None => return Err(self.backend.startup_error(&job).await),
                    }
                }
            }
        }
    }

    fn submitted(&self, t: Tracked) -> Tracked {
        self.progress.event(&SessionEvent::Submitted {
            kind: t.kind_str().into(),
            name: t.name.clone(),
            job_id: t.job_id.to_string(),
        });
        t
    }

    fn adopted(&self, t: Tracked) -> Tracked {
        self.progress.event(&SessionEvent::Adopted {
            kind: t.kind_str().into(),
            name: t.name.clone(),
            job_id: t.job_id.to_string(),
            state: t.record_state(),
        });
        t
    }
}

pub(crate) fn target_of(
    service: &ServicePlan,
    host: &str,
    port: u16,
    client: &orchestrator_recipes::ClientRecipe,
) -> Target {
    let endpoint = client
        .target_service
        .as_ref()
        .and_then(|t| t.endpoint.clone())
        .unwrap_or_default();
    Target {
        service_id: service.id.clone(),
        service_name: service.recipe.name.clone(),
        service_type: service.driver.name().to_owned(),
        host: host.to_owned(),
        port,
        url: format!("http://{host}:{port}{endpoint}"),
    }
}

/// Renders, records and submits a service's job.
pub(crate) async fn submit_service(
    b: &Backend,
    session_id: &str,
    service: &ServicePlan,
    dir_name: Option<&str>,
) -> Result<Tracked, CoreError> {
    let r = &service.recipe;
    let job_dir = b.job_dir(session_id, dir_name.unwrap_or(&r.name)).await?;
    let spec = service_job(b.job_defaults(), session_id, service, job_dir);
    b.submit(session_id, &service.id, &r.name, JobKind::Service, &spec)
        .await
}

/// Renders, records and submits a client's job against `target`.
pub(crate) async fn submit_client(
    b: &Backend,
    session_id: &str,
    client: &ClientPlan,
    target: &Target,
    dir_name: &str,
) -> Result<Tracked, CoreError> {
    let (client_id, recipe) = (&client.id, &client.recipe);
    let job_dir = b.job_dir(session_id, dir_name).await?;
    if crate::plan::runs_script(recipe) {
        upload_script(b, recipe).await?;
    }
    let recipe = &fetch::upload_datasets(b, recipe, &job_dir).await?;
    let spec = client_job(
        b.job_defaults(),
        session_id,
        recipe,
        client.driver,
        target,
        job_dir,
        client.register.as_ref(),
    )?;
    b.state().set_client_state(
        client_id,
        ClientState::Submitting,
        Some((&target.service_id, &target.host, target.port)),
    )?;
    let tracked = b
        .submit(session_id, client_id, &recipe.name, JobKind::Client, &spec)
        .await?;
    b.state()
        .set_client_state(client_id, ClientState::Pending, None)?;
    Ok(tracked)
}

/// The outcome of a session as the store has it.
///
/// # Errors
/// An unknown session, or the store failing.
pub(crate) fn outcome(b: &Backend, session_id: &str) -> Result<SessionOutcome, CoreError> {
    let session = b.state().existing_session(session_id)?;
    let clients = b.state().clients(Some(session_id))?;
    let expectations = crate::expect::session_expectations(
        &clients,
        &b.state().results(session_id)?,
        session.max_error_rate(),
    )?;
    Ok(SessionOutcome {
        session_id: session.id.clone(),
        state: session.state,
        error: session.error,
        services: b
            .state()
            .services(Some(session_id))?
            .iter()
            .map(ReportService::from)
            .collect(),
        clients: clients.iter().map(ReportClient::from).collect(),
        jobs: b
            .state()
            .jobs(Some(session_id))?
            .iter()
            .map(JobSummary::from)
            .collect(),
        report_path: session.report_path,
        results_dir: Some(b.results_dir().join(session_id).display().to_string()),
        expectations,
    })
}

/// Writes `report.json` into the session's results directory (or `dir`) and records
/// it.
pub(crate) fn write_report(
    b: &Backend,
    session_id: &str,
    dir: Option<&Path>,
) -> Result<std::path::PathBuf, CoreError> {
    let dir = dir.map_or_else(|| b.results_dir().join(session_id), Path::to_path_buf);
    std::fs::create_dir_all(&dir)
        .map_err(CoreError::io(format!("cannot create {}", dir.display())))?;
    let path = dir.join("report.json");
    b.state()
        .set_session_report(session_id, &path.display().to_string())?;
    crate::report::SessionReport::build(b.state(), session_id)?.write(&path)?;
    Ok(path)
}
