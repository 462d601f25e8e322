//! The `mysql` workload against Debian's real MariaDB server, which `scripts/test-cluster
//! up` starts (its URL comes from `scripts/test-cluster env`). Each test works in a
//! database of its own, dropped at the end; they take turns (`.config/nextest.toml`),
//! because they read the server's global counters.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use orchestrator_core::workload::{self, LoadSpec, Workload, WorkloadError};
use orchestrator_plugin_mysql::MysqlWorkload;
use serde_json::{Value, json};

fn server_url() -> String {
    std::env::var("ORCH_TEST_MYSQL_URL").expect(
        "ORCH_TEST_MYSQL_URL is set: run `scripts/test-cluster up` and \
         `eval \"$(scripts/test-cluster env)\"` (scripts/test does both)",
    )
}

/// `mysql://USER:PASSWORD@HOST:PORT/DB` in its parts.
fn parts(url: &str) -> (String, String, String, String) {
    let rest = url.strip_prefix("mysql://").unwrap();
    let (auth, rest) = rest.split_once('@').unwrap();
    let (user, password) = auth.split_once(':').unwrap();
    let (hostport, _) = rest.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();
    (user.into(), password.into(), host.into(), port.into())
}

/// Runs `sql` with Debian's `mariadb` client (the password in its environment, not on
/// its command line); the rows, tab-separated.
fn mariadb(database: &str, sql: &str) -> String {
    let (user, password, host, port) = parts(&server_url());
    let out = Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h",
            &host,
            "-P",
            &port,
            "-u",
            &user,
            "-N",
            "-B",
            "-D",
            database,
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", password)
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "mariadb {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The server's own counters, as its client reads them.
fn counters() -> BTreeMap<String, u64> {
    mariadb(
        "bench",
        "SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Com\\_%' OR Variable_name = 'Questions'",
    )
    .lines()
    .filter_map(|l| {
        let (k, v) = l.split_once('\t')?;
        Some((k.to_owned(), v.parse().ok()?))
    })
    .collect()
}

fn grown(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, name: &str) -> u64 {
    after[name] - before[name]
}

/// A fresh database on the test server, made by its root and granted to `bench`.
struct Db {
    name: String,
}

impl Db {
    fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "orch_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        root(&format!(
            "CREATE DATABASE {name}; GRANT ALL ON {name}.* TO 'bench'@'%'"
        ));
        Self { name }
    }

    fn url(&self) -> String {
        let server = server_url();
        format!("{}/{}", server.rsplit_once('/').unwrap().0, self.name)
    }

    fn workload(&self, params: Value) -> Arc<dyn Workload> {
        Arc::new(MysqlWorkload::new(&self.url(), params.as_object().unwrap()).unwrap())
    }

    fn sql(&self, sql: &str) -> String {
        mariadb(&self.name, sql)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        root(&format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

/// SQL as the server's root, through its socket (the test cluster's root logs in by
/// socket only).
fn root(sql: &str) {
    let dir = std::env::var("ORCH_TEST_CLUSTER_DIR").expect("ORCH_TEST_CLUSTER_DIR is set");
    let out = Command::new("mariadb")
        .args(["--no-defaults", "-uroot", "-e", sql])
        .arg(format!("--socket={dir}/mysql-run/mysqld.sock"))
        .output()
        .expect("the mariadb client runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_only_transactions_are_the_servers_commits_and_keep_the_tables_whole() {
    let db = Db::create();
    // The tables are made once, before the counters are read.
    let made = workload::run(
        db.workload(json!({"script": "oltp_point_select", "initialize": true, "tables": 2, "table_size": 1000})),
        &LoadSpec::closed(1, 1),
    )
    .await
    .unwrap();
    assert_eq!(made.summary.requests_completed, 1);
    assert_eq!(
        db.sql("SELECT COUNT(*), MIN(id), MAX(id) FROM sbtest2"),
        "1000\t1\t1000"
    );
    assert_eq!(
        db.sql("SELECT LENGTH(c), LENGTH(pad) FROM sbtest1 WHERE id = 7"),
        "119\t59"
    );

    let before = counters();
    let result = workload::run(
        db.workload(json!({"script": "oltp_write_only", "tables": 2})),
        &LoadSpec::closed(4, 400),
    )
    .await
    .unwrap();
    let after = counters();
    let s = &result.summary;
    let failed: u64 = s.errors.values().sum();
    assert_eq!(
        s.requests_completed + s.requests_failed,
        400,
        "{:?}",
        s.errors
    );
    // Each committed transaction is one COMMIT on the server; a failed one (a deadlock
    // between two workers on the same row) is one ROLLBACK. Nothing else commits.
    assert_eq!(grown(&before, &after, "Com_commit"), s.requests_completed);
    assert_eq!(grown(&before, &after, "Com_rollback"), failed);
    assert_eq!(grown(&before, &after, "Com_begin"), 400);
    // Two updates, a delete and an insert per transaction that got that far.
    let updates = grown(&before, &after, "Com_update");
    assert!(
        (2 * s.requests_completed..=800).contains(&updates),
        "{updates}"
    );
    // The workload read the same counters itself, over the same span.
    let own = s
        .server_counters
        .as_ref()
        .expect("the workload reads the server's counters");
    assert_eq!(own["Com_commit"], s.requests_completed);
    assert_eq!(own["Com_begin"], 400);
    // A delete and the insert of the same id: no table loses or gains a row.
    for t in [1, 2] {
        assert_eq!(db.sql(&format!("SELECT COUNT(*) FROM sbtest{t}")), "1000");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_the_servers_selects_fourteen_per_read_only_transaction() {
    let db = Db::create();
    workload::run(
        db.workload(json!({"script": "oltp_point_select", "initialize": true, "table_size": 500})),
        &LoadSpec::closed(1, 1),
    )
    .await
    .unwrap();
    let before = counters();
    let points = workload::run(
        db.workload(json!({"script": "oltp_point_select"})),
        &LoadSpec::closed(3, 600),
    )
    .await
    .unwrap();
    let middle = counters();
    assert_eq!(
        (
            points.summary.requests_completed,
            points.summary.requests_failed
        ),
        (600, 0)
    );
    // One SELECT per point select, no transaction, and the workers' connections add
    // none: over the load, exactly; around it, the first connection's look at the
    // tables adds four (a lock taken and given back, sbtest1 found and its size read).
    let own = points.summary.server_counters.as_ref().unwrap();
    assert_eq!((own["Com_select"], own["Com_commit"]), (600, 0));
    assert_eq!(grown(&before, &middle, "Com_select"), 604);
    assert_eq!(grown(&before, &middle, "Com_commit"), 0);

    let reads = workload::run(
        db.workload(json!({"script": "oltp_read_only"})),
        &LoadSpec::closed(2, 100),
    )
    .await
    .unwrap();
    let after = counters();
    assert_eq!(reads.summary.requests_completed, 100);
    // 10 point selects and 4 ranges, in one transaction each.
    assert_eq!(grown(&middle, &after, "Com_select"), 1404);
    assert_eq!(grown(&middle, &after, "Com_commit"), 100);
    assert_eq!(
        reads.summary.server_counters.as_ref().unwrap()["Com_select"],
        1400
    );
}

#[tokio::test]
async fn missing_or_different_tables_fail_before_any_load_with_the_way_out() {
    let db = Db::create();
    let run = |params: Value| {
        let w = db.workload(params);
        async move { workload::run(w, &LoadSpec::closed(1, 5)).await }
    };
    match run(json!({"script": "oltp_read_only"})).await {
        Err(WorkloadError::Unreachable(m)) => {
            assert!(m.contains("has no table sbtest1"), "{m}");
            assert!(m.contains("initialize: true"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(db.sql("SHOW TABLES"), "", "nothing was created");
    run(json!({"initialize": true, "table_size": 200}))
        .await
        .unwrap();
    match run(json!({"table_size": 300})).await {
        Err(WorkloadError::Unreachable(m)) => {
            assert!(m.contains("has 200 rows"), "{m}");
            assert!(m.contains("table_size: 200"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    // initialize never changes tables that exist.
    run(json!({"initialize": true, "table_size": 200}))
        .await
        .unwrap();
    assert_eq!(db.sql("SELECT COUNT(*) FROM sbtest1"), "200");
}

#[tokio::test]
async fn your_own_sql_gets_a_random_key_and_failures_count_by_error_code() {
    let db = Db::create();
    db.sql("CREATE TABLE once (id INT PRIMARY KEY)");
    let result = workload::run(
        db.workload(json!({"query": "INSERT INTO once (id) VALUES (?)", "keyspace": 10})),
        &LoadSpec::closed(1, 50),
    )
    .await
    .unwrap();
    // At most 10 distinct keys: every other insert is a duplicate (ER_DUP_ENTRY, 1062).
    let rows: u64 = db.sql("SELECT COUNT(*) FROM once").parse().unwrap();
    assert_eq!(result.summary.requests_completed, rows);
    assert!((2..=10).contains(&rows), "{rows}");
    assert_eq!(
        result.summary.errors,
        BTreeMap::from([("mysql_1062".to_owned(), 50 - rows)])
    );
    let keys = db.sql("SELECT MIN(id), MAX(id) FROM once");
    let (lo, hi) = keys.split_once('\t').unwrap();
    assert!(lo.parse::<u64>().unwrap() >= 1 && hi.parse::<u64>().unwrap() <= 10);

    let two = db.workload(json!({"query": "SELECT ? + ?"}));
    match workload::run(two, &LoadSpec::closed(1, 1)).await {
        Err(WorkloadError::Unreachable(m)) => assert!(m.contains("has 2 parameters"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_being_shown() {
    let (user, _, host, port) = parts(&server_url());
    let url = format!("mysql://{user}:not-the-password-x9@{host}:{port}/bench");
    let w: Arc<dyn Workload> = Arc::new(MysqlWorkload::new(&url, &serde_json::Map::new()).unwrap());
    match workload::run(w, &LoadSpec::closed(1, 1)).await {
        Err(WorkloadError::Unreachable(m)) => {
            assert!(m.contains("ERROR 1045"), "{m}");
            assert!(m.contains(&format!("{user}@{host}:{port}/bench")), "{m}");
            assert!(!m.contains("not-the-password-x9"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}
