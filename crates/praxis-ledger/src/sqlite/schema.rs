//! The SQLite ledger's schema: its migrations, applied in order once per file
//! (`PRAGMA user_version` counts them), as `postgres/schema.rs` does for PostgreSQL.

use super::sql_err;
use crate::LedgerError;
use rusqlite::Connection;
use std::path::Path;

/// Schema migrations; `PRAGMA user_version` counts how many have been applied.
pub(crate) const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE entries (
    run_id    TEXT    NOT NULL CHECK (length(run_id) BETWEEN 1 AND 128),
    seq       INTEGER NOT NULL CHECK (seq >= 1),
    kind      TEXT    NOT NULL CHECK (length(kind) >= 1),
    at        TEXT    NOT NULL,
    payload   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL CHECK (length(prev_hash) = 64),
    hash      TEXT    NOT NULL CHECK (length(hash) = 64),
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX entries_kind ON entries (kind, run_id, seq);
-- First entries only: runs() and find_run() walk this instead of every entry.
CREATE INDEX entries_first ON entries (run_id) WHERE seq = 1;
CREATE TABLE blobs (
    id   TEXT    PRIMARY KEY NOT NULL CHECK (length(id) = 64),
    size INTEGER NOT NULL,
    data BLOB    NOT NULL
);
-- INSERT OR REPLACE deletes the old row without firing DELETE triggers (unless recursive
-- triggers are on), so an insert that would collide is refused before it gets that far.
CREATE TRIGGER entries_no_replace BEFORE INSERT ON entries
WHEN EXISTS (SELECT 1 FROM entries WHERE run_id = NEW.run_id AND seq = NEW.seq)
BEGIN SELECT RAISE(ABORT, 'praxis ledger entries are append-only: this run already has an entry with this seq'); END;
-- Blobs are content-addressed: an id that is present keeps its stored bytes.
CREATE TRIGGER blobs_no_replace BEFORE INSERT ON blobs
WHEN EXISTS (SELECT 1 FROM blobs WHERE id = NEW.id)
BEGIN SELECT RAISE(IGNORE); END;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'praxis ledger entries are append-only: UPDATE refused'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'praxis ledger entries are append-only: DELETE refused'); END;
CREATE TRIGGER blobs_no_update BEFORE UPDATE ON blobs
BEGIN SELECT RAISE(ABORT, 'praxis ledger blobs are append-only: UPDATE refused'); END;
CREATE TRIGGER blobs_no_delete BEFORE DELETE ON blobs
BEGIN SELECT RAISE(ABORT, 'praxis ledger blobs are append-only: DELETE refused'); END;
"#];

/// The schema version of `conn`'s file (`path`), refused when newer than this build knows.
pub(crate) fn version(conn: &Connection, path: &Path) -> Result<i64, LedgerError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err(path, "reading the schema version"))?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(LedgerError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported,
        });
    }
    Ok(version)
}

pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let err = |what: &str| sql_err(path, format!("migrating the schema: {what}"));
    // IMMEDIATE: two processes opening a new file at once must not both migrate it.
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(err("begin"))?;
    let result = (|| {
        let version = version(conn, path)?;
        let supported = MIGRATIONS.len() as i64;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            conn.execute_batch(sql)
                .map_err(err(&format!("applying migration {}", index + 1)))?;
        }
        conn.execute_batch(&format!("PRAGMA user_version = {supported}"))
            .map_err(err("writing user_version"))
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(err("commit")),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}
