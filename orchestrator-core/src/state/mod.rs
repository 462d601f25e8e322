//! The state store: an embedded SQLite database in `state_dir`.
//!
//! Tables: `sessions`, `services`, `clients`, `jobs`, `results` and `events` (an
//! append-only audit log of every action and state change). Every job row is written
//! *before* its job is submitted and updated after, so a crash between the two leaves
//! a row that says so; a job is active while its `ended_at` is empty.
//!
//! The file is private to the user (0600, in a 0700 directory), in WAL mode, with a
//! busy timeout, and every write is one `BEGIN IMMEDIATE` transaction: several CLI
//! processes can use it at once. The schema version is `PRAGMA user_version`; newer
//! versions migrate forward, and a database from a newer orchestrator is refused.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::CoreError;
use crate::lifecycle::{ClientState, JobRecordState, ServiceState, SessionState};
use crate::util::now_ms;

mod read;
mod rows;
mod schema;

pub use rows::{ClientRow, EventRow, JobRow, JobUpdate, ResultRow, ServiceRow, SessionRow};
use schema::MIGRATIONS;

/// What [`StateStore::claim_session`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The calling process drives the session now; `reopened` when it had been failed
    /// for its orchestrator's death.
    Claimed {
        /// Whether it had been failed for its orchestrator's death.
        reopened: bool,
    },
    /// A living process drives it.
    Held {
        /// That process.
        pid: u32,
    },
    /// It ended; there is nothing to continue.
    Ended {
        /// How.
        state: SessionState,
        /// Why, as recorded.
        error: Option<String>,
    },
}

/// The database file's name inside `state_dir`.
pub const DATABASE_FILE: &str = "state.db";

