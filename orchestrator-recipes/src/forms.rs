//! What kind of file this is, and the original tool's layouts rewritten into the
//! canonical one.
//!
//! Runs on the spanned [`Node`] tree before schema validation, so moved values keep
//! the position they were written at and every later diagnostic still points into the
//! user's file. Each rewrite is recorded as a note ("which form was read").

use crate::diagnostic::{Code, Problem, closest};
use crate::model::Kind;
use crate::source::{ByteSpan, SourceText};
use crate::yaml::{Entry, Node, NodeKind};

/// A file's documents as one canonical tree.
#[derive(Debug)]
pub struct Normalized {
    /// What the file is.
    pub kind: Kind,
    /// The canonical tree.
    pub root: Node,
    /// Which forms were read, for `--verbose`.
    pub notes: Vec<String>,
    /// Forms of the original tool that this tool does not run, taken out of the tree:
    /// problems reported with the schema's, so that the rest is checked as written.
    pub refused: Vec<Problem>,
}

const CONFIG_KEYS: &[&str] = &[
    "hpc",
    "slurm",
    "services_dir",
    "clients_dir",
    "containers",
    "state_dir",
    "results_dir",
    "work_dir",
    "templates_dir",
    "monitoring",
    "logging",
    "benchmarks",
];
const CLIENT_KEYS: &[&str] = &["workload_type", "target_service", "parameters", "duration"];
/// SLURM keys the original tool wrote directly under `resources`.
const FLAT_SLURM_KEYS: &[&str] = &[
    "time",
    "qos",
    "partition",
    "nodes",
    "ntasks",
    "ntasks_per_node",
    "gres",
    "account",
    "constraint",
];
/// Config keys ending in `_dir` that the typed config knows itself.
const KNOWN_DIRS: &[&str] = &[
    "services_dir",
    "clients_dir",
    "state_dir",
    "results_dir",
    "work_dir",
    "templates_dir",
];

/// The keys of the original tool's `container:` block.
const CONTAINER_BLOCK_KEYS: [&str; 5] = [
    "docker_source",
    "image_path",
    "bind_mounts",
    "force_rebuild",
    "build_commands",
];

