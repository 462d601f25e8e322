//! A client's `dataset` files: found on this machine when the session is planned
//! (relative to the current directory, or to the recipe file's directory or one above
//! it) and checked there; the runner copies them into the client's job directory on
//! the cluster when its job is submitted, where the engine reads them. A path not on
//! this machine that is absolute is taken to be on the cluster already.

use std::path::Path;

use orchestrator_recipes::ClientRecipe;
use serde_json::Value;

use crate::error::CoreError;
use crate::workload::dataset::{Dataset, DatasetFormat};

/// The parameter that names a dataset file (a list of them sweeps).
pub const PARAMETER: &str = "dataset";

/// The dataset paths a client's parameters name.
pub(crate) fn paths(client: &ClientRecipe) -> Vec<String> {
    match client.parameters.get(PARAMETER) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Each dataset path of a client's parameters, rewritten by `to`.
pub(crate) fn rewrite(client: &mut ClientRecipe, to: impl Fn(&str) -> String) {
    match client.parameters.get_mut(PARAMETER) {
        Some(Value::String(s)) => *s = to(s),
        Some(Value::Array(items)) => {
            for item in items {
                if let Value::String(s) = item {
                    *s = to(s);
                }
            }
        }
        _ => {}
    }
}

/// Finds and reads each of the client's datasets on this machine, and names them by
/// absolute path; one that is absolute and not here is left for the cluster to have.
///
/// # Errors
/// A relative path found nowhere, or a file that is not a dataset (the parse error
/// names its line and column).
pub fn resolve(client: &mut ClientRecipe, recipe_file: &str) -> Result<(), CoreError> {
    let format = client
        .parameters
        .get("dataset_format")
        .and_then(Value::as_str)
        .and_then(|f| DatasetFormat::named(f).ok());
    let mut found = Vec::new();
    for wanted in paths(client) {
        let path = Path::new(&wanted);
        let mut tried = vec![path.to_path_buf()];
        if path.is_relative() {
            let dir = Path::new(recipe_file).parent().map(Path::to_path_buf);
            for dir in dir.iter().flat_map(|d| d.ancestors().take(4)) {
                if !dir.as_os_str().is_empty() {
                    tried.push(dir.join(path));
                }
            }
        }
        match tried.iter().find(|p| p.is_file()) {
            Some(here) => {
                Dataset::load(here, format).map_err(|e| {
                    CoreError::plan(
                        recipe_file,
                        format!("client `{}`: dataset {e}", client.name),
                        Some("a dataset is JSON lines ({\"prompt\": …} or {\"messages\": […]}), a ShareGPT JSON array, or a trace ({\"timestamp\": ms, \"input_length\": …})".into()),
                    )
                })?;
                let absolute = std::fs::canonicalize(here).unwrap_or_else(|_| here.clone());
                found.push((wanted, absolute));
            }
            None if path.is_absolute() => {}
            None => {
                return Err(CoreError::plan(
                    recipe_file,
                    format!(
                        "client `{}`: its dataset is not at {}",
                        client.name,
                        tried
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Some("give the file's path from here or from the recipe's directory, or an absolute path on the cluster".into()),
                ));
            }
        }
    }
    rewrite(client, |s| {
        found
            .iter()
            .find(|(wanted, _)| wanted == s)
            .map_or_else(|| s.to_owned(), |(_, p)| p.to_string_lossy().into_owned())
    });
    Ok(())
}
