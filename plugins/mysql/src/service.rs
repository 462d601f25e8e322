//! The `mysql` service driver: MySQL or MariaDB (`type: mysql`, `type: mariadb`, or a
//! service whose command is `mysqld` or `mariadbd`).
//!
//! - With neither `command` nor `container_image`, the node's own server runs natively:
//!   `mariadbd` (else `mysqld`) from the PATH, on a data directory initialised on first
//!   use (`mariadb-install-db`, else `mysqld --initialize-insecure`) in the job's
//!   directory, or at `options.datadir` to keep it between sessions. As the official
//!   images do, `MYSQL_DATABASE`, `MYSQL_USER` with `MYSQL_PASSWORD`, and
//!   `MYSQL_ROOT_PASSWORD` (or their `MARIADB_` names) in the service's environment
//!   create that database and those users (for any host) at every start; the SQL goes
//!   through a file only the job's user can read, never a command line. The recipe's
//!   `args` are added to the server's.
//! - With a `container_image` and no `command`, the image's own entry point runs (the
//!   official images read the same variables); with a `command`, that command.
//!
//! Healthy once the server accepts a login as `MYSQL_USER` (else as root with
//! `MYSQL_ROOT_PASSWORD`); with neither, once it greets. The greeting's version goes to
//! the report.

use std::collections::BTreeMap;

use orchestrator_core::{
    Arg, DriverError, HealthProbe, Launch, ProbeKind, Secret, ServiceDriver, ServiceDriverEntry,
    recipe_args,
};
use orchestrator_recipes::ServiceRecipe;
use serde_json::{Map, Value};

/// MySQL's and MariaDB's port.
pub const DEFAULT_PORT: u16 = 3306;

/// The `mysql` service driver.
#[derive(Debug, Clone, Copy)]
pub struct MysqlService;

/// Runs the node's server on an initialised data directory: `sh -c NATIVE mysql PORT
/// DATADIR [SERVER ARGS...]`.
const NATIVE: &str = r#"set -eu
port=$1 data=$2
shift 2
[ -n "$data" ] || data=$PWD/mysql-data
run=$PWD/mysql-run
umask 077
mkdir -p "$data" "$run"
server=
for p in mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld /usr/libexec/mysqld; do
    if command -v "$p" >/dev/null 2>&1; then server=$(command -v "$p"); break; fi
done
if [ -z "$server" ]; then
    echo "mysql: neither mariadbd nor mysqld is on this node (load the module that has one, or give the service a container_image)" >&2
    exit 127
fi
me=$(id -un)
if [ ! -d "$data/mysql" ]; then
    echo "mysql: initialising the data directory $data" >&2
    if command -v mariadb-install-db >/dev/null 2>&1; then
        mariadb-install-db --no-defaults --datadir="$data" --user="$me" --skip-test-db \
            --auth-root-authentication-method=socket --auth-root-socket-user="$me" \
            >"$run/install.log" 2>&1 || { cat "$run/install.log" >&2; exit 1; }
    else
        "$server" --no-defaults --initialize-insecure --datadir="$data" --user="$me" \
            >"$run/install.log" 2>&1 || { cat "$run/install.log" >&2; exit 1; }
    fi
fi
# The users and database the environment names, as the official images make them: SQL
# in a file only this user reads, run by the server at every start.
lit() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
ident() { printf '%s' "$1" | sed 's/`/``/g'; }
db=${MYSQL_DATABASE:-${MARIADB_DATABASE:-}}
user=${MYSQL_USER:-${MARIADB_USER:-}}
pass=${MYSQL_PASSWORD:-${MARIADB_PASSWORD:-}}
root=${MYSQL_ROOT_PASSWORD:-${MARIADB_ROOT_PASSWORD:-}}
sql=$run/init.sql
: >"$sql"
if [ -n "$db" ]; then
    printf 'CREATE DATABASE IF NOT EXISTS `%s`;\n' "$(ident "$db")" >>"$sql"
fi
if [ -n "$user" ]; then
    u=$(lit "$user") p=$(lit "$pass")
    printf "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s';\n" "$u" "$p" >>"$sql"
    printf "ALTER USER '%s'@'%%' IDENTIFIED BY '%s';\n" "$u" "$p" >>"$sql"
    if [ -n "$db" ]; then
        printf "GRANT ALL ON \`%s\`.* TO '%s'@'%%';\n" "$(ident "$db")" "$u" >>"$sql"
    fi
