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
//! Prompts are synthetic words, a fixed `prompt`, prompts of exactly `input_tokens`
//! tokens for the server's own tokenizer ([`tokens`]: found through its tokenize
//! endpoint once, before any load; each request's count is checked against the
//! server's `usage.prompt_tokens`, and the summary's `input_length_check` says how many
//! matched), or a `dataset` file's entries
//! ([`dataset`](orchestrator_core::workload::dataset): JSON lines, ShareGPT, timed
//! traces, whose `input_length` and `hash_ids` become prompts of that many tokens with
//! shared prefix blocks, replayed at their own times).
//!
//! Parameters:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `model` | the model id | the server's first |
//! | `endpoint` | `completions` or `chat` | `completions` |
//! | `prompt` | the prompt; without it a synthetic one of `prompt_length` words | synthetic |
//! | `prompt_length` | words of the synthetic prompt (seeded) | 64 |
//! | `input_tokens` | prompts of exactly this many tokens, by the server's tokenizer (completions) | — |
//! | `input_tokens_spread` | each prompt's length uniform within `± spread · input_tokens` (0 to 1) | 0 |
//! | `dataset` | a file of prompts: JSON lines (`prompt` or `messages`, optional `output_tokens`), ShareGPT JSON, or a timed trace (`timestamp` ms, `input_length`, `output_length`, `hash_ids`) | — |
//! | `dataset_format` | `jsonl`, `sharegpt` or `trace`, when the content should not decide | from the content |
//! | `sample_with_replacement` | draw dataset entries with replacement (else a seeded shuffle, every entry once per round); a trace goes in order | false |
//! | `block_tokens` | tokens per prefix block of a trace's `hash_ids` | 512 |
//! | `shared_prefix` | `{prefixes: N, suffixes: M, prefix_length, suffix_length}`: N synthetic prefixes of `prefix_length` words (256), each followed by M suffixes of `suffix_length` words (32); every one of the N × M prompts once per round, in a seeded order, so a prefix cache can serve a prefix's later prompts | — |
//! | `turns` | chat sessions of this many requests (`endpoint: chat`): each connection's next question carries its session's earlier questions and answers; a failed request starts a new session | 1 |
//! | `prompt_salt` | mixed into the synthetic prompts and a trace's blocks, and a tag of it (`[3fa9c1] `) leads a dataset's texts: `workload run` gives every run its own, so no run resends an earlier run's prompts (a warm prefix cache would flatter it); set it to send the same prompts in every run, 0 to send a dataset's texts as written | per run |
//! | `max_tokens` | output tokens asked for (a dataset entry's own output length wins) | 128 |
//! | `temperature`, `seed` | sampling | server's |
//! | `ignore_eos` | ask the server to run to `max_tokens` (vLLM, llama.cpp) | false |
//! | `stream` | stream the answer | true |
//! | `timeout_s` | a request slower than this fails as `timeout` | 300 |
//! | `server_metrics` | the server's Prometheus page (vLLM's, `llama-server --metrics`): scraped before, every second during and after each run when the server answers it, its figures in the summary's `server_metrics`; `false` scrapes nothing | `/metrics` |

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::dataset::DatasetFormat;
use orchestrator_core::workload::vocabulary::Vocabulary;
use orchestrator_core::workload::{
    Connection, Outcome, TokenSource, Workload, parse_parameters, timeout_parameter,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use orchestrator_plugin_http::{Url, get_json, get_text, json_request, open_http1};
use serde::Deserialize;
use serde_json::{Map, Value, json};

mod answer;
mod prompts;
mod service;
pub mod tokens;

pub use service::{LLAMA_CPP_PORT, LlamaCppService, VLLM_PORT, VllmService};

use answer::Answer;
use prompts::{Prompt, Source};

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
    input_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_spread: Option<f64>,
    #[serde(default)]
    dataset: Option<String>,
    #[serde(default)]
    dataset_format: Option<String>,
    #[serde(default)]
    sample_with_replacement: Option<bool>,
    #[serde(default)]
    block_tokens: Option<u64>,
    #[serde(default)]
    prompt_salt: Option<u64>,
    #[serde(default)]
    shared_prefix: Option<SharedPrefix>,
    #[serde(default)]
    turns: Option<u64>,
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
    #[serde(default)]
    server_metrics: Option<Value>,
}

