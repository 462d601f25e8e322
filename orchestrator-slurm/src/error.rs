//! The errors of rendering job scripts and talking to a scheduler.

use orchestrator_ssh::ShellError;

/// What went wrong with a job script or the scheduler.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum SlurmError {
    /// `sbatch` refused the job; its own message is kept.
    #[error("sbatch refused the job: {stderr}")]
    #[diagnostic(
        code(slurm::job_submission),
        help("check the partition, account and qos against `sinfo` and your allocation")
    )]
    JobSubmission {
        /// What sbatch wrote to standard error.
        stderr: String,
        /// Its exit code.
        exit_code: i32,
    },

    /// No node of the partition can ever satisfy the request.
    #[error("no node can satisfy the job's request: {stderr}")]
    #[diagnostic(
        code(slurm::insufficient_resources),
        help(
            "ask for fewer CPUs, less memory or fewer GPUs, or another partition; `sinfo -o '%P %c %m %G'` shows what nodes have"
        )
    )]
    InsufficientResources {
        /// What sbatch wrote to standard error.
        stderr: String,
    },

    /// The scheduler knows none of these jobs.
    #[error("no such job: {}", ids.join(", "))]
    #[diagnostic(
        code(slurm::job_not_found),
        help("the job may have ended long ago and been purged by the scheduler")
    )]
    JobNotFound {
        /// The unknown ids.
        ids: Vec<String>,
    },

    /// A value cannot be put into a job script safely.
    #[error("{field} cannot be {value:?}: {reason}")]
    #[diagnostic(code(slurm::invalid_value))]
    InvalidValue {
        /// Which value.
        field: String,
        /// The value.
        value: String,
        /// Why not.
        reason: String,
    },

    /// A template failed to parse or render.
    #[error("cannot render the job script from template {template}: {message}")]
    #[diagnostic(
        code(slurm::template),
        help(
            "templates run in strict mode: every variable they use must exist; see the embedded defaults in orchestrator-slurm/templates"
        )
    )]
    Template {
        /// The template's name or file.
        template: String,
        /// Handlebars' message.
        message: String,
    },

    /// A scheduler command failed.
    #[error("`{command}` failed with exit code {exit_code}: {stderr}")]
    #[diagnostic(code(slurm::command_failed))]
    Command {
        /// The command.
        command: String,
        /// Its exit code.
        exit_code: i32,
        /// Its standard error.
        stderr: String,
    },

    /// A scheduler's answer could not be read.
    #[error("cannot read the scheduler's answer to {what}: {text:?}")]
    #[diagnostic(code(slurm::parse))]
    Parse {
        /// What was asked.
        what: String,
        /// The text that did not parse.
        text: String,
    },

    /// Reaching the cluster failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Shell(#[from] ShellError),

    /// A local file operation of the local scheduler failed.
    #[error("{what}: {source}")]
    #[diagnostic(code(slurm::io))]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// What SLURM says when its controller cannot be reached for a moment (restarting,
/// overloaded, a network blip): a request that may succeed when asked again.
const TRANSIENT_MESSAGES: &[&str] = &[
    "Unable to contact slurm controller",
    "Socket timed out",
    "Transport endpoint is not connected",
    "Zero Bytes were transmitted or received",
    "slurm_persist_conn_open",
    "Connection refused",
];

impl SlurmError {
    /// Whether asking again later may succeed: the cluster could not be reached, or
    /// the controller did not answer (as opposed to a refusal that will not change).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Shell(e) => e.is_transient(),
            Self::JobSubmission { stderr, .. } | Self::Command { stderr, .. } => {
                TRANSIENT_MESSAGES.iter().any(|m| stderr.contains(m))
            }
            _ => false,
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
