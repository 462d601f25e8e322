//! The `chroma` service driver: the Chroma vector database (`type: chroma`, or a
//! service whose command is `chroma`).
//!
//! - With neither `command` nor `container_image`, the node's own `chroma` (from
//!   `pip install chromadb`, on the job's PATH) runs natively: `chroma run --host
//!   0.0.0.0 --port PORT --path DIR`, its data in `chroma-data` in the job's directory,
//!   or at `options.path` to keep it between sessions; the recipe's `args` follow.
//! - With a `container_image` and no `command`, the image's own entry point runs (the
//!   official `chromadb/chroma` image serves on 8000); with a `command`, that command.
//!
//! `ANONYMIZED_TELEMETRY=False` unless the recipe says otherwise (compute nodes have no
//! business phoning home). Healthy once `GET /api/v2/heartbeat` answers; the original
//! tool's `/api/v1/heartbeat` is answered `410 Gone` by Chroma 1.x, so it is probed as
//! the v2 one, with a warning. The version (`GET /api/v2/version`) goes to the report.

use std::collections::BTreeMap;

use orchestrator_core::{
    Arg, DriverError, HealthProbe, Launch, ProbeKind, ServiceDriver, ServiceDriverEntry,
    VersionQuery, recipe_args,
};
use orchestrator_recipes::ServiceRecipe;
use serde_json::{Map, Value};

/// Chroma's port.
pub const DEFAULT_PORT: u16 = 8000;
const HEARTBEAT: &str = "/api/v2/heartbeat";

/// The `chroma` service driver.
#[derive(Debug, Clone, Copy)]
pub struct ChromaService;

fn port(service: &ServiceRecipe) -> u16 {
    service.ports.first().copied().unwrap_or(DEFAULT_PORT)
}

fn data_path(options: &BTreeMap<String, Value>) -> Result<Option<String>, DriverError> {
    match options.get("path") {
        None => Ok(None),
        Some(Value::String(p)) if !p.trim().is_empty() => Ok(Some(p.clone())),
        Some(_) => Err(DriverError::new(
            "`path` must be a directory path",
            "e.g. options: {path: $HOME/chroma-data}, or leave it out for a fresh one in the job's directory",
        )),
    }
}

/// A health endpoint of the v1 API, which Chroma 1.x no longer serves.
fn v1_endpoint(service: &ServiceRecipe) -> Option<&str> {
    let endpoint = service.health_check.as_ref()?.endpoint.as_deref()?;
    endpoint.contains("/api/v1/").then_some(endpoint)
}

impl ServiceDriver for ChromaService {
    fn name(&self) -> &'static str {
        "chroma"
    }

    fn description(&self) -> &'static str {
        "Chroma vector database (`chroma run`, natively or from its image); health GET /api/v2/heartbeat"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["chromadb"]
    }

    fn options_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "path": {
                    "description": "the data directory of a natively run server, kept between sessions; by default a fresh one in the job's directory",
                    "type": "string",
                    "minLength": 1
                }
            }
        })
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), DriverError> {
        let options: BTreeMap<String, Value> = options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        data_path(&options).map(drop)
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        let mut launch = match Launch::as_written(service) {
            Some(launch) => launch,
            None => {
                let path = data_path(&service.options)?.unwrap_or_else(|| "chroma-data".into());
                let mut args: Vec<Arg> = vec![
                    "run".into(),
                    "--host".into(),
                    "0.0.0.0".into(),
                    "--port".into(),
                    port(service).to_string().into(),
                    "--path".into(),
                    Arg::Expanding(path),
                ];
                args.extend(recipe_args(&service.args));
                Launch {
                    command: "chroma".into(),
                    args,
                    ..Launch::default()
                }
            }
        };
        launch
            .environment
            .insert("ANONYMIZED_TELEMETRY".into(), "False".into());
        Ok(launch)
    }

    fn version_query(&self) -> Option<VersionQuery> {
        // A JSON string: `"1.0.0"`.
        Some(VersionQuery {
            path: "/api/v2/version",
            pointer: "",
        })
    }

    fn review(&self, service: &ServiceRecipe) -> Vec<String> {
        let mut notes: Vec<String> = v1_endpoint(service)
            .map(|endpoint| {
                format!(
                    "Chroma 1.x answers `{endpoint}` with 410 Gone (the v1 API is gone): the chroma driver probes `{HEARTBEAT}` instead; write `health_check: {{endpoint: {HEARTBEAT}}}` to say so"
                )
            })
            .into_iter()
            .collect();
        if service.options.contains_key("path")
            && (service.command.is_some() || service.container_image.is_some())
        {
            notes.push(
                "`options.path` is for a natively run server (no `command`, no `container_image`); it is ignored here: pass `--path` in `args`"
                    .into(),
            );
        }
        notes
    }

    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        let heartbeat = ProbeKind::Http {
            path: HEARTBEAT.into(),
            host: None,
            expect: Vec::new(),
        };
        if v1_endpoint(service).is_some() {
            // The recipe's port and timing, the v2 path.
            let mut probe = HealthProbe::for_service(service)?;
            probe.check = heartbeat;
            return Some(probe);
        }
        HealthProbe::own_check(service, heartbeat, port(service), 120)
            .or_else(|| HealthProbe::for_service(service))
    }
}

