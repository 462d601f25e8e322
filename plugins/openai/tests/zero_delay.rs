//! The zero-delay server that `scripts/bench-llm-peers` loads the peers with (this
//! crate's `zero_delay_server` example, a stand-in that answers without a model), and
//! `scripts/sse-wire`, which reads the wire that the benchmark checks every tool
//! against: the `openai` workload streams from the server while tcpdump captures the
//! loopback, and the client's samples, the server's own count (`GET /stats`) and the
//! capture must agree on every request and token.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::workload::{self, LoadSpec, TokenSource};
use orchestrator_plugin_openai::OpenAiWorkload;
use serde_json::{Value, json};

/// The example's binary, built beside this test (`cargo test` builds a package's
/// examples).
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap();
    let path = profile.join("examples/zero_delay_server");
    assert!(
        path.exists(),
        "{} is missing: cargo build -p orchestrator-plugin-openai --example zero_delay_server",
        path.display()
    );
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server, running until dropped, and the address it printed.
fn zero_delay_server() -> (Killed, String) {
    let mut child = Command::new(example())
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    (Killed(child), addr.trim().to_owned())
}

/// The `openai` workload with `params` against `url`: `users` in a closed loop,
/// `requests` in all, every request kept.
async fn run(url: &str, params: &Value, users: u32, requests: u64) -> workload::RunResult {
    let workload = Arc::new(OpenAiWorkload::new(url, params.as_object().unwrap()).unwrap());
    let spec = LoadSpec {
        keep_samples: true,
        start_at: None,
        phase: Duration::ZERO,
        ..LoadSpec::closed(users, requests)
    };
    workload::run(workload, &spec).await.unwrap()
}

fn get(url: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sSf", "--max-time", "10", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{url}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_the_zero_delay_server_and_the_wire_agree_on_every_token() {
    let (server, addr) = zero_delay_server();
    let url = format!("http://{addr}");
    let port = addr.rsplit(':').next().unwrap().to_owned();
    assert_eq!(
        get(&format!("{url}/v1/models"))["data"][0]["id"],
        "zero-delay"
    );

    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("wire.pcap");
    let dump = Command::new("tcpdump")
        .args([
            "-i",
            "lo",
            "--immediate-mode",
            "-B",
            "16384",
            "-s",
            "0",
            "-U",
            "-w",
        ])
        .arg(&pcap)
        .arg(format!("tcp port {port}"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump runs (scripts/test-cluster installs it)");
    let mut dump = Killed(dump);
    let mut line = String::new();
    let mut err = BufReader::new(dump.0.stderr.take().unwrap());
    err.read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "tcpdump: {line}");
    // It says so as it starts to capture, a moment before packets reach it.
    std::thread::sleep(Duration::from_millis(300));

    let params =
        json!({"model": "zero-delay", "max_tokens": 24, "stream": true, "prompt_length": 8});
    let result = run(&url, &params, 4, 40).await;
    assert_eq!(
        result.summary.requests_completed, 40,
        "{:?}",
        result.summary.errors
    );
    for sample in &result.samples {
        assert_eq!(sample.output_tokens, Some(24), "{sample:?}");
        assert_eq!(sample.token_source, TokenSource::Server, "usage is sent");
    }
    let stats = get(&format!("{url}/stats"));
    assert_eq!(
        (stats["answers"].as_u64(), stats["tokens"].as_u64()),
        (Some(40), Some(960))
    );
    assert!(stats["last_ns"].as_u64() >= stats["first_ns"].as_u64());

    std::thread::sleep(Duration::from_millis(300));
    // SIGINT: tcpdump writes out what it holds and exits.
    Command::new("kill")
        .args(["-INT", &dump.0.id().to_string()])
        .status()
        .unwrap();
    dump.0.wait().unwrap();
    drop(server);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sse-wire");
    let out = Command::new(&script)
        .arg(&pcap)
        .arg(&port)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let posts: Vec<&Value> = rows.iter().filter(|r| r["method"] == "POST").collect();
    assert_eq!(posts.len(), 40, "{rows:?}");
    for row in &posts {
        assert_eq!(row["path"], "/v1/completions");
        assert_eq!(row["status"], 200);
        let tokens = row["token_ns"].as_array().unwrap();
        assert_eq!(tokens.len(), 24, "{row}");
        assert_eq!(row["usage"]["completion_tokens"], 24);
        // text events, then usage, then [DONE]
        assert_eq!(row["events"], 26, "{row}");
        let (start, sent, head) = (&row["start_ns"], &row["sent_ns"], &row["head_ns"]);
        assert!(
            start.as_u64() <= sent.as_u64() && sent.as_u64() <= head.as_u64(),
            "{row}"
        );
        assert!(
            tokens[0].as_u64() >= head.as_u64() && row["end_ns"].as_u64() >= tokens[23].as_u64()
        );
    }
    // A run of 4 users on keep-alive connections: 4 connections carry all 40 requests.
    let mut conns: Vec<u64> = posts.iter().filter_map(|r| r["conn"].as_u64()).collect();
    conns.sort_unstable();
    conns.dedup();
    assert_eq!(conns.len(), 4, "{conns:?}");
}

/// Chat sessions of 3 turns carry their history: the server counts each request's
/// prompt words over all its messages (3 + 8 words a question, 24 an answer), so a
/// session's requests have 11, 46 and 81, and the next session starts again at 11.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_turns_carry_the_sessions_questions_and_answers() {
    let (_server, addr) = zero_delay_server();
    let params = json!({"endpoint": "chat", "turns": 3, "max_tokens": 24, "prompt_length": 8});
    let url = format!("http://{addr}");
    let result = run(&url, &params, 1, 7).await;
    let inputs: Vec<Option<u64>> = result.samples.iter().map(|s| s.input_tokens).collect();
    let want = [11, 46, 81, 11, 46, 81, 11].map(Some);
    assert_eq!(inputs, want, "{:?}", result.summary.errors);
}

#[test]
fn sse_wire_passes_its_own_test_on_a_capture_it_builds() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sse-wire");
    let out = Command::new(script).arg("--self-test").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sse-wire self-test: ok"
    );
}
