//! Several servers on one PostgreSQL ledger (`PRAXIS_LEDGER_URL=postgres://…`).
//!
//! - Every table is shared: runs, approvals, tokens and run owners, cancel requests, so any
//!   server can show, follow, approve, cancel and export any run of a tenant.
//! - Exactly one server drives a run: its lease (`run_leases`: owner, expiry on the
//!   database's clock) is taken before the driver starts and renewed every third of
//!   `PRAXIS_LEASE_SECONDS` while it runs. The ledger refuses appends to a run leased to
//!   someone else, so a driver that lost its lease cannot write.
//! - Takeover: every server looks for runs whose lease expired before `run_finished` (their
//!   driver died), wins the lease with one atomic UPDATE (exactly one server can) and resumes
//!   the run by the ordinary resume rules (`Runtime::resume`: an in-flight tool is re-run
//!   only if it reads, anything else waits for an approval), with the cognition the
//!   creating server saved (`run_resume_requests`: provider, model, script, approve mode).
//! - Cancel on another server files a cancel request and notifies (`praxis_cancels`); the
//!   driving server takes it on the notification or at its next tick. Approvals need
//!   nothing more: the driver's approver polls the shared approvals table.
//! - The live feed: followers on other servers read the run's entries by seq from the
//!   table, woken by the commit notifications (`praxis_entries`), see `sse`.

use crate::api::{AppState, ResumeRun, Tenant};
use crate::runs::Manager;
use crate::{ServerConfig, ServerError};
use praxis_core::record::{RunStarted, kinds, parse_payload};
use praxis_ledger::approvals::ApprovalStore;
use praxis_ledger::cancels::CancelStore;
use praxis_ledger::tokens::TokenStore;
use praxis_ledger::{
    CANCELS_CHANNEL, HealthReport, Ledger, LedgerError, PostgresLedger, SqliteLedger,
};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The ledger and side tables a server works on.
pub(crate) struct Stores {
    pub ledger: Arc<dyn Ledger>,
    /// The data dir's SQLite ledger, when that is the one.
    pub sqlite: Option<Arc<SqliteLedger>>,
    pub cluster: Option<Arc<Cluster>>,
    pub approvals: Arc<ApprovalStore>,
    pub tokens: Arc<TokenStore>,
}

/// What a server sharing a PostgreSQL ledger has on top of the ledger.
pub(crate) struct Cluster {
    pub pg: Arc<PostgresLedger>,
    pub cancels: CancelStore,
    pub lease: Duration,
}

/// This process's id in run leases: host, pid, the time it was made and a counter (a
/// restarted server with a reused pid is another owner).
fn server_id() -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{host}/{}/{nanos:x}.{n}", std::process::id())
}

impl Stores {
    /// The PostgreSQL ledger `PRAXIS_LEDGER_URL` names (this server holding leases under a
    /// fresh id), else the data dir's SQLite file.
    pub fn open(config: &ServerConfig) -> Result<Self, ServerError> {
        match config.home.ledger_url()? {
            Some(url) => {
                let pg = Arc::new(PostgresLedger::connect_as(&url, Some(server_id())).map_err(
                    |source| praxis_runtime::home::HomeError::Ledger {
                        path: praxis_ledger::redact_url(&url).into(),
                        source: Box::new(source),
                    },
                )?);
                Ok(Stores {
                    ledger: pg.clone(),
                    sqlite: None,
                    approvals: Arc::new(pg.approvals()),
                    tokens: Arc::new(pg.tokens()),
                    cluster: Some(Arc::new(Cluster {
                        cancels: pg.cancels(),
                        pg,
                        lease: config.lease,
                    })),
                })
            }
            None => {
                let path = config.home.ledger_path();
                let sqlite = config.home.open_sqlite_ledger()?;
                Ok(Stores {
                    ledger: sqlite.clone(),
                    sqlite: Some(sqlite),
                    approvals: Arc::new(ApprovalStore::open(&path)?),
                    tokens: Arc::new(TokenStore::open(&path)?),
                    cluster: None,
                })
            }
        }
    }
}

/// The ledger's health as `/ready` reports it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum LedgerHealth {
    Sqlite(HealthReport),
    Postgres {
        location: String,
        schema_version: i64,
        /// This server's id in run leases.
        server: String,
    },
}

impl LedgerHealth {
    /// Why the ledger is not healthy, if it is not.
    pub fn problem(&self) -> Option<String> {
        match self {
            LedgerHealth::Sqlite(report) if report.quick_check != "ok" => Some(format!(
                "ledger integrity check failed: {}",
                report.quick_check
            )),
            _ => None,
        }
    }
}

impl Cluster {
    pub fn health(&self) -> Result<LedgerHealth, LedgerError> {
        // A round trip: the database answers.
        self.pg.orphaned_runs()?;
        Ok(LedgerHealth::Postgres {
            location: self.pg.location(),
            schema_version: self.pg.schema_version(),
            server: self.pg.owner().unwrap_or_default().to_string(),
        })
    }

