//! The workspace's architecture, checked from its sources (ARCHITECTURE.md states each
//! rule; this is where a test can check it):
//! - each crate depends only on the layers below it (what it must not know);
//! - within a crate, no module imports, directly or through others, a module that
//!   imports it back (read from `use crate::…`, `crate::…` and `super::…` paths,
//!   root re-exports resolved to the module that defines the item);
//! - no source file is over 800 lines outside its tests;
//! - no field or parameter holds a lifecycle state as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Every crate of the workspace: its directory.
fn crates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in [root(), root().join("plugins"), root().join("examples")] {
        for entry in std::fs::read_dir(&base).unwrap().flatten() {
            let path = entry.path();
            if path.join("Cargo.toml").exists() && path.join("src").exists() {
                dirs.push(path);
            }
        }
    }
    dirs.sort();
    dirs
}

/// The workspace crates a crate's `[dependencies]` (not dev-dependencies) name.
fn workspace_dependencies(dir: &Path) -> (String, BTreeSet<String>) {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let name = text
        .lines()
        .find_map(|l| l.strip_prefix("name = "))
        .map(|n| n.trim_matches('"').to_owned())
        .expect("a package name");
    let mut section = String::new();
    let mut deps = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.to_owned();
            continue;
        }
        if section == "[dependencies]" {
            let key = line.split(['=', '.', ' ']).next().unwrap_or_default();
            if key.starts_with("orchestrator") {
                deps.insert(key.to_owned());
            }
        }
    }
    (name, deps)
}

#[test]
fn each_crate_knows_only_the_layers_below_it() {
    // What each crate may depend on; the comment is what it must not know.
    let allowed = |name: &str| -> Option<&[&str]> {
        Some(match name {
            // Recipes, config and diagnostics: no cluster, no scheduler, no driver.
            "orchestrator-recipes" => &[],
            // Running commands and moving bytes: nothing of SLURM or recipes.
            "orchestrator-ssh" => &[],
            // Job scripts and schedulers: nothing of recipes, drivers or sessions.
            "orchestrator-slurm" => &["orchestrator-ssh"],
            // Sessions: no plugin (drivers come through the registry), no CLI.
            "orchestrator-core" => &[
                "orchestrator-recipes",
                "orchestrator-ssh",
                "orchestrator-slurm",
            ],
            // The command line, and programs that embed it with drivers of their own,
            // may link everything.
            "orchestrator-cli" | "orchestrator-example-echo" => return None,
            // A plugin builds on core (and its recipe types), and may speak HTTP with
            // the http plugin's client; never on another plugin.
            _ => &[
                "orchestrator-core",
                "orchestrator-recipes",
                "orchestrator-plugin-http",
            ],
        })
    };
    let mut checked = 0;
    for dir in crates() {
        let (name, deps) = workspace_dependencies(&dir);
        let Some(allowed) = allowed(&name) else {
            continue;
        };
        for dep in &deps {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} depends on {dep}; it may depend only on {allowed:?}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 9, "the crates were found ({checked})");
}

