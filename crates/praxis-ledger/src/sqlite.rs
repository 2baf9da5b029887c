//! The embedded ledger store: one SQLite file in WAL mode.
//!
//! Writes go through one dedicated thread that owns the write connection (rusqlite is sync).
//! It commits every request already queued in one transaction (group commit: one fsync for
//! the group), each request inside its own savepoint so a failing request is rolled back
//! alone. Replies are sent only after COMMIT returns, so an awaited append is durable.
//! Reads use a second connection; WAL lets them run while the writer commits.

use crate::connection::{self, Access};
use crate::error::LedgerError;
use crate::{
    Attest, BoxFuture, Entry, Ledger, NewEntry, RUN_FINISHED_KIND, RUN_RESUMED_KIND, RunRow,
    VerifyReport,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::oneshot;

mod schema;
mod writer;

use schema::migrate;
pub(crate) use schema::{MIGRATIONS, version as schema_version};

/// How long a connection waits for another connection (possibly another process) to release
/// the database lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most requests committed in one transaction; bounds the latency of the first in a group.
pub(crate) const MAX_GROUP: usize = 1024;

/// A run's entries after a seq, oldest first: every read of a run.
const ENTRIES_AFTER: &str = "SELECT seq, kind, at, payload, prev_hash, hash FROM entries
     WHERE run_id = ?1 AND seq > ?2 ORDER BY seq";
/// A run's last entry, read inside every append's write transaction.
const RUN_HEAD: &str = "SELECT seq, hash FROM entries WHERE run_id = ?1 ORDER BY seq DESC LIMIT 1";

/// Counters since this handle was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LedgerStats {
    /// Entries appended and committed.
    pub entries: u64,
    /// Write transactions committed (one per group).
    pub commits: u64,
    /// Blobs newly stored (a blob already present is not counted).
    pub blobs: u64,
    /// Append requests answered (successfully or not).
    pub requests: u64,
}

/// What `praxis doctor` shows about the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    pub path: String,
    pub sqlite_version: String,
    pub schema_version: i64,
    pub journal_mode: String,
    /// `PRAGMA quick_check` output, lines joined with "; " (`ok` when healthy).
    pub quick_check: String,
    pub runs: u64,
    pub entries: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub file_bytes: u64,
    pub wal_bytes: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) entries: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) blobs: AtomicU64,
    pub(crate) requests: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> LedgerStats {
        LedgerStats {
            entries: self.entries.load(Ordering::Acquire),
            commits: self.commits.load(Ordering::Acquire),
            blobs: self.blobs.load(Ordering::Acquire),
            requests: self.requests.load(Ordering::Acquire),
        }
    }
}

#[derive(Default)]
struct Gate {
    pauses: u32,
    closing: bool,
}

#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) stats: Counters,
    gate: Mutex<Gate>,
    gate_changed: Condvar,
}

