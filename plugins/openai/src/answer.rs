//! Reading an answer as it arrives: SSE events (or one JSON object, not streamed).

use std::time::{Duration, Instant};

use serde_json::Value;

/// What the answer said, as it arrived.
#[derive(Default)]
pub(crate) struct Answer {
    pub(crate) first_text: Option<Instant>,
    pub(crate) last_text: Option<Instant>,
    pub(crate) gaps: Vec<Duration>,
    pub(crate) text_events: u64,
    pub(crate) usage_tokens: Option<u64>,
    /// The server's count of the prompt's tokens (`usage.prompt_tokens`).
    pub(crate) prompt_tokens: Option<u64>,
    pub(crate) done: bool,
    pub(crate) error: Option<String>,
    /// The answer's text, kept when `Some` (a chat session's history needs it).
    pub(crate) text: Option<String>,
}

impl Answer {
    /// One JSON object: an SSE event's data, or the whole non-streamed answer.
    pub(crate) fn object(&mut self, object: &Value, at: Instant) {
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
            if let Some(all) = &mut self.text {
                all.push_str(text);
            }
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
        if let Some(tokens) = object["usage"]["prompt_tokens"].as_u64() {
            self.prompt_tokens = Some(tokens);
        }
    }

    /// One SSE line (`data: {...}` or `data: [DONE]`; others are ignored).
    pub(crate) fn sse_line(&mut self, line: &str, at: Instant) {
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
