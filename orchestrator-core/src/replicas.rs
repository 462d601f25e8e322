//! Checks of a client's `replicas` when a recipe is planned: what the engine cannot
//! split or merge is refused before anything is submitted.

use orchestrator_recipes::ClientRecipe;

use crate::CoreError;
use crate::driver::WorkloadDriver;
use crate::workload::replica::Replica;

/// `replicas` needs the engine (it merges what the replicas measured) and sets the
/// job's task count itself.
pub(crate) fn check(
    client: &ClientRecipe,
    driver: &dyn WorkloadDriver,
    file: &str,
) -> Result<(), CoreError> {
    if client.replicas.unwrap_or(1) <= 1 {
        return Ok(());
    }
    if driver
        .workload("http://NODE:1", &serde_json::Map::new())
        .is_none()
    {
        return Err(CoreError::plan(
            file,
            format!(
                "client `{}`: `replicas` needs a workload the orchestrator's engine runs, and `{}` runs a program of its own",
                client.name,
                driver.name()
            ),
            Some("use an engine workload (http, redis, openai, ...), or start the copies yourself with `srun` in the client's command".into()),
        ));
    }
    if client.parameters.contains_key("load") {
        return Err(CoreError::plan(
            file,
            format!(
                "client `{}`: a load profile (`load`) chooses each run from the last one's result, which replicas cannot share",
                client.name
            ),
            Some("run the profile with one replica (it finds the load), then that load with replicas".into()),
        ));
    }
    if client.resources.slurm.ntasks.is_some() {
        return Err(CoreError::plan(
            file,
            format!(
                "client `{}` sets both `replicas` and `resources.slurm.ntasks`",
                client.name
            ),
            Some("drop ntasks: each replica is one task of the client's job".into()),
        ));
    }
    // Every run of the sweep must split: the last replica gets the smallest share.
    let of = client.replicas.unwrap_or(1);
    let last = Replica { index: of - 1, of };
    // The original tool's parameter names, read as the workload's (as its launch does).
    let Ok((read, _)) = crate::driver::read_parameters(driver, &client.name, &client.parameters)
    else {
        return Ok(()); // the workload's own checks say what is wrong with them
    };
    let parameters: serde_json::Map<String, serde_json::Value> = read.into_iter().collect();
    let duration = client.duration.map(|d| d.to_std().as_secs_f64());
    for run in crate::workload::expand_sweep(&parameters) {
        let Ok((mut load, _)) = crate::workload::load_of(&run, duration) else {
            continue; // the workload's own checks say what is wrong with it
        };
        last.split(&mut load).map_err(|message| {
            CoreError::plan(
                file,
                format!("client `{}`: {message}", client.name),
                Some(
                    "give the load at least one user (or request) per replica, or fewer replicas"
                        .into(),
                ),
            )
        })?;
    }
    Ok(())
}
