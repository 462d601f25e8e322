//! The `postgres` workload: pgbench's built-in transaction mixes, or your own SQL,
//! through `tokio-postgres` (one connection per worker, prepared statements: what
//! `pgbench -M prepared` does).
//!
//! Parameters:
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `script` | `tpcb-like`, `simple-update` or `select-only`: pgbench's built-in scripts, one transaction per request | `tpcb-like` |
//! | `query` | your own SQL instead of a script, one statement per request; `$1`, if used, is a random integer in 1..=`keyspace` | none |
//! | `keyspace` | the range of `$1` in `query` | 100000 |
//! | `initialize` | create and fill the pgbench tables at `scale` when they do not exist (never drops or changes existing ones) | `false` |
//! | `scale` | pgbench's scale factor (100,000 accounts each) for `initialize`; when the tables exist it must match them | from `pgbench_branches` |
//! | `user`, `database` | when the URL does not name them | `postgres`, the user |
//! | `password_env` | the environment variable that holds the password, when the URL has none | `PGPASSWORD` |
//! | `timeout_s` | a request slower than this fails as `timeout` | 10 |
//!
//! The URL is `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`; a session's `TARGET_URL`
//! (`http://…`) is read for its host and port. The password never appears in a message.
//!
//! The scripts are pgbench's (PostgreSQL 15, `pgbench --show-script`): request `n`
//! draws `aid`, `bid`, `tid` and `delta` from a generator seeded with `n`, so a run is
//! reproducible. A failed transaction is rolled back and counted under its SQLSTATE,
//! e.g. `pg_40001` for a serialization failure.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestrator_core::workload::{
    Connection, Outcome, Rng, Workload, http_host_port, parse_parameters, timeout_parameter, within,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Statement};

/// The `postgres` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct PostgresDriver;

/// pgbench's built-in scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Builtin {
    TpcbLike,
    SimpleUpdate,
    SelectOnly,
}

/// A value a built-in script draws for each transaction.
#[derive(Debug, Clone, Copy)]
enum Var {
    Aid,
    Bid,
    Tid,
    Delta,
}

