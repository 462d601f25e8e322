//! The `ollama` workload against a test server that replays transcripts written to
//! Ollama's documented API (see `transcripts/README.md`: Ollama itself cannot be
//! installed here). Each NDJSON line is sent 20 ms after the previous one, chunked, as
//! Ollama streams, so the timings the driver reports can be checked against a known
//! schedule.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::Method;
use orchestrator_core::workload::{
    self, LoadModel, LoadSpec, PROMPT_WORDS, Slo, TokenSource, Workload,
};
use orchestrator_plugin_http::{Url, exchange_json, open_http1};
use orchestrator_plugin_ollama::OllamaWorkload;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GAP: Duration = Duration::from_millis(20);

fn transcript(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/transcripts/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// What a test server answers a request with.
enum Reply {
    /// One JSON object.
    Json(String),
    /// NDJSON lines, chunked, each `GAP` after the previous one when `paced`.
    Lines { lines: Vec<String>, paced: bool },
}

/// Serves each request (its path and body) with what `answer` gives, on keep-alive
/// connections, as Ollama does.
async fn serve<F, Fut>(answer: F) -> u16
where
    F: Fn(String, Vec<u8>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let answer = answer.clone();
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
                    match answer(path, body).await {
                        Reply::Json(json) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                                json.len()
                            );
                            if stream
                                .write_all(format!("{head}{json}").as_bytes())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Reply::Lines { lines, paced } => {
                            stream
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
                                .await
                                .unwrap();
                            for line in lines {
                                if paced {
                                    tokio::time::sleep(GAP).await;
                                }
                                let line = format!("{line}\n");
                                let chunk = format!("{:x}\r\n{line}\r\n", line.len());
                                if stream.write_all(chunk.as_bytes()).await.is_err() {
                                    return;
                                }
                            }
                            stream.write_all(b"0\r\n\r\n").await.unwrap();
                        }
                    }
                }
            });
        }
    });
    port
}

/// Serves `/api/tags` and replays the transcripts for `/api/generate` and `/api/chat`.
async fn replay_server() -> u16 {
    serve(|path: String, body: Vec<u8>| async move {
        if path == "/api/tags" {
            return Reply::Json(transcript("tags.json"));
        }
        let request: Value = serde_json::from_slice(&body).unwrap();
        let file = if path == "/api/chat" {
            "chat_stream.ndjson"
        } else {
            "generate_stream.ndjson"
        };
        let lines: Vec<String> = transcript(file).lines().map(str::to_owned).collect();
        if request["stream"] == json!(false) {
            // Counting a prompt's tokens: one output token, and one object.
            assert_eq!(request["options"]["num_predict"], 1);
            return Reply::Json(lines.last().unwrap().clone());
        }
        assert_eq!(
            request["options"]["num_predict"], 16,
            "max_tokens becomes num_predict"
        );
        Reply::Lines { lines, paced: true }
    })
    .await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_input_lengths_are_refused_where_the_prompt_count_does_not_follow_the_prompt() {
    // The transcripts' prompt_eval_count is the same for every prompt.
    let port = replay_server().await;
    let params = serde_json::json!({"model": "llama3.2", "max_tokens": 16, "input_tokens": 48});
    let error = workload::run(workload(port, params), &three_requests())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("counts \" the\" as 26 tokens and \" the the\" as 26")
            && error.contains("exact input lengths cannot be built"),
        "{error}"
    );
}

/// The live LLM server's URL (llama-cpp-python serving SmolLM2-135M on this machine's
/// CPU, which `scripts/llm-server up` starts and `scripts/test` exports).
fn live_llm() -> Url {
    let url = std::env::var("ORCH_TEST_LLM_URL").unwrap_or_else(|_| {
        panic!(
            "ORCH_TEST_LLM_URL is not set: start the LLM server with \
             `eval \"$(scripts/llm-server up)\"` (scripts/test does)"
        )
    });
    Url::parse(&url).unwrap()
}

