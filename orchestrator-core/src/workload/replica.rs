//! Client replicas: one client's workload run by several engine processes (a SLURM
//! job's tasks, started by `srun`) that act as one. Each replica takes its share of the
//! load ([`Replica::split`]), meets the others at a file barrier in the shared job
//! directory before every run ([`Barrier`]), so that their measured periods start at
//! one instant, and writes its own results under `results/replicas/K/`. The
//! orchestrator merges their histograms exactly afterwards ([`merge_results`]): the
//! merged p99 is the p99 of every request, not an average of the replicas' p99s.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::engine::{LoadModel, LoadSpec, RunRecord};

/// Where the replicas write, below the client's `results/`.
pub const REPLICAS_DIR: &str = "replicas";

/// Each replica's record of itself, in its directory.
pub const REPLICA_FILE: &str = "replica.json";

/// How long a replica waits at the barrier for the others.
pub const BARRIER_TIMEOUT: Duration = Duration::from_secs(120);

/// The time between the last replica's arrival at the barrier and the common start:
/// every replica must have seen that arrival by then.
pub const BARRIER_MARGIN: Duration = Duration::from_millis(1000);

/// One replica of a client's workload: number `index` of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// From 0.
    pub index: u32,
    /// How many replicas there are.
    pub of: u32,
}

impl Replica {
    /// This process's replica of `of`: its index is `ORCH_REPLICA`, else `SLURM_PROCID`
    /// (the task number `srun` gives).
    ///
    /// # Errors
    /// Neither is set, or the index is not below `of`.
    pub fn from_env(of: u32) -> Result<Self, String> {
        let (name, value) = ["ORCH_REPLICA", "SLURM_PROCID"]
            .iter()
            .find_map(|n| std::env::var(n).ok().map(|v| (*n, v)))
            .ok_or_else(|| {
                format!("a workload of {of} replicas needs ORCH_REPLICA or SLURM_PROCID set (srun sets it)")
            })?;
        let index: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("{name} is `{value}`, not a replica number"))?;
        if index >= of {
            return Err(format!(
                "{name} is {index}, but there are {of} replicas (0 to {})",
                of - 1
            ));
        }
        Ok(Self { index, of })
    }

    /// This replica's share of `total` things, split as evenly as possible: the first
    /// `total % of` replicas get one more.
    #[must_use]
    pub fn share(self, total: u64) -> u64 {
        let of = u64::from(self.of);
        total / of + u64::from(u64::from(self.index) < total % of)
    }

    /// This replica's share of `load`: a closed loop's users and a run's request count
    /// split as evenly as possible, an open loop's rate divided (the rates add up to the
    /// one asked for; with constant arrivals the replicas' schedules interleave, so that
    /// together they send evenly spaced requests), its concurrency cap split, and a seed
    /// of its own.
    ///
    /// # Errors
    /// Fewer users, requests or in-flight requests than replicas: one would get none.
    pub fn split(self, load: &mut LoadSpec) -> Result<(), String> {
        let too_few = |what: &str, n: u64| {
            format!(
                "{what} {n} cannot be split over {} replicas: each needs one at least",
                self.of
            )
        };
        match &mut load.model {
            LoadModel::Closed { concurrency } => {
                let share = self.share(u64::from(*concurrency));
                if share == 0 {
                    return Err(too_few("concurrency", u64::from(*concurrency)));
                }
                *concurrency = u32::try_from(share).expect("a share of a u32");
            }
            LoadModel::Open {
                rate,
                max_concurrency,
                ..
            } => {
                let total = *rate;
                *rate = total / f64::from(self.of);
                load.phase = Duration::from_secs_f64(f64::from(self.index) / total);
                if let Some(cap) = max_concurrency {
                    let share = self.share(u64::from(*cap));
                    if share == 0 {
                        return Err(too_few("max_concurrency", u64::from(*cap)));
                    }
                    *cap = u32::try_from(share).expect("a share of a u32");
                }
            }
            LoadModel::Replay { .. } => {
                return Err(format!(
                    "a replayed trace cannot be split over {} replicas: its requests keep their own times (run it with one)",
                    self.of
                ));
            }
        }
        // Each replica would replay a whole timed dataset: replicas run the load given.
        load.implicit_model = false;
        if let Some(requests) = load.requests {
            let share = self.share(requests);
            if share == 0 {
                return Err(too_few("requests", requests));
            }
            load.requests = Some(share);
        }
        load.seed = load
            .seed
            .wrapping_add(u64::from(self.index).wrapping_mul(1_000_003));
        Ok(())
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What a replica writes of itself (`replica.json`): where it ran, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// Which replica.
    #[serde(flatten)]
    pub replica: Replica,
    /// The node it ran on.
    pub node: String,
    /// Its process id there.
    pub pid: u32,
    /// When it started, Unix seconds.
    pub started_at: f64,
    /// When it ended, Unix seconds; absent while it runs (or when it was killed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<f64>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReplicaInfo {
    /// This process, replica `replica`, starting now.
    #[must_use]
    pub fn starting(replica: Replica) -> Self {
        let node = std::env::var("SLURMD_NODENAME")
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map_or_else(|| "localhost".to_owned(), |n| n.trim().to_owned());
        Self {
            replica,
            node,
            pid: std::process::id(),
            started_at: unix_seconds(SystemTime::now()),
            ended_at: None,
            error: None,
        }
    }

    /// It ends now.
    pub fn end(&mut self) {
        self.ended_at = Some(unix_seconds(SystemTime::now()));
    }

    /// Writes it into `dir` (created), atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let text = serde_json::to_string_pretty(self).expect("replica records serialise") + "\n";
        write_atomically(&dir.join(REPLICA_FILE), text.as_bytes())
    }
}

