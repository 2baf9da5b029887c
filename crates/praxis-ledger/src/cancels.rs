//! Cancel requests: a small table beside the ledger, in the same SQLite file, through which
//! `praxis cancel RUN` reaches the process driving a run locally (no server). The driving
//! process polls it, like the approvals table; the cancellation itself is recorded in the
//! run's chain by the driver (`run_finished`, status `cancelled`, with the reason).

use crate::LedgerError;
use crate::side_db::SideDb;
use crate::side_schema;
use rusqlite::params;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CancelRequest {
    pub run_id: String,
    pub reason: String,
    /// Who asked (user and process).
    pub by: String,
    pub requested_at: String,
}

/// Where cancel requests wait: the SQLite file beside the ledger, or PostgreSQL
/// ([`crate::PostgresLedger::cancels`]).
pub trait CancelBackend: Send + Sync {
    /// Files a request; `false` when one is already waiting for this run (the first stays).
    fn request(&self, r: &CancelRequest) -> Result<bool, LedgerError>;
    /// Removes and returns the request waiting for `run_id`, if any.
    fn take(&self, run_id: &str) -> Result<Option<CancelRequest>, LedgerError>;
}

pub struct CancelStore {
    backend: Box<dyn CancelBackend>,
}

impl CancelStore {
    /// Opens the cancel-request table in the ledger file at `path` (created if missing).
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        Ok(CancelStore {
            backend: Box::new(SqliteCancels {
                db: SideDb::open(path, side_schema::CANCELS, "cancel-request table")?,
            }),
        })
    }

    /// The store over another backend.
    pub fn with_backend(backend: Box<dyn CancelBackend>) -> Self {
        CancelStore { backend }
    }

    /// Files a request; `false` when one is already waiting for this run (the first stays).
    pub fn request(&self, r: &CancelRequest) -> Result<bool, LedgerError> {
        self.backend.request(r)
    }

    /// Removes and returns the request waiting for `run_id`, if any: each request is acted
    /// on once.
    pub fn take(&self, run_id: &str) -> Result<Option<CancelRequest>, LedgerError> {
        self.backend.take(run_id)
    }
}

struct SqliteCancels {
    db: SideDb,
}

impl CancelBackend for SqliteCancels {
    fn request(&self, r: &CancelRequest) -> Result<bool, LedgerError> {
        self.db
            .execute(
                "filing a cancel request",
                "INSERT OR IGNORE INTO cancel_requests (run_id, reason, requested_by, requested_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![r.run_id, r.reason, r.by, r.requested_at],
            )
            .map(|inserted| inserted > 0)
    }

    fn take(&self, run_id: &str) -> Result<Option<CancelRequest>, LedgerError> {
        self.db.query_row(
            "taking a cancel request",
            "DELETE FROM cancel_requests WHERE run_id = ?1
             RETURNING run_id, reason, requested_by, requested_at",
            params![run_id],
            |row| {
                Ok(CancelRequest {
                    run_id: row.get(0)?,
                    reason: row.get(1)?,
                    by: row.get(2)?,
                    requested_at: row.get(3)?,
                })
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_filed_once_and_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = CancelStore::open(&dir.path().join("ledger.db")).unwrap();
        let request = CancelRequest {
            run_id: "r1".into(),
            reason: "wrong task".into(),
            by: "ana (pid 7)".into(),
            requested_at: crate::now_rfc3339(),
        };
        assert!(store.request(&request).unwrap());
        assert!(!store.request(&request).unwrap());
        assert_eq!(store.take("r2").unwrap(), None);
        assert_eq!(store.take("r1").unwrap(), Some(request));
        assert_eq!(store.take("r1").unwrap(), None);
    }
}
