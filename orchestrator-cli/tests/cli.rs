//! The `orchestrator` binary, run for real on the repository's recipes and fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs the binary in the workspace root with a clean environment of its own.
fn orchestrator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(args)
        .current_dir(root())
        .env_remove("ORCHESTRATOR_CONFIG")
        .env_remove("SSH_KEY_PATH")
        .env_remove("SLURM_ACCOUNT")
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A diagnostic as one line: miette wraps it to the terminal's width and frames it
/// with `│`.
fn flat(bytes: &[u8]) -> String {
    text(bytes)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("directory exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .expect("inside the workspace")
        .display()
        .to_string()
}

#[test]
fn every_example_recipe_is_valid() {
    let mut files = Vec::new();
    for dir in [
        "services",
        "clients",
        "complete",
        "config",
        "original",
        "original/services",
        "original/clients",
    ] {
        files.extend(yaml_files(&root().join("recipes").join(dir)));
    }
    assert!(
        files.len() >= 22,
        "found only {} example recipes",
        files.len()
    );
    let names: Vec<String> = files.iter().map(|f| relative(f)).collect();
    let mut args = vec!["validate", "--json"];
    args.extend(names.iter().map(String::as_str));
    let output = orchestrator(&args);
    let reports: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    for report in reports.as_array().expect("an array") {
        assert_eq!(report["valid"], true, "{report:#}");
    }
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn every_invalid_fixture_fails_with_a_located_diagnostic() {
    let fixtures = yaml_files(&root().join("recipes/invalid"));
    assert!(fixtures.len() >= 15);
    for fixture in fixtures {
        let name = relative(&fixture);
        let output = orchestrator(&["validate", "--json", &name]);
        assert_eq!(output.status.code(), Some(2), "{name} should be invalid");
        let reports: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
        let report = &reports[0];
        assert_eq!(report["valid"], false);
        let errors = report["errors"].as_array().expect("errors");
        assert!(!errors.is_empty(), "{name}: no errors");
        for error in errors {
            assert!(
                error["line"].as_u64().is_some_and(|l| l >= 1),
                "{name}: {error}"
            );
            assert!(
                error["column"].as_u64().is_some_and(|c| c >= 1),
                "{name}: {error}"
            );
            assert!(
                error["code"].as_str().is_some_and(|c| c.contains("::")),
                "{name}: {error}"
            );
        }

        // What a person sees: reviewed snapshots of the rendered diagnostics.
        let rendered = orchestrator(&["validate", &name]);
        assert_eq!(rendered.status.code(), Some(2));
        let stem = fixture.file_stem().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(stem, text(&rendered.stderr));
    }
}

/// Every service and complete recipe under `recipes/` that validates also plans: what
/// `validate` accepts, `run --dry-run` accepts (the same driver resolution).
#[test]
fn every_recipe_that_validates_also_plans() {
    let home = tempdir("dry-run-home");
    let mut planned = 0;
    for dir in [
        "services",
        "complete",
        "original",
        "original/services",
        "original/clients",
        "clients",
    ] {
        for file in yaml_files(&root().join("recipes").join(dir)) {
            let name = relative(&file);
            let validated = orchestrator(&["validate", "--json", &name]);
            let report: Value = serde_json::from_slice(&validated.stdout).unwrap();
            assert_eq!(report[0]["valid"], true, "{name}: {report:#}");
            if !matches!(report[0]["kind"].as_str(), Some("service" | "recipe")) {
                continue;
            }
            let output = orchestrator_at_home(&home, &["run", "--dry-run", &name]);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{name} validates but does not plan: {}",
                text(&output.stderr)
            );
            assert!(
                text(&output.stdout).contains("#SBATCH --job-name="),
                "{name}"
            );
            planned += 1;
        }
    }
    assert!(planned >= 15, "planned only {planned} recipes");
}

/// A recipe in `dir` named `name`, written from `text`.
fn written(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_generic_workload_type_resolves_by_the_target_services_type() {
    let dir = tempdir("generic-workload");
    let recipe = |service: &str| {
        format!(
            "services:\n  - {{name: llm, {service}, ports: [8000]}}\nclients:\n  - name: load\n    workload_type: llm_inference\n    parameters: {{model: m, max_tokens: 8}}\n"
        )
    };
    for (service, workload) in [
        ("type: ollama", "ollama"),
        ("command: ollama", "ollama"),
        ("type: vllm, command: vllm", "openai"),
        ("type: llama-cpp, command: llama-server", "openai"),
    ] {
        let file = written(&dir, "r.yaml", &recipe(service));
        let output = orchestrator(&["-v", "validate", &file]);
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{service}: {}",
            text(&output.stderr)
        );
        assert!(
            stdout.contains(&format!("runs the `{workload}` workload")),
            "{service}: {stdout}"
        );
    }
    // A service no LLM workload fits: refused where `workload_type` is written.
    let file = written(
        &dir,
        "r.yaml",
        &recipe("type: redis, command: redis-server"),
    );
    let output = orchestrator(&["validate", "--json", &file]);
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let error = &report[0]["errors"][0];
    assert_eq!(error["code"], "recipe::driver_parameter", "{report:#}");
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(5), Some(20))
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("no linked workload fits a service of type `redis`"),
        "{error}"
    );
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("`ollama` for ollama"),
        "{error}"
    );
    // A client file alone: its target's type comes from `target_service`.
    let file = written(
        &dir,
        "c.yaml",
        "name: c\nworkload_type: llm_inference\ntarget_service: {name: x}\nparameters: {model: m}\n",
    );
    let output = orchestrator(&["validate", "--json", &file]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        report[0]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("the type of the service it loads is not known"),
        "{report:#}"
    );
    assert!(
        report[0]["errors"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("target_service.type")
    );
}

