//! Running a recipe as a session: plan and record it, drive it with the session
//! runner, and on failure or interruption cancel what it started; and `--dry-run`.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use super::BenchmarkOrchestrator;
use crate::backend::Tracked;
use crate::error::CoreError;
use crate::lifecycle::{ClientState, ServiceState, SessionState};
use crate::plan::{Plan, client_job, service_job};
use crate::runner::{Runner, target_of};
use crate::session::{Progress, RunOptions, SessionEvent, SessionOutcome};
use crate::state::{ClientRow, ServiceRow, SessionRow};
use crate::util::now_ms;

impl BenchmarkOrchestrator {
    /// Plans `recipe` as [`prepare_session`](Self::prepare_session) would, recording
    /// and submitting nothing: what it cannot run is an error now.
    ///
    /// # Errors
    /// As planning.
    pub fn check_recipe(
        &self,
        recipe: &orchestrator_recipes::BenchmarkRecipe,
        file: &str,
    ) -> Result<(), CoreError> {
        crate::plan::plan(recipe, file).map(|_| ())
    }

    /// Plans a recipe and records the session, its services and clients: nothing is
    /// submitted yet. The session id is known from here on.
    ///
    /// # Errors
    /// A recipe that cannot run ([`CoreError::Plan`]) or the state store failing.
    pub fn prepare_session(
        &self,
        recipe: &orchestrator_recipes::BenchmarkRecipe,
        options: &RunOptions,
    ) -> Result<Plan, CoreError> {
        let file = options.recipe_path.as_deref().unwrap_or("recipe");
        let mut plan = crate::plan::plan(recipe, file)?;
        crate::runner::resolve_external(&mut plan, &self.state().services(None)?, file)?;
        self.record_plan(&plan, options)?;
        Ok(plan)
    }

