//! Reconcile: bring the recorded jobs, services, clients and sessions in line with
//! what the scheduler says now and with which orchestrator processes are alive.

use std::collections::BTreeMap;

use orchestrator_slurm::JobId;

use crate::backend::{Backend, job_update};
use crate::error::CoreError;
use crate::lifecycle::{ClientState, JobRecordState, SessionState};

/// Asks the scheduler about every job that has not ended, in one query, and records
/// what it says; then brings services, clients and sessions in line. Returns how
/// many jobs changed.
///
/// # Errors
/// The cluster or the store failing.
pub(crate) async fn reconcile(b: &Backend) -> Result<usize, CoreError> {
    let active = b.state.active_jobs()?;
    let ids: Vec<JobId> = active
        .iter()
        .filter_map(|j| j.job_id.clone().map(JobId))
        .collect();
    let answer = if ids.is_empty() {
        BTreeMap::new()
    } else {
        b.scheduler.query(&ids).await?
    };
    let mut changed = 0;
    for job in &active {
        let update = match &job.job_id {
            Some(id) => job_update(answer.get(&JobId(id.clone()))),
            None => {
                // Recorded but never confirmed: only the process that submits it
                // can finish the record. If that process is gone, so is the job.
                let owner_alive = b
                    .state
                    .session(&job.session_id)?
                    .and_then(|s| s.pid)
                    .is_some_and(process_alive);
                if owner_alive {
                    continue;
                }
                crate::state::JobUpdate {
                    state: JobRecordState::Lost,
                    node: None,
                    reason: Some(
                        "the orchestrator stopped before the scheduler confirmed the job".into(),
                    ),
                    exit_code: None,
                }
            }
        };
        if b.state.update_job(job.row, &update)? {
            changed += 1;
        }
        if update.state.is_final() {
            b.settle_owner(job, &update.state, update.exit_code)?;
        } else if update.state.is_running() && job.owner_kind == "client" {
            b.state
                .set_client_state(&job.owner_id, ClientState::Running, None)?;
        }
    }
    settle_sessions(b)?;
    Ok(changed)
}

/// A session whose process is gone and whose jobs have all ended is over.
pub(crate) fn settle_sessions(b: &Backend) -> Result<(), CoreError> {
    let active_sessions: Vec<String> = b
        .state
        .active_jobs()?
        .into_iter()
        .map(|j| j.session_id)
        .collect();
    for session in b.state.sessions()? {
        if session.state.is_final() {
            continue;
        }
        if session.pid.is_some_and(process_alive) || active_sessions.contains(&session.id) {
            continue;
        }
        // Kept services that ended, or a process that died: nothing runs any more.
        let error = if session.state == SessionState::Running && session.keep_services {
            None
        } else {
            Some("the orchestrator process ended before the session finished")
        };
        let state = if error.is_some() {
            SessionState::Failed
        } else {
            SessionState::Completed
        };
        b.state.set_session_state(&session.id, state, error)?;
    }
    Ok(())
}

/// Whether a local process is alive (the orchestrator that runs a session).
fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}
