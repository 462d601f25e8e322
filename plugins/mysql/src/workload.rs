//! The `mysql` workload: sysbench's OLTP transactions, or your own SQL, through
//! `mysql_async` (one connection per worker, server-side prepared statements, as
//! sysbench runs them).
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `script` | `oltp_point_select`, `oltp_read_only`, `oltp_write_only` or `oltp_read_write`: one sysbench event per request | `oltp_read_only` |
//! | `query` | your own SQL instead, one statement per request; a `?` in it, if any, is a random integer in 1..=`keyspace` | none |
//! | `keyspace` | the range of `?` in `query` | 100000 |
//! | `tables`, `table_size` | sysbench's `--tables` and `--table-size`: the tables `sbtest1`..`sbtestN` the script uses | 1; from the tables |
//! | `initialize` | create and fill the tables when they do not exist (never drops or changes existing ones) | `false` |
//! | `user`, `database` | when the URL does not name them | `MYSQL_USER` (else `root`), `MYSQL_DATABASE` |
//! | `password_env` | the environment variable that holds the password, when the URL has none | `MYSQL_PASSWORD` |
//! | `timeout_s` | a request slower than this fails as `timeout` | 10 |
//!
//! The URL is `mysql://USER[:PASSWORD]@HOST:PORT/DATABASE`; a session's `TARGET_URL`
//! (`http://…`) is read for its host and port. The password never appears in a message.
//!
//! The statements are sysbench 1.0.20's (`oltp_common.lua`, its defaults): an
//! `oltp_read_only` event is `BEGIN`, 10 point selects, a simple, a sum, an ordered and a
//! distinct range of 100 rows, `COMMIT`; `oltp_write_only` is `BEGIN`, an index update,
//! a non-index update, a delete and the insert of the same id, `COMMIT`;
//! `oltp_read_write` is both in one transaction; `oltp_point_select` is one point
//! select. Each group of statements picks one table, ids are uniform in
//! 1..=`table_size` (sysbench's default is its `special` distribution), and request `n`
//! draws from a generator seeded with `n`, so a run is reproducible. A failed
//! transaction is rolled back and counted under the server's error code, e.g.
//! `mysql_1213` for a deadlock (which sysbench retries silently).
//!
//! The summary's `server_counters` are the server's own `Com_select`, `Com_insert`,
//! `Com_update`, `Com_delete`, `Com_begin`, `Com_commit`, `Com_rollback` and
//! `Questions`, grown over the run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Statement};
use orchestrator_core::workload::{
    Connection, Outcome, Rng, Timeout, Workload, http_host_port, parse_parameters,
    timeout_parameter,
};
use orchestrator_core::{DriverError, WorkloadDriver, WorkloadDriverEntry};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

/// The `mysql` workload driver.
#[derive(Debug, Clone, Copy)]
pub struct MysqlWorkloadDriver;

/// sysbench's OLTP scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Oltp {
    #[serde(rename = "oltp_point_select")]
    PointSelect,
    #[serde(rename = "oltp_read_only")]
    ReadOnly,
    #[serde(rename = "oltp_write_only")]
    WriteOnly,
    #[serde(rename = "oltp_read_write")]
    ReadWrite,
}

/// A statement of sysbench's, by its place in [`STATEMENTS`].
#[derive(Debug, Clone, Copy)]
enum Kind {
    PointSelect,
    SimpleRange,
    SumRange,
    OrderRange,
    DistinctRange,
    IndexUpdate,
    NonIndexUpdate,
    Delete,
    Insert,
}

/// sysbench's statements (`%` is the table's number), in [`Kind`]'s order.
const STATEMENTS: [&str; 9] = [
    "SELECT c FROM sbtest% WHERE id=?",
    "SELECT c FROM sbtest% WHERE id BETWEEN ? AND ?",
    "SELECT SUM(k) FROM sbtest% WHERE id BETWEEN ? AND ?",
    "SELECT c FROM sbtest% WHERE id BETWEEN ? AND ? ORDER BY c",
    "SELECT DISTINCT c FROM sbtest% WHERE id BETWEEN ? AND ? ORDER BY c",
    "UPDATE sbtest% SET k=k+1 WHERE id=?",
    "UPDATE sbtest% SET c=? WHERE id=?",
    "DELETE FROM sbtest% WHERE id=?",
    "INSERT INTO sbtest% (id, k, c, pad) VALUES (?, ?, ?, ?)",
];

