//! The health gate: a service's job runs; its health check is asked until it passes
//! (then its version is recorded and its `setup_script` run) or its retries are spent.

use std::time::Duration;

use crate::backend::Tracked;
use crate::error::{CoreError, HealthCheckFailure};
use crate::lifecycle::ServiceState;
use crate::plan::ServicePlan;
use crate::session::SessionEvent;

use super::Runner;

/// The longest a service's `setup_script` may take.
const SETUP_LIMIT: Duration = Duration::from_secs(600);

impl Runner<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn health_gate(
        &self,
        session_id: &str,
        service: &ServicePlan,
        node: &str,
        tracked: &mut [Tracked],
        index: usize,
    ) -> Result<(), CoreError> {
        let id = &service.id;
        let port = service
            .probe
            .as_ref()
            .and_then(|p| p.port)
            .or_else(|| service.recipe.ports.first().copied());
        self.backend.state().set_service_state(
            id,
            ServiceState::Starting,
            Some(node),
            None,
            None,
        )?;
        let Some(probe) = &service.probe else {
            self.backend.state().set_service_state(
                id,
                ServiceState::Running,
                Some(node),
                None,
                Some("running (no health check)"),
            )?;
            self.progress.event(&SessionEvent::Healthy {
                name: service.recipe.name.clone(),
                host: node.to_owned(),
                port,
            });
            return Ok(());
        };
        let port = port.expect("planned: a probe has a port");
        let mut last = String::new();
        for attempt in 1..=probe.retries {
            let result = probe.probe(self.backend.shell().as_ref(), node, port).await;
            if result.healthy {
                self.backend.state().set_service_state(
                    id,
                    ServiceState::Running,
                    Some(node),
                    Some(port),
                    Some(&result.response),
                )?;
                self.backend.state().event(
                    Some(session_id),
                    Some(id),
                    "health.pass",
                    Some(&format!(
                        "{} after {attempt} attempt(s): {}",
                        probe.describe(node, port),
                        result.response
                    )),
                )?;
                self.record_version(
                    session_id,
                    service,
                    probe.host(node),
                    port,
                    result.version.clone(),
                )
                .await;
                if let Some(script) = &service.recipe.setup_script {
                    self.run_setup(session_id, service, &tracked[index], script)
                        .await?;
                }
                self.progress.event(&SessionEvent::Healthy {
                    name: service.recipe.name.clone(),
                    host: node.to_owned(),
                    port: Some(port),
                });
                return Ok(());
            }
            last = result.response;
            self.progress.event(&SessionEvent::HealthAttempt {
                name: service.recipe.name.clone(),
                attempt,
                retries: probe.retries,
                response: last.clone(),
            });
            if attempt == probe.retries {
                break;
            }
            tokio::select! {
                () = self.cancel.cancelled() => return Err(CoreError::Interrupted { session_id: session_id.to_owned() }),
                () = tokio::time::sleep(probe.interval) => {}
            }
            self.backend.refresh(tracked, self.progress).await?;
            if tracked[index].ended() {
                return Err(self.backend.startup_error(&tracked[index]).await);
            }
        }
        self.backend.state().set_service_state(
            id,
            ServiceState::Failed,
            Some(node),
            Some(port),
            Some(&last),
        )?;
        Err(CoreError::ServiceHealthCheck(Box::new(
            HealthCheckFailure {
                service: service.recipe.name.clone(),
                service_id: id.clone(),
                probe: probe.describe(node, port),
                attempts: probe.retries,
                last_response: last,
            },
        )))
    }

    /// Runs a healthy service's `setup_script`: the job waits for a `healthy` file in its
    /// directory, runs the script beside the service and writes its exit status to
    /// `setup.exit`, which this waits for (at most [`SETUP_LIMIT`]).
    async fn run_setup(
        &self,
        session_id: &str,
        service: &ServicePlan,
        job: &Tracked,
        script: &str,
    ) -> Result<(), CoreError> {
        use orchestrator_ssh::quote;
        let dir = job.job_dir();
        self.backend
            .shell()
            .write_file(&format!("{dir}/healthy"), b"healthy\n")
            .await?;
        self.backend.state().event(
            Some(session_id),
            Some(&service.id),
            "setup.start",
            Some(&format!("{} lines", script.lines().count())),
        )?;
        let exit = format!("{dir}/setup.exit");
        let started = tokio::time::Instant::now();
        let outcome = loop {
            let read = self
                .backend
                .shell()
                .exec(&format!("cat {} 2>/dev/null", quote(&exit)))
                .await?;
            if read.success() {
                break read.stdout_lossy().trim().to_owned();
            }
            if started.elapsed() > SETUP_LIMIT {
                break String::new();
            }
            tokio::select! {
                () = self.cancel.cancelled() => return Err(CoreError::Interrupted { session_id: session_id.to_owned() }),
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        };
        let output = self
            .backend
            .shell()
            .exec(&format!(
                "tail -c 2000 -- {} 2>&1",
                quote(&format!("{dir}/setup.log"))
            ))
            .await
            .map(|o| o.stdout_lossy().trim_end().to_owned())
            .unwrap_or_default();
        if outcome == "0" {
            self.backend.state().event(
                Some(session_id),
                Some(&service.id),
                "setup.done",
                Some(&output),
            )?;
            return Ok(());
        }
        let outcome = if outcome.is_empty() {
            format!("did not finish within {} s", SETUP_LIMIT.as_secs())
        } else {
            format!("exited with status {outcome}")
        };
        self.backend.state().event(
            Some(session_id),
            Some(&service.id),
            "setup.failed",
            Some(&outcome),
        )?;
        Err(CoreError::ServiceSetup(Box::new(crate::SetupFailure {
            service: service.recipe.name.clone(),
            service_id: service.id.clone(),
            outcome,
            output,
        })))
    }

    /// Records a healthy service's version (event `service.version`) for the report: the
    /// one its health check was `told` (a MySQL greeting's), else the answer to its
    /// driver's version query. Best effort: a service that does not answer has no
    /// version on record.
    async fn record_version(
        &self,
        session_id: &str,
        service: &ServicePlan,
        host: &str,
        port: u16,
        told: Option<String>,
    ) {
        let version = match (told, service.driver.version_query()) {
            (Some(version), _) => Some(version),
            (None, None) => None,
            (None, Some(query)) => {
                let answer = crate::health::http_get(
                    self.backend.shell().as_ref(),
                    host,
                    port,
                    query.path,
                    Duration::from_secs(5),
                )
                .await;
                match answer {
                    Ok((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.pointer(query.pointer)?.as_str().map(str::to_owned)),
                    _ => None,
                }
            }
        };
        if let Some(version) = version {
            let _ = self.backend.state().event(
                Some(session_id),
                Some(&service.id),
                "service.version",
                Some(&version),
            );
        }
    }
}
