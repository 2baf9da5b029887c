//! Praxis tool fabric: tool contracts, the registry, the built-in coding tools, process
//! execution with limits, and workspace change tracking. Tools execute; they never decide
//! policy (the kernel does, before anything here runs).

pub mod catalogue;
pub mod fabric;
pub mod gitguard;
pub mod manifest;
pub mod process;
pub mod recorded;
pub mod registry;
mod spawn;
pub mod tools;
pub mod tracker;
pub mod tracking;
pub mod worker;
pub mod workspace;
pub mod wsfs;

use praxis_core::{Observation, Resource, ToolSpec};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use catalogue::{ToolInfo, ToolOrigin};
pub use fabric::{Fabric, FabricChoice, SandboxSettings, WorkerCommand};
/// The OS sandbox crate, re-exported so the runtime and CLI need no direct dependency.
pub use praxis_sandbox as sandbox;
pub use praxis_sandbox::{ResourceLimits, Sandbox, SandboxPolicy, SandboxReport};
pub use registry::{Registry, RegistryError};
pub use tracker::{CaptureLimits, WorkspaceTracker};
pub use tracking::Tracking;
pub use workspace::{Workspace, WorkspaceError};
pub use wsfs::{Access, WalkEntry, WsFile};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a tool's calls execute when the run has a worker (part of the tool's contract, so
/// no list of names decides it). With the in-process fabric (tests, `--fabric in-process`)
/// every tool runs in the runtime process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// In the run's confined worker process: every tool that opens a workspace file, starts
    /// a command or uses the network. The runtime process never opens a workspace file.
    Worker,
    /// In the runtime's driver: tools that touch nothing themselves (`delegate` starts a
    /// sub-run, which has its own worker).
    Driver,
}

/// A tool's contract: its schema and effect (the spec), the resources a call touches (pure,
/// used by the kernel before anything runs), and the execution itself.
pub trait ToolContract: Send + Sync {
    /// Name, description, effect class and the JSON Schema of the arguments (generated with
    /// schemars from the tool's argument struct; unknown fields are refused).
    fn spec(&self) -> ToolSpec;

    /// The resources schema-valid `args` would touch. Must be pure: no I/O.
    fn resources(&self, args: &Value) -> Vec<Resource>;

    /// Runs the call. Bad input, confinement violations and failures become an
    /// `Observation` with status `error` (never a panic). Dropping the future cancels the
    /// call and kills any process it started.
    fn execute<'a>(&'a self, ctx: &'a ExecContext, args: Value) -> BoxFuture<'a, Observation>;

    /// Where calls run when the run has a worker. The safe default: in the worker.
    fn placement(&self) -> Placement {
        Placement::Worker
    }

    /// Whether the contract comes from outside this installation (an MCP server's tool), so
    /// its spec is recorded with each run (see [`praxis_core::Contracts::recorded_specs`]).
    fn recorded(&self) -> bool {
        false
    }

    /// Where the tool comes from (for listings: `praxis tools`, `GET /v1/tools`).
    fn origin(&self) -> ToolOrigin {
        ToolOrigin::BuiltIn
    }
}

/// Tools from outside the installation whose set can change while a run goes on (an MCP
/// server's `notifications/tools/list_changed`). The driver compares [`ToolUpdates::generation`]
/// with the registry's before each model call, and on a difference asks for the tools now
/// in force and hands the kernel a registry with them.
pub trait ToolUpdates: Send + Sync {
    /// Bumped each time a source says its tools changed.
    fn generation(&self) -> u64;
    /// Asks the sources that changed for their tools again: the generation this reflects,
    /// what changed (for the record), and every outside tool now in force.
    fn refresh(&self) -> BoxFuture<'_, ToolRefresh>;
}

/// What [`ToolUpdates::refresh`] found.
pub struct ToolRefresh {
    pub generation: u64,
    pub source: String,
    pub tools: Vec<std::sync::Arc<dyn ToolContract>>,
}

/// A tool whose arguments are one struct, parsed once at the door: the blanket
/// [`ToolContract`] impl generates the spec's schema from `Args` (schemars), deserializes the
/// JSON arguments into `Args` once, and hands the typed value to [`Tool::touches`] and
/// [`Tool::run`]; no tool reads its arguments by string key.
pub trait Tool: Send + Sync {
    /// The arguments; unknown fields must be refused (`#[serde(deny_unknown_fields)]`).
    type Args: serde::de::DeserializeOwned + schemars::JsonSchema + Send + 'static;
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    const EFFECT: praxis_core::Effect;
    /// Where the call runs (see [`Placement`]): the confined worker unless a tool says so.
    const PLACEMENT: Placement = Placement::Worker;

    /// The resources the call would touch. Must be pure: no I/O.
    fn touches(&self, args: &Self::Args) -> Vec<Resource>;

    /// Runs the call (see [`ToolContract::execute`]).
    fn run<'a>(&'a self, ctx: &'a ExecContext, args: Self::Args) -> BoxFuture<'a, Observation>;
}

