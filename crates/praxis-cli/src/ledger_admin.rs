//! `praxis ledger migrate` and `praxis ledger copy`: the ledger's schema and moving a data
//! dir's SQLite ledger into PostgreSQL. Presentation only; the work is in praxis-ledger.

use anyhow::{Result, bail};
use praxis_ledger::{PostgresLedger, is_postgres_url, redact_url};
use praxis_runtime::DataHome;
use praxis_runtime::stores::CopyDirection;
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
            let ledger = home.open_sqlite_ledger()?;
            let health = ledger.check_health()?;
            println!(
                "SQLite ledger {}: schema version {}",
                health.path, health.schema_version
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `praxis ledger copy --to URL | --from URL`; the work is `praxis_runtime::stores::copy`.
pub async fn copy(home: &DataHome, to: Option<String>, from: Option<String>) -> Result<ExitCode> {
    let direction = match (to, from) {
        (Some(url), None) => CopyDirection::ToPostgres(postgres_url("--to", url)?),
        (None, Some(url)) => CopyDirection::FromPostgres(postgres_url("--from", url)?),
        _ => bail!("give one of --to URL or --from URL"),
    };
    let copied = praxis_runtime::stores::copy(home, &direction).await?;
    let r = &copied.report;
    println!(
        "copied {} to {}: {} runs ({} already there), {} entries, {} blobs, {} tokens, {} run owners, {} waiting approvals; every copied chain verifies",
        copied.from,
        copied.to,
        r.runs,
        r.runs_already_there,
        r.entries,
        r.blobs,
        r.tokens,
        r.run_owners,
        r.pending_approvals
    );
    Ok(ExitCode::SUCCESS)
}

fn postgres_url(flag: &str, url: String) -> Result<String> {
    if !is_postgres_url(&url) {
        bail!(
            "{flag} {:?}: expected a postgres:// or postgresql:// URL",
            redact_url(&url)
        );
    }
    Ok(url)
}
