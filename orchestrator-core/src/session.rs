//! The session lifecycle: submit services, poll, gate on health, submit clients, wait,
//! fetch outputs, stop services, write the report; and clean-up when anything fails
//! or the caller cancels.

use std::path::PathBuf;
use std::time::Duration;

use orchestrator_slurm::{JobId, JobInfo, JobKind};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::CoreError;
use crate::driver::Target;
use crate::error::{HealthCheckFailure, StartupFailure};
use crate::lifecycle::{ClientState, JobRecordState, ServiceState, SessionState};
use crate::orchestrator::BenchmarkOrchestrator;
use crate::plan::{Plan, ServicePlan, client_job, service_job};
use crate::state::{ClientRow, JobRow, JobUpdate, ServiceRow, SessionRow};
use crate::util::now_ms;

/// How often to ask the scheduler: `min` while jobs change state, growing by `factor`
/// per unchanged poll up to `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollPolicy {
    /// The shortest interval.
    pub min: Duration,
    /// The longest interval.
    pub max: Duration,
    /// Growth per poll without change.
    pub factor: f64,
}

impl PollPolicy {
    /// For SLURM: 1 s to 10 s.
    #[must_use]
    pub const fn slurm() -> Self {
        Self {
            min: Duration::from_secs(1),
            max: Duration::from_secs(10),
            factor: 1.5,
        }
    }

    /// For local jobs: 200 ms to 2 s.
    #[must_use]
    pub const fn local() -> Self {
        Self {
            min: Duration::from_millis(200),
            max: Duration::from_secs(2),
            factor: 1.5,
        }
    }

    fn next(&self, current: Duration, changed: bool) -> Duration {
        if changed {
            self.min
        } else {
            current.mul_f64(self.factor).min(self.max)
        }
    }
}

/// What a session is doing, for progress displays.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionEvent {
    /// The session was planned and recorded.
    Created {
        /// Its id.
        session_id: String,
        /// Service names.
        services: Vec<String>,
        /// Client names.
        clients: Vec<String>,
    },
    /// A job was submitted.
    Submitted {
        /// `service` or `client`.
        kind: String,
        /// The recipe's name.
        name: String,
        /// The scheduler's id.
        job_id: String,
    },
    /// A job changed state.
    JobState {
        /// `service` or `client`.
        kind: String,
        /// The recipe's name.
        name: String,
        /// The scheduler's id.
        job_id: String,
        /// Its state.
        state: JobRecordState,
        /// Its node.
        node: Option<String>,
        /// The scheduler's reason (why pending).
        reason: Option<String>,
    },
    /// A health check failed; another follows.
    HealthAttempt {
        /// The service.
        name: String,
        /// Which attempt.
        attempt: u32,
        /// Of how many.
        retries: u32,
        /// What it got.
        response: String,
    },
    /// A service passed its health check.
    Healthy {
        /// The service.
        name: String,
        /// Its host.
        host: String,
        /// Its port.
        port: Option<u16>,
    },
    /// A client finished.
    ClientDone {
        /// The client.
        name: String,
        /// Its job's final state.
        state: JobRecordState,
        /// Its exit code.
        exit_code: Option<i32>,
    },
    /// Outputs were fetched to this directory.
    Fetched {
        /// The local directory.
        dir: String,
    },
    /// Services were stopped.
    Stopped {
        /// How many.
        services: usize,
    },
    /// Jobs are being cancelled because the session failed or was interrupted.
    CleaningUp {
        /// Why.
        reason: String,
    },
}

/// Receives [`SessionEvent`]s (the CLI draws them; `()` ignores them).
pub trait Progress: Send + Sync {
    /// Called for every event, in order.
    fn event(&self, event: &SessionEvent);
}

impl Progress for () {
    fn event(&self, _: &SessionEvent) {}
}

/// How to run a session.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Leave the services running after the clients finish.
    pub keep_services: bool,
    /// The recipe file, for messages and the record.
    pub recipe_path: Option<String>,
}

/// A finished session, as `run --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionOutcome {
    /// The session id.
    pub session_id: String,
    /// `completed`, `failed`, `cancelled`, or `running` when services were kept.
    pub state: SessionState,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Its services.
    pub services: Vec<ServiceRow>,
    /// Its clients.
    pub clients: Vec<ClientRow>,
    /// Its jobs, without their scripts.
    pub jobs: Vec<JobSummary>,
    /// The report file.
    pub report_path: Option<String>,
    /// Where fetched outputs are.
    pub results_dir: Option<String>,
    /// The clients' `expect` checked on their results; any that did not pass makes
    /// `orchestrator run` exit 3.
    pub expectations: Vec<crate::expect::ExpectationResult>,
}

