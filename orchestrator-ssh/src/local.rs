//! Commands on this machine, as tokio processes.

use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{BoxedStream, Output, Shell, ShellError};

/// Runs commands on this machine with `bash -c`.
#[derive(Debug, Clone)]
pub struct LocalShell {
    command_timeout: Duration,
}

impl Default for LocalShell {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(300),
        }
    }
}

impl LocalShell {
    /// A local shell with the default limit of 300 s a command.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the default time limit of a command.
    #[must_use]
    pub fn command_timeout(mut self, limit: Duration) -> Self {
        self.command_timeout = limit;
        self
    }
}

#[async_trait]
impl Shell for LocalShell {
    fn target(&self) -> &str {
        "local"
    }

    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, ShellError> {
        let limit = timeout.unwrap_or(self.command_timeout);
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(command)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout stops everything it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ShellError::Io {
                what: "cannot start bash".into(),
                source,
            })?;
        let pid = child.id();
        let input = stdin.map(<[u8]>::to_vec);
        let mut pipe = child.stdin.take();
        let feed = async move {
            if let (Some(pipe), Some(input)) = (pipe.as_mut(), input) {
                // A command that does not read its input closes the pipe: not an error.
                let _ = pipe.write_all(&input).await;
                let _ = pipe.shutdown().await;
            }
            drop(pipe);
        };
        let wait = async {
            let ((), out) = tokio::join!(feed, child.wait_with_output());
            out
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(Ok(out)) => Ok(Output {
                exit_code: exit_code(&out.status),
                stdout: out.stdout,
                stderr: out.stderr,
            }),
            Ok(Err(source)) => Err(ShellError::Io {
                what: "cannot wait for bash".into(),
                source,
            }),
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid).await;
                }
                Err(ShellError::Timeout {
                    target: "local".into(),
                    what: format!("`{command}`"),
                    after: limit,
                })
            }
        }
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<BoxedStream, ShellError> {
        let stream = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::TcpStream::connect((host, port)),
        )
        .await
        .map_err(|_| ShellError::TcpConnect {
            target: "local".into(),
            host: host.into(),
            port,
            reason: "timed out after 10 s".into(),
        })?
        .map_err(|e| ShellError::TcpConnect {
            target: "local".into(),
            host: host.into(),
            port,
            reason: e.to_string(),
        })?;
        let _ = stream.set_nodelay(true);
        Ok(Box::new(stream))
    }
}

/// The exit code, with `128 + N` for death by signal N, as shells report it.
pub(crate) fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

/// Kills the process group `pgid` (best effort).
async fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--"])
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}
