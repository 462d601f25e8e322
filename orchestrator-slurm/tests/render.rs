//! The rendered job scripts, reviewed as snapshots: native and container runs, GPU
//! requests, image builds, and values that try to escape their quoting. (Apptainer does
//! not exist on these machines, so its paths are checked here, as scripts.)

use std::collections::BTreeMap;
use std::time::Duration;

use orchestrator_slurm::{
    ContainerSpec, ImageBuild, JobKind, JobSpec, Registration, SbatchOptions, ScriptRenderer,
    SlurmError, TargetFile,
};

fn spec() -> JobSpec {
    JobSpec {
        kind: JobKind::Service,
        name: "redis".into(),
        session_id: "20261128-154001-a1b2".into(),
        job_dir: "/scratch/alice/orchestrator/20261128-154001-a1b2/redis".into(),
        command: "redis-server".into(),
        args: vec!["--port".into(), "6379".into(), "--save".into(), "".into()],
        environment: BTreeMap::from([("REDIS_LOG".into(), "verbose".into())]),
        sbatch: SbatchOptions {
            partition: Some("cpu".into()),
            time: Some(Duration::from_secs(3600)),
            cpus_per_task: Some(2),
            mem_mib: Some(4096),
            ..SbatchOptions::default()
        },
        container: None,
        monitor: None,
        register: None,
        setup_script: None,
        replicas: None,
    }
}

#[test]
fn a_monitored_service_samples_in_the_background_and_stops_with_the_job() {
    let spec = JobSpec {
        monitor: Some(Duration::from_secs(2)),
        ..spec()
    };
    let job = ScriptRenderer::new().render(&spec).expect("renders");
    let script = &job.script;
    // The sampler starts before the service, in the background, and the job's exit
    // stops it.
    let sampler = script.find("orch_monitor &").expect("the sampler starts");
    let service = script
        .find("redis-server --port 6379")
        .expect("the service runs");
    let cd = script
        .find("cd /scratch/")
        .expect("the job enters its directory");
    assert!(cd < sampler, "monitor.csv goes into the job directory");
    assert!(sampler < service, "{script}");
    assert!(script.contains("interval=2 "), "{script}");
    assert!(
        script.contains("trap 'kill ${orch_helpers:-} 2>/dev/null; wait ${orch_helpers:-}' EXIT")
    );
    assert!(
        !ScriptRenderer::new()
            .render(&self::spec())
            .unwrap()
            .script
            .contains("orch_monitor")
    );
    // The script is valid bash.
    let check = std::process::Command::new("bash")
        .args(["-n", "-c", script])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// A job of a monitored session writes its target files, with its node's name where
/// the pieces leave room for it and every other byte as the orchestrator wrote it.
#[test]
fn a_registering_job_writes_its_target_files_with_its_node_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let job_dir = dir.path().join("ses").join("web");
    std::fs::create_dir_all(&job_dir).unwrap();
    let hostile = "\"$(touch pwned)`touch pwned2`'\n";
    let json_pieces = vec![
        "[{\"targets\": [\"".to_owned(),
        format!(
            ":9464\"], \"labels\": {{\"name\": {}}}}}]",
            serde_json::json!(hostile)
        ),
    ];
    let spec = JobSpec {
        job_dir: job_dir.display().to_string(),
        command: "true".into(),
        args: Vec::new(),
        register: Some(Registration {
            dir: "../.targets".into(),
            files: vec![
                TargetFile {
                    name: vec!["client-web.json".into()],
                    json: json_pieces,
                },
                TargetFile {
                    name: vec!["node-".into(), ".json".into()],
                    json: vec!["[{\"targets\": [\"".into(), ":9100\"]}]".into()],
                },
            ],
            node_exporter: None,
        }),
        ..spec()
    };
    let job = ScriptRenderer::new().render(&spec).expect("renders");
    let run = std::process::Command::new("bash")
        .arg("-c")
        .arg(&job.script)
        .env("SLURMD_NODENAME", "node7")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let targets = dir.path().join("ses/.targets");
    let client: serde_json::Value =
        serde_json::from_slice(&std::fs::read(targets.join("client-web.json")).unwrap()).unwrap();
    assert_eq!(client[0]["targets"][0], "node7:9464");
    assert_eq!(client[0]["labels"]["name"], hostile);
    let node: serde_json::Value =
        serde_json::from_slice(&std::fs::read(targets.join("node-node7.json")).unwrap()).unwrap();
    assert_eq!(node[0]["targets"][0], "node7:9100");
    assert!(!job_dir.join("pwned").exists() && !job_dir.join("pwned2").exists());
    // Nothing half-written is left beside them.
    let mut names: Vec<String> = std::fs::read_dir(&targets)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["client-web.json", "node-node7.json"]);
    // A name piece cannot leave the directory.
    let mut escaping = spec.clone();
    escaping.register.as_mut().unwrap().files[0].name = vec!["../x".into()];
    assert!(matches!(
        ScriptRenderer::new().render(&escaping),
        Err(SlurmError::InvalidValue { .. })
    ));
}