/// Writes `bytes` to `path` through a temporary file beside it, so that a reader on
/// another node sees the whole file or none.
///
/// # Errors
/// The file cannot be written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// The meeting point of a client's replicas before each run, a directory every one of
/// them sees (the job directory is on the cluster's shared file system). A replica
/// arrives by writing a file named by its index that holds its arrival time; once all
/// have arrived, each computes the same start, the last arrival plus
/// [`BARRIER_MARGIN`], and waits for it. A replica that sees the last arrival only
/// after that start is late and fails, as does one that waits longer than the
/// timeout: both say which replicas they waited for.
#[derive(Debug, Clone)]
pub struct Barrier {
    dir: PathBuf,
    replica: Replica,
    timeout: Duration,
    margin: Duration,
}

impl Barrier {
    /// The barrier of `replica` in `dir` (`results/replicas/.barrier`).
    #[must_use]
    pub fn new(dir: PathBuf, replica: Replica) -> Self {
        Self {
            dir,
            replica,
            timeout: BARRIER_TIMEOUT,
            margin: BARRIER_MARGIN,
        }
    }

    /// With other waits (for tests).
    #[must_use]
    pub fn with_times(mut self, timeout: Duration, margin: Duration) -> Self {
        self.timeout = timeout;
        self.margin = margin;
        self
    }

