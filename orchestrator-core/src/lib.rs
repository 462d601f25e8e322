//! `orchestrator-core`: the session lifecycle of the HPC Benchmarking Orchestrator:
//! driver traits and their registry, planning, the state store, health gating,
//! status, stop, debug and clear-state, and session reports.
//!
//! [`BenchmarkOrchestrator`] is the original tool's class of that name; its
//! [`servers`](BenchmarkOrchestrator::servers) and
//! [`clients`](BenchmarkOrchestrator::clients) views are the original `ServersModule`
//! and `ClientsModule`. Core knows drivers only through the [`Registry`]: link a
//! plugin crate (`use orchestrator_plugin_generic as _;`) to have its drivers.
//!
//! ```no_run
//! # async fn demo() -> Result<(), orchestrator_core::CoreError> {
//! use orchestrator_core::{BenchmarkOrchestrator, RunOptions};
//! use tokio_util::sync::CancellationToken;
//!
//! let orch = BenchmarkOrchestrator::new(None)?; // ./config.yaml or the local default
//! let recipe = orch.load_recipe("recipes/complete/local-demo.yaml".as_ref())?;
//! let outcome = orch
//!     .run_session(&recipe, &RunOptions::default(), &(), &CancellationToken::new())
//!     .await?;
//! println!("{} ended {}; report: {:?}", outcome.session_id, outcome.state, outcome.report_path);
//! # Ok(()) }
//! ```

mod backend;
pub mod datasets;
mod driver;
mod error;
pub mod expect;
mod health;
pub mod lifecycle;
mod loading;
pub mod matrix;
pub mod monitor;
pub mod monitoring;
mod orchestrator;
mod plan;
mod reconcile;
mod replicas;
mod report;
mod runner;
pub mod script;
mod session;
pub mod state;
mod status;
mod transfer;
mod util;
mod views;
pub mod workload;

pub use backend::PollPolicy;
pub use driver::checks::{check_parameters, check_service_options, check_settings};
pub use driver::{
    Arg, DriverError, GENERIC_WORKLOAD_TYPES, HANDLED_ORIGINAL_PARAMETERS, Launch, Registry,
    Resolved, ServiceDriver, ServiceDriverEntry, Target, VersionQuery, WorkloadDriver,
    WorkloadDriverEntry, engine_launch, read_parameters, recipe_args,
};
pub use error::{CoreError, HealthCheckFailure, ServiceDeath, SetupFailure, StartupFailure};
pub use health::{HealthProbe, ProbeKind, ProbeResult, Secret};
pub use loading::{RecipeFile, load_client, load_recipe, load_recipe_file, load_service};
pub use orchestrator::BenchmarkOrchestrator;
pub use plan::Plan;
pub use report::{
    ClientRun, DeploymentChart, JobResources, JobSummary, REPORT_VERSION, ReportClient,
    ReportFormat, ReportResult, ReportService, ReportSession, ServiceMonitoring, SessionReport,
    TimelineEntry, deployments_html,
};
pub use session::{Progress, RunOptions, SessionEvent, SessionOutcome};
pub use status::{
    ClientStatus, ClientsStatus, DebugEntry, ServersStatus, ServiceStatus, SessionStatus,
    SlurmStatus, StopSummary, SystemStatus,
};
pub use transfer::TunnelInfo;
pub use util::{new_id, now_ms, redact_url, rfc3339};
pub use views::{ClientsModule, ServersModule};

// Re-exported so that embedding programs and plugins use the same versions.
pub use inventory;
pub use tokio_util::sync::CancellationToken;
