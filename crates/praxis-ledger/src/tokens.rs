//! API tokens and run ownership for the HTTP server: two small tables beside the ledger, in
//! the same SQLite file (like `approvals`), so `praxis token create` in one process and a
//! running `praxis serve` in another agree without a restart.
//!
//! Only a SHA-256 of each token is stored: a copy of the data directory does not leak
//! usable credentials. Which tenant started which run is recorded here too (the hash chain
//! stays about what happened, not about who may read it).

use crate::LedgerError;
use crate::side_db::SideDb;
use crate::side_schema;
use rusqlite::params;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// Every new token starts with this, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "prx_";
/// Longest tenant name accepted.
pub const MAX_TENANT_LEN: usize = 64;

/// A token as listed (never the token itself: only its hash is kept).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// The first 12 hex digits of the token's SHA-256: enough to name it.
    pub id: String,
    pub tenant: String,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "invalid tenant name {tenant:?}: use 1 to {MAX_TENANT_LEN} letters, digits, `-`, `_` or `.`"
    )]
    InvalidTenant { tenant: String },
    #[error("cannot generate a random token: {0}")]
    Random(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Lowercase hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `tenant` is an acceptable tenant name.
pub fn valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Where token hashes and run owners are kept: the SQLite file beside the ledger, or
/// PostgreSQL ([`crate::PostgresLedger::tokens`]). [`TokenStore`] holds the rules.
pub trait TokenBackend: Send + Sync {
    fn insert_token(&self, hash: &str, tenant: &str, created_at: &str) -> Result<(), LedgerError>;
    fn tenant_for_hash(&self, hash: &str) -> Result<Option<String>, LedgerError>;
    fn any(&self) -> Result<bool, LedgerError>;
    /// `(hash, tenant, created_at)` of every token, oldest first.
    fn tokens(&self) -> Result<Vec<(String, String, String)>, LedgerError>;
    /// Deletes every token whose hash starts with `prefix` (lowercase hex); how many.
    fn revoke_prefix(&self, prefix: &str) -> Result<usize, LedgerError>;
    fn set_run_tenant(&self, run_id: &str, tenant: &str) -> Result<(), LedgerError>;
    fn run_tenant(&self, run_id: &str) -> Result<Option<String>, LedgerError>;
    fn run_tenants(&self) -> Result<HashMap<String, String>, LedgerError>;
    /// Records `run`'s owner and its accepted request, in one transaction.
    fn accept_run(&self, run: &AcceptedRun) -> Result<(), LedgerError>;
    /// Every accepted run not forgotten yet, oldest first.
    fn accepted_runs(&self) -> Result<Vec<AcceptedRun>, LedgerError>;
    fn forget_accepted(&self, run_id: &str) -> Result<(), LedgerError>;
}

/// A run a server accepted: its owner and the request that creates it (the server's own
/// JSON), kept until the run ends so that a server killed before the run's first entry
/// can start it when it comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedRun {
    pub run_id: String,
    pub tenant: String,
    pub request: String,
    pub accepted_at: String,
}

pub struct TokenStore {
    backend: Box<dyn TokenBackend>,
}

