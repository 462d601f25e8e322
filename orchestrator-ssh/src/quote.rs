//! The one shell-quoting function. Every value that reaches a shell passes through it.

use std::borrow::Cow;

/// Quotes `value` for a POSIX shell so that it arrives as one literal word.
///
/// Words made only of characters that no shell treats specially come back as they
/// are; anything else is wrapped in single quotes, with each `'` written as `'\''`.
/// Inside single quotes nothing is special: `$(...)`, backticks, `;`, `"`, newlines and
/// spaces all reach the program literally. The empty string becomes `''`.
///
/// A NUL byte cannot be passed through a shell (the kernel ends arguments at NUL);
/// callers reject such values before they get here.
///
/// ```
/// use orchestrator_ssh::quote;
/// assert_eq!(quote("node1"), "node1");
/// assert_eq!(quote("it's $(here)"), r#"'it'\''s $(here)'"#);
/// assert_eq!(quote(""), "''");
/// ```
#[must_use]
pub fn quote(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        return Cow::Borrowed(value);
    }
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' {
            quoted.push_str(r"'\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    Cow::Owned(quoted)
}

/// Quotes each word and joins them with spaces: a command line from literal words.
#[must_use]
pub fn quote_words<I, S>(words: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    words
        .into_iter()
        .map(|w| quote(w.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What bash makes of the quoted word, byte for byte.
    fn through_bash(value: &str) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {}", quote(value)))
            .output()
            .expect("bash runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn hostile_values_arrive_literally() {
        for value in [
            "",
            " ",
            "a b",
            "'",
            "''",
            "\"",
            "$(touch /tmp/pwned)",
            "`id`",
            "a;b",
            "line1\nline2",
            "$HOME",
            "~",
            "*",
            "\\",
            "-n",
            "é ü 漢字",
            "!event",
            "{a,b}",
            "tab\there",
        ] {
            assert_eq!(through_bash(value), value, "value {value:?}");
        }
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(quote("/var/tmp/x-1.sh"), "/var/tmp/x-1.sh");
        assert_eq!(quote("--time=00:10:00"), "--time=00:10:00");
        assert_eq!(quote_words(["echo", "a b"]), "echo 'a b'");
    }

    proptest::proptest! {
        #[test]
        fn any_string_without_nul_round_trips(value in "[^\u{0}]{0,40}") {
            proptest::prop_assert_eq!(through_bash(&value), value);
        }
    }
}
