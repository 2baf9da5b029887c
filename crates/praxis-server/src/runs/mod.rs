//! The runs this server drives: admission under the concurrency limits (a bounded FIFO
//! queue behind them), one live hub per run for followers, cancellation, crash recovery at
//! start, and draining at shutdown. Everything durable is in the ledger; this is only what a
//! live process knows on top of it.

use crate::cluster::{Cluster, LedgerHealth, Stores};
use crate::metrics::Metrics;
use praxis_core::Record;
use praxis_core::RunStatus;
use praxis_core::record::{RunStarted, kinds, parse_payload};
use praxis_ledger::tokens::{AcceptedRun, TokenStore};
use praxis_ledger::{Entry, Ledger, LedgerError, SqliteLedger};
use praxis_runtime::lane::{FairQueue, Lane, LaneLimits};
use praxis_runtime::{
    BranchFrom, Cancel, LiveEvent, RunObserver, RunOptions, RunReport, Runtime, RuntimeError,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{Notify, broadcast};

mod drive;
mod hub;
mod kept;
mod records;
mod recovery;

use hub::HubObserver;
pub(crate) use hub::{Hub, Live, LiveState};
pub(crate) use kept::{Ended, Ghost};
use kept::{MAX_ENDED, MAX_GHOSTS, Recent};
pub(crate) use records::{Counters, Digest, row_of};
pub(crate) use recovery::{accepted_never_started, interrupted_runs, recover_run};

pub(crate) struct Active {
    pub tenant: String,
    pub hub: Arc<Hub>,
    cancel: Cancel,
    /// What it was asked and when it got its slot: its view until its ledger speaks (a run
    /// waiting for its provider, or placed on Kubernetes and not yet started there).
    pub spec: praxis_core::RunSpec,
    pub since: String,
}

pub(crate) struct Queued {
    pub run_id: String,
    pub tenant: String,
    pub hub: Arc<Hub>,
    pub options: RunOptions,
    pub job: Job,
    pub created_at: String,
}

/// What a slot is used for.
#[derive(Clone, Debug)]
pub(crate) enum Job {
    /// A new run (`Runtime::run`).
    Start,
    /// An interrupted run taken over (`Runtime::resume`).
    Resume,
    /// A new run continuing another's history (`Runtime::branch`).
    Branch(Box<BranchFrom>),
}

/// What admitting a run records of its owner.
enum Owner<'a> {
    /// Nothing: the owner is recorded already (a resume, a run recovered at start).
    Kept,
    /// The owner.
    Record,
    /// The owner and the request that creates the run (`Manager::submit_new`).
    Accept(&'a str),
}

#[derive(Default)]
struct Inner {
    accepting: bool,
    active: HashMap<String, Active>,
    by_tenant: HashMap<String, usize>,
    /// Runs waiting for a slot, by tenant: served tenants in turn (the lanes' rule), so one
    /// tenant's burst cannot hold another's run back.
    queue: FairQueue<Queued>,
    ghosts: Recent<Ghost, MAX_GHOSTS>,
    ended: Recent<Ended, MAX_ENDED>,
    /// Runs found interrupted at start, with what was done about them.
    recovered: HashMap<String, String>,
}

impl Inner {
    /// A queued run and its place in the queue's order (0-based).
    fn queued(&self, run_id: &str) -> Option<(usize, &Queued)> {
        self.queue
            .in_order()
            .into_iter()
            .map(|(_, q)| q)
            .enumerate()
            .find(|(_, q)| q.run_id == run_id)
    }
}

/// The outcome of asking to start a run.
pub(crate) enum Admission {
    Started,
    Queued {
        position: usize,
    },
    /// Every slot busy and the queue full.
    Full,
    ShuttingDown,
}

/// What the server knows live about a run, besides the ledger.
pub(crate) enum Known {
    Queued {
        tenant: String,
        task: String,
        workspace: String,
        provider: String,
        created_at: String,
        position: usize,
    },
    Active {
        tenant: String,
        hub: Arc<Hub>,
        recovered: Option<String>,
        spec: praxis_core::RunSpec,
        since: String,
    },
    Ghost(Ghost),
    /// Driven here to its `run_finished`, and still kept ([`Ended`]).
    Ended(Ended),
    Unknown {
        recovered: Option<String>,
    },
}

impl Known {
    /// The tenant of a run this process knows live (queued, active, or a ghost); None when
    /// only the ledger knows it.
    pub(crate) fn tenant(&self) -> Option<&str> {
        match self {
            Known::Queued { tenant, .. } | Known::Active { tenant, .. } => Some(tenant),
            Known::Ghost(ghost) => Some(&ghost.tenant),
            Known::Ended(ended) => Some(&ended.tenant),
            Known::Unknown { .. } => None,
        }
    }
}

pub(crate) struct Limits {
    pub max_runs: Option<usize>,
    pub max_runs_per_tenant: Option<usize>,
    /// Runs of one provider (its spec) executing at once; waiting runs take turns by
    /// tenant (a lane per provider, keyed by tenant).
    pub max_runs_per_provider: Option<usize>,
    pub queue_capacity: usize,
    pub follower_buffer: usize,
}

pub(crate) struct Manager {
    runtime: Runtime,
    pub ledger: Arc<dyn Ledger>,
    /// The data dir's SQLite ledger, when that is the ledger (its health check).
    sqlite: Option<Arc<SqliteLedger>>,
    /// Several servers on one PostgreSQL ledger: leases, takeover, cross-server cancel.
    pub cluster: Option<Arc<Cluster>>,
    pub tokens: Arc<TokenStore>,
    metrics: Arc<Metrics>,
    limits: Limits,
    inner: Mutex<Inner>,
    finished: Notify,
    /// One lane per provider spec (with `max_runs_per_provider`).
    provider_lanes: Mutex<HashMap<String, Lane>>,
    /// Where new runs execute when not here (`PRAXIS_EXECUTOR=kubernetes`).
    executor: std::sync::OnceLock<Arc<dyn crate::executor::Executor>>,
}

impl Manager {
    pub fn new(
        stores: &Stores,
        home: praxis_runtime::DataHome,
        registry: Arc<praxis_tools::Registry>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Manager {
            runtime: Runtime::new(stores.ledger.clone(), registry).with_home(home),
            ledger: stores.ledger.clone(),
            sqlite: stores.sqlite.clone(),
            cluster: stores.cluster.clone(),
            tokens: stores.tokens.clone(),
            metrics,
            limits,
            inner: Mutex::new(Inner {
                accepting: true,
                ..Inner::default()
            }),
            finished: Notify::new(),
            provider_lanes: Mutex::default(),
            executor: std::sync::OnceLock::new(),
        })
    }

    /// New runs (not resumes or branches) execute there from now on.
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    pub fn set_executor(&self, executor: Arc<dyn crate::executor::Executor>) {
        let _ = self.executor.set(executor);
    }

    /// Whether new runs execute elsewhere (an executor is set).
    pub fn places_new_runs_elsewhere(&self) -> bool {
        self.executor.get().is_some()
    }

    /// The lane bounding runs of `provider`, if providers are bounded.
    fn provider_lane(&self, provider: &str) -> Option<Lane> {
        let bound = self.limits.max_runs_per_provider?;
        let mut lanes = self
            .provider_lanes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let lane = lanes.entry(provider.to_string()).or_insert_with(|| {
            Lane::new(LaneLimits {
                global: bound,
                per_key: bound,
            })
        });
        Some(lane.clone())
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the run now if a slot is free, queues it if the queue has room, else refuses.
    /// The tenant is recorded before the run writes anything, so it is never visible to
    /// another tenant, not even for its first entry.
    pub fn submit(
        self: &Arc<Self>,
        run_id: String,
        tenant: String,
        options: RunOptions,
        job: Job,
    ) -> Result<Admission, praxis_ledger::LedgerError> {
        let owner = match job {
            // A resumed run keeps the owner it has.
            Job::Resume => Owner::Kept,
            Job::Start | Job::Branch(_) => Owner::Record,
        };
        self.admit(run_id, tenant, options, job, owner, false)
    }

    /// A new run of `POST /v1/runs`: its owner and `request` (the body, as JSON) are
    /// recorded in one commit before it is admitted, so the 201 that follows survives a
    /// crash: a run with no entry when its server died starts when the server is back
    /// ([`accepted_never_started`]). The request is forgotten when the run ends.
    pub fn submit_new(
        self: &Arc<Self>,
        run_id: String,
        tenant: String,
        options: RunOptions,
        request: &str,
    ) -> Result<Admission, praxis_ledger::LedgerError> {
        self.admit(
            run_id,
            tenant,
            options,
            Job::Start,
            Owner::Accept(request),
            false,
        )
    }

    /// `submit`; `recovering` skips the queue's capacity (runs found at start were already
    /// admitted once).
    fn admit(
        self: &Arc<Self>,
        run_id: String,
        tenant: String,
        options: RunOptions,
        job: Job,
        owner: Owner<'_>,
        recovering: bool,
    ) -> Result<Admission, praxis_ledger::LedgerError> {
        let mut inner = self.inner();
        if !inner.accepting {
            return Ok(Admission::ShuttingDown);
        }
        if inner.active.contains_key(&run_id) || inner.queued(&run_id).is_some() {
            // A second resume of the same run: it is already being taken care of.
            return Ok(Admission::Started);
        }
        let can_start = self.has_slot(&inner.active, &inner.by_tenant, &tenant);
        if !can_start && !recovering && inner.queue.len() >= self.limits.queue_capacity {
            return Ok(Admission::Full);
        }
        // Before the run can write anything, so it is never visible to another tenant.
        match owner {
            Owner::Kept => {}
            Owner::Record => self.tokens.set_run_tenant(&run_id, &tenant)?,
            Owner::Accept(request) => self.tokens.accept_run(&run_id, &tenant, request)?,
        }
        inner.ghosts.remove(&run_id);
        inner.ended.remove(&run_id);
        let hub = Hub::new(self.limits.follower_buffer);
        if can_start {
            // Served without waiting: the next turn goes to another tenant.
            inner.queue.served(&tenant);
            self.start(&mut inner, run_id, tenant, hub, options, job);
            Ok(Admission::Started)
        } else {
            let key = tenant.clone();
            let id = run_id.clone();
            inner.queue.push(
                &key,
                Queued {
                    run_id,
                    tenant,
                    hub,
                    options,
                    job,
                    created_at: praxis_ledger::now_rfc3339(),
                },
            );
            self.metrics.set_queue_depth(inner.queue.len());
            let position = inner.queued(&id).map_or(inner.queue.len(), |(i, _)| i + 1);
            Ok(Admission::Queued { position })
        }
    }

    fn has_slot(
        &self,
        active: &HashMap<String, Active>,
        by_tenant: &HashMap<String, usize>,
        tenant: &str,
    ) -> bool {
        let global = self.limits.max_runs.is_none_or(|max| active.len() < max);
        let own = by_tenant.get(tenant).copied().unwrap_or(0);
        let per_tenant = self.limits.max_runs_per_tenant.is_none_or(|max| own < max);
        global && per_tenant
    }
    /// Starts queued runs while slots are free: tenants in turn (round robin over the
    /// tenants with a run waiting and room under their own limit), each tenant's runs in
    /// the order they came.
    fn schedule(self: &Arc<Self>, inner: &mut Inner) {
        if !inner.accepting {
            return;
        }
        loop {
            let Inner {
                queue,
                active,
                by_tenant,
                ..
            } = &mut *inner;
            let Some((_, q)) = queue.pop_next(|tenant| self.has_slot(active, by_tenant, tenant))
            else {
                return;
            };
            self.start(inner, q.run_id, q.tenant, q.hub, q.options, q.job);
        }
    }

    /// What this process knows about `run_id` beyond the ledger.
    pub fn known(&self, run_id: &str) -> Known {
        let inner = self.inner();
        if let Some(active) = inner.active.get(run_id) {
            return active_known(&inner, run_id, active);
        }
        if let Some((position, q)) = inner.queued(run_id) {
            return Known::Queued {
                tenant: q.tenant.clone(),
                task: q.options.spec.task.clone(),
                workspace: q.options.spec.workspace.clone(),
                provider: q.options.spec.provider.clone(),
                created_at: q.created_at.clone(),
                position: position + 1,
            };
        }
        if let Some(ghost) = inner.ghosts.get(run_id) {
            return Known::Ghost(ghost.clone());
        }
        if let Some(ended) = inner.ended.get(run_id) {
            return Known::Ended(ended.clone());
        }
        Known::Unknown {
            recovered: inner.recovered.get(run_id).cloned(),
        }
    }

    /// A receiver of the live channel of a running or queued run. Taken under the same
    /// lock `finish` sends `Done` under, so a follower cannot miss the end.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<Live>> {
        let inner = self.inner();
        if let Some(active) = inner.active.get(run_id) {
            return Some(active.hub.subscribe());
        }
        inner.queued(run_id).map(|(_, q)| q.hub.subscribe())
    }

    /// Queued runs and ghosts (runs without ledger entries), newest first.
    pub fn unledgered(&self) -> Vec<(String, Known)> {
        let inner = self.inner();
        let mut out: Vec<(String, Known)> = inner
            .queue
            .in_order()
            .into_iter()
            .map(|(_, q)| q)
            .enumerate()
            .rev()
            .map(|(i, q)| {
                (
                    q.run_id.clone(),
                    Known::Queued {
                        tenant: q.tenant.clone(),
                        task: q.options.spec.task.clone(),
                        workspace: q.options.spec.workspace.clone(),
                        provider: q.options.spec.provider.clone(),
                        created_at: q.created_at.clone(),
                        position: i + 1,
                    },
                )
            })
            .collect();
        for (id, g) in inner.ghosts.newest_first() {
            out.push((id.clone(), Known::Ghost(g.clone())));
        }
        out
    }

    /// The runs driven here (or placed elsewhere by this server) now.
    pub fn active_runs(&self) -> Vec<(String, Known)> {
        let inner = self.inner();
        inner
            .active
            .iter()
            .map(|(id, active)| (id.clone(), active_known(&inner, id, active)))
            .collect()
    }

    /// Ghosts override what the ledger says (a failed driver leaves no `run_finished`).
    pub fn ghost(&self, run_id: &str) -> Option<Ghost> {
        self.inner().ghosts.get(run_id).cloned()
    }

    pub fn active_count(&self) -> usize {
        self.inner().active.len()
    }

    /// The runs this server drives now.
    /// The runs of `POST /v1/runs` waiting in the queue.
    pub fn queued_new_ids(&self) -> Vec<String> {
        self.inner()
            .queue
            .in_order()
            .into_iter()
            .filter(|(_, q)| matches!(q.job, Job::Start))
            .map(|(_, q)| q.run_id.clone())
            .collect()
    }

    pub fn active_ids(&self) -> Vec<String> {
        self.inner().active.keys().cloned().collect()
    }

    /// Whether this server drives or queues `run_id`.
    pub fn is_local(&self, run_id: &str) -> bool {
        let inner = self.inner();
        inner.active.contains_key(run_id) || inner.queued(run_id).is_some()
    }

    /// Resumes a run whose lease this server just won from a driver that died.
    pub fn take_over(
        self: &Arc<Self>,
        run_id: String,
        tenant: String,
        options: RunOptions,
    ) -> Result<(), LedgerError> {
        self.admit(run_id, tenant, options, Job::Resume, Owner::Kept, true)
            .map(drop)
    }

    /// Starts (or queues) a run accepted before a restart whose server died before its first
    /// entry ([`accepted_never_started`]), under the run id the client was given.
    pub fn start_accepted(
        self: &Arc<Self>,
        run: &AcceptedRun,
        options: RunOptions,
    ) -> Result<(), LedgerError> {
        self.admit(
            run.run_id.clone(),
            run.tenant.clone(),
            options,
            Job::Start,
            Owner::Kept,
            true,
        )
        .map(drop)
    }

    /// A run accepted before a restart that cannot be started now (`why`): it answers as
    /// failed, with the reason, instead of 404. Its request is kept.
    pub fn unstartable(&self, run: &AcceptedRun, task: String, workspace: String, why: String) {
        let ghost = Ghost {
            tenant: run.tenant.clone(),
            status: RunStatus::Failed,
            error: Some(why),
            task,
            workspace,
            provider: String::new(),
            created_at: run.accepted_at.clone(),
        };
        self.inner().ghosts.insert(&run.run_id, ghost);
    }

    /// The ledger's health, for `/ready`.
    pub fn health(&self) -> Result<LedgerHealth, LedgerError> {
        match (&self.sqlite, &self.cluster) {
            (Some(sqlite), _) => sqlite.check_health().map(LedgerHealth::Sqlite),
            (None, Some(cluster)) => cluster.health(),
            (None, None) => Err(LedgerError::Setup {
                path: self.ledger.location().into(),
                reason: "no health check for this ledger".into(),
            }),
        }
    }

    /// Cancels a live or queued run. Returns false when the run is neither, or when its end
    /// is already durable (its driver may still be tearing its worker down, but a reader of
    /// its ledger already sees it ended: there is nothing left to cancel).
    /// Off the async threads: it reads the ledger, and a queued run's cancellation is made
    /// durable before it returns.
    pub fn cancel(&self, run_id: &str, reason: &str) -> bool {
        if self.inner().active.contains_key(run_id) && self.end_is_durable(run_id) {
            return false;
        }
        let mut inner = self.inner();
        if let Some(active) = inner.active.get(run_id) {
            active.cancel.cancel(reason);
            return true;
        }
        let Some(q) = inner.queue.remove(|q| q.run_id == run_id) else {
            return false;
        };
        let accepted = matches!(q.job, Job::Start);
        drop_queued(&mut inner, q, RunStatus::Cancelled, reason);
        self.metrics.set_queue_depth(inner.queue.len());
        drop(inner);
        // Forgotten before the client hears "cancelled": a crash right after must not start
        // it with the next server.
        if accepted && let Err(e) = self.tokens.forget_accepted(run_id) {
            eprintln!("praxis serve: run {run_id}: forgetting its accepted request: {e}");
        }
        true
    }

    /// Whether `run_id`'s ledger holds its `run_finished` (followed, once its end is attested,
    /// by a checkpoint). An unreadable ledger says no: a cancel then goes to the driver,
    /// which ignores it if the run has ended.
    fn end_is_durable(&self, run_id: &str) -> bool {
        self.ledger
            .entries(run_id, 0)
            .is_ok_and(|entries| row_of(&entries).is_some_and(|row| row.finished.is_some()))
    }

    /// Notes a run found interrupted at start.
    pub fn note_recovered(&self, run_id: &str, note: String) {
        self.inner().recovered.insert(run_id.to_string(), note);
    }

    /// Stops admitting runs, cancels the queue and every running run with `reason`, then
    /// waits (at most `grace`) until every driver returned. Returns how many runs were still
    /// running when the grace ran out.
    pub async fn shutdown(&self, reason: &str, grace: std::time::Duration) -> usize {
        {
            let mut inner = self.inner();
            inner.accepting = false;
            // Runs accepted with `POST /v1/runs` start again when the server is back (their
            // request is kept); the others end here.
            let queued: Vec<Queued> = inner.queue.drain();
            for q in queued {
                if matches!(q.job, Job::Start) {
                    let why =
                        format!("{reason}; it had not started and starts when the server is back");
                    drop_queued(&mut inner, q, RunStatus::Interrupted, &why);
                } else {
                    drop_queued(&mut inner, q, RunStatus::Cancelled, reason);
                }
            }
            for active in inner.active.values() {
                active.cancel.cancel(reason);
            }
            self.metrics.set_queue_depth(0);
        }
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            // Register before checking, so a run finishing in between still wakes us.
            let notified = self.finished.notified();
            let left = self.active_count();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.active_count();
            }
        }
    }
}

fn active_known(inner: &Inner, run_id: &str, active: &Active) -> Known {
    Known::Active {
        tenant: active.tenant.clone(),
        hub: active.hub.clone(),
        recovered: inner.recovered.get(run_id).cloned(),
        spec: active.spec.clone(),
        since: active.since.clone(),
    }
}

/// A queued run that will not start here: its followers are told it is done, and it is
/// remembered with `status` and `reason`.
fn drop_queued(inner: &mut Inner, q: Queued, status: RunStatus, reason: &str) {
    q.hub.send(Live::Done);
    let ghost = Ghost {
        tenant: q.tenant,
        status,
        error: Some(reason.to_string()),
        task: q.options.spec.task.clone(),
        workspace: q.options.spec.workspace.clone(),
        provider: q.options.spec.provider.clone(),
        created_at: q.created_at,
    };
    inner.ghosts.insert(&q.run_id, ghost);
}
