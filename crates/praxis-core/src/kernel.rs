//! The run kernel: a pure state machine. Events go in (the run started, the model replied,
//! a tool finished, cancel), commands come out (record this, call the model, execute this,
//! finish). It performs no I/O and reads no clock, so feeding it a recorded run's events
//! reproduces the same commands: that is what replay and branching rest on.
//!
//! Write-ahead invariant: every `Execute` is preceded, in the same command list, by the
//! `Record` of its proposal and verdict. The driver must make records durable before it
//! acts on a later command.

use crate::authority::{Authority, Authorization, Spent};
use crate::contract::Contracts;
use crate::policy::Policy;
use crate::record::{ApprovalDecided, Execution, ModelError};
pub use crate::record::{Record, RunResult, kinds};
use crate::types::*;
pub use io::{Command, ContractSet, Event, ExecRequest, KernelError};
pub use judge::{Judgement, judge};
#[cfg(test)]
use prompt::civil_date;
use prompt::system_prompt;
pub use prompt::{PromptData, build_system_prompt};
use std::collections::VecDeque;
use std::sync::Arc;

/// Rule names of the kernel's own decisions (besides the policy's).
pub mod kernel_rules {
    /// A call that was in flight when the previous driver died may have run partly: it is not
    /// re-run unless someone approves (read-only calls are re-run without asking).
    pub const RESUME_INTERRUPTED_CALL: &str = "resume.interrupted_call";
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

/// One run's decisions. A copy decides as the original would (the kernel is deterministic):
/// see [`Kernel::first_model_request`].
#[derive(Clone)]
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
    /// What sub-runs started by `delegate` consumed (recorded with their executions).
    delegated: Spent,
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
            delegated: Spent::default(),
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

    /// What the run has consumed as of `now`, its delegated sub-runs' calls, tokens and
    /// money included. (A sub-run's wall time is the parent's own, and the files it changed
    /// are in the parent's `delegate` execution, so neither is added twice.)
    /// Adds what a delegated sub-run consumed to this run's spending.
    pub(crate) fn charge_delegated(&mut self, child: &Spent) {
        let d = &mut self.delegated;
        d.tool_calls = d.tool_calls.saturating_add(child.tool_calls);
        d.model_calls = d.model_calls.saturating_add(child.model_calls);
        d.model_tokens = d.model_tokens.saturating_add(child.model_tokens);
        d.usd_micros = d.usd_micros.saturating_add(child.usd_micros);
    }

    pub fn spent(&self, now: Millis) -> Spent {
        let d = &self.delegated;
        Spent {
            tool_calls: u64::from(self.tool_calls).saturating_add(d.tool_calls),
            model_calls: u64::from(self.steps).saturating_add(d.model_calls),
            model_tokens: self.usage.total().saturating_add(d.model_tokens),
            wall_ms: now.saturating_sub(self.started),
            usd_micros: self.usd_micros.saturating_add(d.usd_micros),
            bytes_written: self.bytes_written,
        }
    }

    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }
    /// The conversation so far (system prompt first), as the next model call would see it.
    pub fn messages(&self) -> &Arc<Vec<Message>> {
        &self.messages
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

    /// The model call a new run's `Start` at `now` asks for (None if that start asks for
    /// none, as a run with no budget left does), worked out on a copy: this kernel is not
    /// changed. The runtime makes that call while it opens the run's drive.
    pub fn first_model_request(&self, now: Millis) -> Option<ModelRequest> {
        if self.phase != Phase::NotStarted {
            return None;
        }
        let mut copy = self.clone();
        copy.started = now;
        let mut out = Vec::new();
        copy.begin(now, &mut out);
        out.into_iter().find_map(|command| match command {
            Command::CallModel(request) => Some(request),
            _ => None,
        })
    }

    /// A new run's first turn after its start is recorded: the system prompt, the history
    /// and the task, then its first step.
    fn begin(&mut self, now: Millis, out: &mut Vec<Command>) {
        let system = system_prompt(&self.spec, &self.offered, now);
        self.push_message(Message::new(Role::System, system));
        for message in &self.spec.conversation.history {
            // The system prompt is the spec's; a system turn in the history would
            // be a second one, so it is sent as what it says, from the user.
            let mut message = message.clone();
            if message.role == Role::System {
                message.role = Role::User;
            }
            Arc::make_mut(&mut self.messages).push(message);
        }
        self.push_message(Message::new(Role::User, self.spec.task.clone()));
        self.next_step(now, out);
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
                self.begin(now, &mut out);
            }
            (
                Event::ToolsChanged {
                    now,
                    source,
                    contracts,
                },
                phase,
            ) if !matches!(phase, Phase::NotStarted | Phase::Finished) => {
                self.contracts = contracts.0;
                self.offered = Arc::new(
                    self.contracts
                        .specs()
                        .into_iter()
                        .filter(|s| self.policy.offers(&s.name))
                        .collect(),
                );
                record(
                    &mut out,
                    Record::ToolsChanged(crate::record::ToolsChanged {
                        source,
                        tools: self.contracts.recorded_specs(),
                        now,
                    }),
                );
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
                if let Some(child) = &observation.child_spent {
                    self.charge_delegated(child);
                }
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
            (
                Event::Resume {
                    now,
                    environment,
                    interrupted_child_spent,
                },
                phase,
            ) if !matches!(phase, Phase::NotStarted | Phase::Finished) => {
                self.resume(now, environment, interrupted_child_spent, &mut out);
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
                    *spec,
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
        Event::ToolsChanged { .. } => "ToolsChanged",
    }
}

mod compaction;
mod intents;
mod io;
mod judge;
mod prompt;
mod step;
mod takeover;

#[cfg(test)]
mod tests;