/// sysbench's defaults: `--point-selects`, `--range-size`.
const POINT_SELECTS: usize = 10;
const RANGE_SIZE: i64 = 100;
const MAX_TABLES: u32 = 1024;
/// Rows per `INSERT` when filling a table.
const FILL_BATCH: i64 = 1000;
/// The server's counters the summary reports.
const COUNTERS: [&str; 8] = [
    "Com_select",
    "Com_insert",
    "Com_update",
    "Com_delete",
    "Com_begin",
    "Com_commit",
    "Com_rollback",
    "Questions",
];

impl Oltp {
    fn reads(self) -> bool {
        !matches!(self, Self::WriteOnly)
    }
    fn ranges(self) -> bool {
        matches!(self, Self::ReadOnly | Self::ReadWrite)
    }
    fn writes(self) -> bool {
        matches!(self, Self::WriteOnly | Self::ReadWrite)
    }
    fn transaction(self) -> bool {
        !matches!(self, Self::PointSelect)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    script: Option<Oltp>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    keyspace: Option<u64>,
    #[serde(default)]
    tables: Option<u32>,
    #[serde(default)]
    table_size: Option<u64>,
    #[serde(default)]
    initialize: Option<bool>,
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
    Oltp(Oltp),
    Query { sql: String, keyspace: u64 },
}

struct Shared {
    opts: Opts,
    /// `user@host:port/database`, for messages: never the password.
    display: String,
    script: Script,
    tables: u32,
    table_size: Option<u64>,
    initialize: bool,
    timeout: Duration,
    /// The tables' size, found (or made) once, by the first connection.
    ready: OnceCell<i64>,
}

/// The prepared workload.
pub struct MysqlWorkload(Arc<Shared>);

const KNOWN: &str = "script (oltp_point_select|oltp_read_only|oltp_write_only|oltp_read_write), \
                     query, keyspace, tables, table_size, initialize, user, database, \
                     password_env, timeout_s";

fn bad(message: impl Into<String>) -> DriverError {
    DriverError::new(message, format!("the mysql workload takes {KNOWN}"))
}

/// The first of `names` set in the client's environment.
fn from_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok())
        .filter(|v| !v.is_empty())
}

impl MysqlWorkload {
    /// Checks the parameters and prepares the connection settings for `url`.
    ///
    /// # Errors
    /// An unknown parameter or value, `script` together with `query`, or a URL that is
    /// neither mysql:// nor http://.
    pub fn new(url: &str, parameters: &Map<String, Value>) -> Result<Self, DriverError> {
        let p: Params = parse_parameters("mysql", KNOWN, parameters)?;
        let script = match (p.script, p.query) {
            (Some(_), Some(_)) => return Err(bad("give `script` or `query`, not both")),
            (_, Some(sql)) if sql.trim().is_empty() => return Err(bad("`query` is empty")),
            (_, Some(sql)) => {
                let keyspace = p.keyspace.unwrap_or(100_000);
                if keyspace == 0 || keyspace > i64::MAX as u64 {
                    return Err(bad("keyspace must be at least 1"));
                }
                Script::Query { sql, keyspace }
            }
            (script, None) => {
                if p.keyspace.is_some() {
                    return Err(bad(
                        "keyspace is for `query`; a sysbench script draws from its table_size",
                    ));
                }
                Script::Oltp(script.unwrap_or(Oltp::ReadOnly))
            }
        };
        let tables = p.tables.unwrap_or(1);
        if tables == 0 || tables > MAX_TABLES {
            return Err(bad(format!("tables must be between 1 and {MAX_TABLES}")));
        }
        if p.table_size == Some(0) || p.table_size.is_some_and(|s| s > i32::MAX as u64) {
            return Err(bad("table_size must be between 1 and 2147483647"));
        }
        let opts = match http_host_port(url, crate::service::DEFAULT_PORT) {
            Some(target) => {
                let (host, port) = target?;
                Opts::from(OptsBuilder::default().ip_or_hostname(host).tcp_port(port))
            }
            None => Opts::from_url(url).map_err(|e| {
                DriverError::new(
                    format!("the URL is not a MySQL URL: {e}"),
                    "use mysql://USER[:PASSWORD]@HOST:PORT/DATABASE",
                )
            })?,
        };
        let user = opts
            .user()
            .map(str::to_owned)
            .or(p.user)
            .or_else(|| from_env(&["MYSQL_USER"]))
            .unwrap_or_else(|| "root".into());
        let database = opts
            .db_name()
            .map(str::to_owned)
            .or(p.database)
            .or_else(|| from_env(&["MYSQL_DATABASE"]));
        let password = opts
            .pass()
            .map(str::to_owned)
            .or_else(|| from_env(&[p.password_env.as_deref().unwrap_or("MYSQL_PASSWORD")]));
        let display = format!(
            "{user}@{}:{}/{}",
            opts.ip_or_hostname(),
            opts.tcp_port(),
            database.as_deref().unwrap_or("")
        );
        let opts = Opts::from(
            OptsBuilder::from_opts(opts)
                .user(Some(user))
                .pass(password)
                .db_name(database)
                .prefer_socket(false)
                // Given, so that a new connection does not SELECT them from the server
                // (a statement the server's counters would count as load). The server's
                // defaults; the client's packet limit only bounds what it accepts.
                .max_allowed_packet(Some(64 << 20))
                .wait_timeout(Some(28_800)),
        );
        Ok(Self(Arc::new(Shared {
            opts,
            display,
            script,
            tables,
            table_size: p.table_size,
            initialize: p.initialize.unwrap_or(false),
            timeout: timeout_parameter(p.timeout_s, 10.0)?,
            ready: OnceCell::new(),
        })))
    }
}

