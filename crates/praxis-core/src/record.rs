//! Typed ledger records: one struct per entry kind, and [`Record`], the enum of them all.
//!
//! The ledger stores payloads as opaque JSON; this module is the one place that knows their
//! shape. The kernel builds records through these types, and every reader turns an entry
//! back into a [`Record`] with [`Record::from_entry`] instead of looking fields up by key.
//!
//! Compatibility: serializing a record gives exactly the JSON v0.1 wrote (the same keys
//! present or absent, `null` where v0.1 wrote `null`), so the canonical JSON, and with it
//! every entry hash, of a v0.1 ledger is unchanged by a deserialize -> serialize round trip.
//! Fields whose shape is open (tool arguments, host facts, writ blocks) stay JSON values.

use crate::authority::Spent;
use crate::types::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Ledger entry kinds.
pub mod kinds {
    pub const RUN_STARTED: &str = "run_started";
    pub const WORKSPACE_SNAPSHOT: &str = "workspace_snapshot";
    pub const MODEL_RESPONSE: &str = "model_response";
    pub const MODEL_ERROR: &str = "model_error";
    pub const INVALID_OUTPUT: &str = "invalid_output";
    pub const PROPOSAL: &str = "proposal";
    pub const EXECUTION: &str = "execution";
    pub const APPROVAL_REQUESTED: &str = "approval_requested";
    pub const APPROVAL_DECIDED: &str = "approval_decided";
    pub const RUN_FINISHED: &str = "run_finished";
    pub const RUN_RESUMED: &str = "run_resumed";
    pub const COMPACTION: &str = "compaction";
    pub const TOOLS_CHANGED: &str = "tools_changed";
    /// Written by the driver (signed head attestation), never by the kernel.
    pub const CHECKPOINT: &str = "checkpoint";
}

/// An entry whose payload does not have the shape its kind calls for.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("unknown record kind `{0}`")]
    UnknownKind(String),
    #[error("malformed `{kind}` payload: `{field}`: {reason}")]
    Malformed {
        kind: String,
        /// The path of the offending field (`.` for the payload itself).
        field: String,
        reason: String,
    },
}

/// One ledger record: the entry kind (serialized as `kind`) and its payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Record {
    RunStarted(RunStarted),
    WorkspaceSnapshot(WorkspaceSnapshot),
    ModelResponse(ModelResponseRecord),
    InvalidOutput(InvalidOutput),
    ModelError(ModelError),
    Proposal(ProposalRecord),
    ApprovalRequested(ApprovalRequested),
    ApprovalDecided(ApprovalDecided),
    Execution(Execution),
    Compaction(CompactionRecord),
    RunResumed(RunResumed),
    RunFinished(RunFinished),
    Checkpoint(Checkpoint),
    ToolsChanged(ToolsChanged),
}

