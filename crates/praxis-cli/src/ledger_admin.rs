//! `praxis ledger migrate` and `praxis ledger copy`: the ledger's schema and moving a data
//! dir's SQLite ledger into PostgreSQL. Presentation only; the work is in praxis-ledger.

use anyhow::{Context, Result, bail};
use praxis_ledger::{Ledger, PostgresLedger, SqliteLedger, is_postgres_url, redact_url};
use praxis_runtime::DataHome;
use std::process::ExitCode;

/// Brings the selected ledger's schema up to date (opening a store migrates it) and says
/// which version it has.
pub fn migrate(home: &DataHome) -> Result<ExitCode> {
    match home.ledger_url()? {
        Some(url) => {
            let ledger = praxis_runtime::home::open_postgres(&url)?;
            println!(
                "PostgreSQL ledger {}: schema version {} (this praxis knows {})",
                redact_url(&url),
                ledger.schema_version(),
                PostgresLedger::supported_schema_version()
            );
        }
        None => {
            let ledger = home.open_ledger()?;
            let health = ledger.check_health()?;
            println!(
                "SQLite ledger {}: schema version {}",
                health.path, health.schema_version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies the data dir's SQLite ledger (every run and blob) into the PostgreSQL database at
/// `to`; every copied chain is verified there.
pub async fn copy(home: &DataHome, to: &str) -> Result<ExitCode> {
    if !is_postgres_url(to) {
        bail!(
            "--to {:?}: expected a postgres:// or postgresql:// URL",
            redact_url(to)
        );
    }
    let path = home.ledger_path();
    if !path.exists() {
        bail!(
            "no SQLite ledger to copy: {} does not exist",
            path.display()
        );
    }
    let source = SqliteLedger::open_read_only(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let target = praxis_runtime::home::open_postgres(to)?;
    let report = praxis_ledger::copy::copy_all(&source, target.as_ref())
        .await
        .with_context(|| format!("copying {} to {}", path.display(), target.location()))?;
    println!(
        "copied {} to {}: {} runs ({} already there), {} entries, {} blobs; every copied chain verifies",
        path.display(),
        target.location(),
        report.runs,
        report.runs_already_there,
        report.entries,
        report.blobs
    );
    Ok(ExitCode::SUCCESS)
}