/// A server error as the mysql client prints it, without the driver's wrapping.
fn message(e: &mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("ERROR {} ({}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    }
}

/// Uniform in `lo..=hi`.
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
fn draw(rng: &mut Rng, lo: i64, hi: i64) -> i64 {
    lo + (rng.next_u64() % (hi - lo + 1) as u64) as i64
}

/// sysbench's `c` and `pad` values: `groups` groups of 11 random digits joined by `-`
/// (10 groups: 119 characters; 5: 59).
fn digits(rng: &mut Rng, groups: usize) -> String {
    let mut s = String::with_capacity(groups * 12);
    for g in 0..groups {
        if g > 0 {
            s.push('-');
        }
        for _ in 0..11 {
            s.push(char::from(b'0' + (rng.next_u64() % 10) as u8));
        }
    }
    s
}

impl Shared {
    async fn open(&self) -> Result<Conn, String> {
        match tokio::time::timeout(self.timeout, Conn::new(self.opts.clone())).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("{}: {}", self.display, message(&e))),
            Err(_) => Err(format!(
                "{}: no connection within {} s",
                self.display,
                self.timeout.as_secs_f64()
            )),
        }
    }

    /// Finds the sbtest tables' size, creating and filling them first when asked to.
    async fn prepare_tables(&self, conn: &mut Conn) -> Result<i64, String> {
        let sql = |e: mysql_async::Error| message(&e);
        if self.opts.db_name().is_none() {
            return Err(format!(
                "{} names no database for the sbtest tables; set `database:` (or MYSQL_DATABASE, or the URL's /DATABASE)",
                self.display
            ));
        }
        // Clients starting together build the tables once.
        conn.query_drop("SELECT GET_LOCK('orchestrator-sbtest', 600)")
            .await
            .map_err(sql)?;
        let result = self.prepare_locked(conn).await;
        let _ = conn
            .query_drop("SELECT RELEASE_LOCK('orchestrator-sbtest')")
            .await;
        result
    }

    async fn prepare_locked(&self, conn: &mut Conn) -> Result<i64, String> {
        let sql = |e: mysql_async::Error| message(&e);
        let mut size = None;
        for t in 1..=self.tables {
            let exists: Option<i64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.tables \
                     WHERE table_schema = DATABASE() AND table_name = ?",
                    (format!("sbtest{t}"),),
                )
                .await
                .map_err(sql)?;
            if exists.unwrap_or(0) == 0 {
                if !self.initialize {
                    return Err(format!(
                        "{} has no table sbtest{t}; set `initialize: true` to create the tables \
                         (`tables`, `table_size`, default 1 and 10000), or run `sysbench oltp_common prepare` first",
                        self.display
                    ));
                }
                let rows = i64::try_from(self.table_size.unwrap_or(10_000)).unwrap_or(i64::MAX);
                create_table(conn, t, rows).await?;
            }
            let max: Option<Option<i64>> = conn
                .query_first(format!("SELECT MAX(id) FROM sbtest{t}"))
                .await
                .map_err(sql)?;
            let rows = max.flatten().unwrap_or(0);
            if rows == 0 {
                return Err(format!(
                    "sbtest{t} in {} is empty; run `sysbench oltp_common prepare` again, or drop it and set `initialize: true`",
                    self.display
                ));
            }
            if let Some(wanted) = self.table_size {
                if i64::try_from(wanted).ok() != Some(rows) {
                    return Err(format!(
                        "sbtest{t} in {} has {rows} rows, the recipe asks for table_size {wanted}; \
                         set table_size: {rows}, or drop the tables to rebuild them",
                        self.display
                    ));
                }
            }
            size = Some(size.map_or(rows, |s: i64| s.min(rows)));
        }
        Ok(size.unwrap_or(0))
    }
}

