//! The lifecycle of sessions, services, clients and job records, as types: every
//! state the orchestrator records, whether it is final, and every transition that
//! follows from a job's end or a session's end. Nothing else decides these.
//!
//! The state store keeps each as the text it always has (`completed`, `SUBMITTING`,
//! SLURM's state names), so a database written before these types existed reads the
//! same; JSON output (reports, `--json`) uses the same text.

use std::fmt;
use std::str::FromStr;

use orchestrator_slurm::JobState;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A state text the orchestrator did not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState {
    /// Which lifecycle: `session`, `service` or `client`.
    pub of: &'static str,
    /// The text.
    pub text: String,
}

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a {} state", self.text, self.of)
    }
}

impl std::error::Error for UnknownState {}

/// Defines a closed lifecycle enum stored and printed as lower-case words.
macro_rules! lifecycle {
    (
        $(#[$meta:meta])*
        $name:ident ($of:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, final = $final:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every state, in lifecycle order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The state's text, as stored and printed.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Whether nothing follows this state.
            #[must_use]
            pub const fn is_final(self) -> bool {
                match self { $(Self::$variant => $final),+ }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;
            fn from_str(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownState { of: $of, text: text.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e: UnknownState| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

lifecycle! {
    /// Where a session is.
    SessionState ("session") {
        /// Recorded; its services are being submitted and started.
        Starting = "starting", final = false;
        /// Its services are healthy (and stay up when kept).
        Running = "running", final = false;
        /// Every client ended successfully and the services were stopped.
        Completed = "completed", final = true;
        /// A service or client failed, or the orchestrator died.
        Failed = "failed", final = true;
        /// Interrupted or stopped by the user.
        Cancelled = "cancelled", final = true;
    }
}

/// Why a session failed when its orchestrator died before it ended (reconcile says
/// so); `attach` continues such a session.
pub const ORCHESTRATOR_ENDED: &str = "the orchestrator process ended before the session finished";

impl SessionState {
    /// Whether a session in this state, failed for `error`, can still be driven to
    /// its end (`attach`): it has not ended, or it failed only because its
    /// orchestrator died.
    #[must_use]
    pub fn resumable(self, error: Option<&str>) -> bool {
        !self.is_final() || (self == Self::Failed && error == Some(ORCHESTRATOR_ENDED))
    }
}

lifecycle! {
    /// Where a service is.
    ServiceState ("service") {
        /// Recorded, its job not yet running.
        Pending = "pending", final = false;
        /// Its job runs; the health check has not passed yet.
        Starting = "starting", final = false;
        /// Healthy (or running without a health check).
        Running = "running", final = false;
        /// It did not start, failed its health check, or its job failed.
        Failed = "failed", final = true;
        /// Cancelled on purpose.
        Stopped = "stopped", final = true;
        /// Its job ended by itself, successfully.
        Completed = "completed", final = true;
    }
}

lifecycle! {
    /// Where a benchmark client is.
    ClientState ("client") {
        /// Recorded, its job not yet submitted or not yet running.
        Pending = "pending", final = false;
        /// Its job is being rendered and submitted.
        Submitting = "submitting", final = false;
        /// Its job runs.
        Running = "running", final = false;
        /// Its job ended successfully.
        Completed = "completed", final = true;
        /// Its job failed, or could not be submitted.
        Failed = "failed", final = true;
        /// Cancelled, or never submitted because its session ended first.
        Cancelled = "cancelled", final = true;
    }
}

impl ServiceState {
    /// What a service becomes when its job ends in `end`.
    #[must_use]
    pub fn after_job(end: &JobRecordState, exit_code: Option<i32>) -> Self {
        if end.is_cancelled() {
            Self::Stopped
        } else if end.succeeded(exit_code) {
            Self::Completed
        } else {
            Self::Failed
        }
    }

    /// What a service that is not final yet becomes when its session ends in `end`.
    #[must_use]
    pub fn after_session(end: SessionState) -> Self {
        match end {
            SessionState::Failed => Self::Failed,
            _ => Self::Stopped,
        }
    }
}

impl ClientState {
    /// What a client becomes when its job ends in `end`.
    #[must_use]
    pub fn after_job(end: &JobRecordState, exit_code: Option<i32>) -> Self {
        if end.is_cancelled() {
            Self::Cancelled
        } else if end.succeeded(exit_code) {
            Self::Completed
        } else {
            Self::Failed
        }
    }

    /// What a client that is not final yet becomes when its session ends: it will
    /// never run (or never finish) now.
    #[must_use]
    pub const fn after_session(_end: SessionState) -> Self {
        Self::Cancelled
    }
}

/// The state of a service or of a client, where either may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum OwnerState {
    /// A service's.
    Service(ServiceState),
    /// A client's.
    Client(ClientState),
}

impl OwnerState {
    /// The state's text.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Service(s) => s.as_str(),
            Self::Client(c) => c.as_str(),
        }
    }
}

impl From<ServiceState> for OwnerState {
    fn from(state: ServiceState) -> Self {
        Self::Service(state)
    }
}

impl From<ClientState> for OwnerState {
    fn from(state: ClientState) -> Self {
        Self::Client(state)
    }
}

impl fmt::Display for OwnerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of a job record: either what the scheduler said, or one of the
/// orchestrator's own states for a job the scheduler cannot speak of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JobRecordState {
    /// Recorded and being submitted: no scheduler id yet.
    Submitting,
    /// The scheduler refused it.
    SubmitFailed,
    /// Submitted, and the scheduler no longer knows it.
    Gone,
    /// Recorded, and the orchestrator that submitted it died before the scheduler
    /// confirmed it.
    Lost,
    /// What the scheduler says.
    Scheduler(JobState),
}

impl JobRecordState {
    /// The state's text, as stored and printed (SLURM's names for its own states).
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Submitting => "SUBMITTING",
            Self::SubmitFailed => "SUBMIT_FAILED",
            Self::Gone => "GONE",
            Self::Lost => "LOST",
            Self::Scheduler(state) => state.as_str(),
        }
    }

    /// Reads a stored state.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        match text {
            "SUBMITTING" => Self::Submitting,
            "SUBMIT_FAILED" => Self::SubmitFailed,
            "GONE" => Self::Gone,
            "LOST" => Self::Lost,
            other => Self::Scheduler(JobState::parse(other)),
        }
    }

    /// Whether the job has ended for good.
    #[must_use]
    pub fn is_final(&self) -> bool {
        match self {
            Self::Submitting => false,
            Self::SubmitFailed | Self::Gone | Self::Lost => true,
            Self::Scheduler(state) => state.is_terminal(),
        }
    }

    /// Whether its processes run now.
    #[must_use]
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Scheduler(state) if state.is_running())
    }

    /// Whether it ended because of the cluster, not of itself: its node was lost
    /// (`NODE_FAIL`), did not boot (`BOOT_FAIL`), or it was preempted. Such a job may
    /// run if submitted again (a recipe's `retries`).
    #[must_use]
    pub fn is_cluster_failure(&self) -> bool {
        matches!(
            self,
            Self::Scheduler(JobState::NodeFail | JobState::BootFail | JobState::Preempted)
        )
    }

    /// Whether it was cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Scheduler(JobState::Cancelled))
    }

    /// Whether it ended successfully: the scheduler says completed, and the exit code
    /// (when known) is 0.
    #[must_use]
    pub fn succeeded(&self, exit_code: Option<i32>) -> bool {
        matches!(self, Self::Scheduler(JobState::Completed)) && exit_code.unwrap_or(0) == 0
    }
}

