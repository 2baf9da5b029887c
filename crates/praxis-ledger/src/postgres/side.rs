//! The side tables (approvals, cancel requests, API tokens, run owners) on PostgreSQL: the
//! same tables as SQLite (`side_schema`, created by migration 2) behind the same backend
//! traits, so every server sharing the database sees one set.

use super::{CANCELS_CHANNEL, PostgresLedger, pg_err};
use crate::approvals::{
    ApprovalBackend, ApprovalRequest, ApprovalStore, Decision, expiry_from_sql, expiry_to_sql,
};
use crate::cancels::{CancelBackend, CancelRequest, CancelStore};
use crate::error::LedgerError;
use crate::tokens::{AcceptedRun, TokenBackend, TokenStore};
use std::collections::HashMap;
use std::sync::Arc;

struct PgSide(Arc<PostgresLedger>);

impl PostgresLedger {
    /// The approvals table of this database.
    pub fn approvals(self: &Arc<Self>) -> ApprovalStore {
        ApprovalStore::with_backend(Box::new(PgSide(self.clone())))
    }

    /// The cancel-request table of this database.
    pub fn cancels(self: &Arc<Self>) -> CancelStore {
        CancelStore::with_backend(Box::new(PgSide(self.clone())))
    }

    /// The token and run-owner tables of this database.
    pub fn tokens(self: &Arc<Self>) -> TokenStore {
        TokenStore::with_backend(Box::new(PgSide(self.clone())))
    }
}

impl ApprovalBackend for PgSide {
    fn insert(&self, r: &ApprovalRequest) -> Result<(), LedgerError> {
        let r = r.clone();
        self.0.read(move |client, url| async move {
            client
                .execute(
                    "INSERT INTO approvals (run_id, call_id, tool, arguments, reason, requested_at, expires_at_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[&r.run_id, &r.call_id, &r.tool, &r.arguments, &r.reason, &r.requested_at,
                      &expiry_to_sql(r.expires_at_ms)],
                )
                .await
                .map(drop)
                .map_err(pg_err(&url, "filing an approval request"))
        })
    }

    fn pending(&self) -> Result<Vec<ApprovalRequest>, LedgerError> {
        self.0.read(|client, url| async move {
            let rows = client
                .query(
                    "SELECT run_id, call_id, tool, arguments, reason, requested_at, expires_at_ms
                     FROM approvals WHERE approved IS NULL ORDER BY requested_at, run_id, call_id",
                    &[],
                )
                .await
                .map_err(pg_err(&url, "listing approvals"))?;
            Ok(rows
                .into_iter()
                .map(|row| ApprovalRequest {
                    run_id: row.get(0),
                    call_id: row.get(1),
                    tool: row.get(2),
                    arguments: row.get(3),
                    reason: row.get(4),
                    requested_at: row.get(5),
                    expires_at_ms: expiry_from_sql(row.get(6)),
                })
                .collect())
        })
    }

    fn decide_once(&self, run_id: &str, call_id: &str, d: &Decision) -> Result<bool, LedgerError> {
        let (run, call, d) = (run_id.to_string(), call_id.to_string(), d.clone());
        self.0.read(move |client, url| async move {
            client
                .execute(
                    "UPDATE approvals SET approved = $1, decided_by = $2, decision_reason = $3, decided_at = $4
                     WHERE run_id = $5 AND call_id = $6 AND approved IS NULL",
                    &[&i64::from(d.approved), &d.by, &d.reason, &d.decided_at, &run, &call],
                )
                .await
                .map(|changed| changed > 0)
                .map_err(pg_err(&url, "recording a decision"))
        })
    }

    fn decision(&self, run_id: &str, call_id: &str) -> Result<Option<Decision>, LedgerError> {
        let (run, call) = (run_id.to_string(), call_id.to_string());
        self.0.read(move |client, url| async move {
            client
                .query_opt(
                    "SELECT approved, decided_by, decision_reason, decided_at FROM approvals
                     WHERE run_id = $1 AND call_id = $2 AND approved IS NOT NULL",
                    &[&run, &call],
                )
                .await
                .map(|row| {
                    row.map(|row| Decision {
                        approved: row.get::<_, i64>(0) != 0,
                        by: row.get(1),
                        reason: row.get(2),
                        decided_at: row.get(3),
                    })
                })
                .map_err(pg_err(&url, "reading a decision"))
        })
    }
}

impl CancelBackend for PgSide {
    fn request(&self, r: &CancelRequest) -> Result<bool, LedgerError> {
        let r = r.clone();
        self.0.read(move |client, url| async move {
            let err = || pg_err(&url, "filing a cancel request");
            let inserted = client
                .execute(
                    "INSERT INTO cancel_requests (run_id, reason, requested_by, requested_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&r.run_id, &r.reason, &r.by, &r.requested_at],
                )
                .await
                .map_err(err())?;
            // Wakes the server driving the run (it also looks on its own now and then).
            client
                .execute("SELECT pg_notify($1, $2)", &[&CANCELS_CHANNEL, &r.run_id])
                .await
                .map_err(err())?;
            Ok(inserted > 0)
        })
    }

    fn take(&self, run_id: &str) -> Result<Option<CancelRequest>, LedgerError> {
        let run = run_id.to_string();
        self.0.read(move |client, url| async move {
            client
                .query_opt(
                    "DELETE FROM cancel_requests WHERE run_id = $1
                     RETURNING run_id, reason, requested_by, requested_at",
                    &[&run],
                )
                .await
                .map(|row| {
                    row.map(|row| CancelRequest {
                        run_id: row.get(0),
                        reason: row.get(1),
                        by: row.get(2),
                        requested_at: row.get(3),
                    })
                })
                .map_err(pg_err(&url, "taking a cancel request"))
        })
    }
}

