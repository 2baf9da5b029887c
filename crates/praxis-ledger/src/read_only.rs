//! Opening the SQLite ledger for commands that only read it (`ledger verify`, `export`,
//! `show`, `runs`, `replay`, `world`, `doctor`, `ledger copy`'s source).
//!
//! A read-only handle never migrates, never checkpoints and never deletes the WAL, so these
//! commands work when the operator needs them most: on a full disk and on a read-only copy
//! of a data dir. What it may do is create the (empty) `-wal` and `-shm` files a
//! `readonly_shm` connection needs when an older client deleted them; where that fails (the
//! file system is read-only or full) and the WAL holds nothing, it opens the file as
//! immutable instead (no writer can be appending to it then: it could not create a WAL
//! either).

use crate::connection::{self, Access};
use crate::error::LedgerError;
use crate::sqlite::{MIGRATIONS, SqliteLedger, sql_err};
use rusqlite::Connection;
use std::path::Path;

impl SqliteLedger {
    /// Opens the ledger at `path` for reading only (`SQLITE_OPEN_READ_ONLY`): this handle
    /// cannot append, migrate, checkpoint or delete the WAL, whatever other processes do. A
    /// ledger that does not exist yet (or a file that never held the ledger's tables) reads
    /// as empty, and nothing is created. A ledger with an older schema is refused with
    /// [`LedgerError::NeedsMigration`], which names the command that migrates it.
    pub fn open_read_only(path: &Path) -> Result<Self, LedgerError> {
        if !path.exists() {
            return Self::empty_read_only(path);
        }
        let reader = match connection::ensure_wal_files(path) {
            Ok(()) => connection::open(path, Access::ReadOnly)?,
            Err(cannot_create) => {
                let wal = connection::sibling(path, "-wal");
                let wal_is_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
                if !wal_is_empty {
                    return Err(cannot_create);
                }
                connection::open(path, Access::Immutable)?
            }
        };
        let version = crate::sqlite::schema_version(&reader, path)?;
        let supported = MIGRATIONS.len() as i64;
        if version < supported {
            let has_entries: bool = reader
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries')",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err(path, "looking for the entries table"))?;
            if !has_entries {
                // Created by a side table (approvals, tokens) but never by the ledger
                // itself: it holds no run, so there is nothing to migrate for a reader.
                return Self::empty_read_only(path);
            }
            return Err(LedgerError::NeedsMigration {
                path: path.to_path_buf(),
                found: version,
                supported,
            });
        }
        Ok(SqliteLedger::with_reader_only(path, reader))
    }

    /// A read-only handle that finds no runs, without touching the disk: an in-memory
    /// database with the current schema.
    fn empty_read_only(path: &Path) -> Result<Self, LedgerError> {
        let err = sql_err(path, "creating an empty in-memory view of a missing ledger");
        let conn = Connection::open_in_memory().map_err(err)?;
        for sql in MIGRATIONS {
            conn.execute_batch(sql).map_err(sql_err(
                path,
                "creating an empty in-memory view of a missing ledger",
            ))?;
        }
        conn.execute_batch("PRAGMA query_only = ON")
            .map_err(sql_err(path, "making the empty view read-only"))?;
        Ok(SqliteLedger::with_reader_only(path, conn))
    }
}
