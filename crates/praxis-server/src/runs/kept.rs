//! What the server keeps of runs it no longer drives: ghosts (runs whose ledger cannot
//! speak for them) and ended runs' views, each for the runs seen last.

use crate::api::RunView;
use praxis_core::RunStatus;
use std::collections::{HashMap, VecDeque};

/// A run that has no ledger entries to speak for it: it waited in the queue and was
/// cancelled, or the driver refused it before recording anything, or the driver failed
/// (ledger error) so its derived status would not be true.
#[derive(Clone, Debug)]
pub(crate) struct Ghost {
    pub tenant: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub task: String,
    pub workspace: String,
    pub provider: String,
    pub created_at: String,
}

impl Ghost {
    /// A run of `spec` that ended `status` for `why` without its ledger saying so.
    pub(super) fn of(
        tenant: &str,
        spec: &praxis_core::RunSpec,
        status: RunStatus,
        why: String,
    ) -> Ghost {
        Ghost {
            tenant: tenant.to_string(),
            status,
            error: Some(why),
            task: spec.task.clone(),
            workspace: spec.workspace.clone(),
            provider: spec.provider.clone(),
            created_at: praxis_ledger::now_rfc3339(),
        }
    }
}

/// How many ghosts are remembered (oldest forgotten first).
pub(super) const MAX_GHOSTS: usize = 4096;

/// A run this server drove to its end: its view as the entries it saw become durable left
/// it, kept so that the view of a run that just ended (asked at once by whoever polled it)
/// is not read from the ledger. Only a run whose every entry this server saw, up to its
/// `run_finished`, is kept.
#[derive(Clone, Debug)]
pub(crate) struct Ended {
    pub tenant: String,
    pub view: RunView,
}

/// How many ended runs are kept (oldest forgotten first; a forgotten one is read from the
/// ledger, as every run is after a restart): enough for the clients polling the runs that
/// end at once, and a few kilobytes each.
pub(super) const MAX_ENDED: usize = 64;

/// Values by run id, kept for the `CAP` runs seen last (the oldest forgotten first).
pub(super) struct Recent<V, const CAP: usize> {
    by_id: HashMap<String, V>,
    order: VecDeque<String>,
}

impl<V, const CAP: usize> Default for Recent<V, CAP> {
    fn default() -> Self {
        Recent {
            by_id: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V, const CAP: usize> Recent<V, CAP> {
    pub(super) fn get(&self, run_id: &str) -> Option<&V> {
        self.by_id.get(run_id)
    }

    pub(super) fn insert(&mut self, run_id: &str, value: V) {
        if self.by_id.insert(run_id.to_string(), value).is_none() {
            self.order.push_back(run_id.to_string());
        }
        while self.order.len() > CAP {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    pub(super) fn remove(&mut self, run_id: &str) {
        if self.by_id.remove(run_id).is_some() {
            self.order.retain(|id| id != run_id);
        }
    }

    pub(super) fn newest_first(&self) -> impl Iterator<Item = (&String, &V)> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| Some((id, self.by_id.get(id)?)))
    }
}
