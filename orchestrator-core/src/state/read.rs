//! Reading the state store: each query is one statement on the shared connection.

use rusqlite::{OptionalExtension, params};

use super::rows::{
    ClientRow, EventRow, JobRow, ResultRow, ServiceRow, SessionRow, client_row, job_row,
    service_row, session_row,
};
use super::{StateStore, collect};
use crate::error::CoreError;

impl StateStore {
    /// All sessions, newest first.
    ///
    /// # Errors
    /// The database failing.
    pub fn sessions(&self) -> Result<Vec<SessionRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM sessions ORDER BY created_at DESC, id",
                [],
                session_row,
            )
        })
    }

    /// One session.
    ///
    /// # Errors
    /// The database failing.
    pub fn session(&self, id: &str) -> Result<Option<SessionRow>, CoreError> {
        self.read(|c| {
            c.query_row("SELECT * FROM sessions WHERE id = ?1", [id], session_row)
                .optional()
        })
    }

    /// A session that must exist.
    ///
    /// # Errors
    /// [`CoreError::NotFound`] for an id the store does not have, or the database
    /// failing.
    pub fn existing_session(&self, id: &str) -> Result<SessionRow, CoreError> {
        self.session(id)?.ok_or_else(|| CoreError::NotFound {
            what: "session",
            id: id.to_owned(),
        })
    }

    /// Services, oldest first; of one session when given.
    ///
    /// # Errors
    /// The database failing.
    pub fn services(&self, session: Option<&str>) -> Result<Vec<ServiceRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM services WHERE ?1 IS NULL OR session_id = ?1 ORDER BY created_at, id",
                [session],
                service_row,
            )
        })
    }

    /// One service.
    ///
    /// # Errors
    /// The database failing.
    pub fn service(&self, id: &str) -> Result<Option<ServiceRow>, CoreError> {
        self.read(|c| {
            c.query_row("SELECT * FROM services WHERE id = ?1", [id], service_row)
                .optional()
        })
    }

    /// Clients, oldest first; of one session when given.
    ///
    /// # Errors
    /// The database failing.
    pub fn clients(&self, session: Option<&str>) -> Result<Vec<ClientRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM clients WHERE ?1 IS NULL OR session_id = ?1 ORDER BY created_at, id",
                [session],
                client_row,
            )
        })
    }

    /// One client.
    ///
    /// # Errors
    /// The database failing.
    pub fn client(&self, id: &str) -> Result<Option<ClientRow>, CoreError> {
        self.read(|c| {
            c.query_row("SELECT * FROM clients WHERE id = ?1", [id], client_row)
                .optional()
        })
    }

    /// Jobs, in submission order; of one session when given.
    ///
    /// # Errors
    /// The database failing.
    pub fn jobs(&self, session: Option<&str>) -> Result<Vec<JobRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM jobs WHERE ?1 IS NULL OR session_id = ?1 ORDER BY row",
                [session],
                job_row,
            )
        })
    }

    /// The jobs of one service or client, newest last.
    ///
    /// # Errors
    /// The database failing.
    pub fn jobs_of(&self, owner: &str) -> Result<Vec<JobRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM jobs WHERE owner_id = ?1 ORDER BY row",
                [owner],
                job_row,
            )
        })
    }

    /// Jobs that have not ended, of every session.
    ///
    /// # Errors
    /// The database failing.
    pub fn active_jobs(&self) -> Result<Vec<JobRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT * FROM jobs WHERE ended_at IS NULL ORDER BY row",
                [],
                job_row,
            )
        })
    }

    /// Results of a session.
    ///
    /// # Errors
    /// The database failing.
    pub fn results(&self, session: &str) -> Result<Vec<ResultRow>, CoreError> {
        self.read(|c| {
            collect(
                c,
                "SELECT id, session_id, client_id, name, path, bytes, created_at FROM results
                 WHERE session_id = ?1 ORDER BY id",
                [session],
                |r| {
                    Ok(ResultRow {
                        id: r.get(0)?,
                        session_id: r.get(1)?,
                        client_id: r.get(2)?,
                        name: r.get(3)?,
                        path: r.get(4)?,
                        bytes: r.get(5)?,
                        created_at: r.get(6)?,
                    })
                },
            )
        })
    }

    /// The latest `limit` events, oldest first; of one session or subject when given.
    ///
    /// # Errors
    /// The database failing.
    pub fn events(
        &self,
        session: Option<&str>,
        subject: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EventRow>, CoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = self.read(|c| {
            collect(
                c,
                "SELECT id, at, pid, session_id, subject, action, detail FROM events
                 WHERE (?1 IS NULL OR session_id = ?1) AND (?2 IS NULL OR subject = ?2)
                 ORDER BY id DESC LIMIT ?3",
                params![session, subject, limit],
                |r| {
                    Ok(EventRow {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        pid: r.get(2)?,
                        session_id: r.get(3)?,
                        subject: r.get(4)?,
                        action: r.get(5)?,
                        detail: r.get(6)?,
                    })
                },
            )
        })?;
        rows.reverse();
        Ok(rows)
    }

    /// `PRAGMA integrity_check`: `ok` when the file is sound.
    ///
    /// # Errors
    /// The database failing.
    pub fn integrity_check(&self) -> Result<String, CoreError> {
        self.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    }
}
