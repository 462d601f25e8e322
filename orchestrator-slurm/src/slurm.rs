//! SLURM over any shell: `sbatch`, `squeue`, `scancel`, `scontrol`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use orchestrator_ssh::{Shell, quote, quote_words};

use crate::{JobId, JobInfo, JobState, RenderedJob, Scheduler, SlurmError};

/// `squeue`'s text format: the portable, cheap choice for polling (`--json` drifts
/// between SLURM releases and ignores the default state filter).
const SQUEUE_FORMAT: &str = "%i|%T|%N|%r";

/// SLURM, driven through a [`Shell`] on the login node (or locally on it).
#[derive(Debug, Clone)]
pub struct Slurm {
    shell: Arc<dyn Shell>,
}

impl Slurm {
    /// SLURM reached through `shell`.
    #[must_use]
    pub fn new(shell: Arc<dyn Shell>) -> Self {
        Self { shell }
    }

    /// The shell it runs commands through.
    #[must_use]
    pub fn shell(&self) -> &Arc<dyn Shell> {
        &self.shell
    }

    /// Runs one scheduler command, logged at debug level (never its input: a job's
    /// script may hold secrets from its recipe's environment).
    async fn command(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<orchestrator_ssh::Output, SlurmError> {
        let started = std::time::Instant::now();
        tracing::debug!(target: "orchestrator::scheduler", %command, "slurm");
        let out = self.shell.run(command, stdin, None).await?;
        tracing::debug!(
            target: "orchestrator::scheduler",
            exit_code = out.exit_code,
            ms = started.elapsed().as_millis(),
            "slurm answered"
        );
        Ok(out)
    }

    /// Exit codes (and nodes) of jobs that ended, from `scontrol`, all in one command.
    async fn ended(&self, ids: &[&JobId]) -> Result<BTreeMap<JobId, JobInfo>, SlurmError> {
        let list = quote_words(ids.iter().map(|id| id.as_str()));
        let command =
            format!("for j in {list}; do scontrol -o show job \"$j\" 2>/dev/null; done; true");
        let out = self.command(&command, None).await?;
        Ok(out
            .stdout_lossy()
            .lines()
            .filter_map(parse_scontrol_line)
            .map(|info| (info.id.clone(), info))
            .collect())
    }
}

#[async_trait]
impl Scheduler for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    async fn submit(&self, job: &RenderedJob) -> Result<JobId, SlurmError> {
        let command = format!(
            "mkdir -p -- {dir} && cat > {script} && cd -- {dir} && sbatch --parsable {script}",
            dir = quote(&job.job_dir),
            script = quote(&job.script_path),
        );
        let out = self.command(&command, Some(job.script.as_bytes())).await?;
        let stderr = out.stderr_lossy().trim().to_owned();
        if !out.success() {
            if stderr.contains("Requested node configuration is not available")
                || stderr.contains("Memory specification can not be satisfied")
            {
                return Err(SlurmError::InsufficientResources { stderr });
            }
            if stderr.contains("sbatch") {
                return Err(SlurmError::JobSubmission {
                    stderr,
                    exit_code: out.exit_code,
                });
            }
            return Err(SlurmError::Command {
                command,
                exit_code: out.exit_code,
                stderr,
            });
        }
        let stdout = out.stdout_lossy();
        let id = stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| l.trim().split(';').next())
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_'))
            .ok_or_else(|| SlurmError::Parse {
                what: "sbatch --parsable".into(),
                text: stdout.to_string(),
            })?;
        tracing::info!(job = id, name = %job.job_name, "submitted");
        Ok(JobId(id.to_owned()))
    }

    async fn cancel(&self, ids: &[JobId]) -> Result<(), SlurmError> {
        if ids.is_empty() {
            return Ok(());
        }
        let list = quote_words(ids.iter().map(|id| id.as_str()));
        let command = format!("scancel {list}");
        let out = self.command(&command, None).await?;
        if out.success() {
            tracing::info!(jobs = %list, "cancelled");
            Ok(())
        } else {
            Err(SlurmError::Command {
                command,
                exit_code: out.exit_code,
                stderr: out.stderr_lossy().trim().to_owned(),
            })
        }
    }

    async fn query(&self, ids: &[JobId]) -> Result<BTreeMap<JobId, JobInfo>, SlurmError> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list = ids.iter().map(JobId::as_str).collect::<Vec<_>>().join(",");
        let command = format!(
            "squeue --noheader --states=all --jobs={} --format={}",
            quote(&list),
            quote(SQUEUE_FORMAT)
        );
        let out = self.command(&command, None).await?;
        let stderr = out.stderr_lossy();
        if !out.success() {
            // Every id purged: squeue refuses the whole list.
            if stderr.contains("Invalid job id") {
                return Ok(BTreeMap::new());
            }
            return Err(SlurmError::Command {
                command,
                exit_code: out.exit_code,
                stderr: stderr.trim().to_owned(),
            });
        }
        let mut jobs = BTreeMap::new();
        for line in out.stdout_lossy().lines().filter(|l| !l.trim().is_empty()) {
            let info = parse_squeue_line(line).ok_or_else(|| SlurmError::Parse {
                what: "squeue".into(),
                text: line.to_owned(),
            })?;
            jobs.insert(info.id.clone(), info);
        }
        let ended: Vec<&JobId> = jobs
            .values()
            .filter(|j| j.state.is_terminal())
            .map(|j| &j.id)
            .collect();
        if !ended.is_empty() {
            for (id, detail) in self.ended(&ended).await? {
                if let Some(job) = jobs.get_mut(&id) {
                    job.exit_code = detail.exit_code;
                    job.signal = detail.signal;
                    job.node = job.node.take().or(detail.node);
                }
            }
        }
        Ok(jobs)
    }

    async fn find_by_names(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, JobInfo>, SlurmError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let command = format!(
            "squeue --noheader --me --states=all --name={} --format={}",
            quote(&names.join(",")),
            quote(&format!("{SQUEUE_FORMAT}|%j"))
        );
        let out = self.command(&command, None).await?;
        if !out.success() {
            return Err(SlurmError::Command {
                command,
                exit_code: out.exit_code,
                stderr: out.stderr_lossy().trim().to_owned(),
            });
        }
        let mut found = BTreeMap::new();
        for line in out.stdout_lossy().lines().filter(|l| !l.trim().is_empty()) {
            // The name last: a reason never holds `|`, a name may not either (it is ours).
            let (head, name) = line.rsplit_once('|').ok_or_else(|| SlurmError::Parse {
                what: "squeue --name".into(),
                text: line.to_owned(),
            })?;
            let info = parse_squeue_line(head).ok_or_else(|| SlurmError::Parse {
                what: "squeue --name".into(),
                text: line.to_owned(),
            })?;
            if names.iter().any(|n| n == name.trim()) {
                found.insert(name.trim().to_owned(), info);
            }
        }
        Ok(found)
    }

    async fn raw_status(&self) -> Result<String, SlurmError> {
        let out = self
            .command(
                "squeue --user=\"$(id -un)\" --format='%.12i %.9P %.40j %.11T %.10M %.10l %.6D %R'",
                None,
            )
            .await?;
        if out.success() {
            Ok(out.stdout_lossy().into_owned())
        } else {
            Err(SlurmError::Command {
                command: "squeue --user".into(),
                exit_code: out.exit_code,
                stderr: out.stderr_lossy().trim().to_owned(),
            })
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && s != "None" && s != "(null)").then(|| s.to_owned())
}

