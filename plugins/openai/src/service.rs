//! Service drivers for the OpenAI-compatible LLM servers the `openai` workload loads:
//! [`VllmService`] (`vllm serve MODEL`) and [`LlamaCppService`] (llama.cpp's
//! `llama-server`, or llama-cpp-python's `python -m llama_cpp.server`).
//!
//! Either runs the recipe's `command` and `args` as written when its options name no
//! `model`. With `options.model` the driver writes the command line: the model, all
//! the node's addresses (`0.0.0.0`), the service's port, the model's name (`alias`),
//! then the recipe's `args` (further flags). The health probe waits for
//! `GET /v1/models` (a server that loads its model answers it only once the model is
//! loaded), every 5 s for up to 30 minutes unless the recipe's `health_check` says
//! otherwise.
//!
//! `vllm` options:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `model` | the model: a hub id, or a directory or GGUF file on the cluster | — (the recipe's `args` then) |
//! | `alias` | the name clients ask for (`--served-model-name`) | the model |
//! | `tokenizer` | a tokenizer directory (`--tokenizer`; a GGUF file wants one) | vLLM's |
//!
//! `llama-cpp` options:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `model` | the GGUF file on the cluster | — (the recipe's `args` then) |
//! | `alias` | the name clients ask for (`--alias`, `--model_alias`) | the server's |
//! | `server` | `llama-server` (llama.cpp) or `llama-cpp-python` (its `llama_cpp.server` module, run by `command`, default `python3`) | `llama-server` |
//! | `ctx_size` | the context length | the server's |
//! | `threads` | threads for generation and prompts | the server's |

use orchestrator_core::{
    Arg, DriverError, HealthProbe, Launch, ProbeKind, ServiceDriver, ServiceDriverEntry,
    VersionQuery, recipe_args,
};
use orchestrator_recipes::ServiceRecipe;
use serde_json::{Map, Value, json};

/// vLLM's own port.
pub const VLLM_PORT: u16 = 8000;
/// llama.cpp's server's own port.
pub const LLAMA_CPP_PORT: u16 = 8080;

/// The `vllm` service driver.
#[derive(Debug, Clone, Copy)]
pub struct VllmService;

/// The `llama-cpp` service driver.
#[derive(Debug, Clone, Copy)]
pub struct LlamaCppService;

fn option<'a>(service: &'a ServiceRecipe, key: &str) -> Result<Option<&'a str>, DriverError> {
    match service.options.get(key) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(other) => Err(DriverError::new(
            format!("option `{key}` must be a non-empty string, not {other}"),
            format!("e.g. options: {{{key}: …}}"),
        )),
    }
}

fn number(service: &ServiceRecipe, key: &str) -> Result<Option<u64>, DriverError> {
    match service.options.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            DriverError::new(
                format!("option `{key}` must be a positive whole number, not {v}"),
                format!("e.g. options: {{{key}: 4}}"),
            )
        }),
    }
}

fn port(service: &ServiceRecipe, default: u16) -> u16 {
    service.ports.first().copied().unwrap_or(default)
}

/// `GET /v1/models` every 5 s for 30 minutes, or the recipe's own check.
fn models_probe(service: &ServiceRecipe, default_port: u16) -> Option<HealthProbe> {
    if service.health_check.is_some() {
        return HealthProbe::for_service(service);
    }
    Some(HealthProbe {
        check: ProbeKind::Http {
            path: "/v1/models".into(),
            host: None,
            expect: Vec::new(),
        },
        port: Some(port(service, default_port)),
        interval: std::time::Duration::from_secs(5),
        timeout: std::time::Duration::from_secs(5),
        retries: 360,
    })
}

/// A service of these options and nothing else, to check them by launching it.
fn with_options(options: &Map<String, Value>) -> ServiceRecipe {
    serde_json::from_value(json!({"name": "check", "options": options}))
        .expect("a name and options make a service recipe")
}

fn schema(properties: &Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties})
}

/// The recipe's command line as written, for options that name no model.
fn as_written(service: &ServiceRecipe, default_command: &str) -> Launch {
    Launch {
        command: service
            .command
            .clone()
            .unwrap_or_else(|| default_command.to_owned()),
        args: recipe_args(&service.args),
        ..Launch::default()
    }
}