impl Record {
    /// The ledger entry kind of this record.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::RunStarted(_) => kinds::RUN_STARTED,
            Record::WorkspaceSnapshot(_) => kinds::WORKSPACE_SNAPSHOT,
            Record::ModelResponse(_) => kinds::MODEL_RESPONSE,
            Record::InvalidOutput(_) => kinds::INVALID_OUTPUT,
            Record::ModelError(_) => kinds::MODEL_ERROR,
            Record::Proposal(_) => kinds::PROPOSAL,
            Record::ApprovalRequested(_) => kinds::APPROVAL_REQUESTED,
            Record::ApprovalDecided(_) => kinds::APPROVAL_DECIDED,
            Record::Execution(_) => kinds::EXECUTION,
            Record::Compaction(_) => kinds::COMPACTION,
            Record::RunResumed(_) => kinds::RUN_RESUMED,
            Record::RunFinished(_) => kinds::RUN_FINISHED,
            Record::Checkpoint(_) => kinds::CHECKPOINT,
            Record::ToolsChanged(_) => kinds::TOOLS_CHANGED,
        }
    }

    /// The payload as the ledger stores it.
    pub fn to_payload(&self) -> Value {
        fn v<T: Serialize>(t: &T) -> Value {
            serde_json::to_value(t).expect("records are plain data")
        }
        match self {
            Record::RunStarted(r) => v(r),
            Record::WorkspaceSnapshot(r) => v(r),
            Record::ModelResponse(r) => v(r),
            Record::InvalidOutput(r) => v(r),
            Record::ModelError(r) => v(r),
            Record::Proposal(r) => v(r),
            Record::ApprovalRequested(r) => v(r),
            Record::ApprovalDecided(r) => v(r),
            Record::Execution(r) => v(r),
            Record::Compaction(r) => v(r),
            Record::RunResumed(r) => v(r),
            Record::RunFinished(r) => v(r),
            Record::Checkpoint(r) => v(r),
            Record::ToolsChanged(r) => v(r),
        }
    }

    /// Reads a ledger entry's kind and payload back into a record.
    pub fn from_entry(kind: &str, payload: &Value) -> Result<Record, RecordError> {
        Ok(match kind {
            kinds::RUN_STARTED => Record::RunStarted(parse_payload(kind, payload)?),
            kinds::WORKSPACE_SNAPSHOT => Record::WorkspaceSnapshot(parse_payload(kind, payload)?),
            kinds::MODEL_RESPONSE => Record::ModelResponse(parse_payload(kind, payload)?),
            kinds::INVALID_OUTPUT => Record::InvalidOutput(parse_payload(kind, payload)?),
            kinds::MODEL_ERROR => Record::ModelError(parse_payload(kind, payload)?),
            kinds::PROPOSAL => Record::Proposal(parse_payload(kind, payload)?),
            kinds::APPROVAL_REQUESTED => Record::ApprovalRequested(parse_payload(kind, payload)?),
            kinds::APPROVAL_DECIDED => Record::ApprovalDecided(parse_payload(kind, payload)?),
            kinds::EXECUTION => Record::Execution(parse_payload(kind, payload)?),
            kinds::COMPACTION => Record::Compaction(parse_payload(kind, payload)?),
            kinds::RUN_RESUMED => Record::RunResumed(parse_payload(kind, payload)?),
            kinds::RUN_FINISHED => Record::RunFinished(parse_payload(kind, payload)?),
            kinds::CHECKPOINT => Record::Checkpoint(parse_payload(kind, payload)?),
            kinds::TOOLS_CHANGED => Record::ToolsChanged(parse_payload(kind, payload)?),
            other => return Err(RecordError::UnknownKind(other.to_string())),
        })
    }

    /// The event time the kernel saw when it wrote this record (absent on the kinds that do
    /// not carry one: workspace snapshots, invalid output, approval requests, contract
    /// rejections and checkpoints).
    pub fn now(&self) -> Option<Millis> {
        match self {
            Record::RunStarted(r) => Some(r.now),
            Record::ModelResponse(r) => Some(r.now),
            Record::ModelError(r) => Some(r.now),
            Record::Proposal(r) => r.now,
            Record::ApprovalDecided(r) => Some(r.now),
            Record::Execution(r) => Some(r.now),
            Record::Compaction(r) => Some(r.now()),
            Record::RunResumed(r) => Some(r.now),
            Record::RunFinished(r) => Some(r.now),
            Record::ToolsChanged(r) => Some(r.now),
            Record::WorkspaceSnapshot(_)
            | Record::InvalidOutput(_)
            | Record::ApprovalRequested(_)
            | Record::Checkpoint(_) => None,
        }
    }

    /// The tool call this record is about, if any.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            Record::Proposal(r) => Some(&r.call_id),
            Record::ApprovalRequested(r) => Some(&r.call_id),
            Record::ApprovalDecided(r) => Some(&r.call_id),
            Record::Execution(r) => Some(&r.call_id),
            _ => None,
        }
    }
}

/// One payload of `kind` as its record struct (`RunStarted`, `RunFinished`, ...); errors
/// name the offending field.
pub fn parse_payload<T: serde::de::DeserializeOwned>(
    kind: &str,
    payload: &Value,
) -> Result<T, RecordError> {
    serde_path_to_error::deserialize(payload).map_err(|e| RecordError::Malformed {
        kind: kind.to_string(),
        field: e.path().to_string(),
        reason: e.into_inner().to_string(),
    })
}

/// `model_response`: one assembled model reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelResponseRecord {
    pub step: u32,
    pub model: String,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<Reasoning>,
    /// What the call cost by the run's price table (absent for unpriced models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd_micros: Option<u64>,
    pub now: Millis,
}

impl ModelResponseRecord {
    /// The reply as the kernel received it (for replay).
    pub fn response(&self) -> ModelResponse {
        ModelResponse {
            content: self.content.clone(),
            tool_calls: self.tool_calls.clone(),
            usage: self.usage,
            model: self.model.clone(),
            reasoning: self.reasoning.clone(),
        }
    }
}

/// `invalid_output`: a reply the kernel could not use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InvalidOutput {
    pub step: u32,
    pub reason: String,
    pub in_a_row: u32,
}

/// `model_error`: the model call failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelError {
    pub step: u32,
    pub error: String,
    pub now: Millis,
}

/// A verdict as recorded (`verdict` of a proposal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Allow,
    Deny,
    NeedsApproval,
}

impl VerdictKind {
    pub fn of(verdict: &Verdict) -> Self {
        match verdict {
            Verdict::Allow { .. } => VerdictKind::Allow,
            Verdict::Deny { .. } => VerdictKind::Deny,
            Verdict::NeedsApproval { .. } => VerdictKind::NeedsApproval,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Allow => "allow",
            VerdictKind::Deny => "deny",
            VerdictKind::NeedsApproval => "needs_approval",
        }
    }
}

