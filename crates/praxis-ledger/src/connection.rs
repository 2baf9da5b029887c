//! How every connection to the ledger file is opened, so that no process can make another
//! lose committed entries.
//!
//! SQLite coordinates processes with POSIX advisory locks, and POSIX locks belong to a
//! process: closing *any* descriptor of `ledger.db` in a process drops every lock that
//! process holds on it. A process that lost its shared lock looks absent to the others, and
//! the last connection to close a WAL database normally checkpoints and then *deletes* the
//! WAL and the `-shm` index. A writer that had lost its locks kept committing into the
//! deleted WAL: acknowledged entries vanished at the next restart.
//!
//! The rule here: no connection, in any process, ever checkpoints or deletes on close
//! (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`). The WAL and `-shm` live as long as the ledger;
//! the WAL is shortened only by the writer's own checkpoints, which SQLite coordinates
//! through the `-shm` locks (the write lock and the reader marks), never through the
//! database file's lock. Read-only commands also open the file `SQLITE_OPEN_READ_ONLY`, so
//! they cannot checkpoint at all, and with `readonly_shm` so they never re-initialise the
//! WAL index under a writer (which would crash it: its mapping of the index would shrink).

use crate::LedgerError;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// The WAL is cut back to this size when the writer's checkpoint restarts it, so one large
/// append does not leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// How a connection is used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// May write (the ledger's writer thread, the side tables).
    ReadWrite,
    /// `SQLITE_OPEN_READ_ONLY`: cannot write, checkpoint or delete anything.
    ReadOnly,
    /// `SQLITE_OPEN_READ_ONLY` with `immutable=1`: no locks and no WAL at all. Only for a
    /// file whose WAL is absent or empty and cannot be created (a read-only file system, a
    /// full disk): no writer can be appending to it then.
    Immutable,
}

/// Opens `path` with the rules above. Read-write connections also get the busy timeout and
/// WAL mode; the caller still runs its own schema.
pub(crate) fn open(path: &Path, access: Access) -> Result<Connection, LedgerError> {
    let open_err = |source| LedgerError::Open {
        path: path.to_path_buf(),
        source,
    };
    let flags = match access {
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        Access::ReadOnly | Access::Immutable => OpenFlags::SQLITE_OPEN_READ_ONLY,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = match access {
        Access::ReadWrite => Connection::open_with_flags(path, flags),
        // `readonly_shm`: the WAL index is mapped read-only too, so a reader never
        // re-initialises (truncates) it, even when the writer's locks on it were lost.
        Access::ReadOnly => Connection::open_with_flags(uri(path, "readonly_shm=1"), flags),
        Access::Immutable => Connection::open_with_flags(uri(path, "immutable=1"), flags),
    }
    .map_err(open_err)?;
    // Before anything else: this connection must never checkpoint-and-delete on close.
    let set = conn
        .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(open_err)?;
    if !set {
        return Err(LedgerError::Setup {
            path: path.to_path_buf(),
            reason: "SQLite refused SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE".into(),
        });
    }
    // The query planner's stability guarantee: a plan depends on the SQL and the schema,
    // never on the values bound to it. Without it SQLite compiles a cached statement again
    // on every new value bound to a range bound (`seq > ?`) or a column of a partial index's
    // condition, so the statement cache saved nothing on the hottest reads.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(open_err)?;
    conn.busy_timeout(crate::sqlite::BUSY_TIMEOUT)
        .map_err(open_err)?;
    if access == Access::ReadWrite {
        let mode = into_wal(&conn).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Setup {
                path: path.to_path_buf(),
                reason: format!(
                    "the file system refused write-ahead logging (journal mode stayed {mode:?}); put the ledger on a local disk"
                ),
            });
        }
        conn.execute_batch(&format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}"))
            .map_err(open_err)?;
    }
    Ok(conn)
}

/// Puts the file in WAL mode and returns the journal mode it is in afterwards.
///
/// WAL is a property of the file, so this reads the mode first: once any connection has
/// converted the file, nothing here takes a lock. Converting needs the file to itself, and
/// SQLite answers "database is locked" at once, without its busy handler, while another
/// connection holds it (another process opening the same new file, or converting it). So a
/// busy conversion is tried again, with a growing pause, within the busy timeout; one that
/// another connection finished meanwhile then reads as done.
fn into_wal(conn: &Connection) -> rusqlite::Result<String> {
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(mode);
    }
    let deadline = std::time::Instant::now() + crate::sqlite::BUSY_TIMEOUT;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)) {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            answer => return answer,
        }
    }
}

/// Makes sure the WAL and its index exist beside `path`, so a `readonly_shm` connection can
/// open them: a ledger last closed by an older praxis (or any SQLite client that deletes
/// them on close) has neither. A read-write connection that reads once creates both, and
/// (never checkpointing on close) leaves them in place.
pub(crate) fn ensure_wal_files(path: &Path) -> Result<(), LedgerError> {
    if !sibling(path, "-wal").exists() || !sibling(path, "-shm").exists() {
        let conn = open(path, Access::ReadWrite)?;
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
            .map_err(|source| LedgerError::Open {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(())
}

/// `PATH` with `suffix` appended (`-wal`, `-shm`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// `file:PATH?QUERY`, the path percent-encoded where a URI needs it.
fn uri(path: &Path, query: &str) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        match byte {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{byte:02X}")),
            // Percent-encoding keeps any byte, UTF-8 or not, intact.
            0x80.. => out.push_str(&format!("%{byte:02X}")),
            _ => out.push(char::from(byte)),
        }
    }
    out.push('?');
    out.push_str(query);
    out
}

/// Creates the directory that will hold `path`.
pub(crate) fn create_parent(path: &Path) -> Result<(), LedgerError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| LedgerError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// Processes that open a new ledger file at the same moment (a server starting and a
    /// `praxis token create` beside it) all get a WAL connection: converting the file to WAL
    /// takes an exclusive lock for which SQLite runs no busy handler, so the losers of that
    /// race must wait for the winner rather than fail with "database is locked".
    #[test]
    fn connections_opening_a_new_file_at_once_all_get_wal() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = Arc::new(dir.path().join("ledger.db"));
            let threads = 8;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let conn = open(&path, Access::ReadWrite)?;
                        // A write, as a migration or a side table's schema does next.
                        conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x)")
                            .map_err(|source| LedgerError::Open {
                                path: path.to_path_buf(),
                                source,
                            })
                    })
                })
                .collect();
            for handle in handles {
                if let Err(e) = handle.join().unwrap() {
                    panic!("round {round}: {e}");
                }
            }
        }
    }
}
