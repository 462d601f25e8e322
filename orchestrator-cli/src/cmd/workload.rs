//! `orchestrator workload run`: what a client job runs on its node. Every run of a
//! sweep (or of a load profile, one at a time), each replica's share, the index.

use std::path::Path;

use orchestrator_core::Registry;
use orchestrator_core::workload::replica::{self, Barrier, Replica, ReplicaInfo};
use std::sync::Arc;

use orchestrator_core::workload::profile::{self, Planner, Profile};
use orchestrator_core::workload::{
    self, LoadModel, LoadSpec, RunResult, Workload, WorkloadSpec, expand_sweep, load_of, repeats,
};
use serde_json::{Map, Value};

use crate::app::{Exit, on_signal, runtime};
use crate::cli::WorkloadCommand;
use crate::engine::{metrics_endpoint, prepare, print_summary, repeat_line, verdict};

/// `orchestrator workload run`.
pub fn workload_command(command: &WorkloadCommand) -> Exit {
    let WorkloadCommand::Run {
        spec_json,
        spec,
        out,
    } = command;
    let text = match (spec_json, spec) {
        (Some(json), _) => json.clone(),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return Exit::Failure;
            }
        },
        (None, None) => {
            eprintln!("error: give --spec FILE or --spec-json JSON");
            return Exit::Invalid;
        }
    };
    let spec: WorkloadSpec = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: the workload spec is not valid: {e}");
            return Exit::Invalid;
        }
    };
    run_spec(&spec, out)
}

/// One replica of a client's workload as it runs: its place, its barrier, its record.
struct ReplicaRun {
    replica: Replica,
    barrier: Barrier,
    info: ReplicaInfo,
    dir: std::path::PathBuf,
}

fn run_spec(spec: &WorkloadSpec, out: &Path) -> Exit {
    let Some(of) = spec.replicas.filter(|n| *n > 1) else {
        return run_runs(spec, out, None);
    };
    // A replica writes below `results/replicas/K/`, meets the others at the barrier
    // beside them, and records itself (where it ran, how it ended) for the merge.
    let replica = match Replica::from_env(of) {
        Ok(r) => r,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Invalid;
        }
    };
    let root = out.join(replica::REPLICAS_DIR);
    let mut run = ReplicaRun {
        replica,
        barrier: Barrier::new(root.join(".barrier"), replica),
        info: ReplicaInfo::starting(replica),
        dir: root.join(replica.index.to_string()),
    };
    eprintln!(
        "replica {} of {of} on {} (pid {})",
        replica.index, run.info.node, run.info.pid
    );
    if let Err(e) = run.info.write(&run.dir) {
        eprintln!("error: cannot write into {}: {e}", run.dir.display());
        return Exit::Failure;
    }
    let dir = run.dir.clone();
    let exit = run_runs(spec, &dir, Some(&mut run));
    run.info.end();
    if exit != Exit::Success && run.info.error.is_none() {
        run.info.error = Some(format!(
            "it exited with code {} (see the job's stderr)",
            exit as i32
        ));
    }
    if let Err(e) = run.info.write(&run.dir) {
        eprintln!("error: cannot write into {}: {e}", run.dir.display());
        return Exit::Failure;
    }
    exit
}

/// A replica of a monitored session's client tells its Prometheus where its live
/// metrics are (`client-NAME-K.json` in `ORCH_TARGETS_DIR`), as a job registers itself.
fn register_replica(run: &ReplicaRun, port: u16) {
    let Ok(dir) = std::env::var("ORCH_TARGETS_DIR") else {
        return;
    };
    let (session, client) = (
        std::env::var("ORCH_SESSION_ID").unwrap_or_default(),
        std::env::var("ORCH_JOB_NAME").unwrap_or_default(),
    );
    let index = run.replica.index.to_string();
    let file = orchestrator_core::monitoring::target_file(
        vec![format!("client-{client}-{index}.json")],
        port,
        &[
            ("job", "client"),
            ("client", &client),
            ("session", &session),
            ("replica", &index),
        ],
        None,
        true,
    );
    let path = Path::new(&dir).join(file.name.concat());
    if let Err(e) = replica::write_atomically(&path, file.json.join(&run.info.node).as_bytes()) {
        eprintln!(
            "warning: cannot register with the session's Prometheus in {}: {e}",
            path.display()
        );
    }
}

/// A run ready to start: its parameters as swept, its repeat, salt, load and workload.
struct Prepared {
    params: Map<String, Value>,
    repeat_of: u64,
    salt: Option<u64>,
    load: LoadSpec,
    workload: Arc<dyn Workload>,
}

/// How a job's runs are prepared: its driver and target, and each run's own salt.
struct Preparer<'a> {
    spec: &'a WorkloadSpec,
    salted: bool,
    session: String,
    job: String,
    made: u64,
}

