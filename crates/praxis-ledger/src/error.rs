use std::path::PathBuf;

/// Everything the ledger can fail with; each variant names the database file and, where there
/// is one, the run.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create the directory {} for the ledger: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the ledger {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot open the ledger {}: {reason}", path.display())]
    Setup { path: PathBuf, reason: String },
    #[error(
        "the ledger {} has schema version {found}, newer than this praxis understands ({supported}); use a newer praxis",
        path.display()
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "the ledger {} has schema version {found}, older than this praxis's ({supported}), and a read-only command does not migrate it; run `praxis ledger migrate` first (it writes to the ledger)",
        path.display()
    )]
    NeedsMigration {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("ledger {}: {context}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        context: String,
        source: rusqlite::Error,
    },
    /// `path` is the database's URL without its password.
    #[error("ledger {}: {context}: {source}", path.display())]
    Postgres {
        path: PathBuf,
        context: String,
        source: tokio_postgres::Error,
    },
    #[error("invalid run id {run_id:?}: {reason}")]
    InvalidRunId { run_id: String, reason: String },
    #[error("run {run_id}: entry {index} of the append is invalid: {reason}")]
    InvalidEntry {
        run_id: String,
        index: usize,
        reason: String,
    },
    #[error("ledger {}: no run matches {prefix:?}", path.display())]
    RunNotFound { path: PathBuf, prefix: String },
    #[error(
        "ledger {}: run id prefix {prefix:?} is ambiguous; it matches {}{}",
        path.display(),
        candidates.join(", "),
        if *more { ", …" } else { "" }
    )]
    AmbiguousRun {
        path: PathBuf,
        prefix: String,
        candidates: Vec<String>,
        /// More runs match than `candidates` lists.
        more: bool,
    },
    #[error("ledger {}: run {run_id} entry {seq} is unreadable: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        run_id: String,
        seq: i64,
        reason: String,
    },
    #[error("ledger {}: the append to run {run_id} was not committed: {reason}", path.display())]
    NotCommitted {
        path: PathBuf,
        run_id: String,
        reason: String,
    },
    #[error("ledger {}: the writer thread has stopped; nothing more can be appended", path.display())]
    WriterStopped { path: PathBuf },
    #[error("ledger {}: opened read-only; nothing can be appended through this handle", path.display())]
    ReadOnly { path: PathBuf },
    /// The run's lease names another driver: this process lost the run (it was taken over)
    /// and must stop writing to it.
    #[error(
        "ledger {}: run {run_id} is leased to {owner}, not to this process ({me}); it was taken over, nothing was appended",
        path.display()
    )]
    LeaseHeld {
        path: PathBuf,
        run_id: String,
        owner: String,
        me: String,
    },
}
