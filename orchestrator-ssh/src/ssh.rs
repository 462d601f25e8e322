//! Commands on a login node over one reused SSH connection (async-ssh2-tokio).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_ssh2_tokio::{AuthMethod, Client, ServerCheckMethod};
use async_trait::async_trait;
use russh::{ChannelMsg, Sig};
use tokio::sync::{Mutex, Semaphore};

use crate::error::humantime;
use crate::{BoxedStream, Output, Shell, ShellError, quote};

/// What to do with a host whose key is not in `known_hosts` yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Refuse it ([`ShellError::UnknownHost`]): the default.
    #[default]
    Strict,
    /// Record its key in `known_hosts` and connect (trust on first use). A host whose
    /// key *changed* is still refused.
    TrustNew,
}

/// How to reach a login node.
#[derive(Debug, Clone)]
pub struct SshOptions {
    host: String,
    port: u16,
    user: String,
    key_file: PathBuf,
    known_hosts: Option<PathBuf>,
    host_key_policy: HostKeyPolicy,
    connect_timeout: Duration,
    command_timeout: Duration,
    max_channels: usize,
    reconnect_attempts: u32,
    reconnect_delay: Duration,
}

impl SshOptions {
    /// `user@host` on port 22 with the private key `key_file` (`~` expanded), host keys
    /// checked against `~/.ssh/known_hosts`.
    #[must_use]
    pub fn new(
        host: impl Into<String>,
        user: impl Into<String>,
        key_file: impl AsRef<str>,
    ) -> Self {
        Self {
            host: host.into(),
            port: 22,
            user: user.into(),
            key_file: expand_tilde(key_file.as_ref()),
            known_hosts: None,
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(15),
            command_timeout: Duration::from_secs(300),
            max_channels: 8,
            reconnect_attempts: 4,
            reconnect_delay: Duration::from_millis(250),
        }
    }

    /// The SSH port.
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The `known_hosts` file to check host keys against (`~` expanded).
    #[must_use]
    pub fn known_hosts(mut self, path: impl AsRef<str>) -> Self {
        self.known_hosts = Some(expand_tilde(path.as_ref()));
        self
    }

    /// What to do with a host not in `known_hosts`.
    #[must_use]
    pub fn host_key_policy(mut self, policy: HostKeyPolicy) -> Self {
        self.host_key_policy = policy;
        self
    }

    /// Longest time to establish a connection (default 15 s).
    #[must_use]
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// Default longest time of one command (default 300 s).
    #[must_use]
    pub fn command_timeout(mut self, limit: Duration) -> Self {
        self.command_timeout = limit;
        self
    }

    /// Most commands in flight at once on the connection (default 8, at least 1).
    /// OpenSSH refuses more than `MaxSessions` (10 by default) channels.
    #[must_use]
    pub fn max_channels(mut self, n: usize) -> Self {
        self.max_channels = n.max(1);
        self
    }

    /// Connection attempts after a drop or a refused connection, with doubling delays
    /// starting at `delay` (default 4 attempts from 250 ms).
    #[must_use]
    pub fn reconnect(mut self, attempts: u32, delay: Duration) -> Self {
        self.reconnect_attempts = attempts.max(1);
        self.reconnect_delay = delay;
        self
    }

    fn known_hosts_path(&self) -> PathBuf {
        self.known_hosts
            .clone()
            .unwrap_or_else(|| expand_tilde("~/.ssh/known_hosts"))
    }
}

/// `~` and `~/…` become the home directory; anything else is returned as it is.
#[must_use]
pub fn expand_tilde(path: &str) -> PathBuf {
    let home = || std::env::var_os("HOME").map(PathBuf::from);
    if path == "~" {
        if let Some(h) = home() {
            return h;
        }
    } else if let Some(rest) = path.strip_prefix("~/") {
        if let Some(h) = home() {
            return h.join(rest);
        }
    }
    PathBuf::from(path)
}

/// A login node reached over SSH. One connection serves every command (several in
/// flight, at most `max_channels`); when it drops, the next command reconnects with
/// backoff. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct SshShell {
    options: SshOptions,
    target: String,
    client: Mutex<Option<Client>>,
    channels: Arc<Semaphore>,
    resolved: std::sync::Mutex<HashMap<String, IpAddr>>,
    connections: AtomicU64,
    commands: AtomicU64,
}

