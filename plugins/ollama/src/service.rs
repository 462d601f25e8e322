//! The `ollama` service driver: `ollama serve` on the job's node, listening on all of
//! its addresses at the service's port (`OLLAMA_HOST=0.0.0.0:PORT`), with the models in
//! `options.models` pulled before the service counts as healthy.
//!
//! Options:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `models` | models to pull once the server answers (`name[:tag]`, `:latest` when no tag); a list or one name | none |
//!
//! Without `models` the job runs the recipe's `command` (default `ollama`) and `args`
//! (default `serve`) as they are. With them, a small `sh` wrapper starts the server,
//! waits until `COMMAND list` answers, runs `COMMAND pull` for each model (a failed pull
//! stops the job with the model's name in its log) and then waits on the server, so
//! a cancelled job stops it. The health probe is the recipe's `health_check`, else
//! `GET /api/tags` every 2 s for up to 30 minutes (pulls take a while); either way it
//! passes only once `/api/tags` lists every model, so no client starts against a model
//! that is still downloading. A `health_check.endpoint` that Ollama does not serve
//! (the original tool's documented example, `/api/health`, is one: Ollama answers it
//! 404) is probed as `/api/tags` instead, keeping the recipe's timing, and
//! `validate` and `run` say so in a warning. Once healthy, `GET /api/version` gives
//! the report the server's version.

use std::collections::BTreeMap;

use orchestrator_core::{
    Arg, DriverError, HealthProbe, Launch, ProbeKind, ServiceDriver, ServiceDriverEntry,
    VersionQuery,
};
use orchestrator_recipes::ServiceRecipe;
use serde_json::{Map, Value};

/// Ollama's own port.
pub const DEFAULT_PORT: u16 = 11434;

/// The paths Ollama answers a GET on with 200: any other health endpoint is probed as
/// `/api/tags`.
pub const SERVED_PATHS: &[&str] = &["/", "/api/tags", "/api/version", "/api/ps", "/v1/models"];

/// The recipe's health endpoint path, when it is one Ollama does not serve on the
/// service's own node.
fn unserved_endpoint(service: &ServiceRecipe) -> Option<String> {
    let probe = HealthProbe::for_service(service)?;
    match &probe.check {
        ProbeKind::Http {
            path, host: None, ..
        } => {
            let bare = path.split('?').next().unwrap_or(path);
            (!SERVED_PATHS.contains(&bare)).then(|| path.clone())
        }
        _ => None,
    }
}

/// The `ollama` service driver.
#[derive(Debug, Clone, Copy)]
pub struct OllamaService;

/// The shell wrapper that pulls models: `sh -c WRAPPER ollama-serve COMMAND ARGS...`,
/// the models in `ORCH_OLLAMA_PULL` (space-separated; model names have no spaces);
/// `COMMAND list` and `COMMAND pull` talk to the server it started.
pub const PULL_WRAPPER: &str = r#"ollama=$1
"$@" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT
until "$ollama" list >/dev/null 2>&1; do
    if ! kill -0 "$server" 2>/dev/null; then wait "$server"; exit $?; fi
    sleep 1
done
for model in $ORCH_OLLAMA_PULL; do
    echo "orchestrator: pulling $model" >&2
    if ! "$ollama" pull "$model" </dev/null; then
        echo "orchestrator: error: cannot pull $model" >&2
        kill -TERM "$server" 2>/dev/null
        wait "$server"
        exit 1
    fi
done
echo "orchestrator: models ready: $ORCH_OLLAMA_PULL" >&2
wait "$server"
"#;

/// `llama3.2` → `llama3.2:latest`, as `/api/tags` names it.
fn tagged(model: &str) -> String {
    let name = model.rsplit('/').next().unwrap_or(model);
    if name.contains(':') {
        model.to_owned()
    } else {
        format!("{model}:latest")
    }
}