fn container_block_keys() -> String {
    CONTAINER_BLOCK_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Normalizer {
    source: SourceText,
    notes: Vec<String>,
    problems: Vec<Problem>,
    refused: Vec<Problem>,
}

/// Classifies `documents` (or takes `expected` as given) and rewrites them into one
/// canonical tree.
///
/// # Errors
/// Every problem found while doing so.
pub fn normalize(
    source: &SourceText,
    documents: Vec<Node>,
    expected: Option<Kind>,
) -> Result<Normalized, Vec<Problem>> {
    let documents: Vec<Node> = documents
        .into_iter()
        .filter(|d| d.kind != NodeKind::Null)
        .collect();
    let Some(first) = documents.first() else {
        return Err(vec![
            Problem::new(
                Code::Empty,
                "the file holds no YAML document",
                ByteSpan::new(0, 0),
            )
            .with_label("only comments and blank lines")
            .with_help("a recipe starts with `name:` (or `service:` / `client:`)"),
        ]);
    };
    let mut problems: Vec<Problem> = documents
        .iter()
        .filter(|d| d.entries().is_none())
        .map(|d| {
            Problem::new(
                Code::WrongType,
                format!(
                    "expected a mapping of keys at the top of the document, found {}",
                    d.type_name()
                ),
                d.span,
            )
            .with_label("not a mapping")
            .with_help("write `key: value` lines, e.g. `name: redis`")
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    let kind = match expected {
        Some(kind) => kind,
        None if documents.len() > 1 => Kind::Recipe,
        None => match classify(first) {
            Some(kind) => kind,
            None => {
                return Err(vec![
                    Problem::new(
                        Code::UnknownKind,
                        "cannot tell whether this is a service, a client, a complete recipe or a config",
                        first.span.to(ByteSpan::new(first.span.offset, 0)),
                    )
                    .with_label("start of the document")
                    .with_help(
                        "a service has `name` and `command` or `container_image`; a client has `workload_type` or `target_service`; a complete recipe has `services:` and `clients:`; or pass --kind",
                    ),
                ]);
            }
        },
    };
    let mut n = Normalizer {
        source: source.clone(),
        notes: Vec::new(),
        problems: Vec::new(),
        refused: Vec::new(),
    };
    let root = match kind {
        Kind::Recipe => n.recipe(documents),
        Kind::Service | Kind::Client => {
            let mut documents = documents;
            if documents.len() > 1 {
                let extra = &documents[1];
                problems.push(
                    Problem::new(
                        Code::UnknownKind,
                        format!(
                            "a {kind} holds one YAML document, found {}",
                            documents.len()
                        ),
                        extra.span.to(ByteSpan::new(extra.span.offset, 0)),
                    )
                    .with_label("second document")
                    .with_help(
                        "several documents make a complete recipe: validate it with --kind recipe",
                    ),
                );
                return Err(problems);
            }
            let doc = documents.remove(0);
            let wrapper = kind.as_str();
            let mut node = match unwrap_single(doc, wrapper) {
                Ok(inner) => {
                    n.notes.push(format!(
                        "the original tool's layout: the {wrapper} is wrapped in a top-level `{wrapper}:` key"
                    ));
                    inner
                }
                Err(doc) => doc,
            };
            n.job(&mut node, kind);
            node
        }
        Kind::Config => {
            let mut node = documents.into_iter().next().expect("checked non-empty");
            n.config(&mut node);
            node
        }
    };
    if n.problems.is_empty() {
        Ok(Normalized {
            kind,
            root,
            notes: n.notes,
            refused: n.refused,
        })
    } else {
        let mut problems = n.problems;
        problems.append(&mut n.refused);
        Err(problems)
    }
}

fn classify(doc: &Node) -> Option<Kind> {
    let has = |keys: &[&str]| keys.iter().any(|k| doc.get(k).is_some());
    // The original tool's `monitoring:` section beside `service:` is a second service.
    if has(&["services", "clients"]) || (has(&["service"]) && has(&["client", "monitoring"])) {
        Some(Kind::Recipe)
    } else if has(&["service"]) {
        Some(Kind::Service)
    } else if has(&["client"]) {
        Some(Kind::Client)
    } else if has(CONFIG_KEYS) {
        Some(Kind::Config)
    } else if has(CLIENT_KEYS) {
        Some(Kind::Client)
    } else if has(&["name", "command", "container_image", "ports"]) {
        Some(Kind::Service)
    } else {
        None
    }
}

/// The value of a single-key mapping `{wrapper: value}`, or the document unchanged.
fn unwrap_single(doc: Node, wrapper: &str) -> Result<Node, Node> {
    match doc.kind {
        NodeKind::Map(mut entries) if entries.len() == 1 && entries[0].key == wrapper => {
            Ok(entries.remove(0).value)
        }
        kind => Err(Node::new(doc.span, kind)),
    }
}

fn take(entries: &mut Vec<Entry>, key: &str) -> Option<Entry> {
    let index = entries.iter().position(|e| e.key == key)?;
    Some(entries.remove(index))
}

fn map_entries(node: &mut Node) -> Option<&mut Vec<Entry>> {
    match &mut node.kind {
        NodeKind::Map(entries) => Some(entries),
        _ => None,
    }
}

impl Normalizer {
    fn conflict(&mut self, legacy: &Entry, canonical: &str, existing: ByteSpan) {
        let (line, _) = self.source.line_col(existing.offset);
        self.problems.push(
            Problem::new(
                Code::Conflict,
                format!("`{}` and `{canonical}` set the same thing", legacy.key),
                legacy.key_span,
            )
            .with_label("original tool's key")
            .with_help(format!(
                "`{canonical}` is also set on line {line}; keep one of them"
            )),
        );
    }

    /// The original tool's `monitoring_targets` (`service_id`, `job_name`, `port`, or
    /// `host`): each `service_id` is `service`, and a service with them and no `type`
    /// is a Prometheus.
    fn monitoring_targets(&mut self, entries: &mut Vec<Entry>) {
        let Some(targets) = entries.iter_mut().find(|e| e.key == "monitoring_targets") else {
            return;
        };
        let key_span = targets.key_span;
        let mut renamed = false;
        if let NodeKind::Seq(items) = &mut targets.value.kind {
            for item in items {
                if let Some(fields) = map_entries(item) {
                    if let Some(id) = fields.iter_mut().find(|f| f.key == "service_id") {
                        id.key = "service".into();
                        renamed = true;
                    }
                }
            }
        }
        if renamed {
            self.notes
                .push("the original tool's `monitoring_targets[].service_id` as `service`".into());
        }
        if !entries.iter().any(|e| e.key == "type") {
            entries.push(Entry {
                key: "type".into(),
                key_span,
                value: Node::new(key_span, NodeKind::Str("prometheus".into())),
            });
            self.notes.push(
                "a service with `monitoring_targets` as `type: prometheus`, the session's Prometheus"
                    .into(),
            );
        }
    }

    /// Keys of the original tool's services that this tool does not run, each said at
    /// its key with what to write instead, and taken out (the schema would only call
    /// them unknown).
    fn original_service_keys(&mut self, entries: &mut Vec<Entry>) {
        self.monitoring_targets(entries);
        const NOT_RUN: [(&str, &str, &str, &str); 1] = [(
            "init_script",
            "the original tool's `init_script` (SQL run once the database is up) is not run by this tool",
            "the original's init_script",
            "run it from `setup_script:`, a bash script run on the service's node once its health check passes, with the database's own client:\n  setup_script: |\n    mysql -h 127.0.0.1 -uroot -p\"$MYSQL_ROOT_PASSWORD\" <<'SQL'\n    …the SQL…\n    SQL",
        )];
        for (key, message, label, help) in NOT_RUN {
            if let Some(entry) = take(entries, key) {
                self.refused.push(
                    Problem::new(Code::UnknownKey, message, entry.key_span)
                        .with_label(label)
                        .with_help(help),
                );
            }
        }
    }

    /// Builds `{name?, description?, services: [...], clients: [...]}` from one or
    /// several documents.
    fn recipe(&mut self, documents: Vec<Node>) -> Node {
        let several = documents.len() > 1;
        let span = documents[0].span.to(documents[documents.len() - 1].span);
        let mut services: Vec<Node> = Vec::new();
        let mut clients: Vec<Node> = Vec::new();
        let mut services_key = None;
        let mut clients_key = None;
        let mut rest: Vec<Entry> = Vec::new();
        let mut wrapped = false;
        for doc in documents {
            let NodeKind::Map(entries) = doc.kind else {
                continue;
            };
            for entry in entries {
                let (list, key_slot, kind) = match entry.key.as_str() {
                    "service" | "services" => (&mut services, &mut services_key, Kind::Service),
                    "client" | "clients" => (&mut clients, &mut clients_key, Kind::Client),
                    "monitoring" => {
                        let entry = self.monitoring_entry(entry, &mut services);
                        rest.push(entry);
                        continue;
                    }
                    _ => {
                        rest.push(entry);
                        continue;
                    }
                };
                key_slot.get_or_insert(entry.key_span);
                if entry.key.ends_with('s') {
                    match entry.value.kind {
                        NodeKind::Seq(items) => list.extend(items),
                        NodeKind::Null => {}
                        _ => self.problems.push(
                            Problem::new(
                                Code::WrongType,
                                format!(
                                    "expected a list of {}s, found {}",
                                    kind.as_str(),
                                    entry.value.type_name()
                                ),
                                entry.value.span,
                            )
                            .with_label("not a list")
                            .with_help(format!(
                                "write each {} as a list item starting with `- name: ...`, or use `{}:` for a single one",
                                kind.as_str(),
                                kind.as_str()
                            )),
                        ),
                    }
                } else {
                    wrapped = true;
                    list.push(entry.value);
                }
            }
        }
        if several {
            self.notes.push(
                "a complete recipe in several YAML documents (`service:` --- `client:`)".into(),
            );
        } else if wrapped {
            self.notes
                .push("a complete recipe with single `service:` / `client:` keys".into());
        }
        for service in &mut services {
            self.job(service, Kind::Service);
        }
        for client in &mut clients {
            self.job(client, Kind::Client);
        }
        let list = |items: Vec<Node>, key_span: Option<ByteSpan>, name: &str| Entry {
            key: name.to_owned(),
            key_span: key_span.unwrap_or(ByteSpan::new(span.offset, 0)),
            value: Node::new(
                items
                    .first()
                    .map_or(ByteSpan::new(span.offset, 0), |first| first.span),
                NodeKind::Seq(items),
            ),
        };
        if services_key.is_some() || services.is_empty() {
            rest.push(list(services, services_key, "services"));
        }
        if clients_key.is_some() {
            rest.push(list(clients, clients_key, "clients"));
        }
        Node::new(span, NodeKind::Map(rest))
    }

    /// `monitoring: prometheus` is `monitoring: {type: prometheus}`; the original
    /// tool's `monitoring:` section beside `service:` (a Prometheus described as a
    /// service, with a `name`) is that service, added to `services`, and
    /// `monitoring: {service: NAME}`.
    fn monitoring_entry(&mut self, mut entry: Entry, services: &mut Vec<Node>) -> Entry {
        let span = entry.value.span;
        let map = |key: &str, value: Node| {
            Node::new(
                span,
                NodeKind::Map(vec![Entry {
                    key: key.into(),
                    key_span: span,
                    value,
                }]),
            )
        };
        match &entry.value.kind {
            NodeKind::Str(kind) => {
                entry.value = map("type", Node::new(span, NodeKind::Str(kind.clone())));
            }
            NodeKind::Map(fields) if fields.iter().any(|f| f.key == "name") => {
                let name = fields
                    .iter()
                    .find(|f| f.key == "name")
                    .map(|f| f.value.clone())
                    .expect("found above");
                let mut service = std::mem::replace(&mut entry.value, map("service", name));
                if let Some(fields) = map_entries(&mut service) {
                    if !fields.iter().any(|f| f.key == "type") {
                        fields.push(Entry {
                            key: "type".into(),
                            key_span: entry.key_span,
                            value: Node::new(span, NodeKind::Str("prometheus".into())),
                        });
                    }
                }
                services.push(service);
                self.notes.push(
                    "the original tool's `monitoring:` section as a `type: prometheus` service, the session's Prometheus (`monitoring: {service: NAME}`)"
                        .into(),
                );
            }
            _ => {}
        }
        entry
    }

    /// Rewrites the original tool's layout of one service or client in place.
    fn job(&mut self, node: &mut Node, kind: Kind) {
        let label = match &node.get("name").map(|n| &n.kind) {
            Some(NodeKind::Str(name)) => format!("{} `{name}`", kind.as_str()),
            _ => kind.as_str().to_owned(),
        };
        let Some(entries) = map_entries(node) else {
            return;
        };
        if kind == Kind::Service {
            self.original_service_keys(entries);
        }
        // resources: SLURM keys written directly under `resources`.
        if let Some(resources) = entries.iter_mut().find(|e| e.key == "resources") {
            let resources_key = resources.key_span;
            if let Some(res) = map_entries(&mut resources.value) {
                let mut moved = Vec::new();
                let mut renamed = Vec::new();
                let flat: Vec<Entry> = FLAT_SLURM_KEYS
                    .iter()
                    .filter_map(|k| take(res, k))
                    .collect();
                for (legacy, canonical) in [("mem", "memory"), ("cpus_per_task", "cpus")] {
                    if let Some(entry) = take(res, legacy) {
                        if let Some(existing) = res.iter().find(|e| e.key == canonical) {
                            let at = existing.key_span;
                            self.conflict(&entry, &format!("resources.{canonical}"), at);
                            continue;
                        }
                        renamed.push(format!("`resources.{legacy}` as `resources.{canonical}`"));
                        res.push(Entry {
                            key: canonical.to_owned(),
                            ..entry
                        });
                    }
                }
                if !flat.is_empty() {
                    if !res.iter().any(|e| e.key == "slurm") {
                        res.push(Entry {
                            key: "slurm".into(),
                            key_span: resources_key,
                            value: Node::new(flat[0].key_span, NodeKind::Map(Vec::new())),
                        });
                    }
                    let slurm = res
                        .iter_mut()
                        .find(|e| e.key == "slurm")
                        .expect("inserted above");
                    match map_entries(&mut slurm.value) {
                        Some(slurm_entries) => {
                            for entry in flat {
                                if let Some(existing) =
                                    slurm_entries.iter().find(|e| e.key == entry.key)
                                {
                                    let at = existing.key_span;
                                    let canonical = format!("resources.slurm.{}", entry.key);
                                    self.conflict(&entry, &canonical, at);
                                } else {
                                    moved.push(format!("`{}`", entry.key));
                                    slurm_entries.push(entry);
                                }
                            }
                        }
                        None => {
                            // `slurm:` is not a mapping: put the keys back so the schema
                            // reports both where they are.
                            res.extend(flat);
                        }
                    }
                }
                if !moved.is_empty() {
                    self.notes.push(format!(
                        "the original tool's layout in {label}: SLURM keys {} directly under `resources` (read as `resources.slurm.*`)",
                        moved.join(", ")
                    ));
                }
                if !renamed.is_empty() {
                    self.notes.push(format!(
                        "the original tool's layout in {label}: read {}",
                        renamed.join(" and ")
                    ));
                }
            }
        }
        // container: {docker_source, image_path}
        if let Some(container) = take(entries, "container") {
            match container.value.kind {
                NodeKind::Map(block) => {
                    // A key given no value is unset: it replaces nothing.
                    for item in block.into_iter().filter(|i| i.value.kind != NodeKind::Null) {
                        let canonical = match item.key.as_str() {
                            "docker_source" => "container_source",
                            "image_path" => "container_image",
                            "bind_mounts" => "container_binds",
                            "force_rebuild" => "container_rebuild",
                            "build_commands" => "container_build_commands",
                            other => {
                                let hint = closest(other, CONTAINER_BLOCK_KEYS);
                                self.problems.push(
                                    Problem::new(
                                        Code::UnknownKey,
                                        format!("unknown key `{other}` in the `container` block"),
                                        item.key_span,
                                    )
                                    .with_label("not a known key")
                                    .with_help(match hint {
                                        Some(h) => format!(
                                            "did you mean `{h}`? the block takes {}",
                                            container_block_keys()
                                        ),
                                        None => {
                                            format!("the block takes {}", container_block_keys())
                                        }
                                    }),
                                );
                                continue;
                            }
                        };
                        match entries.iter().position(|e| e.key == canonical) {
                            Some(i) if canonical == "container_image" => {
                                // The original's files give both: the short name and
                                // the full path. The path is what runs.
                                entries[i] = Entry {
                                    key: canonical.into(),
                                    ..item
                                };
                            }
                            Some(i) => {
                                let at = entries[i].key_span;
                                self.conflict(&item, canonical, at);
                            }
                            None => entries.push(Entry {
                                key: canonical.into(),
                                ..item
                            }),
                        }
                    }
                    self.notes.push(format!(
                        "the original tool's `container:` block in {label} (read as `container_source` / `container_image`, `bind_mounts` as `container_binds`, `force_rebuild` as `container_rebuild`, `build_commands` as `container_build_commands`; `image_path` wins over `container_image`)"
                    ));
                }
                kind => {
                    let value = Node::new(container.value.span, kind);
                    self.problems.push(
                        Problem::new(
                            Code::WrongType,
                            format!("expected a mapping with `docker_source` and `image_path`, found {}", value.type_name()),
                            value.span,
                        )
                        .with_label("not a mapping")
                        .with_help("for just an image file use `container_image: FILE.sif`"),
                    );
                }
            }
        }
        if kind == Kind::Client {
            if let Some(endpoint) = take(entries, "health_check_endpoint") {
                let target = match entries.iter_mut().find(|e| e.key == "target_service") {
                    Some(target) => target,
                    None => {
                        entries.push(Entry {
                            key: "target_service".into(),
                            key_span: endpoint.key_span,
                            value: Node::new(endpoint.key_span, NodeKind::Map(Vec::new())),
                        });
                        entries.last_mut().expect("just pushed")
                    }
                };
                if let Some(target_entries) = map_entries(&mut target.value) {
                    if let Some(existing) = target_entries
                        .iter()
                        .find(|e| e.key == "health_check_endpoint")
                    {
                        let at = existing.key_span;
                        self.conflict(&endpoint, "target_service.health_check_endpoint", at);
                    } else {
                        target_entries.push(endpoint);
                        self.notes.push(format!(
                            "the original tool's layout in {label}: `health_check_endpoint` read as `target_service.health_check_endpoint`"
                        ));
                    }
                }
            }
            if let Some(parameters) = entries.iter().find(|e| e.key == "parameters") {
                for p in parameters.value.entries().unwrap_or_default() {
                    if let NodeKind::Str(text) = &p.value.kind {
                        if text.contains(',') {
                            self.notes.push(format!(
                                "parameter `{}` of {label} is a comma-separated list of {} values (a sweep for a workload; passed as written to a script)",
                                p.key,
                                text.split(',').count()
                            ));
                        }
                    }
                }
            }
        }
        if let Some(NodeKind::Str(url)) = node
            .get("health_check")
            .and_then(|h| h.get("endpoint"))
            .map(|e| &e.kind)
        {
            if url.starts_with("http://") || url.starts_with("https://") {
                self.notes.push(format!(
                    "`health_check.endpoint` of {label} is a full URL; `localhost` in it means the service's node"
                ));
            }
        }
    }

    /// Moves the original tool's extra `*_dir` keys into `extra_dirs`.
    fn config(&mut self, node: &mut Node) {
        let Some(entries) = map_entries(node) else {
            return;
        };
        let extra: Vec<Entry> = {
            let (extra, keep): (Vec<Entry>, Vec<Entry>) = entries
                .drain(..)
                .partition(|e| e.key.ends_with("_dir") && !KNOWN_DIRS.contains(&e.key.as_str()));
            *entries = keep;
            extra
        };
        for section in ["monitoring", "logging", "benchmarks"] {
            if entries.iter().any(|e| e.key == section) {
                self.notes.push(format!(
                    "the original tool's `{section}:` section (kept in the config, not used yet)"
                ));
            }
        }
        if extra.is_empty() {
            return;
        }
        self.notes.push(format!(
            "the original tool's directory keys {} (read into `extra_dirs`)",
            extra
                .iter()
                .map(|e| format!("`{}`", e.key))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let span = extra[0].key_span;
        match entries.iter_mut().find(|e| e.key == "extra_dirs") {
            Some(existing) => {
                if let Some(dirs) = map_entries(&mut existing.value) {
                    dirs.extend(extra);
                }
            }
            None => entries.push(Entry {
                key: "extra_dirs".into(),
                key_span: span,
                value: Node::new(span, NodeKind::Map(extra)),
            }),
        }
    }
}