impl<T: Tool> ToolContract for T {
    fn spec(&self) -> ToolSpec {
        registry::tool_spec::<T::Args>(T::NAME, T::DESCRIPTION, T::EFFECT)
    }

    fn placement(&self) -> Placement {
        T::PLACEMENT
    }

    fn resources(&self, args: &Value) -> Vec<Resource> {
        // The registry validated `args` against the schema generated from `Args`, so this
        // parse succeeds; anything else names no resource (and will not run).
        match <T::Args as serde::Deserialize>::deserialize(args) {
            Ok(args) => self.touches(&args),
            Err(_) => Vec::new(),
        }
    }

    fn execute<'a>(&'a self, ctx: &'a ExecContext, args: Value) -> BoxFuture<'a, Observation> {
        match registry::parse_args::<T::Args>(T::NAME, args) {
            Ok(args) => self.run(ctx, args),
            Err(observation) => Box::pin(async move { observation }),
        }
    }
}

/// Caps applied to every tool call, and the sandbox the run's tools execute in.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ToolLimits {
    /// Bytes of output a tool returns at most; the rest is cut with a marker.
    pub output_bytes: usize,
    /// Bytes `fs_read` reads at most from one file.
    pub read_bytes: usize,
    /// Default and maximum timeout of a `shell` call.
    pub shell_timeout: Duration,
    pub max_shell_timeout: Duration,
    /// Default and maximum timeout of a `test_run` call.
    pub test_timeout: Duration,
    pub max_test_timeout: Duration,
    /// Fabric, confinement, network and resource limits of the commands tools start.
    pub sandbox: SandboxSettings,
}

impl Default for ToolLimits {
    fn default() -> Self {
        ToolLimits {
            output_bytes: 64 * 1024,
            read_bytes: 256 * 1024,
            shell_timeout: Duration::from_secs(120),
            max_shell_timeout: Duration::from_secs(900),
            test_timeout: Duration::from_secs(900),
            max_test_timeout: Duration::from_secs(3600),
            sandbox: SandboxSettings::default(),
        }
    }
}

/// What a tool call runs within.
#[derive(Clone, Debug)]
pub struct ExecContext {
    pub workspace: Workspace,
    pub limits: ToolLimits,
    /// The run's deadline: no call may run past it, whatever its own timeout says.
    pub deadline: Option<Instant>,
    /// Confinement of the commands `shell` and `test_run` start here (None: unconfined).
    pub sandbox: Option<Arc<Sandbox>>,
    /// Why `sandbox` is None when one was asked for and could not be had.
    pub unconfined_because: Option<String>,
    /// Where side-effecting tools run: here, or in the sandboxed worker process.
    pub fabric: Fabric,
}

impl ExecContext {
    /// In-process and unconfined: for tests and baselines. Runs use [`ExecContext::for_run`].
    pub fn new(workspace: Workspace) -> Self {
        ExecContext {
            workspace,
            limits: ToolLimits::default(),
            deadline: None,
            sandbox: None,
            unconfined_because: None,
            fabric: Fabric::InProcess {
                reason: "unconfined context (tests and baselines)".into(),
            },
        }
    }

    /// The context of a run: the fabric and sandbox `limits.sandbox` asks for, as far as this
    /// host supports them (see [`fabric::for_run`]; [`ExecContext::sandbox_report`] says
    /// what was applied).
    pub async fn for_run(workspace: Workspace, limits: ToolLimits) -> Self {
        fabric::for_run(workspace, limits, &[], None).await
    }

    /// [`ExecContext::for_run`] for a registry with manifest tools: a worker is told them,
    /// so it runs them too.
    pub async fn for_run_with(
        workspace: Workspace,
        limits: ToolLimits,
        manifests: &[manifest::ToolManifest],
    ) -> Self {
        fabric::for_run(workspace, limits, manifests, None).await
    }

    /// [`ExecContext::for_run_with`], and a worker, if the run gets one, starts capturing
    /// the workspace under `capture` as soon as it is ready: [`Tracking::capture`] with the
    /// same limits takes that capture.
    pub async fn for_run_capturing(
        workspace: Workspace,
        limits: ToolLimits,
        manifests: &[manifest::ToolManifest],
        capture: CaptureLimits,
    ) -> Self {
        fabric::for_run(workspace, limits, manifests, Some(capture)).await
    }

    /// What this context applies, for the run's `environment` record: the fabric, why it
    /// was chosen, and each sandbox layer active or unavailable with why.
    pub fn sandbox_report(&self) -> Value {
        fabric::report(self)
    }

    /// `requested` clamped to the run's deadline.
    pub fn clamp_timeout(&self, requested: Duration) -> Duration {
        match self.deadline {
            Some(deadline) => requested.min(deadline.saturating_duration_since(Instant::now())),
            None => requested,
        }
    }
}
