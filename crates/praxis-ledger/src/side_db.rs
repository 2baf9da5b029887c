//! Tables kept beside the ledger in the same SQLite file (API tokens, approvals), each
//! store with a connection of its own.

use crate::LedgerError;
use rusqlite::Connection;
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

    /// The connection (a panic elsewhere while holding it leaves it usable: every
    /// statement is its own transaction).
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