    /// Arrives before run `run` and waits until every replica has: the common start,
    /// which the caller waits for.
    ///
    /// # Errors
    /// A replica that did not arrive in time, or this one late, or the directory
    /// cannot be written.
    pub fn arrive(&self, run: usize) -> Result<SystemTime, String> {
        let dir = self.dir.join(format!("run-{run:03}"));
        let Replica { index, of } = self.replica;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the barrier {}: {e}", dir.display()))?;
        let arrived = SystemTime::now();
        let nanos = arrived
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        write_atomically(&dir.join(index.to_string()), nanos.to_string().as_bytes())
            .map_err(|e| format!("cannot write into the barrier {}: {e}", dir.display()))?;
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let times = arrivals(&dir, of);
            if times.iter().all(Option::is_some) {
                let last = times.iter().flatten().max().copied().unwrap_or(nanos);
                let start = UNIX_EPOCH
                    + Duration::from_nanos(u64::try_from(last).unwrap_or(u64::MAX))
                    + self.margin;
                if let Ok(late) = SystemTime::now().duration_since(start) {
                    return Err(format!(
                        "replica {index} of {of}: it saw the last replica arrive {:.3} s after their common start: its node is slow to see the shared directory, or overloaded",
                        late.as_secs_f64()
                    ));
                }
                return Ok(start);
            }
            if std::time::Instant::now() >= deadline {
                let missing: Vec<String> = times
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| t.is_none())
                    .map(|(i, _)| i.to_string())
                    .collect();
                return Err(format!(
                    "replica {index} of {of}: replica {} did not arrive at the start of run {run} within {} s (it did not start, or failed before: see its output)",
                    missing.join(", "),
                    self.timeout.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The arrival time (Unix ns) of each of `of` replicas in `dir`, where it arrived.
fn arrivals(dir: &Path, of: u32) -> Vec<Option<u128>> {
    (0..of)
        .map(|i| {
            std::fs::read_to_string(dir.join(i.to_string()))
                .ok()
                .and_then(|t| t.trim().parse().ok())
        })
        .collect()
}

/// Sleeps until `at` (at once when it has passed).
pub fn sleep_until(at: SystemTime) {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }
}

/// One replica's figures in a merged run: a row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaRow {
    /// Which replica.
    pub replica: u32,
    /// Its node.
    pub node: String,
    /// Requests it completed.
    pub requests_completed: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Its requests per second.
    pub requests_per_second: f64,
    /// Open loop: its share of the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<f64>,
    /// Open loop: what it sent per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_rate: Option<f64>,
    /// Open loop: its schedule lag's p99, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_lag_p99_ms: Option<f64>,
    /// Its latency p99, ms.
    pub latency_p99_ms: f64,
    /// Why it stands out from the others, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<String>,
}

impl ReplicaRow {
    fn of(replica: u32, node: String, s: &super::Summary) -> Self {
        Self {
            replica,
            node,
            requests_completed: s.requests_completed,
            requests_failed: s.requests_failed,
            requests_per_second: s.requests_per_second,
            target_rate: s.target_rate,
            achieved_rate: s.achieved_rate,
            schedule_lag_p99_ms: s.schedule_lag_ms.as_ref().map(|m| m.p99),
            latency_p99_ms: s.latency_ms.p99,
            outlier: None,
        }
    }

    fn error_rate(&self) -> f64 {
        let all = self.requests_completed + self.requests_failed;
        if all == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let rate = self.requests_failed as f64 / all as f64;
            rate
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Marks each replica whose figures stand out from the others': an error rate above
/// 1 % and twice the replicas' median; an open loop's schedule lag p99 above 5 ms and
/// three times the median, or sending under 90 % of its share; a closed loop's
/// requests per second under half the median.
pub fn flag_outliers(rows: &mut [ReplicaRow]) {
    if rows.len() < 2 {
        return;
    }
    let errors = median(rows.iter().map(ReplicaRow::error_rate).collect());
    let lags = median(rows.iter().filter_map(|r| r.schedule_lag_p99_ms).collect());
    let rates = median(rows.iter().map(|r| r.requests_per_second).collect());
    for row in rows.iter_mut() {
        let mut why = Vec::new();
        let e = row.error_rate();
        if e > 0.01 && e > 2.0 * errors {
            why.push(format!(
                "error rate {:.1} % against a median of {:.1} %",
                e * 100.0,
                errors * 100.0
            ));
        }
        if let Some(lag) = row.schedule_lag_p99_ms {
            if lag > 5.0 && lag > 3.0 * lags {
                why.push(format!(
                    "schedule lag p99 {lag:.1} ms against a median of {lags:.1} ms"
                ));
            }
        }
        match (row.target_rate, row.achieved_rate) {
            (Some(target), Some(achieved)) if achieved < 0.9 * target => {
                why.push(format!("sent {achieved:.1} req/s of its {target:.1}"))
            }
            (None, _) if row.requests_per_second < 0.5 * rates => why.push(format!(
                "{:.1} req/s against a median of {rates:.1}",
                row.requests_per_second
            )),
            _ => {}
        }
        if !why.is_empty() {
            row.outlier = Some(why.join("; "));
        }
    }
}

/// What merging a client's replicas made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merged {
    /// How many replicas the client had (0: it ran none).
    pub replicas: u32,
    /// The merged runs' directories, relative to `results/` (`.` for a single run).
    pub runs: Vec<PathBuf>,
    /// What went wrong with replicas: each names the replica.
    pub problems: Vec<String>,
}

/// Merges the replicas under `results/replicas/` into one result per run, in
/// `results/` itself as a single engine would have written it: `summary.json` (the
/// merged figures, with `replicas`: a row per replica, and `replica_problems`),
/// `recorder.json`, and `requests.jsonl` (every replica's requests, each line with its
/// `replica`). A run some replica did not complete is merged from those that did, and
/// its problems say which did not. `Ok(None)`: no replicas ran here.
///
/// # Errors
/// A replica's files that cannot be read, or merged results that cannot be written.
pub fn merge_results(results: &Path) -> Result<Option<Merged>, String> {
    let root = results.join(REPLICAS_DIR);
    if !root.is_dir() {
        return Ok(None);
    }
    let mut infos = Vec::new();
    for entry in std::fs::read_dir(&root).map_err(|e| format!("{}: {e}", root.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(index) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let info = std::fs::read_to_string(path.join(REPLICA_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<ReplicaInfo>(&t).ok());
        infos.push((index, path, info));
    }
    infos.sort_by_key(|(i, _, _)| *i);
    let of = infos
        .iter()
        .filter_map(|(_, _, info)| info.as_ref().map(|i| i.replica.of))
        .max()
        .unwrap_or(0);
    let mut merged = Merged {
        replicas: of,
        ..Merged::default()
    };
    if of == 0 {
        merged
            .problems
            .push("no replica started (none wrote its replica.json)".into());
        return Ok(Some(merged));
    }
    for index in 0..of {
        match infos.iter().find(|(i, _, _)| *i == index) {
            None | Some((_, _, None)) => merged.problems.push(format!(
                "replica {index} of {of} never started: no node ran it, or it failed before it began (see the job's stderr)"
            )),
            Some((_, _, Some(info))) => {
                if let Some(error) = &info.error {
                    merged.problems.push(format!(
                        "replica {index} of {of} on {} failed: {error}",
                        info.node
                    ));
                } else if info.ended_at.is_none() {
                    merged.problems.push(format!(
                        "replica {index} of {of} on {} did not finish: it was killed or crashed (see the job's stderr)",
                        info.node
                    ));
                }
            }
        }
    }
    // Every run directory (relative) that some replica completed.
    let mut runs = std::collections::BTreeSet::new();
    for (_, dir, _) in &infos {
        for run in run_dirs(dir) {
            runs.insert(run);
        }
    }
    for run in runs {
        let mut records = Vec::new();
        let mut rows = Vec::new();
        let mut first: Option<Value> = None;
        let mut missing = Vec::new();
        for (index, dir, info) in &infos {
            let run_dir = dir.join(&run);
            let record = std::fs::read_to_string(run_dir.join("recorder.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<RunRecord>(&t).ok());
            let Some(record) = record else {
                missing.push(index.to_string());
                continue;
            };
            let summary = record.summary()?;
            let node = info
                .as_ref()
                .map_or_else(|| "?".to_owned(), |i| i.node.clone());
            rows.push(ReplicaRow::of(*index, node, &summary));
            records.push(record);
            if first.is_none() {
                first = std::fs::read_to_string(run_dir.join("summary.json"))
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok());
            }
        }
        let absent = u32::try_from(infos.len()).unwrap_or(u32::MAX) < of;
        let mut run_problems = Vec::new();
        if !missing.is_empty() || absent {
            let have = u32::try_from(rows.len()).unwrap_or(u32::MAX);
            run_problems.push(format!(
                "{have} of {of} replicas completed this run: its figures are not the whole load"
            ));
        }
        flag_outliers(&mut rows);
        let record = RunRecord::merged(&records)?;
        let summary = record.summary()?;
        let mut value = first.unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        let map = value
            .as_object_mut()
            .ok_or("a summary.json that is not an object")?;
        // The replica's own load was its share: the merged run's is in `replicas`.
        map.remove("load");
        if let Value::Object(figures) = serde_json::to_value(&summary).expect("summaries serialise")
        {
            map.extend(figures);
        }
        map.insert(
            "replicas".into(),
            serde_json::to_value(&rows).expect("rows serialise"),
        );
        if !run_problems.is_empty() {
            map.insert("replica_problems".into(), serde_json::json!(run_problems));
        }
        let out = results.join(&run);
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        let write = |name: &str, text: String| {
            std::fs::write(out.join(name), text)
                .map_err(|e| format!("{}: {e}", out.join(name).display()))
        };
        write(
            "summary.json",
            serde_json::to_string_pretty(&value).expect("JSON") + "\n",
        )?;
        write(
            "recorder.json",
            serde_json::to_string(&record).expect("JSON") + "\n",
        )?;
        merge_requests(&infos, &run, &out.join("requests.jsonl"))?;
        merged.runs.push(run);
    }
    Ok(Some(merged))
}

/// The run directories below a replica's: `.` for a single run, else each `run-NNN`.
fn run_dirs(dir: &Path) -> Vec<PathBuf> {
    if dir.join("recorder.json").is_file() {
        return vec![PathBuf::from(".")];
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("recorder.json").is_file())
        .map(|e| PathBuf::from(e.file_name()))
        .collect();
    runs.sort();
    runs
}

/// Every replica's `requests.jsonl` of `run`, each line with its `replica` first.
fn merge_requests(
    infos: &[(u32, PathBuf, Option<ReplicaInfo>)],
    run: &Path,
    out: &Path,
) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for (index, dir, _) in infos {
        let Ok(file) = std::fs::File::open(dir.join(run).join("requests.jsonl")) else {
            continue;
        };
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if let Some(rest) = line.strip_prefix('{') {
                writeln!(w, "{{\"replica\":{index},{rest}").map_err(|e| e.to_string())?;
            }
        }
    }
    w.flush().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Arrival, Slo};

    fn open(rate: f64, cap: Option<u32>) -> LoadSpec {
        LoadSpec {
            model: LoadModel::Open {
                rate,
                arrival: Arrival::Constant,
                max_concurrency: cap,
            },
            duration: Some(Duration::from_secs(1)),
            requests: None,
            warmup: Duration::ZERO,
            slo: Slo::default(),
            keep_samples: false,
            seed: 7,
            start_at: None,
            phase: Duration::ZERO,
            implicit_model: false,
            ramp_up: Duration::ZERO,
        }
    }

    #[test]
    fn concurrency_and_requests_split_as_evenly_as_possible_and_add_up() {
        for (total, of) in [(10u32, 3u32), (2, 2), (7, 7), (100, 8)] {
            let mut users = Vec::new();
            let mut requests = Vec::new();
            for index in 0..of {
                let mut load = LoadSpec::closed(total, 1001);
                Replica { index, of }.split(&mut load).unwrap();
                let LoadModel::Closed { concurrency } = load.model else {
                    unreachable!()
                };
                users.push(concurrency);
                requests.push(load.requests.unwrap());
            }
            assert_eq!(users.iter().sum::<u32>(), total);
            assert!(users.iter().max().unwrap() - users.iter().min().unwrap() <= 1);
            assert_eq!(requests.iter().sum::<u64>(), 1001);
        }
        let err = Replica { index: 2, of: 3 }
            .split(&mut LoadSpec::closed(2, 100))
            .unwrap_err();
        assert!(
            err.contains("concurrency 2 cannot be split over 3 replicas"),
            "{err}"
        );
    }

    #[test]
    fn a_replayed_trace_is_not_split_and_a_timed_dataset_does_not_replay_per_replica() {
        let mut replay = LoadSpec {
            model: LoadModel::Replay {
                time_scale: 1.0,
                max_concurrency: None,
            },
            ..open(1.0, None)
        };
        let e = Replica { index: 0, of: 2 }.split(&mut replay).unwrap_err();
        assert!(e.contains("cannot be split over 2 replicas"), "{e}");
        let mut implicit = LoadSpec {
            implicit_model: true,
            ..LoadSpec::closed(4, 100)
        };
        Replica { index: 1, of: 2 }.split(&mut implicit).unwrap();
        assert!(!implicit.implicit_model);
    }

    #[test]
    fn an_open_loop_rate_divides_its_schedules_interleave_and_seeds_differ() {
        let (mut a, mut b) = (open(2000.0, Some(9)), open(2000.0, Some(9)));
        Replica { index: 0, of: 2 }.split(&mut a).unwrap();
        Replica { index: 1, of: 2 }.split(&mut b).unwrap();
        let rate = |l: &LoadSpec| match l.model {
            LoadModel::Open {
                rate,
                max_concurrency,
                ..
            } => (rate, max_concurrency),
            LoadModel::Closed { .. } | LoadModel::Replay { .. } => unreachable!(),
        };
        assert_eq!(rate(&a), (1000.0, Some(5)));
        assert_eq!(rate(&b), (1000.0, Some(4)));
        // Replica 1 sends half a gap (1/2000 s) after replica 0: together, evenly.
        assert_eq!(a.phase, Duration::ZERO);
        assert_eq!(b.phase, Duration::from_micros(500));
        assert_ne!(a.seed, b.seed);
        assert!(
            Replica { index: 1, of: 2 }
                .split(&mut open(10.0, Some(1)))
                .unwrap_err()
                .contains("max_concurrency 1")
        );
    }

    #[test]
    fn a_share_is_even_and_the_first_replicas_take_the_rest() {
        assert_eq!(Replica { index: 0, of: 1 }.share(5), 5);
        assert_eq!(Replica { index: 3, of: 4 }.share(5), 1);
        assert_eq!(Replica { index: 0, of: 4 }.share(5), 2);
    }

    #[test]
    fn replicas_meet_at_one_start_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let barrier = |index| {
            Barrier::new(dir.path().to_path_buf(), Replica { index, of: 3 })
                .with_times(Duration::from_secs(5), Duration::from_millis(200))
        };
        let starts: Vec<SystemTime> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    let b = barrier(i);
                    s.spawn(move || {
                        std::thread::sleep(Duration::from_millis(u64::from(i) * 50));
                        b.arrive(0).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}");
        assert!(starts[0] > SystemTime::now() - Duration::from_millis(200));
        // Run 1: replica 2 never comes.
        let lonely = Barrier::new(dir.path().to_path_buf(), Replica { index: 0, of: 3 })
            .with_times(Duration::from_millis(100), Duration::from_millis(200));
        let err = std::thread::scope(|s| {
            let one = barrier(1).with_times(Duration::from_millis(100), Duration::from_millis(200));
            let h = s.spawn(move || one.arrive(1));
            let err = lonely.arrive(1).unwrap_err();
            let _ = h.join();
            err
        });
        assert!(
            err.contains("replica 2 did not arrive at the start of run 1"),
            "{err}"
        );
        // A replica that sees the last arrival after the common start is late.
        let late = Barrier::new(dir.path().to_path_buf(), Replica { index: 0, of: 1 })
            .with_times(Duration::from_secs(1), Duration::ZERO);
        std::fs::create_dir_all(dir.path().join("run-002")).unwrap();
        let err = late.arrive(2).unwrap_err();
        assert!(err.contains("after their common start"), "{err}");
    }

    /// Replica `index` of `of` on `node` in `results`, which completed requests of
    /// these latencies (ms) in a run of one second; `ended`: it says it finished.
    fn replica_ran(
        results: &Path,
        index: u32,
        of: u32,
        node: &str,
        latencies: &[u64],
        ended: bool,
    ) {
        use crate::workload::{Outcome, Recorder, RunResult};
        let dir = results.join(REPLICAS_DIR).join(index.to_string());
        let mut info = ReplicaInfo::starting(Replica { index, of });
        info.node = node.to_owned();
        info.ended_at = ended.then_some(1.0);
        info.write(&dir).unwrap();
        if latencies.is_empty() {
            return;
        }
        let mut rec = Recorder::new(Slo::default(), true);
        for (n, ms) in latencies.iter().enumerate() {
            let end = Duration::from_millis(*ms);
            rec.record(
                n as u64,
                Duration::ZERO,
                Duration::ZERO,
                end,
                false,
                Outcome::default(),
            );
        }
        let result = RunResult {
            summary: rec.summary(Duration::from_secs(1), None),
            record: RunRecord {
                measured_seconds: 1.0,
                open: None,
                recorder: rec.state(),
            },
            samples: rec.into_samples(),
        };
        result
            .write(
                &dir,
                &serde_json::json!({"parameters": {"concurrency": 2}, "load": {}}),
            )
            .unwrap();
    }

    #[test]
    fn merged_replicas_are_every_request_in_one_histogram_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path();
        let a: Vec<u64> = (1..=100).collect();
        let b: Vec<u64> = (101..=400).collect();
        replica_ran(results, 0, 2, "node2", &a, true);
        replica_ran(results, 1, 2, "node3", &b, true);
        let merged = merge_results(results).unwrap().expect("replicas ran");
        assert_eq!(
            (merged.replicas, merged.problems.len()),
            (2, 0),
            "{merged:?}"
        );
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(results.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(s["requests_completed"], 400);
        assert!((s["requests_per_second"].as_f64().unwrap() - 400.0).abs() < 1e-9);
        // The union's median is 200 ms and its p99 396 ms: an average of the two
        // replicas' (50 and 250; 99 and 397) would be neither.
        for (key, exact) in [("p50", 200.0), ("p99", 396.0)] {
            let got = s["latency_ms"][key].as_f64().unwrap();
            assert!((got - exact).abs() <= exact * 0.001, "{key}: {got}");
        }
        assert_eq!(
            s["parameters"]["concurrency"], 2,
            "the replicas' own keys are kept"
        );
        assert!(s.get("load").is_none(), "a replica's share is not the load");
        let rows = s["replicas"].as_array().unwrap();
        assert_eq!(rows[0]["node"], "node2");
        assert_eq!(rows[1]["requests_completed"], 300);
        let lines = std::fs::read_to_string(results.join("requests.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 400);
        assert!(lines.lines().last().unwrap().starts_with("{\"replica\":1,"));

        // Three replicas: one completed, one killed midway, one that never started.
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path();
        replica_ran(results, 0, 3, "node1", &a, true);
        replica_ran(results, 1, 3, "node2", &[], false);
        let merged = merge_results(results).unwrap().unwrap();
        assert_eq!(
            merged.problems,
            [
                "replica 1 of 3 on node2 did not finish: it was killed or crashed (see the job's stderr)",
                "replica 2 of 3 never started: no node ran it, or it failed before it began (see the job's stderr)",
            ]
        );
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(results.join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(
            s["replica_problems"][0],
            "1 of 3 replicas completed this run: its figures are not the whole load"
        );
        // No replicas here at all: nothing to merge.
        assert_eq!(merge_results(&results.join("nothing")).unwrap(), None);
    }

    #[test]
    fn an_outlier_is_flagged_by_its_error_rate_lag_or_rate() {
        let row = |replica, completed, failed, lag| ReplicaRow {
            replica,
            node: format!("node{replica}"),
            requests_completed: completed,
            requests_failed: failed,
            requests_per_second: completed as f64,
            target_rate: Some(1000.0),
            achieved_rate: Some(1000.0),
            schedule_lag_p99_ms: Some(lag),
            latency_p99_ms: 1.0,
            outlier: None,
        };
        let mut rows = vec![
            row(0, 1000, 0, 0.2),
            row(1, 1000, 1, 0.3),
            row(2, 900, 100, 40.0),
        ];
        flag_outliers(&mut rows);
        assert_eq!(rows[0].outlier, None);
        assert_eq!(rows[1].outlier, None);
        let why = rows[2].outlier.as_deref().unwrap();
        assert!(why.contains("error rate 10.0 %"), "{why}");
        assert!(why.contains("schedule lag p99 40.0 ms"), "{why}");
    }
}
