//! The errors of running commands and moving files, locally or over SSH.

use std::time::Duration;

/// What went wrong with a [`Shell`](crate::Shell). Each kind of failure has its own
/// variant, stable code and hint, so that a user sees at once whether to check the
/// network, their key, their `known_hosts` or the command itself.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum ShellError {
    /// Nothing listens on the SSH port.
    #[error("cannot connect to {target}: connection refused")]
    #[diagnostic(
        code(ssh::connection_refused),
        help(
            "is the host name and port in the config's `hpc` section right, and is the SSH server up?"
        )
    )]
    ConnectionRefused {
        /// `user@host:port`.
        target: String,
    },

    /// The host cannot be reached or its name not resolved.
    #[error("cannot reach {target}: {reason}")]
    #[diagnostic(
        code(ssh::unreachable),
        help("check the host name, your network or VPN, and that the login node is up")
    )]
    Unreachable {
        /// `user@host:port`.
        target: String,
        /// What the operating system said.
        reason: String,
    },

    /// Connecting, or a command, took longer than allowed.
    #[error("{what} on {target} timed out after {}", humantime(*after))]
    #[diagnostic(
        code(ssh::timeout),
        help(
            "the host may be down or filtered by a firewall; the limits are `connect_timeout` and `command_timeout`"
        )
    )]
    Timeout {
        /// `user@host:port` or `local`.
        target: String,
        /// What timed out: "connecting", or the command.
        what: String,
        /// The limit that was reached.
        after: Duration,
    },

    /// The server refused the key.
    #[error("authentication as {user} on {target} failed with the key {key}")]
    #[diagnostic(
        code(ssh::authentication_failed),
        help(
            "is the public key of `key_filename` (or SSH_KEY_PATH) in ~/.ssh/authorized_keys on the cluster, and the user name right?"
        )
    )]
    AuthenticationFailed {
        /// `user@host:port`.
        target: String,
        /// The user name.
        user: String,
        /// The private key file offered.
        key: String,
    },

    /// The server's host key differs from the one recorded: nothing was sent.
    #[error("the host key of {target} does not match the one recorded in {known_hosts}")]
    #[diagnostic(
        code(ssh::host_key_mismatch),
        help(
            "someone may be intercepting the connection, or the host was reinstalled; ask your cluster's admins for its key fingerprint before you edit {known_hosts}"
        )
    )]
    HostKeyMismatch {
        /// `host:port`.
        target: String,
        /// The known_hosts file checked.
        known_hosts: String,
    },

    /// The server's host key is not recorded at all: nothing was sent.
    #[error("{target} is not a known host: its key is not in {known_hosts}")]
    #[diagnostic(
        code(ssh::unknown_host),
        help(
            "connect once with `ssh -p PORT USER@HOST` and check the fingerprint against your cluster's documentation, or allow trusting a new host explicitly (`trust_new_host`)"
        )
    )]
    UnknownHost {
        /// `host:port`.
        target: String,
        /// The known_hosts file checked.
        known_hosts: String,
    },

    /// The private key could not be read or parsed.
    #[error("cannot use the SSH key {path}: {reason}")]
    #[diagnostic(
        code(ssh::key_file),
        help(
            "set `hpc.key_filename` or SSH_KEY_PATH to an unencrypted private key (OpenSSH format) readable by you"
        )
    )]
    KeyFile {
        /// The key file.
        path: String,
        /// Why it could not be used.
        reason: String,
    },

    /// The connection dropped while a command ran; it may or may not have completed.
    #[error("the connection to {target} was lost while running `{command}`")]
    #[diagnostic(
        code(ssh::connection_lost),
        help(
            "the next command reconnects; check whether this one took effect before repeating it"
        )
    )]
    ConnectionLost {
        /// `user@host:port`.
        target: String,
        /// The command that was running.
        command: String,
    },

    /// A TCP stream to `host:port` as seen from the login node could not be opened.
    #[error("cannot open a TCP connection to {host}:{port} from {target}: {reason}")]
    #[diagnostic(
        code(ssh::tcp_connect),
        help("the service may not be listening yet, or listen only on another interface")
    )]
    TcpConnect {
        /// `user@host:port` or `local`.
        target: String,
        /// The host as the login node sees it.
        host: String,
        /// The port.
        port: u16,
        /// What failed.
        reason: String,
    },

    /// A file transfer or helper command ran but failed.
    #[error("`{command}` on {target} failed with exit code {exit_code}: {stderr}")]
    #[diagnostic(code(ssh::command_failed))]
    CommandFailed {
        /// `user@host:port` or `local`.
        target: String,
        /// The command.
        command: String,
        /// Its exit code.
        exit_code: i32,
        /// The end of its standard error.
        stderr: String,
    },

    /// A local I/O failure (spawning a process, reading a file).
    #[error("{what}: {source}")]
    #[diagnostic(code(ssh::io))]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Any other SSH protocol failure.
    #[error("SSH error with {target}: {message}")]
    #[diagnostic(code(ssh::protocol))]
    Protocol {
        /// `user@host:port`.
        target: String,
        /// The library's description.
        message: String,
    },
}

impl ShellError {
    /// Whether connecting again may help (as opposed to a refused key or host key).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::ConnectionRefused { .. }
                | Self::Unreachable { .. }
                | Self::Timeout { .. }
                | Self::ConnectionLost { .. }
                | Self::Protocol { .. }
        )
    }
}

/// `1.5 s`, `30 s`, `250 ms`: for messages.
pub(crate) fn humantime(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// The last `max` bytes of `text` (on a character boundary), for messages.
pub fn tail(text: &str, max: usize) -> String {
    let text = text.trim_end();
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}
