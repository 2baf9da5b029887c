//! The PostgreSQL ledger: the same trait and semantics as [`crate::SqliteLedger`], for
//! several servers sharing one database.
//!
//! One thread per handle runs a small tokio runtime with two sessions: the writer (group
//! commit, see `writer`) and a reader. The [`Ledger`] trait's reads are synchronous, so a
//! read is sent to that thread and the caller waits for its answer (as a SQLite read waits
//! for the disk); it never runs on the caller's runtime. Connections use no TLS: connect
//! over loopback or a Unix socket, or through a TLS-terminating proxy (README).

mod lease;
mod listen;
mod schema;
mod side;
mod writer;

pub use lease::LeaseState;
pub use listen::{CANCELS_CHANNEL, Notice};
pub use writer::ENTRIES_CHANNEL;

use crate::error::LedgerError;
use crate::rows::{RawRow, RawRun};
use crate::sqlite::{AppendResult, Reply, Request, Shared};
use crate::{
    Attest, BoxFuture, Entry, Ledger, LedgerStats, NewEntry, RUN_FINISHED_KIND, RUN_RESUMED_KIND,
    RunRow, VerifyReport, WriterPause,
};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;
use tokio_postgres::{Client, Config, NoTls};

type Job = Box<dyn FnOnce(Arc<Client>) -> BoxFuture<'static, ()> + Send>;

pub(crate) fn pg_err(
    url: &Path,
    context: impl Into<String>,
) -> impl FnOnce(tokio_postgres::Error) -> LedgerError {
    let path = url.to_path_buf();
    let context = context.into();
    move |source| LedgerError::Postgres {
        path,
        context,
        source,
    }
}

/// `url` without its password, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Whether `value` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(value: &str) -> bool {
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

pub struct PostgresLedger {
    url: PathBuf,
    writes: Option<mpsc::UnboundedSender<Request>>,
    reads: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    schema_version: i64,
    /// Who this handle appends as (a server's id), for run leases; `None`: no lease is ever
    /// held, so runs leased to a server cannot be appended to through this handle.
    owner: Option<String>,
    /// LISTEN/NOTIFY of [`ENTRIES_CHANNEL`] and [`CANCELS_CHANNEL`] (handles with an owner).
    notices: Option<tokio::sync::broadcast::Sender<Notice>>,
}

impl std::fmt::Debug for PostgresLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLedger")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

async fn connect(config: &Config, url: &Path, role: &str) -> Result<Client, LedgerError> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(pg_err(url, format!("connecting the {role} session")))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; the client's calls then
        // fail with the reason.
        let _ = connection.await;
    });
    Ok(client)
}

impl PostgresLedger {
    /// Connects to the database at `url` and brings its schema up to date.
    pub fn connect(url: &str) -> Result<Self, LedgerError> {
        Self::connect_as(url, None)
    }

    /// [`PostgresLedger::connect`] for a driver that holds run leases as `owner` (a server's
    /// id): its appends to a leased run succeed only while the lease names it, and it
    /// listens for new entries and cancel requests ([`PostgresLedger::subscribe`]).
    pub fn connect_as(url: &str, owner: Option<String>) -> Result<Self, LedgerError> {
        Self::open(url, owner, false)
    }

    /// For commands that only read: both sessions are read-only (`SET
    /// default_transaction_read_only`), nothing is migrated, and a schema older than this
    /// praxis knows is refused naming `praxis ledger migrate`. Appends fail in the database.
    pub fn connect_read_only(url: &str) -> Result<Self, LedgerError> {
        Self::open(url, None, true)
    }

