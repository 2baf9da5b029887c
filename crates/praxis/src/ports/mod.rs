//! Ports: the seams an embedder plugs into, each a trait with a working default, wired
//! through [`crate::AgentBuilder`]. Leaving a port unset is always safe.
//!
//! | port | trait | default | when |
//! |---|---|---|---|
//! | audit | [`Audit`] | [`LedgerAudit`]: the run's hash-chained ledger entries, verified and kept | after each run |
//! | budget | [`Budget`] | [`Unlimited`]; [`SpendCap`] caps tokens and dollars | a gate before the run, the actual spend committed after |
//! | critic | [`Critic`] | `praxis_runtime::critic::Critic` (the one `praxis job` uses) over the agent's provider | after a run given key results |
//! | delivery | [`Delivery`] | none; [`Stdout`], [`JsonlFile`], [`Webhook`] (retries, backoff, HMAC-SHA256) | after each run |
//! | usage sink | [`UsageSink`] | [`UsageTotals`] (per model) | after each run, one record per model call |
//! | checkpointer | [`Checkpointer`] | the ledger: [`MemoryCheckpointer`] (stateless), [`LedgerCheckpointer`] (durable) | every record, written ahead; [`crate::Agent::resume`] takes an interrupted run up |
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use praxis::ports::{JsonlFile, SpendCap, UsageTotals};
//! use std::sync::Arc;
//! let usage = Arc::new(UsageTotals::default());
//! let agent = praxis::Agent::builder()
//!     .provider("mock")
//!     .budget(Arc::new(SpendCap::new(100_000, 10_000)))
//!     .critic(vec![praxis::KeyResult::text("The README is summarized")])
//!     .delivery(Arc::new(JsonlFile("runs.jsonl".into())))
//!     .usage_sink(usage.clone())
//!     .build()?;
//! let result = agent.run(&[], "Summarize the README", Default::default()).await?;
//! println!("{:?} {:?}", result.judgement, usage.totals());
//! # Ok(()) }
//! ```
//!
//! A run stopped before its end is taken up from the checkpointer by the runtime's resume
//! rules (the same as `praxis resume`), see [`crate::Agent::resume`].

mod checkpoint;
mod delivery;

pub use checkpoint::{Checkpointer, LedgerCheckpointer, MemoryCheckpointer};

pub use delivery::{Delivery, DeliveryError, JsonlFile, RunSummary, Stdout, Webhook};
use praxis_core::Usage;
use praxis_ledger::{Entry, VerifyReport};
use praxis_runtime::critic::{Evidence, Judgement, KeyResult};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A boxed future, as the async ports return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a run's record goes after the run. The record itself is already in the run's
/// ledger (hash-chained, ending in a signed checkpoint); an audit port keeps or forwards it.
pub trait Audit: Send + Sync {
    /// Called once per run with all of its ledger entries. An error fails the call to
    /// [`crate::Agent::run`] (the run itself is over).
    fn record(&self, run_id: &str, entries: &[Entry]) -> Result<(), AuditError>;
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("run {run_id}: its ledger chain does not verify: {report:?}")]
    Broken {
        run_id: String,
        report: Box<VerifyReport>,
    },
    #[error("audit: {0}")]
    Other(String),
}

/// The default audit: the ledger. Each run's entries are verified (hash chain) and kept,
/// so a stateless agent, whose in-memory ledger ends with the run, still has every run's
/// record to show.
#[derive(Default)]
pub struct LedgerAudit {
    runs: Mutex<BTreeMap<String, Vec<Entry>>>,
}

impl LedgerAudit {
    /// The entries kept for `run_id`.
    pub fn entries(&self, run_id: &str) -> Option<Vec<Entry>> {
        self.lock().get(run_id).cloned()
    }

    /// The run ids kept, sorted.
    pub fn run_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Entry>>> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Audit for LedgerAudit {
    fn record(&self, run_id: &str, entries: &[Entry]) -> Result<(), AuditError> {
        let report = praxis_ledger::verify_entries(entries);
        if !matches!(report, VerifyReport::Intact { .. }) {
            return Err(AuditError::Broken {
                run_id: run_id.to_string(),
                report: Box::new(report),
            });
        }
        self.lock().insert(run_id.to_string(), entries.to_vec());
        Ok(())
    }
}

/// What a run spent, committed to a [`Budget`] after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spend {
    pub usage: Usage,
    /// By the run's price table; 0 for unpriced models.
    pub cost_usd_micros: u64,
}

/// A hold a [`Budget`] granted before a run; given back with the actual spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub id: u64,
    pub tokens: u64,
}

/// The budget refused to start a run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("budget: {0}")]
pub struct BudgetDenied(pub String);

/// A spending gate: [`Budget::reserve`] before a run may refuse it; [`Budget::commit`]
/// after it records what it really spent and releases the hold.
pub trait Budget: Send + Sync {
    fn reserve(&self, task: &str) -> Result<Reservation, BudgetDenied>;
    fn commit(&self, reservation: Reservation, spent: Spend);
}

/// The default budget: every run may start; spending is not tracked.
pub struct Unlimited;

impl Budget for Unlimited {
    fn reserve(&self, _task: &str) -> Result<Reservation, BudgetDenied> {
        Ok(Reservation { id: 0, tokens: 0 })
    }
    fn commit(&self, _reservation: Reservation, _spent: Spend) {}
}

