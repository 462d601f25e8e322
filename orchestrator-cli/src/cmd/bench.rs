//! `orchestrator bench` and `orchestrator workload run`: the workload engine, here.

use std::path::Path;
use std::sync::Arc;

use orchestrator_core::Registry;
use orchestrator_core::workload::replica::{self, Barrier, Replica, ReplicaInfo};
use orchestrator_core::workload::{
    self, LoadSpec, RunResult, Slo, Summary, Workload, WorkloadSpec, expand_sweep, load_model,
    load_of, repeats,
};
use serde_json::{Map, Value};

use crate::app::{Exit, on_signal, runtime};
use crate::cli::{BenchArgs, WorkloadCommand};
use crate::output;

/// Serves live metrics on 0.0.0.0:`port` (0: any free port) until the token is
/// cancelled; says where on stderr.
fn metrics_endpoint(
    rt: &tokio::runtime::Runtime,
    port: u16,
) -> Result<
    (
        Arc<workload::LiveMetrics>,
        orchestrator_core::CancellationToken,
    ),
    String,
> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(("0.0.0.0", port)))
        .map_err(|e| format!("cannot serve metrics on port {port}: {e}"))?;
    let bound = listener.local_addr().map_or(port, |a| a.port());
    let live = workload::LiveMetrics::new();
    let stop = orchestrator_core::CancellationToken::new();
    rt.spawn(workload::serve_metrics(
        live.clone(),
        listener,
        stop.clone(),
    ));
    eprintln!("metrics: http://0.0.0.0:{bound}/metrics (Prometheus text format)");
    Ok((live, stop))
}

fn duration(text: Option<&str>, flag: &str) -> Result<Option<std::time::Duration>, String> {
    text.map(|t| {
        t.parse::<orchestrator_recipes::Duration>()
            .map(orchestrator_recipes::Duration::to_std)
            .map_err(|e| format!("{flag}: {e}"))
    })
    .transpose()
}

/// `key=value` → the value as JSON when it parses, else as a string.
fn parameters(pairs: &[String]) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("-p {pair}: expected KEY=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        map.insert(key.to_owned(), value);
    }
    Ok(map)
}

fn prepare(
    driver: &str,
    url: &str,
    params: &Map<String, Value>,
) -> Result<Arc<dyn Workload>, String> {
    let driver = Registry::workload_named(driver)
        .map_err(|e| format!("{}\n  hint: {}", e.message, e.hint.unwrap_or_default()))?;
    match driver.workload(url, params) {
        Some(Ok(workload)) => Ok(workload),
        Some(Err(e)) => Err(format!(
            "{}\n  hint: {}",
            e.message,
            e.hint.unwrap_or_default()
        )),
        None => Err(format!(
            "the `{}` workload runs a program of its own, not the engine",
            driver.name()
        )),
    }
}

/// `orchestrator bench`.
pub fn bench(args: &BenchArgs) -> Exit {
    let spec = (|| -> Result<(LoadSpec, Arc<dyn Workload>), String> {
        let measured = duration(args.duration.as_deref(), "--duration")?;
        let model = load_model(
            args.concurrency.map(f64::from),
            args.rate,
            args.arrival.as_deref(),
            args.burstiness,
            args.max_concurrency.map(f64::from),
        )?;
        let spec = LoadSpec {
            model,
            duration: measured.or_else(|| {
                args.requests
                    .is_none()
                    .then(|| std::time::Duration::from_secs(10))
            }),
            requests: args.requests,
            warmup: duration(args.warmup.as_deref(), "--warmup")?.unwrap_or_default(),
            slo: Slo {
                latency_ms: args.slo_latency_ms,
                ttft_ms: args.slo_ttft_ms,
                tpot_ms: args.slo_tpot_ms,
            },
            keep_samples: args.out.is_some(),
            start_at: None,
            phase: std::time::Duration::ZERO,
            seed: args.seed,
            implicit_model: args.concurrency.is_none()
                && args.rate.is_none()
                && args.arrival.is_none(),
        };
        let workload = prepare(&args.driver, &args.url, &parameters(&args.params)?)?;
        Ok((spec, workload))
    })();
    let (spec, workload) = match spec {
        Ok(ok) => ok,
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Invalid;
        }
    };
    let rt = runtime(None);
    let (live, stop) = match args
        .metrics_port
        .map(|p| metrics_endpoint(&rt, p))
        .transpose()
    {
        Ok(endpoint) => endpoint.unzip(),
        Err(message) => {
            eprintln!("error: {message}");
            return Exit::Failure;
        }
    };
    let result = rt.block_on(workload::run_live(workload, &spec, live));
    if let Some(stop) = stop {
        stop.cancel();
    }
    let result = match result {
        Ok(result) => result,
        Err(error) => {
            eprintln!("error: {error}");
            return Exit::Failure;
        }
    };
    // The URL may hold a password (postgres://user:pw@…): never printed or written.
    let url = orchestrator_core::redact_url(&args.url);
    let extra = serde_json::json!({"driver": args.driver, "url": url, "load": spec});
    if let Some(dir) = &args.out {
        if let Err(e) = result.write(dir, &extra) {
            eprintln!("error: cannot write {}: {e}", dir.display());
            return Exit::Failure;
        }
    }
    if args.json {
        let mut value = serde_json::to_value(&result.summary).expect("summaries serialise");
        if let (Some(map), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            map.extend(extra.clone());
        }
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
    } else {
        print_summary(&url, &result.summary);
    }
    verdict(&result.summary)
}

