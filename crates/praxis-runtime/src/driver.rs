//! The async driver: runs the kernel's commands in order, making each batch of records
//! durable before the command that follows it (write-ahead), and feeding results back.

use crate::approval::{Approver, FixedDecision};
use crate::branch::{BranchFrom, BranchPoint, branch_point, materialise};
use crate::home::{DataHome, WorkspaceOrigin};
use crate::host::environment;
use crate::observer::ObserverDeltas;
pub use crate::observer::{LiveEvent, NoObserver, RunObserver};
use crate::replay::{self, ReplayError, ReplayReport, Until};
use praxis_core::record::{BranchOrigin, Manifest};
use praxis_core::{
    Authority, Command, Effect, Event, ExecRequest, Kernel, KernelError, Millis, Observation,
    PriceTable, RunResult, RunSpec, Spent,
};
use praxis_ledger::checkpoint::{CHECKPOINT_KIND, CheckpointKey, checkpoint_payload};
use praxis_ledger::{Entry, Ledger, LedgerError, NewEntry, now_rfc3339};
use praxis_models::Provider;
use praxis_tools::tools::delegate;
use praxis_tools::{CaptureLimits, ExecContext, Registry, ToolLimits, Tracking, Workspace};
use praxis_writ::TrustAnchor;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("workspace `{path}`: {source}")]
    Workspace {
        path: String,
        source: praxis_tools::WorkspaceError,
    },
    /// Nothing may run without its record being durable, so a ledger failure stops the run.
    #[error("ledger write failed for run {run_id}; the run was stopped: {source}")]
    Ledger {
        run_id: String,
        source: Box<LedgerError>,
    },
    #[error("internal error in run {run_id}: {source}")]
    Kernel { run_id: String, source: KernelError },
    #[error("workspace {0}")]
    WorkspaceRefused(crate::home::WorkspaceRefused),
    #[error("writ refused: {0}")]
    Writ(praxis_writ::WritError),
    #[error("workspace capture failed: {0}")]
    Capture(String),
    /// The recorded run cannot be re-driven (missing, unreadable, or refused by the kernel).
    #[error(transparent)]
    Restore(Box<ReplayError>),
    /// The task driving an outside client's session ([`crate::session`]) failed.
    #[error("session run failed: {0}")]
    Session(String),
    #[error("run {run_id} cannot be resumed: {why}")]
    NotResumable { run_id: String, why: String },
    #[error("cannot branch run {run_id} at seq {at}: {why}")]
    Branch {
        run_id: String,
        at: u64,
        why: String,
    },
}

impl From<ReplayError> for RuntimeError {
    fn from(error: ReplayError) -> Self {
        RuntimeError::Restore(Box::new(error))
    }
}

/// Cancellation handle: `cancel(reason)` stops the run at the next await point, killing a
/// running tool's process group.
#[derive(Clone)]
pub struct Cancel(watch::Sender<Option<String>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(watch::channel(None).0)
    }
}

impl Cancel {
    pub fn cancel(&self, reason: impl Into<String>) {
        self.0.send_replace(Some(reason.into()));
    }
    /// Resolves with the reason once the run is cancelled.
    pub async fn wait(&self) -> String {
        Self::cancelled(self.0.subscribe()).await
    }
    async fn cancelled(mut rx: watch::Receiver<Option<String>>) -> String {
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // Sender gone without a cancel: never resolves.
                std::future::pending::<()>().await;
            }
        }
    }
}