impl ServiceDriver for VllmService {
    fn name(&self) -> &'static str {
        "vllm"
    }

    fn description(&self) -> &'static str {
        "vLLM's OpenAI-compatible server (`vllm serve MODEL`); health GET /v1/models, version GET /version"
    }

    fn options_schema(&self) -> Value {
        schema(&json!({
            "model": {"type": "string", "description": "the model: a hub id, or a directory or GGUF file on the cluster"},
            "alias": {"type": "string", "description": "the name clients ask for (--served-model-name)"},
            "tokenizer": {"type": "string", "description": "a tokenizer directory (--tokenizer)"}
        }))
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), DriverError> {
        self.launch(&with_options(options)).map(drop)
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        let Some(model) = option(service, "model")? else {
            return Ok(as_written(service, "vllm"));
        };
        let mut args: Vec<Arg> = vec![
            "serve".into(),
            model.into(),
            "--host".into(),
            "0.0.0.0".into(),
            "--port".into(),
            port(service, VLLM_PORT).to_string().into(),
        ];
        if let Some(alias) = option(service, "alias")? {
            args.extend(["--served-model-name".into(), alias.into()]);
        }
        if let Some(tokenizer) = option(service, "tokenizer")? {
            args.extend(["--tokenizer".into(), tokenizer.into()]);
        }
        args.extend(recipe_args(&service.args));
        Ok(Launch {
            command: service.command.clone().unwrap_or_else(|| "vllm".into()),
            args,
            ..Launch::default()
        })
    }

    fn version_query(&self) -> Option<VersionQuery> {
        // `{"version": "0.11.0"}`.
        Some(VersionQuery {
            path: "/version",
            pointer: "/version",
        })
    }

    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        models_probe(service, VLLM_PORT)
    }
}

impl ServiceDriver for LlamaCppService {
    fn name(&self) -> &'static str {
        "llama-cpp"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["llama.cpp", "llamacpp", "llama-server", "llama-cpp-python"]
    }

    fn description(&self) -> &'static str {
        "llama.cpp's server (`llama-server -m MODEL`) or llama-cpp-python's (`python3 -m llama_cpp.server`); health GET /v1/models"
    }

    fn options_schema(&self) -> Value {
        schema(&json!({
            "model": {"type": "string", "description": "the GGUF file on the cluster"},
            "alias": {"type": "string", "description": "the name clients ask for"},
            "server": {"enum": ["llama-server", "llama-cpp-python"], "default": "llama-server"},
            "ctx_size": {"type": "integer", "minimum": 1},
            "threads": {"type": "integer", "minimum": 1}
        }))
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), DriverError> {
        self.launch(&with_options(options)).map(drop)
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        let python = match option(service, "server")? {
            None | Some("llama-server") => false,
            Some("llama-cpp-python") => true,
            Some(other) => {
                return Err(DriverError::new(
                    format!("option `server`: `{other}` is not a llama.cpp server"),
                    "server: llama-server (llama.cpp) or llama-cpp-python",
                ));
            }
        };
        let default_command = if python { "python3" } else { "llama-server" };
        let Some(model) = option(service, "model")? else {
            return Ok(as_written(service, default_command));
        };
        let port = port(service, LLAMA_CPP_PORT).to_string();
        let (ctx, threads) = (number(service, "ctx_size")?, number(service, "threads")?);
        let mut args: Vec<Arg> = Vec::new();
        let mut flag = |name: &str, value: String| {
            args.push(name.to_owned().into());
            args.push(value.into());
        };
        if python {
            flag("-m", "llama_cpp.server".into());
            flag("--model", model.into());
            flag("--host", "0.0.0.0".into());
            flag("--port", port);
            if let Some(alias) = option(service, "alias")? {
                flag("--model_alias", alias.into());
            }
            if let Some(n) = ctx {
                flag("--n_ctx", n.to_string());
            }
            if let Some(n) = threads {
                flag("--n_threads", n.to_string());
                flag("--n_threads_batch", n.to_string());
            }
        } else {
            flag("-m", model.into());
            flag("--host", "0.0.0.0".into());
            flag("--port", port);
            if let Some(alias) = option(service, "alias")? {
                flag("--alias", alias.into());
            }
            if let Some(n) = ctx {
                flag("--ctx-size", n.to_string());
            }
            if let Some(n) = threads {
                flag("--threads", n.to_string());
                flag("--threads-batch", n.to_string());
            }
            // Its Prometheus page, for the server's own figures beside the client's.
            args.push("--metrics".into());
        }
        args.extend(recipe_args(&service.args));
        Ok(Launch {
            command: service
                .command
                .clone()
                .unwrap_or_else(|| default_command.to_owned()),
            args,
            ..Launch::default()
        })
    }

    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        models_probe(service, LLAMA_CPP_PORT)
    }
}