/// `orchestrator results merge DIR... [--out DIR] [--json]`: one exact result of
/// runs that loaded one service at once.
pub fn merge(dirs: &[std::path::PathBuf], out: Option<&Path>, json: bool) -> Exit {
    let mut records = Vec::new();
    let mut runs = Vec::new();
    for dir in dirs {
        let path = dir.join("recorder.json");
        let read = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                serde_json::from_str::<workload::RunRecord>(&text).map_err(|e| e.to_string())
            })
            .and_then(|record| Ok((record.summary()?, record)));
        let (s, record) = match read {
            Ok(read) => read,
            Err(e) => {
                eprintln!(
                    "error: cannot read {}: {e} (the engine writes it beside summary.json)",
                    path.display()
                );
                return Exit::Invalid;
            }
        };
        runs.push(serde_json::json!({
            "dir": dir.display().to_string(),
            "requests_completed": s.requests_completed,
            "requests_failed": s.requests_failed,
            "requests_per_second": s.requests_per_second,
            "achieved_rate": s.achieved_rate,
            "latency_p99_ms": s.latency_ms.p99,
            "schedule_lag_p99_ms": s.schedule_lag_ms.as_ref().map(|m| m.p99),
        }));
        records.push(record);
    }
    let merged = match workload::RunRecord::merged(&records).and_then(|m| Ok((m.summary()?, m))) {
        Ok(merged) => merged,
        Err(e) => {
            eprintln!("error: the runs cannot be merged: {e}");
            return Exit::Invalid;
        }
    };
    let (summary, record) = merged;
    let mut value = serde_json::to_value(&summary).expect("summaries serialise");
    if let Some(map) = value.as_object_mut() {
        map.insert("merged_from".into(), Value::Array(runs.clone()));
    }
    if let Some(out) = out {
        let written = std::fs::create_dir_all(out).and_then(|()| {
            std::fs::write(
                out.join("summary.json"),
                serde_json::to_string_pretty(&value).expect("JSON") + "\n",
            )?;
            std::fs::write(
                out.join("recorder.json"),
                serde_json::to_string(&record).expect("JSON") + "\n",
            )
        });
        if let Err(e) = written {
            eprintln!("error: cannot write into {}: {e}", out.display());
            return Exit::Failure;
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&value).expect("JSON"));
    } else {
        for run in &runs {
            eprintln!(
                "{}: {} completed, {} failed, {:.1} req/s",
                run["dir"].as_str().unwrap_or_default(),
                run["requests_completed"],
                run["requests_failed"],
                run["requests_per_second"].as_f64().unwrap_or_default()
            );
        }
        print_summary(&format!("{} runs, merged", records.len()), &summary);
    }
    verdict(&summary)
}

fn verdict(summary: &Summary) -> Exit {
    if summary.requests_completed == 0 && summary.requests_failed > 0 {
        Exit::Failure
    } else {
        Exit::Success
    }
}

