//! The original `ServersModule` and `ClientsModule`: services and clients started,
//! watched and stopped one at a time, outside a whole session.

use std::path::Path;

use orchestrator_recipes::{BenchmarkRecipe, ClientRecipe, Kind, ServiceRecipe};

use crate::backend::Tracked;
use crate::error::CoreError;
use crate::lifecycle::{ClientState, ServiceState, SessionState};
use crate::orchestrator::BenchmarkOrchestrator;
use crate::plan::{plan_client, plan_service};
use crate::runner::{Runner, submit_client, submit_service, target_of};
use crate::session::RunOptions;
use crate::state::{ClientRow, JobRow, ServiceRow};
use crate::status::{ClientStatus, ServiceStatus};

impl BenchmarkOrchestrator {
    /// The `servers` view (the original `orch.servers`).
    #[must_use]
    pub fn servers(&self) -> ServersModule<'_> {
        ServersModule { orch: self }
    }

    /// The `clients` view (the original `orch.clients`).
    #[must_use]
    pub fn clients(&self) -> ClientsModule<'_> {
        ClientsModule { orch: self }
    }
}

/// The original `ServersModule`: services on their own.
#[derive(Debug, Clone, Copy)]
pub struct ServersModule<'a> {
    orch: &'a BenchmarkOrchestrator,
}

impl ServersModule<'_> {
    /// Names of the service recipes in `services_dir`.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list_available_services(&self) -> Result<Vec<String>, CoreError> {
        catalog_names(&self.orch.config().services_dir, Kind::Service)
    }

    /// Ids of services whose job has not ended.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn list_running_services(&self) -> Result<Vec<String>, CoreError> {
        self.orch.reconcile().await?;
        self.orch.backend.active_owners("service")
    }

    /// Submits a service in a session of its own and returns its id without waiting;
    /// [`check_service_status`](Self::check_service_status) or
    /// [`wait_healthy`](Self::wait_healthy) tell when it is up.
    ///
    /// # Errors
    /// A recipe that cannot run, or the submission failing.
    pub async fn start_service(&self, recipe: &ServiceRecipe) -> Result<String, CoreError> {
        let plan = crate::plan::plan(
            &BenchmarkRecipe {
                name: Some(recipe.name.clone()),
                description: recipe.description.clone(),
                services: vec![recipe.clone()],
                clients: Vec::new(),
                monitoring: None,
            },
            "recipe",
        )?;
        self.orch.record_plan(
            &plan,
            &RunOptions {
                keep_services: true,
                recipe_path: None,
            },
        )?;
        let service = &plan.services[0];
        submit_service(&self.orch.backend, &plan.session_id, service, None).await?;
        self.orch
            .backend
            .state
            .set_session_state(&plan.session_id, SessionState::Running, None)?;
        Ok(service.id.clone())
    }

    /// Waits until the service runs and passes its health check.
    ///
    /// # Errors
    /// [`CoreError::ServiceStartup`], [`CoreError::ServiceHealthCheck`], or the
    /// cluster failing.
    pub async fn wait_healthy(
        &self,
        service_id: &str,
        progress: &dyn crate::Progress,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<ServiceStatus, CoreError> {
        let row = self.service_row(service_id)?;
        let recipe: ServiceRecipe =
            serde_json::from_str(&row.recipe).map_err(|e| CoreError::State {
                path: self.orch.backend.state.path().display().to_string(),
                message: format!("service {service_id}: unreadable recipe: {e}"),
            })?;
        let mut service = plan_service(&recipe, "recipe")?;
        service.id = row.id.clone();
        let job = self
            .orch
            .backend
            .state
            .jobs_of(service_id)?
            .pop()
            .ok_or_else(|| CoreError::NotFound {
                what: "service job",
                id: service_id.to_owned(),
            })?;
        let mut tracked = vec![tracked_of(&job, row.name.clone())?];
        loop {
            self.orch.backend.refresh(&mut tracked, progress).await?;
            if tracked[0].ended() {
                return Err(self.orch.backend.startup_error(&tracked[0]).await);
            }
            if let Some(node) = tracked[0].node().filter(|_| tracked[0].placed()) {
                let node = node.to_owned();
                let runner = Runner {
                    backend: &self.orch.backend,
                    progress,
                    cancel,
                };
                runner
                    .health_gate(&row.session_id, &service, &node, &mut tracked, 0)
                    .await?;
                return self.check_service_status(service_id).await;
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(CoreError::Interrupted { session_id: row.session_id.clone() }),
                () = tokio::time::sleep(self.orch.backend.poll_policy().min) => {}
            }
        }
    }

    /// Cancels a service's job. Returns whether there was an active job to cancel.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn stop_service(&self, service_id: &str) -> Result<bool, CoreError> {
        self.service_row(service_id)?;
        let cancelled = self.orch.backend.cancel_owner(service_id).await?;
        self.orch.backend.state.set_service_state(
            service_id,
            ServiceState::Stopped,
            None,
            None,
            None,
        )?;
        crate::reconcile::settle_sessions(&self.orch.backend)?;
        Ok(cancelled)
    }

    /// A service's status, reconciled with the scheduler.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn check_service_status(&self, service_id: &str) -> Result<ServiceStatus, CoreError> {
        self.orch.reconcile().await?;
        let row = self.service_row(service_id)?;
        let jobs = self.orch.backend.state.jobs_of(service_id)?;
        Ok(ServiceStatus::new(row, jobs.last()))
    }

    fn service_row(&self, id: &str) -> Result<ServiceRow, CoreError> {
        self.orch
            .backend
            .state
            .service(id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "service",
                id: id.to_owned(),
            })
    }
}

