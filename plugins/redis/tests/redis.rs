//! The `redis` workload against Debian's real redis-server, started here.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::workload::{self, LoadSpec, Workload};
use orchestrator_plugin_redis::RedisWorkload;
use serde_json::Value;

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/test-cluster up installs it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn workload(&self, params: Value) -> Arc<dyn Workload> {
        let url = format!("redis://127.0.0.1:{}", self.port);
        Arc::new(RedisWorkload::new(&url, params.as_object().unwrap()).unwrap())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn closed(concurrency: u32, requests: u64) -> LoadSpec {
    LoadSpec::closed(concurrency, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_then_get_reads_back_every_value() {
    let redis = Redis::start();
    let set = workload::run(
        redis.workload(serde_json::json!({"op": "set", "value_size": 100, "keyspace": 10})),
        &closed(4, 1000),
    )
    .await
    .unwrap();
    assert_eq!(
        (set.summary.requests_completed, set.summary.requests_failed),
        (1000, 0)
    );
    let get = workload::run(
        redis.workload(serde_json::json!({"op": "get", "keyspace": 10})),
        &closed(4, 1000),
    )
    .await
    .unwrap();
    assert_eq!(get.summary.requests_completed, 1000);
    assert_eq!(
        get.summary.bytes_received,
        1000 * 100,
        "every GET found a 100-byte value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_sends_many_commands_per_request() {
    let redis = Redis::start();
    let result = workload::run(
        redis.workload(serde_json::json!({"op": "set", "pipeline": 16, "keyspace": 100000})),
        &closed(2, 100),
    )
    .await
    .unwrap();
    assert_eq!(result.summary.requests_completed, 100);
    // 100 requests of 16 SETs, keys numbered without overlap.
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "dbsize"])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1600");
}

#[tokio::test]
async fn an_unreachable_server_fails_before_any_load() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let w: Arc<dyn Workload> = Arc::new(RedisWorkload::new(&url, &serde_json::Map::new()).unwrap());
    let error = workload::run(w, &closed(1, 10)).await.unwrap_err();
    assert!(
        error.to_string().starts_with("cannot reach the target"),
        "{error}"
    );
}
