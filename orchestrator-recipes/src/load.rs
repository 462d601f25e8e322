//! The pipeline from a file to a typed value: read (size and UTF-8 checks), parse YAML
//! with spans, rewrite the original tool's layouts, validate against the JSON Schema
//! (all problems at once), deserialise, and check what a schema cannot (names unique,
//! client targets that exist).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::config::Config;
use crate::diagnostic::{Code, FileDiagnostics, Problem};
use crate::forms::normalize;
use crate::model::Kind;
use crate::model::{BenchmarkRecipe, ClientRecipe, ServiceRecipe};
use crate::source::{ByteSpan, SourceText};
use crate::yaml::{self, Node, NodeKind};

/// Largest file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A typed file of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A service recipe.
    Service(Box<ServiceRecipe>),
    /// A client recipe.
    Client(Box<ClientRecipe>),
    /// A complete recipe.
    Recipe(Box<BenchmarkRecipe>),
    /// A config file.
    Config(Box<Config>),
}

impl Document {
    /// The kind of file.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Service(_) => Kind::Service,
            Self::Client(_) => Kind::Client,
            Self::Recipe(_) => Kind::Recipe,
            Self::Config(_) => Kind::Config,
        }
    }

    /// The file as a complete recipe: a service file is a recipe with one service and
    /// no client; `None` for clients and configs.
    #[must_use]
    pub fn into_recipe(self) -> Option<BenchmarkRecipe> {
        match self {
            Self::Recipe(recipe) => Some(*recipe),
            Self::Service(service) => Some(BenchmarkRecipe {
                name: Some(service.name.clone()),
                description: service.description.clone(),
                services: vec![*service],
                clients: Vec::new(),
                monitoring: None,
            }),
            Self::Client(_) | Self::Config(_) => None,
        }
    }
}

/// A value loaded from a file, with what was learnt on the way.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The typed value.
    pub value: T,
    /// How the file was read: which forms of the original tool, which driver a
    /// generic name resolved to (`validate -v` prints them).
    pub notes: Vec<String>,
    /// What the user should know although the file loads (always printed).
    pub warnings: Vec<String>,
    /// The file's text, for later diagnostics.
    pub source: SourceText,
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", path.display())]
    #[diagnostic(code(file::read), help("check the path and its permissions"))]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read and has problems.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] FileDiagnostics),
}

/// Reads a file within the size limit, as UTF-8.
///
/// # Errors
/// An unreadable file; or a file too large or not UTF-8, as a located problem.
pub fn read_source(path: &Path) -> Result<SourceText, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        let source = SourceText::new(name, String::new());
        let problem = Problem::new(
            Code::TooLarge,
            format!("the file is larger than {} KiB", MAX_FILE_BYTES / 1024),
            ByteSpan::default(),
        )
        .with_help("a recipe is a few kilobytes; is this the right file?");
        return Err(FileDiagnostics::new(&source, vec![problem]).into());
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(SourceText::new(name, text)),
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            let source = SourceText::new(name, text);
            let (line, column) = source.line_col(offset);
            let problem = Problem::new(
                Code::NotUtf8,
                format!(
                    "the file is not valid UTF-8 (first bad byte at line {line}, column {column})"
                ),
                ByteSpan::new(offset, 1),
            )
            .with_label("not UTF-8")
            .with_help("save the file as UTF-8");
            Err(FileDiagnostics::new(&source, vec![problem]).into())
        }
    }
}

/// Loads a file of the `expected` kind, or of whatever kind it looks like.
///
/// # Errors
/// An unreadable file, or all problems found in it.
pub fn load_file(path: &Path, expected: Option<Kind>) -> Result<Loaded<Document>, LoadError> {
    let source = read_source(path)?;
    Ok(load_source(source, expected)?)
}

/// Loads text as if read from a file named `name`.
///
/// # Errors
/// All problems found in it.
pub fn load_str(
    name: &str,
    text: &str,
    expected: Option<Kind>,
) -> Result<Loaded<Document>, FileDiagnostics> {
    load_source(SourceText::new(name, text.to_owned()), expected)
}

/// What a [`ParameterCheck`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Checked<'a> {
    /// A client: its `workload_type` and `parameters`, with the service it targets
    /// when the same file holds it.
    Client {
        /// The client.
        client: &'a ClientRecipe,
        /// Its target, in a complete recipe.
        target: Option<&'a ServiceRecipe>,
    },
    /// A service: its `type` and `options`.
    Service(&'a ServiceRecipe),
}

