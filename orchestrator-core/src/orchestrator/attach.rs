//! `attach`: continue a session whose orchestrator died (SIGKILL, a lost terminal), as
//! `run` would have: take it over, reconcile, drive on the jobs it left, submit what
//! was never submitted, fetch, stop the services and write the report.

use std::collections::BTreeMap;

use tokio_util::sync::CancellationToken;

use super::BenchmarkOrchestrator;
use crate::backend::{Tracked, last_job};
use crate::error::CoreError;
use crate::plan::Plan;
use crate::reconcile::reconcile_adopting;
use crate::session::{Progress, RunOptions, SessionOutcome};
use crate::state::Claim;

impl BenchmarkOrchestrator {
    /// Continues session `session_id` from where its orchestrator left it, in this
    /// process, to its end, exactly as [`drive_session`](Self::drive_session) would
    /// have. This process drives it from here on: a second `attach` while this one
    /// lives is refused.
    ///
    /// # Errors
    /// [`CoreError::NotFound`], [`CoreError::SessionHeld`] (a living process drives
    /// it), [`CoreError::SessionEnded`], or what `drive_session` returns.
    pub async fn attach_session(
        &self,
        session_id: &str,
        progress: &dyn Progress,
        cancel: &CancellationToken,
    ) -> Result<SessionOutcome, CoreError> {
        let pid = std::process::id();
        let start = orchestrator_slurm::process::start_time(pid);
        let claim = self.state().claim_session(
            session_id,
            pid,
            start.as_deref(),
            &orchestrator_slurm::process::alive,
        )?;
        match claim {
            None => {
                return Err(CoreError::NotFound {
                    what: "session",
                    id: session_id.to_owned(),
                });
            }
            Some(Claim::Held { pid }) => {
                return Err(CoreError::SessionHeld {
                    session_id: session_id.to_owned(),
                    pid,
                });
            }
            Some(Claim::Ended { state, error }) => {
                return Err(CoreError::SessionEnded {
                    session_id: session_id.to_owned(),
                    state,
                    why: error,
                });
            }
            Some(Claim::Claimed { .. }) => {}
        }
        reconcile_adopting(&self.backend, Some(session_id)).await?;
        let session = self.state().existing_session(session_id)?;
        let plan = self.recorded_plan(&session)?;
        let jobs = self.state().jobs(Some(session_id))?;
        let mut adopted = BTreeMap::new();
        let owners = plan
            .services
            .iter()
            .map(|s| (&s.id, &s.recipe.name))
            .chain(plan.clients.iter().map(|c| (&c.id, &c.recipe.name)));
        for (id, name) in owners {
            if let Some(t) = last_job(&jobs, id).and_then(|j| Tracked::adopt(j, name.clone())) {
                adopted.insert(id.clone(), t);
            }
        }
        let options = RunOptions {
            keep_services: session.keep_services,
            recipe_path: session.recipe_path.clone(),
        };
        self.drive_adopting(&plan, &options, progress, cancel, adopted)
            .await
    }

    /// The plan of a recorded session: its recipe as recorded, planned again, with the
    /// recorded ids.
    fn recorded_plan(&self, session: &crate::state::SessionRow) -> Result<Plan, CoreError> {
        let file = session.recipe_path.as_deref().unwrap_or("recipe");
        let mismatch = |what: String| CoreError::State {
            path: self.state().path().display().to_string(),
            message: format!("session {}: {what}", session.id),
        };
        let recipe: orchestrator_recipes::BenchmarkRecipe =
            serde_json::from_str(&session.recipe)
                .map_err(|e| mismatch(format!("its recorded recipe cannot be read: {e}")))?;
        let mut plan = crate::plan::plan_as(&recipe, file, session.id.clone())?;
        let recorded: Vec<(String, String)> = self
            .state()
            .services(Some(&session.id))?
            .into_iter()
            .map(|s| (s.name, s.id))
            .chain(
                self.state()
                    .clients(Some(&session.id))?
                    .into_iter()
                    .map(|c| (c.name, c.id)),
            )
            .collect();
        // Names are unique across a recipe's services and clients (planning checks).
        let id_of = |name: &str| {
            recorded
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, id)| id.clone())
                .ok_or_else(|| mismatch(format!("`{name}` was never recorded")))
        };
        for service in &mut plan.services {
            service.id = id_of(&service.recipe.name)?;
        }
        for client in &mut plan.clients {
            client.id = id_of(&client.recipe.name)?;
        }
        Ok(plan)
    }
}