fi
if [ -n "$root" ]; then
    p=$(lit "$root")
    printf "CREATE USER IF NOT EXISTS 'root'@'%%' IDENTIFIED BY '%s';\n" "$p" >>"$sql"
    printf "ALTER USER 'root'@'%%' IDENTIFIED BY '%s';\n" "$p" >>"$sql"
    printf "GRANT ALL ON *.* TO 'root'@'%%' WITH GRANT OPTION;\n" >>"$sql"
fi
echo "mysql: $("$server" --version)" >&2
# A socket path must be short (108 bytes): in the node's temporary directory.
exec "$server" --no-defaults --datadir="$data" --port="$port" --bind-address=0.0.0.0 \
    --socket="${TMPDIR:-/tmp}/orch-mysql-${SLURM_JOB_ID:-$$}.sock" \
    --pid-file="$run/mysqld.pid" --user="$me" --init-file="$sql" "$@"
"#;

/// The options `datadir` takes.
fn datadir(options: &BTreeMap<String, Value>) -> Result<Option<String>, DriverError> {
    match options.get("datadir") {
        None => Ok(None),
        Some(Value::String(dir)) if !dir.trim().is_empty() => Ok(Some(dir.clone())),
        Some(_) => Err(DriverError::new(
            "`datadir` must be a directory path",
            "e.g. options: {datadir: $HOME/mysql-data}, or leave it out for a fresh one in the job's directory",
        )),
    }
}

fn port(service: &ServiceRecipe) -> u16 {
    service.ports.first().copied().unwrap_or(DEFAULT_PORT)
}

/// The first of `names` the service's environment sets, with its value.
fn env_value<'a>(service: &'a ServiceRecipe, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| service.environment.get(*n))
        .map(orchestrator_recipes::ScalarString::as_str)
}

/// Who the health check logs in as: `MYSQL_USER` with `MYSQL_PASSWORD`, else root with
/// `MYSQL_ROOT_PASSWORD` (or an empty one where `MYSQL_ALLOW_EMPTY_PASSWORD` is set), as
/// the recipe writes them. A value the job's shell would expand (`$…`) is not known here:
/// then the greeting alone is checked.
fn credentials(service: &ServiceRecipe) -> Option<(String, Secret)> {
    let known = |v: &str| !v.contains('$');
    let user = env_value(service, &["MYSQL_USER", "MARIADB_USER"]);
    let password = env_value(service, &["MYSQL_PASSWORD", "MARIADB_PASSWORD"]).unwrap_or("");
    if let Some(user) = user.filter(|u| known(u) && known(password)) {
        return Some((user.to_owned(), Secret::new(password)));
    }
    if let Some(root) = env_value(service, &["MYSQL_ROOT_PASSWORD", "MARIADB_ROOT_PASSWORD"]) {
        return known(root).then(|| ("root".to_owned(), Secret::new(root)));
    }
    env_value(
        service,
        &[
            "MYSQL_ALLOW_EMPTY_PASSWORD",
            "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
        ],
    )
    .filter(|v| !v.is_empty())
    .map(|_| ("root".to_owned(), Secret::default()))
}