impl Builtin {
    /// The statements of one transaction, `BEGIN` and `END` included where pgbench
    /// sends them, each with the values bound to its `$1`, `$2`, ...
    fn statements(self) -> &'static [(&'static str, &'static [Var])] {
        use Var::{Aid, Bid, Delta, Tid};
        const UPDATE_ACCOUNT: (&str, &[Var]) = (
            "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
            &[Delta, Aid],
        );
        const SELECT_ACCOUNT: (&str, &[Var]) = (
            "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
            &[Aid],
        );
        const INSERT_HISTORY: (&str, &[Var]) = (
            "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) \
             VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)",
            &[Tid, Bid, Aid, Delta],
        );
        match self {
            Self::TpcbLike => &[
                ("BEGIN", &[]),
                UPDATE_ACCOUNT,
                SELECT_ACCOUNT,
                (
                    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
                    &[Delta, Tid],
                ),
                (
                    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
                    &[Delta, Bid],
                ),
                INSERT_HISTORY,
                ("END", &[]),
            ],
            Self::SimpleUpdate => &[
                ("BEGIN", &[]),
                UPDATE_ACCOUNT,
                SELECT_ACCOUNT,
                INSERT_HISTORY,
                ("END", &[]),
            ],
            Self::SelectOnly => &[SELECT_ACCOUNT],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    script: Option<Builtin>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    keyspace: Option<u64>,
    #[serde(default)]
    initialize: Option<bool>,
    #[serde(default)]
    scale: Option<u32>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    database: Option<String>,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    timeout_s: Option<f64>,
}

#[derive(Debug, Clone)]
enum Script {
    Builtin(Builtin),
    Query { sql: String, keyspace: u64 },
}

/// pgbench's largest scale with 32-bit account numbers.
const MAX_SCALE: u32 = 20_000;
const ACCOUNTS_PER_BRANCH: i64 = 100_000;
const TELLERS_PER_BRANCH: i64 = 10;

struct Shared {
    config: tokio_postgres::Config,
    /// `user@host:port/database`, for messages: never the password.
    display: String,
    script: Script,
    initialize: bool,
    scale: Option<u32>,
    timeout: Duration,
    /// The tables' scale, found (or made) once, by the first connection.
    ready: OnceCell<i64>,
}

/// The prepared workload.
pub struct PostgresWorkload(Arc<Shared>);

const KNOWN: &str = "script (tpcb-like|simple-update|select-only), query, keyspace, initialize, \
                     scale, user, database, password_env, timeout_s";

fn bad(message: impl Into<String>) -> DriverError {
    DriverError::new(message, format!("the postgres workload takes {KNOWN}"))
}

impl PostgresWorkload {
    /// Checks the parameters and prepares the connection settings for `url`.
    ///
    /// # Errors
    /// An unknown parameter or value, `script` together with `query`, or a URL that is
    /// neither postgres:// nor http://.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("postgres", KNOWN, parameters)?;
        let script = match (p.script, p.query) {
            (Some(_), Some(_)) => return Err(bad("give `script` or `query`, not both")),
            (_, Some(sql)) if sql.trim().is_empty() => return Err(bad("`query` is empty")),
            (_, Some(sql)) => {
                let keyspace = p.keyspace.unwrap_or(100_000);
                if keyspace == 0 || keyspace > i32::MAX as u64 {
                    return Err(bad("keyspace must be between 1 and 2147483647"));
                }
                Script::Query { sql, keyspace }
            }
            (builtin, None) => {
                if p.keyspace.is_some() {
                    return Err(bad(
                        "keyspace is for `query`; a pgbench script draws from its scale",
                    ));
                }
                Script::Builtin(builtin.unwrap_or(Builtin::TpcbLike))
            }
        };
        if let Some(scale) = p.scale {
            if scale == 0 || scale > MAX_SCALE {
                return Err(bad(format!("scale must be between 1 and {MAX_SCALE}")));
            }
        }
        let mut config = match http_host_port(url, 5432) {
            Some(target) => {
                let (host, port) = target?;
                let mut c = tokio_postgres::Config::new();
                c.host(&host).port(port);
                c
            }
            None => tokio_postgres::Config::from_str(url).map_err(|e| {
                DriverError::new(
                    format!("the URL is not a PostgreSQL URL: {e}"),
                    "use postgres://USER[:PASSWORD]@HOST:PORT/DATABASE",
                )
            })?,
        };
        if config.get_user().is_none() {
            config.user(p.user.as_deref().unwrap_or("postgres"));
        }
        if config.get_dbname().is_none() {
            let db = p
                .database
                .clone()
                .or_else(|| config.get_user().map(str::to_owned));
            if let Some(db) = db {
                config.dbname(db);
            }
        }
        if config.get_password().is_none() {
            let var = p.password_env.as_deref().unwrap_or("PGPASSWORD");
            if let Ok(password) = std::env::var(var) {
                config.password(password);
            }
        }
        config.application_name("orchestrator");
        let timeout = timeout_parameter(p.timeout_s, 10.0)?;
        config.connect_timeout(timeout);
        let display = describe(&config);
        Ok(Self(Arc::new(Shared {
            config,
            display,
            script,
            initialize: p.initialize.unwrap_or(false),
            scale: p.scale,
            timeout,
            ready: OnceCell::new(),
        })))
    }
}

/// `user@host:port/database`.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    format!(
        "{}@{host}:{}/{}",
        config.get_user().unwrap_or("?"),
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("?"),
    )
}

/// A database error as the server words it, without the client's wrapping.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}