#[test]
fn the_original_tools_parameter_names_are_read_and_checked_where_written() {
    let dir = tempdir("original-parameters");
    let recipe = |parameters: &str| {
        format!(
            "services:\n  - {{name: kv, type: redis, command: redis-server, ports: [6379]}}\nclients:\n  - name: load\n    workload_type: redis\n    parameters:\n{parameters}"
        )
    };
    // Both names for one thing: refused at the original's.
    let file = written(
        &dir,
        "both.yaml",
        &recipe("      num_operations: 10\n      requests: 10\n"),
    );
    let output = orchestrator(&["validate", "--json", &file]);
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let error = &report[0]["errors"][0];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("`num_operations` is the original tool's name for `requests`"),
        "{error}"
    );
    assert_eq!(error["line"], 7, "{error}");
    // A value the workload refuses, under the original's name: at that name.
    let file = written(
        &dir,
        "bad.yaml",
        &recipe("      native_tests: \"ping,del\"\n"),
    );
    let output = orchestrator(&["validate", "--json", &file]);
    assert_eq!(output.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let error = &report[0]["errors"][0];
    assert_eq!(error["line"], 7, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("del"),
        "{error}"
    );
}

#[test]
fn an_unknown_workload_type_is_refused_with_the_known_ones() {
    let dir = tempdir("unknown-workload");
    let file = written(
        &dir,
        "r.yaml",
        "services:\n  - {name: kv, type: redis, command: redis-server, ports: [6379]}\nclients:\n  - name: load\n    workload_type: redis_bench\n",
    );
    let output = orchestrator(&["validate", &file]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = flat(&output.stderr);
    assert!(
        stderr.contains("no workload driver `redis_bench` is linked"),
        "{stderr}"
    );
    assert!(stderr.contains("r.yaml:5:20"), "{stderr}");
    assert!(
        stderr.contains(
            "known workload types: chroma, command, http, mysql, ollama, openai, postgres, redis"
        ),
        "{stderr}"
    );
    // `run` refuses it the same way, before anything is submitted.
    let run = orchestrator(&["run", "--dry-run", &file]);
    assert_eq!(run.status.code(), Some(2));
    assert!(flat(&run.stderr).contains("no workload driver `redis_bench` is linked"));
}

#[test]
fn the_api_documents_complete_example_validates_with_a_warning_and_plans() {
    let output = orchestrator(&["-v", "validate", "recipes/original/seed.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        stdout.contains("its command `ollama` is run by the `ollama` driver"),
        "{stdout}"
    );
    assert!(stdout.contains("runs the `ollama` workload"), "{stdout}");
    assert!(
        stderr.contains(
            "warning: recipes/original/seed.yaml: service `ollama`: Ollama serves no `/api/health`"
        ),
        "{stderr}"
    );
    // The warning is there without -v too, and in --json.
    let json = orchestrator(&["validate", "--json", "recipes/original/seed.yaml"]);
    let report: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        report[0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("/api/tags")
    );
}

#[test]
fn three_independent_mistakes_give_three_labels_in_one_run() {
    let output = orchestrator(&["validate", "recipes/invalid/three_mistakes.yaml"]);
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("╰── ").count(), 3, "{stderr}");
    for code in [
        "schema::wrong_type",
        "schema::out_of_range",
        "schema::unknown_key",
    ] {
        assert!(stderr.contains(code), "{code} missing from {stderr}");
    }
    assert!(stderr.contains("did you mean `health_check`?"));
    assert!(stderr.contains("three_mistakes.yaml:5:9"), "{stderr}");
}

#[test]
fn original_layout_is_read_and_said_with_verbose() {
    let output = orchestrator(&[
        "-v",
        "validate",
        "recipes/services/ollama_with_cadvisor.yaml",
    ]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        stdout.contains("wrapped in a top-level `service:` key"),
        "{stdout}"
    );
    assert!(stdout.contains("SLURM keys `time`, `partition`, `gres` directly under `resources`"));
    assert!(stdout.contains("`container:` block"));
}

#[test]
fn a_mix_of_valid_and_invalid_files_exits_2_and_reports_each() {
    let output = orchestrator(&[
        "validate",
        "--json",
        "recipes/services/redis.yaml",
        "recipes/invalid/missing_name.yaml",
        "recipes/does-not-exist.yaml",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[0]["kind"], "service");
    assert_eq!(reports[1]["errors"][0]["code"], "schema::missing_key");
    assert_eq!(reports[2]["errors"][0]["code"], "file::read");
}

#[test]
fn huge_files_are_refused_before_parsing() {
    let dir = tempdir("huge");
    let path = dir.join("huge.yaml");
    let line = "# padding padding padding padding padding padding padding padding\n";
    std::fs::write(&path, line.repeat(20_000)).unwrap();
    let output = orchestrator(&["validate", "--json", path.to_str().unwrap()]);
    let reports: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(reports[0]["errors"][0]["code"], "file::too_large");
    assert_eq!(output.status.code(), Some(2));
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "orchestrator-cli-test-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn schema_out_writes_the_committed_schemas() {
    let dir = tempdir("schemas");
    let output = orchestrator(&["schema", "--out", dir.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    for name in ["config", "service", "client", "recipe"] {
        let file = format!("{name}.schema.json");
        let written = std::fs::read_to_string(dir.join(&file)).unwrap();
        let committed = std::fs::read_to_string(root().join("schemas").join(&file)).unwrap();
        assert_eq!(written, committed, "{file} differs from the committed one");
    }
    let single = orchestrator(&["schema", "service"]);
    let schema: Value = serde_json::from_slice(&single.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
}

#[test]
fn list_services_shows_names_and_descriptions() {
    for args in [&["list", "services"][..], &["--list-services"][..]] {
        let output = orchestrator(args);
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(stdout.starts_with("NAME"), "{stdout}");
        for name in [
            "mysql",
            "ollama ",
            "ollama_monitored",
            "postgres",
            "redis",
            "vllm",
        ] {
            assert!(stdout.contains(name), "{name} missing from {stdout}");
        }
        assert!(stdout.contains("Redis in-memory store"));
    }
    let json = orchestrator(&["list", "clients", "--json"]);
    let clients: Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "chroma_benchmark",
            "mysql_benchmark",
            "ollama_benchmark",
            "ollama_sweep",
            "postgres_benchmark",
            "redis_benchmark",
            "vllm_benchmark"
        ]
    );
}

#[test]
fn config_show_resolves_overrides_and_redacts_secrets() {
    let dir = tempdir("config");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "hpc:\n  hostname: login.example.org\n  username: alice\n  port: 8822\n\
         containers:\n  registry: docker://alice:s3cret-pw@registry.example.org\n\
         monitoring:\n  grafana_password: hunter2\nservices_dir: svc\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["config", "show", "--json"])
        .env("ORCHESTRATOR_CONFIG", &config)
        .env("SSH_KEY_PATH", "/keys/id_test")
        .env("SLURM_ACCOUNT", "p999")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        !stdout.contains("s3cret-pw") && !stdout.contains("hunter2"),
        "{stdout}"
    );
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["hpc"]["key_filename"], "/keys/id_test");
    assert_eq!(shown["slurm"]["account"], "p999");
    assert_eq!(shown["hpc"]["port"], 8822);
    assert_eq!(shown["services_dir"], dir.join("svc").display().to_string());
}

#[test]
fn a_named_config_that_is_missing_is_an_error() {
    let output = orchestrator(&["--config", "no/such/config.yaml", "config", "show"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("config::not_found"), "{stderr}");
    assert!(stderr.contains("no/such/config.yaml"));
}

#[test]
fn an_empty_config_file_means_every_default() {
    let dir = tempdir("emptyconfig");
    let config = written(&dir, "config.yaml", "# nothing set yet\n");
    let output = orchestrator(&["-v", "--config", &config, "config", "show"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("local scheduler"), "{stdout}");
    assert!(stdout.contains("every setting has its default"), "{stdout}");
}

#[test]
fn no_config_means_defaults_and_the_local_scheduler() {
    let dir = tempdir("noconfig");
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["config", "show"])
        .current_dir(&dir)
        .env_remove("ORCHESTRATOR_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("# from: built-in defaults"), "{stdout}");
    assert!(stdout.contains("local scheduler"));
    assert!(stdout.contains("services_dir: recipes/services"));
}

#[test]
fn help_documents_exit_codes_and_the_original_flags() {
    let output = orchestrator(&["--help"]);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("Exit status:"));
    assert!(stdout.contains("2    invalid input"));
    // Issue #16: the code `run` exits with when an expectation is missed was missing.
    assert!(stdout.contains("3    the session ran, but a client's result missed"));
    assert!(stdout.contains("130  interrupted"));
    assert!(stdout.contains("ORCHESTRATOR_LOG_LEVEL"));
    for flag in [
        "--recipe FILE",
        "--status",
        "--list-services",
        "--stop-all-services",
        "--debug-services",
        "--clear-state",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from help");
    }
    for command in [
        "validate",
        "schema",
        "list",
        "config",
        "run",
        "status",
        "service",
        "client",
        "stop",
        "debug",
        "clear-state",
        "slurm-status",
    ] {
        assert!(stdout.contains(command), "{command} missing from help");
    }
    let usage = orchestrator(&["validate"]);
    assert_eq!(usage.status.code(), Some(2), "a usage error exits 2");
}

/// `report --input` of the recorded session (`tests/fixtures/README.md`) in `format`.
fn recorded_report(format: &str) -> String {
    let output = orchestrator(&[
        "report",
        "--input",
        "orchestrator-cli/tests/fixtures/recorded-report.json",
        "--format",
        format,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn a_recorded_session_renders_in_every_report_format() {
    // Reviewed snapshots of what a person reads.
    insta::assert_snapshot!("report_markdown", recorded_report("md"));
    insta::assert_snapshot!("report_yaml", recorded_report("yaml"));
    // The HTML with each chart's SVG reduced to its title (the charts themselves are
    // checked in a real browser by the sessions tests).
    let html = recorded_report("html");
    let mut reduced = String::new();
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<svg") {
        reduced.push_str(&rest[..start]);
        let end = rest[start..].find("</svg>").expect("a closed svg") + start + 6;
        let svg = &rest[start..end];
        let title = svg
            .split("<text")
            .nth(1)
            .and_then(|t| t.split_once('>'))
            .map_or("", |(_, t)| t.split('<').next().unwrap_or(""));
        reduced.push_str(&format!("<svg title=\"{}\"/>", title.trim()));
        rest = &rest[end..];
    }
    reduced.push_str(rest);
    insta::assert_snapshot!("report_html", reduced);
    // JSON renders what it read: the recorded report is version 2, and reads as
    // version 3, whose services, clients and results are the report's own types.
    let mut json: Value = serde_json::from_str(&recorded_report("json")).unwrap();
    let mut recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(
            root().join("orchestrator-cli/tests/fixtures/recorded-report.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["report_version"], 2);
    assert_eq!(json["report_version"], 3);
    for list in ["services", "clients"] {
        let (ours, theirs) = (&json[list], &recorded[list]);
        assert_eq!(
            ours.as_array().unwrap().len(),
            theirs.as_array().unwrap().len()
        );
        for (o, t) in ours
            .as_array()
            .unwrap()
            .iter()
            .zip(theirs.as_array().unwrap())
        {
            assert_eq!(o["id"], t["id"]);
            assert_eq!(o["state"], t["state"]);
            assert!(
                o.get("session_id").is_none(),
                "no id that means nothing outside"
            );
            let recipe: Value = serde_json::from_str(t["recipe"].as_str().unwrap()).unwrap();
            assert_eq!(o["recipe"], recipe, "the recipe is a value, not JSON text");
            let at = o["created_at"].as_str().unwrap();
            assert!(at.ends_with('Z') && at.contains('T'), "RFC 3339: {at}");
        }
    }
    for (o, t) in json["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(recorded["results"].as_array().unwrap())
    {
        assert!(o.get("id").is_none() && o.get("session_id").is_none());
        assert_eq!(o["path"], t["path"]);
        assert_eq!(o["bytes"], t["bytes"]);
        assert!(o["fetched_at"].as_str().unwrap().ends_with('Z'));
    }
    // Everything else is as recorded.
    for part in ["services", "clients", "results", "report_version"] {
        json.as_object_mut().unwrap().remove(part);
        recorded.as_object_mut().unwrap().remove(part);
    }
    assert_eq!(json, recorded);
}

/// Issue #16: a service without `type` was said to be "service type `generic`", a
/// name of a driver the recipes crate should not know and the user never wrote.
#[test]
fn a_service_without_a_type_is_named_by_its_name_in_a_driver_finding() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.yaml");
    std::fs::write(
        &file,
        "name: plain\ncommand: sleep\nargs: [10]\noptions:\n  nope: 1\n",
    )
    .unwrap();
    let output = orchestrator(&["validate", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = flat(&output.stderr);
    assert!(stderr.contains("for service `plain`"), "{stderr}");
    assert!(!stderr.contains("service type `generic`"), "{stderr}");
}

#[test]
fn a_report_input_that_is_not_one_is_refused() {
    let output = orchestrator(&["report", "--input", "recipes/services/redis.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("not a JSON report"));
}

/// A stand-in OpenAI-compatible server (a **fake**: it lists one model, answers every
/// completion with one token and records each prompt it was sent), on a port of its own.
fn prompt_recorder() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let prompts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = prompts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0;
                    let mut line = String::new();
                    let mut get = None;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        get.get_or_insert_with(|| line.starts_with("GET "));
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    if let Some(prompt) = request["prompt"].as_str() {
                        seen.lock().unwrap().push(prompt.to_owned());
                    }
                    let answer = if get == Some(true) {
                        r#"{"object":"list","data":[{"id":"m","object":"model"}]}"#
                    } else {
                        r#"{"choices":[{"text":"x"}],"usage":{"prompt_tokens":9,"completion_tokens":1}}"#
                    };
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        answer.len()
                    );
                    if stream.write_all(head.as_bytes()).is_err()
                        || stream.write_all(answer.as_bytes()).is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, prompts)
}

/// Issue #19: every run of a sweep sent the same synthetic prompts, so a prefix cache
/// warmed by one run flattered the next. Now each run of a session's client gets its own
/// salt: no prompt of one run is sent by another, the same job gets the same prompts
/// again (reproducible), another client or session gets others, and a recipe that sets
/// `prompt_salt` sends the same prompts in every run.
#[test]
fn every_run_sends_prompts_no_other_run_of_the_session_sent() {
    let (port, prompts) = prompt_recorder();
    let dir = tempfile::tempdir().unwrap();
    let run = |job: &str, extra: &str| -> Vec<Vec<String>> {
        prompts.lock().unwrap().clear();
        let spec = format!(
            r#"{{"driver": "openai", "url": "http://127.0.0.1:{port}", "parameters": {{"model": "m", "stream": false, "max_tokens": 1, "prompt_length": 12, "requests": 4, "concurrency": [1, 2], "repeat": 2{extra}}}}}"#
        );
        let out = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(["workload", "run", "--spec-json", &spec, "--out"])
            .arg(dir.path().join(job))
            .env("ORCH_SESSION_ID", "ses-00c0ffee")
            .env("ORCH_JOB_NAME", job)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        // Concurrency 2 may send a run's two first prompts in either order.
        let sent = prompts.lock().unwrap().clone();
        assert_eq!(sent.len(), 16, "4 runs of 4 requests");
        sent.chunks(4)
            .map(|run| {
                let mut run = run.to_vec();
                run.sort();
                run
            })
            .collect()
    };
    let first = run("load", "");
    for (i, a) in first.iter().enumerate() {
        for b in &first[i + 1..] {
            assert!(
                a.iter().all(|p| !b.contains(p)),
                "runs share a prompt: {a:?} {b:?}"
            );
        }
    }
    assert_eq!(
        run("load", ""),
        first,
        "the same job sends the same prompts again"
    );
    let other = run("load-b", "");
    assert!(
        other
            .iter()
            .flatten()
            .all(|p| !first.iter().flatten().any(|q| q == p))
    );
    let fixed = run("load", r#", "prompt_salt": 7"#);
    assert!(fixed.iter().all(|run| run == &fixed[0]), "{fixed:?}");
    let summary = |job: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(job).join("run-001/summary.json")).unwrap(),
        )
        .unwrap()
    };
    // Each run's summary says which salt it had: its own, or the recipe's.
    assert!(summary("load-b")["prompt_salt"].is_u64());
    assert_eq!(summary("load")["parameters"]["prompt_salt"], 7);
}

/// A dataset's texts are salted per run too: each run sends the file's four texts once
/// each, every one behind a tag of its run's own, so that no two runs send the same
/// prompt; `prompt_salt: 0` sends them as written.
#[test]
fn a_datasets_texts_lead_with_their_runs_tag_unless_the_salt_is_zero() {
    let (port, prompts) = prompt_recorder();
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "Why is the sea salty?",
        "Name three colours.",
        "What is a knee?",
        "Say hello.",
    ];
    let file = dir.path().join("prompts.jsonl");
    let lines: String = texts
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({"prompt": t})))
        .collect();
    std::fs::write(&file, lines).unwrap();
    let run = |salt: Option<u64>| -> Vec<String> {
        prompts.lock().unwrap().clear();
        let mut spec = serde_json::json!({"driver": "openai", "url": format!("http://127.0.0.1:{port}"),
            "parameters": {"model": "m", "stream": false, "max_tokens": 1, "dataset": file,
                           "requests": 4, "concurrency": [1, 2], "repeat": 2}});
        if let Some(salt) = salt {
            spec["parameters"]["prompt_salt"] = salt.into();
        }
        let spec = spec.to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(["workload", "run", "--spec-json", &spec, "--out"])
            .arg(dir.path().join("out"))
            .env("ORCH_SESSION_ID", "ses-00c0ffee")
            .env("ORCH_JOB_NAME", "load")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        prompts.lock().unwrap().clone()
    };
    let sent = run(None);
    assert_eq!(sent.len(), 16, "4 runs of 4 requests: {sent:?}");
    let mut tags = std::collections::BTreeSet::new();
    for (i, run) in sent.chunks(4).enumerate() {
        let mut bodies: Vec<&str> = run
            .iter()
            .map(|p| {
                let (tag, body) = p.split_once("] ").unwrap_or_else(|| panic!("no tag: {p}"));
                tags.insert((i, tag.to_owned()));
                body
            })
            .collect();
        bodies.sort_unstable();
        let mut expected = texts.to_vec();
        expected.sort_unstable();
        assert_eq!(bodies, expected, "run {i}: {run:?}");
    }
    // One tag a run, each run's its own.
    let distinct: std::collections::BTreeSet<&String> = tags.iter().map(|(_, t)| t).collect();
    assert_eq!((tags.len(), distinct.len()), (4, 4), "{tags:?}");
    let mut plain = run(Some(0));
    plain.sort_unstable();
    let mut expected: Vec<String> = texts
        .iter()
        .flat_map(|t| std::iter::repeat_n(t.to_string(), 4))
        .collect();
    expected.sort_unstable();
    assert_eq!(plain, expected);
}

/// Runs the binary in the workspace root with `HOME` (and so its state) in `home`.
fn orchestrator_at_home(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(args)
        .current_dir(root())
        .env_remove("ORCHESTRATOR_CONFIG")
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// Issue #15: `monitoring:` plans a Prometheus before the clients, gives every
/// workload client its own metrics port, has every job register with it, and lets a
/// client load the added Prometheus by name.
#[test]
fn a_monitored_recipe_plans_a_prometheus_and_registers_every_job() {
    let home = tempdir("monitoring-home");
    let file = home.join("monitored.yaml");
    std::fs::write(
        &file,
        "name: m\nmonitoring: {scrape_interval: 3s}\nservices:\n  - name: web\n    command: orchestrator\n    args: [demo, http-server, --port, 8080]\n    ports: [8080]\nclients:\n  - name: a\n    workload_type: http\n    parameters: {requests: 10}\n  - name: b\n    workload_type: http\n    parameters: {requests: 10}\n  - name: own\n    workload_type: http\n    parameters: {requests: 10, metrics_port: 9999}\n  - name: ask\n    command: curl\n    args: [-s, http://x]\n    target_service: {name: prometheus}\n",
    )
    .unwrap();
    let out = orchestrator_at_home(&home, &["run", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let jobs: Vec<&str> = stdout.split("# ===== ").skip(1).collect();
    let job = |name: &str| -> &str {
        jobs.iter()
            .find(|j| j.contains(&format!("export ORCH_JOB_NAME={name}\n")))
            .unwrap_or_else(|| panic!("no job {name}: {stdout}"))
    };
    assert_eq!(jobs.len(), 6, "web, prometheus and four clients: {stdout}");
    // The added Prometheus: the generated configuration at the session's interval,
    // over the session's target directory.
    let prometheus = job("prometheus");
    assert!(prometheus.contains("file_sd_configs"), "{prometheus}");
    assert!(prometheus.contains(" 9090 3s "), "{prometheus}");
    assert!(prometheus.contains("${ORCH_JOB_DIR}"), "{prometheus}");
    // Every job registers its node's exporter; the workload clients their metrics,
    // on ports of their own (a client's own `metrics_port` is kept).
    for name in ["web", "prometheus", "a", "b", "own", "ask"] {
        assert!(
            job(name).contains("prometheus-node-exporter") && job(name).contains("node-"),
            "{name}"
        );
    }
    assert!(job("a").contains("\"metrics_port\":9464"), "{}", job("a"));
    assert!(job("b").contains("\"metrics_port\":9465"), "{}", job("b"));
    assert!(
        job("own").contains("\"metrics_port\":9999"),
        "{}",
        job("own")
    );
    assert!(job("b").contains("client-b.json"), "{}", job("b"));
    assert!(!job("ask").contains("client-ask.json"), "{}", job("ask"));
    // `target_service: {name: prometheus}` is the added Prometheus.
    assert!(
        job("ask").contains("export TARGET_PORT=9090\n"),
        "{}",
        job("ask")
    );
}

/// What `monitoring:` cannot do is refused before anything is submitted, with the way
/// out.
#[test]
fn monitoring_that_cannot_run_is_refused_with_the_way_out() {
    let home = tempdir("monitoring-refused");
    let cases = [
        (
            "services:\n  - {name: web, command: sleep, args: [60]}\nmonitoring: {service: web}\n",
            "a `generic` service, which cannot monitor a session",
        ),
        (
            "services:\n  - {name: prometheus, command: sleep, args: [60]}\nmonitoring: prometheus\n",
            "`monitoring: {service: prometheus}`",
        ),
        (
            "services:\n  - {name: web, command: sleep, args: [60]}\nmonitoring: {targets: [{port: 9100}]}\n",
            "names neither a service nor a host",
        ),
        (
            "services:\n  - {name: web, command: sleep, args: [60]}\nmonitoring: {service: nope}\n",
            "which is no service of this recipe",
        ),
        (
            "services:\n  - {name: p, type: prometheus, options: {config: /x.yml}}\nmonitoring: {service: p}\n",
            "writes its own configuration",
        ),
    ];
    for (i, (recipe, expected)) in cases.iter().enumerate() {
        let file = home.join(format!("r{i}.yaml"));
        std::fs::write(&file, recipe).unwrap();
        let out = orchestrator_at_home(&home, &["run", "--dry-run", file.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{recipe}: {}",
            text(&out.stderr)
        );
        // Read as one line: miette wraps at 80 columns, where depends on the path's
        // length (its process id).
        assert!(
            flat(&out.stderr).contains(expected),
            "{recipe}: {}",
            text(&out.stderr)
        );
    }
    // A target on a service of another session that does not run: said when the run
    // starts, and nothing is recorded or submitted.
    let file = home.join("external.yaml");
    std::fs::write(
        &file,
        "services:\n  - {name: web, command: sleep, args: [60]}\nmonitoring: {targets: [{service: svc-0000, port: 8080}]}\n",
    )
    .unwrap();
    let out = orchestrator_at_home(&home, &["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // miette wraps the message to the terminal's width.
    let flat = flat(&out.stderr);
    assert!(
        flat.contains(
            "is no service of this recipe and no service that runs (nothing was submitted)"
        ) && flat.contains("give the target a `host:`"),
        "{flat}"
    );
    let status = orchestrator_at_home(&home, &["status", "--json"]);
    assert!(
        !text(&status.stdout).contains("ses-"),
        "{}",
        text(&status.stdout)
    );
}

/// Issue #18: `replicas` plans into one job of a task each, and what cannot be split
/// or merged is refused before anything is submitted, with the way out.
#[test]
fn replicas_plan_one_task_each_and_what_cannot_split_is_refused() {
    let home = tempdir("replicas-plan");
    let service = "services:\n  - {name: web, command: sleep, args: [60], ports: [8080]}\n";
    let file = home.join("ok.yaml");
    std::fs::write(
        &file,
        format!("{service}clients:\n  - {{name: load, workload_type: http, replicas: 3, parameters: {{concurrency: 4, duration_s: 5}}}}\n"),
    )
    .unwrap();
    let out = orchestrator_at_home(&home, &["run", "--dry-run", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("#SBATCH --ntasks=3\n"), "{plan}");
    assert!(plan.contains("#SBATCH --spread-job\n"), "{plan}");
    assert!(plan.contains("\"replicas\":3"), "{plan}");
    let cases = [
        (
            "{name: load, workload_type: http, replicas: 3, parameters: {concurrency: '2,4', duration_s: 5}}",
            "client `load`: concurrency 2 cannot be split over 3 replicas",
        ),
        (
            "{name: load, workload_type: http, replicas: 2, parameters: {rate: 100, max_concurrency: 1, duration_s: 5}}",
            "max_concurrency 1 cannot be split over 2 replicas",
        ),
        (
            "{name: load, command: 'true', replicas: 2}",
            "`replicas` needs a workload the orchestrator's engine runs",
        ),
        (
            "{name: load, workload_type: http, replicas: 2, parameters: {duration_s: 5, concurrency: 2}, resources: {slurm: {ntasks: 4}}}",
            "sets both `replicas` and `resources.slurm.ntasks`",
        ),
        ("{name: load, workload_type: http, replicas: 0}", "replicas"),
        (
            "{name: load, workload_type: http, replicas: 2, parameters: {load: sweep, duration_s: 5}}",
            "a load profile (`load`) chooses each run from the last one's result",
        ),
        (
            "{name: load, workload_type: http, parameters: {load: ramp, duration_s: 5}}",
            "`load: ramp`: `load` is `sweep`",
        ),
    ];
    for (i, (client, expected)) in cases.iter().enumerate() {
        let file = home.join(format!("r{i}.yaml"));
        std::fs::write(&file, format!("{service}clients:\n  - {client}\n")).unwrap();
        let out = orchestrator_at_home(&home, &["run", "--dry-run", file.to_str().unwrap()]);
        let flat = flat(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{client}: {flat}");
        assert!(flat.contains(expected), "{client}: {flat}");
    }
}

#[test]
fn a_dataset_is_found_from_the_recipe_and_a_bad_one_stops_the_plan_at_its_line() {
    let home = tempdir("dataset-plan");
    let recipes = home.join("recipes");
    std::fs::create_dir_all(home.join("data")).unwrap();
    std::fs::create_dir_all(&recipes).unwrap();
    let recipe = |dataset: &str| {
        format!(
            "services:\n  - {{name: llm, type: llama-cpp, command: llama-server, args: [-m, /m.gguf], ports: [8080]}}\nclients:\n  - name: load\n    workload_type: openai\n    parameters: {{dataset: {dataset}, requests: 4}}\n"
        )
    };
    let plan = |dataset: &str| {
        let file = recipes.join("r.yaml");
        std::fs::write(&file, recipe(dataset)).unwrap();
        let out = orchestrator_at_home(&home, &["run", "--dry-run", file.to_str().unwrap()]);
        let flat = flat(&out.stderr);
        (out.status.code(), text(&out.stdout), flat)
    };
    // One directory above the recipe's, as the original tool's layout has its files.
    std::fs::write(home.join("data/p.jsonl"), "{\"prompt\": \"Hello\"}\n").unwrap();
    let (code, stdout, stderr) = plan("data/p.jsonl");
    assert_eq!(code, Some(0), "{stderr}");
    let absolute = home.join("data/p.jsonl").canonicalize().unwrap();
    assert!(stdout.contains(&absolute.display().to_string()), "{stdout}");
    // Nowhere: every place looked in is named, and nothing is submitted.
    let (code, _, stderr) = plan("data/missing.jsonl");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("client `load`: its dataset is not at data/missing.jsonl"),
        "{stderr}"
    );
    assert!(
        stderr.contains("an absolute path on the cluster"),
        "{stderr}"
    );
    // A line that is not JSON: the file, its line and column.
    std::fs::write(
        home.join("data/bad.jsonl"),
        "{\"prompt\": \"a\"}\n{\"prompt\": 'b'}\n",
    )
    .unwrap();
    let (code, _, stderr) = plan("data/bad.jsonl");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.jsonl:2:12: not a JSON object"),
        "{stderr}"
    );
    // An absolute path that is not here is the cluster's.
    let (code, stdout, stderr) = plan("/cluster/data/sharegpt.json");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("/cluster/data/sharegpt.json"), "{stdout}");
    // Exact lengths and a chat template do not go together: refused as written.
    let file = recipes.join("chat.yaml");
    std::fs::write(
        &file,
        recipe("data/p.jsonl").replace(
            "{dataset: data/p.jsonl,",
            "{endpoint: chat, input_tokens: 48,",
        ),
    )
    .unwrap();
    let out = orchestrator(&["validate", file.to_str().unwrap()]);
    let flat = flat(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{flat}");
    assert!(flat.contains("need endpoint: completions"), "{flat}");
}
