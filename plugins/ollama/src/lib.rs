//! The `ollama` service driver ([`OllamaService`]: `ollama serve`, models pulled before
//! it counts as healthy) and the `ollama` workload: `POST /api/generate` or `/api/chat`
//! with NDJSON streaming.
//!
//! Per request it records the time to the first object with non-empty text (TTFT), the
//! gaps between text chunks (inter-chunk latency), and from the final object (`done:
//! true`) the server's own token counts and durations: `eval_count` (output tokens,
//! so token counts come from the server), `prompt_eval_count`, `eval_duration`,
//! `prompt_eval_duration`, `load_duration` and `total_duration` (nanoseconds). Before
//! any load, `GET /api/tags` checks that the server has the model.
//!
//! Parameters:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `model` | the model (`name:tag`; `:latest` when no tag) | required |
//! | `endpoint` | `generate` or `chat` | `generate` |
//! | `prompt` | the prompt; without it a synthetic one of `prompt_length` words | synthetic |
//! | `prompt_length` | words of the synthetic prompt (seeded) | 64 |
//! | `input_tokens` | prompts of exactly this many tokens as the server counts them (`prompt_eval_count`, its template included), found once before any load ([`tokens`]); each request is checked against its own count | — |
//! | `input_tokens_spread` | each prompt's length uniform within `± spread · input_tokens` (0 to 1) | 0 |
//! | `prompt_salt` | mixed into the synthetic prompts: `workload run` gives every run its own, so no run resends an earlier run's prompts (a warm prefix cache would flatter it); set it to send the same prompts in every run | per run |
//! | `max_tokens` | `options.num_predict` | 128 |
//! | `temperature`, `seed` | `options.temperature`, `options.seed` | server's |
//! | `stream` | stream the answer | true |
//! | `timeout_s` | a request slower than this fails as `timeout` | 300 |

mod service;
mod tokens;

pub use service::{DEFAULT_PORT, OllamaService, PULL_WRAPPER};

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::vocabulary::{Vocabulary, spread_length};
use orchestrator_core::workload::{
    Connection, Outcome, TokenSource, Workload, parse_parameters, synthetic_prompt,
    timeout_parameter,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use orchestrator_plugin_http::{Url, get_json, json_request, open_http1};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The `ollama` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct OllamaDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Endpoint {
    Generate,
    Chat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    model: Option<String>,
    #[serde(default)]
    endpoint: Option<Endpoint>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    prompt_length: Option<usize>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_spread: Option<f64>,
    #[serde(default)]
    prompt_salt: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    timeout_s: Option<f64>,
}

struct Shared {
    url: Url,
    authority: String,
    model: String,
    endpoint: Endpoint,
    prompt: Option<String>,
    prompt_length: usize,
    /// `input_tokens` and its spread.
    exact: Option<(u64, f64)>,
    /// The server's tokenizer, found by [`Workload::prepare`] for `exact`.
    vocabulary: OnceLock<Vocabulary>,
    options: Map<String, Value>,
    stream: bool,
    seed: u64,
    timeout: Duration,
}

/// The prepared workload.
pub struct OllamaWorkload(Arc<Shared>);

const KNOWN: &str = "model, endpoint (generate|chat), prompt, prompt_length, input_tokens, input_tokens_spread, prompt_salt, max_tokens, temperature, seed, stream, timeout_s";

impl OllamaWorkload {
    /// Checks the parameters and prepares requests to the server at `url`.
    ///
    /// # Errors
    /// An unknown parameter or value, no model, or a URL that is not http://.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("ollama", KNOWN, parameters)?;
        let url = Url::parse(url)?;
        let exact = exact_length(&p)?;
        let model = p.model.ok_or_else(|| {
            DriverError::new(
                "the ollama workload needs a `model`",
                "e.g. model: llama3.2 (see GET /api/tags on the server)",
            )
        })?;
        let model = if model.contains(':') {
            model
        } else {
            format!("{model}:latest")
        };
        let mut options = Map::new();
        options.insert("num_predict".into(), json!(p.max_tokens.unwrap_or(128)));
        if let Some(t) = p.temperature {
            options.insert("temperature".into(), json!(t));
        }
        if let Some(s) = p.seed {
            options.insert("seed".into(), json!(s));
        }
        let timeout = timeout_parameter(p.timeout_s, 300.0)?;
        Ok(Self(Arc::new(Shared {
            authority: format!("{}:{}", url.host, url.port),
            url,
            model,
            endpoint: p.endpoint.unwrap_or(Endpoint::Generate),
            prompt: p.prompt,
            prompt_length: p.prompt_length.unwrap_or(64),
            exact,
            vocabulary: OnceLock::new(),
            options,
            stream: p.stream.unwrap_or(true),
            // The synthetic prompts' seed: the sampling seed, salted per run.
            seed: p.seed.unwrap_or(1) ^ p.prompt_salt.unwrap_or(0),
            timeout,
        })))
    }
}

