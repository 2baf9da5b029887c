//! Pending approvals: a small table beside the ledger, in the same SQLite file, through which
//! a run suspended on a proposal and an operator in another process meet. The decision
//! itself is recorded in the run's hash chain by the driver (`approval_decided`); this table
//! only carries the request and the answer between processes.

use crate::LedgerError;
use crate::side_db::SideDb;
use crate::side_schema;
use rusqlite::params;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApprovalRequest {
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    pub arguments: String,
    pub reason: String,
    pub requested_at: String,
    /// Unix milliseconds after which the request counts as denied.
    pub expires_at_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub approved: bool,
    pub by: String,
    pub reason: String,
    pub decided_at: String,
}

/// Where approval requests and decisions are kept: the SQLite file beside the ledger, or
/// PostgreSQL ([`crate::PostgresLedger::approvals`]). [`ApprovalStore`] holds the rules.
pub trait ApprovalBackend: Send + Sync {
    /// Files a request; a second request for the same run and call is ignored.
    fn insert(&self, r: &ApprovalRequest) -> Result<(), LedgerError>;
    /// Requests still waiting for a decision, oldest first.
    fn pending(&self) -> Result<Vec<ApprovalRequest>, LedgerError>;
    /// Records the decision if the call is still undecided; whether it was.
    fn decide_once(
        &self,
        run_id: &str,
        call_id: &str,
        decision: &Decision,
    ) -> Result<bool, LedgerError>;
    fn decision(&self, run_id: &str, call_id: &str) -> Result<Option<Decision>, LedgerError>;
}

pub struct ApprovalStore {
    backend: Box<dyn ApprovalBackend>,
}

impl ApprovalStore {
    /// Opens the approvals table in the ledger file at `path` (created if missing).
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        Ok(ApprovalStore {
            backend: Box::new(SqliteApprovals {
                db: SideDb::open(path, side_schema::APPROVALS, "approvals table")?,
            }),
        })
    }

    /// The store over another backend.
    pub fn with_backend(backend: Box<dyn ApprovalBackend>) -> Self {
        ApprovalStore { backend }
    }

    /// Files a request (idempotent for the same run and call).
    pub fn request(&self, r: &ApprovalRequest) -> Result<(), LedgerError> {
        self.backend.insert(r)
    }

    /// Requests still waiting for a decision, oldest first.
    pub fn pending(&self) -> Result<Vec<ApprovalRequest>, LedgerError> {
        self.backend.pending()
    }

    /// Files in `to` the requests still waiting here that `to` has neither waiting nor
    /// decided; how many. (A decided request needs no copy: its decision is in the run's
    /// chain once the run takes it up.)
    pub(crate) fn copy_pending_into(&self, to: &ApprovalStore) -> Result<u64, LedgerError> {
        let waiting: std::collections::HashSet<(String, String)> = to
            .backend
            .pending()?
            .into_iter()
            .map(|r| (r.run_id, r.call_id))
            .collect();
        let mut added = 0;
        for request in self.backend.pending()? {
            let key = (request.run_id.clone(), request.call_id.clone());
            if waiting.contains(&key) || to.backend.decision(&key.0, &key.1)?.is_some() {
                continue;
            }
            to.backend.insert(&request)?;
            added += 1;
        }
        Ok(added)
    }

    /// Decides the pending request of `run_id` (the given call, or the only pending one).
    /// Returns the call decided. Fails when nothing is pending or the call was already decided.
    pub fn decide(
        &self,
        run_id: &str,
        call_id: Option<&str>,
        approved: bool,
        by: &str,
        reason: &str,
    ) -> Result<String, ApprovalError> {
        let pending: Vec<String> = self
            .pending()?
            .into_iter()
            .filter(|r| r.run_id == run_id && call_id.is_none_or(|c| c == r.call_id))
            .map(|r| r.call_id)
            .collect();
        let call = match (pending.as_slice(), call_id) {
            ([only], _) => only.clone(),
            ([], Some(call)) => {
                return Err(ApprovalError::NotPending {
                    run_id: run_id.into(),
                    call_id: call.into(),
                });
            }
            ([], None) => {
                return Err(ApprovalError::NothingPending {
                    run_id: run_id.into(),
                });
            }
            (many, _) => {
                return Err(ApprovalError::Ambiguous {
                    run_id: run_id.into(),
                    calls: many.to_vec(),
                });
            }
        };
        let decision = Decision {
            approved,
            by: by.into(),
            reason: reason.into(),
            decided_at: crate::now_rfc3339(),
        };
        if !self.backend.decide_once(run_id, &call, &decision)? {
            return Err(ApprovalError::NotPending {
                run_id: run_id.into(),
                call_id: call,
            });
        }
        Ok(call)
    }

    /// The decision on a request, if one was made.
    pub fn decision(&self, run_id: &str, call_id: &str) -> Result<Option<Decision>, LedgerError> {
        self.backend.decision(run_id, call_id)
    }
}

