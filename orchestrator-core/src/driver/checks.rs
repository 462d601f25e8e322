//! What `validate` (and every load of a recipe) asks of the linked drivers: the same
//! resolution planning does, each client's `parameters` against its workload, each
//! service's `options` and the driver's review of its recipe.

use std::collections::BTreeMap;

use orchestrator_recipes::{Checked, IssueAt, ParameterIssue, Severity};
use serde_json::{Map, Value};

use super::types::DriverError;
use super::{Registry, ServiceDriver, read_parameters};
use crate::workload::{LOAD_KEYS, expand_sweep};

/// The keys of a driver schema's `properties`.
pub(crate) fn schema_keys(schema: &Value) -> Vec<String> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// `key` is not one of `known`: the issue, with the closest known key as a hint and
/// `takes` (what is accepted) after it.
pub(crate) fn unknown_setting(
    message: String,
    key: &str,
    known: &[String],
    takes: &str,
) -> ParameterIssue {
    let closest = orchestrator_recipes::diagnostic::closest(key, known.iter().map(String::as_str));
    ParameterIssue {
        key: key.to_owned(),
        message,
        hint: Some(match closest {
            Some(c) => format!(
                "did you mean `{c}`? {}{}",
                takes[..1].to_uppercase(),
                &takes[1..]
            ),
            None => takes.to_owned(),
        }),
        ..ParameterIssue::default()
    }
}

/// A driver's error as an issue, put at the key its message names in backquotes.
pub(crate) fn driver_issue<'k>(
    error: DriverError,
    keys: impl IntoIterator<Item = &'k String>,
) -> ParameterIssue {
    let culprit = keys
        .into_iter()
        .find(|k| error.message.contains(&format!("`{k}`")))
        .cloned();
    ParameterIssue {
        key: culprit.unwrap_or_default(),
        message: error.message,
        hint: error.hint,
        ..ParameterIssue::default()
    }
}

/// Checks a service's `options` for its `type`: keys its driver's schema does not
/// have, then the driver's own [`ServiceDriver::check_options`]. A type without a
/// driver of its own runs on the fallback driver, so its options are checked there.
#[must_use]
pub fn check_service_options(kind: &str, options: &BTreeMap<String, Value>) -> Vec<ParameterIssue> {
    let Ok(driver) = Registry::service_driver(Some(kind)) else {
        return Vec::new();
    };
    options_issues(driver, kind, options)
}

fn options_issues(
    driver: &dyn ServiceDriver,
    kind: &str,
    options: &BTreeMap<String, Value>,
) -> Vec<ParameterIssue> {
    let known = schema_keys(&driver.options_schema());
    let who = if driver.name() == kind {
        format!("service driver `{kind}`")
    } else {
        format!(
            "service driver `{}` (type `{kind}` has none of its own)",
            driver.name()
        )
    };
    let takes = if known.is_empty() {
        "it takes no options; remove `options`".to_owned()
    } else {
        format!("it takes: {}", known.join(", "))
    };
    let mut issues = Vec::new();
    let mut own = Map::new();
    for (key, value) in options {
        if known.contains(key) {
            own.insert(key.clone(), value.clone());
        } else {
            issues.push(unknown_setting(
                format!("{who} has no option `{key}`"),
                key,
                &known,
                &takes,
            ));
        }
    }
    if issues.is_empty() {
        if let Err(e) = driver.check_options(&own) {
            issues.push(driver_issue(e, own.keys()));
        }
    }
    issues
}

/// An issue about the driver a recipe names (its `workload_type` or `type`).
fn kind_issue(error: DriverError) -> ParameterIssue {
    ParameterIssue {
        message: error.message,
        hint: error.hint,
        at: IssueAt::Kind,
        ..ParameterIssue::default()
    }
}

fn said(message: String, severity: Severity) -> ParameterIssue {
    ParameterIssue {
        message,
        severity,
        ..ParameterIssue::default()
    }
}

