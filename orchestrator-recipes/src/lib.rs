//! The vocabulary of the HPC Benchmarking Orchestrator: `config.yaml`, service,
//! client and complete recipes as typed values, their JSON Schemas, and diagnostics
//! that point at the line and column of every problem in a file.
//!
//! This crate knows nothing of SSH, SLURM, sessions or concrete drivers, and does no
//! I/O beyond reading the files it is asked to read. No async.
//!
//! ```
//! use orchestrator_recipes::{load_str, Document};
//!
//! let loaded = load_str("redis.yaml", "name: redis\ncommand: redis-server\nports: [6379]\n", None)
//!     .expect("a valid service");
//! let Document::Service(service) = loaded.value else { panic!("a service") };
//! assert_eq!(service.ports, vec![6379]);
//!
//! let broken = load_str("bad.yaml", "name: redis\nport: 6379\n", None).unwrap_err();
//! let problem = broken.problems().next().unwrap();
//! assert_eq!(problem.code.as_str(), "schema::unknown_key");
//! assert!(problem.help.as_deref().unwrap().contains("did you mean `ports`?"));
//! ```

pub mod catalog;
pub mod config;
pub mod config_file;
pub mod diagnostic;
pub mod forms;
pub mod load;
pub mod model;
mod pyyaml;
pub mod schema;
pub mod source;
pub mod values;
pub mod yaml;

pub use config::{Config, ContainersConfig, HpcConfig, redact_secrets};
pub use config_file::{ConfigError, LoadedConfig, load_config};
pub use diagnostic::{Code, FileDiagnostics, Problem, ProblemRecord};
pub use load::{
    Checked, Document, IssueAt, LoadError, Loaded, ParameterCheck, ParameterIssue, Severity,
    load_file, load_file_checked, load_source, load_str, read_source,
};
pub use model::Kind;
pub use model::{
    BenchmarkRecipe, ClientRecipe, EXPECT_METRIC_PATTERN, Expectation, HealthCheck, MonitorSpec,
    MonitoringKind, OnServiceFailure, OutputSpec, Resources, ScrapeTarget, ScriptSpec,
    ServiceMatrix, ServiceRecipe, SessionMonitoring, SlurmOptions, TargetService,
};
pub use values::{Duration, Gres, Memory, ScalarString, Tolerance, ValueError};
