//! Reconcile: bring the recorded jobs, services, clients and sessions in line with
//! what the scheduler says now and with which orchestrator processes are alive.
//!
//! The decisions are pure functions of (rows, the scheduler's answer, liveness):
//! [`job_changes`] and [`ended_sessions`]; [`reconcile`] gathers their inputs in one
//! scheduler query and applies what they decide.

use std::collections::BTreeMap;

use orchestrator_slurm::{JobId, JobInfo};

use crate::backend::{Backend, job_update};
use crate::error::CoreError;
use crate::lifecycle::{ClientState, JobRecordState, ORCHESTRATOR_ENDED, SessionState};
use crate::state::{JobRow, JobUpdate, SessionRow};

/// What reconcile learnt of one recorded job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JobChange {
    /// Its new state.
    pub update: JobUpdate,
    /// The scheduler's id, when it was never recorded and the job was found by its
    /// name.
    pub found: Option<JobId>,
}

/// The change each active job gets, by its index in `active`. A job with no
/// scheduler id was recorded and never confirmed: only the process that submits it
/// can finish the record, so it is left alone while that session's orchestrator
/// lives (`alive` says, by session id); once it does not, the job is what the
/// scheduler knows under its name (`by_name`: its submission went through), else
/// `LOST`.
pub(crate) fn job_changes(
    active: &[JobRow],
    answer: &BTreeMap<JobId, JobInfo>,
    by_name: &BTreeMap<String, JobInfo>,
    alive: impl Fn(&str) -> bool,
) -> Vec<(usize, JobChange)> {
    active
        .iter()
        .enumerate()
        .filter_map(|(i, job)| {
            let change = match &job.job_id {
                Some(id) => JobChange {
                    update: job_update(answer.get(&JobId(id.clone()))),
                    found: None,
                },
                None if alive(&job.session_id) => return None,
                None => match by_name.get(&job.job_name) {
                    Some(info) => JobChange {
                        update: job_update(Some(info)),
                        found: Some(info.id.clone()),
                    },
                    None => JobChange {
                        update: JobUpdate {
                            state: JobRecordState::Lost,
                            node: None,
                            reason: Some(
                                "the orchestrator stopped before the scheduler confirmed the job"
                                    .into(),
                            ),
                            exit_code: None,
                        },
                        found: None,
                    },
                },
            };
            Some((i, change))
        })
        .collect()
}

/// The names of the jobs [`job_changes`] would look up: recorded, never confirmed,
/// and their orchestrator gone.
pub(crate) fn unconfirmed_names(active: &[JobRow], alive: impl Fn(&str) -> bool) -> Vec<String> {
    active
        .iter()
        .filter(|j| j.job_id.is_none() && !alive(&j.session_id))
        .map(|j| j.job_name.clone())
        .collect()
}

/// The sessions that are over, with how they ended: those not final whose
/// orchestrator process is gone (`alive` says) and that have no active job left. A
/// session that kept its services completed when they ended; any other failed.
pub(crate) fn ended_sessions<'a>(
    sessions: &'a [SessionRow],
    active: &[JobRow],
    alive: impl Fn(&SessionRow) -> bool,
) -> Vec<(&'a str, SessionState, Option<&'static str>)> {
    sessions
        .iter()
        .filter(|s| !s.state.is_final() && !alive(s))
        .filter(|s| !active.iter().any(|j| j.session_id == s.id))
        .map(|s| {
            if s.state == SessionState::Running && s.keep_services {
                (s.id.as_str(), SessionState::Completed, None)
            } else {
                (
                    s.id.as_str(),
                    SessionState::Failed,
                    Some(ORCHESTRATOR_ENDED),
                )
            }
        })
        .collect()
}

/// Whether the orchestrator process recorded for a session still runs.
pub(crate) fn session_alive(session: &SessionRow) -> bool {
    session
        .pid
        .is_some_and(|pid| orchestrator_slurm::process::alive(pid, session.pid_start.as_deref()))
}

/// Asks the scheduler about every job that has not ended, in one query, and records
/// what it says; then brings services, clients and sessions in line. Returns how
/// many jobs changed.
///
/// # Errors
/// The cluster or the store failing.
pub(crate) async fn reconcile(b: &Backend) -> Result<usize, CoreError> {
    reconcile_adopting(b, None).await
}

