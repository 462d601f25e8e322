//! Prompts from a file, for the LLM workloads' `dataset` parameter: JSON lines of
//! prompts (`{"prompt": …}`, or chat `messages`, with an optional `output_tokens`),
//! ShareGPT-format conversations (a JSON array of `{"conversations": [{"from":
//! "human", "value": …}, …]}`), and timed traces (JSON lines with a `timestamp` in
//! milliseconds, `input_length`, `output_length` and optional `hash_ids`, as the
//! Mooncake traces are), replayed at their own times.
//!
//! The format is recognised from the content (or given): a JSON array is ShareGPT
//! when its entries hold `conversations`; JSON lines are a trace when the first holds
//! a `timestamp`. Which entry a request sends is [`Dataset::pick`]: seeded, with or
//! without replacement; a trace sends its entries in order.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::rng::Rng;

/// How a dataset file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// One JSON object per line: `prompt` (or `text`) or `messages`.
    Jsonl,
    /// A JSON array of ShareGPT conversations.
    ShareGpt,
    /// One JSON object per line with a `timestamp` (ms) and token lengths.
    Trace,
}

impl DatasetFormat {
    /// The format named `name` (`jsonl`, `sharegpt`, `trace`).
    ///
    /// # Errors
    /// Another name.
    pub fn named(name: &str) -> Result<Self, String> {
        match name {
            "jsonl" => Ok(Self::Jsonl),
            "sharegpt" => Ok(Self::ShareGpt),
            "trace" => Ok(Self::Trace),
            other => Err(format!(
                "dataset_format `{other}`: expected jsonl, sharegpt or trace"
            )),
        }
    }
}

/// What an entry asks the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryPrompt {
    /// A prompt's text.
    Text(String),
    /// Chat messages, `(role, content)`, the history before the answer asked for.
    Messages(Vec<(String, String)>),
    /// A prompt of `input` tokens, built for the server's tokenizer: the blocks named
    /// by `blocks` (a trace's prefix-block hashes; equal hashes, equal tokens), then
    /// tokens of the request's own.
    Tokens {
        /// The prompt's length in tokens.
        input: u64,
        /// Its prefix blocks' hashes.
        blocks: Vec<u64>,
    },
}

impl EntryPrompt {
    /// The prompt as one text (chat messages: the last one's content).
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(t),
            Self::Messages(m) => m.last().map(|(_, c)| c.as_str()),
            Self::Tokens { .. } => None,
        }
    }
}

/// One entry of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it asks.
    pub prompt: EntryPrompt,
    /// The answer's length it asks for, when the file gives one.
    pub output_tokens: Option<u64>,
    /// When it is sent, from the trace's start (traces only).
    pub at: Option<Duration>,
}

/// A dataset read from a file.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Its format.
    pub format: DatasetFormat,
    /// Its entries, in the file's order (a trace's sorted by time).
    pub entries: Vec<Entry>,
    /// How many of the file's records held nothing to send (a conversation without a
    /// human turn).
    pub skipped: usize,
}

/// Where a parse error is: `FILE:LINE:COLUMN: what` and a hint.
fn at(name: &str, line: usize, column: usize, what: &str) -> String {
    format!("{name}:{line}:{column}: {what}")
}

impl Dataset {
    /// Reads `path` (its format recognised from the content unless `format` says).
    ///
    /// # Errors
    /// The file cannot be read, or an entry is not what the format wants; the message
    /// names the file, line and column.
    pub fn load(path: &Path, format: Option<DatasetFormat>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the dataset {}: {e}", path.display()))?;
        Self::parse(&text, format, &path.display().to_string())
    }

