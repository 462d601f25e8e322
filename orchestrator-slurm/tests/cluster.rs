//! The schedulers against real things: SLURM of `scripts/test-cluster` (two compute
//! nodes in their own network namespaces) reached over its real SSH server, and the
//! local scheduler on this machine. Start the cluster first:
//! `scripts/test-cluster up && eval "$(scripts/test-cluster env)"` (`.ci/run` does).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestrator_slurm::{
    JobId, JobInfo, JobKind, JobSpec, JobState, LocalScheduler, SbatchOptions, Scheduler,
    ScriptRenderer, Slurm, SlurmError,
};
use orchestrator_ssh::{BoxedStream, Output, Shell, ShellError, SshOptions, SshShell};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the test cluster. Run \
             `scripts/test-cluster up && eval \"$(scripts/test-cluster env)\"` (scripts/test does)"
        )
    })
}

/// A shell that counts the commands it runs: to prove how many scheduler calls a
/// query costs.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Shell>,
    commands: AtomicUsize,
}

#[async_trait]
impl Shell for Counting {
    fn target(&self) -> &str {
        self.inner.target()
    }
    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, ShellError> {
        self.commands.fetch_add(1, Ordering::SeqCst);
        self.inner.run(command, stdin, timeout).await
    }
    async fn connect_tcp(&self, host: &str, port: u16) -> Result<BoxedStream, ShellError> {
        self.inner.connect_tcp(host, port).await
    }
}

fn ssh() -> Arc<SshShell> {
    Arc::new(SshShell::new(
        SshOptions::new(
            env("ORCH_TEST_SSH_HOST"),
            env("ORCH_TEST_SSH_USER"),
            env("ORCH_TEST_SSH_KEY"),
        )
        .port(env("ORCH_TEST_SSH_PORT").parse().expect("port"))
        .known_hosts(env("ORCH_TEST_KNOWN_HOSTS")),
    ))
}

fn slurm() -> Slurm {
    Slurm::new(ssh())
}