/// `shared_prefix`: a few prefixes, each with suffixes of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedPrefix {
    prefixes: u64,
    suffixes: u64,
    #[serde(default)]
    prefix_length: Option<usize>,
    #[serde(default)]
    suffix_length: Option<usize>,
}

struct Shared {
    url: Url,
    authority: String,
    model: Option<String>,
    endpoint: Endpoint,
    source: Source,
    /// Requests per chat session (`turns`): each carries the session's history.
    turns: u64,
    /// The server's tokenizer, found by [`Workload::prepare`] when prompts are built of
    /// tokens.
    vocabulary: OnceLock<Vocabulary>,
    extra: Map<String, Value>,
    stream: bool,
    seed: u64,
    timeout: Duration,
    /// The server's metrics page to scrape: asked for (`server_metrics`), and found
    /// by [`Workload::prepare`].
    metrics_path: Option<String>,
    metrics_found: OnceLock<bool>,
}

/// The prepared workload.
pub struct OpenAiWorkload(Arc<Shared>);

const KNOWN: &str = "model, endpoint (completions|chat), prompt, prompt_length, input_tokens, input_tokens_spread, dataset, dataset_format (jsonl|sharegpt|trace), sample_with_replacement, block_tokens, prompt_salt, shared_prefix, turns, max_tokens, temperature, seed, ignore_eos, stream, timeout_s, server_metrics";

const TOKENS_NEED_COMPLETIONS: &str = "openai parameters: prompts of an exact number of tokens (input_tokens, a dataset's input_tokens or a trace's input_length) need endpoint: completions";
const CHAT_TEMPLATE: &str =
    "a chat template adds tokens the client cannot count; use endpoint: completions";

fn bad(message: impl Into<String>, hint: impl Into<String>) -> DriverError {
    DriverError::new(message, hint)
}

/// Where the prompts come from, and that they fit the endpoint.
fn source(p: &Params, endpoint: Endpoint) -> Result<Source, DriverError> {
    let given = [
        p.prompt.is_some(),
        p.input_tokens.is_some(),
        p.dataset.is_some(),
        p.shared_prefix.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(bad(
            "openai parameters: prompt, input_tokens, dataset and shared_prefix each set the prompts; give one",
            "input_tokens: prompts of an exact length; dataset: a file's prompts; shared_prefix: prefixes shared by several prompts; prompt: one prompt",
        ));
    }
    if p.shared_prefix.is_some() && p.prompt_length.is_some() {
        return Err(bad(
            "openai parameters: prompt_length is a synthetic prompt's length; shared_prefix has its own",
            "shared_prefix: {prefixes: 4, suffixes: 8, prefix_length: 256, suffix_length: 32} (words)",
        ));
    }
    if p.input_tokens_spread.is_some() && p.input_tokens.is_none() {
        return Err(bad(
            "openai parameters: input_tokens_spread needs input_tokens",
            "e.g. input_tokens: 512, input_tokens_spread: 0.25",
        ));
    }
    let source = if let Some(prompt) = &p.prompt {
        Source::Fixed(prompt.clone())
    } else if let Some(tokens) = p.input_tokens {
        let spread = p.input_tokens_spread.unwrap_or(0.0);
        if tokens == 0 || !(0.0..=1.0).contains(&spread) {
            return Err(bad(
                "openai parameters: input_tokens must be at least 1 and input_tokens_spread between 0 and 1",
                "e.g. input_tokens: 512, input_tokens_spread: 0.25 (lengths 384 to 640)",
            ));
        }
        Source::Exact { tokens, spread }
    } else if let Some(shared) = &p.shared_prefix {
        if shared.prefixes == 0
            || shared.suffixes == 0
            || shared.prefixes.checked_mul(shared.suffixes).is_none()
        {
            return Err(bad(
                "openai parameters: shared_prefix needs at least 1 prefix and 1 suffix",
                "shared_prefix: {prefixes: 4, suffixes: 8}: 32 prompts, each prefix in 8 of them",
            ));
        }
        Source::SharedPrefix {
            prefixes: shared.prefixes,
            suffixes: shared.suffixes,
            prefix_words: shared.prefix_length.unwrap_or(256),
            suffix_words: shared.suffix_length.unwrap_or(32),
        }
    } else if let Some(path) = &p.dataset {
        let format = p
            .dataset_format
            .as_deref()
            .map(DatasetFormat::named)
            .transpose()
            .map_err(|e| {
                bad(
                    format!("openai parameters: {e}"),
                    "or leave it out: the content decides",
                )
            })?;
        Source::Dataset {
            path: path.into(),
            format,
            data: OnceLock::new(),
            replace: p.sample_with_replacement.unwrap_or(false),
            block_tokens: p.block_tokens.unwrap_or(512).max(1),
            tag: prompts::dataset_tag(p.prompt_salt),
        }
    } else {
        Source::Synthetic {
            words: p.prompt_length.unwrap_or(64),
        }
    };
    if source.needs_tokens() && endpoint == Endpoint::Chat {
        return Err(bad(TOKENS_NEED_COMPLETIONS, CHAT_TEMPLATE));
    }
    Ok(source)
}

