//! The `openai` workload: OpenAI-compatible servers (vLLM, llama.cpp's server, TGI) on
//! `/v1/completions` or `/v1/chat/completions`, with SSE streaming.
//!
//! Per request: TTFT at the first event with non-empty text, a gap per further text
//! event (inter-chunk latency), and the output token count: the server's
//! `usage.completion_tokens` when it sends one (`stream_options.include_usage` is asked
//! for; non-streaming answers always carry it), else the number of text events, said to
//! be counted by the client. Before any load, `GET /v1/models` checks the model (or,
//! without one, takes the server's first).
//!
//! Parameters:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `model` | the model id | the server's first |
//! | `endpoint` | `completions` or `chat` | `completions` |
//! | `prompt` | the prompt; without it a synthetic one of `prompt_length` words | synthetic |
//! | `prompt_length` | words of the synthetic prompt (seeded) | 64 |
//! | `prompt_salt` | mixed into the synthetic prompts: `workload run` gives every run its own, so no run resends an earlier run's prompts (a warm prefix cache would flatter it); set it to send the same prompts in every run | per run |
//! | `max_tokens` | output tokens asked for | 128 |
//! | `temperature`, `seed` | sampling | server's |
//! | `ignore_eos` | ask the server to run to `max_tokens` (vLLM, llama.cpp) | false |
//! | `stream` | stream the answer | true |
//! | `timeout_s` | a request slower than this fails as `timeout` | 300 |

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::{
    Connection, Outcome, TokenSource, Workload, parse_parameters, synthetic_prompt,
    timeout_parameter,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use orchestrator_plugin_http::{Url, get_json, json_request, open_http1};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The `openai` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct OpenAiDriver;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Endpoint {
    Completions,
    Chat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    endpoint: Option<Endpoint>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    prompt_length: Option<usize>,
    #[serde(default)]
    prompt_salt: Option<u64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    ignore_eos: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    timeout_s: Option<f64>,
}

struct Shared {
    url: Url,
    authority: String,
    model: Option<String>,
    endpoint: Endpoint,
    prompt: Option<String>,
    prompt_length: usize,
    extra: Map<String, Value>,
    stream: bool,
    seed: u64,
    timeout: Duration,
}

/// The prepared workload.
pub struct OpenAiWorkload(Arc<Shared>);

const KNOWN: &str = "model, endpoint (completions|chat), prompt, prompt_length, prompt_salt, max_tokens, temperature, seed, ignore_eos, stream, timeout_s";

impl OpenAiWorkload {
    /// Checks the parameters and prepares requests to the server at `url`.
    ///
    /// # Errors
    /// An unknown parameter or value, or a URL that is not http://.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("openai", KNOWN, parameters)?;
        let url = Url::parse(url)?;
        let mut extra = Map::new();
        extra.insert("max_tokens".into(), json!(p.max_tokens.unwrap_or(128)));
        if let Some(t) = p.temperature {
            extra.insert("temperature".into(), json!(t));
        }
        if let Some(s) = p.seed {
            extra.insert("seed".into(), json!(s));
        }
        if p.ignore_eos == Some(true) {
            extra.insert("ignore_eos".into(), json!(true));
        }
        let timeout = timeout_parameter(p.timeout_s, 300.0)?;
        Ok(Self(Arc::new(Shared {
            authority: format!("{}:{}", url.host, url.port),
            url,
            model: p.model,
            endpoint: p.endpoint.unwrap_or(Endpoint::Completions),
            prompt: p.prompt,
            prompt_length: p.prompt_length.unwrap_or(64),
            extra,
            stream: p.stream.unwrap_or(true),
            // The synthetic prompts' seed: the sampling seed, salted per run.
            seed: p.seed.unwrap_or(1) ^ p.prompt_salt.unwrap_or(0),
            timeout,
        })))
    }
}

#[async_trait]
impl Workload for OpenAiWorkload {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let s = &self.0;
        let mut sender = open_http1(&s.url, s.timeout).await?;
        let models = get_json(&mut sender, &s.authority, "/v1/models")
            .await
            .map_err(|e| format!("{e}: is this an OpenAI-compatible server?"))?;
        let ids: Vec<&str> = models["data"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
            .unwrap_or_default();
        let model = match &s.model {
            Some(model) if ids.contains(&model.as_str()) => model.clone(),
            Some(model) => {
                return Err(format!(
                    "the server has no model `{model}`; it serves: {}",
                    if ids.is_empty() {
                        "none".to_owned()
                    } else {
                        ids.join(", ")
                    }
                ));
            }
            None => ids
                .first()
                .map(|m| (*m).to_owned())
                .ok_or("the server lists no model")?,
        };
        Ok(Box::new(OpenAiConnection {
            shared: self.0.clone(),
            sender,
            model,
        }))
    }
}

struct OpenAiConnection {
    shared: Arc<Shared>,
    sender: SendRequest<Full<Bytes>>,
    model: String,
}

/// What the answer said, as it arrived.
#[derive(Default)]
struct Answer {
    first_text: Option<Instant>,
    last_text: Option<Instant>,
    gaps: Vec<Duration>,
    text_events: u64,
    usage_tokens: Option<u64>,
    done: bool,
    error: Option<String>,
}

