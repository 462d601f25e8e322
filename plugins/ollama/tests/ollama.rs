//! The `ollama` workload against a test server that replays transcripts written to
//! Ollama's documented API (see `transcripts/README.md`: Ollama itself cannot be
//! installed here). Each NDJSON line is sent 20 ms after the previous one, chunked, as
//! Ollama streams, so the timings the driver reports can be checked against a known
//! schedule.

use std::sync::Arc;
use std::time::Duration;

use orchestrator_core::workload::{self, LoadModel, LoadSpec, Slo, TokenSource, Workload};
use orchestrator_plugin_ollama::OllamaWorkload;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GAP: Duration = Duration::from_millis(20);

fn transcript(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/transcripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Serves `/api/tags` and replays the transcripts for `/api/generate` and `/api/chat`.
async fn replay_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut have = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    // The request head, then its body by Content-Length.
                    let end = loop {
                        if let Some(end) = have.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end;
                        }
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => have.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&have[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while have.len() < end + 4 + length {
                        let n = stream.read(&mut buf).await.unwrap();
                        have.extend_from_slice(&buf[..n]);
                    }
                    let body: Vec<u8> = have.drain(..end + 4 + length).skip(end + 4).collect();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    if path == "/api/tags" {
                        let tags = transcript("tags.json");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{tags}",
                            tags.len()
                        );
                        stream.write_all(answer.as_bytes()).await.unwrap();
                        continue;
                    }
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(
                        request["options"]["num_predict"], 16,
                        "max_tokens becomes num_predict"
                    );
                    let file = if path == "/api/chat" {
                        "chat_stream.ndjson"
                    } else {
                        "generate_stream.ndjson"
                    };
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await
                        .unwrap();
                    for line in transcript(file).lines() {
                        tokio::time::sleep(GAP).await;
                        let line = format!("{line}\n");
                        let chunk = format!("{:x}\r\n{line}\r\n", line.len());
                        if stream.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    stream.write_all(b"0\r\n\r\n").await.unwrap();
                }
            });
        }
    });
    port
}

fn workload(port: u16, params: Value) -> Arc<dyn Workload> {
    Arc::new(
        OllamaWorkload::new(
            &format!("http://127.0.0.1:{port}"),
            params.as_object().unwrap(),
        )
        .unwrap(),
    )
}

fn three_requests() -> LoadSpec {
    LoadSpec {
        model: LoadModel::Closed { concurrency: 1 },
        duration: None,
        requests: Some(3),
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_streams_give_ttft_itl_and_the_servers_token_counts() {
    let port = replay_server().await;
    let result = workload::run(
        workload(
            port,
            serde_json::json!({"model": "llama3.2", "max_tokens": 16}),
        ),
        &three_requests(),
    )
    .await
    .unwrap();
    let s = &result.summary;
    assert_eq!(
        (s.requests_completed, s.requests_failed),
        (3, 0),
        "{:?}",
        s.errors
    );
    // The first text arrives one gap after the request: TTFT ≈ 20 ms.
    let ttft = s.ttft_ms.unwrap();
    assert!(
        // The server waits one gap before the first line: TTFT cannot be shorter; a busy
        // test machine can make it longer, so the upper bound is loose.
        ttft.p50 >= ms(GAP) * 0.9 && ttft.p50 < ms(GAP) * 10.0,
        "ttft {ttft:?}"
    );
    // Five text chunks per answer: four gaps of ≈ 20 ms each.
    let itl = s.itl_ms.unwrap();
    assert_eq!(itl.count, 12);
    assert!(
        // A late read can merge two lines (a gap of ~0) and lengthen the next one.
        itl.p50 >= ms(GAP) * 0.5 && itl.p50 < ms(GAP) * 10.0,
        "itl {itl:?}"
    );
    // Tokens from the final object (eval_count = 5), said to come from the server.
    assert_eq!(s.output_tokens, Some(15));
    assert_eq!(s.token_counts.unwrap().from_server, 15);
    let sample = &result.samples[0];
    assert_eq!(sample.token_source, TokenSource::Server);
    assert_eq!(sample.server.as_ref().unwrap()["eval_duration"], 80_000_000);
    // TPOT = (E2E - TTFT) / (tokens - 1): the remaining five gaps (4 text + the final
    // object) over 4 tokens ≈ 25 ms.
    let tpot = sample.tpot_ms.unwrap();
    let expected = (sample.latency_ms - sample.ttft_ms.unwrap()) / 4.0;
    assert!((tpot - expected).abs() < 1e-3, "tpot {tpot} vs {expected}");
    // Five more lines after the first text, 20 ms apart, over 4 tokens: 25 ms, less
    // when the first text was read late (the client's own delay moves into TTFT).
    assert!(tpot > ms(GAP) * 0.5 && tpot < ms(GAP) * 10.0, "tpot {tpot}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_read_message_content() {
    let port = replay_server().await;
    let result = workload::run(
        workload(
            port,
            serde_json::json!({"model": "llama3.2:latest", "endpoint": "chat", "max_tokens": 16}),
        ),
        &three_requests(),
    )
    .await
    .unwrap();
    assert_eq!(result.summary.requests_completed, 3);
    assert_eq!(result.summary.output_tokens, Some(12));
    assert_eq!(result.summary.itl_ms.unwrap().count, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_the_server_does_not_have_fails_before_any_load() {
    let port = replay_server().await;
    let error = workload::run(
        workload(
            port,
            serde_json::json!({"model": "llama2:7b", "max_tokens": 16}),
        ),
        &three_requests(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot reach the target: the server has no model `llama2:7b`; it has: llama3.2:latest (pull it first: ollama pull llama2:7b)"
    );
}

#[test]
fn parameters_are_checked() {
    let p = |v: Value| v.as_object().unwrap().clone();
    let no_model = OllamaWorkload::new("http://h:11434", &p(serde_json::json!({})))
        .err()
        .unwrap();
    assert!(no_model.message.contains("needs a `model`"));
    let typo = OllamaWorkload::new(
        "http://h:11434",
        &p(serde_json::json!({"model": "m", "max_token": 5})),
    )
    .err()
    .unwrap();
    assert!(
        typo.message.contains("unknown field `max_token`"),
        "{}",
        typo.message
    );
}