impl From<JobState> for JobRecordState {
    fn from(state: JobState) -> Self {
        Self::Scheduler(state)
    }
}

impl fmt::Display for JobRecordState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobRecordState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobRecordState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

impl ToSql for JobRecordState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for JobRecordState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(Self::parse(value.as_str()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_can_be_resumed_until_it_ends_or_when_only_its_orchestrator_died() {
        assert!(SessionState::Running.resumable(None));
        assert!(SessionState::Starting.resumable(Some("anything")));
        assert!(SessionState::Failed.resumable(Some(ORCHESTRATOR_ENDED)));
        assert!(!SessionState::Failed.resumable(Some("client `load` ended FAILED")));
        assert!(!SessionState::Completed.resumable(None));
        assert!(!SessionState::Cancelled.resumable(Some(ORCHESTRATOR_ENDED)));
    }

    fn round_trip<T>(all: &[T])
    where
        T: Copy + fmt::Display + FromStr + PartialEq + fmt::Debug + Serialize,
        <T as FromStr>::Err: fmt::Debug,
    {
        for state in all {
            let text = state.to_string();
            assert_eq!(text.parse::<T>().unwrap(), *state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(text)
            );
        }
    }

    #[test]
    fn every_state_reads_back_from_its_text() {
        round_trip(SessionState::ALL);
        round_trip(ServiceState::ALL);
        round_trip(ClientState::ALL);
        for text in [
            "SUBMITTING",
            "SUBMIT_FAILED",
            "GONE",
            "LOST",
            "RUNNING",
            "NODE_FAIL",
        ] {
            assert_eq!(JobRecordState::parse(text).as_str(), text);
        }
        let error = "finished".parse::<SessionState>().unwrap_err();
        assert_eq!(error.to_string(), "`finished` is not a session state");
    }

    #[test]
    fn final_states_are_exactly_the_ends() {
        let finals: Vec<&str> = SessionState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finals, ["completed", "failed", "cancelled"]);
        let finals: Vec<&str> = ClientState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finals, ["completed", "failed", "cancelled"]);
        assert!(!JobRecordState::Submitting.is_final());
        assert!(JobRecordState::Lost.is_final());
        assert!(!JobRecordState::Scheduler(JobState::Pending).is_final());
        assert!(JobRecordState::Scheduler(JobState::NodeFail).is_final());
    }

    #[test]
    fn a_job_end_decides_its_owner() {
        use JobState::{Cancelled, Completed, Failed};
        let s = |state: JobState| JobRecordState::Scheduler(state);
        assert_eq!(
            ServiceState::after_job(&s(Cancelled), None),
            ServiceState::Stopped
        );
        assert_eq!(
            ServiceState::after_job(&s(Completed), Some(0)),
            ServiceState::Completed
        );
        assert_eq!(
            ServiceState::after_job(&s(Completed), Some(3)),
            ServiceState::Failed
        );
        assert_eq!(
            ServiceState::after_job(&JobRecordState::Gone, None),
            ServiceState::Failed
        );
        assert_eq!(
            ClientState::after_job(&s(Cancelled), None),
            ClientState::Cancelled
        );
        assert_eq!(
            ClientState::after_job(&s(Completed), None),
            ClientState::Completed
        );
        assert_eq!(
            ClientState::after_job(&s(Failed), Some(1)),
            ClientState::Failed
        );
        assert_eq!(
            ClientState::after_job(&JobRecordState::Lost, None),
            ClientState::Failed
        );
        assert_eq!(
            ServiceState::after_session(SessionState::Cancelled),
            ServiceState::Stopped
        );
        assert_eq!(
            ClientState::after_session(SessionState::Failed),
            ClientState::Cancelled
        );
    }
}