/// The [`ParameterCheck`](orchestrator_recipes::ParameterCheck) of every recipe this
/// program loads, the same resolution that planning does: a client's workload
/// ([`Registry::workload_driver`]: an unknown `workload_type` is refused, a generic one
/// resolved by its target's type) and its `parameters`
/// ([`check_parameters`]); a service's driver
/// ([`Registry::service_driver_for`]), its `options` and what the driver has to say
/// about the recipe ([`ServiceDriver::review`]).
#[must_use]
pub fn check_settings(checked: Checked<'_>) -> Vec<ParameterIssue> {
    match checked {
        Checked::Client { client, target } => match Registry::workload_driver(client, target) {
            Err(e) => vec![kind_issue(e)],
            Ok(resolved) => {
                let mut issues = Vec::new();
                if client.workload_type.is_some() {
                    let (parameters, notes) =
                        match read_parameters(resolved.driver, &client.name, &client.parameters) {
                            Ok(read) => read,
                            Err(issue) => return vec![issue],
                        };
                    let renamed = |key: &str| {
                        resolved
                            .driver
                            .original_parameters()
                            .iter()
                            .find(|(original, here)| {
                                *here == key && client.parameters.contains_key(*original)
                            })
                            .map_or_else(|| key.to_owned(), |(original, _)| (*original).to_owned())
                    };
                    issues.extend(
                        check_parameters(resolved.driver.name(), &parameters)
                            .into_iter()
                            .map(|mut issue| {
                                // At the key as the file writes it.
                                issue.key = renamed(&issue.key);
                                issue
                            }),
                    );
                    issues.extend(notes.into_iter().map(|n| said(n, Severity::Note)));
                    if client.script.is_some() {
                        issues.push(said(
                            format!(
                                "client `{}`: its `script:` block is not run: `workload_type: {}` runs the `{}` workload on this tool's engine",
                                client.name,
                                client.workload_type.as_deref().unwrap_or_default(),
                                resolved.driver.name()
                            ),
                            Severity::Note,
                        ));
                    }
                }
                issues.extend(resolved.note.map(|n| said(n, Severity::Note)));
                issues
            }
        },
        Checked::Service(service) => match Registry::service_driver_for(service) {
            Err(e) => vec![kind_issue(e)],
            Ok(resolved) => {
                let kind = service
                    .service_type
                    .as_deref()
                    .unwrap_or(resolved.driver.name());
                let mut issues = options_issues(resolved.driver, kind, &service.options);
                issues.extend(resolved.note.map(|n| said(n, Severity::Note)));
                if service.enable_cadvisor {
                    issues.push(said(
                        format!(
                            "service `{}`: `enable_cadvisor` is read and not run: this tool starts no cAdvisor; `monitoring: prometheus` scrapes a node exporter beside every job, and every service job samples its own processes' CPU and memory (`monitor:`)",
                            service.name
                        ),
                        Severity::Warning,
                    ));
                }
                issues.extend(resolved.driver.review(service).into_iter().map(|w| {
                    said(
                        format!("service `{}`: {w}", service.name),
                        Severity::Warning,
                    )
                }));
                issues
            }
        },
    }
}

/// Checks a client's `parameters` against its workload driver, for
/// `orchestrator_recipes::load_file_checked`: unknown keys (neither the driver's nor the
/// load's) and values the driver refuses, each swept value on its own. Drivers that run
/// a program of their own, and workload types no linked driver has, are not checked
/// here (planning reports the latter).
#[must_use]
pub fn check_parameters(kind: &str, parameters: &BTreeMap<String, Value>) -> Vec<ParameterIssue> {
    const PROBE: &str = "http://validate.invalid/";
    let Ok(driver) = Registry::workload_named(kind) else {
        return Vec::new();
    };
    if driver.workload(PROBE, &Map::new()).is_none() {
        return Vec::new();
    }
    let known = schema_keys(&driver.parameters_schema());
    let takes = format!(
        "it takes: {}; the load takes: {}",
        known.join(", "),
        LOAD_KEYS.join(", ")
    );
    let mut issues = Vec::new();
    let mut own = Map::new();
    for (key, value) in parameters {
        if LOAD_KEYS.contains(&key.as_str()) {
            if key == "load" {
                if let Err(message) = crate::workload::profile::Profile::parse(value) {
                    issues.push(ParameterIssue {
                        key: key.clone(),
                        message,
                        hint: Some(
                            "e.g. load: sweep, or load: {slo_search: {ttft_p99_ms: 500}}".into(),
                        ),
                        ..ParameterIssue::default()
                    });
                }
            }
            continue;
        }
        if !known.contains(key) {
            issues.push(unknown_setting(
                format!("workload `{kind}` has no parameter `{key}`"),
                key,
                &known,
                &takes,
            ));
            continue;
        }
        own.insert(key.clone(), value.clone());
    }
    // The first combination as a whole (a required parameter may be missing), then each
    // swept value of each parameter in it, so that a problem is put at its key.
    let Some(base) = expand_sweep(&own).into_iter().next() else {
        return issues;
    };
    if let Some(Err(e)) = driver.workload(PROBE, &base) {
        issues.push(driver_issue(e, base.keys()));
        return issues;
    }
    for (key, value) in &own {
        let single: Map<String, Value> = Map::from_iter([(key.clone(), value.clone())]);
        for choice in expand_sweep(&single) {
            let mut run = base.clone();
            run.extend(choice);
            if let Some(Err(e)) = driver.workload(PROBE, &run) {
                issues.push(ParameterIssue {
                    key: key.clone(),
                    message: e.message,
                    hint: e.hint,
                    ..ParameterIssue::default()
                });
                break;
            }
        }
    }
    issues
}