/// The models of `options.models`, checked.
fn models(options: &BTreeMap<String, Value>) -> Result<Vec<String>, DriverError> {
    let hint = "e.g. options: {models: [llama3.2:1b, qwen2.5:0.5b]}";
    let list = match options.get("models") {
        None => return Ok(Vec::new()),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| DriverError::new("`models` must be a list of model names", hint))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(DriverError::new(
                "`models` must be a model name or a list of them",
                hint,
            ));
        }
    };
    for model in &list {
        let valid = !model.is_empty()
            && model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-:/".contains(c));
        if !valid {
            return Err(DriverError::new(
                format!("`models`: `{model}` is not a model name"),
                "a model is name[:tag], letters, digits and . _ - : / only",
            ));
        }
    }
    Ok(list)
}

fn port(service: &ServiceRecipe) -> u16 {
    service.ports.first().copied().unwrap_or(DEFAULT_PORT)
}

impl ServiceDriver for OllamaService {
    fn name(&self) -> &'static str {
        "ollama"
    }

    fn description(&self) -> &'static str {
        "Ollama (`ollama serve`), models pulled before it counts as healthy; health GET /api/tags"
    }

    fn options_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "models": {
                    "description": "models to pull before the service counts as healthy",
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}}
                    ]
                }
            }
        })
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), DriverError> {
        let options: BTreeMap<String, Value> = options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        models(&options).map(drop)
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        let command = service.command.clone().unwrap_or_else(|| "ollama".into());
        // The recipe's own args: `${NAME}` in them is the job's environment variable.
        let mut args: Vec<Arg> = service
            .args
            .iter()
            .map(|a| Arg::Expanding(a.as_str().to_owned()))
            .collect();
        if args.is_empty() {
            args.push("serve".into());
        }
        let mut environment = BTreeMap::from([(
            "OLLAMA_HOST".to_owned(),
            format!("0.0.0.0:{}", port(service)),
        )]);
        let models = models(&service.options)?;
        if models.is_empty() {
            return Ok(Launch {
                command,
                args,
                environment,
                default_image: None,
            });
        }
        environment.insert("ORCH_OLLAMA_PULL".into(), models.join(" "));
        let mut wrapped: Vec<Arg> = vec![
            "-c".into(),
            PULL_WRAPPER.into(),
            "ollama-serve".into(),
            command.into(),
        ];
        wrapped.extend(args);
        Ok(Launch {
            command: "sh".into(),
            args: wrapped,
            environment,
            default_image: None,
        })
    }

    fn version_query(&self) -> Option<VersionQuery> {
        // `{"version": "0.12.6"}`.
        Some(VersionQuery {
            path: "/api/version",
            pointer: "/version",
        })
    }

    fn review(&self, service: &ServiceRecipe) -> Vec<String> {
        unserved_endpoint(service)
            .map(|path| {
                format!(
                    "Ollama serves no `{path}` (it answers 404): the ollama driver probes `/api/tags` instead; write `health_check: {{endpoint: /api/tags}}` to say so"
                )
            })
            .into_iter()
            .collect()
    }

    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        let unserved = unserved_endpoint(service).is_some();
        let mut probe = match &service.health_check {
            Some(_) => HealthProbe::for_service(service)?,
            None => HealthProbe {
                check: ProbeKind::Http {
                    path: "/api/tags".into(),
                    host: None,
                    expect: Vec::new(),
                },
                port: Some(port(service)),
                interval: std::time::Duration::from_secs(2),
                timeout: std::time::Duration::from_secs(5),
                retries: 900,
            },
        };
        if let ProbeKind::Http { path, expect, .. } = &mut probe.check {
            if unserved {
                "/api/tags".clone_into(path);
            }
            // Ollama's Go JSON has no spaces: `"name":"llama3.2:latest"`.
            let models = models(&service.options).unwrap_or_default();
            expect.extend(models.iter().map(|m| format!("\"name\":\"{}\"", tagged(m))));
        }
        Some(probe)
    }
}