/// `input_tokens` and `input_tokens_spread`, checked.
fn exact_length(p: &Params) -> Result<Option<(u64, f64)>, DriverError> {
    let spread = p.input_tokens_spread;
    let Some(tokens) = p.input_tokens else {
        return match spread {
            Some(_) => Err(DriverError::new(
                "ollama parameters: input_tokens_spread needs input_tokens",
                "e.g. input_tokens: 512, input_tokens_spread: 0.25",
            )),
            None => Ok(None),
        };
    };
    if p.prompt.is_some() || p.prompt_length.is_some() {
        return Err(DriverError::new(
            "ollama parameters: prompt, prompt_length and input_tokens each set the prompts; give one",
            "input_tokens: prompts of an exact number of tokens; prompt_length: synthetic prompts of so many words; prompt: one prompt",
        ));
    }
    let spread = spread.unwrap_or(0.0);
    if tokens == 0 || !(0.0..=1.0).contains(&spread) {
        return Err(DriverError::new(
            "ollama parameters: input_tokens must be at least 1 and input_tokens_spread between 0 and 1",
            "e.g. input_tokens: 512, input_tokens_spread: 0.25 (lengths 384 to 640)",
        ));
    }
    Ok(Some((tokens, spread)))
}

impl Shared {
    /// The path and body of a request with `prompt`.
    fn request(&self, prompt: String) -> (&'static str, Value) {
        match self.endpoint {
            Endpoint::Generate => (
                "/api/generate",
                json!({"model": self.model, "prompt": prompt, "stream": self.stream, "options": self.options}),
            ),
            Endpoint::Chat => (
                "/api/chat",
                json!({"model": self.model, "messages": [{"role": "user", "content": prompt}], "stream": self.stream, "options": self.options}),
            ),
        }
    }

    /// Request `n`'s prompt, and the input tokens it was built to have.
    fn prompt(&self, n: u64) -> (String, Option<u64>) {
        if let Some((mean, spread)) = self.exact {
            let v = self
                .vocabulary
                .get()
                .expect("calibrated before any request");
            let count = spread_length(mean, spread, self.seed, n).max(v.shortest());
            return (v.prompt(count, &[], 0, self.seed, n), Some(count));
        }
        let prompt = self
            .prompt
            .clone()
            .unwrap_or_else(|| synthetic_prompt(self.prompt_length, self.seed, n));
        (prompt, None)
    }

    /// Checks that the server has the model: a missing one is a clear error before
    /// any load, not thousands of failed requests.
    async fn has_model(&self, sender: &mut SendRequest<Full<Bytes>>) -> Result<(), String> {
        let tags = get_json(sender, &self.authority, "/api/tags")
            .await
            .map_err(|e| format!("{e}: is this an Ollama server?"))?;
        let names: Vec<&str> = tags["models"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["name"].as_str()).collect())
            .unwrap_or_default();
        if names.contains(&self.model.as_str()) {
            return Ok(());
        }
        Err(format!(
            "the server has no model `{}`; it has: {} (pull it first: ollama pull {})",
            self.model,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
            self.model
        ))
    }
}

#[async_trait]
impl Workload for OllamaWorkload {
    async fn prepare(&self) -> Result<(), String> {
        let s = &self.0;
        if s.exact.is_none() || s.vocabulary.get().is_some() {
            return Ok(());
        }
        let mut sender = open_http1(&s.url, s.timeout).await?;
        s.has_model(&mut sender).await?;
        let vocabulary = tokens::calibrate(s, sender).await?;
        let _ = s.vocabulary.set(vocabulary);
        Ok(())
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let s = &self.0;
        let mut sender = open_http1(&s.url, s.timeout).await?;
        s.has_model(&mut sender).await?;
        Ok(Box::new(OllamaConnection {
            shared: self.0.clone(),
            sender,
        }))
    }
}

struct OllamaConnection {
    shared: Arc<Shared>,
    sender: SendRequest<Full<Bytes>>,
}

/// What the stream said, as it arrived.
#[derive(Default)]
struct Stream {
    started: Option<Instant>,
    first_text: Option<Instant>,
    last_text: Option<Instant>,
    gaps: Vec<Duration>,
    chunks: u64,
    bytes: u64,
    done: Option<Value>,
    error: Option<String>,
}

