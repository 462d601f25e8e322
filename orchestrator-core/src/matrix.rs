//! Service matrices: a recipe whose services give lists of their own settings
//! (`matrix:`) is as many deployments as the lists have combinations, each a complete
//! recipe of its own, run as a session of its own and compared afterwards (as JUBE's
//! and ReFrame's parameter spaces are).

use orchestrator_recipes::{BenchmarkRecipe, ServiceMatrix, ServiceRecipe};
use serde::Serialize;
use serde_json::Value;

use crate::CoreError;

/// The most deployments one recipe may make.
pub const MAX_DEPLOYMENTS: usize = 100;

/// One combination of a recipe's service matrices.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// From 1.
    pub number: usize,
    /// What this deployment sets, e.g. `web.environment={"WORKERS":"4"}`.
    pub label: String,
    /// Each setting: the service, the key and the value laid over the service's own.
    pub settings: Vec<Setting>,
    /// The recipe with those settings and no matrix left.
    #[serde(skip)]
    pub recipe: BenchmarkRecipe,
}

/// One setting of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    /// The service.
    pub service: String,
    /// `environment`, `args`, `resources`, `options`, `command` or `container_image`.
    pub key: &'static str,
    /// The value.
    pub value: Value,
}

/// A matrix's lists, by key, as JSON values.
fn axes(matrix: &ServiceMatrix) -> Vec<(&'static str, Vec<Value>)> {
    fn values<T: Serialize>(items: &[T]) -> Vec<Value> {
        items
            .iter()
            .map(|v| serde_json::to_value(v).expect("recipe values serialise"))
            .collect()
    }
    [
        ("environment", values(&matrix.environment)),
        ("args", values(&matrix.args)),
        ("resources", values(&matrix.resources)),
        ("options", values(&matrix.options)),
        ("command", values(&matrix.command)),
        ("container_image", values(&matrix.container_image)),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect()
}

/// `over` laid on `base`: objects merged key by key (recursively), anything else
/// replaced.
fn lay(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => lay(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// The deployments of `recipe`: one, the recipe itself, without a matrix; else every
/// combination of its services' lists (the first list varies slowest).
///
/// # Errors
/// A combination that makes no valid service, or more than [`MAX_DEPLOYMENTS`].
pub fn deployments(recipe: &BenchmarkRecipe, file: &str) -> Result<Vec<Deployment>, CoreError> {
    let mut dimensions: Vec<(usize, &'static str, Vec<Value>)> = Vec::new();
    for (i, service) in recipe.services.iter().enumerate() {
        for (key, values) in axes(&service.matrix) {
            dimensions.push((i, key, values));
        }
    }
    let count = dimensions
        .iter()
        .try_fold(1usize, |n, (_, _, v)| n.checked_mul(v.len()))
        .unwrap_or(usize::MAX);
    if count > MAX_DEPLOYMENTS {
        return Err(CoreError::plan(
            file,
            format!("the services' matrices make {count} deployments, more than {MAX_DEPLOYMENTS}"),
            Some("give the lists fewer values, or split the recipe".into()),
        ));
    }
    let mut combinations: Vec<Vec<usize>> = vec![Vec::new()];
    for (_, _, values) in &dimensions {
        combinations = combinations
            .into_iter()
            .flat_map(|c| {
                (0..values.len()).map(move |v| {
                    let mut c = c.clone();
                    c.push(v);
                    c
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for (n, combination) in combinations.into_iter().enumerate() {
        let mut services: Vec<Value> = recipe
            .services
            .iter()
            .map(|s| serde_json::to_value(s).expect("recipes serialise"))
            .collect();
        let mut settings = Vec::new();
        for ((service, key, values), choice) in dimensions.iter().zip(combination) {
            let value = &values[choice];
            let slot = services[*service]
                .as_object_mut()
                .expect("a service is an object")
                .entry(*key)
                .or_insert(Value::Null);
            if slot.is_null() {
                *slot = value.clone();
            } else {
                lay(slot, value);
            }
            settings.push(Setting {
                service: recipe.services[*service].name.clone(),
                key,
                value: value.clone(),
            });
        }
        let mut deployed = recipe.clone();
        for (i, value) in services.into_iter().enumerate() {
            let mut service: ServiceRecipe = serde_json::from_value(value).map_err(|e| {
                CoreError::plan(
                    file,
                    format!(
                        "service `{}`: deployment {} of its matrix is not a valid service: {e}",
                        recipe.services[i].name,
                        n + 1
                    ),
                    Some(
                        "each value of a `matrix` list must be valid for the key it is under"
                            .into(),
                    ),
                )
            })?;
            service.matrix = ServiceMatrix::default();
            deployed.services[i] = service;
        }
        let label = settings
            .iter()
            .map(|s| format!("{}.{}={}", s.service, s.key, s.value))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(Deployment {
            number: n + 1,
            label,
            settings,
            recipe: deployed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(yaml: &str) -> BenchmarkRecipe {
        match orchestrator_recipes::load_str("r.yaml", yaml, None)
            .unwrap()
            .value
        {
            orchestrator_recipes::Document::Recipe(r) => *r,
            other => panic!("not a complete recipe: {other:?}"),
        }
    }

    #[test]
    fn every_combination_is_a_deployment_with_its_values_laid_over_the_service() {
        let r = recipe(
            "services:\n  - name: web\n    command: srv\n    args: [--x]\n    environment: {A: '1', B: '2'}\n    resources: {cpus: 1, slurm: {time: '00:05:00'}}\n    matrix:\n      environment: [{B: '3'}, {C: '4'}]\n      resources: [{cpus: 2}, {slurm: {partition: big}}]\n      args: [[--y, 1], [--y, 2], [--y, 3]]\n",
        );
        let d = deployments(&r, "r.yaml").unwrap();
        assert_eq!(d.len(), 12);
        let first = &d[0].recipe.services[0];
        assert_eq!(first.environment["A"].as_str(), "1");
        assert_eq!(first.environment["B"].as_str(), "3");
        assert_eq!(first.resources.cpus, Some(2));
        assert!(
            first.resources.slurm.time.is_some(),
            "kept beside the new keys"
        );
        assert_eq!(first.args.len(), 2);
        assert!(first.matrix.is_empty());
        let last = &d[11].recipe.services[0];
        assert_eq!(last.environment["C"].as_str(), "4");
        assert_eq!(last.resources.cpus, Some(1));
        assert_eq!(last.resources.slurm.partition.as_deref(), Some("big"));
        assert_eq!(last.args[1].as_str(), "3");
        assert_eq!(
            d[0].label,
            "web.environment={\"B\":\"3\"}, web.args=[\"--y\",\"1\"], web.resources={\"cpus\":2}"
        );
        // No matrix: the recipe itself.
        let plain = recipe("services:\n  - {name: web, command: srv}\n");
        let d = deployments(&plain, "r.yaml").unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].label, "");
    }

    #[test]
    fn a_matrix_too_big_or_a_value_that_makes_no_service_is_refused() {
        let values = (0..11)
            .map(|i| format!("[--n, {i}]"))
            .collect::<Vec<_>>()
            .join(", ");
        let big = recipe(&format!(
            "services:\n  - name: web\n    command: srv\n    matrix: {{args: [{values}], environment: [{values2}]}}\n",
            values2 = (0..10)
                .map(|i| format!("{{N: '{i}'}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let err = deployments(&big, "r.yaml").unwrap_err().to_string();
        assert!(err.contains("make 110 deployments, more than 100"), "{err}");
        let bad = recipe(
            "services:\n  - name: web\n    command: srv\n    matrix: {resources: [{cpus: many}]}\n",
        );
        let err = deployments(&bad, "r.yaml").unwrap_err().to_string();
        assert!(
            err.contains("service `web`: deployment 1 of its matrix is not a valid service"),
            "{err}"
        );
    }
}