impl SshShell {
    /// A shell for `options`; it connects on first use.
    #[must_use]
    pub fn new(options: SshOptions) -> Self {
        let target = format!("{}@{}:{}", options.user, options.host, options.port);
        let channels = Arc::new(Semaphore::new(options.max_channels));
        Self {
            options,
            target,
            client: Mutex::new(None),
            channels,
            resolved: std::sync::Mutex::new(HashMap::new()),
            connections: AtomicU64::new(0),
            commands: AtomicU64::new(0),
        }
    }

    /// Connects now (instead of on the first command), so that a wrong key or host
    /// shows before any work starts.
    ///
    /// # Errors
    /// The connection's failure: refused, unreachable, timeout, host key, authentication.
    pub async fn connect(&self) -> Result<(), ShellError> {
        self.client().await.map(drop)
    }

    /// How many SSH connections this shell has opened so far (1 unless it reconnected).
    #[must_use]
    pub fn connections_opened(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// How many commands this shell has started.
    #[must_use]
    pub fn commands_run(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Closes the connection; the next command opens a new one.
    pub async fn disconnect(&self) {
        if let Some(client) = self.client.lock().await.take() {
            let _ = client.disconnect().await;
        }
    }

    /// The live connection, opening one (with retries) when there is none.
    async fn client(&self) -> Result<Client, ShellError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            if !client.is_closed() {
                return Ok(client.clone());
            }
            tracing::info!(target = %self.target, "SSH connection closed; reconnecting");
        }
        *slot = None;
        let mut delay = self.options.reconnect_delay;
        let mut attempt = 1;
        loop {
            match self.connect_once().await {
                Ok(client) => {
                    self.connections.fetch_add(1, Ordering::Relaxed);
                    *slot = Some(client.clone());
                    return Ok(client);
                }
                Err(e) if e.is_transient() && attempt < self.options.reconnect_attempts => {
                    tracing::warn!(target = %self.target, attempt, error = %e, "SSH connect failed; retrying in {}", humantime(delay));
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect_once(&self) -> Result<Client, ShellError> {
        let o = &self.options;
        let known_hosts = o.known_hosts_path();
        if !o.key_file.is_file() {
            return Err(ShellError::KeyFile {
                path: o.key_file.display().to_string(),
                reason: "no such file".into(),
            });
        }
        if o.host_key_policy == HostKeyPolicy::TrustNew {
            self.learn_host_key(&known_hosts).await?;
        } else if !known_hosts.is_file() {
            return Err(ShellError::UnknownHost {
                target: format!("{}:{}", o.host, o.port),
                known_hosts: format!("{} (no such file)", known_hosts.display()),
            });
        }
        let config = async_ssh2_tokio::Config {
            nodelay: true,
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 3,
            ..Default::default()
        };
        let connecting = Client::connect_with_config(
            (o.host.as_str(), o.port),
            &o.user,
            AuthMethod::with_key_file(&o.key_file, None),
            ServerCheckMethod::with_known_hosts_file(&known_hosts.to_string_lossy()),
            config,
        );
        match tokio::time::timeout(o.connect_timeout, connecting).await {
            Ok(Ok(client)) => {
                tracing::debug!(target = %self.target, "SSH connected");
                Ok(client)
            }
            Ok(Err(e)) => Err(self.connect_error(e, &known_hosts)),
            Err(_) => Err(ShellError::Timeout {
                target: self.target.clone(),
                what: "connecting".into(),
                after: o.connect_timeout,
            }),
        }
    }

    /// Trust on first use: fetch the server's key and record it when the host is not
    /// known yet; a key that differs from a recorded one is refused.
    async fn learn_host_key(&self, known_hosts: &Path) -> Result<(), ShellError> {
        let o = &self.options;
        let grabber = KeyGrabber::default();
        let seen = grabber.key.clone();
        let config = Arc::new(russh::client::Config::default());
        // The grabber refuses the key, which ends this probe connection after key
        // exchange: nothing is authenticated, nothing runs.
        let probe = russh::client::connect(config, (o.host.as_str(), o.port), grabber);
        match tokio::time::timeout(o.connect_timeout, probe).await {
            Err(_) => {
                return Err(ShellError::Timeout {
                    target: self.target.clone(),
                    what: "connecting".into(),
                    after: o.connect_timeout,
                });
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                if seen.lock().map(|k| k.is_none()).unwrap_or(true) {
                    return Err(
                        self.connect_error(async_ssh2_tokio::Error::SshError(e), known_hosts)
                    );
                }
            }
        }
        let Some(key) = seen.lock().ok().and_then(|k| k.clone()) else {
            return Err(ShellError::Protocol {
                target: self.target.clone(),
                message: "the server sent no host key".into(),
            });
        };
        let host_port = format!("{}:{}", o.host, o.port);
        match russh::keys::check_known_hosts_path(&o.host, o.port, &key, known_hosts) {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(
                    host = %host_port,
                    fingerprint = %key.fingerprint(Default::default()),
                    file = %known_hosts.display(),
                    "trusting a new host key"
                );
                russh::keys::known_hosts::learn_known_hosts_path(&o.host, o.port, &key, known_hosts)
                    .map_err(|e| ShellError::Io {
                        what: format!("cannot record the host key in {}", known_hosts.display()),
                        source: std::io::Error::other(e.to_string()),
                    })
            }
            Err(_) => Err(ShellError::HostKeyMismatch {
                target: host_port,
                known_hosts: known_hosts.display().to_string(),
            }),
        }
    }

    fn connect_error(&self, e: async_ssh2_tokio::Error, known_hosts: &Path) -> ShellError {
        use async_ssh2_tokio::Error as E;
        let o = &self.options;
        let host_port = format!("{}:{}", o.host, o.port);
        match e {
            E::ServerCheckFailed => ShellError::HostKeyMismatch {
                target: host_port,
                known_hosts: known_hosts.display().to_string(),
            },
            E::SshError(russh::Error::UnknownKey) => ShellError::UnknownHost {
                target: host_port,
                known_hosts: known_hosts.display().to_string(),
            },
            E::SshError(russh::Error::KeyChanged { .. }) => ShellError::HostKeyMismatch {
                target: host_port,
                known_hosts: known_hosts.display().to_string(),
            },
            E::KeyAuthFailed | E::SshError(russh::Error::NotAuthenticated) => {
                ShellError::AuthenticationFailed {
                    target: self.target.clone(),
                    user: o.user.clone(),
                    key: o.key_file.display().to_string(),
                }
            }
            E::KeyInvalid(err) => ShellError::KeyFile {
                path: o.key_file.display().to_string(),
                reason: err.to_string(),
            },
            E::SshError(russh::Error::IO(io)) | E::IoError(io) | E::AddressInvalid(io) => {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    ShellError::ConnectionRefused {
                        target: self.target.clone(),
                    }
                } else {
                    ShellError::Unreachable {
                        target: self.target.clone(),
                        reason: io.to_string(),
                    }
                }
            }
            other => ShellError::Protocol {
                target: self.target.clone(),
                message: other.to_string(),
            },
        }
    }

    /// Closes and forgets the current connection; the next command opens a new one.
    async fn drop_client(&self) {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.take() {
            let _ = client.disconnect().await;
        }
    }

    /// Opens a session channel, reconnecting once when the connection turns out dead:
    /// safe, since nothing of the command has been sent yet.
    async fn open_channel(&self) -> Result<russh::Channel<russh::client::Msg>, ShellError> {
        let mut retried = false;
        loop {
            let client = self.client().await?;
            match client.get_channel().await {
                Ok(channel) => return Ok(channel),
                Err(e) if !retried && (client.is_closed() || is_connection_gone(&e)) => {
                    tracing::info!(target = %self.target, error = %e, "SSH connection gone; reconnecting");
                    self.drop_client().await;
                    retried = true;
                }
                Err(e) => {
                    return Err(ShellError::Protocol {
                        target: self.target.clone(),
                        message: format!("cannot open a channel: {e}"),
                    });
                }
            }
        }
    }

    async fn run_on_channel(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, ShellError> {
        let channel = self.open_channel().await?;
        let lost = || ShellError::ConnectionLost {
            target: self.target.clone(),
            command: command.to_owned(),
        };
        let (mut reader, writer) = channel.split();
        writer.exec(true, command).await.map_err(|_| lost())?;
        let send_input = async {
            if let Some(input) = stdin {
                writer.data(input).await?;
            }
            writer.eof().await
        };
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit_code = None;
        let receive = async {
            while let Some(msg) = reader.wait().await {
                match msg {
                    ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        exit_code = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        exit_code = Some(128 + signal_number(&signal_name));
                    }
                    _ => {}
                }
            }
        };
        let (sent, ()) = tokio::join!(send_input, receive);
        // A command that ends without reading its input makes sending fail: harmless.
        drop(sent);
        match exit_code {
            Some(exit_code) => Ok(Output {
                exit_code,
                stdout,
                stderr,
            }),
            None => {
                self.drop_client().await;
                Err(lost())
            }
        }
    }

    /// The address of `host` as the login node resolves it (cached).
    async fn resolve_remote(&self, host: &str) -> Result<IpAddr, ShellError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(ip);
        }
        if let Some(ip) = self.resolved.lock().ok().and_then(|m| m.get(host).copied()) {
            return Ok(ip);
        }
        let out = self
            .run(
                &format!(
                    "getent ahostsv4 {} || getent hosts {}",
                    quote(host),
                    quote(host)
                ),
                None,
                None,
            )
            .await?;
        let ip = out
            .stdout_lossy()
            .split_whitespace()
            .next()
            .and_then(|w| w.parse::<IpAddr>().ok())
            .ok_or_else(|| ShellError::TcpConnect {
                target: self.target.clone(),
                host: host.into(),
                port: 0,
                reason: "the login node cannot resolve this name".into(),
            })?;
        if let Ok(mut m) = self.resolved.lock() {
            m.insert(host.to_owned(), ip);
        }
        Ok(ip)
    }
}

