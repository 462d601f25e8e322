//! Moving bytes between this machine and the cluster: job directories fetched as tar
//! streams, and a local port forwarded to a service through the shell (an SSH
//! `direct-tcpip` channel from the login node, so compute nodes need not be reachable
//! from here).

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::lifecycle::ServiceState;
use crate::orchestrator::BenchmarkOrchestrator;

/// An open tunnel, as `tunnel` announces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// The local address that forwards.
    pub local: std::net::SocketAddr,
    /// The service's name.
    pub service: String,
    /// `node:port` it forwards to.
    pub remote: String,
}

impl BenchmarkOrchestrator {
    /// Downloads every job directory of a session (its script, logs and, for engine
    /// clients, `results/`) into `to/<service or client name>/`, as they are on the
    /// cluster now. Returns each name and where it went.
    ///
    /// # Errors
    /// An unknown session, the cluster, or the local files.
    pub async fn fetch_session_outputs(
        &self,
        session_id: &str,
        to: &Path,
    ) -> Result<Vec<(String, PathBuf)>, CoreError> {
        let state = self.backend.state();
        if state.session(session_id)?.is_none() {
            return Err(CoreError::NotFound {
                what: "session",
                id: session_id.to_owned(),
            });
        }
        let mut names: Vec<(String, String)> = state
            .services(Some(session_id))?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        names.extend(
            state
                .clients(Some(session_id))?
                .into_iter()
                .map(|c| (c.id, c.name)),
        );
        let mut fetched = Vec::new();
        for job in state.jobs(Some(session_id))? {
            let name = names
                .iter()
                .find(|(id, _)| *id == job.owner_id)
                .map_or_else(|| job.owner_id.clone(), |(_, n)| n.clone());
            let dest = to.join(&name);
            if self.backend.untar_from(&job.job_dir, ".", &dest).await? {
                fetched.push((name, dest));
            }
        }
        Ok(fetched)
    }

    /// Forwards `127.0.0.1:local_port` (0: any free port) to a running service's node
    /// and port until `cancel`: each connection accepted here opens its own stream
    /// there. `ready` hears where it listens once it does. Returns the number of
    /// connections carried.
    ///
    /// # Errors
    /// An unknown service, one that is not running (no node or port yet), or the local
    /// port cannot be bound.
    pub async fn tunnel(
        &self,
        service_id: &str,
        local_port: u16,
        ready: impl FnOnce(&TunnelInfo),
        cancel: &CancellationToken,
    ) -> Result<u64, CoreError> {
        let service = self
            .state()
            .service(service_id)?
            .ok_or_else(|| CoreError::NotFound {
                what: "service",
                id: service_id.to_owned(),
            })?;
        let (Some(host), Some(port), ServiceState::Running) =
            (service.host.clone(), service.port, service.state)
        else {
            return Err(CoreError::plan(
                service_id,
                format!(
                    "service `{}` is {}, not running: there is nothing to forward to",
                    service.name, service.state
                ),
                Some(
                    "a tunnel needs a running, healthy service: `orchestrator status`, or \
                     `orchestrator service start RECIPE --wait`"
                        .into(),
                ),
            ));
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", local_port))
            .await
            .map_err(CoreError::io(format!(
                "cannot listen on 127.0.0.1:{local_port}"
            )))?;
        let local = listener
            .local_addr()
            .map_err(CoreError::io("cannot read the local address"))?;
        ready(&TunnelInfo {
            local,
            service: service.name.clone(),
            remote: format!("{host}:{port}"),
        });
        let mut carried = 0;
        loop {
            let (mut inbound, _) = tokio::select! {
                () = cancel.cancelled() => return Ok(carried),
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
            };
            carried += 1;
            let shell = self.backend.shell().clone();
            let (host, cancel) = (host.clone(), cancel.clone());
            tokio::spawn(async move {
                match shell.connect_tcp(&host, port).await {
                    Ok(mut outbound) => {
                        tokio::select! {
                            () = cancel.cancelled() => {}
                            result = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {
                                if let Err(e) = result {
                                    tracing::debug!(error = %e, "tunnel connection ended");
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot reach {host}:{port}"),
                }
            });
        }
    }
}