pub struct RunOptions {
    pub spec: RunSpec,
    pub provider: Arc<dyn Provider>,
    /// The writ the run acts under, verified by `Runtime::run` before anything runs
    /// (None: only the run's own policy applies, and `delegate` is refused).
    pub writ: Option<WritGrant>,
    /// Who answers proposals that need approval.
    pub approver: Arc<dyn Approver>,
    pub prices: PriceTable,
    /// Set for a sub-run started by `delegate`: recorded in its `run_started`.
    pub parent: Option<ParentLink>,
    /// Set for a run an outside client drives call by call (an MCP session): recorded in
    /// its `run_started` as `environment.client`.
    pub client: Option<praxis_core::session::SessionClient>,
    pub tool_limits: ToolLimits,
    pub capture: CaptureLimits,
    pub cancel: Cancel,
    /// When set, the driver signs the chain head in a `checkpoint` entry after the run ends
    /// (and every [`CHECKPOINT_EVERY`] entries), so an export verifies offline.
    pub checkpoint_key: Option<Arc<CheckpointKey>>,
    /// The run's id, when the caller must know it before the run starts (a server answering
    /// `201 {id}`); a fresh ULID otherwise. Must be unused in the ledger.
    pub run_id: Option<String>,
}

/// How many entries may follow the last checkpoint before a flush point signs a new one.
pub const CHECKPOINT_EVERY: u64 = 64;

impl RunOptions {
    pub fn new(spec: RunSpec, provider: Arc<dyn Provider>) -> Self {
        RunOptions {
            spec,
            provider,
            writ: None,
            parent: None,
            client: None,
            approver: Arc::new(FixedDecision::never()),
            prices: PriceTable::default(),
            tool_limits: ToolLimits::default(),
            capture: CaptureLimits::default(),
            cancel: Cancel::default(),
            checkpoint_key: None,
            run_id: None,
        }
    }
}

/// A fresh run id: a lowercase ULID, so ids sort by creation time.
pub fn new_run_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// A writ token and the trust anchor it must chain to.
#[derive(Clone, Debug)]
pub struct WritGrant {
    pub token: String,
    pub anchor: TrustAnchor,
}

/// Which run and call started a sub-run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ParentLink {
    pub run_id: String,
    pub call_id: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RunReport {
    pub run_id: String,
    #[serde(flatten)]
    pub result: RunResult,
    /// What the run consumed, its sub-runs included: what a delegating parent is charged.
    #[serde(skip)]
    pub spent: Spent,
    /// The conversation as it ended (system prompt first, the final reply last): what an
    /// embedder keeps as the next turn's history. Compaction may have shortened it.
    #[serde(skip)]
    pub conversation: Arc<Vec<praxis_core::Message>>,
}

/// The runtime: one ledger and one tool registry shared by any number of runs.
#[derive(Clone)]
pub struct Runtime {
    ledger: Arc<dyn Ledger>,
    registry: Arc<Registry>,
    /// The data dir no run may reach (see [`DataHome::admit_workspace`]).
    home: Option<DataHome>,
}

impl Runtime {
    pub fn new(ledger: Arc<dyn Ledger>, registry: Arc<Registry>) -> Self {
        Runtime {
            ledger,
            registry,
            home: None,
        }
    }

    /// A runtime that refuses any workspace reaching `home`, the data dir it keeps its
    /// ledger and keys in (workspaces it made under `home/workspaces/` excepted).
    pub fn with_home(mut self, home: DataHome) -> Self {
        self.home = Some(home);
        self
    }

