//! Which ledger a local command works on, in one place: the PostgreSQL database
//! `PRAXIS_LEDGER_URL` names, else the data dir's SQLite file ([`DataHome::open_ledger`],
//! [`DataHome::read_ledger`]). Here too: the lease a local run holds on PostgreSQL (so no
//! server takes over a run whose driver is alive), and `ledger copy` between the two
//! backends, side tables included.

use crate::{Cancel, DataHome, home::HomeError};
use praxis_ledger::approvals::ApprovalStore;
use praxis_ledger::copy::{CopyError, CopyReport, SideTables};
use praxis_ledger::tokens::TokenStore;
use praxis_ledger::{Ledger, LedgerError, PostgresLedger, SqliteLedger};
use std::sync::Arc;
use std::time::Duration;

/// How long a local run's lease lasts without renewal when `PRAXIS_LEASE_SECONDS` is not
/// set (the server's default too); renewed every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// The ledger a command writes to: SQLite, or PostgreSQL (a handle that holds run leases).
#[derive(Clone)]
pub enum Selected {
    Sqlite(Arc<SqliteLedger>),
    Postgres(Arc<PostgresLedger>),
}

impl Selected {
    pub fn ledger(&self) -> Arc<dyn Ledger> {
        match self {
            Selected::Sqlite(l) => l.clone(),
            Selected::Postgres(l) => l.clone(),
        }
    }

    pub fn postgres(&self) -> Option<&Arc<PostgresLedger>> {
        match self {
            Selected::Postgres(l) => Some(l),
            Selected::Sqlite(_) => None,
        }
    }
}

/// This process's id in run leases: `local:` host, pid, and the time it was made (a
/// restarted process with a reused pid is another owner).
pub fn local_owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("local:{host}/{}/{nanos:x}", std::process::id())
}

/// `PRAXIS_LEASE_SECONDS` (1 to 3600), else [`DEFAULT_LEASE`].
pub fn lease_from_env() -> Result<Duration, HomeError> {
    match std::env::var("PRAXIS_LEASE_SECONDS") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
            Ok(secs) if (1..=3600).contains(&secs) => Ok(Duration::from_secs(secs)),
            _ => Err(HomeError::Setting {
                name: "PRAXIS_LEASE_SECONDS",
                reason: format!("{v:?}: expected 1 to 3600 seconds"),
            }),
        },
        _ => Ok(DEFAULT_LEASE),
    }
}

/// Why a local run could not take its lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "run {run_id} is driven by {owner} (its lease in the PostgreSQL ledger has not expired); wait for it to end, or cancel it with `praxis cancel {run_id}`"
    )]
    Held { run_id: String, owner: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// The lease of one run, held while a local process drives it: renewed every third of its
/// length; if another process takes it over meanwhile the run is cancelled (the ledger
/// refuses this process's appends anyway). Dropping it lets the lease expire now.
pub struct RunLease {
    pg: Arc<PostgresLedger>,
    run_id: String,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunLease {
    /// Takes the lease of `run_id` on `pg` (a handle with an owner id) and keeps it.
    pub fn take(
        pg: Arc<PostgresLedger>,
        run_id: &str,
        ttl: Duration,
        cancel: Cancel,
    ) -> Result<RunLease, LeaseError> {
        if !pg.acquire_lease(run_id, ttl)? {
            let owner = pg
                .lease(run_id)?
                .map_or_else(|| "another process".to_string(), |l| l.owner);
            return Err(LeaseError::Held {
                run_id: run_id.to_string(),
                owner,
            });
        }
        let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
        let (keeper, run) = (pg.clone(), run_id.to_string());
        tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    () = tokio::time::sleep(every) => {}
                }
                let (k, r) = (keeper.clone(), run.clone());
                match tokio::task::spawn_blocking(move || k.renew_lease(&r, ttl)).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        cancel.cancel(format!(
                            "run {run}: another process took its lease over; stopping here"
                        ));
                        break;
                    }
                    // Unreachable database: keep trying; if the lease expires meanwhile, the
                    // ledger's fence refuses this process's appends.
                    Ok(Err(e)) => eprintln!("praxis: run {run}: renewing its lease: {e}"),
                    Err(e) => eprintln!("praxis: run {run}: renewing its lease: {e}"),
                }
            }
        });
        Ok(RunLease {
            pg,
            run_id: run_id.to_string(),
            done: Some(done_tx),
        })
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Err(e) = self.pg.release_lease(&self.run_id) {
            eprintln!("praxis: run {}: releasing its lease: {e}", self.run_id);
        }
    }
}

