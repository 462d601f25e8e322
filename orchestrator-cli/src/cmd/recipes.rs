//! The commands about recipes and the config, which need no cluster: `validate`,
//! `schema`, `list`, `config show`.

use std::path::{Path, PathBuf};

use orchestrator_recipes::catalog;
use orchestrator_recipes::schema;
use orchestrator_recipes::{Kind, LoadError, ProblemRecord, load_file_checked};
use serde::Serialize;

use crate::app::{Exit, config};
use crate::cli::{Cli, ListArgs, ListWhat, SchemaArgs, ValidateArgs};
use crate::output::{self, print_json};

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Kind>,
    errors: Vec<JsonError>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct JsonError {
    code: String,
    message: String,
    line: Option<usize>,
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

impl From<ProblemRecord> for JsonError {
    fn from(p: ProblemRecord) -> Self {
        Self {
            code: p.code.as_str().to_owned(),
            message: p.message,
            line: Some(p.line),
            column: Some(p.column),
            hint: p.hint,
        }
    }
}

pub fn validate(cli: &Cli, args: &ValidateArgs) -> Exit {
    let expected = args.kind.map(Kind::from);
    let mut reports = Vec::new();
    for file in &args.files {
        let name = file.display().to_string();
        let report = match load_file_checked(file, expected, &orchestrator_core::check_settings) {
            Ok(loaded) => {
                let kind = loaded.value.kind();
                if !args.json {
                    println!("{name}: valid {kind}");
                    for warning in &loaded.warnings {
                        eprintln!("warning: {name}: {warning}");
                    }
                    if cli.verbose > 0 {
                        for note in &loaded.notes {
                            println!("  read: {note}");
                        }
                    }
                }
                FileReport {
                    file: name,
                    valid: true,
                    kind: Some(kind),
                    errors: Vec::new(),
                    notes: loaded.notes,
                    warnings: loaded.warnings,
                }
            }
            Err(error) => {
                if !args.json {
                    eprint!("{}", output::diagnostic(&error));
                }
                let errors = match &error {
                    LoadError::Invalid(diagnostics) => diagnostics
                        .records()
                        .into_iter()
                        .map(JsonError::from)
                        .collect(),
                    LoadError::Io { .. } => vec![JsonError {
                        code: "file::read".into(),
                        message: error.to_string(),
                        line: None,
                        column: None,
                        hint: None,
                    }],
                };
                FileReport {
                    file: name,
                    valid: false,
                    kind: None,
                    errors,
                    notes: Vec::new(),
                    warnings: Vec::new(),
                }
            }
        };
        reports.push(report);
    }
    if args.json {
        print_json(&reports);
    }
    let invalid = reports.iter().filter(|r| !r.valid).count();
    if !args.json && args.files.len() > 1 {
        eprintln!(
            "{} of {} files valid",
            args.files.len() - invalid,
            args.files.len()
        );
    }
    if invalid == 0 {
        Exit::Success
    } else {
        Exit::Invalid
    }
}

pub fn schema_command(args: &SchemaArgs) -> Exit {
    if let Some(dir) = &args.out {
        if let Err(error) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create {}: {error}", dir.display());
            return Exit::Failure;
        }
        for (name, value) in schema::all() {
            let path = dir.join(&name);
            if let Err(error) = std::fs::write(&path, schema::render(value)) {
                eprintln!("error: cannot write {}: {error}", path.display());
                return Exit::Failure;
            }
            println!("wrote {}", path.display());
        }
        return Exit::Success;
    }
    match args.kind {
        Some(kind) => print!("{}", schema::render(schema::schema(kind.into()))),
        None => {
            let all: serde_json::Map<String, serde_json::Value> = schema::all()
                .into_iter()
                .map(|(name, value)| (name, value.clone()))
                .collect();
            print!("{}", schema::render(&serde_json::Value::Object(all)));
        }
    }
    Exit::Success
}

