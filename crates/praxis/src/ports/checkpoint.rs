//! The checkpointer port: where runs are recorded so that one stopped before its end (its
//! future dropped, its task aborted, its process killed) can be taken up again with
//! [`crate::Agent::resume`].
//!
//! Nothing is saved besides the ledger: every record is durable before the effect it
//! records, so the ledger *is* the checkpoint, and resuming follows the runtime's one set
//! of resume rules (`Runtime::resume`, the same as `praxis resume`): a model call that was
//! in flight is asked again, a read-only tool call that was in flight runs again, any other
//! interrupted call becomes an approval request.

use praxis_ledger::{Ledger, MemoryLedger};
use praxis_runtime::overview;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Keeps the ledgers runs are recorded in, for as long as they can be resumed.
pub trait Checkpointer: Send + Sync {
    /// The ledger new run `run_id` is recorded in.
    fn ledger_for(&self, run_id: &str) -> Arc<dyn Ledger>;
    /// The ledger run `run_id` was recorded in (None: this checkpointer does not have it).
    fn find(&self, run_id: &str) -> Option<Arc<dyn Ledger>>;
    /// Run `run_id` came to its end (completed, failed, cancelled): it cannot be resumed,
    /// its checkpoint may go.
    fn finished(&self, run_id: &str);
    /// The runs held here that stopped without finishing and whose driver is gone, oldest
    /// first: the ones [`crate::Agent::resume`] can take up.
    fn interrupted(&self) -> Vec<String>;
}

/// The runs of `ledger` that are interrupted (no `run_finished`, driver gone).
fn interrupted_in(ledger: &dyn Ledger) -> Vec<String> {
    ledger
        .runs()
        .unwrap_or_default()
        .iter()
        .map(overview)
        .filter(|run| run.status == praxis_core::RunStatus::Interrupted)
        .map(|run| run.run_id)
        .collect()
}

/// The default of a stateless agent: each run gets an in-memory ledger of its own, kept
/// here until the run finishes. A run whose future was dropped stays here, resumable, for
/// as long as this checkpointer lives (the agent's lifetime, unless shared).
#[derive(Default)]
pub struct MemoryCheckpointer {
    runs: Mutex<BTreeMap<String, Arc<MemoryLedger>>>,
}

impl MemoryCheckpointer {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<MemoryLedger>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Checkpointer for MemoryCheckpointer {
    fn ledger_for(&self, run_id: &str) -> Arc<dyn Ledger> {
        self.lock()
            .entry(run_id.to_string())
            .or_insert_with(|| Arc::new(MemoryLedger::new()))
            .clone()
    }

    fn find(&self, run_id: &str) -> Option<Arc<dyn Ledger>> {
        self.lock()
            .get(run_id)
            .map(|ledger| ledger.clone() as Arc<dyn Ledger>)
    }

    fn finished(&self, run_id: &str) {
        self.lock().remove(run_id);
    }

    fn interrupted(&self) -> Vec<String> {
        let ledgers: Vec<_> = self.lock().values().cloned().collect();
        let mut runs: Vec<String> = ledgers
            .iter()
            .flat_map(|ledger| interrupted_in(&**ledger))
            .collect();
        // Run ids are ULIDs: sorted is oldest first.
        runs.sort();
        runs
    }
}

/// One ledger for every run: the default of a durable agent (its data dir's ledger), or any
/// [`Ledger`] of your own (`praxis_ledger::SqliteLedger`, a PostgreSQL one).
pub struct LedgerCheckpointer(pub Arc<dyn Ledger>);

impl Checkpointer for LedgerCheckpointer {
    fn ledger_for(&self, _run_id: &str) -> Arc<dyn Ledger> {
        self.0.clone()
    }

    fn find(&self, run_id: &str) -> Option<Arc<dyn Ledger>> {
        let runs = self.0.runs().ok()?;
        runs.iter()
            .any(|row| row.run_id == run_id)
            .then(|| self.0.clone())
    }

    fn finished(&self, _run_id: &str) {}

    fn interrupted(&self) -> Vec<String> {
        interrupted_in(&*self.0)
    }
}
