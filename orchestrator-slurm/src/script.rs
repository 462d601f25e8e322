//! Job scripts: what a job runs and asks for ([`JobSpec`]), rendered from handlebars
//! templates ([`ScriptRenderer`]) into a [`RenderedJob`] that any scheduler submits.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderErrorReason,
};
use orchestrator_ssh::{quote, quote_expanding};
use serde::Serialize;
use serde_json::json;

use crate::SlurmError;

/// Whether a job is a service or a benchmark client: it picks the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A long-running service, cancelled by the orchestrator when done.
    Service,
    /// A benchmark client that ends by itself.
    Client,
}

impl JobKind {
    fn template(self) -> &'static str {
        match self {
            Self::Service => "service.sh",
            Self::Client => "client.sh",
        }
    }
}

/// What a job asks of the scheduler: becomes `#SBATCH` lines. Unset values fall back to
/// the defaults given to [`SbatchOptions::merged_over`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SbatchOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// `--time`.
    pub time: Option<Duration>,
    /// `--nodes`.
    pub nodes: Option<u32>,
    /// `--ntasks`.
    pub ntasks: Option<u32>,
    /// `--ntasks-per-node`.
    pub ntasks_per_node: Option<u32>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem`, in MiB.
    pub mem_mib: Option<u64>,
    /// `--gres` (e.g. `gpu:a100:2`); wins over `gpus`.
    pub gres: Option<String>,
    /// GPUs, as `--gres=gpu:N` when `gres` is unset.
    pub gpus: Option<u32>,
    /// `--constraint`.
    pub constraint: Option<String>,
    /// `--nodelist`: run on these nodes.
    pub nodelist: Option<String>,
    /// Further arguments, each one `#SBATCH` line as given (`--exclusive`, `--hold`).
    pub extra_args: Vec<String>,
}

impl SbatchOptions {
    /// These options, with every unset one taken from `defaults`; extra arguments of
    /// both, the defaults' first.
    #[must_use]
    pub fn merged_over(self, defaults: &Self) -> Self {
        let d = defaults.clone();
        Self {
            partition: self.partition.or(d.partition),
            account: self.account.or(d.account),
            qos: self.qos.or(d.qos),
            time: self.time.or(d.time),
            nodes: self.nodes.or(d.nodes),
            ntasks: self.ntasks.or(d.ntasks),
            ntasks_per_node: self.ntasks_per_node.or(d.ntasks_per_node),
            cpus_per_task: self.cpus_per_task.or(d.cpus_per_task),
            mem_mib: self.mem_mib.or(d.mem_mib),
            gres: self.gres.or(d.gres),
            gpus: self.gpus.or(d.gpus),
            constraint: self.constraint.or(d.constraint),
            nodelist: self.nodelist.or(d.nodelist),
            extra_args: d.extra_args.into_iter().chain(self.extra_args).collect(),
        }
    }

    /// Whether GPUs are requested (through `gpus` or a `gpu` gres).
    #[must_use]
    pub fn wants_gpu(&self) -> bool {
        self.gpus.is_some_and(|n| n > 0)
            || self
                .gres
                .as_deref()
                .is_some_and(|g| g.split(',').any(|r| r.starts_with("gpu")))
    }
}

/// `D-HH:MM:SS` (or `HH:MM:SS`), as `--time` takes it. Seconds round up to minutes'
/// worth only where SLURM itself rounds; the value is written exactly.
#[must_use]
pub fn slurm_time(d: Duration) -> String {
    let total = d.as_secs();
    let (days, rest) = (total / 86_400, total % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Building a missing container image before the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuild {
    /// Where from, e.g. `docker://ollama/ollama:latest`.
    pub source: String,
    /// Longest time the build may take.
    pub timeout: Duration,
    /// Build it even when the image exists (`apptainer build --force`).
    pub rebuild: bool,
    /// Commands run inside the image while it is built: the build then goes through a
    /// definition file (`Bootstrap`/`From` from `source`, these lines as `%post`).
    pub post: Vec<String>,
}

impl ImageBuild {
    /// A definition file's `Bootstrap` agent and `From` for `source`: `docker://X` is
    /// (`docker`, `X`), likewise `library://`, `oras://`, `shub://`; a path is a
    /// `localimage`.
    #[must_use]
    pub fn bootstrap(&self) -> (&'static str, &str) {
        for (scheme, agent) in [
            ("docker://", "docker"),
            ("library://", "library"),
            ("oras://", "oras"),
            ("shub://", "shub"),
        ] {
            if let Some(rest) = self.source.strip_prefix(scheme) {
                return (agent, rest);
            }
        }
        ("localimage", &self.source)
    }
}

/// Running the command inside an Apptainer/Singularity container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// `apptainer` or `singularity`.
    pub runtime: String,
    /// The image (a SIF path; a leading `$HOME/` or `~/` is expanded on the node).
    pub image: String,
    /// Bind mounts, `src[:dst[:opts]]`.
    pub binds: Vec<String>,
    /// Pass GPUs in (`--nv`); set it from [`SbatchOptions::wants_gpu`].
    pub gpu: bool,
    /// Build the image first when it is missing.
    pub build: Option<ImageBuild>,
}

/// One argument of a job's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Passed as written, byte for byte.
    Literal(String),
    /// `${NAME}` replaced by the job environment's `NAME` when the job runs
    /// ([`orchestrator_ssh::quote_expanding`]: the value is substituted without being
    /// parsed by the shell again; `$${NAME}` is a literal `${NAME}`). A recipe's own
    /// `args` are these, as the original tool's recipes expect (`--user=${MYSQL_USER}`).
    Expanding(String),
}

