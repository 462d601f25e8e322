//! Input (prompt) token counts: the server's, and whether prompts built to an exact
//! length came out at it.

use serde::{Deserialize, Serialize};

/// The running counts of a recorder (also what `recorder.json` keeps of them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputTally {
    /// Input tokens the server counted, over the successful requests.
    pub tokens: u64,
    /// Requests of an exact length whose count the server gave and that matched it.
    pub matched: u64,
    /// Requests of an exact length the server counted otherwise.
    pub mismatched: u64,
    /// Requests of an exact length the server gave no count for (a stream without
    /// `usage`).
    pub unreported: u64,
    /// Of the mismatched, the largest difference in tokens, either way.
    pub worst: u64,
}

impl InputTally {
    /// One successful request: the server's count and the length it was built to.
    pub fn count(&mut self, server: Option<u64>, expected: Option<u64>) {
        self.tokens += server.unwrap_or(0);
        match (server, expected) {
            (_, None) => {}
            (None, Some(_)) => self.unreported += 1,
            (Some(s), Some(e)) if s == e => self.matched += 1,
            (Some(s), Some(e)) => {
                self.mismatched += 1;
                self.worst = self.worst.max(s.abs_diff(e));
            }
        }
    }

    /// Adds another recorder's counts.
    pub fn add(&mut self, other: Self) {
        self.tokens += other.tokens;
        self.matched += other.matched;
        self.mismatched += other.mismatched;
        self.unreported += other.unreported;
        self.worst = self.worst.max(other.worst);
    }

    /// Requests built to an exact length.
    #[must_use]
    pub fn checked(&self) -> u64 {
        self.matched + self.mismatched + self.unreported
    }

    /// The summary's figures.
    #[must_use]
    pub fn check(&self) -> InputLengthCheck {
        InputLengthCheck {
            requests: self.checked(),
            matched: self.matched,
            mismatched: self.mismatched,
            unreported: self.unreported,
            worst_difference: self.worst,
        }
    }
}

/// Whether prompts built to an exact number of tokens had it, by the server's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLengthCheck {
    /// Successful requests whose prompt was built to an exact length.
    pub requests: u64,
    /// Of them, those the server counted at exactly that length.
    pub matched: u64,
    /// Those it counted otherwise.
    pub mismatched: u64,
    /// Those it gave no count for.
    pub unreported: u64,
    /// The largest difference, in tokens, of a mismatched one.
    pub worst_difference: u64,
}
