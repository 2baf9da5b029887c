// Generated from schema/records.schema.json by scripts/types.mjs (json-schema-to-typescript). Do not edit.

/**
 * One ledger record: the entry kind (serialized as `kind`) and its payload.
 */
export type LedgerRecord =
  | {
      kind: "run_started";
      payload: RunStarted;
    }
  | {
      kind: "workspace_snapshot";
      payload: WorkspaceSnapshot;
    }
  | {
      kind: "model_response";
      payload: ModelResponseRecord;
    }
  | {
      kind: "invalid_output";
      payload: InvalidOutput;
    }
  | {
      kind: "model_error";
      payload: ModelError;
    }
  | {
      kind: "proposal";
      payload: ProposalRecord;
    }
  | {
      kind: "approval_requested";
      payload: ApprovalRequested;
    }
  | {
      kind: "approval_decided";
      payload: ApprovalDecided;
    }
  | {
      kind: "execution";
      payload: Execution;
    }
  | {
      kind: "compaction";
      payload: CompactionRecord;
    }
  | {
      kind: "run_resumed";
      payload: RunResumed;
    }
  | {
      kind: "run_finished";
      payload: RunFinished;
    }
  | {
      kind: "checkpoint";
      payload: Checkpoint;
    }
  | {
      kind: "tools_changed";
      payload: ToolsChanged;
    };
export type CompactionMode = "truncate" | "summarize";
export type Role = "system" | "user" | "assistant" | "tool";
/**
 * A run's system prompt when it is not exactly the built-in one.
 */
export type SystemPrompt =
  | {
      append: string;
    }
  | {
      replace: string;
    };
/**
 * What a tool can do to the world, ordered from least to most powerful.
 */
export type Effect = "read" | "write" | "exec" | "network";
/**
 * What became of a proposal that was not allowed (absent when it was).
 */
export type ProposalOutcome = "rejected" | "suspended";
/**
 * Something a proposal touches. Paths are as the model gave them; policy normalises them.
 */
export type Resource =
  | {
      kind: "path";
      mode: AccessMode;
      path: string;
    }
  | {
      command: string;
      kind: "command";
    }
  | {
      host: string;
      kind: "host";
    };
export type AccessMode = "read" | "write";
/**
 * Where an intent came from.
 */
export type IntentSource = "tool_call" | "cmd_block";
/**
 * A verdict as recorded (`verdict` of a proposal).
 */
export type VerdictKind = "allow" | "deny" | "needs_approval";
/**
 * Whether an execution changed the world as intended.
 */
export type ExecOutcome = "committed" | "failed";
export type ExecStatus = "ok" | "error" | "timeout" | "cancelled";
/**
 * `compaction`: the conversation was compacted to fit the context window.
 */
export type CompactionRecord =
  | {
      dropped: DroppedObservation[];
      mode: "truncate";
      now: number;
      step: number;
      /**
       * Why the summary failed, when truncation happened instead.
       */
      summary_error?: string | null;
      tokens_after: number;
      tokens_before: number;
    }
  | {
      mode: "summarize";
      model: string;
      now: number;
      replaced_messages: number;
      step: number;
      summary: string;
      tokens_after: number;
      tokens_before: number;
      usage: Usage;
    };
/**
 * What the kernel was waiting for when its driver died.
 */
export type WaitingFor = "model" | "tool" | "approval";
export type RunStatus =
  "queued" | "running" | "awaiting_approval" | "completed" | "failed" | "cancelled" | "interrupted";
/**
 * Why a run stopped.
 */
export type StopReason =
  | "completed"
  | "failed"
  | "cancelled"
  | "budget_exhausted"
  | "max_steps"
  | "deadline"
  | "invalid_output_limit"
  | "denied";

/**
 * `run_started`: the run's spec and the context it was judged in.
 */
export interface RunStarted {
  /**
   * A branch names the run and entry its history comes from.
   */
  branch?: BranchOrigin | null;
  /**
   * Host facts (platform, sandbox layers, versions, parent run); open shape.
   */
  environment: {
    [k: string]: unknown | undefined;
  };
  now: number;
  prices?: PriceTable;
  spec: RunSpec;
  /**
   * The tools whose contracts come from outside the installation (MCP servers' tools,
   * `mcp__{server}__{tool}`), as offered at the start: replay compiles their calls from
   * these, without the server. Absent when there are none.
   */
  tools?: ToolSpec[];
  /**
   * What the writ the run acts under says of itself (see [`WritSummary`]), or null.
   */
  writ?: {
    [k: string]: unknown | undefined;
  };
}
/**
 * Where a branch's history comes from.
 */
