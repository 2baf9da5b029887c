//! Lanes: a bounded worker pool with fair-share queueing per key (a tenant, a provider).
//!
//! A [`Lane`] admits at most `global` jobs at once and at most `per_key` of one key.
//! Waiting jobs queue per key; when a slot frees, keys take turns (round robin over the
//! keys that have a job waiting and room under their own bound), so one key's burst cannot
//! starve another's single job.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The bounds of a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneLimits {
    /// Jobs running at once, over every key (at least 1).
    pub global: usize,
    /// Jobs running at once for one key (at least 1).
    pub per_key: usize,
}

#[derive(Default)]
struct State {
    running: usize,
    running_by_key: BTreeMap<String, usize>,
    waiting: BTreeMap<String, VecDeque<oneshot::Sender<()>>>,
    /// The key served last: the next turn starts after it.
    last: Option<String>,
}

/// A bounded pool with per-key fair queueing. Clone it to share.
#[derive(Clone)]
pub struct Lane {
    limits: LaneLimits,
    state: Arc<Mutex<State>>,
}

/// A running job's slot; dropping it hands the slot to the next waiting job.
pub struct LanePermit {
    lane: Lane,
    key: String,
    /// Whether the slot is counted as running (a waiter dropped before its grant holds
    /// an uncounted one).
    counted: bool,
}

impl Lane {
    pub fn new(limits: LaneLimits) -> Self {
        Lane {
            limits: LaneLimits {
                global: limits.global.max(1),
                per_key: limits.per_key.max(1),
            },
            state: Arc::default(),
        }
    }

    pub fn limits(&self) -> LaneLimits {
        self.limits
    }

    /// Jobs waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.lock().waiting.values().map(VecDeque::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot for `key`. Fair: among waiting keys, turns go round robin.
    pub async fn acquire(&self, key: &str) -> LanePermit {
        let rx = {
            let mut state = self.lock();
            let mine = state.running_by_key.get(key).copied().unwrap_or(0);
            let nobody_waits = state.waiting.values().all(VecDeque::is_empty);
            if nobody_waits && state.running < self.limits.global && mine < self.limits.per_key {
                state.running += 1;
                *state.running_by_key.entry(key.to_string()).or_default() += 1;
                // Served without waiting is served: the next turn goes to another key.
                state.last = Some(key.to_string());
                None
            } else {
                let (tx, rx) = oneshot::channel();
                state
                    .waiting
                    .entry(key.to_string())
                    .or_default()
                    .push_back(tx);
                Some(rx)
            }
        };
        let permit = LanePermit {
            lane: self.clone(),
            key: key.to_string(),
            counted: true,
        };
        if let Some(rx) = rx {
            // If this future is dropped while waiting, a slot granted meanwhile is given
            // back; once granted, the permit owns it.
            let mut waiting = Waiting {
                permit: Some(permit),
                rx: Some(rx),
            };
            let rx = waiting.rx.as_mut().expect("set above");
            // The sender lives in the lane state, which `permit` keeps alive.
            let _ = rx.await;
            waiting.rx = None;
            return waiting.permit.take().expect("set above");
        }
        permit
    }

    /// Runs `job` in a slot of `key`.
    pub async fn run<F: Future>(&self, key: &str, job: F) -> F::Output {
        let _permit = self.acquire(key).await;
        job.await
    }

    /// Hands free slots to waiting jobs, keys in turn.
    fn dispatch(&self, state: &mut State) {
        while state.running < self.limits.global {
            let keys: Vec<String> = state
                .waiting
                .iter()
                .filter(|(k, q)| {
                    !q.is_empty()
                        && state.running_by_key.get(*k).copied().unwrap_or(0) < self.limits.per_key
                })
                .map(|(k, _)| k.clone())
                .collect();
            if keys.is_empty() {
                return;
            }
            // The first eligible key after the one served last (wrapping around).
            let next = match &state.last {
                Some(last) => keys.iter().find(|k| *k > last).unwrap_or(&keys[0]).clone(),
                None => keys[0].clone(),
            };
            let queue = state.waiting.get_mut(&next).expect("listed above");
            let tx = queue.pop_front().expect("non-empty");
            if queue.is_empty() {
                state.waiting.remove(&next);
            }
            state.last = Some(next.clone());
            // A waiter that gave up (its future dropped) does not take the slot.
            if tx.send(()).is_ok() {
                state.running += 1;
                *state.running_by_key.entry(next).or_default() += 1;
            }
        }
    }
}

/// A job waiting for a slot (see [`Lane::acquire`]).
struct Waiting {
    /// Released on drop only if the slot was granted and never handed out.
    permit: Option<LanePermit>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let granted = self.rx.take().is_some_and(|mut rx| {
            rx.close();
            rx.try_recv().is_ok()
        });
        if let Some(permit) = &mut self.permit {
            permit.counted = granted;
        }
    }
}

impl Drop for LanePermit {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let lane = self.lane.clone();
        let mut state = lane.lock();
        state.running -= 1;
        if let Some(n) = state.running_by_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                state.running_by_key.remove(&self.key);
            }
        }
        lane.dispatch(&mut state);
    }
}
