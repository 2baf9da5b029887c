//! The PostgreSQL schema and its migrations: numbered SQL scripts, each applied once in its
//! own transaction and recorded in `praxis_schema_migrations`, under an advisory lock so
//! servers starting together do not migrate twice. (SQLite counts its migrations in
//! `PRAGMA user_version`; one mechanism per backend.)

use super::pg_err;
use crate::error::LedgerError;
use crate::side_schema;
use std::path::Path;
use tokio_postgres::Client;

/// Key of the session advisory lock held while migrating ("praxis" in ASCII).
const MIGRATION_LOCK: i64 = 0x7072_6178_6973;

/// Numbered migrations; each is a list of scripts run in order in one transaction.
pub(crate) const MIGRATIONS: &[&[&str]] = &[
    &[ENTRIES_AND_BLOBS],
    &[
        side_schema::APPROVALS,
        side_schema::CANCELS,
        side_schema::TOKENS,
        LEASES,
    ],
    &[side_schema::ACCEPTED],
];

/// Migration 1: the ledger itself.
const ENTRIES_AND_BLOBS: &str = r#"
CREATE TABLE entries (
    id        bigint GENERATED ALWAYS AS IDENTITY,
    run_id    text   NOT NULL CHECK (length(run_id) BETWEEN 1 AND 128),
    seq       bigint NOT NULL CHECK (seq >= 1),
    kind      text   NOT NULL CHECK (length(kind) >= 1),
    at        text   NOT NULL,
    -- Canonical JSON as text, not jsonb: jsonb would rewrite numbers and key order, and the
    -- hash covers the exact text.
    payload   text   NOT NULL,
    prev_hash text   NOT NULL CHECK (length(prev_hash) = 64),
    hash      text   NOT NULL CHECK (length(hash) = 64),
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX entries_kind ON entries (kind, run_id, seq);
CREATE INDEX entries_first ON entries (run_id) WHERE seq = 1;
CREATE TABLE blobs (
    id   text   PRIMARY KEY CHECK (length(id) = 64),
    size bigint NOT NULL,
    data bytea  NOT NULL
);
CREATE INDEX blobs_size ON blobs (size);
CREATE FUNCTION praxis_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'praxis ledger % are append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
    FOR EACH ROW EXECUTE FUNCTION praxis_append_only();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION praxis_append_only();
CREATE TRIGGER blobs_append_only BEFORE UPDATE OR DELETE ON blobs
    FOR EACH ROW EXECUTE FUNCTION praxis_append_only();
CREATE TRIGGER blobs_no_truncate BEFORE TRUNCATE ON blobs
    FOR EACH STATEMENT EXECUTE FUNCTION praxis_append_only();
"#;

/// Migration 2 (with the side tables): which server drives which run, until when, and what
/// another server needs to take a run over. Lease rows are never deleted: a released lease
/// just expires, so its owner stays named and a stale driver stays fenced off.
const LEASES: &str = r#"
CREATE TABLE run_leases (
    run_id     text        PRIMARY KEY CHECK (length(run_id) BETWEEN 1 AND 128),
    owner      text        NOT NULL CHECK (length(owner) BETWEEN 1 AND 200),
    expires_at timestamptz NOT NULL,
    -- How many times another server took the run over.
    takeovers  bigint      NOT NULL DEFAULT 0
);
CREATE TABLE run_resume_requests (
    run_id  text PRIMARY KEY CHECK (length(run_id) BETWEEN 1 AND 128),
    request text NOT NULL
);
"#;

/// Applies the migrations `client`'s database lacks; returns the schema version it has now.
pub(crate) async fn migrate(client: &Client, url: &Path) -> Result<i64, LedgerError> {
    let err = |what: &str| pg_err(url, format!("migrating the schema: {what}"));
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err("taking the migration lock"))?;
    let result = apply(client, url).await;
    // The lock is the session's; a failed unlock ends with the session anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn apply(client: &Client, url: &Path) -> Result<i64, LedgerError> {
    let err = |what: &str| pg_err(url, format!("migrating the schema: {what}"));
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS praxis_schema_migrations (
                version    integer PRIMARY KEY,
                applied_at text    NOT NULL
            )",
        )
        .await
        .map_err(err("creating praxis_schema_migrations"))?;
    let version = current_version(client, url).await?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(LedgerError::SchemaTooNew {
            path: url.to_path_buf(),
            found: version,
            supported,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let number = index as i32 + 1;
        let what = format!("applying migration {number}");
        client.batch_execute("BEGIN").await.map_err(err(&what))?;
        let step = async {
            for script in *sql {
                client.batch_execute(script).await?;
            }
            client
                .execute(
                    "INSERT INTO praxis_schema_migrations (version, applied_at) VALUES ($1, $2)",
                    &[&number, &crate::now_rfc3339()],
                )
                .await?;
            client.batch_execute("COMMIT").await
        };
        if let Err(e) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(err(&what)(e));
        }
    }
    current_version(client, url).await
}

pub(crate) async fn current_version(client: &Client, url: &Path) -> Result<i64, LedgerError> {
    client
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM praxis_schema_migrations",
            &[],
        )
        .await
        .map(|row| row.get::<_, i64>(0))
        .map_err(pg_err(url, "reading the schema version"))
}

/// The schema version, which must be the one this praxis knows, without changing anything
/// (read-only handles): older is refused naming `praxis ledger migrate`, newer as too new.
pub(crate) async fn require_current(client: &Client, url: &Path) -> Result<i64, LedgerError> {
    let table: Option<String> = client
        .query_one("SELECT to_regclass('praxis_schema_migrations')::text", &[])
        .await
        .map(|row| row.get(0))
        .map_err(pg_err(url, "looking for praxis_schema_migrations"))?;
    let found = match table {
        Some(_) => current_version(client, url).await?,
        None => 0,
    };
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(LedgerError::SchemaTooNew {
            path: url.to_path_buf(),
            found,
            supported,
        });
    }
    if found < supported {
        return Err(LedgerError::NeedsMigration {
            path: url.to_path_buf(),
            found,
            supported,
        });
    }
    Ok(found)
}
