//! JSON Schemas generated from the typed model, and schema validation that reports
//! every violation as a located [`Problem`] with what was expected, what was found and
//! a hint.

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::config::Config;
use crate::diagnostic::{Code, Problem, closest};
use crate::model::Kind;
use crate::model::{BenchmarkRecipe, ClientRecipe, ServiceRecipe};
use crate::source::ByteSpan;
use crate::yaml::Node;

/// Every kind, in the order schema files are listed.
pub const KINDS: [Kind; 4] = [Kind::Config, Kind::Service, Kind::Client, Kind::Recipe];

/// The file name of a kind's schema under `schemas/`.
#[must_use]
pub fn file_name(kind: Kind) -> String {
    format!("{}.schema.json", kind.as_str())
}

fn generate<T: JsonSchema>(title: &str) -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = schema.to_value();
    strip_null(&mut value);
    if let Value::Object(map) = &mut value {
        map.insert("title".into(), Value::String(title.into()));
    }
    value
}

/// Optional fields are simply left out in recipes; schemars renders `Option<T>` as
/// "T or null", which turns a precise error inside T into "matched no alternative".
/// Dropping the null alternative keeps errors precise (a key given with no value is
/// then reported as such).
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    map.insert("type".into(), single);
                }
            }
            let null_alternative = matches!(
                map.get("anyOf"),
                Some(Value::Array(alternatives))
                    if alternatives.len() == 2
                        && alternatives.iter().any(|a| a.get("type") == Some(&Value::from("null")))
            );
            if null_alternative {
                if let Some(Value::Array(alternatives)) = map.remove("anyOf") {
                    for alternative in alternatives {
                        if alternative.get("type") == Some(&Value::from("null")) {
                            continue;
                        }
                        if let Value::Object(inner) = alternative {
                            for (k, v) in inner {
                                map.entry(k).or_insert(v);
                            }
                        }
                    }
                }
            }
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(strip_null);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The JSON Schema of a kind of file, as committed under `schemas/`.
#[must_use]
pub fn schema(kind: Kind) -> &'static Value {
    static SCHEMAS: OnceLock<[Value; 4]> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        [
            generate::<Config>("HPC Benchmarking Orchestrator config.yaml"),
            generate::<ServiceRecipe>("HPC Benchmarking Orchestrator service recipe"),
            generate::<ClientRecipe>("HPC Benchmarking Orchestrator client recipe"),
            generate::<BenchmarkRecipe>("HPC Benchmarking Orchestrator complete recipe"),
        ]
    });
    &all[KINDS
        .iter()
        .position(|k| *k == kind)
        .expect("every kind listed")]
}

fn validator(kind: Kind) -> &'static jsonschema::Validator {
    static VALIDATORS: OnceLock<Vec<jsonschema::Validator>> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        KINDS
            .iter()
            .map(|k| jsonschema::validator_for(schema(*k)).expect("generated schemas are valid"))
            .collect()
    });
    &all[KINDS
        .iter()
        .position(|k| *k == kind)
        .expect("every kind listed")]
}

/// A JSON pointer's path as people read it: `services[0].resources.gpu`.
pub(crate) fn display_path(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        if segment.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// The subschema at a keyword location, following `$ref`s.
fn subschema<'a>(root: &'a Value, location: &str) -> Option<&'a Value> {
    let mut node = root;
    for raw in location.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        if segment == "$ref" {
            let reference = node.get("$ref")?.as_str()?;
            node = root.pointer(reference.strip_prefix('#')?)?;
            continue;
        }
        node = match node {
            Value::Object(map) => map.get(&segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    // A subschema that is only a reference stands for its target.
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        if node.get("properties").is_some() || node.get("type").is_some() {
            break;
        }
        node = root.pointer(reference.strip_prefix('#')?)?;
    }
    Some(node)
}

fn describe_types(schema: Option<&Value>) -> String {
    let word = |t: &str| match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean (true or false)",
        "null" => "null",
        _ => "a value",
    };
    match schema.and_then(|s| s.get("type")) {
        Some(Value::String(t)) => word(t).to_owned(),
        Some(Value::Array(types)) => {
            let words: Vec<&str> = types.iter().filter_map(Value::as_str).map(word).collect();
            words.join(" or ")
        }
        _ => "another type".to_owned(),
    }
}

fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn examples(schema: Option<&Value>) -> Option<String> {
    let examples = schema?.get("examples")?.as_array()?;
    Some(
        examples
            .iter()
            .map(|e| {
                format!(
                    "`{}`",
                    e.as_str().map_or_else(|| e.to_string(), str::to_owned)
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    )
}

fn property_names(schema: Option<&Value>) -> Vec<&str> {
    schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Validates the canonical tree of a `kind` file (`json` is `root` as JSON); every
/// violation becomes a problem located in the file.
pub(crate) fn validate(kind: Kind, root: &Node, json: &Value) -> Vec<Problem> {
    let schema = schema(kind);
    validator(kind)
        .iter_errors(json)
        .flat_map(|error| to_problems(kind, schema, root, &error))
        .collect()
}

fn to_problems(
    kind: Kind,
    schema: &Value,
    root: &Node,
    error: &jsonschema::ValidationError<'_>,
) -> Vec<Problem> {
    use jsonschema::error::ValidationErrorKind as K;

    let segments: Vec<String> = error
        .instance_path()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Some((node, key_span)) = root.lookup(&segments) else {
        return vec![Problem::new(
            Code::InvalidValue,
            error.to_string(),
            ByteSpan::new(root.span.offset, 0),
        )];
    };
    let location = error.evaluation_path().as_str().to_owned();
    let keyword_parent = location.rsplit_once('/').map_or("", |(parent, _)| parent);
    let here = subschema(schema, keyword_parent);
    let path = display_path(&segments);
    let at = if path.is_empty() {
        format!("the {kind}")
    } else {
        format!("`{path}`")
    };
    let described = here
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let value_span = node.span;
    let found = show(error.instance());

    match error.kind() {
        K::AdditionalProperties { unexpected } => {
            let known = property_names(here);
            unexpected
                .iter()
                .map(|key| {
                    let span = node
                        .entry(key)
                        .map_or(ByteSpan::new(node.span.offset, 0), |e| e.key_span);
                    let mut known_list = known.clone();
                    known_list.sort_unstable();
                    let list = known_list
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let help = match closest(key, known.iter().copied()) {
                        Some(guess) => format!("did you mean `{guess}`? keys allowed here: {list}"),
                        None => format!("keys allowed here: {list}"),
                    };
                    Problem::new(
                        Code::UnknownKey,
                        format!("unknown key `{key}` in {at}"),
                        span,
                    )
                    .with_label("not a known key")
                    .with_help(help)
                })
                .collect()
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let what = here
                .and_then(|s| s.get("properties"))
                .and_then(|p| p.get(name))
                .and_then(|p| p.get("description"))
                .and_then(Value::as_str);
            if let Some(entry) = node
                .entry(name)
                .filter(|e| e.value.kind == crate::yaml::NodeKind::Null)
            {
                // Written with no value, which means unset: say so at the key.
                let mut problem = Problem::new(
                    Code::MissingKey,
                    format!("required key `{name}` in {at} has no value"),
                    entry.key_span,
                )
                .with_label("no value");
                problem = problem.with_help(match what {
                    Some(what) => format!(
                        "give `{name}` a value ({}); a key with no value is unset",
                        what.trim_end_matches('.')
                    ),
                    None => format!("give `{name}` a value; a key with no value is unset"),
                });
                return vec![problem];
            }
            let span = key_span.unwrap_or(ByteSpan::new(node.span.offset, 0));
            let mut problem = Problem::new(
                Code::MissingKey,
                format!("missing required key `{name}` in {at}"),
                span,
            )
            .with_label(format!("`{name}` is required here"));
            if let Some(what) = what {
                problem =
                    problem.with_help(format!("add `{name}:` ({})", what.trim_end_matches('.')));
            }
            vec![problem]
        }
        K::Type { .. } => {
            let expected = describe_types(here);
            let mut problem = Problem::new(
                Code::WrongType,
                format!("{at} must be {expected}, found {}", node.type_name()),
                value_span,
            )
            .with_label(format!("{} here", node.type_name()));
            problem = match (node.kind == crate::yaml::NodeKind::Null, described) {
                (true, _) => {
                    problem.with_help("the key has no value: give it one or remove the key")
                }
                (false, Some(d)) => problem.with_help(d),
                (false, None) => problem,
            };
            vec![problem]
        }
        K::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let guess = error
                .instance()
                .as_str()
                .and_then(|found| closest(found, options.iter().map(String::as_str)));
            let list = options
                .iter()
                .map(|o| format!("`{o}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let help = match guess {
                Some(g) => format!("did you mean `{g}`? allowed: {list}"),
                None => format!("allowed: {list}"),
            };
            vec![
                Problem::new(
                    Code::InvalidValue,
                    format!("{at} must be one of the allowed values, found {found}"),
                    value_span,
                )
                .with_label("not allowed")
                .with_help(help),
            ]
        }
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => vec![
            Problem::new(
                Code::OutOfRange,
                format!("{at} must be at least {limit}, found {found}"),
                value_span,
            )
            .with_label("too small")
            .with_help(described.unwrap_or_else(|| format!("use a value of {limit} or more"))),
        ],
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => vec![
            Problem::new(
                Code::OutOfRange,
                format!("{at} must be at most {limit}, found {found}"),
                value_span,
            )
            .with_label("too large")
            .with_help(described.unwrap_or_else(|| format!("use a value of {limit} or less"))),
        ],
        K::Pattern { .. } => {
            let mut help =
                described.unwrap_or_else(|| "see the schema for the accepted form".to_owned());
            if let Some(examples) = examples(here) {
                help.push_str(&format!(" For example: {examples}."));
            }
            vec![
                Problem::new(
                    Code::InvalidValue,
                    format!("{at} has an invalid form: {found}"),
                    value_span,
                )
                .with_label("invalid form")
                .with_help(help),
            ]
        }
        K::PropertyNames { error: inner } => {
            let key = inner.instance().as_str().unwrap_or_default().to_owned();
            let span = node.entry(&key).map_or(value_span, |e| e.key_span);
            // `here` is the propertyNames schema itself, or the map's schema.
            let pattern = here.and_then(|s| {
                s.get("pattern")
                    .or_else(|| s.get("propertyNames")?.get("pattern"))
            });
            let metrics =
                pattern.and_then(Value::as_str) == Some(crate::model::EXPECT_METRIC_PATTERN);
            let help = if metrics {
                "a metric is latency, ttft, tpot, itl or schedule_lag, then _mean, _min, _max, _std, \
                 _p50, _p90, _p95, _p99 or _p999, then _ms (`ttft_p99_ms`); or requests_per_second, \
                 output_tokens_per_second, requests_completed, requests_failed, error_rate, \
                 achieved_rate, output_tokens, goodput_fraction, goodput_requests_per_second"
            } else {
                "environment variable names are letters, digits and `_`, not starting with a digit"
            };
            vec![
                Problem::new(
                    Code::InvalidValue,
                    format!("`{key}` is not a valid name in {at}"),
                    span,
                )
                .with_label(if metrics {
                    "no such metric"
                } else {
                    "invalid name"
                })
                .with_help(help),
            ]
        }
        // `anyOf` of `required` keys: "one of these keys is needed".
        K::AnyOf { .. }
            if here
                .and_then(|s| s.get("anyOf"))
                .and_then(Value::as_array)
                .is_some_and(|alts| alts.iter().all(|a| a.get("required").is_some())) =>
        {
            let keys: Vec<String> = here
                .and_then(|s| s.get("anyOf"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.get("required")?.as_array()?.first()?.as_str())
                .map(|k| format!("`{k}`"))
                .collect();
            vec![
                Problem::new(
                    Code::InvalidValue,
                    format!("{at} needs {}", keys.join(" or ")),
                    value_span,
                )
                .with_label("incomplete")
                .with_help(described.unwrap_or_else(|| format!("add {}", keys.join(" or ")))),
            ]
        }
        K::MinItems { limit } => vec![
            Problem::new(
                Code::InvalidValue,
                format!(
                    "{at} needs at least {limit} item(s), found {}",
                    node_len(node)
                ),
                value_span,
            )
            .with_label("too few items")
            .with_help(described.unwrap_or_else(|| "add items to the list".to_owned())),
        ],
        _ => vec![
            Problem::new(Code::InvalidValue, format!("{at}: {error}"), value_span)
                .with_label("invalid")
                .with_help(
                    described.unwrap_or_else(|| "see the schema for the accepted form".to_owned()),
                ),
        ],
    }
}

fn node_len(node: &Node) -> usize {
    match &node.kind {
        crate::yaml::NodeKind::Seq(items) => items.len(),
        crate::yaml::NodeKind::Map(entries) => entries.len(),
        _ => 1,
    }
}

/// Every schema, keyed by file name, for `orchestrator schema` and the drift test.
#[must_use]
pub fn all() -> Vec<(String, &'static Value)> {
    KINDS.iter().map(|k| (file_name(*k), schema(*k))).collect()
}

/// A schema rendered as committed: pretty JSON with a final newline.
#[must_use]
pub fn render(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
    text.push('\n');
    text
}
