//! Whole sessions through the real `orchestrator` binary: on the local scheduler, and
//! on the 2-node SLURM cluster of `scripts/test-cluster` reached over its real SSH
//! server (start it first: `scripts/test-cluster up && eval "$(scripts/test-cluster
//! env)"`; `.ci/run` does). The services are real: Debian's redis-server with
//! redis-benchmark as the load, and the binary's own demo HTTP server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the test cluster. Run \
             `scripts/test-cluster up && eval \"$(scripts/test-cluster env)\"` (scripts/test does)"
        )
    })
}

/// A config of its own (state, results and job directories in a temporary directory)
/// for one test.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    cluster: bool,
}

impl Drop for Setup {
    /// A test that fails midway leaves nothing of its own running on the cluster (its
    /// state goes with its directory, and no later `stop` could find its jobs).
    fn drop(&mut self) {
        if self.cluster && std::thread::panicking() {
            let _ = self.run(&["stop", "--all"]);
        }
    }
}

impl Setup {
    fn local() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "state_dir: {d}/state\nresults_dir: {d}/results\nwork_dir: {d}/work\n",
                d = dir.path().display()
            ),
        )
        .expect("config");
        Self {
            dir,
            config,
            cluster: false,
        }
    }

    fn cluster(test: &str) -> Self {
        Self::cluster_with(test, "")
    }

    /// [`Setup::cluster`] with more lines in its config.
    fn cluster_with(test: &str, extra_config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yaml");
        let work = format!(
            "{}/{test}-{}",
            env("ORCH_TEST_WORK_DIR"),
            std::process::id()
        );
        std::fs::write(
            &config,
            format!(
                "hpc:\n  hostname: {host}\n  port: {port}\n  username: {user}\n  key_filename: {key}\n  known_hosts: {known}\n\
                 slurm:\n  partition: cpu\n  time: \"00:10:00\"\n\
                 state_dir: {d}/state\nresults_dir: {d}/results\nwork_dir: {work}\n{extra_config}",
                host = env("ORCH_TEST_SSH_HOST"),
                port = env("ORCH_TEST_SSH_PORT"),
                user = env("ORCH_TEST_SSH_USER"),
                key = env("ORCH_TEST_SSH_KEY"),
                known = env("ORCH_TEST_KNOWN_HOSTS"),
                d = dir.path().display(),
            ),
        )
        .expect("config");
        Self {
            dir,
            config,
            cluster: true,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrator"));
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(root())
            .env_remove("ORCHESTRATOR_CONFIG")
            .env_remove("SSH_KEY_PATH")
            .env_remove("SLURM_ACCOUNT")
            .env_remove("ORCHESTRATOR_LOG_LEVEL")
            .env("NO_COLOR", "1");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// `run RECIPE --json`, which must succeed: its outcome.
    fn run_ok(&self, recipe: &str) -> Value {
        let out = self.run(&["run", recipe, "--json"]);
        assert!(out.status.success(), "run failed: {}", text(&out.stderr));
        json(&out)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts")
    }

    /// `orchestrator demo http-server` on a free port of 127.0.0.1, answering: the
    /// server (stopped when dropped) and its port.
    fn demo_server(&self) -> (KillOnDrop, u16) {
        let port = free_port();
        let server = KillOnDrop(
            self.command(&[
                "demo",
                "http-server",
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        );
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        (server, port)
    }

    fn recipe(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).expect("recipe");
        path.display().to_string()
    }

    fn status(&self) -> Value {
        let out = self.run(&["status", "--all", "--json"]);
        assert!(out.status.success(), "status failed: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json is JSON")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Waits until `f` holds for `status --json`.
    fn wait_status(&self, what: &str, limit: Duration, f: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let status = self.status();
            if f(&status) {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "timed out waiting for {what}; last status: {status:#}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Process groups of local jobs that still have a process.
    fn live_local_jobs(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.state_dir().join("local-jobs")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("pid")).ok())
            .map(|pid| pid.trim().to_owned())
            .filter(|pid| {
                Command::new("kill")
                    .args(["-0", "--", &format!("-{pid}")])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .collect()
    }

    fn database(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state_dir().join("state.db")).expect("state.db opens")
    }
}

/// A spawned orchestrator that a failing test does not leave behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A job submitted by a test, cancelled however the test ends.
struct ScancelOnDrop(String);

impl Drop for ScancelOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("scancel").arg(&self.0).status();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// A port for a service on a cluster node, of this test run's own (so nothing left by
/// another run is in the way); `salt` keeps the cluster tests that run at once apart.
/// The nodes have network namespaces of their own, so this is not a local port.
fn node_port(salt: u32) -> u32 {
    20_000 + (std::process::id() + salt) % 20_000
}

/// A port free now for a service to listen on. It is drawn from 20000–32767, below
/// Linux's ephemeral range (32768–60999): a port the kernel hands out for `bind(0)` is
/// also what other tests' outgoing connections draw from, and one of them could take
/// it before the service binds.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()) << 32
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    loop {
        let mut x = seed
            ^ DRAWS
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 29;
        let port = 20_000 + u16::try_from(x % 12_768).expect("below 12768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
}

/// Names of the cluster's jobs whose name contains `needle` (squeue on this machine).
fn squeue_names(needle: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["--noheader", "--format=%j|%T"])
        .output()
        .expect("squeue runs");
    text(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn jobs_of<'a>(outcome: &'a Value, kind: &str) -> Vec<&'a Value> {
    outcome["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["kind"] == kind)
        .collect()
}

fn redis_recipe(port: u16, extra_service: &str) -> String {
    format!(
        r#"name: redis-get-set
services:
  - name: redis
    type: redis
    command: redis-server
    args: ["--port", {port}, "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
    ports: [{port}]
    resources:
      cpus: 1
      slurm: {{time: "00:05:00"{extra_service}}}
    health_check: {{interval: 1s, timeout: 2s, retries: 20}}
clients:
  - name: redis-benchmark
    command: sh
    args: ["-c", "redis-benchmark -h \"$TARGET_HOST\" -p \"$TARGET_PORT\" -n 5000 -c 5 -t get,set --csv"]
    target_service: {{name: redis}}
    resources:
      cpus: 1
      slurm: {{time: "00:05:00"}}
"#
    )
}

/// Checks a finished Redis session: completed, the client's CSV fetched, a report.
fn assert_redis_session(outcome: &Value) {
    assert_eq!(outcome["state"], "completed", "{outcome:#}");
    let client = jobs_of(outcome, "client")[0];
    assert_eq!(client["state"], "COMPLETED");
    assert_eq!(client["exit_code"], 0);
    assert_eq!(
        jobs_of(outcome, "service")[0]["state"],
        "CANCELLED",
        "the service was stopped"
    );
    let csv =
        Path::new(outcome["results_dir"].as_str().unwrap()).join("redis-benchmark/stdout.log");
    let csv = std::fs::read_to_string(&csv).expect("client output fetched");
    assert!(
        csv.contains("\"SET\",") && csv.contains("\"GET\","),
        "redis-benchmark output: {csv}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().expect("report path"))
            .expect("report"),
    )
    .expect("the report is JSON");
    assert_eq!(report["session"]["state"], "completed");
    assert_eq!(report["jobs"].as_array().unwrap().len(), 2);
}

#[test]
fn redis_session_on_the_cluster_uses_two_nodes_and_leaves_nothing_running() {
    let setup = Setup::cluster("redis-session");
    // The service on node1 and the client on node2, pinned (`--exclusive` would make
    // two such tests at once hold both nodes and starve each other's clients).
    let recipe = setup.recipe(
        "redis.yaml",
        &redis_recipe(6379, ", extra_args: [\"--nodelist=node1\"]").replace(
            "slurm: {time: \"00:05:00\"}",
            "slurm: {time: \"00:05:00\", extra_args: [\"--nodelist=node2\"]}",
        ),
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    let outcome = json(&out);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    assert_redis_session(&outcome);
    let service_node = jobs_of(&outcome, "service")[0]["node"]
        .as_str()
        .unwrap()
        .to_owned();
    let client_node = jobs_of(&outcome, "client")[0]["node"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(
        service_node, client_node,
        "service and client on different nodes"
    );
    let session = outcome["session_id"].as_str().unwrap();
    assert!(
        squeue_names(session).is_empty(),
        "jobs left: {:?}",
        squeue_names(session)
    );
    // Progress went to stderr as timestamped lines (no terminal here).
    let progress = text(&out.stderr);
    assert!(
        progress.contains("service redis: healthy on "),
        "{progress}"
    );
}

/// A service and a client in containers on the cluster, in the original tool's layout:
/// images built from a source with build commands (a definition file), rebuilt, with
/// bind mounts. Apptainer cannot be installed here: the config's `containers.runtime`
/// is a **fake** (`orchestrator-slurm/tests/fakes/apptainer`) that logs what it is
/// asked and runs the command natively, so the real SLURM path is what is tested.
#[test]
fn containers_are_built_bound_and_run_on_the_cluster() {
    let fake = root().join("orchestrator-slurm/tests/fakes/apptainer");
    let setup = Setup::cluster_with(
        "containers",
        &format!("containers:\n  runtime: {}\n", fake.display()),
    );
    let work = env("ORCH_TEST_WORK_DIR");
    let images = format!("{work}/images-{}", std::process::id());
    let log = format!("{images}/apptainer.log");
    let port = node_port(7);
    let recipe = setup.recipe(
        "containers.yaml",
        &format!(
            "service:\n  name: web\n  command: python3\n  args: [-m, http.server, \"{port}\", --directory, \"{images}\"]\n\
             \x20 container:\n    docker_source: docker://python:3.11-slim\n    image_path: {images}/web.sif\n    force_rebuild: true\n    bind_mounts: [\"{images}:/srv\"]\n    build_commands: [\"pip install --no-cache-dir requests\"]\n\
             \x20 environment: {{FAKE_APPTAINER_LOG: {log}}}\n  ports: [{port}]\n  health_check: {{endpoint: \"tcp://localhost:{port}\", interval: 1, retries: 30}}\n\
             ---\n\
             client:\n  name: fetch\n  command: curl\n  args: [-sS, \"http://${{TARGET_HOST}}:${{TARGET_PORT}}/\"]\n\
             \x20 container:\n    docker_source: docker://curlimages/curl\n    image_path: {images}/curl.sif\n    build_commands: [\"apk add --no-cache jq\"]\n\
             \x20 environment: {{FAKE_APPTAINER_LOG: {log}}}\n  target_service: {{name: web}}\n"
        ),
    );
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(format!("{images}/marker.txt"), "served from the bind mount").unwrap();
    let outcome = setup.run_ok(&recipe);
    assert_eq!(outcome["state"], "completed", "{outcome:#}");
    let results = Path::new(outcome["results_dir"].as_str().unwrap());
    let fetched = std::fs::read_to_string(results.join("fetch/stdout.log")).unwrap();
    // The service's answer reached the client on the other job: python's listing of
    // the directory (the fake runs natively, so it cannot mount; the bind is in its
    // log).
    assert!(fetched.contains("marker.txt"), "{fetched}");
    let logged = std::fs::read_to_string(&log).unwrap();
    for line in [
        format!("build force=1 image={images}/web.sif source=").as_str(),
        "  def: Bootstrap: docker",
        "  def: From: python:3.11-slim",
        "  def:     pip install --no-cache-dir requests",
        "  def: From: curlimages/curl",
        "  def:     apk add --no-cache jq",
        format!("exec --bind {images}:/srv").as_str(),
    ] {
        assert!(logged.contains(line), "{line:?} in {logged}");
    }
    // The client's image did not exist, so it was built, without --force.
    assert!(
        logged.contains(&format!("build force=0 image={images}/curl.sif")),
        "{logged}"
    );
    let session = outcome["session_id"].as_str().unwrap();
    assert!(squeue_names(session).is_empty());
    let _ = std::fs::remove_dir_all(&images);
}

/// The original tool's API document's complete example (`recipes/original/seed.yaml`)
/// runs end to end on the test cluster, changed only where the test cluster is smaller
/// than the example's: no GPUs (its `gpu` and `gres` removed), 1 GB instead of 16 GB and
/// 8 GB (a node has 8,000 MB), a 3 s load instead of 300 s, a health check every 1 s
/// instead of 30 s. Its images and Ollama are **fakes**: the config's
/// `containers.runtime` is `orchestrator-slurm/tests/fakes/apptainer`, whose stand-in
/// `ollama_latest.sif` puts `tests/fakes/ollama` on PATH with the example's model.
/// The service has no `type` (its command makes it the ollama driver's), its
/// `/api/health` is probed as `/api/tags`, and `workload_type: llm_inference` runs the
/// `ollama` workload, whose TTFT and tokens/s reach the report.
#[test]
fn the_api_documents_complete_example_runs_on_the_cluster() {
    let fake_apptainer = root().join("orchestrator-slurm/tests/fakes/apptainer");
    let work = env("ORCH_TEST_WORK_DIR");
    let images = format!("{work}/seed-images-{}", std::process::id());
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(
        format!("{images}/ollama_latest.sif"),
        format!(
            "PATH={}\nENV FAKE_OLLAMA_MODELS=llama2:7b\n",
            root().join("orchestrator-cli/tests/fakes").display()
        ),
    )
    .unwrap();
    std::fs::write(format!("{images}/benchmark_tools.sif"), "").unwrap();
    let setup = Setup::cluster_with(
        "seed",
        &format!(
            "containers:\n  runtime: {}\n  base_path: {images}\n",
            fake_apptainer.display()
        ),
    );
    let mut seed = std::fs::read_to_string(root().join("recipes/original/seed.yaml")).unwrap();
    for (from, to) in [
        ("    gpu: 1\n", ""),
        ("      gres: \"gpu:1\"\n", ""),
        ("    memory: \"16GB\"", "    memory: \"1GB\""),
        ("    memory: \"8GB\"", "    memory: \"1GB\""),
        ("  duration: 300  # seconds", "  duration: 3"),
        ("    interval: 30\n", "    interval: 1\n"),
        ("    retries: 3\n", "    retries: 20\n"),
    ] {
        assert!(seed.contains(from), "the example has {from:?}");
        seed = seed.replacen(from, to, 1);
    }
    let recipe = setup.recipe("seed.yaml", &seed);
    let out = setup.run(&["run", &recipe, "--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    assert!(
        stderr.contains("warning: service `ollama`: Ollama serves no `/api/health`"),
        "{stderr}"
    );
    let outcome = json(&out);
    assert_eq!(outcome["state"], "completed", "{outcome:#}");
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    assert_eq!(
        report["service_versions"]["ollama"], "0.0.0-fake",
        "{report:#}"
    );
    assert_eq!(
        report["runs"][0]["client"], "ollama_benchmark",
        "{report:#}"
    );
    let summary = &report["runs"][0]["summary"];
    assert!(
        summary["requests_completed"].as_u64().unwrap() > 0,
        "{summary:#}"
    );
    assert_eq!(summary["requests_failed"], 0, "{summary:#}");
    assert!(
        summary["ttft_ms"]["p50"].as_f64().is_some_and(|t| t > 0.0),
        "{summary:#}"
    );
    assert!(
        summary["output_tokens_per_second"]
            .as_f64()
            .is_some_and(|t| t > 0.0),
        "{summary:#}"
    );
    let markdown = text(&setup.run(&["report", &session]).stdout);
    assert!(markdown.contains("TTFT"), "{markdown}");
    assert!(squeue_names(&session).is_empty());
    let _ = std::fs::remove_dir_all(&images);
}

/// The original tool's Redis service and `redis_benchmark` client, in its layout, with
/// one line added (`workload_type: redis`): the client runs on this tool's engine, its
/// parameters read under the original's names (`num_operations` → `requests`,
/// `clients` → `concurrency`, `native_tests` → one run per operation), and the requests
/// it reports agree with what Redis itself counted (`INFO stats`).
#[test]
fn the_original_redis_client_runs_on_the_engine_and_agrees_with_redis() {
    let setup = Setup::cluster("redis-original");
    let port = node_port(11);
    let recipe = setup.recipe(
        "redis-original.yaml",
        &format!(
            "service:\n  name: redis\n  command: redis-server\n  args: [\"--port\", \"{port}\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\", \"--save\", \"\"]\n\
             \x20 resources:\n    time: \"00:10:00\"\n    partition: cpu\n    mem: \"1GB\"\n  ports: [{port}]\n\
             \x20 health_check:\n    endpoint: \"redis://localhost:{port}\"\n    timeout: 5\n    retries: 20\n    interval: 1\n\
             ---\n\
             client:\n  name: redis_benchmark\n  workload_type: redis\n  resources:\n    partition: cpu\n    time: \"00:10:00\"\n    mem: \"1GB\"\n\
             \x20 parameters:\n    num_operations: 2000\n    clients: 4\n    value_size: 64\n    pipeline: 1\n    native_tests: \"ping,set,get\"\n    wait_for_service: 60\n\
             \x20 target_service:\n    name: redis\n    port: {port}\n    health_check_endpoint: \"redis://localhost:{port}\"\n\
             \x20 script:\n    name: \"redis_benchmark.py\"\n    local_path: \"benchmark_scripts/\"\n    remote_path: \"$HOME/benchmark_scripts/\"\n"
        ),
    );
    let verbose = setup.run(&["-v", "validate", &recipe]);
    let said = text(&verbose.stdout);
    assert!(verbose.status.success(), "{said}{}", text(&verbose.stderr));
    for note in [
        "`num_operations` read as `requests`",
        "`clients` read as `concurrency`",
        "`native_tests` read as `op`",
        "`wait_for_service` is not needed",
        "its `script:` block is not run",
    ] {
        assert!(said.contains(note), "{note}: {said}");
    }
    let (session, processed) = run_and_count_redis_commands(&setup, &recipe, port);
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    let runs = report["runs"].as_array().unwrap();
    let ops: Vec<&str> = runs
        .iter()
        .map(|r| r["parameters"]["op"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(ops, ["ping", "set", "get"], "{report:#}");
    let completed: u64 = runs
        .iter()
        .map(|r| {
            assert_eq!(r["summary"]["requests_failed"], 0, "{r:#}");
            r["summary"]["requests_completed"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(completed, 3 * 2000);
    // Beyond the requests: the health check's PINGs, one per attempt (1 when measured).
    let extra = processed - completed;
    assert!(
        (1..=5).contains(&extra),
        "Redis counted {processed} commands, the client {completed}"
    );
}

#[test]
fn redis_session_on_the_local_scheduler() {
    assert!(!Setup::local().cluster);
    let setup = Setup::local();
    let recipe = setup.recipe("redis.yaml", &redis_recipe(free_port(), ""));
    let outcome = setup.run_ok(&recipe);
    assert_redis_session(&outcome);
    assert_eq!(jobs_of(&outcome, "service")[0]["node"], "localhost");
    assert!(
        setup.live_local_jobs().is_empty(),
        "processes left: {:?}",
        setup.live_local_jobs()
    );
}

/// `${NAME}` in a recipe's `args` is the job's environment variable, filled in without
/// being parsed again: a hostile value arrives as it is and runs nothing; `$NAME` and
/// `$${NAME}` stay as written. The service's port comes from its own environment.
#[test]
fn references_in_args_expand_from_the_jobs_environment_and_only_once() {
    let setup = Setup::local();
    let port = free_port();
    let hostile = "$(touch pwned) `touch pwned2` 'q' \\\"dq\\\" ${SECRET} *";
    let recipe = setup.recipe(
        "expand.yaml",
        &format!(
            "services:\n  - name: web\n    command: python3\n    args: [-m, http.server, \"${{WEB_PORT}}\", --bind, 127.0.0.1]\n    environment: {{WEB_PORT: \"{port}\"}}\n    ports: [{port}]\n\
             clients:\n  - name: show\n    command: printf\n    args: [\"%s\\\\n\", \"--secret=${{SECRET}}\", \"--target=${{TARGET_HOST}}:${{TARGET_PORT}}\", \"--original=${{TARGET_SERVICE_HOST}}\", \"$${{SECRET}}\", \"$SECRET\"]\n    environment: {{SECRET: \"{hostile}\"}}\n"
        ),
    );
    let outcome = setup.run_ok(&recipe);
    let results = Path::new(outcome["results_dir"].as_str().unwrap());
    let stdout = std::fs::read_to_string(results.join("show/stdout.log")).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let secret = hostile.replace("\\\"", "\"");
    assert_eq!(
        lines,
        [
            format!("--secret={secret}").as_str(),
            format!("--target=localhost:{port}").as_str(),
            "--original=localhost",
            "${SECRET}",
            "$SECRET",
        ],
        "{stdout}"
    );
    // The jobs ran in directories under the test's own.
    let found: Vec<_> = walk(setup.dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pwned"))
        })
        .collect();
    assert!(found.is_empty(), "a value ran as a command: {found:?}");
}

/// A client in the original tool's layout that has only a `script:` block: the script
/// (`benchmark_scripts/http_benchmark.py`, where `local_path` says, relative to the
/// directory the orchestrator runs in) is uploaded to its `remote_path` and run with
/// `--endpoint` and each parameter as a flag, against the service.
#[test]
fn an_original_clients_script_is_uploaded_and_run_with_its_parameters() {
    let setup = Setup::local();
    let port = free_port();
    let remote = setup.dir.path().join("remote-scripts");
    let recipe = setup.dir.path().join("web.yaml");
    std::fs::write(
        &recipe,
        format!(
            "service:\n  name: web\n  command: python3\n  args: [-m, http.server, \"{port}\", --bind, 127.0.0.1]\n  ports: [{port}]\n\
             ---\n\
             client:\n  name: web_benchmark\n  target_service:\n    name: web\n    port: {port}\n\
             \x20 parameters:\n    num_requests: 20\n    wait_for_service: 30\n\
             \x20 script:\n    name: \"http_benchmark.py\"\n    local_path: \"benchmark_scripts/\"\n    remote_path: \"{}/\"\n",
            remote.display()
        ),
    )
    .unwrap();
    let recipe = recipe.display().to_string();
    let verbose = setup.run(&["-v", "validate", &recipe]);
    assert!(
        text(&verbose.stdout).contains("its `script:` block runs as `python3"),
        "{}",
        text(&verbose.stdout)
    );
    let outcome = setup.run_ok(&recipe);
    let results = Path::new(outcome["results_dir"].as_str().unwrap());
    let stdout = std::fs::read_to_string(results.join("web_benchmark/stdout.log")).unwrap();
    let summary: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(
        summary["endpoint"],
        format!("http://localhost:{port}"),
        "{summary}"
    );
    assert_eq!(
        (summary["requests"].as_u64(), summary["failures"].as_u64()),
        (Some(20), Some(0))
    );
    assert_eq!(
        summary["argv"],
        serde_json::json!([
            format!("--endpoint=http://localhost:{port}"),
            "--num-requests=20",
            "--wait-for-service=30"
        ])
    );
    assert_eq!(
        std::fs::read(remote.join("http_benchmark.py")).unwrap(),
        std::fs::read(root().join("benchmark_scripts/http_benchmark.py")).unwrap(),
        "uploaded as it is"
    );
    // Once per content: a second session finds it there.
    setup.run_ok(&recipe);
    let uploads: i64 = setup
        .database()
        .query_row(
            "SELECT count(*) FROM events WHERE action = 'script.upload'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(uploads, 1);
}

/// Runs `recipe` keeping its Redis service (on `port`) up, asks that Redis how many
/// commands it processed (`INFO stats`), then stops the session: its id and the count.
fn run_and_count_redis_commands(setup: &Setup, recipe: &str, port: u32) -> (String, u64) {
    let out = setup.run(&["run", recipe, "--keep-services", "--json"]);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let outcome = json(&out);
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let node = jobs_of(&outcome, "service")[0]["node"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = Command::new("redis-cli")
        .args(["-h", &node, "-p", &port.to_string(), "INFO", "stats"])
        .output()
        .expect("redis-cli runs");
    let _ = setup.run(&["stop", "--session", &session]);
    let info = text(&info.stdout);
    let processed = info
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no total_commands_processed in {info}"));
    (session, processed)
}

/// The original tool's Redis service and `redis_benchmark` client in its layout, the
/// client running its script (`benchmark_scripts/redis_benchmark.py`, which wraps
/// `redis-benchmark` and writes `results/summary.json`) on the test cluster: the report's
/// request count agrees with Redis's own `INFO stats`.
#[test]
fn the_original_redis_client_script_runs_and_agrees_with_redis() {
    let setup = Setup::cluster("redis-script");
    let port = node_port(13);
    let remote = format!(
        "{}/scripts-{}",
        env("ORCH_TEST_WORK_DIR"),
        std::process::id()
    );
    let recipe = setup.recipe(
        "redis-script.yaml",
        &format!(
            "service:\n  name: redis\n  command: redis-server\n  args: [\"--port\", \"{port}\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\", \"--save\", \"\"]\n\
             \x20 ports: [{port}]\n  health_check: {{endpoint: \"redis://localhost:{port}\", interval: 1, retries: 20}}\n\
             ---\n\
             client:\n  name: redis_benchmark\n\
             \x20 parameters:\n    num_operations: 1000\n    clients: 4\n    value_size: 64\n    pipeline: 1\n    native_tests: \"set,get\"\n\
             \x20 target_service:\n    name: redis\n    port: {port}\n    health_check_endpoint: \"redis://localhost:{port}\"\n\
             \x20 script:\n    name: \"redis_benchmark.py\"\n    local_path: \"benchmark_scripts/\"\n    remote_path: \"{remote}/\"\n"
        ),
    );
    let (session, processed) = run_and_count_redis_commands(&setup, &recipe, port);
    let _ = std::fs::remove_dir_all(&remote);
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{report:#}");
    let completed = runs[0]["summary"]["requests_completed"].as_u64().unwrap();
    assert_eq!(completed, 2 * 1000, "{report:#}");
    // Beyond the requests: redis-benchmark's two `CONFIG GET`s per test it runs, and
    // the health check's PINGs.
    let extra = processed - completed;
    assert!(
        (2 * 2 + 1..=2 * 2 + 5).contains(&extra),
        "Redis counted {processed} commands, the script {completed}"
    );
}

/// A service's `setup_script` runs on its node once it is healthy and before any client
/// starts, with the job's environment (a hostile value is data, not code); one that
/// fails stops the session with its output, and no client is submitted.
#[test]
fn a_setup_script_runs_once_the_service_is_healthy_and_its_failure_stops_the_session() {
    let setup = Setup::local();
    let port = free_port();
    let hostile = "hello $(touch pwned) `touch pwned2` 'q'";
    let recipe = |script: &str| {
        format!(
            "services:\n  - name: web\n    command: python3\n    args: [-m, http.server, \"{port}\", --bind, 127.0.0.1, --directory, \"${{ORCH_JOB_DIR}}\"]\n    ports: [{port}]\n    environment: {{GREETING: \"{hostile}\"}}\n    setup_script: |\n{script}\n\
             clients:\n  - name: fetch\n    command: curl\n    args: [-sS, \"http://${{TARGET_HOST}}:${{TARGET_PORT}}/greeting.txt\"]\n"
        )
    };
    let ok = setup.recipe(
        "setup-ok.yaml",
        &recipe("      test -e \"$ORCH_JOB_DIR/healthy\"\n      printf '%s' \"${GREETING}\" > \"$ORCH_JOB_DIR/greeting.txt\""),
    );
    let outcome = setup.run_ok(&ok);
    let results = Path::new(outcome["results_dir"].as_str().unwrap());
    let fetched = std::fs::read_to_string(results.join("fetch/stdout.log")).unwrap();
    assert_eq!(fetched, hostile, "the client saw what the setup wrote");
    let found: Vec<_> = walk(setup.dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("pwned"))
        })
        .collect();
    assert!(found.is_empty(), "a value ran as a command: {found:?}");

    let failing = setup.recipe(
        "setup-fails.yaml",
        &recipe("      echo \"cannot configure the service\" >&2\n      exit 3"),
    );
    let out = setup.run(&["run", &failing, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("service::setup"), "{stderr}");
    assert!(stderr.contains("exited with status 3"), "{stderr}");
    assert!(stderr.contains("cannot configure the service"), "{stderr}");
    let outcome = json(&out);
    assert!(
        jobs_of(&outcome, "client").is_empty(),
        "no client was submitted"
    );
    assert!(setup.live_local_jobs().is_empty());
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_local_demo_recipe_runs_with_the_original_recipe_flag() {
    let setup = Setup::local();
    let demo = std::fs::read_to_string(root().join("recipes/complete/local-demo.yaml")).unwrap();
    let port = free_port().to_string();
    let recipe = setup.recipe("demo.yaml", &demo.replace("18787", &port));
    let out = setup.run(&["--recipe", &recipe]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(": completed\n"), "{stdout}");
    // The client is the http workload: its summary, with percentiles, and its
    // expectation that nothing fails.
    assert!(stdout.contains("expectations: 1 of 1 met"), "{stdout}");
    let measured: f64 = stdout
        .split(" completed, 0 failed in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no failure-free summary line: {stdout}"));
    assert!((3.0..3.5).contains(&measured), "3 s measured: {stdout}");
    assert!(stdout.contains("P99.9"), "{stdout}");
    assert!(stdout.contains("report: "), "{stdout}");
    assert!(setup.live_local_jobs().is_empty());
}

/// Issue #16: `ORCHESTRATOR_LOG_LEVEL=DEBUG` shows the scheduler's commands and every
/// state change on stderr, the default shows none of it, the session's directory keeps
/// a private debug log, and a secret of the recipe's environment is in neither.
#[test]
fn debug_logs_show_scheduler_commands_and_state_changes_and_never_a_secret() {
    let setup = Setup::local();
    let demo = std::fs::read_to_string(root().join("recipes/complete/local-demo.yaml")).unwrap();
    let port = free_port().to_string();
    let secret = "s3cr3t-token-4711";
    let with_secret = demo.replace("18787", &port).replacen(
        &format!("    ports: [{port}]\n"),
        &format!("    ports: [{port}]\n    environment:\n      API_TOKEN: {secret}\n"),
        1,
    );
    assert!(with_secret.contains(secret));
    let recipe = setup.recipe("demo.yaml", &with_secret);
    let out = setup
        .command(&["run", &recipe, "--json"])
        .env("ORCHESTRATOR_LOG_LEVEL", "DEBUG")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for wanted in [
        "orchestrator::scheduler: local submit",
        "orchestrator::scheduler: local query",
        "orchestrator::state: job.state",
        "-> RUNNING",
        "orchestrator::state: service.running",
        "orchestrator::state: client.completed",
        "orchestrator::state: session.completed",
    ] {
        assert!(stderr.contains(wanted), "no `{wanted}` in:\n{stderr}");
    }
    assert!(
        !stderr.contains(secret),
        "the secret reached stderr:\n{stderr}"
    );
    let session = json(&out)["session_id"].as_str().unwrap().to_owned();
    let log = setup
        .dir
        .path()
        .join("results")
        .join(&session)
        .join("orchestrator.log");
    let logged = std::fs::read_to_string(&log).expect("the session keeps its log");
    assert!(
        logged.contains("orchestrator::state: job.state"),
        "{logged}"
    );
    assert!(!logged.contains(secret), "the secret reached the log file");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the log is private to the user");

    // The default level shows no debug or info record on stderr, yet keeps the file.
    let out = setup.run(&["run", &recipe, "--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("orchestrator::"),
        "the default logs nothing:\n{stderr}"
    );
    let session = json(&out)["session_id"].as_str().unwrap().to_owned();
    let log = setup
        .dir
        .path()
        .join("results")
        .join(&session)
        .join("orchestrator.log");
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("session.running")
    );
}

#[test]
fn a_service_whose_health_check_never_passes_fails_the_session_cleanly() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "deaf.yaml",
        &format!(
            "name: deaf\nservices:\n  - name: deaf\n    command: sleep\n    args: [300]\n    ports: [{port}]\n    health_check: {{interval: 1s, timeout: 1s, retries: 3}}\nclients:\n  - name: never\n    command: 'true'\n"
        ),
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("service::health_check"), "{stderr}");
    assert!(
        stderr.contains(&format!("3 checks of TCP localhost:{port} failed")),
        "{stderr}"
    );
    assert!(
        stderr.contains("Connection refused"),
        "the last response is shown: {stderr}"
    );
    let outcome = json(&out);
    assert_eq!(outcome["state"], "failed");
    assert_eq!(jobs_of(&outcome, "service")[0]["state"], "CANCELLED");
    assert!(
        jobs_of(&outcome, "client").is_empty(),
        "no client was submitted"
    );
    assert!(setup.live_local_jobs().is_empty());
}

fn ollama_recipe(port: u16, model: &str) -> String {
    // FAKE: `tests/fakes/ollama` stands in for Ollama, which cannot be installed here.
    let fake = root().join("orchestrator-cli/tests/fakes/ollama");
    format!(
        "name: ollama-pull\nservices:\n  - name: llm\n    type: ollama\n    command: {fake}\n    ports: [{port}]\n    options: {{models: [{model}]}}\n    health_check: {{endpoint: /api/tags, interval: 1s, timeout: 2s, retries: 30}}\nclients:\n  - name: tags\n    command: sh\n    args: ['-c', 'curl -sS \"$TARGET_URL/api/tags\"']\n    target_service: {{name: llm}}\n",
        fake = fake.display()
    )
}

#[test]
fn an_ollama_service_is_healthy_only_once_its_models_are_pulled() {
    let setup = Setup::local();
    let recipe = setup.recipe("ollama.yaml", &ollama_recipe(free_port(), "smollm2:135m"));
    let outcome = setup.run_ok(&recipe);
    let results = Path::new(outcome["results_dir"].as_str().unwrap());
    // The fake's pull takes 2 s while /api/tags answers at once: the client, started
    // when the service was healthy, already sees the model.
    let tags = std::fs::read_to_string(results.join("tags/stdout.log")).unwrap();
    assert_eq!(
        tags.trim(),
        r#"{"models":[{"name":"smollm2:135m","model":"smollm2:135m","size":1}]}"#
    );
    // The driver asked the server its version for the report.
    let report = json(&setup.run(&["report", "--format", "json"]));
    assert_eq!(report["service_versions"]["llm"], "0.0.0-fake");
    let log = std::fs::read_to_string(results.join("llm/stderr.log")).unwrap();
    assert!(log.contains("orchestrator: pulling smollm2:135m"), "{log}");
    assert!(
        log.contains("orchestrator: models ready: smollm2:135m"),
        "{log}"
    );
    assert!(setup.live_local_jobs().is_empty());
}

#[test]
fn an_ollama_model_that_cannot_be_pulled_stops_the_session_with_its_name() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "ollama.yaml",
        &ollama_recipe(free_port(), "missing-model:1b"),
    );
    let out = setup.run(&["run", &recipe]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("service::startup"), "{stderr}");
    assert!(
        stderr.contains("orchestrator: error: cannot pull missing-model:1b"),
        "the log tail is shown: {stderr}"
    );
    assert!(setup.live_local_jobs().is_empty());
}

#[test]
fn a_service_that_exits_while_starting_is_a_startup_error_with_its_log() {
    let setup = Setup::cluster("startup-exit");
    let recipe = setup.recipe(
        "crash.yaml",
        "name: crash\nservices:\n  - name: crash\n    command: sh\n    args: ['-c', 'echo fatal: cannot bind port 7000 >&2; exit 3']\n    ports: [7000]\nclients:\n  - name: never\n    command: 'true'\n",
    );
    let out = setup.run(&["run", &recipe]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("service::startup"), "{stderr}");
    assert!(stderr.contains("ended FAILED with exit code 3"), "{stderr}");
    assert!(
        stderr.contains("fatal: cannot bind port 7000"),
        "the log tail is shown: {stderr}"
    );
}

#[test]
fn a_missing_container_runtime_is_reported_with_the_log_tail() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "sif.yaml",
        "name: sif\nservices:\n  - name: boxed\n    container_image: /nonexistent/ollama.sif\n    command: ollama\n    args: [serve]\n    ports: [11434]\n",
    );
    let out = setup.run(&["run", &recipe]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("exit code 127"), "{stderr}");
    assert!(
        stderr.contains("\"apptainer\" is not installed")
            || stderr.contains("apptainer is not installed"),
        "{stderr}"
    );
}

#[test]
fn a_bad_partition_fails_at_submission_and_nothing_runs() {
    let setup = Setup::cluster("bad-partition");
    let recipe = setup.recipe(
        "bad.yaml",
        "name: bad\nservices:\n  - name: nowhere\n    command: sleep\n    args: [60]\n    resources: {slurm: {partition: no-such-partition}}\n",
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("slurm::job_submission"), "{stderr}");
    assert!(
        stderr.contains("invalid partition"),
        "sbatch's own words: {stderr}"
    );
    let outcome = json(&out);
    assert_eq!(outcome["state"], "failed");
    assert_eq!(jobs_of(&outcome, "service")[0]["state"], "SUBMIT_FAILED");
}

#[test]
fn dry_run_prints_the_scripts_and_submits_nothing() {
    let setup = Setup::cluster("dry-run");
    let recipe = root().join("recipes/complete/redis.yaml");
    let out = setup.run(&["run", "--dry-run", recipe.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("#!/bin/bash").count(), 2, "{stdout}");
    assert!(stdout.contains("#SBATCH --partition=cpu"));
    assert!(stdout.contains("export TARGET_HOST=SERVICE_NODE"));
    assert!(text(&out.stderr).contains("nothing was submitted"));
    assert_eq!(setup.status()["sessions"].as_array().unwrap().len(), 0);
}

#[test]
fn ctrl_c_cancels_every_job_of_the_session() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "long.yaml",
        &format!(
            "name: long\nservices:\n  - name: web\n    command: orchestrator\n    args: [demo, http-server, --bind, 127.0.0.1, --port, {port}]\n    ports: [{port}]\n    health_check: {{endpoint: /health, interval: 1s, retries: 20}}\nclients:\n  - name: sleeper\n    command: sleep\n    args: [120]\n"
        ),
    );
    let mut child = KillOnDrop(setup.spawn(&["run", &recipe]));
    setup.wait_status("the client to run", Duration::from_secs(60), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["status"] == "running"))
    });
    let started = Instant::now();
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(stderr.contains("interrupted (Ctrl-C)"), "{stderr}");
    let status = setup.status();
    assert_eq!(status["active_jobs"], 0, "{status:#}");
    assert_eq!(status["sessions"][0]["state"], "cancelled");
    assert_eq!(status["clients"]["clients"][0]["status"], "cancelled");
    assert!(
        setup.live_local_jobs().is_empty(),
        "processes left: {:?}",
        setup.live_local_jobs()
    );
}

#[test]
fn after_sigkill_status_still_shows_the_jobs_and_stop_all_cancels_only_ours() {
    let setup = Setup::cluster("sigkill");
    // A job of the same user whose name merely looks like the orchestrator's.
    let foreign = Command::new("sbatch")
        .args([
            "--parsable",
            "--partition=cpu",
            "--job-name=orch-ses-00000000-redis",
            "--output=/dev/null",
            "--wrap=sleep 300",
        ])
        .output()
        .expect("sbatch runs");
    assert!(foreign.status.success(), "{}", text(&foreign.stderr));
    let foreign_id = text(&foreign.stdout).trim().to_owned();
    let _foreign_guard = ScancelOnDrop(foreign_id.clone());
    let port = node_port(0);
    let recipe = setup.recipe(
        "long.yaml",
        &format!("name: long\nservices:\n  - name: kv\n    command: redis-server\n    args: [--port, {port}, --save, '']\n    ports: [{port}]\nclients:\n  - name: sleeper\n    command: sleep\n    args: [600]\n"),
    );
    let mut child = KillOnDrop(setup.spawn(&["run", &recipe]));
    setup.wait_status("the client to run", Duration::from_secs(90), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    child.0.kill().expect("SIGKILL");
    child.0.wait().unwrap();

    let status = setup.status();
    assert_eq!(
        status["active_jobs"], 2,
        "both jobs are still tracked: {status:#}"
    );
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(squeue_names(&session).len(), 2, "and really run");
    assert_eq!(status["services"]["services"][0]["job_state"], "RUNNING");

    let refused = setup.run(&["clear-state"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("2 tracked job(s) are still active"),
        "{}",
        text(&refused.stderr)
    );

    let stop = setup.run(&["stop", "--all"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    assert!(
        text(&stop.stdout)
            .contains("cancelled 2 job(s): 1 service(s), 1 client(s) in 1 session(s)")
    );
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
    let foreign_state = Command::new("squeue")
        .args(["--noheader", "--format=%T", &format!("--jobs={foreign_id}")])
        .output()
        .expect("squeue runs");
    let foreign_state = text(&foreign_state.stdout);
    assert!(
        matches!(foreign_state.trim(), "RUNNING" | "PENDING"),
        "the look-alike job was not touched: {foreign_state}"
    );

    let status = setup.status();
    assert_eq!(status["active_jobs"], 0);
    assert_eq!(status["sessions"][0]["state"], "cancelled");
    let cleared = setup.run(&["clear-state"]);
    assert!(cleared.status.success());
    assert_eq!(
        text(&cleared.stdout),
        "cleared 1 service(s) and 1 client(s)\n"
    );
    assert_eq!(setup.status()["sessions"].as_array().unwrap().len(), 0);
}

#[test]
fn two_sessions_at_once_with_status_in_a_loop_lose_nothing() {
    let setup = Setup::local();
    let recipes: Vec<String> = (0..2)
        .map(|i| setup.recipe(&format!("redis{i}.yaml"), &redis_recipe(free_port(), "")))
        .collect();
    let runs: Vec<Child> = recipes
        .iter()
        .map(|r| setup.spawn(&["run", r, "--json"]))
        .collect();
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut runs: Vec<Option<Child>> = runs.into_iter().map(Some).collect();
    let mut outputs = Vec::new();
    while runs.iter().any(Option::is_some) {
        assert!(Instant::now() < deadline, "sessions did not finish");
        let status = setup.run(&["status", "--json"]);
        assert!(
            status.status.success(),
            "status failed while sessions ran: {}",
            text(&status.stderr)
        );
        polls += 1;
        for slot in &mut runs {
            if let Some(child) = slot.as_mut() {
                if child.try_wait().unwrap().is_some() {
                    outputs.push(slot.take().unwrap().wait_with_output().unwrap());
                }
            }
        }
    }
    assert!(polls >= 2, "status ran {polls} times");
    for out in &outputs {
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_redis_session(&json(out));
    }
    let db = setup.database();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (jobs, ended, with_id): (i64, i64, i64) = db
        .query_row(
            "SELECT count(*), count(ended_at), count(job_id) FROM jobs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (jobs, ended, with_id),
        (4, 4, 4),
        "every job recorded, submitted and ended"
    );
    let completed: i64 = db
        .query_row(
            "SELECT count(*) FROM sessions WHERE state = 'completed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(completed, 2);
    let submits: i64 = db
        .query_row(
            "SELECT count(*) FROM events WHERE action = 'job.submit'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(submits, 4, "the audit log has every submission");
}

#[test]
fn service_and_client_commands_work_on_their_own() {
    let setup = Setup::local();
    let port = free_port();
    let service = setup.recipe(
        "web.yaml",
        &format!("name: web\ncommand: orchestrator\nargs: [demo, http-server, --bind, 127.0.0.1, --port, {port}]\nports: [{port}]\nhealth_check: {{endpoint: /health, interval: 1s, retries: 20}}\n"),
    );
    let out = setup.run(&["service", "start", &service, "--wait", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svc = json(&out);
    assert_eq!(svc["status"], "running", "{svc:#}");
    let id = svc["service_id"].as_str().unwrap().to_owned();
    let client = setup.recipe(
        "load.yaml",
        "name: load\ncommand: sh\nargs: ['-c', 'curl -sS \"$TARGET_URL/\"']\n",
    );
    let out = setup.run(&["client", "start", &client, "--target", &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cli_id = json(&out)["client_id"].as_str().unwrap().to_owned();
    let done = setup.wait_status("the client to finish", Duration::from_secs(60), |s| {
        s["clients"]["clients"][0]["status"] == "completed"
    });
    assert_eq!(
        done["clients"]["clients"][0]["target"],
        format!("localhost:{port}")
    );
    let listed = setup.run(&["list", "services", "--running", "--json"]);
    assert_eq!(json(&listed).as_array().unwrap().len(), 1);
    let debug = setup.run(&["debug", &cli_id]);
    assert!(
        text(&debug.stdout).contains("Hello from the HPC Benchmarking Orchestrator demo service"),
        "the client's output, the service's answer: {}",
        text(&debug.stdout)
    );
    let stop = setup.run(&["stop", &id]);
    assert_eq!(text(&stop.stdout), format!("stopped {id}\n"));
    let out = setup.run(&["service", "status", &id, "--json"]);
    assert_eq!(json(&out)["status"], "stopped");
    assert!(setup.live_local_jobs().is_empty());
    let missing = setup.run(&["service", "status", "svc-00000000"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no service with id `svc-00000000` is tracked"));
}

#[test]
fn processes_that_create_the_state_database_at_once_all_succeed() {
    for _ in 0..3 {
        let setup = Setup::local();
        let children: Vec<Child> = (0..8).map(|_| setup.spawn(&["status", "--json"])).collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        let check: String = setup
            .database()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
}

#[test]
fn sigterm_cancels_a_cluster_session() {
    let setup = Setup::cluster("sigterm");
    let recipe = setup.recipe(
        "long.yaml",
        "name: long\nservices:\n  - name: idle\n    command: sleep\n    args: [600]\nclients:\n  - name: sleeper\n    command: sleep\n    args: [600]\n    target_service: {name: idle, port: 1}\n",
    );
    let mut child = KillOnDrop(setup.spawn(&["run", &recipe, "--json"]));
    let status = setup.wait_status("the client to run", Duration::from_secs(90), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert_eq!(child.0.wait().unwrap().code(), Some(130));
    let outcome: Value = serde_json::from_str(&stdout).expect("--json still prints the outcome");
    assert_eq!(outcome["state"], "cancelled");
    for job in outcome["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "CANCELLED", "{job}");
    }
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
}

#[test]
fn on_a_terminal_progress_is_a_spinner_and_the_summary_is_the_same() {
    let setup = Setup::local();
    let demo = std::fs::read_to_string(root().join("recipes/complete/local-demo.yaml")).unwrap();
    let recipe = setup.recipe(
        "demo.yaml",
        &demo.replace("18787", &free_port().to_string()),
    );
    // `script` gives the command a pseudo-terminal, as a user's shell would.
    let command = format!(
        "{} --config {} run {}",
        env!("CARGO_BIN_EXE_orchestrator"),
        setup.config.display(),
        recipe
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("NO_COLOR", "1")
        .output()
        .expect("script runs");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains(": completed"), "{screen}");
    assert!(screen.contains(" completed, 0 failed in "), "{screen}");
    assert!(
        !screen.contains("] session ses-"),
        "no timestamped log lines on a terminal: {screen}"
    );
    assert!(
        screen.contains("service http-demo: healthy on localhost:"),
        "{screen}"
    );
}

/// A service recipe of the binary's own HTTP server on `port`, and an `http` workload
/// client with these parameters.
fn http_recipe(port: u16, service_slurm: &str, parameters: &str) -> String {
    format!(
        "name: http\nservices:\n  - name: web\n    command: orchestrator\n    args: [demo, http-server, --port, {port}]\n    ports: [{port}]\n    resources: {{slurm: {{time: '00:05:00'{service_slurm}}}}}\n    health_check: {{endpoint: /health, interval: 1s, retries: 20}}\nclients:\n  - name: load\n    workload_type: http\n    parameters: {parameters}\n"
    )
}

/// Issue #17: with the service process killed 5 s into the load, the session ended
/// `completed`, exit 0, the service `stopped`. Now: exit 1 with `service::died`, the
/// client (which asked to `finish`) runs out its time against the dead port, and the
/// report marks its results invalid; nothing is left in the queue.
#[test]
fn a_service_killed_during_the_load_fails_the_session_and_marks_its_results_invalid() {
    let setup = Setup::cluster("service-died");
    let port = u16::try_from(node_port(71)).unwrap();
    let recipe = http_recipe(port, "", "{concurrency: 2, duration_s: 10, path: /}").replace(
        "    workload_type: http\n",
        "    workload_type: http\n    on_service_failure: finish\n",
    );
    let recipe = setup.recipe("died.yaml", &recipe);
    let child = KillOnDrop(setup.spawn(&["run", &recipe, "--json"]));
    let status = setup.wait_status("the client to run", Duration::from_secs(120), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    std::thread::sleep(Duration::from_secs(3));
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &format!("demo http-server --port {port}")])
        .status()
        .unwrap();
    assert!(killed.success(), "the service's process was there to kill");
    let out = {
        let mut child = child;
        let mut stdout = String::new();
        std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (child.0.wait().unwrap().code(), stdout, stderr)
    };
    let (code, stdout, stderr) = out;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("service::died"), "{stderr}");
    assert!(stderr.contains("service `web`"), "{stderr}");
    assert!(
        stderr.contains("after its clients started; clients let finish: load"),
        "{stderr}"
    );
    let outcome: Value = serde_json::from_str(&stdout).expect("--json prints the outcome");
    assert_eq!(outcome["state"], "failed");
    assert_eq!(outcome["services"][0]["state"], "failed");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let run = &report["runs"][0];
    let invalid = run["invalid"].as_str().expect("the run is marked invalid");
    assert!(invalid.starts_with("service `web` ended"), "{invalid}");
    assert!(
        run["summary"]["requests_failed"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(
        report["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "service.died"),
        "the timeline says when"
    );
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
}

/// Issue #17: a run whose requests fail past 1 % missed nothing and exited 0. Now the
/// client's summary line starts with the failures, and `run` exits 3 naming the
/// default bound (the demo server's `/flaky` fails every tenth request).
#[test]
fn a_run_with_failed_requests_past_the_default_bound_exits_3_and_says_so_first() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "flaky.yaml",
        &http_recipe(
            free_port(),
            "",
            "{concurrency: 1, requests: 300, path: /flaky}",
        ),
    );
    let out = setup.run(&["run", &recipe]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("FAILED: 10.00 % of requests (30 of 300): http_500 × 30"),
        "{stdout}"
    );
    let failed = stdout.find("FAILED:").unwrap();
    assert!(
        failed < stdout.find("requests: 270 completed").unwrap(),
        "failures first"
    );
    assert!(
        stdout.contains("expectations: 0 of 1 met (exit code 3)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("expectation missed: client load results: error_rate 0.1000 is above the maximum 0.01 (the bound on failed requests, the config's `max_error_rate`"),
        "{stderr}"
    );
    // The report's run says it first too.
    let md = text(&setup.run(&["report"]).stdout);
    assert!(
        md.contains("**FAILED**: 10.00 % of requests (30 of 300): http_500 × 30"),
        "{md}"
    );
    let first = setup.status()["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A config that tolerates 20 % failed requests: the same run passes, exit 0.
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{config}max_error_rate: 0.2\n")).unwrap();
    let out = setup.run(&["run", &recipe, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json(&out)["expectations"].as_array().unwrap().len(), 0);
    // The first session keeps the bound it ran under, whatever the config says now.
    let report = setup.run(&["report", &first, "--format", "json"]);
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let missed: Vec<&Value> = report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["passed"] == false)
        .collect();
    assert_eq!(missed.len(), 1, "{report:#}");
    assert_eq!(missed[0]["expected"]["max"], 0.01);
    // And a bound outside 0..1 is refused where it is written.
    std::fs::write(&setup.config, format!("{config}max_error_rate: 1.5\n")).unwrap();
    let out = setup.run(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("max_error_rate"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue #17: an orchestrator killed after `sbatch` took a job and before its id was
/// recorded left a job nothing tracked. The next `status` finds it by its unique
/// name (`ORCHESTRATOR_TEST_ABORT_AFTER_SUBMIT` is the test hook that aborts there),
/// records it and stops it.
#[test]
fn a_job_whose_orchestrator_died_before_recording_it_is_found_by_its_name() {
    let setup = Setup::cluster("found-by-name");
    let recipe = setup.recipe(
        "idle.yaml",
        "name: idle\nservices:\n  - name: idle\n    command: sleep\n    args: [600]\n",
    );
    let out = setup
        .command(&["run", &recipe])
        .env("ORCHESTRATOR_TEST_ABORT_AFTER_SUBMIT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook aborted it");
    let db = setup.database();
    let (session, job_name, job_id): (String, String, Option<String>) = db
        .query_row("SELECT session_id, job_name, job_id FROM jobs", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    drop(db);
    /// Whatever happens, the job does not outlive the test.
    struct ScancelNameOnDrop(String);
    impl Drop for ScancelNameOnDrop {
        fn drop(&mut self) {
            let _ = Command::new("scancel")
                .arg(format!("--name={}", self.0))
                .status();
        }
    }
    let _cleanup = ScancelNameOnDrop(job_name.clone());
    assert_eq!(job_id, None, "the id was never recorded");
    assert_eq!(squeue_names(&session).len(), 1, "but SLURM has the job");
    let status = setup.status();
    let service = &status["services"]["services"][0];
    assert!(
        service["job_id"].as_str().is_some(),
        "found by name: {status:#}"
    );
    let start = Instant::now();
    while !squeue_names(&session).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the found job was not stopped"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let status = setup.wait_status("the session to end", Duration::from_secs(30), |s| {
        s["sessions"][0]["state"] == "failed"
    });
    assert_eq!(
        status["services"]["services"][0]["job_state"], "CANCELLED",
        "{status:#}"
    );
}

/// Issue #17: a client cancelled because its service died writes what it measured
/// until then (the engine stops on SIGTERM), and the report keeps that run, marked
/// invalid and interrupted.
#[test]
fn a_client_cancelled_because_its_service_died_leaves_its_partial_results() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "died.yaml",
        &http_recipe(port, "", "{concurrency: 2, duration_s: 30, path: /}"),
    );
    let child = KillOnDrop(setup.spawn(&["run", &recipe, "--json"]));
    setup.wait_status("the client to run", Duration::from_secs(60), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let killed = Command::new("pkill")
        .args(["-KILL", "-f", &format!("demo http-server --port {port}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, outcome, stderr) = finish(child);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("clients cancelled: load"), "{stderr}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["summary"]["interrupted"], true, "{run}");
    assert!(
        run["invalid"]
            .as_str()
            .unwrap()
            .starts_with("service `web` ended"),
        "{run}"
    );
    let measured = run["summary"]["measured_seconds"].as_f64().unwrap();
    assert!(measured < 15.0, "stopped early, not after 30 s: {measured}");
    assert!(
        run["summary"]["requests_completed"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(setup.live_local_jobs().is_empty());
}

/// Runs `scripts/test-cluster ACTION [ARG]` (the fault tests stop and start its
/// daemons, and cut nodes off).
fn test_cluster(action: &str) {
    let status = Command::new(root().join("scripts/test-cluster"))
        .args(action.split_whitespace())
        .status()
        .expect("scripts/test-cluster runs");
    assert!(status.success(), "scripts/test-cluster {action} failed");
}

/// A session on the cluster that loads a service for `seconds`, started in the
/// background: the child, and the recipe's port.
fn fault_session(setup: &Setup, seconds: u32) -> KillOnDrop {
    let port = u16::try_from(node_port(seconds * 7)).unwrap();
    let recipe = setup.recipe(
        "fault.yaml",
        &http_recipe(
            port,
            "",
            &format!("{{concurrency: 1, duration_s: {seconds}, path: /}}"),
        ),
    );
    KillOnDrop(setup.spawn(&["run", &recipe, "--json"]))
}

/// Waits for a session started by [`fault_session`]: its exit code and outcome.
fn finish(child: KillOnDrop) -> (Option<i32>, Value, String) {
    let mut child = child;
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let code = child.0.wait().unwrap().code();
    let outcome = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, outcome, stderr)
}

/// Issue #17, on the real cluster (these run alone: `.config/nextest.toml`): the
/// controller is down when the session submits, for 10 s; the session waits, tries
/// again and completes.
#[test]
fn fault_slurmctld_down_at_submit_time_is_waited_for() {
    let setup = Setup::cluster("fault-submit");
    test_cluster("stop-slurmctld");
    let started = Instant::now();
    let child = fault_session(&setup, 3);
    std::thread::sleep(Duration::from_secs(10));
    test_cluster("start-slurmctld");
    let (code, outcome, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(outcome["state"], "completed", "{stderr}");
    // It waited for the controller: sbatch itself retries for a while, and past that
    // the orchestrator does (`submit.retry` events; tested with a fake scheduler).
    assert!(started.elapsed() >= Duration::from_secs(10));
    for job in outcome["jobs"].as_array().unwrap() {
        assert!(job["job_id"].as_str().is_some(), "{job}");
    }
}

/// The controller restarted in the middle of the load (down for 8 s): the session
/// completes and nothing is left.
#[test]
fn fault_slurmctld_restarted_mid_run_is_ridden_out() {
    let setup = Setup::cluster("fault-restart");
    let child = fault_session(&setup, 20);
    let status = setup.wait_status("the client to run", Duration::from_secs(120), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    test_cluster("stop-slurmctld");
    std::thread::sleep(Duration::from_secs(8));
    test_cluster("start-slurmctld");
    let (code, outcome, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(outcome["state"], "completed", "{stderr}");
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
}

/// The SSH server restarted (every connection cut) in the middle of the load: the
/// session reconnects and completes.
#[test]
fn fault_sshd_restarted_mid_run_is_ridden_out() {
    let setup = Setup::cluster("fault-sshd");
    let child = fault_session(&setup, 15);
    let status = setup.wait_status("the client to run", Duration::from_secs(120), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    test_cluster("restart-sshd");
    let (code, outcome, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(outcome["state"], "completed", "{stderr}");
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
}

/// Issue #17: after `run` was killed with SIGKILL, nothing could finish its session.
/// `status` says it can be attached; `attach` waits for the running client, fetches its
/// results, stops the service and writes the report; a second `attach` while the first
/// drives it is refused; nothing is left in the queue.
#[test]
fn attach_completes_a_session_whose_run_was_killed_and_a_second_attach_is_refused() {
    let setup = Setup::cluster("attach");
    let mut child = fault_session(&setup, 22);
    let status = setup.wait_status("the client to run", Duration::from_secs(120), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    child.0.kill().expect("SIGKILL");
    child.0.wait().unwrap();
    let listed = setup.run(&["status"]);
    assert!(
        text(&listed.stdout).contains(&format!(
            "session {session}: its orchestrator is gone; `orchestrator attach {session}` continues it"
        )),
        "{}",
        text(&listed.stdout)
    );
    let attach = KillOnDrop(setup.spawn(&["attach", &session, "--json"]));
    let pid = attach.0.id();
    setup.wait_status("attach to take the session", Duration::from_secs(30), |s| {
        s["sessions"][0]["attachable"] == false
    });
    let second = setup.run(&["attach", &session]);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    assert!(
        text(&second.stderr).contains(&format!(
            "session {session} is driven by process {pid}, which still runs"
        )),
        "{}",
        text(&second.stderr)
    );
    let (code, outcome, stderr) = finish(attach);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(outcome["state"], "completed", "{stderr}");
    assert!(stderr.contains("client load: job "), "{stderr}");
    assert!(stderr.contains("attached (RUNNING)"), "{stderr}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let run = &report["runs"][0];
    assert!(
        run["summary"]["requests_completed"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(run["invalid"].is_null(), "{run}");
    // One job each: nothing was submitted twice.
    assert_eq!(outcome["jobs"].as_array().unwrap().len(), 2, "{outcome:#}");
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
}

/// Issue #17: an orchestrator that died after `sbatch` took its service's job and before
/// recording the id (the test hook aborts there): `attach` finds the job by its name,
/// drives on it instead of stopping it, submits the client and completes the session.
#[test]
fn attach_adopts_a_job_whose_orchestrator_died_before_recording_it() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "adopt.yaml",
        &http_recipe(free_port(), "", "{concurrency: 1, requests: 200, path: /}"),
    );
    let out = setup
        .command(&["run", &recipe])
        .env("ORCHESTRATOR_TEST_ABORT_AFTER_SUBMIT", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook aborted it");
    let (session, job_id): (String, Option<String>) = setup
        .database()
        .query_row("SELECT session_id, job_id FROM jobs", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(job_id, None, "the id was never recorded");
    let out = setup.run(&["attach", &session, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let outcome = json(&out);
    assert_eq!(outcome["state"], "completed");
    let jobs = outcome["jobs"].as_array().unwrap();
    assert_eq!(
        jobs.len(),
        2,
        "the service's job adopted, not run twice: {outcome:#}"
    );
    assert!(
        jobs.iter().all(|j| j["job_id"].as_str().is_some()),
        "{outcome:#}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(report["runs"][0]["summary"]["requests_completed"], 200);
    let again = setup.run(&["attach", &session]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains(&format!(
            "session {session} ended completed: there is nothing to continue"
        )),
        "{}",
        text(&again.stderr)
    );
    assert!(setup.live_local_jobs().is_empty());
}

/// Issue #17: a compute node cut off (its link down) while its service runs under
/// load: SLURM ends the service's job `NODE_FAIL` (the test cluster's `SlurmdTimeout` is
/// 30 s); the session says so, submits the service again (a service's `retries` is 1 by
/// default), which comes back on the other node, runs its client again and completes.
#[test]
fn fault_a_node_cut_off_under_its_service_brings_the_service_back_elsewhere() {
    let setup = Setup::cluster("fault-node");
    let child = fault_session(&setup, 12);
    let status = setup.wait_status("the client to run", Duration::from_secs(120), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let service = &status["services"]["services"][0];
    let node = service["node"].as_str().unwrap().to_owned();
    let first_job = service["job_id"].as_str().unwrap().to_owned();
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let index = node.trim_start_matches("node").to_owned();
    /// The node comes back however the test ends.
    struct Restore(String);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = Command::new(root().join("scripts/test-cluster"))
                .args(["restore-node", &self.0])
                .status();
        }
    }
    let restore = Restore(index.clone());
    test_cluster(&format!("cut-node {index}"));
    let status = setup.wait_status(
        "the service to run again on another node",
        Duration::from_secs(150),
        |s| {
            let service = &s["services"]["services"][0];
            service["job_id"].as_str().is_some_and(|j| j != first_job)
                && service["job_state"] == "RUNNING"
        },
    );
    let again = status["services"]["services"][0]["node"].as_str().unwrap();
    assert_ne!(again, node, "{status:#}");
    drop(restore);
    let (code, outcome, stderr) = finish(child);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(outcome["state"], "completed", "{stderr}");
    assert!(
        stderr.contains(&format!(
            "service web: job {first_job} ended NODE_FAIL; submitting it again (retry 1 of 1)"
        )),
        "{stderr}"
    );
    let states: Vec<&str> = jobs_of(&outcome, "service")
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["NODE_FAIL", "CANCELLED"], "{outcome:#}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let run = &report["runs"][0];
    assert!(run["invalid"].is_null(), "{run}");
    assert!(
        run["summary"]["requests_completed"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(
        squeue_names(&session).is_empty(),
        "left: {:?}",
        squeue_names(&session)
    );
}

#[test]
fn an_http_workload_sweep_runs_in_the_client_job_and_its_results_are_stored() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "sweep.yaml",
        &http_recipe(
            free_port(),
            "",
            "{concurrency: [1, 4], requests: 500, path: /, metrics_port: 0}",
        ),
    );
    let outcome = setup.run_ok(&recipe);
    // The job served live metrics (one endpoint for both runs), on a port it chose.
    let log = std::fs::read_to_string(
        Path::new(outcome["results_dir"].as_str().unwrap()).join("load/stderr.log"),
    )
    .unwrap();
    assert_eq!(log.matches("metrics: http://0.0.0.0:").count(), 1, "{log}");
    let dir = Path::new(outcome["results_dir"].as_str().unwrap()).join("load/results");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{index:#}");
    for (run, concurrency) in runs.iter().zip([1, 4]) {
        assert_eq!(run["parameters"]["concurrency"], concurrency);
        assert_eq!(run["requests_completed"], 500);
        let sub = dir.join(run["dir"].as_str().unwrap());
        let lines = std::fs::read_to_string(sub.join("requests.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 500);
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(sub.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary["load"]["model"]["concurrency"], concurrency);
    }
    let stored: i64 = setup
        .database()
        .query_row(
            "SELECT count(*) FROM results WHERE name = 'summary'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 2, "both summaries are in the state store");
}

/// Issue #19: `repeat: 3` runs every point of a sweep three times, each with its own
/// seed; the job's index and the report give each point's headline figures across its
/// runs as a mean, a 95 % interval and a coefficient of variation.
#[test]
fn repeats_give_each_point_a_mean_an_interval_and_its_variation() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "repeat.yaml",
        &http_recipe(
            free_port(),
            "",
            "{concurrency: [1, 2], requests: 200, path: /, repeat: 3}",
        ),
    );
    let outcome = setup.run_ok(&recipe);
    let dir = Path::new(outcome["results_dir"].as_str().unwrap()).join("load/results");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6, "{index:#}");
    let seeds: Vec<u64> = runs
        .iter()
        .map(|run| {
            let summary: Value = serde_json::from_str(
                &std::fs::read_to_string(
                    dir.join(run["dir"].as_str().unwrap()).join("summary.json"),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(summary["requests_completed"], 200);
            summary["load"]["seed"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seeds[..3], [1, 2, 3], "each repeat its own seed: {seeds:?}");
    let points = index["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{index:#}");
    for (point, concurrency) in points.iter().zip([1, 2]) {
        assert_eq!(point["parameters"]["concurrency"], concurrency);
        assert_eq!(point["runs"].as_array().unwrap().len(), 3);
        let rps = &point["metrics"]["requests_per_second"];
        assert_eq!(rps["n"], 3);
        let (low, mean, high) = (
            rps["ci95_low"].as_f64().unwrap(),
            rps["mean"].as_f64().unwrap(),
            rps["ci95_high"].as_f64().unwrap(),
        );
        assert!(low <= mean && mean <= high && mean > 0.0, "{rps}");
    }
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(outcome["report_path"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        report["repeats"],
        index["points"].clone().as_array().map_or(Value::Null, |p| {
            Value::Array(
                p.iter()
                    .map(|point| {
                        let mut point = point.clone();
                        point["client"] = Value::String("load".into());
                        point
                    })
                    .collect(),
            )
        }),
        "the report and the job agree"
    );
    let md = text(&setup.run(&["report"]).stdout);
    assert!(md.contains("### Repeats"), "{md}");
    assert!(
        md.contains("| load | concurrency=1, path=/, requests=200 | 3 | requests_per_second |"),
        "{md}"
    );
}

#[test]
fn expectations_set_the_exit_code_and_reports_history_and_compare_show_the_runs() {
    let setup = Setup::local();
    let sweep = "{concurrency: [1, 2], requests: 300, path: /}";
    let pass = setup.recipe(
        "pass.yaml",
        &format!(
            "{}    expect: {{requests_completed: {{min: 300}}, error_rate: {{max: 0}}}}\n",
            http_recipe(free_port(), "", sweep)
        ),
    );
    let out = setup.run(&["run", &pass]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("expectations: 4 of 4 met\n"),
        "{}",
        text(&out.stdout)
    );
    let first = setup.status()["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // No request takes under a nanosecond: both runs miss, and run says so, exit 3.
    let strict = setup.recipe(
        "strict.yaml",
        &format!(
            "{}    expect: {{latency_p99_ms: {{max: 0.000001}}}}\n",
            http_recipe(free_port(), "", sweep)
        ),
    );
    let out = setup.run(&["run", &strict]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for run in ["run-000", "run-001"] {
        assert!(
            stderr.contains(&format!(
                "expectation missed: client load {run}: latency_p99_ms "
            )),
            "{stderr}"
        );
    }
    assert!(stderr.contains("is above the maximum 0.000001"), "{stderr}");
    assert!(text(&out.stdout).contains("expectations: 0 of 2 met (exit code 3)"));

    // The report of the latest session, as Markdown on stdout.
    let md = setup.run(&["report"]);
    assert!(md.status.success(), "{}", text(&md.stderr));
    let md = text(&md.stdout);
    for part in [
        "# Benchmark report: http (",
        "## Jobs",
        "## Timeline",
        "### load / run-000 (concurrency=1, path=/, requests=300)",
        "| latency |",
        "### Sweep: load",
        "## Expectations",
        "**MISSED**: ",
        "### Definitions",
    ] {
        assert!(md.contains(part), "{part:?} missing from:\n{md}");
    }

    // As YAML by the file's extension: the recipe's hash, both runs' summaries.
    let yaml_path = setup.dir.path().join("benchmark_report.yaml");
    let written = setup.run(&["report", &first, "-o", yaml_path.to_str().unwrap()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    let report: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&yaml_path).unwrap()).unwrap();
    assert_eq!(report["report_version"], serde_yaml::Value::from(3));
    assert_eq!(report["recipe_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(report["runs"].as_sequence().unwrap().len(), 2);
    assert_eq!(
        report["runs"][1]["summary"]["requests_completed"],
        serde_yaml::Value::from(300)
    );
    assert!(
        report["timeline"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "health.pass")
    );
    assert!(
        report["resources"][0]["sbatch"]
            .as_sequence()
            .is_some_and(|o| o
                .iter()
                .any(|l| l.as_str().unwrap().starts_with("--job-name="))),
        "{:?}",
        report["resources"]
    );
    let bad = setup.run(&["report", &first, "-o", "report.pdf"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("a report is .yaml, .json, .md or .html, not `.pdf`"));

    // History: newest first, with what each session's expectations came to.
    let history = json(&setup.run(&["history", "--json"]));
    let rows = history.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["session"], first.as_str());
    assert_eq!(
        (&rows[0]["expectations_passed"], &rows[0]["expectations"]),
        (&Value::from(0), &Value::from(2))
    );
    assert_eq!(rows[1]["expectations_passed"], 4);
    assert!(rows[0]["requests_per_second"].as_f64().unwrap() > 0.0);

    // Compare: the same runs of both sessions, figure by figure.
    let second = rows[0]["session"].as_str().unwrap();
    let cmp = json(&setup.run(&["report", "compare", &first, second, "--json"]));
    assert_eq!(cmp["same_recipe"], false, "the recipes differ in `expect`");
    let deltas = cmp["deltas"].as_array().unwrap();
    for run in ["run-000", "run-001"] {
        let d = deltas
            .iter()
            .find(|d| d["run"] == run && d["metric"] == "requests_per_second")
            .unwrap_or_else(|| panic!("{run} in {cmp:#}"));
        let (a, b) = (d["a"].as_f64().unwrap(), d["b"].as_f64().unwrap());
        assert!((d["delta"].as_f64().unwrap() - (b - a)).abs() < 1e-6);
    }
}

#[test]
fn a_tunnel_carries_http_to_a_service_on_a_compute_node_and_results_fetch_downloads_its_job() {
    use std::io::{BufRead, BufReader, Read, Write};
    let setup = Setup::cluster("tunnel");
    let port = node_port(11);
    let recipe = setup.recipe(
        "web.yaml",
        &format!(
            "name: web\ncommand: orchestrator\nargs: [demo, http-server, --port, {port}]\nports: [{port}]\nhealth_check: {{endpoint: /health, interval: 1s, retries: 30}}\n"
        ),
    );
    // A service recipe alone: the service stays up after `run`.
    let outcome = setup.run_ok(&recipe);
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let service = outcome["services"][0]["id"].as_str().unwrap().to_owned();
    // Either compute node: wherever SLURM had room.
    let node = outcome["services"][0]["host"].as_str().unwrap().to_owned();
    assert!(
        ["node1", "node2", "node3"].contains(&node.as_str()),
        "{outcome:#}"
    );

    let mut tunnel = KillOnDrop(setup.spawn(&["tunnel", &service]));
    let mut stderr = BufReader::new(tunnel.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // "forwarding 127.0.0.1:PORT to NODE:PORT (service web) through root@127.0.0.1:2222; …"
    assert!(
        line.contains(&format!(" to {node}:{port} (service web) through ")),
        "{line}"
    );
    let local = line.split_whitespace().nth(1).unwrap().to_owned();
    for _ in 0..2 {
        let mut stream = std::net::TcpStream::connect(&local).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    Command::new("kill")
        .args(["-INT", &tunnel.0.id().to_string()])
        .status()
        .unwrap();
    let status = tunnel.0.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(
        rest.contains("tunnel closed after 2 connection(s)"),
        "{rest}"
    );

    // The job directory as it is on the cluster now: script and logs.
    let to = setup.dir.path().join("raw");
    let fetched = setup.run(&["results", "fetch", &session, "--to", to.to_str().unwrap()]);
    assert!(fetched.status.success(), "{}", text(&fetched.stderr));
    assert!(text(&fetched.stdout).starts_with("web: "));
    let script = std::fs::read_to_string(to.join("web/job.sh")).unwrap_or_default();
    assert!(script.contains("#SBATCH --job-name="), "{script}");
    assert!(to.join("web/stdout.log").exists());

    let stop = setup.run(&["stop", "--session", &session]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    // A stopped service has nothing to forward to.
    let refused = setup.run(&["tunnel", &service]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
}

/// Pixels of `png` within 40 of `rgb` on each channel.
fn pixels_like(png: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 40))
        .count()
}

#[test]
fn the_html_report_loads_in_chromium_without_errors_and_shows_its_charts() {
    let setup = Setup::local();
    let recipe = setup.recipe(
        "sweep.yaml",
        &http_recipe(
            free_port(),
            "",
            "{concurrency: [1, 2], duration_s: 2, path: /}",
        ),
    );
    let out = setup.run(&["run", &recipe]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html_path = setup.dir.path().join("report.html");
    let written = setup.run(&["report", "-o", html_path.to_str().unwrap()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Self-contained: no script, stylesheet, image or frame from anywhere.
    for external in ["<script", "<link", "src=", "<img", "<iframe", "@import"] {
        assert!(!html.contains(external), "{external} in the report");
    }
    assert!(
        html.matches("<svg").count() >= 3,
        "percentiles, throughput, sweep"
    );
    for caption in [
        "Latency percentiles of each run",
        "Requests completed in each second of each run.",
        "Sweep of `load`",
    ] {
        assert!(html.contains(caption), "{caption}");
    }

    // A real browser: it loads the page with nothing on its console, and the
    // screenshot holds the charts' lines (the first two series colours).
    let shot = setup.dir.path().join("report.png");
    let browser = Command::new("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1800",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html_path.display()))
        .output()
        .expect("chromium runs (scripts/test-cluster up installs it)");
    let log = text(&browser.stderr);
    assert!(browser.status.success(), "{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let blue = pixels_like(&shot, [31, 119, 180]);
    let red = pixels_like(&shot, [214, 39, 40]);
    assert!(blue > 300 && red > 300, "blue {blue}, red {red} pixels");
}

#[test]
fn a_service_job_samples_its_own_cpu_and_memory_into_the_report() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "monitored.yaml",
        &format!(
            "name: monitored\nservices:\n  - name: web\n    command: orchestrator\n    args: [demo, http-server, --port, {port}]\n    ports: [{port}]\n    monitor: {{interval: 1s}}\n    health_check: {{endpoint: /health, interval: 1s, retries: 20}}\nclients:\n  - name: load\n    workload_type: http\n    duration: 4s\n    parameters: {{concurrency: 4, path: /}}\n"
        ),
    );
    let outcome = setup.run_ok(&recipe);
    let csv = Path::new(outcome["results_dir"].as_str().unwrap()).join("web/monitor.csv");
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.starts_with("# orchestrator-monitor 1 clk_tck="),
        "{csv}"
    );
    let report = json(&setup.run(&["report", "--format", "json"]));
    let monitoring = &report["monitoring"][0];
    assert_eq!(monitoring["service"], "web");
    let samples = monitoring["series"]["process"].as_array().unwrap();
    assert!(
        samples.len() >= 3,
        "a sample a second for 5 s or more: {csv}"
    );
    // The server answered 4 users for 4 s: it used CPU, and it holds memory.
    let summary = &monitoring["series"]["summary"];
    assert!(
        summary["cpu_percent"]["max"].as_f64().unwrap() > 5.0,
        "{summary}"
    );
    assert!(
        summary["rss_mb"]["max"].as_f64().unwrap() > 1.0,
        "{summary}"
    );
    assert!(monitoring["series"]["node"].as_array().unwrap().len() >= 3);
    assert!(
        monitoring["series"]["gpus"].as_array().unwrap().is_empty(),
        "no GPU here"
    );
    let md = text(&setup.run(&["report"]).stdout);
    assert!(md.contains("## Monitoring"), "{md}");
    // The sampler ended with the service's job.
    assert!(setup.live_local_jobs().is_empty());
}

#[test]
fn an_http_workload_on_the_cluster_uploads_the_binary_once() {
    let setup = Setup::cluster("http-workload");
    let port = node_port(10_000);
    let recipe = setup.recipe(
        "http.yaml",
        &http_recipe(
            u16::try_from(port).unwrap(),
            ", extra_args: ['--nodelist=node1']",
            "{concurrency: 2, requests: 1000}",
        )
        .replace(
            "    workload_type: http\n",
            "    workload_type: http\n    resources: {slurm: {extra_args: ['--nodelist=node2']}}\n",
        ),
    );
    for _ in 0..2 {
        let outcome = setup.run_ok(&recipe);
        let service = jobs_of(&outcome, "service")[0]["node"]
            .as_str()
            .unwrap()
            .to_owned();
        let client = jobs_of(&outcome, "client")[0]["node"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(service, client);
        let summary =
            Path::new(outcome["results_dir"].as_str().unwrap()).join("load/results/summary.json");
        let summary: Value =
            serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
        assert_eq!(summary["requests_completed"], 1000);
        assert_eq!(summary["url"], format!("http://{service}:{port}"));
    }
    let uploads: i64 = setup
        .database()
        .query_row(
            "SELECT count(*) FROM events WHERE action = 'binary.upload'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(uploads, 1, "the second session found the binary there");
}

/// Issue #18 item 2: two runs that load one server at once, merged by `results merge`,
/// are one exact result: counts add up, and the merged percentiles are those of the
/// union of both runs' requests (`requests.jsonl`) to the histogram's 0.1 %.
#[test]
fn results_merge_gives_the_percentiles_of_every_request_of_both_runs() {
    let setup = Setup::local();
    let (_server, port) = setup.demo_server();
    let url = format!("http://127.0.0.1:{port}/");
    let dir = setup.dir.path();
    let runs: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| dir.join(n).display().to_string())
        .collect();
    let benches: Vec<Child> = runs
        .iter()
        .zip(["2", "3"])
        .map(|(out, concurrency)| {
            setup
                .command(&[
                    "bench",
                    &url,
                    "--concurrency",
                    concurrency,
                    "--requests",
                    "3000",
                    "--out",
                    out,
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut bench in benches {
        assert!(bench.wait().unwrap().success());
    }
    let merged = dir.join("merged").display().to_string();
    let out = setup.run(&[
        "results", "merge", &runs[0], &runs[1], "--out", &merged, "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = json(&out);
    assert_eq!(summary["requests_completed"], 6000, "{summary:#}");
    assert_eq!(summary["merged_from"].as_array().unwrap().len(), 2);
    let mut latencies: Vec<f64> = runs
        .iter()
        .flat_map(|run| {
            std::fs::read_to_string(Path::new(run).join("requests.jsonl"))
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["latency_ms"]
                        .as_f64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    assert_eq!(latencies.len(), 6000);
    for (key, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q * latencies.len() as f64).ceil() as usize).max(1) - 1;
        let exact = latencies[rank];
        let got = summary["latency_ms"][key].as_f64().unwrap();
        assert!(
            (got - exact).abs() <= exact * 0.001 + 0.000_001,
            "{key}: merged {got} ms, the union's {exact} ms"
        );
    }
    // The merged record merges again, and a run that is not the engine's is refused.
    assert!(Path::new(&merged).join("recorder.json").is_file());
    let bad = setup.run(&["results", "merge", &runs[0], dir.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("recorder.json"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn bench_json_has_the_documented_keys() {
    let setup = Setup::local();
    let (mut server, port) = setup.demo_server();
    let url = format!("http://127.0.0.1:{port}/");
    let out = setup.run(&[
        "bench",
        &url,
        "--rate",
        "300",
        "--requests",
        "300",
        "--arrival",
        "constant",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = json(&out);
    for key in [
        "requests_completed",
        "requests_failed",
        "requests_per_second",
        "target_rate",
        "achieved_rate",
    ] {
        assert!(s[key].is_number(), "{key} in {s:#}");
    }
    for key in ["mean", "p50", "p90", "p95", "p99", "p999", "max"] {
        assert!(s["latency_ms"][key].is_number(), "latency_ms.{key}");
    }
    assert_eq!(s["requests_completed"], 300);
    assert_eq!(s["target_rate"], 300.0);
    let closed = setup.run(&["bench", &url, "--concurrency", "2", "--requests", "100"]);
    assert!(
        text(&closed.stdout).contains("requests: 100 completed, 0 failed"),
        "{}",
        text(&closed.stdout)
    );
    let bad = setup.run(&["bench", &url, "-p", "metod=POST", "-n", "1"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("unknown field `metod`"));
    let _ = server.0.kill();
    let down = setup.run(&["bench", &url, "-n", "1"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(
        text(&down.stderr).contains("cannot reach the target"),
        "{}",
        text(&down.stderr)
    );
}

/// `GET /metrics` on `port`, the body.
fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("Content-Type: text/plain; version=0.0.4"));
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[test]
fn bench_serves_live_prometheus_metrics_while_it_runs() {
    let setup = Setup::local();
    let (_server, port) = setup.demo_server();
    let metrics_port = free_port();
    let bench = setup
        .command(&[
            "bench",
            &format!("http://127.0.0.1:{port}/"),
            "--concurrency",
            "2",
            "--duration",
            "4s",
            "--metrics-port",
            &metrics_port.to_string(),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ok_requests = |body: &str| -> f64 {
        // Parsed by a Prometheus text-format parser, not by hand.
        let scrape =
            prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let ok = scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "orchestrator_requests_total" && s.labels.get("outcome") == Some("ok")
            })
            .expect("the ok counter");
        let prometheus_parse::Value::Counter(n) = ok.value else {
            panic!("a counter: {:?}", ok.value)
        };
        let histogram = scrape
            .samples
            .iter()
            .find(|s| s.metric == "orchestrator_request_duration_seconds")
            .expect("the latency histogram");
        let prometheus_parse::Value::Histogram(buckets) = &histogram.value else {
            panic!("a histogram: {:?}", histogram.value)
        };
        assert!(buckets.len() >= 16, "{buckets:?}");
        assert!(
            buckets.windows(2).all(|w| w[0].count <= w[1].count),
            "cumulative: {buckets:?}"
        );
        n
    };
    std::thread::sleep(Duration::from_millis(1500));
    let first = ok_requests(&scrape(metrics_port));
    std::thread::sleep(Duration::from_millis(1000));
    let second = ok_requests(&scrape(metrics_port));
    assert!(first > 0.0 && second > first, "live: {first} then {second}");
    let out = bench.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("metrics: http://0.0.0.0:{metrics_port}/metrics")),
        "{}",
        text(&out.stderr)
    );
    let summary = json(&out);
    assert!(summary["requests_completed"].as_f64().unwrap() >= second);
}

#[test]
fn bench_postgres_never_shows_the_password() {
    let setup = Setup::local();
    let url = std::env::var("ORCH_TEST_POSTGRES_URL")
        .expect("ORCH_TEST_POSTGRES_URL is set (scripts/test-cluster env)");
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, pw)| pw.to_owned())
        .expect("the test server's URL holds a password");
    let out_dir = setup.dir.path().join("pg-out");
    let args = [
        "bench",
        &url,
        "-d",
        "postgres",
        "-p",
        "script=select-only",
        "-p",
        "initialize=true",
        "--concurrency",
        "4",
        "--requests",
        "400",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = setup.run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("requests: 400 completed, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("target: postgres://bench:***@127.0.0.1:"),
        "{stdout}"
    );
    let summary = std::fs::read_to_string(out_dir.join("summary.json")).unwrap();
    for shown in [&stdout, &text(&out.stderr), &summary] {
        assert!(!shown.contains(&password), "the password leaked: {shown}");
    }
    let mut json_args = args[..args.len() - 2].to_vec();
    json_args.push("--json");
    let s = json(&setup.run(&json_args));
    assert_eq!(s["driver"], "postgres");
    assert!(s["url"].as_str().unwrap().contains(":***@"), "{s:#}");
}

#[test]
fn a_mariadb_service_on_node1_takes_sysbench_transactions_the_server_itself_counts() {
    let setup = Setup::cluster("mariadb-oltp");
    let port = node_port(31);
    // The node's own MariaDB (Debian's), run natively by the mysql driver: a data
    // directory initialised in the job's directory, the database and user made from
    // the environment. The password has a quote in it and must reach no output.
    let password = "it's-a-secret-9x";
    let recipe = setup.recipe(
        "mariadb.yaml",
        &format!(
            "name: mariadb-oltp\nservices:\n  - name: db\n    type: mariadb\n    ports: [{port}]\n    environment: {{MYSQL_DATABASE: sbtest, MYSQL_USER: bench, MYSQL_PASSWORD: \"{password}\"}}\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\nclients:\n  - name: oltp\n    workload_type: mysql\n    resources: {{slurm: {{extra_args: ['--nodelist=node2']}}}}\n    target_service: {{name: db}}\n    environment: {{MYSQL_USER: bench, MYSQL_DATABASE: sbtest, MYSQL_PASSWORD: \"{password}\"}}\n    parameters: {{script: [oltp_write_only, oltp_point_select], initialize: true, table_size: 2000, concurrency: 4, requests: 800}}\n"
        ),
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "run failed: {stderr}");
    let outcome = json(&out);
    assert_ne!(
        jobs_of(&outcome, "service")[0]["node"],
        jobs_of(&outcome, "client")[0]["node"]
    );
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    // Healthy once it took a login as the recipe's user; its version from the greeting.
    assert_eq!(report["services"][0]["driver"], "mysql", "{report:#}");
    let health = report["services"][0]["health"].as_str().unwrap();
    assert!(health.starts_with("logged in to 10.11."), "{health}");
    assert!(health.ends_with("MariaDB-0+deb12u1 as bench"), "{health}");
    assert!(
        report["service_versions"]["db"]
            .as_str()
            .unwrap()
            .contains("-MariaDB"),
        "{report:#}"
    );
    // Each run's transactions are what the server counted over it: every write-only
    // transaction one COMMIT (a failed one a ROLLBACK), every point select one SELECT.
    let dir = Path::new(outcome["results_dir"].as_str().unwrap()).join("oltp/results");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let mut scripts = Vec::new();
    for run in index["runs"].as_array().unwrap() {
        let summary = dir.join(run["dir"].as_str().unwrap()).join("summary.json");
        let s: Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
        let counted = &s["server_counters"];
        let (done, failed) = (&s["requests_completed"], &s["requests_failed"]);
        assert_eq!(
            done.as_u64().unwrap() + failed.as_u64().unwrap(),
            800,
            "{s:#}"
        );
        match s["parameters"]["script"].as_str() {
            Some("oltp_write_only") => {
                assert_eq!(&counted["Com_commit"], done, "{s:#}");
                assert_eq!(&counted["Com_rollback"], failed, "{s:#}");
                assert_eq!(counted["Com_begin"], 800, "{s:#}");
            }
            Some("oltp_point_select") => {
                assert_eq!(&counted["Com_select"], done, "{s:#}");
                assert_eq!(counted["Com_commit"], 0, "{s:#}");
            }
            other => panic!("a run of {other:?}: {s:#}"),
        }
        scripts.push(s["parameters"]["script"].as_str().unwrap().to_owned());
    }
    scripts.sort();
    assert_eq!(scripts, ["oltp_point_select", "oltp_write_only"]);
    // The client's own output says what the server counted.
    let log = std::fs::read_to_string(
        Path::new(outcome["results_dir"].as_str().unwrap()).join("oltp/stdout.log"),
    )
    .unwrap();
    assert!(log.contains("the server counted: Com_begin +800,"), "{log}");
    // The password is in no output, log or report.
    assert!(!stderr.contains(password) && !text(&out.stdout).contains(password));
    let shown = text(&setup.run(&["report", &session, "--format", "json"]).stdout);
    assert!(!shown.contains(password), "the report shows the password");
    for entry in walk(Path::new(outcome["results_dir"].as_str().unwrap())) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(password),
            "{} holds the password",
            entry.display()
        );
    }
}

#[test]
fn a_chroma_service_on_node1_stores_what_the_client_inserted_and_answers_k_neighbours() {
    let setup = Setup::cluster("chroma");
    let port = node_port(37);
    let chroma = std::env::var("ORCH_TEST_CHROMA_BIN").expect(
        "ORCH_TEST_CHROMA_BIN is set: run `scripts/chroma-venv up` and \
         `eval \"$(scripts/chroma-venv env)\"` (scripts/test does both)",
    );
    let bin = Path::new(&chroma).parent().unwrap().display().to_string();
    // Its data in a directory of the test's (the nodes share this file system), to be
    // read back afterwards with Chroma's own client, with no server.
    let data = setup.dir.path().join("chroma-data");
    let recipe = setup.recipe(
        "chroma.yaml",
        &format!(
            "name: chroma\nservices:\n  - name: vdb\n    type: chroma\n    ports: [{port}]\n    options: {{path: '{}'}}\n    environment: {{PATH: '{bin}:/usr/local/bin:/usr/bin:/bin'}}\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\nclients:\n  - name: vectors\n    workload_type: chroma\n    resources: {{slurm: {{extra_args: ['--nodelist=node2']}}}}\n    target_service: {{name: vdb}}\n    parameters: {{op: [insert, query], dimension: 64, batch_size: 50, documents: 500, k: 10, concurrency: 2, requests: 40}}\n",
            data.display()
        ),
    );
    let outcome = setup.run_ok(&recipe);
    assert_ne!(
        jobs_of(&outcome, "service")[0]["node"],
        jobs_of(&outcome, "client")[0]["node"]
    );
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    assert_eq!(report["services"][0]["driver"], "chroma", "{report:#}");
    assert!(
        report["service_versions"]["vdb"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{report:#}"
    );
    let dir = Path::new(outcome["results_dir"].as_str().unwrap()).join("vectors/results");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let mut ops = Vec::new();
    for run in index["runs"].as_array().unwrap() {
        let summary = dir.join(run["dir"].as_str().unwrap()).join("summary.json");
        let s: Value = serde_json::from_str(&std::fs::read_to_string(summary).unwrap()).unwrap();
        assert_eq!(
            (
                s["requests_completed"].as_u64(),
                s["requests_failed"].as_u64()
            ),
            (Some(40), Some(0)),
            "{s:#}"
        );
        match s["parameters"]["op"].as_str() {
            Some("insert") => {
                assert_eq!(s["unit"], "vectors");
                assert_eq!(s["items_completed"], 2000, "{s:#}");
                // Chroma's own count of the collection grew by as much.
                assert_eq!(s["server_counters"]["collection_count"], 2000, "{s:#}");
            }
            Some("query") => {
                assert_eq!(s["unit"], "results");
                assert_eq!(s["items_completed"], 400, "k results per query: {s:#}");
            }
            other => panic!("a run of {other:?}: {s:#}"),
        }
        ops.push(s["parameters"]["op"].as_str().unwrap().to_owned());
    }
    ops.sort();
    assert_eq!(ops, ["insert", "query"]);
    let log = std::fs::read_to_string(
        Path::new(outcome["results_dir"].as_str().unwrap()).join("vectors/stdout.log"),
    )
    .unwrap();
    assert!(log.contains("vectors: 2000 in "), "{log}");
    assert!(log.contains("results: 400 in "), "{log}");
    assert!(
        log.contains("the server counted: collection_count +2000"),
        "{log}"
    );
    // What Chroma stored, read by its own Python client from the data directory.
    let python = Path::new(&chroma).with_file_name("python");
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, chromadb\n\
             c = chromadb.PersistentClient(path=sys.argv[1])\n\
             print(c.get_collection('orchestrator-insert-d64').count(), c.get_collection('orchestrator-d64-n500').count())",
        ])
        .arg(&data)
        .env("ANONYMIZED_TELEMETRY", "False")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "2000 500");
}

#[test]
fn a_prometheus_service_on_node1_scrapes_a_node_exporter_on_node2() {
    let setup = Setup::cluster("prometheus");
    let port = node_port(41);
    let exporter = node_port(43);
    // Debian's prometheus, run natively on the configuration the driver writes; the
    // client runs Debian's node exporter on node2 (one of Prometheus's `targets`) and
    // asks Prometheus, through its HTTP API, what it scraped.
    let script = format!(
        "mkdir -p results; prometheus-node-exporter --web.listen-address=0.0.0.0:{exporter} >/dev/null 2>&1 & ne=$!; sleep 8; \
         curl -sf \"http://$TARGET_HOST:$TARGET_PORT/api/v1/query?query=up\" > results/up.json; \
         curl -sf \"http://$TARGET_HOST:$TARGET_PORT/api/v1/query?query=count(node_cpu_seconds_total)\" > results/cpu.json; \
         kill $ne"
    );
    let recipe = setup.recipe(
        "prometheus.yaml",
        &format!(
            "name: prometheus\nservices:\n  - name: prom\n    type: prometheus\n    ports: [{port}]\n    options: {{scrape_interval: 1s, targets: ['node2:{exporter}']}}\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\nclients:\n  - name: ask\n    command: sh\n    args: ['-c', '{}']\n    target_service: {{name: prom}}\n    resources: {{slurm: {{extra_args: ['--nodelist=node2']}}}}\n",
            script.replace('\'', "''")
        ),
    );
    let outcome = setup.run_ok(&recipe);
    assert_eq!(
        jobs_of(&outcome, "service")[0]["node"],
        "node1",
        "{outcome:#}"
    );
    assert_eq!(
        jobs_of(&outcome, "client")[0]["node"],
        "node2",
        "{outcome:#}"
    );
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    assert_eq!(report["services"][0]["driver"], "prometheus", "{report:#}");
    assert!(
        report["service_versions"]["prom"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.")),
        "{report:#}"
    );
    let dir = Path::new(outcome["results_dir"].as_str().unwrap()).join("ask/results");
    let up: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("up.json")).unwrap()).unwrap();
    let mut seen: Vec<(String, String, String)> = up["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["job"].as_str().unwrap().to_owned(),
                r["metric"]["instance"].as_str().unwrap().to_owned(),
                r["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    // Itself and the node exporter on node2, both up.
    assert_eq!(
        seen,
        [
            (
                "prometheus".to_owned(),
                format!("localhost:{port}"),
                "1".to_owned()
            ),
            (
                "targets".to_owned(),
                format!("node2:{exporter}"),
                "1".to_owned()
            ),
        ]
    );
    let cpu: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cpu.json")).unwrap()).unwrap();
    let series: u64 = cpu["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(series > 0, "node2's CPU series were scraped: {cpu}");
}

/// Issue #15: `monitoring: prometheus` for a whole session. The orchestrator adds a
/// Prometheus (Debian's, as a SLURM job), every job registers its node's exporter
/// (Debian's `prometheus-node-exporter`, started beside it) and the workload client its
/// live metrics; a second client asks Prometheus's HTTP API, while the load runs, what
/// it scrapes; the report holds the series Prometheus answered before it stopped, and
/// nothing of the monitoring is left running.
#[test]
fn a_monitored_session_has_prometheus_scrape_its_clients_and_nodes_into_the_report() {
    let setup = Setup::cluster("monitoring");
    let port = node_port(51);
    let exporter = node_port(53);
    // Until every target is up (Prometheus itself, the client's two replicas, each
    // registering itself, the nodes: node1 to node3), at most 20 s; then what
    // Prometheus has.
    let ask = "mkdir -p results; api=\"http://$TARGET_HOST:$TARGET_PORT/api/v1/query\"; \
         for i in $(seq 40); do curl -sf \"$api?query=count(up==1)\" | grep -qE '\"6\"]' && break; sleep 0.5; done; \
         curl -sf \"$api?query=up\" > results/up.json; \
         curl -sf \"$api?query=orchestrator_requests_total\" > results/requests.json";
    let recipe = setup.recipe(
        "monitored.yaml",
        &format!(
            "name: monitored\nmonitoring:\n  scrape_interval: 1s\n  node_exporter_port: {exporter}\nservices:\n  - name: kv\n    command: redis-server\n    args: [--port, {port}, --save, '', --protected-mode, 'no']\n    ports: [{port}]\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\nclients:\n  - name: load\n    workload_type: redis\n    replicas: 2\n    duration: 15s\n    resources: {{slurm: {{extra_args: ['--nodelist=node2,node3']}}}}\n    target_service: {{name: kv}}\n    parameters: {{op: get, keyspace: 100, concurrency: 2, rate: 300}}\n  - name: ask\n    command: sh\n    args: ['-c', '{}']\n    target_service: {{name: prometheus}}\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\n",
            ask.replace('\'', "''")
        ),
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let outcome = json(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("monitoring: Prometheus ") && !stderr.contains("monitoring: WARNING"),
        "{stderr}"
    );
    let mut services: Vec<&str> = outcome["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    services.sort_unstable();
    assert_eq!(services, ["kv", "prometheus"], "{outcome:#}");
    let session = outcome["session_id"].as_str().unwrap().to_owned();
    let results = Path::new(outcome["results_dir"].as_str().unwrap()).to_path_buf();

    // What Prometheus said while the load ran, asked by the `ask` client.
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(results.join("ask/results").join(f)).unwrap())
            .unwrap()
    };
    let up = read("up.json");
    let mut up_now: Vec<(String, String, String)> = up["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["job"].as_str().unwrap().to_owned(),
                r["metric"]["instance"].as_str().unwrap().to_owned(),
                r["value"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    up_now.sort();
    let prometheus_at = up_now
        .iter()
        .find(|(job, _, _)| job == "prometheus")
        .map(|(_, i, _)| i.clone())
        .expect("Prometheus scrapes itself");
    let prometheus_node = jobs_of(&outcome, "service")
        .iter()
        .find(|j| {
            j["job_name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-prometheus"))
        })
        .and_then(|j| j["node"].as_str())
        .unwrap()
        .to_owned();
    let mut nodes = vec![
        "node1".to_owned(),
        "node2".to_owned(),
        "node3".to_owned(),
        prometheus_node,
    ];
    nodes.sort();
    nodes.dedup();
    // Replica 0 (node2) on the client's metrics port, replica 1 (node3) on the next.
    let mut expected = vec![
        ("client".to_owned(), "node2:9464".to_owned(), "1".to_owned()),
        ("client".to_owned(), "node3:9465".to_owned(), "1".to_owned()),
    ];
    expected.extend(
        nodes
            .iter()
            .map(|n| ("node".to_owned(), format!("{n}:{exporter}"), "1".to_owned())),
    );
    expected.push(("prometheus".to_owned(), prometheus_at, "1".to_owned()));
    assert_eq!(up_now, expected, "{up:#}");
    let during: f64 = read("requests.json")["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"]["client"] == "load" && r["metric"]["outcome"] == "ok")
        .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(
        during > 0.0,
        "the client's requests were scraped while it ran"
    );

    // The report's snapshot: the same series, over the whole session.
    let report = json(&setup.run(&["report", &session, "--format", "json"]));
    let snapshot = &report["prometheus"];
    assert!(
        snapshot["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("2.")),
        "{snapshot:#}"
    );
    let query = |name: &str| -> Vec<Value> {
        snapshot["queries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == name)
            .unwrap_or_else(|| panic!("no query {name}: {snapshot:#}"))["series"]
            .as_array()
            .unwrap()
            .clone()
    };
    let totals = query("client requests (total)");
    let load = totals
        .iter()
        .find(|s| s["labels"]["client"] == "load" && s["labels"]["outcome"] == "ok")
        .unwrap_or_else(|| panic!("{totals:?}"));
    let highest = load["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_f64().unwrap())
        .fold(0.0, f64::max);
    let run = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["client"] == "load")
        .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let completed = run["summary"]["requests_completed"].as_u64().unwrap() as f64;
    // Scraped every second: no more than the client made, at least what was seen
    // mid-run, and within the last two seconds' requests (300/s) of its total.
    assert!(
        highest >= during && highest <= completed && highest >= completed - 2.0 * 300.0 - 50.0,
        "scraped {highest}, mid-run {during}, the client counted {completed}"
    );
    let cpu = query("node CPU busy (%)");
    let mut cpu_nodes: Vec<&str> = cpu
        .iter()
        .map(|s| s["labels"]["node"].as_str().unwrap())
        .collect();
    cpu_nodes.sort_unstable();
    assert_eq!(cpu_nodes, nodes, "{cpu:?}");
    assert!(
        cpu.iter()
            .all(|s| s["values"].as_array().unwrap().len() >= 3),
        "{cpu:?}"
    );
    // Grafana's provisioning beside it, which parses.
    let grafana = results.join("grafana");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(grafana.join(format!("dashboards/session-{session}.json")))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        dashboard["panels"].as_array().unwrap().len(),
        snapshot["queries"].as_array().unwrap().len()
    );
    let datasource: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(grafana.join("provisioning/datasources/orchestrator.yaml"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(datasource["datasources"][0]["type"], "prometheus");

    // Nothing of the monitoring runs on: no Prometheus of this session, no exporter.
    assert_nothing_runs(&format!("{session}|listen-address=:{exporter}"));
}

/// No process on this machine (the test cluster's nodes are its namespaces) has a
/// command line matching `pattern` (an extended regular expression, as pgrep reads it).
fn assert_nothing_runs(pattern: &str) {
    let left = Command::new("pgrep")
        .args(["-af", pattern])
        .output()
        .unwrap();
    assert!(
        text(&left.stdout).trim().is_empty(),
        "left running: {}",
        text(&left.stdout)
    );
}

/// Issue #14: the original tool's two steps. A service runs (here monitored, so its
/// node runs a node exporter); then the original's Prometheus recipe names it in
/// `monitoring_targets` by `service_id`, and the Prometheus it starts scrapes that
/// service's node under the `job_name` given.
#[test]
fn the_original_monitoring_targets_scrape_a_service_that_runs_by_its_id() {
    use std::io::{BufRead, BufReader, Read, Write};
    let setup = Setup::cluster("monitoring-targets");
    let port = node_port(55);
    let exporter = node_port(57);
    let prometheus = node_port(59);
    let first_prometheus = node_port(61);
    let first = setup.recipe(
        "kv.yaml",
        &format!(
            "name: kv\nmonitoring: {{service: p, node_exporter_port: {exporter}}}\nservices:\n  - name: kv\n    command: redis-server\n    args: [--port, {port}, --save, '', --protected-mode, 'no']\n    ports: [{port}]\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\n  - name: p\n    type: prometheus\n    ports: [{first_prometheus}]\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\n"
        ),
    );
    let kv = setup.run_ok(&first);
    let kv_session = kv["session_id"].as_str().unwrap().to_owned();
    let kv_id = kv["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "kv")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = setup.recipe(
        "prometheus_with_targets.yaml",
        &format!(
            "service:\n  name: watcher\n  monitoring_targets:\n    - service_id: \"{kv_id}\"\n      job_name: \"kv-node\"\n      port: {exporter}\n  resources:\n    mem: 1G\n    slurm: {{extra_args: ['--nodelist=node2']}}\n  ports:\n    - {prometheus}\n"
        ),
    );
    let watcher = setup.run_ok(&second);
    let watcher_session = watcher["session_id"].as_str().unwrap().to_owned();
    // Prometheus's own API, asked from here: the job `kv-node` is kv's node exporter.
    let mut seen = Value::Null;
    for _ in 0..40 {
        let out = Command::new("curl")
            .args([
                "-sf",
                &format!(
                    "http://node2:{prometheus}/api/v1/query?query=up%7Bjob%3D%22kv-node%22%7D"
                ),
            ])
            .output()
            .unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            if v["data"]["result"][0]["value"][1] == "1" {
                seen = v;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        seen["data"]["result"][0]["metric"]["instance"],
        format!("node1:{exporter}"),
        "{seen:#}"
    );
    assert_eq!(
        seen["data"]["result"][0]["metric"]["service"],
        kv_id.as_str()
    );
    // `orchestrator tunnel` reaches its UI and API from here, through the SSH server.
    let watcher_id = watcher["services"][0]["id"].as_str().unwrap().to_owned();
    let mut tunnel = KillOnDrop(setup.spawn(&["tunnel", &watcher_id]));
    let mut stderr = BufReader::new(tunnel.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains(&format!(":{prometheus} (service watcher)")),
        "{line}"
    );
    let local = line.split_whitespace().nth(1).unwrap().to_owned();
    let mut stream = std::net::TcpStream::connect(&local).unwrap();
    stream
        .write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(tunnel);
    for session in [&watcher_session, &kv_session] {
        let stop = setup.run(&["stop", "--session", session]);
        assert!(stop.status.success(), "{}", text(&stop.stderr));
    }
    assert_nothing_runs(&format!(
        "{watcher_session}|{kv_session}|listen-address=:{exporter}"
    ));
}

#[test]
fn a_redis_workload_client_on_node2_loads_redis_on_node1() {
    let setup = Setup::cluster("redis-workload");
    let port = node_port(7);
    let recipe = setup.recipe(
        "redis-engine.yaml",
        &format!(
            "name: redis-engine\nservices:\n  - name: kv\n    command: redis-server\n    args: [--port, {port}, --save, '', --protected-mode, 'no']\n    ports: [{port}]\n    resources: {{slurm: {{extra_args: ['--nodelist=node1']}}}}\nclients:\n  - name: load\n    workload_type: redis\n    resources: {{slurm: {{extra_args: ['--nodelist=node2']}}}}\n    target_service: {{name: kv}}\n    parameters: {{op: mixed, keyspace: 100, concurrency: 4, requests: 2000}}\n"
        ),
    );
    let outcome = setup.run_ok(&recipe);
    assert_ne!(
        jobs_of(&outcome, "service")[0]["node"],
        jobs_of(&outcome, "client")[0]["node"]
    );
    let dir = Path::new(outcome["results_dir"].as_str().unwrap()).join("load/results");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["driver"], "redis");
    assert_eq!(summary["requests_completed"], 2000);
    assert_eq!(summary["requests_failed"], 0);
    let stored: String = setup
        .database()
        .query_row("SELECT path FROM results WHERE name = 'summary'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(stored.ends_with("load/results/summary.json"), "{stored}");
}

/// nginx as a service of the test cluster on node1 (one worker, a 512-byte page, its
/// `stub_status` at /status), its files in `dir`; loaded by client `load` with
/// `replicas: 2` on the other nodes, with these workload parameters.
fn nginx_replicas_recipe(dir: &Path, port: u16, parameters: &str) -> String {
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "x".repeat(512)).unwrap();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; \
             uwsgi_temp_path {d}; scgi_temp_path {d}; keepalive_requests 1000000;\n\
             server {{ listen 0.0.0.0:{port}; root {d}/www; location = /status {{ stub_status; }} }} }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    format!(
        "name: replicas\nservices:\n  - name: web\n    command: /usr/sbin/nginx\n    args: [-c, {conf}, -e, {err}]\n    ports: [{port}]\n    resources: {{cpus: 1, slurm: {{time: '00:05:00', extra_args: ['--nodelist=node1']}}}}\n    health_check: {{endpoint: /, interval: 1s, retries: 20}}\nclients:\n  - name: load\n    workload_type: http\n    replicas: 2\n    parameters: {parameters}\n    resources: {{cpus: 1, slurm: {{time: '00:05:00', extra_args: ['--exclude=node1']}}}}\n",
        conf = conf.display(),
        err = dir.join("error.log").display(),
    )
}

/// Client `load`'s results directory and its (merged) `summary.json`.
fn load_results(outcome: &Value) -> (PathBuf, Value) {
    let results = Path::new(outcome["results_dir"].as_str().unwrap()).join("load/results");
    let summary =
        serde_json::from_str(&std::fs::read_to_string(results.join("summary.json")).unwrap())
            .unwrap();
    (results, summary)
}

/// nginx's own count of the requests it handled (its `stub_status`).
fn nginx_requests(host: &str, port: u16) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect((host, port)).expect("nginx answers");
    s.write_all(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    // "Active connections: 1 \n server accepts handled requests\n 5 5 17 \n..."
    let line = answer
        .lines()
        .skip_while(|l| !l.contains("accepts handled requests"))
        .nth(1)
        .unwrap_or_else(|| panic!("a stub_status page: {answer}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// The exact `q` quantile (nearest rank) of `values`.
fn exact_quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Issue #18: a client of two replicas on node2 and node3 loads nginx on node1 as one:
/// the merged count is the replicas' sum and nginx's own; the merged p50 and p99 are
/// those of the union of both replicas' requests; an open loop of 2,000 req/s in total
/// is split in two halves that add up.
#[test]
fn replicas_on_two_nodes_load_one_service_as_one_client_with_exact_merged_figures() {
    let setup = Setup::cluster("replicas");
    let port = u16::try_from(node_port(181)).unwrap();
    let recipe = nginx_replicas_recipe(
        setup.dir.path(),
        port,
        "{concurrency: 4, duration_s: 4, path: /}",
    );
    let recipe = setup.recipe("replicas.yaml", &recipe);
    let out = setup.run(&["run", &recipe, "--keep-services", "--json"]);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    let outcome = json(&out);
    let served = nginx_requests("10.99.0.11", port);
    let stopped = setup.run(&["stop", "--all"]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let (results, summary) = load_results(&outcome);
    let rows = summary["replicas"].as_array().expect("a row per replica");
    assert_eq!(rows.len(), 2, "{summary:#}");
    let mut nodes: Vec<&str> = rows.iter().map(|r| r["node"].as_str().unwrap()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node2", "node3"], "one replica on each other node");
    let completed = summary["requests_completed"].as_u64().unwrap();
    let sum: u64 = rows
        .iter()
        .map(|r| r["requests_completed"].as_u64().unwrap())
        .sum();
    assert_eq!(completed, sum, "the merged count is the replicas' sum");
    assert!(completed > 1000, "{summary:#}");
    assert_eq!(summary["requests_failed"], 0);
    // nginx counted every request, the health checks (a few) and the status page.
    assert!(
        served >= completed && served - completed <= 25,
        "nginx served {served}, the replicas completed {completed}"
    );
    // The merged percentiles are the union's, within the histogram's 0.1 %.
    let mut latencies = Vec::new();
    for r in 0..2 {
        let lines =
            std::fs::read_to_string(results.join(format!("replicas/{r}/requests.jsonl"))).unwrap();
        for line in lines.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v.get("warmup").is_none() && v.get("error").is_none() {
                latencies.push(v["latency_ms"].as_f64().unwrap());
            }
        }
    }
    assert_eq!(latencies.len() as u64, completed);
    for (q, key) in [(0.5, "p50"), (0.99, "p99")] {
        let exact = exact_quantile(&mut latencies, q);
        let merged = summary["latency_ms"][key].as_f64().unwrap();
        assert!(
            (merged - exact).abs() <= exact * 0.001 + 0.001,
            "{key}: merged {merged} ms, union {exact} ms"
        );
    }
    let merged_lines = std::fs::read_to_string(results.join("requests.jsonl")).unwrap();
    assert_eq!(merged_lines.lines().count(), latencies.len());
    let report = setup.run(&["report"]);
    let markdown = text(&report.stdout);
    assert!(markdown.contains("Merged from 2 replicas"), "{markdown}");

    // An open loop: 2,000 req/s in total at constant arrivals, half from each replica
    // (against a new nginx, on a port the one stopped above may still hold a moment).
    let open = nginx_replicas_recipe(
        setup.dir.path(),
        u16::try_from(node_port(183)).unwrap(),
        "{rate: 2000, arrival: constant, duration_s: 4, path: /}",
    );
    let open = setup.recipe("open.yaml", &open);
    let outcome = setup.run_ok(&open);
    let (_, summary) = load_results(&outcome);
    let achieved = summary["achieved_rate"].as_f64().unwrap();
    assert!(
        (achieved - 2000.0).abs() <= 20.0,
        "achieved {achieved} req/s of 2,000: {summary:#}"
    );
    assert_eq!(summary["target_rate"], 2000.0);
    for row in summary["replicas"].as_array().unwrap() {
        let share = row["achieved_rate"].as_f64().unwrap();
        assert!(
            (share - 1000.0).abs() <= 20.0,
            "a replica sent {share}: {row}"
        );
        assert!(row.get("outlier").is_none(), "{row}");
    }
    assert!(squeue_names("replicas").is_empty());
}

/// Issue #18: a replica killed while it loads fails its client, and the failure names
/// it and its node; nothing is left running.
#[test]
fn a_killed_replica_fails_its_client_and_is_named() {
    let setup = Setup::cluster("replica-killed");
    let port = u16::try_from(node_port(182)).unwrap();
    let recipe = nginx_replicas_recipe(
        setup.dir.path(),
        port,
        "{concurrency: 2, duration_s: 30, path: /}",
    );
    let recipe = setup.recipe("killed.yaml", &recipe);
    let child = KillOnDrop(setup.spawn(&["run", &recipe, "--json"]));
    let status = setup.wait_status("the client to run", Duration::from_secs(120), |s| {
        s["clients"]["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["job_state"] == "RUNNING"))
    });
    let session = status["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = format!(
        "{}/replica-killed-{}",
        env("ORCH_TEST_WORK_DIR"),
        std::process::id()
    );
    let info_path =
        Path::new(&work).join(format!("{session}/load/results/replicas/1/replica.json"));
    let start = Instant::now();
    let info: Value = loop {
        if let Some(info) = std::fs::read_to_string(&info_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
        {
            break info;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {}",
            info_path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(3));
    let node = info["node"].as_str().unwrap().to_owned();
    let killed = Command::new("kill")
        .args(["-KILL", &info["pid"].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (code, _outcome, stderr) = finish(child);
    assert_eq!(code, Some(1), "{stderr}");
    let stderr = stderr.replace(['│', '\n'], " ");
    let stderr = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        stderr.contains(&format!("replica 1 of 2 on {node} did not finish")),
        "{stderr}"
    );
    assert!(
        squeue_names(&session).is_empty(),
        "{:?}",
        squeue_names(&session)
    );
}

/// Issue #18, on the embedded local default: replicas are processes of the one job,
/// each with its share, merged into one result.
#[test]
fn replicas_run_as_processes_of_one_local_job_and_merge() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "local-replicas.yaml",
        &http_recipe(
            port,
            "",
            "{rate: 300, arrival: constant, duration_s: 2, path: /}",
        )
        .replace("  - name: load\n", "  - name: load\n    replicas: 3\n"),
    );
    let outcome = setup.run_ok(&recipe);
    let (_, summary) = load_results(&outcome);
    let rows = summary["replicas"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{summary:#}");
    for row in rows {
        assert!(
            (row["target_rate"].as_f64().unwrap() - 100.0).abs() < 1e-9,
            "{row}"
        );
    }
    let sum: u64 = rows
        .iter()
        .map(|r| r["requests_completed"].as_u64().unwrap())
        .sum();
    assert_eq!(summary["requests_completed"].as_u64().unwrap(), sum);
    // 300 req/s for 2 s, give or take the last one of each replica.
    assert!((597..=603).contains(&sum), "{sum}");
    assert!(setup.live_local_jobs().is_empty());
}

/// Issue #18: a service matrix of two settings is two deployments, each a session of
/// its own loaded by the clients, and one comparison of their runs.
#[test]
fn a_service_matrix_runs_one_deployment_per_setting_and_compares_them() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "matrix.yaml",
        &http_recipe(port, "", "{concurrency: 2, duration_s: 1, path: /}").replace(
            "    ports: [",
            "    matrix:\n      environment: [{MODE: one}, {MODE: two}]\n    ports: [",
        ),
    );
    let dry = setup.run(&["run", "--dry-run", &recipe]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let scripts = text(&dry.stdout);
    assert!(
        scripts.contains("# ===== deployment 1/2: web.environment={\"MODE\":\"one\"} =====")
            && scripts.contains("export MODE=one")
            && scripts.contains("export MODE=two"),
        "{scripts}"
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let document = json(&out);
    let deployments = document["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2, "{document:#}");
    for (d, mode) in deployments.iter().zip(["one", "two"]) {
        assert_eq!(d["state"], "completed", "{d}");
        assert_eq!(d["settings"][0]["value"]["MODE"], mode);
        // The service of that session ran with its setting.
        let script = walk(&setup.dir.path().join("work"))
            .into_iter()
            .find(|p| {
                p.ends_with("web/job.sh")
                    && p.to_string_lossy()
                        .contains(d["session_id"].as_str().unwrap())
            })
            .expect("the service's job script");
        assert!(
            std::fs::read_to_string(&script)
                .unwrap()
                .contains(&format!("export MODE={mode}")),
            "{}",
            script.display()
        );
    }
    let runs = document["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{document:#}");
    assert!(
        runs.iter()
            .all(|r| r["figures"]["requests_per_second"].as_f64().unwrap() > 0.0),
        "{document:#}"
    );
    let first = deployments[0]["session_id"].as_str().unwrap();
    let markdown =
        std::fs::read_to_string(setup.dir.path().join(format!("results/matrix-{first}.md")))
            .unwrap();
    assert!(
        markdown.contains("| 2 | web.environment={\"MODE\":\"two\"} | load |"),
        "{markdown}"
    );
    assert!(
        !markdown.contains("tokens/s"),
        "no LLM figures for an HTTP service"
    );
    // The page: the table, and a chart per figure across the deployments.
    let page = std::fs::read_to_string(
        setup
            .dir
            .path()
            .join(format!("results/matrix-{first}.html")),
    )
    .unwrap();
    assert!(page.contains("<table>") && page.contains("MODE"), "{page}");
    assert_eq!(page.matches("<svg").count(), 4, "req/s, errors, p50, p99");
    assert!(page.contains("<figcaption>p99 ms</figcaption>") && page.contains("\n#2\n</text>"));
    assert!(setup.live_local_jobs().is_empty());
    // Services kept with a matrix would pile up: refused.
    let keep = setup.run(&["run", &recipe, "--keep-services"]);
    assert_eq!(keep.status.code(), Some(2));
}

/// A real LLM server deployed as a service job by the `llama-cpp` driver
/// (llama-cpp-python serving SmolLM2-135M, the venv `scripts/llm-server` builds),
/// loaded by the `openai` workload from a dataset file next to the recipe: the file is
/// found from the recipe's directory, copied into the client's job directory, and its
/// prompts of an exact number of tokens are that many for the server.
#[test]
fn a_llama_cpp_service_is_loaded_from_a_dataset_uploaded_with_the_client() {
    let setup = Setup::cluster("llama-cpp-dataset");
    let port = node_port(17);
    let data = setup.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut lines = String::new();
    for (i, tokens) in [24, 40, 56].iter().enumerate() {
        lines.push_str(&format!(
            "{{\"input_tokens\": {tokens}, \"output_tokens\": {}}}\n",
            2 + i
        ));
    }
    lines.push_str("{\"prompt\": \"The capital of France is\", \"output_tokens\": 3}\n");
    std::fs::write(data.join("prompts.jsonl"), lines).unwrap();
    let recipe = setup.recipe(
        "llm.yaml",
        &format!(
            r#"name: llm-dataset
services:
  - name: llm
    type: llama-cpp
    command: {python}
    ports: [{port}]
    options: {{model: {gguf}, server: llama-cpp-python, alias: smollm2, ctx_size: 1024, threads: 1}}
    resources: {{cpus: 1, slurm: {{time: "00:05:00"}}}}
    health_check: {{interval: 1s, timeout: 5s, retries: 120}}
clients:
  - name: load
    workload_type: openai
    target_service: {{name: llm}}
    resources: {{cpus: 1, slurm: {{time: "00:05:00"}}}}
    parameters: {{model: smollm2, dataset: data/prompts.jsonl, stream: false, requests: 8}}
"#,
            python = env("ORCH_TEST_LLM_PYTHON"),
            gguf = env("ORCH_TEST_LLM_GGUF"),
        ),
    );
    let out = setup.run(&["run", &recipe, "--json"]);
    let outcome = json(&out);
    assert!(out.status.success(), "run failed: {}", text(&out.stderr));
    assert_eq!(outcome["state"], "completed", "{outcome:#}");
    let (results, summary) = load_results(&outcome);
    assert_eq!(summary["requests_completed"], 8, "{summary:#}");
    // Six of the eight were built to a length (a seeded shuffle sends the four
    // entries twice), and the server counted each at it.
    let check = &summary["input_length_check"];
    assert_eq!(
        (check["requests"].as_u64(), check["matched"].as_u64()),
        (Some(6), Some(6)),
        "{summary:#}"
    );
    // Each request asked for its entry's output length, and got it (the model may
    // stop early only on the free prompt).
    let requests = std::fs::read_to_string(results.join("requests.jsonl")).unwrap();
    for line in requests.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let out = r["output_tokens"].as_u64().unwrap();
        match r["input_expected"].as_u64() {
            Some(24) => assert_eq!(out, 2, "{r}"),
            Some(40) => assert_eq!(out, 3, "{r}"),
            Some(56) => assert_eq!(out, 4, "{r}"),
            Some(other) => panic!("a length no entry has: {other}"),
            None => assert!(out <= 3, "{r}"),
        }
    }
    // The job read its copy of the file, in its own directory on the cluster.
    let upload: String = setup
        .database()
        .query_row(
            "SELECT detail FROM events WHERE action = 'dataset.upload'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        upload.contains("/load/datasets/0-prompts.jsonl"),
        "{upload}"
    );
    assert!(
        upload.starts_with(
            &data
                .join("prompts.jsonl")
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        ),
        "{upload}"
    );
}

/// `load: sweep` in a client job: synchronous, throughput, then open-loop rates
/// between, each a run of its own in the results and the state store, and the
/// report's section says what the sweep found.
#[test]
fn a_load_sweep_runs_its_points_and_the_report_shows_the_curve() {
    let setup = Setup::local();
    let port = free_port();
    let recipe = setup.recipe(
        "sweep.yaml",
        &http_recipe(
            port,
            "",
            "{path: /, duration_s: 1, load: {sweep: {points: 4, max_concurrency: 4}}}",
        ),
    );
    let outcome = setup.run_ok(&recipe);
    assert_eq!(outcome["state"], "completed", "{outcome:#}");
    let results = Path::new(outcome["results_dir"].as_str().unwrap()).join("load/results");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("index.json")).unwrap())
            .unwrap();
    let kinds: Vec<&str> = index["profile"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["synchronous", "throughput", "rate", "rate"],
        "{index:#}"
    );
    // The throughput pass had its four users, the rates their open loop.
    let summary = |i: usize| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(results.join(format!("run-{i:03}/summary.json"))).unwrap(),
        )
        .unwrap()
    };
    assert_eq!(summary(1)["load"]["model"]["concurrency"], 4);
    assert_eq!(summary(1)["profile_step"], "throughput");
    assert_eq!(summary(2)["load"]["model"]["model"], "open");
    let session = outcome["session_id"].as_str().unwrap();
    let report = setup.run(&["report", session]);
    let report = text(&report.stdout);
    assert!(
        report.contains("### Load profile of `load`: sweep"),
        "{report}"
    );
    assert!(
        report.contains("| 2 | throughput | 4 users |")
            || report.contains("| 2 **knee** | throughput | 4 users |"),
        "{report}"
    );
    assert!(
        report.contains("The knee of the load–latency curve is run")
            || report.contains("**no knee"),
        "{report}"
    );
    // Its runs share their parameters but not their load: they are no repeats.
    assert!(!report.contains("### Repeats"), "{report}");
    assert_eq!(index["points"], serde_json::json!([]), "{index:#}");
}

/// CPU package energy per request and per token: the service job's monitor reads the
/// packages' RAPL counters, and the report takes their growth over each run's measured
/// period. This machine has no readable RAPL: `ORCH_POWERCAP_DIR` points the monitor at
/// a **fake** `/sys/class/powercap` tree laid out as the kernel's (a package zone and
/// its DRAM subzone, which must not count), whose package counter a background loop
/// advances at 100 W (µJ since it started × 100, every 20 ms), starting 3 s before it
/// wraps at a real Xeon's `max_energy_range_uj`; the energy of a run must be
/// 100 W × its measured seconds.
#[test]
fn rapl_counters_become_cpu_energy_per_request_in_the_report() {
    let setup = Setup::local();
    let port = free_port();
    let zone = setup.dir.path().join("powercap/intel-rapl:0");
    let dram = zone.join("intel-rapl:0:0");
    std::fs::create_dir_all(&dram).unwrap();
    let max = 262_143_328_850u64;
    for (dir, name) in [(&zone, "package-0"), (&dram, "dram")] {
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
        std::fs::write(dir.join("energy_uj"), "0\n").unwrap();
    }
    // The DRAM subzone's counter stands still at a value that would show if counted.
    std::fs::write(dram.join("energy_uj"), "5000000000\n").unwrap();
    let script = format!(
        "start=${{EPOCHREALTIME/./}}; while :; do now=${{EPOCHREALTIME/./}}; \
         echo $(( ({max} - 300000000 + (now - start) * 100) % {max} )) > e.tmp && mv e.tmp energy_uj; \
         sleep 0.02; done"
    );
    let counter = Command::new("bash")
        .args(["-c", &script])
        .current_dir(&zone)
        .spawn()
        .unwrap();
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _counter = Stop(counter);
    let recipe = setup.recipe(
        "rapl.yaml",
        &format!(
            "name: rapl\nservices:\n  - name: web\n    command: orchestrator\n    args: [demo, http-server, --port, {port}]\n    ports: [{port}]\n    monitor: {{interval: 1s}}\n    health_check: {{endpoint: /health, interval: 1s, retries: 20}}\nclients:\n  - name: load\n    workload_type: http\n    duration: 4s\n    parameters: {{concurrency: 2, path: /}}\n"
        ),
    );
    let out = setup
        .command(&["run", &recipe, "--json"])
        .env("ORCH_POWERCAP_DIR", setup.dir.path().join("powercap"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json(&setup.run(&["report", "--format", "json"]));
    let run = &report["runs"][0];
    let energy = &run["cpu_energy"];
    let seconds = run["summary"]["measured_seconds"].as_f64().unwrap();
    let joules = energy["joules"]
        .as_f64()
        .unwrap_or_else(|| panic!("no CPU energy: {report:#}"));
    assert!(
        (joules / (100.0 * seconds) - 1.0).abs() < 0.03,
        "{joules} J over {seconds} s: {energy}"
    );
    assert_eq!(
        energy["packages"], 1,
        "the DRAM subzone is no package: {energy}"
    );
    let requests = run["summary"]["requests_completed"].as_f64().unwrap();
    assert!((energy["joules_per_request"].as_f64().unwrap() - joules / requests).abs() < 1e-9);
    assert!(run.get("energy").is_none(), "no GPU here: {run:#}");
    let markdown = text(&setup.run(&["report"]).stdout);
    assert!(
        markdown.contains("CPU energy (the RAPL counters of the service node's 1 package over"),
        "{markdown}"
    );
}

/// GPU energy per request and per token: the service job's monitor samples
/// `nvidia-smi`'s power, and the report integrates it over each run's measured period.
/// No GPU here: `nvidia-smi` is a **fake** on the job's PATH that prints the fields the
/// monitor asks for in the format the real one printed on an H200
/// (`orchestrator-core/tests/fixtures/nvidia-smi/`), at a constant 300 W, so the
/// energy of a run must be 300 W × its measured seconds.
#[test]
fn gpu_power_becomes_energy_per_request_in_the_report() {
    let setup = Setup::local();
    let port = free_port();
    let bin = setup.dir.path().join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("nvidia-smi");
    std::fs::write(
        &fake,
        "#!/bin/sh\n# A fake nvidia-smi (no GPU on this machine): one H200 at 300 W.\n\
         echo 'timestamp, index, utilization.gpu [%], utilization.memory [%], memory.used [MiB], memory.total [MiB], power.draw [W], temperature.gpu, clocks.current.sm [MHz]'\n\
         echo \"$(date '+%Y/%m/%d %H:%M:%S.000'), 0, 100 %, 22 %, 1011 MiB, 143771 MiB, 300.00 W, 55, 1470 MHz\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let recipe = setup.recipe(
        "gpu.yaml",
        &format!(
            "name: gpu\nservices:\n  - name: web\n    command: orchestrator\n    args: [demo, http-server, --port, {port}]\n    ports: [{port}]\n    environment: {{CUDA_VISIBLE_DEVICES: '0'}}\n    monitor: {{interval: 1s}}\n    health_check: {{endpoint: /health, interval: 1s, retries: 20}}\nclients:\n  - name: load\n    workload_type: http\n    duration: 4s\n    parameters: {{concurrency: 2, path: /}}\n"
        ),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = setup
        .command(&["run", &recipe, "--json"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = json(&setup.run(&["report", "--format", "json"]));
    let run = &report["runs"][0];
    let energy = &run["energy"];
    let seconds = run["summary"]["measured_seconds"].as_f64().unwrap();
    let joules = energy["gpu_joules"]
        .as_f64()
        .unwrap_or_else(|| panic!("no energy: {report:#}"));
    // The service is stopped as soon as its client ends: its last sample may come
    // a round before the end (a second or two on a busy machine), and is held.
    assert!(energy["held_s"].as_f64().unwrap() < seconds, "{energy}");
    assert!(
        (joules / (300.0 * seconds) - 1.0).abs() < 0.01,
        "{joules} J over {seconds} s: {energy}"
    );
    let requests = run["summary"]["requests_completed"].as_f64().unwrap();
    assert!((energy["joules_per_request"].as_f64().unwrap() - joules / requests).abs() < 1e-9);
    assert_eq!(energy["gpus"], 1);
    let markdown = text(&setup.run(&["report"]).stdout);
    assert!(
        markdown.contains("Energy (the service's GPU power.draw over the measured period, 1 GPU"),
        "{markdown}"
    );
}
