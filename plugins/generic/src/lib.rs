//! The drivers that make sessions work for any service:
//!
//! - the `generic` service driver runs a recipe's `command` and `args` (natively or in
//!   its `container_image`) and probes it with the recipe's `health_check` (HTTP,
//!   Redis PING or TCP). It is the fallback for a `type` that has no driver of its
//!   own, so `type: redis` runs through it until a Redis driver is linked. `${NAME}`
//!   in its `args` is the job's environment variable.
//! - the `command` workload runs a client recipe's `command` and `args` against the
//!   target service, which the job finds in `TARGET_HOST` (also `TARGET_SERVICE_HOST`),
//!   `TARGET_PORT`, `TARGET_URL` and `TARGET_SERVICE_ID`. A client with a `command`
//!   and no `workload_type` uses it, and so does one with only a `script:` block (the
//!   original tool's), run as `python3 SCRIPT --endpoint=URL --PARAMETER=VALUE ...`.

use orchestrator_core::{
    Arg, DriverError, Launch, ServiceDriver, ServiceDriverEntry, Target, WorkloadDriver,
    WorkloadDriverEntry, recipe_args,
};
use orchestrator_recipes::{ClientRecipe, ServiceRecipe};

/// Any command or container with ports and an HTTP or TCP health check.
#[derive(Debug, Clone, Copy)]
pub struct GenericService;

impl ServiceDriver for GenericService {
    fn name(&self) -> &'static str {
        "generic"
    }

    fn description(&self) -> &'static str {
        "any command or container with ports; HTTP or TCP health check"
    }

    fn is_fallback(&self) -> bool {
        true
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        Launch::as_written(service).ok_or_else(|| {
            DriverError::new(
                "has neither a `command` nor a `container_image`",
                "set `command` (and `args`) to the program that serves, or a `container_image` to run",
            )
        })
    }
}

/// Runs the client recipe's own command against the target.
#[derive(Debug, Clone, Copy)]
pub struct CommandWorkload;

impl WorkloadDriver for CommandWorkload {
    fn name(&self) -> &'static str {
        "command"
    }

    fn description(&self) -> &'static str {
        "the client's own command, with the target in TARGET_HOST, TARGET_PORT and TARGET_URL"
    }

    fn is_fallback(&self) -> bool {
        true
    }

    fn launch(&self, client: &ClientRecipe, target: &Target) -> Result<Launch, DriverError> {
        let Some(command) = &client.command else {
            if let Some(script) = &client.script {
                return Ok(script_launch(client, script, target));
            }
            return Err(DriverError::new(
                "the `command` workload needs a `command`",
                "set `command` (and `args`) to the program that loads the target",
            ));
        };
        Ok(Launch {
            command: command.clone(),
            args: recipe_args(&client.args),
            ..Launch::default()
        })
    }
}

/// A client that has only a `script:` block, run as the original tool ran its benchmark
/// scripts: `python3 SCRIPT --endpoint=URL --PARAMETER=VALUE ...` (`_` in a name
/// written `-`), the endpoint in the scheme of the client's `health_check_endpoint`
/// (`redis://HOST:PORT` for the original's Redis clients), else `http://HOST:PORT`.
fn script_launch(
    client: &ClientRecipe,
    script: &orchestrator_recipes::ScriptSpec,
    target: &Target,
) -> Launch {
    let remote = orchestrator_core::script::remote_script(script);
    // `$HOME/...` is the node's home: expanded in the job.
    let remote = match remote.strip_prefix("$HOME/") {
        Some(rest) => Arg::Expanding(format!("${{HOME}}/{}", rest.replace("${", "$${"))),
        None => Arg::Literal(remote),
    };
    let scheme = client
        .target_service
        .as_ref()
        .and_then(|t| t.health_check_endpoint.as_deref())
        .and_then(|e| e.split_once("://"))
        .map_or("http", |(scheme, _)| scheme);
    let mut args = vec![
        remote,
        Arg::Literal(format!(
            "--endpoint={scheme}://{}:{}",
            target.host, target.port
        )),
    ];
    args.extend(client.parameters.iter().map(|(key, value)| {
        Arg::Literal(format!(
            "--{}={}",
            key.replace('_', "-"),
            orchestrator_core::script::flag_value(value)
        ))
    }));
    Launch {
        command: "python3".into(),
        args,
        ..Launch::default()
    }
}

inventory::submit! { ServiceDriverEntry(&GenericService) }
inventory::submit! { WorkloadDriverEntry(&CommandWorkload) }

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::Registry;

    #[test]
    fn unknown_service_types_fall_back_to_generic() {
        let driver = Registry::service_driver(Some("redis")).unwrap();
        assert_eq!(driver.name(), "generic");
        let driver = Registry::service_driver(None).unwrap();
        assert_eq!(driver.name(), "generic");
    }

    #[test]
    fn a_service_needs_a_command_or_an_image() {
        let recipe: ServiceRecipe =
            serde_json::from_value(serde_json::json!({"name": "x"})).unwrap();
        let error = GenericService.launch(&recipe).unwrap_err();
        assert!(
            error
                .message
                .contains("neither a `command` nor a `container_image`")
        );
    }

    #[test]
    fn clients_with_a_command_use_the_command_workload() {
        let client: ClientRecipe = serde_json::from_value(serde_json::json!({
            "name": "load", "command": "redis-benchmark", "args": ["-n", 10]
        }))
        .unwrap();
        let driver = Registry::workload_driver(&client, None).unwrap().driver;
        assert_eq!(driver.name(), "command");
        let target = Target {
            service_id: "svc-1".into(),
            service_name: "redis".into(),
            service_type: "generic".into(),
            host: "node1".into(),
            port: 6379,
            url: "http://node1:6379".into(),
        };
        let launch = driver.launch(&client, &target).unwrap();
        assert_eq!(launch.command, "redis-benchmark");
        assert_eq!(launch.args, ["-n", "10"]);
        assert_eq!(target.environment()["TARGET_URL"], "http://node1:6379");
    }

    #[test]
    fn a_named_workload_that_is_not_linked_is_refused_with_the_known_ones() {
        let client: ClientRecipe = serde_json::from_value(serde_json::json!({
            "name": "vec", "workload_type": "vector_search"
        }))
        .unwrap();
        let error = Registry::workload_driver(&client, None).err().unwrap();
        assert!(
            error.message.contains("no workload driver `vector_search`"),
            "{error}"
        );
        assert_eq!(
            error.hint.as_deref(),
            Some(
                "known workload types: command (or one of llm_inference, llm, inference, resolved by the target's type); or give the client a `command` to run"
            )
        );
    }
}