impl ServiceDriver for MysqlService {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn description(&self) -> &'static str {
        "MySQL or MariaDB, natively (data directory initialised on first use) or from its image; healthy once it accepts a login"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["mariadb", "mysqld", "mariadbd"]
    }

    fn options_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "datadir": {
                    "description": "the data directory of a natively run server, kept between sessions (initialised when empty); by default a fresh one in the job's directory",
                    "type": "string",
                    "minLength": 1
                }
            }
        })
    }

    fn check_options(&self, options: &Map<String, Value>) -> Result<(), DriverError> {
        let options: BTreeMap<String, Value> = options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        datadir(&options).map(drop)
    }

    fn launch(&self, service: &ServiceRecipe) -> Result<Launch, DriverError> {
        if let Some(launch) = Launch::as_written(service) {
            return Ok(launch);
        }
        let dir = datadir(&service.options)?.unwrap_or_default();
        let mut args: Vec<Arg> = vec![
            "-c".into(),
            NATIVE.into(),
            "mysql".into(),
            port(service).to_string().into(),
            Arg::Expanding(dir),
        ];
        args.extend(recipe_args(&service.args));
        Ok(Launch {
            command: "sh".into(),
            args,
            ..Launch::default()
        })
    }

    fn review(&self, service: &ServiceRecipe) -> Vec<String> {
        let mut notes = Vec::new();
        let program = service
            .command
            .as_deref()
            .and_then(|c| std::path::Path::new(c).file_name()?.to_str());
        let creates = ["MYSQL_DATABASE", "MYSQL_USER", "MYSQL_ROOT_PASSWORD"]
            .iter()
            .any(|k| service.environment.contains_key(*k));
        if service.container_image.is_some()
            && matches!(program, Some("mysqld" | "mariadbd"))
            && creates
        {
            notes.push(format!(
                "`command: {}` starts the server without the image's entry point, so MYSQL_DATABASE, MYSQL_USER and MYSQL_ROOT_PASSWORD create nothing (the health check's login fails unless the data directory already has them); drop `command` and `args` to let the image make them",
                program.unwrap_or_default()
            ));
        }
        if service.options.contains_key("datadir")
            && (service.command.is_some() || service.container_image.is_some())
        {
            notes.push(
                "`options.datadir` is for a natively run server (no `command`, no `container_image`); it is ignored here: pass the server its `--datadir` in `args`"
                    .into(),
            );
        }
        notes
    }

    fn health_probe(&self, service: &ServiceRecipe) -> Option<HealthProbe> {
        let login = credentials(service);
        let mysql = |host: Option<String>| {
            let (user, password) = login
                .clone()
                .map_or((None, Secret::default()), |(u, p)| (Some(u), p));
            ProbeKind::Mysql {
                host,
                user,
                password,
            }
        };
        // Without a health_check, up to 5 minutes: an image's first start initialises
        // its data directory.
        if let Some(probe) = HealthProbe::own_check(service, mysql(None), port(service), 300) {
            return Some(probe);
        }
        // An endpoint of the recipe's own is honoured; a mysql:// one logs in.
        let mut probe = HealthProbe::for_service(service)?;
        if let ProbeKind::Mysql { host, .. } = &probe.check {
            probe.check = mysql(host.clone());
        }
        Some(probe)
    }
}