    fn open(url: &str, owner: Option<String>, read_only: bool) -> Result<Self, LedgerError> {
        let shown = PathBuf::from(redact_url(url));
        let config: Config = url.parse().map_err(pg_err(&shown, "parsing the URL"))?;
        let shared = Arc::new(Shared::default());
        let (write_tx, write_rx) = mpsc::unbounded_channel::<Request>();
        let (read_tx, mut read_rx) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<i64, LedgerError>>(1);
        let thread_url = shown.clone();
        let thread_shared = shared.clone();
        let notices = owner
            .as_ref()
            .map(|_| tokio::sync::broadcast::channel::<Notice>(1024).0);
        let thread_notices = notices.clone();
        let thread_owner = owner.clone();
        let listen_config = config.clone();
        let setup_err = |reason: String| LedgerError::Setup {
            path: shown.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup_err(format!("cannot start the ledger's runtime: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("praxis-ledger-postgres".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let url = thread_url;
                    let opened = async {
                        let writer = connect(&config, &url, "writer").await?;
                        writer
                            .batch_execute("SET synchronous_commit = on")
                            .await
                            .map_err(pg_err(&url, "setting synchronous_commit"))?;
                        let version = if read_only {
                            schema::require_current(&writer, &url).await?
                        } else {
                            schema::migrate(&writer, &url).await?
                        };
                        let reader = connect(&config, &url, "reader").await?;
                        if read_only {
                            for session in [&writer, &reader] {
                                session
                                    .batch_execute("SET default_transaction_read_only = on")
                                    .await
                                    .map_err(pg_err(&url, "making the session read-only"))?;
                            }
                        }
                        let listener = match thread_notices {
                            Some(tx) => Some(listen::start(&listen_config, &url, tx).await?),
                            None => None,
                        };
                        Ok::<_, LedgerError>((writer, reader, listener, version))
                    };
                    let (writer, reader, _listener) = match opened.await {
                        Ok((writer, reader, listener, version)) => {
                            let _ = ready_tx.send(Ok(version));
                            (writer, Arc::new(reader), listener)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let writer = writer::Writer {
                        client: writer,
                        url,
                        shared: thread_shared,
                        owner: thread_owner,
                    };
                    let reads = async move {
                        while let Some(job) = read_rx.recv().await {
                            tokio::spawn(job(reader.clone()));
                        }
                    };
                    tokio::join!(writer.run(write_rx), reads);
                });
            })
            .map_err(|e| setup_err(format!("cannot start the ledger thread: {e}")))?;
        let schema_version = match ready_rx.recv() {
            Ok(Ok(version)) => version,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(setup_err(
                    "the ledger thread stopped while connecting".into(),
                ));
            }
        };
        Ok(PostgresLedger {
            url: shown,
            writes: Some(write_tx),
            reads: Some(read_tx),
            thread: Some(thread),
            shared,
            schema_version,
            owner,
            notices,
        })
    }

    /// The schema version the database has (after this handle's migration).
    pub fn schema_version(&self) -> i64 {
        self.schema_version
    }

    /// The number of migrations this praxis knows.
    pub fn supported_schema_version() -> i64 {
        schema::MIGRATIONS.len() as i64
    }

    pub fn stats(&self) -> LedgerStats {
        self.shared.stats.snapshot()
    }

    /// While this lives the writer takes one request and then waits before draining the
    /// queue (tests use it to make group commit deterministic). It blocks the ledger
    /// thread, so reads through this handle wait too.
    #[doc(hidden)]
    pub fn pause_writer(&self) -> WriterPause {
        WriterPause::new(&self.shared)
    }

    fn stopped(&self) -> LedgerError {
        LedgerError::WriterStopped {
            path: self.url.clone(),
        }
    }