inventory::submit! { ServiceDriverEntry(&ChromaService) }

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::Registry;
    use std::time::Duration;

    fn recipe(yaml: Value) -> ServiceRecipe {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn natively_chroma_runs_on_all_addresses_at_its_port_with_its_data_beside_the_job() {
        let launch = ChromaService
            .launch(&recipe(serde_json::json!({
                "name": "vdb", "type": "chroma", "ports": [8100], "args": ["--log-config", "x.yaml"]
            })))
            .unwrap();
        assert_eq!(launch.command, "chroma");
        let args: Vec<&str> = launch.args.iter().map(Arg::text).collect();
        assert_eq!(
            args,
            [
                "run",
                "--host",
                "0.0.0.0",
                "--port",
                "8100",
                "--path",
                "chroma-data",
                "--log-config",
                "x.yaml"
            ]
        );
        assert_eq!(launch.environment["ANONYMIZED_TELEMETRY"], "False");
        let kept = ChromaService
            .launch(&recipe(
                serde_json::json!({"name": "vdb", "options": {"path": "${HOME}/vdb"}}),
            ))
            .unwrap();
        assert_eq!(kept.args[6].text(), "${HOME}/vdb");
        assert!(matches!(kept.args[6], Arg::Expanding(_)));
        let image = ChromaService
            .launch(&recipe(
                serde_json::json!({"name": "vdb", "container_image": "chroma.sif"}),
            ))
            .unwrap();
        assert_eq!(image.command, "/.singularity.d/runscript");
        assert!(
            ChromaService
                .check_options(serde_json::json!({"path": 3}).as_object().unwrap())
                .is_err()
        );
    }

    #[test]
    fn the_originals_v1_heartbeat_is_probed_as_v2_with_a_warning() {
        // The original tool's chroma.yaml, as far as the probe goes.
        let original = recipe(serde_json::json!({
            "name": "chroma", "command": "chroma", "args": ["run", "--host", "0.0.0.0", "--port", "8000"],
            "ports": [8000],
            "health_check": {"endpoint": "http://localhost:8000/api/v1/heartbeat", "timeout": 30, "retries": 5, "interval": 10}
        }));
        assert_eq!(
            Registry::service_driver_for(&original)
                .unwrap()
                .driver
                .name(),
            "chroma"
        );
        let probe = ChromaService.health_probe(&original).unwrap();
        assert_eq!(
            probe.check,
            ProbeKind::Http {
                path: HEARTBEAT.into(),
                host: None,
                expect: Vec::new()
            }
        );
        assert_eq!((probe.port, probe.retries), (Some(8000), 5));
        assert_eq!(probe.interval, Duration::from_secs(10));
        let notes = ChromaService.review(&original);
        assert!(notes[0].contains("410 Gone"), "{notes:?}");
        // A recipe's own v2 endpoint is its own; no health_check: the heartbeat.
        let own = recipe(serde_json::json!({
            "name": "c", "ports": [8000], "health_check": {"endpoint": "/api/v2/version"}
        }));
        assert!(matches!(
            ChromaService.health_probe(&own).unwrap().check,
            ProbeKind::Http { ref path, .. } if path == "/api/v2/version"
        ));
        assert!(ChromaService.review(&own).is_empty());
        let bare = ChromaService
            .health_probe(&recipe(serde_json::json!({"name": "c"})))
            .unwrap();
        assert_eq!(bare.port, Some(DEFAULT_PORT));
    }
}