impl TokenStore {
    /// Opens the token tables in the ledger file at `path` (created if missing).
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        Ok(TokenStore {
            backend: Box::new(SqliteTokens {
                db: SideDb::open(
                    path,
                    &[side_schema::TOKENS, side_schema::ACCEPTED].join("\n"),
                    "token tables",
                )?,
            }),
        })
    }

    /// The store over another backend.
    pub fn with_backend(backend: Box<dyn TokenBackend>) -> Self {
        TokenStore { backend }
    }

    /// Creates a token for `tenant` and returns it; this is the only time it is seen.
    pub fn create(&self, tenant: &str) -> Result<String, TokenError> {
        if !valid_tenant(tenant) {
            return Err(TokenError::InvalidTenant {
                tenant: tenant.into(),
            });
        }
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        self.backend
            .insert_token(&token_hash(&token), tenant, &crate::now_rfc3339())?;
        Ok(token)
    }

    /// The tenant a token belongs to, or None for an unknown token.
    pub fn tenant_for(&self, token: &str) -> Result<Option<String>, LedgerError> {
        self.backend.tenant_for_hash(&token_hash(token))
    }

    /// Whether any token exists (the server turns authentication on when one does).
    pub fn any(&self) -> Result<bool, LedgerError> {
        self.backend.any()
    }

    pub fn list(&self) -> Result<Vec<TokenInfo>, LedgerError> {
        Ok(self
            .backend
            .tokens()?
            .into_iter()
            .map(|(hash, tenant, created_at)| TokenInfo {
                id: hash.chars().take(12).collect(),
                tenant,
                created_at,
            })
            .collect())
    }

    /// Revokes every token whose id (hash prefix, at least 8 hex digits) matches; returns
    /// how many were revoked.
    pub fn revoke(&self, id: &str) -> Result<usize, LedgerError> {
        if id.len() < 8 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(0);
        }
        self.backend.revoke_prefix(&id.to_ascii_lowercase())
    }

    /// Records that `tenant` owns `run_id` (before the run's first entry is written).
    pub fn set_run_tenant(&self, run_id: &str, tenant: &str) -> Result<(), LedgerError> {
        self.backend.set_run_tenant(run_id, tenant)
    }

    pub fn run_tenant(&self, run_id: &str) -> Result<Option<String>, LedgerError> {
        self.backend.run_tenant(run_id)
    }

    /// Every recorded run owner, by run id.
    pub fn run_tenants(&self) -> Result<HashMap<String, String>, LedgerError> {
        self.backend.run_tenants()
    }

    /// Records that `tenant` owns `run_id` and what creates it, durably, before the server
    /// answers 201 (one commit for both).
    pub fn accept_run(&self, run_id: &str, tenant: &str, request: &str) -> Result<(), LedgerError> {
        self.backend.accept_run(&AcceptedRun {
            run_id: run_id.into(),
            tenant: tenant.into(),
            request: request.into(),
            accepted_at: crate::now_rfc3339(),
        })
    }

    /// The accepted runs not forgotten yet (see [`AcceptedRun`]), oldest first.
    pub fn accepted_runs(&self) -> Result<Vec<AcceptedRun>, LedgerError> {
        self.backend.accepted_runs()
    }

    /// The run has entries of its own (or ended): its request is no longer needed.
    pub fn forget_accepted(&self, run_id: &str) -> Result<(), LedgerError> {
        self.backend.forget_accepted(run_id)
    }

    /// Adds what `to` lacks of this store's tokens (by hash, with their tenant and creation
    /// time) and run owners; `(tokens, run owners)` added. A token or run `to` holds for
    /// another tenant is refused, not overwritten.
    pub(crate) fn copy_into(&self, to: &TokenStore) -> Result<(u64, u64), crate::copy::CopyError> {
        use crate::copy::CopyError;
        let mut tokens = 0;
        for (hash, tenant, created_at) in self.backend.tokens()? {
            match to.backend.tenant_for_hash(&hash)? {
                Some(theirs) if theirs == tenant => {}
                Some(theirs) => {
                    return Err(CopyError::SideDiverged {
                        what: format!("token {}", &hash[..hash.len().min(12)]),
                        ours: tenant,
                        theirs,
                    });
                }
                None => {
                    to.backend.insert_token(&hash, &tenant, &created_at)?;
                    tokens += 1;
                }
            }
        }
        let mut owners = 0;
        let mut runs: Vec<(String, String)> = self.backend.run_tenants()?.into_iter().collect();
        runs.sort();
        for (run_id, tenant) in runs {
            match to.backend.run_tenant(&run_id)? {
                Some(theirs) if theirs == tenant => {}
                Some(theirs) => {
                    return Err(CopyError::SideDiverged {
                        what: format!("the owner of run {run_id}"),
                        ours: tenant,
                        theirs,
                    });
                }
                None => {
                    to.backend.set_run_tenant(&run_id, &tenant)?;
                    owners += 1;
                }
            }
        }
        Ok((tokens, owners))
    }
}

struct SqliteTokens {
    db: SideDb,
}

impl TokenBackend for SqliteTokens {
    fn insert_token(&self, hash: &str, tenant: &str, created_at: &str) -> Result<(), LedgerError> {
        self.db
            .execute(
                "storing a new API token",
                "INSERT INTO api_tokens (token_sha256, tenant, created_at) VALUES (?1, ?2, ?3)",
                params![hash, tenant, created_at],
            )
            .map(drop)
    }

    fn tenant_for_hash(&self, hash: &str) -> Result<Option<String>, LedgerError> {
        self.db.query_row(
            "looking up an API token",
            "SELECT tenant FROM api_tokens WHERE token_sha256 = ?1",
            params![hash],
            |row| row.get(0),
        )
    }

    fn any(&self) -> Result<bool, LedgerError> {
        self.db
            .query_row(
                "counting API tokens",
                "SELECT EXISTS (SELECT 1 FROM api_tokens)",
                [],
                |row| row.get(0),
            )
            .map(|any| any.unwrap_or(false))
    }