/// [`reconcile`], for a process that has just taken over session `adopting` (see
/// `attach`): that session's jobs whose ids were never recorded are looked for by
/// name although its orchestrator (now this one) lives, and those found are
/// recorded and kept, not stopped.
///
/// # Errors
/// The cluster or the store failing.
pub(crate) async fn reconcile_adopting(
    b: &Backend,
    adopting: Option<&str>,
) -> Result<usize, CoreError> {
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
    let sessions = b.state.sessions()?;
    let alive =
        |id: &str| Some(id) != adopting && sessions.iter().any(|s| s.id == id && session_alive(s));
    // One query by name for every job whose id was never recorded.
    let names = unconfirmed_names(&active, alive);
    let by_name = if names.is_empty() {
        BTreeMap::new()
    } else {
        b.scheduler.find_by_names(&names).await?
    };
    let mut changed = 0;
    let mut orphans = Vec::new();
    for (i, JobChange { update, found }) in job_changes(&active, &answer, &by_name, alive) {
        let job = &active[i];
        if let Some(id) = &found {
            // Its submission went through: record it, and stop it, since the
            // orchestrator that was to drive it is gone (unless this process has just
            // taken its session over, and drives it on).
            b.state.job_submitted(job.row, id.as_str())?;
            b.state.event(
                Some(&job.session_id),
                Some(&job.owner_id),
                "job.found",
                Some(&format!(
                    "job {id} found by its name {} after its orchestrator died",
                    job.job_name
                )),
            )?;
            if !update.state.is_final() && Some(job.session_id.as_str()) != adopting {
                orphans.push(id.clone());
            }
        }
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
    if !orphans.is_empty() {
        b.scheduler.cancel(&orphans).await?;
    }
    settle_sessions(b)?;
    Ok(changed)
}

/// Ends the sessions [`ended_sessions`] says are over.
pub(crate) fn settle_sessions(b: &Backend) -> Result<(), CoreError> {
    let sessions = b.state.sessions()?;
    let active = b.state.active_jobs()?;
    for (id, state, error) in ended_sessions(&sessions, &active, session_alive) {
        b.state.set_session_state(id, state, error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use orchestrator_slurm::JobState;

    use super::*;

    fn job(row: i64, session: &str, job_id: Option<&str>) -> JobRow {
        JobRow {
            row,
            session_id: session.into(),
            owner_kind: "client".into(),
            owner_id: format!("cli-{row}"),
            scheduler: "slurm".into(),
            job_name: format!("orch-{session}-{row}"),
            job_id: job_id.map(str::to_owned),
            state: JobRecordState::Submitting,
            node: None,
            reason: None,
            exit_code: None,
            job_dir: String::new(),
            script_path: String::new(),
            stdout_path: String::new(),
            stderr_path: String::new(),
            script: String::new(),
            created_at: 0,
            submitted_at: None,
            updated_at: 0,
            ended_at: None,
        }
    }

    fn session(id: &str, state: SessionState, keep: bool) -> SessionRow {
        SessionRow {
            id: id.into(),
            name: None,
            recipe_path: None,
            recipe: "{}".into(),
            scheduler: "slurm".into(),
            target: "local".into(),
            state,
            error: None,
            keep_services: keep,
            pid: Some(1),
            pid_start: None,
            max_error_rate: None,
            report_path: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
        }
    }

    #[test]
    fn each_job_follows_the_scheduler_and_a_forgotten_one_is_gone() {
        let active = [job(1, "s", Some("10")), job(2, "s", Some("11"))];
        let mut answer = BTreeMap::new();
        let mut running = JobInfo::new(JobId("10".into()), JobState::Running);
        running.node = Some("node1".into());
        answer.insert(JobId("10".into()), running);
        let changes = job_changes(&active, &answer, &BTreeMap::new(), |_| true);
        assert_eq!(changes.len(), 2);
        let update = &changes[0].1.update;
        assert_eq!(update.state, JobRecordState::Scheduler(JobState::Running));
        assert_eq!(update.node.as_deref(), Some("node1"));
        assert_eq!(changes[1].1.update.state, JobRecordState::Gone);
        assert!(changes[1].1.update.state.is_final());
    }

    #[test]
    fn an_unconfirmed_job_is_left_to_its_living_orchestrator_and_lost_with_a_dead_one() {
        let active = [job(1, "alive", None), job(2, "dead", None)];
        let alive = |s: &str| s == "alive";
        assert_eq!(unconfirmed_names(&active, alive), ["orch-dead-2"]);
        let changes = job_changes(&active, &BTreeMap::new(), &BTreeMap::new(), alive);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].0, 1);
        assert_eq!(changes[0].1.update.state, JobRecordState::Lost);
        assert_eq!(changes[0].1.found, None);
        // Its submission went through: the scheduler knows it by its name.
        let mut by_name = BTreeMap::new();
        by_name.insert(
            "orch-dead-2".to_owned(),
            JobInfo::new(JobId("77".into()), JobState::Running),
        );
        let changes = job_changes(&active, &BTreeMap::new(), &by_name, alive);
        assert_eq!(changes[0].1.found, Some(JobId("77".into())));
        assert_eq!(
            changes[0].1.update.state,
            JobRecordState::Scheduler(JobState::Running)
        );
    }

    #[test]
    fn a_session_ends_only_when_its_process_is_gone_and_no_job_is_active() {
        let sessions = [
            session("running-alive", SessionState::Running, false),
            session("starting-dead", SessionState::Starting, false),
            session("kept-dead", SessionState::Running, true),
            session("dead-with-a-job", SessionState::Running, false),
            session("done", SessionState::Completed, false),
        ];
        let active = [job(1, "dead-with-a-job", Some("10"))];
        let ended = ended_sessions(&sessions, &active, |s| s.id == "running-alive");
        assert_eq!(
            ended,
            [
                (
                    "starting-dead",
                    SessionState::Failed,
                    Some("the orchestrator process ended before the session finished")
                ),
                ("kept-dead", SessionState::Completed, None),
            ]
        );
    }
}
