//! Run leases: exactly one server drives a run at a time. A lease row names its owner
//! (a server's id) and an expiry on the database's clock; the driver renews it while the
//! run lives. When the driver dies its lease expires, and another server takes the run
//! over (an atomic UPDATE only one server can win) and resumes it. The writer refuses
//! appends to a run leased to someone else (`Writer::fence`), so a driver that lost its
//! run cannot add to the chain even if it wakes up again. Rows are never deleted: releasing
//! a lease only expires it, so a stale owner stays fenced off after the run finished.

use super::{PostgresLedger, pg_err};
use crate::error::LedgerError;
use std::time::Duration;

/// A run's lease as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseState {
    pub owner: String,
    pub expired: bool,
    /// How many times another server took the run over.
    pub takeovers: i64,
}

impl PostgresLedger {
    /// The id this handle holds leases as (see [`PostgresLedger::connect_as`]).
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    fn owner_or_refuse(&self, run_id: &str) -> Result<String, LedgerError> {
        self.owner.clone().ok_or_else(|| LedgerError::Setup {
            path: self.url.clone(),
            reason: format!(
                "run {run_id}: this handle has no owner id, so it cannot hold run leases (connect_as)"
            ),
        })
    }

    /// Takes the lease of `run_id` for `ttl` if it is free (no lease, or an expired one) or
    /// already ours; whether this handle holds it now. Of several servers asking at once,
    /// exactly one wins.
    pub fn acquire_lease(&self, run_id: &str, ttl: Duration) -> Result<bool, LedgerError> {
        crate::rows::validate_run_id(run_id)?;
        let owner = self.owner_or_refuse(run_id)?;
        let run = run_id.to_string();
        let secs = ttl.as_secs_f64();
        self.read(move |client, url| async move {
            client
                .query_opt(
                    "INSERT INTO run_leases (run_id, owner, expires_at)
                     VALUES ($1, $2, now() + make_interval(secs => $3))
                     ON CONFLICT (run_id) DO UPDATE SET
                         owner = EXCLUDED.owner,
                         expires_at = EXCLUDED.expires_at,
                         takeovers = run_leases.takeovers
                             + CASE WHEN run_leases.owner = EXCLUDED.owner THEN 0 ELSE 1 END
                     WHERE run_leases.owner = EXCLUDED.owner OR run_leases.expires_at < now()
                     RETURNING owner",
                    &[&run, &owner, &secs],
                )
                .await
                .map(|row| row.is_some())
                .map_err(pg_err(&url, format!("taking the lease of run {run}")))
        })
    }

    /// Extends our lease of `run_id` by `ttl` from now; false when it is not ours any more
    /// (another server took the run over).
    pub fn renew_lease(&self, run_id: &str, ttl: Duration) -> Result<bool, LedgerError> {
        let owner = self.owner_or_refuse(run_id)?;
        let run = run_id.to_string();
        let secs = ttl.as_secs_f64();
        self.read(move |client, url| async move {
            client
                .execute(
                    "UPDATE run_leases SET expires_at = now() + make_interval(secs => $3)
                     WHERE run_id = $1 AND owner = $2",
                    &[&run, &owner, &secs],
                )
                .await
                .map(|changed| changed > 0)
                .map_err(pg_err(&url, format!("renewing the lease of run {run}")))
        })
    }

    /// Lets our lease of `run_id` expire now (the driver is done with it). The row stays,
    /// naming us.
    pub fn release_lease(&self, run_id: &str) -> Result<(), LedgerError> {
        let owner = self.owner_or_refuse(run_id)?;
        let run = run_id.to_string();
        self.read(move |client, url| async move {
            client
                .execute(
                    "UPDATE run_leases SET expires_at = now() WHERE run_id = $1 AND owner = $2",
                    &[&run, &owner],
                )
                .await
                .map(drop)
                .map_err(pg_err(&url, format!("releasing the lease of run {run}")))
        })
    }

    /// The lease of `run_id`, if it ever had one.
    pub fn lease(&self, run_id: &str) -> Result<Option<LeaseState>, LedgerError> {
        let run = run_id.to_string();
        self.read(move |client, url| async move {
            client
                .query_opt(
                    "SELECT owner, expires_at < now(), takeovers FROM run_leases WHERE run_id = $1",
                    &[&run],
                )
                .await
                .map(|row| {
                    row.map(|row| LeaseState {
                        owner: row.get(0),
                        expired: row.get(1),
                        takeovers: row.get(2),
                    })
                })
                .map_err(pg_err(&url, format!("reading the lease of run {run}")))
        })
    }

    /// Runs whose lease expired before they finished (their driver is gone): the ones
    /// another server should take over, longest-expired first.
    pub fn orphaned_runs(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|client, url| async move {
            let rows = client
                .query(
                    "SELECT l.run_id FROM run_leases l
                     WHERE l.expires_at < now()
                       AND EXISTS (SELECT 1 FROM entries e WHERE e.run_id = l.run_id AND e.seq = 1)
                       AND NOT EXISTS (SELECT 1 FROM entries e
                                       WHERE e.run_id = l.run_id AND e.kind = $1)
                     ORDER BY l.expires_at",
                    &[&crate::RUN_FINISHED_KIND],
                )
                .await
                .map_err(pg_err(&url, "listing runs whose driver is gone"))?;
            Ok(rows.into_iter().map(|row| row.get(0)).collect())
        })
    }

    /// Runs accepted (answered 201) by a server whose lease on them expired before their
    /// first entry: that server is gone, another may start them (`accepted_runs`, oldest
    /// first).
    pub fn orphaned_accepted(&self) -> Result<Vec<String>, LedgerError> {
        self.read(|client, url| async move {
            let rows = client
                .query(
                    "SELECT a.run_id FROM accepted_runs a
                     JOIN run_leases l ON l.run_id = a.run_id
                     WHERE l.expires_at < now()
                       AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.run_id = a.run_id)
                     ORDER BY a.accepted_at, a.run_id",
                    &[],
                )
                .await
                .map_err(pg_err(&url, "listing accepted runs whose server is gone"))?;
            Ok(rows.into_iter().map(|row| row.get(0)).collect())
        })
    }

    /// Keeps what another server needs to resume `run_id` (the request's cognition, as
    /// JSON the server defines; the ledger does not read it).
    pub fn save_resume_request(&self, run_id: &str, request: &str) -> Result<(), LedgerError> {
        crate::rows::validate_run_id(run_id)?;
        let (run, request) = (run_id.to_string(), request.to_string());
        self.read(move |client, url| async move {
            client
                .execute(
                    "INSERT INTO run_resume_requests (run_id, request) VALUES ($1, $2)
                     ON CONFLICT (run_id) DO UPDATE SET request = EXCLUDED.request",
                    &[&run, &request],
                )
                .await
                .map(drop)
                .map_err(pg_err(&url, format!("saving how to resume run {run}")))
        })
    }

    pub fn resume_request(&self, run_id: &str) -> Result<Option<String>, LedgerError> {
        let run = run_id.to_string();
        self.read(move |client, url| async move {
            client
                .query_opt(
                    "SELECT request FROM run_resume_requests WHERE run_id = $1",
                    &[&run],
                )
                .await
                .map(|row| row.map(|row| row.get(0)))
                .map_err(pg_err(&url, format!("reading how to resume run {run}")))
        })
    }

    /// Notifications of new entries and cancel requests (handles with an owner only).
    pub fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<super::Notice>> {
        self.notices.as_ref().map(|tx| tx.subscribe())
    }
}
