//! Prompts of an exact number of tokens for the server's own tokenizer, found through
//! its tokenize endpoint: `POST /tokenize` (vLLM, llama.cpp's `llama-server`) or
//! `POST /extras/tokenize` (llama-cpp-python's server).
//!
//! Once per workload, before any load: the endpoint counts the tokens the server adds
//! to every prompt (a BOS) and the tokens of each of the prompt words, written with a
//! space before it; the words that are one token each make the vocabulary. A prompt
//! of N tokens is then the added tokens and N of those words, seeded. A pre-tokenizer
//! that splits at spaces (every BPE tokenizer of current LLMs) cannot merge tokens
//! across words, and one prompt built this way is counted by the server before any
//! load, so a tokenizer where this does not hold is refused, not measured wrongly.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Method;
use hyper::client::conn::http1::SendRequest;
use orchestrator_core::workload::{PROMPT_WORDS, Rng};
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

/// Words that are one token each for the server's tokenizer, and what it adds.
#[derive(Debug, Clone)]
pub(crate) struct Vocabulary {
    /// Each is one token, written as here (with its leading space).
    words: Vec<String>,
    /// Tokens the server adds to every prompt (a BOS).
    added: u64,
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

impl Vocabulary {
    /// Asks the server's tokenizer (the one that serves `model`).
    ///
    /// # Errors
    /// The server has no tokenize endpoint, or its tokenizer does not count prompts of
    /// these words additively.
    pub(crate) async fn calibrate(ask: &mut Asker<'_>, model: &str) -> Result<Self, String> {
        let mut endpoint = None;
        for candidate in [Endpoint::Tokenize, Endpoint::Extras] {
            if let Some(n) = ask.count(candidate, model, "").await? {
                endpoint = Some((candidate, n));
                break;
            }
        }
        let Some((endpoint, added)) = endpoint else {
            return Err("exact input lengths need the server's tokenize endpoint (POST /tokenize or /extras/tokenize), and this server has neither; give prompt_length (words) instead".into());
        };
        let mut words = Vec::new();
        for word in PROMPT_WORDS {
            let text = format!(" {word}");
            if ask.count(endpoint, model, &text).await? == Some(added + 1) {
                words.push(text);
            }
        }
        if words.len() < 16 {
            return Err(format!(
                "the server's tokenizer makes only {} of {} common words one token: exact input lengths cannot be built for it",
                words.len(),
                PROMPT_WORDS.len()
            ));
        }
        let vocabulary = Self { words, added };
        // One prompt, as requests will build them, counted whole.
        let probe = vocabulary.prompt(200, &[], 512, 0x5eed, 0);
        let counted = ask.count(endpoint, model, &probe).await?;
        if counted != Some(200) {
            return Err(format!(
                "a prompt built to 200 tokens has {} for the server's tokenizer: it merges tokens across words, and exact input lengths cannot be built for it",
                counted.map_or_else(|| "no count".to_owned(), |c| c.to_string())
            ));
        }
        Ok(vocabulary)
    }

    /// The tokens every prompt has at least (those the server adds, and one).
    pub(crate) fn shortest(&self) -> u64 {
        self.added + 1
    }

    /// A prompt of `tokens` tokens (at least [`shortest`](Self::shortest)): the
    /// blocks `blocks` of `block_tokens` each (a block's words follow from its hash
    /// and `seed`, so equal hashes give equal prefixes), then words drawn for request
    /// `n`.
    pub(crate) fn prompt(
        &self,
        tokens: u64,
        blocks: &[u64],
        block_tokens: u64,
        seed: u64,
        n: u64,
    ) -> String {
        let want = tokens.saturating_sub(self.added).max(1);
        let mut text = String::with_capacity(usize::try_from(want * 6).unwrap_or(0));
        let mut left = want;
        let len = self.words.len() as u64;
        let mix = |v: u64| Rng::new(v).next_u64();
        let mut push = |rng: &mut Rng, k: u64, left: &mut u64| {
            for _ in 0..k.min(*left) {
                let i = usize::try_from(rng.next_u64() % len).unwrap_or(0);
                text.push_str(&self.words[i]);
            }
            *left = left.saturating_sub(k);
        };
        for hash in blocks {
            if left == 0 {
                break;
            }
            let mut rng = Rng::new(mix(seed ^ mix(hash ^ 0xb10c)));
            push(&mut rng, block_tokens, &mut left);
        }
        let mut rng = Rng::new(mix(seed ^ mix(n)));
        push(&mut rng, left, &mut left);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocabulary() -> Vocabulary {
        Vocabulary {
            words: [" a", " b", " c", " d"].map(str::to_owned).to_vec(),
            added: 1,
        }
    }

    #[test]
    fn a_prompt_has_the_words_for_its_tokens_less_those_the_server_adds() {
        let v = vocabulary();
        let p = v.prompt(48, &[], 512, 1, 0);
        assert_eq!(p.split_whitespace().count(), 47);
        assert_eq!(v.prompt(48, &[], 512, 1, 0), p, "deterministic");
        assert_ne!(v.prompt(48, &[], 512, 1, 1), p, "each request its own");
        assert_eq!(v.prompt(1, &[], 512, 1, 0).split_whitespace().count(), 1);
    }

    #[test]
    fn equal_block_hashes_give_equal_prefixes() {
        let v = vocabulary();
        let a = v.prompt(25, &[7, 8], 10, 3, 0);
        let b = v.prompt(25, &[7, 9], 10, 3, 1);
        let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let (a, b) = (words(&a), words(&b));
        assert_eq!(a.len(), 24);
        assert_eq!(a[..10], b[..10], "block 7 is shared");
        assert_ne!(a[10..20], b[10..20], "blocks 8 and 9 differ");
        // Another run (seed) has other blocks for the same hashes.
        assert_ne!(words(&v.prompt(25, &[7], 10, 4, 0))[..10], a[..10]);
    }
}
