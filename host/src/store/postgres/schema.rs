//! Migrations and the node lock. Migrations are an append-only list; the `weft_schema` table
//! says how many have been applied. Text keys compare byte by byte (`COLLATE "C"`), as in
//! SQLite, whatever the database's locale: listings page in the same order on both.

use tokio_postgres::{Client, Config, NoTls};

/// Each entry moves the schema one version up. Never edit an entry; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite's seven migrations hold.
    r#"
    CREATE TABLE components (
        digest     TEXT COLLATE "C" PRIMARY KEY,
        bytes      BYTEA NOT NULL,
        added_at   BIGINT NOT NULL,
        deploy_seq BIGINT NOT NULL
    );

    CREATE TABLE instances (
        id            TEXT COLLATE "C" PRIMARY KEY,
        name          TEXT COLLATE "C" NOT NULL,
        digest        TEXT COLLATE "C" NOT NULL REFERENCES components(digest),
        status        TEXT NOT NULL,
        input         TEXT NOT NULL,
        output        TEXT,
        failure       TEXT,
        custom_status TEXT,
        created_at    BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL,
        next_seq      BIGINT NOT NULL,
        parent_id     TEXT COLLATE "C",
        parent_pos    BIGINT,
        -- The parent's run the child answers.
        parent_generation BIGINT,
        generation    BIGINT NOT NULL DEFAULT 0
    );
    -- Serves: the unfinished instances to resume at start.
    CREATE INDEX instances_by_status ON instances(status);
    -- Serves: listing instances in creation order, with keyset paging.
    CREATE INDEX instances_by_created ON instances(created_at, id);
    -- Serves: a parent's sub-orchestrations (terminate, purge).
    CREATE INDEX instances_by_parent ON instances(parent_id);

    CREATE TABLE history (
        instance_id TEXT COLLATE "C" NOT NULL,
        seq         BIGINT NOT NULL,
        recorded_at BIGINT NOT NULL,
        event       TEXT NOT NULL,
        PRIMARY KEY (instance_id, seq)
    );

    CREATE TABLE history_archive (
        instance_id TEXT COLLATE "C" NOT NULL,
        generation  BIGINT NOT NULL,
        seq         BIGINT NOT NULL,
        recorded_at BIGINT NOT NULL,
        event       TEXT NOT NULL,
        PRIMARY KEY (instance_id, generation, seq)
    );

    -- Activities scheduled and not yet recorded as completed.
    CREATE TABLE activities (
        instance_id TEXT COLLATE "C" NOT NULL,
        pos         BIGINT NOT NULL,
        name        TEXT NOT NULL,
        input       TEXT NOT NULL,
        attempt     BIGINT NOT NULL,
        retry       TEXT,
        PRIMARY KEY (instance_id, pos)
    );

    -- Timers armed and not yet fired or cancelled; `retry` ones restart an activity.
    CREATE TABLE timers (
        instance_id TEXT COLLATE "C" NOT NULL,
        pos         BIGINT NOT NULL,
        fire_at     BIGINT NOT NULL,
        kind        TEXT NOT NULL DEFAULT 'timer',
        PRIMARY KEY (instance_id, pos)
    );
    -- Serves: the next due timer.
    CREATE INDEX timers_by_due ON timers(fire_at);

    CREATE TABLE secrets (
        name  TEXT COLLATE "C" PRIMARY KEY,
        value BYTEA NOT NULL
    );

    CREATE TABLE entities (
        name       TEXT COLLATE "C" NOT NULL,
        key        TEXT COLLATE "C" NOT NULL,
        -- NULL: the entity has no state (never set, or deleted by an operation).
        state      TEXT,
        operations BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (name, key)
    );

    -- Operations sent and not yet applied; ids give the order they apply in.
    CREATE TABLE entity_inbox (
        id                BIGSERIAL PRIMARY KEY,
        name              TEXT COLLATE "C" NOT NULL,
        key               TEXT COLLATE "C" NOT NULL,
        operation         TEXT NOT NULL,
        input             TEXT NOT NULL,
        -- The sending instance (NULL: sent over HTTP), its run, and for a call the handle
        -- the output completes.
        source_id         TEXT COLLATE "C",
        source_generation BIGINT,
        reply_pos         BIGINT,
        sent_at           BIGINT NOT NULL
    );
    -- Serves: the oldest operation of one entity; entities with work after a restart.
    CREATE INDEX entity_inbox_by_entity ON entity_inbox(name, key, id);

    -- Append-only: every operation applied, with its output or error.
    CREATE TABLE entity_log (
        name       TEXT COLLATE "C" NOT NULL,
        key        TEXT COLLATE "C" NOT NULL,
        seq        BIGINT NOT NULL,
        applied_at BIGINT NOT NULL,
        operation  TEXT NOT NULL,
        input      TEXT NOT NULL,
        output     TEXT,
        error      TEXT,
        source_id  TEXT,
        PRIMARY KEY (name, key, seq)
    );

    -- The manual clock's time, kept across restarts (one row).
    CREATE TABLE manual_clock (
        id  INTEGER PRIMARY KEY CHECK (id = 0),
        now BIGINT NOT NULL
    );
    "#,
    // 2: several nodes: who holds each instance's lease, and each node's own lease.
    r#"
    ALTER TABLE instances ADD COLUMN owner TEXT COLLATE "C";
    ALTER TABLE instances ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;
    -- Serves: the instances of a node whose lease ran out, and a restarted node's own.
    CREATE INDEX instances_by_owner ON instances(owner) WHERE owner IS NOT NULL;
    -- The node running an activity (NULL: waiting for any node to claim it).
    ALTER TABLE activities ADD COLUMN claimed_by TEXT COLLATE "C";

    -- Each node's lease: its instances' leases hold while `until` is ahead of now().
    CREATE TABLE weft_nodes (
        id         TEXT COLLATE "C" PRIMARY KEY,
        until      TIMESTAMPTZ NOT NULL,
        started_at TIMESTAMPTZ NOT NULL
    );
