//! The session runner's decisions, driven in-process against a scripted **fake**
//! scheduler and a **fake** shell (no cluster, no processes, tokio's paused clock):
//! each test scripts what the scheduler answers and whether the service's port
//! answers its health check, and checks what the runner decided and recorded.
//!
//! The same behaviour is tested end to end against the real SLURM test cluster in
//! `orchestrator-cli/tests/`; these tests name each decision and run in milliseconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::lifecycle::{ClientState, JobRecordState, ServiceState, SessionState};
use orchestrator_core::{
    BenchmarkOrchestrator, CoreError, PollPolicy, Progress, RunOptions, SessionEvent,
};
use orchestrator_recipes::Config;
use orchestrator_slurm::{JobId, JobInfo, JobState, RenderedJob, Scheduler, SlurmError};
use orchestrator_ssh::{BoxedStream, Output, Shell, ShellError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

// Links the generic service driver and the `command` workload.
use orchestrator_plugin_generic as _;

/// What the fake scheduler says of one job at its `n`th query (0-based), given its
/// name (`orch-<session>-<recipe name>`) and whether it was cancelled; `None`: the
/// scheduler does not know it (any more).
type Script = dyn Fn(&str, usize, bool) -> Option<JobState> + Send + Sync;

struct FakeJob {
    name: String,
    queries: usize,
    cancelled: bool,
}

/// A scheduler that runs nothing: it answers from a script.
struct FakeScheduler {
    script: Box<Script>,
    jobs: Mutex<BTreeMap<JobId, FakeJob>>,
    /// Every call, in order: `submit NAME`, `query N`, `cancel ID,ID`.
    calls: Mutex<Vec<String>>,
    /// Queries that fail before the first one that answers.
    failing_queries: AtomicUsize,
    /// Submissions that fail (the controller unreachable) before one is taken.
    failing_submits: AtomicUsize,
}

impl std::fmt::Debug for FakeScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeScheduler")
    }
}

impl FakeScheduler {
    fn new(script: impl Fn(&str, usize, bool) -> Option<JobState> + Send + Sync + 'static) -> Self {
        Self {
            script: Box::new(script),
            jobs: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
            failing_queries: AtomicUsize::new(0),
            failing_submits: AtomicUsize::new(0),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn cancelled(&self) -> Vec<String> {
        let jobs = self.jobs.lock().unwrap();
        jobs.values()
            .filter(|j| j.cancelled)
            .map(|j| j.name.clone())
            .collect()
    }
}

#[async_trait]
impl Scheduler for FakeScheduler {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn submit(&self, job: &RenderedJob) -> Result<JobId, SlurmError> {
        if self
            .failing_submits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.calls
                .lock()
                .unwrap()
                .push(format!("submit failed {}", job.job_name));
            return Err(SlurmError::JobSubmission {
                stderr: "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)".into(),
                exit_code: 1,
            });
        }
        let mut jobs = self.jobs.lock().unwrap();
        let id = JobId((jobs.len() + 100).to_string());
        jobs.insert(
            id.clone(),
            FakeJob {
                name: job.job_name.clone(),
                queries: 0,
                cancelled: false,
            },
        );
        self.calls
            .lock()
            .unwrap()
            .push(format!("submit {}", job.job_name));
        Ok(id)
    }

    async fn cancel(&self, ids: &[JobId]) -> Result<(), SlurmError> {
        let mut jobs = self.jobs.lock().unwrap();
        for id in ids {
            if let Some(job) = jobs.get_mut(id) {
                job.cancelled = true;
            }
        }
        let list: Vec<&str> = ids.iter().map(JobId::as_str).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("cancel {}", list.join(",")));
        Ok(())
    }

    async fn query(&self, ids: &[JobId]) -> Result<BTreeMap<JobId, JobInfo>, SlurmError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("query {}", ids.len()));
        if self
            .failing_queries
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SlurmError::Command {
                command: "squeue".into(),
                exit_code: 1,
                stderr:
                    "slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
                        .into(),
            });
        }
        let mut jobs = self.jobs.lock().unwrap();
        let mut answer = BTreeMap::new();
        for id in ids {
            let Some(job) = jobs.get_mut(id) else {
                continue;
            };
            let state = if job.cancelled {
                Some(JobState::Cancelled)
            } else {
                (self.script)(&job.name, job.queries, job.cancelled)
            };
            job.queries += 1;
            if let Some(state) = state {
                let mut info = JobInfo::new(id.clone(), state.clone());
                if state.is_running() || state.is_terminal() {
                    info.node = Some("node1".into());
                }
                if state == JobState::Failed {
                    info.exit_code = Some(2);
                }
                answer.insert(id.clone(), info);
            }
        }
        Ok(answer)
    }

    async fn find_by_names(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, JobInfo>, SlurmError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("find {}", names.join(",")));
        let jobs = self.jobs.lock().unwrap();
        Ok(jobs
            .iter()
            .filter(|(_, j)| names.contains(&j.name))
            .map(|(id, j)| {
                let state = if j.cancelled {
                    JobState::Cancelled
                } else {
                    JobState::Running
                };
                (j.name.clone(), JobInfo::new(id.clone(), state))
            })
            .collect())
    }

    async fn raw_status(&self) -> Result<String, SlurmError> {
        Ok(String::new())
    }
}

