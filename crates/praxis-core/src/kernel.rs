//! The run kernel: a pure state machine. Events go in (the run started, the model replied,
//! a tool finished, cancel), commands come out (record this, call the model, execute this,
//! finish). It performs no I/O and reads no clock, so feeding it a recorded run's events
//! reproduces the same commands: that is what replay and branching rest on.
//!
//! Write-ahead invariant: every `Execute` is preceded, in the same command list, by the
//! `Record` of its proposal and verdict. The driver must make records durable before it
//! acts on a later command.

use crate::authority::{Authority, Authorization, AuthzRequest, Spent};
pub use judge::{Judgement, judge};
use crate::cmd;
use crate::contract::Contracts;
use crate::policy::{Policy, rules};
pub use crate::record::{Record, RunResult, kinds};
use crate::record::{
    ApprovalDecided, ApprovalRequested, BranchOrigin, CompactionRecord, DroppedObservation,
    Execution, InvalidOutput, Manifest, ModelError, ModelResponseRecord, ProposalRecord,
    RunFinished, RunResumed, RunStarted, WaitingFor, WorkspaceSnapshot,
};
use crate::types::*;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;

/// Rule names of the kernel's own decisions (besides the policy's).
pub mod kernel_rules {
    /// A call that was in flight when the previous driver died may have run partly: it is not
    /// re-run unless someone approves (read-only calls are re-run without asking).
    pub const RESUME_INTERRUPTED_CALL: &str = "resume.interrupted_call";
}

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
    },
    /// This kernel, restored to a point where it waits for the model, continues as a new run
    /// (a branch): `spec` is the new run's (its own workspace, provider, limits), `origin`
    /// names the run and entry the history is taken from, `note` is an extra instruction for
    /// the model, and `workspace_files` the new workspace's start manifest.
    Branch {
        now: Millis,
        spec: RunSpec,
        environment: Value,
        origin: BranchOrigin,
        note: Option<String>,
        workspace_files: Option<Manifest>,
    },
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

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    NotStarted,
    AwaitingModel,
    /// Waiting for the summary of `messages[2..cut]` (context compaction).
    AwaitingSummary {
        cut: usize,
        tokens_before: u64,
    },
    AwaitingTool(Proposal, IntentSource),
    AwaitingApproval(Proposal, IntentSource),
    Finished,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::NotStarted => "not started",
            Phase::AwaitingModel => "awaiting the model",
            Phase::AwaitingSummary { .. } => "awaiting a compaction summary",
            Phase::AwaitingTool(..) => "awaiting a tool",
            Phase::AwaitingApproval(..) => "awaiting approval",
            Phase::Finished => "finished",
        }
    }
}

pub struct Kernel {
    spec: RunSpec,
    policy: Policy,
    contracts: Arc<dyn Contracts>,
    phase: Phase,
    /// Shared with the current `ModelRequest`; copied on write only if the driver still holds it.
    messages: Arc<Vec<Message>>,
    /// The tools the policy offers, computed once per run.
    offered: Arc<Vec<ToolSpec>>,
    started: Millis,
    steps: u32,
    tool_calls: u32,
    usage: Usage,
    invalid_in_row: u32,
    /// Intents of the current model reply not yet handled, in order.
    pending: VecDeque<Intent>,
    /// `<result>` blocks for the current reply's `<cmd>` intents, sent back together.
    cmd_results: Vec<String>,
    /// Whether any intent of the current reply passed its contract.
    reply_usable: bool,
    /// The signed writ the run acts under, if any (checked after the run's own policy).
    authority: Option<Arc<dyn Authority>>,
    prices: PriceTable,
    usd_micros: u64,
    bytes_written: u64,
}

impl Kernel {
    pub fn new(spec: RunSpec, contracts: Arc<dyn Contracts>) -> Self {
        let policy = Policy::for_run(&spec);
        let offered = contracts
            .specs()
            .into_iter()
            .filter(|s| policy.offers(&s.name))
            .collect();
        Kernel {
            policy,
            spec,
            contracts,
            phase: Phase::NotStarted,
            messages: Arc::default(),
            offered: Arc::new(offered),
            started: 0,
            steps: 0,
            tool_calls: 0,
            usage: Usage::default(),
            invalid_in_row: 0,
            pending: VecDeque::new(),
            cmd_results: Vec::new(),
            reply_usable: false,
            authority: None,
            prices: PriceTable::default(),
            usd_micros: 0,
            bytes_written: 0,
        }
    }