export interface BranchOrigin {
  hash: string;
  run_id: string;
  seq: number;
}
/**
 * The price table in force (runs recorded before prices were had none).
 */
export interface PriceTable {
  [k: string]: ModelPrice | undefined;
}
/**
 * Price of a model's tokens, in US dollars per million tokens.
 */
export interface ModelPrice {
  input_per_mtok: number;
  output_per_mtok: number;
}
/**
 * Everything that defines a run before it starts.
 */
export interface RunSpec {
  /**
   * When and how the conversation is compacted to fit the model's context (None: never).
   */
  compaction?: Compaction | null;
  conversation?: Conversation;
  limits?: Limits;
  model?: string;
  /**
   * How the model acts: native tool calls, or `<cmd>` blocks for models without tool
   * calling. Shapes the system prompt (and what providers send).
   */
  protocol?: "tools" | "cmd";
  provider: string;
  /**
   * Deny every proposal whose effect is above `read`.
   */
  read_only?: boolean;
  task: string;
  /**
   * Tools the run may use; `None` means every registered tool.
   */
  tools?: string[] | null;
  /**
   * Absolute path of the workspace root.
   */
  workspace: string;
}
/**
 * Context compaction: before a model call whose conversation is estimated above
 * `threshold_percent` of `context_window` tokens, older observations are compacted.
 */
export interface Compaction {
  /**
   * The model's context window, in tokens.
   */
  context_window: number;
  /**
   * The most recent observations are always kept whole.
   */
  keep_recent: number;
  mode: CompactionMode;
  /**
   * Compact when the estimate exceeds this share of the window (1-100).
   */
  threshold_percent: number;
}
/**
 * What the conversation starts from besides the task: earlier turns (a stateless
 * embedder's history) and the system prompt. Recorded with the spec, so replay,
 * resume and branch rebuild the same conversation. Absent when default.
 * Boxed: most runs have none, and the spec travels inside kernel events.
 */
export interface Conversation {
  /**
   * Earlier turns, oldest first, placed between the system prompt and the task. A
   * system message here is sent as a user turn (the prompt is [`SystemPrompt`]'s).
   */
  history?: Message[];
  /**
   * The built-in prompt (None), the built-in one with instructions appended, or a
   * prompt of the caller's own.
   */
  system_prompt?: SystemPrompt | null;
}
export interface Message {
  content: string;
  /**
   * For `Role::Assistant`: the reasoning that came with the reply, sent back verbatim
   * (Anthropic rejects a tool-use turn whose signed thinking blocks were dropped).
   */
  reasoning?: Reasoning[];
  role: Role;
  /**
   * For `Role::Tool`: the call this message answers.
   */
  tool_call_id?: string | null;
  tool_calls?: ToolCall[];
}
/**
 * One block of model reasoning. Anthropic's `thinking` blocks carry a `signature` that must
 * round-trip unchanged; `redacted_thinking` blocks carry only opaque `data` (kept in `text`
 * with `redacted = true`). OpenAI-compatible servers that stream `reasoning_content` give
 * text without a signature.
 */
export interface Reasoning {
  redacted?: boolean;
  signature?: string | null;
  text: string;
}
/**
 * A native tool call from a model. `arguments` should be a JSON object; a provider that
 * received unparseable argument text passes it on as a JSON string so the kernel can
 * reject it with a message the model can act on.
 */
export interface ToolCall {
  arguments?: {
    [k: string]: unknown | undefined;
  };
  id: string;
  name: string;
}
export interface Limits {
  /**
   * Unusable model replies in a row before the run stops with `invalid_output_limit`.
   */
  max_invalid_replies: number;
  /**
   * Wall-clock limit for the whole run, in seconds.
   */
  max_seconds?: number | null;
  /**
   * Model calls at most.
   */
  max_steps: number;
}
/**
 * A tool as the model and the policy see it.
 */
export interface ToolSpec {
  description: string;
  effect: Effect;
  name: string;
  /**
   * JSON Schema of the arguments object.
   */
  parameters: {
    [k: string]: unknown | undefined;
  };
}
/**
 * `workspace_snapshot`: the start-state manifest.
 */
export interface WorkspaceSnapshot {
  files: {
    [k: string]: ManifestFile | undefined;
  };
}
/**
 * One file of a start manifest: its blob, or why its content was not captured.
 */
export interface ManifestFile {
  blob?: string | null;
  size: number;
  skipped?: string | null;
}
/**
 * `model_response`: one assembled model reply.
 */
export interface ModelResponseRecord {
  content: string;
  /**
   * What the call cost by the run's price table (absent for unpriced models).
   */
  cost_usd_micros?: number | null;
  model: string;
  now: number;
  reasoning?: Reasoning[];
  step: number;
  tool_calls: ToolCall[];
  usage: Usage;
}
export interface Usage {
  input_tokens: number;
  output_tokens: number;
}
/**
 * `invalid_output`: a reply the kernel could not use.
 */