impl Answer {
    /// One JSON object: an SSE event's data, or the whole non-streamed answer.
    fn object(&mut self, object: &Value, at: Instant) {
        if object.get("error").is_some() {
            self.error = Some("server_error".into());
            return;
        }
        let choice = &object["choices"][0];
        let text = choice["text"]
            .as_str()
            .or_else(|| choice["delta"]["content"].as_str())
            .or_else(|| choice["message"]["content"].as_str())
            .unwrap_or("");
        if !text.is_empty() {
            self.text_events += 1;
            if self.first_text.is_none() {
                self.first_text = Some(at);
            }
            if let Some(last) = self.last_text {
                self.gaps.push(at - last);
            }
            self.last_text = Some(at);
        }
        if let Some(tokens) = object["usage"]["completion_tokens"].as_u64() {
            self.usage_tokens = Some(tokens);
        }
    }

    /// One SSE line (`data: {...}` or `data: [DONE]`; others are ignored).
    fn sse_line(&mut self, line: &str, at: Instant) {
        let Some(data) = line.strip_prefix("data:") else {
            return;
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(object) => self.object(&object, at),
            Err(_) => self.error = Some("bad_json".into()),
        }
    }
}

impl OpenAiConnection {
    async fn send(&mut self, n: u64) -> Outcome {
        let s = &self.shared;
        let prompt = s
            .prompt
            .clone()
            .unwrap_or_else(|| synthetic_prompt(s.prompt_length, s.seed, n));
        let mut body = s.extra.clone();
        body.insert("model".into(), json!(self.model));
        body.insert("stream".into(), json!(s.stream));
        if s.stream {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        let path = match s.endpoint {
            Endpoint::Completions => {
                body.insert("prompt".into(), json!(prompt));
                "/v1/completions"
            }
            Endpoint::Chat => {
                body.insert(
                    "messages".into(),
                    json!([{"role": "user", "content": prompt}]),
                );
                "/v1/chat/completions"
            }
        };
        if self.sender.ready().await.is_err() {
            return Outcome::failed("connection_closed");
        }
        let started = Instant::now();
        let bytes_out = Bytes::from(serde_json::to_vec(&Value::Object(body)).expect("JSON"));
        let response = match self
            .sender
            .send_request(json_request(&s.authority, Method::POST, path, bytes_out))
            .await
        {
            Ok(r) => r,
            Err(_) => return Outcome::failed("connection_closed"),
        };
        let status = response.status();
        let mut answer = Answer::default();
        let mut body = response.into_body();
        let mut pending: Vec<u8> = Vec::new();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Outcome::failed("body");
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let at = Instant::now();
            bytes += data.len() as u64;
            pending.extend_from_slice(data);
            if s.stream && status.is_success() {
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    answer.sse_line(String::from_utf8_lossy(&line).trim_end(), at);
                }
            }
        }
        let mut out = Outcome {
            bytes,
            ..Outcome::default()
        };
        if !status.is_success() {
            out.error = Some(format!("http_{}", status.as_u16()));
            return out;
        }
        if s.stream {
            if !pending.is_empty() {
                answer.sse_line(String::from_utf8_lossy(&pending).trim_end(), Instant::now());
            }
            if !answer.done && answer.error.is_none() {
                answer.error = Some("no_done_event".into());
            }
        } else {
            match serde_json::from_slice::<Value>(&pending) {
                Ok(object) => answer.object(&object, Instant::now()),
                Err(_) => answer.error = Some("bad_json".into()),
            }
        }
        if let Some(error) = answer.error {
            out.error = Some(error);
            return out;
        }
        if s.stream {
            out.ttft = answer.first_text.map(|t| t - started);
            out.chunk_gaps = answer.gaps;
        }
        (out.output_tokens, out.token_source) = match answer.usage_tokens {
            Some(tokens) => (Some(tokens), TokenSource::Server),
            None => (Some(answer.text_events), TokenSource::Client),
        };
        out
    }
}

#[async_trait]
impl Connection for OpenAiConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        orchestrator_core::workload::within(self.shared.timeout, self.send(n)).await
    }
}

impl WorkloadDriver for OpenAiDriver {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn description(&self) -> &'static str {
        "OpenAI-compatible /v1/completions or /v1/chat/completions (vLLM, llama.cpp, TGI), SSE streaming"
    }

    fn fits(&self) -> &'static [&'static str] {
        &[
            "vllm",
            "openai",
            "llama-cpp",
            "llama.cpp",
            "llamacpp",
            "tgi",
            "sglang",
        ]
    }

    fn parameters_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "model": {"type": "string"},
                "endpoint": {"enum": ["completions", "chat"], "default": "completions"},
                "prompt": {"type": "string"},
                "prompt_length": {"type": "integer", "minimum": 0, "default": 64},
                "prompt_salt": {"type": "integer", "minimum": 0},
                "max_tokens": {"type": "integer", "minimum": 1, "default": 128},
                "temperature": {"type": "number"},
                "seed": {"type": "integer"},
                "ignore_eos": {"type": "boolean", "default": false},
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
        Some(OpenAiWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&OpenAiDriver) }