impl Preparer<'_> {
    /// Run `load` of `params` (`driver_params` the driver's part), its own salt given.
    fn prepare(
        &mut self,
        params: &Map<String, Value>,
        repeat_of: u64,
        load: LoadSpec,
        driver_params: &Map<String, Value>,
    ) -> Result<Prepared, String> {
        let mut driver_params = driver_params.clone();
        let salt = self
            .salted
            .then(|| workload::run_salt(&self.session, &self.job, self.made));
        if let Some(salt) = salt {
            driver_params.insert("prompt_salt".into(), Value::from(salt));
        }
        self.made += 1;
        let workload = prepare(&self.spec.driver, &self.spec.url, &driver_params)?;
        Ok(Prepared {
            params: params.clone(),
            repeat_of,
            salt,
            load,
            workload,
        })
    }
}

/// What a job's runs share while they run, and what they add up to.
struct Runs<'a, 'r> {
    spec: &'a WorkloadSpec,
    out: &'a Path,
    url: String,
    rt: tokio::runtime::Runtime,
    live: Option<Arc<workload::LiveMetrics>>,
    stop: orchestrator_core::CancellationToken,
    replica: Option<&'r mut ReplicaRun>,
    repeated: bool,
    index: Vec<Value>,
    summaries: Vec<(String, Value, Value)>,
    exit: Exit,
}

impl Runs<'_, '_> {
    /// Runs run `i` (into `out` itself when it is the only one) and writes its results:
    /// its summary, or `None` when it could not run. `Err` ends the job.
    fn one(
        &mut self,
        i: usize,
        only: bool,
        what: &str,
        run: Prepared,
        extra_fields: &Value,
    ) -> Result<Option<workload::Summary>, Exit> {
        let Prepared {
            params,
            repeat_of,
            salt,
            mut load,
            workload,
        } = run;
        let dir = if only {
            self.out.to_path_buf()
        } else {
            self.out.join(format!("run-{i:03}"))
        };
        eprintln!("run {what}: {}", Value::Object(params.clone()));
        if let Some(run) = self.replica.as_deref_mut() {
            match run.barrier.arrive(i) {
                Ok(start) => load.start_at = Some(start),
                Err(message) => {
                    eprintln!("error: {message}");
                    run.info.error = Some(message);
                    return Err(Exit::Failure);
                }
            }
        }
        let run = workload::run_until(workload, &load, self.live.clone(), self.stop.clone());
        let result: RunResult = match self.rt.block_on(run) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                self.exit = Exit::Failure;
                self.index.push(
                    serde_json::json!({"run": i, "parameters": params, "error": e.to_string()}),
                );
                return Ok(None);
            }
        };
        let mut extra = serde_json::json!({"driver": self.spec.driver, "url": self.url, "parameters": params, "load": load});
        if let (Some(map), Some(more)) = (extra.as_object_mut(), extra_fields.as_object()) {
            map.extend(more.clone());
        }
        if self.repeated {
            extra["repeat"] = serde_json::json!(repeat_of);
        }
        if let Some(salt) = salt {
            extra["prompt_salt"] = serde_json::json!(salt);
        }
        if self.stop.is_cancelled() {
            extra["interrupted"] = Value::Bool(true);
            self.exit = Exit::Interrupted;
        }
        if let Err(e) = result.write(&dir, &extra) {
            eprintln!("error: cannot write {}: {e}", dir.display());
            return Err(Exit::Failure);
        }
        print_summary(&self.url, &result.summary);
        if matches!(verdict(&result.summary), Exit::Failure) {
            self.exit = Exit::Failure;
        }
        let label = dir
            .strip_prefix(self.out)
            .unwrap_or(&dir)
            .display()
            .to_string();
        // As summary.json has it: a profile's `profile_step` makes its runs no repeats.
        let mut summary = serde_json::to_value(&result.summary).expect("a summary serialises");
        if let (Some(map), Some(more)) = (summary.as_object_mut(), extra_fields.as_object()) {
            map.extend(more.clone());
        }
        self.summaries
            .push((label.clone(), Value::Object(params.clone()), summary));
        let mut row = serde_json::json!({
            "run": i,
            "dir": label,
            "repeat": repeat_of,
            "parameters": params,
            "requests_completed": result.summary.requests_completed,
            "requests_failed": result.summary.requests_failed,
            "requests_per_second": result.summary.requests_per_second,
            "latency_p50_ms": result.summary.latency_ms.p50,
            "latency_p99_ms": result.summary.latency_ms.p99,
        });
        if let (Some(map), Some(more)) = (row.as_object_mut(), extra_fields.as_object()) {
            map.extend(more.clone());
        }
        self.index.push(row);
        Ok(Some(result.summary))
    }
}