export interface InvalidOutput {
  in_a_row: number;
  reason: string;
  step: number;
}
/**
 * `model_error`: the model call failed.
 */
export interface ModelError {
  error: string;
  now: number;
  step: number;
}
/**
 * `proposal`: an intent, compiled and judged. A proposal its tool's contract rejected has
 * no `effect`, `resources`, `now` or `spent`.
 */
export interface ProposalRecord {
  arguments: unknown;
  call_id: string;
  effect?: Effect | null;
  /**
   * The time it was judged at.
   */
  now?: number | null;
  outcome?: ProposalOutcome | null;
  reason: string;
  resources?: Resource[] | null;
  rule: string;
  source: IntentSource;
  /**
   * What the run had consumed when it was judged.
   */
  spent?: Spent | null;
  tool: string;
  verdict: VerdictKind;
}
/**
 * What a run has consumed so far (derived from its recorded events, so it survives restarts).
 */
export interface Spent {
  bytes_written: number;
  model_calls: number;
  model_tokens: number;
  tool_calls: number;
  /**
   * Money, in millionths of a US dollar, from the configured price table.
   */
  usd_micros: number;
  /**
   * Since the run started.
   */
  wall_ms: number;
}
/**
 * `approval_requested`: the run waits for a human. A call interrupted by a dead driver
 * names the kernel rule and why.
 */
export interface ApprovalRequested {
  call_id: string;
  reason?: string | null;
  rule?: string | null;
}
/**
 * `approval_decided`: a human's decision.
 */
export interface ApprovalDecided {
  approved: boolean;
  by: string;
  call_id: string;
  now: number;
  reason: string;
}
/**
 * `execution`: what a tool call returned (its observation's fields, and the call).
 */
export interface Execution {
  call_id: string;
  /**
   * What a delegated sub-run spent (only on `delegate` executions; absent in v0.1).
   */
  child_spent?: Spent | null;
  duration_ms: number;
  exit_code?: number | null;
  files_changed?: FileChange[];
  /**
   * Git metadata the call planted that the writ does not grant, removed after it
   * (workspace paths; absent when nothing was removed, and before v0.2).
   */
  git_removed?: string[];
  now: number;
  outcome: ExecOutcome;
  output: string;
  status: ExecStatus;
  tool: string;
  /**
   * Bytes of output dropped by the cap (0: nothing was cut).
   */
  truncated_bytes: number;
}
/**
 * A workspace file a tool changed; `before`/`after` are blob hashes (None: did not exist).
 */
export interface FileChange {
  after?: string | null;
  before?: string | null;
  path: string;
  /**
   * Size in bytes of the file after the change (None: deleted, or content not captured).
   */
  size?: number | null;
}
/**
 * One observation a truncating compaction replaced by a stub.
 */
export interface DroppedObservation {
  bytes: number;
  call_id?: string | null;
  /**
   * Index of the message in the conversation.
   */
  message: number;
}
/**
 * `run_resumed`: a new driver took over the run.
 */
export interface RunResumed {
  /**
   * The new driver's host and process; open shape.
   */
  environment: {
    [k: string]: unknown | undefined;
  };
  /**
   * The tool call that was in flight (or awaiting approval), if any.
   */
  interrupted_call?: string | null;
  /**
   * What the sub-runs of an interrupted `delegate` call consumed (their own ledger
   * entries say so): charged to this run on resume, since no execution will report it.
   */
  interrupted_child_spent?: Spent | null;
  now: number;
  waiting_for: WaitingFor;
}
/**
 * `run_finished`: the result, and when.
 */
export interface RunFinished {
  error?: string | null;
  final_answer?: string | null;
  now: number;
  status: RunStatus;
  steps: number;
  stop_reason: StopReason;
  tool_calls: number;
  usage: Usage;
}
/**
 * `checkpoint`: an Ed25519 signature by the runtime key over the entry before it.
 */
export interface Checkpoint {
  head_hash: string;
  head_seq: number;
  /**
   * Hex public key of the signer.
   */
  key: string;
  /**
   * Hex signature.
   */
  signature: string;
}
/**
 * `tools_changed`: the tools from outside the installation changed during the run (an MCP
 * server said its tool list changed). From the next model call on, the model is offered
 * `tools` (every such tool now in force, not only the changed server's), and replay
 * compiles calls with them.
 */
export interface ToolsChanged {
  now: number;
  /**
   * What changed, e.g. `mcp server everything`.
   */
  source: string;
  tools: ToolSpec[];
}