"#,
];

/// The advisory lock key migrations take (one node migrates at a time).
const MIGRATION_LOCK: i64 = 0x7765_6674_0001;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("the PostgreSQL URL is not valid: {0}")]
    Url(String),
    #[error("cannot reach PostgreSQL: {0}")]
    Connect(String),
    #[error(
        "the database has schema version {found}, newer than this weft understands ({known}); use a newer weft"
    )]
    TooNew { found: i64, known: i64 },
    #[error("the node name '{0}' is not valid: use letters, digits, '.', '_' and '-'")]
    NodeName(String),
}

/// What PostgreSQL or the connection said, with its causes ("error connecting to server:
/// Connection refused").
fn connect_error(e: tokio_postgres::Error) -> OpenError {
    if let Some(db) = e.as_db_error() {
        return OpenError::Connect(format!("{}: {}", db.code().code(), db.message()));
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    OpenError::Connect(text)
}

/// A connection of its own (not from the pool), with the task that drives it; the task ends
/// when the connection closes.
pub(super) async fn connect(
    config: &Config,
) -> Result<
    (
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    OpenError,
> {
    config.connect(NoTls).await.map_err(connect_error)
}

/// Brings the schema up to date in one transaction, under an advisory lock (nodes starting
/// together migrate one after the other).
pub async fn migrate(client: &mut Client) -> Result<(), OpenError> {
    let known = MIGRATIONS.len() as i64;
    let tx = client.transaction().await.map_err(connect_error)?;
    // "already exists, skipping" is no news.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(connect_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(connect_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS weft_schema (
             id      INTEGER PRIMARY KEY CHECK (id = 0),
             version BIGINT NOT NULL
         );
         INSERT INTO weft_schema (id, version) VALUES (0, 0) ON CONFLICT (id) DO NOTHING;",
    )
    .await
    .map_err(connect_error)?;
    let version: i64 = tx
        .query_one("SELECT version FROM weft_schema WHERE id = 0", &[])
        .await
        .map_err(connect_error)?
        .get(0);
    if version > known {
        return Err(OpenError::TooNew {
            found: version,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(connect_error)?;
        tx.execute(
            "UPDATE weft_schema SET version = $1 WHERE id = 0",
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(connect_error)?;
    }
    tx.commit().await.map_err(connect_error)
}
