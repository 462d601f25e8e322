//! What PyYAML (the original tool's parser) reads that strict YAML 1.2 does not: the
//! lines of a flow collection indented less than the block around it, such as a
//! closing `]` at its key's own indentation. [`crate::yaml::load_lenient`] re-parses
//! such a line indented deeper ([`Reindent`]) when the scanner refuses it inside a
//! flow collection ([`flow_depth`]).

/// Most re-parses [`crate::yaml::load_lenient`] makes to read flow collections as PyYAML
/// does.
pub(crate) const MAX_REINDENTS: usize = 256;

/// Spaces added to the start of some lines of the text before it is parsed.
#[derive(Debug, Default)]
pub(crate) struct Reindent {
    /// (the character index in the file of the line's start, the spaces added), by
    /// index.
    pub(crate) lines: Vec<(usize, usize)>,
    /// How many re-parses were asked for.
    pub(crate) parses: usize,
}

impl Reindent {
    /// The text to parse.
    pub(crate) fn apply<'t>(&self, original: &'t str) -> std::borrow::Cow<'t, str> {
        if self.lines.is_empty() {
            return original.into();
        }
        let added: usize = self.lines.iter().map(|&(_, n)| n).sum();
        let mut out = String::with_capacity(original.len() + added);
        let mut next = self.lines.iter().peekable();
        for (index, c) in original.chars().enumerate() {
            if let Some(&&(start, n)) = next.peek() {
                if start == index {
                    out.extend(std::iter::repeat_n(' ', n));
                    next.next();
                }
            }
            out.push(c);
        }
        out.into()
    }

    /// The character index in the file of character `index` of the parsed text (an
    /// added space maps to its line's start).
    pub(crate) fn original(&self, index: usize) -> usize {
        let mut shift = 0;
        for &(start, n) in &self.lines {
            let parsed_start = start + shift;
            if index < parsed_start {
                break;
            }
            if index < parsed_start + n {
                return start;
            }
            shift += n;
        }
        index - shift
    }

    /// Indents the line of the file that holds character `at` by one more space;
    /// `false` when that line has had eight already.
    pub(crate) fn deepen(&mut self, original: &str, at: usize) -> bool {
        let start = original
            .chars()
            .take(at)
            .enumerate()
            .filter(|&(_, c)| c == '\n')
            .last()
            .map_or(0, |(i, _)| i + 1);
        self.parses += 1;
        match self.lines.binary_search_by_key(&start, |&(s, _)| s) {
            Ok(i) if self.lines[i].1 >= 8 => false,
            Ok(i) => {
                self.lines[i].1 += 1;
                true
            }
            Err(i) => {
                self.lines.insert(i, (start, 1));
                true
            }
        }
    }
}

/// How many flow collections (`[`, `{`) are open before character `at` of `text`:
/// brackets in quoted scalars, comments and block scalars (`|`, `>`), or inside a plain
/// word (`foo[1]`), do not count.
pub(crate) fn flow_depth(text: &str, at: usize) -> usize {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    // The indentation of the line that opened a block scalar: lines indented more (and
    // blank ones) are its text.
    let mut block_parent: Option<usize> = None;
    let mut seen = 0;
    for line in text.split_inclusive('\n') {
        if seen >= at {
            break;
        }
        let len = line.chars().count();
        let end = (at - seen).min(len);
        seen += len;
        let indent = line.chars().take_while(|&c| c == ' ').count();
        if let Some(parent) = block_parent {
            if line.trim().is_empty() || indent > parent {
                continue;
            }
            block_parent = None;
        }
        let mut previous = ' ';
        let mut content = String::new();
        // A `'` just closed a single-quoted scalar: `''` is a quote inside it.
        let mut closed_single = false;
        for c in line.chars().take(end) {
            if std::mem::take(&mut closed_single) && c == '\'' {
                quote = Some(c);
                content.push(c);
                previous = c;
                continue;
            }
            match quote {
                Some('\'') => {
                    if c == '\'' {
                        quote = None;
                        closed_single = true;
                    }
                }
                Some(_) => {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        quote = None;
                    }
                }
                None => {
                    let token_start = previous.is_whitespace() || "[{,:".contains(previous);
                    match c {
                        '#' if previous.is_whitespace() => break,
                        '\'' | '"' if token_start => quote = Some(c),
                        '[' | '{' if token_start || depth > 0 => depth += 1,
                        ']' | '}' if depth > 0 => depth -= 1,
                        _ => {}
                    }
                }
            }
            content.push(c);
            previous = c;
        }
        if end == len && quote.is_none() && depth == 0 && opens_block_scalar(&content) {
            block_parent = Some(indent);
        }
    }
    depth
}

/// Whether a line (its comment removed) ends with a block scalar's indicator:
/// `key: |`, `- >-`, `run: |2+`, ...
fn opens_block_scalar(line: &str) -> bool {
    let line = line.trim_end();
    let indicator = line.trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
    let Some(head) = indicator
        .strip_suffix('|')
        .or_else(|| indicator.strip_suffix('>'))
    else {
        return false;
    };
    head.is_empty() || head.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_depth_counts_only_real_flow_collections() {
        let depth = |text: &str| flow_depth(text, text.chars().count());
        assert_eq!(depth("a: [1,\n"), 1);
        assert_eq!(depth("a: [1, {b: 2,\n"), 2);
        assert_eq!(depth("a: [1, [2]]\n"), 0);
        assert_eq!(depth("a: \"[\"\n"), 0);
        assert_eq!(depth("a: 'it''s ['\n"), 0);
        assert_eq!(depth("a: \"\\\" [\"\n"), 0);
        assert_eq!(depth("a: 1 # [\n"), 0);
        assert_eq!(depth("a: foo[1\n"), 0);
        assert_eq!(depth("a: |\n  if [ -f x\n"), 0);
        assert_eq!(depth("a: >-\n  [\n\n  [\nb: [\n"), 1);
        assert_eq!(depth("- [a,\n"), 1);
    }
}
