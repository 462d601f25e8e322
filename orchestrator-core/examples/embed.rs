//! Embedding the orchestrator in another Rust program: run a session from a recipe
//! built in code, watch its progress, then look at the state it left.
//!
//! ```sh
//! cargo run -p orchestrator-core --example embed            # local scheduler
//! cargo run -p orchestrator-core --example embed -- CONFIG   # the cluster of CONFIG
//! ```
//!
//! The drivers come from plugin crates: this example links the bundled `generic`
//! plugin, as a program of yours would (`use orchestrator_plugin_generic as _;`).

#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use orchestrator_core::{
    BenchmarkOrchestrator, CancellationToken, Progress, RunOptions, SessionEvent,
};
use orchestrator_plugin_generic as _;
use orchestrator_recipes::{BenchmarkRecipe, ClientRecipe, ServiceRecipe};

/// Prints every event as one JSON line.
struct Log;

impl Progress for Log {
    fn event(&self, event: &SessionEvent) {
        println!(
            "event: {}",
            serde_json::to_string(event).expect("events serialise")
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = std::env::args().nth(1).map(PathBuf::from);
    let state = tempfile::tempdir()?;
    let mut loaded =
        orchestrator_recipes::load_config(config.as_deref(), &|k| std::env::var(k).ok())?;
    if config.is_none() {
        // Keep this example's state and outputs out of the user's own.
        loaded.config.state_dir = Some(state.path().join("state").display().to_string());
        loaded.config.results_dir = state.path().join("results").display().to_string();
        loaded.config.work_dir = state.path().join("work").display().to_string();
    }
    let orch = BenchmarkOrchestrator::from_config(&loaded)?;

    // A service and a client written in code rather than YAML.
    let service: ServiceRecipe = serde_json::from_value(serde_json::json!({
        "name": "echo",
        "command": "python3",
        "args": ["-m", "http.server", "18999", "--bind", "127.0.0.1"],
        "ports": [18999],
        "health_check": {"endpoint": "/", "interval": "1s", "retries": 20}
    }))?;
    let client: ClientRecipe = serde_json::from_value(serde_json::json!({
        "name": "probe",
        "command": "sh",
        "args": ["-c", "for i in 1 2 3; do curl -s -o /dev/null -w '%{http_code} %{time_total}s\\n' \"$TARGET_URL/\"; done"]
    }))?;
    let recipe = BenchmarkRecipe {
        name: Some("embedded".into()),
        description: None,
        services: vec![service],
        clients: vec![client],
        monitoring: None,
    };

    let outcome = orch
        .run_session(
            &recipe,
            &RunOptions::default(),
            &Log,
            &CancellationToken::new(),
        )
        .await?;
    println!("session {} ended {}", outcome.session_id, outcome.state);
    println!("report: {}", outcome.report_path.unwrap_or_default());

    let status = orch.get_system_status(None).await?;
    println!(
        "tracked: {} service(s), {} client(s); scheduler {}",
        status.services.total_services, status.clients.total_clients, status.scheduler
    );
    Ok(())
}
