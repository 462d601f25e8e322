//! The local scheduler: the very same job script, run by bash as a detached process
//! group on this machine, with SLURM's states and exit codes.
//!
//! Each job has a record directory `<root>/<id>/` holding its process id and start
//! time, its exit code once it ends, and a mark when it was cancelled, so a later
//! orchestrator process finds its jobs again and can cancel them.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_ssh::quote;
use tokio::process::Command;

use crate::{JobId, JobInfo, JobState, RenderedJob, Scheduler, SlurmError};

/// Runs jobs as local processes. Cheap to clone; all state is on disk.
#[derive(Debug, Clone)]
pub struct LocalScheduler {
    root: PathBuf,
    kill_wait: Duration,
}

impl LocalScheduler {
    /// A local scheduler keeping its job records under `root` (created when missing;
    /// a relative path is taken from the current directory now, since jobs run in
    /// their own directories).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            root: std::path::absolute(&root).unwrap_or(root),
            kill_wait: Duration::from_secs(3),
        }
    }

    /// Where job records live.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn record(&self, id: &JobId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Takes the next free id by creating its record directory (atomic: two processes
    /// never get the same id).
    fn allocate(&self) -> Result<(JobId, PathBuf), SlurmError> {
        std::fs::create_dir_all(&self.root).map_err(SlurmError::io(format!(
            "cannot create {}",
            self.root.display()
        )))?;
        let mut next = std::fs::read_dir(&self.root)
            .map_err(SlurmError::io(format!(
                "cannot list {}",
                self.root.display()
            )))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        loop {
            let dir = self.root.join(next.to_string());
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok((JobId(next.to_string()), dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => next += 1,
                Err(e) => {
                    return Err(SlurmError::Io {
                        what: format!("cannot create {}", dir.display()),
                        source: e,
                    });
                }
            }
        }
    }

    fn read(&self, id: &JobId) -> Option<JobInfo> {
        let dir = self.record(id);
        if !dir.is_dir() {
            return None;
        }
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let cancelled = dir.join("cancelled").exists();
        let timed_out = dir.join("timed_out").exists();
        let mut info = JobInfo::new(id.clone(), JobState::Pending);
        info.node = Some("localhost".into());
        // Whether the wrapper lives is read *before* its exit code: it writes the code,
        // then ends, so a dead wrapper with no code really ended without one.
        let alive = read("pid")
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|pid| crate::process::alive(pid, read("start_time").as_deref()));
        if let Some(code) = read("exit_code").and_then(|c| c.parse::<i32>().ok()) {
            info.exit_code = Some(code);
            info.state = if cancelled {
                JobState::Cancelled
            } else if code == 0 {
                JobState::Completed
            } else {
                JobState::Failed
            };
            if code > 128 {
                info.signal = Some(code - 128);
            }
            if info.state == JobState::Failed {
                info.reason = Some("NonZeroExitCode".into());
            }
            return Some(info);
        }
        info.state = match (alive, cancelled || timed_out) {
            (true, false) => JobState::Running,
            (true, true) => JobState::Completing,
            (false, true) if cancelled => JobState::Cancelled,
            (false, true) => {
                info.reason = Some("TimeLimit".into());
                JobState::Timeout
            }
            (false, false) if read("pid").is_none() => JobState::Pending,
            (false, false) => {
                info.reason = Some("the process ended without recording an exit code".into());
                JobState::NodeFail
            }
        };
        Some(info)
    }
}

/// Whether any process of group `pgid` is left.
async fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-s", "0", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

async fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

