//! The `prometheus` service driver of the HPC Benchmarking Orchestrator: Prometheus
//! (`type: prometheus`, or a service whose command is `prometheus`).
//!
//! - With neither `command` nor `container_image`, the node's own `prometheus` runs
//!   natively on a configuration the job writes into its directory: a global
//!   `scrape_interval` (`options.scrape_interval`, default `5s`), Prometheus scraping
//!   itself, the `options.targets` (`HOST:PORT`, job `targets`), and every target file
//!   dropped into the job's `targets/` directory (`file_sd_configs`, watched: what runs
//!   later in the session can be added while it runs). Its data goes to
//!   `prometheus-data` in the job's directory; the recipe's `args` follow. With
//!   `options.config`, that configuration file instead.
//! - With a `container_image` and no `command`, the image's own entry point runs; with a
//!   `command` (the original tool's `command: prometheus`, `--config.file=...` in
//!   `args`), that command.
//!
//! - As a session's monitor (a recipe's `monitoring:`), the generated configuration
//!   at the session's interval over the session's target files, in the recipe's image
//!   when it has one.
//!
//! Healthy once `GET /-/ready` answers; the version (`/api/v1/status/buildinfo`) goes
//! to the report.

use std::collections::BTreeMap;

use orchestrator_core::{
    Arg, DriverError, HealthProbe, Launch, ProbeKind, ServiceDriver, ServiceDriverEntry,
    VersionQuery, recipe_args,
};
use orchestrator_recipes::ServiceRecipe;
use serde_json::{Map, Value};

/// Prometheus's port.
pub const DEFAULT_PORT: u16 = 9090;
const READY: &str = "/-/ready";

/// The `prometheus` service driver.
#[derive(Debug, Clone, Copy)]
pub struct PrometheusService;

/// Writes the configuration and runs Prometheus: `sh -c NATIVE prometheus PORT
/// INTERVAL CONFIG TARGETS DISCOVERED [ARGS...]`, where CONFIG is a file of the
/// recipe's (empty: write one), TARGETS the static targets, space-separated (each
/// already checked to be `HOST:PORT` of safe characters), and DISCOVERED the directory
/// of target files (empty: `targets/` in the job's directory).
const NATIVE: &str = r#"set -eu
port=$1 interval=$2 config=$3 targets=$4 discovered=${5:-$PWD/targets}
shift 5
mkdir -p "$discovered" prometheus-data
discovered=$(cd "$discovered" && pwd)
if [ -z "$config" ]; then
    config=$PWD/prometheus.yml
    {
        printf 'global:\n  scrape_interval: %s\n  evaluation_interval: %s\n' "$interval" "$interval"
        printf 'scrape_configs:\n'
        printf '  - job_name: prometheus\n    static_configs:\n      - targets: ["localhost:%s"]\n' "$port"
        if [ -n "$targets" ]; then
            printf '  - job_name: targets\n    static_configs:\n      - targets: ['
            sep=
            for t in $targets; do printf '%s"%s"' "$sep" "$t"; sep=", "; done
            printf ']\n'
        fi
        printf '  - job_name: discovered\n    file_sd_configs:\n      - files: ["%s/*.json"]\n        refresh_interval: 1s\n' "$discovered"
    } >"$config"
fi
server=$(command -v prometheus || true)
if [ -z "$server" ]; then
    echo "prometheus: no prometheus on this node (load the module that has it, or give the service a container_image)" >&2
    exit 127
fi
echo "prometheus: $("$server" --version 2>&1 | head -n 1)" >&2
exec "$server" --config.file="$config" --web.listen-address="0.0.0.0:$port" \
    --storage.tsdb.path="$PWD/prometheus-data" "$@"
"#;

fn port(service: &ServiceRecipe) -> u16 {
    service.ports.first().copied().unwrap_or(DEFAULT_PORT)
}

/// The driver's options, checked.
struct Options {
    scrape_interval: String,
    config: Option<String>,
    targets: Vec<String>,
}

fn bad(message: impl Into<String>, hint: &str) -> DriverError {
    DriverError::new(message, hint)
}

/// `5s`, `500ms`, `1m`: Prometheus's duration, in the units a scrape interval uses.
fn is_interval(text: &str) -> bool {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.bytes().any(|b| b != b'0')
        && matches!(unit, "ms" | "s" | "m" | "h")
}