fn print_summary(target: &str, s: &Summary) {
    // Failures first: a figure measured while requests failed is not the service's.
    let all = s.requests_completed + s.requests_failed;
    if s.requests_failed > 0 {
        let mut kinds: Vec<(&String, &u64)> = s.errors.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let top: Vec<String> = kinds
            .iter()
            .take(3)
            .map(|(kind, n)| format!("{kind} × {n}"))
            .collect();
        #[allow(clippy::cast_precision_loss)]
        let rate = s.requests_failed as f64 * 100.0 / all as f64;
        println!(
            "FAILED: {rate:.2} % of requests ({} of {all}): {}",
            s.requests_failed,
            top.join(", ")
        );
    }
    println!("target: {target}");
    println!(
        "requests: {} completed, {} failed in {:.2} s: {:.1} req/s",
        s.requests_completed, s.requests_failed, s.measured_seconds, s.requests_per_second
    );
    if let (Some(unit), Some(items), Some(rate)) = (s.unit, s.items_completed, s.items_per_second) {
        println!(
            "{unit}: {items} in {:.2} s: {rate:.1} {unit}/s",
            s.measured_seconds
        );
    }
    for (name, op) in &s.operations {
        let items = match (op.items_completed, op.items_per_second) {
            (Some(items), Some(rate)) => format!(", {items} items: {rate:.1}/s"),
            _ => String::new(),
        };
        println!(
            "{name}: {} completed, {} failed: {:.1} req/s{items}",
            op.requests_completed, op.requests_failed, op.requests_per_second
        );
    }
    if let Some(counters) = &s.server_counters {
        let grown: Vec<String> = counters
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(name, n)| format!("{name} +{n}"))
            .collect();
        println!(
            "the server counted: {}",
            if grown.is_empty() {
                "nothing".to_owned()
            } else {
                grown.join(", ")
            }
        );
    }
    if let (Some(target), Some(achieved)) = (s.target_rate, s.achieved_rate) {
        println!(
            "open loop: target {target:.1} req/s, achieved {achieved:.1} req/s, {} dropped at the cap",
            s.requests_dropped.unwrap_or(0)
        );
    }
    let mut rows = vec![metric_row("latency", &s.latency_ms)];
    for (name, op) in &s.operations {
        rows.push(metric_row(&format!("latency {name}"), &op.latency_ms));
    }
    for (name, metric) in [
        ("schedule lag", &s.schedule_lag_ms),
        ("ttft", &s.ttft_ms),
        ("tpot", &s.tpot_ms),
        ("itl", &s.itl_ms),
    ] {
        if let Some(m) = metric {
            rows.push(metric_row(name, m));
        }
    }
    print!(
        "{}",
        output::table(
            &[
                "MS", "MEAN", "STD", "MIN", "P50", "P90", "P95", "P99", "P99.9", "MAX"
            ],
            &rows
        )
    );
    if let Some(tps) = s.output_tokens_per_second {
        println!("output tokens/s: {tps:.1}");
    }
    if let Some(g) = &s.goodput {
        println!(
            "goodput: {:.1} req/s ({:.1} % of requests met the SLOs)",
            g.requests_per_second,
            g.fraction * 100.0
        );
    }
    for (kind, n) in &s.errors {
        println!("errors: {kind}: {n}");
    }
}

/// `point 1 (3 runs): requests_per_second 1234.5 ± 12.3 (95 % CI), CV 0.8 %; …`, and
/// what varied by more than 5 %.
fn repeat_line(index: usize, point: &repeats::RepeatPoint) -> String {
    let figures: Vec<String> = point
        .metrics
        .iter()
        .map(|(name, s)| {
            format!(
                "{name} {:.2} ± {:.2} (95 % CI), CV {:.1} %",
                s.mean,
                (s.ci95_high - s.ci95_low) / 2.0,
                s.cv * 100.0
            )
        })
        .collect();
    let mut line = format!(
        "point {} ({} runs, {}): {}",
        index + 1,
        point.runs.len(),
        point.parameters,
        figures.join("; ")
    );
    if !point.unstable.is_empty() {
        line.push_str(&format!(
            "\nUNSTABLE: {} varied by more than {} % across the runs",
            point.unstable.join(", "),
            repeats::MAX_STABLE_CV * 100.0
        ));
    }
    line
}

fn metric_row(name: &str, m: &workload::MetricSummary) -> Vec<String> {
    let f = |v: f64| format!("{v:.3}");
    vec![
        name.to_owned(),
        f(m.mean),
        f(m.std),
        f(m.min),
        f(m.p50),
        f(m.p90),
        f(m.p95),
        f(m.p99),
        f(m.p999),
        f(m.max),
    ]
}

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