/// Which way `praxis ledger copy` goes.
#[derive(Clone, Debug)]
pub enum CopyDirection {
    /// The data dir's SQLite ledger into the PostgreSQL database at the URL.
    ToPostgres(String),
    /// The PostgreSQL database at the URL into the data dir's SQLite ledger.
    FromPostgres(String),
}

/// What `ledger copy` did, and between which stores.
#[derive(Debug)]
pub struct Copied {
    pub from: String,
    pub to: String,
    pub report: CopyReport,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyFailed {
    #[error("no SQLite ledger to copy: {0} does not exist")]
    NoSource(String),
    #[error(transparent)]
    Open(#[from] HomeError),
    #[error("copying {from} to {to}: {source}")]
    Copy {
        from: String,
        to: String,
        source: CopyError,
    },
}

/// One store's ledger and side tables.
struct Store {
    ledger: Arc<dyn Ledger>,
    tokens: TokenStore,
    approvals: ApprovalStore,
}

impl Store {
    /// The data dir's side tables, then its ledger from `ledger` (the writable tables first:
    /// within one process the first opener of the file decides whether SQLite's shared
    /// index is writable).
    fn sqlite(
        home: &DataHome,
        ledger: impl FnOnce() -> Result<Arc<dyn Ledger>, HomeError>,
    ) -> Result<Store, HomeError> {
        let path = home.ledger_path();
        let tokens = TokenStore::open(&path).map_err(|e| home.sqlite_error(e))?;
        let approvals = ApprovalStore::open(&path).map_err(|e| home.sqlite_error(e))?;
        Ok(Store {
            ledger: ledger()?,
            tokens,
            approvals,
        })
    }

    fn postgres(pg: Arc<PostgresLedger>) -> Store {
        Store {
            tokens: pg.tokens(),
            approvals: pg.approvals(),
            ledger: pg,
        }
    }

    fn side(&self) -> SideTables<'_> {
        SideTables {
            tokens: &self.tokens,
            approvals: &self.approvals,
        }
    }
}

/// Copies every run, blob, API token, run owner and waiting approval request that the
/// target lacks; every copied chain is verified in the target. Again copies nothing.
pub async fn copy(home: &DataHome, direction: &CopyDirection) -> Result<Copied, CopyFailed> {
    let path = home.ledger_path();
    let (source, target) = match direction {
        CopyDirection::ToPostgres(url) => {
            if !path.exists() {
                return Err(CopyFailed::NoSource(path.display().to_string()));
            }
            let source = Store::sqlite(home, || {
                let sqlite =
                    SqliteLedger::open_read_only(&path).map_err(|e| home.sqlite_error(e))?;
                Ok(Arc::new(sqlite) as Arc<dyn Ledger>)
            })?;
            (source, Store::postgres(crate::home::open_postgres(url)?))
        }
        CopyDirection::FromPostgres(url) => {
            let pg = PostgresLedger::connect_read_only(url)
                .map(Arc::new)
                .map_err(crate::home::postgres_error(url))?;
            let target = Store::sqlite(home, || Ok(home.open_sqlite_ledger()? as Arc<dyn Ledger>))?;
            (Store::postgres(pg), target)
        }
    };
    let (from, to) = (source.ledger.location(), target.ledger.location());
    let failed = |source| CopyFailed::Copy {
        from: from.clone(),
        to: to.clone(),
        source,
    };
    let mut report = praxis_ledger::copy::copy_all(source.ledger.as_ref(), target.ledger.as_ref())
        .await
        .map_err(failed)?;
    praxis_ledger::copy::copy_side(&source.side(), &target.side(), &mut report).map_err(failed)?;
    Ok(Copied { from, to, report })
}
