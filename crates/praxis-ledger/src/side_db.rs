//! Tables kept beside the ledger in the same SQLite file (API tokens, approvals), each
//! store with a connection of its own.

use crate::LedgerError;
use rusqlite::{Connection, OptionalExtension, Params, Row};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub(crate) struct SideDb {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SideDb {
    /// Opens the ledger file at `path` (and its directory, created if missing) in WAL mode
    /// and runs `schema` (idempotent `CREATE ... IF NOT EXISTS`); `what` names the tables
    /// in errors.
    pub(crate) fn open(path: &Path, schema: &str, what: &str) -> Result<Self, LedgerError> {
        crate::connection::create_parent(path)?;
        let conn = crate::connection::open(path, crate::connection::Access::ReadWrite)?;
        let db = SideDb {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        {
            let conn = db.conn();
            conn.execute_batch(schema)
                .map_err(|e| db.err(&format!("creating the {what}"), e))?;
        }
        Ok(db)
    }

    /// A SQLite error with the file and what was being done.
    pub(crate) fn err(&self, context: &str, source: rusqlite::Error) -> LedgerError {
        LedgerError::Sqlite {
            path: self.path.clone(),
            context: context.into(),
            source,
        }
    }

    /// Runs one statement from the connection's statement cache (each statement is compiled
    /// once per store, not once per call); `context` says what it does in an error.
    pub(crate) fn execute(
        &self,
        context: &str,
        sql: &str,
        params: impl Params,
    ) -> Result<usize, LedgerError> {
        self.conn()
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(params))
            .map_err(|e| self.err(context, e))
    }

    /// The first row of a cached query, if any, as `f` reads it.
    pub(crate) fn query_row<T>(
        &self,
        context: &str,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, LedgerError> {
        self.conn()
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.query_row(params, f).optional())
            .map_err(|e| self.err(context, e))
    }

    /// The connection (a panic elsewhere while holding it leaves it usable: every
    /// statement is its own transaction).
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{StatementStatus, params};

    /// Each statement is compiled once per store and then only run: the cached statement
    /// has run as many times as it was called, never compiled again.
    #[test]
    fn statements_are_compiled_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let schema = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);";
        let db = SideDb::open(&dir.path().join("side.db"), schema, "test table").unwrap();
        let insert = "INSERT INTO t (k, v) VALUES (?1, ?2)";
        let read = "SELECT v FROM t WHERE k = ?1";
        for (k, v) in [("a", 1), ("b", 2), ("c", 3)] {
            assert_eq!(db.execute("inserting", insert, params![k, v]).unwrap(), 1);
        }
        for (k, v) in [("a", Some(1)), ("z", None), ("c", Some(3))] {
            let got: Option<i64> = db
                .query_row("reading", read, params![k], |r| r.get(0))
                .unwrap();
            assert_eq!(got, v);
        }
        let error = db
            .execute("inserting", insert, params!["a", 9])
            .unwrap_err();
        assert!(error.to_string().contains("inserting"), "{error}");
        let conn = db.conn();
        for (sql, runs) in [(insert, 4), (read, 3)] {
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::Run), runs, "{sql}");
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }
}