/// Whether the service's port answers.
#[derive(Debug, Clone, Copy)]
enum Port {
    /// `200 OK` to every request.
    Up,
    /// Connection refused, always.
    Down,
    /// `200 OK` to the first N connections, then refused.
    UpFor(usize),
}

/// A shell that runs nothing: it keeps written files in memory, says where the work
/// directory is, and opens TCP streams to a scripted HTTP answer.
#[derive(Debug)]
struct FakeShell {
    port: Port,
    connections: AtomicUsize,
    files: Mutex<BTreeMap<String, Vec<u8>>>,
    commands: Mutex<Vec<String>>,
}

impl FakeShell {
    fn new(port: Port) -> Self {
        Self {
            port,
            connections: AtomicUsize::new(0),
            files: Mutex::new(BTreeMap::new()),
            commands: Mutex::new(Vec::new()),
        }
    }
}

fn output(exit_code: i32, stdout: &[u8]) -> Output {
    Output {
        exit_code,
        stdout: stdout.to_vec(),
        stderr: Vec::new(),
    }
}

#[async_trait]
impl Shell for FakeShell {
    fn target(&self) -> &str {
        "fake"
    }

    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        _timeout: Option<Duration>,
    ) -> Result<Output, ShellError> {
        self.commands.lock().unwrap().push(command.to_owned());
        if command.starts_with("cd && mkdir -p -- ") {
            return Ok(output(0, b"/fake/work\n"));
        }
        if command == "cd && pwd -P" {
            return Ok(output(0, b"/fake/home\n"));
        }
        let last = command
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim_matches('\'');
        if command.starts_with("mkdir -p -- ") && command.contains("&& cat > ") {
            let bytes = stdin.unwrap_or_default().to_vec();
            self.files.lock().unwrap().insert(last.to_owned(), bytes);
            return Ok(output(0, b""));
        }
        if let Some(path) = command.strip_prefix("cat -- ") {
            let path = path.trim_matches('\'');
            return Ok(match self.files.lock().unwrap().get(path) {
                Some(bytes) => output(0, bytes),
                None => output(1, b""),
            });
        }
        // Log tails, tar of results: nothing there.
        Ok(output(0, b""))
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<BoxedStream, ShellError> {
        let n = self.connections.fetch_add(1, Ordering::SeqCst);
        if matches!(self.port, Port::Down) || matches!(self.port, Port::UpFor(up) if n >= up) {
            return Err(ShellError::TcpConnect {
                target: "fake".into(),
                host: host.into(),
                port,
                reason: "connection refused".into(),
            });
        }
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match theirs.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = theirs
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await;
        });
        Ok(Box::new(ours))
    }
}

/// Records the events it is given.
#[derive(Default)]
struct Events(Mutex<Vec<SessionEvent>>);

impl Progress for Events {
    fn event(&self, event: &SessionEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    orch: BenchmarkOrchestrator,
    scheduler: Arc<FakeScheduler>,
    recipe: orchestrator_recipes::BenchmarkRecipe,
}

const RECIPE: &str = "
name: fake-session
services:
  - name: svc
    command: sleep
    args: [3600]
    ports: [8080]
    health_check: {endpoint: /health, interval: 1s, timeout: 1s, retries: 3}
clients:
  - name: load
    command: 'true'
    target_service: {name: svc}
";

fn harness(port: Port, scheduler: FakeScheduler) -> Harness {
    harness_with(port, scheduler, RECIPE)
}

fn harness_with(port: Port, scheduler: FakeScheduler, recipe: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        results_dir: dir.path().join("results").display().to_string(),
        work_dir: "/fake/work".into(),
        ..Config::default()
    };
    let scheduler = Arc::new(scheduler);
    let orch = BenchmarkOrchestrator::with_backend(
        config,
        &dir.path().join("state"),
        Arc::new(FakeShell::new(port)),
        scheduler.clone(),
    )
    .unwrap()
    .with_poll_policy(PollPolicy {
        min: Duration::from_millis(100),
        max: Duration::from_millis(500),
        factor: 1.5,
    });
    let file = dir.path().join("recipe.yaml");
    std::fs::write(&file, recipe).unwrap();
    let recipe = orch.load_recipe(&file).unwrap();
    Harness {
        _dir: dir,
        orch,
        scheduler,
        recipe,
    }
}

/// A job that is pending once, then runs, and (a client) completes after two polls.
fn ordinary(name: &str, n: usize, _cancelled: bool) -> Option<JobState> {
    Some(match (name.ends_with("-load"), n) {
        (_, 0) => JobState::Pending,
        (false, _) | (true, 1..=2) => JobState::Running,
        (true, _) => JobState::Completed,
    })
}

impl Harness {
    async fn run(
        &self,
        cancel: &CancellationToken,
    ) -> Result<orchestrator_core::SessionOutcome, CoreError> {
        self.orch
            .run_session(&self.recipe, &RunOptions::default(), &(), cancel)
            .await
    }

    fn only_session(&self) -> orchestrator_core::state::SessionRow {
        let mut sessions = self.orch.state().sessions().unwrap();
        assert_eq!(sessions.len(), 1);
        sessions.remove(0)
    }