/// `HOST:PORT` with a host of letters, digits, `.`, `-` and `_` (or a bracketed IPv6
/// address): nothing a YAML string or a shell word would read differently.
fn is_target(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// The generated configuration's launch: `sh -c NATIVE ...` with the recipe's args
/// after it; `discovered` is the directory of target files (an expanding argument).
fn native(service: &ServiceRecipe, o: Options, discovered: &str) -> Launch {
    let mut args: Vec<Arg> = vec![
        "-c".into(),
        NATIVE.into(),
        "prometheus".into(),
        port(service).to_string().into(),
        o.scrape_interval.into(),
        Arg::Expanding(o.config.unwrap_or_default()),
        o.targets.join(" ").into(),
        Arg::Expanding(discovered.to_owned()),
    ];
    args.extend(recipe_args(&service.args));
    Launch {
        command: "sh".into(),
        args,
        ..Launch::default()
    }
}

/// Flags the generated configuration sets itself.
const OWN_FLAGS: [&str; 3] = [
    "--config.file",
    "--web.listen-address",
    "--storage.tsdb.path",
];

fn monitor_launch(
    service: &ServiceRecipe,
    interval: std::time::Duration,
) -> Result<Launch, DriverError> {
    if let Some(command) = &service.command {
        let program = command.rsplit('/').next().unwrap_or(command);
        if program != "prometheus" {
            return Err(bad(
                format!("a session's Prometheus runs `prometheus`, not `{command}`"),
                "drop `command` (the driver runs prometheus, in the image if there is one)",
            ));
        }
    }
    if let Some(flag) = service.args.iter().map(|a| a.as_str()).find(|a| {
        OWN_FLAGS
            .iter()
            .any(|f| *a == *f || a.starts_with(&format!("{f}=")))
    }) {
        return Err(bad(
            format!(
                "a session's Prometheus is given its configuration, address and storage by the orchestrator; `{flag}` would replace them"
            ),
            "drop it from `args` (the port is the service's first port; the data goes to prometheus-data in the job's directory)",
        ));
    }
    if service.options.contains_key("config") || service.options.contains_key("scrape_interval") {
        return Err(bad(
            "a session's Prometheus writes its own configuration, at the interval `monitoring.scrape_interval` sets",
            "drop `options.config` and `options.scrape_interval` from the service; set `monitoring: {scrape_interval: 5s}` instead",
        ));
    }
    let mut o = options(&service.options)?;
    o.scrape_interval = format!("{}s", interval.as_secs().max(1));
    Ok(native(
        service,
        o,
        &format!(
            "${{ORCH_JOB_DIR}}/{}",
            orchestrator_core::monitoring::TARGETS_DIR
        ),
    ))
}

fn options(options: &BTreeMap<String, Value>) -> Result<Options, DriverError> {
    let scrape_interval = match options.get("scrape_interval") {
        None => "5s".to_owned(),
        Some(Value::String(s)) if is_interval(s) => s.clone(),
        Some(other) => {
            return Err(bad(
                format!("`scrape_interval` must be a duration such as 5s, not {other}"),
                "a whole number with ms, s, m or h: scrape_interval: 15s",
            ));
        }
    };
    let config = match options.get("config") {
        None => None,
        Some(Value::String(p)) if !p.trim().is_empty() => Some(p.clone()),
        Some(_) => {
            return Err(bad(
                "`config` must be the path of a Prometheus configuration file",
                "e.g. config: $HOME/prometheus.yml, or leave it out to have one written",
            ));
        }
    };
    let targets = match options.get("targets") {
        None => Vec::new(),
        Some(Value::Array(items)) => {
            let mut targets = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(t) if is_target(t) => targets.push(t.to_owned()),
                    _ => {
                        return Err(bad(
                            format!("`targets` holds {item}, which is not HOST:PORT"),
                            "each target is HOST:PORT, e.g. targets: [node1:9100, node2:9100]",
                        ));
                    }
                }
            }
            targets
        }
        Some(_) => {
            return Err(bad(
                "`targets` must be a list of HOST:PORT",
                "e.g. targets: [node1:9100, node2:9100]",
            ));
        }
    };
    if config.is_some() && (!targets.is_empty() || options.contains_key("scrape_interval")) {
        return Err(bad(
            "`config` is a whole configuration: `targets` and `scrape_interval` go into it, not beside it",
            "keep `config`, or drop it and keep `targets` and `scrape_interval`",
        ));
    }
    Ok(Options {
        scrape_interval,
        config,
        targets,
    })
}