/// A source file's module path in its crate (`""` for the root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    match last.as_str() {
        "lib.rs" if parts.is_empty() => Some(String::new()),
        "main.rs" if parts.is_empty() => None,
        "mod.rs" => Some(parts.join("::")),
        other => {
            parts.push(other.strip_suffix(".rs")?.to_owned());
            Some(parts.join("::"))
        }
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Expands `a::{b, c::{d, e}}` (the text after `crate::` or `super::`) into paths.
fn expand(text: &str) -> Vec<Vec<String>> {
    fn parse(chars: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        let mut ident = String::new();
        while *i < chars.len() {
            let c = chars[*i];
            if c.is_alphanumeric() || c == '_' {
                ident.push(c);
                *i += 1;
            } else if c == ':' && chars.get(*i + 1) == Some(&':') {
                if !ident.is_empty() {
                    path.push(std::mem::take(&mut ident));
                }
                *i += 2;
            } else if c == '{' {
                *i += 1;
                loop {
                    while *i < chars.len() && (chars[*i].is_whitespace() || chars[*i] == ',') {
                        *i += 1;
                    }
                    if *i >= chars.len() || chars[*i] == '}' {
                        *i += 1;
                        return;
                    }
                    parse(chars, i, &path, out);
                }
            } else {
                break;
            }
        }
        if !ident.is_empty() {
            path.push(ident);
        }
        out.push(path);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    parse(&chars, &mut 0, &[], &mut out);
    out
}

/// The module a path names: its longest prefix that is a module of the crate, and for
/// an item of the root, the module the root re-exports it from.
fn resolve(
    base: &[String],
    path: &[String],
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> String {
    let mut full = base.to_vec();
    full.extend(path.iter().cloned());
    let mut best = String::new();
    for n in 1..=full.len() {
        let candidate = full[..n].join("::");
        if modules.contains(&candidate) {
            best = candidate;
        }
    }
    if best.is_empty() {
        if let Some(item) = full.first() {
            if let Some(module) = reexports.get(item) {
                return module.clone();
            }
        }
    }
    best
}

/// The import graph of one crate: module → modules it names.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let files: Vec<(String, PathBuf)> = files
        .into_iter()
        .filter_map(|f| Some((module_of(src, &f)?, f)))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(m, _)| m.clone()).collect();
    // `pub use module::{A, B}` in the root.
    let mut reexports = BTreeMap::new();
    if let Ok(lib) = std::fs::read_to_string(src.join("lib.rs")) {
        let joined = lib.replace('\n', " ");
        for part in joined.split("pub use ").skip(1) {
            let statement = part.split(';').next().unwrap_or_default();
            for path in expand(statement) {
                // The item's module: the longest prefix of the path that is one.
                let module = (1..path.len())
                    .rev()
                    .map(|n| path[..n].join("::"))
                    .find(|m| modules.contains(m));
                if let (Some(module), Some(item)) = (module, path.last()) {
                    reexports.insert(item.clone(), module);
                }
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        // The code, without comments (doc links name paths too) and without the
        // tests at the end of the file.
        let code: String = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join(" ");
        let segments: Vec<String> = if module.is_empty() {
            Vec::new()
        } else {
            module.split("::").map(str::to_owned).collect()
        };
        let mut edges = BTreeSet::new();
        for (marker, base) in [
            ("crate::", Vec::new()),
            (
                "super::",
                segments[..segments.len().saturating_sub(1)].to_vec(),
            ),
        ] {
            for (i, _) in code.match_indices(marker) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                // `super::super::…` climbs once per `super`.
                let mut rest = &code[i + marker.len()..];
                let mut base = base.clone();
                while let Some(more) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = more;
                }
                for path in expand(rest) {
                    let target = resolve(&base, &path, &modules, &reexports);
                    if !target.is_empty() && &target != module {
                        edges.insert(target);
                    }
                }
            }
        }
        graph.insert(module.clone(), edges);
    }
    graph
}

/// A cycle of the graph, if it has one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_cycle_finder_finds_a_cycle_through_a_root_reexport_and_a_parent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use b::Thing;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod c;\nuse crate::Thing;\n").unwrap();
    std::fs::write(src.join("a/c.rs"), "use super::super::b::{self, Other};\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "// use crate::a;\nfn f() { crate::a::c::g(); }\n",
    )
    .unwrap();
    let graph = import_graph(src);
    assert_eq!(graph["a"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["a::c"], BTreeSet::from(["b".to_owned()]));
    assert_eq!(graph["b"], BTreeSet::from(["a::c".to_owned()]));
    let cycle = find_cycle(&graph).expect("b → a::c → b");
    assert!(cycle.contains(&"b".to_owned()) && cycle.contains(&"a::c".to_owned()));
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let mut cycles = Vec::new();
    for dir in crates() {
        let graph = import_graph(&dir.join("src"));
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{}: {}", dir.display(), cycle.join(" → ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn no_source_file_is_over_800_lines_outside_its_tests() {
    let mut files = Vec::new();
    for dir in crates() {
        rust_files(&dir.join("src"), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        assert!(
            code <= 800,
            "{} has {code} lines outside its tests",
            file.display()
        );
    }
}

#[test]
fn no_field_or_parameter_holds_a_lifecycle_state_as_text() {
    let mut files = Vec::new();
    for dir in crates() {
        rust_files(&dir.join("src"), &mut files);
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            for bad in [
                "state: String",
                "state: &str",
                "status: String",
                "state: Option<String>",
                "job_state: Option<String>",
            ] {
                assert!(
                    !line.contains(bad),
                    "{}:{}: `{line}`: a lifecycle state is one of the types in \
                     orchestrator_core::lifecycle",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