#[test]
fn a_native_service() {
    let job = ScriptRenderer::new().render(&spec()).expect("renders");
    assert_eq!(job.job_name, "orch-20261128-154001-a1b2-redis");
    assert_eq!(
        job.script_path,
        "/scratch/alice/orchestrator/20261128-154001-a1b2/redis/job.sh"
    );
    insta::assert_snapshot!(job.script);
}

#[test]
fn a_gpu_service_in_a_container_built_on_demand() {
    let defaults = SbatchOptions {
        account: Some("p200301".into()),
        qos: Some("default".into()),
        partition: Some("cpu".into()),
        extra_args: vec!["--exclusive".into()],
        ..SbatchOptions::default()
    };
    let sbatch = SbatchOptions {
        partition: Some("gpu".into()),
        gpus: Some(1),
        time: Some(Duration::from_secs(2 * 3600)),
        nodes: Some(1),
        ntasks: Some(1),
        ntasks_per_node: Some(1),
        constraint: Some("a100".into()),
        ..SbatchOptions::default()
    }
    .merged_over(&defaults);
    let gpu = sbatch.wants_gpu();
    let spec = JobSpec {
        name: "ollama".into(),
        job_dir: "/scratch/alice/orchestrator/20261128-154001-a1b2/ollama".into(),
        command: "ollama".into(),
        args: vec!["serve".into()],
        environment: BTreeMap::from([("OLLAMA_HOST".into(), "0.0.0.0:11434".into())]),
        sbatch,
        container: Some(ContainerSpec {
            runtime: "apptainer".into(),
            image: "$HOME/containers/ollama_latest.sif".into(),
            binds: vec!["/project/models:/root/.ollama".into()],
            gpu,
            build: Some(ImageBuild {
                source: "docker://ollama/ollama:latest".into(),
                timeout: Duration::from_secs(1800),
                rebuild: false,
                post: Vec::new(),
            }),
        }),
        ..spec()
    };
    let job = ScriptRenderer::new().render(&spec).expect("renders");
    insta::assert_snapshot!(job.script);
}

