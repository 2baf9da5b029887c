//! Which runs this process is driving right now. A run recorded with this process as its
//! driver is alive only while its drive exists: an embedder that drops a run's future
//! (or whose task panicked) leaves the run `interrupted`, resumable like one whose process
//! died, without waiting for the process to exit.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// Run id -> number of drives of it in this process (a run is driven by one at a time;
/// the count keeps a stale guard from unregistering a newer drive).
static DRIVING: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

fn driving() -> MutexGuard<'static, BTreeMap<String, u32>> {
    DRIVING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Held by a run's drive for as long as it lives.
pub(crate) struct Driving(String);

impl Driving {
    pub(crate) fn start(run_id: &str) -> Self {
        *driving().entry(run_id.to_string()).or_default() += 1;
        Driving(run_id.to_string())
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        let mut driving = driving();
        if let Some(count) = driving.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                driving.remove(&self.0);
            }
        }
    }
}

/// Whether this process has a live drive of `run_id`.
pub(crate) fn is_driving(run_id: &str) -> bool {
    driving().contains_key(run_id)
}