impl OpenAiWorkload {
    /// Checks the parameters and prepares requests to the server at `url`.
    ///
    /// # Errors
    /// An unknown parameter or value, a dataset that cannot be read, or a URL that is
    /// not http://.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("openai", KNOWN, parameters)?;
        let url = Url::parse(url)?;
        let endpoint = p.endpoint.unwrap_or(Endpoint::Completions);
        let source = source(&p, endpoint)?;
        let turns = p.turns.unwrap_or(1);
        if turns == 0 || (turns > 1 && endpoint != Endpoint::Chat) {
            return Err(bad(
                format!(
                    "openai parameters: turns must be at least 1, and more than 1 needs endpoint: chat (got turns: {turns} on endpoint: {})",
                    if endpoint == Endpoint::Chat {
                        "chat"
                    } else {
                        "completions"
                    }
                ),
                "endpoint: chat, turns: 4: sessions of 4 requests, each carrying the session's earlier questions and answers",
            ));
        }
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
        let metrics_path = match &p.server_metrics {
            None | Some(Value::Bool(true)) => Some("/metrics".to_owned()),
            Some(Value::Bool(false)) => None,
            Some(Value::String(path)) if path.starts_with('/') => Some(path.clone()),
            Some(other) => {
                return Err(bad(
                    format!(
                        "openai parameters: server_metrics must be true, false or a path, not {other}"
                    ),
                    "server_metrics: /metrics (the default), or false to scrape nothing",
                ));
            }
        };
        Ok(Self(Arc::new(Shared {
            authority: format!("{}:{}", url.host, url.port),
            url,
            model: p.model,
            endpoint,
            source,
            turns,
            vocabulary: OnceLock::new(),
            extra,
            stream: p.stream.unwrap_or(true),
            // The synthetic prompts' seed: the sampling seed, salted per run.
            seed: p.seed.unwrap_or(1) ^ p.prompt_salt.unwrap_or(0),
            timeout,
            metrics_path,
            metrics_found: OnceLock::new(),
        })))
    }
}

impl Shared {
    /// The server's metrics page, when it answers one in Prometheus' text format
    /// within 2 s (a connection of its own, so no request waits behind it).
    async fn page(&self) -> Option<String> {
        let path = self.metrics_path.as_deref()?;
        let fetch = async {
            let mut sender = open_http1(&self.url, Duration::from_secs(2)).await.ok()?;
            let (status, text) = get_text(&mut sender, &self.authority, path).await.ok()?;
            ((200..300).contains(&status) && text.contains("# TYPE")).then_some(text)
        };
        tokio::time::timeout(Duration::from_secs(2), fetch)
            .await
            .ok()
            .flatten()
    }