    /// Parses a dataset's text; `name` is what errors call the file.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, format: Option<DatasetFormat>, name: &str) -> Result<Self, String> {
        let array = text.trim_start().starts_with('[');
        let format = match format {
            Some(f) => f,
            None if array => DatasetFormat::ShareGpt,
            None => {
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                match serde_json::from_str::<Value>(first) {
                    Ok(v) if v.get("timestamp").is_some() => DatasetFormat::Trace,
                    _ => DatasetFormat::Jsonl,
                }
            }
        };
        let records: Vec<(usize, Value)> = if array {
            let values: Vec<Value> = serde_json::from_str(text).map_err(|e| {
                at(
                    name,
                    e.line(),
                    e.column(),
                    &format!("not a JSON array: {e}"),
                )
            })?;
            // An array has no lines per entry: errors name the entry's index instead.
            values.into_iter().enumerate().collect()
        } else {
            let mut records = Vec::new();
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value = serde_json::from_str(line).map_err(|e| {
                    at(
                        name,
                        i + 1,
                        e.column(),
                        &format!("not a JSON object: {e} (a JSON-lines dataset holds one object per line)"),
                    )
                })?;
                records.push((i + 1, value));
            }
            records
        };
        let mut entries = Vec::with_capacity(records.len());
        let mut skipped = 0;
        for (place, record) in &records {
            let wrong = |what: &str| {
                if array {
                    format!("{name}: entry {place} (from 0): {what}")
                } else {
                    at(name, *place, 1, what)
                }
            };
            let entry = match format {
                DatasetFormat::Jsonl => jsonl_entry(record).map_err(|e| wrong(&e))?,
                DatasetFormat::ShareGpt => sharegpt_entry(record).map_err(|e| wrong(&e))?,
                DatasetFormat::Trace => Some(trace_entry(record).map_err(|e| wrong(&e))?),
            };
            match entry {
                Some(entry) => entries.push(entry),
                None => skipped += 1,
            }
        }
        if entries.is_empty() {
            return Err(format!(
                "{name}: the dataset holds no prompt{}",
                if skipped > 0 {
                    format!(" ({skipped} records without one)")
                } else {
                    String::new()
                }
            ));
        }
        if format == DatasetFormat::Trace {
            entries.sort_by_key(|e| e.at);
        }
        Ok(Self {
            format,
            entries,
            skipped,
        })
    }

    /// The entry request `n` sends: a trace's in order (wrapping round), others drawn
    /// with `seed`, with replacement or (`replace` false) as a shuffled order that
    /// repeats once every entry has been sent.
    #[must_use]
    pub fn pick(&self, n: u64, seed: u64, replace: bool) -> &Entry {
        let len = self.entries.len() as u64;
        let i = if self.format == DatasetFormat::Trace {
            n % len
        } else if replace {
            Rng::new(seed ^ Rng::new(n).next_u64()).next_u64() % len
        } else {
            permuted(n % len, len, seed)
        };
        &self.entries[usize::try_from(i).unwrap_or(0)]
    }

    /// A trace's send times, scaled by `time_scale` (0.5: twice as fast), from its
    /// first entry; `None` for a dataset without times.
    #[must_use]
    pub fn schedule(&self, time_scale: f64) -> Option<Vec<Duration>> {
        let first = self.entries.first()?.at?;
        self.entries
            .iter()
            .map(|e| e.at.map(|t| (t - first).mul_f64(time_scale)))
            .collect()
    }
}

/// Position `i` of a seeded permutation of `0..len`, without building it: a
/// cycle-walking Feistel network over the next power of two (every index once, in
/// an order fixed by `seed`).
#[must_use]
pub fn permuted(i: u64, len: u64, seed: u64) -> u64 {
    let bits = 64 - (len.max(2) - 1).leading_zeros();
    let half = bits.div_ceil(2);
    let mask = (1u64 << half) - 1;
    let round = |x: u64, r: u64| Rng::new(seed ^ (x << 8) ^ r).next_u64() & mask;
    let mut x = i;
    loop {
        let (mut l, mut r) = (x >> half, x & mask);
        for k in 0..4 {
            let next = l ^ round(r, k);
            l = r;
            r = next;
        }
        x = (l << half) | r;
        if x < len {
            return x;
        }
    }
}

fn count(record: &Value, names: &[&str]) -> Result<Option<u64>, String> {
    for name in names {
        if let Some(v) = record.get(*name) {
            return v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`{name}` must be a whole number of tokens, not {v}"));
        }
    }
    Ok(None)
}