impl Stream {
    fn line(&mut self, line: &[u8], at: Instant) {
        let Ok(object) = serde_json::from_slice::<Value>(line) else {
            self.error = Some("bad_json".into());
            return;
        };
        if object.get("error").is_some() {
            self.error = Some("server_error".into());
            return;
        }
        let text = object["response"]
            .as_str()
            .or_else(|| object["message"]["content"].as_str())
            .unwrap_or("");
        if !text.is_empty() {
            self.chunks += 1;
            if self.first_text.is_none() {
                self.first_text = Some(at);
            }
            if let Some(last) = self.last_text {
                self.gaps.push(at - last);
            }
            self.last_text = Some(at);
        }
        if object["done"] == json!(true) {
            self.done = Some(object);
        }
    }
}

impl OllamaConnection {
    async fn send(&mut self, n: u64) -> Outcome {
        let s = &self.shared;
        let (prompt, expected) = s.prompt(n);
        let (path, body) = s.request(prompt);
        if self.sender.ready().await.is_err() {
            return Outcome::failed("connection_closed");
        }
        let mut stream = Stream {
            started: Some(Instant::now()),
            ..Stream::default()
        };
        let body = Bytes::from(serde_json::to_vec(&body).expect("JSON"));
        let response = match self
            .sender
            .send_request(json_request(&s.authority, Method::POST, path, body))
            .await
        {
            Ok(r) => r,
            Err(_) => return Outcome::failed("connection_closed"),
        };
        let status = response.status();
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Outcome::failed("body");
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let at = Instant::now();
            stream.bytes += data.len() as u64;
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                if line.iter().any(|b| !b.is_ascii_whitespace()) && status.is_success() {
                    stream.line(&line, at);
                }
            }
        }
        if !pending.is_empty() && status.is_success() {
            stream.line(&pending, Instant::now());
        }
        let mut out = Outcome {
            bytes: stream.bytes,
            input_expected: expected,
            ..Outcome::default()
        };
        if !status.is_success() {
            out.error = Some(format!("http_{}", status.as_u16()));
            return out;
        }
        if let Some(error) = stream.error {
            out.error = Some(error);
            return out;
        }
        let Some(done) = stream.done else {
            out.error = Some("no_final_object".into());
            return out;
        };
        let started = stream.started.expect("set above");
        out.ttft = stream.first_text.map(|t| t - started);
        out.chunk_gaps = stream.gaps;
        out.input_tokens = done["prompt_eval_count"].as_u64();
        match done["eval_count"].as_u64() {
            Some(count) => {
                out.output_tokens = Some(count);
                out.token_source = TokenSource::Server;
            }
            None => {
                out.output_tokens = Some(stream.chunks);
                out.token_source = TokenSource::Client;
            }
        }
        let mut server = Map::new();
        for key in [
            "total_duration",
            "load_duration",
            "prompt_eval_count",
            "prompt_eval_duration",
            "eval_count",
            "eval_duration",
            "done_reason",
        ] {
            if let Some(v) = done.get(key) {
                server.insert(key.into(), v.clone());
            }
        }
        out.server = Some(Value::Object(server));
        out
    }
}

#[async_trait]
impl Connection for OllamaConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        orchestrator_core::workload::within(self.shared.timeout, self.send(n)).await
    }
}

impl WorkloadDriver for OllamaDriver {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn description(&self) -> &'static str {
        "Ollama /api/generate or /api/chat, NDJSON streaming: TTFT, ITL, the server's token counts"
    }

    fn targets(&self) -> &'static [&'static str] {
        &[]
    }

    fn fits(&self) -> &'static [&'static str] {
        &["ollama"]
    }

    fn original_parameters(&self) -> &'static [(&'static str, &'static str)] {
        // The original's ollama_benchmark clients: sweeps over concurrency, prompt
        // length and output length, `operations_per_test` requests each.
        &[
            ("concurrent_requests", "concurrency"),
            ("prompt_lengths", "prompt_length"),
            ("operations_per_test", "requests"),
        ]
    }

    fn parameters_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["model"],
            "properties": {
                "model": {"type": "string"},
                "endpoint": {"enum": ["generate", "chat"], "default": "generate"},
                "prompt": {"type": "string"},
                "prompt_length": {"type": "integer", "minimum": 0, "default": 64},
                "input_tokens": {"type": "integer", "minimum": 1},
                "input_tokens_spread": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
                "prompt_salt": {"type": "integer", "minimum": 0},
                "max_tokens": {"type": "integer", "minimum": 1, "default": 128},
                "temperature": {"type": "number"},
                "seed": {"type": "integer"},
                "stream": {"type": "boolean", "default": true},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 300}
            }
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some(OllamaWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&OllamaDriver) }