    fn client_state(&self) -> ClientState {
        self.orch.state().clients(None).unwrap()[0].state
    }

    fn service_state(&self) -> ServiceState {
        self.orch.state().services(None).unwrap()[0].state
    }
}

#[tokio::test(start_paused = true)]
async fn an_ordinary_session_completes_and_stops_its_service_after_the_client() {
    let h = harness(Port::Up, FakeScheduler::new(ordinary));
    let events = Events::default();
    let outcome = h
        .orch
        .run_session(
            &h.recipe,
            &RunOptions::default(),
            &events,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.state, SessionState::Completed);
    assert_eq!(h.client_state(), ClientState::Completed);
    assert_eq!(h.service_state(), ServiceState::Stopped);
    let calls = h.scheduler.calls();
    let submits: Vec<&String> = calls.iter().filter(|c| c.starts_with("submit")).collect();
    assert_eq!(submits.len(), 2, "{calls:?}");
    assert!(
        submits[0].ends_with("-svc") && submits[1].ends_with("-load"),
        "{calls:?}"
    );
    // The service is cancelled once, after the client ended, by its own id.
    let cancels: Vec<&String> = calls.iter().filter(|c| c.starts_with("cancel")).collect();
    assert_eq!(cancels, [&"cancel 100".to_owned()], "{calls:?}");
    assert!(outcome.report_path.is_some());
    let events = events.0.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Healthy { name, .. } if name == "svc")),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_job_that_vanishes_from_the_queue_fails_the_session_instead_of_waiting_for_ever() {
    let h = harness(
        Port::Up,
        FakeScheduler::new(|name, n, _| match (name.ends_with("-load"), n) {
            (true, 0) => Some(JobState::Running),
            (true, _) => None,
            (false, _) => Some(JobState::Running),
        }),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(3600), h.run(&CancellationToken::new()))
        .await
        .expect("the runner must not wait for a job the scheduler forgot")
        .unwrap();
    assert_eq!(outcome.state, SessionState::Failed);
    assert_eq!(h.client_state(), ClientState::Failed);
    let error = outcome.error.unwrap();
    assert!(error.contains("client `load` ended GONE"), "{error}");
    let job = &outcome.jobs.iter().find(|j| j.kind == "client").unwrap();
    assert_eq!(job.state, JobRecordState::Gone);
    // The service was still stopped.
    assert_eq!(h.service_state(), ServiceState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_ends_while_starting_fails_the_session_and_its_client_never_runs() {
    let h = harness(
        Port::Down,
        FakeScheduler::new(|_, n, _| {
            Some(if n < 2 {
                JobState::Running
            } else {
                JobState::Failed
            })
        }),
    );
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    let CoreError::ServiceStartup(failure) = &error else {
        panic!("expected a startup failure, got {error}");
    };
    assert_eq!(failure.state, JobRecordState::Scheduler(JobState::Failed));
    assert_eq!(failure.exit_code, Some(2));
    let session = h.only_session();
    assert_eq!(session.state, SessionState::Failed);
    assert_eq!(h.service_state(), ServiceState::Failed);
    assert_eq!(h.client_state(), ClientState::Cancelled);
    let calls = h.scheduler.calls();
    assert!(!calls.iter().any(|c| c.ends_with("-load")), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_health_gate_that_never_passes_fails_after_its_retries_and_cancels_the_service() {
    let h = harness(
        Port::Down,
        FakeScheduler::new(|_, _, _| Some(JobState::Running)),
    );
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    let CoreError::ServiceHealthCheck(failure) = &error else {
        panic!("expected a health check failure, got {error}");
    };
    assert_eq!(failure.attempts, 3);
    assert!(
        failure.last_response.contains("connection refused"),
        "{failure:?}"
    );
    assert_eq!(h.only_session().state, SessionState::Failed);
    assert_eq!(h.service_state(), ServiceState::Failed);
    assert_eq!(h.client_state(), ClientState::Cancelled);
    assert_eq!(
        h.scheduler.cancelled().len(),
        1,
        "{:?}",
        h.scheduler.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_during_the_health_gate_cancels_the_jobs_and_names_the_session() {
    let h = harness(
        Port::Down,
        FakeScheduler::new(|_, _, _| Some(JobState::Running)),
    );
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
    });
    let error = h.run(&cancel).await.unwrap_err();
    let session = h.only_session();
    let CoreError::Interrupted { session_id } = &error else {
        panic!("expected an interruption, got {error}");
    };
    assert_eq!(session_id, &session.id);
    assert_eq!(session.state, SessionState::Cancelled);
    assert_eq!(h.service_state(), ServiceState::Stopped);
    assert_eq!(h.client_state(), ClientState::Cancelled);
    assert_eq!(h.scheduler.cancelled().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_fails_fails_the_session_with_its_exit_code_and_still_stops_the_service() {
    let h = harness(
        Port::Up,
        FakeScheduler::new(|name, n, _| {
            Some(match (name.ends_with("-load"), n) {
                (true, 0) => JobState::Running,
                (true, _) => JobState::Failed,
                (false, _) => JobState::Running,
            })
        }),
    );
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Failed);
    let error = outcome.error.unwrap();
    assert!(
        error.contains("client `load` ended FAILED with exit code 2"),
        "{error}"
    );
    assert_eq!(h.client_state(), ClientState::Failed);
    assert_eq!(h.service_state(), ServiceState::Stopped);
    assert!(outcome.report_path.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_poll_error_that_heals_does_not_end_the_session() {
    let scheduler = FakeScheduler::new(ordinary);
    scheduler.failing_queries.store(2, Ordering::SeqCst);
    let h = harness(Port::Up, scheduler);
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Completed);
    let events = h.orch.state().events(None, None, 1000).unwrap();
    let failed_polls = events.iter().filter(|e| e.action == "poll.failed").count();
    assert_eq!(failed_polls, 2, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_poll_error_that_lasts_ends_the_session_with_the_schedulers_message() {
    let scheduler = FakeScheduler::new(ordinary);
    scheduler
        .failing_queries
        .store(usize::MAX, Ordering::SeqCst);
    let h = harness(Port::Up, scheduler);
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Unable to contact slurm controller"),
        "{error}"
    );
    // Its jobs could not be cancelled either (the scheduler does not answer): the
    // session is left as it is, with the reason, for `attach` or `stop` once it does.
    let session = h.only_session();
    assert!(!session.state.is_final(), "{:?}", session.state);
    let why = session.error.unwrap();
    assert!(
        why.contains("then cancelling its jobs failed") && why.contains("Unable to contact"),
        "{why}"
    );
}

/// A session whose orchestrator died between recording its service's job and hearing
/// the scheduler's id: the job's row, `SUBMITTING`, and its name.
fn died_while_submitting(h: &Harness) -> String {
    let plan = h
        .orch
        .prepare_session(&h.recipe, &RunOptions::default())
        .unwrap();
    orphan(h, &plan.session_id);
    let service = h.orch.state().services(None).unwrap()[0].id.clone();
    record_job(h, &plan.session_id, "service", &service, "svc");
    format!("orch-{}-svc", plan.session_id)
}

/// Records a dead process as session `sid`'s orchestrator.
fn orphan(h: &Harness, sid: &str) {
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    h.orch.state().set_session_pid(sid, dead, None).unwrap();
}

/// Records a `SUBMITTING` job row for `owner` (of `kind`), named as the orchestrator
/// names it: its row.
fn record_job(h: &Harness, sid: &str, kind: &str, owner: &str, name: &str) -> i64 {
    h.orch
        .state()
        .insert_job(&orchestrator_core::state::JobRow {
            row: 0,
            session_id: sid.to_owned(),
            owner_kind: kind.into(),
            owner_id: owner.to_owned(),
            scheduler: "fake".into(),
            job_name: format!("orch-{sid}-{name}"),
            job_id: None,
            state: JobRecordState::Submitting,
            node: None,
            reason: None,
            exit_code: None,
            job_dir: format!("/fake/work/{sid}/{name}"),
            script_path: format!("/fake/work/{sid}/{name}/job.sh"),
            stdout_path: format!("/fake/work/{sid}/{name}/stdout.log"),
            stderr_path: format!("/fake/work/{sid}/{name}/stderr.log"),
            script: String::new(),
            created_at: 0,
            submitted_at: None,
            updated_at: 0,
            ended_at: None,
        })
        .unwrap()
}

/// Submits job `name` of session `sid` to the fake scheduler, as a dead orchestrator
/// did: its id.
async fn submit_as_dead_orchestrator(h: &Harness, sid: &str, name: &str) -> JobId {
    let rendered = RenderedJob {
        job_name: format!("orch-{sid}-{name}"),
        job_dir: format!("/fake/work/{sid}/{name}"),
        script_path: format!("/fake/work/{sid}/{name}/job.sh"),
        stdout_path: format!("/fake/work/{sid}/{name}/stdout.log"),
        stderr_path: format!("/fake/work/{sid}/{name}/stderr.log"),
        time_limit: None,
        script: String::new(),
    };
    h.scheduler.submit(&rendered).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_submitting_row_whose_orchestrator_died_is_lost_and_its_session_failed() {
    let h = harness(Port::Up, FakeScheduler::new(ordinary));
    let name = died_while_submitting(&h);
    h.orch.reconcile().await.unwrap();
    // One search by name, which finds nothing.
    assert_eq!(h.scheduler.calls(), [format!("find {name}")]);
    let job = &h.orch.state().jobs(None).unwrap()[0];
    assert_eq!(job.state, JobRecordState::Lost);
    assert!(job.ended_at.is_some());
    assert_eq!(h.service_state(), ServiceState::Failed);
    assert_eq!(h.client_state(), ClientState::Cancelled);
    let session = h.only_session();
    assert_eq!(session.state, SessionState::Failed);
    assert!(
        session
            .error
            .unwrap()
            .contains("orchestrator process ended"),
        "the session says why"
    );
}

/// Issue #16: `service start --wait` interrupted said "session  was interrupted".
#[tokio::test(start_paused = true)]
async fn waiting_for_a_started_service_when_interrupted_names_its_session() {
    let h = harness(
        Port::Down,
        FakeScheduler::new(|_, _, _| Some(JobState::Running)),
    );
    let id = h
        .orch
        .servers()
        .start_service(&h.recipe.services[0])
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        trigger.cancel();
    });
    let error = h
        .orch
        .servers()
        .wait_healthy(&id, &(), &cancel)
        .await
        .unwrap_err();
    let CoreError::Interrupted { session_id } = &error else {
        panic!("expected an interruption, got {error}");
    };
    assert_eq!(session_id, &h.only_session().id);
    assert!(
        error
            .to_string()
            .contains(&format!("session {session_id} was"))
    );
}

/// Issue #16: `stop SESSION` did not reconcile first, so a job that had ended by itself
/// was recorded as cancelled by the user.
#[tokio::test(start_paused = true)]
async fn stopping_a_session_records_first_what_ended_by_itself() {
    let h = harness(
        Port::Up,
        FakeScheduler::new(|_, _, _| Some(JobState::Failed)),
    );
    h.orch
        .servers()
        .start_service(&h.recipe.services[0])
        .await
        .unwrap();
    let session = h.only_session();
    assert!(h.orch.stop_benchmark_session(&session.id).await.unwrap());
    assert_eq!(h.service_state(), ServiceState::Failed);
    let calls = h.scheduler.calls();
    assert!(!calls.iter().any(|c| c.starts_with("cancel")), "{calls:?}");
    let session = h.only_session();
    assert_eq!(session.state, SessionState::Cancelled);
    let job = &h.orch.state().jobs(None).unwrap()[0];
    assert_eq!(job.state, JobRecordState::Scheduler(JobState::Failed));
}

/// A client that runs until it is cancelled; the service ends after `alive` polls.
fn service_dies_after(alive: usize) -> impl Fn(&str, usize, bool) -> Option<JobState> {
    move |name, n, _| {
        Some(match (name.ends_with("-load"), n) {
            (true, 0) | (false, 0) => JobState::Pending,
            (true, _) => JobState::Running,
            (false, n) if n < alive => JobState::Running,
            (false, _) => JobState::Failed,
        })
    }
}

/// Issue #17: a service killed 5 s into the load ended the session `completed`.
#[tokio::test(start_paused = true)]
async fn a_service_that_dies_while_its_client_runs_fails_the_session_and_cancels_the_client() {
    let h = harness(Port::Up, FakeScheduler::new(service_dies_after(5)));
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    let CoreError::ServiceDied(death) = &error else {
        panic!("expected a service death, got {error}");
    };
    assert_eq!(death.state, JobRecordState::Scheduler(JobState::Failed));
    assert_eq!(death.exit_code, Some(2));
    assert_eq!(death.clients, "clients cancelled: load");
    let message = error.to_string();
    assert!(
        message.contains("ended FAILED with exit code 2"),
        "{message}"
    );
    assert!(message.contains("s after its clients started"), "{message}");
    let code = miette::Diagnostic::code(&error).unwrap().to_string();
    assert_eq!(code, "service::died");
    let session = h.only_session();
    assert_eq!(session.state, SessionState::Failed);
    assert!(session.error.unwrap().contains("service `svc`"));
    assert_eq!(h.service_state(), ServiceState::Failed);
    assert_eq!(h.client_state(), ClientState::Cancelled);
    assert_eq!(
        h.scheduler.cancelled(),
        vec![format!("orch-{}-load", session.id)]
    );
    let events = h
        .orch
        .state()
        .events(Some(&session.id), None, 1000)
        .unwrap();
    assert!(
        events.iter().any(|e| e.action == "service.died"),
        "{events:?}"
    );
    assert!(session.report_path.is_some(), "the report is still written");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_asked_to_finish_runs_to_its_end_and_the_session_still_fails() {
    let recipe = RECIPE.replace(
        "    command: 'true'\n",
        "    command: 'true'\n    on_service_failure: finish\n",
    );
    assert!(recipe.contains("on_service_failure"));
    let h = harness_with(
        Port::Up,
        FakeScheduler::new(|name, n, _| {
            Some(match (name.ends_with("-load"), n) {
                (_, 0) => JobState::Pending,
                (true, 1..=6) => JobState::Running,
                (true, _) => JobState::Completed,
                (false, 1..=2) => JobState::Running,
                (false, _) => JobState::Failed,
            })
        }),
        &recipe,
    );
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    let CoreError::ServiceDied(death) = &error else {
        panic!("expected a service death, got {error}");
    };
    assert_eq!(death.clients, "clients let finish: load");
    assert!(
        h.scheduler.cancelled().is_empty(),
        "{:?}",
        h.scheduler.calls()
    );
    assert_eq!(h.client_state(), ClientState::Completed);
    assert_eq!(h.only_session().state, SessionState::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_stops_answering_during_the_run_counts_as_died_when_asked() {
    let recipe = RECIPE.replace("retries: 3}", "retries: 3, during_run: true}");
    assert!(recipe.contains("during_run"));
    // Healthy for the gate's first attempt and two checks during the run.
    let h = harness_with(
        Port::UpFor(3),
        FakeScheduler::new(|name, n, _| {
            Some(match (name.ends_with("-load"), n) {
                (_, 0) => JobState::Pending,
                _ => JobState::Running,
            })
        }),
        &recipe,
    );
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, CoreError::ServiceDied(_)), "{message}");
    assert!(
        message.contains("stopped answering its health check"),
        "{message}"
    );
    assert!(message.contains("3 times in a row"), "{message}");
    assert_eq!(h.client_state(), ClientState::Cancelled);
    // Without `during_run`, the same service is never asked again and the client's
    // end decides.
    let h = harness(
        Port::UpFor(1),
        FakeScheduler::new(|name, n, _| {
            Some(match (name.ends_with("-load"), n) {
                (_, 0) => JobState::Pending,
                (true, 1..=5) | (false, _) => JobState::Running,
                (true, _) => JobState::Completed,
            })
        }),
    );
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Completed);
}

/// Issue #17: a job whose `sbatch` succeeded but whose id was never recorded escaped
/// tracking; it is found by its unique name, recorded and stopped.
#[tokio::test(start_paused = true)]
async fn a_job_submitted_but_never_recorded_is_found_by_its_name_and_stopped() {
    let h = harness(
        Port::Up,
        FakeScheduler::new(|_, _, _| Some(JobState::Running)),
    );
    let name = died_while_submitting(&h);
    // The scheduler did take it.
    let sid = h.only_session().id;
    let id = submit_as_dead_orchestrator(&h, &sid, "svc").await;
    h.orch.reconcile().await.unwrap();
    let job = &h.orch.state().jobs(None).unwrap()[0];
    assert_eq!(
        job.job_id.as_deref(),
        Some(id.as_str()),
        "recorded by its name"
    );
    assert_eq!(
        h.scheduler.cancelled(),
        std::slice::from_ref(&name),
        "{:?}",
        h.scheduler.calls()
    );
    let calls = h.scheduler.calls();
    assert_eq!(calls.iter().filter(|c| c.starts_with("find")).count(), 1);
    let events = h.orch.state().events(None, None, 100).unwrap();
    assert!(events.iter().any(|e| e.action == "job.found"), "{events:?}");
    // The next reconcile sees it end, and the session with it.
    h.orch.reconcile().await.unwrap();
    let job = &h.orch.state().jobs(None).unwrap()[0];
    assert_eq!(job.state, JobRecordState::Scheduler(JobState::Cancelled));
    assert_eq!(h.only_session().state, SessionState::Failed);
}

/// Issue #17: `sbatch` while the controller restarts is tried again (with a look for
/// the job by its name first), and the session completes; a refusal is not retried.
#[tokio::test(start_paused = true)]
async fn a_submission_the_controller_could_not_take_is_tried_again_once_it_answers() {
    let scheduler = FakeScheduler::new(ordinary);
    scheduler.failing_submits.store(3, Ordering::SeqCst);
    let h = harness(Port::Up, scheduler);
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Completed);
    let calls = h.scheduler.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("submit failed"))
            .count(),
        3,
        "{calls:?}"
    );
    // Looked for by name before each new attempt: never submitted twice.
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("find ")).count(),
        3,
        "{calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("submit orch-"))
            .count(),
        2
    );
    let events = h.orch.state().events(None, None, 1000).unwrap();
    assert_eq!(
        events.iter().filter(|e| e.action == "submit.retry").count(),
        3
    );
}

/// Issue #17: `attach` continues a session whose orchestrator died. Here it died just
/// after `sbatch` took the service's job, before recording its id: attach finds the job
/// by its name and drives on it (no second service, nothing cancelled early), submits
/// the client that was never submitted, and completes the session with its report.
#[tokio::test(start_paused = true)]
async fn attach_drives_on_the_jobs_a_dead_orchestrator_left_and_submits_the_rest() {
    let h = harness(Port::Up, FakeScheduler::new(ordinary));
    died_while_submitting(&h);
    let sid = h.only_session().id;
    let service_job = submit_as_dead_orchestrator(&h, &sid, "svc").await;
    let events = Events::default();
    let outcome = h
        .orch
        .attach_session(&sid, &events, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, SessionState::Completed);
    assert_eq!(h.client_state(), ClientState::Completed);
    assert_eq!(h.service_state(), ServiceState::Stopped);
    let calls = h.scheduler.calls();
    let submits: Vec<&String> = calls.iter().filter(|c| c.starts_with("submit")).collect();
    assert_eq!(
        submits,
        [
            &format!("submit orch-{sid}-svc"),
            &format!("submit orch-{sid}-load")
        ],
        "the service once (by the dead orchestrator), the client once: {calls:?}"
    );
    let cancels: Vec<&String> = calls.iter().filter(|c| c.starts_with("cancel")).collect();
    assert_eq!(
        cancels,
        [&format!("cancel {}", service_job.as_str())],
        "the service is stopped once, after its client: {calls:?}"
    );
    let jobs = h.orch.state().jobs(Some(&sid)).unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0].job_id.as_deref(), Some(service_job.as_str()));
    assert!(outcome.report_path.is_some());
    let events = events.0.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SessionEvent::Adopted { name, .. } if name == "svc")),
        "{events:?}"
    );
    let audit = h.orch.state().events(Some(&sid), None, 1000).unwrap();
    assert!(
        audit.iter().any(|e| e.action == "session.attach"),
        "{audit:?}"
    );
}