/// `123|RUNNING|node1|None`.
fn parse_squeue_line(line: &str) -> Option<JobInfo> {
    let mut parts = line.splitn(4, '|');
    let id = parts.next()?.trim();
    let state = parts.next()?;
    let node = parts.next()?;
    let reason = parts.next().unwrap_or("");
    if id.is_empty() {
        return None;
    }
    let mut info = JobInfo::new(JobId(id.to_owned()), JobState::parse(state));
    info.node = non_empty(node);
    info.reason = non_empty(reason);
    Some(info)
}

/// One line of `scontrol -o show job`: `JobId=5 JobName=x ... JobState=FAILED
/// Reason=NonZeroExitCode ... ExitCode=3:0 ... NodeList=node1 ...`.
fn parse_scontrol_line(line: &str) -> Option<JobInfo> {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let id = field("JobId")?;
    let mut info = JobInfo::new(JobId(id.to_owned()), JobState::parse(field("JobState")?));
    info.reason = field("Reason").and_then(non_empty);
    info.node = field("NodeList").and_then(non_empty);
    if let Some((code, signal)) = field("ExitCode").and_then(|c| c.split_once(':')) {
        info.exit_code = code.parse().ok();
        info.signal = signal.parse().ok().filter(|s| *s != 0);
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_lines_parse() {
        let job = parse_squeue_line("42|PENDING||JobHeldUser").expect("parses");
        assert_eq!(job.id.as_str(), "42");
        assert_eq!(job.state, JobState::Pending);
        assert_eq!(job.node, None);
        assert_eq!(job.reason.as_deref(), Some("JobHeldUser"));
        let job = parse_squeue_line("7_3|RUNNING|node1|None").expect("parses");
        assert_eq!((job.node.as_deref(), job.reason), (Some("node1"), None));
    }

    #[test]
    fn scontrol_lines_parse() {
        // Captured from `scontrol -o show job 1` on the test cluster (SLURM 22.05.8).
        let line = "JobId=1 JobName=srv UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=1 \
                    Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode \
                    Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 \
                    RunTime=00:00:04 TimeLimit=UNLIMITED NodeList=node1 BatchHost=node1";
        let job = parse_scontrol_line(line).expect("parses");
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.exit_code, Some(3));
        assert_eq!(job.signal, None);
        assert_eq!(job.node.as_deref(), Some("node1"));
        let cancelled = parse_scontrol_line(
            "JobId=2 JobState=CANCELLED Reason=None ExitCode=0:15 NodeList=(null)",
        )
        .expect("parses");
        assert_eq!(
            (cancelled.exit_code, cancelled.signal, cancelled.node),
            (Some(0), Some(15), None)
        );
        assert!(parse_scontrol_line("slurm_load_jobs error: Invalid job id specified").is_none());
    }
}
