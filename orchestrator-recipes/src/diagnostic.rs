//! Problems found in a file, each with a stable code, a span, a label and a hint, and
//! the per-file collection of them that renders as one miette diagnostic.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use serde::Serialize;

use crate::source::{ByteSpan, SourceText};

/// Stable error codes. Scripts may match on them; they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// The file could not be read.
    FileRead,
    /// The file is larger than the limit.
    TooLarge,
    /// The file is not UTF-8.
    NotUtf8,
    /// The file holds no YAML document.
    Empty,
    /// A YAML syntax error.
    YamlSyntax,
    /// A tab where YAML needs spaces.
    YamlTab,
    /// The same key twice in one mapping.
    YamlDuplicateKey,
    /// Nesting beyond the limit.
    YamlTooDeep,
    /// Aliases that expand beyond the limit.
    YamlAliasLimit,
    /// The file is none of the known kinds (service, client, recipe, config).
    UnknownKind,
    /// A key the schema does not know.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type.
    WrongType,
    /// A value of the right type but the wrong form.
    InvalidValue,
    /// A number outside its range.
    OutOfRange,
    /// The same setting given in the original tool's layout and in the current one.
    Conflict,
    /// A client whose target service is not in the recipe.
    UnknownTarget,
    /// Two services or two clients with the same name.
    DuplicateName,
    /// A client parameter its workload driver does not accept.
    DriverParameter,
}

impl Code {
    /// The code as printed: `area::name`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileRead => "file::read",
            Self::TooLarge => "file::too_large",
            Self::NotUtf8 => "file::not_utf8",
            Self::Empty => "file::empty",
            Self::YamlSyntax => "yaml::syntax",
            Self::YamlTab => "yaml::tab",
            Self::YamlDuplicateKey => "yaml::duplicate_key",
            Self::YamlTooDeep => "yaml::too_deep",
            Self::YamlAliasLimit => "yaml::alias_limit",
            Self::UnknownKind => "recipe::unknown_kind",
            Self::UnknownKey => "schema::unknown_key",
            Self::MissingKey => "schema::missing_key",
            Self::WrongType => "schema::wrong_type",
            Self::InvalidValue => "schema::invalid_value",
            Self::OutOfRange => "schema::out_of_range",
            Self::Conflict => "recipe::conflict",
            Self::UnknownTarget => "recipe::unknown_target",
            Self::DuplicateName => "recipe::duplicate_name",
            Self::DriverParameter => "recipe::driver_parameter",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One thing wrong with a file, located in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem.
    pub code: Code,
    /// What is wrong: what was expected and what was found.
    pub message: String,
    /// Where.
    pub span: ByteSpan,
    /// Short text under the span.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Problem {
    /// A problem with `code` and `message` at `span`.
    #[must_use]
    pub fn new(code: Code, message: impl Into<String>, span: ByteSpan) -> Self {
        Self {
            code,
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    /// With a label under the span.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// With a hint.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A problem as scripts read it (`orchestrator validate --json`).
#[derive(Debug, Clone, Serialize)]
pub struct ProblemRecord {
    /// Stable code.
    pub code: Code,
    /// Message.
    pub message: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Hint, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Everything wrong with one file: renders as one diagnostic with one related
/// diagnostic (and label) per problem.
#[derive(Debug, Clone)]
pub struct FileDiagnostics {
    source: SourceText,
    problems: Vec<Located>,
}

#[derive(Debug, Clone)]
struct Located {
    problem: Problem,
    source: SourceText,
}

impl FileDiagnostics {
    /// The problems of `source`, in file order.
    #[must_use]
    pub fn new(source: &SourceText, mut problems: Vec<Problem>) -> Self {
        problems.sort_by_key(|p| (p.span.offset, p.code.as_str()));
        problems.dedup();
        Self {
            source: source.clone(),
            problems: problems
                .into_iter()
                .map(|problem| Located {
                    problem,
                    source: source.clone(),
                })
                .collect(),
        }
    }

    /// The file.
    #[must_use]
    pub fn source(&self) -> &SourceText {
        &self.source
    }

    /// The problems, in file order.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().map(|l| &l.problem)
    }

    /// The problems with line and column, for JSON output.
    #[must_use]
    pub fn records(&self) -> Vec<ProblemRecord> {
        self.problems()
            .map(|p| {
                let (line, column) = self.source.line_col(p.span.offset);
                ProblemRecord {
                    code: p.code,
                    message: p.message.clone(),
                    line,
                    column,
                    hint: p.help.clone(),
                }
            })
            .collect()
    }
}

impl fmt::Display for FileDiagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.len() {
            1 => write!(f, "{}: 1 problem", self.source.name()),
            n => write!(f, "{}: {n} problems", self.source.name()),
        }
    }
}

impl std::error::Error for FileDiagnostics {}

impl Diagnostic for FileDiagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("recipe::invalid"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.problems.iter().map(|l| l as &dyn Diagnostic)))
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.message)
    }
}

impl std::error::Error for Located {}

impl Diagnostic for Located {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.problem.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span: SourceSpan = self.problem.span.into();
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            self.problem.label.clone(),
            span,
        ))))
    }
}

impl SourceCode for SourceText {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, miette::MietteError> {
        let contents = self
            .text()
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(
            MietteSpanContents::new_named(
                self.name().to_owned(),
                contents.data(),
                *contents.span(),
                contents.line(),
                contents.column(),
                contents.line_count(),
            )
            .with_language("yaml"),
        ))
    }
}

/// The candidate closest to `word`, when one is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