impl Shared {
    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn wait_while_paused(&self) {
        let mut gate = self.gate();
        while gate.pauses > 0 && !gate.closing {
            gate = self
                .gate_changed
                .wait(gate)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

pub(crate) type AppendResult = Result<Vec<Entry>, LedgerError>;

pub(crate) enum Reply {
    Async(oneshot::Sender<AppendResult>),
    Blocking(mpsc::SyncSender<AppendResult>),
}

impl Reply {
    /// An append handed to a store's writer thread: `queue` sends the request with the
    /// reply it is given (an error: it could not be queued), and the future resolves with
    /// the writer's answer, or `stopped` when the writer went away without one.
    pub(crate) fn awaited(
        queue: impl FnOnce(Reply) -> Result<(), LedgerError>,
        stopped: LedgerError,
    ) -> BoxFuture<'static, AppendResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = queue(Reply::Async(tx)) {
            return Box::pin(std::future::ready(Err(e)));
        }
        // tokio's oneshot receiver needs no tokio runtime, so any executor can await this.
        Box::pin(async move { rx.await.unwrap_or(Err(stopped)) })
    }

    pub(crate) fn send(self, result: AppendResult) {
        // A receiver that is gone only means the caller stopped waiting; what was committed
        // stays committed.
        match self {
            Reply::Async(tx) => drop(tx.send(result)),
            Reply::Blocking(tx) => drop(tx.send(result)),
        }
    }
}

pub(crate) struct Request {
    pub(crate) run_id: String,
    pub(crate) entries: Vec<NewEntry>,
    pub(crate) blobs: Vec<Vec<u8>>,
    /// Makes the entry appended after `entries` in the same transaction.
    pub(crate) attest: Option<Attest>,
    pub(crate) reply: Reply,
}

/// The SQLite ledger. Several handles, in one process or several, may share one file.
pub struct SqliteLedger {
    path: PathBuf,
    tx: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    reader: Mutex<Connection>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// While this lives the writer thread holds back: it takes one request and then waits
/// before draining the queue. Tests use it to make group commit deterministic.
#[must_use = "the writer resumes as soon as the pause guard is dropped"]
pub struct WriterPause {
    shared: Arc<Shared>,
}

impl WriterPause {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.gate().pauses += 1;
        WriterPause {
            shared: shared.clone(),
        }
    }
}

impl Shared {
    /// Lets a paused writer go for good: the handle is closing.
    pub(crate) fn close(&self) {
        let mut gate = self.gate();
        gate.closing = true;
        self.gate_changed.notify_all();
    }
}

impl Drop for WriterPause {
    fn drop(&mut self) {
        let mut gate = self.shared.gate();
        gate.pauses = gate.pauses.saturating_sub(1);
        self.shared.gate_changed.notify_all();
    }
}

pub(crate) fn sql_err(
    path: &Path,
    context: impl Into<String>,
) -> impl FnOnce(rusqlite::Error) -> LedgerError {
    let path = path.to_path_buf();
    let context = context.into();
    move |source| LedgerError::Sqlite {
        path,
        context,
        source,
    }
}

impl SqliteLedger {
    /// Opens (creating it and its parent directories if needed) the ledger at `path`.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        connection::create_parent(path)?;
        let open_err = |source| LedgerError::Open {
            path: path.to_path_buf(),
            source,
        };
        let writer = connection::open(path, Access::ReadWrite)?;
        // In WAL mode FULL makes every COMMIT fsync the log: an acknowledged append survives
        // power loss.
        writer
            .execute_batch("PRAGMA synchronous = FULL")
            .map_err(open_err)?;
        migrate(&writer, path)?;
        // The data dir's blob bytes are summed at every run start (its blob cap): a covering
        // index makes that a walk of small index pages, not of every blob's row. An index,
        // not a migration, so the schema version (and older readers) stay as they are.
        writer
            .execute_batch("CREATE INDEX IF NOT EXISTS blobs_size ON blobs (size)")
            .map_err(open_err)?;

        let reader = connection::open(path, Access::ReadWrite)?;
        reader
            .execute_batch("PRAGMA query_only = ON")
            .map_err(open_err)?;

        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let thread_path = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("praxis-ledger-writer".into())
            .spawn(move || writer::writer_loop(writer, &thread_path, rx, &thread_shared))
            .map_err(|e| LedgerError::Setup {
                path: path.to_path_buf(),
                reason: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(SqliteLedger {
            path: path.to_path_buf(),
            tx: Some(tx),
            writer: Some(handle),
            reader: Mutex::new(reader),
            shared,
        })
    }

    /// A read-only handle over `reader` (see `read_only.rs`, where it is opened).
    pub(crate) fn with_reader_only(path: &Path, reader: Connection) -> Self {
        SqliteLedger {
            path: path.to_path_buf(),
            tx: None,
            writer: None,
            reader: Mutex::new(reader),
            shared: Arc::new(Shared::default()),
        }
    }

    /// Whether this handle was opened with [`SqliteLedger::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> LedgerStats {
        self.shared.stats.snapshot()
    }

    /// [`Ledger::append`] for callers that are not in an async context: blocks this thread
    /// until the append is durable (or failed).
    pub fn append_blocking(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Vec<Entry>, LedgerError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(run_id, entries, blobs, None, Reply::Blocking(tx))?;
        rx.recv().unwrap_or_else(|_| Err(self.writer_stopped()))
    }

    #[doc(hidden)]
    pub fn pause_writer(&self) -> WriterPause {
        WriterPause::new(&self.shared)
    }

    /// Resolves a full run id or a unique prefix of one.
    pub fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        if prefix.is_empty() {
            return Err(LedgerError::InvalidRunId {
                run_id: String::new(),
                reason: "a run id (or a unique prefix of one) is required".into(),
            });
        }
        let (exact, candidates) = self.read(|conn| {
            let exact = conn
                .query_row(
                    "SELECT 1 FROM entries WHERE run_id = ?1 AND seq = 1",
                    params![prefix],
                    |_| Ok(()),
                )
                .optional()
                .map_err(sql_err(&self.path, format!("looking up run {prefix}")))?
                .is_some();
            let mut stmt = conn
                .prepare_cached(
                    "SELECT run_id FROM entries WHERE seq = 1 AND substr(run_id, 1, length(?1)) = ?1 ORDER BY run_id LIMIT ?2",
                )
                .map_err(sql_err(&self.path, "preparing the run lookup"))?;
            let candidates = stmt
                .query_map(params![prefix, crate::rows::SHOWN as i64 + 1], |row| row.get::<_, String>(0))
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(sql_err(&self.path, format!("looking up runs starting with {prefix:?}")))?;
            Ok((exact, candidates))
        })?;
        crate::rows::pick_run(&self.path, prefix, exact, candidates)
    }

