//! The state database's schema: one migration per version (`PRAGMA user_version`),
//! applied in order and never edited once released.

pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        name          TEXT,
        recipe_path   TEXT,
        recipe        TEXT NOT NULL,
        scheduler     TEXT NOT NULL,
        target        TEXT NOT NULL,
        state         TEXT NOT NULL,
        error         TEXT,
        keep_services INTEGER NOT NULL DEFAULT 0,
        pid           INTEGER,
        report_path   TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        finished_at   INTEGER
    );
    CREATE TABLE services (
        id          TEXT PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        driver      TEXT NOT NULL,
        recipe      TEXT NOT NULL,
        state       TEXT NOT NULL,
        host        TEXT,
        port        INTEGER,
        health      TEXT,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE clients (
        id                TEXT PRIMARY KEY,
        session_id        TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        name              TEXT NOT NULL,
        driver            TEXT NOT NULL,
        recipe            TEXT NOT NULL,
        target_service_id TEXT,
        target_host       TEXT,
        target_port       INTEGER,
        state             TEXT NOT NULL,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL
    );
    CREATE TABLE jobs (
        row          INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        owner_kind   TEXT NOT NULL CHECK (owner_kind IN ('service', 'client')),
        owner_id     TEXT NOT NULL,
        scheduler    TEXT NOT NULL,
        job_name     TEXT NOT NULL,
        job_id       TEXT,
        state        TEXT NOT NULL,
        node         TEXT,
        reason       TEXT,
        exit_code    INTEGER,
        job_dir      TEXT NOT NULL,
        script_path  TEXT NOT NULL,
        stdout_path  TEXT NOT NULL,
        stderr_path  TEXT NOT NULL,
        script       TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        submitted_at INTEGER,
        updated_at   INTEGER NOT NULL,
        ended_at     INTEGER
    );
    CREATE INDEX jobs_active ON jobs(ended_at) WHERE ended_at IS NULL;
    CREATE INDEX jobs_owner ON jobs(owner_id);
    CREATE TABLE results (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        client_id  TEXT NOT NULL,
        name       TEXT NOT NULL,
        path       TEXT NOT NULL,
        bytes      INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        at         INTEGER NOT NULL,
        pid        INTEGER NOT NULL,
        session_id TEXT,
        subject    TEXT,
        action     TEXT NOT NULL,
        detail     TEXT
    );
    CREATE INDEX events_session ON events(session_id);
    ",
    // 2: the start time of the session's orchestrator process, so that a reused pid
    // is not taken for it.
    "ALTER TABLE sessions ADD COLUMN pid_start TEXT;",
    // 3: the bound on failed requests the session ran under (the config's
    // `max_error_rate`); NULL in sessions recorded before: the default.
    "ALTER TABLE sessions ADD COLUMN max_error_rate REAL;",
];