/// The settings a load profile decides itself, refused beside it.
const PROFILE_DECIDES: &[&str] = &[
    "concurrency",
    "concurrent_users",
    "rate",
    "requests_per_second",
    "max_concurrency",
    "time_scale",
];

#[allow(clippy::too_many_lines)]
fn run_runs(spec: &WorkloadSpec, out: &Path, replica: Option<&mut ReplicaRun>) -> Exit {
    // `metrics_port` is the job's, not a run's: one endpoint counts every run.
    let mut parameters = spec.parameters.clone();
    let metrics_port = match parameters.remove("metrics_port") {
        None => None,
        // Replicas on one node serve on ports of their own: the port plus their number.
        Some(v) => match v
            .as_u64()
            .map(|p| p + replica.as_ref().map_or(0, |r| u64::from(r.replica.index)))
            .and_then(|p| u16::try_from(p).ok())
        {
            Some(p) => Some(p),
            None => {
                eprintln!("error: `metrics_port` must be a port number, not {v}");
                return Exit::Invalid;
            }
        },
    };
    // `repeat` runs every point of the sweep that many times, each with its own seed.
    let repeat = match parameters.remove("repeat") {
        None => 1,
        Some(v) => match v.as_u64().filter(|n| (1..=1000).contains(n)) {
            Some(n) => n,
            None => {
                eprintln!("error: `repeat` must be a whole number from 1 to 1000, not {v}");
                return Exit::Invalid;
            }
        },
    };
    // A load profile chooses each run's load from the last one's result.
    let profile = match parameters
        .remove("load")
        .map(|v| Profile::parse(&v))
        .transpose()
    {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Invalid;
        }
    };
    let runs = expand_sweep(&parameters);
    if profile.is_some() {
        let decided: Vec<&str> = PROFILE_DECIDES
            .iter()
            .copied()
            .filter(|k| parameters.contains_key(*k))
            .collect();
        let problem = if runs.len() > 1 {
            Some("a load profile runs one combination of parameters: drop the lists".to_owned())
        } else if repeat > 1 {
            Some("a load profile runs each of its points once: drop `repeat`".to_owned())
        } else if replica.is_some() {
            Some("a load profile cannot run on replicas: run it with one".to_owned())
        } else if !decided.is_empty() {
            Some(format!(
                "a load profile sets the load itself: drop {}",
                decided.join(", ")
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            eprintln!("error: {problem}");
            return Exit::Invalid;
        }
    }
    // A driver that makes synthetic prompts gets a salt of its own for every run (unless
    // the recipe fixes one): no run resends another's prompts, so a prefix cache warmed
    // by an earlier run cannot flatter a later one.
    let salted = !parameters.contains_key("prompt_salt")
        && Registry::workload_named(&spec.driver).is_ok_and(|d| {
            d.parameters_schema()["properties"]
                .get("prompt_salt")
                .is_some()
        });
    let mut job = std::env::var("ORCH_JOB_NAME").unwrap_or_default();
    if let Some(r) = &replica {
        // Each replica's prompts are its own.
        job = format!("{job}.{}", r.replica.index);
    }
    let mut preparer = Preparer {
        spec,
        salted,
        session: std::env::var("ORCH_SESSION_ID").unwrap_or_default(),
        job,
        made: 0,
    };
    // Check every run before the first starts: a bad combination fails now.
    let mut prepared = Vec::new();
    let mut profiled = None;
    for params in &runs {
        let mut load_params = params.clone();
        // A profile's runs have its arrival; the rest of the load is the recipe's.
        let arrival = if profile.is_some() {
            load_params.remove("arrival");
            load_params.remove("burstiness");
            match workload::load_model(
                None,
                Some(1.0),
                params
                    .get("arrival")
                    .and_then(Value::as_str)
                    .or(Some("constant")),
                params.get("burstiness").and_then(Value::as_f64),
                None,
            ) {
                Ok(LoadModel::Open { arrival, .. }) => arrival,
                Ok(_) => unreachable!("a rate makes an open loop"),
                Err(message) => {
                    eprintln!("error: {message}");
                    return Exit::Invalid;
                }
            }
        } else {
            workload::Arrival::Constant
        };
        let (load, driver_params) = match load_of(&load_params, spec.duration_s) {
            Ok(ok) => ok,
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::Invalid;
            }
        };
        if let Some(profile) = &profile {
            profiled = Some((
                Planner::new(profile.clone(), arrival),
                params.clone(),
                load,
                driver_params,
            ));
            break;
        }
        for r in 0..repeat {
            let mut load = load.clone();
            load.seed += r;
            if let Some(run) = &replica {
                if let Err(message) = run.replica.split(&mut load) {
                    eprintln!("error: {message}");
                    return Exit::Invalid;
                }
            }
            match preparer.prepare(params, r + 1, load, &driver_params) {
                Ok(run) => prepared.push(run),
                Err(message) => {
                    eprintln!("error: {message}");
                    return Exit::Invalid;
                }
            }
        }
    }
    let rt = runtime(None);
    // The endpoint lives as long as the runtime: to the end of the job's last run.
    let (live, _stop) = match metrics_port.map(|p| metrics_endpoint(&rt, p)).transpose() {
        Ok(endpoint) => endpoint.unzip(),
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Failure;
        }
    };
    if let (Some(run), Some(port)) = (&replica, metrics_port) {
        register_replica(run, port);
    }
    // SIGTERM (the job cancelled, its time limit) or Ctrl-C ends the current run
    // early: what it measured is written, marked interrupted, and no further run
    // starts.
    let stop = orchestrator_core::CancellationToken::new();
    {
        let _inside = rt.enter();
        on_signal(stop.clone(), |why| {
            eprintln!("{why}: stopping the run and writing what it measured");
        });
    }
    let mut runs = Runs {
        spec,
        out,
        url: orchestrator_core::redact_url(&spec.url),
        rt,
        live,
        stop,
        replica,
        repeated: repeat > 1,
        index: Vec::new(),
        summaries: Vec::new(),
        exit: Exit::Success,
    };
    let mut found = None;
    if let Some((mut planner, params, base, driver_params)) = profiled {
        let mut i = 0;
        while let Some(step) = planner.next_step() {
            if runs.stop.is_cancelled() {
                break;
            }
            let load = LoadSpec {
                model: step.model,
                implicit_model: false,
                ..base.clone()
            };
            let run = match preparer.prepare(&params, 1, load, &driver_params) {
                Ok(run) => run,
                Err(message) => {
                    eprintln!("error: {message}");
                    return Exit::Invalid;
                }
            };
            let what = format!(
                "{} ({} of the {})",
                i + 1,
                step.kind,
                planner.outcome().profile
            );
            let fields = serde_json::json!({"profile_step": step.kind});
            match runs.one(i, false, &what, run, &fields) {
                Ok(Some(summary)) => planner.record(&step, &summary),
                Ok(None) => break,
                Err(exit) => return exit,
            }
            i += 1;
        }
        let outcome = planner.outcome().clone();
        eprintln!("{}", profile_line(&outcome));
        // An SLO search that found no rate meeting the objectives has no answer; a
        // sweep without a knee still measured its curve.
        if outcome.profile == "slo_search" && outcome.slo_rate.is_none() {
            runs.exit = Exit::Failure;
        }
        found = Some(outcome);
    } else {
        let total = prepared.len();
        for (i, run) in prepared.into_iter().enumerate() {
            if runs.stop.is_cancelled() {
                break;
            }
            let what = format!("{}/{total}", i + 1);
            if let Err(exit) = runs.one(i, total == 1, &what, run, &Value::Null) {
                return exit;
            }
        }
    }
    let of: Vec<repeats::RunOf<'_>> = runs
        .summaries
        .iter()
        .map(|(run, parameters, summary)| repeats::RunOf {
            client: "",
            run,
            parameters,
            summary,
        })
        .collect();
    let points = repeats::points(&of);
    for (i, point) in points.iter().enumerate() {
        eprintln!("{}", repeat_line(i, point));
    }
    let mut index = serde_json::json!({"driver": spec.driver, "url": runs.url, "runs": runs.index, "points": points});
    if let Some(outcome) = found {
        index["profile"] = serde_json::to_value(outcome).expect("JSON");
    }
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| {
        std::fs::write(
            out.join("index.json"),
            serde_json::to_string_pretty(&index).expect("JSON"),
        )
    }) {
        eprintln!("error: cannot write {}: {e}", out.display());
        return Exit::Failure;
    }
    runs.exit
}

/// What a load profile found, in a line or two.
fn profile_line(o: &profile::Outcome) -> String {
    let point = |i: usize| &o.points[i];
    let mut line = match (o.profile, o.knee, o.slo_rate) {
        ("sweep", Some(k), _) => {
            let p = point(k);
            format!(
                "sweep: the knee is run {} ({}): {:.2} req/s offered at latency p99 {:.1} ms, {:.2} requests in flight on average",
                k + 1,
                p.kind,
                p.offered(),
                p.latency_p99_ms,
                p.mean_in_flight
            )
        }
        (_, _, Some(rate)) => format!(
            "slo search: {rate:.3} req/s is the highest rate that met the objectives{}",
            match o.faster_missed {
                Some(true) => ", and 20 % faster missed them",
                Some(false) => "; 20 % faster met them too (the answer is a lower bound)",
                None => "",
            }
        ),
        (name, _, _) => format!("{name}: no answer"),
    };
    if let Some(problem) = &o.problem {
        line.push_str(&format!("\nPROFILE: {problem}"));
    }
    line
}
