//! Backends for the shared ledger suite: each test runs against a fresh SQLite file and,
//! when `PRAXIS_TEST_POSTGRES_URL` names a PostgreSQL server (an admin URL: the suite
//! creates and drops one database per test), a fresh PostgreSQL database. `.ci/postgres`
//! runs the suite with `--include-ignored`, where `postgres_backend_is_present` fails
//! loudly if the URL is missing, so PostgreSQL cannot be skipped silently in CI.

#![allow(dead_code)]

use praxis_ledger::{
    Entry, GENESIS_HASH, Ledger, LedgerError, LedgerStats, NewEntry, PostgresLedger, SqliteLedger,
    WriterPause, now_rfc3339,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use tempfile::TempDir;

pub const POSTGRES_URL_VAR: &str = "PRAXIS_TEST_POSTGRES_URL";

pub fn entry(kind: &str, payload: Value) -> NewEntry {
    NewEntry {
        kind: kind.into(),
        payload,
        at: now_rfc3339(),
    }
}

pub fn notes(from: u64, n: u64) -> Vec<NewEntry> {
    (from..from + n)
        .map(|i| entry("note", json!({ "i": i })))
        .collect()
}

pub fn assert_chained(entries: &[Entry], run_id: &str, n: u64) {
    assert_eq!(entries.len() as u64, n);
    let mut prev = GENESIS_HASH.to_string();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.run_id, run_id);
        assert_eq!(e.seq, i as u64 + 1);
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.hash, e.computed_hash());
        prev = e.hash.clone();
    }
}

/// What the suite needs of a store beyond the trait.
pub trait Store: Ledger {
    fn stats(&self) -> LedgerStats;
    fn pause_writer(&self) -> WriterPause;
    fn append_now(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Vec<Entry>, LedgerError>;
}

impl Store for SqliteLedger {
    fn stats(&self) -> LedgerStats {
        SqliteLedger::stats(self)
    }
    fn pause_writer(&self) -> WriterPause {
        SqliteLedger::pause_writer(self)
    }
    fn append_now(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.append_blocking(run_id, entries, blobs)
    }
}

impl Store for PostgresLedger {
    fn stats(&self) -> LedgerStats {
        PostgresLedger::stats(self)
    }
    fn pause_writer(&self) -> WriterPause {
        PostgresLedger::pause_writer(self)
    }
    fn append_now(
        &self,
        run_id: &str,
        entries: Vec<NewEntry>,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.append_blocking(run_id, entries, blobs)
    }
}

/// One empty store of one backend; handles opened on it share its contents.
pub enum Backend {
    Sqlite { _dir: TempDir, path: PathBuf },
    Postgres { admin: String, db: String },
}

impl Backend {
    /// A fresh store of every backend this machine offers.
    pub fn all() -> Vec<Backend> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/ledger.db");
        let mut all = vec![Backend::Sqlite { _dir: dir, path }];
        match std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(admin) => all.push(Backend::postgres(admin)),
            None => eprintln!(
                "{POSTGRES_URL_VAR} is not set: PostgreSQL skipped here (.ci/postgres runs it)"
            ),
        }
        all
    }

    /// A fresh PostgreSQL database, or None (with the reason printed) when
    /// `PRAXIS_TEST_POSTGRES_URL` is not set. Under `CI=true` a missing URL fails the test.
    pub fn postgres_only() -> Option<Backend> {
        match std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(admin) => Some(Backend::postgres(admin)),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!(
                    "CI=true but {POSTGRES_URL_VAR} is not set: PostgreSQL tests must run in CI (.ci/postgres)"
                )
            }
            None => {
                eprintln!("{POSTGRES_URL_VAR} is not set: skipped (.ci/postgres runs it)");
                None
            }
        }
    }

    fn postgres(admin: String) -> Backend {
        static N: AtomicU64 = AtomicU64::new(0);
        let db = format!(
            "praxis_t_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        pg_execute(&admin, &format!("CREATE DATABASE {db}")).unwrap();
        Backend::Postgres { admin, db }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// The URL of this store's database (PostgreSQL only).
    pub fn url(&self) -> String {
        match self {
            Backend::Postgres { admin, db } => with_database(admin, db),
            Backend::Sqlite { path, .. } => path.display().to_string(),
        }
    }

    pub fn open(&self) -> Box<dyn Store> {
        match self {
            Backend::Sqlite { path, .. } => Box::new(SqliteLedger::open(path).unwrap()),
            Backend::Postgres { .. } => Box::new(PostgresLedger::connect(&self.url()).unwrap()),
        }
    }

    /// Runs `sql` on a connection of its own, the append-only rules in force.
    pub fn execute(&self, sql: &str) -> Result<(), String> {
        match self {
            Backend::Sqlite { path, .. } => rusqlite::Connection::open(path)
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Backend::Postgres { .. } => pg_execute(&self.url(), sql),
        }
    }

    /// Runs `sql` with the append-only rules switched off, as someone with the database
    /// owner's rights (or the file) could.
    pub fn tamper(&self, sql: &str) {
        let off = match self {
            Backend::Sqlite { .. } => {
                "DROP TRIGGER entries_no_update; DROP TRIGGER entries_no_delete; DROP TRIGGER blobs_no_update;"
            }
            Backend::Postgres { .. } => {
                "ALTER TABLE entries DISABLE TRIGGER USER; ALTER TABLE blobs DISABLE TRIGGER USER;"
            }
        };
        self.execute(&format!("{off} {sql}")).unwrap();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres { admin, db } = self {
            let _ = pg_execute(admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

/// `url` with its database name replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

/// Runs `sql` (several statements allowed) on its own thread and runtime, so it works from
/// inside a test's runtime as well.
pub fn pg_execute(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client.batch_execute(&sql).await.map_err(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |db| db.message().to_string())
                })
            })
    })
    .join()
    .unwrap()
}