/// A cap on total tokens (and optionally dollars) across runs. Each run reserves
/// `per_run_tokens`; a run starts only if what was spent plus what is reserved plus its
/// reservation fits the cap. Concurrent runs share it.
pub struct SpendCap {
    max_tokens: u64,
    max_usd_micros: Option<u64>,
    per_run_tokens: u64,
    state: Mutex<CapState>,
}

#[derive(Default)]
struct CapState {
    spent: Spend,
    reserved: BTreeMap<u64, u64>,
    next: u64,
}

impl SpendCap {
    pub fn new(max_tokens: u64, per_run_tokens: u64) -> Self {
        SpendCap {
            max_tokens,
            max_usd_micros: None,
            per_run_tokens,
            state: Mutex::new(CapState::default()),
        }
    }

    /// Also refuse runs once this many micro-dollars are spent.
    pub fn max_usd_micros(mut self, cap: u64) -> Self {
        self.max_usd_micros = Some(cap);
        self
    }

    /// What committed runs spent so far.
    pub fn spent(&self) -> Spend {
        self.lock().spent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CapState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Budget for SpendCap {
    fn reserve(&self, _task: &str) -> Result<Reservation, BudgetDenied> {
        let mut state = self.lock();
        let spent = state.spent.usage.input_tokens + state.spent.usage.output_tokens;
        let held: u64 = state.reserved.values().sum();
        let needed = spent + held + self.per_run_tokens;
        if needed > self.max_tokens {
            return Err(BudgetDenied(format!(
                "{spent} tokens spent and {held} held for running runs; another run needs \
                 {} more, over the cap of {}",
                self.per_run_tokens, self.max_tokens
            )));
        }
        if let Some(cap) = self.max_usd_micros
            && state.spent.cost_usd_micros >= cap
        {
            return Err(BudgetDenied(format!(
                "{} micro-dollars spent, the cap is {cap}",
                state.spent.cost_usd_micros
            )));
        }
        state.next += 1;
        let id = state.next;
        state.reserved.insert(id, self.per_run_tokens);
        Ok(Reservation {
            id,
            tokens: self.per_run_tokens,
        })
    }

    fn commit(&self, reservation: Reservation, spent: Spend) {
        let mut state = self.lock();
        state.reserved.remove(&reservation.id);
        state.spent.usage.add(spent.usage);
        state.spent.cost_usd_micros += spent.cost_usd_micros;
    }
}

/// Judges a finished run against key results. The default is the runtime's critic (a
/// reviewer model, structured output, verdicts backed by quotes found in the ledger): the
/// same one `praxis job` uses.
pub trait Critic: Send + Sync {
    fn review<'a>(
        &'a self,
        evidence: &'a Evidence,
        key_results: &'a [KeyResult],
    ) -> BoxFuture<'a, Judgement>;
}

impl Critic for praxis_runtime::critic::Critic {
    fn review<'a>(
        &'a self,
        evidence: &'a Evidence,
        key_results: &'a [KeyResult],
    ) -> BoxFuture<'a, Judgement> {
        Box::pin(self.judge(evidence, key_results))
    }
}

/// One model call's usage, as a [`UsageSink`] receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    pub run_id: String,
    pub step: u32,
    pub model: String,
    pub usage: Usage,
    pub cost_usd_micros: Option<u64>,
}

/// Receives one record per model call of every run, after the run, in step order.
pub trait UsageSink: Send + Sync {
    fn record(&self, record: &UsageRecord);
}

/// The default usage sink: totals per model.
#[derive(Default)]
pub struct UsageTotals {
    totals: Mutex<BTreeMap<String, (Usage, u64)>>,
}

impl UsageTotals {
    /// Model -> (tokens, micro-dollars), over every run so far.
    pub fn totals(&self) -> BTreeMap<String, (Usage, u64)> {
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl UsageSink for UsageTotals {
    fn record(&self, record: &UsageRecord) {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        let total = totals.entry(record.model.clone()).or_default();
        total.0.add(record.usage);
        total.1 += record.cost_usd_micros.unwrap_or(0);
    }
}

/// A review after each completed run: the critic (None: the runtime's, over the agent's
/// provider) and the key results it judges.
#[derive(Clone)]
pub(crate) struct Review {
    pub critic: Option<Arc<dyn Critic>>,
    pub key_results: Vec<KeyResult>,
}

/// The ports of an agent (defaults unless the builder set them).
#[derive(Clone)]
pub(crate) struct Ports {
    pub audit: Arc<dyn Audit>,
    pub budget: Arc<dyn Budget>,
    /// The critic and the key results it judges (None: no review).
    pub critic: Option<Review>,
    pub delivery: Option<Arc<dyn Delivery>>,
    pub usage: Arc<dyn UsageSink>,
    /// Set on the builder (None: the default, chosen when the agent is built).
    pub checkpointer: Option<Arc<dyn Checkpointer>>,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            audit: Arc::new(LedgerAudit::default()),
            budget: Arc::new(Unlimited),
            critic: None,
            delivery: None,
            usage: Arc::new(UsageTotals::default()),
            checkpointer: None,
        }
    }
}
