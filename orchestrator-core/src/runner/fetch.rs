//! Files between this machine and the cluster for a session: a client's script
//! uploaded once per content, its datasets copied into its job directory, and the clients' outputs, engine results and the
//! services' logs fetched at the end.

use std::path::PathBuf;

use crate::backend::{Backend, Tracked};
use crate::error::CoreError;

/// Copies a client's script (its `local_path`, made absolute by planning) to its
/// place on the cluster, unless the same content is there already.
pub(crate) async fn upload_script(
    b: &Backend,
    recipe: &orchestrator_recipes::ClientRecipe,
) -> Result<(), CoreError> {
    let script = recipe
        .script
        .as_ref()
        .expect("a client that runs its script");
    let local = script.local_path.as_deref().unwrap_or_default();
    let bytes =
        std::fs::read(local).map_err(CoreError::io(format!("cannot read the script {local}")))?;
    let remote = crate::script::remote_script(script);
    // One command: the absolute path (`$HOME/` is the cluster's home), then the
    // hash of the content there, if the script is there.
    let path = match remote.strip_prefix("$HOME/") {
        Some(rest) => format!("\"$HOME\"/{}", orchestrator_ssh::quote(rest)),
        None => orchestrator_ssh::quote(&remote).into_owned(),
    };
    let there = b
        .shell()
        .exec_ok(&format!(
            "p={path}; printf '%s\\n' \"$p\"; if [ -f \"$p\" ]; then cat -- \"$p.orchestrator-hash\" 2>/dev/null; fi; true"
        ))
        .await?;
    let there = there.stdout_lossy();
    let mut lines = there.lines();
    let remote = lines.next().unwrap_or_default().to_owned();
    let hash = format!("{:016x}", crate::util::fnv1a(&bytes));
    let marker = format!("{remote}.orchestrator-hash");
    if lines.next().map(str::trim) == Some(hash.as_str()) {
        tracing::debug!(%remote, "the script is on the cluster already");
        return Ok(());
    }
    b.shell().write_file(&remote, &bytes).await?;
    b.shell().write_file(&marker, hash.as_bytes()).await?;
    b.state().event(
        None,
        None,
        "script.upload",
        Some(&format!("{local} ({} bytes) to {remote}", bytes.len())),
    )?;
    Ok(())
}

/// Copies the client's datasets that are on this machine into `job_dir/datasets/` on
/// the cluster: the recipe with their paths there.
///
/// # Errors
/// A file that cannot be read here or written there.
pub(crate) async fn upload_datasets(
    b: &Backend,
    client: &orchestrator_recipes::ClientRecipe,
    job_dir: &str,
) -> Result<orchestrator_recipes::ClientRecipe, CoreError> {
    let mut copied = Vec::new();
    for (i, local) in crate::datasets::paths(client).into_iter().enumerate() {
        let path = PathBuf::from(&local);
        if !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path)
            .map_err(CoreError::io(format!("cannot read the dataset {local}")))?;
        let name = path.file_name().map_or_else(
            || "dataset".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        let remote = format!("{job_dir}/datasets/{i}-{name}");
        b.shell().write_file(&remote, &bytes).await?;
        b.state().event(
            None,
            None,
            "dataset.upload",
            Some(&format!("{local} ({} bytes) to {remote}", bytes.len())),
        )?;
        copied.push((local, remote));
    }
    let mut recipe = client.clone();
    crate::datasets::rewrite(&mut recipe, |s| {
        copied
            .iter()
            .find(|(local, _)| local == s)
            .map_or_else(|| s.to_owned(), |(_, remote)| remote.clone())
    });
    Ok(recipe)
}

