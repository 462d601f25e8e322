//! The `postgres` workload against Debian's real PostgreSQL server, which
//! `scripts/test-cluster up` starts (its URL comes from `scripts/test-cluster env`).
//! Each test works in a database of its own, dropped at the end.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use orchestrator_core::workload::{self, LoadSpec, Workload};
use orchestrator_plugin_postgres::PostgresWorkload;
use serde_json::{Value, json};

/// A fresh database on the test server.
struct Db {
    url: String,
    name: String,
}

fn server_url() -> String {
    std::env::var("ORCH_TEST_POSTGRES_URL").expect(
        "ORCH_TEST_POSTGRES_URL is set: run `scripts/test-cluster up` and \
         `eval \"$(scripts/test-cluster env)\"` (scripts/test does both)",
    )
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Db {
    fn create() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let server = server_url();
        let name = format!(
            "orch_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        psql(&server, &format!("CREATE DATABASE {name}"));
        let base = server.rsplit_once('/').unwrap().0;
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    fn workload(&self, params: Value) -> Arc<dyn Workload> {
        Arc::new(PostgresWorkload::new(&self.url, params.as_object().unwrap()).unwrap())
    }

    fn sql(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &server_url(),
                "-qAtX",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn closed(concurrency: u32, requests: u64) -> LoadSpec {
    LoadSpec::closed(concurrency, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpcb_like_transactions_keep_pgbench_invariants() {
    let db = Db::create();
    let result = workload::run(
        db.workload(json!({"initialize": true, "scale": 1})),
        &closed(4, 500),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            result.summary.requests_completed,
            result.summary.requests_failed
        ),
        (500, 0)
    );
    // The tables are pgbench's, at scale 1.
    assert_eq!(
        db.sql(
            "SELECT (SELECT count(*) FROM pgbench_branches) || ' ' || \
             (SELECT count(*) FROM pgbench_tellers) || ' ' || \
             (SELECT count(*) FROM pgbench_accounts)"
        ),
        "1 10 100000"
    );
    // One history row per committed transaction, and each transaction added the same
    // delta to an account, a teller and a branch.
    assert_eq!(db.sql("SELECT count(*) FROM pgbench_history"), "500");
    let sums = db.sql(
        "SELECT (SELECT sum(delta) FROM pgbench_history) || ' ' || \
         (SELECT sum(abalance) FROM pgbench_accounts) || ' ' || \
         (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' || \
         (SELECT sum(bbalance) FROM pgbench_branches)",
    );
    let sums: Vec<&str> = sums.split(' ').collect();
    assert_eq!(sums.len(), 4, "{sums:?}");
    assert!(sums.iter().all(|s| *s == sums[0]), "{sums:?}");
    assert_ne!(sums[0], "0", "the deltas are random, not all zero");

    // Existing tables are used as they are: select-only reads them, writes nothing.
    let read = workload::run(
        db.workload(json!({"script": "select-only", "initialize": true})),
        &closed(2, 300),
    )
    .await
    .unwrap();
    assert_eq!(read.summary.requests_completed, 300);
    assert_eq!(db.sql("SELECT count(*) FROM pgbench_history"), "500");

    // simple-update: an account, its read-back and a history row, no teller or branch.
    let before = db.sql("SELECT sum(bbalance) FROM pgbench_branches");
    workload::run(
        db.workload(json!({"script": "simple-update"})),
        &closed(2, 100),
    )
    .await
    .unwrap();
    assert_eq!(db.sql("SELECT count(*) FROM pgbench_history"), "600");
    assert_eq!(db.sql("SELECT sum(bbalance) FROM pgbench_branches"), before);
}

#[tokio::test]
async fn missing_tables_fail_before_any_load_with_the_way_out() {
    let db = Db::create();
    let error = workload::run(
        db.workload(json!({"script": "select-only"})),
        &closed(1, 10),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("has no pgbench tables"), "{error}");
    assert!(error.contains("initialize: true"), "{error}");
    assert!(error.contains("pgbench -i"), "{error}");
    // Nothing was created.
    assert_eq!(
        db.sql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pgbench%'"),
        "0"
    );
}

#[tokio::test]
async fn a_scale_that_differs_from_the_tables_is_refused() {
    let db = Db::create();
    workload::run(
        db.workload(json!({"script": "select-only", "initialize": true, "scale": 1})),
        &closed(1, 1),
    )
    .await
    .unwrap();
    let error = workload::run(
        db.workload(json!({"script": "select-only", "scale": 2})),
        &closed(1, 1),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("have scale 1, the recipe asks for 2"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_query_gets_a_key_from_the_keyspace() {
    let db = Db::create();
    db.sql("CREATE TABLE seen (k bigint)");
    let result = workload::run(
        db.workload(json!({"query": "INSERT INTO seen VALUES ($1)", "keyspace": 10})),
        &closed(3, 200),
    )
    .await
    .unwrap();
    assert_eq!(result.summary.requests_completed, 200);
    assert_eq!(
        db.sql("SELECT count(*) || ' ' || min(k) || ' ' || max(k) || ' ' || count(DISTINCT k) FROM seen"),
        "200 1 10 10"
    );
}

#[tokio::test]
async fn a_query_that_does_not_prepare_fails_before_any_load() {
    let db = Db::create();
    let error = workload::run(
        db.workload(json!({"query": "SELECT * FROM nowhere"})),
        &closed(1, 5),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(r#"the query does not prepare: relation "nowhere" does not exist"#),
        "{error}"
    );
    let error = workload::run(
        db.workload(json!({"query": "SELECT $1::text"})),
        &closed(1, 5),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(error.contains("must be an integer"), "{error}");
}

#[tokio::test]
async fn failed_statements_are_counted_by_sqlstate() {
    let db = Db::create();
    db.sql("CREATE TABLE once (k int PRIMARY KEY)");
    // Keys 1..=3 for 20 inserts: the first of each key succeeds, the others violate the
    // primary key (SQLSTATE 23505), and the run goes on.
    let result = workload::run(
        db.workload(json!({"query": "INSERT INTO once VALUES ($1)", "keyspace": 3})),
        &closed(1, 20),
    )
    .await
    .unwrap();
    let distinct: u64 = db.sql("SELECT count(*) FROM once").parse().unwrap();
    assert_eq!(
        distinct, 3,
        "keys drawn per request number: all three appear"
    );
    assert_eq!(result.summary.requests_completed, distinct);
    assert_eq!(result.summary.requests_failed, 20 - distinct);
    let errors = serde_json::to_value(&result.summary).unwrap()["errors"].clone();
    assert_eq!(
        errors,
        json!({"pg_23505": 20 - distinct}),
        "unique_violation"
    );
}

#[tokio::test]
async fn a_wrong_password_is_refused_without_showing_it() {
    let db = Db::create();
    let (head, tail) = db.url.split_once('@').unwrap();
    let user = head.rsplit_once(':').unwrap().0;
    let url = format!("{user}:not-the-Secret-pw@{tail}");
    let w: Arc<dyn Workload> =
        Arc::new(PostgresWorkload::new(&url, &serde_json::Map::new()).unwrap());
    let error = workload::run(w, &closed(1, 1))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("password authentication failed"), "{error}");
    assert!(error.contains("bench@127.0.0.1"), "{error}");
    assert!(!error.contains("not-the-Secret-pw"), "{error}");
}
