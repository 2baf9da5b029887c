//! What goes into the kernel (events) and what comes out (commands).

use crate::authority::Spent;
use crate::record::{BranchOrigin, Manifest, Record, RunResult};
use crate::types::*;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `environment` describes the host (recorded as is); `workspace_files` is the start
    /// state manifest (recorded as a `workspace_snapshot` entry when present).
    Start {
        now: Millis,
        environment: Value,
        workspace_files: Option<Manifest>,
    },
    ModelReplied {
        now: Millis,
        response: ModelResponse,
    },
    ModelFailed {
        now: Millis,
        error: String,
    },
    ToolFinished {
        now: Millis,
        call_id: String,
        observation: Observation,
    },
    ApprovalDecided {
        now: Millis,
        call_id: String,
        approved: bool,
        by: String,
        reason: String,
    },
    Cancel {
        now: Millis,
        reason: String,
    },
    /// A new driver takes over a run whose driver died (crash recovery); valid while the
    /// kernel waits for the model, a tool or an approval. `environment` describes the new
    /// driver's host and process.
    Resume {
        now: Millis,
        environment: Value,
        /// What sub-runs of the interrupted `delegate` call consumed (see
        /// [`crate::record::RunResumed::interrupted_child_spent`]).
        interrupted_child_spent: Option<Spent>,
    },
    /// This kernel, restored to a point where it waits for the model, continues as a new run
    /// (a branch): `spec` is the new run's (its own workspace, provider, limits), `origin`
    /// names the run and entry the history is taken from, `note` is an extra instruction for
    /// the model, and `workspace_files` the new workspace's start manifest.
    /// The tools from outside the installation changed (an MCP server's list): `contracts`
    /// are the run's contracts from now on. Valid once the run started; recorded as
    /// `tools_changed` and offered from the next model call.
    ToolsChanged {
        now: Millis,
        source: String,
        contracts: ContractSet,
    },
    Branch {
        now: Millis,
        /// Boxed: the spec is the largest part of any event.
        spec: Box<RunSpec>,
        environment: Value,
        origin: BranchOrigin,
        note: Option<String>,
        workspace_files: Option<Manifest>,
    },
}

/// A run's tool contracts as an event carries them (equal when they are the same object).
#[derive(Clone)]
pub struct ContractSet(pub std::sync::Arc<dyn crate::contract::Contracts>);

impl PartialEq for ContractSet {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(
            std::sync::Arc::as_ptr(&self.0),
            std::sync::Arc::as_ptr(&other.0),
        )
    }
}

impl std::fmt::Debug for ContractSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.specs().into_iter().map(|s| s.name).collect();
        f.debug_tuple("ContractSet").field(&names).finish()
    }
}

/// An allowed proposal, ready for the tool fabric.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecRequest {
    pub call_id: String,
    pub tool: String,
    pub arguments: Value,
    pub effect: Effect,
    pub resources: Vec<Resource>,
    /// The run's wall-clock deadline: tools must not run past it.
    pub deadline: Option<Millis>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Record(Record),
    CallModel(ModelRequest),
    Execute(ExecRequest),
    AwaitApproval(Proposal),
    Finish(RunResult),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("event {event} is not expected while the kernel is {phase}")]
    UnexpectedEvent {
        event: &'static str,
        phase: &'static str,
    },
    #[error("tool result for call `{got}` but call `{expected}` is in flight")]
    WrongCall { expected: String, got: String },
}
