//! YAML text to a tree of [`Node`]s that remember where they came from.
//!
//! Built on saphyr's event parser with a loader of our own, so that every failure a
//! hostile or careless file can cause is a [`Problem`] with a position, never a panic,
//! a hang or a stack overflow: nesting deeper than [`MAX_DEPTH`], alias expansion
//! beyond [`MAX_ALIAS_NODES`], duplicate keys, tabs and other syntax errors.

use std::collections::HashMap;

use saphyr::Scalar;
use saphyr_parser::{Event, Parser, ScanError, Span};

use crate::diagnostic::{Code, Problem};
use crate::pyyaml::{MAX_REINDENTS, Reindent, flow_depth};
use crate::source::{ByteSpan, SourceText};

/// Deepest nesting of sequences and mappings a recipe may use.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that aliases (`*name`) may add to a file, against "billion laughs".
pub const MAX_ALIAS_NODES: usize = 10_000;
/// Most nodes in one file.
pub const MAX_NODES: usize = 200_000;

/// A YAML value with its span in the source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value is written.
    pub span: ByteSpan,
    /// The value.
    pub kind: NodeKind,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order written.
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key's text.
    pub key: String,
    /// Where the key is written.
    pub key_span: ByteSpan,
    /// The value.
    pub value: Node,
}

impl Node {
    /// A node of `kind` at `span`.
    #[must_use]
    pub fn new(span: ByteSpan, kind: NodeKind) -> Self {
        Self { span, kind }
    }

