//! The recipes found in a directory: what `orchestrator list services|clients` shows
//! and what the original `list_available_services` returned.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::load::{Document, LoadError, load_file};
use crate::model::Kind;

/// One recipe in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// The recipe's `name`.
    pub name: String,
    /// Its `description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The service type or workload type, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The file.
    pub path: PathBuf,
}

/// The recipes of a directory, and the files that failed to load.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Valid recipes, sorted by name.
    pub entries: Vec<CatalogEntry>,
    /// Files that are not valid recipes of the kind asked for.
    pub failures: Vec<(PathBuf, LoadError)>,
}

/// Lists the `*.yaml` / `*.yml` recipes of `kind` (service or client) in `dir`.
///
/// # Errors
/// The directory cannot be read.
pub fn list(dir: &Path, kind: Kind) -> std::io::Result<Catalog> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut catalog = Catalog::default();
    for path in files {
        match load_file(&path, Some(kind)) {
            Ok(loaded) => {
                let (name, description, driver) = match loaded.value {
                    Document::Service(s) => (s.name, s.description, s.service_type),
                    Document::Client(c) => (c.name, c.description, c.workload_type),
                    Document::Recipe(_) | Document::Config(_) => continue,
                };
                catalog.entries.push(CatalogEntry {
                    name,
                    description,
                    driver,
                    path,
                });
            }
            Err(error) => catalog.failures.push((path, error)),
        }
    }
    catalog
        .entries
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
    Ok(catalog)
}