/// What became of a proposal that was not allowed (absent when it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalOutcome {
    Rejected,
    Suspended,
}

/// `proposal`: an intent, compiled and judged. A proposal its tool's contract rejected has
/// no `effect`, `resources`, `now` or `spent`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProposalRecord {
    pub call_id: String,
    pub tool: String,
    pub arguments: Value,
    pub source: IntentSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<Effect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Resource>>,
    pub verdict: VerdictKind,
    pub rule: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<ProposalOutcome>,
    /// The time it was judged at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<Millis>,
    /// What the run had consumed when it was judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<Spent>,
}

impl ProposalRecord {
    /// A proposal judged by policy or writ (`outcome` follows from the verdict).
    pub fn judged(p: &Proposal, source: IntentSource, now: Millis, spent: Spent) -> Self {
        let outcome = match p.verdict {
            Verdict::Allow { .. } => None,
            Verdict::Deny { .. } => Some(ProposalOutcome::Rejected),
            Verdict::NeedsApproval { .. } => Some(ProposalOutcome::Suspended),
        };
        ProposalRecord {
            call_id: p.call_id.clone(),
            tool: p.tool.clone(),
            arguments: p.arguments.clone(),
            source,
            effect: Some(p.effect),
            resources: Some(p.resources.clone()),
            verdict: VerdictKind::of(&p.verdict),
            rule: p.verdict.rule().to_string(),
            reason: p.verdict.reason().to_string(),
            outcome,
            now: Some(now),
            spent: Some(spent),
        }
    }

    /// A proposal its tool's contract rejected before any judgement.
    pub fn contract_rejected(intent: &Intent, rule: &str, reason: String) -> Self {
        ProposalRecord {
            call_id: intent.call_id.clone(),
            tool: intent.tool.clone(),
            arguments: intent.arguments.clone(),
            source: intent.source,
            effect: None,
            resources: None,
            verdict: VerdictKind::Deny,
            rule: rule.to_string(),
            reason,
            outcome: Some(ProposalOutcome::Rejected),
            now: None,
            spent: None,
        }
    }

    /// The verdict, rebuilt.
    pub fn verdict(&self) -> Verdict {
        match self.verdict {
            VerdictKind::Allow => Verdict::Allow {
                rule: self.rule.clone(),
            },
            VerdictKind::Deny => Verdict::Deny {
                rule: self.rule.clone(),
                reason: self.reason.clone(),
            },
            VerdictKind::NeedsApproval => Verdict::NeedsApproval {
                rule: self.rule.clone(),
                reason: self.reason.clone(),
            },
        }
    }
}

/// `approval_requested`: the run waits for a human. A call interrupted by a dead driver
/// names the kernel rule and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalRequested {
    pub call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `approval_decided`: a human's decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalDecided {
    pub call_id: String,
    pub approved: bool,
    pub by: String,
    pub reason: String,
    pub now: Millis,
}

/// Whether an execution changed the world as intended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecOutcome {
    Committed,
    Failed,
}

/// `execution`: what a tool call returned (its observation's fields, and the call).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Execution {
    pub call_id: String,
    pub tool: String,
    pub outcome: ExecOutcome,
    pub status: ExecStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub output: String,
    /// Bytes of output dropped by the cap (0: nothing was cut).
    pub truncated_bytes: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_changed: Vec<FileChange>,
    /// What a delegated sub-run spent (only on `delegate` executions; absent in v0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_spent: Option<Box<crate::authority::Spent>>,
    /// Git metadata the call planted that the writ does not grant, removed after it
    /// (workspace paths; absent when nothing was removed, and before v0.2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git_removed: Vec<String>,
    pub now: Millis,
}

impl Execution {
    pub fn new(call_id: &str, tool: &str, observation: Observation, now: Millis) -> Self {
        let outcome = if observation.status == ExecStatus::Ok {
            ExecOutcome::Committed
        } else {
            ExecOutcome::Failed
        };
        let Observation {
            status,
            exit_code,
            output,
            truncated_bytes,
            duration_ms,
            files_changed,
            child_spent,
            git_removed,
        } = observation;
        Execution {
            call_id: call_id.to_string(),
            tool: tool.to_string(),
            outcome,
            status,
            exit_code,
            output,
            truncated_bytes,
            duration_ms,
            files_changed,
            child_spent,
            git_removed,
            now,
        }
    }

    /// The observation the tool returned.
    pub fn observation(&self) -> Observation {
        Observation {
            status: self.status,
            exit_code: self.exit_code,
            output: self.output.clone(),
            truncated_bytes: self.truncated_bytes,
            duration_ms: self.duration_ms,
            files_changed: self.files_changed.clone(),
            child_spent: self.child_spent.clone(),
            git_removed: self.git_removed.clone(),
        }
    }
}