pub fn list(cli: &Cli, args: &ListArgs) -> Exit {
    if args.what == ListWhat::Drivers {
        return list_drivers(args.json);
    }
    let loaded = match config(cli) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let (dir, kind, setting) = match args.what {
        ListWhat::Services => (&loaded.config.services_dir, Kind::Service, "services_dir"),
        ListWhat::Clients | ListWhat::Drivers => {
            (&loaded.config.clients_dir, Kind::Client, "clients_dir")
        }
    };
    let dir = PathBuf::from(dir);
    let catalog = match catalog::list(&dir, kind) {
        Ok(catalog) => catalog,
        Err(error) => {
            eprintln!(
                "error: cannot read {setting} {}: {error}\n  hint: set `{setting}` in the config (see `orchestrator config show`)",
                dir.display()
            );
            return Exit::Failure;
        }
    };
    for (path, error) in &catalog.failures {
        eprintln!(
            "warning: skipped {}: not a valid {kind} (run `orchestrator validate {}`)",
            path.display(),
            path.display()
        );
        if cli.verbose > 0 {
            eprint!("{}", output::diagnostic(error));
        }
    }
    if args.json {
        print_json(&catalog.entries);
    } else if catalog.entries.is_empty() {
        eprintln!("no {kind}s in {}", dir.display());
    } else {
        let rows: Vec<Vec<String>> = catalog
            .entries
            .iter()
            .map(|e| {
                vec![
                    e.name.clone(),
                    e.driver.clone().unwrap_or_else(|| "-".into()),
                    e.description.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let driver = if kind == Kind::Service {
            "TYPE"
        } else {
            "WORKLOAD"
        };
        print!("{}", output::table(&["NAME", driver, "DESCRIPTION"], &rows));
    }
    Exit::Success
}

pub fn config_show(cli: &Cli, json: bool) -> Exit {
    let loaded = match config(cli) {
        Ok(loaded) => loaded,
        Err(exit) => return exit,
    };
    let value = loaded.config.redacted();
    if json {
        print_json(&value);
        return Exit::Success;
    }
    let origin = loaded.path.as_deref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| Path::display(p).to_string(),
    );
    println!("# from: {origin}");
    for o in &loaded.overrides {
        println!("# override: {o}");
    }
    if let Some(level) = &loaded.log_level {
        println!("# log level: {level} (ORCHESTRATOR_LOG_LEVEL)");
    }
    if loaded.config.hpc.is_none() {
        println!("# no `hpc` section: jobs run on this machine (local scheduler)");
    }
    if cli.verbose > 0 {
        for note in &loaded.notes {
            println!("# read: {note}");
        }
    }
    print!(
        "{}",
        serde_yaml::to_string(&value).expect("config serialises")
    );
    Exit::Success
}

#[derive(Serialize)]
struct DriverEntry {
    kind: &'static str,
    name: &'static str,
    description: &'static str,
    engine: bool,
}

/// `orchestrator list drivers`: what the registry holds in this binary.
fn list_drivers(json: bool) -> Exit {
    use orchestrator_core::Registry;
    let mut entries: Vec<DriverEntry> = Registry::service_drivers()
        .into_iter()
        .map(|d| DriverEntry {
            kind: "service",
            name: d.name(),
            description: d.description(),
            engine: false,
        })
        .collect();
    entries.extend(Registry::workload_drivers().into_iter().map(|d| {
        DriverEntry {
            kind: "workload",
            name: d.name(),
            description: d.description(),
            engine: d
                .workload("http://probe.invalid/", &serde_json::Map::new())
                .is_some(),
        }
    }));
    if json {
        print_json(&entries);
    } else {
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                vec![
                    e.kind.to_owned(),
                    e.name.to_owned(),
                    e.description.to_owned(),
                ]
            })
            .collect();
        print!("{}", output::table(&["KIND", "NAME", "DESCRIPTION"], &rows));
    }
    Exit::Success
}
