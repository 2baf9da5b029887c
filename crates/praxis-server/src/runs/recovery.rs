//! Crash recovery at start: accepted runs with no entry, and interrupted runs.

use super::*;

/// Crash recovery, run at start: the runs accepted (answered 201) whose server died before
/// their first entry, to start again; accepted runs that have entries are forgotten (the
/// interrupted-run recovery takes those).
pub(crate) fn accepted_never_started(manager: &Manager) -> Result<Vec<AcceptedRun>, LedgerError> {
    let recorded: std::collections::HashSet<String> = manager
        .ledger
        .runs()?
        .into_iter()
        .map(|row| row.run_id)
        .collect();
    let mut waiting = Vec::new();
    for run in manager.tokens.accepted_runs()? {
        if recorded.contains(&run.run_id) {
            manager.tokens.forget_accepted(&run.run_id)?;
        } else {
            waiting.push(run);
        }
    }
    Ok(waiting)
}

/// Crash recovery, run at start: every run without `run_finished` whose driver is gone.
/// Each goes through [`recover_run`].
pub(crate) fn interrupted_runs(
    manager: &Manager,
) -> Result<Vec<praxis_ledger::RunRow>, praxis_ledger::LedgerError> {
    Ok(manager
        .ledger
        .runs()?
        .into_iter()
        .filter(|row| {
            row.finished.is_none() && praxis_runtime::overview(row).status == RunStatus::Interrupted
        })
        .collect())
}

/// What crash recovery does with one interrupted run: runs this server started are
/// resumed when their cognition can be rebuilt from the record (`resume` says how: None
/// when it cannot, e.g. scripts are not recorded); the rest stay `interrupted`, with a note
/// saying how to resume them. Resuming never re-runs an in-flight tool silently: the
/// runtime asks the approver for anything but a read.
pub(crate) fn recover_run(
    manager: &Arc<Manager>,
    row: &praxis_ledger::RunRow,
    resume: &dyn Fn(&praxis_core::RunSpec) -> Option<RunOptions>,
) -> String {
    let run_id = &row.run_id;
    let note = match manager.tokens.run_tenant(run_id) {
        Ok(Some(tenant)) => {
            let started = parse_payload::<RunStarted>(kinds::RUN_STARTED, &row.started);
            match started.ok().and_then(|started| resume(&started.spec)) {
                Some(options) => match manager.admit(
                    run_id.clone(),
                    tenant,
                    options,
                    Job::Resume,
                    Owner::Kept,
                    true,
                )
                {
                    Ok(_) => "resumed after a server restart".to_string(),
                    Err(e) => format!("interrupted; resuming failed: {e}"),
                },
                None => "interrupted: its cognition is not recorded (a script); resume it with POST /v1/runs/{id}/resume and the script".to_string(),
            }
        }
        Ok(None) => "interrupted: it was not started by this server; resume it with POST /v1/runs/{id}/resume or `praxis resume`".to_string(),
        Err(e) => format!("interrupted; its tenant could not be read: {e}"),
    };
    eprintln!("praxis serve: run {run_id}: {note}");
    manager.note_recovered(run_id, note.clone());
    note
}
