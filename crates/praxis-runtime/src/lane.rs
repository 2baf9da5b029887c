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
    waiting: FairQueue<oneshot::Sender<()>>,
}

/// Items waiting per key, served keys in turn: the queueing rule of a [`Lane`], kept
/// apart from its async permits so a queue that must also be listed and cancelled (the
/// server's run queue) follows the same rule. Within a key, first come first served.
pub struct FairQueue<T> {
    waiting: BTreeMap<String, VecDeque<T>>,
    /// The key served last: the next turn starts after it.
    last: Option<String>,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue {
            waiting: BTreeMap::new(),
            last: None,
        }
    }
}

impl<T> FairQueue<T> {
    pub fn push(&mut self, key: &str, item: T) {
        self.waiting
            .entry(key.to_string())
            .or_default()
            .push_back(item);
    }

    pub fn len(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.values().all(VecDeque::is_empty)
    }

    /// `key` was served without waiting: the next turn goes to another key.
    pub fn served(&mut self, key: &str) {
        self.last = Some(key.to_string());
    }

    /// The next item: from the first key after the one served last (wrapping around)
    /// among the keys with an item that `eligible` admits (a key at its own bound waits).
    pub fn pop_next(&mut self, eligible: impl Fn(&str) -> bool) -> Option<(String, T)> {
        let next = self.next_key(&eligible)?;
        let queue = self.waiting.get_mut(&next)?;
        let item = queue.pop_front()?;
        if queue.is_empty() {
            self.waiting.remove(&next);
        }
        self.last = Some(next.clone());
        Some((next, item))
    }

    fn next_key(&self, eligible: &impl Fn(&str) -> bool) -> Option<String> {
        let mut keys = self
            .waiting
            .iter()
            .filter(|(k, q)| !q.is_empty() && eligible(k))
            .map(|(k, _)| k);
        let first = keys.clone().next()?;
        let after = self.last.as_ref().and_then(|last| keys.find(|k| *k > last));
        Some(after.unwrap_or(first).clone())
    }

    /// Every item with its key, in the order they would be served if every key were
    /// eligible (a queue position is an index in it).
    pub fn in_order(&self) -> Vec<(&str, &T)> {
        let mut cursors: BTreeMap<&str, std::collections::vec_deque::Iter<'_, T>> = self
            .waiting
            .iter()
            .map(|(k, q)| (k.as_str(), q.iter()))
            .collect();
        let mut last = self.last.clone();
        let mut out = Vec::with_capacity(self.len());
        while !cursors.is_empty() {
            let key = match &last {
                Some(l) => cursors
                    .keys()
                    .find(|k| **k > l.as_str())
                    .or_else(|| cursors.keys().next())
                    .copied(),
                None => cursors.keys().next().copied(),
            };
            let Some(key) = key else { break };
            match cursors.get_mut(key).and_then(Iterator::next) {
                Some(item) => out.push((key, item)),
                None => {
                    cursors.remove(key);
                    continue;
                }
            }
            last = Some(key.to_string());
        }
        out
    }

    /// Takes out the first item `matches` finds (e.g. a cancelled run).
    pub fn remove(&mut self, matches: impl Fn(&T) -> bool) -> Option<T> {
        let (key, index) = self
            .waiting
            .iter()
            .find_map(|(k, q)| q.iter().position(&matches).map(|i| (k.clone(), i)))?;
        let queue = self.waiting.get_mut(&key)?;
        let item = queue.remove(index);
        if queue.is_empty() {
            self.waiting.remove(&key);
        }
        item
    }

    /// Takes every item out.
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.waiting)
            .into_values()
            .flatten()
            .collect()
    }
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
        self.lock().waiting.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a slot for `key`. Fair: among waiting keys, turns go round robin.
    pub async fn acquire(&self, key: &str) -> LanePermit {
        let rx = {
            let mut state = self.lock();
            let mine = state.running_by_key.get(key).copied().unwrap_or(0);
            let nobody_waits = state.waiting.is_empty();
            if nobody_waits && state.running < self.limits.global && mine < self.limits.per_key {
                state.running += 1;
                *state.running_by_key.entry(key.to_string()).or_default() += 1;
                // Served without waiting is served: the next turn goes to another key.
                state.waiting.served(key);
                None
            } else {
                let (tx, rx) = oneshot::channel();
                state.waiting.push(key, tx);
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
        let per_key = self.limits.per_key;
        while state.running < self.limits.global {
            let State {
                waiting,
                running_by_key,
                ..
            } = &mut *state;
            let Some((key, tx)) =
                waiting.pop_next(|k| running_by_key.get(k).copied().unwrap_or(0) < per_key)
            else {
                return;
            };
            // A waiter that gave up (its future dropped) does not take the slot.
            if tx.send(()).is_ok() {
                state.running += 1;
                *state.running_by_key.entry(key).or_default() += 1;
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