/// Issue #17: two processes never drive one session: attaching a session whose
/// orchestrator lives is refused, the lock goes with a holder that dies, and a session
/// that ended cannot be attached.
#[tokio::test(start_paused = true)]
async fn attach_is_refused_while_another_process_drives_the_session_or_once_it_ended() {
    let h = harness(Port::Up, FakeScheduler::new(ordinary));
    let plan = h
        .orch
        .prepare_session(&h.recipe, &RunOptions::default())
        .unwrap();
    let sid = plan.session_id.clone();
    /// A living process, killed however the test ends.
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = Holder(
        std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap(),
    );
    let pid = holder.0.id();
    let start = orchestrator_slurm::process::start_time(pid);
    assert!(start.is_some());
    h.orch
        .state()
        .set_session_pid(&sid, pid, start.as_deref())
        .unwrap();
    let error = h
        .orch
        .attach_session(&sid, &(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(error, CoreError::SessionHeld { pid: held, .. } if held == pid),
        "{error}"
    );
    assert_eq!(
        miette::Diagnostic::code(&error).unwrap().to_string(),
        "session::held"
    );
    assert!(h.scheduler.calls().is_empty(), "nothing was done");
    // The holder dies: its hold goes with it.
    drop(holder);
    let outcome = h
        .orch
        .attach_session(&sid, &(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, SessionState::Completed);
    let error = h
        .orch
        .attach_session(&sid, &(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            CoreError::SessionEnded {
                state: SessionState::Completed,
                ..
            }
        ),
        "{error}"
    );
    let error = h
        .orch
        .attach_session("ses-00000000", &(), &CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(error, CoreError::NotFound { .. }), "{error}");
}

/// Issue #17: a session whose orchestrator died and whose jobs all ended since was
/// failed by reconcile; attach reopens it, fetches its client's output, writes the
/// report and ends it as `run` would have, without submitting anything.
#[tokio::test(start_paused = true)]
async fn attach_finishes_a_session_whose_jobs_all_ended_after_its_orchestrator_died() {
    let h = harness(
        Port::Up,
        FakeScheduler::new(|_, _, _| Some(JobState::Completed)),
    );
    let plan = h
        .orch
        .prepare_session(&h.recipe, &RunOptions::default())
        .unwrap();
    let sid = plan.session_id.clone();
    orphan(&h, &sid);
    for (kind, owner, name) in [
        ("service", &plan.services[0].id, "svc"),
        ("client", &plan.clients[0].id, "load"),
    ] {
        let row = record_job(&h, &sid, kind, owner, name);
        let id = submit_as_dead_orchestrator(&h, &sid, name).await;
        h.orch.state().job_submitted(row, id.as_str()).unwrap();
    }
    h.orch.reconcile().await.unwrap();
    let failed = h.only_session();
    assert_eq!(failed.state, SessionState::Failed);
    let status = h.orch.sessions().unwrap();
    assert!(status[0].attachable, "status says it can be attached");
    let outcome = h
        .orch
        .attach_session(&sid, &(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, SessionState::Completed, "{outcome:?}");
    assert_eq!(h.client_state(), ClientState::Completed);
    assert!(outcome.report_path.is_some());
    assert!(h.only_session().error.is_none());
    assert!(!h.orch.sessions().unwrap()[0].attachable);
    let calls = h.scheduler.calls();
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("submit")).count(),
        2,
        "only the dead orchestrator's two: {calls:?}"
    );
}

/// A script whose first job named `*-{which}` ends `NODE_FAIL` at its query `at`; every
/// other job is [`ordinary`].
fn loses_node_once(
    which: &'static str,
    at: usize,
) -> impl Fn(&str, usize, bool) -> Option<JobState> {
    let lost = std::sync::atomic::AtomicBool::new(false);
    move |name, n, cancelled| {
        if name.ends_with(&format!("-{which}")) && n == at && !lost.swap(true, Ordering::SeqCst) {
            return Some(JobState::NodeFail);
        }
        ordinary(name, n, cancelled)
    }
}

fn submits(h: &Harness) -> Vec<String> {
    h.scheduler
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("submit"))
        .map(|c| c.rsplit('-').next().unwrap().to_owned())
        .collect()
}

