//! Connection settings and migrations. Migrations are an append-only list; the database's
//! `user_version` says how many have been applied.

use rusqlite::Connection;

/// Applied to every connection.
const PRAGMAS: &[(&str, &str)] = &[
    ("journal_mode", "WAL"),
    ("foreign_keys", "ON"),
    ("busy_timeout", "5000"),
];

/// Each entry moves the schema one version up. Never edit an entry; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: components, instances, history, pending work.
    r#"
    CREATE TABLE components (
        digest   TEXT PRIMARY KEY,
        bytes    BLOB NOT NULL,
        added_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE instances (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        digest        TEXT NOT NULL REFERENCES components(digest),
        status        TEXT NOT NULL,
        input         TEXT NOT NULL,
        output        TEXT,
        failure       TEXT,
        custom_status TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        next_seq      INTEGER NOT NULL
    ) STRICT;
    -- Serves: the unfinished instances to resume at start.
    CREATE INDEX instances_by_status ON instances(status);

    -- Append-only: rows are added with increasing ids.
    CREATE TABLE history (
        id          INTEGER PRIMARY KEY,
        instance_id TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        recorded_at INTEGER NOT NULL,
        event       TEXT NOT NULL
    ) STRICT;
    -- Serves: loading one instance's history in order (replay, status).
    CREATE UNIQUE INDEX history_by_instance ON history(instance_id, seq);

    -- Activities scheduled and not yet recorded as completed.
    CREATE TABLE activities (
        instance_id TEXT NOT NULL,
        pos         INTEGER NOT NULL,
        name        TEXT NOT NULL,
        input       TEXT NOT NULL,
        attempt     INTEGER NOT NULL,
        PRIMARY KEY (instance_id, pos)
    ) STRICT;

    -- Timers armed and not yet fired or cancelled.
    CREATE TABLE timers (
        instance_id TEXT NOT NULL,
        pos         INTEGER NOT NULL,
        fire_at     INTEGER NOT NULL,
        PRIMARY KEY (instance_id, pos)
    ) STRICT;
    -- Serves: the timer service's next due timer.
    CREATE INDEX timers_by_due ON timers(fire_at);
    "#,
    // 2: server secrets; listing instances.
    r#"
    CREATE TABLE secrets (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) STRICT;
    -- Serves: listing instances in creation order, with keyset paging.
    CREATE INDEX instances_by_created ON instances(created_at, id);
    "#,
    // 3: activity retries: the policy, and timers that restart an activity.
    r#"
    ALTER TABLE activities ADD COLUMN retry TEXT;
    ALTER TABLE timers ADD COLUMN kind TEXT NOT NULL DEFAULT 'timer';
    "#,
    // 4: sub-orchestrations: a child knows its parent and the handle it answers.
    r#"
    ALTER TABLE instances ADD COLUMN parent_id TEXT;
    ALTER TABLE instances ADD COLUMN parent_pos INTEGER;
    "#,
    // 5: continue-as-new: earlier runs' histories, by generation.
    r#"
    ALTER TABLE instances ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE history_archive (
        instance_id TEXT NOT NULL,
        generation  INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        recorded_at INTEGER NOT NULL,
        event       TEXT NOT NULL,
        PRIMARY KEY (instance_id, generation, seq)
    ) STRICT;
    "#,
    // 6: entities: their state, the operations sent and not yet applied, the operation log.
    r#"
    CREATE TABLE entities (
        name       TEXT NOT NULL,
        key        TEXT NOT NULL,
        -- NULL: the entity has no state (never set, or deleted by an operation).
        state      TEXT,
        operations INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (name, key)
    ) STRICT;

    -- Operations sent and not yet applied; ids give the order they apply in.
    CREATE TABLE entity_inbox (
        id                INTEGER PRIMARY KEY,
        name              TEXT NOT NULL,
        key               TEXT NOT NULL,
        operation         TEXT NOT NULL,
        input             TEXT NOT NULL,
        -- The sending instance (NULL: sent over HTTP), its run, and for a call the handle
        -- the output completes.
        source_id         TEXT,
        source_generation INTEGER,
        reply_pos         INTEGER,
        sent_at           INTEGER NOT NULL
    ) STRICT;
    -- Serves: the oldest operation of one entity; entities with work after a restart.
    CREATE INDEX entity_inbox_by_entity ON entity_inbox(name, key, id);

    -- Append-only: every operation applied, with its output or error.
    CREATE TABLE entity_log (
        name       TEXT NOT NULL,
        key        TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        applied_at INTEGER NOT NULL,
        operation  TEXT NOT NULL,
        input      TEXT NOT NULL,
        output     TEXT,
        error      TEXT,
        source_id  TEXT,
        PRIMARY KEY (name, key, seq)
    ) STRICT;
    "#,
    // 7: the manual clock's time, kept across restarts (one row); the order components were
    // deployed in (a deploy of a stored component moves it to the end).
    r#"
    CREATE TABLE manual_clock (
        id  INTEGER PRIMARY KEY CHECK (id = 0),
        now INTEGER NOT NULL
    ) STRICT;
    ALTER TABLE components ADD COLUMN deploy_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE components SET deploy_seq = rowid;
    "#,
    // 8: the run of its parent a sub-orchestration answers (NULL: the parent's run then).
    r#"
    ALTER TABLE instances ADD COLUMN parent_generation INTEGER;
    "#,
];

/// Durability of commits (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Synchronous {
    /// fsync on every commit: survives power loss (the default).
    #[default]
    Full,
    /// fsync at checkpoints: survives a process crash, may lose recent commits on power loss.
    Normal,
    /// Never fsync: survives a process crash only; a power cut loses acknowledged work (for
    /// benchmarks, and for the power-cut tests, which must see it fail).
    Off,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the database has schema version {found}, newer than this weft understands ({known}); use a newer weft"
    )]
    TooNew { found: i64, known: i64 },
    #[error("the database failed its integrity check: {0}")]
    Corrupt(String),
}

/// Opens a connection with weft's settings.
pub fn connect(path: &std::path::Path, sync: Synchronous) -> Result<Connection, OpenError> {
    let conn = Connection::open(path)?;
    for (name, value) in PRAGMAS {
        conn.pragma_update(None, name, value)?;
    }
    conn.pragma_update(None, "synchronous", sync.pragma())?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Checks the database's structure (`PRAGMA quick_check`): refuses a damaged file before
/// anything is read from it or written to it.
pub fn check_integrity(conn: &Connection) -> Result<(), OpenError> {
    let mut q = conn.prepare("PRAGMA quick_check")?;
    let problems: Vec<String> = q.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(OpenError::Corrupt(
        problems.into_iter().take(5).collect::<Vec<_>>().join("; "),
    ))
}

/// Brings the schema up to date.
pub fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(OpenError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