/// A fresh directory on the shared file system for one test.
fn work_dir(test: &str) -> String {
    let dir = format!(
        "{}/{test}-{}",
        env("ORCH_TEST_WORK_DIR"),
        std::process::id()
    );
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

fn job(kind: JobKind, name: &str, dir: &str, argv: &[&str]) -> JobSpec {
    JobSpec {
        kind,
        name: name.into(),
        session_id: "test".into(),
        job_dir: format!(
            "{dir}/{}",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ),
        command: argv[0].into(),
        args: argv[1..].iter().map(|s| (*s).into()).collect(),
        environment: BTreeMap::new(),
        sbatch: SbatchOptions {
            time: Some(Duration::from_secs(600)),
            ..SbatchOptions::default()
        },
        container: None,
        monitor: None,
        register: None,
        setup_script: None,
        replicas: None,
    }
}

async fn submit(s: &dyn Scheduler, spec: &JobSpec) -> JobId {
    let rendered = ScriptRenderer::new().render(spec).expect("renders");
    s.submit(&rendered).await.expect("submits")
}

/// Polls until `done` holds, recording every state seen.
async fn wait_until(
    s: &dyn Scheduler,
    id: &JobId,
    limit: Duration,
    done: impl Fn(&JobInfo) -> bool,
) -> (JobInfo, Vec<JobState>) {
    let start = Instant::now();
    let mut seen: Vec<JobState> = Vec::new();
    loop {
        let info = s.query_one(id).await.expect("the scheduler knows the job");
        if seen.last() != Some(&info.state) {
            seen.push(info.state.clone());
        }
        if done(&info) {
            return (info, seen);
        }
        assert!(
            start.elapsed() < limit,
            "job {id} still {:?} after {limit:?}; seen {seen:?}",
            info.state
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn terminal(info: &JobInfo) -> bool {
    info.state.is_terminal()
}

/// A service job serving its directory over HTTP on `port`, and a client job that
/// fetches `marker.txt` from the service's host into its own directory.
async fn serve_and_fetch(
    s: &dyn Scheduler,
    dir: &str,
    service_node: Option<&str>,
    client_node: Option<&str>,
) {
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut service = job(
        JobKind::Service,
        "web",
        dir,
        &[
            "python3",
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "0.0.0.0",
        ],
    );
    service.sbatch.nodelist = service_node.map(str::to_owned);
    let marker = format!("served by a {} job\n", s.name());
    std::fs::create_dir_all(&service.job_dir).expect("dir");
    std::fs::write(format!("{}/marker.txt", service.job_dir), &marker).expect("marker");
    let service_id = submit(s, &service).await;
    let (running, _) = wait_until(s, &service_id, Duration::from_secs(60), |i| {
        i.state.is_running() || terminal(i)
    })
    .await;
    assert_eq!(running.state, JobState::Running, "{running:?}");
    let host = running.node.clone().expect("a running job has a node");
    if let Some(node) = service_node {
        assert_eq!(host, node);
    }

    let url = format!("http://{host}:{port}/marker.txt");
    let fetch = format!(
        "for i in $(seq 100); do curl -sf {url} -o fetched.txt && exit 0; sleep 0.2; done; exit 1"
    );
    let mut client = job(JobKind::Client, "fetch", dir, &["bash", "-c", &fetch]);
    client.sbatch.nodelist = client_node.map(str::to_owned);
    let client_id = submit(s, &client).await;
    let (done, _) = wait_until(s, &client_id, Duration::from_secs(60), terminal).await;
    assert_eq!(
        (done.state.clone(), done.exit_code),
        (JobState::Completed, Some(0)),
        "{done:?}"
    );
    if let Some(node) = client_node {
        assert_eq!(done.node.as_deref(), Some(node));
    }
    assert_eq!(
        std::fs::read_to_string(format!("{}/fetched.txt", client.job_dir)).expect("fetched"),
        marker
    );

    s.cancel(std::slice::from_ref(&service_id))
        .await
        .expect("cancels");
    let (stopped, _) = wait_until(s, &service_id, Duration::from_secs(30), terminal).await;
    assert_eq!(stopped.state, JobState::Cancelled);
}

#[tokio::test]
async fn a_service_on_node1_serves_a_client_on_node2() {
    let dir = work_dir("serve");
    if env("ORCH_TEST_NODES").contains("node2") {
        serve_and_fetch(&slurm(), &dir, Some("node1"), Some("node2")).await;
    } else {
        serve_and_fetch(&slurm(), &dir, None, None).await;
    }
}

#[tokio::test]
async fn the_local_scheduler_serves_a_client_the_same_way() {
    let dir = work_dir("local-serve");
    serve_and_fetch(
        &LocalScheduler::new(format!("{dir}/.jobs")),
        &dir,
        None,
        None,
    )
    .await;
}

/// Held, released, running, completed; a failing job's exit code; a cancelled job.
async fn lifecycle(s: &dyn Scheduler, dir: &str, release: impl AsyncFnOnce(&JobId)) {
    let mut ok = job(
        JobKind::Client,
        "ok",
        dir,
        &["bash", "-c", "sleep 1; echo done"],
    );
    if s.name() == "slurm" {
        ok.sbatch.extra_args.push("--hold".into());
    }
    let id = submit(s, &ok).await;
    let first = s.query_one(&id).await.expect("known");
    assert!(
        matches!(first.state, JobState::Pending | JobState::Running),
        "{first:?}"
    );
    release(&id).await;
    let (done, seen) = wait_until(s, &id, Duration::from_secs(60), terminal).await;
    assert_eq!(
        (done.state.clone(), done.exit_code),
        (JobState::Completed, Some(0)),
        "{done:?}"
    );
    assert!(seen.contains(&JobState::Running), "states seen: {seen:?}");
    assert_eq!(
        std::fs::read_to_string(format!("{}/stdout.log", ok.job_dir)).expect("stdout"),
        "done\n"
    );

    let failing = job(
        JobKind::Client,
        "exit3",
        dir,
        &["bash", "-c", "echo oops >&2; exit 3"],
    );
    let id = submit(s, &failing).await;
    let (failed, _) = wait_until(s, &id, Duration::from_secs(60), terminal).await;
    assert_eq!(
        (failed.state.clone(), failed.exit_code),
        (JobState::Failed, Some(3)),
        "{failed:?}"
    );
    let stderr =
        std::fs::read_to_string(format!("{}/stderr.log", failing.job_dir)).expect("stderr");
    assert!(stderr.ends_with("oops\n"), "{stderr}");

    let long = job(JobKind::Service, "sleeper", dir, &["sleep", "300"]);
    let id = submit(s, &long).await;
    wait_until(s, &id, Duration::from_secs(60), |i| i.state.is_running()).await;
    s.cancel(std::slice::from_ref(&id)).await.expect("cancels");
    let (cancelled, _) = wait_until(s, &id, Duration::from_secs(30), terminal).await;
    assert_eq!(cancelled.state, JobState::Cancelled, "{cancelled:?}");
}

#[tokio::test]
async fn slurm_jobs_go_through_their_states() {
    let dir = work_dir("states");
    let shell = ssh();
    lifecycle(&Slurm::new(shell.clone()), &dir, async |id: &JobId| {
        let out = shell
            .exec(&format!("scontrol release {id}"))
            .await
            .expect("releases");
        assert!(out.success(), "{out:?}");
    })
    .await;
}

#[tokio::test]
async fn local_jobs_go_through_the_same_states() {
    let dir = work_dir("local-states");
    lifecycle(
        &LocalScheduler::new(format!("{dir}/.jobs")),
        &dir,
        async |_: &JobId| {},
    )
    .await;
    // No time-limit watchdog outlives its job, even one cancelled at once (a TERM
    // before the wrapper set its trap once left one behind).
    let start = Instant::now();
    loop {
        let left = std::process::Command::new("pgrep")
            .args(["-f", &format!("{dir}/.jobs")])
            .output()
            .unwrap();
        if !left.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "watchdogs left: {}",
            String::from_utf8_lossy(&left.stdout)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_slurm_job_past_its_time_limit_times_out() {
    let dir = work_dir("timeout");
    let s = slurm();
    let mut spec = job(JobKind::Service, "overrun", &dir, &["sleep", "600"]);
    spec.sbatch.time = Some(Duration::from_secs(60));
    let id = submit(&s, &spec).await;
    let (info, _) = wait_until(&s, &id, Duration::from_secs(180), terminal).await;
    assert_eq!(info.state, JobState::Timeout, "{info:?}");
}

#[tokio::test]
async fn a_local_job_past_its_time_limit_times_out() {
    let dir = work_dir("local-timeout");
    let s = LocalScheduler::new(format!("{dir}/.jobs"));
    let mut spec = job(JobKind::Service, "overrun", &dir, &["sleep", "600"]);
    spec.sbatch.time = Some(Duration::from_secs(1));
    let id = submit(&s, &spec).await;
    let (info, _) = wait_until(&s, &id, Duration::from_secs(30), terminal).await;
    assert_eq!(info.state, JobState::Timeout, "{info:?}");
}

/// Issue #17: the local scheduler's time limit is SLURM's: TERM, then KILL after the
/// grace period to a job that ignores TERM; nothing of it is left.
#[tokio::test]
async fn a_local_job_that_ignores_term_past_its_time_limit_is_killed_after_the_grace() {
    let dir = work_dir("local-timeout-kill");
    let s = LocalScheduler::new(format!("{dir}/.jobs"));
    let marker = format!("ignores-term-{}", std::process::id());
    let script = format!("trap '' TERM; exec -a {marker} sleep 600");
    let mut spec = job(JobKind::Service, "stubborn", &dir, &["bash", "-c", &script]);
    spec.sbatch.time = Some(Duration::from_secs(1));
    let started = Instant::now();
    let id = submit(&s, &spec).await;
    let (info, _) = wait_until(&s, &id, Duration::from_secs(30), terminal).await;
    assert_eq!(info.state, JobState::Timeout, "{info:?}");
    let alive = || {
        std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .unwrap()
            .status
            .success()
    };
    while alive() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a job that ignores TERM outlived its time limit and the grace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // TERM at 1 s was ignored; KILL came after the 3 s grace.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let watchdog = std::process::Command::new("pgrep")
        .args(["-f", &format!("{dir}/.jobs")])
        .output()
        .unwrap();
    assert!(
        !watchdog.status.success(),
        "a watchdog is left: {}",
        String::from_utf8_lossy(&watchdog.stdout)
    );
}

#[tokio::test]
async fn refused_submissions_carry_sbatchs_own_message() {
    let dir = work_dir("refused");
    let s = slurm();
    let mut spec = job(JobKind::Client, "nopart", &dir, &["true"]);
    spec.sbatch.partition = Some("no_such_partition".into());
    let rendered = ScriptRenderer::new().render(&spec).expect("renders");
    match s.submit(&rendered).await {
        Err(SlurmError::JobSubmission { stderr, .. }) => {
            assert!(
                stderr.contains("invalid partition specified: no_such_partition"),
                "{stderr}"
            );
        }
        other => panic!("expected JobSubmission, got {other:?}"),
    }

    let mut spec = job(JobKind::Client, "toobig", &dir, &["true"]);
    spec.sbatch.mem_mib = Some(1_000_000);
    let rendered = ScriptRenderer::new().render(&spec).expect("renders");
    match s.submit(&rendered).await {
        Err(SlurmError::InsufficientResources { stderr }) => {
            assert!(
                stderr.contains("Requested node configuration is not available"),
                "{stderr}"
            );
        }
        other => panic!("expected InsufficientResources, got {other:?}"),
    }
    let missing = s.query_one(&JobId::from("99999999")).await;
    assert!(
        matches!(missing, Err(SlurmError::JobNotFound { .. })),
        "{missing:?}"
    );
}

const HOSTILE: [&str; 8] = [
    "it's",
    "\"dq\"",
    "$(touch pwned)",
    "`touch pwned2`",
    "a; touch pwned3",
    "two\nlines",
    "  spaces  ",
    "*",
];

/// Environment values, arguments and the job's name reach the job byte for byte.
async fn literal_values(s: &dyn Scheduler, dir: &str) {
    let name = "svc 'n\"$(x)`y`;z";
    let script = "printf '%s\\0' \"$@\" > args.out; printf '%s' \"$HOSTILE_ENV\" > env.out; printf '%s' \"$ORCH_JOB_NAME\" > name.out";
    let mut argv = vec!["bash", "-c", script, "bash"];
    argv.extend(HOSTILE);
    let mut spec = job(JobKind::Client, name, dir, &argv);
    spec.environment
        .insert("HOSTILE_ENV".into(), HOSTILE.join("|"));
    let id = submit(s, &spec).await;
    let (info, _) = wait_until(s, &id, Duration::from_secs(60), terminal).await;
    assert_eq!(info.state, JobState::Completed, "{info:?}");
    let read = |f: &str| std::fs::read(format!("{}/{f}", spec.job_dir)).expect("output file");
    let expected_args: Vec<u8> = HOSTILE.iter().flat_map(|a| a.bytes().chain([0])).collect();
    assert_eq!(read("args.out"), expected_args);
    assert_eq!(read("env.out"), HOSTILE.join("|").into_bytes());
    assert_eq!(read("name.out"), name.as_bytes());
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !std::path::Path::new(&format!("{}/{f}", spec.job_dir)).exists(),
            "{f} was created"
        );
    }
}

#[tokio::test]
async fn hostile_values_reach_a_slurm_job_literally() {
    literal_values(&slurm(), &work_dir("literal")).await;
}

#[tokio::test]
async fn hostile_values_reach_a_local_job_literally() {
    let dir = work_dir("local-literal");
    literal_values(&LocalScheduler::new(format!("{dir}/.jobs")), &dir).await;
}

#[tokio::test]
async fn querying_200_jobs_is_one_scheduler_command() {
    let shell = ssh();
    let out = shell
        .exec("for i in $(seq 200); do sbatch --parsable --hold --job-name=orch-test-q200 --output=/dev/null --wrap true || exit 1; done")
        .await
        .expect("submits");
    assert!(out.success(), "{out:?}");
    let ids: Vec<JobId> = out
        .stdout_lossy()
        .lines()
        .map(|l| JobId(l.trim().to_owned()))
        .collect();
    assert_eq!(ids.len(), 200);

    let counting = Arc::new(Counting {
        inner: shell.clone(),
        commands: AtomicUsize::new(0),
    });
    let s = Slurm::new(counting.clone());
    let jobs = s.query(&ids).await.expect("queries");
    assert_eq!(
        counting.commands.load(Ordering::SeqCst),
        1,
        "one squeue for 200 jobs"
    );
    assert_eq!(jobs.len(), 200);
    assert!(
        jobs.values()
            .all(|j| j.state == JobState::Pending && j.reason.as_deref() == Some("JobHeldUser"))
    );

    s.cancel(&ids).await.expect("cancels");
    assert_eq!(
        counting.commands.load(Ordering::SeqCst),
        2,
        "one scancel for 200 jobs"
    );
    let jobs = s.query(&ids).await.expect("queries");
    assert!(
        jobs.values().all(|j| j.state == JobState::Cancelled),
        "{:?}",
        jobs.values().next()
    );
    assert_eq!(
        counting.commands.load(Ordering::SeqCst),
        4,
        "one squeue + one batched scontrol"
    );
}

#[tokio::test]
async fn a_later_local_scheduler_finds_and_cancels_earlier_jobs() {
    let dir = work_dir("local-restart");
    let root = format!("{dir}/.jobs");
    let spec = job(
        JobKind::Service,
        "survivor",
        &dir,
        &["bash", "-c", "sleep 300 & wait"],
    );
    let id = {
        let first = LocalScheduler::new(&root);
        let id = submit(&first, &spec).await;
        wait_until(&first, &id, Duration::from_secs(10), |i| {
            i.state.is_running()
        })
        .await;
        id
    };
    // A new orchestrator process: only the records on disk connect it to the job.
    let second = LocalScheduler::new(&root);
    assert_eq!(
        second.query_one(&id).await.expect("found again").state,
        JobState::Running
    );
    assert!(
        second
            .raw_status()
            .await
            .expect("status")
            .contains("orch-test-survivor")
    );
    second
        .cancel(std::slice::from_ref(&id))
        .await
        .expect("cancels");
    let (info, _) = wait_until(&second, &id, Duration::from_secs(10), terminal).await;
    assert_eq!(info.state, JobState::Cancelled);
    // Its whole process group is gone, background children included.
    let left = std::process::Command::new("pgrep")
        .args(["-f", "sleep 300"])
        .output()
        .expect("pgrep");
    let pids = String::from_utf8_lossy(&left.stdout).to_string();
    for pid in pids.lines() {
        let cmdline = std::fs::read_to_string(format!("/proc/{pid}/environ")).unwrap_or_default();
        assert!(
            !cmdline.contains(&spec.job_dir),
            "process {pid} of the job survived"
        );
    }
}

#[tokio::test]
async fn raw_status_lists_the_users_jobs() {
    let dir = work_dir("raw");
    let s = slurm();
    let mut spec = job(JobKind::Client, "listed", &dir, &["true"]);
    spec.sbatch.extra_args.push("--hold".into());
    let id = submit(&s, &spec).await;
    let text = s.raw_status().await.expect("status");
    assert!(
        text.contains(id.as_str()) && text.contains("orch-test-listed"),
        "{text}"
    );
    s.cancel(&[id]).await.expect("cancels");
}