/// The state database. One connection per process, behind a mutex: calls are short.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl StateStore {
    /// Opens (creating and migrating when needed) the database in `dir`.
    ///
    /// # Errors
    /// The directory or file cannot be created, or the database is unusable or from a
    /// newer orchestrator.
    pub fn open(dir: &Path) -> Result<Self, CoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(CoreError::io(format!(
                "cannot create state_dir {}",
                dir.display()
            )))?;
        let path = dir.join(DATABASE_FILE);
        // Create the file private before SQLite sees it; SQLite gives its -wal and -shm
        // files the database's own mode.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(CoreError::io(format!("cannot create {}", path.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(CoreError::io(format!("cannot restrict {}", path.display())))?;
        let conn = Connection::open(&path).map_err(|e| db_error(&path, &e))?;
        let store = Self {
            path,
            conn: Mutex::new(conn),
        };
        store.configure()?;
        Ok(store)
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: &rusqlite::Error) -> CoreError {
        db_error(&self.path, e)
    }

    fn configure(&self) -> Result<(), CoreError> {
        let mut conn = self.conn.lock().expect("state lock");
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err(&e))?;
        // Two processes opening a new database at once race to switch it to WAL and
        // to create the schema: retried like any other "busy".
        let (mode, version) = retry_busy(|| {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            conn.execute_batch("PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;")?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let version = tx.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
            let version = usize::try_from(version).unwrap_or(usize::MAX);
            if version <= MIGRATIONS.len() {
                for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
                    tx.execute_batch(sql)?;
                    tx.pragma_update(
                        None,
                        "user_version",
                        i64::try_from(i + 1).unwrap_or(i64::MAX),
                    )?;
                }
                tx.commit()?;
            }
            Ok((mode, version))
        })
        .map_err(|e| self.err(&e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "the state database is not in WAL mode");
        }
        if version > MIGRATIONS.len() {
            return Err(CoreError::State {
                path: self.path.display().to_string(),
                message: format!(
                    "schema version {version} is newer than this orchestrator knows ({}); use a newer orchestrator or another state_dir",
                    MIGRATIONS.len()
                ),
            });
        }
        Ok(())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction.
    fn write<T>(
        &self,
        f: impl Fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, CoreError> {
        let mut conn = self.conn.lock().expect("state lock");
        retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .map_err(|e| self.err(&e))
    }

    fn read<T>(&self, f: impl Fn(&Connection) -> rusqlite::Result<T>) -> Result<T, CoreError> {
        let conn = self.conn.lock().expect("state lock");
        retry_busy(|| f(&conn)).map_err(|e| self.err(&e))
    }

    /// Records a new session with its services and clients, and the event.
    ///
    /// # Errors
    /// The database failing.
    pub fn insert_session(
        &self,
        session: &SessionRow,
        services: &[ServiceRow],
        clients: &[ClientRow],
    ) -> Result<(), CoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO sessions (id, name, recipe_path, recipe, scheduler, target, state, error,
                    keep_services, pid, pid_start, report_path, created_at, updated_at, finished_at,
                    max_error_rate)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                params![
                    session.id, session.name, session.recipe_path, session.recipe,
                    session.scheduler, session.target, session.state, session.error,
                    session.keep_services, session.pid, session.pid_start, session.report_path,
                    session.created_at, session.updated_at, session.finished_at,
                    session.max_error_rate
                ],
            )?;
            for s in services {
                tx.execute(
                    "INSERT INTO services (id, session_id, name, driver, recipe, state, host, port,
                        health, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        s.id, s.session_id, s.name, s.driver, s.recipe, s.state, s.host, s.port,
                        s.health, s.created_at, s.updated_at
                    ],
                )?;
            }
            for c in clients {
                insert_client(tx, c)?;
            }
            log_event(
                tx,
                Some(&session.id),
                None,
                "session.create",
                Some(&format!(
                    "{} service(s), {} client(s) on {}",
                    services.len(),
                    clients.len(),
                    session.target
                )),
            )
        })
    }

    /// Adds a client to an existing session.
    ///
    /// # Errors
    /// The database failing.
    pub fn insert_client(&self, client: &ClientRow) -> Result<(), CoreError> {
        self.write(|tx| {
            insert_client(tx, client)?;
            log_event(
                tx,
                Some(&client.session_id),
                Some(&client.id),
                "client.create",
                Some(&client.name),
            )
        })
    }

    /// Sets a session's state (and error). A final state also sets `finished_at`, and
    /// every service and client of the session that is not final yet follows
    /// ([`ServiceState::after_session`], [`ClientState::after_session`]) in the same
    /// transaction: an ended session leaves nothing that claims to be live.
    ///
    /// # Errors
    /// The database failing.
    pub fn set_session_state(
        &self,
        id: &str,
        state: SessionState,
        error: Option<&str>,
    ) -> Result<(), CoreError> {
        self.write(|tx| {
            let now = now_ms();
            tx.execute(
                "UPDATE sessions SET state = ?2, error = COALESCE(?3, error), updated_at = ?4,
                    finished_at = CASE WHEN ?5 THEN COALESCE(finished_at, ?4) ELSE finished_at END
                 WHERE id = ?1",
                params![id, state, error, now, state.is_final()],
            )?;
            log_event(tx, Some(id), None, &format!("session.{state}"), error)?;
            if !state.is_final() {
                return Ok(());
            }
            let why = format!("its session ended {state}");
            let services: Vec<(String, ServiceState)> = collect(
                tx,
                "SELECT id, state FROM services WHERE session_id = ?1 ORDER BY created_at, id",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (service, current) in services {
                if !current.is_final() {
                    let next = ServiceState::after_session(state);
                    tx.execute(
                        "UPDATE services SET state = ?2, updated_at = ?3 WHERE id = ?1",
                        params![service, next, now],
                    )?;
                    log_event(
                        tx,
                        Some(id),
                        Some(&service),
                        &format!("service.{next}"),
                        Some(&why),
                    )?;
                }
            }
            let clients: Vec<(String, ClientState)> = collect(
                tx,
                "SELECT id, state FROM clients WHERE session_id = ?1 ORDER BY created_at, id",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (client, current) in clients {
                if !current.is_final() {
                    let next = ClientState::after_session(state);
                    tx.execute(
                        "UPDATE clients SET state = ?2, updated_at = ?3 WHERE id = ?1",
                        params![client, next, now],
                    )?;
                    log_event(
                        tx,
                        Some(id),
                        Some(&client),
                        &format!("client.{next}"),
                        Some(&why),
                    )?;
                }
            }
            Ok(())
        })
    }

    /// Records the orchestrator process that drives a session now (`pid`, started at
    /// `pid_start` as [`orchestrator_slurm::process::start_time`] reads it).
    ///
    /// # Errors
    /// The database failing.
    pub fn set_session_pid(
        &self,
        id: &str,
        pid: u32,
        pid_start: Option<&str>,
    ) -> Result<(), CoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE sessions SET pid = ?2, pid_start = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, pid, pid_start, now_ms()],
            )?;
            log_event(tx, Some(id), None, "session.pid", Some(&pid.to_string()))
        })
    }

    /// Makes process `pid` (started at `pid_start`) the one that drives session `id`,
    /// in one transaction: two processes never both succeed. A session driven by a
    /// process that still lives (`alive` says, from the recorded pid and start time)
    /// is refused, as is one that ended; a session that failed only because its
    /// orchestrator died ([`SessionState::resumable`]) is running again. `None`: no
    /// such session.
    ///
    /// # Errors
    /// The database failing.
    pub fn claim_session(
        &self,
        id: &str,
        pid: u32,
        pid_start: Option<&str>,
        alive: &dyn Fn(u32, Option<&str>) -> bool,
    ) -> Result<Option<Claim>, CoreError> {
        self.write(|tx| {
            let row = tx
                .query_row(
                    "SELECT state, error, pid, pid_start FROM sessions WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, SessionState>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Option<u32>>(2)?,
                            r.get::<_, Option<String>>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((state, error, holder, holder_start)) = row else {
                return Ok(None);
            };
            if let Some(holder) = holder.filter(|h| *h != pid) {
                if alive(holder, holder_start.as_deref()) {
                    return Ok(Some(Claim::Held { pid: holder }));
                }
            }
            if !state.resumable(error.as_deref()) {
                return Ok(Some(Claim::Ended { state, error }));
            }
            let reopened = state.is_final();
            let now = now_ms();
            tx.execute(
                "UPDATE sessions SET pid = ?2, pid_start = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, pid, pid_start, now],
            )?;
            if reopened {
                tx.execute(
                    "UPDATE sessions SET state = ?2, error = NULL, finished_at = NULL WHERE id = ?1",
                    params![id, SessionState::Running],
                )?;
            }
            log_event(
                tx,
                Some(id),
                None,
                "session.attach",
                Some(&format!(
                    "process {pid}{}",
                    if reopened { " reopens it" } else { "" }
                )),
            )?;
            Ok(Some(Claim::Claimed { reopened }))
        })
    }

    /// Records a session's report file.
    ///
    /// # Errors
    /// The database failing.
    pub fn set_session_report(&self, id: &str, path: &str) -> Result<(), CoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE sessions SET report_path = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, path, now_ms()],
            )?;
            log_event(tx, Some(id), None, "report.write", Some(path))
        })
    }

    /// Updates a service's state, and its host, port and health when given.
    ///
    /// # Errors
    /// The database failing.
    pub fn set_service_state(
        &self,
        id: &str,
        state: ServiceState,
        host: Option<&str>,
        port: Option<u16>,
        health: Option<&str>,
    ) -> Result<(), CoreError> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE services SET
                    host = COALESCE(?3, host), port = COALESCE(?4, port),
                    health = COALESCE(?5, health), updated_at = ?6,
                    state = ?2
                 WHERE id = ?1 AND state IS NOT ?2",
                params![id, state, host, port, health, now_ms()],
            )?;
            if changed == 0 {
                tx.execute(
                    "UPDATE services SET host = COALESCE(?2, host), port = COALESCE(?3, port),
                        health = COALESCE(?4, health) WHERE id = ?1",
                    params![id, host, port, health],
                )?;
                return Ok(());
            }
            let session: String =
                tx.query_row("SELECT session_id FROM services WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?;
            log_event(
                tx,
                Some(&session),
                Some(id),
                &format!("service.{state}"),
                health,
            )
        })
    }

    /// Updates a client's state and its target when given.
    ///
    /// # Errors
    /// The database failing.
    pub fn set_client_state(
        &self,
        id: &str,
        state: ClientState,
        target: Option<(&str, &str, u16)>,
    ) -> Result<(), CoreError> {
        self.write(|tx| {
            let (sid, host, port) = match target {
                Some((s, h, p)) => (Some(s), Some(h), Some(p)),
                None => (None, None, None),
            };
            let changed = tx.execute(
                "UPDATE clients SET state = ?2, updated_at = ?3,
                    target_service_id = COALESCE(?4, target_service_id),
                    target_host = COALESCE(?5, target_host),
                    target_port = COALESCE(?6, target_port)
                 WHERE id = ?1 AND state IS NOT ?2",
                params![id, state, now_ms(), sid, host, port],
            )?;
            if changed > 0 {
                let session: String =
                    tx.query_row("SELECT session_id FROM clients WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })?;
                log_event(
                    tx,
                    Some(&session),
                    Some(id),
                    &format!("client.{state}"),
                    None,
                )?;
            }
            Ok(())
        })
    }

    /// Records a job about to be submitted, state `SUBMITTING`; returns its row id.
    ///
    /// # Errors
    /// The database failing.
    pub fn insert_job(&self, job: &JobRow) -> Result<i64, CoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO jobs (session_id, owner_kind, owner_id, scheduler, job_name, job_id,
                    state, node, reason, exit_code, job_dir, script_path, stdout_path, stderr_path,
                    script, created_at, submitted_at, updated_at, ended_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, 'SUBMITTING', NULL, NULL, NULL, ?6, ?7, ?8, ?9,
                    ?10, ?11, NULL, ?11, NULL)",
                params![
                    job.session_id,
                    job.owner_kind,
                    job.owner_id,
                    job.scheduler,
                    job.job_name,
                    job.job_dir,
                    job.script_path,
                    job.stdout_path,
                    job.stderr_path,
                    job.script,
                    now_ms()
                ],
            )?;
            let row = tx.last_insert_rowid();
            log_event(
                tx,
                Some(&job.session_id),
                Some(&job.owner_id),
                "job.submitting",
                Some(&job.job_name),
            )?;
            Ok(row)
        })
    }

    /// Records the scheduler's id of a submitted job (state `PENDING`).
    ///
    /// # Errors
    /// The database failing.
    pub fn job_submitted(&self, row: i64, job_id: &str) -> Result<(), CoreError> {
        self.write(|tx| {
            let now = now_ms();
            tx.execute(
                "UPDATE jobs SET job_id = ?2, state = 'PENDING', submitted_at = ?3, updated_at = ?3
                 WHERE row = ?1",
                params![row, job_id, now],
            )?;
            let (session, owner): (String, String) = tx.query_row(
                "SELECT session_id, owner_id FROM jobs WHERE row = ?1",
                [row],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            log_event(
                tx,
                Some(&session),
                Some(&owner),
                "job.submit",
                Some(&format!("job {job_id}")),
            )
        })
    }

    /// Applies what the scheduler said about a job; logs an event when its state changed.
    /// Returns whether it changed.
    ///
    /// # Errors
    /// The database failing.
    pub fn update_job(&self, row: i64, update: &JobUpdate) -> Result<bool, CoreError> {
        self.write(|tx| {
            let now = now_ms();
            let (old, session, owner, job_id): (JobRecordState, String, String, Option<String>) =
                tx.query_row(
                    "SELECT state, session_id, owner_id, job_id FROM jobs WHERE row = ?1",
                    [row],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
            tx.execute(
                "UPDATE jobs SET state = ?2, node = COALESCE(?3, node), reason = ?4,
                    exit_code = COALESCE(?5, exit_code), updated_at = ?6,
                    ended_at = CASE WHEN ?7 THEN COALESCE(ended_at, ?6) ELSE ended_at END
                 WHERE row = ?1",
                params![
                    row,
                    update.state,
                    update.node,
                    update.reason,
                    update.exit_code,
                    now,
                    update.state.is_final()
                ],
            )?;
            let changed = old != update.state;
            if changed {
                let mut detail = format!(
                    "job {}: {old} -> {}",
                    job_id.as_deref().unwrap_or("-"),
                    update.state
                );
                if let Some(node) = &update.node {
                    detail.push_str(&format!(" on {node}"));
                }
                if let Some(code) = update.exit_code {
                    detail.push_str(&format!(", exit code {code}"));
                }
                if let Some(reason) = &update.reason {
                    detail.push_str(&format!(" ({reason})"));
                }
                log_event(tx, Some(&session), Some(&owner), "job.state", Some(&detail))?;
            }
            Ok(changed)
        })
    }

    /// Appends an event to the audit log.
    ///
    /// # Errors
    /// The database failing.
    pub fn event(
        &self,
        session: Option<&str>,
        subject: Option<&str>,
        action: &str,
        detail: Option<&str>,
    ) -> Result<(), CoreError> {
        self.write(|tx| log_event(tx, session, subject, action, detail))
    }

    /// Records a fetched result file.
    ///
    /// # Errors
    /// The database failing.
    pub fn add_result(
        &self,
        session: &str,
        client: &str,
        name: &str,
        path: &str,
        bytes: i64,
    ) -> Result<(), CoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO results (session_id, client_id, name, path, bytes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![session, client, name, path, bytes, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Forgets every session, service, client and job (the audit log and results
    /// stay); returns how many services and clients were cleared.
    ///
    /// # Errors
    /// The database failing.
    pub fn clear(&self) -> Result<(usize, usize), CoreError> {
        self.write(|tx| {
            let services = tx.execute("DELETE FROM services", [])?;
            let clients = tx.execute("DELETE FROM clients", [])?;
            tx.execute("DELETE FROM jobs", [])?;
            tx.execute("DELETE FROM sessions", [])?;
            log_event(
                tx,
                None,
                None,
                "state.clear",
                Some(&format!("{services} service(s), {clients} client(s)")),
            )?;
            Ok((services, clients))
        })
    }
}

/// Runs `f` again while SQLite answers "busy" at once. The busy timeout covers waiting
/// for a lock; some contention (another process switching a new file to WAL or
/// recovering its WAL) is answered without waiting, and the remedy is to try again.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if attempt < 200 && e.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

fn db_error(path: &Path, e: &rusqlite::Error) -> CoreError {
    CoreError::State {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn collect<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, map)?;
    rows.collect()
}

fn insert_client(tx: &rusqlite::Transaction<'_>, c: &ClientRow) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO clients (id, session_id, name, driver, recipe, target_service_id,
            target_host, target_port, state, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            c.id,
            c.session_id,
            c.name,
            c.driver,
            c.recipe,
            c.target_service_id,
            c.target_host,
            c.target_port,
            c.state,
            c.created_at,
            c.updated_at
        ],
    )?;
    Ok(())
}

fn log_event(
    tx: &rusqlite::Transaction<'_>,
    session: Option<&str>,
    subject: Option<&str>,
    action: &str,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO events (at, pid, session_id, subject, action, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            now_ms(),
            std::process::id(),
            session,
            subject,
            action,
            detail
        ],
    )?;
    // Every state change and action passes here: the one place that logs them.
    tracing::debug!(
        target: "orchestrator::state",
        session = session.unwrap_or("-"),
        subject = subject.unwrap_or("-"),
        detail = detail.unwrap_or(""),
        "{action}"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