/// `expires_at_ms` as both databases store it (a signed 64-bit integer).
pub(crate) fn expiry_to_sql(ms: Option<u64>) -> Option<i64> {
    ms.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

pub(crate) fn expiry_from_sql(ms: Option<i64>) -> Option<u64> {
    ms.map(|ms| ms.max(0) as u64)
}

struct SqliteApprovals {
    db: SideDb,
}

impl ApprovalBackend for SqliteApprovals {
    fn insert(&self, r: &ApprovalRequest) -> Result<(), LedgerError> {
        self.db
            .execute(
                "filing an approval request",
                "INSERT OR IGNORE INTO approvals (run_id, call_id, tool, arguments, reason, requested_at, expires_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![r.run_id, r.call_id, r.tool, r.arguments, r.reason, r.requested_at, expiry_to_sql(r.expires_at_ms)],
            )
            .map(drop)
    }

    fn pending(&self) -> Result<Vec<ApprovalRequest>, LedgerError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT run_id, call_id, tool, arguments, reason, requested_at, expires_at_ms FROM approvals
                 WHERE approved IS NULL ORDER BY requested_at, rowid",
            )
            .map_err(|e| self.db.err("listing approvals", e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok(ApprovalRequest {
                    run_id: row.get(0)?,
                    call_id: row.get(1)?,
                    tool: row.get(2)?,
                    arguments: row.get(3)?,
                    reason: row.get(4)?,
                    requested_at: row.get(5)?,
                    expires_at_ms: expiry_from_sql(row.get(6)?),
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db.err("listing approvals", e))?;
        Ok(rows)
    }

    fn decide_once(&self, run_id: &str, call_id: &str, d: &Decision) -> Result<bool, LedgerError> {
        self.db
            .execute(
                "recording a decision",
                "UPDATE approvals SET approved = ?1, decided_by = ?2, decision_reason = ?3, decided_at = ?4
                 WHERE run_id = ?5 AND call_id = ?6 AND approved IS NULL",
                params![d.approved, d.by, d.reason, d.decided_at, run_id, call_id],
            )
            .map(|changed| changed > 0)
    }

    fn decision(&self, run_id: &str, call_id: &str) -> Result<Option<Decision>, LedgerError> {
        self.db.query_row(
            "reading a decision",
            "SELECT approved, decided_by, decision_reason, decided_at FROM approvals
             WHERE run_id = ?1 AND call_id = ?2 AND approved IS NOT NULL",
            params![run_id, call_id],
            |row| {
                Ok(Decision {
                    approved: row.get(0)?,
                    by: row.get(1)?,
                    reason: row.get(2)?,
                    decided_at: row.get(3)?,
                })
            },
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("run {run_id} has no pending approval")]
    NothingPending { run_id: String },
    #[error(
        "run {run_id} has no pending approval for call `{call_id}` (already decided, or never requested)"
    )]
    NotPending { run_id: String, call_id: String },
    #[error("run {run_id} has several pending approvals ({}); name one", calls.join(", "))]
    Ambiguous { run_id: String, calls: Vec<String> },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(run: &str, call: &str) -> ApprovalRequest {
        ApprovalRequest {
            run_id: run.into(),
            call_id: call.into(),
            tool: "fs_write".into(),
            arguments: "{}".into(),
            reason: "writes need approval".into(),
            requested_at: crate::now_rfc3339(),
            expires_at_ms: None,
        }
    }

    #[test]
    fn request_decide_and_read_back_across_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let runner = ApprovalStore::open(&path).unwrap();
        let operator = ApprovalStore::open(&path).unwrap();
        runner.request(&request("r1", "c1")).unwrap();
        runner.request(&request("r1", "c1")).unwrap(); // idempotent
        assert_eq!(operator.pending().unwrap().len(), 1);
        assert!(runner.decision("r1", "c1").unwrap().is_none());
        assert!(matches!(
            operator.decide("r2", None, true, "op", ""),
            Err(ApprovalError::NothingPending { .. })
        ));
        assert_eq!(
            operator
                .decide("r1", None, false, "alice", "too risky")
                .unwrap(),
            "c1"
        );
        let d = runner.decision("r1", "c1").unwrap().unwrap();
        assert_eq!(
            (d.approved, d.by.as_str(), d.reason.as_str()),
            (false, "alice", "too risky")
        );
        assert!(operator.pending().unwrap().is_empty());
        // A decision is final.
        assert!(matches!(
            operator.decide("r1", Some("c1"), true, "bob", ""),
            Err(ApprovalError::NotPending { .. })
        ));
    }

    #[test]
    fn several_pending_need_a_call_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = ApprovalStore::open(&dir.path().join("l.db")).unwrap();
        store.request(&request("r", "a")).unwrap();
        store.request(&request("r", "b")).unwrap();
        assert!(matches!(
            store.decide("r", None, true, "op", ""),
            Err(ApprovalError::Ambiguous { .. })
        ));
        assert_eq!(store.decide("r", Some("b"), true, "op", "").unwrap(), "b");
    }
}
