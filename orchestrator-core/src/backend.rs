//! The narrow backend a session runs on: the shell where commands run, the scheduler,
//! the script renderer, the state store, the job defaults and the poll policy. Here
//! are the job-level operations every caller shares: render, record and submit a job;
//! poll many jobs with one scheduler query; cancel jobs and record how their owners
//! ended; read a job's log tail; copy a job's files back.
//!
//! It knows no recipe beyond the planned job specs, and no caller: the session runner,
//! the `servers`/`clients` views and reconcile all use it, and it uses none of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orchestrator_slurm::{JobId, JobInfo, JobKind, Scheduler, ScriptRenderer};
use orchestrator_ssh::{Shell, quote};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::error::{CoreError, StartupFailure};
use crate::lifecycle::{ClientState, JobRecordState, ServiceState};
use crate::plan::JobDefaults;
use crate::session::{Progress, SessionEvent};
use crate::state::{JobRow, JobUpdate, StateStore};

/// What sessions run on. Built once per orchestrator.
pub(crate) struct Backend {
    pub(crate) shell: Arc<dyn Shell>,
    pub(crate) scheduler: Arc<dyn Scheduler>,
    pub(crate) renderer: ScriptRenderer,
    pub(crate) state: StateStore,
    pub(crate) defaults: JobDefaults,
    pub(crate) results_dir: PathBuf,
    pub(crate) poll: PollPolicy,
    /// The config's `work_dir`, as written.
    pub(crate) work_dir_config: String,
    /// The config's `remote_binary`.
    pub(crate) remote_binary_config: Option<String>,
    /// An orchestrator binary of this machine that may be uploaded to the cluster.
    pub(crate) uploadable: Option<PathBuf>,
    work_dir: OnceCell<String>,
    remote_binary: OnceCell<String>,
}

