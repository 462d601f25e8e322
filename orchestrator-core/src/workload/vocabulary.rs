//! Prompts of an exact number of tokens for a server's own tokenizer, found by asking
//! the server to count: a tokenize endpoint (the `openai` workload), or the prompt
//! tokens a server reports for a request (Ollama's `prompt_eval_count`).
//!
//! Once per workload, before any load: the counter gives the tokens the server adds to
//! every prompt (a BOS, a chat template) and which of [`PROMPT_WORDS`], each written
//! with a space before it, are one token; those make the vocabulary. A prompt of N
//! tokens is then the added tokens and N − added of those words, seeded. A
//! pre-tokenizer that splits at spaces (every BPE tokenizer of current LLMs) cannot
//! merge tokens across words, and one prompt built this way is counted whole before any
//! load, so a tokenizer where this does not hold is refused, not measured wrongly.
//!
//! The words are tested in groups: a group of k words that counts k more than the
//! added tokens is k one-token words (none is less than one), any other is halved. With
//! mostly one-token words that is about a sixth as many counts as words, which matters
//! where each count is a request to the model.

use async_trait::async_trait;

use super::rng::{PROMPT_WORDS, Rng};

/// Counts the tokens of a prompt, as the server will.
#[async_trait]
pub trait TokenCounter: Send {
    /// The tokens of `text` sent as a prompt, with those the server adds to it.
    ///
    /// # Errors
    /// The server could not be asked, or did not say.
    async fn count(&mut self, text: &str) -> Result<u64, String>;
}

/// Words that are one token each for the server's tokenizer, and what it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    /// Each is one token, written as here (with its leading space).
    words: Vec<String>,
    /// Tokens the server adds to every prompt (a BOS, a template).
    added: u64,
}

/// Words in a first group.
const GROUP: usize = 8;
/// The fewest one-token words a vocabulary is built of.
const FEWEST: usize = 16;

impl Vocabulary {
    /// Asks `counter`. `added`: the tokens the server adds to every prompt, where it can
    /// count an empty prompt; without it, they follow from one word and the same word
    /// twice.
    ///
    /// # Errors
    /// The counter fails, or the server's tokenizer does not count prompts of these
    /// words additively.
    pub async fn calibrate(
        counter: &mut dyn TokenCounter,
        added: Option<u64>,
    ) -> Result<Self, String> {
        let added = match added {
            Some(added) => added,
            None => {
                let once = counter.count(" the").await?;
                let twice = counter.count(" the the").await?;
                let word = twice.checked_sub(once).filter(|w| *w >= 1 && *w <= once);
                word.map(|w| once - w).ok_or_else(|| {
                    format!(
                        "the server counts \" the\" as {once} tokens and \" the the\" as {twice}: its tokenizer does not count words additively, and exact input lengths cannot be built for it"
                    )
                })?
            }
        };
        let all: Vec<String> = PROMPT_WORDS.iter().map(|w| format!(" {w}")).collect();
        let mut words = Vec::new();
        let mut groups: Vec<&[String]> = all.chunks(GROUP).rev().collect();
        while let Some(group) = groups.pop() {
            let counted = counter.count(&group.concat()).await?;
            if counted == added + group.len() as u64 {
                words.extend(group.iter().cloned());
            } else if group.len() > 1 {
                let (a, b) = group.split_at(group.len() / 2);
                groups.push(b);
                groups.push(a);
            }
        }
        if words.len() < FEWEST {
            return Err(format!(
                "the server's tokenizer makes only {} of {} common words one token: exact input lengths cannot be built for it",
                words.len(),
                PROMPT_WORDS.len()
            ));
        }
        let vocabulary = Self { words, added };
        // One prompt, as requests will build them, counted whole.
        let probe = vocabulary.prompt(200, &[], 512, 0x5eed, 0);
        let counted = counter.count(&probe).await?;
        if counted != 200 {
            return Err(format!(
                "a prompt built to 200 tokens has {counted} for the server's tokenizer: it merges tokens across words, and exact input lengths cannot be built for it"
            ));
        }
        Ok(vocabulary)
    }

    /// The tokens every prompt has at least (those the server adds, and one).
    #[must_use]
    pub fn shortest(&self) -> u64 {
        self.added + 1
    }

    /// The tokens the server adds to every prompt.
    #[must_use]
    pub fn added(&self) -> u64 {
        self.added
    }

