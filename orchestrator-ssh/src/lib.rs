//! `orchestrator-ssh`: one [`Shell`] abstraction to run commands (with stdin), move
//! files and open TCP streams, either on this machine ([`LocalShell`], tokio
//! processes) or on a cluster's login node over one reused SSH connection
//! ([`SshShell`], async-ssh2-tokio).
//!
//! It knows nothing of SLURM. Every value that reaches a shell goes through [`quote`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), orchestrator_ssh::ShellError> {
//! use orchestrator_ssh::{quote, Shell, SshOptions, SshShell};
//!
//! let shell = SshShell::new(SshOptions::new("login.example.org", "alice", "~/.ssh/id_ed25519").port(8822));
//! let out = shell.exec(&format!("ls -l {}", quote("/scratch/my results"))).await?;
//! println!("{}", out.stdout_lossy());
//! # Ok(()) }
//! ```

mod error;
mod local;
mod quote;
mod ssh;

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

pub use error::{ShellError, tail};
pub use local::LocalShell;
pub use quote::{quote, quote_expanding, quote_words};
pub use ssh::{HostKeyPolicy, SshOptions, SshShell, expand_tilde};

/// A byte stream to a TCP port, as returned by [`Shell::connect_tcp`].
pub trait TcpStreamLike: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> TcpStreamLike for T {}

/// A TCP stream opened through a [`Shell`].
pub type BoxedStream = Box<dyn TcpStreamLike>;

/// What a command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `128 + N` when the command was killed by signal N.
    pub exit_code: i32,
    /// Everything it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to standard error.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether the command exited with 0.
    #[must_use]
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// Standard output as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn stdout_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// Standard error as text (invalid UTF-8 replaced).
    #[must_use]
    pub fn stderr_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// Somewhere to run commands: this machine or a login node.
///
/// Implementations provide [`run`](Shell::run) and [`connect_tcp`](Shell::connect_tcp);
/// everything else is built on them, so both behave the same way.
#[async_trait]
pub trait Shell: Send + Sync + std::fmt::Debug {
    /// Where commands run, for messages: `local` or `user@host:port`.
    fn target(&self) -> &str;

    /// Runs `command` with `bash`/the login shell, feeding it `stdin` (then end of file)
    /// when given, and waits for it, up to `timeout` or the shell's default limit.
    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, ShellError>;

    /// Opens a TCP stream to `host:port` as seen from where commands run (for SSH: a
    /// `direct-tcpip` channel from the login node, so compute nodes need not be
    /// reachable from here).
    async fn connect_tcp(&self, host: &str, port: u16) -> Result<BoxedStream, ShellError>;

    /// Runs `command` without input under the default time limit.
    async fn exec(&self, command: &str) -> Result<Output, ShellError> {
        self.run(command, None, None).await
    }

    /// Runs `command` and turns a non-zero exit into [`ShellError::CommandFailed`].
    async fn exec_ok(&self, command: &str) -> Result<Output, ShellError> {
        let out = self.run(command, None, None).await?;
        check(self.target(), command, out)
    }

    /// Writes `contents` to `path` (creating its directory), atomically: readers see
    /// the old file or the whole new one.
    async fn write_file(&self, path: &str, contents: &[u8]) -> Result<(), ShellError> {
        let tmp = format!("{path}.tmp.orchestrator");
        let dir = Path::new(path)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        let command = format!(
            "mkdir -p -- {dir} && cat > {tmp} && mv -f -- {tmp} {path}",
            dir = quote(&dir),
            tmp = quote(&tmp),
            path = quote(path)
        );
        let out = self.run(&command, Some(contents), None).await?;
        check(self.target(), &command, out).map(drop)
    }

    /// Reads the file at `path`.
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, ShellError> {
        let command = format!("cat -- {}", quote(path));
        let out = self.run(&command, None, None).await?;
        Ok(check(self.target(), &command, out)?.stdout)
    }

    /// Copies the local file `local` to `remote`.
    async fn upload(&self, local: &Path, remote: &str) -> Result<(), ShellError> {
        let contents = tokio::fs::read(local)
            .await
            .map_err(|source| ShellError::Io {
                what: format!("cannot read {}", local.display()),
                source,
            })?;
        self.write_file(remote, &contents).await
    }

    /// Copies `remote` to the local file `local`.
    async fn download(&self, remote: &str, local: &Path) -> Result<(), ShellError> {
        let contents = self.read_file(remote).await?;
        tokio::fs::write(local, contents)
            .await
            .map_err(|source| ShellError::Io {
                what: format!("cannot write {}", local.display()),
                source,
            })
    }
}

fn check(target: &str, command: &str, out: Output) -> Result<Output, ShellError> {
    if out.success() {
        Ok(out)
    } else {
        Err(ShellError::CommandFailed {
            target: target.to_owned(),
            command: command.to_owned(),
            exit_code: out.exit_code,
            stderr: tail(&out.stderr_lossy(), 2000),
        })
    }
}