    pub(crate) fn record_plan(&self, plan: &Plan, options: &RunOptions) -> Result<(), CoreError> {
        let now = now_ms();
        let json = |v: &dyn erased::Json| v.to_json();
        let session = SessionRow {
            id: plan.session_id.clone(),
            name: plan.recipe.name.clone(),
            recipe_path: options.recipe_path.clone(),
            recipe: json(&plan.recipe),
            scheduler: self.scheduler().name().to_owned(),
            target: self.shell().target().to_owned(),
            state: SessionState::Starting,
            error: None,
            keep_services: options.keep_services,
            pid: Some(std::process::id()),
            pid_start: orchestrator_slurm::process::start_time(std::process::id()),
            max_error_rate: Some(self.config().max_error_rate),
            report_path: None,
            created_at: now,
            updated_at: now,
            finished_at: None,
        };
        let services: Vec<ServiceRow> = plan
            .services
            .iter()
            .map(|s| ServiceRow {
                id: s.id.clone(),
                session_id: plan.session_id.clone(),
                name: s.recipe.name.clone(),
                driver: s.driver.name().to_owned(),
                recipe: json(&s.recipe),
                state: ServiceState::Pending,
                host: None,
                port: s.recipe.ports.first().copied(),
                health: None,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let clients: Vec<ClientRow> = plan
            .clients
            .iter()
            .map(|c| ClientRow {
                id: c.id.clone(),
                session_id: plan.session_id.clone(),
                name: c.recipe.name.clone(),
                driver: c.driver.name().to_owned(),
                recipe: json(&c.recipe),
                target_service_id: Some(plan.services[c.target].id.clone()),
                target_host: None,
                target_port: Some(c.port),
                state: ClientState::Pending,
                created_at: now,
                updated_at: now,
            })
            .collect();
        self.state().insert_session(&session, &services, &clients)
    }

    /// Runs a prepared session to its end. On failure or cancellation every job of the
    /// session is cancelled before this returns.
    ///
    /// # Errors
    /// [`CoreError::ServiceStartup`], [`CoreError::ServiceHealthCheck`],
    /// [`CoreError::Interrupted`], or the cluster failing. A client that fails is not
    /// an error: the outcome's state says `failed`.
    pub async fn drive_session(
        &self,
        plan: &Plan,
        options: &RunOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionOutcome, CoreError> {
        self.drive_adopting(plan, options, progress, cancel, BTreeMap::new())
            .await
    }

    /// [`drive_session`](Self::drive_session), driving on the jobs in `adopted` (by
    /// owner id) instead of submitting theirs.
    pub(crate) async fn drive_adopting(
        &self,
        plan: &Plan,
        options: &RunOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
        adopted: BTreeMap<String, Tracked>,
    ) -> Result<SessionOutcome, CoreError> {
        progress.event(&SessionEvent::Created {
            session_id: plan.session_id.clone(),
            services: plan
                .services
                .iter()
                .map(|s| s.recipe.name.clone())
                .collect(),
            clients: plan.clients.iter().map(|c| c.recipe.name.clone()).collect(),
        });
        let runner = Runner {
            backend: &self.backend,
            progress,
            cancel,
        };
        let result = runner.drive(plan, options, adopted).await;
        match result {
            Ok(outcome) => Ok(outcome),
            Err(error) => {
                let interrupted = cancel.is_cancelled();
                let (state, reason) = if interrupted {
                    (SessionState::Cancelled, "interrupted".to_owned())
                } else {
                    (SessionState::Failed, error.to_string())
                };
                progress.event(&SessionEvent::CleaningUp {
                    reason: reason.clone(),
                });
                if let Err(cleanup) = self.backend.cancel_session_jobs(&plan.session_id).await {
                    // Its jobs may still run: the session is left as it is, for
                    // `attach` to continue or `stop` to end once the cluster answers.
                    tracing::error!(%cleanup, "cleaning up session {} failed", plan.session_id);
                    let why = format!("{reason}; then cancelling its jobs failed: {cleanup}");
                    if let Ok(Some(session)) = self.state().session(&plan.session_id) {
                        let _ = self.state().set_session_state(
                            &plan.session_id,
                            session.state,
                            Some(&why),
                        );
                    }
                    return Err(error);
                }
                let _ = self
                    .state()
                    .set_session_state(&plan.session_id, state, Some(&reason));
                let _ = crate::runner::write_report(&self.backend, &plan.session_id, None);
                Err(if interrupted {
                    CoreError::Interrupted {
                        session_id: plan.session_id.clone(),
                    }
                } else {
                    error
                })
            }
        }
    }

    /// Plans, records and runs a recipe to its end: [`prepare_session`] then
    /// [`drive_session`].
    ///
    /// [`prepare_session`]: Self::prepare_session
    /// [`drive_session`]: Self::drive_session
    ///
    /// # Errors
    /// As those two.
    pub async fn run_session(
        &self,
        recipe: &orchestrator_recipes::BenchmarkRecipe,
        options: &RunOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionOutcome, CoreError> {
        let plan = self.prepare_session(recipe, options)?;
        self.drive_session(&plan, options, progress, cancel).await
    }

    /// The outcome of a session as the store has it.
    ///
    /// # Errors
    /// An unknown session, or the store failing.
    pub fn outcome(&self, session_id: &str) -> Result<SessionOutcome, CoreError> {
        crate::runner::outcome(&self.backend, session_id)
    }

    /// Renders every job of a recipe as `run` would submit it, without submitting or
    /// creating anything (clients show `SERVICE_NODE` where the service's node goes).
    ///
    /// # Errors
    /// A recipe that cannot run, or the cluster failing (its home directory is read).
    pub async fn dry_run(
        &self,
        recipe: &orchestrator_recipes::BenchmarkRecipe,
        file: &str,
    ) -> Result<Vec<orchestrator_slurm::RenderedJob>, CoreError> {
        // A monitoring target on a service of another session is looked up when the
        // run starts, not here: that service need not run yet.
        let plan = crate::plan::plan(recipe, file)?;
        let base = self.backend.work_dir_preview().await?;
        let sid = &plan.session_id;
        let mut jobs = Vec::new();
        for service in &plan.services {
            let job_dir = format!("{base}/{sid}/{}", service.recipe.name);
            let spec = service_job(self.backend.job_defaults(), sid, service, job_dir);
            jobs.push(self.backend.renderer().render(&spec)?);
        }
        for client in &plan.clients {
            let service = &plan.services[client.target];
            let target = target_of(service, "SERVICE_NODE", client.port, &client.recipe);
            let job_dir = format!("{base}/{sid}/{}", client.recipe.name);
            let spec = client_job(
                self.backend.job_defaults(),
                sid,
                &client.recipe,
                client.driver,
                &target,
                job_dir,
                client.register.as_ref(),
            )?;
            jobs.push(self.backend.renderer().render(&spec)?);
        }
        Ok(jobs)
    }
}

/// Serialising the recipe types without naming each.
mod erased {
    pub trait Json {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).expect("recipes serialise")
        }
    }
}
