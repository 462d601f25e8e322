//! The original tool's administrative calls: stop, status, debug and clear-state,
//! each reconciled with the scheduler first.

use orchestrator_slurm::JobId;

use super::BenchmarkOrchestrator;
use crate::backend::{dedup, last_job};
use crate::error::CoreError;
use crate::lifecycle::{ClientState, OwnerState, ServiceState, SessionState};
use crate::status::{
    ClientStatus, ClientsStatus, DebugEntry, ServersStatus, ServiceStatus, SessionStatus,
    SlurmStatus, StopSummary, SystemStatus,
};

impl BenchmarkOrchestrator {
    /// The original `stop_benchmark_session`: cancels every job of the session.
    /// Returns whether the session was known.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn stop_benchmark_session(&self, session_id: &str) -> Result<bool, CoreError> {
        if self.backend.state.session(session_id)?.is_none() {
            return Ok(false);
        }
        // What ended by itself is recorded as it ended, not as cancelled.
        self.reconcile().await?;
        self.backend.cancel_session_jobs(session_id).await?;
        let session = self
            .backend
            .state
            .session(session_id)?
            .expect("checked above");
        if !session.state.is_final() {
            self.backend.state.set_session_state(
                session_id,
                SessionState::Cancelled,
                Some("stopped by the user"),
            )?;
        }
        Ok(true)
    }

    /// The original `stop_service`.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn stop_service(&self, service_id: &str) -> Result<bool, CoreError> {
        self.servers().stop_service(service_id).await
    }

    /// The original `stop_all_services`: cancels every job recorded in the state store
    /// that has not ended (services and their clients), in one scheduler call. Jobs the
    /// orchestrator did not submit are never touched.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn stop_all_services(&self) -> Result<StopSummary, CoreError> {
        self.reconcile().await?;
        let jobs = self.backend.state.active_jobs()?;
        let services = self.backend.active_owners("service")?;
        let clients = self.backend.active_owners("client")?;
        let sessions: Vec<String> = dedup(jobs.iter().map(|j| j.session_id.clone()));
        let cancelled = self.backend.cancel_jobs(&jobs).await?;
        for session in &sessions {
            let row = self.backend.state.session(session)?;
            if row.is_some_and(|s| !s.state.is_final()) {
                self.backend.state.set_session_state(
                    session,
                    SessionState::Cancelled,
                    Some("stopped by the user"),
                )?;
            }
        }
        Ok(StopSummary {
            jobs_cancelled: cancelled,
            services,
            clients,
            sessions,
        })
    }

    /// The original `show_servers_status`.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn show_servers_status(&self) -> Result<ServersStatus, CoreError> {
        self.reconcile().await?;
        self.servers_status(None)
    }

    /// The original `show_clients_status`.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn show_clients_status(&self) -> Result<ClientsStatus, CoreError> {
        self.reconcile().await?;
        self.clients_status(None)
    }

    pub(crate) fn servers_status(
        &self,
        sessions: Option<&[String]>,
    ) -> Result<ServersStatus, CoreError> {
        let jobs = self.backend.state.jobs(None)?;
        let services: Vec<ServiceStatus> = self
            .backend
            .state
            .services(None)?
            .into_iter()
            .filter(|s| sessions.is_none_or(|ids| ids.contains(&s.session_id)))
            .map(|s| {
                let job = last_job(&jobs, &s.id);
                ServiceStatus::new(s, job)
            })
            .collect();
        Ok(ServersStatus {
            total_services: services.len(),
            running_services: services
                .iter()
                .filter(|s| s.status == ServiceState::Running)
                .count(),
            services,
        })
    }

    pub(crate) fn clients_status(
        &self,
        sessions: Option<&[String]>,
    ) -> Result<ClientsStatus, CoreError> {
        let jobs = self.backend.state.jobs(None)?;
        let clients: Vec<ClientStatus> = self
            .backend
            .state
            .clients(None)?
            .into_iter()
            .filter(|c| sessions.is_none_or(|ids| ids.contains(&c.session_id)))
            .map(|c| {
                let job = last_job(&jobs, &c.id);
                ClientStatus::new(c, job)
            })
            .collect();
        Ok(ClientsStatus {
            total_clients: clients.len(),
            running_clients: clients
                .iter()
                .filter(|c| c.status == ClientState::Running)
                .count(),
            clients,
        })
    }

    /// The original `get_system_status`, reconciled with the scheduler: every session
    /// that has not ended plus the `recent` latest that have (all with `None`), and
    /// their services and clients.
    ///
    /// # Errors
    /// The cluster or the store failing.
    pub async fn get_system_status(
        &self,
        recent: Option<usize>,
    ) -> Result<SystemStatus, CoreError> {
        self.reconcile().await?;
        let all = self.backend.state.sessions()?;
        let active_jobs = self.backend.state.active_jobs()?;
        let mut ended_shown = 0;
        let mut sessions = Vec::new();
        for s in all {
            if s.state.is_final() {
                if recent.is_some_and(|n| ended_shown >= n) {
                    continue;
                }
                ended_shown += 1;
            }
            let active = active_jobs.iter().filter(|j| j.session_id == s.id).count();
            sessions.push(SessionStatus::new(s, active));
        }
        let ids: Vec<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
        Ok(SystemStatus {
            scheduler: self.backend.scheduler.name().to_owned(),
            target: self.backend.shell.target().to_owned(),
            state_db: self.backend.state.path().display().to_string(),
            active_jobs: active_jobs.len(),
            services: self.servers_status(Some(&ids))?,
            clients: self.clients_status(Some(&ids))?,
            sessions,
        })
    }

    /// The original `get_slurm_status`: the scheduler's own view of all the user's
    /// jobs, and the jobs the orchestrator tracks.
    ///
    /// # Errors
    /// The cluster failing.
    pub async fn get_slurm_status(&self) -> Result<SlurmStatus, CoreError> {
        let raw = self.backend.scheduler.raw_status().await?;
        let tracked = self
            .backend
            .state
            .active_jobs()?
            .iter()
            .map(crate::report::JobSummary::from)
            .collect();
        Ok(SlurmStatus {
            scheduler: self.backend.scheduler.name().to_owned(),
            raw,
            tracked,
        })
    }

    /// The original `debug_services`: for each service (or the service, client or
    /// session `id`): the rendered script, the scheduler's view, the tails of stdout
    /// and stderr, and the latest events.
    ///
    /// # Errors
    /// An unknown id, the cluster or the store failing.
    pub async fn debug_services(&self, id: Option<&str>) -> Result<Vec<DebugEntry>, CoreError> {
        self.reconcile().await?;
        let owners: Vec<(String, String, String, String, OwnerState)> = match id {
            None => self
                .backend
                .state
                .services(None)?
                .into_iter()
                .map(|s| ("service".into(), s.id, s.name, s.session_id, s.state.into()))
                .collect(),
            Some(id) => {
                let mut owners = Vec::new();
                if let Some(s) = self.backend.state.service(id)? {
                    owners.push(("service".into(), s.id, s.name, s.session_id, s.state.into()));
                } else if let Some(c) = self.backend.state.client(id)? {
                    owners.push(("client".into(), c.id, c.name, c.session_id, c.state.into()));
                } else if self.backend.state.session(id)?.is_some() {
                    for s in self.backend.state.services(Some(id))? {
                        owners.push(("service".into(), s.id, s.name, s.session_id, s.state.into()));
                    }
                    for c in self.backend.state.clients(Some(id))? {
                        owners.push(("client".into(), c.id, c.name, c.session_id, c.state.into()));
                    }
                } else {
                    return Err(CoreError::NotFound {
                        what: "service, client or session",
                        id: id.to_owned(),
                    });
                }
                owners
            }
        };
        let mut entries = Vec::new();
        for (kind, owner, name, session, state) in owners {
            let job = self.backend.state.jobs_of(&owner)?.pop();
            let scheduler_view = match job.as_ref().and_then(|j| j.job_id.clone()) {
                Some(id) => self
                    .backend
                    .scheduler
                    .query(&[JobId(id.clone())])
                    .await?
                    .remove(&JobId(id)),
                None => None,
            };
            let (stdout_tail, stderr_tail) = match &job {
                Some(j) => (
                    self.backend.file_tail(&j.stdout_path).await,
                    self.backend.file_tail(&j.stderr_path).await,
                ),
                None => (String::new(), String::new()),
            };
            entries.push(DebugEntry {
                kind,
                events: self.backend.state.events(None, Some(&owner), 20)?,
                id: owner,
                name,
                session_id: session,
                state,
                job,
                scheduler_view,
                stdout_tail,
                stderr_tail,
            });
        }
        Ok(entries)
    }

    /// The original `clear_all_state`: forgets every tracked session, service, client
    /// and job. Refuses while tracked jobs are active unless `force`, which cancels
    /// them first. Returns how many services and clients were cleared.
    ///
    /// # Errors
    /// [`CoreError::ActiveJobs`], the cluster or the store failing.
    pub async fn clear_all_state(&self, force: bool) -> Result<(usize, usize), CoreError> {
        self.reconcile().await?;
        let active = self.backend.state.active_jobs()?;
        if !active.is_empty() {
            if !force {
                return Err(CoreError::ActiveJobs {
                    count: active.len(),
                    jobs: active
                        .iter()
                        .map(|j| {
                            format!(
                                "{} ({})",
                                j.job_name,
                                j.job_id.as_deref().unwrap_or("not yet submitted")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            self.stop_all_services().await?;
        }
        self.backend.state.clear()
    }
}