impl Backend {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shell: Arc<dyn Shell>,
        scheduler: Arc<dyn Scheduler>,
        renderer: ScriptRenderer,
        state: StateStore,
        defaults: JobDefaults,
        results_dir: PathBuf,
        work_dir_config: String,
        remote_binary_config: Option<String>,
    ) -> Self {
        let poll = if scheduler.name() == "local" {
            PollPolicy::local()
        } else {
            PollPolicy::slurm()
        };
        Self {
            shell,
            scheduler,
            renderer,
            state,
            defaults,
            results_dir,
            poll,
            work_dir_config,
            remote_binary_config,
            uploadable: None,
            work_dir: OnceCell::new(),
            remote_binary: OnceCell::new(),
        }
    }

    pub(crate) fn shell(&self) -> &Arc<dyn Shell> {
        &self.shell
    }
    pub(crate) fn scheduler(&self) -> &Arc<dyn Scheduler> {
        &self.scheduler
    }
    pub(crate) fn state(&self) -> &StateStore {
        &self.state
    }
    pub(crate) fn results_dir(&self) -> &Path {
        &self.results_dir
    }
    pub(crate) fn renderer(&self) -> &ScriptRenderer {
        &self.renderer
    }
    pub(crate) fn job_defaults(&self) -> &JobDefaults {
        &self.defaults
    }
    pub(crate) fn poll_policy(&self) -> &PollPolicy {
        &self.poll
    }

    /// Where jobs find the orchestrator binary: on this machine, the one given to
    /// [`with_orchestrator_bin`](Self::with_orchestrator_bin); on a cluster, the config's
    /// `remote_binary`, else the uploadable binary, copied to
    /// `work_dir/bin/orchestrator-VERSION-HASH` unless it is there already.
    ///
    /// # Errors
    /// No binary is known for the cluster, or the upload fails.
    pub(crate) async fn job_binary(&self) -> Result<String, CoreError> {
        if let Some(local) = &self.defaults.orchestrator_bin {
            return Ok(local.clone());
        }
        if let Some(remote) = &self.remote_binary_config {
            return Ok(remote.clone());
        }
        self.remote_binary
            .get_or_try_init(|| async {
                let local = self.uploadable.as_ref().ok_or_else(|| {
                    CoreError::plan(
                        "config",
                        "a job runs `orchestrator`, but no orchestrator binary is known for the cluster",
                        Some("set `remote_binary` in the config to the orchestrator on the cluster".into()),
                    )
                })?;
                let bytes = std::fs::read(local)
                    .map_err(CoreError::io(format!("cannot read {}", local.display())))?;
                let name = format!(
                    "orchestrator-{}-{:016x}",
                    env!("CARGO_PKG_VERSION"),
                    crate::util::fnv1a(&bytes)
                );
                let path = format!("{}/bin/{name}", self.work_dir().await?);
                let present = self
                    .shell
                    .exec(&format!("test -x {}", quote(&path)))
                    .await?
                    .success();
                if present {
                    tracing::debug!(%path, "the orchestrator binary is on the cluster already");
                } else {
                    self.shell.write_file(&path, &bytes).await?;
                    self.shell.exec_ok(&format!("chmod 755 {}", quote(&path))).await?;
                    self.state.event(
                        None,
                        None,
                        "binary.upload",
                        Some(&format!("{} bytes to {path}", bytes.len())),
                    )?;
                }
                Ok::<_, CoreError>(path)
            })
            .await
            .cloned()
    }

    /// The absolute work directory on the cluster (created on first use); relative
    /// `work_dir`s are relative to the home directory there.
    ///
    /// # Errors
    /// The cluster failing.
    pub(crate) async fn work_dir(&self) -> Result<&str, CoreError> {
        self.work_dir
            .get_or_try_init(|| async {
                let dir = self.work_dir_config.trim_start_matches("~/");
                let command = format!(
                    "cd && mkdir -p -- {d} && cd -- {d} && pwd -P",
                    d = quote(dir)
                );
                let out = self.shell.exec_ok(&command).await?;
                Ok::<_, CoreError>(out.stdout_lossy().trim().to_owned())
            })
            .await
            .map(String::as_str)
    }

    /// The work directory's absolute path without creating it (for `--dry-run`).
    pub(crate) async fn work_dir_preview(&self) -> Result<String, CoreError> {
        let dir = self.work_dir_config.trim_start_matches("~/");
        if dir.starts_with('/') {
            return Ok(dir.trim_end_matches('/').to_owned());
        }
        let out = self.shell.exec_ok("cd && pwd -P").await?;
        Ok(format!(
            "{}/{}",
            out.stdout_lossy().trim(),
            dir.trim_end_matches('/')
        ))
    }

    pub(crate) async fn job_dir(&self, session_id: &str, name: &str) -> Result<String, CoreError> {
        Ok(format!("{}/{session_id}/{name}", self.work_dir().await?))
    }

    pub(crate) async fn submit(
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
        match self.submit_retrying(session_id, owner_id, &rendered).await {
            Ok(job_id) => {
                // A test hook: die as a crash would, after the scheduler took the job
                // and before its id is recorded (`orchestrator-cli/tests/sessions.rs`).
                if std::env::var_os("ORCHESTRATOR_TEST_ABORT_AFTER_SUBMIT").is_some() {
                    std::process::abort();
                }
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

    /// Submits `job`, and while the scheduler fails in a way that may pass (its
    /// controller restarting) asks again with a growing pause, for at most
    /// [`SUBMIT_RETRIES_FOR`]. Before each new attempt the job is looked for by its
    /// unique name: a submission whose answer was lost may have gone through, and is
    /// never made twice.
    async fn submit_retrying(
        &self,
        session_id: &str,
        owner_id: &str,
        job: &orchestrator_slurm::RenderedJob,
    ) -> Result<JobId, orchestrator_slurm::SlurmError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_secs(1);
        loop {
            let error = match self.scheduler().submit(job).await {
                Ok(id) => return Ok(id),
                Err(e) if e.is_transient() && started.elapsed() < SUBMIT_RETRIES_FOR => e,
                Err(e) => return Err(e),
            };
            tracing::warn!(%error, job = %job.job_name, "submitting failed; trying again");
            let _ = self.state().event(
                Some(session_id),
                Some(owner_id),
                "submit.retry",
                Some(&error.to_string()),
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(10));
            let names = [job.job_name.clone()];
            if let Ok(found) = self.scheduler().find_by_names(&names).await {
                if let Some(info) = found.get(&job.job_name) {
                    return Ok(info.id.clone());
                }
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
    pub(crate) async fn wait_until(
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
                Err(index) => return Err(WaitError::Ended(index)),
            }
            interval = self.poll_policy().next(interval, changed);
            tokio::select! {
                () = cancel.cancelled() => return Err(WaitError::Core(CoreError::Interrupted { session_id: session_id.to_owned() })),
                () = tokio::time::sleep(interval) => {}
            }
        }
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

    pub(crate) async fn file_tail(&self, path: &str) -> String {
        let command = format!("tail -c 4000 -- {} 2>&1", quote(path));
        match self.shell.exec(&command).await {
            Ok(out) => out.stdout_lossy().into_owned(),
            Err(e) => format!("(cannot read {path}: {e})"),
        }
    }

    /// Cancels every active job of a session (one scheduler call), waits for them to
    /// end, and records how each owner's job ended. The session's own end (which
    /// settles what is left: [`StateStore::set_session_state`]) is the caller's.
    pub(crate) async fn cancel_session_jobs(&self, session_id: &str) -> Result<usize, CoreError> {
        let jobs: Vec<JobRow> = self
            .state
            .jobs(Some(session_id))?
            .into_iter()
            .filter(|j| j.ended_at.is_none())
            .collect();
        self.cancel_jobs(&jobs).await
    }

    /// Cancels these recorded jobs in one scheduler call and waits (up to a minute)
    /// until the scheduler says they ended.
    pub(crate) async fn cancel_jobs(&self, jobs: &[JobRow]) -> Result<usize, CoreError> {
        let mut tracked: Vec<Tracked> = jobs
            .iter()
            .filter_map(|j| Tracked::of_row(j, j.job_name.clone()))
            .collect();
        if tracked.is_empty() {
            return Ok(0);
        }
        let ids: Vec<JobId> = tracked.iter().map(|t| t.job_id.clone()).collect();
        self.scheduler.cancel(&ids).await?;
        for job in jobs {
            self.state.event(
                Some(&job.session_id),
                Some(&job.owner_id),
                "job.cancel",
                Some(&format!("job {}", job.job_id.as_deref().unwrap_or("-"))),
            )?;
        }
        self.wait_ended(&mut tracked, Duration::from_secs(60))
            .await?;
        for job in &tracked {
            let state = job.record_state();
            let row = jobs
                .iter()
                .find(|j| j.row == job.row)
                .expect("tracked from jobs");
            self.settle_owner(row, &state, job.exit_code())?;
        }
        Ok(tracked.len())
    }

    /// A job ended: its service or client follows.
    pub(crate) fn settle_owner(
        &self,
        job: &JobRow,
        state: &JobRecordState,
        exit_code: Option<i32>,
    ) -> Result<(), CoreError> {
        if job.owner_kind == "service" {
            if let Some(service) = self.state.service(&job.owner_id)? {
                if !service.state.is_final() {
                    let next = ServiceState::after_job(state, exit_code);
                    self.state
                        .set_service_state(&job.owner_id, next, None, None, None)?;
                }
            }
        } else if let Some(client) = self.state.client(&job.owner_id)? {
            if !client.state.is_final() {
                let next = ClientState::after_job(state, exit_code);
                self.state.set_client_state(&job.owner_id, next, None)?;
            }
        }
        Ok(())
    }

    /// Ids of the services or clients (`kind`) whose jobs have not ended, as recorded.
    pub(crate) fn active_owners(&self, kind: &str) -> Result<Vec<String>, CoreError> {
        Ok(dedup(
            self.state
                .active_jobs()?
                .into_iter()
                .filter(|j| j.owner_kind == kind)
                .map(|j| j.owner_id),
        ))
    }

    /// Cancels the active jobs of one service or client; whether it had any.
    pub(crate) async fn cancel_owner(&self, owner: &str) -> Result<bool, CoreError> {
        let jobs: Vec<JobRow> = self
            .state
            .jobs_of(owner)?
            .into_iter()
            .filter(|j| j.ended_at.is_none())
            .collect();
        Ok(self.cancel_jobs(&jobs).await? > 0)
    }

    /// Unpacks `what` (a path relative to `remote_dir`) from the cluster into `dest`,
    /// through `tar` on both sides. `Ok(false)` when there is nothing to copy.
    pub(crate) async fn untar_from(
        &self,
        remote_dir: &str,
        what: &str,
        dest: &Path,
    ) -> Result<bool, CoreError> {
        let q = quote;
        let command = format!(
            "cd -- {} && if [ -e {what} ]; then tar -cf - {what}; fi",
            q(remote_dir),
            what = q(what)
        );
        let out = self.shell().exec(&command).await?;
        if !out.success() || out.stdout.is_empty() {
            return Ok(false);
        }
        std::fs::create_dir_all(dest)
            .map_err(CoreError::io(format!("cannot create {}", dest.display())))?;
        let mut tar = std::process::Command::new("tar")
            .arg("-xf")
            .arg("-")
            .arg("-C")
            .arg(dest)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .map_err(CoreError::io("cannot run tar to unpack fetched files"))?;
        {
            use std::io::Write;
            let mut stdin = tar.stdin.take().expect("piped");
            stdin
                .write_all(&out.stdout)
                .map_err(CoreError::io("cannot unpack fetched files"))?;
        }
        let status = tar
            .wait()
            .map_err(CoreError::io("cannot unpack fetched files"))?;
        if !status.success() {
            return Err(CoreError::Io {
                what: format!("unpacking {what} of {remote_dir}"),
                source: std::io::Error::other(format!("tar exited with {status}")),
            });
        }
        Ok(true)
    }
}

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

    pub(crate) fn next(&self, current: Duration, changed: bool) -> Duration {
        if changed {
            self.min
        } else {
            current.mul_f64(self.factor).min(self.max)
        }
    }
}

/// How long the scheduler may fail to answer (a controller restarting, the login node
/// unreachable) before a session gives up.
const POLL_FAILURES_TOLERATED: Duration = Duration::from_secs(120);

/// How long a submission that fails in a way that may pass is tried again.
const SUBMIT_RETRIES_FOR: Duration = Duration::from_secs(120);

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
    /// A recorded job to wait on, called `name`; `None` while it has no scheduler id.
    pub(crate) fn of_row(job: &JobRow, name: String) -> Option<Self> {
        Some(Self {
            row: job.row,
            kind: if job.owner_kind == "service" {
                JobKind::Service
            } else {
                JobKind::Client
            },
            owner_id: job.owner_id.clone(),
            name,
            job_id: JobId(job.job_id.clone()?),
            stdout_path: job.stdout_path.clone(),
            stderr_path: job.stderr_path.clone(),
            last: None,
        })
    }

    /// A recorded job to drive on (`attach`), as it was last recorded; `None` for
    /// one that never reached the scheduler, which is submitted anew.
    pub(crate) fn adopt(job: &JobRow, name: String) -> Option<Self> {
        if matches!(
            job.state,
            JobRecordState::Submitting | JobRecordState::SubmitFailed | JobRecordState::Lost
        ) {
            return None;
        }
        let mut tracked = Self::of_row(job, name)?;
        tracked.last = Some(JobUpdate {
            state: job.state.clone(),
            node: job.node.clone(),
            reason: job.reason.clone(),
            exit_code: job.exit_code,
        });
        Some(tracked)
    }

    /// The job's directory (where its `stdout.log` is).
    pub(crate) fn job_dir(&self) -> String {
        Path::new(&self.stdout_path)
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
    pub(crate) fn kind_str(&self) -> &'static str {
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

/// Why waiting on jobs stopped early.
pub(crate) enum WaitError {
    Core(CoreError),
    /// The job at this index of those waited on ended, and that is a failure.
    Ended(usize),
}

pub(crate) fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

pub(crate) fn last_job<'a>(jobs: &'a [JobRow], owner: &str) -> Option<&'a JobRow> {
    jobs.iter().rev().find(|j| j.owner_id == owner)
}
