//! Praxis tool fabric: tool contracts, the registry, the built-in coding tools, process
//! execution with limits, and workspace change tracking. Tools execute; they never decide
//! policy (the kernel does, before anything here runs).

pub mod process;
pub mod registry;
pub mod tools;
pub mod tracker;
pub mod workspace;

use praxis_core::{Observation, Resource, ToolSpec};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

pub use registry::{Registry, RegistryError};
pub use tracker::{CaptureLimits, WorkspaceTracker};
pub use workspace::{Workspace, WorkspaceError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
}

/// Caps applied to every tool call.
#[derive(Clone, Debug)]
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
}

impl ExecContext {
    pub fn new(workspace: Workspace) -> Self {
        ExecContext {
            workspace,
            limits: ToolLimits::default(),
            deadline: None,
        }
    }

    /// `requested` clamped to the run's deadline.
    pub fn clamp_timeout(&self, requested: Duration) -> Duration {
        match self.deadline {
            Some(deadline) => requested.min(deadline.saturating_duration_since(Instant::now())),
            None => requested,
        }
    }
}
