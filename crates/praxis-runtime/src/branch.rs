//! Branching: where a run can be continued from, and its world materialised as a new
//! workspace. The driver ([`crate::Runtime::branch`]) restores the kernel and goes on live.

use crate::driver::RuntimeError;
use crate::recorded;
use crate::world::{WorldError, world_at};
use praxis_core::kernel::kinds;
use praxis_ledger::{Entry, Ledger};
use serde::Serialize;
use std::path::{Component, Path, PathBuf};

/// Which run to branch, where, and into which directory.
#[derive(Clone, Debug)]
pub struct BranchFrom {
    pub run_id: String,
    /// The last entry of the origin's history the branch keeps (rounded down to a point where
    /// the run waited for the model).
    pub at: u64,
    /// The new workspace: created, or an existing empty directory.
    pub workspace: PathBuf,
    /// An extra instruction for the model (e.g. a different approach to take).
    pub note: Option<String>,
    /// The branch's step limit (default: the origin's); steps of the history count.
    pub max_steps: Option<u32>,
}

/// Where a branch actually starts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BranchPoint {
    /// The last origin entry in the branch's history.
    pub seq: u64,
    /// Files of the origin's world whose content was not recorded (skipped at capture), so
    /// they are missing from the branch's workspace.
    pub missing: Vec<String>,
}

/// The branch point for `from.at` in the origin's ledger (see [`branch_seq`]).
pub(crate) fn branch_point(
    ledger: &dyn Ledger,
    from: &BranchFrom,
) -> Result<BranchPoint, RuntimeError> {
    let entries = recorded::load(ledger, &from.run_id).map_err(crate::replay::ReplayError::from)?;
    let seq = branch_seq(&entries, from.at).map_err(|why| RuntimeError::Branch {
        run_id: from.run_id.clone(),
        at: from.at,
        why,
    })?;
    Ok(BranchPoint {
        seq,
        missing: Vec::new(),
    })
}

/// Where a branch of a run with these `entries` at `at` starts: the last entry before the
/// latest model reply (or model error) at or before `at + 1`, i.e. a point where the run
/// waited for the model (a kernel step's batch of entries cannot be split). A run that ran
/// out of entries while waiting for the model can also branch from its end. The error says
/// why `at` cannot be a branch point.
pub fn branch_seq(entries: &[Entry], at: u64) -> Result<u64, String> {
    let last = entries.last().map_or(0, |e| e.seq);
    if at == 0 || at > last {
        return Err(format!("the run's entries are seq 1 to {last}"));
    }
    let answers: Vec<u64> = entries
        .iter()
        .filter(|e| e.kind == kinds::MODEL_RESPONSE || e.kind == kinds::MODEL_ERROR)
        .map(|e| e.seq)
        .collect();
    let finished = entries.iter().any(|e| e.kind == kinds::RUN_FINISHED);
    let waits_at_end = !finished
        && entries
            .iter()
            .rev()
            .find(|e| e.kind != praxis_ledger::checkpoint::CHECKPOINT_KIND)
            .is_some_and(|e| !answers.contains(&e.seq) && e.kind != kinds::PROPOSAL);
    if waits_at_end && at >= last {
        return Ok(last);
    }
    match answers.iter().rev().find(|&&seq| seq <= at + 1) {
        Some(&answer) => Ok(answer - 1),
        None => Err(format!(
            "a branch starts where the run waited for the model; the earliest such point is \
             seq {}",
            answers.first().map_or(last, |s| s - 1)
        )),
    }
}

/// Writes the origin's world as of entry `seq` into `dir` (created if missing; must be empty).
/// Returns the files whose content the ledger does not hold.
pub(crate) fn materialise(
    ledger: &dyn Ledger,
    from: &BranchFrom,
    seq: u64,
    dir: &Path,
) -> Result<Vec<String>, RuntimeError> {
    let error = |why: String| RuntimeError::Branch {
        run_id: from.run_id.clone(),
        at: from.at,
        why,
    };
    let io = |path: &Path, e: std::io::Error| error(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    if std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .next()
        .is_some()
    {
        return Err(error(format!(
            "the branch workspace {} is not empty",
            dir.display()
        )));
    }
    let world = world_at(ledger, &from.run_id, Some(seq)).map_err(|e| error(e.to_string()))?;
    let mut missing = Vec::new();
    for path in world.files().keys() {
        // Recorded paths are workspace-relative; anything else is refused, not written.
        let relative = Path::new(path);
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(error(format!(
                "recorded path `{path}` is not workspace-relative"
            )));
        }
        match world.content(ledger, path) {
            Ok(Some(bytes)) => {
                let target = dir.join(relative);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                }
                std::fs::write(&target, bytes).map_err(|e| io(&target, e))?;
            }
            Ok(None) => {}
            Err(WorldError::ContentUnknown { .. }) => missing.push(path.clone()),
            Err(e) => return Err(error(e.to_string())),
        }
    }
    Ok(missing)
}