fn run_runs(spec: &WorkloadSpec, out: &Path, mut replica: Option<&mut ReplicaRun>) -> Exit {
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
    let runs = expand_sweep(&parameters);
    // A driver that makes synthetic prompts gets a salt of its own for every run (unless
    // the recipe fixes one): no run resends another's prompts, so a prefix cache warmed
    // by an earlier run cannot flatter a later one.
    let salted = !parameters.contains_key("prompt_salt")
        && Registry::workload_named(&spec.driver).is_ok_and(|d| {
            d.parameters_schema()["properties"]
                .get("prompt_salt")
                .is_some()
        });
    let session = std::env::var("ORCH_SESSION_ID").unwrap_or_default();
    let mut job = std::env::var("ORCH_JOB_NAME").unwrap_or_default();
    if let Some(r) = &replica {
        // Each replica's prompts are its own.
        job = format!("{job}.{}", r.replica.index);
    }
    // Check every run before the first starts: a bad combination fails now.
    let mut prepared = Vec::new();
    for params in &runs {
        let (load, driver_params) = match load_of(params, spec.duration_s) {
            Ok(ok) => ok,
            Err(message) => {
                eprintln!("error: {message}");
                return Exit::Invalid;
            }
        };
        for r in 0..repeat {
            let mut load = load.clone();
            load.seed += r;
            if let Some(run) = &replica {
                if let Err(message) = run.replica.split(&mut load) {
                    eprintln!("error: {message}");
                    return Exit::Invalid;
                }
            }
            let mut driver_params = driver_params.clone();
            let salt = salted.then(|| workload::run_salt(&session, &job, prepared.len() as u64));
            if let Some(salt) = salt {
                driver_params.insert("prompt_salt".into(), Value::from(salt));
            }
            match prepare(&spec.driver, &spec.url, &driver_params) {
                Ok(workload) => prepared.push((params.clone(), r + 1, salt, load, workload)),
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
    let url = orchestrator_core::redact_url(&spec.url);
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
    let mut index = Vec::new();
    let mut summaries = Vec::new();
    let mut exit = Exit::Success;
    let total = prepared.len();
    for (i, (params, repeat_of, salt, load, workload)) in prepared.into_iter().enumerate() {
        if stop.is_cancelled() {
            break;
        }
        let dir = if total == 1 {
            out.to_path_buf()
        } else {
            out.join(format!("run-{i:03}"))
        };
        eprintln!("run {}/{total}: {}", i + 1, Value::Object(params.clone()));
        let mut load = load;
        if let Some(run) = replica.as_deref_mut() {
            match run.barrier.arrive(i) {
                Ok(start) => load.start_at = Some(start),
                Err(message) => {
                    eprintln!("error: {message}");
                    run.info.error = Some(message);
                    return Exit::Failure;
                }
            }
        }
        let run = workload::run_until(workload, &load, live.clone(), stop.clone());
        let result: RunResult = match rt.block_on(run) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                exit = Exit::Failure;
                index.push(
                    serde_json::json!({"run": i, "parameters": params, "error": e.to_string()}),
                );
                continue;
            }
        };
        let mut extra = serde_json::json!({"driver": spec.driver, "url": url, "parameters": params, "load": load});
        if repeat > 1 {
            extra["repeat"] = serde_json::json!(repeat_of);
        }
        if let Some(salt) = salt {
            extra["prompt_salt"] = serde_json::json!(salt);
        }
        if stop.is_cancelled() {
            extra["interrupted"] = Value::Bool(true);
            exit = Exit::Interrupted;
        }
        if let Err(e) = result.write(&dir, &extra) {
            eprintln!("error: cannot write {}: {e}", dir.display());
            return Exit::Failure;
        }
        print_summary(&url, &result.summary);
        if matches!(verdict(&result.summary), Exit::Failure) {
            exit = Exit::Failure;
        }
        let label = dir.strip_prefix(out).unwrap_or(&dir).display().to_string();
        summaries.push((
            label.clone(),
            Value::Object(params.clone()),
            serde_json::to_value(&result.summary).expect("a summary serialises"),
        ));
        index.push(serde_json::json!({
            "run": i,
            "dir": label,
            "repeat": repeat_of,
            "parameters": params,
            "requests_completed": result.summary.requests_completed,
            "requests_failed": result.summary.requests_failed,
            "requests_per_second": result.summary.requests_per_second,
            "latency_p50_ms": result.summary.latency_ms.p50,
            "latency_p99_ms": result.summary.latency_ms.p99,
        }));
    }
    let runs: Vec<repeats::RunOf<'_>> = summaries
        .iter()
        .map(|(run, parameters, summary)| repeats::RunOf {
            client: "",
            run,
            parameters,
            summary,
        })
        .collect();
    let points = repeats::points(&runs);
    for (i, point) in points.iter().enumerate() {
        eprintln!("{}", repeat_line(i, point));
    }
    let index =
        serde_json::json!({"driver": spec.driver, "url": url, "runs": index, "points": points});
    if let Err(e) = std::fs::create_dir_all(out).and_then(|()| {
        std::fs::write(
            out.join("index.json"),
            serde_json::to_string_pretty(&index).expect("JSON"),
        )
    }) {
        eprintln!("error: cannot write {}: {e}", out.display());
        return Exit::Failure;
    }
    exit
}