impl TokenBackend for PgSide {
    fn insert_token(&self, hash: &str, tenant: &str, created_at: &str) -> Result<(), LedgerError> {
        let (hash, tenant, at) = (hash.to_string(), tenant.to_string(), created_at.to_string());
        self.0.read(move |client, url| async move {
            client
                .execute(
                    "INSERT INTO api_tokens (token_sha256, tenant, created_at) VALUES ($1, $2, $3)",
                    &[&hash, &tenant, &at],
                )
                .await
                .map(drop)
                .map_err(pg_err(&url, "storing a new API token"))
        })
    }

    fn tenant_for_hash(&self, hash: &str) -> Result<Option<String>, LedgerError> {
        let hash = hash.to_string();
        self.0.read(move |client, url| async move {
            client
                .query_opt(
                    "SELECT tenant FROM api_tokens WHERE token_sha256 = $1",
                    &[&hash],
                )
                .await
                .map(|row| row.map(|row| row.get(0)))
                .map_err(pg_err(&url, "looking up an API token"))
        })
    }

    fn any(&self) -> Result<bool, LedgerError> {
        self.0.read(|client, url| async move {
            client
                .query_one("SELECT EXISTS (SELECT 1 FROM api_tokens)", &[])
                .await
                .map(|row| row.get(0))
                .map_err(pg_err(&url, "counting API tokens"))
        })
    }

    fn tokens(&self) -> Result<Vec<(String, String, String)>, LedgerError> {
        self.0.read(|client, url| async move {
            client
                .query(
                    "SELECT token_sha256, tenant, created_at FROM api_tokens
                     ORDER BY created_at, token_sha256",
                    &[],
                )
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|row| (row.get(0), row.get(1), row.get(2)))
                        .collect()
                })
                .map_err(pg_err(&url, "listing API tokens"))
        })
    }

    fn revoke_prefix(&self, prefix: &str) -> Result<usize, LedgerError> {
        let prefix = prefix.to_string();
        self.0.read(move |client, url| async move {
            client
                .execute(
                    "DELETE FROM api_tokens WHERE left(token_sha256, length($1)) = $1",
                    &[&prefix],
                )
                .await
                .map(|n| n as usize)
                .map_err(pg_err(&url, "revoking an API token"))
        })
    }

    fn set_run_tenant(&self, run_id: &str, tenant: &str) -> Result<(), LedgerError> {
        let (run, tenant) = (run_id.to_string(), tenant.to_string());
        self.0.read(move |client, url| async move {
            client
                .execute(
                    "INSERT INTO run_tenants (run_id, tenant) VALUES ($1, $2)
                     ON CONFLICT (run_id) DO UPDATE SET tenant = EXCLUDED.tenant",
                    &[&run, &tenant],
                )
                .await
                .map(drop)
                .map_err(pg_err(&url, "recording a run's tenant"))
        })
    }

    fn run_tenant(&self, run_id: &str) -> Result<Option<String>, LedgerError> {
        let run = run_id.to_string();
        self.0.read(move |client, url| async move {
            client
                .query_opt("SELECT tenant FROM run_tenants WHERE run_id = $1", &[&run])
                .await
                .map(|row| row.map(|row| row.get(0)))
                .map_err(pg_err(&url, "reading a run's tenant"))
        })
    }

    fn run_tenants(&self) -> Result<HashMap<String, String>, LedgerError> {
        self.0.read(|client, url| async move {
            client
                .query("SELECT run_id, tenant FROM run_tenants", &[])
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect()
                })
                .map_err(pg_err(&url, "listing run tenants"))
        })
    }

    fn accept_run(&self, run: &AcceptedRun) -> Result<(), LedgerError> {
        let run = run.clone();
        self.0.read(move |client, url| async move {
            // One statement, so one transaction: the owner and the request together.
            client
                .execute(
                    "WITH owner AS (
                        INSERT INTO run_tenants (run_id, tenant) VALUES ($1, $2)
                        ON CONFLICT (run_id) DO UPDATE SET tenant = EXCLUDED.tenant
                     )
                     INSERT INTO accepted_runs (run_id, tenant, request, accepted_at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (run_id) DO UPDATE SET tenant = EXCLUDED.tenant,
                        request = EXCLUDED.request, accepted_at = EXCLUDED.accepted_at",
                    &[&run.run_id, &run.tenant, &run.request, &run.accepted_at],
                )
                .await
                .map(drop)
                .map_err(pg_err(&url, "recording an accepted run"))
        })
    }

    fn accepted_runs(&self) -> Result<Vec<AcceptedRun>, LedgerError> {
        self.0.read(|client, url| async move {
            client
                .query(
                    "SELECT run_id, tenant, request, accepted_at FROM accepted_runs
                     ORDER BY accepted_at, run_id",
                    &[],
                )
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|row| AcceptedRun {
                            run_id: row.get(0),
                            tenant: row.get(1),
                            request: row.get(2),
                            accepted_at: row.get(3),
                        })
                        .collect()
                })
                .map_err(pg_err(&url, "listing accepted runs"))
        })
    }

    fn forget_accepted(&self, run_id: &str) -> Result<(), LedgerError> {
        let run = run_id.to_string();
        self.0.read(move |client, url| async move {
            client
                .execute("DELETE FROM accepted_runs WHERE run_id = $1", &[&run])
                .await
                .map(drop)
                .map_err(pg_err(&url, "forgetting an accepted run"))
        })
    }
}