impl Shared {
    async fn open(&self) -> Result<Client, String> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| format!("{}: {}", self.display, db_message(&e)))?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server closes the connection.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Finds the pgbench tables' scale, creating the tables first when asked to.
    async fn prepare_tables(&self, client: &mut Client) -> Result<i64, String> {
        let exists: bool = query_one(client, "SELECT to_regclass('pgbench_branches') IS NOT NULL")
            .await?
            .get(0);
        if !exists {
            if !self.initialize {
                return Err(format!(
                    "{} has no pgbench tables; set `initialize: true` to create them \
                     (at `scale`, default 1), or run `pgbench -i -s SCALE` first",
                    self.display
                ));
            }
            initialize(client, i64::from(self.scale.unwrap_or(1))).await?;
        }
        let scale: i64 = query_one(client, "SELECT count(*) FROM pgbench_branches")
            .await?
            .get(0);
        if scale == 0 {
            return Err(format!(
                "pgbench_branches in {} is empty; run `pgbench -i -s SCALE` again",
                self.display
            ));
        }
        if let Some(wanted) = self.scale {
            if i64::from(wanted) != scale {
                return Err(format!(
                    "the pgbench tables in {} have scale {scale}, the recipe asks for \
                     {wanted}; set scale: {scale}, or drop the tables to rebuild them",
                    self.display
                ));
            }
        }
        Ok(scale)
    }
}

async fn query_one(client: &Client, sql: &str) -> Result<tokio_postgres::Row, String> {
    client.query_one(sql, &[]).await.map_err(|e| db_message(&e))
}

/// `pgbench -i -s SCALE` with server-side data generation, in one transaction under an
/// advisory lock, so that clients starting together build the tables once.
async fn initialize(client: &mut Client, scale: i64) -> Result<(), String> {
    let tx = client.transaction().await.map_err(|e| db_message(&e))?;
    let sql = format!(
        "SELECT pg_advisory_xact_lock(7365839120);
         CREATE TABLE IF NOT EXISTS pgbench_history (tid int, bid int, aid int, delta int,
             mtime timestamp, filler char(22));
         CREATE TABLE IF NOT EXISTS pgbench_tellers (tid int NOT NULL PRIMARY KEY, bid int,
             tbalance int, filler char(84)) WITH (fillfactor = 100);
         CREATE TABLE IF NOT EXISTS pgbench_accounts (aid int NOT NULL PRIMARY KEY, bid int,
             abalance int, filler char(84)) WITH (fillfactor = 100);
         CREATE TABLE IF NOT EXISTS pgbench_branches (bid int NOT NULL PRIMARY KEY,
             bbalance int, filler char(88)) WITH (fillfactor = 100);
         INSERT INTO pgbench_branches (bid, bbalance)
             SELECT b, 0 FROM generate_series(1, {scale}) b
             WHERE NOT EXISTS (SELECT FROM pgbench_branches);
         INSERT INTO pgbench_tellers (tid, bid, tbalance)
             SELECT t, (t - 1) / {TELLERS_PER_BRANCH} + 1, 0
             FROM generate_series(1, {tellers}) t
             WHERE NOT EXISTS (SELECT FROM pgbench_tellers);
         INSERT INTO pgbench_accounts (aid, bid, abalance, filler)
             SELECT a, (a - 1) / {ACCOUNTS_PER_BRANCH} + 1, 0, ''
             FROM generate_series(1, {accounts}) a
             WHERE NOT EXISTS (SELECT FROM pgbench_accounts);",
        tellers = scale * TELLERS_PER_BRANCH,
        accounts = scale * ACCOUNTS_PER_BRANCH,
    );
    tx.batch_execute(&sql).await.map_err(|e| db_message(&e))?;
    tx.commit().await.map_err(|e| db_message(&e))?;
    // Fresh statistics, as pgbench -i leaves them (outside the transaction: VACUUM
    // cannot run in one).
    client
        .batch_execute("ANALYZE pgbench_branches, pgbench_tellers, pgbench_accounts")
        .await
        .map_err(|e| db_message(&e))
}

