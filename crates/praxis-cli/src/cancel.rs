//! `praxis cancel RUN` without a server: the request goes into the cancel-request table
//! beside the ledger, and the process driving the run (which polls it) stops the run; the
//! run ends `cancelled`, its `run_finished` saying why and who asked.

use anyhow::{Context, Result};
use praxis_core::RunStatus;
use praxis_ledger::Ledger;
use praxis_ledger::cancels::CancelRequest;
use praxis_runtime::{Cancel, DataHome};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How often a driving process looks for a request (as often as it looks for approvals).
const POLL: Duration = Duration::from_millis(200);
/// How long `praxis cancel` waits to see the run end before leaving it to the driver.
const WAIT: Duration = Duration::from_secs(30);

/// Fires `cancel` when a request for `run_id` appears. A request left over from an earlier
/// driver of the same run (one that died before acting on it) is discarded first.
pub(crate) fn watch_requests(home: &DataHome, run_id: String, cancel: Cancel) -> Result<()> {
    let store = home
        .cancel_store()
        .context("opening the cancel-request table")?;
    store.take(&run_id)?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        loop {
            tick.tick().await;
            match store.take(&run_id) {
                Ok(Some(request)) => {
                    cancel.cancel(format!("cancelled by {}: {}", request.by, request.reason));
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("praxis: cannot read cancel requests any more: {e}");
                    return;
                }
            }
        }
    });
    Ok(())
}

/// Asks the local process driving `run` to cancel it, and waits (bounded) to see it end.
pub(crate) async fn cancel_local(
    home: &DataHome,
    run: &str,
    reason: Option<&str>,
) -> Result<ExitCode> {
    // The writable table first: within one process, the first opener of the file decides
    // whether SQLite's shared index is writable.
    let store = home.cancel_store()?;
    let status = |ledger: &dyn Ledger, run_id: &str| -> Result<RunStatus> {
        let row = ledger
            .runs()?
            .into_iter()
            .find(|r| r.run_id == run_id)
            .context("run vanished while reading")?;
        Ok(praxis_runtime::overview(&row).status)
    };
    let ledger = crate::read_ledger(home)?;
    let run_id = ledger.find_run(run)?;
    match status(ledger.as_ref(), &run_id)? {
        RunStatus::Queued | RunStatus::Running | RunStatus::AwaitingApproval => {}
        RunStatus::Interrupted => {
            eprintln!(
                "praxis: run {run_id} is interrupted: the process that drove it is gone, so nothing is running to cancel (`praxis resume {run_id}` continues it)"
            );
            return Ok(ExitCode::FAILURE);
        }
        ended => {
            eprintln!(
                "praxis: run {run_id} already ended ({}); nothing to cancel",
                ended.as_str()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "an unknown user".into());
    let request = CancelRequest {
        run_id: run_id.clone(),
        reason: reason.unwrap_or("no reason given").to_string(),
        by: format!("{user} (praxis cancel, pid {})", std::process::id()),
        requested_at: praxis_ledger::now_rfc3339(),
    };
    if !store.request(&request)? {
        eprintln!("praxis: a cancel request for run {run_id} is already waiting");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let now = status(ledger.as_ref(), &run_id)?;
        match now {
            RunStatus::Queued | RunStatus::Running | RunStatus::AwaitingApproval => {}
            RunStatus::Interrupted => {
                eprintln!(
                    "praxis: run {run_id}: its driver went away before acting on the request"
                );
                return Ok(ExitCode::FAILURE);
            }
            ended => {
                println!("run {run_id} {}", ended.as_str());
                return Ok(if ended == RunStatus::Cancelled {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
        }
        if Instant::now() >= deadline {
            println!(
                "run {run_id}: cancellation requested; the process driving it stops it at its next check"
            );
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(POLL).await;
    }
}