inventory::submit! { ServiceDriverEntry(&MysqlService) }

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_core::Registry;
    use std::time::Duration;

    fn recipe(yaml: Value) -> ServiceRecipe {
        serde_json::from_value(yaml).unwrap()
    }

    fn login(probe: &HealthProbe) -> (Option<String>, Secret) {
        match &probe.check {
            ProbeKind::Mysql { user, password, .. } => (user.clone(), password.clone()),
            other => panic!("not a MySQL login: {other:?}"),
        }
    }

    #[test]
    fn mariadb_and_the_servers_programs_are_names_of_this_driver() {
        for kind in ["mysql", "mariadb"] {
            let service = recipe(serde_json::json!({"name": "db", "type": kind}));
            assert_eq!(
                Registry::service_driver_for(&service)
                    .unwrap()
                    .driver
                    .name(),
                "mysql"
            );
        }
        // The original tool's MySQL recipe: no type, `command: mysqld`.
        let original = recipe(serde_json::json!({
            "name": "mysql", "command": "mysqld", "container_image": "mysql_latest.sif"
        }));
        let resolved = Registry::service_driver_for(&original).unwrap();
        assert_eq!(resolved.driver.name(), "mysql");
        assert!(resolved.note.unwrap().contains("write `type: mysql`"));
        // Another program is not this driver's (here no fallback is linked: an error).
        let other = recipe(serde_json::json!({"name": "x", "command": "postgres"}));
        assert!(Registry::service_driver_for(&other).is_err());
    }

    #[test]
    fn the_health_check_logs_in_as_the_user_the_environment_makes() {
        let probe = |env: Value| {
            MysqlService
                .health_probe(&recipe(
                    serde_json::json!({"name": "db", "environment": env}),
                ))
                .unwrap()
        };
        let p = probe(
            serde_json::json!({"MYSQL_USER": "bench", "MYSQL_PASSWORD": "pw", "MYSQL_ROOT_PASSWORD": "r"}),
        );
        assert_eq!(login(&p), (Some("bench".into()), Secret::new("pw")));
        assert_eq!((p.port, p.retries), (Some(DEFAULT_PORT), 300));
        let p = probe(serde_json::json!({"MARIADB_ROOT_PASSWORD": "r"}));
        assert_eq!(login(&p), (Some("root".into()), Secret::new("r")));
        let p = probe(serde_json::json!({"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}));
        assert_eq!(login(&p), (Some("root".into()), Secret::default()));
        // What only the job's shell knows is not guessed: the greeting alone.
        let p = probe(serde_json::json!({"MYSQL_USER": "bench", "MYSQL_PASSWORD": "${DB_PW}"}));
        assert_eq!(login(&p), (None, Secret::default()));
        assert_eq!(
            login(&probe(serde_json::json!({}))),
            (None, Secret::default())
        );
        // The password is never serialised (plans and reports show probes).
        let p = probe(serde_json::json!({"MYSQL_USER": "bench", "MYSQL_PASSWORD": "hunter2"}));
        let shown = serde_json::to_string(&p).unwrap();
        assert!(
            shown.contains("\"user\":\"bench\"") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn a_recipes_health_check_keeps_its_timing_and_an_endpoint_of_its_own() {
        let original = recipe(serde_json::json!({
            "name": "mysql", "ports": [3307],
            "environment": {"MYSQL_USER": "u", "MYSQL_PASSWORD": "p"},
            "health_check": {"timeout": 30, "retries": 5, "interval": 10}
        }));
        let p = MysqlService.health_probe(&original).unwrap();
        assert_eq!(login(&p).0.as_deref(), Some("u"));
        assert_eq!(
            (p.port, p.retries, p.interval, p.timeout),
            (
                Some(3307),
                5,
                Duration::from_secs(10),
                Duration::from_secs(30)
            )
        );
        let tcp = recipe(serde_json::json!({
            "name": "db", "ports": [3306], "health_check": {"endpoint": "tcp://localhost:3306"}
        }));
        assert!(matches!(
            MysqlService.health_probe(&tcp).unwrap().check,
            ProbeKind::Tcp { host: None }
        ));
        let url = recipe(serde_json::json!({
            "name": "db", "ports": [3306], "environment": {"MYSQL_USER": "u"},
            "health_check": {"endpoint": "mysql://db.example:3310"}
        }));
        let p = MysqlService.health_probe(&url).unwrap();
        assert_eq!(p.port, Some(3310));
        assert_eq!(p.host("node1"), "db.example");
        assert_eq!(login(&p).0.as_deref(), Some("u"));
    }

    #[test]
    fn natively_the_node_s_server_runs_on_its_port_with_the_recipes_args() {
        let launch = MysqlService
            .launch(&recipe(serde_json::json!({
                "name": "db", "ports": [33306], "args": ["--innodb-buffer-pool-size=1G"],
                "options": {"datadir": "${HOME}/mysql"}
            })))
            .unwrap();
        assert_eq!(launch.command, "sh");
        let args: Vec<&str> = launch.args.iter().map(Arg::text).collect();
        assert_eq!(args[0], "-c");
        assert!(args[1].contains("mariadb-install-db"));
        assert_eq!(
            &args[2..],
            [
                "mysql",
                "33306",
                "${HOME}/mysql",
                "--innodb-buffer-pool-size=1G"
            ]
        );
        assert!(matches!(launch.args[4], Arg::Expanding(_)));
        // An image runs its own entry point; a command runs as written.
        let image = MysqlService
            .launch(&recipe(
                serde_json::json!({"name": "db", "container_image": "mariadb.sif"}),
            ))
            .unwrap();
        assert_eq!(image.command, "/.singularity.d/runscript");
        let command = MysqlService
            .launch(&recipe(
                serde_json::json!({"name": "db", "command": "mysqld", "args": ["--port=3306"]}),
            ))
            .unwrap();
        assert_eq!(
            (command.command.as_str(), command.args.len()),
            ("mysqld", 1)
        );
        assert!(
            MysqlService
                .check_options(
                    &serde_json::json!({"datadir": 5})
                        .as_object()
                        .unwrap()
                        .clone()
                )
                .is_err()
        );
    }

    #[test]
    fn mysqld_run_past_an_images_entry_point_is_warned_about() {
        let original = recipe(serde_json::json!({
            "name": "mysql", "command": "mysqld", "container_image": "mysql_latest.sif",
            "environment": {"MYSQL_USER": "benchmark_user", "MYSQL_PASSWORD": "benchmark_pass"}
        }));
        let notes = MysqlService.review(&original);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].contains("without the image's entry point"),
            "{notes:?}"
        );
        assert!(
            MysqlService
                .review(&recipe(serde_json::json!({"name": "db"})))
                .is_empty()
        );
        let misplaced = recipe(serde_json::json!({
            "name": "db", "command": "mariadbd", "options": {"datadir": "/x"}
        }));
        assert!(MysqlService.review(&misplaced)[0].contains("ignored here"));
    }
}