fn tracked_of(job: &JobRow, name: String) -> Result<Tracked, CoreError> {
    Tracked::of_row(job, name).ok_or_else(|| CoreError::NotFound {
        what: "submitted job",
        id: job.owner_id.clone(),
    })
}

fn catalog_names(dir: &str, kind: Kind) -> Result<Vec<String>, CoreError> {
    let catalog = orchestrator_recipes::catalog::list(Path::new(dir), kind)
        .map_err(CoreError::io(format!("cannot read {dir}")))?;
    Ok(catalog.entries.into_iter().map(|e| e.name).collect())
}

/// The original `ClientsModule`: clients against running services.
#[derive(Debug, Clone, Copy)]
pub struct ClientsModule<'a> {
    orch: &'a BenchmarkOrchestrator,
}

impl ClientsModule<'_> {
    /// Names of the client recipes in `clients_dir`.
    ///
    /// # Errors
    /// The directory cannot be read.
    pub fn list_available_clients(&self) -> Result<Vec<String>, CoreError> {
        catalog_names(&self.orch.config().clients_dir, Kind::Client)
    }

    /// Ids of clients whose job has not ended.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn list_running_clients(&self) -> Result<Vec<String>, CoreError> {
        self.orch.reconcile().await?;
        self.orch.backend.active_owners("client")
    }

    /// Submits a client against the running service `target_service_id` (on its node,
    /// or on `host` when given) and returns the client's id without waiting.
    ///
    /// # Errors
    /// An unknown or not running service, a recipe that cannot run, or the submission
    /// failing.
    pub async fn start_client(
        &self,
        recipe: &ClientRecipe,
        target_service_id: &str,
        host: Option<&str>,
    ) -> Result<String, CoreError> {
        self.orch.reconcile().await?;
        let service_row = self
            .orch
            .backend
            .state
            .service(target_service_id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "service",
                id: target_service_id.to_owned(),
            })?;
        let service_recipe: ServiceRecipe =
            serde_json::from_str(&service_row.recipe).map_err(|e| CoreError::State {
                path: self.orch.backend.state.path().display().to_string(),
                message: format!("service {target_service_id}: unreadable recipe: {e}"),
            })?;
        let job = self.orch.backend.state.jobs_of(target_service_id)?.pop();
        let node = host
            .map(str::to_owned)
            .or_else(|| {
                job.as_ref()
                    .filter(|j| j.ended_at.is_none())
                    .and_then(|j| j.node.clone())
            })
            .ok_or_else(|| {
                CoreError::plan(
                    "recipe",
                    format!(
                        "service {target_service_id} is {} and has no node yet",
                        service_row.state
                    ),
                    Some(
                        "wait until `orchestrator service status ID` says running, or pass --host"
                            .into(),
                    ),
                )
            })?;
        let mut service = plan_service(&service_recipe, "recipe")?;
        service.id = service_row.id.clone();
        let client = plan_client(recipe, &service, 0, "recipe")?;
        let target = target_of(&service, &node, client.port, recipe);
        let now = crate::util::now_ms();
        let taken = self
            .orch
            .backend
            .state
            .clients(Some(&service_row.session_id))?
            .iter()
            .any(|c| c.name == recipe.name)
            || recipe.name == service_row.name;
        let dir_name = if taken {
            format!("{}-{}", recipe.name, client.id)
        } else {
            recipe.name.clone()
        };
        self.orch.backend.state.insert_client(&ClientRow {
            id: client.id.clone(),
            session_id: service_row.session_id.clone(),
            name: recipe.name.clone(),
            driver: client.driver.name().to_owned(),
            recipe: serde_json::to_string(recipe).expect("recipes serialise"),
            target_service_id: Some(service_row.id.clone()),
            target_host: Some(node.clone()),
            target_port: Some(client.port),
            state: ClientState::Pending,
            created_at: now,
            updated_at: now,
        })?;
        submit_client(
            &self.orch.backend,
            &service_row.session_id,
            &client,
            &target,
            &dir_name,
        )
        .await?;
        Ok(client.id)
    }

    /// Cancels a client's job. Returns whether there was an active job to cancel.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn stop_client(&self, client_id: &str) -> Result<bool, CoreError> {
        self.client_row(client_id)?;
        self.orch.backend.cancel_owner(client_id).await
    }

    /// A client's status, reconciled with the scheduler.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn check_client_status(&self, client_id: &str) -> Result<ClientStatus, CoreError> {
        self.orch.reconcile().await?;
        let row = self.client_row(client_id)?;
        let jobs = self.orch.backend.state.jobs_of(client_id)?;
        Ok(ClientStatus::new(row, jobs.last()))
    }

    fn client_row(&self, id: &str) -> Result<ClientRow, CoreError> {
        self.orch
            .backend
            .state
            .client(id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "client",
                id: id.to_owned(),
            })
    }
}