    /// Takes (or keeps) the lease of `run_id` before its driver starts.
    pub async fn acquire(self: &Arc<Self>, run_id: &str) -> Result<bool, LedgerError> {
        let (cluster, run) = (self.clone(), run_id.to_string());
        tokio::task::spawn_blocking(move || cluster.pg.acquire_lease(&run, cluster.lease))
            .await
            .unwrap_or(Ok(false))
    }

    /// Renews the lease of `run_id` every third of its length until `done` fires; calls
    /// `lost` (once) if another server took it.
    pub fn keep(
        self: &Arc<Self>,
        run_id: String,
        lost: impl FnOnce() + Send + 'static,
    ) -> tokio::sync::oneshot::Sender<()> {
        let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
        let cluster = self.clone();
        tokio::spawn(async move {
            let every = (cluster.lease / 3).max(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = &mut done => break,
                    () = tokio::time::sleep(every) => {}
                }
                let (c, run) = (cluster.clone(), run_id.clone());
                let renewed =
                    tokio::task::spawn_blocking(move || c.pg.renew_lease(&run, c.lease)).await;
                match renewed {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        eprintln!(
                            "praxis serve: run {run_id}: another server took it over; stopping here"
                        );
                        lost();
                        break;
                    }
                    // The database is unreachable: keep trying; if the lease expires
                    // meanwhile, the fence refuses this driver's appends.
                    Ok(Err(e)) => eprintln!("praxis serve: run {run_id}: renewing its lease: {e}"),
                    Err(e) => eprintln!("praxis serve: run {run_id}: renewing its lease: {e}"),
                }
            }
        });
        done_tx
    }

    /// Lets the lease of a run whose driver returned expire.
    pub async fn release(self: &Arc<Self>, run_id: &str) {
        let (cluster, run) = (self.clone(), run_id.to_string());
        let released = tokio::task::spawn_blocking(move || cluster.pg.release_lease(&run)).await;
        if let Ok(Err(e)) = released {
            eprintln!("praxis serve: run {run_id}: releasing its lease: {e}");
        }
    }
}

/// What another server needs to resume a run this server creates: saved before it starts.
pub(crate) fn save_resume_request(
    cluster: &Cluster,
    run_id: &str,
    request: &ResumeRun,
) -> Result<(), LedgerError> {
    let text = serde_json::to_string(request).unwrap_or_else(|_| "{}".into());
    cluster.pg.save_resume_request(run_id, &text)
}

/// The loop every server sharing the database runs: cancel requests for the runs it
/// drives (on their notification, or at each tick), and takeover of runs whose driver's
/// lease expired.
pub(crate) fn spawn(state: AppState, cluster: Arc<Cluster>) {
    let mut notices = cluster.pg.subscribe();
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.clone();
        // Runs this server could not resume: not tried again.
        let mut refused: HashSet<String> = HashSet::new();
        let tick = (cluster.lease / 3).max(Duration::from_millis(100));
        // An interval, not a sleep per turn: notifications must not postpone the tick.
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken_by_cancel = tokio::select! {
                _ = ticks.tick() => false,
                _ = shutdown.wait_for(|stop| *stop) => return,
                notice = async {
                    match notices.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => match notice {
                    Ok(n) if n.channel == CANCELS_CHANNEL => true,
                    // New entries are the feed's business; a lag is covered by the tick.
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        notices = None;
                        continue;
                    }
                },
            };
            let (s, c) = (state.clone(), cluster.clone());
            let mut tried = std::mem::take(&mut refused);
            let result = tokio::task::spawn_blocking(move || {
                take_cancels(&s.manager, &c);
                if !woken_by_cancel {
                    keep_queued(&s.manager, &c);
                    take_over(&s, &c, &mut tried);
                    take_over_accepted(&s, &c, &mut tried);
                }
                tried
            })
            .await;
            if let Ok(tried) = result {
                refused = tried;
            }
        }
    });
}

/// Cancels the runs this server drives for which a request was filed (anywhere).
fn take_cancels(manager: &Manager, cluster: &Cluster) {
    for run_id in manager.active_ids() {
        match cluster.cancels.take(&run_id) {
            Ok(Some(request)) => {
                let reason = format!("{} (by {})", request.reason, request.by);
                manager.cancel(&run_id, &reason);
            }
            Ok(None) => {}
            Err(e) => eprintln!("praxis serve: run {run_id}: reading cancel requests: {e}"),
        }
    }
}