inventory::submit! { ServiceDriverEntry(&OllamaService) }

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(yaml: Value) -> ServiceRecipe {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn without_models_it_serves_on_all_addresses_at_its_port() {
        let launch = OllamaService
            .launch(&recipe(
                serde_json::json!({"name": "llm", "type": "ollama", "ports": [11500]}),
            ))
            .unwrap();
        assert_eq!(launch.command, "ollama");
        assert_eq!(launch.args, ["serve"]);
        assert_eq!(launch.environment["OLLAMA_HOST"], "0.0.0.0:11500");
        let probe = OllamaService
            .health_probe(&recipe(
                serde_json::json!({"name": "llm", "type": "ollama"}),
            ))
            .unwrap();
        assert_eq!(probe.port, Some(DEFAULT_PORT));
        assert_eq!(
            probe.check,
            ProbeKind::Http {
                path: "/api/tags".into(),
                host: None,
                expect: Vec::new()
            }
        );
    }

    #[test]
    fn models_are_pulled_by_a_wrapper_and_gate_the_health_probe() {
        let service = recipe(serde_json::json!({
            "name": "llm", "type": "ollama", "command": "/opt/ollama/bin/ollama",
            "args": ["serve"], "options": {"models": ["llama3.2", "qwen2.5:0.5b"]},
            "health_check": {"endpoint": "/api/tags", "interval": "5s", "retries": 7}
        }));
        let launch = OllamaService.launch(&service).unwrap();
        assert_eq!(launch.command, "sh");
        assert_eq!(
            launch.args[2..],
            ["ollama-serve", "/opt/ollama/bin/ollama", "serve"]
        );
        assert_eq!(
            launch.environment["ORCH_OLLAMA_PULL"],
            "llama3.2 qwen2.5:0.5b"
        );
        let probe = OllamaService.health_probe(&service).unwrap();
        assert_eq!(probe.retries, 7, "the recipe's timing is kept");
        let ProbeKind::Http { expect, .. } = probe.check else {
            panic!("an HTTP probe")
        };
        assert_eq!(
            expect,
            [r#""name":"llama3.2:latest""#, r#""name":"qwen2.5:0.5b""#]
        );
    }

    #[test]
    fn a_health_endpoint_ollama_does_not_serve_is_probed_as_api_tags_and_said() {
        // The original tool's documented example.
        let service = recipe(serde_json::json!({
            "name": "ollama", "command": "ollama", "args": ["serve"], "ports": [11434],
            "health_check": {"endpoint": "/api/health", "interval": 30, "timeout": 10, "retries": 3}
        }));
        let probe = OllamaService.health_probe(&service).unwrap();
        assert_eq!(
            probe.check,
            ProbeKind::Http {
                path: "/api/tags".into(),
                host: None,
                expect: Vec::new()
            }
        );
        assert_eq!(
            (
                probe.retries,
                probe.interval.as_secs(),
                probe.timeout.as_secs()
            ),
            (3, 30, 10),
            "the recipe's timing is kept"
        );
        let warnings = OllamaService.review(&service);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("Ollama serves no `/api/health`"),
            "{warnings:?}"
        );
        // Paths Ollama serves are probed as written, with no warning.
        for endpoint in ["/api/tags", "/", "http://localhost:11434/api/version"] {
            let service = recipe(serde_json::json!({
                "name": "ollama", "type": "ollama", "health_check": {"endpoint": endpoint}
            }));
            assert!(OllamaService.review(&service).is_empty(), "{endpoint}");
            let ProbeKind::Http { path, .. } = OllamaService.health_probe(&service).unwrap().check
            else {
                panic!("an HTTP probe")
            };
            assert_ne!(path, "/api/health");
        }
    }

    #[test]
    fn bad_models_are_refused() {
        let check = |v: Value| OllamaService.check_options(v.as_object().unwrap());
        assert!(check(serde_json::json!({"models": "llama3.2"})).is_ok());
        assert!(check(serde_json::json!({"models": ["a", 3]})).is_err());
        let e = check(serde_json::json!({"models": ["llama3.2; rm -rf /"]})).unwrap_err();
        assert!(e.message.contains("is not a model name"), "{}", e.message);
        assert!(e.message.contains("`models`"));
    }
}