    /// Runs `f` with the reader session on the ledger thread and waits for its answer. The
    /// side tables write through it too (each statement its own transaction).
    pub(crate) fn read<T, F, Fut>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Client>, PathBuf) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, LedgerError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let url = self.url.clone();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = tx.send(f(client, url).await);
            })
        });
        let reads = self.reads.as_ref().ok_or_else(|| self.stopped())?;
        reads.send(job).map_err(|_| self.stopped())?;
        rx.recv().map_err(|_| self.stopped())?
    }

    fn raw_rows(&self, run_id: &str, after_seq: u64) -> Result<Vec<RawRow>, LedgerError> {
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let run = run_id.to_string();
        self.read(move |client, url| async move {
            let rows = client
                .query(
                    "SELECT seq, kind, at, payload, prev_hash, hash FROM entries
                     WHERE run_id = $1 AND seq > $2 ORDER BY seq",
                    &[&run, &after],
                )
                .await
                .map_err(pg_err(&url, format!("reading entries of run {run}")))?;
            Ok(rows
                .into_iter()
                .map(|row| RawRow {
                    seq: row.get(0),
                    kind: row.get(1),
                    at: row.get(2),
                    payload: row.get(3),
                    prev_hash: row.get(4),
                    hash: row.get(5),
                })
                .collect())
        })
    }

    /// [`Ledger::append`] for callers that are not in an async context.
    pub fn append_blocking(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
    ) -> AppendResult {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.send(run_id, entries, blobs, None, Reply::Blocking(tx))?;
        rx.recv().unwrap_or_else(|_| Err(self.stopped()))
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
        let writes = self.writes.as_ref().ok_or_else(|| self.stopped())?;
        writes.send(request).map_err(|_| self.stopped())
    }
}

impl Drop for PostgresLedger {
    fn drop(&mut self) {
        // Closing both channels lets the writer finish what is queued and the thread end.
        self.shared.close();
        drop(self.writes.take());
        drop(self.reads.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Ledger for PostgresLedger {
    fn append_attested(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
        attest: Option<Attest>,
    ) -> BoxFuture<'static, Result<Vec<Entry>, LedgerError>> {
        Reply::awaited(
            |reply| self.send(run_id, entries, blobs, attest, reply),
            self.stopped(),
        )
    }

    fn entries(&self, run_id: &str, after_seq: u64) -> Result<Vec<Entry>, LedgerError> {
        self.raw_rows(run_id, after_seq)?
            .into_iter()
            .map(|row| {
                row.into_entry(run_id)
                    .map_err(|(seq, reason)| LedgerError::Corrupt {
                        path: self.url.clone(),
                        run_id: run_id.to_string(),
                        seq,
                        reason,
                    })
            })
            .collect()
    }

    fn runs(&self) -> Result<Vec<RunRow>, LedgerError> {
        let raw = self.read(|client, url| async move {
            let rows = client
                .query(
                    "SELECT f.run_id, f.at, f.payload,
                        (SELECT e.seq FROM entries e WHERE e.run_id = f.run_id ORDER BY e.seq DESC LIMIT 1),
                        (SELECT e.kind FROM entries e WHERE e.run_id = f.run_id ORDER BY e.seq DESC LIMIT 1),
                        (SELECT e.payload FROM entries e WHERE e.run_id = f.run_id AND e.kind = $1
                            ORDER BY e.seq DESC LIMIT 1),
                        (SELECT e.payload FROM entries e WHERE e.run_id = f.run_id AND e.kind = $2
                            ORDER BY e.seq DESC LIMIT 1)
                     FROM entries f WHERE f.seq = 1
                     ORDER BY f.at DESC, f.id DESC",
                    &[&RUN_FINISHED_KIND, &RUN_RESUMED_KIND],
                )
                .await
                .map_err(pg_err(&url, "listing runs"))?;
            Ok(rows
                .into_iter()
                .map(|row| RawRun {
                    run_id: row.get(0),
                    at: row.get(1),
                    started: row.get(2),
                    last_seq: row.get(3),
                    last_kind: row.get(4),
                    finished: row.get(5),
                    resumed: row.get(6),
                })
                .collect::<Vec<_>>())
        })?;
        raw.into_iter().map(|r| r.into_run_row(&self.url)).collect()
    }

    fn blob(&self, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        let id = id.to_string();
        self.read(move |client, url| async move {
            client
                .query_opt("SELECT data FROM blobs WHERE id = $1", &[&id])
                .await
                .map(|row| row.map(|r| r.get::<_, Vec<u8>>(0)))
                .map_err(pg_err(&url, format!("reading blob {id}")))
        })
    }

    fn blob_bytes(&self) -> Result<u64, LedgerError> {
        self.read(|client, url| async move {
            client
                .query_one("SELECT coalesce(sum(size), 0)::bigint FROM blobs", &[])
                .await
                .map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
                .map_err(pg_err(&url, "summing blob sizes"))
        })
    }

    fn verify_run(&self, run_id: &str) -> Result<VerifyReport, LedgerError> {
        let rows = self.raw_rows(run_id, 0)?;
        if rows.is_empty() {
            return Err(LedgerError::RunNotFound {
                path: self.url.clone(),
                prefix: run_id.to_string(),
            });
        }
        Ok(crate::rows::verify_rows(rows, run_id))
    }

    fn verify_blobs(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|client, url| async move {
            let rows = client
                .query("SELECT id, size, data FROM blobs ORDER BY id", &[])
                .await
                .map_err(pg_err(&url, "reading blobs to verify them"))?;
            Ok(rows
                .into_iter()
                .filter(|row| {
                    let (id, size, data) = (
                        row.get::<_, &str>(0),
                        row.get::<_, i64>(1),
                        row.get::<_, &[u8]>(2),
                    );
                    praxis_core::blob_id(data) != id
                        || usize::try_from(size).ok() != Some(data.len())
                })
                .map(|row| row.get::<_, String>(0))
                .collect())
        })
    }

    fn blob_ids(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|client, url| async move {
            let rows = client
                .query("SELECT id FROM blobs ORDER BY id", &[])
                .await
                .map_err(pg_err(&url, "listing blobs"))?;
            Ok(rows.into_iter().map(|row| row.get(0)).collect())
        })
    }