    /// The one-token words.
    #[must_use]
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// A prompt of `tokens` tokens (at least [`shortest`](Self::shortest)): the
    /// blocks `blocks` of `block_tokens` each (a block's words follow from its hash
    /// and `seed`, so equal hashes give equal prefixes), then words drawn for request
    /// `n`.
    #[must_use]
    pub fn prompt(
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

/// Request `n`'s input length for `input_tokens: mean` with `input_tokens_spread:
/// spread`: uniform within `mean · (1 ± spread)`, seeded by the run's `seed`.
#[must_use]
pub fn spread_length(mean: u64, spread: f64, seed: u64, n: u64) -> u64 {
    if spread <= 0.0 {
        return mean;
    }
    let mut rng = Rng::new(Rng::new(seed ^ 0x1e27 ^ n.rotate_left(17)).next_u64());
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let length = (mean as f64 * (1.0 + spread * (2.0 * rng.uniform() - 1.0))).round() as u64;
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the fake tokenizer counts.
    #[derive(Clone, Copy)]
    enum Rule {
        /// It splits at spaces, and a word of up to six letters is one token, a longer
        /// one two.
        Additive,
        /// As `Additive`, but two adjacent words of two letters or fewer are one token
        /// less: it merges across words.
        MergesShortWords,
        /// Every prompt is this many tokens.
        Constant(u64),
    }

    /// A tokenizer, faked, that adds `added` tokens to every prompt.
    struct Fake {
        rule: Rule,
        added: u64,
        asked: usize,
    }

    impl Fake {
        fn new(rule: Rule, added: u64) -> Self {
            Self {
                rule,
                added,
                asked: 0,
            }
        }
    }

    #[async_trait]
    impl TokenCounter for Fake {
        async fn count(&mut self, text: &str) -> Result<u64, String> {
            self.asked += 1;
            let words: Vec<&str> = text.split_whitespace().collect();
            let each = |w: &&str| if w.len() <= 6 { 1 } else { 2 };
            let n: u64 = words.iter().map(each).sum();
            let merged = words
                .windows(2)
                .filter(|p| p[0].len() <= 2 && p[1].len() <= 2);
            Ok(self.added
                + match self.rule {
                    Rule::Additive => n,
                    Rule::MergesShortWords => n - merged.count() as u64,
                    Rule::Constant(c) => c,
                })
        }
    }

    fn vocabulary(v: &Vocabulary) -> Vec<&str> {
        v.words.iter().map(|w| w.trim_start()).collect()
    }

    #[tokio::test]
    async fn the_one_token_words_are_found_in_groups_and_the_added_tokens_without_an_empty_prompt()
    {
        let mut counter = Fake::new(Rule::Additive, 3);
        let v = Vocabulary::calibrate(&mut counter, None).await.unwrap();
        assert_eq!(v.added, 3);
        let expected: Vec<&str> = PROMPT_WORDS
            .iter()
            .copied()
            .filter(|w| w.len() <= 6)
            .collect();
        assert_eq!(vocabulary(&v), expected);
        assert!(
            expected.len() < PROMPT_WORDS.len(),
            "some words are two tokens or more"
        );
        // Far fewer counts than words (2 for the added tokens, 1 for the check).
        assert!(
            counter.asked < PROMPT_WORDS.len() / 2,
            "{} counts",
            counter.asked
        );
        // Given the added tokens, the same words.
        let mut counter = Fake::new(Rule::Additive, 3);
        assert_eq!(
            Vocabulary::calibrate(&mut counter, Some(3)).await.unwrap(),
            v
        );
    }

    #[tokio::test]
    async fn a_tokenizer_that_merges_across_words_is_refused() {
        let mut counter = Fake::new(Rule::Constant(5), 1);
        let e = Vocabulary::calibrate(&mut counter, None).await.unwrap_err();
        assert!(e.contains("does not count words additively"), "{e}");
        for added in [None, Some(1)] {
            let mut counter = Fake::new(Rule::MergesShortWords, 1);
            let e = Vocabulary::calibrate(&mut counter, added)
                .await
                .unwrap_err();
            assert!(e.contains("a prompt built to 200 tokens has"), "{e}");
        }
        // Words the server makes two tokens or more cannot make a vocabulary.
        let mut counter = Fake::new(Rule::Constant(40), 0);
        let e = Vocabulary::calibrate(&mut counter, Some(0))
            .await
            .unwrap_err();
        assert!(e.contains("makes only 0 of"), "{e}");
    }

    #[test]
    fn a_prompt_has_the_words_for_its_tokens_less_those_the_server_adds() {
        let v = Vocabulary {
            words: [" a", " b", " c", " d"].map(str::to_owned).to_vec(),
            added: 1,
        };
        let p = v.prompt(48, &[], 512, 1, 0);
        assert_eq!(p.split_whitespace().count(), 47);
        assert_eq!(v.prompt(48, &[], 512, 1, 0), p, "deterministic");
        assert_ne!(v.prompt(48, &[], 512, 1, 1), p, "each request its own");
        assert_eq!(v.prompt(1, &[], 512, 1, 0).split_whitespace().count(), 1);
    }

    #[test]
    fn equal_block_hashes_give_equal_prefixes() {
        let v = Vocabulary {
            words: [" a", " b", " c", " d"].map(str::to_owned).to_vec(),
            added: 1,
        };
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

    #[test]
    fn a_spread_keeps_each_length_within_its_bounds() {
        assert_eq!(spread_length(48, 0.0, 1, 5), 48);
        let lengths: Vec<u64> = (0..200).map(|n| spread_length(48, 0.5, 1, n)).collect();
        assert!(lengths.iter().all(|l| (24..=72).contains(l)), "{lengths:?}");
        assert!(lengths.iter().any(|l| *l < 36) && lengths.iter().any(|l| *l > 60));
        assert_eq!(spread_length(48, 0.5, 1, 7), lengths[7], "seeded");
    }
}
