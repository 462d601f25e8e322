//! The workload engine with the `http` driver against real servers: Debian's nginx
//! (started here with a config of its own), and small servers written in the test for
//! behaviour nginx cannot be asked for (a stall, a fixed service time).

use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_core::workload::{self, Arrival, LoadModel, LoadSpec, Slo, Workload};
use orchestrator_plugin_http::HttpWorkload;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx with one worker serving a 512-byte file, in a process group of its own, stopped
/// when dropped the way nginx expects (TERM to the master, which stops its worker).
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start() -> Self {
        Self::with_keepalive_requests(1_000_000)
    }

    /// nginx that closes a connection after `keepalive_requests` requests on it (its
    /// default is 1,000).
    fn with_keepalive_requests(keepalive_requests: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::create_dir_all(dir.path().join("www")).unwrap();
        std::fs::write(dir.path().join("www/index.html"), "x".repeat(512)).unwrap();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; \
                 uwsgi_temp_path {d}; scgi_temp_path {d}; keepalive_requests {keepalive_requests};\n\
                 server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .process_group(0)
            .args([
                "-c",
                conf.to_str().unwrap(),
                "-e",
                dir.path().join("error.log").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx starts (scripts/test-cluster up installs nginx-light)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    /// TERM to the master (a SIGKILL would leave its worker running, still listening),
    /// then, should anything of the group outlive 10 s, KILL to the whole group.
    fn drop(&mut self) {
        let signal = |name: &str, target: String| {
            let _ = Command::new("kill")
                .args([name, "--", &target])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM", self.child.id().to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("-KILL", format!("-{}", self.child.id()));
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP server in this process; `delay(now)` says how long to hold each
/// answer.
async fn test_server(delay: impl Fn(Instant) -> Duration + Send + Sync + 'static) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let delay = Arc::new(delay);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let delay = delay.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut have = Vec::new();
                loop {
                    while !have.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = have.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    have.drain(..end + 4);
                    tokio::time::sleep(delay(Instant::now())).await;
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn http(url: &str, params: Value) -> Arc<dyn Workload> {
    let params: Map<String, Value> = serde_json::from_value(params).unwrap();
    Arc::new(HttpWorkload::new(url, &params).unwrap())
}

fn spec(model: LoadModel, duration: Option<f64>, requests: Option<u64>) -> LoadSpec {
    LoadSpec {
        model,
        duration: duration.map(Duration::from_secs_f64),
        requests,
        warmup: Duration::ZERO,
        slo: Slo::default(),
        keep_samples: true,
        start_at: None,
        phase: Duration::ZERO,
        seed: 1,
        implicit_model: false,
        ramp_up: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_against_nginx_counts_every_request_and_byte() {
    let nginx = Nginx::start();
    let result = workload::run(
        http(&nginx.url("/index.html"), serde_json::json!({})),
        &spec(LoadModel::Closed { concurrency: 4 }, None, Some(2000)),
    )
    .await
    .unwrap();
    let s = &result.summary;
    assert_eq!((s.requests_completed, s.requests_failed), (2000, 0));
    assert_eq!(s.bytes_received, 2000 * 512);
    assert_eq!(result.samples.len(), 2000, "one JSON line per request");
    let mut numbers: Vec<u64> = result.samples.iter().map(|s| s.n).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (0..2000).collect::<Vec<_>>());
    assert!(s.latency_ms.p50 > 0.0 && s.latency_ms.p50 <= s.latency_ms.p99);
    assert!(s.latency_ms.p99 <= s.latency_ms.max);

    let missing = workload::run(
        http(&nginx.url("/missing"), serde_json::json!({})),
        &spec(LoadModel::Closed { concurrency: 2 }, None, Some(50)),
    )
    .await
    .unwrap();
    assert_eq!(missing.summary.requests_failed, 50);
    assert_eq!(missing.summary.errors["http_404"], 50);
}

/// nginx closes a connection after its 1,000th request (`Connection: close` on the
/// answer); the driver opens a new one for the next request, so none fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_closing_after_n_requests_costs_no_failure() {
    let nginx = Nginx::with_keepalive_requests(100);
    let result = workload::run(
        http(&nginx.url("/index.html"), serde_json::json!({})),
        &spec(LoadModel::Closed { concurrency: 2 }, None, Some(1050)),
    )
    .await
    .unwrap();
    let s = &result.summary;
    assert_eq!(
        (s.requests_completed, s.requests_failed),
        (1050, 0),
        "{:?}",
        s.errors
    );
    assert_eq!(s.bytes_received, 1050 * 512);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_keeps_its_rate() {
    let nginx = Nginx::start();
    let model = LoadModel::Open {
        rate: 500.0,
        arrival: Arrival::Constant,
        max_concurrency: None,
    };
    let result = workload::run(
        http(&nginx.url("/index.html"), serde_json::json!({})),
        &spec(model, Some(2.0), None),
    )
    .await
    .unwrap();
    let s = &result.summary;
    let achieved = s.achieved_rate.unwrap();
    assert!(
        (achieved - 500.0).abs() / 500.0 < 0.01,
        "achieved {achieved} req/s for 500"
    );
    assert_eq!(s.requests_dropped, Some(0));
    assert_eq!(s.requests_failed, 0);
    assert!(
        s.schedule_lag_ms.unwrap().p50 < 1.0,
        "lag {:?}",
        s.schedule_lag_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_shows_a_stall_that_a_closed_loop_hides() {
    // The server stops answering for one second, 1 s after the first request, as a
    // garbage-collection pause would; every request waiting then is held until it ends.
    let started: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
    let s2 = started.clone();
    let port = test_server(move |now| {
        let t0 = *s2.get_or_init(|| now);
        let (from, to) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        if now >= from && now < to {
            to - now
        } else {
            Duration::ZERO
        }
    })
    .await;
    let url = format!("http://127.0.0.1:{port}/");
    let open = workload::run(
        http(&url, serde_json::json!({})),
        &spec(
            LoadModel::Open {
                rate: 200.0,
                arrival: Arrival::Constant,
                max_concurrency: None,
            },
            Some(3.0),
            None,
        ),
    )
    .await
    .unwrap();
    // A third of the schedule falls into the stall: p90 sees it.
    assert!(
        open.summary.latency_ms.p90 > 300.0,
        "open p90 {:?}",
        open.summary.latency_ms
    );
    assert!(open.summary.latency_ms.max > 900.0);

    started.get().unwrap(); // the stall happened
    let port = {
        let started: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
        test_server(move |now| {
            let t0 = *started.get_or_init(|| now);
            let (from, to) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
            if now >= from && now < to {
                to - now
            } else {
                Duration::ZERO
            }
        })
        .await
    };
    let url = format!("http://127.0.0.1:{port}/");
    let closed = workload::run(
        http(&url, serde_json::json!({})),
        &spec(LoadModel::Closed { concurrency: 1 }, Some(3.0), None),
    )
    .await
    .unwrap();
    // One user waits out the stall in one request and sends nothing meanwhile: the
    // stall is one sample among thousands, invisible below the maximum. This is
    // coordinated omission, and why open-loop figures are the ones to trust.
    assert!(closed.summary.latency_ms.max > 900.0);
    assert!(
        closed.summary.latency_ms.p99 < 50.0,
        "closed p99 {:?}",
        closed.summary.latency_ms
    );
    assert!(closed.summary.requests_completed > 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_cap_drops_and_counts_what_it_cannot_send() {
    let port = test_server(|_| Duration::from_millis(100)).await;
    let model = LoadModel::Open {
        rate: 100.0,
        arrival: Arrival::Constant,
        max_concurrency: Some(2),
    };
    let result = workload::run(
        http(&format!("http://127.0.0.1:{port}/"), serde_json::json!({})),
        &spec(model, Some(2.0), None),
    )
    .await
    .unwrap();
    let s = &result.summary;
    let dropped = s.requests_dropped.unwrap();
    // Two in flight for 100 ms each: about 20 per second get through, 80 are dropped.
    assert!((30..=50).contains(&s.requests_completed), "{s:?}");
    assert!(dropped > 120, "dropped {dropped}");
    assert!(((s.requests_completed + dropped) as f64 - 200.0).abs() <= 2.0);
}

#[tokio::test]
async fn an_unreachable_target_fails_before_any_load() {
    let port = free_port();
    let error = workload::run(
        http(&format!("http://127.0.0.1:{port}/"), serde_json::json!({})),
        &spec(LoadModel::Closed { concurrency: 1 }, Some(1.0), None),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("Connection refused"), "{error}");
}

/// `ramp_up_s`: an open loop's rate climbs linearly from 0 over the ramp (its requests
/// due at `R·t²/2·ramp` while it lasts), then holds; the ramp is unmeasured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_ramps_its_rate_up_linearly_then_holds_it() {
    let port = test_server(|_| Duration::ZERO).await;
    let model = LoadModel::Open {
        rate: 200.0,
        arrival: Arrival::Constant,
        max_concurrency: None,
    };
    let load = LoadSpec {
        ramp_up: Duration::from_secs(2),
        ..spec(model, Some(1.0), None)
    };
    let result = workload::run(
        http(&format!("http://127.0.0.1:{port}/"), serde_json::json!({})),
        &load,
    )
    .await
    .unwrap();
    let sent_by = |s: f64| {
        result
            .samples
            .iter()
            .filter(|x| (x.intended_us as f64) < s * 1e6)
            .count() as f64
    };
    // R·t²/(2·ramp): 12.5 by 0.5 s, 50 by 1 s, 200 by 2 s (the ramp's end), and then
    // 200 a second.
    for (t, expected) in [
        (0.5, 12.5),
        (1.0, 50.0),
        (1.5, 112.5),
        (2.0, 200.0),
        (2.5, 300.0),
    ] {
        let got = sent_by(t);
        assert!(
            (got - expected).abs() <= 1.5,
            "{got} requests due by {t} s, not {expected}"
        );
    }
    // The ramp was the warm-up: the measured second holds the full rate.
    let s = &result.summary;
    assert_eq!(s.requests_warmup, 200, "{s:?}");
    assert!(
        (s.achieved_rate.unwrap() - 200.0).abs() < 2.0,
        "{:?}",
        s.achieved_rate
    );
}

/// A closed loop's users start one after another over the ramp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loops_users_start_one_after_another_over_the_ramp() {
    let port = test_server(|_| Duration::from_millis(20)).await;
    let load = LoadSpec {
        ramp_up: Duration::from_secs(1),
        ..spec(LoadModel::Closed { concurrency: 4 }, Some(0.5), None)
    };
    let result = workload::run(
        http(&format!("http://127.0.0.1:{port}/"), serde_json::json!({})),
        &load,
    )
    .await
    .unwrap();
    // The first requests: one user at 0, the second from 250 ms, ... (every request of
    // the first 250 ms from one user: at most 13 of 20 ms each).
    let early = result
        .samples
        .iter()
        .filter(|x| x.intended_us < 240_000)
        .count();
    assert!(
        (10..=13).contains(&early),
        "{early} requests in the first 240 ms"
    );
    let firsts: Vec<u64> = [0u64, 250_000, 500_000, 750_000]
        .iter()
        .map(|from| {
            result
                .samples
                .iter()
                .filter(|x| x.intended_us >= *from)
                .map(|x| x.intended_us)
                .min()
                .unwrap()
        })
        .collect();
    for (k, first) in firsts.iter().enumerate() {
        let start = k as u64 * 250_000;
        assert!(
            *first >= start && *first < start + 25_000,
            "user {k} first sent at {first} µs"
        );
    }
    // All four measured after the ramp.
    assert!(
        result.summary.requests_completed >= 4 * 20,
        "{:?}",
        result.summary
    );
}