/// sysbench's `prepare` for one table: created with its secondary index, filled in
/// batches with sysbench's values (from a generator seeded with the table's number).
async fn create_table(conn: &mut Conn, t: u32, rows: i64) -> Result<(), String> {
    let sql = |e: mysql_async::Error| message(&e);
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS sbtest{t} (\
         id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER DEFAULT '0' NOT NULL, \
         c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, \
         PRIMARY KEY (id), KEY k_{t} (k)) ENGINE=InnoDB"
    ))
    .await
    .map_err(sql)?;
    let mut rng = Rng::new(u64::from(t).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut id = 1;
    while id <= rows {
        let end = (id + FILL_BATCH - 1).min(rows);
        let mut insert = format!("INSERT INTO sbtest{t} (id, k, c, pad) VALUES ");
        for i in id..=end {
            if i > id {
                insert.push(',');
            }
            let k = draw(&mut rng, 1, rows);
            // Digits and dashes only: nothing to escape.
            let _ = write!(
                insert,
                "({i},{k},'{}','{}')",
                digits(&mut rng, 10),
                digits(&mut rng, 5)
            );
        }
        conn.query_drop(insert).await.map_err(sql)?;
        id = end + 1;
    }
    Ok(())
}

#[async_trait]
impl Workload for MysqlWorkload {
    async fn connect(&self) -> Result<Box<dyn Connection>, String> {
        let s = &self.0;
        let mut conn = s.open().await?;
        let (statements, size) = match &s.script {
            Script::Oltp(_) => {
                let size = *s
                    .ready
                    .get_or_try_init(|| s.prepare_tables(&mut conn))
                    .await?;
                let mut statements = Vec::new();
                for t in 1..=s.tables {
                    let mut per_table = Vec::new();
                    for text in STATEMENTS {
                        let text = text.replace('%', &t.to_string());
                        per_table.push(conn.prep(text).await.map_err(|e| message(&e))?);
                    }
                    statements.push(per_table);
                }
                (statements, size)
            }
            Script::Query { sql, .. } => {
                let statement = conn
                    .prep(sql.as_str())
                    .await
                    .map_err(|e| format!("the query does not prepare: {}", message(&e)))?;
                if statement.num_params() > 1 {
                    return Err(format!(
                        "the query has {} parameters; it may use one `?`, a random integer in 1..=keyspace",
                        statement.num_params()
                    ));
                }
                (vec![vec![statement]], 0)
            }
        };
        Ok(Box::new(MysqlConnection {
            timeout: Timeout::new(s.timeout),
            worker: Worker {
                shared: s.clone(),
                conn,
                statements,
                size,
            },
        }))
    }

    async fn server_counters(&self) -> Option<BTreeMap<String, u64>> {
        let mut conn = self.0.open().await.ok()?;
        let list = COUNTERS.map(|c| format!("'{c}'")).join(",");
        let rows: Vec<(String, String)> = conn
            .query(format!(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ({list})"
            ))
            .await
            .ok()?;
        let _ = conn.disconnect().await;
        Some(
            rows.into_iter()
                .filter_map(|(name, value)| Some((name, value.parse().ok()?)))
                .collect(),
        )
    }
}

/// One worker's connection and its time limit (a timer armed once, not per request:
/// requests are many and short).
struct MysqlConnection {
    timeout: Timeout,
    worker: Worker,
}

struct Worker {
    shared: Arc<Shared>,
    conn: Conn,
    /// Per table, the statements in [`Kind`]'s order; for `query`, one.
    statements: Vec<Vec<Statement>>,
    size: i64,
}

