//! Request and response shapes of the API.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// Who answers proposals that need approval.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApproveMode {
    /// Wait for a decision through `POST /v1/approvals/{id}` (or `praxis approve`).
    #[default]
    Wait,
    /// Approve everything (refused in production mode).
    Auto,
    /// Deny everything that needs approval.
    Never,
}

/// `POST /v1/runs`. Kept as JSON until the run ends, so that a run accepted just before a
/// crash starts when the server is back.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// What the agent should do.
    pub task: String,
    /// Workspace directory on the server (default: a fresh directory under
    /// `$PRAXIS_HOME/workspaces/RUN_ID`).
    #[serde(default)]
    pub workspace: Option<String>,
    /// `mock` (default) or `scripted` (implied by `script`).
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// A writ token (its text) the run acts under; default: the development writ.
    #[serde(default)]
    pub writ: Option<String>,
    /// How the model acts: `tools` (native tool calls) or `cmd` (`<cmd>` blocks, for
    /// models without tool calling); default: the server's configuration.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `auto`, `required` or a tool name: force a tool call in the first model call.
    #[serde(default)]
    pub tool_choice: Option<String>,
    #[serde(default)]
    pub max_steps: Option<u32>,
    #[serde(default)]
    pub max_seconds: Option<u64>,
    /// The same limits as an object (`max_steps`, `max_seconds`, `max_invalid_replies`);
    /// a top-level `max_steps`/`max_seconds` may not also be given.
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    #[serde(default)]
    pub read_only: bool,
    /// Tool allowlist (default: every tool).
    #[serde(default)]
    pub tools: Option<Vec<String>>,
    /// An inline script for the scripted provider: `{"turns": [...]}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub script: Option<Value>,
    #[serde(default)]
    pub approve: ApproveMode,
}

/// Run limits in a create request.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default)]
    pub max_steps: Option<u32>,
    #[serde(default)]
    pub max_seconds: Option<u64>,
    #[serde(default)]
    pub max_invalid_replies: Option<u32>,
}

/// `POST /v1/runs/{id}/resume` (every field optional; the body may be left out). Also what
/// a server sharing a PostgreSQL ledger saves so another can take the run over.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRun {
    /// Default: the provider the run was started with.
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// Needed for scripted runs: scripts are not recorded.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub script: Option<Value>,
    /// A writ to act under from now on (default: the writ recorded at run start).
    #[serde(default)]
    pub writ: Option<String>,
    /// Who approves re-running a tool call that was in flight (anything but a read).
    #[serde(default)]
    pub approve: ApproveMode,
}

/// `201` answer to `POST /v1/runs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: String,
    /// `running` or `queued`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct UsageView {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One run, as `GET /v1/runs/{id}` and the list show it.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// queued, running, awaiting_approval, completed, failed, cancelled, interrupted.
    pub status: String,
    /// What a live run is doing: queued, starting, model, tool, awaiting_approval, running,
    /// finishing (null when not live in this server).
    pub phase: Option<String>,
    pub active_tool: Option<String>,
    pub stop_reason: Option<String>,
    pub final_answer: Option<String>,
    pub error: Option<String>,
    pub steps: u64,
    pub tool_calls: u64,
    pub usage: UsageView,
    pub task: String,
    pub workspace: String,
    pub provider: String,
    pub started_at: String,
    /// When `run_finished` was recorded (null: not finished).
    pub ended_at: Option<String>,
    /// What its model calls cost by the run's price table, in millionths of a US dollar.
    pub cost_usd_micros: u64,
    /// Seq of the run's last ledger entry (0: none yet).
    pub last_seq: u64,
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// What crash recovery did about the run at server start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunView>,
    /// Runs matching the filter, before paging.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only runs with this status.
    pub status: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<usize>,
    /// Runs to skip (newest first).
    pub offset: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Replay entries after this seq (the `Last-Event-ID` header wins when both are sent).
    pub after: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAnswer {
    pub id: String,
    /// `cancelling` (a running run stops at its next await point) or `cancelled` (queued).
    pub status: String,
}

/// A proposal waiting for a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalView {
    /// `RUN_ID:CALL_ID`; `POST /v1/approvals/{id}` also takes the run id alone.
    pub id: String,
    pub run_id: String,
    pub call_id: String,
    pub tool: String,
    #[schema(value_type = Object)]
    pub arguments: Value,
    pub reason: String,
    pub requested_at: String,
    pub expires_at_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<ApprovalView>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    Approve,
    Deny,
}

/// `POST /v1/approvals/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    pub decision: DecisionKind,
    #[serde(default)]
    pub reason: String,
    /// The call to decide when the id names only the run and several are pending.
    #[serde(default)]
    pub call_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionAnswer {
    pub id: String,
    pub run_id: String,
    pub call_id: String,
    pub decision: DecisionKind,
    pub by: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolView {
    pub name: String,
    pub description: String,
    /// read, write, exec, network or external.
    pub effect: String,
    /// Where the tool comes from: built-in, manifest or mcp.
    pub source: String,
    /// The MCP server (of the server's home configuration) an MCP tool comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// JSON Schema of the arguments object.
    #[schema(value_type = Object)]
    pub parameters: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ToolList {
    pub tools: Vec<ToolView>,
}

/// `POST /v1/writs/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyWrit {
    pub writ: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WritVerdict {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// id, subject, tenant, issuer, expires_at, blocks (when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub writ: Option<Value>,
}