/// A stand-in for Ollama, which cannot be installed here, in front of the live LLM
/// server: the real model and its real tokenizer answer, and the stand-in only does
/// what Ollama does around them. It renders the prompt with the model's template
/// (SmolLM2's is ChatML: `/api/chat`'s messages, or `/api/generate`'s prompt as the
/// user's), sends it to the server as a completion of `num_predict` tokens, and reports
/// the server's count of the whole rendered prompt as `prompt_eval_count`, as Ollama's
/// llama-server backend does (`cache_n + prompt_n`). `asked` counts its completions.
async fn ollama_on_llama(llm: Url, asked: Arc<AtomicUsize>) -> u16 {
    serve(move |path: String, body: Vec<u8>| {
        let (llm, asked) = (llm.clone(), asked.clone());
        async move {
            if path == "/api/tags" {
                return Reply::Json(json!({"models": [{"name": "smollm2:latest"}]}).to_string());
            }
            asked.fetch_add(1, Ordering::Relaxed);
            let request: Value = serde_json::from_slice(&body).unwrap();
            let turn =
                |role: &str, content: &str| format!("<|im_start|>{role}\n{content}<|im_end|>\n");
            let mut prompt: String = match path.as_str() {
                "/api/chat" => request["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| turn(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
                    .collect(),
                _ => turn("user", request["prompt"].as_str().unwrap()),
            };
            prompt.push_str("<|im_start|>assistant\n");
            let completion = json!({"prompt": prompt, "stream": false, "temperature": 0,
                                    "max_tokens": request["options"]["num_predict"]});
            let authority = format!("{}:{}", llm.host, llm.port);
            let mut sender = open_http1(&llm, Duration::from_secs(120)).await.unwrap();
            let body = serde_json::to_vec(&completion).unwrap().into();
            let (status, answer) = exchange_json(
                &mut sender,
                &authority,
                Method::POST,
                "/v1/completions",
                body,
            )
            .await
            .unwrap();
            let answer = answer.unwrap_or_default();
            assert_eq!(status, 200, "the LLM server answered {answer}");
            let text = answer["choices"][0]["text"].as_str().unwrap().to_owned();
            let usage = &answer["usage"];
            let mut last = json!({"model": "smollm2:latest", "response": "", "done": true,
                                  "done_reason": "length",
                                  "prompt_eval_count": usage["prompt_tokens"],
                                  "eval_count": usage["completion_tokens"]});
            if request["stream"] == json!(false) {
                last["response"] = json!(text);
                return Reply::Json(last.to_string());
            }
            let mut lines = Vec::new();
            if !text.is_empty() {
                lines.push(
                    json!({"model": "smollm2:latest", "response": text, "done": false}).to_string(),
                );
            }
            lines.push(last.to_string());
            Reply::Lines {
                lines,
                paced: false,
            }
        }
    })
    .await
}

/// Each request's input tokens as the server counted them, and as they were built.
fn input_counts(result: &workload::RunResult) -> Vec<(Option<u64>, Option<u64>)> {
    result
        .samples
        .iter()
        .map(|s| (s.input_tokens, s.input_expected))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_prompts_of_48_tokens_are_48_in_the_servers_prompt_eval_count() {
    let asked = Arc::new(AtomicUsize::new(0));
    let port = ollama_on_llama(live_llm(), asked.clone()).await;
    let requests = LoadSpec {
        requests: Some(8),
        ..three_requests()
    };
    let params = json!({"model": "smollm2", "max_tokens": 2, "input_tokens": 48});
    let result = workload::run(workload(port, params), &requests)
        .await
        .unwrap();
    assert_eq!(
        result.summary.requests_completed, 8,
        "{:?}",
        result.summary.errors
    );
    for counts in input_counts(&result) {
        assert_eq!(counts, (Some(48), Some(48)));
    }
    let check = result.summary.input_length_check.expect("checked");
    assert_eq!((check.requests, check.matched, check.mismatched), (8, 8, 0));
    // The calibration: far fewer requests than the words it tests.
    let calibration = asked.load(Ordering::Relaxed) - 8;
    assert!(
        (3..PROMPT_WORDS.len() / 2).contains(&calibration),
        "{calibration} requests calibrated"
    );

    // Chat, with the template's tokens around each message, and a spread: each prompt
    // has a length of its own, and the server counts it.
    let params = json!({"model": "smollm2", "endpoint": "chat", "max_tokens": 2,
                        "input_tokens": 48, "input_tokens_spread": 0.5});
    let result = workload::run(workload(port, params), &requests)
        .await
        .unwrap();
    let counts = input_counts(&result);
    assert_eq!(counts.len(), 8, "{:?}", result.summary.errors);
    for (server, built) in &counts {
        let built = built.expect("built to a length");
        assert!((24..=72).contains(&built), "{built}");
        assert_eq!(*server, Some(built));
    }
    let distinct: std::collections::BTreeSet<_> = counts.iter().map(|c| c.1).collect();
    assert!(distinct.len() > 3, "{counts:?}");
}