inventory::submit! { ServiceDriverEntry(&VllmService) }
inventory::submit! { ServiceDriverEntry(&LlamaCppService) }

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(v: Value) -> ServiceRecipe {
        serde_json::from_value(v).unwrap()
    }

    fn args(launch: &Launch) -> Vec<String> {
        launch.args.iter().map(|a| a.text().to_owned()).collect()
    }

    #[test]
    fn vllm_serves_the_model_on_every_address_at_the_services_port() {
        let service = recipe(json!({"name": "llm", "type": "vllm", "ports": [8001],
            "options": {"model": "/models/smollm2.gguf", "alias": "smollm2", "tokenizer": "/models/tok"},
            "args": ["--max-model-len", "2048"]}));
        let launch = VllmService.launch(&service).unwrap();
        assert_eq!(launch.command, "vllm");
        assert_eq!(
            args(&launch),
            [
                "serve",
                "/models/smollm2.gguf",
                "--host",
                "0.0.0.0",
                "--port",
                "8001",
                "--served-model-name",
                "smollm2",
                "--tokenizer",
                "/models/tok",
                "--max-model-len",
                "2048"
            ]
        );
        let probe = VllmService.health_probe(&service).unwrap();
        assert_eq!(probe.port, Some(8001));
        assert!(matches!(&probe.check, ProbeKind::Http { path, .. } if path == "/v1/models"));
        // Without a model the recipe's command line runs as written.
        let written = recipe(json!({"name": "llm", "type": "vllm",
            "command": "vllm", "args": ["serve", "m", "--port", "8000"]}));
        assert_eq!(
            args(&VllmService.launch(&written).unwrap()),
            ["serve", "m", "--port", "8000"]
        );
    }

    #[test]
    fn llama_cpp_runs_llama_server_or_llama_cpp_python_with_its_flags() {
        let server = recipe(json!({"name": "llm", "type": "llama-cpp",
            "options": {"model": "/m.gguf", "alias": "s", "ctx_size": 2048, "threads": 4}}));
        let launch = LlamaCppService.launch(&server).unwrap();
        assert_eq!(launch.command, "llama-server");
        assert_eq!(
            args(&launch),
            [
                "-m",
                "/m.gguf",
                "--host",
                "0.0.0.0",
                "--port",
                "8080",
                "--alias",
                "s",
                "--ctx-size",
                "2048",
                "--threads",
                "4",
                "--threads-batch",
                "4",
                "--metrics"
            ]
        );
        let python = recipe(
            json!({"name": "llm", "type": "llama-cpp", "command": "/venv/bin/python",
            "ports": [9000], "options": {"model": "/m.gguf", "server": "llama-cpp-python", "alias": "s"}}),
        );
        let launch = LlamaCppService.launch(&python).unwrap();
        assert_eq!(launch.command, "/venv/bin/python");
        assert_eq!(
            args(&launch),
            [
                "-m",
                "llama_cpp.server",
                "--model",
                "/m.gguf",
                "--host",
                "0.0.0.0",
                "--port",
                "9000",
                "--model_alias",
                "s"
            ]
        );
        let e = LlamaCppService
            .check_options(
                json!({"model": "/m.gguf", "server": "ollama"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(
            e.message.contains("`ollama` is not a llama.cpp server"),
            "{e:?}"
        );
        let e = LlamaCppService
            .check_options(
                json!({"model": "/m.gguf", "threads": 0})
                    .as_object()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(e.message.contains("positive whole number"), "{e:?}");
    }
}