    fn tokens(&self) -> Result<Vec<(String, String, String)>, LedgerError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached("SELECT token_sha256, tenant, created_at FROM api_tokens ORDER BY created_at, rowid")
            .map_err(|e| self.db.err("listing API tokens", e))?;
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.db.err("listing API tokens", e))
    }

    fn revoke_prefix(&self, prefix: &str) -> Result<usize, LedgerError> {
        self.db.execute(
            "revoking an API token",
            "DELETE FROM api_tokens WHERE substr(token_sha256, 1, length(?1)) = ?1",
            params![prefix],
        )
    }

    fn set_run_tenant(&self, run_id: &str, tenant: &str) -> Result<(), LedgerError> {
        self.db
            .execute(
                "recording a run's tenant",
                "INSERT OR REPLACE INTO run_tenants (run_id, tenant) VALUES (?1, ?2)",
                params![run_id, tenant],
            )
            .map(drop)
    }

    fn run_tenant(&self, run_id: &str) -> Result<Option<String>, LedgerError> {
        self.db.query_row(
            "reading a run's tenant",
            "SELECT tenant FROM run_tenants WHERE run_id = ?1",
            params![run_id],
            |row| row.get(0),
        )
    }

    fn run_tenants(&self) -> Result<HashMap<String, String>, LedgerError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached("SELECT run_id, tenant FROM run_tenants")
            .map_err(|e| self.db.err("listing run tenants", e))?;
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
            .map_err(|e| self.db.err("listing run tenants", e))
    }

    fn accept_run(&self, run: &AcceptedRun) -> Result<(), LedgerError> {
        let mut conn = self.db.conn();
        let err = |e| self.db.err("recording an accepted run", e);
        let tx = conn.transaction().map_err(err)?;
        tx.prepare_cached("INSERT OR REPLACE INTO run_tenants (run_id, tenant) VALUES (?1, ?2)")
            .and_then(|mut stmt| stmt.execute(params![run.run_id, run.tenant]))
            .map_err(err)?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO accepted_runs (run_id, tenant, request, accepted_at)
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                run.run_id,
                run.tenant,
                run.request,
                run.accepted_at
            ])
        })
        .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn accepted_runs(&self) -> Result<Vec<AcceptedRun>, LedgerError> {
        let conn = self.db.conn();
        let err = |e| self.db.err("listing accepted runs", e);
        let mut stmt = conn
            .prepare(
                "SELECT run_id, tenant, request, accepted_at FROM accepted_runs
                 ORDER BY accepted_at, rowid",
            )
            .map_err(err)?;
        stmt.query_map([], |row| {
            Ok(AcceptedRun {
                run_id: row.get(0)?,
                tenant: row.get(1)?,
                request: row.get(2)?,
                accepted_at: row.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(err)
    }

    fn forget_accepted(&self, run_id: &str) -> Result<(), LedgerError> {
        self.db
            .execute(
                "forgetting an accepted run",
                "DELETE FROM accepted_runs WHERE run_id = ?1",
                params![run_id],
            )
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_tenants_across_connections_and_only_hashes_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let cli = TokenStore::open(&path).unwrap();
        let server = TokenStore::open(&path).unwrap();
        assert!(!server.any().unwrap());
        let a = cli.create("acme").unwrap();
        let b = cli.create("globex").unwrap();
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert!(server.any().unwrap());
        assert_eq!(server.tenant_for(&a).unwrap().as_deref(), Some("acme"));
        assert_eq!(server.tenant_for(&b).unwrap().as_deref(), Some("globex"));
        assert_eq!(server.tenant_for("prx_forged").unwrap(), None);
        assert_eq!(server.tenant_for("").unwrap(), None);
        // The file holds the hash, never the token.
        drop((cli, server));
        let bytes = std::fs::read(&path).unwrap();
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let wal = std::fs::read(&wal).unwrap_or_default();
        for hay in [&bytes, &wal] {
            let text = String::from_utf8_lossy(hay);
            assert!(!text.contains(&a[TOKEN_PREFIX.len()..]));
        }
        let store = TokenStore::open(&path).unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        let id = &token_hash(&a)[..12];
        assert_eq!(store.revoke(id).unwrap(), 1);
        assert_eq!(store.tenant_for(&a).unwrap(), None);
        assert_eq!(store.revoke("ab").unwrap(), 0, "too short to name a token");
    }

    #[test]
    fn bad_tenant_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("l.db")).unwrap();
        for bad in ["", "a b", "x/y", &"t".repeat(65)] {
            assert!(matches!(
                store.create(bad),
                Err(TokenError::InvalidTenant { .. })
            ));
        }
        assert!(!store.any().unwrap());
    }

    #[test]
    fn run_tenants_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(&dir.path().join("l.db")).unwrap();
        assert_eq!(store.run_tenant("r1").unwrap(), None);
        store.set_run_tenant("r1", "acme").unwrap();
        store.set_run_tenant("r2", "globex").unwrap();
        assert_eq!(store.run_tenant("r1").unwrap().as_deref(), Some("acme"));
        let all = store.run_tenants().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all["r2"], "globex");
    }
}
