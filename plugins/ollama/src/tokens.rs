//! Prompts of an exact number of tokens for an Ollama server, which has no tokenize
//! endpoint: the [`TokenCounter`] is a request of the workload's own shape (endpoint,
//! model, template) that asks for one output token, and reads the final object's
//! `prompt_eval_count`.
//!
//! That count is the whole prompt as the model sees it, its chat template included,
//! whether or not its prefix was in the server's cache: Ollama's llama-server backend
//! reports `cache_n + prompt_n`, and its earlier Go runner the length of the prompt's
//! inputs (read from Ollama's source, `llm/llama_server.go` and
//! `runner/ollamarunner/runner.go`, v0.32). An empty prompt only loads the model (no
//! count), so the template's tokens follow from one word and the same word twice
//! ([`Vocabulary::calibrate`]). A server whose count does not hold up is refused by the
//! calibration's whole-prompt check, and every request is checked again against its
//! own `prompt_eval_count`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::vocabulary::{TokenCounter, Vocabulary};
use orchestrator_plugin_http::{exchange_json, open_http1};
use serde_json::{Value, json};

use crate::Shared;

/// Counts through the server's `prompt_eval_count`, on a connection opened again when
/// the server closes it.
struct Counter<'a> {
    shared: &'a Shared,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Counter<'_> {
    async fn ask(&mut self, text: &str) -> Result<u64, String> {
        let s = self.shared;
        let mut options = s.options.clone();
        options.insert("num_predict".into(), json!(1));
        let (path, mut body) = s.request(text.to_owned());
        body["stream"] = json!(false);
        body["options"] = Value::Object(options);
        if self.sender.is_none() {
            self.sender = Some(open_http1(&s.url, Duration::from_secs(120)).await?);
        }
        let sender = self.sender.as_mut().expect("opened above");
        let body = Bytes::from(serde_json::to_vec(&body).expect("JSON"));
        let (status, answer) = exchange_json(sender, &s.authority, Method::POST, path, body)
            .await
            .inspect_err(|_| self.sender = None)?;
        let answer = answer.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(format!(
                "POST {path} answered {status} ({}) while counting prompt tokens",
                answer["error"].as_str().unwrap_or("no error message")
            ));
        }
        answer["prompt_eval_count"].as_u64().ok_or_else(|| {
            format!(
                "POST {path} answered without `prompt_eval_count`: exact input lengths need the server to count each prompt's tokens (Ollama does since its first versions; is this Ollama?)"
            )
        })
    }
}

#[async_trait]
impl TokenCounter for Counter<'_> {
    async fn count(&mut self, text: &str) -> Result<u64, String> {
        match self.ask(text).await {
            // Closed by the server: once more on a new connection.
            Err(_) if self.sender.is_none() => self.ask(text).await,
            other => other,
        }
    }
}

/// Builds the server's [`Vocabulary`] for the workload's model and endpoint, asking on
/// `sender` first.
///
/// # Errors
/// The server cannot be asked, does not report `prompt_eval_count`, or its tokenizer
/// does not count prompts of these words additively.
pub(crate) async fn calibrate(
    shared: &Shared,
    sender: SendRequest<Full<Bytes>>,
) -> Result<Vocabulary, String> {
    let mut counter = Counter {
        shared,
        sender: Some(sender),
    };
    Vocabulary::calibrate(&mut counter, None).await
}