#[async_trait]
impl Workload for PostgresWorkload {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let s = &self.0;
        let mut client = s.open().await?;
        let (statements, scale, param_type) = match &s.script {
            Script::Builtin(builtin) => {
                let scale = *s
                    .ready
                    .get_or_try_init(|| s.prepare_tables(&mut client))
                    .await?;
                let mut statements = Vec::new();
                for (sql, vars) in builtin.statements() {
                    let statement = client.prepare(sql).await.map_err(|e| db_message(&e))?;
                    statements.push((statement, *vars));
                }
                (statements, scale, None)
            }
            Script::Query { sql, .. } => {
                let statement = client
                    .prepare(sql)
                    .await
                    .map_err(|e| format!("the query does not prepare: {}", db_message(&e)))?;
                let param_type = match statement.params() {
                    [] => None,
                    [t] if [Type::INT2, Type::INT4, Type::INT8].contains(t) => Some(t.clone()),
                    [t] => {
                        return Err(format!(
                            "the query's $1 is a {t}; it must be an integer (smallint, \
                             integer or bigint), which the workload draws from 1..=keyspace"
                        ));
                    }
                    more => {
                        return Err(format!(
                            "the query has {} parameters; it may use one, $1",
                            more.len()
                        ));
                    }
                };
                (vec![(statement, &[][..])], 0, param_type)
            }
        };
        Ok(Box::new(PgConnection {
            shared: s.clone(),
            client,
            statements,
            scale,
            param_type,
        }))
    }
}

struct PgConnection {
    shared: Arc<Shared>,
    client: Client,
    statements: Vec<(Statement, &'static [Var])>,
    scale: i64,
    param_type: Option<Type>,
}

/// Uniform in `lo..=hi`.
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
fn draw(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as i64
}

impl PgConnection {
    async fn builtin(&mut self, n: u64) -> Result<(), tokio_postgres::Error> {
        let mut rng = Rng::new(n.wrapping_mul(0xA24B_AED4_963E_E407));
        // As pgbench draws them; every value fits an int (scale ≤ 20,000).
        let narrow = |v: i64| i32::try_from(v).unwrap_or(i32::MAX);
        let aid = narrow(draw(&mut rng, 1, ACCOUNTS_PER_BRANCH * self.scale));
        let bid = narrow(draw(&mut rng, 1, self.scale));
        let tid = narrow(draw(&mut rng, 1, TELLERS_PER_BRANCH * self.scale));
        let delta = narrow(draw(&mut rng, -5000, 5000));
        for (statement, vars) in &self.statements {
            let values: Vec<&(dyn ToSql + Sync)> = vars
                .iter()
                .map(|v| -> &(dyn ToSql + Sync) {
                    match v {
                        Var::Aid => &aid,
                        Var::Bid => &bid,
                        Var::Tid => &tid,
                        Var::Delta => &delta,
                    }
                })
                .collect();
            self.client.query(statement, &values).await?;
        }
        Ok(())
    }

    async fn query(&mut self, n: u64) -> Result<(), tokio_postgres::Error> {
        let statement = &self.statements[0].0;
        match (&self.param_type, &self.shared.script) {
            (Some(t), Script::Query { keyspace, .. }) => {
                let mut rng = Rng::new(n.wrapping_mul(0xA24B_AED4_963E_E407));
                let key = draw(&mut rng, 1, i64::try_from(*keyspace).unwrap_or(i64::MAX));
                if *t == Type::INT8 {
                    self.client.query(statement, &[&key]).await?
                } else if *t == Type::INT4 {
                    let key = i32::try_from(key).unwrap_or(i32::MAX);
                    self.client.query(statement, &[&key]).await?
                } else {
                    let key = i16::try_from(key).unwrap_or(i16::MAX);
                    self.client.query(statement, &[&key]).await?
                }
            }
            _ => self.client.query(statement, &[]).await?,
        };
        Ok(())
    }

    async fn send(&mut self, n: u64) -> Outcome {
        let result = match self.shared.script {
            Script::Builtin(_) => self.builtin(n).await,
            Script::Query { .. } => self.query(n).await,
        };
        match result {
            Ok(()) => Outcome::default(),
            Err(_) if self.client.is_closed() => Outcome::failed("connection"),
            Err(e) => {
                // A transaction that failed half-way is rolled back before the next.
                if matches!(self.shared.script, Script::Builtin(b) if b != Builtin::SelectOnly)
                    && self.client.batch_execute("ROLLBACK").await.is_err()
                {
                    return Outcome::failed("connection");
                }
                Outcome {
                    error: Some(match e.code() {
                        Some(code) => format!("pg_{}", code.code()),
                        None => "pg_error".into(),
                    }),
                    ..Outcome::default()
                }
            }
        }
    }
}

#[async_trait]
impl Connection for PgConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        within(self.shared.timeout, self.send(n)).await
    }
}

