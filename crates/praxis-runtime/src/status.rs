//! A run's status, derived from the ledger alone (the ledger is the truth).

use praxis_core::RunStatus;
use praxis_ledger::RunRow;
use serde::Serialize;
use serde_json::Value;

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
    let spec = &row.started["spec"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let finished = row.finished.as_ref();
    let status = match finished {
        Some(f) => serde_json::from_value(f["status"].clone()).unwrap_or(RunStatus::Failed),
        // A run taken over by a new driver (crash recovery) lives as long as that driver.
        None if driver_alive(
            row.resumed
                .as_ref()
                .map_or(&row.started["environment"], |r| &r["environment"]),
        ) =>
        {
            // A run resumed while it waited for a decision asks for it again without a new
            // `approval_requested` entry.
            let resumed_waiting = row.last_kind == praxis_ledger::RUN_RESUMED_KIND
                && row
                    .resumed
                    .as_ref()
                    .is_some_and(|r| r["waiting_for"] == "approval");
            if row.last_kind == "approval_requested" || resumed_waiting {
                RunStatus::AwaitingApproval
            } else {
                RunStatus::Running
            }
        }
        None => RunStatus::Interrupted,
    };
    RunOverview {
        run_id: row.run_id.clone(),
        status,
        started_at: row.started_at.clone(),
        task: text(&spec["task"]).unwrap_or_default(),
        workspace: text(&spec["workspace"]).unwrap_or_default(),
        provider: text(&spec["provider"]).unwrap_or_default(),
        stop_reason: finished.and_then(|f| text(&f["stop_reason"])),
        final_answer: finished.and_then(|f| text(&f["final_answer"])),
        error: finished.and_then(|f| text(&f["error"])),
        steps: finished.and_then(|f| f["steps"].as_u64()).unwrap_or(0),
        last_seq: row.last_seq,
    }
}

/// Whether the process that drives an unfinished run still exists on this host. A run
/// without a `run_finished` entry whose driver is gone was interrupted (crash, kill).
fn driver_alive(environment: &Value) -> bool {
    let same_host = environment["host"].as_str() == Some(crate::host::hostname().as_str());
    let Some(pid) = environment["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
    else {
        return false;
    };
    // A pid can be reused: the process start time (since boot) and the boot id tell a
    // live driver from an unrelated process that got the same pid later.
    let boot_matches = environment["boot_id"].as_str() == crate::host::boot_id().as_deref();
    let started = environment["pid_start_ticks"].as_u64();
    same_host
        && boot_matches
        && started.is_some()
        && crate::host::process_start_ticks(pid) == started
}