/// A container built from a definition file (the original tool's `build_commands`),
/// rebuilt every run (`force_rebuild`), with bind mounts (`bind_mounts`): the snapshot,
/// then the script run for real with a FAKE `apptainer` (`tests/fakes/apptainer`) that
/// logs what it was asked and runs the command natively.
#[test]
fn a_container_built_with_commands_rebuilt_and_bound_runs() {
    let dir = tempfile::tempdir().unwrap();
    let job_dir = dir.path().join("job");
    std::fs::create_dir_all(&job_dir).unwrap();
    let image = dir.path().join("images/client.sif");
    let spec = JobSpec {
        kind: JobKind::Client,
        name: "client".into(),
        job_dir: job_dir.to_string_lossy().into_owned(),
        command: "sh".into(),
        args: vec![
            "-c".into(),
            "echo ran with \"$0\" > out.txt".into(),
            "it's $HOME".into(),
        ],
        container: Some(ContainerSpec {
            runtime: "apptainer".into(),
            image: image.to_string_lossy().into_owned(),
            binds: vec!["$HOME/data:/data".into(), "/scratch:/scratch:ro".into()],
            gpu: false,
            build: Some(ImageBuild {
                source: "docker://python:3.11-slim".into(),
                timeout: Duration::from_secs(600),
                rebuild: true,
                post: vec![
                    "pip install --no-cache-dir requests".into(),
                    "mkdir -p /app && echo '$(not run)' > /app/x".into(),
                ],
            }),
        }),
        ..spec()
    };
    let job = ScriptRenderer::new().render(&spec).expect("renders");
    let shown = job.script.replace(&*dir.path().to_string_lossy(), "/TMP");
    insta::assert_snapshot!(shown);

    let fakes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes");
    let log = dir.path().join("apptainer.log");
    let script = dir.path().join("job.sh");
    std::fs::write(&script, &job.script).unwrap();
    let run = || {
        std::process::Command::new("bash")
            .arg(&script)
            .env(
                "PATH",
                format!("{}:{}", fakes.display(), std::env::var("PATH").unwrap()),
            )
            .env("HOME", "/home/alice")
            .env("FAKE_APPTAINER_LOG", &log)
            .output()
            .unwrap()
    };
    for _ in 0..2 {
        // Twice: the second run rebuilds the image that the first left.
        let out = run();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    let builds: Vec<&str> = logged.lines().filter(|l| l.starts_with("build ")).collect();
    assert_eq!(builds.len(), 2, "{logged}");
    assert!(builds[1].starts_with("build force=1 "), "{logged}");
    for line in [
        "  def: Bootstrap: docker",
        "  def: From: python:3.11-slim",
        "  def: %post",
        "  def:     pip install --no-cache-dir requests",
        "  def:     mkdir -p /app && echo '$(not run)' > /app/x",
        "exec --bind /home/alice/data:/data",
        "exec --bind /scratch:/scratch:ro",
    ] {
        assert!(logged.lines().any(|l| l == line), "{line:?} in {logged}");
    }
    assert_eq!(
        std::fs::read_to_string(job_dir.join("out.txt")).unwrap(),
        "ran with it's $HOME\n"
    );
}

#[test]
fn a_client_in_a_container_without_gpus_or_build() {
    let spec = JobSpec {
        kind: JobKind::Client,
        name: "bench".into(),
        command: "redis-benchmark".into(),
        args: vec!["-h".into(), "node1".into()],
        environment: BTreeMap::new(),
        container: Some(ContainerSpec {
            runtime: "singularity".into(),
            image: "/images/redis.sif".into(),
            binds: vec![],
            gpu: false,
            build: None,
        }),
        ..spec()
    };
    let script = ScriptRenderer::new().render(&spec).expect("renders").script;
    assert!(
        script.contains("singularity exec /images/redis.sif redis-benchmark -h node1\n"),
        "{script}"
    );
    assert!(!script.contains("--nv"));
    assert!(!script.contains(" build "));
}

#[test]
fn hostile_values_are_quoted() {
    let spec = JobSpec {
        name: "x'; rm -rf / #".into(),
        args: vec![
            "$(id)".into(),
            "`id`".into(),
            "a b".into(),
            "l1\nl2".into(),
            "it's".into(),
        ],
        environment: BTreeMap::from([("EVIL".into(), "\"; reboot; echo \"".into())]),
        ..spec()
    };
    let job = ScriptRenderer::new().render(&spec).expect("renders");
    assert_eq!(job.job_name, "orch-20261128-154001-a1b2-x___rm_-rf____");
    insta::assert_snapshot!(job.script);
}

#[test]
fn values_that_cannot_be_put_in_a_script_are_refused() {
    let cases: Vec<(JobSpec, &str)> = vec![
        (
            JobSpec {
                sbatch: SbatchOptions {
                    partition: Some("cpu\n#SBATCH --uid=0".into()),
                    ..SbatchOptions::default()
                },
                ..spec()
            },
            "partition",
        ),
        (
            JobSpec {
                environment: BTreeMap::from([("BAD-NAME".into(), "v".into())]),
                ..spec()
            },
            "environment",
        ),
        (
            JobSpec {
                environment: BTreeMap::from([("$(id)".into(), "v".into())]),
                ..spec()
            },
            "environment",
        ),
        (
            JobSpec {
                args: vec!["a\0b".into()],
                ..spec()
            },
            "args",
        ),
        (
            JobSpec {
                job_dir: "relative/dir".into(),
                ..spec()
            },
            "job_dir",
        ),
        (
            JobSpec {
                command: String::new(),
                ..spec()
            },
            "command",
        ),
        (
            JobSpec {
                sbatch: SbatchOptions {
                    extra_args: vec!["--hold\n/bin/evil".into()],
                    ..SbatchOptions::default()
                },
                ..spec()
            },
            "extra_args",
        ),
    ];
    for (spec, field) in cases {
        match ScriptRenderer::new().render(&spec) {
            Err(SlurmError::InvalidValue { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidValue, got {other:?}"),
        }
    }
}

#[test]
fn a_templates_dir_overrides_the_embedded_templates_in_strict_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("run.hbs"), "echo custom {{quote name}}\n").expect("write");
    let renderer = ScriptRenderer::with_templates_dir(dir.path()).expect("loads");
    let script = renderer.render(&spec()).expect("renders").script;
    assert!(script.ends_with("echo custom redis\n"), "{script}");
    assert!(
        script.contains("#SBATCH --partition=cpu"),
        "the header is still the embedded one"
    );

    std::fs::write(dir.path().join("run.hbs"), "echo {{no_such_variable}}\n").expect("write");
    let renderer = ScriptRenderer::with_templates_dir(dir.path()).expect("loads");
    let err = renderer.render(&spec()).expect_err("strict mode");
    assert!(matches!(err, SlurmError::Template { .. }), "{err:?}");

    std::fs::write(dir.path().join("run.hbs"), "{{#if}}\n").expect("write");
    assert!(matches!(
        ScriptRenderer::with_templates_dir(dir.path()),
        Err(SlurmError::Template { .. })
    ));
}

fn replicated(args: &[&str]) -> JobSpec {
    let dir = tempfile::tempdir().unwrap().keep();
    JobSpec {
        kind: JobKind::Client,
        name: "load".into(),
        job_dir: dir.display().to_string(),
        command: "sh".into(),
        args: args.iter().map(|a| (*a).into()).collect(),
        environment: BTreeMap::new(),
        replicas: Some(3),
        ..spec()
    }
}

/// A client of replicas asks for a task each, spread over the nodes, and starts them
/// with srun; outside SLURM it runs them as processes of the job, each with its
/// number, and when one fails the others are stopped and the job fails with its code.
#[test]
fn a_client_of_replicas_runs_one_task_each_and_fails_with_the_first_that_fails() {
    let job = ScriptRenderer::new()
        .render(&replicated(&["-c", "echo replica $ORCH_REPLICA"]))
        .unwrap();
    let script = &job.script;
    assert!(script.contains("#SBATCH --ntasks=3\n"), "{script}");
    assert!(script.contains("#SBATCH --spread-job\n"), "{script}");
    assert!(
        script.contains("srun --ntasks=3 --kill-on-bad-exit=1"),
        "{script}"
    );
    assert!(script.contains("\norch_replicas sh -c "), "{script}");
    let out = std::process::Command::new("bash")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    assert_eq!(lines, ["replica 0", "replica 1", "replica 2"]);

    // Replica 1 fails at once: the others, which would run for a minute, are stopped.
    let failing = ScriptRenderer::new()
        .render(&replicated(&[
            "-c",
            "if [ \"$ORCH_REPLICA\" = 1 ]; then exit 7; fi; exec sleep 60",
        ]))
        .unwrap();
    let start = std::time::Instant::now();
    let out = std::process::Command::new("bash")
        .args(["-c", &failing.script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the others were stopped"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("orchestrator: replica 1 exited with code 7: stopping the others"),
        "{stderr}"
    );

    // Nodes given: the recipe's placement, not spread.
    let mut placed = replicated(&["-c", "true"]);
    placed.sbatch.nodes = Some(1);
    let script = ScriptRenderer::new().render(&placed).unwrap().script;
    assert!(script.contains("#SBATCH --ntasks=3\n") && !script.contains("--spread-job"));
    // One replica is a plain job.
    let single = ScriptRenderer::new()
        .render(&JobSpec {
            replicas: Some(1),
            ..replicated(&["-c", "true"])
        })
        .unwrap()
        .script;
    assert!(
        !single.contains("orch_replicas") && !single.contains("--ntasks"),
        "{single}"
    );
}
