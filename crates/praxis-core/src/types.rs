//! The vocabulary of a run: what the model asks for, what the runtime decides, what happened.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// Milliseconds since the Unix epoch. The kernel never reads a clock: time arrives in events.
pub type Millis = u64;

/// What a tool can do to the world, ordered from least to most powerful.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Read,
    Write,
    Exec,
    Network,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Write => "write",
            Effect::Exec => "exec",
            Effect::Network => "network",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    Read,
    Write,
}

/// Something a proposal touches. Paths are as the model gave them; policy normalises them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    Path { path: String, mode: AccessMode },
    Command { command: String },
    Host { host: String },
}

/// A tool as the model and the policy see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub effect: Effect,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A native tool call from a model. `arguments` should be a JSON object; a provider that
/// received unparseable argument text passes it on as a JSON string so the kernel can
/// reject it with a message the model can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `Role::Assistant`: the reasoning that came with the reply, sent back verbatim
    /// (Anthropic rejects a tool-use turn whose signed thinking blocks were dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<Reasoning>,
}

/// One block of model reasoning. Anthropic's `thinking` blocks carry a `signature` that must
/// round-trip unchanged; `redacted_thinking` blocks carry only opaque `data` (kept in `text`
/// with `redacted = true`). OpenAI-compatible servers that stream `reasoning_content` give
/// text without a signature.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reasoning {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub redacted: bool,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            reasoning: Vec::new(),
        }
    }
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.into()),
            reasoning: Vec::new(),
        }
    }
}

/// What the kernel asks cognition for: the whole conversation so far plus the tools on offer.
/// Both are shared with the kernel rather than copied per step: a request holds them only
/// while the model call lasts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelRequest {
    /// 1-based number of this model call within the run.
    pub step: u32,
    pub messages: Arc<Vec<Message>>,
    pub tools: Arc<Vec<ToolSpec>>,
}

/// The `step` of a request that asks the model to summarize older conversation for context
/// compaction (run steps count from 1); providers answer it like any other request.
pub const COMPACTION_STEP: u32 = 0;

impl ModelRequest {
    /// Whether this request asks for a compaction summary rather than the run's next step.
    pub fn is_compaction(&self) -> bool {
        self.step == COMPACTION_STEP
    }
}

/// Local token estimate where no tokenizer is at hand: ceil(characters / 4).
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// One complete (assembled) model reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelResponse {
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default)]
    pub usage: Usage,
    #[serde(default)]
    pub model: String,
    /// Reasoning the model returned with this reply, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning: Vec<Reasoning>,
}

/// Where an intent came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntentSource {
    ToolCall,
    CmdBlock,
}

/// What the model wants to do next: a tool with arguments (a `<cmd>` block is a `shell` intent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Intent {
    pub call_id: String,
    pub tool: String,
    pub arguments: Value,
    pub source: IntentSource,
}

/// The policy's decision on a proposal, with the rule that decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Allow { rule: String },
    Deny { rule: String, reason: String },
    NeedsApproval { rule: String, reason: String },
}

impl Verdict {
    pub fn allow(rule: &str) -> Self {
        Verdict::Allow { rule: rule.into() }
    }
    pub fn deny(rule: &str, reason: impl Into<String>) -> Self {
        Verdict::Deny {
            rule: rule.into(),
            reason: reason.into(),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Allow { .. } => "allow",
            Verdict::Deny { .. } => "deny",
            Verdict::NeedsApproval { .. } => "needs_approval",
        }
    }
    pub fn rule(&self) -> &str {
        match self {
            Verdict::Allow { rule }
            | Verdict::Deny { rule, .. }
            | Verdict::NeedsApproval { rule, .. } => rule,
        }
    }
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Allow { .. } => "",
            Verdict::Deny { reason, .. } | Verdict::NeedsApproval { reason, .. } => reason,
        }
    }
}

/// An intent compiled against its tool's contract, plus the policy verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Proposal {
    pub call_id: String,
    pub tool: String,
    pub arguments: Value,
    pub effect: Effect,
    pub resources: Vec<Resource>,
    pub verdict: Verdict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    Ok,
    Error,
    Timeout,
    Cancelled,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Ok => "ok",
            ExecStatus::Error => "error",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Cancelled => "cancelled",
        }
    }
}

/// A workspace file a tool changed; `before`/`after` are blob hashes (None: did not exist).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileChange {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Size in bytes of the file after the change (None: deleted, or content not captured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// What a tool execution returned, already capped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Observation {
    pub status: ExecStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub output: String,
    /// Bytes of output dropped by the cap (0: nothing was cut).
    #[serde(default)]
    pub truncated_bytes: u64,
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_changed: Vec<FileChange>,
    /// What a sub-run started by `delegate` consumed (its own and its sub-runs' calls, tokens
    /// and money): it counts against the delegating run's budgets. Absent on every other call
    /// and in records made before delegation was charged (they count as nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_spent: Option<Box<crate::authority::Spent>>,
    /// Git metadata the call planted that the writ does not grant (a `config`, a hook, a
    /// `.git` file), removed after the call so that no later git command runs it; workspace
    /// paths. Absent when nothing was removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub git_removed: Vec<String>,
}