/// Issue #17: a service whose node is lost while it starts is submitted again (a
/// service's `retries` is 1 by default), in a directory of its own; the session then
/// completes, and the job that was lost stays in the history.
#[tokio::test(start_paused = true)]
async fn a_service_whose_node_is_lost_while_starting_is_submitted_again() {
    let h = harness(Port::Up, FakeScheduler::new(loses_node_once("svc", 1)));
    let events = Events::default();
    let outcome = h
        .orch
        .run_session(
            &h.recipe,
            &RunOptions::default(),
            &events,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.state, SessionState::Completed, "{outcome:?}");
    assert_eq!(submits(&h), ["svc", "svc", "load"]);
    let jobs = h.orch.state().jobs(None).unwrap();
    assert_eq!(jobs[0].state, JobRecordState::Scheduler(JobState::NodeFail));
    assert!(jobs[1].job_dir.ends_with("/svc.2"), "{}", jobs[1].job_dir);
    assert_eq!(
        outcome.jobs.iter().filter(|j| j.kind == "service").count(),
        2,
        "the report's jobs hold both attempts"
    );
    let events = events.0.lock().unwrap();
    assert!(
        events.iter().any(|e| matches!(e, SessionEvent::Requeued { name, retry: 1, retries: 1, .. } if name == "svc")),
        "{events:?}"
    );
    let audit = h.orch.state().events(None, None, 1000).unwrap();
    let requeue = audit.iter().find(|e| e.action == "job.requeue").unwrap();
    assert!(
        requeue
            .detail
            .as_deref()
            .unwrap()
            .contains("ended NODE_FAIL on node1; submitting it again (retry 1 of 1)"),
        "{requeue:?}"
    );
}

