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

/// The login node's MariaDB (`scripts/test-cluster up`): its port, user and password.
fn mariadb() -> (u16, String, String) {
    let url = std::env::var("ORCH_TEST_MYSQL_URL").expect(
        "ORCH_TEST_MYSQL_URL is set: run `scripts/test-cluster up` and \
         `eval \"$(scripts/test-cluster env)\"` (scripts/test does both)",
    );
    let rest = url.strip_prefix("mysql://").unwrap();
    let (auth, rest) = rest.split_once('@').unwrap();
    let (user, password) = auth.split_once(':').unwrap();
    let port = rest.split_once('/').unwrap().0.rsplit_once(':').unwrap().1;
    (port.parse().unwrap(), user.into(), password.into())
}

fn login_probe(user: Option<&str>, password: &str) -> HealthProbe {
    HealthProbe {
        check: ProbeKind::Mysql {
            host: None,
            user: user.map(str::to_owned),
            password: orchestrator_core::Secret::new(password),
        },
        port: None,
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(5),
        retries: 1,
    }
}

#[tokio::test]
async fn a_mysql_probe_logs_in_to_mariadb_and_tells_its_version() {
    let (port, user, password) = mariadb();
    let shell = LocalShell::default();
    let ok = login_probe(Some(&user), &password)
        .probe(&shell, "127.0.0.1", port)
        .await;
    assert!(ok.healthy, "{}", ok.response);
    assert!(
        ok.response.starts_with("logged in to 10.11."),
        "{}",
        ok.response
    );
    let version = ok.version.expect("the greeting's version");
    assert!(version.contains("-MariaDB"), "{version}");
    assert!(!version.starts_with("5.5.5-"), "{version}");

    // A wrong password: the server's own refusal, which names the user, not the password.
    let refused = login_probe(Some(&user), "wrong-pw-1z")
        .probe(&shell, "127.0.0.1", port)
        .await;
    assert!(!refused.healthy);
    assert!(
        refused
            .response
            .contains("ERROR 1045 (28000): Access denied for user 'bench'"),
        "{}",
        refused.response
    );
    assert!(!refused.response.contains("wrong-pw-1z"));

    // No user known: the greeting alone.
    let greeted = login_probe(None, "").probe(&shell, "127.0.0.1", port).await;
    assert!(greeted.healthy, "{}", greeted.response);
    assert!(
        greeted.response.contains("no login tried"),
        "{}",
        greeted.response
    );
}

#[tokio::test]
async fn a_server_that_is_not_mysql_fails_the_login() {
    // redis-server greets nobody: the probe waits for a greeting that never comes.
    let port = free_port();
    let _redis = Redis::start(port, &[]);
    let mut probe = login_probe(Some("bench"), "x");
    probe.timeout = Duration::from_millis(500);
    let result = probe.probe(&LocalShell::default(), "127.0.0.1", port).await;
    assert!(!result.healthy);
    assert_eq!(result.response, "no answer within 500 ms");
}