fn messages(list: &Value, role: &str, content: &str) -> Result<Vec<(String, String)>, String> {
    let items = list.as_array().ok_or("the messages must be a list")?;
    items
        .iter()
        .map(|m| {
            match (
                m.get(role).and_then(Value::as_str),
                m.get(content).and_then(Value::as_str),
            ) {
                (Some(r), Some(c)) => Ok((r.to_owned(), c.to_owned())),
                _ => Err(format!(
                    "each message needs `{role}` and `{content}` strings"
                )),
            }
        })
        .collect()
}

fn jsonl_entry(record: &Value) -> Result<Option<Entry>, String> {
    let output_tokens = count(record, &["output_tokens", "output_length", "max_tokens"])?;
    let prompt = if let Some(text) = record.get("prompt").or_else(|| record.get("text")) {
        EntryPrompt::Text(
            text.as_str()
                .ok_or_else(|| format!("the prompt must be a string, not {text}"))?
                .to_owned(),
        )
    } else if let Some(list) = record.get("messages") {
        EntryPrompt::Messages(messages(list, "role", "content")?)
    } else if let Some(input) = count(record, &["input_tokens", "input_length"])? {
        EntryPrompt::Tokens {
            input,
            blocks: Vec::new(),
        }
    } else {
        return Err(
            "expected `prompt` (a string), `messages` (chat messages) or `input_tokens`".into(),
        );
    };
    Ok(Some(Entry {
        prompt,
        output_tokens,
        at: None,
    }))
}

/// A ShareGPT conversation: its turns up to the first human one and the answer after
/// it (later turns are the multi-turn workload's); no human turn, no entry.
fn sharegpt_entry(record: &Value) -> Result<Option<Entry>, String> {
    let list = record
        .get("conversations")
        .or_else(|| record.get("conversation"))
        .ok_or("expected a ShareGPT conversation: an object with `conversations`")?;
    let turns = messages(list, "from", "value")?;
    let Some(first) = turns
        .iter()
        .position(|(from, _)| from == "human" || from == "user")
    else {
        return Ok(None);
    };
    let history = turns[..=first]
        .iter()
        .map(|(from, value)| {
            let role = match from.as_str() {
                "human" | "user" => "user",
                "system" => "system",
                _ => "assistant",
            };
            (role.to_owned(), value.clone())
        })
        .collect();
    Ok(Some(Entry {
        prompt: EntryPrompt::Messages(history),
        output_tokens: count(record, &["output_tokens"])?,
        at: None,
    }))
}

