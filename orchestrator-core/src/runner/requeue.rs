//! Requeue: a job that ended because of the cluster (`NODE_FAIL`, `BOOT_FAIL`,
//! `PREEMPTED`) is submitted again, up to its recipe's `retries` (services 1, clients 0
//! by default). Every attempt keeps its own job row and directory (`NAME.2`, …), so the
//! history stays in the state store and the report.

use orchestrator_slurm::JobKind;

use crate::backend::Tracked;
use crate::driver::Target;
use crate::error::CoreError;
use crate::lifecycle::ServiceState;
use crate::plan::Plan;
use crate::session::SessionEvent;

use super::{Runner, submit_client, submit_service};

/// A service's `retries` when its recipe does not say.
const SERVICE_RETRIES: u32 = 1;
/// A client's `retries` when its recipe does not say.
const CLIENT_RETRIES: u32 = 0;

impl Runner<'_> {
    /// The job directory's name for the next job of `owner`: its recipe's `name` for
    /// the first, `name.N` for the Nth.
    pub(crate) fn attempt_dir(
        &self,
        session_id: &str,
        owner: &str,
        name: &str,
    ) -> Result<String, CoreError> {
        let jobs = self.backend.state().jobs(Some(session_id))?;
        let earlier = jobs.iter().filter(|j| j.owner_id == owner).count();
        Ok(if earlier == 0 {
            name.to_owned()
        } else {
            format!("{name}.{}", earlier + 1)
        })
    }

    /// Whether `job`, which ended, may be submitted again: its end was the cluster's
    /// and its owner has retries left. Returns the retry's number and how many there
    /// may be.
    pub(crate) fn retry_of(
        &self,
        plan: &Plan,
        job: &Tracked,
    ) -> Result<Option<(u32, u32)>, CoreError> {
        if !job.record_state().is_cluster_failure() {
            return Ok(None);
        }
        let allowed = match job.kind {
            JobKind::Service => plan
                .services
                .iter()
                .find(|s| s.id == job.owner_id)
                .and_then(|s| s.recipe.retries)
                .unwrap_or(SERVICE_RETRIES),
            JobKind::Client => plan
                .clients
                .iter()
                .find(|c| c.id == job.owner_id)
                .and_then(|c| c.recipe.retries)
                .unwrap_or(CLIENT_RETRIES),
        };
        let jobs = self.backend.state().jobs(Some(&plan.session_id))?;
        let failed = jobs
            .iter()
            .filter(|j| j.owner_id == job.owner_id && j.state.is_cluster_failure())
            .count();
        let retry = u32::try_from(failed).unwrap_or(u32::MAX);
        Ok((retry <= allowed).then_some((retry, allowed)))
    }

    /// Says that `job` ended as it did and is submitted again (retry `n` of `of`).
    fn announce_requeue(
        &self,
        plan: &Plan,
        job: &Tracked,
        n: u32,
        of: u32,
    ) -> Result<(), CoreError> {
        let detail = format!(
            "{} {}: job {} ended {}{}; submitting it again (retry {n} of {of})",
            job.kind_str(),
            job.name,
            job.job_id,
            job.record_state(),
            job.node().map(|n| format!(" on {n}")).unwrap_or_default(),
        );
        self.backend.state().event(
            Some(&plan.session_id),
            Some(&job.owner_id),
            "job.requeue",
            Some(&detail),
        )?;
        self.progress.event(&SessionEvent::Requeued {
            kind: job.kind_str().into(),
            name: job.name.clone(),
            job_id: job.job_id.to_string(),
            state: job.record_state(),
            retry: n,
            retries: of,
        });
        Ok(())
    }

    /// Submits service `index` again after its job `old` ended (retry `n` of `of`).
    pub(crate) async fn requeue_service(
        &self,
        plan: &Plan,
        index: usize,
        old: &Tracked,
        (n, of): (u32, u32),
    ) -> Result<Tracked, CoreError> {
        self.announce_requeue(plan, old, n, of)?;
        let service = &plan.services[index];
        self.backend.state().set_service_state(
            &service.id,
            ServiceState::Pending,
            None,
            None,
            None,
        )?;
        let dir = self.attempt_dir(&plan.session_id, &service.id, &service.recipe.name)?;
        let t = submit_service(self.backend, &plan.session_id, service, Some(&dir)).await?;
        Ok(self.submitted(t))
    }

    /// Submits client `index` (of the plan) against `target`, in a directory of its own
    /// when it ran before; `requeued` says the job it replaces and the retry.
    pub(crate) async fn submit_client_attempt(
        &self,
        plan: &Plan,
        index: usize,
        target: &Target,
        requeued: Option<(&Tracked, (u32, u32))>,
    ) -> Result<Tracked, CoreError> {
        if let Some((old, (n, of))) = requeued {
            self.announce_requeue(plan, old, n, of)?;
        }
        let client = &plan.clients[index];
        let dir = self.attempt_dir(&plan.session_id, &client.id, &client.recipe.name)?;
        let t = submit_client(self.backend, &plan.session_id, client, target, &dir).await?;
        Ok(self.submitted(t))
    }
}