#[async_trait]
impl Shell for SshShell {
    fn target(&self) -> &str {
        &self.target
    }

    async fn run(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> Result<Output, ShellError> {
        let limit = timeout.unwrap_or(self.options.command_timeout);
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| ShellError::Protocol {
                target: self.target.clone(),
                message: "the shell is closed".into(),
            })?;
        self.commands.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(target = %self.target, command, "exec");
        match tokio::time::timeout(limit, self.run_on_channel(command, stdin)).await {
            Ok(result) => result,
            Err(_) => Err(ShellError::Timeout {
                target: self.target.clone(),
                what: format!("`{command}`"),
                after: limit,
            }),
        }
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<BoxedStream, ShellError> {
        let ip = self.resolve_remote(host).await?;
        let fail = |reason: String| ShellError::TcpConnect {
            target: self.target.clone(),
            host: host.into(),
            port,
            reason,
        };
        let mut retried = false;
        loop {
            let client = self.client().await?;
            match client
                .open_direct_tcpip_channel(std::net::SocketAddr::new(ip, port), None)
                .await
            {
                Ok(channel) => return Ok(Box::new(channel.into_stream())),
                Err(e) if !retried && client.is_closed() => {
                    tracing::info!(target = %self.target, error = %e, "SSH connection gone; reconnecting");
                    self.drop_client().await;
                    retried = true;
                }
                Err(async_ssh2_tokio::Error::SshError(russh::Error::ChannelOpenFailure(
                    reason,
                ))) => {
                    return Err(fail(format!(
                        "the login node could not connect ({reason:?})"
                    )));
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
    }
}

fn is_connection_gone(e: &async_ssh2_tokio::Error) -> bool {
    use async_ssh2_tokio::Error as E;
    matches!(
        e,
        E::SendError(_)
            | E::SshError(
                russh::Error::SendError
                    | russh::Error::Disconnect
                    | russh::Error::HUP
                    | russh::Error::IO(_)
                    | russh::Error::ConnectionTimeout
                    | russh::Error::InactivityTimeout
            )
    )
}

fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 0,
    }
}

/// A russh handler that only records the server's host key.
#[derive(Default)]
struct KeyGrabber {
    key: Arc<std::sync::Mutex<Option<russh::keys::PublicKey>>>,
}

impl russh::client::Handler for KeyGrabber {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKey,
    ) -> Result<bool, Self::Error> {
        if let Ok(mut k) = self.key.lock() {
            *k = Some(server_public_key.clone());
        }
        Ok(false)
    }
}