impl Arg {
    /// The argument as written.
    #[must_use]
    pub fn text(&self) -> &str {
        match self {
            Self::Literal(text) | Self::Expanding(text) => text,
        }
    }
}

impl Serialize for Arg {
    /// A literal as its text, an expanding argument as `{"expand": TEXT}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Literal(text) => serializer.serialize_str(text),
            Self::Expanding(text) => {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("expand", text)?;
                map.end()
            }
        }
    }
}

impl From<&str> for Arg {
    fn from(text: &str) -> Self {
        Self::Literal(text.to_owned())
    }
}

impl From<String> for Arg {
    fn from(text: String) -> Self {
        Self::Literal(text)
    }
}

impl PartialEq<&str> for Arg {
    fn eq(&self, other: &&str) -> bool {
        self.text() == *other
    }
}

/// Everything a job script needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    /// Service or client.
    pub kind: JobKind,
    /// The recipe's name for it, passed literally to the job as `ORCH_JOB_NAME`.
    pub name: String,
    /// The session it belongs to; part of the SLURM job name.
    pub session_id: String,
    /// The job's own directory on the cluster (absolute): script, output, results.
    pub job_dir: String,
    /// The program to run.
    pub command: String,
    /// Its arguments: literal, or with `${NAME}` references to the job's environment.
    pub args: Vec<Arg>,
    /// Environment variables of the job.
    pub environment: BTreeMap<String, String>,
    /// What to ask of the scheduler.
    pub sbatch: SbatchOptions,
    /// Run in a container, or natively when `None`.
    pub container: Option<ContainerSpec>,
    /// A service's script to run, beside the service, once the orchestrator has written
    /// `healthy` into the job directory: its output goes to `setup.log`, its exit status
    /// to `setup.exit`.
    pub setup_script: Option<String>,
    /// Sample the job's processes, its node and its GPUs into `monitor.csv` at this
    /// interval (service jobs only).
    pub monitor: Option<Duration>,
    /// What the job tells its session's Prometheus: target files it writes once it
    /// knows its node, and a node exporter it starts there.
    pub register: Option<Registration>,
    /// A client run by this many replicas: one task each (`--ntasks`, spread over as
    /// many nodes as possible unless `nodes` or `ntasks_per_node` say otherwise),
    /// started by `srun`; outside SLURM, as that many processes. Each finds its number
    /// in `ORCH_REPLICA` or `SLURM_PROCID`.
    pub replicas: Option<u32>,
}

/// What a job of a monitored session registers with the session's Prometheus, once it
/// runs and knows its node (`$SLURMD_NODENAME`, else `localhost`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    /// The directory Prometheus reads target files from (`file_sd_configs`), absolute
    /// or relative to the job directory.
    pub dir: String,
    /// The files the job writes there.
    pub files: Vec<TargetFile>,
    /// Start a node exporter on this port, unless something answers there already.
    pub node_exporter: Option<u16>,
}

/// One target file: its name and its JSON text, each split where the node's name goes
/// (`["node-", ".json"]` is `node-node1.json` on node1). The pieces are written
/// literally, quoted by the one quoting function; only the node's name is the job's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetFile {
    /// The file's name, in pieces.
    pub name: Vec<String>,
    /// Its content, in pieces.
    pub json: Vec<String>,
}

