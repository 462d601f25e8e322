//! `orchestrator bench`: the workload engine against a URL, here and now.

use orchestrator_core::Registry;
use orchestrator_core::workload::{self, LoadSpec, Slo, Workload, load_model};
use serde_json::{Map, Value};
use std::sync::Arc;

use crate::app::{Exit, runtime};
use crate::cli::BenchArgs;
use crate::engine::{metrics_endpoint, prepare, print_summary, verdict};

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

/// A bench run ready to go: its load, its workload, the prompt salt it was given.
type Ready = (LoadSpec, Arc<dyn Workload>, Option<u64>);

/// `orchestrator bench`.
pub fn bench(args: &BenchArgs) -> Exit {
    let spec = (|| -> Result<Ready, String> {
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
            ramp_up: std::time::Duration::ZERO,
            implicit_model: args.concurrency.is_none()
                && args.rate.is_none()
                && args.arrival.is_none(),
        };
        let mut params = parameters(&args.params)?;
        // Prompts no earlier invocation sent (a server's prefix cache would flatter a
        // rerun), unless `-p prompt_salt=N` asks for the same ones again.
        let salt = (!params.contains_key("prompt_salt")
            && Registry::workload_named(&args.driver).is_ok_and(|d| {
                d.parameters_schema()["properties"]
                    .get("prompt_salt")
                    .is_some()
            }))
        .then(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            workload::run_salt("bench", &format!("{}-{now}", std::process::id()), 0)
        });
        if let Some(salt) = salt {
            params.insert("prompt_salt".into(), Value::from(salt));
        }
        let workload = prepare(&args.driver, &args.url, &params)?;
        Ok((spec, workload, salt))
    })();
    let (spec, workload, salt) = match spec {
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
    let mut extra = serde_json::json!({"driver": args.driver, "url": url, "load": spec});
    if let Some(salt) = salt {
        extra["prompt_salt"] = Value::from(salt);
    }
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