#[async_trait]
impl Scheduler for LocalScheduler {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn submit(&self, job: &RenderedJob) -> Result<JobId, SlurmError> {
        tracing::debug!(target: "orchestrator::scheduler", script = %job.script_path, "local submit");
        std::fs::create_dir_all(&job.job_dir)
            .map_err(SlurmError::io(format!("cannot create {}", job.job_dir)))?;
        std::fs::write(&job.script_path, &job.script)
            .map_err(SlurmError::io(format!("cannot write {}", job.script_path)))?;
        let (id, record) = self.allocate()?;
        let record_str = record.to_string_lossy();
        let limit = job.time_limit.map(|t| t.as_secs().max(1));
        // The job runs in the wrapper's process group. A watchdog in a session of its
        // own enforces the time limit as SLURM does: it marks the record, sends TERM to
        // the whole group, and KILL after the grace period to whatever ignored it. At
        // the end the wrapper records the exit code, stops the watchdog, then ends
        // whatever the job left running in the background, as SLURM does at the end of
        // a job. A cancelled wrapper (TERM) stops the watchdog too, unless the
        // watchdog is the one that sent it.
        let watchdog = match limit {
            Some(secs) => {
                // It watches the wrapper ($1) each second and ends with it, however it
                // ended (a KILL leaves it no time to stop its watchdog).
                let script = format!(
                    "end=$((SECONDS + {secs})); while [ $SECONDS -lt $end ]; do kill -0 \"$1\" 2>/dev/null || exit 0; sleep 1; done; : > {rec}/timed_out; kill -TERM -- -\"$1\"; sleep {grace}; kill -KILL -- -\"$1\"",
                    rec = quote(&record_str),
                    grace = self.kill_wait.as_secs().max(1)
                );
                format!(
                    "setsid bash -c {} watchdog \"$$\" < /dev/null > /dev/null 2>&1 &\n\
                     wd=$!\n\
                     trap '[ -e \"$rec/timed_out\" ] || kill -KILL -- -\"$wd\" 2>/dev/null; exit 143' TERM\n",
                    quote(&script),
                )
            }
            None => String::new(),
        };
        let wrapper = format!(
            "cd {dir} || exit 1\n\
             rec={rec}\n\
             export SLURM_JOB_ID={id} SLURM_JOB_NAME={name} SLURMD_NODENAME=localhost SLURM_SUBMIT_DIR={dir}\n\
             bash {script} < /dev/null > {out} 2> {err} &\n\
             job=$!\n\
             {watchdog}\
             wait \"$job\"\n\
             code=$?\n\
             printf '%s\\n' \"$code\" > {rec}/exit_code.tmp && mv {rec}/exit_code.tmp {rec}/exit_code\n\
             [ -n \"${{wd:-}}\" ] && kill -KILL -- -\"$wd\" 2>/dev/null\n\
             kill -TERM -- -$$ 2>/dev/null\n",
            dir = quote(&job.job_dir),
            id = quote(id.as_str()),
            name = quote(&job.job_name),
            script = quote(&job.script_path),
            out = quote(&job.stdout_path),
            err = quote(&job.stderr_path),
            rec = quote(&record_str),
        );
        // Named before it starts, so that it can be found by name whatever happens next.
        std::fs::write(record.join("job_dir"), &job.job_dir)
            .map_err(SlurmError::io("cannot write the job record"))?;
        std::fs::write(record.join("name"), &job.job_name)
            .map_err(SlurmError::io("cannot write the job record"))?;
        let child = std::process::Command::new("bash")
            .arg("-c")
            .arg(&wrapper)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: not killed with the orchestrator, cancellable as one.
            .process_group(0)
            .spawn()
            .map_err(SlurmError::io("cannot start bash"))?;
        let pid = child.id();
        // Reap it in the background when it ends within this process's life.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        if let Some(t) = crate::process::start_time(pid) {
            std::fs::write(record.join("start_time"), t)
                .map_err(SlurmError::io("cannot write the job record"))?;
        }
        std::fs::write(record.join("pid"), pid.to_string())
            .map_err(SlurmError::io("cannot write the job record"))?;
        tracing::info!(job = %id, name = %job.job_name, pid, "started locally");
        Ok(id)
    }

    async fn cancel(&self, ids: &[JobId]) -> Result<(), SlurmError> {
        tracing::debug!(target: "orchestrator::scheduler", ?ids, "local cancel");
        let mut running = Vec::new();
        for id in ids {
            let Some(info) = self.read(id) else { continue };
            if info.state.is_terminal() {
                continue;
            }
            let record = self.record(id);
            std::fs::write(record.join("cancelled"), "")
                .map_err(SlurmError::io("cannot write the job record"))?;
            if let Some(pid) = std::fs::read_to_string(record.join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
            {
                signal_group(pid, "TERM").await;
                running.push((id.clone(), pid));
            }
        }
        // As SLURM's KillWait: give them time to stop, then kill what is left.
        let deadline = tokio::time::Instant::now() + self.kill_wait;
        while !running.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut alive = Vec::new();
            for (id, pgid) in running {
                if group_alive(pgid).await {
                    alive.push((id, pgid));
                }
            }
            running = alive;
        }
        for (_, pgid) in running {
            signal_group(pgid, "KILL").await;
        }
        Ok(())
    }

    async fn find_by_names(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, JobInfo>, SlurmError> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(BTreeMap::new());
        };
        let mut found = BTreeMap::new();
        for entry in entries.flatten() {
            let Ok(name) = std::fs::read_to_string(entry.path().join("name")) else {
                continue;
            };
            let name = name.trim();
            if !names.iter().any(|n| n == name) {
                continue;
            }
            let id = JobId(entry.file_name().to_string_lossy().into_owned());
            if let Some(info) = self.read(&id) {
                found.insert(name.to_owned(), info);
            }
        }
        Ok(found)
    }

    async fn query(&self, ids: &[JobId]) -> Result<BTreeMap<JobId, JobInfo>, SlurmError> {
        tracing::debug!(target: "orchestrator::scheduler", jobs = ids.len(), "local query");
        Ok(ids
            .iter()
            .filter_map(|id| self.read(id).map(|info| (id.clone(), info)))
            .collect())
    }

    async fn raw_status(&self) -> Result<String, SlurmError> {
        let mut ids: Vec<u64> = std::fs::read_dir(&self.root)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        let mut text = format!("{:>8} {:<40} {:<11} {}\n", "JOBID", "NAME", "STATE", "EXIT");
        for id in ids {
            let id = JobId(id.to_string());
            if let Some(info) = self.read(&id) {
                let name =
                    std::fs::read_to_string(self.record(&id).join("name")).unwrap_or_default();
                let exit = info.exit_code.map(|c| c.to_string()).unwrap_or_default();
                text.push_str(&format!(
                    "{:>8} {:<40} {:<11} {exit}\n",
                    id,
                    name.trim(),
                    info.state
                ));
            }
        }
        Ok(text)
    }
}
