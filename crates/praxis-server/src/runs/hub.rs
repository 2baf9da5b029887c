//! A run's live channel for its followers, and the observer that feeds it.

use super::*;
use crate::api::RunView;
use std::sync::atomic::{AtomicU64, Ordering};

/// What followers of a live run receive.
#[derive(Clone, Debug)]
pub(crate) enum Live {
    /// A durable ledger entry.
    Entry(Arc<Entry>),
    /// Streamed model text (never ledgered).
    Delta(Arc<str>),
    /// The driver returned: every entry of the run is durable.
    Done,
}

/// What a live run is doing right now (not in the ledger: it changes too often).
#[derive(Clone, Debug, Default)]
pub(crate) struct LiveState {
    pub phase: &'static str,
    pub active_tool: Option<String>,
}

/// One run's live channel. A bounded broadcast: a follower that falls `capacity` events
/// behind is told it lagged and is dropped (it resumes from the ledger), so a slow follower
/// costs no memory beyond the shared ring.
pub(crate) struct Hub {
    tx: broadcast::Sender<Live>,
    state: Mutex<LiveState>,
    /// The seq of the run's latest entry its observer saw durable (0: none yet).
    durable_seq: AtomicU64,
    /// The run's view as its ledger had it when `durable_seq` was the key: a view asked
    /// again before the next entry is the same (a polling client reads the ledger once per
    /// entry, not once per poll).
    view: Mutex<Option<(u64, RunView)>>,
    /// The run's entries folded as they became durable here, while this server saw every
    /// one from the run's first (None once one did not follow the last, as a resumed run's
    /// first does): its view is made from this, not read from the ledger.
    digest: Mutex<Option<Digest>>,
}

impl Hub {
    pub(super) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Hub {
            tx: broadcast::channel(capacity.max(1)).0,
            state: Mutex::new(LiveState {
                phase: "queued",
                active_tool: None,
            }),
            durable_seq: AtomicU64::new(0),
            view: Mutex::new(None),
            digest: Mutex::new(Some(Digest::default())),
        })
    }

    /// The seq of the run's latest entry seen durable here.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// The view kept for `seq` (see [`Hub::keep_view`]), if no entry came since.
    pub(crate) fn view_at(&self, seq: u64) -> Option<RunView> {
        let view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        view.as_ref()
            .filter(|(at, _)| *at == seq)
            .map(|(_, view)| view.clone())
    }

    /// `f` of the run's digest, when this server saw every entry of the run (see
    /// [`Hub::digest`]'s field) and there is at least one.
    pub(crate) fn with_digest<T>(&self, f: impl FnOnce(&Digest) -> T) -> Option<T> {
        let digest = self.digest.lock().unwrap_or_else(PoisonError::into_inner);
        digest.as_ref().filter(|d| d.last_seq() > 0).map(f)
    }

    /// Folds a durable entry into the digest (or drops the digest: an entry that does not
    /// follow the last one means this server did not see them all).
    fn digest_entry(&self, entry: &Entry) {
        let mut digest = self.digest.lock().unwrap_or_else(PoisonError::into_inner);
        match digest.as_mut() {
            Some(d) if entry.seq == d.last_seq() + 1 => d.add(entry),
            Some(_) => *digest = None,
            None => {}
        }
    }

    /// Keeps `view`, read from the ledger after [`Hub::durable_seq`] said `seq`.
    pub(crate) fn keep_view(&self, seq: u64, view: &RunView) {
        *self.view.lock().unwrap_or_else(PoisonError::into_inner) = Some((seq, view.clone()));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Live> {
        self.tx.subscribe()
    }

    pub fn state(&self) -> LiveState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set(&self, phase: &'static str, tool: Option<String>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.phase = phase;
        state.active_tool = tool;
    }

    pub(crate) fn send(&self, live: Live) {
        // No follower is not an error.
        let _ = self.tx.send(live);
    }
}

/// Feeds a run's live events to its hub (and the metrics). Sub-runs started by `delegate`
/// report through the same observer: they belong to the parent's tenant, and their entries
/// go to their own feed (read from the ledger), not the parent's.
pub(super) struct HubObserver {
    pub(super) run_id: String,
    pub(super) tenant: String,
    pub(super) hub: Arc<Hub>,
    pub(super) tokens: Arc<TokenStore>,
    pub(super) metrics: Arc<Metrics>,
}

impl RunObserver for HubObserver {
    fn on_event(&self, run_id: &str, event: LiveEvent<'_>) {
        if run_id != self.run_id {
            if let LiveEvent::Entry(entry) = &event {
                self.metrics.entry_appended();
                if entry.seq == 1
                    && let Err(e) = self.tokens.set_run_tenant(run_id, &self.tenant)
                {
                    eprintln!("praxis serve: cannot record the tenant of sub-run {run_id}: {e}");
                }
            }
            return;
        }
        match event {
            LiveEvent::Entry(entry) => {
                self.metrics.entry_appended();
                // Before the seq: a view made for this seq holds this entry.
                self.hub.digest_entry(entry);
                self.hub.durable_seq.fetch_max(entry.seq, Ordering::AcqRel);
                match entry.kind.as_str() {
                    "execution" | "approval_decided" => self.hub.set("running", None),
                    "run_finished" => self.hub.set("finishing", None),
                    _ => {}
                }
                self.hub.send(Live::Entry(Arc::new(entry.clone())));
            }
            LiveEvent::Delta { text } => self.hub.send(Live::Delta(Arc::from(text))),
            // The feed carries text deltas; the call itself arrives as its proposal entry.
            LiveEvent::ToolArgumentsDelta { .. } | LiveEvent::ReasoningDelta { .. } => {}
            LiveEvent::ModelCall { .. } => self.hub.set("model", None),
            LiveEvent::ToolStarted { tool, .. } => self.hub.set("tool", Some(tool.to_string())),
            LiveEvent::AwaitingApproval { proposal } => self
                .hub
                .set("awaiting_approval", Some(proposal.tool.clone())),
        }
    }
}