impl SessionOutcome {
    /// The expectations that were missed.
    pub fn missed(&self) -> impl Iterator<Item = &crate::expect::ExpectationResult> {
        self.expectations.iter().filter(|e| !e.passed)
    }
}

/// A job, for summaries and reports.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct JobSummary {
    /// `service` or `client`.
    pub kind: String,
    /// The service's or client's id.
    pub owner_id: String,
    /// The SLURM job name.
    pub job_name: String,
    /// The scheduler's id.
    pub job_id: Option<String>,
    /// Its state.
    pub state: JobRecordState,
    /// Its node.
    pub node: Option<String>,
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// The scheduler's reason.
    pub reason: Option<String>,
    /// Submitted (RFC 3339).
    pub submitted_at: Option<String>,
    /// Ended (RFC 3339).
    pub ended_at: Option<String>,
    /// Its directory on the cluster.
    pub job_dir: String,
}

impl From<&JobRow> for JobSummary {
    fn from(j: &JobRow) -> Self {
        Self {
            kind: j.owner_kind.clone(),
            owner_id: j.owner_id.clone(),
            job_name: j.job_name.clone(),
            job_id: j.job_id.clone(),
            state: j.state.clone(),
            node: j.node.clone(),
            exit_code: j.exit_code,
            reason: j.reason.clone(),
            submitted_at: j.submitted_at.map(crate::util::rfc3339),
            ended_at: j.ended_at.map(crate::util::rfc3339),
            job_dir: j.job_dir.clone(),
        }
    }
}

/// The longest a service's `setup_script` may take.
const SETUP_LIMIT: Duration = Duration::from_secs(600);

/// How long the scheduler may fail to answer (a controller restarting, the login node
/// unreachable) before a session gives up.
const POLL_FAILURES_TOLERATED: Duration = Duration::from_secs(120);

/// A job the session waits on.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub row: i64,
    pub kind: JobKind,
    pub owner_id: String,
    pub name: String,
    pub job_id: JobId,
    pub stdout_path: String,
    pub stderr_path: String,
    /// What was last recorded of it; `None` until the scheduler was first asked.
    pub last: Option<JobUpdate>,
}

impl Tracked {
    /// The job's directory (where its `stdout.log` is).
    fn job_dir(&self) -> String {
        std::path::Path::new(&self.stdout_path)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
    pub(crate) fn ended(&self) -> bool {
        self.last.as_ref().is_some_and(|u| u.state.is_final())
    }
    /// Its state as last recorded (`GONE` when the scheduler was never asked).
    pub(crate) fn record_state(&self) -> JobRecordState {
        self.last
            .as_ref()
            .map_or(JobRecordState::Gone, |u| u.state.clone())
    }
    pub(crate) fn exit_code(&self) -> Option<i32> {
        self.last.as_ref().and_then(|u| u.exit_code)
    }
    pub(crate) fn node(&self) -> Option<&str> {
        self.last.as_ref().and_then(|u| u.node.as_deref())
    }
    /// Whether it runs on a known node.
    pub(crate) fn placed(&self) -> bool {
        self.last
            .as_ref()
            .is_some_and(|u| u.state.is_running() && u.node.is_some())
    }
    fn kind_str(&self) -> &'static str {
        match self.kind {
            JobKind::Service => "service",
            JobKind::Client => "client",
        }
    }
}

/// The state a job row records for what the scheduler said.
pub(crate) fn job_update(info: Option<&JobInfo>) -> JobUpdate {
    match info {
        Some(info) => JobUpdate {
            state: JobRecordState::Scheduler(info.state.clone()),
            node: info.node.clone(),
            reason: info.reason.clone(),
            exit_code: info.exit_code,
        },
        None => JobUpdate {
            state: JobRecordState::Gone,
            node: None,
            reason: Some("the scheduler no longer knows this job".into()),
            exit_code: None,
        },
    }
}

impl BenchmarkOrchestrator {
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
        let plan = crate::plan::plan(recipe, file)?;
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
        progress.event(&SessionEvent::Created {
            session_id: plan.session_id.clone(),
            services: plan
                .services
                .iter()
                .map(|s| s.recipe.name.clone())
                .collect(),
            clients: plan.clients.iter().map(|c| c.recipe.name.clone()).collect(),
        });
        let result = self.drive(plan, options, progress, cancel).await;
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
                if let Err(cleanup) = self.cancel_session_jobs(&plan.session_id).await {
                    tracing::error!(%cleanup, "cleaning up session {} failed", plan.session_id);
                }
                let _ = self
                    .state()
                    .set_session_state(&plan.session_id, state, Some(&reason));
                let _ = self.write_report(&plan.session_id, None).await;
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

