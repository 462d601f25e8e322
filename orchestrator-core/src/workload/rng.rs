//! Seeded random numbers for arrival schedules: SplitMix64, and from it exponential
//! and gamma variates (Marsaglia–Tsang). Small and reproducible: the same seed gives
//! the same schedule on every machine.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    #[allow(clippy::cast_precision_loss)]
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.uniform().ln()
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Gamma with shape `k` and scale `theta` (mean `k * theta`).
    pub fn gamma(&mut self, k: f64, theta: f64) -> f64 {
        if k < 1.0 {
            // Boost: Gamma(k) = Gamma(k + 1) * U^(1/k).
            let u = self.uniform();
            return self.gamma(k + 1.0, theta) * u.powf(1.0 / k);
        }
        let d = k - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * theta;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_and_cv(samples: &[f64]) -> (f64, f64) {
        #[allow(clippy::cast_precision_loss)]
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn exponential_and_gamma_have_the_right_mean_and_spread() {
        let mut rng = Rng::new(7);
        let exp: Vec<f64> = (0..200_000).map(|_| rng.exponential(0.01)).collect();
        let (mean, cv) = mean_and_cv(&exp);
        assert!((mean - 0.01).abs() < 0.0002, "mean {mean}");
        assert!(
            (cv - 1.0).abs() < 0.02,
            "an exponential's cv is 1, got {cv}"
        );
        // Burstiness b: shape b, scale 1/(rate b): mean 1/rate, cv 1/sqrt(b).
        for b in [0.25_f64, 4.0] {
            let g: Vec<f64> = (0..200_000).map(|_| rng.gamma(b, 0.01 / b)).collect();
            let (mean, cv) = mean_and_cv(&g);
            assert!((mean - 0.01).abs() < 0.0003, "b={b} mean {mean}");
            assert!((cv - 1.0 / b.sqrt()).abs() < 0.05, "b={b} cv {cv}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
    }
}

/// Words synthetic prompts are made of: common English words, most of them one token
/// in the tokenizers of current LLMs.
pub const PROMPT_WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "on",
    "not", "he", "by", "are", "this", "at", "from", "but", "have", "an", "they", "which", "one",
    "you", "were", "all", "we", "her", "she", "there", "would", "their", "will", "when", "who",
    "him", "been", "has", "more", "if", "no", "out", "so", "up", "said", "what", "its", "about",
    "than", "into", "them", "can", "only", "other", "time", "new", "some", "could", "these", "two",
    "may", "first", "then", "do", "any", "like", "my", "now", "over", "such", "our", "man", "me",
    "even", "most", "made", "after", "also", "did", "many", "off", "before", "must", "well",
    "back", "through", "years", "much", "where", "your", "way", "down", "should", "because",
    "long", "each", "just", "state", "people", "those", "how", "too", "little", "good", "world",
    "make", "very", "year", "still", "see", "own", "work", "men", "day", "get", "here", "between",
    "both", "life", "being", "under", "never", "same", "another", "know", "while", "last", "might",
    "us", "great", "old", "off", "come", "since", "against", "go", "came", "right", "used", "take",
    "three", "himself", "few", "house", "use", "during", "without", "again", "place", "around",
    "however", "home", "small", "found", "thought", "went", "say", "part", "once", "general",
    "high", "upon", "school", "every", "does",
];

/// The prompt salt of run `run` of job `job` in session `session` (FNV-1a of the
/// three): distinct for every run of a session, so that no run resends the synthetic
/// prompts of another.
#[must_use]
pub fn run_salt(session: &str, job: &str, run: u64) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in session
        .bytes()
        .chain([0])
        .chain(job.bytes())
        .chain([0])
        .chain(run.to_le_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A deterministic synthetic prompt of `words` words (about as many tokens), the same
/// for the same `seed` and request number `n` on every machine: a question prefix, then
/// words drawn from a fixed list of common English words.
#[must_use]
pub fn synthetic_prompt(words: usize, seed: u64, n: u64) -> String {
    // Both through SplitMix's mixer: seeding with `seed ^ n·γ` made request n + 1's
    // generator request n's one step on, and its prompt request n's shifted by a word.
    let mix = |v: u64| Rng::new(v).next_u64();
    let mut rng = Rng::new(mix(seed ^ mix(n)));
    let mut prompt = String::from("Continue this text:");
    for _ in 0..words {
        let i = usize::try_from(rng.next_u64() % PROMPT_WORDS.len() as u64).unwrap_or(0);
        prompt.push(' ');
        prompt.push_str(PROMPT_WORDS[i]);
    }
    prompt
}

#[cfg(test)]
mod prompt_tests {
    use super::synthetic_prompt;

    /// Requests' prompts were each other's words shifted (request n + 2's were request
    /// n's two words on, with seed 1); now no four consecutive words of one appear in
    /// a nearby one.
    #[test]
    fn nearby_prompts_share_no_run_of_words() {
        let words = |n: u64| {
            synthetic_prompt(16, 1, n)
                .split_whitespace()
                .skip(3)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        for n in 0..50 {
            let a = words(n);
            for m in n + 1..n + 5 {
                let b = words(m);
                for window in a.windows(4) {
                    assert!(
                        !b.windows(4).any(|w| w == window),
                        "prompts {n} and {m} share {window:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn prompts_are_deterministic_and_of_the_asked_length() {
        let a = synthetic_prompt(50, 7, 3);
        assert_eq!(a, synthetic_prompt(50, 7, 3));
        assert_ne!(a, synthetic_prompt(50, 7, 4));
        assert_eq!(a.split_whitespace().count(), 50 + 3);
    }
}