/// Issue #17: a service whose node is lost while its client runs: the client is
/// cancelled, the service submitted again, and the client starts over against it; the
/// session completes. With `retries: 0` the same loss is a death: `service::died`.
#[tokio::test(start_paused = true)]
async fn a_service_lost_under_load_comes_back_and_its_client_starts_over_unless_retries_0() {
    let h = harness(Port::Up, FakeScheduler::new(loses_node_once("svc", 4)));
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Completed, "{outcome:?}");
    assert_eq!(submits(&h), ["svc", "load", "svc", "load"]);
    let jobs = h.orch.state().jobs(None).unwrap();
    let states: Vec<String> = jobs.iter().map(|j| j.state.to_string()).collect();
    assert_eq!(
        states,
        ["NODE_FAIL", "CANCELLED", "CANCELLED", "COMPLETED"],
        "{jobs:?}"
    );
    assert!(jobs[3].job_dir.ends_with("/load.2"), "{}", jobs[3].job_dir);
    assert_eq!(h.client_state(), ClientState::Completed);

    let no_retry = RECIPE.replace("    ports: [8080]\n", "    ports: [8080]\n    retries: 0\n");
    let h = harness_with(
        Port::Up,
        FakeScheduler::new(loses_node_once("svc", 4)),
        &no_retry,
    );
    let error = h.run(&CancellationToken::new()).await.unwrap_err();
    let CoreError::ServiceDied(death) = &error else {
        panic!("expected a service death, got {error}");
    };
    assert_eq!(death.state, JobRecordState::Scheduler(JobState::NodeFail));
    assert_eq!(submits(&h), ["svc", "load"]);
}

