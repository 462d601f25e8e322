//! Loading recipe files as the orchestrator runs them: validated, with the drivers
//! linked into this program, and a service file read as a one-service recipe.

use std::path::Path;

use orchestrator_recipes::{
    BenchmarkRecipe, ClientRecipe, Document, Kind, ServiceRecipe, load_file_checked,
};

use crate::error::CoreError;

/// Loads a recipe file as a complete recipe.
///
/// # Errors
/// An unreadable or invalid file, or a client or config file.
pub fn load_recipe(path: &Path) -> Result<BenchmarkRecipe, CoreError> {
    load_recipe_file(path).map(|file| file.recipe)
}

/// A recipe file as [`load_recipe_file`] read it.
#[derive(Debug, Clone)]
pub struct RecipeFile {
    /// The complete recipe.
    pub recipe: BenchmarkRecipe,
    /// How it was read (the original tool's forms, drivers chosen by kind): for `-v`.
    pub notes: Vec<String>,
    /// What the user should know although it runs: to print.
    pub warnings: Vec<String>,
}

/// [`load_recipe`], with how the file was read and its warnings.
///
/// # Errors
/// An unreadable or invalid file, or a client or config file.
pub fn load_recipe_file(path: &Path) -> Result<RecipeFile, CoreError> {
    let loaded = load_file_checked(path, None, &crate::check_settings)?;
    let kind = loaded.value.kind();
    let (notes, warnings) = (loaded.notes, loaded.warnings);
    let recipe = loaded.value.into_recipe().ok_or_else(|| {
        CoreError::plan(
            &path.display().to_string(),
            format!("a {kind} file cannot be run on its own"),
            Some(match kind {
                Kind::Client => "start it against a running service: `orchestrator client start FILE --target SERVICE_ID`".into(),
                _ => "pass a service or complete recipe".into(),
            }),
        )
    })?;
    Ok(RecipeFile {
        recipe,
        notes,
        warnings,
    })
}

fn load_typed(path: &Path, kind: Kind) -> Result<Document, CoreError> {
    Ok(load_file_checked(path, Some(kind), &crate::check_settings)?.value)
}

/// Loads a service recipe file.
///
/// # Errors
/// An unreadable or invalid file, or one that is not a service.
pub fn load_service(path: &Path) -> Result<ServiceRecipe, CoreError> {
    match load_typed(path, Kind::Service)? {
        Document::Service(s) => Ok(*s),
        _ => unreachable!("loaded as a service"),
    }
}

/// Loads a client recipe file.
///
/// # Errors
/// An unreadable or invalid file, or one that is not a client.
pub fn load_client(path: &Path) -> Result<ClientRecipe, CoreError> {
    match load_typed(path, Kind::Client)? {
        Document::Client(c) => Ok(*c),
        _ => unreachable!("loaded as a client"),
    }
}
