//! While the clients run: a service whose job ends, or (with `health_check.during_run`)
//! that stops answering its health check, has died. The clients that load it are
//! cancelled or let finish (`on_service_failure`), the death is recorded, and the
//! session fails with `service::died` once every client ended.

use std::time::Duration;

use orchestrator_recipes::OnServiceFailure;
use orchestrator_slurm::JobId;

use crate::backend::{Tracked, WaitError};
use crate::error::{CoreError, ServiceDeath};
use crate::health::HealthProbe;
use crate::lifecycle::{JobRecordState, ServiceState};
use crate::plan::Plan;
use crate::session::SessionEvent;

use super::Runner;

/// How waiting for the clients ended.
pub(crate) enum Loaded {
    /// Every client ended; the service that died meanwhile, if one did.
    Ended(Option<ServiceDeath>),
    /// Service `.0`'s job ended because of the cluster and may be submitted again
    /// (retry `.1`); every client was cancelled and has ended.
    Requeue(usize, (u32, u32)),
}

/// A service probed during the run.
struct Watched {
    index: usize,
    probe: HealthProbe,
    node: String,
    port: u16,
}

impl Runner<'_> {
    /// Waits until every client has ended. The first service that dies meanwhile is
    /// returned, after its clients were dealt with as they asked; or, when its job
    /// ended because of the cluster and its `retries` allow, every client is cancelled
    /// for the service to be submitted again.
    pub(crate) async fn wait_for_clients(
        &self,
        plan: &Plan,
        tracked: &mut [Tracked],
        started: tokio::time::Instant,
    ) -> Result<Loaded, CoreError> {
        let sid = &plan.session_id;
        let services = plan.services.len();
        let watched: Vec<Watched> = plan
            .services
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                let probe = s.probe.clone()?;
                if !s.recipe.health_check.as_ref().is_some_and(|h| h.during_run) {
                    return None;
                }
                let port = probe.port.or_else(|| s.recipe.ports.first().copied())?;
                let node = tracked[index].node().unwrap_or("localhost").to_owned();
                Some(Watched {
                    index,
                    probe,
                    node,
                    port,
                })
            })
            .collect();
        let mut death: Option<ServiceDeath> = None;
        loop {
            let known = death.is_some();
            let unhealthy = async {
                if known || watched.is_empty() {
                    std::future::pending::<()>().await;
                }
                self.until_unhealthy(&watched).await
            };
            let waited = tokio::select! {
                waited = self.backend.wait_until(sid, tracked, self.progress, self.cancel, |jobs| {
                    if !known {
                        if let Some(ended) = jobs[..services].iter().position(Tracked::ended) {
                            return Err(ended);
                        }
                    }
                    Ok(jobs[services..].iter().all(Tracked::ended))
                }) => waited,
                (index, how) = unhealthy => {
                    death = Some(self.died(plan, tracked, index, how, started).await?);
                    continue;
                }
            };
            match waited {
                Ok(()) => return Ok(Loaded::Ended(death)),
                Err(WaitError::Core(e)) => return Err(e),
                Err(WaitError::Ended(index)) => {
                    let job = tracked[index].clone();
                    if let Some(retry) = self.retry_of(plan, &job)? {
                        self.stop_clients(plan, tracked, &job).await?;
                        return Ok(Loaded::Requeue(index, retry));
                    }
                    let how = format!(
                        "ended {}{}",
                        job.record_state(),
                        job.exit_code()
                            .map(|c| format!(" with exit code {c}"))
                            .unwrap_or_default()
                    );
                    death = Some(self.died(plan, tracked, index, how, started).await?);
                }
            }
        }
    }

    /// Cancels every client that has not ended, because service job `lost` ended and is
    /// to be submitted again, and waits until they have ended.
    async fn stop_clients(
        &self,
        plan: &Plan,
        tracked: &mut [Tracked],
        lost: &Tracked,
    ) -> Result<(), CoreError> {
        let services = plan.services.len();
        let ids: Vec<JobId> = tracked[services..]
            .iter()
            .filter(|t| !t.ended())
            .map(|t| t.job_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.backend.scheduler().cancel(&ids).await?;
        let list: Vec<&str> = ids.iter().map(JobId::as_str).collect();
        self.backend.state().event(
            Some(&plan.session_id),
            None,
            "job.cancel",
            Some(&format!(
                "jobs {} (their service's job {} ended {}: they start over once it runs again)",
                list.join(", "),
                lost.job_id,
                lost.record_state()
            )),
        )?;
        self.backend
            .wait_ended(&mut tracked[services..], Duration::from_secs(60))
            .await
    }

    /// Probes the watched services at their interval until one fails its `retries`
    /// attempts in a row: its index and what it answered.
    async fn until_unhealthy(&self, watched: &[Watched]) -> (usize, String) {
        let mut failures = vec![0u32; watched.len()];
        let interval = watched
            .iter()
            .map(|w| w.probe.interval)
            .min()
            .unwrap_or(Duration::from_secs(10));
        loop {
            tokio::time::sleep(interval).await;
            for (i, w) in watched.iter().enumerate() {
                let result = w
                    .probe
                    .probe(self.backend.shell().as_ref(), &w.node, w.port)
                    .await;
                if result.healthy {
                    failures[i] = 0;
                    continue;
                }
                failures[i] += 1;
                if failures[i] >= w.probe.retries {
                    return (
                        w.index,
                        format!(
                            "stopped answering its health check ({}: {} times in a row, the last: {})",
                            w.probe.describe(&w.node, w.port),
                            failures[i],
                            result.response
                        ),
                    );
                }
            }
        }
    }

    /// Records that service `index` died (`how`), and cancels the clients loading it
    /// that asked to be.
    async fn died(
        &self,
        plan: &Plan,
        tracked: &[Tracked],
        index: usize,
        how: String,
        started: tokio::time::Instant,
    ) -> Result<ServiceDeath, CoreError> {
        let sid = &plan.session_id;
        let service = &tracked[index];
        let state = self.backend.state();
        let (mut cancelled, mut finishing) = (Vec::new(), Vec::new());
        let mut ids = Vec::new();
        for (i, client) in plan.clients.iter().enumerate() {
            if client.target != index {
                continue;
            }
            let job = &tracked[plan.services.len() + i];
            match client.recipe.on_service_failure {
                OnServiceFailure::Cancel => {
                    cancelled.push(client.recipe.name.clone());
                    if !job.ended() {
                        ids.push(job.job_id.clone());
                    }
                }
                OnServiceFailure::Finish => finishing.push(client.recipe.name.clone()),
            }
        }
        let mut clients = Vec::new();
        if !cancelled.is_empty() {
            clients.push(format!("clients cancelled: {}", cancelled.join(", ")));
        }
        if !finishing.is_empty() {
            clients.push(format!("clients let finish: {}", finishing.join(", ")));
        }
        let clients = if clients.is_empty() {
            "no client loaded it".to_owned()
        } else {
            clients.join("; ")
        };
        let after_s = started.elapsed().as_secs_f64();
        state.event(
            Some(sid),
            Some(&service.owner_id),
            "service.died",
            Some(&format!("{how} {after_s:.1} s after its clients started")),
        )?;
        state.set_service_state(&service.owner_id, ServiceState::Failed, None, None, None)?;
        self.progress.event(&SessionEvent::ServiceDied {
            name: service.name.clone(),
            detail: format!("{how}; {clients}"),
        });
        if !ids.is_empty() {
            self.backend.scheduler().cancel(&ids).await?;
            let list: Vec<&str> = ids.iter().map(JobId::as_str).collect();
            state.event(
                Some(sid),
                None,
                "job.cancel",
                Some(&format!("jobs {} (their service died)", list.join(", "))),
            )?;
        }
        let ended = service.ended();
        Ok(ServiceDeath {
            service: service.name.clone(),
            service_id: service.owner_id.clone(),
            job_id: service.job_id.to_string(),
            how,
            state: if ended {
                service.record_state()
            } else {
                JobRecordState::Scheduler(orchestrator_slurm::JobState::Running)
            },
            exit_code: service.exit_code(),
            after_s,
            clients,
            log_tail: self
                .backend
                .log_tail(&service.stdout_path, &service.stderr_path, 1500)
                .await,
        })
    }
}