/// Issue #17: a client whose node is lost runs again only when its recipe asks
/// (`retries`, 0 by default for clients): then the session completes; without, it fails
/// naming the client's end.
#[tokio::test(start_paused = true)]
async fn a_client_whose_node_is_lost_runs_again_only_when_its_recipe_asks() {
    let h = harness(Port::Up, FakeScheduler::new(loses_node_once("load", 2)));
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Failed);
    assert!(outcome.error.unwrap().contains("ended NODE_FAIL"));
    assert_eq!(submits(&h), ["svc", "load"]);

    let retry = RECIPE.replace(
        "    command: 'true'\n",
        "    command: 'true'\n    retries: 1\n",
    );
    let h = harness_with(
        Port::Up,
        FakeScheduler::new(loses_node_once("load", 2)),
        &retry,
    );
    let outcome = h.run(&CancellationToken::new()).await.unwrap();
    assert_eq!(outcome.state, SessionState::Completed, "{outcome:?}");
    assert_eq!(submits(&h), ["svc", "load", "load"]);
    assert_eq!(h.client_state(), ClientState::Completed);
}

/// Issue #17: a client whose node was lost after its orchestrator died, with a retry
/// left, runs again when the session is attached (the service is adopted, not
/// submitted again); the session completes.
#[tokio::test(start_paused = true)]
async fn attach_runs_again_a_client_that_lost_its_node_while_nothing_drove_it() {
    let retry = RECIPE.replace(
        "    command: 'true'\n",
        "    command: 'true'\n    retries: 1\n",
    );
    let h = harness_with(
        Port::Up,
        FakeScheduler::new(loses_node_once("load", 0)),
        &retry,
    );
    let plan = h
        .orch
        .prepare_session(&h.recipe, &RunOptions::default())
        .unwrap();
    let sid = plan.session_id.clone();
    orphan(&h, &sid);
    for (kind, owner, name) in [
        ("service", &plan.services[0].id, "svc"),
        ("client", &plan.clients[0].id, "load"),
    ] {
        let row = record_job(&h, &sid, kind, owner, name);
        let id = submit_as_dead_orchestrator(&h, &sid, name).await;
        h.orch.state().job_submitted(row, id.as_str()).unwrap();
    }
    let outcome = h
        .orch
        .attach_session(&sid, &(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(outcome.state, SessionState::Completed, "{outcome:?}");
    assert_eq!(submits(&h), ["svc", "load", "load"]);
    let jobs = h.orch.state().jobs(None).unwrap();
    assert_eq!(jobs[1].state, JobRecordState::Scheduler(JobState::NodeFail));
    assert!(jobs[2].job_dir.ends_with("/load.2"), "{}", jobs[2].job_dir);
    assert_eq!(h.client_state(), ClientState::Completed);
}
