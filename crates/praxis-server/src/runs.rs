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
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::{Notify, broadcast};

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
}

impl Hub {
    fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Hub {
            tx: broadcast::channel(capacity.max(1)).0,
            state: Mutex::new(LiveState {
                phase: "queued",
                active_tool: None,
            }),
        })
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
    fn of(tenant: &str, spec: &praxis_core::RunSpec, status: RunStatus, why: String) -> Ghost {
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
const MAX_GHOSTS: usize = 4096;

pub(crate) struct Active {
    pub tenant: String,
    pub hub: Arc<Hub>,
    cancel: Cancel,
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
    ghosts: HashMap<String, Ghost>,
    ghost_order: VecDeque<String>,
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
    },
    Ghost(Ghost),
    Unknown {
        recovered: Option<String>,
    },
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

    fn start(
        self: &Arc<Self>,
        inner: &mut Inner,
        run_id: String,
        tenant: String,
        hub: Arc<Hub>,
        mut options: RunOptions,
        job: Job,
    ) {
        let cancel = options.cancel.clone();
        let lost = cancel.clone();
        options.run_id = Some(run_id.clone());
        hub.set("starting", None);
        *inner.by_tenant.entry(tenant.clone()).or_default() += 1;
        inner.active.insert(
            run_id.clone(),
            Active {
                tenant: tenant.clone(),
                hub: hub.clone(),
                cancel,
            },
        );
        self.metrics.set_active_runs(inner.active.len());
        let manager = self.clone();
        let provider_lane = self.provider_lane(&options.spec.provider);
        let cancel = options.cancel.clone();
        tokio::spawn(async move {
            // The provider's bound: wait for its lane (tenants in turn); a run cancelled
            // while it waits goes on to record its cancellation.
            let _provider_slot = match &provider_lane {
                Some(lane) => {
                    hub.set("waiting_for_provider", None);
                    let permit = tokio::select! {
                        permit = lane.acquire(&tenant) => Some(permit),
                        _ = cancel.wait() => None,
                    };
                    hub.set("starting", None);
                    permit
                }
                None => None,
            };
            let observer = HubObserver {
                run_id: run_id.clone(),
                tenant: tenant.clone(),
                hub: hub.clone(),
                tokens: manager.tokens.clone(),
                metrics: manager.metrics.clone(),
            };
            let spec = options.spec.clone();
            // A new run placed elsewhere (a Kubernetes Job): its pod records it; no lease
            // here, the pod's appends must not be fenced off.
            if let (Job::Start, Some(executor)) = (&job, manager.executor.get().cloned()) {
                let end = executor.drive(run_id.clone(), options, hub.clone()).await;
                manager.forget_accepted(&run_id);
                manager.finish_remote(&run_id, &tenant, &spec, end);
                return;
            }
            let accepted = matches!(job, Job::Start);
            // On a shared ledger, the lease first: exactly one server drives a run.
            let mut renewing = None;
            if let Some(cluster) = manager.cluster.clone() {
                match cluster.acquire(&run_id).await {
                    Ok(true) => {
                        // A new run another server started meanwhile (this one was taken
                        // for dead while the run waited here) is not started twice.
                        if matches!(job, Job::Start) && manager.has_entries(&run_id).await {
                            cluster.release(&run_id).await;
                            let why = "another server started it".to_string();
                            let refused = RuntimeError::NotResumable {
                                run_id: run_id.clone(),
                                why,
                            };
                            manager.finish(&run_id, &tenant, &spec, Err(refused));
                            return;
                        }
                        renewing = Some(cluster.keep(run_id.clone(), move || {
                            lost.cancel(
                                "another server took the run over (this server's lease expired)",
                            )
                        }));
                    }
                    Ok(false) => {
                        let why = "another server drives it (it holds the run's lease)".to_string();
                        let refused = RuntimeError::NotResumable {
                            run_id: run_id.clone(),
                            why,
                        };
                        manager.finish(&run_id, &tenant, &spec, Err(refused));
                        return;
                    }
                    Err(source) => {
                        let failed = RuntimeError::Ledger {
                            run_id: run_id.clone(),
                            source: Box::new(source),
                        };
                        manager.finish(&run_id, &tenant, &spec, Err(failed));
                        return;
                    }
                }
            }
            let result = match job {
                Job::Start => manager.runtime.run(options, &observer).await,
                Job::Resume => manager.runtime.resume(&run_id, options, &observer).await,
                Job::Branch(from) => manager
                    .runtime
                    .branch(*from, options, &observer)
                    .await
                    .map(|(report, point)| {
                        if !point.missing.is_empty() {
                            eprintln!(
                                "praxis serve: branch {run_id}: {} file(s) of the origin's world had no recorded content and are missing from its workspace: {}",
                                point.missing.len(),
                                point.missing.join(", ")
                            );
                        }
                        report
                    }),
            };
            if let (Some(stop), Some(cluster)) = (renewing, manager.cluster.clone()) {
                let _ = stop.send(());
                cluster.release(&run_id).await;
            }
            if accepted {
                manager.forget_accepted(&run_id);
            }
            manager.finish(&run_id, &tenant, &spec, result);
        });
    }

    /// Whether the ledger holds any entry of `run_id` (an unreadable ledger says yes: the
    /// caller then does not start the run).
    async fn has_entries(&self, run_id: &str) -> bool {
        let (ledger, run_id) = (self.ledger.clone(), run_id.to_string());
        tokio::task::spawn_blocking(move || ledger.entries(&run_id, 0).map(|e| !e.is_empty()))
            .await
            .map_or(true, |read| read.unwrap_or(true))
    }

    /// The run ended (or was cancelled before it started): its accepted request is no
    /// longer needed. Off the async threads; a failure only leaves a row that the next
    /// start prunes.
    fn forget_accepted(&self, run_id: &str) {
        let (tokens, run_id) = (self.tokens.clone(), run_id.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = tokens.forget_accepted(&run_id) {
                eprintln!("praxis serve: run {run_id}: forgetting its accepted request: {e}");
            }
        });
    }

    fn finish(
        self: &Arc<Self>,
        run_id: &str,
        tenant: &str,
        spec: &praxis_core::RunSpec,
        result: Result<RunReport, RuntimeError>,
    ) {
        let mut inner = self.inner();
        self.release(&mut inner, run_id, tenant);
        if let Err(RuntimeError::NotResumable { why, .. }) = &result {
            // Nothing was written: the run stays as its ledger says.
            eprintln!("praxis serve: run {run_id} was not resumed: {why}");
            inner
                .recovered
                .insert(run_id.to_string(), format!("resume refused: {why}"));
        } else if let Err(error) = result {
            // No `run_finished` was written: without this the run would look like it is
            // still running for as long as this process lives.
            eprintln!("praxis serve: run {run_id} failed: {error}");
            let ghost = Ghost::of(tenant, spec, RunStatus::Failed, error.to_string());
            remember_ghost(&mut inner, run_id, ghost);
        }
        self.settle(inner);
    }

    /// A run placed elsewhere ended; `end` says how when its ledger does not.
    fn finish_remote(
        self: &Arc<Self>,
        run_id: &str,
        tenant: &str,
        spec: &praxis_core::RunSpec,
        end: crate::executor::RemoteEnd,
    ) {
        let mut inner = self.inner();
        self.release(&mut inner, run_id, tenant);
        if let Some((status, why)) = end {
            eprintln!(
                "praxis serve: run {run_id} ended {}: {why}",
                status.as_str()
            );
            remember_ghost(&mut inner, run_id, Ghost::of(tenant, spec, status, why));
        }
        self.settle(inner);
    }

    /// A run's slot is free: its followers are told it is done.
    fn release(&self, inner: &mut Inner, run_id: &str, tenant: &str) {
        if let Some(active) = inner.active.remove(run_id) {
            active.hub.set("finished", None);
            active.hub.send(Live::Done);
        }
        if let Some(count) = inner.by_tenant.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.by_tenant.remove(tenant);
            }
        }
    }

    /// After a run ended: queued runs start, the gauges follow, shutdown's wait wakes.
    fn settle(self: &Arc<Self>, mut inner: MutexGuard<'_, Inner>) {
        self.schedule(&mut inner);
        self.metrics.set_active_runs(inner.active.len());
        self.metrics.set_queue_depth(inner.queue.len());
        drop(inner);
        self.finished.notify_waiters();
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
            return Known::Active {
                tenant: active.tenant.clone(),
                hub: active.hub.clone(),
                recovered: inner.recovered.get(run_id).cloned(),
            };
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
        for id in inner.ghost_order.iter().rev() {
            if let Some(g) = inner.ghosts.get(id) {
                out.push((id.clone(), Known::Ghost(g.clone())));
            }
        }
        out
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
        remember_ghost(&mut self.inner(), &run.run_id, ghost);
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

    /// Cancels a live or queued run. Returns false when the run is neither.
    pub fn cancel(&self, run_id: &str, reason: &str) -> bool {
        let mut inner = self.inner();
        if let Some(active) = inner.active.get(run_id) {
            active.cancel.cancel(reason);
            return true;
        }
        if let Some(q) = inner.queue.remove(|q| q.run_id == run_id) {
            if matches!(q.job, Job::Start) {
                self.forget_accepted(run_id);
            }
            drop_queued(&mut inner, q, RunStatus::Cancelled, reason);
            self.metrics.set_queue_depth(inner.queue.len());
            return true;
        }
        false
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
    remember_ghost(inner, &q.run_id, ghost);
}

fn remember_ghost(inner: &mut Inner, run_id: &str, ghost: Ghost) {
    if inner.ghosts.insert(run_id.to_string(), ghost).is_none() {
        inner.ghost_order.push_back(run_id.to_string());
    }
    while inner.ghost_order.len() > MAX_GHOSTS {
        if let Some(old) = inner.ghost_order.pop_front() {
            inner.ghosts.remove(&old);
        }
    }
}

/// Feeds a run's live events to its hub (and the metrics). Sub-runs started by `delegate`
/// report through the same observer: they belong to the parent's tenant, and their entries
/// go to their own feed (read from the ledger), not the parent's.
struct HubObserver {
    run_id: String,
    tenant: String,
    hub: Arc<Hub>,
    tokens: Arc<TokenStore>,
    metrics: Arc<Metrics>,
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

/// Counters of a run, from its entries: model calls, tool executions, token usage.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Counters {
    pub steps: u64,
    pub tool_calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Money the model calls cost by the run's price table, in millionths of a US dollar.
    pub cost_usd_micros: u64,
}

impl Counters {
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut c = Counters::default();
        for e in entries {
            match e.kind.as_str() {
                kinds::MODEL_RESPONSE => {
                    c.steps += 1;
                    if let Ok(Record::ModelResponse(response)) =
                        Record::from_entry(&e.kind, &e.payload)
                    {
                        c.input_tokens += response.usage.input_tokens;
                        c.output_tokens += response.usage.output_tokens;
                        c.cost_usd_micros += response.cost_usd_micros.unwrap_or(0);
                    }
                }
                kinds::EXECUTION => c.tool_calls += 1,
                _ => {}
            }
        }
        c
    }
}

/// A `RunRow` (what `overview` reads) built from one run's entries, so looking at one run
/// does not list every run.
pub(crate) fn row_of(entries: &[Entry]) -> Option<praxis_ledger::RunRow> {
    let first = entries.first()?;
    let last = entries.last()?;
    let finished: Option<Value> = entries
        .iter()
        .rev()
        .find(|e| e.kind == praxis_ledger::RUN_FINISHED_KIND)
        .map(|e| e.payload.clone());
    Some(praxis_ledger::RunRow {
        run_id: first.run_id.clone(),
        started_at: first.at.clone(),
        started: first.payload.clone(),
        finished,
        resumed: entries
            .iter()
            .rev()
            .find(|e| e.kind == praxis_ledger::RUN_RESUMED_KIND)
            .map(|e| e.payload.clone()),
        last_seq: last.seq,
        last_kind: last.kind.clone(),
    })
}

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