impl Worker {
    async fn oltp(&mut self, script: Oltp, n: u64) -> Result<(), mysql_async::Error> {
        let mut rng = Rng::new(n.wrapping_mul(0xA24B_AED4_963E_E407));
        let tables = i64::from(self.shared.tables);
        let size = self.size;
        let table = |rng: &mut Rng| usize::try_from(draw(rng, 1, tables) - 1).unwrap_or(0);
        let conn = &mut self.conn;
        let st = &self.statements;
        if script.transaction() {
            conn.query_drop("BEGIN").await?;
        }
        if script.reads() {
            let t = table(&mut rng);
            let points = if script == Oltp::PointSelect {
                1
            } else {
                POINT_SELECTS
            };
            for _ in 0..points {
                conn.exec_drop(
                    &st[t][Kind::PointSelect as usize],
                    (draw(&mut rng, 1, size),),
                )
                .await?;
            }
        }
        if script.ranges() {
            for kind in [
                Kind::SimpleRange,
                Kind::SumRange,
                Kind::OrderRange,
                Kind::DistinctRange,
            ] {
                let t = table(&mut rng);
                let start = draw(&mut rng, 1, size);
                conn.exec_drop(&st[t][kind as usize], (start, start + RANGE_SIZE - 1))
                    .await?;
            }
        }
        if script.writes() {
            let t = table(&mut rng);
            conn.exec_drop(
                &st[t][Kind::IndexUpdate as usize],
                (draw(&mut rng, 1, size),),
            )
            .await?;
            let t = table(&mut rng);
            let c = digits(&mut rng, 10);
            conn.exec_drop(
                &st[t][Kind::NonIndexUpdate as usize],
                (c, draw(&mut rng, 1, size)),
            )
            .await?;
            let t = table(&mut rng);
            let id = draw(&mut rng, 1, size);
            conn.exec_drop(&st[t][Kind::Delete as usize], (id,)).await?;
            let k = draw(&mut rng, 1, size);
            let (c, pad) = (digits(&mut rng, 10), digits(&mut rng, 5));
            conn.exec_drop(&st[t][Kind::Insert as usize], (id, k, c, pad))
                .await?;
        }
        if script.transaction() {
            conn.query_drop("COMMIT").await?;
        }
        Ok(())
    }

    async fn query(&mut self, keyspace: u64, n: u64) -> Result<(), mysql_async::Error> {
        let statement = &self.statements[0][0];
        if statement.num_params() == 1 {
            let mut rng = Rng::new(n.wrapping_mul(0xA24B_AED4_963E_E407));
            let key = draw(&mut rng, 1, i64::try_from(keyspace).unwrap_or(i64::MAX));
            self.conn.exec_drop(statement, (key,)).await
        } else {
            self.conn.exec_drop(statement, ()).await
        }
    }

    async fn send(&mut self, n: u64) -> Outcome {
        let (oltp, keyspace) = match &self.shared.script {
            Script::Oltp(oltp) => (Some(*oltp), 0),
            Script::Query { keyspace, .. } => (None, *keyspace),
        };
        let result = match oltp {
            Some(oltp) => self.oltp(oltp, n).await,
            None => self.query(keyspace, n).await,
        };
        match result {
            Ok(()) => Outcome::default(),
            Err(mysql_async::Error::Server(e)) => {
                // A transaction that failed half-way is rolled back before the next.
                if oltp.is_some_and(Oltp::transaction)
                    && self.conn.query_drop("ROLLBACK").await.is_err()
                {
                    return Outcome::failed("connection");
                }
                Outcome {
                    error: Some(format!("mysql_{}", e.code)),
                    ..Outcome::default()
                }
            }
            Err(_) => Outcome::failed("connection"),
        }
    }
}

#[async_trait]
impl Connection for MysqlConnection {
    async fn request(&mut self, n: u64) -> Outcome {
        self.timeout.run(self.worker.send(n)).await
    }
}

impl WorkloadDriver for MysqlWorkloadDriver {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn description(&self) -> &'static str {
        "MySQL/MariaDB: sysbench's oltp_point_select, oltp_read_only, oltp_write_only and oltp_read_write, or your own SQL"
    }

    fn fits(&self) -> &'static [&'static str] {
        &["mysql"]
    }

    fn original_parameters(&self) -> &'static [(&'static str, &'static str)] {
        // The original's mysql_benchmark client: its --num-connections.
        &[("num_connections", "concurrency")]
    }

    fn parameters_schema(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "script": {"enum": ["oltp_point_select", "oltp_read_only", "oltp_write_only", "oltp_read_write"], "default": "oltp_read_only"},
                "query": {"type": "string", "minLength": 1},
                "keyspace": {"type": "integer", "minimum": 1, "default": 100_000},
                "tables": {"type": "integer", "minimum": 1, "maximum": MAX_TABLES, "default": 1},
                "table_size": {"type": "integer", "minimum": 1, "maximum": 2_147_483_647_i64},
                "initialize": {"type": "boolean", "default": false},
                "user": {"type": "string"},
                "database": {"type": "string"},
                "password_env": {"type": "string", "default": "MYSQL_PASSWORD"},
                "timeout_s": {"type": "number", "exclusiveMinimum": 0, "default": 10}
            }
        })
    }

    fn workload(
        &self,
        url: &str,
        parameters: &Map<String, Value>,
    ) -> Option<Result<Arc<dyn Workload>, DriverError>> {
        Some(MysqlWorkload::new(url, parameters).map(|w| Arc::new(w) as Arc<dyn Workload>))
    }
}

inventory::submit! { WorkloadDriverEntry(&MysqlWorkloadDriver) }