/// A job script ready to submit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedJob {
    /// The SLURM job name: `orch-<session>-<name>` with unsafe characters replaced.
    pub job_name: String,
    /// The job's directory on the cluster.
    pub job_dir: String,
    /// The script's path (`<job_dir>/job.sh`).
    pub script_path: String,
    /// Where standard output goes (`<job_dir>/stdout.log`).
    pub stdout_path: String,
    /// Where standard error goes (`<job_dir>/stderr.log`).
    pub stderr_path: String,
    /// The time limit asked for, which the local scheduler enforces too.
    pub time_limit: Option<Duration>,
    /// The script.
    pub script: String,
}

/// The SLURM job name of a session's job: `orch-<session>-<name>`, keeping letters,
/// digits, `.`, `_` and `-` and replacing anything else with `_`.
#[must_use]
pub fn job_name(session_id: &str, name: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("orch-{}-{}", clean(session_id), clean(name))
}

const TEMPLATES: [(&str, &str); 4] = [
    ("header", include_str!("../templates/header.hbs")),
    ("run", include_str!("../templates/run.hbs")),
    ("service.sh", include_str!("../templates/service.sh.hbs")),
    ("client.sh", include_str!("../templates/client.sh.hbs")),
];

/// Renders job scripts from handlebars templates: the embedded defaults, any of which
/// a `templates_dir` may override (`service.sh.hbs`, `client.sh.hbs`, and the partials
/// `header.hbs` and `run.hbs`). Strict mode (a missing variable is an error), no HTML
/// escaping, and the helpers `quote` (the one shell-quoting function) and `quote_path`
/// (the same, but a leading `$HOME/` or `~/` stays expandable).
#[derive(Debug)]
pub struct ScriptRenderer {
    hbs: Handlebars<'static>,
}

impl Default for ScriptRenderer {
    fn default() -> Self {
        let mut hbs = Handlebars::new();
        hbs.set_strict_mode(true);
        hbs.register_escape_fn(handlebars::no_escape);
        hbs.register_helper("quote", Box::new(quote_helper));
        hbs.register_helper("quote_path", text_helper("quote_path", quote_path));
        for (name, text) in TEMPLATES {
            hbs.register_template_string(name, text)
                .expect("the embedded templates parse");
        }
        Self { hbs }
    }
}

impl ScriptRenderer {
    /// The embedded templates.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The embedded templates, with those found in `dir` replacing them.
    ///
    /// # Errors
    /// A template file that cannot be read or does not parse.
    pub fn with_templates_dir(dir: &Path) -> Result<Self, SlurmError> {
        let mut renderer = Self::default();
        for (name, _) in TEMPLATES {
            let path = dir.join(format!("{name}.hbs"));
            if path.is_file() {
                let text = std::fs::read_to_string(&path)
                    .map_err(SlurmError::io(format!("cannot read {}", path.display())))?;
                renderer
                    .hbs
                    .register_template_string(name, text)
                    .map_err(|e| SlurmError::Template {
                        template: path.display().to_string(),
                        message: e.to_string(),
                    })?;
            }
        }
        Ok(renderer)
    }

    /// Renders `spec` into a script.
    ///
    /// # Errors
    /// A value that cannot go into a script (a newline in an `#SBATCH` value, an
    /// environment variable name that is not an identifier, a NUL byte anywhere), or a
    /// template that fails in strict mode.
    pub fn render(&self, spec: &JobSpec) -> Result<RenderedJob, SlurmError> {
        validate(spec)?;
        let job_name = job_name(&spec.session_id, &spec.name);
        let dir = spec.job_dir.trim_end_matches('/');
        let stdout_path = format!("{dir}/stdout.log");
        let stderr_path = format!("{dir}/stderr.log");
        let sbatch = sbatch_lines(spec, &job_name, &stdout_path, &stderr_path);
        let environment: Vec<_> = spec
            .environment
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect();
        // A literal argument is a string; an expanding one `{"expand": TEXT}`, which the
        // `quote` helper writes with `quote_expanding`.
        let argv: Vec<serde_json::Value> = std::iter::once(json!(spec.command))
            .chain(spec.args.iter().map(|a| json!(a)))
            .collect();
        let container = spec.container.as_ref().map(|c| {
            json!({
                "runtime": c.runtime,
                "image": c.image,
                "binds": c.binds,
                "gpu": c.gpu,
                "build": c.build.as_ref().map(|b| json!({
                    "source": b.source,
                    "timeout_secs": b.timeout.as_secs().max(1),
                    "rebuild": b.rebuild,
                    "post": b.post,
                    "bootstrap": b.bootstrap().0,
                    "from": b.bootstrap().1,
                })),
            })
        });
        let context = json!({
            "kind": spec.kind,
            "name": spec.name,
            "session_id": spec.session_id,
            "job_dir": dir,
            "job_name": job_name,
            "version": env!("CARGO_PKG_VERSION"),
            "sbatch": sbatch,
            "environment": environment,
            "argv": argv,
            "container": container,
            "monitor": spec.monitor.map(|d| json!({"interval": d.as_secs().max(1)})),
            "register": spec.register.as_ref().map(|r| json!({
                "dir": r.dir,
                "node_exporter": r.node_exporter,
                "files": r.files.iter().map(|f| json!({"name": f.name, "json": f.json})).collect::<Vec<_>>(),
                // The node exporter's target file, which a job's other nodes write too.
                "node_json": r.files.iter().find(|f| f.name.first().is_some_and(|n| n == "node-")).map(|f| &f.json),
            })),
            "setup_script": spec.setup_script,
            "replicas": spec.replicas.filter(|n| *n > 1),
        });
        let template = spec.kind.template();
        let script = self
            .hbs
            .render(template, &context)
            .map_err(|e| SlurmError::Template {
                template: template.to_owned(),
                message: e.to_string(),
            })?;
        Ok(RenderedJob {
            job_name,
            job_dir: dir.to_owned(),
            script_path: format!("{dir}/job.sh"),
            stdout_path,
            stderr_path,
            time_limit: spec.sbatch.time,
            script,
        })
    }
}