    /// Refuses a workspace that reaches the data dir.
    fn admit(&self, workspace: &Path) -> Result<(), RuntimeError> {
        match &self.home {
            Some(home) => home
                .admit_new_workspace(workspace, WorkspaceOrigin::RuntimeMade)
                .map(drop)
                .map_err(RuntimeError::WorkspaceRefused),
            None => Ok(()),
        }
    }

    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// `run`, boxed: a sub-run started by `delegate` runs inside its parent's run.
    pub(crate) fn run_boxed<'a>(
        &'a self,
        options: RunOptions,
        observer: &'a dyn RunObserver,
    ) -> praxis_ledger::BoxFuture<'a, Result<RunReport, RuntimeError>> {
        Box::pin(self.run_observed(options, observer))
    }

    /// `Runtime::run` (see `trace`) without the trace sink.
    pub(crate) async fn run_observed(
        &self,
        mut options: RunOptions,
        observer: &dyn RunObserver,
    ) -> Result<RunReport, RuntimeError> {
        self.admit(Path::new(&options.spec.workspace))?;
        let workspace = open_workspace(&options.spec.workspace)?;
        options.spec.workspace = workspace.root().display().to_string();
        let authority = verify_writ(&options)?;
        if options.spec.model.is_empty() {
            options.spec.model = options.provider.model().to_string();
        }
        let run_id = options.run_id.clone().unwrap_or_else(new_run_id);
        let mut kernel = Kernel::new(options.spec.clone(), self.registry.clone())
            .with_prices(options.prices.clone());
        kernel.set_authority(authority);
        let (mut drive, manifest) = self
            .open_drive(run_id, &workspace, &options, kernel.authority(), observer)
            .await?;
        let mut environment = environment(&drive.ctx);
        if let Some(parent) = &options.parent {
            environment["parent"] = json!(parent);
        }
        if let Some(client) = &options.client {
            environment["client"] = json!(client);
        }
        let start = Event::Start {
            now: now_millis(),
            environment,
            workspace_files: Some(manifest),
        };
        let context = self.context(&options, &kernel);
        drive.run(&mut kernel, start, &context).await
    }

    /// `Runtime::resume` (see `trace`) without the trace sink.
    pub(crate) async fn resume_observed(
        &self,
        run_id: &str,
        mut options: RunOptions,
        observer: &dyn RunObserver,
    ) -> Result<RunReport, RuntimeError> {
        let not_resumable = |why: String| RuntimeError::NotResumable {
            run_id: run_id.to_string(),
            why,
        };
        let row = self
            .ledger
            .runs()
            .map_err(|source| RuntimeError::Ledger {
                run_id: run_id.to_string(),
                source: Box::new(source),
            })?
            .into_iter()
            .find(|r| r.run_id == run_id)
            .ok_or_else(|| not_resumable("no such run".into()))?;
        let status = crate::status::overview(&row).status;
        if status != praxis_core::RunStatus::Interrupted {
            return Err(not_resumable(format!(
                "it is {} (only an interrupted run, whose driver is gone, can be resumed)",
                status.as_str()
            )));
        }
        let restored = replay::restore(&*self.ledger, self.registry.clone(), run_id, Until::End)?;
        if let ReplayReport::Diverged { seq, detail, .. } = &restored.report {
            return Err(not_resumable(format!(
                "its record does not replay at seq {seq}: {detail}"
            )));
        }
        if restored.waiting.is_none() {
            return Err(not_resumable("its record ends finished".into()));
        }
        // A `delegate` call in flight: its sub-runs' spending is charged (their records
        // hold it). A call already suspended for approval was charged when suspended.
        let interrupted_child_spent = match &restored.waiting {
            Some(Command::Execute(request)) if request.tool == delegate::NAME => {
                crate::delegate::interrupted_spent(
                    &*self.ledger,
                    self.registry.clone(),
                    run_id,
                    &request.call_id,
                )?
            }
            _ => None,
        };
        let mut kernel = restored.kernel;
        options.spec = kernel.spec().clone();
        self.admit(Path::new(&options.spec.workspace))?;
        let workspace = open_workspace(&options.spec.workspace)?;
        if options.writ.is_some() {
            kernel.set_authority(verify_writ(&options)?);
        }
        let (mut drive, _manifest) = self
            .open_drive(
                run_id.to_string(),
                &workspace,
                &options,
                kernel.authority(),
                observer,
            )
            .await?;
        // The chain goes on from its recorded head; the run's end gets a checkpoint.
        drive.head = restored.last;
        drive.unattested = 1;
        let resume = Event::Resume {
            now: now_millis(),
            environment: environment(&drive.ctx),
            interrupted_child_spent,
        };
        let context = self.context(&options, &kernel);
        drive.run(&mut kernel, resume, &context).await
    }

    /// `Runtime::branch` (see `trace`) without the trace sink.
    pub(crate) async fn branch_observed(
        &self,
        from: BranchFrom,
        mut options: RunOptions,
        observer: &dyn RunObserver,
    ) -> Result<(RunReport, BranchPoint), RuntimeError> {
        let point = branch_point(&*self.ledger, &from)?;
        let restored = replay::restore(
            &*self.ledger,
            self.registry.clone(),
            &from.run_id,
            Until::ModelCallAnsweredAt(point.seq + 1),
        )?;
        let branch_error = |why: String| RuntimeError::Branch {
            run_id: from.run_id.clone(),
            at: from.at,
            why,
        };
        if let ReplayReport::Diverged { seq, detail, .. } = &restored.report {
            return Err(branch_error(format!(
                "its record does not replay at seq {seq}: {detail}"
            )));
        }
        let mut kernel = restored.kernel;
        let link = restored
            .last
            .filter(|_| kernel.awaits_model())
            .ok_or_else(|| {
                branch_error(format!(
                    "the run does not wait for the model after seq {}",
                    point.seq
                ))
            })?;
        // A branch's script answers the branch's first new model call with its first turn.
        if let Some(provider) = options.provider.for_branch(kernel.steps()) {
            options.provider = provider;
        }
        let mut point = point;
        self.admit(&from.workspace)?;
        point.missing = materialise(&*self.ledger, &from, link.seq, &from.workspace)?;
        let workspace = open_workspace(&from.workspace.display().to_string())?;
        let mut spec = kernel.spec().clone();
        spec.workspace = workspace.root().display().to_string();
        spec.provider = options.provider.name().to_string();
        spec.model = options.provider.model().to_string();
        if let Some(max_steps) = from.max_steps {
            spec.limits.max_steps = max_steps;
        }
        options.spec = spec.clone();
        if options.writ.is_some() {
            kernel.set_authority(verify_writ(&options)?);
        }
        let run_id = options.run_id.clone().unwrap_or_else(new_run_id);
        let (mut drive, manifest) = self
            .open_drive(run_id, &workspace, &options, kernel.authority(), observer)
            .await?;
        let branch = Event::Branch {
            now: now_millis(),
            spec: Box::new(spec),
            environment: environment(&drive.ctx),
            origin: BranchOrigin {
                run_id: from.run_id.clone(),
                seq: link.seq,
                hash: link.hash.clone(),
            },
            note: from.note.clone(),
            workspace_files: Some(manifest),
        };
        let context = self.context(&options, &kernel);
        let report = drive.run(&mut kernel, branch, &context).await?;
        Ok((report, point))
    }

    /// A driver for run `run_id` in `workspace`, with the workspace's state captured (the
    /// baseline for tracking what tools change). Returns the start manifest too.
    async fn open_drive<'o>(
        &self,
        run_id: String,
        workspace: &Workspace,
        options: &RunOptions,
        authority: Option<&Arc<dyn Authority>>,
        observer: &'o dyn RunObserver,
    ) -> Result<(Drive<'o>, Manifest), RuntimeError> {
        let mut tool_limits = options.tool_limits.clone();
        // `.git` is read-only to commands unless the writ grants their tools write there.
        tool_limits.sandbox.git_writable |= authority.is_some_and(|writ| {
            writ.commands_write_git(&self.registry.names_with_effect(Effect::Exec))
        });
        let driving = crate::live::Driving::start(&run_id);
        let mut drive = Drive {
            run_id,
            ledger: self.ledger.clone(),
            registry: self.registry.clone(),
            // The fabric (worker or in-process) and sandbox the settings in
            // `tool_limits.sandbox` ask for, as far as this host supports them.
            ctx: ExecContext::for_run_with(
                workspace.clone(),
                tool_limits,
                self.registry.manifests(),
            )
            .await,
            tracker: None,
            blobs: Vec::new(),
            in_flight: Vec::new(),
            observer,
            checkpoint_key: options.checkpoint_key.clone(),
            head: None,
            unattested: 0,
            _driving: driving,
        };
        // Where the run's file tools run (the worker, when it has one): this process never
        // opens a workspace file then.
        // The data dir's blob cap: this run stores at most what is left of it.
        let stored = self
            .ledger
            .blob_bytes()
            .map_err(|source| RuntimeError::Ledger {
                run_id: drive.run_id.clone(),
                source: Box::new(source),
            })?;
        let mut limits = options.capture.clone().with_data_dir_holding(stored);
        // Git metadata a call plants is stripped after it, unless the writ grants commands
        // write access to `.git`.
        limits.git.sweep = !drive.ctx.limits.sandbox.git_writable;
        let (tracker, manifest, blobs) = Tracking::capture(&drive.ctx, limits)
            .await
            .map_err(RuntimeError::Capture)?;
        drive.tracker = Some(tracker);
        drive.blobs = blobs;
        Ok((drive, manifest))
    }

    fn context<'a>(&'a self, options: &'a RunOptions, kernel: &Kernel) -> RunContext<'a> {
        RunContext {
            provider: &*options.provider,
            approver: &*options.approver,
            approval_timeout: kernel
                .authority()
                .and_then(|a| a.approval_timeout_ms())
                .map(Duration::from_millis),
            cancel: &options.cancel,
            runtime: self,
            options,
        }
    }
}