/// Where a [`ParameterIssue`] belongs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IssueAt {
    /// At the key of the settings (`parameters.KEY`, `options.KEY`); at the block itself
    /// when the key is empty.
    #[default]
    Setting,
    /// At the driver's name: the client's `workload_type`, the service's `type` (or its
    /// `name` when it has none).
    Kind,
}

/// How much a [`ParameterIssue`] matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Severity {
    /// The file is refused.
    #[default]
    Error,
    /// The file loads, and the user is told (always).
    Warning,
    /// The file loads; said with `-v`: how something was read.
    Note,
}

/// What a driver finds in a client's `parameters` or a service's `options`, or about
/// the driver a recipe names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterIssue {
    /// The parameter (for [`IssueAt::Setting`]).
    pub key: String,
    /// What is wrong, or what was read.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Where it belongs.
    pub at: IssueAt,
    /// Whether it refuses the file.
    pub severity: Severity,
}

/// Checks a client (its `workload_type` and `parameters`) or a service (its `type` and
/// `options`). This crate knows no drivers; the caller that does passes this in.
pub type ParameterCheck<'a> = &'a dyn Fn(Checked<'_>) -> Vec<ParameterIssue>;

/// [`load_file`], and every client's `parameters` and every service's `options` checked
/// by `check`, each problem at the key's line and column.
///
/// # Errors
/// An unreadable file, or all problems found in it.
pub fn load_file_checked(
    path: &Path,
    expected: Option<Kind>,
    check: ParameterCheck<'_>,
) -> Result<Loaded<Document>, LoadError> {
    let source = read_source(path)?;
    Ok(load_source_with(source, expected, Some(check))?)
}

/// Loads an already read source.
///
/// # Errors
/// All problems found in it.
pub fn load_source(
    source: SourceText,
    expected: Option<Kind>,
) -> Result<Loaded<Document>, FileDiagnostics> {
    load_source_with(source, expected, None)
}

/// What a document asks drivers about: the path of the settings block, and whose.
fn checked_parts(document: &Document) -> Vec<(Vec<String>, Checked<'_>)> {
    let at = |section: &str, i: usize, key: &str| {
        vec![section.to_owned(), i.to_string(), key.to_owned()]
    };
    match document {
        Document::Client(client) => vec![(
            vec!["parameters".to_owned()],
            Checked::Client {
                client,
                target: None,
            },
        )],
        Document::Service(s) => vec![(vec!["options".to_owned()], Checked::Service(s))],
        Document::Recipe(r) => r
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (at("services", i, "options"), Checked::Service(s)))
            .chain(r.clients.iter().enumerate().map(|(i, c)| {
                (
                    at("clients", i, "parameters"),
                    Checked::Client {
                        client: c,
                        target: r.target_of(c),
                    },
                )
            }))
            .collect(),
        Document::Config(_) => Vec::new(),
    }
}