fn trace_entry(record: &Value) -> Result<Entry, String> {
    let ms = record
        .get("timestamp")
        .and_then(Value::as_f64)
        .filter(|t| *t >= 0.0 && t.is_finite())
        .ok_or("a trace record needs a `timestamp`: milliseconds from the trace's start")?;
    let input = count(record, &["input_length", "input_tokens"])?
        .ok_or("a trace record needs an `input_length` (tokens)")?;
    let blocks = match record.get("hash_ids") {
        None => Vec::new(),
        Some(list) => list
            .as_array()
            .and_then(|l| l.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
            .ok_or("`hash_ids` must be a list of whole numbers")?,
    };
    Ok(Entry {
        prompt: EntryPrompt::Tokens { input, blocks },
        output_tokens: count(record, &["output_length", "output_tokens"])?,
        at: Some(Duration::from_secs_f64(ms / 1000.0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_prompts_and_chat_messages_with_their_output_lengths() {
        let text = r#"{"prompt": "Why is the sky blue?", "output_tokens": 32}

{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
"#;
        let d = Dataset::parse(text, None, "p.jsonl").unwrap();
        assert_eq!(d.format, DatasetFormat::Jsonl);
        assert_eq!(d.entries.len(), 2);
        assert_eq!(d.entries[0].prompt.text(), Some("Why is the sky blue?"));
        assert_eq!(d.entries[0].output_tokens, Some(32));
        assert_eq!(d.entries[1].prompt.text(), Some("Hi"));
        assert_eq!(d.entries[1].output_tokens, None);
    }

    #[test]
    fn a_bad_line_is_named_by_file_line_and_column() {
        let text = "{\"prompt\": \"a\"}\n{\"prompt\": \"b\",}\n";
        let e = Dataset::parse(text, None, "p.jsonl").unwrap_err();
        assert!(e.starts_with("p.jsonl:2:16: not a JSON object"), "{e}");
        let e = Dataset::parse("{\"question\": \"a\"}\n", None, "q.jsonl").unwrap_err();
        assert!(e.starts_with("q.jsonl:1:1: expected `prompt`"), "{e}");
        let e =
            Dataset::parse("{\"prompt\": \"a\", \"output_tokens\": -1}", None, "o").unwrap_err();
        assert!(e.contains("`output_tokens` must be a whole number"), "{e}");
    }

    #[test]
    fn sharegpt_conversations_give_their_first_human_turn_and_skip_those_without() {
        let text = r#"[
          {"id": "a", "conversations": [{"from": "human", "value": "Hello?"}, {"from": "gpt", "value": "Hi."}, {"from": "human", "value": "More"}]},
          {"id": "b", "conversations": [{"from": "gpt", "value": "Nobody asked."}]},
          {"id": "c", "conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Why?"}]}
        ]"#;
        let d = Dataset::parse(text, None, "sg.json").unwrap();
        assert_eq!(d.format, DatasetFormat::ShareGpt);
        assert_eq!(d.skipped, 1);
        assert_eq!(d.entries.len(), 2);
        assert_eq!(
            d.entries[0].prompt,
            EntryPrompt::Messages(vec![("user".into(), "Hello?".into())])
        );
        assert_eq!(
            d.entries[1].prompt,
            EntryPrompt::Messages(vec![
                ("system".into(), "Be kind.".into()),
                ("user".into(), "Why?".into())
            ])
        );
        let e = Dataset::parse(
            r#"[{"prompt": "x"}]"#,
            Some(DatasetFormat::ShareGpt),
            "sg.json",
        )
        .unwrap_err();
        assert!(
            e.starts_with("sg.json: entry 0 (from 0): expected a ShareGPT"),
            "{e}"
        );
    }

    #[test]
    fn a_mooncake_trace_is_sorted_by_time_and_scaled() {
        let text = r#"{"timestamp": 1000, "input_length": 600, "output_length": 12, "hash_ids": [0, 1]}
{"timestamp": 0, "input_length": 700, "output_length": 5, "hash_ids": [0, 2]}
{"timestamp": 250, "input_length": 40, "output_length": 3}
"#;
        let d = Dataset::parse(text, None, "trace.jsonl").unwrap();
        assert_eq!(d.format, DatasetFormat::Trace);
        assert_eq!(
            d.entries[0].prompt,
            EntryPrompt::Tokens {
                input: 700,
                blocks: vec![0, 2]
            }
        );
        let ms = Duration::from_millis;
        assert_eq!(d.schedule(1.0).unwrap(), vec![ms(0), ms(250), ms(1000)]);
        assert_eq!(d.schedule(0.5).unwrap(), vec![ms(0), ms(125), ms(500)]);
        // In order, wrapping round.
        assert_eq!(d.pick(4, 9, false).output_tokens, Some(3));
        let e = Dataset::parse("{\"timestamp\": 5}\n", None, "t").unwrap_err();
        assert!(
            e.contains("t:1:1: a trace record needs an `input_length`"),
            "{e}"
        );
    }

    #[test]
    fn sampling_without_replacement_sends_every_entry_once_per_round() {
        let text: String = (0..37)
            .map(|i| format!("{{\"prompt\": \"p{i}\"}}\n"))
            .collect();
        let d = Dataset::parse(&text, None, "x").unwrap();
        let round = |from: u64, seed: u64| {
            let mut seen: Vec<String> = (from..from + 37)
                .map(|n| d.pick(n, seed, false).prompt.text().unwrap().to_owned())
                .collect();
            let order = seen.clone();
            seen.sort();
            seen.dedup();
            (seen.len(), order)
        };
        let (distinct, first) = round(0, 7);
        assert_eq!(distinct, 37);
        let (_, other_seed) = round(0, 8);
        assert_ne!(first, other_seed, "the order follows the seed");
        assert_ne!(first[..5], ["p0", "p1", "p2", "p3", "p4"], "shuffled");
        // With replacement some entries repeat within 37 draws.
        let drawn: std::collections::BTreeSet<&str> = (0..37)
            .map(|n| d.pick(n, 7, true).prompt.text().unwrap())
            .collect();
        assert!(drawn.len() < 37);
    }
}
