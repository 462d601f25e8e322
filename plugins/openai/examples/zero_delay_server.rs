//! A zero-delay OpenAI-compatible server, for measuring load generators rather than
//! servers (`scripts/bench-llm-peers`): every answer is ready at once, so what limits a
//! run is the client. It serves `GET /v1/models` and `POST /v1/completions` and
//! `/v1/chat/completions`, streamed (SSE, one event per token, then a usage event when
//! `stream_options.include_usage` asks for it, then `[DONE]`) or not, over HTTP/1.1
//! keep-alive, one thread per connection. Each answer has `max_tokens` (or
//! `max_completion_tokens`) tokens, 64 when the request names none, each the text
//! `" tok"`; `usage.prompt_tokens` counts the prompt's words. `GET /stats` says how
//! many completions it has answered, with how many tokens, and when the first and the
//! last of them went out (ns since the server started): the rate a client sustained,
//! as the server saw it.
//!
//!   cargo run --release -p orchestrator-plugin-openai --example zero_delay_server -- [ADDR]
//!
//! It prints the address it listens on (ADDR, default 127.0.0.1:0) and serves until
//! killed. Not a server to benchmark: it answers without a model.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Value, json};

const MODEL: &str = "zero-delay";

static STARTED: OnceLock<Instant> = OnceLock::new();
static ANSWERS: AtomicU64 = AtomicU64::new(0);
static TOKENS: AtomicU64 = AtomicU64::new(0);
static FIRST_NS: AtomicU64 = AtomicU64::new(u64::MAX);
static LAST_NS: AtomicU64 = AtomicU64::new(0);

/// Counts a completion answered with `tokens` tokens, now.
fn count(tokens: usize) {
    let now = STARTED.get_or_init(Instant::now).elapsed().as_nanos() as u64;
    ANSWERS.fetch_add(1, Ordering::Relaxed);
    TOKENS.fetch_add(tokens as u64, Ordering::Relaxed);
    FIRST_NS.fetch_min(now, Ordering::Relaxed);
    LAST_NS.fetch_max(now, Ordering::Relaxed);
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr)?;
    STARTED.get_or_init(Instant::now);
    // Its one line of output: where it listens, for whoever started it.
    let mut out = std::io::stdout();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            // A client that goes away mid-answer is no error of the server's.
            let _ = serve(conn);
        });
    }
    Ok(())
}

/// Answers the requests of one connection until the client closes it.
fn serve(conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let mut tokens = None;
        let answer = match (method.as_str(), path.split('?').next().unwrap_or("")) {
            ("GET", "/v1/models") => whole(
                "200 OK",
                &json!({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}),
            ),
            ("GET", "/health") => whole("200 OK", &json!({"status": "ok"})),
            ("GET", "/stats") => {
                let first = FIRST_NS.load(Ordering::Relaxed);
                whole(
                    "200 OK",
                    &json!({"answers": ANSWERS.load(Ordering::Relaxed),
                            "tokens": TOKENS.load(Ordering::Relaxed),
                            "first_ns": if first == u64::MAX { 0 } else { first },
                            "last_ns": LAST_NS.load(Ordering::Relaxed)}),
                )
            }
            ("POST", p @ ("/v1/completions" | "/v1/chat/completions")) => {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(request) => {
                        let (answer, n) = generate(&request, p == "/v1/chat/completions");
                        tokens = Some(n);
                        answer
                    }
                    Err(e) => whole("400 Bad Request", &json!({"error": e.to_string()})),
                }
            }
            _ => whole("404 Not Found", &json!({"error": "not found"})),
        };
        writer.write_all(&answer)?;
        if let Some(tokens) = tokens {
            count(tokens);
        }
    }
}

/// A whole JSON answer.
fn whole(status: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The answer to a completion request, streamed or whole, and its tokens.
fn generate(request: &Value, chat: bool) -> (Vec<u8>, usize) {
    let tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| request.get(*k).and_then(Value::as_u64))
        .unwrap_or(64) as usize;
    let prompt_tokens = if chat {
        request["messages"].as_array().map_or(0, |m| {
            m.iter()
                .map(|m| words(m["content"].as_str().unwrap_or("")))
                .sum()
        })
    } else {
        words(request["prompt"].as_str().unwrap_or(""))
    };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": tokens,
                       "total_tokens": prompt_tokens + tokens});
    let (object, kind) = if chat {
        ("chat.completion", "chat.completion.chunk")
    } else {
        ("text_completion", "text_completion")
    };
    if request["stream"].as_bool() != Some(true) {
        let text = " tok".repeat(tokens);
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"})
        } else {
            json!({"index": 0, "text": text, "finish_reason": "length"})
        };
        let body = json!({"id": "cmpl-0", "object": object, "created": 0, "model": MODEL,
                          "choices": [choice], "usage": usage});
        return (whole("200 OK", &body), tokens);
    }
    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let mut event = |data: &str| {
        let chunk = format!("data: {data}\n\n");
        out.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    };
    for i in 0..tokens {
        let finish = if i + 1 == tokens {
            json!("length")
        } else {
            Value::Null
        };
        let choice = if chat {
            json!({"index": 0, "delta": {"content": " tok"}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": " tok", "finish_reason": finish})
        };
        event(
            &json!({"id": "cmpl-0", "object": kind, "created": 0, "model": MODEL, "choices": [choice]})
                .to_string(),
        );
    }
    if request["stream_options"]["include_usage"].as_bool() == Some(true) {
        event(
            &json!({"id": "cmpl-0", "object": kind, "created": 0, "model": MODEL,
                    "choices": [], "usage": usage})
            .to_string(),
        );
    }
    event("[DONE]");
    out.extend_from_slice(b"0\r\n\r\n");
    (out, tokens)
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}
