//! Health probes against real servers on this machine: a Redis `PING` against
//! redis-server (installed by `scripts/test-cluster up`), with and without a password,
//! and a `tcp://` connect; each through the local shell, as on the local scheduler.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orchestrator_core::{HealthProbe, ProbeKind};
use orchestrator_recipes::ServiceRecipe;
use orchestrator_ssh::LocalShell;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Redis(Child);

impl Redis {
    fn start(port: u16, extra: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(extra)
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
        Self(child)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The probe of a service recipe whose health check names `endpoint`.
fn probe_for(endpoint: &str, port: u16) -> HealthProbe {
    let service: ServiceRecipe = serde_json::from_value(serde_json::json!({
        "name": "r", "command": "redis-server", "ports": [port],
        "health_check": {"endpoint": endpoint, "timeout": 2},
    }))
    .unwrap();
    HealthProbe::for_service(&service).unwrap()
}

#[tokio::test]
async fn a_redis_endpoint_is_probed_with_ping() {
    let port = free_port();
    let probe = probe_for(&format!("redis://localhost:{port}"), port);
    assert_eq!(probe.check, ProbeKind::Redis { host: None });
    assert_eq!(probe.port, Some(port));
    assert_eq!(
        probe.describe("localhost", port),
        format!("Redis PING localhost:{port}")
    );
    let shell = LocalShell::new();

    let down = probe.probe(&shell, "127.0.0.1", port).await;
    assert!(!down.healthy, "{down:?}");

    let _redis = Redis::start(port, &[]);
    let up = probe.probe(&shell, "127.0.0.1", port).await;
    assert!(up.healthy, "{up:?}");
    assert_eq!(up.response, "PING answered +PONG");
}

#[tokio::test]
async fn a_redis_that_wants_a_password_is_up() {
    let port = free_port();
    let _redis = Redis::start(port, &["--requirepass", "s3cret"]);
    let probe = probe_for(&format!("redis://localhost:{port}"), port);
    let up = probe.probe(&LocalShell::new(), "127.0.0.1", port).await;
    assert!(up.healthy, "{up:?}");
    assert!(up.response.starts_with("PING answered -NOAUTH"), "{up:?}");
}

#[tokio::test]
async fn a_server_that_is_not_redis_fails_the_ping() {
    // An HTTP server answers PING with an HTTP error, not +PONG.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let (mut stream, _) = listener.accept().await.unwrap();
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            .await;
    });
    let probe = probe_for(&format!("redis://localhost:{port}"), port);
    let result = probe.probe(&LocalShell::new(), "127.0.0.1", port).await;
    assert!(!result.healthy, "{result:?}");
    assert!(result.response.contains("HTTP/1.1 400"), "{result:?}");
}

#[tokio::test]
async fn a_tcp_endpoint_is_a_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = probe_for(&format!("tcp://localhost:{port}"), port);
    assert_eq!(probe.check, ProbeKind::Tcp { host: None });
    let up = probe.probe(&LocalShell::new(), "127.0.0.1", port).await;
    assert!(up.healthy, "{up:?}");
    drop(listener);
    let down = probe.probe(&LocalShell::new(), "127.0.0.1", port).await;
    assert!(!down.healthy, "{down:?}");
}