    /// A connection, and the model it asks for: the one named, if the server serves
    /// it, else the server's first.
    async fn open(&self) -> Result<(SendRequest<Full<Bytes>>, String), String> {
        let mut sender = open_http1(&self.url, self.timeout).await?;
        let models = get_json(&mut sender, &self.authority, "/v1/models")
            .await
            .map_err(|e| format!("{e}: is this an OpenAI-compatible server?"))?;
        let ids: Vec<&str> = models["data"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
            .unwrap_or_default();
        let model = match &self.model {
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
        Ok((sender, model))
    }
}

#[async_trait]
impl Workload for OpenAiWorkload {
    async fn prepare(&self) -> Result<(), String> {
        let s = &self.0;
        s.source.load()?;
        if s.metrics_found.get().is_none() {
            // A page only where the server has one: llama-cpp-python answers 404.
            let found = s.page().await.is_some();
            let _ = s.metrics_found.set(found);
        }
        if !s.source.needs_tokens() || s.vocabulary.get().is_some() {
            return Ok(());
        }
        if s.endpoint == Endpoint::Chat {
            return Err(format!("{TOKENS_NEED_COMPLETIONS} ({CHAT_TEMPLATE})"));
        }
        let (_, model) = s.open().await?;
        let ask = tokens::Asker::new(&s.url, &s.authority);
        let vocabulary = tokens::calibrate(ask, &model).await?;
        let _ = s.vocabulary.set(vocabulary);
        Ok(())
    }

    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let (sender, model) = self.0.open().await?;
        Ok(Box::new(OpenAiConnection {
            shared: self.0.clone(),
            sender,
            model,
            history: Vec::new(),
        }))
    }

    async fn scrape(&self) -> Option<String> {
        if self.0.metrics_found.get() == Some(&true) {
            self.0.page().await
        } else {
            None
        }
    }

    fn schedule(&self, time_scale: f64) -> Option<Vec<Duration>> {
        self.0.source.dataset()?.schedule(time_scale)
    }
}

struct OpenAiConnection {
    shared: Arc<Shared>,
    sender: SendRequest<Full<Bytes>>,
    model: String,
    /// The chat session's messages so far (`turns` > 1): a question and its answer
    /// for each of its requests.
    history: Vec<Value>,
}

impl OpenAiConnection {
    async fn send(&mut self, n: u64) -> Outcome {
        let s = &self.shared;
        let request = s.source.request(s.seed, n, s.vocabulary.get());
        let mut body = s.extra.clone();
        body.insert("model".into(), json!(self.model));
        body.insert("stream".into(), json!(s.stream));
        if s.stream {
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        if let Some(max) = request.max_tokens {
            body.insert("max_tokens".into(), json!(max));
        }
        let path = match (s.endpoint, request.prompt) {
            (Endpoint::Completions, Prompt::Text(text)) => {
                body.insert("prompt".into(), json!(text));
                "/v1/completions"
            }
            (Endpoint::Completions, Prompt::Messages(messages)) => {
                // The question itself: a completion takes no history.
                let last = messages.last().map(|(_, c)| c.as_str()).unwrap_or("");
                body.insert("prompt".into(), json!(last));
                "/v1/completions"
            }
            (Endpoint::Chat, prompt) if s.turns > 1 => {
                // A session's next question: the prompt's text (a conversation's
                // last message), after the session's questions and answers so far.
                if self.history.len() as u64 >= 2 * s.turns {
                    self.history.clear();
                }
                let text = match prompt {
                    Prompt::Text(text) => text,
                    Prompt::Messages(mut m) => m.pop().map(|(_, c)| c).unwrap_or_default(),
                };
                self.history.push(json!({"role": "user", "content": text}));
                body.insert("messages".into(), Value::Array(self.history.clone()));
                "/v1/chat/completions"
            }
            (Endpoint::Chat, Prompt::Text(text)) => {
                body.insert(
                    "messages".into(),
                    json!([{"role": "user", "content": text}]),
                );
                "/v1/chat/completions"
            }
            (Endpoint::Chat, Prompt::Messages(messages)) => {
                let messages: Vec<Value> = messages
                    .iter()
                    .map(|(role, content)| json!({"role": role, "content": content}))
                    .collect();
                body.insert("messages".into(), Value::Array(messages));
                "/v1/chat/completions"
            }
        };
        let bytes_out = Bytes::from(serde_json::to_vec(&Value::Object(body)).expect("JSON"));
        // A connection the server closed while it was idle (llama.cpp's server closes
        // kept-alive connections between requests, sometimes without saying so) fails
        // before any answer: the request was not taken, and goes again on a new
        // connection, as any HTTP client's would. A second such failure counts.
        let mut started = Instant::now();
        let mut response = None;
        for attempt in 0..2 {
            if attempt > 0 || self.sender.ready().await.is_err() {
                match open_http1(&s.url, s.timeout).await {
                    Ok(sender) => self.sender = sender,
                    Err(_) => return Outcome::failed("connect"),
                }
                if self.sender.ready().await.is_err() {
                    return Outcome::failed("connection_closed");
                }
            }
            started = Instant::now();
            let request = json_request(&s.authority, Method::POST, path, bytes_out.clone());
            match self.sender.send_request(request).await {
                Ok(r) => {
                    response = Some(r);
                    break;
                }
                Err(e) if e.is_canceled() || e.is_incomplete_message() => {}
                Err(_) => return Outcome::failed("connection_closed"),
            }
        }
        let Some(response) = response else {
            return Outcome::failed("connection_closed");
        };
        let status = response.status();
        let mut answer = Answer {
            text: (s.turns > 1).then(String::new),
            ..Answer::default()
        };
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
            input_expected: request.expected,
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
        out.input_tokens = answer.prompt_tokens;
        (out.output_tokens, out.token_source) = match answer.usage_tokens {
            Some(tokens) => (Some(tokens), TokenSource::Server),
            None => (Some(answer.text_events), TokenSource::Client),
        };
        if let Some(text) = answer.text {
            self.history
                .push(json!({"role": "assistant", "content": text}));
        }
        out
    }
}

#[async_trait]
impl Connection for OpenAiConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        let out = orchestrator_core::workload::within(self.shared.timeout, self.send(n)).await;
        if out.error.is_some() {
            // A session whose question failed starts over: its history lacks an answer.
            self.history.clear();
        }
        out
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
                "input_tokens": {"type": "integer", "minimum": 1},
                "input_tokens_spread": {"type": "number", "minimum": 0, "maximum": 1, "default": 0},
                "dataset": {"type": "string"},
                "dataset_format": {"enum": ["jsonl", "sharegpt", "trace"]},
                "sample_with_replacement": {"type": "boolean", "default": false},
                "block_tokens": {"type": "integer", "minimum": 1, "default": 512},
                "prompt_salt": {"type": "integer", "minimum": 0},
                "shared_prefix": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["prefixes", "suffixes"],
                    "properties": {
                        "prefixes": {"type": "integer", "minimum": 1},
                        "suffixes": {"type": "integer", "minimum": 1},
                        "prefix_length": {"type": "integer", "minimum": 0, "default": 256},
                        "suffix_length": {"type": "integer", "minimum": 0, "default": 32}
                    }
                },
                "turns": {"type": "integer", "minimum": 1, "default": 1},
                "max_tokens": {"type": "integer", "minimum": 1, "default": 128},
                "temperature": {"type": "number"},
                "seed": {"type": "integer"},
                "ignore_eos": {"type": "boolean", "default": false},
                "stream": {"type": "boolean", "default": true},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 300},
                "server_metrics": {"oneOf": [{"type": "boolean"}, {"type": "string", "pattern": "^/"}], "default": "/metrics"}
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
