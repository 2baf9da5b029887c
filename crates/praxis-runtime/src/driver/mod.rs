//! The async driver: runs the kernel's commands in order, making each batch of records
//! durable before the command that follows it (write-ahead), and feeding results back.

mod drive;
mod first_call;

use crate::approval::{Approver, FixedDecision};
use crate::branch::{BranchFrom, BranchPoint, branch_point, materialise};
use crate::home::{DataHome, WorkspaceOrigin};
use crate::host::environment;
pub use crate::observer::{LiveEvent, NoObserver, RunObserver};
use crate::replay::{self, ReplayError, ReplayReport, Until};
pub(crate) use drive::{RunContext, now_millis};
use first_call::FirstCall;
use praxis_core::record::BranchOrigin;
use praxis_core::{
    Authority, Command, Event, Kernel, KernelError, PriceTable, RunResult, RunSpec, Spent,
};
use praxis_ledger::checkpoint::CheckpointKey;
use praxis_ledger::{Ledger, LedgerError};
use praxis_models::Provider;
use praxis_tools::tools::delegate;
use praxis_tools::{CaptureLimits, Registry, ToolLimits, Workspace};
use praxis_writ::TrustAnchor;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
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

impl RuntimeError {
    /// What a ledger failure of run `run_id` becomes: `.map_err(RuntimeError::ledger(id))`.
    pub(crate) fn ledger(run_id: &str) -> impl Fn(LedgerError) -> RuntimeError {
        move |source| RuntimeError::Ledger {
            run_id: run_id.to_string(),
            source: Box::new(source),
        }
    }
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
        // The run starts now; its first model call is made while its drive opens.
        let now = now_millis();
        let mut first_call = FirstCall::start(
            &kernel,
            now,
            &run_id,
            &*options.provider,
            observer,
            &options.cancel,
        );
        let opening = self.open_drive(
            run_id.clone(),
            &workspace,
            &options,
            kernel.authority(),
            observer,
        );
        let (mut drive, manifest) = match first_call.as_mut() {
            Some(call) => call.alongside(opening).await?,
            None => opening.await?,
        };
        let mut environment = environment(&drive.ctx);
        if let Some(parent) = &options.parent {
            environment["parent"] = json!(parent);
        }
        if let Some(client) = &options.client {
            environment["client"] = json!(client);
        }
        let start = Event::Start {
            now,
            environment,
            workspace_files: Some(manifest),
        };
        let context = self.context(&options, &kernel);
        drive.run(&mut kernel, start, &context, first_call).await
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
            .map_err(RuntimeError::ledger(run_id))?
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
        drive.run(&mut kernel, resume, &context, None).await
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
        let report = drive.run(&mut kernel, branch, &context, None).await?;
        Ok((report, point))
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