/// Copies each client's stdout, stderr and declared result file into
/// `results_dir/<session>/<client>/`: that directory, and what went wrong with
/// clients' replicas.
pub(crate) async fn fetch_outputs(
    b: &Backend,
    session_id: &str,
    clients: &[Tracked],
) -> Result<(PathBuf, Vec<String>), CoreError> {
    let mut problems = Vec::new();
    let dir = b.results_dir().join(session_id);
    std::fs::create_dir_all(&dir)
        .map_err(CoreError::io(format!("cannot create {}", dir.display())))?;
    for job in clients {
        let client_dir = dir.join(&job.name);
        std::fs::create_dir_all(&client_dir).map_err(CoreError::io(format!(
            "cannot create {}",
            client_dir.display()
        )))?;
        let mut files = vec![
            (
                "stdout".to_owned(),
                job.stdout_path.clone(),
                "stdout.log".to_owned(),
            ),
            (
                "stderr".to_owned(),
                job.stderr_path.clone(),
                "stderr.log".to_owned(),
            ),
        ];
        if let Some(recipe) = b.state().client(&job.owner_id)?.and_then(|c| {
            serde_json::from_str::<orchestrator_recipes::ClientRecipe>(&c.recipe).ok()
        }) {
            if let Some(file) = recipe.output.and_then(|o| o.file) {
                let job_dir = job.job_dir();
                let name = std::path::Path::new(&file)
                    .file_name()
                    .map_or_else(|| "result".to_owned(), |n| n.to_string_lossy().into_owned());
                let remote = if file.starts_with('/') {
                    file.clone()
                } else {
                    format!("{job_dir}/{file}")
                };
                files.push((name.clone(), remote, name));
            }
        }
        for (label, remote, local) in files {
            match b.shell().read_file(&remote).await {
                Ok(bytes) => {
                    let path = client_dir.join(&local);
                    std::fs::write(&path, &bytes)
                        .map_err(CoreError::io(format!("cannot write {}", path.display())))?;
                    b.state().add_result(
                        session_id,
                        &job.owner_id,
                        &label,
                        &path.display().to_string(),
                        i64::try_from(bytes.len()).unwrap_or(i64::MAX),
                    )?;
                }
                Err(error) => {
                    b.state().event(
                        Some(session_id),
                        Some(&job.owner_id),
                        "fetch.failed",
                        Some(&format!("{remote}: {error}")),
                    )?;
                }
            }
        }
        for problem in fetch_engine_results(b, session_id, job, &client_dir).await? {
            problems.push(format!("client `{}`: {problem}", job.name));
        }
    }
    Ok((dir, problems))
}

/// Copies the workload engine's `results/` directory of a client job (summary,
/// requests, sweep runs) in one transfer, merges its replicas' results when it had
/// some, and records each `summary.json`. What went wrong with replicas is returned,
/// each problem naming its replica.
pub(crate) async fn fetch_engine_results(
    b: &Backend,
    session_id: &str,
    job: &Tracked,
    client_dir: &std::path::Path,
) -> Result<Vec<String>, CoreError> {
    use crate::workload::RESULTS_DIR;
    let job_dir = job.job_dir();
    if !b.untar_from(&job_dir, RESULTS_DIR, client_dir).await? {
        return Ok(Vec::new());
    }
    let results = client_dir.join(RESULTS_DIR);
    let problems = match crate::workload::replica::merge_results(&results) {
        Ok(None) => Vec::new(),
        Ok(Some(merged)) => {
            b.state().event(
                Some(session_id),
                Some(&job.owner_id),
                "replicas.merged",
                Some(&format!(
                    "{} replicas, {} runs{}",
                    merged.replicas,
                    merged.runs.len(),
                    if merged.problems.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", merged.problems.join("; "))
                    }
                )),
            )?;
            merged.problems
        }
        Err(e) => vec![format!("its replicas' results cannot be merged: {e}")],
    };
    let mut summaries = Vec::new();
    collect_named(
        &client_dir.join(RESULTS_DIR),
        "summary.json",
        &mut summaries,
    );
    summaries.sort();
    for path in summaries {
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        b.state().add_result(
            session_id,
            &job.owner_id,
            "summary",
            &path.display().to_string(),
            i64::try_from(bytes).unwrap_or(i64::MAX),
        )?;
    }
    Ok(problems)
}

/// Copies services' logs next to the clients' outputs (best effort).
pub(crate) async fn fetch_logs(
    b: &Backend,
    session_id: &str,
    services: &[Tracked],
    dir: &std::path::Path,
) {
    for job in services {
        let service_dir = dir.join(&job.name);
        if std::fs::create_dir_all(&service_dir).is_err() {
            continue;
        }
        for (remote, local) in [
            (&job.stdout_path, "stdout.log"),
            (&job.stderr_path, "stderr.log"),
        ] {
            if let Ok(bytes) = b.shell().read_file(remote).await {
                if std::fs::write(service_dir.join(local), bytes).is_err() {
                    tracing::warn!("cannot write {}", service_dir.join(local).display());
                }
            } else {
                let _ = b.state().event(
                    Some(session_id),
                    Some(&job.owner_id),
                    "fetch.failed",
                    Some(remote),
                );
            }
        }
        // What the job sampled of itself, when monitoring was on.
        let monitor = std::path::Path::new(&job.stdout_path).with_file_name("monitor.csv");
        if let Ok(bytes) = b.shell().read_file(&monitor.display().to_string()).await {
            let path = service_dir.join("monitor.csv");
            if std::fs::write(&path, &bytes).is_ok() {
                let _ = b.state().add_result(
                    session_id,
                    &job.owner_id,
                    "monitor",
                    &path.display().to_string(),
                    i64::try_from(bytes.len()).unwrap_or(i64::MAX),
                );
            }
        }
    }
}

/// Every file called `name` below `dir`.
fn collect_named(dir: &std::path::Path, name: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // The replicas' own results are in the merged ones.
            if path
                .file_name()
                .is_some_and(|n| n == crate::workload::replica::REPLICAS_DIR)
            {
                continue;
            }
            collect_named(&path, name, found);
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
}
