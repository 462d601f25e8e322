//! `orchestrator-slurm`: job scripts rendered from handlebars templates
//! ([`ScriptRenderer`]) and the [`Scheduler`]s that run them: [`Slurm`] (`sbatch`,
//! `squeue`, `scancel`, `scontrol` over any [`Shell`](orchestrator_ssh::Shell)) and
//! [`LocalScheduler`] (the same script as a detached local process group).
//!
//! It knows nothing of drivers or sessions. One query returns the state of many jobs:
//! never one scheduler call per job.

mod error;
mod job;
mod local;
pub mod process;
mod script;
mod slurm;

use std::collections::BTreeMap;

use async_trait::async_trait;

pub use error::SlurmError;
pub use job::{JobId, JobInfo, JobState};
pub use local::LocalScheduler;
pub use script::{
    Arg, ContainerSpec, ImageBuild, JobKind, JobSpec, Registration, RenderedJob, SbatchOptions,
    ScriptRenderer, TargetFile, job_name, slurm_time,
};
pub use slurm::Slurm;

/// Runs rendered jobs and reports on them.
#[async_trait]
pub trait Scheduler: Send + Sync + std::fmt::Debug {
    /// `slurm` or `local`.
    fn name(&self) -> &'static str;

    /// Writes the script into its job directory and submits it.
    ///
    /// # Errors
    /// [`SlurmError::JobSubmission`] with the scheduler's own message,
    /// [`SlurmError::InsufficientResources`] when no node can ever run it, or the
    /// failure to reach the cluster.
    async fn submit(&self, job: &RenderedJob) -> Result<JobId, SlurmError>;

    /// Cancels all of `ids` at once. Jobs that already ended are left as they are.
    ///
    /// # Errors
    /// Reaching the cluster, or the cancel command failing.
    async fn cancel(&self, ids: &[JobId]) -> Result<(), SlurmError>;

    /// The state of each of `ids` the scheduler still knows, in one call (a second,
    /// also batched, only to learn the exit codes of jobs that ended). Ids it does not
    /// know are absent from the map.
    ///
    /// # Errors
    /// Reaching the cluster, or an answer that cannot be read.
    async fn query(&self, ids: &[JobId]) -> Result<BTreeMap<JobId, JobInfo>, SlurmError>;

    /// The state of one job.
    ///
    /// # Errors
    /// [`SlurmError::JobNotFound`] when the scheduler does not know it.
    async fn query_one(&self, id: &JobId) -> Result<JobInfo, SlurmError> {
        self.query(std::slice::from_ref(id))
            .await?
            .remove(id)
            .ok_or_else(|| SlurmError::JobNotFound {
                ids: vec![id.to_string()],
            })
    }

    /// The jobs the scheduler knows under these job names (`orch-<session>-<name>`,
    /// unique), in one call for all, by name: how a job whose submission succeeded but
    /// whose id was never recorded is found again. A scheduler that cannot search by
    /// name finds none.
    ///
    /// # Errors
    /// Reaching the cluster, or an answer that cannot be read.
    async fn find_by_names(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, JobInfo>, SlurmError> {
        let _ = names;
        Ok(BTreeMap::new())
    }

    /// The scheduler's own view of all of the user's jobs, as text for people.
    ///
    /// # Errors
    /// Reaching the cluster.
    async fn raw_status(&self) -> Result<String, SlurmError>;
}