impl Observation {
    pub fn ok(output: impl Into<String>) -> Self {
        Observation {
            status: ExecStatus::Ok,
            exit_code: None,
            output: output.into(),
            truncated_bytes: 0,
            duration_ms: 0,
            files_changed: Vec::new(),
            child_spent: None,
            git_removed: Vec::new(),
        }
    }
    pub fn error(output: impl Into<String>) -> Self {
        Observation {
            status: ExecStatus::Error,
            ..Observation::ok(output)
        }
    }
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Completed,
    Failed,
    Cancelled,
    BudgetExhausted,
    MaxSteps,
    Deadline,
    InvalidOutputLimit,
    Denied,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Completed => "completed",
            StopReason::Failed => "failed",
            StopReason::Cancelled => "cancelled",
            StopReason::BudgetExhausted => "budget_exhausted",
            StopReason::MaxSteps => "max_steps",
            StopReason::Deadline => "deadline",
            StopReason::InvalidOutputLimit => "invalid_output_limit",
            StopReason::Denied => "denied",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    AwaitingApproval,
    Completed,
    Failed,
    Cancelled,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::AwaitingApproval => "awaiting_approval",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The final status a run has after stopping for `reason`.
    pub fn after(reason: StopReason) -> Self {
        match reason {
            StopReason::Completed => RunStatus::Completed,
            StopReason::Cancelled => RunStatus::Cancelled,
            _ => RunStatus::Failed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Model calls at most.
    pub max_steps: u32,
    /// Wall-clock limit for the whole run, in seconds.
    pub max_seconds: Option<u64>,
    /// Unusable model replies in a row before the run stops with `invalid_output_limit`.
    pub max_invalid_replies: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 30,
            max_seconds: Some(1800),
            max_invalid_replies: 3,
        }
    }
}

/// Everything that defines a run before it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RunSpec {
    pub task: String,
    /// Absolute path of the workspace root.
    pub workspace: String,
    pub provider: String,
    #[serde(default)]
    pub model: String,
    /// Tools the run may use; `None` means every registered tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Deny every proposal whose effect is above `read`.
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub limits: Limits,
    /// How the model acts: native tool calls, or `<cmd>` blocks for models without tool
    /// calling. Shapes the system prompt (and what providers send).
    #[serde(default, skip_serializing_if = "Protocol::is_default")]
    pub protocol: Protocol,
    /// When and how the conversation is compacted to fit the model's context (None: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<Compaction>,
    /// What the conversation starts from besides the task: earlier turns (a stateless
    /// embedder's history) and the system prompt. Recorded with the spec, so replay,
    /// resume and branch rebuild the same conversation. Absent when default.
    /// Boxed: most runs have none, and the spec travels inside kernel events.
    #[serde(default, skip_serializing_if = "Conversation::is_default")]
    pub conversation: Box<Conversation>,
}

/// How a run's conversation begins: `[system prompt] + history + [task]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// Earlier turns, oldest first, placed between the system prompt and the task. A
    /// system message here is sent as a user turn (the prompt is [`SystemPrompt`]'s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Message>,
    /// The built-in prompt (None), the built-in one with instructions appended, or a
    /// prompt of the caller's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<SystemPrompt>,
}

impl Conversation {
    pub fn is_default(&self) -> bool {
        self == &Conversation::default()
    }
}

/// A run's system prompt when it is not exactly the built-in one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SystemPrompt {
    /// The built-in prompt followed by these instructions.
    Append(String),
    /// This prompt instead of the built-in one.
    Replace(String),
}

/// Context compaction: before a model call whose conversation is estimated above
/// `threshold_percent` of `context_window` tokens, older observations are compacted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compaction {
    pub mode: CompactionMode,
    /// The model's context window, in tokens.
    pub context_window: u64,
    /// Compact when the estimate exceeds this share of the window (1-100).
    pub threshold_percent: u8,
    /// The most recent observations are always kept whole.
    pub keep_recent: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompactionMode {
    /// Older observations are replaced by a stub naming what was dropped (deterministic).
    Truncate,
    /// The model writes a summary of the older conversation, which replaces it.
    Summarize,
}

/// The action protocol between model and runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Native tool calls: tool schemas are sent to the model.
    #[default]
    Tools,
    /// The `<cmd>` text protocol: the model writes shell commands in `<cmd>` blocks.
    Cmd,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tools => "tools",
            Protocol::Cmd => "cmd",
        }
    }
    fn is_default(&self) -> bool {
        *self == Protocol::Tools
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tools" => Ok(Protocol::Tools),
            "cmd" => Ok(Protocol::Cmd),
            _ => Err(format!(
                "unknown protocol {s:?}: expected \"tools\" (native tool calls) or \"cmd\" \
                 (<cmd> text blocks)"
            )),
        }
    }
}

/// Price of a model's tokens, in US dollars per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Prices by model name (as providers report it); models not listed cost nothing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct PriceTable(pub std::collections::BTreeMap<String, ModelPrice>);

impl PriceTable {
    /// Cost of `usage` on `model` in millionths of a dollar, rounded up (budgets err on the
    /// safe side).
    pub fn cost_micros(&self, model: &str, usage: Usage) -> u64 {
        let Some(price) = self.0.get(model) else {
            return 0;
        };
        let dollars = usage.input_tokens as f64 * price.input_per_mtok / 1e6
            + usage.output_tokens as f64 * price.output_per_mtok / 1e6;
        (dollars * 1e6).ceil().max(0.0) as u64
    }
}