/// What `check` says of every client and service of `document`: the problems (at
/// their keys), then the warnings and notes.
fn driver_findings(
    root: &Node,
    document: &Document,
    check: ParameterCheck<'_>,
) -> (Vec<Problem>, Vec<String>, Vec<String>) {
    let (mut problems, mut warnings, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for (prefix, checked) in checked_parts(document) {
        let (label, kind_key) = match checked {
            Checked::Client { client, .. } => (
                format!(
                    "for workload `{}`",
                    client.workload_type.as_deref().unwrap_or("-")
                ),
                "workload_type",
            ),
            Checked::Service(service) => (
                match &service.service_type {
                    Some(kind) => format!("for service type `{kind}`"),
                    None => format!("for service `{}`", service.name),
                },
                if service.service_type.is_some() {
                    "type"
                } else {
                    "name"
                },
            ),
        };
        for issue in check(checked) {
            match issue.severity {
                Severity::Warning => {
                    warnings.push(issue.message);
                    continue;
                }
                Severity::Note => {
                    notes.push(issue.message);
                    continue;
                }
                Severity::Error => {}
            }
            let mut path = prefix.clone();
            match issue.at {
                IssueAt::Setting => path.push(issue.key.clone()),
                IssueAt::Kind => {
                    path.pop();
                    path.push(kind_key.to_owned());
                }
            }
            let span = root
                .lookup(&path)
                .map(|(node, key)| match issue.at {
                    IssueAt::Kind => node.span,
                    IssueAt::Setting => key.unwrap_or(node.span),
                })
                .or_else(|| root.lookup(&prefix).map(|(node, _)| node.span))
                .or_else(|| {
                    root.lookup(&prefix[..prefix.len() - 1])
                        .map(|(node, _)| ByteSpan::new(node.span.offset, 0))
                })
                .unwrap_or(ByteSpan::new(root.span.offset, 0));
            let mut problem =
                Problem::new(Code::DriverParameter, issue.message, span).with_label(label.clone());
            if let Some(hint) = issue.hint {
                problem = problem.with_help(hint);
            }
            problems.push(problem);
        }
    }
    (problems, warnings, notes)
}

fn load_source_with(
    source: SourceText,
    expected: Option<Kind>,
    check: Option<ParameterCheck<'_>>,
) -> Result<Loaded<Document>, FileDiagnostics> {
    let fail = |problems: Vec<Problem>| FileDiagnostics::new(&source, problems);
    let (mut documents, reindented) = yaml::load_lenient(&source).map_err(|p| fail(vec![p]))?;
    let mut notes = Vec::new();
    if !reindented.is_empty() {
        let lines: Vec<String> = reindented.iter().map(ToString::to_string).collect();
        notes.push(format!(
            "line(s) {} of a `[...]` or `{{...}}` list indented less than YAML allows, read as PyYAML (the original tool's parser) reads them",
            lines.join(", ")
        ));
    }
    if expected == Some(Kind::Config) && documents.iter().all(|d| d.kind == NodeKind::Null) {
        // An empty config.yaml, or one of comments only: every setting at its default.
        documents = vec![Node::new(ByteSpan::new(0, 0), NodeKind::Map(Vec::new()))];
        notes.push("the config file is empty: every setting has its default".to_owned());
    }
    let mut normalized = normalize(&source, documents, expected).map_err(fail)?;
    notes.append(&mut normalized.notes);
    let root = &normalized.root;
    let json = root.to_json_unset_nulls();
    let mut problems = std::mem::take(&mut normalized.refused);
    problems.extend(crate::schema::validate(normalized.kind, root, &json));
    if problems.is_empty() {
        problems = container_problems(normalized.kind, root);
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    for path in root.null_entries() {
        notes.push(format!(
            "`{}` has no value: read as unset",
            crate::schema::display_path(&path)
        ));
    }
    let value = match normalized.kind {
        Kind::Service => Document::Service(Box::new(typed(root, json).map_err(|p| fail(vec![p]))?)),
        Kind::Client => Document::Client(Box::new(typed(root, json).map_err(|p| fail(vec![p]))?)),
        Kind::Config => Document::Config(Box::new(typed(root, json).map_err(|p| fail(vec![p]))?)),
        Kind::Recipe => {
            let recipe: BenchmarkRecipe = typed(root, json).map_err(|p| fail(vec![p]))?;
            let problems = check_recipe(&recipe, root);
            if !problems.is_empty() {
                return Err(fail(problems));
            }
            Document::Recipe(Box::new(recipe))
        }
    };
    let mut warnings = Vec::new();
    if let Some(check) = check {
        let (problems, mut found_warnings, mut found_notes) = driver_findings(root, &value, check);
        if !problems.is_empty() {
            return Err(fail(problems));
        }
        warnings.append(&mut found_warnings);
        notes.append(&mut found_notes);
    }
    Ok(Loaded {
        value,
        notes,
        warnings,
        source,
    })
}

/// Deserialises a schema-valid tree; what the schema cannot check (a duration's
/// minutes below 60, say) is reported at the value's position.
fn typed<T: DeserializeOwned>(root: &Node, json: serde_json::Value) -> Result<T, Problem> {
    serde_path_to_error::deserialize(json).map_err(|error| {
        let segments: Vec<String> = error
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        let span = root
            .lookup(&segments)
            .map_or(ByteSpan::new(root.span.offset, 0), |(node, _)| node.span);
        let path = error.path().to_string();
        Problem::new(
            Code::InvalidValue,
            format!("`{path}`: {}", error.inner()),
            span,
        )
        .with_label("invalid value")
    })
}

fn name_span(root: &Node, list: &str, index: usize, key: &str) -> ByteSpan {
    root.lookup(&[list.to_owned(), index.to_string(), key.to_owned()])
        .or_else(|| root.lookup(&[list.to_owned(), index.to_string()]))
        .map_or(ByteSpan::new(root.span.offset, 0), |(node, _)| node.span)
}

/// A rebuild or build commands need an image to build from: each job (service or
/// client) that asks for them without `container_source` is a problem at that key.
fn container_problems(kind: Kind, root: &Node) -> Vec<Problem> {
    let jobs: Vec<&Node> = match kind {
        Kind::Service | Kind::Client => vec![root],
        Kind::Recipe => ["services", "clients"]
            .iter()
            .filter_map(|list| match root.get(list).map(|n| &n.kind) {
                Some(NodeKind::Seq(items)) => Some(items.iter()),
                _ => None,
            })
            .flatten()
            .collect(),
        Kind::Config => Vec::new(),
    };
    let mut problems = Vec::new();
    for job in jobs {
        if job.get("container_source").is_some() {
            continue;
        }
        for key in ["container_rebuild", "container_build_commands"] {
            let Some(entry) = job.entry(key) else {
                continue;
            };
            let asks = match &entry.value.kind {
                NodeKind::Bool(b) => *b,
                NodeKind::Seq(items) => !items.is_empty(),
                _ => false,
            };
            if asks {
                problems.push(
                    Problem::new(
                        Code::InvalidValue,
                        format!("`{key}` needs an image to build from, and there is no `container_source`"),
                        entry.key_span,
                    )
                    .with_label("nothing to build from")
                    .with_help("add `container_source: docker://IMAGE` (in the original layout, `container: {docker_source: ...}`)"),
                );
            }
        }
    }
    problems
}

fn check_recipe(recipe: &BenchmarkRecipe, root: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (list, names) in [
        (
            "services",
            recipe
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
        ),
        (
            "clients",
            recipe
                .clients
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
        ),
    ] {
        for (index, name) in names.iter().enumerate() {
            if let Some(first) = names[..index].iter().position(|n| n == name) {
                problems.push(
                    Problem::new(
                        Code::DuplicateName,
                        format!("two {list} are named `{name}`"),
                        name_span(root, list, index, "name"),
                    )
                    .with_label("second use of the name")
                    .with_help(format!(
                        "names identify jobs and results; rename one (the first is {list}[{first}])"
                    )),
                );
            }
        }
    }
    let names: Vec<String> = recipe
        .services
        .iter()
        .map(|s| match &s.service_type {
            Some(t) => format!("`{}` (type `{t}`)", s.name),
            None => format!("`{}`", s.name),
        })
        .collect();
    for (index, client) in recipe.clients.iter().enumerate() {
        if recipe.target_of(client).is_none() {
            let wanted = client
                .target_service
                .as_ref()
                .and_then(|t| t.name.clone().or_else(|| t.service_type.clone()));
            let message = match &wanted {
                Some(w) => format!(
                    "client `{}` targets `{w}`, which is not a service of this recipe",
                    client.name
                ),
                None => format!(
                    "client `{}` does not say which of the {} services it loads",
                    client.name,
                    recipe.services.len()
                ),
            };
            problems.push(
                Problem::new(
                    Code::UnknownTarget,
                    message,
                    name_span(root, "clients", index, "target_service"),
                )
                .with_label("target")
                .with_help(format!(
                    "set `target_service.name` to one of: {}",
                    names.join(", ")
                )),
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(text: &str) -> BenchmarkRecipe {
        match load_str("t.yaml", text, None).unwrap().value {
            Document::Recipe(recipe) => *recipe,
            other => panic!("not a recipe: {other:?}"),
        }
    }

    #[test]
    fn clients_find_their_target_by_name_then_type_then_as_the_only_service() {
        let two = recipe(
            "services:\n  - {name: a, type: redis, command: x}\n  - {name: b, type: ollama, command: y}\n\
             clients:\n  - {name: by-name, command: c, target_service: {name: b}}\n\
             \x20 - {name: by-type, command: c, target_service: {type: redis}}\n",
        );
        assert_eq!(two.target_of(&two.clients[0]).unwrap().name, "b");
        assert_eq!(two.target_of(&two.clients[1]).unwrap().name, "a");
        let one =
            recipe("service:\n  name: only\n  command: x\n---\nclient:\n  name: c\n  command: y\n");
        assert_eq!(one.target_of(&one.clients[0]).unwrap().name, "only");
    }

    #[test]
    fn a_key_with_no_value_is_unset_and_said_so() {
        let with_nulls = load_str(
            "t.yaml",
            "name: r\ncommand: redis-server\ndescription:\nhealth_check: ~\nresources:\n  slurm:\n    account: null\n    partition: cpu\nenvironment:\n  A: 1\n  B:\n",
            None,
        )
        .unwrap();
        let without = load_str(
            "t.yaml",
            "name: r\ncommand: redis-server\nresources:\n  slurm:\n    partition: cpu\nenvironment:\n  A: 1\n",
            None,
        )
        .unwrap();
        assert_eq!(with_nulls.value, without.value);
        let notes = with_nulls.notes.join("\n");
        for key in [
            "description",
            "health_check",
            "resources.slurm.account",
            "environment.B",
        ] {
            assert!(
                notes.contains(&format!("`{key}` has no value: read as unset")),
                "{key}: {notes}"
            );
        }
        // A null list item is not a key with no value.
        assert!(load_str("t.yaml", "name: r\ncommand: x\nports: [~]\n", None).is_err());
    }

    /// Issue #14: the original tool's `init_script` is refused at its key with what to
    /// write instead, and the rest of the file is still checked as written: every
    /// problem at once.
    #[test]
    fn original_forms_not_run_are_refused_beside_the_files_other_problems() {
        let found: Vec<String> = load_str(
            "t.yaml",
            "service:\n  name: db\n  command: mysqld\n  prots: [3306]\n  init_script: |\n    SELECT 1;\n",
            None,
        )
        .unwrap_err()
        .problems()
        .map(|p| p.message.clone())
        .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("unknown key `prots`"), "{found:?}");
        assert!(found[1].contains("`init_script`"), "{found:?}");
    }

    /// Issues #14 and #15: the original tool's Prometheus forms are the session's
    /// Prometheus: `monitoring_targets` on a service (by `service_id`, or `host`), and
    /// a `monitoring:` section beside `service:`.
    #[test]
    fn the_original_prometheus_forms_are_read_as_session_monitoring() {
        let loaded = load_str(
            "p.yaml",
            "service:\n  name: prometheus\n  ports: [9090]\n  monitoring_targets:\n    - service_id: \"ollama_df1a2714\"\n      job_name: \"ollama-cadvisor\"\n      port: 8080\n    - host: mel2073\n      job_name: node\n      port: 9100\n",
            None,
        )
        .unwrap();
        let Document::Service(service) = loaded.value else {
            panic!("a service")
        };
        assert_eq!(service.service_type.as_deref(), Some("prometheus"));
        assert_eq!(service.monitoring_targets.len(), 2);
        assert_eq!(
            service.monitoring_targets[0].service.as_deref(),
            Some("ollama_df1a2714")
        );
        assert_eq!(
            service.monitoring_targets[1].host.as_deref(),
            Some("mel2073")
        );
        assert!(
            loaded.notes.iter().any(|n| n.contains("service_id")),
            "{:?}",
            loaded.notes
        );
        let loaded = load_str(
            "m.yaml",
            "service:\n  name: db\n  command: mysqld\n  ports: [3306]\nmonitoring:\n  name: prom\n  container:\n    image_path: $HOME/containers/prometheus.sif\n  resources:\n    mem: 4G\n  ports: [9090]\n",
            None,
        )
        .unwrap();
        let Document::Recipe(recipe) = loaded.value else {
            panic!("a complete recipe")
        };
        let names: Vec<&str> = recipe.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "prom"]);
        assert_eq!(
            recipe.services[1].service_type.as_deref(),
            Some("prometheus")
        );
        assert_eq!(
            recipe.services[1].container_image.as_deref(),
            Some("$HOME/containers/prometheus.sif")
        );
        assert_eq!(
            recipe
                .monitoring
                .as_ref()
                .and_then(|m| m.service.as_deref()),
            Some("prom")
        );
        // `monitoring: prometheus` is every default.
        let loaded = load_str(
            "r.yaml",
            "services:\n  - name: db\n    command: x\nmonitoring: prometheus\n",
            None,
        )
        .unwrap();
        let Document::Recipe(recipe) = loaded.value else {
            panic!("a complete recipe")
        };
        assert_eq!(
            recipe.monitoring,
            Some(crate::SessionMonitoring::prometheus())
        );
        assert!(
            load_str(
                "r.yaml",
                "services:\n  - name: db\n    command: x\nmonitoring: grafana\n",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn an_empty_config_file_means_every_default() {
        for text in ["", "# all defaults\n", "---\n"] {
            let loaded = load_str("config.yaml", text, Some(Kind::Config)).unwrap();
            let Document::Config(config) = loaded.value else {
                panic!("not a config")
            };
            assert_eq!(*config, Config::default(), "{text:?}");
            assert!(loaded.notes[0].contains("empty"), "{:?}", loaded.notes);
        }
        // A recipe file still has to hold a recipe.
        assert!(load_str("r.yaml", "", None).is_err());
        assert!(load_str("r.yaml", "", Some(Kind::Service)).is_err());
    }

    #[test]
    fn the_container_block_binds_rebuilds_and_builds_with_commands() {
        let loaded = load_str(
            "t.yaml",
            "service:\n  name: m\n  command: mysqld\n  container:\n    docker_source: docker://mysql:8\n    image_path: /c/m.sif\n    force_rebuild: true\n    bind_mounts: [\"/d:/var/lib/mysql\"]\n    build_commands: [\"apt-get update\"]\n",
            None,
        )
        .unwrap();
        let Document::Service(s) = loaded.value else {
            panic!("not a service")
        };
        assert_eq!(s.container_binds, ["/d:/var/lib/mysql"]);
        assert!(s.container_rebuild);
        assert_eq!(s.container_build_commands, ["apt-get update"]);
        assert_eq!(s.container_image.as_deref(), Some("/c/m.sif"));
        // Nothing to build from: refused at the key as written.
        let text = "client:\n  name: c\n  command: x\n  container:\n    image_path: /c/c.sif\n    build_commands: [\"pip install x\"]\n";
        let error = load_str("t.yaml", text, None).unwrap_err();
        let records = error.records();
        assert_eq!(records.len(), 1, "{records:?}");
        assert!(records[0].message.contains("no `container_source`"));
        assert_eq!((records[0].line, records[0].column), (6, 5));
    }

    #[test]
    fn a_flow_list_closed_at_its_keys_indentation_is_noted() {
        let loaded = load_str(
            "t.yaml",
            "service:\n  name: m\n  command: mysqld\n  args: [\n    \"--user=mysql\"\n  ]\n",
            None,
        )
        .unwrap();
        let Document::Service(service) = loaded.value else {
            panic!("not a service")
        };
        assert_eq!(service.args.len(), 1);
        assert!(
            loaded
                .notes
                .iter()
                .any(|n| n.contains("line(s) 6 ") && n.contains("PyYAML")),
            "{:?}",
            loaded.notes
        );
    }

    #[test]
    fn one_document_with_service_and_client_is_a_complete_recipe() {
        let r = recipe("service: {name: s, command: x}\nclient: {name: c, command: y}\n");
        assert_eq!((r.services.len(), r.clients.len()), (1, 1));
    }

    #[test]
    fn an_expected_kind_unwraps_the_original_wrapper() {
        let loaded = load_str(
            "t.yaml",
            "service:\n  name: s\n  command: x\n",
            Some(Kind::Service),
        )
        .unwrap();
        assert!(matches!(loaded.value, Document::Service(_)));
        assert!(loaded.notes[0].contains("wrapped in a top-level `service:` key"));
    }

    #[test]
    fn legacy_and_canonical_forms_give_the_same_model() {
        let legacy = load_str(
            "legacy.yaml",
            "service:\n  name: o\n  command: ollama\n  container:\n    docker_source: docker://ollama/ollama\n    image_path: /c/o.sif\n  resources:\n    mem: 16G\n    cpus_per_task: 4\n    time: \"02:00:00\"\n    gres: gpu:1\n",
            None,
        )
        .unwrap();
        let canonical = load_str(
            "canonical.yaml",
            "name: o\ncommand: ollama\ncontainer_source: docker://ollama/ollama\ncontainer_image: /c/o.sif\nresources:\n  memory: 16G\n  cpus: 4\n  slurm: {time: 7200, gres: gpu:1}\n",
            None,
        )
        .unwrap();
        assert_eq!(legacy.value, canonical.value);
        assert!(canonical.notes.is_empty());
        assert_eq!(legacy.notes.len(), 4, "{:?}", legacy.notes);
    }

    #[test]
    fn a_value_the_schema_cannot_judge_is_still_located() {
        // 2^64 seconds overflows the typed duration after the schema accepted its shape.
        let error = load_str(
            "t.yaml",
            "name: s\ncommand: x\nresources:\n  slurm:\n    time: \"213503982334602d\"\n",
            None,
        )
        .unwrap_err();
        let record = &error.records()[0];
        assert_eq!((record.line, record.column), (5, 11), "{record:?}");
        assert!(record.message.contains("too large"), "{}", record.message);
    }
}
