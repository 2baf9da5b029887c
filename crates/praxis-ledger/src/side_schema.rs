//! The side tables' shapes, written once in the SQL both backends accept (`TEXT`,
//! `BIGINT`, `CHECK`, `IF NOT EXISTS`): SQLite runs each on open, PostgreSQL's migration 2
//! runs them all. Queries stay per backend (placeholders and row ids differ); the tables
//! do not.

/// Pending approvals and their decisions (`approvals::ApprovalStore`).
pub(crate) const APPROVALS: &str = "CREATE TABLE IF NOT EXISTS approvals (
    run_id TEXT NOT NULL,
    call_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    arguments TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    expires_at_ms BIGINT,
    approved BIGINT,
    decided_by TEXT,
    decision_reason TEXT,
    decided_at TEXT,
    PRIMARY KEY (run_id, call_id)
);";

/// Cancel requests waiting for the process that drives the run (`cancels::CancelStore`).
pub(crate) const CANCELS: &str = "CREATE TABLE IF NOT EXISTS cancel_requests (
    run_id TEXT PRIMARY KEY NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL
);";

/// API tokens (hashes only) and which tenant owns which run (`tokens::TokenStore`).
pub(crate) const TOKENS: &str = "CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256 TEXT PRIMARY KEY NOT NULL CHECK (length(token_sha256) = 64),
    tenant TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS run_tenants (
    run_id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL
);";

/// Runs a server accepted (answered 201) with the request that creates them, until they
/// end (`tokens::TokenStore::accept_run`): a server killed before a run's first entry starts
/// it at its next start.
pub(crate) const ACCEPTED: &str = "CREATE TABLE IF NOT EXISTS accepted_runs (
    run_id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    request TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);";
