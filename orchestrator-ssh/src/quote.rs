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

/// Quotes `value` as one word in which each `${NAME}` is replaced, when the shell runs
/// it, by the value of the environment variable `NAME`, and nothing else happens: the
/// rest is [`quote`]d, and each reference is written `"${NAME}"`, whose value the shell
/// substitutes without splitting it, globbing it or parsing it again (a value holding
/// `$(...)`, backticks, quotes or newlines arrives as it is). Only the braced form is a
/// reference: `$NAME`, `$1` or `$$` stay as written, so a `sh -c` script in an argument
/// still expands its own variables. `$${NAME}` is a literal `${NAME}`. An unset
/// variable is empty.
///
/// ```
/// use orchestrator_ssh::quote_expanding;
/// assert_eq!(quote_expanding("--user=${DB_USER}"), r#"--user="${DB_USER}""#);
/// assert_eq!(quote_expanding("${HOST}:$$${X} it's $Y"), r#""${HOST}"':$${X} it'\''s $Y'"#);
/// assert_eq!(quote_expanding("no reference"), "'no reference'");
/// ```
#[must_use]
pub fn quote_expanding(value: &str) -> String {
    let mut out = String::new();
    let mut literal = String::new();
    let flush = |literal: &mut String, out: &mut String| {
        if !literal.is_empty() {
            out.push_str(&quote(literal));
            literal.clear();
        }
    };
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            // The escape: a literal `${`.
            literal.push_str("${");
            rest = after;
            continue;
        }
        let reference = tail
            .strip_prefix("${")
            .and_then(|inner| inner.find('}').map(|close| &inner[..close]))
            .filter(|name| is_name(name));
        match reference {
            Some(name) => {
                flush(&mut literal, &mut out);
                out.push_str("\"${");
                out.push_str(name);
                out.push_str("}\"");
                rest = &tail[name.len() + 3..];
            }
            None => {
                literal.push('$');
                rest = &tail[1..];
            }
        }
    }
    literal.push_str(rest);
    flush(&mut literal, &mut out);
    if out.is_empty() {
        out.push_str("''");
    }
    out
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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

    /// What bash makes of the expanding word with `vars` in its environment.
    fn expanded_by_bash(value: &str, vars: &[(&str, &str)]) -> String {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {}", quote_expanding(value)))
            .env_clear()
            .envs(vars.iter().copied())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn references_expand_once_and_values_are_never_parsed_again() {
        let hostile =
            "a $(touch /tmp/orch-pwned) `touch /tmp/orch-pwned2` 'q' \"dq\" *\nline2 ${X}";
        for (value, expected) in [
            ("--password=${PW}", format!("--password={hostile}")),
            ("${PW}", hostile.to_owned()),
            ("${PW}${PW}", format!("{hostile}{hostile}")),
            ("pre ${PW} post", format!("pre {hostile} post")),
            ("$${PW} costs $$5", "${PW} costs $$5".to_owned()),
            ("${UNSET}|", "|".to_owned()),
            (
                "$PW $1 $ ${bad-name} ${ $",
                "$PW $1 $ ${bad-name} ${ $".to_owned(),
            ),
            ("it's ${PW", "it's ${PW".to_owned()),
            ("", String::new()),
            ("ünï ${PW}", format!("ünï {hostile}")),
        ] {
            assert_eq!(
                expanded_by_bash(value, &[("PW", hostile)]),
                expected,
                "{value:?} as {}",
                quote_expanding(value)
            );
        }
        assert!(!std::path::Path::new("/tmp/orch-pwned").exists());
        assert!(!std::path::Path::new("/tmp/orch-pwned2").exists());
    }

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