fn open_workspace(path: &str) -> Result<Workspace, RuntimeError> {
    Workspace::new(path).map_err(|source| RuntimeError::Workspace {
        path: path.to_string(),
        source,
    })
}

/// A forged, tampered, expired or foreign writ is refused before anything is recorded or runs.
fn verify_writ(options: &RunOptions) -> Result<Option<Arc<dyn Authority>>, RuntimeError> {
    match &options.writ {
        Some(grant) => Ok(Some(Arc::new(
            praxis_writ::verify(&grant.token, &grant.anchor, SystemTime::now())
                .map_err(RuntimeError::Writ)?,
        ))),
        None => Ok(None),
    }
}

/// What one run is driven with, besides its kernel and ledger.
pub(crate) struct RunContext<'a> {
    pub(crate) runtime: &'a Runtime,
    pub(crate) options: &'a RunOptions,
    pub(crate) provider: &'a dyn Provider,
    approver: &'a dyn Approver,
    approval_timeout: Option<Duration>,
    cancel: &'a Cancel,
}

struct Drive<'o> {
    run_id: String,
    ledger: Arc<dyn Ledger>,
    registry: Arc<Registry>,
    ctx: ExecContext,
    tracker: Option<Tracking>,
    /// Blob contents waiting to be appended with the next batch of records.
    blobs: Vec<Vec<u8>>,
    /// Batches submitted to the ledger and not yet known to be durable.
    in_flight: Vec<AppendFuture>,
    observer: &'o dyn RunObserver,
    checkpoint_key: Option<Arc<CheckpointKey>>,
    /// The last entry known to be durable: what a checkpoint signs.
    head: Option<Entry>,
    /// Durable entries since the last checkpoint.
    unattested: u64,
    /// This process drives the run while the drive lives (see `live`).
    _driving: crate::live::Driving,
}