/// Renews this server's leases on the runs it accepted that wait in its queue (taken at
/// `POST /v1/runs`): while this server lives, no other starts them.
fn keep_queued(manager: &Manager, cluster: &Cluster) {
    // Runs placed elsewhere hold no lease here (their pods record them, unfenced).
    if manager.places_new_runs_elsewhere() {
        return;
    }
    for run_id in manager.queued_new_ids() {
        match cluster.pg.renew_lease(&run_id, cluster.lease) {
            Ok(true) => {}
            // Another server took it (this one was too slow to renew): when it comes out of
            // the queue here, its lease is refused and it does not start twice.
            Ok(false) => eprintln!("praxis serve: run {run_id}: another server took it over"),
            Err(e) => eprintln!("praxis serve: run {run_id}: renewing its lease: {e}"),
        }
    }
}

/// Starts the runs another server accepted (answered 201) and died with before their first
/// entry: their lease expired, their request is in `accepted_runs`.
fn take_over_accepted(state: &AppState, cluster: &Cluster, refused: &mut HashSet<String>) {
    let orphans = match cluster.pg.orphaned_accepted() {
        Ok(orphans) => orphans,
        Err(e) => {
            eprintln!("praxis serve: looking for accepted runs to take over: {e}");
            return;
        }
    };
    if orphans.is_empty() {
        return;
    }
    let accepted = match state.tokens.accepted_runs() {
        Ok(accepted) => accepted,
        Err(e) => {
            eprintln!("praxis serve: reading accepted runs: {e}");
            return;
        }
    };
    for run in accepted.iter().filter(|r| orphans.contains(&r.run_id)) {
        let run_id = &run.run_id;
        if refused.contains(run_id) || state.manager.is_local(run_id) {
            continue;
        }
        match cluster.pg.acquire_lease(run_id, cluster.lease) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                eprintln!("praxis serve: run {run_id}: taking its lease: {e}");
                continue;
            }
        }
        let note = state.start_accepted(run);
        if !note.contains("started now") {
            refused.insert(run_id.clone());
            let _ = cluster.pg.release_lease(run_id);
        }
        eprintln!("praxis serve: run {run_id}: {note}");
        state.manager.note_recovered(run_id, note);
    }
}

/// Takes over runs whose lease expired before they finished.
fn take_over(state: &AppState, cluster: &Cluster, refused: &mut HashSet<String>) {
    let orphans = match cluster.pg.orphaned_runs() {
        Ok(orphans) => orphans,
        Err(e) => {
            eprintln!("praxis serve: looking for runs to take over: {e}");
            return;
        }
    };
    for run_id in orphans {
        if refused.contains(&run_id) || state.manager.is_local(&run_id) {
            continue;
        }
        match cluster.pg.acquire_lease(&run_id, cluster.lease) {
            Ok(true) => {}
            // Another server was quicker.
            Ok(false) => continue,
            Err(e) => {
                eprintln!("praxis serve: run {run_id}: taking its lease: {e}");
                continue;
            }
        }
        let note = match resume_options(state, cluster, &run_id) {
            Ok((tenant, options)) => {
                match state.manager.take_over(run_id.clone(), tenant, options) {
                    Ok(()) => "taken over from a server whose lease expired".to_string(),
                    Err(e) => format!("taking it over failed: {e}"),
                }
            }
            Err(why) => {
                refused.insert(run_id.clone());
                // Let another server (or a person with `POST …/resume`) try.
                let _ = cluster.pg.release_lease(&run_id);
                format!("not taken over: {why}")
            }
        };
        eprintln!("praxis serve: run {run_id}: {note}");
        state.manager.note_recovered(&run_id, note);
    }
}

fn resume_options(
    state: &AppState,
    cluster: &Cluster,
    run_id: &str,
) -> Result<(String, praxis_runtime::RunOptions), String> {
    let tenant = state
        .tokens
        .run_tenant(run_id)
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| crate::DEFAULT_TENANT.to_string());
    let entries = state
        .manager
        .ledger
        .entries(run_id, 0)
        .map_err(|e| e.to_string())?;
    let spec = entries
        .first()
        .and_then(|e| parse_payload::<RunStarted>(kinds::RUN_STARTED, &e.payload).ok())
        .ok_or("its first entry is not a readable run_started")?
        .spec;
    let request: ResumeRun = match cluster
        .pg
        .resume_request(run_id)
        .map_err(|e| e.to_string())?
    {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| format!("its saved resume request is unreadable: {e}"))?,
        None => ResumeRun::default(),
    };
    let options = state
        .resume_options(&spec, &Tenant(tenant.clone()), &request)
        .map_err(|e| match e.field {
            Some(field) => format!("{field}: {}", e.message),
            None => e.message,
        })?;
    Ok((tenant, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_differ_between_handles_of_one_process() {
        let (a, b) = (server_id(), server_id());
        assert_ne!(a, b);
        assert!(a.contains(&format!("/{}/", std::process::id())), "{a}");
    }

    #[test]
    fn only_a_failed_quick_check_is_a_problem() {
        let pg = LedgerHealth::Postgres {
            location: "postgres://h/db".into(),
            schema_version: 2,
            server: "s".into(),
        };
        assert_eq!(pg.problem(), None);
    }
}
