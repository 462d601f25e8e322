//! A client's `script:` block, as the original tool's client recipes have it
//! (`name`, `local_path`, `remote_path`): the script on this machine is uploaded to
//! the cluster once per content and run in the client job as
//! `python3 SCRIPT --endpoint=URL --PARAMETER=VALUE ...`, the way the original tool
//! ran its benchmark scripts (each parameter as a `--flag`, `_` written `-`).

use std::path::{Path, PathBuf};

use orchestrator_recipes::ScriptSpec;

use crate::CoreError;

/// Where a script goes when its block names no `remote_path`: the original tool's
/// default scripts directory.
pub const DEFAULT_REMOTE_DIR: &str = "$HOME/benchmark_scripts/";

/// The script's file on this machine: `local_path` (a file, or a directory holding
/// `name`), relative to the current directory or to the recipe file's directory or
/// one above it (the original tool's recipes live in `recipes/clients/` and name
/// `benchmark_scripts/` at the top of the repository).
///
/// # Errors
/// No such file in any of those places, or a block that names no file.
pub fn local_script(
    spec: &ScriptSpec,
    recipe_file: &str,
    client: &str,
) -> Result<PathBuf, CoreError> {
    let wanted: PathBuf = match (&spec.local_path, &spec.name) {
        (Some(path), Some(name)) if path.ends_with('/') || Path::new(path).is_dir() => {
            Path::new(path).join(name)
        }
        (Some(path), _) => PathBuf::from(path),
        (None, Some(name)) => PathBuf::from(name),
        (None, None) => {
            return Err(CoreError::plan(
                recipe_file,
                format!("client `{client}`: its `script:` block names no file"),
                Some("give `script.name` (and `local_path`, where it is)".into()),
            ));
        }
    };
    let mut tried = vec![wanted.clone()];
    if wanted.is_relative() {
        let recipe_dir = Path::new(recipe_file).parent().map(Path::to_path_buf);
        for dir in recipe_dir.iter().flat_map(|d| d.ancestors().take(4)) {
            if !dir.as_os_str().is_empty() {
                tried.push(dir.join(&wanted));
            }
        }
    }
    tried
        .iter()
        .find(|p| p.is_file())
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .ok_or_else(|| {
            CoreError::plan(
                recipe_file,
                format!(
                    "client `{client}`: its script is not at {}",
                    tried
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some("fix `script.local_path` and `script.name`, or run from the directory they are relative to".into()),
            )
        })
}

/// Where the script is on the cluster: `remote_path` (a directory, ending in `/` or not
/// ending in the script's name, or the file itself), else [`DEFAULT_REMOTE_DIR`]. It
/// may start with `$HOME/`.
#[must_use]
pub fn remote_script(spec: &ScriptSpec) -> String {
    let name = spec
        .name
        .clone()
        .or_else(|| {
            spec.local_path
                .as_deref()
                .and_then(|p| Path::new(p).file_name())
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "script".to_owned());
    let remote = spec.remote_path.as_deref().unwrap_or(DEFAULT_REMOTE_DIR);
    if remote.ends_with('/') {
        format!("{remote}{name}")
    } else if Path::new(remote)
        .file_name()
        .is_some_and(|n| n == name.as_str())
    {
        remote.to_owned()
    } else {
        format!("{remote}/{name}")
    }
}

/// A parameter's value as the original tool wrote it on a command line (Python's
/// `str()`): strings as they are, `True`/`False`, numbers as written.
#[must_use]
pub fn flag_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(true) => "True".to_owned(),
        serde_json::Value::Bool(false) => "False".to_owned(),
        serde_json::Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: Option<&str>, local: Option<&str>, remote: Option<&str>) -> ScriptSpec {
        ScriptSpec {
            name: name.map(str::to_owned),
            local_path: local.map(str::to_owned),
            remote_path: remote.map(str::to_owned),
        }
    }

    #[test]
    fn the_remote_file_is_the_directory_and_the_name_or_the_path_itself() {
        let s = spec(
            Some("b.py"),
            Some("benchmark_scripts/"),
            Some("$HOME/benchmark_scripts/"),
        );
        assert_eq!(remote_script(&s), "$HOME/benchmark_scripts/b.py");
        let s = spec(Some("b.py"), None, Some("$HOME/scripts"));
        assert_eq!(remote_script(&s), "$HOME/scripts/b.py");
        let s = spec(Some("b.py"), None, Some("/opt/x/b.py"));
        assert_eq!(remote_script(&s), "/opt/x/b.py");
        let s = spec(None, Some("scripts/ollama_benchmark.py"), None);
        assert_eq!(
            remote_script(&s),
            "$HOME/benchmark_scripts/ollama_benchmark.py"
        );
    }

    #[test]
    fn the_local_file_is_found_beside_the_recipe_or_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let scripts = dir.path().join("benchmark_scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        std::fs::write(scripts.join("b.py"), "print(1)\n").unwrap();
        let recipes = dir.path().join("recipes/clients");
        std::fs::create_dir_all(&recipes).unwrap();
        let recipe = recipes.join("c.yaml");
        let found = local_script(
            &spec(Some("b.py"), Some("benchmark_scripts/"), None),
            &recipe.to_string_lossy(),
            "c",
        )
        .unwrap();
        assert_eq!(found, std::fs::canonicalize(scripts.join("b.py")).unwrap());
        let missing = local_script(
            &spec(Some("nope.py"), Some("benchmark_scripts/"), None),
            &recipe.to_string_lossy(),
            "c",
        )
        .unwrap_err();
        assert!(
            missing.to_string().contains("its script is not at"),
            "{missing}"
        );
    }

    #[test]
    fn values_are_written_as_python_wrote_them() {
        assert_eq!(flag_value(&serde_json::json!("1,2,5")), "1,2,5");
        assert_eq!(flag_value(&serde_json::json!(true)), "True");
        assert_eq!(flag_value(&serde_json::json!(256)), "256");
        assert_eq!(flag_value(&serde_json::json!(0.5)), "0.5");
    }
}