    /// Puts the run under a writ: every model call and proposal is also checked against it.
    pub fn with_authority(mut self, authority: Arc<dyn Authority>) -> Self {
        self.authority = Some(authority);
        self
    }

    /// Prices used to turn token usage into money for the `usd` budget.
    pub fn with_prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Replaces the writ the run acts under from here on (a branch continues under its own).
    pub fn set_authority(&mut self, authority: Option<Arc<dyn Authority>>) {
        self.authority = authority;
    }

    /// The writ the run acts under, if any.
    pub fn authority(&self) -> Option<&Arc<dyn Authority>> {
        self.authority.as_ref()
    }

    /// Whether the kernel is waiting for a model reply (the only point a run can branch from).
    pub fn awaits_model(&self) -> bool {
        self.phase == Phase::AwaitingModel
    }

    /// What the run has consumed as of `now`.
    pub fn spent(&self, now: Millis) -> Spent {
        Spent {
            tool_calls: u64::from(self.tool_calls),
            model_calls: u64::from(self.steps),
            model_tokens: self.usage.total(),
            wall_ms: now.saturating_sub(self.started),
            usd_micros: self.usd_micros,
            bytes_written: self.bytes_written,
        }
    }

    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }
    pub fn steps(&self) -> u32 {
        self.steps
    }
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Tools offered to the model: every contract the policy's allowlist admits.
    pub fn offered_tools(&self) -> &[ToolSpec] {
        &self.offered
    }

    fn push_message(&mut self, message: Message) {
        Arc::make_mut(&mut self.messages).push(message);
    }

    pub fn handle(&mut self, event: Event) -> Result<Vec<Command>, KernelError> {
        let mut out = Vec::new();
        match (event, &self.phase) {
            (
                Event::Start {
                    now,
                    environment,
                    workspace_files,
                },
                Phase::NotStarted,
            ) => {
                self.started = now;
                self.record_start(now, environment, None, workspace_files, &mut out);
                let system = system_prompt(&self.spec, &self.offered, now);
                self.push_message(Message::new(Role::System, system));
                self.push_message(Message::new(Role::User, self.spec.task.clone()));
                self.next_step(now, &mut out);
            }
            (Event::ModelReplied { now, response }, Phase::AwaitingModel) => {
                self.on_reply(now, response, &mut out);
            }
            (
                Event::ModelReplied { now, response },
                &Phase::AwaitingSummary { cut, tokens_before },
            ) => {
                self.summarized(now, cut, tokens_before, Ok(response), &mut out);
            }
            (Event::ModelFailed { now, error }, &Phase::AwaitingSummary { cut, tokens_before }) => {
                self.summarized(now, cut, tokens_before, Err(error), &mut out);
            }
            (Event::ModelFailed { now, error }, Phase::AwaitingModel) => {
                record(
                    &mut out,
                    Record::ModelError(ModelError {
                        step: self.steps,
                        error: error.clone(),
                        now,
                    }),
                );
                self.finish(
                    now,
                    StopReason::Failed,
                    None,
                    Some(format!("model call failed: {error}")),
                    &mut out,
                );
            }
            (
                Event::ToolFinished {
                    now,
                    call_id,
                    observation,
                },
                Phase::AwaitingTool(proposal, _),
            ) => {
                if call_id != proposal.call_id {
                    return Err(KernelError::WrongCall {
                        expected: proposal.call_id.clone(),
                        got: call_id,
                    });
                }
                let Phase::AwaitingTool(proposal, source) =
                    std::mem::replace(&mut self.phase, Phase::AwaitingModel)
                else {
                    unreachable!("matched above")
                };
                self.bytes_written += observation
                    .files_changed
                    .iter()
                    .filter_map(|c| c.size)
                    .sum::<u64>();
                let text = render_observation(&observation);
                record(
                    &mut out,
                    Record::Execution(Execution::new(
                        &proposal.call_id,
                        &proposal.tool,
                        observation,
                        now,
                    )),
                );
                self.observe(&proposal.call_id, source, text);
                if let Err(reason) = self.policy.within_deadline(self.started, now) {
                    self.finish(now, reason, None, None, &mut out);
                } else {
                    self.advance(now, &mut out);
                }
            }
            (
                Event::ApprovalDecided {
                    now,
                    call_id,
                    approved,
                    by,
                    reason,
                },
                Phase::AwaitingApproval(proposal, _),
            ) => {
                if call_id != proposal.call_id {
                    return Err(KernelError::WrongCall {
                        expected: proposal.call_id.clone(),
                        got: call_id,
                    });
                }
                let Phase::AwaitingApproval(proposal, source) =
                    std::mem::replace(&mut self.phase, Phase::AwaitingModel)
                else {
                    unreachable!("matched above")
                };
                record(
                    &mut out,
                    Record::ApprovalDecided(ApprovalDecided {
                        call_id: call_id.clone(),
                        approved,
                        by: by.clone(),
                        reason: reason.clone(),
                        now,
                    }),
                );
                if approved {
                    // Time passed while a human decided: the writ may have expired or the
                    // budget run out since, so it is asked again.
                    match self.recheck(now, &proposal) {
                        Authorization::Verdict(Verdict::Deny { rule, reason }) => {
                            let text = format!(
                                "approved by {by}, but the writ no longer allows it ({rule}): {reason}"
                            );
                            self.observe(&call_id, source, text);
                            self.advance(now, &mut out);
                        }
                        Authorization::Exhausted { rule, reason } => {
                            let error = format!("{rule}: {reason}");
                            self.finish(
                                now,
                                StopReason::BudgetExhausted,
                                None,
                                Some(error),
                                &mut out,
                            );
                        }
                        Authorization::Verdict(_) => self.execute(now, proposal, source, &mut out),
                    }
                } else {
                    self.observe(
                        &call_id,
                        source,
                        format!("denied by approver {by}: {reason}"),
                    );
                    self.advance(now, &mut out);
                }
            }
            (Event::Cancel { now, reason }, phase) if *phase != Phase::Finished => {
                if let Phase::AwaitingTool(proposal, _) = phase {
                    let observation = Observation {
                        status: ExecStatus::Cancelled,
                        ..Observation::error(format!("cancelled: {reason}"))
                    };
                    record(
                        &mut out,
                        Record::Execution(Execution::new(
                            &proposal.call_id,
                            &proposal.tool,
                            observation,
                            now,
                        )),
                    );
                }
                self.finish(now, StopReason::Cancelled, None, Some(reason), &mut out);
            }
            (Event::Resume { now, environment }, phase)
                if !matches!(phase, Phase::NotStarted | Phase::Finished) =>
            {
                self.resume(now, environment, &mut out);
            }
            (
                Event::Branch {
                    now,
                    spec,
                    environment,
                    origin,
                    note,
                    workspace_files,
                },
                Phase::AwaitingModel,
            ) => {
                self.branch(
                    now,
                    spec,
                    environment,
                    origin,
                    note,
                    workspace_files,
                    &mut out,
                );
            }
            (event, phase) => {
                return Err(KernelError::UnexpectedEvent {
                    event: event_name(&event),
                    phase: phase.name(),
                });
            }
        }
        Ok(out)
    }

    /// The model request for the current step, built from the conversation so far.
    fn current_request(&self) -> ModelRequest {
        ModelRequest {
            step: self.steps,
            messages: self.messages.clone(),
            tools: self.offered.clone(),
        }
    }

    /// Estimated tokens of the next request: every message (text, tool calls, reasoning)
    /// plus the tool schemas offered.
    fn conversation_tokens(&self) -> u64 {
        let messages: u64 = self
            .messages
            .iter()
            .map(|m| {
                estimate_tokens(&m.content)
                    + m.tool_calls
                        .iter()
                        .map(|c| {
                            estimate_tokens(&c.name) + estimate_tokens(&c.arguments.to_string())
                        })
                        .sum::<u64>()
                    + m.reasoning
                        .iter()
                        .map(|r| estimate_tokens(&r.text))
                        .sum::<u64>()
            })
            .sum();
        let tools: u64 = self
            .offered
            .iter()
            .map(|t| estimate_tokens(&t.description) + estimate_tokens(&t.parameters.to_string()))
            .sum();
        messages + tools
    }

    /// Indices of observation messages (tool results, `<result>` blocks) after the task.
    fn observations(&self) -> Vec<usize> {
        self.messages
            .iter()
            .enumerate()
            .skip(2)
            .filter(|(_, m)| {
                m.role == Role::Tool || (m.role == Role::User && m.content.starts_with("<result>"))
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Before a model call: when the conversation would exceed the configured share of the
    /// context window, compacts it. Truncation happens at once (recorded); a summary is asked
    /// of the model first (returns true: the summary request was issued instead of the step).
    fn compact(&mut self, now: Millis, out: &mut Vec<Command>) -> bool {
        let Some(compaction) = self.spec.compaction.clone() else {
            return false;
        };
        let limit = compaction.context_window * u64::from(compaction.threshold_percent) / 100;
        let tokens_before = self.conversation_tokens();
        if tokens_before <= limit {
            return false;
        }
        if compaction.mode == CompactionMode::Summarize
            && let Some(cut) = self.summary_cut(compaction.keep_recent)
        {
            out.push(Command::CallModel(self.summary_request(cut)));
            self.phase = Phase::AwaitingSummary { cut, tokens_before };
            return true;
        }
        self.truncate(now, tokens_before, limit, compaction.keep_recent, None, out);
        false
    }

    /// Replaces the oldest observations (all but the `keep_recent` latest) by a stub until the
    /// estimate fits under `limit`, and records what was dropped.
    fn truncate(
        &mut self,
        now: Millis,
        tokens_before: u64,
        limit: u64,
        keep_recent: u32,
        error: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let observations = self.observations();
        let droppable = observations.len().saturating_sub(keep_recent as usize);
        let mut dropped = Vec::new();
        let mut tokens = tokens_before;
        for &index in &observations[..droppable] {
            if tokens <= limit {
                break;
            }
            let message = &self.messages[index];
            if message.content.starts_with(COMPACTED_MARK) {
                continue;
            }
            let bytes = message.content.len();
            let stub = format!(
                "{COMPACTED_MARK} an observation of {bytes} bytes was dropped to fit the context \
                 window; run the tool again if you need it]"
            );
            let call_id = message.tool_call_id.clone();
            tokens = tokens - estimate_tokens(&message.content) + estimate_tokens(&stub);
            Arc::make_mut(&mut self.messages)[index].content = stub;
            dropped.push(DroppedObservation {
                message: index,
                call_id,
                bytes,
            });
        }
        if dropped.is_empty() && error.is_none() {
            return;
        }
        record(
            out,
            Record::Compaction(CompactionRecord::Truncate {
                step: self.steps,
                dropped,
                tokens_before,
                tokens_after: tokens,
                // Why the summary failed (so truncation happened instead), as the driver said it.
                summary_error: error,
                now,
            }),
        );
    }

    /// Where a summary ends: the start of the turn holding the `keep_recent`-th latest
    /// observation (an assistant message), so tool calls and their results stay together.
    fn summary_cut(&self, keep_recent: u32) -> Option<usize> {
        let observations = self.observations();
        let first_kept = if keep_recent == 0 {
            self.messages.len()
        } else {
            *observations.iter().rev().nth(keep_recent as usize - 1)?
        };
        let cut = (2..first_kept)
            .rev()
            .find(|&i| self.messages[i].role == Role::Assistant)?;
        // Something worth summarizing: at least one whole turn before the cut.
        (cut > 3).then_some(cut)
    }

    fn summary_request(&self, cut: usize) -> ModelRequest {
        let mut transcript = String::new();
        for m in &self.messages[2..cut] {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool result",
            };
            transcript.push_str(&format!("[{role}] {}\n", m.content));
            for call in &m.tool_calls {
                transcript.push_str(&format!("[tool call] {} {}\n", call.name, call.arguments));
            }
        }
        ModelRequest {
            step: COMPACTION_STEP,
            messages: Arc::new(vec![
                Message::new(
                    Role::System,
                    "You compress a coding agent's working history so it fits its context \
                     window. Summarize the transcript: progress on the task, files inspected \
                     and changed, commands run and their key results, errors met, and what \
                     remains. Be concise and factual; keep paths, names and numbers exact.",
                ),
                Message::new(
                    Role::User,
                    // The task message carries any earlier summary: it is summarized again.
                    format!(
                        "Task: {}\n\nTranscript:\n{transcript}",
                        self.messages[1].content
                    ),
                ),
            ]),
            tools: Arc::new(Vec::new()),
        }
    }

    /// The summary arrived (or failed: then observations are truncated instead); the run's
    /// step is asked next.
    fn summarized(
        &mut self,
        now: Millis,
        cut: usize,
        tokens_before: u64,
        reply: Result<ModelResponse, String>,
        out: &mut Vec<Command>,
    ) {
        self.phase = Phase::AwaitingModel;
        let compaction = self
            .spec
            .compaction
            .clone()
            .expect("only compaction asks for a summary");
        match reply {
            Ok(response) => {
                self.usage.add(response.usage);
                self.usd_micros += self.prices.cost_micros(&response.model, response.usage);
                let messages = Arc::make_mut(&mut self.messages);
                messages.drain(2..cut);
                messages[1].content = format!(
                    "{}\n\n[praxis] Summary of earlier work (compacted to fit the context \
                     window):\n{}",
                    self.spec.task, response.content
                );
                let tokens_after = self.conversation_tokens();
                record(
                    out,
                    Record::Compaction(CompactionRecord::Summarize {
                        step: self.steps,
                        replaced_messages: cut - 2,
                        summary: response.content,
                        model: response.model,
                        usage: response.usage,
                        tokens_before,
                        tokens_after,
                        now,
                    }),
                );
            }
            Err(error) => {
                let limit =
                    compaction.context_window * u64::from(compaction.threshold_percent) / 100;
                self.truncate(
                    now,
                    tokens_before,
                    limit,
                    compaction.keep_recent,
                    Some(error),
                    out,
                );
            }
        }
        out.push(Command::CallModel(self.current_request()));
    }

    /// Takes up a run after its driver died. A model call in flight is simply asked again
    /// (it changed nothing); a tool call in flight is marked interrupted and re-run only if it
    /// is read-only, otherwise only after approval; a pending approval is asked for again.
    fn resume(&mut self, now: Millis, environment: Value, out: &mut Vec<Command>) {
        let (waiting_for, interrupted_call) = match &self.phase {
            Phase::AwaitingModel | Phase::AwaitingSummary { .. } => (WaitingFor::Model, None),
            Phase::AwaitingTool(p, _) => (WaitingFor::Tool, Some(p.call_id.clone())),
            Phase::AwaitingApproval(p, _) => (WaitingFor::Approval, Some(p.call_id.clone())),
            Phase::NotStarted | Phase::Finished => unreachable!("guarded by the caller"),
        };
        record(
            out,
            Record::RunResumed(RunResumed {
                environment,
                waiting_for,
                interrupted_call,
                now,
            }),
        );
        if let Err(reason) = self.policy.within_deadline(self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        match std::mem::replace(&mut self.phase, Phase::AwaitingModel) {
            Phase::AwaitingModel => out.push(Command::CallModel(self.current_request())),
            Phase::AwaitingSummary { cut, tokens_before } => {
                out.push(Command::CallModel(self.summary_request(cut)));
                self.phase = Phase::AwaitingSummary { cut, tokens_before };
            }
            Phase::AwaitingTool(proposal, source) if proposal.effect == Effect::Read => {
                self.execute(now, proposal, source, out);
            }
            Phase::AwaitingTool(proposal, source) => {
                let reason = format!(
                    "the runtime stopped while `{}` ran, so it may have run partly; it is run \
                     again only if approved",
                    proposal.tool
                );
                record(
                    out,
                    Record::ApprovalRequested(ApprovalRequested {
                        call_id: proposal.call_id.clone(),
                        rule: Some(kernel_rules::RESUME_INTERRUPTED_CALL.into()),
                        reason: Some(reason.clone()),
                    }),
                );
                let suspended = Proposal {
                    verdict: Verdict::NeedsApproval {
                        rule: kernel_rules::RESUME_INTERRUPTED_CALL.into(),
                        reason,
                    },
                    ..proposal
                };
                out.push(Command::AwaitApproval(suspended.clone()));
                self.phase = Phase::AwaitingApproval(suspended, source);
            }
            Phase::AwaitingApproval(proposal, source) => {
                out.push(Command::AwaitApproval(proposal.clone()));
                self.phase = Phase::AwaitingApproval(proposal, source);
            }
            Phase::NotStarted | Phase::Finished => unreachable!("guarded by the caller"),
        }
    }

    /// Continues this kernel's history as a new run (see [`Event::Branch`]). The new run's
    /// chain starts with its own `run_started` naming the origin; the interrupted model call
    /// is asked again of the branch's model. Wall time counts from the branch.
    #[allow(clippy::too_many_arguments)]
    fn branch(
        &mut self,
        now: Millis,
        spec: RunSpec,
        environment: Value,
        origin: BranchOrigin,
        note: Option<String>,
        workspace_files: Option<Manifest>,
        out: &mut Vec<Command>,
    ) {
        self.policy = Policy::for_run(&spec);
        self.spec = spec;
        self.started = now;
        let mut text = format!(
            "[praxis] This run continues run {} from entry {} as a branch. The workspace is now {} \
             (its files are as they were at that point).",
            origin.run_id, origin.seq, self.spec.workspace
        );
        self.record_start(now, environment, Some(origin), workspace_files, out);
        if let Some(note) = note {
            text.push_str("\n\n");
            text.push_str(&note);
        }
        self.push_message(Message::new(Role::User, text));
        out.push(Command::CallModel(self.current_request()));
    }

    /// `run_started` (and the start manifest) of a run or a branch.
    fn record_start(
        &self,
        now: Millis,
        environment: Value,
        branch: Option<BranchOrigin>,
        workspace_files: Option<Manifest>,
        out: &mut Vec<Command>,
    ) {
        record(
            out,
            Record::RunStarted(RunStarted {
                spec: self.spec.clone(),
                environment,
                writ: self.authority.as_ref().map(|a| a.describe()),
                prices: self.prices.clone(),
                branch,
                now,
            }),
        );
        if let Some(files) = workspace_files {
            record(out, Record::WorkspaceSnapshot(WorkspaceSnapshot { files }));
        }
    }

    fn next_step(&mut self, now: Millis, out: &mut Vec<Command>) {
        if let Err(reason) = self.policy.before_step(self.steps + 1, self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        if let Some(authority) = &self.authority {
            match authority.before_model_call(now, &self.spent(now)) {
                Authorization::Exhausted { rule, reason } => {
                    let error = format!("{rule}: {reason}");
                    return self.finish(now, StopReason::BudgetExhausted, None, Some(error), out);
                }
                Authorization::Verdict(Verdict::Deny { rule, reason }) => {
                    let error = format!("{rule}: {reason}");
                    return self.finish(now, StopReason::Denied, None, Some(error), out);
                }
                Authorization::Verdict(_) => {}
            }
        }
        self.steps += 1;
        self.phase = Phase::AwaitingModel;
        if !self.compact(now, out) {
            out.push(Command::CallModel(self.current_request()));
        }
    }

    fn on_reply(&mut self, now: Millis, response: ModelResponse, out: &mut Vec<Command>) {
        self.usage.add(response.usage);
        let cost = self.prices.cost_micros(&response.model, response.usage);
        self.usd_micros += cost;
        record(
            out,
            Record::ModelResponse(ModelResponseRecord {
                step: self.steps,
                model: response.model.clone(),
                content: response.content.clone(),
                tool_calls: response.tool_calls.clone(),
                usage: response.usage,
                reasoning: response.reasoning.clone(),
                // What the call cost by the run's price table (absent for unpriced models).
                cost_usd_micros: (cost > 0).then_some(cost),
                now,
            }),
        );
        self.push_message(Message {
            role: Role::Assistant,
            content: response.content.clone(),
            tool_calls: response.tool_calls.clone(),
            tool_call_id: None,
            reasoning: response.reasoning.clone(),
        });
        if let Err(reason) = self.policy.within_deadline(self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        match intents_of(self.steps, &response) {
            Reply::Final(answer) => {
                self.finish(now, StopReason::Completed, Some(answer), None, out);
            }
            Reply::Unusable(why) => self.unusable(now, why, out),
            Reply::Intents(intents) => {
                self.pending = intents.into();
                self.reply_usable = false;
                self.advance(now, out);
            }
        }
    }

    /// Handles pending intents until one needs the outside world or none are left.
    fn advance(&mut self, now: Millis, out: &mut Vec<Command>) {
        while let Some(intent) = self.pending.pop_front() {
            // What the proposal is judged with is recorded with it (audits, what-if checks).
            let spent = self.spent(now);
            let judgement = judge(
                &*self.contracts,
                &self.policy,
                self.authority.as_deref(),
                &intent.tool,
                &intent.arguments,
                now,
                &spent,
            );
            let (compiled, verdict) = match judgement {
                Judgement::Rejected(error) => {
                    let reason = error.to_string();
                    record(
                        out,
                        Record::Proposal(ProposalRecord::contract_rejected(
                            &intent,
                            rules::CONTRACT,
                            reason.clone(),
                        )),
                    );
                    self.observe(
                        &intent.call_id,
                        intent.source,
                        format!("rejected: {reason}"),
                    );
                    continue;
                }
                Judgement::Judged { compiled, verdict } => (compiled, verdict),
                Judgement::Exhausted {
                    compiled,
                    rule,
                    reason,
                } => {
                    self.reply_usable = true;
                    let denied = Proposal {
                        call_id: intent.call_id,
                        tool: intent.tool,
                        arguments: intent.arguments,
                        effect: compiled.effect,
                        resources: compiled.resources,
                        verdict: Verdict::deny(&rule, reason.clone()),
                    };
                    record(
                        out,
                        Record::Proposal(ProposalRecord::judged(
                            &denied,
                            intent.source,
                            now,
                            spent,
                        )),
                    );
                    let error = format!("{rule}: {reason}");
                    return self.finish(now, StopReason::BudgetExhausted, None, Some(error), out);
                }
            };
            self.reply_usable = true;
            let proposal = Proposal {
                call_id: intent.call_id,
                tool: intent.tool,
                arguments: intent.arguments,
                effect: compiled.effect,
                resources: compiled.resources,
                verdict,
            };
            let payload = ProposalRecord::judged(&proposal, intent.source, now, spent);
            record(out, Record::Proposal(payload));
            match &proposal.verdict {
                Verdict::Allow { .. } => {
                    return self.execute(now, proposal, intent.source, out);
                }
                Verdict::Deny { rule, reason } => {
                    self.observe(
                        &proposal.call_id,
                        intent.source,
                        format!("denied by policy ({rule}): {reason}"),
                    );
                }
                Verdict::NeedsApproval { .. } => {
                    record(
                        out,
                        Record::ApprovalRequested(ApprovalRequested {
                            call_id: proposal.call_id.clone(),
                            rule: None,
                            reason: None,
                        }),
                    );
                    out.push(Command::AwaitApproval(proposal.clone()));
                    self.phase = Phase::AwaitingApproval(proposal, intent.source);
                    return;
                }
            }
        }
        // Every intent of the reply is handled: report back and ask the model again.
        if !self.cmd_results.is_empty() {
            let results = std::mem::take(&mut self.cmd_results).join("\n");
            self.push_message(Message::new(Role::User, results));
        }
        if self.reply_usable {
            self.invalid_in_row = 0;
            self.next_step(now, out);
        } else {
            self.unusable(now, "no tool call in the reply could be used".into(), out);
        }
    }

    fn recheck(&self, now: Millis, proposal: &Proposal) -> Authorization {
        let Some(authority) = &self.authority else {
            return Authorization::Verdict(Verdict::allow(rules::DEFAULT_ALLOW));
        };
        let resources = self.policy.normalized(&proposal.resources);
        authority.authorize(&AuthzRequest {
            tool: &proposal.tool,
            arguments: &proposal.arguments,
            effect: proposal.effect,
            resources: &resources,
            now,
            spent: &self.spent(now),
        })
    }

    fn execute(
        &mut self,
        now: Millis,
        proposal: Proposal,
        source: IntentSource,
        out: &mut Vec<Command>,
    ) {
        if let Err(reason) = self.policy.within_deadline(self.started, now) {
            return self.finish(now, reason, None, None, out);
        }
        self.tool_calls += 1;
        out.push(Command::Execute(ExecRequest {
            call_id: proposal.call_id.clone(),
            tool: proposal.tool.clone(),
            arguments: proposal.arguments.clone(),
            effect: proposal.effect,
            resources: proposal.resources.clone(),
            deadline: self.policy.deadline(self.started),
        }));
        self.phase = Phase::AwaitingTool(proposal, source);
    }

    fn unusable(&mut self, now: Millis, why: String, out: &mut Vec<Command>) {
        self.invalid_in_row += 1;
        record(
            out,
            Record::InvalidOutput(InvalidOutput {
                step: self.steps,
                reason: why.clone(),
                in_a_row: self.invalid_in_row,
            }),
        );
        if self.invalid_in_row >= self.spec.limits.max_invalid_replies {
            let error = format!(
                "{} unusable model replies in a row; last: {why}",
                self.invalid_in_row
            );
            return self.finish(now, StopReason::InvalidOutputLimit, None, Some(error), out);
        }
        self.push_message(Message::new(
            Role::User,
            format!(
                "Your last reply could not be used: {why}. Reply with a tool call, a {} block, \
                 or a plain-text final answer.",
                cmd::format_cmd("command")
            ),
        ));
        self.next_step(now, out);
    }

    fn observe(&mut self, call_id: &str, source: IntentSource, text: String) {
        match source {
            IntentSource::ToolCall => self.push_message(Message::tool_result(call_id, text)),
            IntentSource::CmdBlock => self.cmd_results.push(cmd::format_result(&text, None)),
        }
    }

    fn finish(
        &mut self,
        now: Millis,
        reason: StopReason,
        answer: Option<String>,
        error: Option<String>,
        out: &mut Vec<Command>,
    ) {
        let result = RunResult {
            status: RunStatus::after(reason),
            stop_reason: reason,
            final_answer: answer,
            error,
            steps: self.steps,
            tool_calls: self.tool_calls,
            usage: self.usage,
        };
        record(
            out,
            Record::RunFinished(RunFinished::new(result.clone(), now)),
        );
        self.phase = Phase::Finished;
        self.pending.clear();
        out.push(Command::Finish(result));
    }
}

enum Reply {
    Intents(Vec<Intent>),
    Final(String),
    Unusable(String),
}

/// Native tool calls take precedence; otherwise `<cmd>` blocks; otherwise the text is the answer.
fn intents_of(step: u32, response: &ModelResponse) -> Reply {
    if !response.tool_calls.is_empty() {
        return Reply::Intents(
            response
                .tool_calls
                .iter()
                .map(|call| Intent {
                    call_id: call.id.clone(),
                    tool: call.name.clone(),
                    arguments: call.arguments.clone(),
                    source: IntentSource::ToolCall,
                })
                .collect(),
        );
    }
    match cmd::parse_cmd_blocks(&response.content) {
        Err(error) => Reply::Unusable(error.to_string()),
        Ok(blocks) if blocks.is_empty() => {
            let answer = response.content.trim();
            if answer.is_empty() {
                Reply::Unusable("the reply was empty".into())
            } else {
                Reply::Final(answer.into())
            }
        }
        Ok(blocks) => {
            let intents: Vec<Intent> = blocks
                .into_iter()
                .filter(|body| !body.is_empty())
                .enumerate()
                .map(|(i, command)| Intent {
                    call_id: format!("cmd-{step}-{}", i + 1),
                    tool: "shell".into(),
                    arguments: json!({ "command": command }),
                    source: IntentSource::CmdBlock,
                })
                .collect();
            if intents.is_empty() {
                Reply::Unusable("every <cmd> block was empty".into())
            } else {
                Reply::Intents(intents)
            }
        }
    }
}

fn record(out: &mut Vec<Command>, record: Record) {
    out.push(Command::Record(record));
}

/// What the model reads back after a tool ran.
fn render_observation(o: &Observation) -> String {
    let mut text = String::new();
    match o.status {
        ExecStatus::Ok => {}
        other => text.push_str(&format!("[{}] ", other.as_str())),
    }
    text.push_str(&o.output);
    if let Some(code) = o.exit_code.filter(|c| *c != 0) {
        text.push_str(&format!("\n[exit code {code}]"));
    }
    text
}

fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Start { .. } => "Start",
        Event::ModelReplied { .. } => "ModelReplied",
        Event::ModelFailed { .. } => "ModelFailed",
        Event::ToolFinished { .. } => "ToolFinished",
        Event::ApprovalDecided { .. } => "ApprovalDecided",
        Event::Cancel { .. } => "Cancel",
        Event::Resume { .. } => "Resume",
        Event::Branch { .. } => "Branch",
    }
}

/// How a compacted observation's stub begins (so it is never compacted twice).
const COMPACTED_MARK: &str = "[compacted:";

/// The built-in system prompt: who the model is working for, where, when, on what platform,
/// and how it acts under the run's protocol.
fn system_prompt(spec: &RunSpec, tools: &[ToolSpec], now: Millis) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    let how = match spec.protocol {
        Protocol::Tools => format!(
            "Tools: {tools}.\nAct by calling these tools (several calls in one reply run in \
             order); each result comes back as a tool message.",
            tools = names.join(", "),
        ),
        Protocol::Cmd if names.contains(&"shell") => format!(
            "You act through shell commands only: write one command per {cmd} block (a reply \
             may hold several blocks; they run in order, each as one `shell` call in the \
             workspace) and its output comes back in a <result> block. Use standard tools \
             (ls, cat, grep, sed, patch, your test runner) to inspect, edit and test.",
            cmd = cmd::format_cmd("..."),
        ),
        Protocol::Cmd => "This run offers no shell, so you cannot act: answer from what you \
                          are told."
            .to_string(),
    };
    format!(
        "You are a coding agent running under Praxis, a governed runtime: you propose actions, \
         the runtime checks them against policy, runs the allowed ones and shows you the result.\n\
         Date: {date}. Platform: {os} {arch}. Workspace: {ws} (all paths are relative to it).{ro}\n\
         {how}\n\
         Work in small steps: inspect, edit, test, recover from failures. When the task is done, \
         reply with the final answer only, without any tool call or command.",
        date = civil_date(now),
        os = std::env::consts::OS,
        arch = std::env::consts::ARCH,
        ws = spec.workspace,
        ro = if spec.read_only {
            " This run is read-only."
        } else {
            ""
        },
    )
}

/// `YYYY-MM-DD` (UTC) of a Unix time in milliseconds (Howard Hinnant's civil-from-days).
fn civil_date(ms: Millis) -> String {
    let days = (ms / 86_400_000) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

mod judge;

#[cfg(test)]
mod tests;
