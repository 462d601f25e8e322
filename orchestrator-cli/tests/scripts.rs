//! The project's own test scripts: `scripts/llm-server up` proves its server with a real
//! completion before it reports success (tested with a FAKE server, `fakes/llm-server`,
//! standing in for llama.cpp through `ORCH_LLM_SERVER_CMD`), and `scripts/leftovers`
//! finds a process that a test left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `pid` runs: a zombie does not (where PID 1 does not reap, orphans stay
/// zombies).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// `scripts/llm-server ACTION` with the fake server in `mode`, in a cache of its own.
fn llm_server(cache: &Path, action: &str, mode: &str) -> Output {
    let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/llm-server");
    Command::new(repo().join("scripts/llm-server"))
        .arg(action)
        .env("ORCH_LLM_CACHE", cache)
        .env("ORCH_LLM_SERVER_CMD", &fake)
        .env("FAKE_LLM_MODE", mode)
        .stdin(Stdio::null())
        .output()
        .expect("scripts/llm-server runs")
}

/// The pid of a fake server still serving from `cache`'s port, if one is.
fn fake_pid(cache: &Path) -> Option<u32> {
    let port = std::fs::read_to_string(cache.join("run/port")).ok()?;
    let out = Command::new("pgrep")
        .args([
            "-f",
            &format!("fakes/llm-server --model .* --port {} ", port.trim()),
        ])
        .output()
        .ok()?;
    text(&out.stdout).lines().next()?.trim().parse().ok()
}

#[test]
fn llm_server_up_fails_when_the_server_dies_on_its_first_real_completion() {
    let cache = tempfile::tempdir().unwrap();
    let out = llm_server(cache.path(), "up", "die");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no exports: {}", text(&out.stdout));
    assert!(
        stderr.contains("error: the server died during its first real completion"),
        "{stderr}"
    );
    // The log's tail comes with it: here the fake's last words.
    assert!(
        stderr.contains("a prompt of 11 words: exiting without an answer"),
        "{stderr}"
    );
    assert!(
        !cache.path().join("run/pid").exists(),
        "no pid of a dead server"
    );
    assert_eq!(fake_pid(cache.path()), None, "nothing left running");
}

#[test]
fn llm_server_up_fails_when_the_completion_is_too_short() {
    let cache = tempfile::tempdir().unwrap();
    let out = llm_server(cache.path(), "up", "short");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("answered a real completion with 2 tokens, expected at least 16"),
        "{stderr}"
    );
    // The server that answered wrongly is stopped, not left up.
    assert_eq!(fake_pid(cache.path()), None, "nothing left running");
}

#[test]
fn llm_server_up_exports_a_server_that_answered_and_down_stops_it() {
    let cache = tempfile::tempdir().unwrap();
    let out = llm_server(cache.path(), "up", "ok");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("a real completion: 24 tokens"), "{stderr}");
    let stdout = text(&out.stdout);
    let export = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}='")))
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{name} in {stdout}"))
            .to_owned()
    };
    let pid: u32 = export("ORCH_TEST_LLM_PID").parse().unwrap();
    assert!(alive(pid));
    let port = std::fs::read_to_string(cache.path().join("run/port")).unwrap();
    assert_eq!(
        export("ORCH_TEST_LLM_URL"),
        format!("http://127.0.0.1:{}", port.trim())
    );
    // A second `up` finds it running and starts nothing.
    let again = llm_server(cache.path(), "up", "ok");
    assert_eq!(text(&again.stdout), stdout);

    let down = llm_server(cache.path(), "down", "ok");
    assert!(down.status.success(), "{}", text(&down.stderr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "down stops the server");
}

/// Runs `sh -c SCRIPT` and returns the pid it prints.
fn spawn_printing_pid(script: &str) -> u32 {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn leftovers_names_an_orphan_started_after_the_snapshot_and_not_one_from_before() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("processes");
    let leftovers = repo().join("scripts/leftovers");
    // Started before the snapshot: like the test cluster's daemons, not the tests'.
    let before = spawn_printing_pid("setsid sleep 120 >/dev/null 2>&1 & echo $!");
    let status = Command::new(&leftovers)
        .arg("snapshot")
        .arg(&snapshot)
        .status()
        .unwrap();
    assert!(status.success());
    // Left behind: its parent exits, so it is PID 1's.
    let orphan = spawn_printing_pid("setsid sleep 120 >/dev/null 2>&1 & echo $!");
    let check = || {
        Command::new(&leftovers)
            .arg("check")
            .arg(&snapshot)
            .arg("0")
            // No SLURM_CONF: processes only, not the cluster's jobs of other tests.
            .env_remove("SLURM_CONF")
            .output()
            .unwrap()
    };
    let out = check();
    let stderr = text(&out.stderr);
    let listed = |stderr: &str, pid: u32| {
        stderr
            .lines()
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string()))
    };
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        listed(&stderr, orphan),
        "the orphan {orphan} is listed: {stderr}"
    );
    assert!(
        !listed(&stderr, before),
        "{before} is older than the snapshot: {stderr}"
    );

    let _ = Command::new("kill").arg(orphan.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(orphan) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = check();
    let stderr = text(&out.stderr);
    assert!(!listed(&stderr, orphan), "{stderr}");
    let _ = Command::new("kill").arg(before.to_string()).status();
}
