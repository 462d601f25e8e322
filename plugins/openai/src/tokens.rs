//! The server's tokenize endpoint, as the [`TokenCounter`] that builds prompts of an
//! exact number of tokens ([`Vocabulary`]): `POST /tokenize` (vLLM, llama.cpp's
//! `llama-server`) or `POST /extras/tokenize` (llama-cpp-python's server). An empty
//! prompt counts the tokens the server adds (a BOS).

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::vocabulary::{TokenCounter, Vocabulary};
use std::time::Duration;

use orchestrator_plugin_http::{Url, exchange_json, open_http1};
use serde_json::{Value, json};

/// Which tokenize endpoint the server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `POST /tokenize` (vLLM: `prompt`; llama.cpp: `content`, `add_special`).
    Tokenize,
    /// `POST /extras/tokenize` (llama-cpp-python: `input`).
    Extras,
}

/// A connection for the calibration's requests, opened again when the server closes
/// it (llama.cpp's server ends a keep-alive connection after a few requests).
pub(crate) struct Asker<'a> {
    url: &'a Url,
    authority: &'a str,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl<'a> Asker<'a> {
    /// Asks the server at `url` (`authority`, its `host:port`).
    pub(crate) fn new(url: &'a Url, authority: &'a str) -> Self {
        Self {
            url,
            authority,
            sender: None,
        }
    }

    async fn count(
        &mut self,
        endpoint: Endpoint,
        model: &str,
        text: &str,
    ) -> Result<Option<u64>, String> {
        let mut last = String::new();
        for _ in 0..2 {
            if self.sender.is_none() {
                self.sender = Some(open_http1(self.url, Duration::from_secs(30)).await?);
            }
            let sender = self.sender.as_mut().expect("opened above");
            match count(sender, self.authority, endpoint, model, text).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    // Closed by the server: once more on a new connection.
                    self.sender = None;
                    last = e;
                }
            }
        }
        Err(last)
    }
}

async fn count(
    sender: &mut SendRequest<Full<Bytes>>,
    authority: &str,
    endpoint: Endpoint,
    model: &str,
    text: &str,
) -> Result<Option<u64>, String> {
    let (path, body) = match endpoint {
        Endpoint::Tokenize => (
            "/tokenize",
            json!({"model": model, "prompt": text, "content": text, "add_special": true}),
        ),
        Endpoint::Extras => ("/extras/tokenize", json!({"input": text})),
    };
    let body = Bytes::from(serde_json::to_vec(&body).expect("JSON"));
    let (status, answer) = exchange_json(sender, authority, Method::POST, path, body).await?;
    if status == 404 || status == 405 {
        return Ok(None);
    }
    let tokens = answer
        .as_ref()
        .and_then(|a| a.get("tokens"))
        .and_then(Value::as_array)
        .filter(|_| (200..300).contains(&status))
        .ok_or_else(|| format!("POST {path} answered {status} without a `tokens` list"))?;
    Ok(Some(tokens.len() as u64))
}

/// Builds the server's [`Vocabulary`] for `model` through its tokenize endpoint.
///
/// # Errors
/// The server has no tokenize endpoint, or its tokenizer does not count prompts of
/// these words additively.
pub(crate) async fn calibrate(ask: Asker<'_>, model: &str) -> Result<Vocabulary, String> {
    let mut counter = Counter {
        ask,
        endpoint: Endpoint::Tokenize,
        model,
    };
    for endpoint in [Endpoint::Tokenize, Endpoint::Extras] {
        counter.endpoint = endpoint;
        if let Some(added) = counter.ask.count(endpoint, model, "").await? {
            return Vocabulary::calibrate(&mut counter, Some(added)).await;
        }
    }
    Err("exact input lengths need the server's tokenize endpoint (POST /tokenize or /extras/tokenize), and this server has neither; give prompt_length (words) instead".into())
}

/// The tokenize endpoint the server has.
struct Counter<'a> {
    ask: Asker<'a>,
    endpoint: Endpoint,
    model: &'a str,
}

#[async_trait]
impl TokenCounter for Counter<'_> {
    async fn count(&mut self, text: &str) -> Result<u64, String> {
        self.ask
            .count(self.endpoint, self.model, text)
            .await?
            .ok_or_else(|| "the tokenize endpoint went away".to_owned())
    }
}