impl WorkloadDriver for PostgresDriver {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn description(&self) -> &'static str {
        "PostgreSQL: pgbench's tpcb-like, simple-update and select-only transactions, or your own SQL"
    }

    fn parameters_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "script": {"enum": ["tpcb-like", "simple-update", "select-only"], "default": "tpcb-like"},
                "query": {"type": "string", "minLength": 1},
                "keyspace": {"type": "integer", "minimum": 1, "maximum": 2_147_483_647_i64, "default": 100_000},
                "initialize": {"type": "boolean", "default": false},
                "scale": {"type": "integer", "minimum": 1, "maximum": MAX_SCALE},
                "user": {"type": "string"},
                "database": {"type": "string"},
                "password_env": {"type": "string", "default": "PGPASSWORD"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 10}
            }
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some(PostgresWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&PostgresDriver) }

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: &Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn error(url: &str, v: &Value) -> String {
        PostgresWorkload::new(url, &params(v))
            .err()
            .unwrap()
            .message
    }

    #[test]
    fn parameters_are_checked() {
        let url = "postgres://u@h:5432/db";
        assert!(
            PostgresWorkload::new(url, &params(&serde_json::json!({"script": "select-only"})))
                .is_ok()
        );
        assert!(
            error(url, &serde_json::json!({"script": "tpcc"})).contains("unknown variant `tpcc`")
        );
        assert!(
            error(
                url,
                &serde_json::json!({"script": "select-only", "query": "SELECT 1"})
            )
            .contains("not both")
        );
        assert!(error(url, &serde_json::json!({"query": " "})).contains("empty"));
        assert!(error(url, &serde_json::json!({"keyspace": 5})).contains("for `query`"));
        assert!(error(url, &serde_json::json!({"scale": 0})).contains("scale must be"));
        assert!(error(url, &serde_json::json!({"mix": "x"})).contains("unknown field `mix`"));
        assert!(error("mysql://h", &serde_json::json!({})).contains("not a PostgreSQL URL"));
    }

    #[test]
    fn a_session_url_gives_host_and_port_and_the_parameters_the_rest() {
        let w = PostgresWorkload::new(
            "http://node1:5433/",
            &params(&serde_json::json!({"user": "bench", "database": "tpcb"})),
        )
        .unwrap();
        assert_eq!(w.0.display, "bench@node1:5433/tpcb");
        let w = PostgresWorkload::new("http://node1", &Map::new()).unwrap();
        assert_eq!(w.0.display, "postgres@node1:5432/postgres");
        // The URL's own user and database win.
        let w = PostgresWorkload::new(
            "postgres://alice:pw@db:6000/shop",
            &params(&serde_json::json!({"user": "bench"})),
        )
        .unwrap();
        assert_eq!(w.0.display, "alice@db:6000/shop");
        assert_eq!(w.0.config.get_password(), Some(&b"pw"[..]));
    }

    #[test]
    fn the_password_comes_from_the_named_variable() {
        // Any variable will do; HOME is set wherever tests run (and setting one here
        // would race with other tests).
        let home = std::env::var("HOME").expect("HOME is set");
        let w = PostgresWorkload::new(
            "http://h:5432",
            &params(&serde_json::json!({"password_env": "HOME"})),
        )
        .unwrap();
        assert_eq!(w.0.config.get_password(), Some(home.as_bytes()));
        let w = PostgresWorkload::new(
            "http://h:5432",
            &params(&serde_json::json!({"password_env": "ORCH_NO_SUCH_VARIABLE_SET"})),
        )
        .unwrap();
        assert_eq!(w.0.config.get_password(), None);
        // Messages name user, host, port and database, never the password.
        assert!(!w.0.display.contains(&home));
    }

    #[test]
    fn builtin_draws_stay_in_pgbench_ranges() {
        let mut rng = Rng::new(7);
        for _ in 0..10_000 {
            let v = draw(&mut rng, -5000, 5000);
            assert!((-5000..=5000).contains(&v));
            let a = draw(&mut rng, 1, 3);
            assert!((1..=3).contains(&a));
        }
    }
}