    pub fn check_health(&self) -> Result<HealthReport, LedgerError> {
        let (schema_version, journal_mode, quick_check, runs, entries, blobs, blob_bytes) = self
            .read(|conn| {
                let err = |what: &str| sql_err(&self.path, format!("health check: {what}"));
                let schema_version: i64 = conn
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(err("schema version"))?;
                let journal_mode: String = conn
                    .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                    .map_err(err("journal mode"))?;
                let quick_check = conn
                    .prepare("PRAGMA quick_check")
                    .and_then(|mut stmt| {
                        stmt.query_map([], |r| r.get::<_, String>(0))?
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .map_err(err("quick_check"))?
                    .join("; ");
                let count = |sql: &str| -> Result<u64, LedgerError> {
                    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map(|n| u64::try_from(n).unwrap_or(0))
                        .map_err(err(sql))
                };
                Ok((
                    schema_version,
                    journal_mode,
                    quick_check,
                    count("SELECT count(*) FROM entries WHERE seq = 1")?,
                    count("SELECT count(*) FROM entries")?,
                    count("SELECT count(*) FROM blobs")?,
                    count("SELECT coalesce(sum(size), 0) FROM blobs")?,
                ))
            })?;
        let size_of = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(HealthReport {
            path: self.path.display().to_string(),
            sqlite_version: rusqlite::version().to_string(),
            schema_version,
            journal_mode,
            quick_check,
            runs,
            entries,
            blobs,
            blob_bytes,
            file_bytes: size_of(&self.path),
            wal_bytes: size_of(Path::new(&wal)),
        })
    }

    fn verify_blobs_here(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|conn| {
            let err = || sql_err(&self.path, "reading blobs to verify them");
            let mut stmt = conn
                .prepare("SELECT id, size, data FROM blobs ORDER BY id")
                .map_err(err())?;
            let mut rows = stmt.query([]).map_err(err())?;
            let mut bad = Vec::new();
            while let Some(row) = rows.next().map_err(err())? {
                let id: String = row.get(0).map_err(err())?;
                let size: i64 = row.get(1).map_err(err())?;
                let data = row.get_ref(2).map_err(err())?;
                let ok = match data.as_blob() {
                    Ok(bytes) => {
                        praxis_core::blob_id(bytes) == id
                            && usize::try_from(size).ok() == Some(bytes.len())
                    }
                    // Someone stored something other than bytes here.
                    Err(_) => false,
                };
                if !ok {
                    bad.push(id);
                }
            }
            Ok(bad)
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        // A panic while holding the lock cannot leave the connection half-changed: reads
        // hold no transaction across calls.
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }

    fn writer_stopped(&self) -> LedgerError {
        if self.is_read_only() {
            return LedgerError::ReadOnly {
                path: self.path.clone(),
            };
        }
        LedgerError::WriterStopped {
            path: self.path.clone(),
        }
    }

    fn send(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<Attest>,
        reply: Reply,
    ) -> Result<(), LedgerError> {
        let request = Request {
            run_id: run_id.to_string(),
            entries,
            blobs,
            attest,
            reply,
        };
        match &self.tx {
            Some(tx) => tx.send(request).map_err(|_| self.writer_stopped()),
            None => Err(self.writer_stopped()),
        }
    }

    /// Stored rows of a run, oldest first.
    fn raw_rows(
        &self,
        run_id: &str,
        after_seq: u64,
    ) -> Result<Vec<crate::rows::RawRow>, LedgerError> {
        // seq is never above i64::MAX, so a larger `after_seq` simply matches nothing.
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        self.read(|conn| {
            let err = || sql_err(&self.path, format!("reading entries of run {run_id}"));
            let mut stmt = conn.prepare_cached(ENTRIES_AFTER).map_err(err())?;
            stmt.query_map(params![run_id, after], |row| {
                Ok(crate::rows::RawRow {
                    seq: row.get(0)?,
                    kind: row.get(1)?,
                    at: row.get(2)?,
                    payload: row.get(3)?,
                    prev_hash: row.get(4)?,
                    hash: row.get(5)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err())
        })
    }
}

impl Drop for SqliteLedger {
    fn drop(&mut self) {
        // A pause guard that outlives the ledger must not keep the writer from exiting.
        self.shared.close();
        // Closing the channel lets the writer finish what is queued and exit.
        drop(self.tx.take());
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

impl Ledger for SqliteLedger {
    fn append_attested(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        Reply::awaited(
            |reply| self.send(run_id, entries, blobs, attest, reply),
            self.writer_stopped(),
        )
    }

    fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        SqliteLedger::find_run(self, prefix)
    }

    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError> {
        self.verify_blobs_here()
    }

    fn blob_ids(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|conn| {
            conn.prepare("SELECT id FROM blobs ORDER BY id")
                .and_then(|mut stmt| {
                    stmt.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(sql_err(&self.path, "listing blobs"))
        })
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError> {
        self.raw_rows(run_id, after_seq)?
            .into_iter()
            .map(|row| {
                row.into_entry(run_id)
                    .map_err(|(seq, reason)| LedgerError::Corrupt {
                        path: self.path.clone(),
                        run_id: run_id.to_string(),
                        seq,
                        reason,
                    })
            })
            .collect()
    }

    fn runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        let raw = self.read(|conn| {
            let err = || sql_err(&self.path, "listing runs");
            let mut stmt = conn
                .prepare_cached(
                    "SELECT f.run_id, f.at, f.payload,
                        (SELECT e.seq FROM entries e WHERE e.run_id = f.run_id ORDER BY e.seq DESC LIMIT 1),
                        (SELECT e.kind FROM entries e WHERE e.run_id = f.run_id ORDER BY e.seq DESC LIMIT 1),
                        (SELECT e.payload FROM entries e WHERE e.run_id = f.run_id AND e.kind = ?1
                            ORDER BY e.seq DESC LIMIT 1),
                        (SELECT e.payload FROM entries e WHERE e.run_id = f.run_id AND e.kind = ?2
                            ORDER BY e.seq DESC LIMIT 1)
                     FROM entries f WHERE f.seq = 1
                     ORDER BY f.at DESC, f.rowid DESC",
                )
                .map_err(err())?;
            stmt.query_map(params![RUN_FINISHED_KIND, RUN_RESUMED_KIND], |row| {
                Ok(crate::rows::RawRun {
                    run_id: row.get(0)?,
                    at: row.get(1)?,
                    started: row.get(2)?,
                    last_seq: row.get(3)?,
                    last_kind: row.get(4)?,
                    finished: row.get(5)?,
                    resumed: row.get(6)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err())
        })?;
        raw.into_iter()
            .map(|r| r.into_run_row(&self.path))
            .collect()
    }

    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        self.read(|conn| {
            conn.query_row("SELECT data FROM blobs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql_err(&self.path, format!("reading blob {id}")))
        })
    }

    fn blob_bytes(&self) -> Result<u64, LedgerError> {
        self.read(|conn| {
            conn.query_row("SELECT coalesce(sum(size), 0) FROM blobs", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(sql_err(&self.path, "summing blob sizes"))
        })
    }

    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError> {
        let rows = self.raw_rows(run_id, 0)?;
        if rows.is_empty() {
            return Err(LedgerError::RunNotFound {
                path: self.path.clone(),
                prefix: run_id.to_string(),
            });
        }
        Ok(crate::rows::verify_rows(rows, run_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;
    use serde_json::json;

    /// How often `conn`'s cached `sql` was compiled again since it was first prepared.
    fn recompiled(conn: &Connection, sql: &str) -> i32 {
        conn.prepare_cached(sql)
            .unwrap()
            .get_status(StatementStatus::RePrepare)
    }

    /// A cached statement is compiled once per connection, whatever values are bound to it:
    /// a read after a seq (a range bound), a run id (the append's head read).
    #[test]
    fn cached_statements_are_not_compiled_again_for_new_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let ledger = SqliteLedger::open(&path).unwrap();
        for run in ["a", "b", "c"] {
            let notes = (0..4).map(|i| NewEntry::now("note", json!({ "i": i })));
            ledger
                .append_blocking(run, notes.collect(), vec![])
                .unwrap();
        }
        for (run, after) in [("a", 0), ("a", 2), ("b", 1), ("c", 0), ("c", 3), ("a", 5)] {
            let read = ledger.entries(run, after).unwrap();
            assert_eq!(read.len(), 4usize.saturating_sub(after as usize));
        }
        assert_eq!(recompiled(&ledger.reader.lock().unwrap(), ENTRIES_AFTER), 0);

        // The writer's connection is opened the same way; its head read, bound to each run.
        let conn = connection::open(&path, Access::ReadWrite).unwrap();
        for run in ["a", "b", "c", "a"] {
            let mut head = conn.prepare_cached(RUN_HEAD).unwrap();
            let seq: i64 = head.query_row(params![run], |r| r.get(0)).unwrap();
            assert_eq!(seq, 4);
        }
        assert_eq!(recompiled(&conn, RUN_HEAD), 0);
    }
}