    /// The entries, when this node is a mapping.
    #[must_use]
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            NodeKind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key`, when this node is a mapping that has it.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// The entry under `key`, when this node is a mapping that has it.
    #[must_use]
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    /// A word for the node's type, for messages: "a string", "a mapping", ...
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The same data as JSON, for schema validation and deserialisation.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.to_string())),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }

    /// [`to_json`](Self::to_json) without the mapping entries whose value is null: a
    /// key given no value (`account:`, `account: null`) is unset, as PyYAML and the
    /// original tool read it. A required key so written is then missing, which the
    /// schema reports at the key ("has no value").
    #[must_use]
    pub fn to_json_unset_nulls(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Seq(items) => {
                Value::Array(items.iter().map(Node::to_json_unset_nulls).collect())
            }
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .filter(|e| e.value.kind != NodeKind::Null)
                    .map(|e| (e.key.clone(), e.value.to_json_unset_nulls()))
                    .collect(),
            ),
            _ => self.to_json(),
        }
    }

    /// The paths (keys and list indexes) of the mapping entries whose value is null.
    #[must_use]
    pub fn null_entries(&self) -> Vec<Vec<String>> {
        fn walk(node: &Node, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            match &node.kind {
                NodeKind::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(i.to_string());
                        walk(item, path, out);
                        path.pop();
                    }
                }
                NodeKind::Map(entries) => {
                    for entry in entries {
                        path.push(entry.key.clone());
                        if entry.value.kind == NodeKind::Null {
                            out.push(path.clone());
                        } else {
                            walk(&entry.value, path, out);
                        }
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The node at a JSON pointer's segments, with the span of the key that leads to
    /// it (none for the root and for list items).
    #[must_use]
    pub fn lookup<'a>(&'a self, segments: &[String]) -> Option<(&'a Node, Option<ByteSpan>)> {
        let mut node = self;
        let mut key_span = None;
        for segment in segments {
            match &node.kind {
                NodeKind::Map(entries) => {
                    let entry = entries.iter().find(|e| &e.key == segment)?;
                    key_span = Some(entry.key_span);
                    node = &entry.value;
                }
                NodeKind::Seq(items) => {
                    node = items.get(segment.parse::<usize>().ok()?)?;
                    key_span = None;
                }
                _ => return None,
            }
        }
        Some((node, key_span))
    }
}

enum Frame {
    Seq {
        start: ByteSpan,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: ByteSpan,
        anchor: usize,
        entries: Vec<Entry>,
        key: Option<(String, ByteSpan)>,
    },
}

struct Loader<'s> {
    source: &'s SourceText,
    reindent: &'s Reindent,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    documents: Vec<Node>,
    nodes: usize,
    alias_nodes: usize,
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|e| count_nodes(&e.value)).sum::<usize>(),
        _ => 1,
    }
}

/// Parses every document of `source`. An empty file gives no documents.
///
/// # Errors
/// The first syntax or structure problem, with its position.
pub fn load(source: &SourceText) -> Result<Vec<Node>, Problem> {
    load_lenient(source).map(|(documents, _)| documents)
}

/// [`load`], reading as PyYAML does (which the original tool uses) the lines of a flow
/// collection that are indented less than YAML 1.2 allows, e.g. a closing bracket at
/// its key's own indentation (`  args: [` / `    "--a",` / `  ]`): saphyr refuses
/// them, PyYAML ignores indentation inside `[...]` and `{...}`. Such a line is parsed
/// as if indented enough; spans stay those of the file as written. Also returns the
/// 1-based numbers of the lines so read.
///
/// # Errors
/// The first syntax or structure problem, with its position.
pub fn load_lenient(source: &SourceText) -> Result<(Vec<Node>, Vec<usize>), Problem> {
    let mut reindent = Reindent::default();
    loop {
        let text = reindent.apply(source.text());
        match parse_events(source, &text, &reindent) {
            Ok(documents) => {
                let lines = reindent
                    .lines
                    .iter()
                    .map(|&(start, _)| source.line_col(source.byte_of_char(start)).0)
                    .collect();
                return Ok((documents, lines));
            }
            Err(Failure::Scan(error)) => {
                let at = error.marker().index();
                let fixable = error.info().starts_with("invalid indentation")
                    && !error.info().contains("quoted")
                    && !error.info().contains("anchor")
                    && reindent.parses < MAX_REINDENTS
                    && flow_depth(&text, at) > 0;
                if !fixable || !reindent.deepen(source.text(), reindent.original(at)) {
                    return Err(scan_problem(source, reindent.original(at), error.info()));
                }
            }
            Err(Failure::Problem(problem)) => return Err(problem),
        }
    }
}

enum Failure {
    Scan(ScanError),
    Problem(Problem),
}

fn parse_events(
    source: &SourceText,
    text: &str,
    reindent: &Reindent,
) -> Result<Vec<Node>, Failure> {
    let mut loader = Loader {
        source,
        reindent,
        stack: Vec::new(),
        anchors: HashMap::new(),
        documents: Vec::new(),
        nodes: 0,
        alias_nodes: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(Failure::Scan)?;
        loader.event(event, span).map_err(Failure::Problem)?;
    }
    Ok(loader.documents)
}

/// A scanner's error at character `index` of the file.
fn scan_problem(source: &SourceText, index: usize, info: &str) -> Problem {
    let mut at = source.byte_span_of_chars(index, 0);
    if info.contains("tab") && source.text()[..at.offset].ends_with('\t') {
        // The scanner stops after the tab; point at the tab itself.
        at = ByteSpan::new(at.offset - 1, 1);
    }
    let (code, help) = if info.contains("tab") {
        (
            Code::YamlTab,
            "YAML indentation must use spaces; replace the tab with spaces".to_owned(),
        )
    } else if info.contains("recursion limit") {
        (
            Code::YamlTooDeep,
            format!("recipes nest at most {MAX_DEPTH} levels deep"),
        )
    } else {
        (
            Code::YamlSyntax,
            "check the indentation and quoting around this position".to_owned(),
        )
    };
    Problem::new(code, format!("invalid YAML: {info}"), at)
        .with_label("here")
        .with_help(help)
}

impl Loader<'_> {
    fn span(&self, span: Span) -> ByteSpan {
        let start = self.reindent.original(span.start.index());
        let end = self.reindent.original(span.end.index()).max(start);
        self.source.byte_span_of_chars(start, end - start)
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), Problem> {
        let at = self.span(span);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let kind = match Scalar::parse_from_cow_and_metadata(text, style, tag.as_ref()) {
                    Some(Scalar::Null) => NodeKind::Null,
                    Some(Scalar::Boolean(b)) => NodeKind::Bool(b),
                    Some(Scalar::Integer(i)) => NodeKind::Int(i),
                    Some(Scalar::FloatingPoint(f)) => NodeKind::Float(f.into_inner()),
                    Some(Scalar::String(s)) => NodeKind::Str(s.into_owned()),
                    None => {
                        return Err(Problem::new(
                            Code::YamlSyntax,
                            "a tagged value does not match its tag",
                            at,
                        )
                        .with_label("this value")
                        .with_help("remove the `!!` tag or fix the value"));
                    }
                };
                self.complete(Node::new(at, kind), anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.enter(at)?;
                self.stack.push(Frame::Seq {
                    start: at,
                    anchor,
                    items: Vec::new(),
                });
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.enter(at)?;
                self.stack.push(Frame::Map {
                    start: at,
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        items,
                    }) => (Node::new(start.to(at), NodeKind::Seq(items)), anchor),
                    Some(Frame::Map {
                        start,
                        anchor,
                        entries,
                        ..
                    }) => (Node::new(start.to(at), NodeKind::Map(entries)), anchor),
                    None => return Ok(()),
                };
                self.complete(node, anchor)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(
                        Problem::new(Code::YamlSyntax, "alias to an unknown anchor", at)
                            .with_label("this alias"),
                    );
                };
                let added = count_nodes(target);
                self.alias_nodes += added;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(Problem::new(
                        Code::YamlAliasLimit,
                        format!(
                            "aliases expand to more than {MAX_ALIAS_NODES} nodes (a \"billion laughs\" file?)"
                        ),
                        at,
                    )
                    .with_label("expansion limit reached here")
                    .with_help("write the values out instead of nesting aliases"));
                }
                let mut copy = target.clone();
                copy.span = at;
                self.complete(copy, 0)
            }
            Event::DocumentEnd
            | Event::DocumentStart(_)
            | Event::StreamStart
            | Event::StreamEnd
            | Event::Nothing => Ok(()),
        }
    }

    fn enter(&mut self, at: ByteSpan) -> Result<(), Problem> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Problem::new(
                Code::YamlTooDeep,
                format!("values are nested more than {MAX_DEPTH} levels deep"),
                at,
            )
            .with_label("too deep")
            .with_help("recipes need only a few levels; check for runaway indentation"));
        }
        Ok(())
    }

    fn complete(&mut self, node: Node, anchor: usize) -> Result<(), Problem> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Problem::new(
                Code::TooLarge,
                format!("more than {MAX_NODES} values in one file"),
                node.span,
            ));
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    let text = match node.kind {
                        NodeKind::Str(s) => s,
                        NodeKind::Int(i) => i.to_string(),
                        NodeKind::Bool(b) => b.to_string(),
                        NodeKind::Float(f) => f.to_string(),
                        NodeKind::Null => "null".to_owned(),
                        NodeKind::Seq(_) | NodeKind::Map(_) => {
                            return Err(Problem::new(
                                Code::YamlSyntax,
                                "a mapping key must be a plain value, not a list or mapping",
                                node.span,
                            )
                            .with_label("complex key"));
                        }
                    };
                    if let Some(first) = entries.iter().find(|e| e.key == text) {
                        let (line, _) = self.source.line_col(first.key_span.offset);
                        return Err(Problem::new(
                            Code::YamlDuplicateKey,
                            format!("duplicate key `{text}`"),
                            node.span,
                        )
                        .with_label("second definition")
                        .with_help(format!(
                            "`{text}` is already set on line {line}; keep one of them"
                        )));
                    }
                    *key = Some((text, node.span));
                }
                Some((text, key_span)) => entries.push(Entry {
                    key: text,
                    key_span,
                    value: node,
                }),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, Problem> {
        load(&SourceText::new("t.yaml", text.to_owned()))
    }

    #[test]
    fn keys_and_values_keep_their_spans() {
        let text = "name: ollama\nports:\n  - 11434\n";
        let docs = parse(text).unwrap();
        let entry = docs[0].entry("ports").unwrap();
        assert_eq!(&text[entry.key_span.range()], "ports");
        let (port, _) = docs[0].lookup(&["ports".into(), "0".into()]).unwrap();
        assert_eq!(&text[port.span.range()], "11434");
        assert_eq!(port.kind, NodeKind::Int(11434));
    }

    #[test]
    fn spans_are_bytes_even_after_multibyte_text() {
        let text = "description: \"Modèle de langue — ünïcode\"\nname: x\n";
        let docs = parse(text).unwrap();
        let entry = docs[0].entry("name").unwrap();
        assert_eq!(&text[entry.key_span.range()], "name");
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let docs = parse("a: \"0\"\nb: 0\nc: 1.5\nd: true\ne: ~\n").unwrap();
        let json = docs[0].to_json();
        assert_eq!(
            json,
            serde_json::json!({"a": "0", "b": 0, "c": 1.5, "d": true, "e": null})
        );
    }

    #[test]
    fn duplicate_key_points_at_the_second() {
        let problem = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(problem.code, Code::YamlDuplicateKey);
        assert_eq!(problem.span.offset, 10);
        assert!(problem.help.unwrap().contains("line 1"));
    }

    #[test]
    fn deep_nesting_is_a_problem_not_a_crash() {
        let text = format!("{}x", "- ".repeat(200_000));
        assert_eq!(parse(&text).unwrap_err().code, Code::YamlTooDeep);
        let flow = format!("a: {}{}", "[".repeat(5_000), "]".repeat(5_000));
        assert_eq!(parse(&flow).unwrap_err().code, Code::YamlTooDeep);
    }

    #[test]
    fn alias_bomb_is_stopped() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 9].join(",");
            text.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
        }
        assert_eq!(parse(&text).unwrap_err().code, Code::YamlAliasLimit);
    }

    #[test]
    fn small_aliases_expand() {
        let docs = parse("base: &b {cpus: 2}\nother: *b\n").unwrap();
        assert_eq!(docs[0].to_json()["other"]["cpus"], 2);
    }

    #[test]
    fn tab_indentation_is_named() {
        let problem = parse("a: 1\nb:\n\tc: 2\n").unwrap_err();
        assert_eq!(problem.code, Code::YamlTab);
    }

    #[test]
    fn a_flow_list_closed_at_its_keys_indentation_reads_as_pyyaml_reads_it() {
        let text = "service:\n  name: mysql\n  args: [\n    \"--datadir=/d\",\n    \"--user=mysql\"\n  ]\n  ports: [3306]\n";
        let (docs, lines) = load_lenient(&SourceText::new("t.yaml", text.to_owned())).unwrap();
        assert_eq!(lines, [6]);
        let json = docs[0].to_json();
        assert_eq!(
            json["service"]["args"],
            serde_json::json!(["--datadir=/d", "--user=mysql"])
        );
        assert_eq!(json["service"]["ports"], serde_json::json!([3306]));
        // Spans are those of the file as written, before and after the line read so.
        let (user, _) = docs[0]
            .lookup(&["service".into(), "args".into(), "1".into()])
            .unwrap();
        assert_eq!(&text[user.span.range()], "\"--user=mysql\"");
        let entry = docs[0].get("service").unwrap().entry("ports").unwrap();
        assert_eq!(&text[entry.key_span.range()], "ports");
        let (port, _) = docs[0]
            .lookup(&["service".into(), "ports".into(), "0".into()])
            .unwrap();
        assert_eq!(&text[port.span.range()], "3306");
    }

    #[test]
    fn flow_entries_and_mappings_below_the_indentation_read_too() {
        let text = "a:\n  b: [\nx,\n  y]\n  c: {\n  k: 1,\n  l: [2,\n 3]\n  }\n";
        let (docs, lines) = load_lenient(&SourceText::new("t.yaml", text.to_owned())).unwrap();
        assert_eq!(
            docs[0].to_json(),
            serde_json::json!({"a": {"b": ["x", "y"], "c": {"k": 1, "l": [2, 3]}}})
        );
        assert!(!lines.is_empty());
    }

    #[test]
    fn a_block_indentation_error_stays_an_error() {
        // Not inside `[...]`: PyYAML refuses this too.
        let problem = parse("a:\n    b: 1\n  c: 2\n").unwrap_err();
        assert_eq!(problem.code, Code::YamlSyntax);
        // Brackets in quotes, comments and block scalars open no flow collection.
        for text in [
            "a:\n  s: \"[\"\n  t: 1\n   u: 2\n",
            "a:\n  s: 1 # [\n  t: 1\n   u: 2\n",
            "a:\n  s: |\n    if [ -f x\n  t: 1\n   u: 2\n",
        ] {
            let problem = parse(text).unwrap_err();
            assert_eq!(problem.code, Code::YamlSyntax, "{text}");
            assert!(
                problem.message.contains("indentation") || problem.message.contains("mapping"),
                "{text}: {}",
                problem.message
            );
        }
    }

    #[test]
    fn an_unclosed_flow_list_is_reported_where_the_file_has_it() {
        let text = "a: [1,\n2\nb: 3\n";
        let problem = parse(text).unwrap_err();
        assert_eq!(problem.code, Code::YamlSyntax);
        assert!(problem.span.offset <= text.len());
    }

    #[test]
    fn several_documents() {
        let docs = parse("service:\n  name: a\n---\nclient:\n  name: b\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# only a comment\n").unwrap().is_empty());
    }
}