fn sbatch_lines(spec: &JobSpec, job_name: &str, stdout: &str, stderr: &str) -> Vec<String> {
    let o = &spec.sbatch;
    let mut lines = vec![
        format!("--job-name={job_name}"),
        format!("--comment=orchestrator-session={}", spec.session_id),
        format!("--output={stdout}"),
        format!("--error={stderr}"),
        // The orchestrator decides whether a job that lost its node runs again (a
        // recipe's `retries`), and where its clients go: SLURM must not requeue it
        // behind its back under the same id.
        "--no-requeue".to_owned(),
    ];
    let mut add = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            lines.push(format!("--{flag}={v}"));
        }
    };
    add("partition", o.partition.clone());
    add("account", o.account.clone());
    add("qos", o.qos.clone());
    add("time", o.time.map(slurm_time));
    add("nodes", o.nodes.map(|n| n.to_string()));
    let replicas = spec.replicas.filter(|n| *n > 1);
    add("ntasks", replicas.or(o.ntasks).map(|n| n.to_string()));
    add("ntasks-per-node", o.ntasks_per_node.map(|n| n.to_string()));
    add("cpus-per-task", o.cpus_per_task.map(|n| n.to_string()));
    add("mem", o.mem_mib.map(|m| format!("{m}M")));
    let gres = o
        .gres
        .clone()
        .or_else(|| o.gpus.filter(|n| *n > 0).map(|n| format!("gpu:{n}")));
    add("gres", gres);
    add("constraint", o.constraint.clone());
    add("nodelist", o.nodelist.clone());
    if replicas.is_some() && o.nodes.is_none() && o.ntasks_per_node.is_none() {
        // Replicas load a service from as many nodes as the cluster gives.
        lines.push("--spread-job".to_owned());
    }
    lines.extend(o.extra_args.iter().cloned());
    lines
}

fn validate(spec: &JobSpec) -> Result<(), SlurmError> {
    let invalid = |field: &str, value: &str, reason: &str| SlurmError::InvalidValue {
        field: field.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let no_nul = |field: &str, value: &str| {
        if value.contains('\0') {
            Err(invalid(
                field,
                value,
                "a NUL byte cannot be passed to a program",
            ))
        } else {
            Ok(())
        }
    };
    // `#SBATCH` lines are read by sbatch, not by the shell: one value, one line.
    let one_line = |field: &str, value: &str| {
        if value.chars().any(|c| c.is_control()) {
            Err(invalid(
                field,
                value,
                "an #SBATCH value must be a single line without control characters",
            ))
        } else {
            Ok(())
        }
    };
    if !spec.job_dir.starts_with('/') {
        return Err(invalid(
            "job_dir",
            &spec.job_dir,
            "the job directory must be an absolute path",
        ));
    }
    one_line("job_dir", &spec.job_dir)?;
    one_line("session_id", &spec.session_id)?;
    no_nul("name", &spec.name)?;
    if spec.command.is_empty() {
        return Err(invalid("command", "", "a job needs a program to run"));
    }
    no_nul("command", &spec.command)?;
    for a in spec.args.iter().map(Arg::text) {
        no_nul("args", a)?;
    }
    for (k, v) in &spec.environment {
        let ident = k
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(invalid(
                "environment",
                k,
                "an environment variable name is letters, digits and `_`, not starting with a digit",
            ));
        }
        no_nul(k, v)?;
    }
    let o = &spec.sbatch;
    for (field, value) in [
        ("partition", &o.partition),
        ("account", &o.account),
        ("qos", &o.qos),
        ("gres", &o.gres),
        ("constraint", &o.constraint),
        ("nodelist", &o.nodelist),
    ] {
        if let Some(v) = value {
            one_line(field, v)?;
        }
    }
    for a in &o.extra_args {
        one_line("extra_args", a)?;
    }
    if let Some(script) = &spec.setup_script {
        no_nul("setup_script", script)?;
    }
    if let Some(r) = &spec.register {
        no_nul("register dir", &r.dir)?;
        for f in &r.files {
            // A file name's pieces must not leave the directory.
            for piece in &f.name {
                if piece.contains('/') || piece.contains('\0') {
                    return Err(invalid(
                        "register file",
                        piece,
                        "a target file's name has no `/`",
                    ));
                }
            }
            for piece in &f.json {
                no_nul("register json", piece)?;
            }
        }
    }
    if let Some(c) = &spec.container {
        no_nul("container image", &c.image)?;
        for b in &c.binds {
            no_nul("bind", b)?;
        }
        if let Some(build) = &c.build {
            one_line("container source", &build.source)?;
            for command in &build.post {
                one_line("container build command", command)?;
            }
        }
    }
    Ok(())
}

