//! Job identities and states, as SLURM reports them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A scheduler's job id: SLURM's number (`12345`, `12345_7` for an array task) or the
/// local scheduler's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl JobId {
    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Every state a SLURM job can be in (`squeue`'s long names), plus `Unknown` for a
/// name this crate has not met (newer SLURM releases add states).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for resources or a dependency.
    Pending,
    /// Allocated, nodes booting.
    Configuring,
    /// Running.
    Running,
    /// Ending: some processes still being cleaned up.
    Completing,
    /// Ended with exit code 0.
    Completed,
    /// Ended with a non-zero exit code or other failure.
    Failed,
    /// Cancelled by a user or administrator.
    Cancelled,
    /// Ran past its time limit.
    Timeout,
    /// Ended because a node failed.
    NodeFail,
    /// Preempted by a higher-priority job.
    Preempted,
    /// Killed for using more memory than allowed.
    OutOfMemory,
    /// Its nodes failed to boot.
    BootFail,
    /// Missed its deadline.
    Deadline,
    /// Requeued (back to pending).
    Requeued,
    /// Requeued and held.
    RequeueHold,
    /// Requeued because of a failure.
    RequeueFed,
    /// Being resized.
    Resizing,
    /// Being signalled.
    Signaling,
    /// Waiting for its stage-out to finish.
    StageOut,
    /// Held in a state where it stopped.
    Stopped,
    /// Suspended.
    Suspended,
    /// Revoked (federations).
    Revoked,
    /// Held on a special exit code.
    SpecialExit,
    /// A state name this crate does not know.
    Unknown(String),
}

impl JobState {
    /// Parses a state as `squeue %T` or `scontrol`'s `JobState=` print it (the long
    /// name; short codes like `PD` are accepted too).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        // `CANCELLED by 1000` from some tools.
        let word = text.split_whitespace().next().unwrap_or("");
        match word.to_ascii_uppercase().as_str() {
            "PENDING" | "PD" => Self::Pending,
            "CONFIGURING" | "CF" => Self::Configuring,
            "RUNNING" | "R" => Self::Running,
            "COMPLETING" | "CG" => Self::Completing,
            "COMPLETED" | "CD" => Self::Completed,
            "FAILED" | "F" => Self::Failed,
            "CANCELLED" | "CA" => Self::Cancelled,
            "TIMEOUT" | "TO" => Self::Timeout,
            "NODE_FAIL" | "NF" => Self::NodeFail,
            "PREEMPTED" | "PR" => Self::Preempted,
            "OUT_OF_MEMORY" | "OOM" => Self::OutOfMemory,
            "BOOT_FAIL" | "BF" => Self::BootFail,
            "DEADLINE" | "DL" => Self::Deadline,
            "REQUEUED" | "RQ" => Self::Requeued,
            "REQUEUE_HOLD" | "RH" => Self::RequeueHold,
            "REQUEUE_FED" | "RF" => Self::RequeueFed,
            "RESIZING" | "RS" => Self::Resizing,
            "SIGNALING" | "SI" => Self::Signaling,
            "STAGE_OUT" | "SO" => Self::StageOut,
            "STOPPED" | "ST" => Self::Stopped,
            "SUSPENDED" | "S" => Self::Suspended,
            "REVOKED" | "RV" => Self::Revoked,
            "SPECIAL_EXIT" | "SE" => Self::SpecialExit,
            other => Self::Unknown(other.to_owned()),
        }
    }

    /// SLURM's name of the state.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "PENDING",
            Self::Configuring => "CONFIGURING",
            Self::Running => "RUNNING",
            Self::Completing => "COMPLETING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::Timeout => "TIMEOUT",
            Self::NodeFail => "NODE_FAIL",
            Self::Preempted => "PREEMPTED",
            Self::OutOfMemory => "OUT_OF_MEMORY",
            Self::BootFail => "BOOT_FAIL",
            Self::Deadline => "DEADLINE",
            Self::Requeued => "REQUEUED",
            Self::RequeueHold => "REQUEUE_HOLD",
            Self::RequeueFed => "REQUEUE_FED",
            Self::Resizing => "RESIZING",
            Self::Signaling => "SIGNALING",
            Self::StageOut => "STAGE_OUT",
            Self::Stopped => "STOPPED",
            Self::Suspended => "SUSPENDED",
            Self::Revoked => "REVOKED",
            Self::SpecialExit => "SPECIAL_EXIT",
            Self::Unknown(s) => s,
        }
    }

    /// Whether the job has ended for good (it will not run again by itself).
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Completed
                | Self::Failed
                | Self::Cancelled
                | Self::Timeout
                | Self::NodeFail
                | Self::Preempted
                | Self::OutOfMemory
                | Self::BootFail
                | Self::Deadline
                | Self::Revoked
                | Self::SpecialExit
        )
    }

    /// Whether the job holds or waits for resources (not ended).
    #[must_use]
    pub fn is_active(&self) -> bool {
        !self.is_terminal() && !matches!(self, Self::Unknown(_))
    }

    /// Whether the job's processes are running now.
    #[must_use]
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running | Self::Completing | Self::Signaling)
    }

    /// Whether it ended successfully.
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Completed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the scheduler knows of one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job id.
    pub id: JobId,
    /// Its state.
    pub state: JobState,
    /// The node(s) it runs or ran on (`node1`, `node[1-2]`).
    pub node: Option<String>,
    /// Why it waits or ended (`Resources`, `JobHeldUser`, `NonZeroExitCode`, ...).
    pub reason: Option<String>,
    /// Its exit code, once ended and known.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
}

impl JobInfo {
    /// A job in `state` with nothing else known.
    #[must_use]
    pub fn new(id: JobId, state: JobState) -> Self {
        Self {
            id,
            state,
            node: None,
            reason: None,
            exit_code: None,
            signal: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slurm_state_name_round_trips() {
        for name in [
            "PENDING",
            "CONFIGURING",
            "RUNNING",
            "COMPLETING",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "NODE_FAIL",
            "PREEMPTED",
            "OUT_OF_MEMORY",
            "BOOT_FAIL",
            "DEADLINE",
            "REQUEUED",
            "REQUEUE_HOLD",
            "REQUEUE_FED",
            "RESIZING",
            "SIGNALING",
            "STAGE_OUT",
            "STOPPED",
            "SUSPENDED",
            "REVOKED",
            "SPECIAL_EXIT",
        ] {
            let state = JobState::parse(name);
            assert!(!matches!(state, JobState::Unknown(_)), "{name}");
            assert_eq!(state.as_str(), name);
        }
        assert_eq!(JobState::parse("CANCELLED by 0"), JobState::Cancelled);
        assert_eq!(JobState::parse("PD"), JobState::Pending);
        assert_eq!(
            JobState::parse("EXPLODED"),
            JobState::Unknown("EXPLODED".into())
        );
    }

    #[test]
    fn terminal_and_active_states() {
        for s in [
            "TIMEOUT",
            "NODE_FAIL",
            "PREEMPTED",
            "OUT_OF_MEMORY",
            "CANCELLED",
            "FAILED",
            "COMPLETED",
        ] {
            assert!(JobState::parse(s).is_terminal(), "{s}");
        }
        for s in [
            "PENDING",
            "RUNNING",
            "COMPLETING",
            "REQUEUED",
            "SUSPENDED",
            "CONFIGURING",
        ] {
            assert!(JobState::parse(s).is_active(), "{s}");
        }
        assert!(!JobState::Unknown("X".into()).is_active());
    }
}