    fn find_run(&self, prefix: &str) -> Result<String, LedgerError> {
        if prefix.is_empty() {
            return Err(LedgerError::InvalidRunId {
                run_id: String::new(),
                reason: "a run id (or a unique prefix of one) is required".into(),
            });
        }
        let wanted = prefix.to_string();
        let (exact, candidates) = self.read(move |client, url| async move {
            let err = || pg_err(&url, format!("looking up runs starting with {wanted:?}"));
            let exact = client
                .query_opt(
                    "SELECT 1 FROM entries WHERE run_id = $1 AND seq = 1",
                    &[&wanted],
                )
                .await
                .map_err(err())?
                .is_some();
            let limit = crate::rows::SHOWN as i64 + 1;
            let rows = client
                .query(
                    "SELECT run_id FROM entries WHERE seq = 1 AND left(run_id, length($1)) = $1
                     ORDER BY run_id LIMIT $2",
                    &[&wanted, &limit],
                )
                .await
                .map_err(err())?;
            Ok((exact, rows.into_iter().map(|r| r.get(0)).collect()))
        })?;
        crate::rows::pick_run(&self.url, prefix, exact, candidates)
    }

    fn location(&self) -> String {
        self.url.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://ana:s3cr%40t@db.example:5432/praxis?sslmode=disable"),
            "postgres://ana:***@db.example:5432/praxis?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://ana@127.0.0.1/praxis"),
            "postgresql://ana@127.0.0.1/praxis"
        );
        // An '@' in the password still hides all of it.
        assert_eq!(
            redact_url("postgres://ana:p@ss@h/db"),
            "postgres://ana:***@h/db"
        );
        assert_eq!(redact_url("host=/tmp dbname=x"), "host=/tmp dbname=x");
        assert!(is_postgres_url("postgres://h/db") && is_postgres_url("postgresql://h/db"));
        assert!(!is_postgres_url("/var/lib/praxis/ledger.db"));
    }
}