/// One observation a truncating compaction replaced by a stub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DroppedObservation {
    /// Index of the message in the conversation.
    pub message: usize,
    pub call_id: Option<String>,
    pub bytes: usize,
}

/// `compaction`: the conversation was compacted to fit the context window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CompactionRecord {
    /// Older observations were replaced by stubs.
    Truncate {
        step: u32,
        dropped: Vec<DroppedObservation>,
        tokens_before: u64,
        tokens_after: u64,
        /// Why the summary failed, when truncation happened instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        summary_error: Option<String>,
        now: Millis,
    },
    /// The model summarized older conversation, which the summary replaced.
    Summarize {
        step: u32,
        replaced_messages: usize,
        summary: String,
        model: String,
        usage: Usage,
        tokens_before: u64,
        tokens_after: u64,
        now: Millis,
    },
}

impl CompactionRecord {
    pub fn mode(&self) -> CompactionMode {
        match self {
            CompactionRecord::Truncate { .. } => CompactionMode::Truncate,
            CompactionRecord::Summarize { .. } => CompactionMode::Summarize,
        }
    }
    pub fn now(&self) -> Millis {
        match self {
            CompactionRecord::Truncate { now, .. } | CompactionRecord::Summarize { now, .. } => {
                *now
            }
        }
    }
    /// Estimated tokens of the conversation before and after.
    pub fn tokens(&self) -> (u64, u64) {
        match self {
            CompactionRecord::Truncate {
                tokens_before,
                tokens_after,
                ..
            }
            | CompactionRecord::Summarize {
                tokens_before,
                tokens_after,
                ..
            } => (*tokens_before, *tokens_after),
        }
    }
}

/// What the kernel was waiting for when its driver died.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitingFor {
    Model,
    Tool,
    Approval,
}

/// `tools_changed`: the tools from outside the installation changed during the run (an MCP
/// server said its tool list changed). From the next model call on, the model is offered
/// `tools` (every such tool now in force, not only the changed server's), and replay
/// compiles calls with them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolsChanged {
    /// What changed, e.g. `mcp server everything`.
    pub source: String,
    pub tools: Vec<ToolSpec>,
    pub now: Millis,
}

/// `run_resumed`: a new driver took over the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunResumed {
    /// The new driver's host and process; open shape.
    pub environment: Value,
    pub waiting_for: WaitingFor,
    /// The tool call that was in flight (or awaiting approval), if any.
    pub interrupted_call: Option<String>,
    /// What the sub-runs of an interrupted `delegate` call consumed (their own ledger
    /// entries say so): charged to this run on resume, since no execution will report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_child_spent: Option<Box<crate::authority::Spent>>,
    pub now: Millis,
}

impl RunResumed {
    /// The process that took the run over.
    pub fn driver(&self) -> DriverProcess {
        DriverProcess::of(&self.environment)
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    pub status: RunStatus,
    pub stop_reason: StopReason,
    pub final_answer: Option<String>,
    pub error: Option<String>,
    pub steps: u32,
    pub tool_calls: u32,
    pub usage: Usage,
}

/// `run_finished`: the result, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RunFinished {
    pub status: RunStatus,
    pub stop_reason: StopReason,
    pub final_answer: Option<String>,
    pub error: Option<String>,
    pub steps: u32,
    pub tool_calls: u32,
    pub usage: Usage,
    pub now: Millis,
}

impl RunFinished {
    pub fn new(result: RunResult, now: Millis) -> Self {
        let RunResult {
            status,
            stop_reason,
            final_answer,
            error,
            steps,
            tool_calls,
            usage,
        } = result;
        RunFinished {
            status,
            stop_reason,
            final_answer,
            error,
            steps,
            tool_calls,
            usage,
            now,
        }
    }

    /// The run's result.
    pub fn result(&self) -> RunResult {
        RunResult {
            status: self.status,
            stop_reason: self.stop_reason,
            final_answer: self.final_answer.clone(),
            error: self.error.clone(),
            steps: self.steps,
            tool_calls: self.tool_calls,
            usage: self.usage,
        }
    }
}

/// `checkpoint`: an Ed25519 signature by the runtime key over the entry before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Checkpoint {
    pub head_seq: u64,
    pub head_hash: String,
    /// Hex public key of the signer.
    pub key: String,
    /// Hex signature.
    pub signature: String,
}

mod feed;
mod start;

pub use feed::{Delta, EntryLine, FeedEvent, feed_schema, record_schema};
pub use start::{
    BranchOrigin, DriverProcess, Manifest, ManifestFile, ParentCall, RunStarted, WorkspaceSnapshot,
    WritSummary,
};

#[cfg(test)]
mod tests;