impl Drive<'_> {
    async fn run(
        &mut self,
        kernel: &mut Kernel,
        first: Event,
        context: &RunContext<'_>,
    ) -> Result<RunReport, RuntimeError> {
        let (provider, cancel) = (context.provider, context.cancel);
        let mut event = first;
        loop {
            // A tool list that changed is taken in before the event that leads to the next
            // model call, so that call offers the new tools.
            if matches!(
                event,
                Event::ToolFinished { .. } | Event::ApprovalDecided { .. }
            ) {
                self.follow_tool_changes(kernel).await?;
            }
            let commands = kernel
                .handle(event)
                .map_err(|source| RuntimeError::Kernel {
                    run_id: self.run_id.clone(),
                    source,
                })?;
            let mut batch = Vec::new();
            let mut next = None;
            for command in commands {
                match command {
                    Command::Record(record) => batch.push(NewEntry {
                        kind: record.kind().to_string(),
                        payload: record.to_payload(),
                        at: now_rfc3339(),
                    }),
                    // A model call changes nothing in the world, so the records before it are
                    // made durable while the model thinks; the outcome waits for both.
                    Command::CallModel(request) => {
                        self.submit(std::mem::take(&mut batch));
                        self.observer
                            .on_event(&self.run_id, LiveEvent::ModelCall { step: request.step });
                        let pending = std::mem::take(&mut self.in_flight);
                        let (reply, durable) = tokio::join!(
                            call_model(&self.run_id, self.observer, provider, &request, cancel),
                            settle(pending, &self.run_id, self.observer)
                        );
                        self.settled(durable?);
                        next = Some(reply);
                    }
                    // Write-ahead: everything recorded so far is durable before the next act.
                    other => {
                        self.submit(std::mem::take(&mut batch));
                        let pending = std::mem::take(&mut self.in_flight);
                        let settled = settle(pending, &self.run_id, self.observer).await?;
                        self.settled(settled);
                        // The run's end is always attested; during the run, at most every
                        // CHECKPOINT_EVERY entries (a signature per batch would be waste).
                        let finishing = matches!(other, Command::Finish(_));
                        if finishing || self.unattested >= CHECKPOINT_EVERY {
                            self.checkpoint().await?;
                        }
                        match other {
                            Command::Execute(request) => {
                                let spent = kernel.spent(now_millis());
                                next = Some(self.execute(request, spent, context).await?)
                            }
                            Command::AwaitApproval(proposal) => {
                                self.observer.on_event(
                                    &self.run_id,
                                    LiveEvent::AwaitingApproval {
                                        proposal: &proposal,
                                    },
                                );
                                let decision = context.approver.decide(
                                    &self.run_id,
                                    &proposal,
                                    context.approval_timeout,
                                );
                                next = Some(tokio::select! {
                                    biased;
                                    reason = Cancel::cancelled(cancel.0.subscribe()) => Event::Cancel { now: now_millis(), reason },
                                    outcome = decision => Event::ApprovalDecided {
                                        now: now_millis(),
                                        call_id: proposal.call_id.clone(),
                                        approved: outcome.approved,
                                        by: outcome.by,
                                        reason: outcome.reason,
                                    },
                                });
                            }
                            Command::Finish(result) => {
                                return Ok(RunReport {
                                    run_id: self.run_id.clone(),
                                    result,
                                    spent: kernel.spent(now_millis()),
                                    conversation: kernel.messages().clone(),
                                });
                            }
                            Command::Record(_) | Command::CallModel(_) => {
                                unreachable!("handled above")
                            }
                        }
                    }
                }
            }
            self.submit(batch);
            event = next.ok_or_else(|| RuntimeError::Kernel {
                run_id: self.run_id.clone(),
                source: KernelError::UnexpectedEvent {
                    event: "none",
                    phase: "stalled without a command",
                },
            })?;
        }
    }

    /// When the outside tools changed (an MCP server's list), refreshes them, hands the
    /// kernel the new registry (recorded as `tools_changed`) and runs calls with it.
    async fn follow_tool_changes(&mut self, kernel: &mut Kernel) -> Result<(), RuntimeError> {
        let Some((updates, seen)) = self.registry.updates().map(|(u, g)| (u.clone(), g)) else {
            return Ok(());
        };
        if updates.generation() == seen {
            return Ok(());
        }
        let refresh = updates.refresh().await;
        let (registry, _refused) = self
            .registry
            .with_outside_tools(refresh.tools, refresh.generation);
        self.registry = Arc::new(registry);
        let change = Event::ToolsChanged {
            now: now_millis(),
            source: refresh.source,
            contracts: praxis_core::ContractSet(self.registry.clone()),
        };
        let commands = kernel
            .handle(change)
            .map_err(|source| RuntimeError::Kernel {
                run_id: self.run_id.clone(),
                source,
            })?;
        let batch = commands
            .into_iter()
            .filter_map(|command| match command {
                Command::Record(record) => Some(NewEntry {
                    kind: record.kind().to_string(),
                    payload: record.to_payload(),
                    at: now_rfc3339(),
                }),
                _ => None,
            })
            .collect();
        self.submit(batch);
        Ok(())
    }

    /// Notes what `settle` made durable.
    fn settled(&mut self, settled: Settled) {
        self.unattested += settled.count;
        if settled.last.is_some() {
            self.head = settled.last;
        }
    }

    /// Appends a `checkpoint` signing the durable head (nothing in flight: called right after
    /// a settle) and waits until it is durable. The driver writes it, not the kernel: it is an
    /// attestation of the record, not a decision.
    async fn checkpoint(&mut self) -> Result<(), RuntimeError> {
        let (Some(key), Some(head)) = (&self.checkpoint_key, &self.head) else {
            return Ok(());
        };
        if head.kind == CHECKPOINT_KIND || self.unattested == 0 {
            return Ok(());
        }
        let payload = checkpoint_payload(key, &self.run_id, head.seq, &head.hash);
        let append = self.ledger.append(
            &self.run_id,
            vec![NewEntry::now(CHECKPOINT_KIND, payload)],
            Vec::new(),
        );
        let settled = settle(vec![append], &self.run_id, self.observer).await?;
        self.head = settled.last;
        self.unattested = 0;
        Ok(())
    }

    /// Queues a batch (with the blobs it references) in the ledger; `settle` waits for it.
    /// The ledger takes requests in submission order, so the chain order is the kernel's.
    fn submit(&mut self, batch: Vec<NewEntry>) {
        if batch.is_empty() {
            return;
        }
        let blobs = std::mem::take(&mut self.blobs);
        self.in_flight
            .push(self.ledger.append(&self.run_id, batch, blobs));
    }

    /// Runs one call; `spent` is what the run has consumed so far (a `delegate` gives its
    /// sub-run at most what is left).
    async fn execute(
        &mut self,
        request: ExecRequest,
        spent: Spent,
        context: &RunContext<'_>,
    ) -> Result<Event, RuntimeError> {
        let cancel = context.cancel;
        self.observer.on_event(
            &self.run_id,
            LiveEvent::ToolStarted {
                call_id: &request.call_id,
                tool: &request.tool,
            },
        );
        self.ctx.deadline = request.deadline.map(instant_of);
        let started = Instant::now();
        let delegating = request.tool == delegate::NAME;
        // The run's deadline holds even while a tool hangs (a read blocked on a FIFO, a
        // stuck thread): the call is abandoned there and the kernel stops the run.
        let deadline_at = self.ctx.deadline;
        let deadline = async move {
            match deadline_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let ended = tokio::select! {
            biased;
            // Dropping the tool future kills its process group.
            reason = Cancel::cancelled(cancel.0.subscribe()) => Ended::Cancelled(reason),
            () = deadline => Ended::Deadline,
            // A sub-run shares the cancel handle and stops by itself.
            observation = crate::delegate::delegate(&self.run_id, self.observer, &request, spent, context), if delegating => Ended::Done(observation),
            observation = self.registry.execute(&self.ctx, &request.tool, request.arguments.clone()), if !delegating => Ended::Done(observation),
        };
        // At or past the deadline when it struck, so the kernel stops the run there.
        let mut now = now_millis();
        let mut observation = match ended {
            Ended::Done(observation) => observation,
            Ended::Cancelled(reason) => {
                // A call that does not answer its cancel (blocked in the kernel) dies with
                // its worker; the next call starts a new one.
                // The sweep waits until every process of the call is gone.
                if let Err(why) = self.ctx.abandon_calls_in_flight().await {
                    eprintln!(
                        "praxis: after the cancel, the call's processes were not confirmed \
                         gone before the git metadata sweep: {why}"
                    );
                }
                // What the cancelled call planted in git metadata is stripped all the same.
                if request.effect >= Effect::Write {
                    let mut dropped = Observation::error(String::new());
                    if let Err(e) = self.track_changes(&request, &mut dropped).await {
                        eprintln!("praxis: after the cancel: {e}");
                    } else if !dropped.git_removed.is_empty() {
                        eprintln!(
                            "praxis: after the cancel, removed git metadata the call planted: {}",
                            dropped.git_removed.join(", ")
                        );
                    }
                }
                return Ok(Event::Cancel { now, reason });
            }
            Ended::Deadline => {
                // The sweep below waits until every process of the call is gone.
                let confirmed = self.ctx.abandon_calls_in_flight().await;
                now = now.max(request.deadline.unwrap_or(0));
                let mut message = format!(
                    "`{}` was stopped at the run's deadline (max_seconds) and abandoned",
                    request.tool
                );
                if let Err(why) = confirmed {
                    message.push_str(&format!(
                        "; its processes were not confirmed gone before the git metadata \
                         sweep: {why}"
                    ));
                }
                Observation {
                    status: praxis_core::ExecStatus::Timeout,
                    ..Observation::error(message)
                }
            }
        };
        if observation.duration_ms == 0 {
            observation.duration_ms = started.elapsed().as_millis() as u64;
        }
        if request.effect >= Effect::Write || delegating {
            self.track_changes(&request, &mut observation).await?;
        }
        Ok(Event::ToolFinished {
            now: now.max(now_millis()),
            call_id: request.call_id,
            observation,
        })
    }

    /// Records which workspace files the call changed, storing their new contents as blobs.
    async fn track_changes(
        &mut self,
        request: &ExecRequest,
        observation: &mut Observation,
    ) -> Result<(), RuntimeError> {
        let Some(tracker) = &self.tracker else {
            return Ok(());
        };
        let hints: Vec<String> = request
            .resources
            .iter()
            .filter_map(|r| match r {
                praxis_core::Resource::Path {
                    path,
                    mode: praxis_core::AccessMode::Write,
                } => Some(path.clone()),
                _ => None,
            })
            .collect();
        let changed = tracker
            .refresh(hints)
            .await
            .map_err(RuntimeError::Capture)?;
        self.blobs.extend(changed.blobs);
        observation.files_changed = changed.files_changed;
        if !changed.git_removed.is_empty() {
            observation.output.push_str(&format!(
                "\n[praxis: removed git metadata this call planted, which the writ does not \
                 grant: {}]",
                changed.git_removed.join(", ")
            ));
        }
        observation.git_removed = changed.git_removed;
        Ok(())
    }
}