impl ServiceDriver for PrometheusService {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn description(&self) -> &'static str {
        "Prometheus, natively on a generated configuration (static and file-discovered targets) or from its image; health GET /-/ready"
    }

    fn options_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "scrape_interval": {
                    "description": "how often every target is scraped (a generated configuration's global scrape_interval)",
                    "type": "string",
                    "default": "5s"
                },
                "targets": {
                    "description": "HOST:PORT endpoints to scrape besides Prometheus itself (job `targets`)",
                    "type": "array",
                    "items": {"type": "string"}
                },
                "config": {
                    "description": "a Prometheus configuration file of your own, instead of the generated one",
                    "type": "string",
                    "minLength": 1
                }
            }
        })
    }

    fn check_options(&self, raw: &Map<String, Value>) -> Result<(), DriverError> {
        let raw: BTreeMap<String, Value> =
            raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        options(&raw).map(drop)
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        if let Some(launch) = Launch::as_written(service) {
            return Ok(launch);
        }
        let o = options(&service.options)?;
        Ok(native(service, o, ""))
    }

    /// As a session's monitor: the generated configuration, at the session's interval,
    /// over the session's target files (and the recipe's static `targets`); in the
    /// recipe's image when it has one (its `sh` and `prometheus` run the same script).
    fn monitor_launch(
        &self,
        service: &ServiceRecipe,
        interval: std::time::Duration,
    ) -> Option<Result<Launch, DriverError>> {
        Some(monitor_launch(service, interval))
    }

    fn version_query(&self) -> Option<VersionQuery> {
        // `{"status": "success", "data": {"version": "2.42.0+ds", ...}}`.
        Some(VersionQuery {
            path: "/api/v1/status/buildinfo",
            pointer: "/data/version",
        })
    }

    fn review(&self, service: &ServiceRecipe) -> Vec<String> {
        if !service.options.is_empty()
            && (service.command.is_some() || service.container_image.is_some())
        {
            return vec![
                "the prometheus driver's `options` configure a natively run Prometheus (no `command`, no `container_image`); they are ignored here: give Prometheus its own `--config.file` in `args`"
                    .into(),
            ];
        }
        Vec::new()
    }

    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        let ready = ProbeKind::Http {
            path: READY.into(),
            host: None,
            expect: Vec::new(),
        };
        HealthProbe::own_check(service, ready, port(service), 120)
            .or_else(|| HealthProbe::for_service(service))
    }
}

inventory::submit! { ServiceDriverEntry(&PrometheusService) }

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::Registry;

    fn recipe(yaml: Value) -> ServiceRecipe {
        serde_json::from_value(yaml).unwrap()
    }

    fn error(opts: Value) -> String {
        PrometheusService
            .check_options(opts.as_object().unwrap())
            .unwrap_err()
            .message
    }

    #[test]
    fn options_are_checked_before_anything_reaches_a_shell_or_the_configuration() {
        assert!(
            PrometheusService
                .check_options(
                    serde_json::json!({"scrape_interval": "500ms", "targets": ["node1:9100", "[::1]:9100", "a_b.c-d:1"]})
                        .as_object()
                        .unwrap()
                )
                .is_ok()
        );
        assert!(error(serde_json::json!({"scrape_interval": "5"})).contains("duration"));
        assert!(error(serde_json::json!({"scrape_interval": "0s"})).contains("duration"));
        assert!(error(serde_json::json!({"targets": ["node1"]})).contains("not HOST:PORT"));
        assert!(
            error(serde_json::json!({"targets": ["n$(reboot):9100"]})).contains("not HOST:PORT")
        );
        assert!(error(serde_json::json!({"targets": ["\"x\":1"]})).contains("not HOST:PORT"));
        assert!(error(serde_json::json!({"targets": "node1:9100"})).contains("a list"));
        assert!(
            error(serde_json::json!({"config": "/x.yml", "targets": ["a:1"]}))
                .contains("whole configuration")
        );
    }

    #[test]
    fn natively_it_writes_its_configuration_and_serves_on_all_addresses() {
        let launch = PrometheusService
            .launch(&recipe(serde_json::json!({
                "name": "prom", "type": "prometheus", "ports": [9091],
                "options": {"targets": ["node1:9100", "node2:9100"], "scrape_interval": "2s"},
                "args": ["--storage.tsdb.retention.time=1d"]
            })))
            .unwrap();
        assert_eq!(launch.command, "sh");
        let args: Vec<&str> = launch.args.iter().map(Arg::text).collect();
        assert_eq!(args[0], "-c");
        assert!(args[1].contains("file_sd_configs"));
        assert_eq!(
            &args[2..],
            [
                "prometheus",
                "9091",
                "2s",
                "",
                "node1:9100 node2:9100",
                "",
                "--storage.tsdb.retention.time=1d"
            ]
        );
        // The original tool's form: `command: prometheus` with its own --config.file.
        let original = recipe(serde_json::json!({
            "name": "prometheus", "command": "prometheus", "args": ["--config.file=/etc/prometheus/prometheus.yml"],
            "ports": [9090]
        }));
        assert_eq!(
            Registry::service_driver_for(&original)
                .unwrap()
                .driver
                .name(),
            "prometheus"
        );
        let launch = PrometheusService.launch(&original).unwrap();
        assert_eq!(
            (launch.command.as_str(), launch.args.len()),
            ("prometheus", 1)
        );
        let probe = PrometheusService.health_probe(&original).unwrap();
        assert_eq!(
            probe.check,
            ProbeKind::Http {
                path: READY.into(),
                host: None,
                expect: Vec::new()
            }
        );
        assert_eq!(probe.port, Some(9090));
        let misplaced = recipe(serde_json::json!({
            "name": "p", "command": "prometheus", "options": {"scrape_interval": "1s"}
        }));
        assert!(PrometheusService.review(&misplaced)[0].contains("ignored here"));
    }
}