    async fn drive(
        &self,
        plan: &Plan,
        options: &RunOptions,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionOutcome, CoreError> {
        let sid = &plan.session_id;
        let mut tracked = Vec::new();
        for service in &plan.services {
            tracked.push(self.submit_service(sid, service, None).await?);
            let t = tracked.last().expect("just pushed");
            progress.event(&SessionEvent::Submitted {
                kind: "service".into(),
                name: t.name.clone(),
                job_id: t.job_id.to_string(),
            });
        }
        // Wait until every service runs, then gate each on its health check.
        let waited = self
            .wait_until(sid, &mut tracked, progress, cancel, |jobs| {
                if let Some(ended) = jobs.iter().position(Tracked::ended) {
                    return Err(ended);
                }
                Ok(jobs.iter().all(Tracked::placed))
            })
            .await;
        match waited {
            Ok(()) => {}
            Err(WaitError::Core(e)) => return Err(e),
            Err(WaitError::Ended(job)) => return Err(self.startup_error(&job).await),
        }
        self.state()
            .set_session_state(sid, SessionState::Running, None)?;
        let mut targets = Vec::new();
        for (i, service) in plan.services.iter().enumerate() {
            let node = tracked[i].node().unwrap_or("localhost").to_owned();
            self.health_gate(sid, service, &node, &mut tracked, i, progress, cancel)
                .await?;
            targets.push(node);
        }
        // Clients.
        let services_count = tracked.len();
        for client in &plan.clients {
            let service = &plan.services[client.target];
            let host = &targets[client.target];
            let target = self.target_of(service, host, client.port, &client.recipe);
            let t = self
                .submit_client(
                    sid,
                    &client.id,
                    &client.recipe,
                    client.driver,
                    &target,
                    &client.recipe.name,
                )
                .await?;
            progress.event(&SessionEvent::Submitted {
                kind: "client".into(),
                name: t.name.clone(),
                job_id: t.job_id.to_string(),
            });
            tracked.push(t);
        }
        if !plan.clients.is_empty() {
            self.wait_until(sid, &mut tracked, progress, cancel, |jobs| {
                Ok(jobs[services_count..].iter().all(Tracked::ended))
            })
            .await
            .map_err(WaitError::into_core)?;
        }
        let mut failed_clients = Vec::new();
        for job in &tracked[services_count..] {
            let end = job.record_state();
            let state = ClientState::after_job(&end, job.exit_code());
            self.state().set_client_state(&job.owner_id, state, None)?;
            progress.event(&SessionEvent::ClientDone {
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
        let results_dir = self.fetch_outputs(sid, &tracked[services_count..]).await?;
        progress.event(&SessionEvent::Fetched {
            dir: results_dir.display().to_string(),
        });
        // With no clients, the services are what the user asked for: they stay up.
        let keep = options.keep_services || plan.clients.is_empty();
        if !keep {
            let ids: Vec<JobId> = tracked[..services_count]
                .iter()
                .map(|t| t.job_id.clone())
                .collect();
            self.scheduler().cancel(&ids).await?;
            self.wait_ended(&mut tracked[..services_count], Duration::from_secs(60))
                .await?;
            for job in &tracked[..services_count] {
                self.state().set_service_state(
                    &job.owner_id,
                    ServiceState::Stopped,
                    None,
                    None,
                    None,
                )?;
            }
            self.fetch_logs(sid, &tracked[..services_count], &results_dir)
                .await;
            progress.event(&SessionEvent::Stopped {
                services: services_count,
            });
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
        self.state()
            .set_session_state(sid, state, error.as_deref())?;
        let report = self.write_report(sid, Some(&results_dir)).await?;
        let mut outcome = self.outcome(sid)?;
        outcome.report_path = Some(report.display().to_string());
        outcome.results_dir = Some(results_dir.display().to_string());
        Ok(outcome)
    }

    /// The outcome of a session as the store has it.
    ///
    /// # Errors
    /// An unknown session, or the store failing.
    pub fn outcome(&self, session_id: &str) -> Result<SessionOutcome, CoreError> {
        let session = self
            .state()
            .session(session_id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "session",
                id: session_id.to_owned(),
            })?;
        let clients = self.state().clients(Some(session_id))?;
        let expectations =
            crate::expect::session_expectations(&clients, &self.state().results(session_id)?)?;
        Ok(SessionOutcome {
            session_id: session.id.clone(),
            state: session.state,
            error: session.error,
            services: self.state().services(Some(session_id))?,
            clients,
            jobs: self
                .state()
                .jobs(Some(session_id))?
                .iter()
                .map(JobSummary::from)
                .collect(),
            report_path: session.report_path,
            results_dir: Some(self.results_dir().join(session_id).display().to_string()),
            expectations,
        })
    }

    pub(crate) fn target_of(
        &self,
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
        &self,
        session_id: &str,
        service: &ServicePlan,
        dir_name: Option<&str>,
    ) -> Result<Tracked, CoreError> {
        let r = &service.recipe;
        let job_dir = self
            .job_dir(session_id, dir_name.unwrap_or(&r.name))
            .await?;
        let spec = service_job(self.job_defaults(), session_id, service, job_dir);
        self.submit(session_id, &service.id, &r.name, JobKind::Service, &spec)
            .await
    }

    /// Renders, records and submits a client's job against `target`.
    pub(crate) async fn submit_client(
        &self,
        session_id: &str,
        client_id: &str,
        recipe: &orchestrator_recipes::ClientRecipe,
        driver: &'static dyn crate::WorkloadDriver,
        target: &Target,
        dir_name: &str,
    ) -> Result<Tracked, CoreError> {
        let job_dir = self.job_dir(session_id, dir_name).await?;
        if crate::plan::runs_script(recipe) {
            self.upload_script(recipe).await?;
        }
        let spec = client_job(
            self.job_defaults(),
            session_id,
            recipe,
            driver,
            target,
            job_dir,
        )?;
        self.state().set_client_state(
            client_id,
            ClientState::Submitting,
            Some((&target.service_id, &target.host, target.port)),
        )?;
        let tracked = self
            .submit(session_id, client_id, &recipe.name, JobKind::Client, &spec)
            .await?;
        self.state()
            .set_client_state(client_id, ClientState::Pending, None)?;
        Ok(tracked)
    }

    /// Copies a client's script (its `local_path`, made absolute by planning) to its
    /// place on the cluster, unless the same content is there already.
    async fn upload_script(
        &self,
        recipe: &orchestrator_recipes::ClientRecipe,
    ) -> Result<(), CoreError> {
        let script = recipe
            .script
            .as_ref()
            .expect("a client that runs its script");
        let local = script.local_path.as_deref().unwrap_or_default();
        let bytes = std::fs::read(local)
            .map_err(CoreError::io(format!("cannot read the script {local}")))?;
        let remote = crate::script::remote_script(script);
        // One command: the absolute path (`$HOME/` is the cluster's home), then the
        // hash of the content there, if the script is there.
        let path = match remote.strip_prefix("$HOME/") {
            Some(rest) => format!("\"$HOME\"/{}", orchestrator_ssh::quote(rest)),
            None => orchestrator_ssh::quote(&remote).into_owned(),
        };
        let there = self
            .shell()
            .exec_ok(&format!(
                "p={path}; printf '%s\\n' \"$p\"; if [ -f \"$p\" ]; then cat -- \"$p.orchestrator-hash\" 2>/dev/null; fi; true"
            ))
            .await?;
        let there = there.stdout_lossy();
        let mut lines = there.lines();
        let remote = lines.next().unwrap_or_default().to_owned();
        let hash = format!("{:016x}", crate::util::fnv1a(&bytes));
        let marker = format!("{remote}.orchestrator-hash");
        if lines.next().map(str::trim) == Some(hash.as_str()) {
            tracing::debug!(%remote, "the script is on the cluster already");
            return Ok(());
        }
        self.shell().write_file(&remote, &bytes).await?;
        self.shell().write_file(&marker, hash.as_bytes()).await?;
        self.state().event(
            None,
            None,
            "script.upload",
            Some(&format!("{local} ({} bytes) to {remote}", bytes.len())),
        )?;
        Ok(())
    }

    async fn submit(
        &self,
        session_id: &str,
        owner_id: &str,
        name: &str,
        kind: JobKind,
        spec: &orchestrator_slurm::JobSpec,
    ) -> Result<Tracked, CoreError> {
        let mut spec = spec.clone();
        if spec.command == "orchestrator" {
            // The orchestrator's own engine (or demo server) runs in the job: point at a
            // binary the node has, and let a container see it.
            let binary = self.job_binary().await?;
            if let Some(container) = &mut spec.container {
                container.binds.push(format!("{binary}:{binary}:ro"));
            }
            spec.command = binary;
        }
        let rendered = self.renderer().render(&spec)?;
        let kind_str = match kind {
            JobKind::Service => "service",
            JobKind::Client => "client",
        };
        let row = self.state().insert_job(&JobRow {
            row: 0,
            session_id: session_id.to_owned(),
            owner_kind: kind_str.to_owned(),
            owner_id: owner_id.to_owned(),
            scheduler: self.scheduler().name().to_owned(),
            job_name: rendered.job_name.clone(),
            job_id: None,
            state: JobRecordState::Submitting,
            node: None,
            reason: None,
            exit_code: None,
            job_dir: rendered.job_dir.clone(),
            script_path: rendered.script_path.clone(),
            stdout_path: rendered.stdout_path.clone(),
            stderr_path: rendered.stderr_path.clone(),
            script: rendered.script.clone(),
            created_at: 0,
            submitted_at: None,
            updated_at: 0,
            ended_at: None,
        })?;
        match self.scheduler().submit(&rendered).await {
            Ok(job_id) => {
                self.state().job_submitted(row, job_id.as_str())?;
                Ok(Tracked {
                    row,
                    kind,
                    owner_id: owner_id.to_owned(),
                    name: name.to_owned(),
                    job_id,
                    stdout_path: rendered.stdout_path,
                    stderr_path: rendered.stderr_path,
                    last: None,
                })
            }
            Err(error) => {
                self.state().update_job(
                    row,
                    &JobUpdate {
                        state: JobRecordState::SubmitFailed,
                        node: None,
                        reason: Some(error.to_string()),
                        exit_code: None,
                    },
                )?;
                match kind {
                    JobKind::Service => self.state().set_service_state(
                        owner_id,
                        ServiceState::Failed,
                        None,
                        None,
                        None,
                    )?,
                    JobKind::Client => {
                        self.state()
                            .set_client_state(owner_id, ClientState::Failed, None)?;
                    }
                }
                Err(error.into())
            }
        }
    }

    /// One scheduler query for all `jobs`; records and reports what changed.
    pub(crate) async fn refresh(
        &self,
        jobs: &mut [Tracked],
        progress: &dyn Progress,
    ) -> Result<bool, CoreError> {
        let ids: Vec<JobId> = jobs
            .iter()
            .filter(|j| !j.ended())
            .map(|j| j.job_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(false);
        }
        let answer = self.scheduler().query(&ids).await?;
        let mut changed = false;
        for job in jobs.iter_mut().filter(|j| !j.ended()) {
            let update = job_update(answer.get(&job.job_id));
            let moved = job.last.as_ref().map(|u| (&u.state, &u.node))
                != Some((&update.state, &update.node));
            self.state().update_job(job.row, &update)?;
            if moved {
                changed = true;
                progress.event(&SessionEvent::JobState {
                    kind: job.kind_str().into(),
                    name: job.name.clone(),
                    job_id: job.job_id.to_string(),
                    state: update.state.clone(),
                    node: update.node.clone(),
                    reason: update.reason.clone(),
                });
                if job.kind == JobKind::Client && update.state.is_running() {
                    self.state()
                        .set_client_state(&job.owner_id, ClientState::Running, None)?;
                }
            }
            job.last = Some(update);
        }
        Ok(changed)
    }

    /// Polls `jobs` adaptively until `done` says so; `done` returns `Err(index)` for a
    /// job whose end is a failure.
    async fn wait_until(
        &self,
        session_id: &str,
        jobs: &mut [Tracked],
        progress: &dyn Progress,
        cancel: &CancellationToken,
        done: impl Fn(&[Tracked]) -> Result<bool, usize>,
    ) -> Result<(), WaitError> {
        let mut interval = self.poll_policy().min;
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let changed = match self.refresh(jobs, progress).await {
                Ok(changed) => {
                    failing_since = None;
                    changed
                }
                Err(error) => {
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if !error.is_transient() || since.elapsed() >= POLL_FAILURES_TOLERATED {
                        return Err(WaitError::Core(error));
                    }
                    tracing::warn!(%error, "asking the scheduler failed; asking again");
                    let _ = self.state().event(
                        Some(session_id),
                        None,
                        "poll.failed",
                        Some(&error.to_string()),
                    );
                    false
                }
            };
            match done(jobs) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(index) => return Err(WaitError::Ended(Box::new(jobs[index].clone()))),
            }
            interval = self.poll_policy().next(interval, changed);
            tokio::select! {
                () = cancel.cancelled() => return Err(WaitError::Core(CoreError::Interrupted { session_id: session_id.to_owned() })),
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    pub(crate) async fn startup_error(&self, job: &Tracked) -> CoreError {
        let _ = self.state().set_service_state(
            &job.owner_id,
            ServiceState::Failed,
            job.node(),
            None,
            None,
        );
        CoreError::ServiceStartup(Box::new(StartupFailure {
            service: job.name.clone(),
            service_id: job.owner_id.clone(),
            job_id: job.job_id.to_string(),
            state: job.record_state(),
            exit_code: job.exit_code(),
            log_tail: self
                .log_tail(&job.stdout_path, &job.stderr_path, 1500)
                .await,
        }))
    }

    /// The last `max` bytes of a job's standard error and output, labelled.
    pub(crate) async fn log_tail(&self, stdout: &str, stderr: &str, max: usize) -> String {
        use orchestrator_ssh::quote;
        let command = format!(
            "echo '--- stderr ---'; tail -c {max} -- {e} 2>&1; echo; echo '--- stdout ---'; tail -c {max} -- {o} 2>&1",
            e = quote(stderr),
            o = quote(stdout)
        );
        match self.shell().exec(&command).await {
            Ok(out) => out.stdout_lossy().trim_end().to_owned(),
            Err(e) => format!("(cannot read the log: {e})"),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn health_gate(
        &self,
        session_id: &str,
        service: &ServicePlan,
        node: &str,
        tracked: &mut [Tracked],
        index: usize,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<(), CoreError> {
        let id = &service.id;
        let port = service
            .probe
            .as_ref()
            .and_then(|p| p.port)
            .or_else(|| service.recipe.ports.first().copied());
        self.state()
            .set_service_state(id, ServiceState::Starting, Some(node), None, None)?;
        let Some(probe) = &service.probe else {
            self.state().set_service_state(
                id,
                ServiceState::Running,
                Some(node),
                None,
                Some("running (no health check)"),
            )?;
            progress.event(&SessionEvent::Healthy {
                name: service.recipe.name.clone(),
                host: node.to_owned(),
                port,
            });
            return Ok(());
        };
        let port = port.expect("planned: a probe has a port");
        let mut last = String::new();
        for attempt in 1..=probe.retries {
            let result = probe.probe(self.shell().as_ref(), node, port).await;
            if result.healthy {
                self.state().set_service_state(
                    id,
                    ServiceState::Running,
                    Some(node),
                    Some(port),
                    Some(&result.response),
                )?;
                self.state().event(
                    Some(session_id),
                    Some(id),
                    "health.pass",
                    Some(&format!(
                        "{} after {attempt} attempt(s): {}",
                        probe.describe(node, port),
                        result.response
                    )),
                )?;
                self.record_version(session_id, service, probe.host(node), port)
                    .await;
                if let Some(script) = &service.recipe.setup_script {
                    self.run_setup(session_id, service, &tracked[index], script, cancel)
                        .await?;
                }
                progress.event(&SessionEvent::Healthy {
                    name: service.recipe.name.clone(),
                    host: node.to_owned(),
                    port: Some(port),
                });
                return Ok(());
            }
            last = result.response;
            progress.event(&SessionEvent::HealthAttempt {
                name: service.recipe.name.clone(),
                attempt,
                retries: probe.retries,
                response: last.clone(),
            });
            if attempt == probe.retries {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(CoreError::Interrupted { session_id: session_id.to_owned() }),
                () = tokio::time::sleep(probe.interval) => {}
            }
            self.refresh(tracked, progress).await?;
            if tracked[index].ended() {
                return Err(self.startup_error(&tracked[index]).await);
            }
        }
        self.state().set_service_state(
            id,
            ServiceState::Failed,
            Some(node),
            Some(port),
            Some(&last),
        )?;
        Err(CoreError::ServiceHealthCheck(Box::new(
            HealthCheckFailure {
                service: service.recipe.name.clone(),
                service_id: id.clone(),
                probe: probe.describe(node, port),
                attempts: probe.retries,
                last_response: last,
            },
        )))
    }

    /// Waits (polling) until every job in `jobs` has ended, at most `limit`.
    pub(crate) async fn wait_ended(
        &self,
        jobs: &mut [Tracked],
        limit: Duration,
    ) -> Result<(), CoreError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut interval = self.poll_policy().min;
        loop {
            self.refresh(jobs, &()).await?;
            if jobs.iter().all(Tracked::ended) || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            interval = self.poll_policy().next(interval, false);
            tokio::time::sleep(interval).await;
        }
    }

    /// Copies each client's stdout, stderr and declared result file into
    /// `results_dir/<session>/<client>/`.
    async fn fetch_outputs(
        &self,
        session_id: &str,
        clients: &[Tracked],
    ) -> Result<PathBuf, CoreError> {
        let dir = self.results_dir().join(session_id);
        std::fs::create_dir_all(&dir)
            .map_err(CoreError::io(format!("cannot create {}", dir.display())))?;
        for job in clients {
            let client_dir = dir.join(&job.name);
            std::fs::create_dir_all(&client_dir).map_err(CoreError::io(format!(
                "cannot create {}",
                client_dir.display()
            )))?;
            let mut files = vec![
                (
                    "stdout".to_owned(),
                    job.stdout_path.clone(),
                    "stdout.log".to_owned(),
                ),
                (
                    "stderr".to_owned(),
                    job.stderr_path.clone(),
                    "stderr.log".to_owned(),
                ),
            ];
            if let Some(recipe) = self.state().client(&job.owner_id)?.and_then(|c| {
                serde_json::from_str::<orchestrator_recipes::ClientRecipe>(&c.recipe).ok()
            }) {
                if let Some(file) = recipe.output.and_then(|o| o.file) {
                    let job_dir = job.job_dir();
                    let name = std::path::Path::new(&file)
                        .file_name()
                        .map_or_else(|| "result".to_owned(), |n| n.to_string_lossy().into_owned());
                    let remote = if file.starts_with('/') {
                        file.clone()
                    } else {
                        format!("{job_dir}/{file}")
                    };
                    files.push((name.clone(), remote, name));
                }
            }
            for (label, remote, local) in files {
                match self.shell().read_file(&remote).await {
                    Ok(bytes) => {
                        let path = client_dir.join(&local);
                        std::fs::write(&path, &bytes)
                            .map_err(CoreError::io(format!("cannot write {}", path.display())))?;
                        self.state().add_result(
                            session_id,
                            &job.owner_id,
                            &label,
                            &path.display().to_string(),
                            i64::try_from(bytes.len()).unwrap_or(i64::MAX),
                        )?;
                    }
                    Err(error) => {
                        self.state().event(
                            Some(session_id),
                            Some(&job.owner_id),
                            "fetch.failed",
                            Some(&format!("{remote}: {error}")),
                        )?;
                    }
                }
            }
            self.fetch_engine_results(session_id, job, &client_dir)
                .await?;
        }
        Ok(dir)
    }

    /// Copies the workload engine's `results/` directory of a client job (summary,
    /// requests, sweep runs) in one transfer, and records each `summary.json`.
    async fn fetch_engine_results(
        &self,
        session_id: &str,
        job: &Tracked,
        client_dir: &std::path::Path,
    ) -> Result<(), CoreError> {
        use crate::workload::RESULTS_DIR;
        let job_dir = job.job_dir();
        if !self.untar_from(&job_dir, RESULTS_DIR, client_dir).await? {
            return Ok(());
        }
        let mut summaries = Vec::new();
        collect_named(
            &client_dir.join(RESULTS_DIR),
            "summary.json",
            &mut summaries,
        );
        summaries.sort();
        for path in summaries {
            let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
            self.state().add_result(
                session_id,
                &job.owner_id,
                "summary",
                &path.display().to_string(),
                i64::try_from(bytes).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }

    /// Runs a healthy service's `setup_script`: the job waits for a `healthy` file in its
    /// directory, runs the script beside the service and writes its exit status to
    /// `setup.exit`, which this waits for (at most [`SETUP_LIMIT`]).
    async fn run_setup(
        &self,
        session_id: &str,
        service: &ServicePlan,
        job: &Tracked,
        script: &str,
        cancel: &CancellationToken,
    ) -> Result<(), CoreError> {
        use orchestrator_ssh::quote;
        let dir = job.job_dir();
        self.shell()
            .write_file(&format!("{dir}/healthy"), b"healthy\n")
            .await?;
        self.state().event(
            Some(session_id),
            Some(&service.id),
            "setup.start",
            Some(&format!("{} lines", script.lines().count())),
        )?;
        let exit = format!("{dir}/setup.exit");
        let started = tokio::time::Instant::now();
        let outcome = loop {
            let read = self
                .shell()
                .exec(&format!("cat {} 2>/dev/null", quote(&exit)))
                .await?;
            if read.success() {
                break read.stdout_lossy().trim().to_owned();
            }
            if started.elapsed() > SETUP_LIMIT {
                break String::new();
            }
            tokio::select! {
                () = cancel.cancelled() => return Err(CoreError::Interrupted { session_id: session_id.to_owned() }),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        };
        let output = self
            .shell()
            .exec(&format!(
                "tail -c 2000 -- {} 2>&1",
                quote(&format!("{dir}/setup.log"))
            ))
            .await
            .map(|o| o.stdout_lossy().trim_end().to_owned())
            .unwrap_or_default();
        if outcome == "0" {
            self.state().event(
                Some(session_id),
                Some(&service.id),
                "setup.done",
                Some(&output),
            )?;
            return Ok(());
        }
        let outcome = if outcome.is_empty() {
            format!("did not finish within {} s", SETUP_LIMIT.as_secs())
        } else {
            format!("exited with status {outcome}")
        };
        self.state().event(
            Some(session_id),
            Some(&service.id),
            "setup.failed",
            Some(&outcome),
        )?;
        Err(CoreError::ServiceSetup(Box::new(crate::SetupFailure {
            service: service.recipe.name.clone(),
            service_id: service.id.clone(),
            outcome,
            output,
        })))
    }

    /// Asks a healthy service its version, when its driver knows where, and records it
    /// (event `service.version`) for the report. Best effort: a service that does not
    /// answer has no version on record.
    async fn record_version(&self, session_id: &str, service: &ServicePlan, host: &str, port: u16) {
        let Some(query) = service.driver.version_query() else {
            return;
        };
        let answer = crate::health::http_get(
            self.shell().as_ref(),
            host,
            port,
            query.path,
            Duration::from_secs(5),
        )
        .await;
        let version = match answer {
            Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.pointer(query.pointer)?.as_str().map(str::to_owned)),
            _ => None,
        };
        if let Some(version) = version {
            let _ = self.state().event(
                Some(session_id),
                Some(&service.id),
                "service.version",
                Some(&version),
            );
        }
    }

    /// Copies services' logs next to the clients' outputs (best effort).
    async fn fetch_logs(&self, session_id: &str, services: &[Tracked], dir: &std::path::Path) {
        for job in services {
            let service_dir = dir.join(&job.name);
            if std::fs::create_dir_all(&service_dir).is_err() {
                continue;
            }
            for (remote, local) in [
                (&job.stdout_path, "stdout.log"),
                (&job.stderr_path, "stderr.log"),
            ] {
                if let Ok(bytes) = self.shell().read_file(remote).await {
                    if std::fs::write(service_dir.join(local), bytes).is_err() {
                        tracing::warn!("cannot write {}", service_dir.join(local).display());
                    }
                } else {
                    let _ = self.state().event(
                        Some(session_id),
                        Some(&job.owner_id),
                        "fetch.failed",
                        Some(remote),
                    );
                }
            }
            // What the job sampled of itself, when monitoring was on.
            let monitor = std::path::Path::new(&job.stdout_path).with_file_name("monitor.csv");
            if let Ok(bytes) = self.shell().read_file(&monitor.display().to_string()).await {
                let path = service_dir.join("monitor.csv");
                if std::fs::write(&path, &bytes).is_ok() {
                    let _ = self.state().add_result(
                        session_id,
                        &job.owner_id,
                        "monitor",
                        &path.display().to_string(),
                        i64::try_from(bytes.len()).unwrap_or(i64::MAX),
                    );
                }
            }
        }
    }
}

/// Every file called `name` below `dir`.
fn collect_named(dir: &std::path::Path, name: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_named(&path, name, found);
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
}

pub(crate) enum WaitError {
    Core(CoreError),
    Ended(Box<Tracked>),
}

impl WaitError {
    fn into_core(self) -> CoreError {
        match self {
            Self::Core(e) => e,
            Self::Ended(job) => CoreError::ServiceStartup(Box::new(StartupFailure {
                service: job.name.clone(),
                service_id: job.owner_id.clone(),
                job_id: job.job_id.to_string(),
                state: job.record_state(),
                exit_code: job.exit_code(),
                log_tail: String::new(),
            })),
        }
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

impl BenchmarkOrchestrator {
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
        let plan = crate::plan::plan(recipe, file)?;
        let base = self.work_dir_preview().await?;
        let sid = &plan.session_id;
        let mut jobs = Vec::new();
        for service in &plan.services {
            let job_dir = format!("{base}/{sid}/{}", service.recipe.name);
            let spec = service_job(self.job_defaults(), sid, service, job_dir);
            jobs.push(self.renderer().render(&spec)?);
        }
        for client in &plan.clients {
            let service = &plan.services[client.target];
            let target = self.target_of(service, "SERVICE_NODE", client.port, &client.recipe);
            let job_dir = format!("{base}/{sid}/{}", client.recipe.name);
            let spec = client_job(
                self.job_defaults(),
                sid,
                &client.recipe,
                client.driver,
                &target,
                job_dir,
            )?;
            jobs.push(self.renderer().render(&spec)?);
        }
        Ok(jobs)
    }
}
