//! A run's status, derived from the ledger alone (the ledger is the truth).

use praxis_core::record::{DriverProcess, RunFinished, RunResumed, RunStarted, WaitingFor, kinds};
use praxis_core::{RunSpec, RunStatus};
use praxis_ledger::RunRow;
use serde::{Deserialize, Serialize};

/// One run as lists and `show` present it.
#[derive(Clone, Debug, Serialize)]
pub struct RunOverview {
    pub run_id: String,
    pub status: RunStatus,
    pub started_at: String,
    pub task: String,
    pub workspace: String,
    pub provider: String,
    pub stop_reason: Option<String>,
    pub final_answer: Option<String>,
    pub error: Option<String>,
    pub steps: u64,
    pub last_seq: u64,
}

pub fn overview(row: &RunRow) -> RunOverview {
    // A payload that does not parse leaves its fields empty: a list shows what it can.
    let started = RunStarted::deserialize(&row.started).ok();
    let finished = row
        .finished
        .as_ref()
        .and_then(|f| RunFinished::deserialize(f).ok());
    let resumed = row
        .resumed
        .as_ref()
        .and_then(|r| RunResumed::deserialize(r).ok());
    let status = match &finished {
        Some(f) => f.status,
        // A run taken over by a new driver (crash recovery) lives as long as that driver.
        None if driver_alive(
            &row.run_id,
            &match (&resumed, &started) {
                (Some(r), _) => r.driver(),
                (None, Some(s)) => s.driver(),
                (None, None) => DriverProcess::default(),
            },
        ) =>
        {
            // A run resumed while it waited for a decision asks for it again without a new
            // `approval_requested` entry.
            let resumed_waiting = row.last_kind == kinds::RUN_RESUMED
                && resumed
                    .as_ref()
                    .is_some_and(|r| r.waiting_for == WaitingFor::Approval);
            if row.last_kind == kinds::APPROVAL_REQUESTED || resumed_waiting {
                RunStatus::AwaitingApproval
            } else {
                RunStatus::Running
            }
        }
        None => RunStatus::Interrupted,
    };
    let spec = started.map(|s| s.spec);
    let spec_text = |f: fn(&RunSpec) -> &String| spec.as_ref().map(f).cloned().unwrap_or_default();
    RunOverview {
        run_id: row.run_id.clone(),
        status,
        started_at: row.started_at.clone(),
        task: spec_text(|s| &s.task),
        workspace: spec_text(|s| &s.workspace),
        provider: spec_text(|s| &s.provider),
        stop_reason: finished
            .as_ref()
            .map(|f| f.stop_reason.as_str().to_string()),
        final_answer: finished.as_ref().and_then(|f| f.final_answer.clone()),
        error: finished.as_ref().and_then(|f| f.error.clone()),
        steps: finished.as_ref().map_or(0, |f| u64::from(f.steps)),
        last_seq: row.last_seq,
    }
}

/// Whether the process that drives an unfinished run still exists on this host. A run
/// without a `run_finished` entry whose driver is gone was interrupted (crash, kill).
fn driver_alive(run_id: &str, driver: &DriverProcess) -> bool {
    let this = crate::host::this_process();
    let same_host = driver.host.as_deref() == Some(this.host.as_str());
    let Some(pid) = driver.pid.and_then(|p| i32::try_from(p).ok()) else {
        return false;
    };
    // A pid can be reused: the process start time (since boot) and the boot id tell a
    // live driver from an unrelated process that got the same pid later.
    let boot_matches = driver.boot_id == this.boot_id;
    let started = driver.pid_start_ticks;
    let own = u32::try_from(pid).ok() == Some(this.pid);
    let alive = same_host
        && boot_matches
        && started.is_some()
        && if own {
            this.start_ticks == started
        } else {
            crate::host::process_start_ticks(pid) == started
        };
    // This process drives the run only while its drive lives (a dropped run future is
    // gone as surely as a dead process).
    if alive && own {
        return crate::live::is_driving(run_id);
    }
    alive
}
