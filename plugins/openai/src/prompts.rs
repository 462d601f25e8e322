//! What each request asks: a fixed prompt, a synthetic one of some words, one of an
//! exact number of tokens, one of a few shared prefixes with a suffix of its own, or a
//! dataset's entry.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use orchestrator_core::workload::dataset::{Dataset, DatasetFormat, EntryPrompt, permuted};
use orchestrator_core::workload::synthetic_prompt;
use orchestrator_core::workload::vocabulary::{Vocabulary, spread_length};

/// Mixed into the seed of shared prefixes and of their suffixes, so that neither is
/// another prompt's words.
const PREFIX_SALT: u64 = 0x5052_4546;
const SUFFIX_SALT: u64 = 0x5355_4646;

/// Where the prompts come from.
pub(crate) enum Source {
    /// The same prompt every time.
    Fixed(String),
    /// A synthetic prompt of this many words.
    Synthetic { words: usize },
    /// Prompts of `tokens` tokens, each within `± spread · tokens` (uniform).
    Exact { tokens: u64, spread: f64 },
    /// `prefixes` × `suffixes` prompts: each of `prefixes` synthetic prefixes of
    /// `prefix_words` words, followed by one of its `suffixes` suffixes of
    /// `suffix_words`; every combination once per round, in a seeded order.
    SharedPrefix {
        prefixes: u64,
        suffixes: u64,
        prefix_words: usize,
        suffix_words: usize,
    },
    /// A dataset's entries, read from `path` by [`load`](Source::load) (in the job,
    /// before any load: not when a recipe is validated elsewhere).
    Dataset {
        path: PathBuf,
        format: Option<DatasetFormat>,
        data: OnceLock<Arc<Dataset>>,
        /// Drawn with replacement.
        replace: bool,
        /// Tokens per prefix block of a trace's `hash_ids`.
        block_tokens: u64,
        /// What the run's texts begin with (from its salt; none: as written), so that
        /// no run resends another's texts: a prefix cache warmed by one has nothing
        /// of the next's past its first tokens.
        tag: Option<String>,
    },
}

/// The tag a dataset's texts begin with in a run of `salt` (0: none, as written).
pub(crate) fn dataset_tag(salt: Option<u64>) -> Option<String> {
    salt.filter(|&s| s != 0)
        .map(|s| format!("[{:06x}] ", s & 0x00ff_ffff))
}

/// What a request sends.
pub(crate) enum Prompt {
    Text(String),
    Messages(Vec<(String, String)>),
}

/// One request's prompt, and what it asks of the server.
pub(crate) struct Request {
    pub(crate) prompt: Prompt,
    /// The input tokens it was built to have.
    pub(crate) expected: Option<u64>,
    /// Its own `max_tokens` (a dataset entry's output length).
    pub(crate) max_tokens: Option<u64>,
}

impl Source {
    /// Reads its dataset, if it has one (once).
    ///
    /// # Errors
    /// The file cannot be read or is not a dataset (the message names its line).
    pub(crate) fn load(&self) -> Result<(), String> {
        if let Self::Dataset {
            path, format, data, ..
        } = self
        {
            if data.get().is_none() {
                let _ = data.set(Arc::new(Dataset::load(path, *format)?));
            }
        }
        Ok(())
    }

    /// Its dataset, once [loaded](Self::load).
    pub(crate) fn dataset(&self) -> Option<&Dataset> {
        match self {
            Self::Dataset { data, .. } => data.get().map(AsRef::as_ref),
            _ => None,
        }
    }

    /// Whether its prompts are built of tokens, which needs the server's tokenizer (a
    /// dataset's: once loaded).
    pub(crate) fn needs_tokens(&self) -> bool {
        match self {
            Self::Exact { .. } => true,
            Self::Dataset { .. } => self.dataset().is_some_and(|d| {
                d.entries
                    .iter()
                    .any(|e| matches!(e.prompt, EntryPrompt::Tokens { .. }))
            }),
            Self::Fixed(_) | Self::Synthetic { .. } | Self::SharedPrefix { .. } => false,
        }
    }