fn param<'a>(
    h: &'a Helper<'_>,
    name: &'static str,
) -> Result<&'a serde_json::Value, RenderErrorReason> {
    h.param(0)
        .map(handlebars::PathAndJson::value)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(name, 0))
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `{{quote VALUE}}`: the one quoting function for every value; an expanding argument
/// (`{"expand": TEXT}`) is written with [`quote_expanding`].
fn quote_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = param(h, "quote")?;
    match value.get("expand").and_then(serde_json::Value::as_str) {
        Some(text) if value.as_object().is_some_and(|o| o.len() == 1) => {
            out.write(&quote_expanding(text))?;
        }
        _ => out.write(&quote(&text_of(value)))?,
    }
    Ok(())
}

/// A helper that writes `transform` of its one parameter.
fn text_helper(
    name: &'static str,
    transform: fn(&str) -> String,
) -> Box<dyn HelperDef + Send + Sync> {
    Box::new(
        move |h: &Helper<'_>,
              _: &Handlebars<'_>,
              _: &Context,
              _: &mut RenderContext<'_, '_>,
              out: &mut dyn Output|
              -> HelperResult {
            let value = text_of(param(h, name)?);
            out.write(&transform(&value))?;
            Ok(())
        },
    )
}

/// Quoted like [`quote`], but a leading `$HOME/`, `${HOME}/` or `~/` stays expandable.
fn quote_path(value: &str) -> String {
    let home_relative = value
        .strip_prefix("$HOME/")
        .or_else(|| value.strip_prefix("${HOME}/"))
        .or_else(|| value.strip_prefix("~/"));
    match home_relative {
        Some(rest) => format!("\"$HOME\"/{}", quote(rest)),
        None => quote(value).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_written_as_slurm_reads_it() {
        assert_eq!(slurm_time(Duration::from_secs(90)), "00:01:30");
        assert_eq!(slurm_time(Duration::from_secs(2 * 3600)), "02:00:00");
        assert_eq!(slurm_time(Duration::from_secs(86_400 + 3661)), "1-01:01:01");
    }

    #[test]
    fn job_names_carry_the_session_and_stay_safe() {
        assert_eq!(job_name("s-1", "my svc;rm -rf"), "orch-s-1-my_svc_rm_-rf");
    }

    #[test]
    fn recipe_values_override_defaults_and_extra_args_add_up() {
        let defaults = SbatchOptions {
            partition: Some("cpu".into()),
            account: Some("p200".into()),
            time: Some(Duration::from_secs(3600)),
            extra_args: vec!["--exclusive".into()],
            ..SbatchOptions::default()
        };
        let job = SbatchOptions {
            partition: Some("gpu".into()),
            gpus: Some(1),
            extra_args: vec!["--hold".into()],
            ..SbatchOptions::default()
        };
        let merged = job.merged_over(&defaults);
        assert_eq!(merged.partition.as_deref(), Some("gpu"));
        assert_eq!(merged.account.as_deref(), Some("p200"));
        assert_eq!(merged.time, Some(Duration::from_secs(3600)));
        assert_eq!(merged.extra_args, ["--exclusive", "--hold"]);
        assert!(merged.wants_gpu());
    }
}