/// How a tool call ended in the driver.
enum Ended {
    Done(Observation),
    Cancelled(String),
    /// The run's deadline struck while the call ran.
    Deadline,
}

/// One model call, streaming deltas to the observer; a cancel wins over a slow model.
async fn call_model(
    run_id: &str,
    observer: &dyn RunObserver,
    provider: &dyn Provider,
    request: &praxis_core::ModelRequest,
    cancel: &Cancel,
) -> Event {
    let sink = ObserverDeltas { run_id, observer };
    // Biased towards the cancel: a run cancelled before the call starts never makes it.
    tokio::select! {
        biased;
        reason = Cancel::cancelled(cancel.0.subscribe()) => Event::Cancel { now: now_millis(), reason },
        reply = provider.complete(request, &sink) => match reply {
            Ok(response) => Event::ModelReplied { now: now_millis(), response },
            Err(error) => Event::ModelFailed { now: now_millis(), error: error.to_string() },
        },
    }
}

/// What a `settle` made durable.
struct Settled {
    count: u64,
    last: Option<Entry>,
}

/// Waits until every submitted batch is durable, telling the observer about each entry.
async fn settle(
    pending: Vec<AppendFuture>,
    run_id: &str,
    observer: &dyn RunObserver,
) -> Result<Settled, RuntimeError> {
    let mut settled = Settled {
        count: 0,
        last: None,
    };
    for append in pending {
        let entries = append.await.map_err(|source| RuntimeError::Ledger {
            run_id: run_id.to_string(),
            source: Box::new(source),
        })?;
        for entry in &entries {
            observer.on_event(run_id, LiveEvent::Entry(entry));
        }
        settled.count += entries.len() as u64;
        if let Some(last) = entries.into_iter().next_back() {
            settled.last = Some(last);
        }
    }
    Ok(settled)
}

type AppendFuture = praxis_ledger::BoxFuture<'static, Result<Vec<Entry>, LedgerError>>;

pub(crate) fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

fn instant_of(at: Millis) -> Instant {
    let now = now_millis();
    if at >= now {
        Instant::now() + Duration::from_millis(at - now)
    } else {
        Instant::now()
    }
}
