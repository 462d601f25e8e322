//! The `chroma` workload against Chroma's real server (`chroma run`, from the PyPI
//! package `scripts/chroma-venv` installs), one server per test on a free port with
//! its data in a temporary directory. What Chroma holds afterwards is asked with
//! Chroma's own Python client, not with this crate's code.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::workload::{self, LoadSpec, Workload, WorkloadError};
use orchestrator_plugin_chroma::ChromaWorkload;
use serde_json::{Value, json};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is set: run `scripts/chroma-venv up` and \
             `eval \"$(scripts/chroma-venv env)\"` (scripts/test does both)"
        )
    })
}

/// Whether `GET /api/v2/heartbeat` answers 200.
fn heartbeat(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /api/v2/heartbeat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

struct Chroma {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Chroma {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(env("ORCH_TEST_CHROMA_BIN"))
            .args([
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--path",
            ])
            .arg(dir.path())
            .env("ANONYMIZED_TELEMETRY", "False")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chroma starts");
        // Ready once its heartbeat answers 200 (it listens a little before).
        let started = Instant::now();
        while !heartbeat(port) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "chroma did not come up"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn workload(&self, params: Value) -> Arc<dyn Workload> {
        Arc::new(ChromaWorkload::new(&self.url(), params.as_object().unwrap()).unwrap())
    }

    /// Runs `code` with Chroma's Python client connected as `client`; its stdout.
    fn python(&self, code: &str) -> String {
        let script = format!(
            "import chromadb\nclient = chromadb.HttpClient(host='127.0.0.1', port={})\n{code}",
            self.port
        );
        let out = Command::new(env("ORCH_TEST_CHROMA_PYTHON"))
            .args(["-c", &script])
            .env("ANONYMIZED_TELEMETRY", "False")
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Chroma {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserted_vectors_are_what_chroma_counts() {
    let chroma = Chroma::start();
    let params =
        json!({"op": "insert", "dimension": 32, "batch_size": 50, "collection": "ins-test"});
    let result = workload::run(chroma.workload(params.clone()), &LoadSpec::closed(4, 40))
        .await
        .unwrap();
    let s = &result.summary;
    assert_eq!(
        (s.requests_completed, s.requests_failed),
        (40, 0),
        "{:?}",
        s.errors
    );
    assert_eq!(s.unit, Some("vectors"));
    assert_eq!(s.items_completed, Some(2000));
    let rate = s.items_per_second.unwrap();
    assert!((rate - 2000.0 / s.measured_seconds).abs() < 1e-6 * rate);
    // Chroma itself holds exactly those vectors, of that dimension.
    assert_eq!(
        chroma.python("c = client.get_collection('ins-test'); print(c.count())"),
        "2000"
    );
    assert_eq!(
        chroma.python(
            "c = client.get_collection('ins-test')\n\
             print(len(c.get(limit=1, include=['embeddings'])['embeddings'][0]))"
        ),
        "32"
    );
    assert_eq!(
        s.server_counters.as_ref().unwrap()["collection_count"],
        2000
    );
    // A second run adds vectors of its own: no id is reused.
    workload::run(chroma.workload(params), &LoadSpec::closed(2, 10))
        .await
        .unwrap();
    assert_eq!(
        chroma.python("print(client.get_collection('ins-test').count())"),
        "2500"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_get_k_neighbours_from_a_collection_filled_once() {
    let chroma = Chroma::start();
    let params =
        json!({"op": "query", "dimension": 16, "documents": 300, "batch_size": 64, "k": 7});
    let result = workload::run(chroma.workload(params.clone()), &LoadSpec::closed(3, 90))
        .await
        .unwrap();
    let s = &result.summary;
    assert_eq!(
        (s.requests_completed, s.requests_failed),
        (90, 0),
        "{:?}",
        s.errors
    );
    // k results per query, as Chroma returned them.
    assert_eq!(s.unit, Some("results"));
    assert_eq!(s.items_completed, Some(7 * 90));
    // The collection was filled to `documents` once, with ids doc-0..doc-299; the
    // queries added nothing.
    let name = "orchestrator-d16-n300";
    assert_eq!(
        chroma.python(&format!(
            "c = client.get_collection('{name}')\n\
             ids = c.get(include=[])['ids']\n\
             print(len(ids), len(set(ids)), sorted(ids, key=lambda i: int(i[4:]))[-1])"
        )),
        "300 300 doc-299"
    );
    assert_eq!(s.server_counters.as_ref().unwrap()["collection_count"], 0);
    // Used again as it is.
    workload::run(chroma.workload(params), &LoadSpec::closed(1, 5))
        .await
        .unwrap();
    assert_eq!(
        chroma.python(&format!("print(client.get_collection('{name}').count())")),
        "300"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_run_has_figures_per_operation() {
    let chroma = Chroma::start();
    let result = workload::run(
        chroma.workload(json!({
            "op": "mixed", "dimension": 8, "documents": 100, "batch_size": 10,
            "k": 5, "query_fraction": 0.25
        })),
        &LoadSpec::closed(2, 200),
    )
    .await
    .unwrap();
    let s = &result.summary;
    assert_eq!(s.requests_completed, 200, "{:?}", s.errors);
    let (inserts, queries) = (&s.operations["insert"], &s.operations["query"]);
    assert_eq!(inserts.requests_completed + queries.requests_completed, 200);
    // A quarter queries, drawn per request: 50 expected, binomial spread.
    assert!(
        (25..=80).contains(&queries.requests_completed),
        "{}",
        queries.requests_completed
    );
    assert_eq!(
        inserts.items_completed,
        Some(10 * inserts.requests_completed)
    );
    assert_eq!(
        queries.items_completed,
        Some(5 * queries.requests_completed)
    );
    assert!(inserts.latency_ms.p50 > 0.0 && queries.latency_ms.p50 > 0.0);
    // Chroma holds the documents and every inserted vector.
    assert_eq!(
        chroma.python("print(client.get_collection('orchestrator-d8-n100').count())"),
        (100 + 10 * inserts.requests_completed).to_string()
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_before_any_load() {
    let port = free_port();
    let w: Arc<dyn Workload> = Arc::new(
        ChromaWorkload::new(&format!("http://127.0.0.1:{port}"), &serde_json::Map::new()).unwrap(),
    );
    match workload::run(w, &LoadSpec::closed(1, 1)).await {
        Err(WorkloadError::Unreachable(m)) => assert!(m.contains(&port.to_string()), "{m}"),
        other => panic!("{other:?}"),
    }
}