    /// Request `n`'s prompt; `seed` is the run's (salted), `vocabulary` the server's
    /// when [`needs_tokens`](Self::needs_tokens).
    pub(crate) fn request(&self, seed: u64, n: u64, vocabulary: Option<&Vocabulary>) -> Request {
        let tokens = |count: u64, blocks: &[u64], block_tokens: u64| {
            let v = vocabulary.expect("calibrated before any request");
            let count = count.max(v.shortest());
            (v.prompt(count, blocks, block_tokens, seed, n), count)
        };
        match self {
            Self::Fixed(text) => Request {
                prompt: Prompt::Text(text.clone()),
                expected: None,
                max_tokens: None,
            },
            Self::Synthetic { words } => Request {
                prompt: Prompt::Text(synthetic_prompt(*words, seed, n)),
                expected: None,
                max_tokens: None,
            },
            &Self::SharedPrefix {
                prefixes,
                suffixes,
                prefix_words,
                suffix_words,
            } => {
                let all = prefixes * suffixes;
                let pair = permuted(n % all, all, seed);
                let prefix = synthetic_prompt(prefix_words, seed ^ PREFIX_SALT, pair / suffixes);
                // The suffix's own words, after the synthetic prompt's lead-in.
                let suffix = synthetic_prompt(suffix_words, seed ^ SUFFIX_SALT, pair);
                let suffix = suffix.split_once(':').map_or("", |(_, words)| words);
                Request {
                    prompt: Prompt::Text(format!("{prefix}{suffix}")),
                    expected: None,
                    max_tokens: None,
                }
            }
            Self::Exact {
                tokens: mean,
                spread,
            } => {
                let count = spread_length(*mean, *spread, seed, n);
                let (text, count) = tokens(count, &[], 0);
                Request {
                    prompt: Prompt::Text(text),
                    expected: Some(count),
                    max_tokens: None,
                }
            }
            Self::Dataset {
                replace,
                block_tokens,
                tag,
                ..
            } => {
                let data = self.dataset().expect("loaded before any request");
                let entry = data.pick(n, seed, *replace);
                let tag = tag.as_deref().unwrap_or("");
                let (prompt, expected) = match &entry.prompt {
                    EntryPrompt::Text(t) => (Prompt::Text(format!("{tag}{t}")), None),
                    EntryPrompt::Messages(m) => {
                        let mut m = m.clone();
                        if let Some((_, first)) = m.first_mut() {
                            first.insert_str(0, tag);
                        }
                        (Prompt::Messages(m), None)
                    }
                    EntryPrompt::Tokens { input, blocks } => {
                        let (text, count) = tokens(*input, blocks, *block_tokens);
                        (Prompt::Text(text), Some(count))
                    }
                };
                Request {
                    prompt,
                    expected,
                    max_tokens: entry.output_tokens,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{Prompt, Source};

    fn text(source: &Source, seed: u64, n: u64) -> String {
        match source.request(seed, n, None).prompt {
            Prompt::Text(t) => t,
            Prompt::Messages(_) => panic!("a text prompt"),
        }
    }

    /// 3 prefixes × 4 suffixes: a round of 12 requests sends 12 different prompts,
    /// each prefix (its first 3 + 16 words) in 4 of them, followed by 5 words of its
    /// own; the next round sends the same 12 again, and another seed (another run's
    /// salt) other prefixes.
    #[test]
    fn shared_prefixes_each_lead_their_suffixes_once_a_round() {
        let source = Source::SharedPrefix {
            prefixes: 3,
            suffixes: 4,
            prefix_words: 16,
            suffix_words: 5,
        };
        let round: Vec<String> = (0..12).map(|n| text(&source, 7, n)).collect();
        let mut by_prefix: HashMap<String, usize> = HashMap::new();
        for prompt in &round {
            let words: Vec<&str> = prompt.split_whitespace().collect();
            assert_eq!(words.len(), 3 + 16 + 5, "{prompt}");
            *by_prefix.entry(words[..19].join(" ")).or_default() += 1;
        }
        assert_eq!(by_prefix.len(), 3, "{by_prefix:?}");
        assert!(by_prefix.values().all(|&n| n == 4), "{by_prefix:?}");
        let mut distinct = round.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 12);
        let next: Vec<String> = (12..24).map(|n| text(&source, 7, n)).collect();
        assert_eq!(next, round);
        let other = text(&source, 8, 0);
        assert!(
            by_prefix.keys().all(|p| !other.starts_with(p.as_str())),
            "{other}"
        );
    }

    /// A dataset's texts and chat messages begin with the run's tag: two runs' first
    /// words differ, a run of the same salt sends the same, and salt 0 (or none)
    /// sends them as written.
    #[test]
    fn a_runs_salt_leads_a_datasets_texts_and_none_sends_them_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"prompt\": \"Why is the sea salty?\"}\n\
             {\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, \
              {\"role\": \"user\", \"content\": \"Hello\"}]}\n",
        )
        .unwrap();
        let prompts = |salt: Option<u64>| {
            let source = Source::Dataset {
                path: path.clone(),
                format: None,
                data: std::sync::OnceLock::new(),
                replace: false,
                block_tokens: 4,
                tag: super::dataset_tag(salt),
            };
            source.load().unwrap();
            // The text first, the chat second (a shuffle of two may swap them); a chat
            // as `role: content` lines.
            let mut out: Vec<String> = (0..2)
                .map(|n| match source.request(1, n, None).prompt {
                    Prompt::Text(t) => t,
                    Prompt::Messages(m) => m.iter().map(|(r, c)| format!("{r}: {c}\n")).collect(),
                })
                .collect();
            out.sort_by_key(|p| p.starts_with("system: "));
            out
        };
        let plain = prompts(None);
        assert_eq!(plain, prompts(Some(0)));
        assert_eq!(
            plain,
            ["Why is the sea salty?", "system: Be brief.\nuser: Hello\n"]
        );
        let (a, b) = (prompts(Some(0x0012_3abc_def0)), prompts(Some(7)));
        assert_eq!(a, prompts(Some(0x0012_3abc_def0)));
        // The first message carries it; the rest are as written.
        assert_eq!(
            a,
            [
                "[bcdef0] Why is the sea salty?",
                "system: [bcdef0] Be brief.\nuser: Hello\n"
            ]
        );
        assert_eq!(
            b,
            [
                "[000007] Why is the sea salty?",
                "system: [000007] Be brief.\nuser: Hello\n"
            ]
        );
    }
}
